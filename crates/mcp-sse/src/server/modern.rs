//! Streamable HTTP in the 2026-07-28 era: every POST stands alone (no session), carries its
//! protocol version in the `MCP-Protocol-Version` header and in `params._meta`, and names its
//! method (and tool, prompt or resource) in `Mcp-Method` / `Mcp-Name` headers.
//!
//! The checks run in the order the specification's reference server uses: version header
//! missing (`-32020`), `_meta` incomplete (`-32602`), header and `_meta` disagree (`-32020`),
//! version not served (`-32022`), `Mcp-Method`/`Mcp-Name` missing or disagreeing with the body
//! (`-32020`); all with HTTP 400 and the request's id. A method that does not exist answers
//! HTTP 404 (`-32601`) and a missing client capability HTTP 400 (`-32021`). Results go out as
//! one SSE stream (notifications first), except a lone error, which is a JSON body with its
//! status.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use mcp_proto::jsonrpc::code;
use mcp_proto::modern::{META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, unsupported_version};
use mcp_proto::types::method;
use mcp_proto::{ErrorObject, Message, ProtocolVersion, Request, Response as RpcResponse, Session};
use serde_json::Value;

use super::event_log::{EventLog, ReadOutcome};
use super::http_util::{EventFraming, follow_log, sse_response};
use super::state::{LogOutbound, ServerState};
use super::streamable::PROTOCOL_VERSION_HEADER;
use super::transport_error::json_body;

/// The header naming the JSON-RPC method.
pub const METHOD_HEADER: &str = "mcp-method";
/// The header naming the tool, prompt or resource of a request.
pub const NAME_HEADER: &str = "mcp-name";

fn error_response(
    status: StatusCode,
    id: Option<mcp_proto::RequestId>,
    error: ErrorObject,
) -> Response {
    json_body(status, &Message::Response(RpcResponse::error(id, error)))
}

fn header_mismatch(message: impl Into<String>) -> ErrorObject {
    ErrorObject::new(code::HEADER_MISMATCH, message)
}

/// Decodes a header value that may use the `=?base64?...?=` sentinel.
pub(crate) fn decode_header_value(raw: &str) -> Option<String> {
    let value = raw.trim_matches([' ', '\t']);
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(b64) => STANDARD
            .decode(b64)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_owned()),
    }
}

/// Checks a modern request's headers and `_meta`; the error is what to answer.
fn check_request(headers: &HeaderMap, request: &Request) -> Result<ProtocolVersion, ErrorObject> {
    let header_version = headers
        .get(PROTOCOL_VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or("").trim().to_owned())
        .ok_or_else(|| header_mismatch("Missing MCP-Protocol-Version header"))?;
    let meta = request
        .params
        .as_ref()
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .ok_or_else(|| ErrorObject::invalid_params("Invalid params: _meta is required"))?;
    let meta_version = meta
        .get(META_PROTOCOL_VERSION)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ErrorObject::invalid_params(format!(
                "Invalid params: _meta[\"{META_PROTOCOL_VERSION}\"] is required"
            ))
        })?;
    if !meta
        .get(META_CLIENT_CAPABILITIES)
        .is_some_and(Value::is_object)
    {
        return Err(ErrorObject::invalid_params(format!(
            "Invalid params: _meta[\"{META_CLIENT_CAPABILITIES}\"] is required"
        )));
    }
    if header_version != meta_version {
        return Err(header_mismatch(format!(
            "Header mismatch: MCP-Protocol-Version header value '{header_version}' does not match _meta value '{meta_version}'"
        )));
    }
    let version = match meta_version.parse::<ProtocolVersion>() {
        Ok(v) if v.is_stateless() => v,
        _ => return Err(unsupported_version(meta_version)),
    };
    let method_header = headers
        .get(METHOD_HEADER)
        .map(|v| v.to_str().unwrap_or("").trim())
        .ok_or_else(|| header_mismatch("Header mismatch: missing Mcp-Method header"))?;
    if method_header != request.method {
        return Err(header_mismatch(format!(
            "Header mismatch: Mcp-Method header value '{method_header}' does not match body value '{}'",
            request.method
        )));
    }
    let name_field = match request.method.as_str() {
        method::TOOLS_CALL | method::PROMPTS_GET => Some("name"),
        method::RESOURCES_READ => Some("uri"),
        _ => None,
    };
    if let Some(field) = name_field {
        let body = request
            .params
            .as_ref()
            .and_then(|p| p.get(field))
            .and_then(Value::as_str);
        let header = headers
            .get(NAME_HEADER)
            .ok_or_else(|| header_mismatch("Header mismatch: missing Mcp-Name header"))?;
        let header = header
            .to_str()
            .ok()
            .and_then(decode_header_value)
            .ok_or_else(|| {
                header_mismatch("Header mismatch: Mcp-Name header value is malformed")
            })?;
        if body.is_some_and(|b| b != header) {
            return Err(header_mismatch(format!(
                "Header mismatch: Mcp-Name header value '{header}' does not match body value '{}'",
                body.unwrap_or("")
            )));
        }
    }
    Ok(version)
}

