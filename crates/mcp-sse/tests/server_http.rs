//! Wire-level tests of both server transports over real loopback sockets, with raw HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use mcp_proto::{McpServer, NoArgs, ToolContext, ToolError};
use mcp_sse::{McpHttpServer, RunningServer, ServerConfig};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, JsonSchema)]
struct RollDice {
    #[schemars(range(min = 1, max = 100))]
    n_dice: u32,
}

#[derive(Deserialize, JsonSchema)]
struct Sleep {
    ms: u64,
}

/// Counts handlers that started and that were dropped before finishing.
#[derive(Default)]
struct Probe {
    started: AtomicUsize,
    finished: AtomicUsize,
    dropped_early: AtomicUsize,
}

struct DropProbe(Arc<Probe>, bool);
impl Drop for DropProbe {
    fn drop(&mut self) {
        if !self.1 {
            self.0.dropped_early.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn service(probe: Arc<Probe>) -> McpServer {
    let p = Arc::clone(&probe);
    McpServer::builder("Test Server")
        .tool("roll_dice", "Roll dice.", |a: RollDice| async move {
            Ok::<_, ToolError>(
                (0..a.n_dice)
                    .map(|i| (i % 6 + 1) as u8)
                    .collect::<Vec<u8>>(),
            )
        })
        .tool("sleep", "Sleep for `ms` milliseconds.", move |a: Sleep| {
            let p = Arc::clone(&p);
            async move {
                p.started.fetch_add(1, Ordering::SeqCst);
                let mut guard = DropProbe(Arc::clone(&p), false);
                tokio::time::sleep(Duration::from_millis(a.ms)).await;
                guard.1 = true;
                p.finished.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ToolError>(format!("slept {}", a.ms))
            }
        })
        .tool(
            "progress",
            "Reports progress three times.",
            |ctx: ToolContext, _: NoArgs| async move {
                for i in 1..=3 {
                    ctx.progress(i as f64, Some(3.0), Some("working"))
                        .await
                        .ok();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok::<_, ToolError>("done".to_string())
            },
        )
        .build()
        .unwrap()
}

async fn start(config: ServerConfig) -> (RunningServer, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let server = McpHttpServer::with_config(service(Arc::clone(&probe)), config);
    (server.spawn("127.0.0.1:0").await.unwrap(), probe)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

fn init_body(version: &str) -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name":"t","version":"1"}}})
}

/// Reads SSE events `(event, data, id)` from a streaming response.
struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

#[derive(Debug, Clone, PartialEq)]
struct Event {
    event: Option<String>,
    data: String,
    id: Option<String>,
    comment: bool,
}

impl SseReader {
    fn new(resp: reqwest::Response) -> Self {
        Self {
            stream: resp.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// Next event or comment block; `None` when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(pos) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..pos + 2).collect();
                let mut ev = Event {
                    event: None,
                    data: String::new(),
                    id: None,
                    comment: false,
                };
                let mut any_field = false;
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        let _ = c;
                        ev.comment = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = Some(v.into());
                        any_field = true;
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        ev.data.push_str(v);
                        any_field = true;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.into());
                        any_field = true;
                    } else if line.starts_with("retry:") {
                        // reconnection delay: not needed by these tests
                    }
                }
                if any_field || ev.comment {
                    if any_field {
                        ev.comment = false;
                    }
                    return Some(ev);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("SSE read timed out")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk.ok()?));
        }
    }

    /// Next `message` event's JSON.
    async fn message(&mut self) -> Option<Value> {
        loop {
            let ev = self.next().await?;
            if ev.event.as_deref() == Some("message") {
                return Some(serde_json::from_str(&ev.data).unwrap());
            }
        }
    }
}

async fn wait_for_sessions(server: &RunningServer, n: usize) {
    for _ in 0..200 {
        if server.server().session_count() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "session count is {} not {n}",
        server.server().session_count()
    );
}

// ---------------- legacy HTTP+SSE ----------------

