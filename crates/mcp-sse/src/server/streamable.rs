//! Streamable HTTP (protocol 2025-03-26 and later) on one endpoint: `POST` carries client
//! messages, `GET` opens the server-to-client stream (or resumes one), `DELETE` ends a session.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use mcp_proto::types::method;
use mcp_proto::{Decoded, Message, ProtocolVersion, Session};

use super::event_log::{EventLog, ReadOutcome};
use super::http_util::{
    EventFraming, accepts, check_origin, follow_log, is_json_content, read_body, sse_response,
};
use super::state::{HttpSession, LogOutbound, ServerState, SessionKind};
use super::transport_error::{TransportError, json_body};

/// The session header.
pub const SESSION_ID_HEADER: &str = "mcp-session-id";
/// The protocol version header.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
const LAST_EVENT_ID: &str = "last-event-id";

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads `MCP-Protocol-Version`: absent is `None`, unsupported is 400.
fn header_version(headers: &HeaderMap) -> Result<Option<ProtocolVersion>, TransportError> {
    match headers.get(PROTOCOL_VERSION_HEADER) {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().unwrap_or("");
            text.parse::<ProtocolVersion>().map(Some).map_err(|_| {
                TransportError::UnsupportedProtocolVersion(text.chars().take(64).collect())
            })
        }
    }
}

/// Whether a POST is served in the 2026-07-28 era: no session, and a protocol version header
/// or a request `_meta` naming a protocol version, unless the header names a legacy version
/// and no `_meta` names one.
fn is_modern(headers: &HeaderMap, messages: &[Result<Message, mcp_proto::Response>]) -> bool {
    if headers.contains_key(SESSION_ID_HEADER) {
        return false;
    }
    let has_meta = messages.iter().any(|m| {
        let params = match m {
            Ok(Message::Request(r)) => r.params.as_ref(),
            Ok(Message::Notification(n)) => n.params.as_ref(),
            _ => None,
        };
        params
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get(mcp_proto::modern::META_PROTOCOL_VERSION))
            .is_some()
    });
    match header_str(headers, PROTOCOL_VERSION_HEADER) {
        None => has_meta,
        Some(v) => {
            has_meta
                || v.trim()
                    .parse::<ProtocolVersion>()
                    .map_or(true, |v| v.is_stateless())
        }
    }
}

fn existing_session(
    state: &ServerState,
    headers: &HeaderMap,
) -> Result<Arc<HttpSession>, TransportError> {
    let id = header_str(headers, SESSION_ID_HEADER)
        .ok_or(TransportError::MissingSessionId("Mcp-Session-Id header"))?;
    state
        .session(id, SessionKind::Streamable)
        .ok_or(TransportError::UnknownSession)
}

