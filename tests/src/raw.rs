//! Raw MCP-over-HTTP exchanges for tests that check the wire itself (status codes, headers,
//! exact JSON-RPC bodies) or aim at one replica at a time: streamable HTTP requests with an
//! explicit `Mcp-Session-Id`, legacy SSE streams, and SSE bodies and streams read with the
//! library's [`SseParser`]. Every exchange has a deadline; a failure fails the test with the
//! URL and the answer.
//!
//! Behind the `raw` feature (it brings reqwest, tokio and `mcp-sse`).

use std::time::Duration;

use futures::StreamExt;
use mcp_sse::client::{DEFAULT_MAX_MESSAGE_BYTES, SseEvent, SseParser};
use serde_json::{Value, json};

/// The protocol version the raw requests speak unless told otherwise (the newest with
/// sessions).
pub const VERSION: &str = "2025-11-25";
/// Budget of one raw request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP answer, kept whole for checks and failure messages.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` (empty when absent).
    pub content_type: String,
    /// The `Mcp-Session-Id` header, if any.
    pub session_id: Option<String>,
    /// The whole body.
    pub body: String,
}

impl Reply {
    /// Every JSON-RPC message of the body, in order: the body itself when it is JSON, else
    /// each SSE event whose data is one (a batch answer is one array).
    pub fn messages(&self) -> Vec<Value> {
        if !self.content_type.starts_with("text/event-stream") {
            return serde_json::from_str(&self.body).into_iter().collect();
        }
        let mut parser = SseParser::new(DEFAULT_MAX_MESSAGE_BYTES);
        if parser.feed(self.body.as_bytes()).is_err() {
            return Vec::new();
        }
        std::iter::from_fn(|| parser.next_event())
            .filter_map(|event| serde_json::from_str::<Value>(&event.data).ok())
            .filter(|message| message.is_array() || message.get("jsonrpc").is_some())
            .collect()
    }

    /// The last JSON-RPC message of the body (the answer after any notifications), or
    /// `Value::Null` when there is none.
    pub fn last_message(&self) -> Value {
        self.messages().pop().unwrap_or(Value::Null)
    }

    /// The JSON-RPC message of the body: the body itself when it is JSON, else the first SSE
    /// event whose data is one (skipping the priming event that carries only an id).
    pub fn message(&self) -> Option<Value> {
        if !self.content_type.starts_with("text/event-stream") {
            return serde_json::from_str(&self.body).ok();
        }
        let mut parser = SseParser::new(DEFAULT_MAX_MESSAGE_BYTES);
        parser.feed(self.body.as_bytes()).ok()?;
        std::iter::from_fn(|| parser.next_event())
            .filter_map(|event| serde_json::from_str::<Value>(&event.data).ok())
            .find(|message| message.get("jsonrpc").is_some())
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

/// A JSON-RPC `initialize` request at [`VERSION`].
pub fn initialize_request(id: u64) -> Value {
    initialize_at(id, VERSION)
}

/// A JSON-RPC `initialize` request with id `id` for protocol `version`.
pub fn initialize_at(id: impl Into<Value>, version: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id.into(), "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "scenario-tests", "version": "0"}
        }
    })
}

/// The `notifications/initialized` notification.
pub fn initialized() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

/// A JSON-RPC `tools/call` of `echo` with `token`, answered after `delay_ms` when given.
pub fn echo_request(id: u64, token: &str, delay_ms: Option<u32>) -> Value {
    let mut arguments = json!({"token": token});
    if let Some(delay) = delay_ms {
        arguments["delay_ms"] = json!(delay);
    }
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo", "arguments": arguments}
    })
}

/// Raw HTTP requests with a shared connection pool.
#[derive(Debug, Clone)]
pub struct RawClient {
    http: reqwest::Client,
    version: &'static str,
    headers: reqwest::header::HeaderMap,
}

