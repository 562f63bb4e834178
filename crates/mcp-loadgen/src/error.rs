//! The one error type of the crate.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;

/// What went wrong opening a session or making a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection or the HTTP/1.1 handshake failed.
    #[error("connecting to {addr}")]
    Connect {
        /// Where the generator tried to connect.
        addr: SocketAddr,
        /// The I/O or handshake failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server's connection failed while sending a request or reading a response.
    #[error("{path}: the HTTP exchange failed")]
    Http {
        /// The request's path.
        path: String,
        /// hyper's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A header value could not be built (a bearer token with invalid characters, say).
    #[error("invalid header value")]
    Header(#[from] http::header::InvalidHeaderValue),
    /// The server answered with another status than the exchange expects.
    #[error("{what}: HTTP {status} (expected {expected}): {body}")]
    Status {
        /// The exchange (`streamable initialize`, `legacy POST`, ...).
        what: &'static str,
        /// The status received.
        status: StatusCode,
        /// The status expected.
        expected: StatusCode,
        /// The start of the response body.
        body: String,
    },
    /// A reply is not a JSON-RPC message.
    #[error("reply is not JSON-RPC: {body}")]
    NotJsonRpc {
        /// The start of the reply.
        body: String,
        /// serde's reason.
        #[source]
        source: serde_json::Error,
    },
    /// The server answered a request with a JSON-RPC error.
    #[error("request {id} failed: {error}")]
    Rejected {
        /// The request's id.
        id: u64,
        /// The `error` member of the reply.
        error: serde_json::Value,
    },
    /// A reply carries another id than the request waited for.
    #[error("reply to {got:?} while waiting for {want}")]
    WrongId {
        /// The id in the reply.
        got: Option<u64>,
        /// The id of the request.
        want: u64,
    },
    /// The tool answered with `isError: true`.
    #[error("tool error for request {id}: {body}")]
    ToolError {
        /// The request's id.
        id: u64,
        /// The reply.
        body: String,
    },
    /// A reply has neither `result` nor `error`.
    #[error("reply to {id} has neither result nor error")]
    EmptyReply {
        /// The request's id.
        id: u64,
    },
    /// An SSE event exceeded the parser's bound.
    #[error("reading an SSE stream")]
    Sse(#[from] mcp_sse::client::EventTooLarge),
    /// An SSE response body holds no `message` event.
    #[error("SSE response without a message event: {body}")]
    NoMessageEvent {
        /// The start of the body.
        body: String,
    },
    /// A legacy SSE stream ended.
    #[error("the SSE stream ended")]
    StreamEnded,
    /// A legacy SSE stream did not start with its `endpoint` event.
    #[error("first SSE event is {0:?}, not endpoint")]
    NoEndpoint(String),
    /// A streamable `initialize` was answered without `Mcp-Session-Id`.
    #[error("initialize answered without Mcp-Session-Id")]
    NoSessionId,
    /// Opening a phase's sessions took longer than [`Timing::setup_timeout`](crate::Timing).
    #[error("opening {sessions} {target} sessions took over {timeout:?}")]
    SetupTimeout {
        /// Sessions being opened.
        sessions: usize,
        /// What they talk to.
        target: &'static str,
        /// The bound.
        timeout: Duration,
    },
    /// One of a phase's sessions could not be opened.
    #[error("opening a {target} session")]
    Open {
        /// What it talks to.
        target: &'static str,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A session's task panicked or was cancelled.
    #[error("a session task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// The first 300 bytes of `body`, as text.
pub(crate) fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}