pub(crate) async fn post(
    State(state): State<Arc<ServerState>>,
    request: Request,
) -> Result<Response, TransportError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    check_origin(headers, &state.config)?;
    if !(accepts(headers, "application/json") && accepts(headers, "text/event-stream")) {
        return Err(TransportError::NotAcceptable(
            "both application/json and text/event-stream",
        ));
    }
    if !is_json_content(headers) {
        return Err(TransportError::UnsupportedMediaType);
    }
    let bytes = read_body(body, headers, state.config.max_body_bytes).await?;
    let decoded = mcp_proto::decode(&bytes).map_err(TransportError::Malformed)?;
    let is_batch = matches!(decoded, Decoded::Batch(_));
    let messages = match decoded {
        Decoded::Single(m) => vec![Ok(m)],
        Decoded::Batch(items) => items,
    };
    if is_modern(headers, &messages) {
        return Ok(
            super::modern::post(&state, headers, messages, is_batch, parts.extensions).await,
        );
    }
    let requested_version = header_version(headers)?;
    let is_initialize = messages
        .iter()
        .any(|m| matches!(m, Ok(Message::Request(r)) if r.method == method::INITIALIZE));
    if is_initialize && is_batch {
        return Err(TransportError::BatchRejected(
            "Invalid request: initialize must not be part of a batch".into(),
        ));
    }

    // Which session the messages belong to.
    let (http_session, proto): (Option<Arc<HttpSession>>, Arc<Session>) = if state.config.stateless
    {
        let version = requested_version.unwrap_or(ProtocolVersion::HTTP_DEFAULT);
        let session = if is_initialize {
            Session::new(None)
        } else {
            Session::stateless(version)
        };
        (None, Arc::new(session))
    } else if is_initialize {
        let s = state.create_session(SessionKind::Streamable)?;
        let proto = Arc::clone(&s.proto);
        (Some(s), proto)
    } else {
        let s = existing_session(&state, headers)?;
        let proto = Arc::clone(&s.proto);
        (Some(s), proto)
    };
    let version = proto
        .protocol_version()
        .or(requested_version)
        .unwrap_or(ProtocolVersion::HTTP_DEFAULT);
    if is_batch && !version.allows_batches() {
        return Err(TransportError::BatchRejected(format!(
            "Invalid request: JSON-RPC batches are not supported in protocol version {version}"
        )));
    }
    let has_requests = messages
        .iter()
        .any(|m| matches!(m, Ok(Message::Request(_))));
    let extensions = parts.extensions;

    if !has_requests {
        // Notifications and responses: handle them, then 202.
        for m in messages {
            match m {
                Ok(message) => {
                    let outbound = Arc::new(mcp_proto::NoOutbound);
                    state
                        .run_message(Arc::clone(&proto), message, outbound, extensions.clone())
                        .await;
                }
                Err(reply) => {
                    return Ok(json_body(
                        StatusCode::BAD_REQUEST,
                        &Message::Response(reply),
                    ));
                }
            }
        }
        return Ok(StatusCode::ACCEPTED.into_response());
    }

    let permit = match &http_session {
        Some(s) => Some(
            Arc::clone(&s.in_flight)
                .try_acquire_owned()
                .map_err(|_| TransportError::TooManyInFlight)?,
        ),
        None => None,
    };
    let log = Arc::new(EventLog::new(state.config.stream_buffer));
    let stream_id = match &http_session {
        Some(s) => {
            let id = s.next_stream_id();
            s.remember_stream(id, Arc::clone(&log), state.config.resumable_streams);
            id
        }
        None => 1,
    };
    let sse = !state.config.json_response;
    if sse && version >= ProtocolVersion::V2025_11_25 {
        // Priming event: gives the client an event id to resume from.
        log.append(None);
    }
    let outbound = Arc::new(LogOutbound {
        log: Arc::clone(&log),
    });
    let task_log = Arc::clone(&log);
    let task_state = Arc::clone(&state);
    let task_proto = Arc::clone(&proto);
    let work = async move {
        let replies = futures::future::join_all(messages.into_iter().map(|m| {
            let state = Arc::clone(&task_state);
            let outbound = Arc::clone(&outbound);
            let proto = Arc::clone(&task_proto);
            let extensions = extensions.clone();
            async move {
                match m {
                    Ok(message) => {
                        state
                            .run_message(proto, message, outbound, extensions)
                            .await
                    }
                    Err(reply) => Some(Message::Response(reply)),
                }
            }
        }))
        .await;
        task_log.finish(super::reply_events(replies, is_batch));
        drop(permit);
    };
    state.run_call(work).await;

    let mut response = if sse {
        whole_or_stream(&state, &http_session, log, stream_id).await
    } else {
        json_or_stream(&state, &http_session, log, stream_id).await
    };
    if let (true, Some(s)) = (is_initialize, &http_session)
        && let Ok(v) = HeaderValue::from_str(&s.id)
    {
        response.headers_mut().insert(SESSION_ID_HEADER, v);
    }
    Ok(response)
}

fn stream_response(
    state: &Arc<ServerState>,
    session: &Option<Arc<HttpSession>>,
    log: Arc<EventLog>,
    stream_id: u64,
    from: u64,
) -> Response {
    let stop = match session {
        Some(s) => s.closed.clone(),
        None => state.shutdown.child_token(),
    };
    let mut prefix = None;
    if from == 0 {
        prefix = Some(bytes::Bytes::from(format!(
            "retry: {}\n\n",
            state.config.retry_ms
        )));
    }
    sse_response(follow_log(
        log,
        from,
        EventFraming::Resumable { stream_id },
        prefix,
        state.config.keep_alive,
        stop,
        (),
    ))
}

