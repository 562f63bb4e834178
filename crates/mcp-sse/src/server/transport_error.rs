//! Every transport-level failure and its HTTP answer, mapped in one place.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use mcp_proto::jsonrpc::code;
use mcp_proto::{ErrorObject, Message};

/// Implementation-defined JSON-RPC code for transport errors (as the TS and Python SDKs use).
const TRANSPORT_ERROR: i64 = -32000;

/// Why a request was refused before reaching the service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TransportError {
    /// `Origin` not on the allow-list (DNS rebinding protection).
    ForbiddenOrigin(String),
    /// `Accept` lacks what the endpoint answers with.
    NotAcceptable(&'static str),
    /// `Content-Type` is not JSON.
    UnsupportedMediaType,
    /// The body is over the limit.
    PayloadTooLarge(usize),
    /// The body could not be read.
    BodyRead(String),
    /// The body did not arrive within the deadline.
    BodyTimeout(std::time::Duration),
    /// The body is not JSON, or not JSON-RPC.
    Malformed(mcp_proto::Response),
    /// A batch where the protocol version forbids one, or `initialize` inside a batch.
    BatchRejected(String),
    /// The session id is missing.
    MissingSessionId(&'static str),
    /// The session id is unknown, expired or closed.
    UnknownSession,
    /// `MCP-Protocol-Version` names a version we do not speak.
    UnsupportedProtocolVersion(String),
    /// The session limit is reached.
    TooManySessions,
    /// The client (subject or address) holds as many sessions as it may.
    ClientSessionQuota(usize),
    /// The session has too many calls running.
    TooManyInFlight,
    /// The server is shutting down.
    ShuttingDown,
    /// The method is not served on this path.
    MethodNotAllowed(&'static str),
    /// A second standalone stream for one session.
    StreamConflict,
    /// The shared session store cannot be reached (or is full): retry later.
    StoreUnavailable(String),
    /// The shared session store answered with an error.
    StoreFailed(String),
}

impl From<crate::store::StoreError> for TransportError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::ClientQuota(max) => return Self::ClientSessionQuota(max),
            StoreError::Full(_) => return Self::TooManySessions,
            _ => {}
        }
        let chain = mcp_proto::error_chain(&e);
        tracing::warn!(error = %chain, "session store");
        if e.is_unavailable() {
            Self::StoreUnavailable(e.to_string())
        } else {
            Self::StoreFailed(e.to_string())
        }
    }
}

impl TransportError {
    fn parts(&self) -> (StatusCode, i64, String) {
        use TransportError::*;
        match self {
            ForbiddenOrigin(origin) => (
                StatusCode::FORBIDDEN,
                TRANSPORT_ERROR,
                format!("Forbidden: Origin {origin:?} is not allowed"),
            ),
            NotAcceptable(what) => (
                StatusCode::NOT_ACCEPTABLE,
                TRANSPORT_ERROR,
                format!("Not Acceptable: Client must accept {what}"),
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                TRANSPORT_ERROR,
                "Unsupported Media Type: Content-Type must be application/json".into(),
            ),
            PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                TRANSPORT_ERROR,
                format!("Payload Too Large: the body exceeds {limit} bytes"),
            ),
            BodyRead(detail) => (
                StatusCode::BAD_REQUEST,
                TRANSPORT_ERROR,
                format!("Bad Request: cannot read the body: {detail}"),
            ),
            BodyTimeout(deadline) => (
                StatusCode::REQUEST_TIMEOUT,
                TRANSPORT_ERROR,
                format!(
                    "Request Timeout: the body did not arrive within {} s",
                    deadline.as_secs_f64()
                ),
            ),
            // The reply already carries its code and message (and the id when it was read).
            Malformed(reply) => match &reply.outcome {
                Err(e) => (StatusCode::BAD_REQUEST, e.code, e.message.clone()),
                Ok(_) => (
                    StatusCode::BAD_REQUEST,
                    code::PARSE_ERROR,
                    "Parse error".into(),
                ),
            },
            BatchRejected(detail) => (
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                detail.clone(),
            ),
            MissingSessionId(what) => (
                StatusCode::BAD_REQUEST,
                TRANSPORT_ERROR,
                format!("Bad Request: Missing {what}"),
            ),
            UnknownSession => (
                StatusCode::NOT_FOUND,
                TRANSPORT_ERROR,
                "Not Found: Unknown or expired session ID".into(),
            ),
            UnsupportedProtocolVersion(v) => (
                StatusCode::BAD_REQUEST,
                TRANSPORT_ERROR,
                format!(
                    "Bad Request: Unsupported protocol version: {v} (supported: {})",
                    mcp_proto::ProtocolVersion::supported_strings().join(", ")
                ),
            ),
            TooManySessions => (
                StatusCode::SERVICE_UNAVAILABLE,
                TRANSPORT_ERROR,
                "Service Unavailable: the session limit is reached".into(),
            ),
            ClientSessionQuota(max) => (
                StatusCode::TOO_MANY_REQUESTS,
                TRANSPORT_ERROR,
                format!("Too Many Requests: this client already holds {max} sessions"),
            ),
            TooManyInFlight => (
                StatusCode::TOO_MANY_REQUESTS,
                TRANSPORT_ERROR,
                "Too Many Requests: too many calls running in this session".into(),
            ),
            ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                TRANSPORT_ERROR,
                "Service Unavailable: the server is shutting down".into(),
            ),
            MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                TRANSPORT_ERROR,
                "Method Not Allowed".into(),
            ),
            StreamConflict => (
                StatusCode::CONFLICT,
                TRANSPORT_ERROR,
                "Conflict: Only one SSE stream is allowed per session".into(),
            ),
            StoreUnavailable(detail) => (
                StatusCode::SERVICE_UNAVAILABLE,
                TRANSPORT_ERROR,
                format!("Service Unavailable: {detail}"),
            ),
            StoreFailed(detail) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                TRANSPORT_ERROR,
                format!("Internal Server Error: {detail}"),
            ),
        }
    }
}

/// A JSON response body holding one JSON-RPC message.
pub(crate) fn json_body(status: StatusCode, message: &Message) -> Response {
    let mut response = (status, message.to_json()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl TransportError {
    /// Counts refusals at a limit and session-store failures (see [`crate::metrics`]).
    fn record(&self) {
        use crate::metrics::{record_limit_rejection, record_store_error};
        match self {
            Self::PayloadTooLarge(_) => record_limit_rejection("body_bytes"),
            Self::TooManySessions => record_limit_rejection("sessions"),
            Self::ClientSessionQuota(_) => record_limit_rejection("client_sessions"),
            Self::BodyTimeout(_) => record_limit_rejection("body_time"),
            Self::TooManyInFlight => record_limit_rejection("in_flight"),
            Self::StoreUnavailable(_) => record_store_error("unavailable"),
            Self::StoreFailed(_) => record_store_error("failed"),
            _ => {}
        }
    }
}

impl IntoResponse for TransportError {
    fn into_response(self) -> Response {
        if let TransportError::Malformed(reply) = self {
            return json_body(StatusCode::BAD_REQUEST, &Message::Response(reply));
        }
        let (status, code, message) = self.parts();
        tracing::debug!(%status, %message, "request refused");
        self.record();
        let body = Message::Response(mcp_proto::Response::error(
            None,
            ErrorObject::new(code, message),
        ));
        let mut response = json_body(status, &body);
        match self {
            TransportError::MethodNotAllowed(allow) => {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            TransportError::TooManySessions
            | TransportError::ClientSessionQuota(_)
            | TransportError::ShuttingDown
            | TransportError::StoreUnavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}