async fn open_legacy(server: &RunningServer) -> (SseReader, String) {
    let resp = http().get(server.url("/sse")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut sse = SseReader::new(resp);
    let first = sse.next().await.unwrap();
    assert_eq!(first.event.as_deref(), Some("endpoint"));
    let endpoint = first.data;
    let id = endpoint
        .strip_prefix("/messages/?session_id=")
        .expect("endpoint path");
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    (sse, server.url(&endpoint))
}

#[tokio::test]
async fn legacy_round_trip_and_session_freed_on_disconnect() {
    let (server, _) = start(ServerConfig::default()).await;
    let (mut sse, endpoint) = open_legacy(&server).await;
    assert_eq!(server.server().session_count(), 1);
    let resp = http()
        .post(&endpoint)
        .json(&init_body("2024-11-05"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.text().await.unwrap(), "Accepted");
    let init = sse.message().await.unwrap();
    assert_eq!(init["id"], 0);
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    let call = json!({"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":3}}});
    assert_eq!(
        http()
            .post(&endpoint)
            .json(&call)
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    let reply = sse.message().await.unwrap();
    assert_eq!(reply["id"], "c1");
    assert_eq!(reply["result"]["content"][0]["text"], "[1,2,3]");
    // 2024-11-05 has no structuredContent
    assert!(reply["result"].get("structuredContent").is_none());
    drop(sse);
    wait_for_sessions(&server, 0).await;
    let resp = http().post(&endpoint).json(&call).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn legacy_status_codes() {
    let config = ServerConfig {
        max_body_bytes: 1024,
        ..Default::default()
    };
    let (server, _) = start(config).await;
    let (_sse, endpoint) = open_legacy(&server).await;
    let c = http();
    let missing = c
        .post(server.url("/messages/"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Bad Request: Missing session_id query parameter"
    );
    let unknown = c
        .post(server.url("/messages/?session_id=0123456789abcdef0123456789abcdef"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let bad = c
        .post(&endpoint)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700);
    assert_eq!(body["id"], Value::Null);
    let big = c
        .post(&endpoint)
        .body(vec![b' '; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let evil = c
        .get(server.url("/sse"))
        .header("origin", "http://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn legacy_keep_alive_comments() {
    let config = ServerConfig {
        keep_alive: Duration::from_millis(50),
        ..Default::default()
    };
    let (server, _) = start(config).await;
    let (mut sse, _) = open_legacy(&server).await;
    let ev = sse.next().await.unwrap();
    assert!(ev.comment, "{ev:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn legacy_disconnect_mid_call_leaves_no_session() {
    let (server, probe) = start(ServerConfig::default()).await;
    let (sse, endpoint) = open_legacy(&server).await;
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":5000}}});
    assert_eq!(
        http()
            .post(&endpoint)
            .json(&call)
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    for _ in 0..100 {
        if probe.started.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(sse);
    wait_for_sessions(&server, 0).await;
    // the running call was cancelled with its session
    for _ in 0..100 {
        if probe.dropped_early.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(probe.dropped_early.load(Ordering::SeqCst), 1);
    server.shutdown().await.unwrap();
}

// ---------------- streamable HTTP ----------------

async fn post_mcp(
    server: &RunningServer,
    session: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = http()
        .post(server.url("/mcp"))
        .header("accept", ACCEPT_BOTH)
        .json(body);
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    req.send().await.unwrap()
}

/// The single JSON-RPC answer of a POST, whether JSON or SSE framed.
async fn answer(resp: reqwest::Response) -> Value {
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    if ct.starts_with("application/json") {
        resp.json().await.unwrap()
    } else {
        assert_eq!(ct, "text/event-stream");
        SseReader::new(resp).message().await.unwrap()
    }
}

async fn init_streamable(server: &RunningServer, version: &str) -> String {
    let resp = post_mcp(server, None, &init_body(version)).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(sid.len(), 32);
    let body = answer(resp).await;
    assert_eq!(body["result"]["protocolVersion"], version);
    let n = post_mcp(
        server,
        Some(&sid),
        &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(n.status(), 202);
    sid
}

#[tokio::test]
async fn streamable_session_lifecycle_and_status_codes() {
    let (server, _) = start(ServerConfig::default()).await;
    let sid = init_streamable(&server, "2025-11-25").await;
    let list = post_mcp(
        &server,
        Some(&sid),
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    )
    .await;
    assert_eq!(list.status(), 200);
    let tools = answer(list).await;
    assert_eq!(tools["result"]["tools"][0]["name"], "roll_dice");
    assert_eq!(
        tools["result"]["tools"][0]["inputSchema"]["properties"]["n_dice"]["maximum"],
        100
    );

    let c = http();
    let call = json!({"jsonrpc":"2.0","id":3,"method":"tools/list"});
    // no session id
    let r = c
        .post(server.url("/mcp"))
        .header("accept", ACCEPT_BOTH)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // unknown session id
    let r = post_mcp(&server, Some("nope"), &call).await;
    assert_eq!(r.status(), 404);
    // bad Accept
    let r = c
        .post(server.url("/mcp"))
        .header("accept", "text/plain")
        .header("mcp-session-id", &sid)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    // bad Content-Type
    let r = c
        .post(server.url("/mcp"))
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "text/plain")
        .header("mcp-session-id", &sid)
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // unsupported protocol version header
    let r = c
        .post(server.url("/mcp"))
        .header("accept", ACCEPT_BOTH)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "1999-01-01")
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unsupported protocol version: 1999-01-01")
    );
    // absent version header is fine
    let r = c
        .post(server.url("/mcp"))
        .header("accept", ACCEPT_BOTH)
        .header("mcp-session-id", &sid)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // malformed JSON
    let r = c
        .post(server.url("/mcp"))
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .header("mcp-session-id", &sid)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32700);
    // foreign Origin
    let r = c
        .post(server.url("/mcp"))
        .header("accept", ACCEPT_BOTH)
        .header("origin", "http://evil.example.com")
        .json(&init_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(server.url("/mcp"))
        .header("accept", ACCEPT_BOTH)
        .header("origin", &format!("http://{}", server.local_addr()))
        .header("mcp-session-id", &sid)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // batch under 2025-11-25
    let batch = json!([{"jsonrpc":"2.0","id":5,"method":"ping"}]);
    let r = post_mcp(&server, Some(&sid), &batch).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32600);
    // DELETE ends it, then 404
    let r = c
        .delete(server.url("/mcp"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post_mcp(&server, Some(&sid), &call).await;
    assert_eq!(r.status(), 404);
    assert_eq!(server.server().session_count(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn batches_are_answered_under_2025_03_26() {
    let config = ServerConfig {
        json_response: true,
        ..Default::default()
    };
    let (server, _) = start(config).await;
    let resp = post_mcp(&server, None, &init_body("2025-03-26")).await;
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"ping"},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":2}}}
    ]);
    let r = http()
        .post(server.url("/mcp"))
        .header("accept", ACCEPT_BOTH)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-03-26")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let arr = body.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["id"], 1);
    assert_eq!(arr[1]["result"]["content"][0]["text"], "[1,2]");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn progress_arrives_before_the_result() {
    let (server, _) = start(ServerConfig::default()).await;
    let sid = init_streamable(&server, "2025-11-25").await;
    let call = json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":"p1"}}});
    let resp = post_mcp(&server, Some(&sid), &call).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut sse = SseReader::new(resp);
    let mut seen = Vec::new();
    while let Some(m) = sse.message().await {
        seen.push(m);
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    for (i, p) in seen[..3].iter().enumerate() {
        assert_eq!(p["method"], "notifications/progress");
        assert_eq!(p["params"]["progressToken"], "p1");
        assert_eq!(p["params"]["progress"], (i + 1) as f64);
    }
    assert_eq!(seen[3]["id"], 9);
    assert_eq!(seen[3]["result"]["content"][0]["text"], "done");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn json_mode_switches_to_sse_only_when_needed() {
    let config = ServerConfig {
        json_response: true,
        ..Default::default()
    };
    let (server, _) = start(config).await;
    let sid = init_streamable(&server, "2025-06-18").await;
    let plain = post_mcp(&server, Some(&sid), &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":1}}})).await;
    assert_eq!(plain.headers()["content-type"], "application/json");
    let progress = post_mcp(&server, Some(&sid), &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":7}}})).await;
    assert_eq!(progress.headers()["content-type"], "text/event-stream");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancellation_stops_the_handler_and_sends_no_response() {
    let (server, probe) = start(ServerConfig::default()).await;
    let sid = init_streamable(&server, "2025-11-25").await;
    let s2 = sid.clone();
    let url = server.url("/mcp");
    let call = tokio::spawn(async move {
        let resp = http().post(url).header("accept", ACCEPT_BOTH).header("mcp-session-id", &s2)
            .json(&json!({"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"sleep","arguments":{"ms":10000}}}))
            .send().await.unwrap();
        let mut sse = SseReader::new(resp);
        sse.message().await
    });
    for _ in 0..200 {
        if probe.started.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let n = post_mcp(&server, Some(&sid), &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow","reason":"test"}})).await;
    assert_eq!(n.status(), 202);
    let outcome = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome, None, "a cancelled request gets no response");
    assert_eq!(probe.dropped_early.load(Ordering::SeqCst), 1);
    assert_eq!(probe.finished.load(Ordering::SeqCst), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn calls_over_the_time_limit_get_an_error() {
    let config = ServerConfig {
        call_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let (server, probe) = start(config).await;
    let sid = init_streamable(&server, "2025-11-25").await;
    let resp = post_mcp(&server, Some(&sid), &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":5000}}})).await;
    let body = answer(resp).await;
    assert_eq!(body["error"]["code"], -32001);
    assert_eq!(body["error"]["message"], "Request timed out after 0.1 s");
    assert_eq!(probe.dropped_early.load(Ordering::SeqCst), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn get_stream_conflict_and_405() {
    let (server, _) = start(ServerConfig::default()).await;
    let sid = init_streamable(&server, "2025-11-25").await;
    let c = http();
    let first = c
        .get(server.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = c
        .get(server.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 409);
    let wrong_accept = c
        .get(server.url("/mcp"))
        .header("accept", "application/json")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_accept.status(), 406);
    drop(first);
    server.shutdown().await.unwrap();

    let (server, _) = start(ServerConfig {
        get_stream: false,
        ..Default::default()
    })
    .await;
    let sid = init_streamable(&server, "2025-11-25").await;
    let r = c
        .get(server.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn resumption_with_last_event_id_replays_the_rest() {
    let (server, _) = start(ServerConfig::default()).await;
    let sid = init_streamable(&server, "2025-11-25").await;
    let call = json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":1}}});
    let resp = post_mcp(&server, Some(&sid), &call).await;
    let mut sse = SseReader::new(resp);
    // priming event, then the first progress notification
    let priming = sse.next().await.unwrap();
    assert_eq!(priming.data, "");
    let first = loop {
        let ev = sse.next().await.unwrap();
        if ev.event.as_deref() == Some("message") {
            break ev;
        }
    };
    let last_id = first.id.clone().unwrap();
    drop(sse); // the connection drops mid-call: not a cancel
    let resumed = http()
        .get(server.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let mut sse = SseReader::new(resumed);
    let mut rest = Vec::new();
    while let Some(m) = sse.message().await {
        rest.push(m);
    }
    assert_eq!(rest.len(), 3, "{rest:?}");
    assert_eq!(rest[0]["params"]["progress"], 2.0);
    assert_eq!(rest[2]["id"], 4);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn session_limit_gives_503() {
    let (server, _) = start(ServerConfig {
        max_sessions: 2,
        ..Default::default()
    })
    .await;
    init_streamable(&server, "2025-11-25").await;
    let (_sse, _) = open_legacy(&server).await;
    let r = post_mcp(&server, None, &init_body("2025-11-25")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let r = http().get(server.url("/sse")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn stateless_mode_needs_no_session() {
    let (server, _) = start(ServerConfig {
        stateless: true,
        ..Default::default()
    })
    .await;
    let r = post_mcp(&server, None, &init_body("2025-11-25")).await;
    assert!(r.headers().get("mcp-session-id").is_none());
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":2}}});
    let r = http()
        .post(server.url("/mcp"))
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = answer(r).await;
    assert_eq!(body["result"]["structuredContent"], json!({"result":[1,2]}));
    let g = http()
        .get(server.url("/mcp"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(g.status(), 405);
    let d = http().delete(server.url("/mcp")).send().await.unwrap();
    assert_eq!(d.status(), 405);
    assert_eq!(server.server().session_count(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_waits_for_calls_in_flight() {
    let (server, probe) = start(ServerConfig::default()).await;
    // a streamable call and a legacy call, both running when shutdown starts
    let sid = init_streamable(&server, "2025-11-25").await;
    let url = server.url("/mcp");
    let streamable = tokio::spawn(async move {
        let resp = http().post(url).header("accept", ACCEPT_BOTH).header("mcp-session-id", &sid)
            .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":300}}}))
            .send().await.unwrap();
        answer(resp).await
    });
    let (mut sse, endpoint) = open_legacy(&server).await;
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":300}}});
    assert_eq!(
        http()
            .post(&endpoint)
            .json(&call)
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    for _ in 0..200 {
        if probe.started.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(probe.started.load(Ordering::SeqCst), 2);
    let shutdown = tokio::spawn(server.shutdown());
    let legacy_reply = sse.message().await.unwrap();
    assert_eq!(legacy_reply["result"]["content"][0]["text"], "slept 300");
    let streamable_reply = streamable.await.unwrap();
    assert_eq!(
        streamable_reply["result"]["content"][0]["text"],
        "slept 300"
    );
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(probe.finished.load(Ordering::SeqCst), 2);
    assert_eq!(probe.dropped_early.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn quick_results_go_out_as_one_complete_sse_body() {
    let (server, _) = start(ServerConfig::default()).await;
    let sid = init_streamable(&server, "2025-11-25").await;
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":2}}});
    let quick = post_mcp(&server, Some(&sid), &call).await;
    assert_eq!(quick.headers()["content-type"], "text/event-stream");
    // A complete body has a length; a stream is chunked.
    let length: usize = quick.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = quick.text().await.unwrap();
    assert_eq!(body.len(), length);
    assert!(body.starts_with("retry: 1000\n\nid: "), "{body}");
    assert!(body.ends_with("\n\n"));
    let data = body
        .lines()
        .find_map(|l| l.strip_prefix("data: {"))
        .unwrap();
    let reply: Value = serde_json::from_str(&format!("{{{data}")).unwrap();
    assert_eq!(reply["result"]["content"][0]["text"], "[1,2]");

    let progress = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":"p"}}});
    let streamed = post_mcp(&server, Some(&sid), &progress).await;
    assert!(streamed.headers().get("content-length").is_none());
    assert_eq!(streamed.headers()["transfer-encoding"], "chunked");
    server.shutdown().await.unwrap();
}
