//! The sessions a phase drives: the echo ceiling, streamable HTTP and legacy SSE, each on its
//! own keep-alive connection (two for legacy SSE: its stream and one for its POSTs).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mcp_sse::client::{DEFAULT_MAX_MESSAGE_BYTES, SseEvent, SseParser};
use serde::Deserialize;

use crate::connection::{HttpConnection, expect_status, reply_payload};
use crate::error::{Error, excerpt};
use crate::phase::Target;

/// The protocol version streamable sessions negotiate.
pub const STREAMABLE_VERSION: &str = "2025-06-18";
/// The protocol version of legacy SSE sessions.
pub const LEGACY_VERSION: &str = "2024-11-05";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
const INITIALIZED_BODY: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The `tools/call` request every call of a phase makes, serialized once: only the id
/// changes from call to call.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// Everything after the id: `,"method":"tools/call","params":{...}}`.
    tail: String,
}

impl ToolCall {
    /// A call of tool `name` with `arguments`.
    pub fn new(name: &str, arguments: serde_json::Value) -> Self {
        let params = serde_json::json!({ "name": name, "arguments": arguments });
        Self {
            tail: format!(r#","method":"tools/call","params":{params}}}"#),
        }
    }

    /// The request with id `id`.
    pub fn body(&self, id: u64) -> Bytes {
        Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{id}{}"#, self.tail))
    }
}

/// The `initialize` request (id 0) for `version`.
fn initialize_body(version: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{version}","capabilities":{{}},"clientInfo":{{"name":"mcp-loadgen","version":"1"}}}}}}"#
    ))
}

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

/// Fails unless `data` is a successful JSON-RPC reply to request `id` (a tool result with
/// `isError: true` is a failure too).
pub fn check_reply(data: &[u8], id: u64) -> Result<(), Error> {
    let reply: Reply = serde_json::from_slice(data).map_err(|source| Error::NotJsonRpc {
        body: excerpt(data),
        source,
    })?;
    if let Some(error) = reply.error {
        return Err(Error::Rejected { id, error });
    }
    match reply.result {
        Some(_) if reply.id != Some(id) => Err(Error::WrongId {
            got: reply.id,
            want: id,
        }),
        Some(result) if result.is_error => Err(Error::ToolError {
            id,
            body: String::from_utf8_lossy(data).into_owned(),
        }),
        Some(_) => Ok(()),
        None => Err(Error::EmptyReply { id }),
    }
}

/// `Bearer <token>`.
fn bearer(token: Option<&str>) -> Result<Option<HeaderValue>, Error> {
    Ok(token
        .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
        .transpose()?)
}

/// A session of an echo endpoint (an HTTP ceiling without MCP): plain POSTs on one connection.
#[derive(Debug)]
pub struct EchoSession {
    connection: HttpConnection,
    content_type: HeaderValue,
    path: &'static str,
}

impl EchoSession {
    /// Connects; calls will POST to `path`.
    pub async fn open(addr: SocketAddr, path: &'static str) -> Result<Self, Error> {
        Ok(Self {
            connection: HttpConnection::open(addr).await?,
            content_type: HeaderValue::from_static("application/json"),
            path,
        })
    }

    /// One call with id `id`; the reply (JSON or one SSE event) must carry the id.
    pub async fn call(&mut self, call: &ToolCall, id: u64) -> Result<(), Error> {
        let headers = [("content-type", &self.content_type)];
        let (status, headers, body) = self
            .connection
            .exchange(http::Method::POST, self.path, &headers, call.body(id))
            .await?;
        expect_status(status, StatusCode::OK, "echo", &body)?;
        check_reply(&reply_payload(&headers, body)?, id)
    }
}

