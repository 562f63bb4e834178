//! The server's limits against hostile clients, over real sockets: slow headers, slow bodies,
//! too many connections, calls still running at shutdown, and the session and in-flight caps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mcp_proto::{McpServer, ToolError};
use mcp_sse::{McpHttpServer, RunningServer, ServerConfig};
use mcp_stack_tests::raw::{RawClient, SseStream, initialize_at};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Deserialize, JsonSchema)]
struct Nap {
    ms: u64,
}

fn service() -> McpServer {
    McpServer::builder("Limits")
        .tool("nap", "Sleeps `ms` milliseconds.", |a: Nap| async move {
            tokio::time::sleep(Duration::from_millis(a.ms)).await;
            Ok::<_, ToolError>(format!("napped {}", a.ms))
        })
        .build()
        .unwrap()
}

async fn start(config: ServerConfig) -> RunningServer {
    McpHttpServer::with_config(service(), config)
        .spawn("127.0.0.1:0")
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `limit` passes); returns what was read.
async fn read_until_closed(tcp: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&out).into_owned())
}

fn initialize(id: u64) -> String {
    initialize_at(id, "2025-06-18").to_string()
}

fn raw_post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn half_sent_headers_are_cut_off_at_the_header_deadline() {
    let server = start(ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let answer = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(answer.is_some(), "the connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(250));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let server = start(ServerConfig {
        body_read_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let request = raw_post("/mcp", &initialize(1));
    // Headers and one byte of the body, then nothing.
    let cut = request.find("\r\n\r\n").unwrap() + 5;
    tcp.write_all(&request.as_bytes()[..cut]).await.unwrap();
    let answer = read_until_closed(&mut tcp, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let body: Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(
        body,
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,
            "message":"Request Timeout: the body did not arrive within 0.3 s"}})
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let server = start(ServerConfig {
        max_connections: 2,
        ..Default::default()
    })
    .await;
    let addr = server.local_addr();
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(b"GET /mcp HTTP/1.1\r\n").await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(b"GET /mcp HTTP/1.1\r\n").await.unwrap();
    // Two connections hold both slots: the third is not served...
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(raw_post("/mcp", &initialize(1)).as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the connection cap");
    // ...until one of them closes.
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
    drop(second);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn calls_running_past_the_shutdown_grace_are_answered_with_an_error() {
    let server = start(ServerConfig {
        shutdown_grace: Duration::from_millis(200),
        json_response: true,
        ..Default::default()
    })
    .await;
    let url = server.url("/mcp");
    let http = reqwest::Client::new();
    let init = http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(initialize(0))
        .send()
        .await
        .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let call = tokio::spawn({
        let http = http.clone();
        async move {
            http.post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-06-18")
                .body(
                    json!({"jsonrpc":"2.0","id":7,"method":"tools/call",
                        "params":{"name":"nap","arguments":{"ms":60_000}}})
                    .to_string(),
                )
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), server.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown has no deadline");
    let answer = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap()
        .unwrap();
    let data = answer
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(&answer);
    let reply: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        reply,
        json!({"jsonrpc":"2.0","id":7,"error":{"code":-32603,
            "message":"Server shutting down: the call was cancelled"}})
    );
}

/// A client of one server: posts JSON-RPC to `/mcp` as `subject` (set by a test layer, as
/// `mcp-auth` would from a token), at 2025-03-26 (batches allowed).
#[derive(Clone)]
struct Client {
    raw: RawClient,
    url: String,
}

impl Client {
    fn new(url: &str, subject: &'static str) -> Self {
        let raw = RawClient::new()
            .version("2025-03-26")
            .header("x-test-subject", subject);
        Self {
            raw,
            url: url.to_owned(),
        }
    }

    /// POSTs `body` (JSON text): the status, the session header and the answer.
    async fn post(&self, session: Option<&str>, body: &str) -> (u16, Option<String>, Value) {
        let body: Value = serde_json::from_str(body).unwrap();
        let reply = self.raw.post(&self.url, session, None, &body).await;
        let answer = reply.last_message();
        (reply.status, reply.session_id, answer)
    }

    /// Opens a session; its id, or the refusal.
    async fn open(&self) -> Result<String, (u16, Value)> {
        let init = initialize_at(0, "2025-03-26");
        match self.post(None, &init.to_string()).await {
            (200, Some(session), _) => Ok(session),
            (status, _, body) => Err((status, body)),
        }
    }

    /// Opens the standalone GET stream of `session`, resuming after `last_event_id` if given.
    async fn get_stream(&self, session: &str, last_event_id: Option<&str>) -> SseStream {
        match self.raw.get_stream(&self.url, session, last_event_id).await {
            Ok(stream) => stream,
            Err(reply) => panic!("GET {}: {}", self.url, reply.describe()),
        }
    }
}

/// Serves `config` with a layer that authenticates each request as its `x-test-subject`.
async fn start_with_subjects(config: ServerConfig) -> (String, tokio::task::JoinHandle<()>) {
    let router = McpHttpServer::with_config(service(), config)
        .router()
        .layer(axum::middleware::map_request(
            |mut request: axum::extract::Request| async move {
                let subject = request
                    .headers()
                    .get("x-test-subject")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if let Some(subject) = subject {
                    request
                        .extensions_mut()
                        .insert(mcp_proto::AuthSubject::new(subject));
                }
                request
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, task)
}

fn call(id: u64, ms: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
        "params":{"name":"nap","arguments":{"ms":ms}}})
}

#[tokio::test]
async fn one_client_at_its_session_cap_does_not_stop_another() {
    let (url, server) = start_with_subjects(ServerConfig {
        max_sessions: 3,
        max_sessions_per_client: 2,
        ..Default::default()
    })
    .await;
    let alice = Client::new(&url, "alice");
    let bob = Client::new(&url, "bob");
    let first = alice.open().await.unwrap();
    alice.open().await.unwrap();
    assert_eq!(
        alice.open().await.unwrap_err(),
        (
            429,
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,
                "message":"Too Many Requests: this client already holds 2 sessions"}})
        )
    );
    bob.open().await.unwrap();
    // Three sessions in all: the server-wide cap.
    assert_eq!(
        bob.open().await.unwrap_err(),
        (
            503,
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,
                "message":"Service Unavailable: the session limit is reached"}})
        )
    );
    // A session ended gives its slot back.
    let deleted = alice.raw.delete(&url, &first, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.describe());
    alice.open().await.unwrap();
    server.abort();
}

