//! Raw HTTP exchanges for the scenarios that aim at one replica at a time: streamable HTTP
//! requests with an explicit `Mcp-Session-Id`, and a legacy SSE stream read by hand.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};

/// The protocol version the raw requests speak (the newest with sessions).
pub const VERSION: &str = "2025-11-25";
/// Budget of one raw request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP answer, kept whole for checks and failure messages.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, empty when absent.
    pub content_type: String,
    /// The `Mcp-Session-Id` header, if any.
    pub session_id: Option<String>,
    /// The body (read to its end).
    pub body: String,
}

impl Reply {
    /// The JSON-RPC message of the body: the body itself when it is JSON, else the first
    /// SSE event whose data is one (skipping the empty priming event that carries only an id).
    pub fn message(&self) -> Option<Value> {
        if self.content_type.starts_with("text/event-stream") {
            return sse_data(&self.body)
                .iter()
                .filter_map(|data| serde_json::from_str::<Value>(data).ok())
                .find(|message| message.get("jsonrpc").is_some());
        }
        serde_json::from_str(&self.body).ok()
    }

    /// The `result.structuredContent.result` of an `echo` answer.
    pub fn echoed(&self) -> Option<String> {
        let message = self.message()?;
        message["result"]["structuredContent"]["result"]
            .as_str()
            .map(str::to_owned)
    }

    /// `status body` for messages (the body cut to 300 characters).
    pub fn describe(&self) -> String {
        let body: String = self.body.chars().take(300).collect();
        format!("{} {}", self.status, body.trim())
    }
}

/// The `data:` payloads of the events in an SSE text, in order.
pub fn sse_data(text: &str) -> Vec<String> {
    sse_events(text).into_iter().map(|e| e.data).collect()
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `id:`, if any.
    pub id: Option<String>,
    /// Its `event:` (default `message`).
    pub name: String,
    /// Its `data:` lines joined with newlines.
    pub data: String,
}

/// The events (those with data, even empty) of an SSE text, in order.
pub fn sse_events(text: &str) -> Vec<SseEvent> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n").filter_map(parse_block).collect()
}

/// One event block; `None` for comments and blocks without `data:`.
fn parse_block(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent {
        id: None,
        name: "message".to_owned(),
        data: String::new(),
    };
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        } else if let Some(value) = line.strip_prefix("event:") {
            event.name = value.trim().to_owned();
        } else if let Some(value) = line.strip_prefix("id:") {
            event.id = Some(value.trim().to_owned());
        }
    }
    if data.is_empty() {
        return None;
    }
    event.data = data.join("\n");
    Some(event)
}

/// A JSON-RPC `initialize` request.
pub fn initialize_request(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "xtask-replicas", "version": "0"}
        }
    })
}

/// A JSON-RPC `tools/call` of `echo` with `token`, answered after `delay_ms`.
pub fn slow_echo_request(id: u64, token: &str, delay_ms: u32) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"token": token, "delay_ms": delay_ms}}
    })
}

/// A JSON-RPC `tools/call` of `echo` with `token`.
pub fn echo_request(id: u64, token: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"token": token}}
    })
}

/// Raw HTTP requests with a shared connection pool.
#[derive(Debug, Clone)]
pub struct RawClient {
    http: reqwest::Client,
}

impl RawClient {
    /// A client without proxies.
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http })
    }

    /// `POST url` with `message` as JSON, the session id and bearer token if given.
    pub async fn post(
        &self,
        url: &str,
        session: Option<&str>,
        bearer: Option<&str>,
        message: &Value,
    ) -> anyhow::Result<Reply> {
        let mut request = self
            .http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", VERSION)
            .body(message.to_string());
        if let Some(id) = session {
            request = request.header("mcp-session-id", id);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        send(request, "POST", url).await
    }

    /// `DELETE url` for a session.
    pub async fn delete(
        &self,
        url: &str,
        session: &str,
        bearer: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let mut request = self
            .http
            .delete(url)
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", VERSION);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        send(request, "DELETE", url).await
    }

    /// `initialize` then `notifications/initialized` at `url` (a `/mcp` URL); the session id.
    pub async fn open_session(&self, url: &str, bearer: Option<&str>) -> anyhow::Result<String> {
        let reply = self.post(url, None, bearer, &initialize_request(1)).await?;
        if reply.status != 200 {
            bail!("initialize at {url}: {}", reply.describe());
        }
        let Some(session) = reply.session_id.clone() else {
            bail!(
                "initialize at {url} gave no Mcp-Session-Id: {}",
                reply.describe()
            );
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let reply = self.post(url, Some(&session), bearer, &initialized).await?;
        if reply.status != 202 {
            bail!("notifications/initialized at {url}: {}", reply.describe());
        }
        Ok(session)
    }

    /// `echo(token)` in `session` at `url`: the reply, whatever its status.
    pub async fn echo(
        &self,
        url: &str,
        session: &str,
        bearer: Option<&str>,
        id: u64,
        token: &str,
    ) -> anyhow::Result<Reply> {
        self.post(url, Some(session), bearer, &echo_request(id, token))
            .await
    }

    /// Opens a legacy SSE stream at `sse_url` (`GET`), reads its `endpoint` event and returns
    /// the stream with the endpoint's session id.
    pub async fn open_legacy(
        &self,
        sse_url: &str,
        bearer: Option<&str>,
    ) -> anyhow::Result<SseStream> {
        let mut request = self.http.get(sse_url).header("accept", "text/event-stream");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("GET {sse_url}"))?;
        if response.status() != 200 {
            bail!("GET {sse_url}: {}", response.status());
        }
        let mut stream = SseStream {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            session_id: String::new(),
        };
        let (event, data) = stream.next_event(REQUEST_TIMEOUT).await?;
        if event != "endpoint" {
            bail!("the first event of {sse_url} is {event:?}, not endpoint");
        }
        let Some((_, id)) = data.split_once("session_id=") else {
            bail!("endpoint {data:?} has no session_id");
        };
        stream.session_id = id.to_owned();
        Ok(stream)
    }
}