impl Default for RawClient {
    fn default() -> Self {
        Self::new()
    }
}

impl RawClient {
    /// A client without proxies, speaking [`VERSION`].
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|e| panic!("building the test HTTP client: {e}"));
        Self::with_http(http)
    }

    /// A client on `http`'s connection pool (and its settings), speaking [`VERSION`].
    pub fn with_http(http: reqwest::Client) -> Self {
        Self {
            http,
            version: VERSION,
            headers: reqwest::header::HeaderMap::new(),
        }
    }

    /// Speaks protocol `version` (the `MCP-Protocol-Version` header and
    /// [`RawClient::open_session`]'s `initialize`).
    pub fn version(mut self, version: &'static str) -> Self {
        self.version = version;
        self
    }

    /// Sends `name: value` with every request (a test subject, say), replacing a default.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        let value = reqwest::header::HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("header {name}: {e}"));
        self.headers.insert(name, value);
        self
    }

    fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        session: Option<&str>,
        bearer: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", self.version);
        if let Some(id) = session {
            request = request.header("mcp-session-id", id);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.headers(self.headers.clone())
    }

    /// `POST url` with `message` as JSON, the session id and bearer token if given.
    pub async fn post(
        &self,
        url: &str,
        session: Option<&str>,
        bearer: Option<&str>,
        message: &Value,
    ) -> Reply {
        let request = self.request(reqwest::Method::POST, url, session, bearer);
        send(request.json(message), url).await
    }

    /// [`RawClient::post`] with `headers` on this request only (replacing the defaults).
    pub async fn post_with(
        &self,
        url: &str,
        session: Option<&str>,
        headers: &[(&str, &str)],
        message: &Value,
    ) -> Reply {
        let mut request = self.request(reqwest::Method::POST, url, session, None);
        let mut replaced = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|e| panic!("header {name}: {e}"));
            let value = reqwest::header::HeaderValue::from_str(value)
                .unwrap_or_else(|e| panic!("header {name}: {e}"));
            replaced.insert(name, value);
        }
        request = request.headers(replaced);
        send(request.json(message), url).await
    }

    /// `DELETE url` for a session.
    pub async fn delete(&self, url: &str, session: &str, bearer: Option<&str>) -> Reply {
        send(
            self.request(reqwest::Method::DELETE, url, Some(session), bearer),
            url,
        )
        .await
    }

    /// `echo(token)` in `session` at `url`: the reply, whatever its status.
    pub async fn echo(
        &self,
        url: &str,
        session: &str,
        bearer: Option<&str>,
        id: u64,
        token: &str,
    ) -> Reply {
        let message = echo_request(id, token, None);
        self.post(url, Some(session), bearer, &message).await
    }

    /// `initialize` then `notifications/initialized` at `url` (a `/mcp` URL): the session id.
    pub async fn open_session(&self, url: &str, bearer: Option<&str>) -> String {
        let init = initialize_at(1, self.version);
        let reply = self.post(url, None, bearer, &init).await;
        assert_eq!(
            reply.status,
            200,
            "initialize at {url}: {}",
            reply.describe()
        );
        let Some(session) = reply.session_id.clone() else {
            panic!(
                "initialize at {url} gave no Mcp-Session-Id: {}",
                reply.describe()
            );
        };
        let reply = self.post(url, Some(&session), bearer, &initialized()).await;
        assert_eq!(
            reply.status,
            202,
            "initialized at {url}: {}",
            reply.describe()
        );
        session
    }

    /// Opens a legacy SSE stream at `sse_url` and reads its `endpoint` event: the stream and
    /// the session id of the endpoint.
    pub async fn open_legacy(&self, sse_url: &str, bearer: Option<&str>) -> (SseStream, String) {
        let request = self.request(reqwest::Method::GET, sse_url, None, bearer);
        let response = request
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {sse_url}: {e}"));
        assert_eq!(response.status(), 200, "GET {sse_url}");
        let mut stream = SseStream::new(response);
        let endpoint = stream.next_event(REQUEST_TIMEOUT).await;
        assert_eq!(endpoint.event, "endpoint", "the first event of {sse_url}");
        let Some((_, id)) = endpoint.data.split_once("session_id=") else {
            panic!("no session_id in the endpoint {:?}", endpoint.data);
        };
        (stream, id.to_owned())
    }

    /// `POST url` with `message` in `session`, kept open as an SSE stream (for a call that is
    /// still running); the reply instead when the answer is not a 200 event stream.
    pub async fn post_stream(
        &self,
        url: &str,
        session: &str,
        message: &Value,
    ) -> Result<SseStream, Reply> {
        let request = self.request(reqwest::Method::POST, url, Some(session), None);
        let response = request.json(message).send().await;
        stream_or_reply(response.unwrap_or_else(|e| panic!("POST {url}: {e}"))).await
    }

    /// `GET url` (a `/mcp` URL) for `session`, resuming after `last_event_id` when given: the
    /// stream when it is a 200 event stream, else the reply.
    pub async fn get_stream(
        &self,
        url: &str,
        session: &str,
        last_event_id: Option<&str>,
    ) -> Result<SseStream, Reply> {
        let request = self.request(reqwest::Method::GET, url, Some(session), None);
        let mut request = request.header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await;
        stream_or_reply(response.unwrap_or_else(|e| panic!("GET {url}: {e}"))).await
    }
}

