//! The server's limits against hostile clients, over real sockets: slow headers, slow bodies,
//! too many connections, calls still running at shutdown, and the session and in-flight caps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mcp_proto::{McpServer, ToolError};
use mcp_sse::{McpHttpServer, RunningServer, ServerConfig};
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
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
    .to_string()
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
