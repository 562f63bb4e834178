//! The crate's error type.
//!
//! Every error enum of the workspace has the same shape: `#[non_exhaustive]`, one variant per
//! thing that went wrong in the caller's terms, context in named fields, and the underlying
//! cause (a serde, I/O or HTTP error) kept as [`std::error::Error::source`] rather than
//! copied into the message, so a caller can match the variant and walk the chain.

use crate::jsonrpc::{ErrorObject, RequestId};

/// A boxed cause of any type, as `tower` and `axum` keep theirs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in protocol logic.
///
/// ```
/// use std::error::Error as _;
///
/// let err = mcp_proto::parse_result::<u32>(Ok(serde_json::json!("seven"))).unwrap_err();
/// assert!(matches!(err, mcp_proto::Error::Malformed { what: "result", .. }));
/// assert!(err.source().unwrap().is::<serde_json::Error>());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server chose a protocol version this client does not speak.
    #[error("server answered with unsupported protocol version {0:?}")]
    UnsupportedVersion(String),
    /// A response arrived for a request that is not pending.
    #[error("response for unknown request id {0}")]
    UnknownResponse(RequestId),
    /// Too many requests are waiting for answers.
    #[error("too many pending requests (limit {limit})")]
    TooManyPendingRequests {
        /// The configured limit.
        limit: usize,
    },
    /// A list walk returned a cursor it had already returned.
    #[error("pagination loop: cursor {0:?} returned twice")]
    PaginationLoop(String),
    /// A list walk went over its page limit.
    #[error("pagination stopped after {0} pages")]
    TooManyPages(usize),
    /// The peer answered with a JSON-RPC error.
    #[error("JSON-RPC error {}: {}", .0.code, .0.message)]
    Rpc(ErrorObject),
    /// A result or params value did not have the expected shape.
    #[error("malformed {what}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// Why: the serde error, or a description of what is missing.
        #[source]
        source: BoxError,
    },
    /// The outbound channel to the peer is gone or full.
    #[error("cannot send to the peer: {0}")]
    Send(String),
    /// A tool's schema could not be generated or compiled.
    #[error("invalid schema for tool {tool:?}: {detail}")]
    InvalidToolSchema {
        /// The tool name.
        tool: String,
        /// What is wrong.
        detail: String,
    },
}

impl Error {
    pub(crate) fn malformed(what: &'static str, cause: impl Into<BoxError>) -> Self {
        Error::Malformed {
            what,
            source: cause.into(),
        }
    }
}

/// An error and its causes on one line, `outer: cause: root cause`, for logs and for messages
/// that must carry the whole story (a tool error shown to a model, an HTTP error body).
///
/// ```
/// let err = mcp_proto::parse_result::<u32>(Ok(serde_json::json!("seven"))).unwrap_err();
/// assert_eq!(
///     mcp_proto::error_chain(&err),
///     "malformed result: invalid type: string \"seven\", expected u32"
/// );
/// ```
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
