//! The crate's error type.

use http::StatusCode;
use mcp_proto::BoxError;

/// Everything that can go wrong in the HTTP transports, server or client side.
///
/// Like every error of the workspace: match the variant, and walk
/// [`source`](std::error::Error::source) for the cause (the `reqwest`, I/O or parse error);
/// [`mcp_proto::error_chain`] prints both on one line.
///
/// ```
/// use std::error::Error as _;
///
/// let err = mcp_sse::client::McpClient::builder("ftp://example.com/mcp")
///     .resolved_transport()
///     .unwrap_err();
/// assert!(matches!(&err, mcp_sse::Error::InvalidUrl { url, .. } if url == "ftp://example.com/mcp"));
/// assert_eq!(err.source().unwrap().to_string(), "scheme \"ftp\" is not http or https");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- server side ----
    /// Binding or serving the listener failed.
    #[error("server I/O error")]
    Io(#[from] std::io::Error),

    // ---- client side ----
    /// The server answered an HTTP request with a non-success status. Displays like OpenAI's
    /// connector errors: `Http status code: 401 (Unauthorized)`.
    #[error("Http status code: {} ({})", .status.as_u16(), .reason)]
    Http {
        /// The status.
        status: StatusCode,
        /// Its reason phrase.
        reason: String,
        /// The response body, truncated to a few KiB.
        body: String,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot connect to {url}")]
    Connect {
        /// The URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client could not be built (TLS roots, settings).
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// A wait ran out.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, &'static str),
    /// The server broke the transport's rules (bad SSE, missing endpoint event, bad JSON...).
    #[error("transport protocol violation: {0}")]
    Transport(String),
    /// The session ended (stream closed, 404 on a session id).
    #[error("the session is closed")]
    SessionClosed,
    /// A URL given to the client (or announced by the server) cannot be used.
    #[error("invalid URL {url:?}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it cannot be used: the parse error, or what is wrong with it.
        #[source]
        source: BoxError,
    },
    /// A custom header name or value is not valid HTTP.
    #[error("invalid header {name:?}")]
    InvalidHeader {
        /// The header name as given.
        name: String,
        /// Why it is invalid.
        #[source]
        source: BoxError,
    },
    /// The legacy SSE `endpoint` event pointed to another origin than the SSE URL's.
    #[error("the server's endpoint {endpoint} is not on the origin of {sse_url}")]
    CrossOriginEndpoint {
        /// The endpoint, resolved against the SSE URL.
        endpoint: String,
        /// The SSE URL.
        sse_url: String,
    },
    /// A message (or server-sent event) from the server is over the configured limit.
    #[error("a message from the server exceeds {limit} bytes")]
    MessageTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A tool call run as a task was cancelled before it ended.
    #[error("task {0} was cancelled")]
    TaskCancelled(String),
    /// Tool arguments must be a JSON object (or null for none).
    #[error("tool arguments must be a JSON object, got {0}")]
    InvalidArguments(String),
    /// The server demanded authorization and the OAuth client could not obtain it (see
    /// `McpClientBuilder::oauth`).
    #[error("authorization failed")]
    Authorization(#[source] mcp_oauth_client::Error),
    /// Reading from or writing to a transport's byte stream failed (a child process's pipes,
    /// for `mcp-stdio`).
    #[error("{transport} transport I/O failed")]
    TransportIo {
        /// Which transport (e.g. `stdio`).
        transport: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The Prometheus recorder could not be installed or served.
    #[error("cannot serve metrics")]
    Metrics(#[source] BoxError),
    /// The server answered with a JSON-RPC error, or protocol logic failed.
    #[error(transparent)]
    Protocol(#[from] mcp_proto::Error),
}

impl Error {
    /// The HTTP status of a failed request, if that is what failed.
    pub fn http_status(&self) -> Option<StatusCode> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}