fn content_type(response: &reqwest::Response) -> String {
    let value = response.headers().get("content-type");
    value
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The response as an SSE stream when it is a 200 event stream, else read whole.
async fn stream_or_reply(response: reqwest::Response) -> Result<SseStream, Reply> {
    let content_type = content_type(&response);
    if response.status() == 200 && content_type.starts_with("text/event-stream") {
        return Ok(SseStream::new(response));
    }
    let status = response.status().as_u16();
    let body = tokio::time::timeout(REQUEST_TIMEOUT, response.text()).await;
    let body = body.ok().and_then(Result::ok).unwrap_or_default();
    Err(Reply {
        status,
        content_type,
        session_id: None,
        body,
    })
}

async fn send(request: reqwest::RequestBuilder, url: &str) -> Reply {
    let exchange = async {
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let content_type = content_type(&response);
        let session_id = response.headers().get("mcp-session-id");
        let session_id = session_id.and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{url}: reading the body: {e}"));
        Reply {
            status,
            content_type,
            session_id,
            body,
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{url}: no answer within {REQUEST_TIMEOUT:?}"))
}

/// An SSE stream being read (a legacy session stream, or a streamable response stream).
pub struct SseStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: SseParser,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream").finish_non_exhaustive()
    }
}

impl SseStream {
    fn new(response: reqwest::Response) -> Self {
        let parser = SseParser::new(DEFAULT_MAX_MESSAGE_BYTES);
        Self {
            body: Box::pin(response.bytes_stream()),
            parser,
        }
    }

    /// The next event; fails the test on timeout or at the end of the stream.
    pub async fn next_event(&mut self, within: Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(event) = self.parser.next_event() {
                return event;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await;
            match chunk.unwrap_or_else(|_| panic!("no SSE event within {within:?}")) {
                Some(Ok(bytes)) => self
                    .parser
                    .feed(&bytes)
                    .unwrap_or_else(|e| panic!("the SSE stream: {e}")),
                Some(Err(error)) => panic!("the SSE stream broke: {error}"),
                None => panic!("the SSE stream ended"),
            }
        }
    }

    /// The next event's data as JSON (a legacy stream's answers).
    pub async fn next_json(&mut self, within: Duration) -> Value {
        let event = self.next_event(within).await;
        serde_json::from_str(&event.data).unwrap_or_else(|_| panic!("not JSON: {event:?}"))
    }
}
