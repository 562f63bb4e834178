//! The load generator's clients: one HTTP/1.1 keep-alive connection per session (hyper's
//! low-level client, so that the generator spends as little CPU per call as it can), two for a
//! legacy SSE session (its stream and one for its POSTs).

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use mcp_sse::client::{DEFAULT_MAX_MESSAGE_BYTES, SseEvent, SseParser};

/// The protocol version the streamable sessions negotiate.
pub const STREAMABLE_VERSION: &str = "2025-06-18";
/// The protocol version of legacy SSE sessions.
pub const LEGACY_VERSION: &str = "2024-11-05";
/// Largest response body the generator reads.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// The `tools/call roll_dice {"n_dice":3}` request with id `id`.
pub fn call_body(id: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"roll_dice","arguments":{{"n_dice":3}}}}}}"#
    ))
}

/// The `initialize` request (id 0) for `version`.
fn initialize_body(version: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{version}","capabilities":{{}},"clientInfo":{{"name":"xtask-bench","version":"1"}}}}}}"#
    ))
}

const INITIALIZED_BODY: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The parts of a JSON-RPC reply the generator checks.
#[derive(Debug, Deserialize)]
struct Reply {
    id: Option<u64>,
    result: Option<ReplyResult>,
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ReplyResult {
    #[serde(rename = "isError", default)]
    is_error: bool,
}

/// Fails unless `data` is a successful JSON-RPC reply to request `id`.
pub fn check_reply(data: &[u8], id: u64) -> anyhow::Result<()> {
    let reply: Reply = serde_json::from_slice(data).with_context(|| {
        format!(
            "reply is not JSON-RPC: {}",
            String::from_utf8_lossy(&data[..data.len().min(300)])
        )
    })?;
    if let Some(error) = reply.error {
        bail!("request {id} failed: {error}");
    }
    match reply.result {
        Some(result) if reply.id == Some(id) && !result.is_error => Ok(()),
        Some(_) if reply.id != Some(id) => bail!("reply to {:?} while waiting for {id}", reply.id),
        Some(_) => bail!(
            "tool error for request {id}: {}",
            String::from_utf8_lossy(data)
        ),
        None => bail!("reply to {id} has neither result nor error"),
    }
}

/// One HTTP/1.1 connection; its driver task ends when the value is dropped.
#[derive(Debug)]
pub struct HttpConnection {
    send: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
    host: HeaderValue,
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl HttpConnection {
    /// Connects to `addr` with `TCP_NODELAY`.
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .context("HTTP handshake")?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            send,
            driver,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// Sends one request and returns the response head with its streaming body.
    pub async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &HeaderValue)],
        body: Bytes,
    ) -> anyhow::Result<http::Response<Incoming>> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.clone());
        for (name, value) in headers {
            request = request.header(*name, (*value).clone());
        }
        let request = request.body(Full::new(body))?;
        self.send.ready().await.context("connection closed")?;
        self.send
            .send_request(request)
            .await
            .with_context(|| format!("{path}: request failed"))
    }

    /// Sends one request and reads the whole response.
    pub async fn exchange(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &HeaderValue)],
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
        let response = self.send(method, path, headers, body).await?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the response of {path}: {e}"))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

/// The JSON-RPC message in a response body: the body itself, or the first `message` event of
/// an SSE body.
fn reply_payload(headers: &HeaderMap, body: Bytes) -> anyhow::Result<Bytes> {
    let is_sse = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Ok(body);
    }
    let mut parser = SseParser::new(DEFAULT_MAX_MESSAGE_BYTES);
    parser.feed(&body)?;
    while let Some(event) = parser.next_event() {
        // Skipping the priming event (an id and empty data) of a resumable stream.
        if event.event == "message" && !event.data.is_empty() {
            return Ok(Bytes::from(event.data));
        }
    }
    bail!(
        "SSE response without a message event: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    )
}