#[tokio::test]
async fn in_flight_calls_are_capped_per_session_and_a_batch_takes_a_slot_per_element() {
    let (url, server) = start_with_subjects(ServerConfig {
        max_in_flight_per_session: 2,
        max_batch_len: 4,
        ..Default::default()
    })
    .await;
    let alice = Client::new(&url, "alice");
    let session = alice.open().await.unwrap();
    let too_many = json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,
        "message":"Too Many Requests: too many calls running in this session"}});
    let three = json!([call(1, 10), call(2, 10), call(3, 10)]).to_string();
    let (status, _, body) = alice.post(Some(&session), &three).await;
    assert_eq!((status, body), (429, too_many.clone()));
    // Two slow calls in one batch take both slots: a third call meanwhile is refused.
    let two = json!([call(4, 600), call(5, 600)]).to_string();
    let batch = tokio::spawn({
        let (alice, session) = (alice.clone(), session.clone());
        async move { alice.post(Some(&session), &two).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, body) = alice.post(Some(&session), &call(6, 1).to_string()).await;
    assert_eq!((status, body), (429, too_many));
    let (status, _, answers) = batch.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(answers.as_array().map(Vec::len), Some(2), "{answers}");
    // Given back once the batch is answered.
    let (status, _, answer) = alice.post(Some(&session), &call(7, 1).to_string()).await;
    assert_eq!((status, &answer["id"]), (200, &json!(7)));
    // Longer batches are refused whole.
    let five = json!((10..15).map(|i| call(i, 1)).collect::<Vec<_>>()).to_string();
    let (status, _, body) = alice.post(Some(&session), &five).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,
                "message":"Invalid request: a batch may hold at most 4 messages"}})
        )
    );
    server.abort();
}

#[tokio::test]
async fn an_oversized_initialize_is_refused_and_keeps_nothing() {
    let server = start(ServerConfig {
        max_initialize_bytes: 1024,
        ..Default::default()
    })
    .await;
    let client = Client::new(&server.url("/mcp"), "-");
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{"experimental":{"junk":"x".repeat(2000)}},
        "clientInfo":{"name":"t","version":"1"}}});
    let (status, session, body) = client.post(None, &init.to_string()).await;
    assert_eq!(
        (status, session, body),
        (
            400,
            None,
            json!({"jsonrpc":"2.0","id":1,"error":{"code":-32602,
                "message":"Invalid params: initialize may be at most 1024 bytes"}})
        )
    );
    assert_eq!(server.server().session_count(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_largest_last_event_id_is_not_a_crash() {
    let server = start(ServerConfig::default()).await;
    let url = server.url("/mcp");
    let client = Client::new(&url, "-");
    let session = client.open().await.unwrap();
    // A 200 event stream, or the test fails with the answer.
    client
        .get_stream(&session, Some("2-18446744073709551615"))
        .await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_listen_only_session_lives_as_long_as_its_stream() {
    let server = start(ServerConfig {
        session_idle_timeout: Duration::from_millis(300),
        keep_alive: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let url = server.url("/mcp");
    let client = Client::new(&url, "-");
    let session = client.open().await.unwrap();
    let stream = client.get_stream(&session, None).await;
    // Several idle timeouts with nothing but the open stream...
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, _, answer) = client.post(Some(&session), &call(3, 1).to_string()).await;
    assert_eq!((status, &answer["id"]), (200, &json!(3)));
    drop(stream);
    server.shutdown().await.unwrap();
}
