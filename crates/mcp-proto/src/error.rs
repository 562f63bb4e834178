//! The crate's error type.

use crate::jsonrpc::{ErrorObject, RequestId};

/// Everything that can go wrong in protocol logic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// The serde error.
        detail: String,
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
    pub(crate) fn malformed(what: &'static str, err: impl std::fmt::Display) -> Self {
        Error::Malformed {
            what,
            detail: err.to_string(),
        }
    }
}