fn expect_status(
    status: StatusCode,
    want: StatusCode,
    what: &str,
    body: &[u8],
) -> anyhow::Result<()> {
    if status != want {
        bail!(
            "{what}: HTTP {status} (expected {want}): {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok(())
}

/// A session of the echo ceiling: plain POSTs on one connection.
#[derive(Debug)]
pub struct EchoSession {
    connection: HttpConnection,
    content_type: HeaderValue,
    path: &'static str,
}

impl EchoSession {
    /// Connects; calls will POST to `path` (one of the echo server's paths).
    pub async fn open(addr: SocketAddr, path: &'static str) -> anyhow::Result<Self> {
        Ok(Self {
            connection: HttpConnection::open(addr).await?,
            content_type: HeaderValue::from_static("application/json"),
            path,
        })
    }

    /// One call with id `id`.
    pub async fn call(&mut self, id: u64) -> anyhow::Result<()> {
        let headers = [("content-type", &self.content_type)];
        let (status, headers, body) = self
            .connection
            .exchange(http::Method::POST, self.path, &headers, call_body(id))
            .await?;
        expect_status(status, StatusCode::OK, "echo", &body)?;
        check_reply(&reply_payload(&headers, body)?, id)
    }
}

/// A streamable HTTP session: initialized, then calls on one connection.
#[derive(Debug)]
pub struct StreamableSession {
    connection: HttpConnection,
    session_id: HeaderValue,
    version: HeaderValue,
    authorization: Option<HeaderValue>,
    content_type: HeaderValue,
    accept: HeaderValue,
}

impl StreamableSession {
    /// Connects, sends `initialize` and `notifications/initialized`.
    pub async fn open(addr: SocketAddr, token: Option<&str>) -> anyhow::Result<Self> {
        let mut connection = HttpConnection::open(addr).await?;
        let authorization = token
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()?;
        let content_type = HeaderValue::from_static("application/json");
        let accept = HeaderValue::from_static(ACCEPT_BOTH);
        let mut headers = vec![("content-type", &content_type), ("accept", &accept)];
        if let Some(a) = &authorization {
            headers.push(("authorization", a));
        }
        let (status, reply_headers, body) = connection
            .exchange(
                http::Method::POST,
                "/mcp",
                &headers,
                initialize_body(STREAMABLE_VERSION),
            )
            .await?;
        expect_status(status, StatusCode::OK, "streamable initialize", &body)?;
        let session_id = reply_headers
            .get(mcp_sse::SESSION_ID_HEADER)
            .cloned()
            .context("initialize answered without Mcp-Session-Id")?;
        check_reply(&reply_payload(&reply_headers, body)?, 0)?;
        let mut session = Self {
            connection,
            session_id,
            version: HeaderValue::from_static(STREAMABLE_VERSION),
            authorization,
            content_type,
            accept,
        };
        let (status, _, body) = session.post(Bytes::from_static(INITIALIZED_BODY)).await?;
        expect_status(
            status,
            StatusCode::ACCEPTED,
            "notifications/initialized",
            &body,
        )?;
        Ok(session)
    }

    /// Sends the next calls over a new connection to `addr` (another replica sharing the
    /// session).
    pub async fn reconnect(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        self.connection = HttpConnection::open(addr).await?;
        Ok(())
    }

    async fn post(&mut self, body: Bytes) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
        let mut headers = vec![
            ("content-type", &self.content_type),
            ("accept", &self.accept),
            (mcp_sse::SESSION_ID_HEADER, &self.session_id),
            (mcp_sse::PROTOCOL_VERSION_HEADER, &self.version),
        ];
        if let Some(a) = &self.authorization {
            headers.push(("authorization", a));
        }
        self.connection
            .exchange(http::Method::POST, "/mcp", &headers, body)
            .await
    }

    /// One `tools/call` with id `id`.
    pub async fn call(&mut self, id: u64) -> anyhow::Result<()> {
        let (status, headers, body) = self.post(call_body(id)).await?;
        expect_status(status, StatusCode::OK, "streamable tools/call", &body)?;
        check_reply(&reply_payload(&headers, body)?, id)
    }
}

/// The stream of a legacy SSE session, after its `endpoint` event.
#[derive(Debug)]
pub struct LegacyStream {
    /// Kept for its driver task: the stream lives as long as the connection.
    _connection: HttpConnection,
    body: Incoming,
    parser: SseParser,
    /// Where to POST messages (`/messages/?session_id=...`).
    pub endpoint: String,
}

impl LegacyStream {
    /// Opens `GET /sse` and reads the `endpoint` event.
    pub async fn open(
        addr: SocketAddr,
        authorization: Option<&HeaderValue>,
    ) -> anyhow::Result<Self> {
        let mut connection = HttpConnection::open(addr).await?;
        let accept = HeaderValue::from_static("text/event-stream");
        let mut headers = vec![("accept", &accept)];
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        let response = connection
            .send(http::Method::GET, "/sse", &headers, Bytes::new())
            .await?;
        if response.status() != StatusCode::OK {
            bail!("GET /sse: HTTP {}", response.status());
        }
        let mut stream = Self {
            _connection: connection,
            body: response.into_body(),
            parser: SseParser::new(DEFAULT_MAX_MESSAGE_BYTES),
            endpoint: String::new(),
        };
        let event = stream.next_event().await?;
        if event.event != "endpoint" {
            bail!("first SSE event is {:?}, not endpoint", event.event);
        }
        stream.endpoint = event.data;
        Ok(stream)
    }

    /// The next event with data.
    pub async fn next_event(&mut self) -> anyhow::Result<SseEvent> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Ok(event);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.parser.feed(&data)?;
                    }
                }
                Some(Err(e)) => bail!("reading the SSE stream: {e}"),
                None => bail!("the SSE stream ended"),
            }
        }
    }

    /// The next `message` event, checked as the reply to `id`.
    pub async fn expect_reply(&mut self, id: u64) -> anyhow::Result<()> {
        loop {
            let event = self.next_event().await?;
            if event.event == "message" && !event.data.is_empty() {
                return check_reply(event.data.as_bytes(), id);
            }
        }
    }
}