/// A streamable HTTP session at `/mcp`: initialized, then calls on one connection.
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
    pub async fn open(addr: SocketAddr, token: Option<&str>) -> Result<Self, Error> {
        let mut connection = HttpConnection::open(addr).await?;
        let authorization = bearer(token)?;
        let content_type = HeaderValue::from_static("application/json");
        let accept = HeaderValue::from_static(ACCEPT_BOTH);
        let mut headers = vec![("content-type", &content_type), ("accept", &accept)];
        if let Some(a) = &authorization {
            headers.push(("authorization", a));
        }
        let init = initialize_body(STREAMABLE_VERSION);
        let (status, reply_headers, body) = connection
            .exchange(http::Method::POST, "/mcp", &headers, init)
            .await?;
        expect_status(status, StatusCode::OK, "streamable initialize", &body)?;
        let session_id = reply_headers
            .get(mcp_sse::SESSION_ID_HEADER)
            .cloned()
            .ok_or(Error::NoSessionId)?;
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
        let what = "notifications/initialized";
        expect_status(status, StatusCode::ACCEPTED, what, &body)?;
        Ok(session)
    }

    /// Sends the next calls over a new connection to `addr` (another replica sharing the
    /// session).
    pub async fn reconnect(&mut self, addr: SocketAddr) -> Result<(), Error> {
        self.connection = HttpConnection::open(addr).await?;
        Ok(())
    }

    async fn post(&mut self, body: Bytes) -> Result<(StatusCode, http::HeaderMap, Bytes), Error> {
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
    pub async fn call(&mut self, call: &ToolCall, id: u64) -> Result<(), Error> {
        let (status, headers, body) = self.post(call.body(id)).await?;
        expect_status(status, StatusCode::OK, "streamable tools/call", &body)?;
        check_reply(&reply_payload(&headers, body)?, id)
    }
}

/// The stream of a legacy SSE session (`GET /sse`), after its `endpoint` event.
#[derive(Debug)]
pub struct LegacyStream {
    /// Kept for its driver task: the stream lives as long as the connection.
    _connection: HttpConnection,
    body: Incoming,
    parser: SseParser,
    endpoint: String,
}

impl LegacyStream {
    /// Opens `GET /sse` and reads the `endpoint` event.
    pub async fn open(
        addr: SocketAddr,
        authorization: Option<&HeaderValue>,
    ) -> Result<Self, Error> {
        let mut connection = HttpConnection::open(addr).await?;
        let accept = HeaderValue::from_static("text/event-stream");
        let mut headers = vec![("accept", &accept)];
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        let response = connection
            .send(http::Method::GET, "/sse", &headers, Bytes::new())
            .await?;
        let status = response.status();
        expect_status(status, StatusCode::OK, "GET /sse", b"")?;
        let mut stream = Self {
            _connection: connection,
            body: response.into_body(),
            parser: SseParser::new(DEFAULT_MAX_MESSAGE_BYTES),
            endpoint: String::new(),
        };
        let event = stream.next_event().await?;
        if event.event != "endpoint" {
            return Err(Error::NoEndpoint(event.event));
        }
        stream.endpoint = event.data;
        Ok(stream)
    }