/// How long an SSE answer waits for its call to finish before it starts streaming.
const WHOLE_BODY_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// SSE mode: a call that finishes quickly without sending anything first is answered with one
/// complete `text/event-stream` body (one write, no chunked stream); a call that sends
/// progress or runs longer is streamed as it goes.
async fn whole_or_stream(
    state: &Arc<ServerState>,
    session: &Option<Arc<HttpSession>>,
    log: Arc<EventLog>,
    stream_id: u64,
) -> Response {
    let finished = tokio::time::timeout(WHOLE_BODY_WAIT, async {
        loop {
            let next = match log.read_from(0) {
                ReadOutcome::Events(events) => {
                    if log.is_closed() {
                        return Some(events);
                    }
                    if events.iter().any(|e| e.data.is_some()) {
                        // Something came before the result: stream it now.
                        return None;
                    }
                    events.last().map_or(0, |e| e.seq + 1)
                }
                ReadOutcome::Pending => 0,
                ReadOutcome::Finished | ReadOutcome::Lagged => return None,
            };
            log.wait_beyond(next).await;
        }
    })
    .await;
    match finished {
        Ok(Some(events)) => {
            let mut body = format!("retry: {}\n\n", state.config.retry_ms).into_bytes();
            for e in &events {
                super::http_util::frame_event(
                    EventFraming::Resumable { stream_id },
                    e.seq,
                    e.data.as_deref(),
                    &mut body,
                );
            }
            sse_response(axum::body::Body::from(body))
        }
        _ => stream_response(state, session, log, stream_id, 0),
    }
}

/// JSON mode: answer with a JSON body when the results are all there is; switch to a stream
/// as soon as the handler sends something before its result.
async fn json_or_stream(
    state: &Arc<ServerState>,
    session: &Option<Arc<HttpSession>>,
    log: Arc<EventLog>,
    stream_id: u64,
) -> Response {
    loop {
        match log.read_from(0) {
            ReadOutcome::Events(events) if log.is_closed() && events.len() == 1 => {
                let body = events[0].data.as_deref().unwrap_or("").to_owned();
                let mut response = (StatusCode::OK, body).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return response;
            }
            ReadOutcome::Events(_) => return stream_response(state, session, log, stream_id, 0),
            ReadOutcome::Finished | ReadOutcome::Lagged => {
                // Every request was cancelled: nothing to answer.
                return StatusCode::ACCEPTED.into_response();
            }
            ReadOutcome::Pending => log.wait_beyond(0).await,
        }
    }
}

/// Ends a standalone stream's registration when its body is dropped.
struct StandaloneGuard {
    session: Arc<HttpSession>,
    log: Arc<EventLog>,
}

impl Drop for StandaloneGuard {
    fn drop(&mut self) {
        if let Some(current) = self.session.stream()
            && Arc::ptr_eq(&current, &self.log)
        {
            self.session.set_stream(None);
        }
    }
}

pub(crate) async fn get(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Result<Response, TransportError> {
    check_origin(&headers, &state.config)?;
    if state.config.stateless || !state.config.get_stream {
        return Err(TransportError::MethodNotAllowed("POST, DELETE"));
    }
    if !accepts(&headers, "text/event-stream") {
        return Err(TransportError::NotAcceptable("text/event-stream"));
    }
    header_version(&headers)?;
    let session = existing_session(&state, &headers)?;
    if let Some((stream_id, seq)) = header_str(&headers, LAST_EVENT_ID).and_then(parse_event_id) {
        let log = if stream_id == 0 {
            session.stream()
        } else {
            session.find_stream(stream_id)
        };
        if let Some(log) = log {
            tracing::debug!(session = %session.id, stream_id, seq, "resuming stream");
            let body = follow_log(
                log,
                seq + 1,
                EventFraming::Resumable { stream_id },
                None,
                state.config.keep_alive,
                session.closed.clone(),
                (),
            );
            return Ok(sse_response(body));
        }
    }
    if session.stream().is_some_and(|l| !l.is_closed()) {
        return Err(TransportError::StreamConflict);
    }
    let log = Arc::new(EventLog::new(state.config.stream_buffer));
    session.set_stream(Some(Arc::clone(&log)));
    state.service.stream_opened(
        &session.proto,
        Arc::new(LogOutbound {
            log: Arc::clone(&log),
        }),
    );
    let guard = StandaloneGuard {
        session: Arc::clone(&session),
        log: Arc::clone(&log),
    };
    let body = follow_log(
        log,
        0,
        EventFraming::Resumable { stream_id: 0 },
        None,
        state.config.keep_alive,
        session.closed.clone(),
        guard,
    );
    Ok(sse_response(body))
}

fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (stream, seq) = id.split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

pub(crate) async fn delete(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Result<Response, TransportError> {
    check_origin(&headers, &state.config)?;
    if state.config.stateless {
        return Err(TransportError::MethodNotAllowed("POST"));
    }
    let session = existing_session(&state, &headers)?;
    state.end_session(&session.id);
    Ok(StatusCode::OK.into_response())
}