/// POSTs a message to a legacy session's endpoint; expects 202.
pub async fn legacy_post(
    connection: &mut HttpConnection,
    endpoint: &str,
    authorization: Option<&HeaderValue>,
    body: Bytes,
) -> anyhow::Result<()> {
    let content_type = HeaderValue::from_static("application/json");
    let mut headers = vec![("content-type", &content_type)];
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    let (status, _, body) = connection
        .exchange(http::Method::POST, endpoint, &headers, body)
        .await?;
    expect_status(status, StatusCode::ACCEPTED, "legacy POST", &body)
}

/// Initializes a legacy session whose POSTs go over `connection`.
pub async fn legacy_initialize(
    stream: &mut LegacyStream,
    connection: &mut HttpConnection,
    authorization: Option<&HeaderValue>,
) -> anyhow::Result<()> {
    legacy_post(
        connection,
        &stream.endpoint,
        authorization,
        initialize_body(LEGACY_VERSION),
    )
    .await?;
    stream.expect_reply(0).await?;
    legacy_post(
        connection,
        &stream.endpoint,
        authorization,
        Bytes::from_static(INITIALIZED_BODY),
    )
    .await
}

/// A legacy SSE session: its stream and a connection for its POSTs.
#[derive(Debug)]
pub struct LegacySession {
    stream: LegacyStream,
    posts: HttpConnection,
    authorization: Option<HeaderValue>,
}

impl LegacySession {
    /// Opens the stream and the POST connection, and initializes.
    pub async fn open(addr: SocketAddr, token: Option<&str>) -> anyhow::Result<Self> {
        Self::open_split(addr, addr, token).await
    }

    /// [`LegacySession::open`] with the stream on `stream_addr` and the POSTs to `post_addr`
    /// (two replicas sharing sessions: every call crosses from one to the other).
    pub async fn open_split(
        stream_addr: SocketAddr,
        post_addr: SocketAddr,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        let authorization = token
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()?;
        let mut stream = LegacyStream::open(stream_addr, authorization.as_ref()).await?;
        let mut posts = HttpConnection::open(post_addr).await?;
        legacy_initialize(&mut stream, &mut posts, authorization.as_ref()).await?;
        Ok(Self {
            stream,
            posts,
            authorization,
        })
    }

    /// One `tools/call` with id `id`: the POST's 202, then the reply on the stream.
    pub async fn call(&mut self, id: u64) -> anyhow::Result<()> {
        legacy_post(
            &mut self.posts,
            &self.stream.endpoint,
            self.authorization.as_ref(),
            call_body(id),
        )
        .await?;
        self.stream.expect_reply(id).await
    }
}

/// Any of the sessions, so that one loop drives them all.
#[derive(Debug)]
pub enum BenchSession {
    /// The ceiling.
    Echo(EchoSession),
    /// Streamable HTTP.
    Streamable(StreamableSession),
    /// Legacy HTTP+SSE.
    Legacy(LegacySession),
}

impl BenchSession {
    /// One call with id `id`.
    pub async fn call(&mut self, id: u64) -> anyhow::Result<()> {
        match self {
            BenchSession::Echo(s) => s.call(id).await,
            BenchSession::Streamable(s) => s.call(id).await,
            BenchSession::Legacy(s) => s.call(id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked_for_id_result_and_tool_errors() {
        check_reply(
            br#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}"#,
            7,
        )
        .unwrap();
        check_reply(
            br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18"}}"#,
            0,
        )
        .unwrap();
        let wrong_id = check_reply(br#"{"jsonrpc":"2.0","id":8,"result":{}}"#, 7).unwrap_err();
        assert_eq!(wrong_id.to_string(), "reply to Some(8) while waiting for 7");
        let error = check_reply(
            br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad"}}"#,
            7,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"request 7 failed: {"code":-32602,"message":"bad"}"#
        );
        let tool_error =
            check_reply(br#"{"jsonrpc":"2.0","id":7,"result":{"isError":true}}"#, 7).unwrap_err();
        assert!(
            tool_error
                .to_string()
                .starts_with("tool error for request 7")
        );
        assert!(check_reply(b"nope", 7).is_err());
    }

    #[test]
    fn call_body_is_the_benchmarked_request() {
        let value: serde_json::Value = serde_json::from_slice(&call_body(5)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                "params": {"name": "roll_dice", "arguments": {"n_dice": 3}}})
        );
        let init: serde_json::Value =
            serde_json::from_slice(&initialize_body(LEGACY_VERSION)).unwrap();
        assert_eq!(init["params"]["protocolVersion"], "2024-11-05");
    }

    #[test]
    fn reply_payload_reads_json_and_sse_bodies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(
            reply_payload(&headers, Bytes::from_static(b"{}")).unwrap(),
            Bytes::from_static(b"{}")
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        assert_eq!(
            reply_payload(
                &headers,
                Bytes::from_static(b"retry: 1000\n\nid: 1-0\nevent: message\ndata: {\"id\":1}\n\n")
            )
            .unwrap(),
            Bytes::from_static(b"{\"id\":1}")
        );
        assert!(reply_payload(&headers, Bytes::from_static(b": ping\n\n")).is_err());
    }
}