impl RawClient {
    /// `POST url` with `message` in `session`, kept open as an SSE stream (for a call that is
    /// still running); the reply instead when the answer is not a 200 event stream.
    pub async fn post_stream(
        &self,
        url: &str,
        session: &str,
        message: &Value,
    ) -> anyhow::Result<Result<SseStream, Reply>> {
        let response = self
            .http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", VERSION)
            .header("mcp-session-id", session)
            .body(message.to_string())
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        stream_or_reply(response, session).await
    }

    /// `GET url` (a `/mcp` URL) for `session` with `Last-Event-ID: last_event_id`: the
    /// status, and the stream when it is 200.
    pub async fn resume(
        &self,
        url: &str,
        session: &str,
        last_event_id: &str,
    ) -> anyhow::Result<Result<SseStream, Reply>> {
        let response = self
            .http
            .get(url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", VERSION)
            .header("last-event-id", last_event_id)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        stream_or_reply(response, session).await
    }
}

/// The response as an SSE stream when it is a 200 event stream, else read whole.
async fn stream_or_reply(
    response: reqwest::Response,
    session: &str,
) -> anyhow::Result<Result<SseStream, Reply>> {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if response.status() != 200 || !content_type.starts_with("text/event-stream") {
        let status = response.status().as_u16();
        let body = tokio::time::timeout(REQUEST_TIMEOUT, response.text())
            .await
            .unwrap_or(Ok(String::new()))
            .unwrap_or_default();
        return Ok(Err(Reply {
            status,
            content_type,
            session_id: None,
            body,
        }));
    }
    Ok(Ok(SseStream {
        body: Box::pin(response.bytes_stream()),
        buffer: String::new(),
        session_id: session.to_owned(),
    }))
}

impl Default for RawClient {
    fn default() -> Self {
        Self {
            http: reqwest::Client::new(),
        }
    }
}

async fn send(request: reqwest::RequestBuilder, method: &str, url: &str) -> anyhow::Result<Reply> {
    let exchange = async {
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let session_id = header("mcp-session-id");
        let body = response
            .text()
            .await
            .with_context(|| format!("reading the body of {method} {url}"))?;
        Ok(Reply {
            status,
            content_type,
            session_id,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{method} {url}: no answer within {REQUEST_TIMEOUT:?}"))?
}

/// An SSE stream being read (a legacy session stream, or a resumed streamable one).
pub struct SseStream {
    body:
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send>>,
    buffer: String,
    /// The session id of the `endpoint` event.
    pub session_id: String,
}

impl SseStream {
    /// The next event (name, data), skipping comments; fails on timeout or end of stream.
    pub async fn next_event(&mut self, within: Duration) -> anyhow::Result<(String, String)> {
        let event = self.next_sse_event(within).await?;
        Ok((event.name, event.data))
    }

    /// The next event with its id, skipping comments; fails on timeout or end of stream.
    pub async fn next_sse_event(&mut self, within: Duration) -> anyhow::Result<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                match parse_block(&block) {
                    Some(event) => return Ok(event),
                    None => continue, // a comment or keep-alive
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .with_context(|| format!("no SSE event within {within:?}"))?;
            match chunk {
                Some(Ok(bytes)) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n")),
                Some(Err(error)) => bail!("the SSE stream broke: {error}"),
                None => bail!("the SSE stream ended"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_keep_ids_and_names() {
        let text = "id: 7-0\r\ndata: \r\n\r\nid: 7-1\nevent: message\ndata: {}\n\n: ping\n\n";
        assert_eq!(
            sse_events(text),
            [
                SseEvent {
                    id: Some("7-0".into()),
                    name: "message".into(),
                    data: String::new()
                },
                SseEvent {
                    id: Some("7-1".into()),
                    name: "message".into(),
                    data: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn sse_data_joins_lines_per_event() {
        let text = ": keep-alive\n\nevent: message\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\n";
        assert_eq!(sse_data(text), ["{\"a\":1}", "x\ny"]);
        assert!(sse_data(": only a comment\n\n").is_empty());
    }

    #[test]
    fn replies_give_their_message_and_echo() {
        let json = Reply {
            status: 200,
            content_type: "application/json".into(),
            session_id: None,
            body: r#"{"jsonrpc":"2.0","id":3,"result":{"content":[],"structuredContent":{"result":"t-1"}}}"#.into(),
        };
        assert_eq!(json.echoed().as_deref(), Some("t-1"));
        let sse = Reply {
            content_type: "text/event-stream".into(),
            body: format!(
                "id: 1-0\ndata: \n\nid: 1-1\nevent: message\ndata: {}\n\n",
                json.body
            ),
            ..json.clone()
        };
        assert_eq!(sse.echoed().as_deref(), Some("t-1"));
        assert_eq!(sse.message().unwrap()["id"], 3);
        let error = Reply {
            status: 404,
            body: "{\"error\":1}".into(),
            ..json
        };
        assert_eq!(error.echoed(), None);
        assert_eq!(error.describe(), "404 {\"error\":1}");
    }
}
