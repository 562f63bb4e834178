//! Our client against our server over real loopback sockets, over both transports:
//! the handshake, tools, progress before the result, timeouts that cancel the handler, a
//! 401 from an auth layer, and 200 concurrent sessions with interleaved calls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcp_proto::types::LoggingLevel;
use mcp_proto::{McpServer, NoArgs, ProtocolVersion, ToolContext, ToolError};
use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use mcp_sse::{Error, McpHttpServer, RunningServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, JsonSchema)]
struct RollDice {
    n_dice: u32,
}

#[derive(Deserialize, JsonSchema)]
struct Echo {
    tag: String,
    delay_ms: u64,
}

#[derive(Deserialize, JsonSchema)]
struct Sleep {
    ms: u64,
}

/// Counts `sleep` handlers dropped before they finished (i.e. cancelled).
#[derive(Default)]
struct Probe {
    cancelled: AtomicUsize,
}

struct CancelGuard(Arc<Probe>, bool);
impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn service(probe: Arc<Probe>) -> McpServer {
    McpServer::builder("Test Server")
        .tool("roll_dice", "Roll dice.", |a: RollDice| async move {
            Ok::<_, ToolError>(
                (0..a.n_dice)
                    .map(|i| (i % 6 + 1) as u8)
                    .collect::<Vec<u8>>(),
            )
        })
        .tool(
            "echo",
            "Echo `tag` after `delay_ms`.",
            |a: Echo| async move {
                tokio::time::sleep(Duration::from_millis(a.delay_ms)).await;
                Ok::<_, ToolError>(a.tag)
            },
        )
        .tool("sleep", "Sleep for `ms` milliseconds.", move |a: Sleep| {
            let probe = probe.clone();
            async move {
                let mut guard = CancelGuard(probe, false);
                tokio::time::sleep(Duration::from_millis(a.ms)).await;
                guard.1 = true;
                Ok::<_, ToolError>(format!("slept {}", a.ms))
            }
        })
        .tool(
            "log",
            "Logs one message at info level.",
            |ctx: ToolContext, _: NoArgs| async move {
                ctx.log(LoggingLevel::Info, Some("test"), json!("hello"))
                    .await
                    .ok();
                Ok::<_, ToolError>("logged".to_string())
            },
        )
        .tool(
            "progress",
            "Reports progress three times.",
            |ctx: ToolContext, _: NoArgs| async move {
                for i in 1..=3 {
                    ctx.progress(f64::from(i), Some(3.0), Some("working"))
                        .await
                        .ok();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok::<_, ToolError>("done".to_string())
            },
        )
        .build()
        .unwrap()
}

async fn start() -> (RunningServer, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let server = McpHttpServer::new(service(probe.clone()));
    (server.spawn("127.0.0.1:0").await.unwrap(), probe)
}

/// Serves on a listener with a deep accept queue: 200 sessions with 5 calls in flight each
/// open about 1200 HTTP/1.1 connections at once, more than the default backlog of 1024
/// (overflowing it costs a 1 s SYN retransmit per dropped connection).
async fn start_deep_backlog() -> (
    McpHttpServer,
    std::net::SocketAddr,
    tokio_util::sync::CancellationToken,
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(4096).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = McpHttpServer::new(service(Arc::new(Probe::default())));
    let stop = tokio_util::sync::CancellationToken::new();
    let signal = stop.clone();
    let serving = server.clone();
    tokio::spawn(async move {
        serving
            .serve_listener(listener, async move { signal.cancelled().await })
            .await
            .unwrap();
    });
    (server, addr, stop)
}

fn endpoints(server: &RunningServer) -> [(String, TransportKind); 2] {
    [
        (server.url("/sse"), TransportKind::LegacySse),
        (server.url("/mcp"), TransportKind::StreamableHttp),
    ]
}

/// Waits (up to 5 s) for the server's session count to reach `n`.
async fn wait_sessions(server: &McpHttpServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.session_count() != n {
        assert!(
            Instant::now() < deadline,
            "session count stuck at {} (want {n})",
            server.session_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn client_and_server_agree_over_both_transports() {
    let (server, _) = start().await;
    for (url, kind) in endpoints(&server) {
        let client = McpClient::builder(&url).connect().await.unwrap();
        assert_eq!(client.transport_kind(), Some(kind));
        assert_eq!(client.protocol_version(), ProtocolVersion::V2025_11_25);
        assert_eq!(client.server_info().unwrap().name, "Test Server");
        assert_eq!(server.server().session_count(), 1, "{kind:?}");

        let names: Vec<String> = client
            .list_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["roll_dice", "echo", "sleep", "log", "progress"]);

        let result = client
            .call_tool("roll_dice", json!({"n_dice": 3}))
            .await
            .unwrap();
        assert!(!result.is_error());
        assert_eq!(
            result.structured_content,
            Some(json!({"result": [1, 2, 3]}))
        );
        assert_eq!(result.content[0].as_text(), Some("[1,2,3]"));

        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let result = client
            .call_tool_with_progress("progress", Value::Null, move |p| {
                sink.lock().unwrap().push((p.progress, p.total, p.message));
            })
            .await
            .unwrap();
        // All three reached the callback before the result came back.
        let working = Some("working".to_owned());
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (1.0, Some(3.0), working.clone()),
                (2.0, Some(3.0), working.clone()),
                (3.0, Some(3.0), working)
            ],
            "{kind:?}"
        );
        assert_eq!(result.content[0].as_text(), Some("done"));

        let err = client
            .call_tool("no_such_tool", Value::Null)
            .await
            .unwrap_err();
        let Error::Protocol(mcp_proto::Error::Rpc(rpc)) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(rpc.code, -32602, "{rpc:?}");

        assert_eq!(client.request("ping", None).await.unwrap(), json!({}));
        client.close().await.unwrap();
        wait_sessions(server.server(), 0).await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn notifications_reach_the_callback_with_the_server_stream_on() {
    let (server, _) = start().await;
    for (url, kind) in endpoints(&server) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let client = McpClient::builder(&url)
            .server_stream(true)
            .on_notification(move |n| {
                let _ = tx.try_send(n);
            })
            .connect()
            .await
            .unwrap();
        let result = client.call_tool("log", Value::Null).await.unwrap();
        assert_eq!(result.content[0].as_text(), Some("logged"));
        let n = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n.method, "notifications/message", "{kind:?}");
        assert_eq!(
            n.params.unwrap(),
            json!({"level": "info", "logger": "test", "data": "hello"})
        );
        client.close().await.unwrap();
        wait_sessions(server.server(), 0).await;
    }
}

#[tokio::test]
async fn older_protocol_versions_are_negotiated_over_both_transports() {
    let (server, _) = start().await;
    for (url, kind) in endpoints(&server) {
        for version in [
            ProtocolVersion::V2024_11_05,
            ProtocolVersion::V2025_03_26,
            ProtocolVersion::V2025_06_18,
        ] {
            let client = McpClient::builder(&url)
                .protocol_version(version)
                .connect()
                .await
                .unwrap();
            assert_eq!(client.protocol_version(), version, "{kind:?}");
            let result = client
                .call_tool("roll_dice", json!({"n_dice": 2}))
                .await
                .unwrap();
            assert_eq!(result.content[0].as_text(), Some("[1,2]"));
            // Structured output exists from 2025-06-18 on.
            assert_eq!(
                result.structured_content.is_some(),
                version >= ProtocolVersion::V2025_06_18,
                "{kind:?} {version:?}"
            );
            client.close().await.unwrap();
        }
    }
    wait_sessions(server.server(), 0).await;
}

#[tokio::test]
async fn client_timeout_cancels_the_running_handler() {
    let (server, probe) = start().await;
    for (i, (url, kind)) in endpoints(&server).into_iter().enumerate() {
        let client = McpClient::builder(&url)
            .request_timeout(Duration::from_millis(300))
            .connect()
            .await
            .unwrap();
        let started = Instant::now();
        let err = client
            .call_tool("sleep", json!({"ms": 10_000}))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Timeout(d, _) if d == Duration::from_millis(300)),
            "{kind:?}: {err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(client.pending_requests(), 0);
        // notifications/cancelled reached the server and dropped the handler.
        let deadline = Instant::now() + Duration::from_secs(5);
        while probe.cancelled.load(Ordering::SeqCst) != i + 1 {
            assert!(Instant::now() < deadline, "{kind:?}: handler not cancelled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The session is still usable.
        let result = client.call_tool("sleep", json!({"ms": 1})).await.unwrap();
        assert_eq!(result.content[0].as_text(), Some("slept 1"));
        client.close().await.unwrap();
    }
}

#[tokio::test]
async fn closing_or_dropping_a_client_mid_call_leaves_no_session() {
    let (server, _) = start().await;
    // Legacy SSE: dropping the client closes the stream, which ends the session.
    let client = McpClient::builder(server.url("/sse"))
        .connect()
        .await
        .unwrap();
    let call = tokio::spawn(async move {
        let _ = client.call_tool("sleep", json!({"ms": 10_000})).await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.server().session_count(), 1);
    call.abort();
    wait_sessions(server.server(), 0).await;

    // Both transports: close() fails the call in flight and ends the session (DELETE for
    // streamable HTTP).
    for (url, kind) in endpoints(&server) {
        let client = Arc::new(McpClient::builder(&url).connect().await.unwrap());
        let calling = client.clone();
        let call =
            tokio::spawn(async move { calling.call_tool("sleep", json!({"ms": 10_000})).await });
        let deadline = Instant::now() + Duration::from_secs(5);
        while client.pending_requests() != 1 {
            assert!(
                Instant::now() < deadline,
                "{kind:?}: the call never started"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Let the POST reach the server.
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.close().await.unwrap();
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::SessionClosed), "{kind:?}: {err:?}");
        wait_sessions(server.server(), 0).await;
    }
}

async fn require_bearer(request: Request, next: Next) -> Response {
    let authorized = request
        .headers()
        .get("authorization")
        .is_some_and(|v| v == "Bearer s3cret");
    if authorized {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "missing or bad token").into_response()
    }
}

#[tokio::test]
async fn an_auth_layer_401_surfaces_as_http_status_code_401() {
    let probe = Arc::new(Probe::default());
    let server = McpHttpServer::new(service(probe));
    let router = server
        .router()
        .layer(axum::middleware::from_fn(require_bearer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    for path in ["/sse", "/mcp"] {
        let url = format!("http://{addr}{path}");
        let err = McpClient::builder(&url)
            .bearer_token("wrong")
            .connect()
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "Http status code: 401 (Unauthorized)");
        let Error::Http { status, body, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            (*status, body.as_str()),
            (StatusCode::UNAUTHORIZED, "missing or bad token")
        );

        let client = McpClient::builder(&url)
            .bearer_token("s3cret")
            .connect()
            .await
            .unwrap();
        let result = client
            .call_tool("roll_dice", json!({"n_dice": 1}))
            .await
            .unwrap();
        assert_eq!(result.content[0].as_text(), Some("[1]"));
        client.close().await.unwrap();
    }
    wait_sessions(&server, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_sessions_each_get_their_own_answers() {
    const SESSIONS: usize = 200;
    const CALLS: usize = 5;
    let (server, addr, stop) = start_deep_backlog().await;
    let urls = [
        (format!("http://{addr}/sse"), TransportKind::LegacySse),
        (format!("http://{addr}/mcp"), TransportKind::StreamableHttp),
    ];
    let started = Instant::now();
    let tasks: Vec<_> = (0..SESSIONS)
        .map(|s| {
            let (url, kind) = urls[s % 2].clone();
            tokio::spawn(async move {
                let client = McpClient::builder(&url)
                    .request_timeout(Duration::from_secs(30))
                    .connect()
                    .await
                    .unwrap();
                assert_eq!(client.transport_kind(), Some(kind));
                // Interleave: every call in flight at once, answers in reverse order of
                // sending (longer delays first).
                let calls = (0..CALLS).map(|c| {
                    let client = &client;
                    async move {
                        let tag = format!("session-{s}-call-{c}");
                        let delay = ((CALLS - c) * 7 + s % 5) as u64;
                        let result = client
                            .call_tool("echo", json!({"tag": tag, "delay_ms": delay}))
                            .await
                            .unwrap();
                        (tag, result.content[0].as_text().map(str::to_owned))
                    }
                });
                for (tag, got) in futures::future::join_all(calls).await {
                    assert_eq!(got.as_deref(), Some(tag.as_str()));
                }
                client.close().await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    wait_sessions(&server, 0).await;
    eprintln!("{SESSIONS} sessions x {CALLS} calls in {elapsed:?}");
    stop.cancel();
}

#[tokio::test]
async fn a_server_on_the_in_memory_session_store_serves_both_transports() {
    let store = Arc::new(mcp_sse::MemoryStore::new());
    let shared: Arc<dyn mcp_sse::SharedStore> = store.clone();
    let server = McpHttpServer::new(service(Arc::new(Probe::default())))
        .session_store(shared)
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    for (url, kind) in endpoints(&server) {
        let client = McpClient::builder(&url)
            .transport(kind)
            .connect()
            .await
            .unwrap();
        assert_eq!(
            store.session_count(),
            1,
            "{kind:?}: the session is in the store"
        );
        let result = client
            .call_tool("roll_dice", json!({"n_dice": 2}))
            .await
            .unwrap();
        assert_eq!(result.structured_content, Some(json!({"result": [1, 2]})));
        let seen = Arc::new(AtomicUsize::new(0));
        let sink = seen.clone();
        let result = client
            .call_tool_with_progress("progress", Value::Null, move |_| {
                sink.fetch_add(1, Ordering::SeqCst);
            })
            .await
            .unwrap();
        assert_eq!(result.content[0].as_text(), Some("done"));
        assert_eq!(seen.load(Ordering::SeqCst), 3, "{kind:?}");
        client.close().await.unwrap();
        // Closing (stream end or DELETE) removes it from the store.
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.session_count() != 0 {
            assert!(
                Instant::now() < deadline,
                "{kind:?}: session left in the store"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    server.shutdown().await.unwrap();
}