    /// Where the session's messages are POSTed (`/messages/?session_id=...`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The next event.
    pub async fn next_event(&mut self) -> Result<SseEvent, Error> {
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
                Some(Err(source)) => {
                    return Err(Error::Http {
                        path: "/sse".to_owned(),
                        source: Box::new(source),
                    });
                }
                None => return Err(Error::StreamEnded),
            }
        }
    }

    /// The next `message` event, checked as the reply to `id`.
    pub async fn expect_reply(&mut self, id: u64) -> Result<(), Error> {
        loop {
            let event = self.next_event().await?;
            if event.event == "message" && !event.data.is_empty() {
                return check_reply(event.data.as_bytes(), id);
            }
        }
    }

    /// POSTs `body` to the endpoint over `connection`; expects 202.
    pub async fn post(
        &self,
        connection: &mut HttpConnection,
        authorization: Option<&HeaderValue>,
        body: Bytes,
    ) -> Result<(), Error> {
        let content_type = HeaderValue::from_static("application/json");
        let mut headers = vec![("content-type", &content_type)];
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        let (status, _, body) = connection
            .exchange(http::Method::POST, &self.endpoint, &headers, body)
            .await?;
        expect_status(status, StatusCode::ACCEPTED, "legacy POST", &body)
    }

    /// Initializes the session, its POSTs going over `connection`.
    pub async fn initialize(
        &mut self,
        connection: &mut HttpConnection,
        authorization: Option<&HeaderValue>,
    ) -> Result<(), Error> {
        let init = initialize_body(LEGACY_VERSION);
        self.post(connection, authorization, init).await?;
        self.expect_reply(0).await?;
        let initialized = Bytes::from_static(INITIALIZED_BODY);
        self.post(connection, authorization, initialized).await
    }
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
    pub async fn open(addr: SocketAddr, token: Option<&str>) -> Result<Self, Error> {
        Self::open_split(addr, addr, token).await
    }

    /// [`LegacySession::open`] with the stream on `stream_addr` and the POSTs to `post_addr`
    /// (two replicas sharing sessions: every call crosses from one to the other).
    pub async fn open_split(
        stream_addr: SocketAddr,
        post_addr: SocketAddr,
        token: Option<&str>,
    ) -> Result<Self, Error> {
        let authorization = bearer(token)?;
        let mut stream = LegacyStream::open(stream_addr, authorization.as_ref()).await?;
        let mut posts = HttpConnection::open(post_addr).await?;
        stream
            .initialize(&mut posts, authorization.as_ref())
            .await?;
        Ok(Self {
            stream,
            posts,
            authorization,
        })
    }

    /// One `tools/call` with id `id`: the POST's 202, then the reply on the stream.
    pub async fn call(&mut self, call: &ToolCall, id: u64) -> Result<(), Error> {
        let auth = self.authorization.as_ref();
        self.stream
            .post(&mut self.posts, auth, call.body(id))
            .await?;
        self.stream.expect_reply(id).await
    }
}

/// Any of the sessions, so that one loop drives them all.
#[derive(Debug)]
#[non_exhaustive]
pub enum Session {
    /// The ceiling.
    Echo(EchoSession),
    /// Streamable HTTP.
    Streamable(StreamableSession),
    /// Legacy HTTP+SSE.
    Legacy(LegacySession),
}

impl Session {
    /// Opens a session of `target` on `addr`, with a bearer `token` if given.
    pub async fn open(
        target: Target,
        addr: SocketAddr,
        token: Option<&str>,
    ) -> Result<Self, Error> {
        Ok(match target {
            Target::Echo { path } => Session::Echo(EchoSession::open(addr, path).await?),
            Target::Streamable => Session::Streamable(StreamableSession::open(addr, token).await?),
            Target::LegacySse => Session::Legacy(LegacySession::open(addr, token).await?),
        })
    }

    /// One call with id `id`.
    pub async fn call(&mut self, call: &ToolCall, id: u64) -> Result<(), Error> {
        match self {
            Session::Echo(s) => s.call(call, id).await,
            Session::Streamable(s) => s.call(call, id).await,
            Session::Legacy(s) => s.call(call, id).await,
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
        assert_eq!(
            tool_error.to_string(),
            r#"tool error for request 7: {"jsonrpc":"2.0","id":7,"result":{"isError":true}}"#
        );
        let empty = check_reply(br#"{"jsonrpc":"2.0","id":7}"#, 7).unwrap_err();
        assert_eq!(empty.to_string(), "reply to 7 has neither result nor error");
        let garbage = check_reply(b"nope", 7).unwrap_err();
        assert_eq!(garbage.to_string(), "reply is not JSON-RPC: nope");
    }

    #[test]
    fn the_tool_call_is_serialized_once_with_each_id() {
        let call = ToolCall::new("roll_dice", serde_json::json!({"n_dice": 3}));
        let value: serde_json::Value = serde_json::from_slice(&call.body(5)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                "params": {"name": "roll_dice", "arguments": {"n_dice": 3}}})
        );
        let init: serde_json::Value =
            serde_json::from_slice(&initialize_body(LEGACY_VERSION)).unwrap();
        assert_eq!(init["params"]["protocolVersion"], "2024-11-05");
    }
}
