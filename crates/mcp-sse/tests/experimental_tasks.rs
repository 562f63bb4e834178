//! The experimental tasks of 2025-11-25 on sessions opened with `initialize`, over real
//! sockets on both transports: a task-augmented `tools/call`, `tasks/get`, `tasks/result`,
//! `tasks/list`, `tasks/cancel`, and the status notifications on the session's stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use mcp_proto::{McpServer, NoArgs, TaskSupport, ToolDef, ToolError};
use mcp_sse::client::SseParser;
use mcp_sse::{McpHttpServer, RunningServer};
use serde_json::{Value, json};

fn service() -> McpServer {
    let optional = |name: &str| ToolDef::new(name, "t").task_support(TaskSupport::Optional);
    McpServer::builder("Experimental tasks")
        .tool_with(optional("nap"), |_: NoArgs| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok::<_, ToolError>("napped")
        })
        .tool_with(optional("forever"), |_: NoArgs| async {
            std::future::pending::<()>().await;
            Ok::<_, ToolError>("never")
        })
        .build()
        .unwrap()
}

async fn start() -> RunningServer {
    McpHttpServer::new(service())
        .spawn("127.0.0.1:0")
        .await
        .unwrap()
}

/// Reads JSON messages off an SSE body.
struct Events {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
}

impl Events {
    fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            parser: SseParser::new(1 << 20),
        }
    }

    /// The next message that satisfies `pred` (others are skipped), within 5 s.
    async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let wait = async {
            loop {
                while let Some(event) = self.parser.next_event() {
                    if let Ok(v) = serde_json::from_str::<Value>(&event.data)
                        && pred(&v)
                    {
                        return v;
                    }
                }
                let chunk = self.body.next().await.unwrap().unwrap();
                self.parser.feed(&chunk).unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("no such message")
    }
}

/// A streamable 2025-11-25 session.
struct Session {
    url: String,
    id: String,
    http: reqwest::Client,
}

impl Session {
    async fn open(server: &RunningServer) -> Self {
        let http = reqwest::Client::new();
        let url = server.url("/mcp");
        let response = http
            .post(&url)
            .header("Accept", "application/json, text/event-stream")
            .json(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}}),
            )
            .send()
            .await
            .unwrap();
        let id = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let init = Events::new(response).until(|m| m["id"] == 0).await;
        assert_eq!(
            init["result"]["capabilities"]["tasks"],
            json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}})
        );
        let s = Self { url, id, http };
        let initialized = s
            .post_raw(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(initialized.status(), 202);
        s
    }

    async fn post_raw(&self, body: Value) -> reqwest::Response {
        self.http
            .post(&self.url)
            .header("Accept", "application/json, text/event-stream")
            .header("Mcp-Session-Id", &self.id)
            .header("MCP-Protocol-Version", "2025-11-25")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn request(&self, id: u64, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        Events::new(self.post_raw(body).await)
            .until(|m| m["id"] == id)
            .await
    }

    async fn stream(&self) -> Events {
        let response = self
            .http
            .get(&self.url)
            .header("Accept", "text/event-stream")
            .header("Mcp-Session-Id", &self.id)
            .header("MCP-Protocol-Version", "2025-11-25")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        Events::new(response)
    }
}

#[tokio::test]
async fn a_streamable_session_runs_a_task_and_its_get_stream_hears_its_status() {
    let server = start().await;
    let session = Session::open(&server).await;
    let mut stream = session.stream().await;
    let created = session
        .request(
            1,
            "tools/call",
            json!({"name": "nap", "arguments": {}, "task": {"ttl": 30_000}}),
        )
        .await;
    let task = created["result"]["task"].clone();
    assert_eq!(
        (task["status"].clone(), task["ttl"].clone()),
        (json!("working"), json!(30_000))
    );
    let id = task["taskId"].as_str().unwrap().to_owned();
    let note = stream
        .until(|m| m["method"] == "notifications/tasks/status")
        .await;
    assert_eq!(note["params"]["taskId"], id.as_str());
    assert_eq!(note["params"]["status"], "completed");
    let result = session
        .request(2, "tasks/result", json!({"taskId": id}))
        .await;
    assert_eq!(result["result"]["content"][0]["text"], "napped");
    assert_eq!(
        result["result"]["_meta"]["io.modelcontextprotocol/related-task"],
        json!({"taskId": id})
    );
    let listed = session.request(3, "tasks/list", json!({})).await;
    assert_eq!(listed["result"]["tasks"][0]["taskId"], id.as_str());
    assert_eq!(listed["result"]["tasks"][0]["status"], "completed");
    // Cancel: the cancelled task, then -32602 once it ended.
    let running = session
        .request(4, "tools/call", json!({"name": "forever", "task": {}}))
        .await;
    let running = running["result"]["task"]["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled = session
        .request(5, "tasks/cancel", json!({"taskId": running}))
        .await;
    assert_eq!(cancelled["result"]["status"], "cancelled");
    let again = session
        .request(6, "tasks/cancel", json!({"taskId": running}))
        .await;
    assert_eq!(
        again["error"],
        json!({"code": -32602, "message":
            format!("Invalid params: Cannot cancel task {running}: it is already cancelled")})
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_legacy_sse_session_gets_the_task_and_its_status_on_its_stream() {
    let server = start().await;
    let http = reqwest::Client::new();
    let response = http
        .get(server.url("/sse"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut body = Box::pin(response.bytes_stream());
    let mut parser = SseParser::new(1 << 20);
    let endpoint = loop {
        if let Some(e) = parser.next_event() {
            assert_eq!(e.event, "endpoint");
            break e.data;
        }
        parser.feed(&body.next().await.unwrap().unwrap()).unwrap();
    };
    let mut events = Events { body, parser };
    let post = |message: Value| {
        let (http, url) = (http.clone(), server.url(&endpoint));
        async move { http.post(url).json(&message).send().await.unwrap().status() }
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    assert_eq!(post(init).await, 202);
    let init = events.until(|m| m["id"] == 0).await;
    assert!(init["result"]["capabilities"]["tasks"].is_object());
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "nap", "task": {}}});
    assert_eq!(post(call).await, 202);
    let created = events.until(|m| m["id"] == 1).await;
    let id = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let note = events
        .until(|m| m["method"] == "notifications/tasks/status")
        .await;
    assert_eq!(
        (
            note["params"]["taskId"].clone(),
            note["params"]["status"].clone()
        ),
        (json!(id), json!("completed"))
    );
    let get = json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"taskId": id}});
    assert_eq!(post(get).await, 202);
    let got = events.until(|m| m["id"] == 2).await;
    assert_eq!(got["result"]["status"], "completed");
    server.shutdown().await.unwrap();
}