/// The HTTP status of a lone JSON-RPC error on the modern wire.
fn status_of(error: &ErrorObject) -> StatusCode {
    match error.code {
        code::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        code::HEADER_MISMATCH
        | code::MISSING_REQUIRED_CLIENT_CAPABILITY
        | code::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// Cancels the request's work when its response body goes away (the client disconnected,
/// or the stream ended).
struct CancelOnDrop(Arc<Session>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel_all();
    }
}

/// Serves one modern POST.
pub(crate) async fn post(
    state: &Arc<ServerState>,
    headers: &HeaderMap,
    mut messages: Vec<Result<Message, RpcResponse>>,
    is_batch: bool,
    extensions: http::Extensions,
) -> Response {
    if is_batch || messages.len() != 1 {
        return error_response(
            StatusCode::BAD_REQUEST,
            None,
            ErrorObject::new(
                code::INVALID_REQUEST,
                "Invalid request: batches are not supported in protocol version 2026-07-28",
            ),
        );
    }
    let message = match messages.pop() {
        Some(Ok(m)) => m,
        Some(Err(reply)) => return json_body(StatusCode::BAD_REQUEST, &Message::Response(reply)),
        None => return StatusCode::ACCEPTED.into_response(),
    };
    let request = match message {
        Message::Request(r) => r,
        other => {
            // Notifications and stray responses: nothing to answer in a stateless era.
            tracing::debug!(message = %other.to_json(), "modern notification ignored");
            return StatusCode::ACCEPTED.into_response();
        }
    };
    let version = match check_request(headers, &request) {
        Ok(v) => v,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, Some(request.id), e),
    };
    let session = Arc::new(Session::stateless(version));
    let log = Arc::new(EventLog::new(state.config.stream_buffer));
    let outbound = Arc::new(LogOutbound {
        log: Arc::clone(&log),
    });
    let task_log = Arc::clone(&log);
    let task_state = Arc::clone(state);
    let task_session = Arc::clone(&session);
    state.calls.spawn(async move {
        let reply = task_state
            .run_message(
                task_session,
                Message::Request(request),
                outbound,
                extensions,
            )
            .await;
        if let Some(reply) = reply {
            task_log.append(Some(Arc::from(reply.to_json())));
        }
        task_log.close();
    });
    // A lone error goes out as JSON with its status; anything else as a stream.
    loop {
        match log.read_from(0) {
            ReadOutcome::Events(events) if events.len() == 1 => {
                let data = events[0].data.as_deref().unwrap_or("");
                let Ok(Message::Response(reply)) = serde_json::from_str::<Message>(data) else {
                    break;
                };
                if !log.is_closed() {
                    // The reply is the last event; the close follows at once.
                    log.wait_beyond(1).await;
                    continue;
                }
                if let Err(error) = &reply.outcome {
                    let mut response = (status_of(error), data.to_owned()).into_response();
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    return response;
                }
                break;
            }
            ReadOutcome::Events(_) => break,
            ReadOutcome::Finished | ReadOutcome::Lagged => {
                return StatusCode::ACCEPTED.into_response();
            }
            ReadOutcome::Pending => log.wait_beyond(0).await,
        }
    }
    sse_response(follow_log(
        log,
        0,
        EventFraming::Resumable { stream_id: 1 },
        None,
        state.config.keep_alive,
        state.shutdown.child_token(),
        CancelOnDrop(session),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_sentinel_values_decode() {
        assert_eq!(
            decode_header_value(" us-west1 ").as_deref(),
            Some("us-west1")
        );
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(decode_header_value("=?base64?***?="), None);
    }
}
