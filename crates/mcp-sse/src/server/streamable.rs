//! Streamable HTTP (protocol 2025-03-26 and later) on one endpoint: `POST` carries client
//! messages, `GET` opens the server-to-client stream (or resumes one), `DELETE` ends a session.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use mcp_proto::{AuthSubject, Message, ProtocolVersion, Session, SessionState};

use super::event_log::{EventLog, Settled};
use super::http_util::{
    EventFraming, accepts, check_initialize, check_origin, decode_messages, follow_log,
    is_json_content, read_body, sse_response,
};
use super::resume::{event_stream_key, frame_stored, mirror_to_store, replay_response_stream};
use super::state::{
    CallSlots, ClientKey, FoundSession, HttpSession, LogOutbound, Lookup, ServerState,
};
use super::transport_error::{TransportError, json_body};
use crate::TransportKind;
use crate::store::Replay;

/// The session header (see [`crate::headers`]).
pub const SESSION_ID_HEADER: &str = crate::headers::SESSION_ID;
/// The protocol version header (see [`crate::headers`]).
pub const PROTOCOL_VERSION_HEADER: &str = crate::headers::PROTOCOL_VERSION;
use crate::headers::LAST_EVENT_ID;

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
/// or a request `_meta` naming a protocol version, unless the header names a stateful version
/// and no `_meta` names one.
fn is_stateless(headers: &HeaderMap, messages: &[Result<Message, mcp_proto::Response>]) -> bool {
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
            .and_then(|m| m.get(mcp_proto::stateless::META_PROTOCOL_VERSION))
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

/// The `Mcp-Session-Id` of a request, or 400.
fn session_id_header(headers: &HeaderMap) -> Result<&str, TransportError> {
    header_str(headers, SESSION_ID_HEADER)
        .ok_or(TransportError::MissingSessionId("Mcp-Session-Id header"))
}

/// The session a request names, if `subject` may use it, with the state as stored.
async fn existing_session(
    state: &Arc<ServerState>,
    headers: &HeaderMap,
    subject: Option<&str>,
    lookup: Lookup,
) -> Result<FoundSession, TransportError> {
    let id = session_id_header(headers)?;
    state
        .find_session(id, TransportKind::StreamableHttp, subject, lookup)
        .await
}

/// The session a POST runs in: none when stateless, a new one for `initialize`, else the
/// one it names (with its state as stored, saved again if the request changes it).
struct PostSession {
    http: Option<Arc<HttpSession>>,
    proto: Arc<Session>,
    saved: Option<SessionState>,
    /// The in-flight slots taken for its requests.
    slots: Option<CallSlots>,
    /// Whose session quota a new session counts against (for `initialize` only).
    client: Option<ClientKey>,
}

async fn post_session(
    state: &Arc<ServerState>,
    parts: &http::request::Parts,
    messages: &[Result<Message, mcp_proto::Response>],
    is_initialize: bool,
    requested_version: Option<ProtocolVersion>,
) -> Result<PostSession, TransportError> {
    let subject = AuthSubject::of(&parts.extensions);
    if state.config.stateless {
        let version = requested_version.unwrap_or(ProtocolVersion::HTTP_DEFAULT);
        let session = if is_initialize {
            Session::new(None)
        } else {
            Session::stateless(version)
        };
        return Ok(PostSession {
            http: None,
            proto: Arc::new(session),
            saved: None,
            slots: None,
            client: None,
        });
    }
    let (session, saved, slots, client) = if is_initialize {
        let client = ClientKey::of(subject.as_deref(), &parts.extensions);
        let session = state.create_session(TransportKind::StreamableHttp, subject)?;
        (session, None, None, Some(client))
    } else {
        let lookup = Lookup::calls(messages);
        let found = existing_session(state, &parts.headers, subject.as_deref(), lookup).await?;
        (found.session, Some(found.saved), found.slots, None)
    };
    Ok(PostSession {
        proto: Arc::clone(&session.proto),
        http: Some(session),
        saved,
        slots,
        client,
    })
}

/// Checks what a POST must carry: an allowed `Origin`, `Accept` of both answer types, a
/// JSON body.
fn check_post_headers(
    headers: &HeaderMap,
    config: &super::ServerConfig,
) -> Result<(), TransportError> {
    check_origin(headers, config)?;
    if !(accepts(headers, "application/json") && accepts(headers, "text/event-stream")) {
        return Err(TransportError::NotAcceptable(
            "both application/json and text/event-stream",
        ));
    }
    if !is_json_content(headers) {
        return Err(TransportError::UnsupportedMediaType);
    }
    Ok(())
}

pub(crate) async fn post(
    State(state): State<Arc<ServerState>>,
    request: Request,
) -> Result<Response, TransportError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    check_post_headers(headers, &state.config)?;
    let bytes = read_body(
        body,
        headers,
        state.config.max_body_bytes,
        state.config.body_read_timeout,
    )
    .await?;
    let (messages, is_batch) = decode_messages(&bytes, &state.config)?;
    if is_stateless(headers, &messages) {
        return Ok(
            super::stateless::post(&state, headers, messages, is_batch, parts.extensions).await,
        );
    }
    let requested_version = header_version(headers)?;
    let is_initialize = check_initialize(&messages, is_batch, bytes.len(), &state.config)?;
    let mut target =
        post_session(&state, &parts, &messages, is_initialize, requested_version).await?;
    let version = target
        .proto
        .protocol_version()
        .or(requested_version)
        .unwrap_or(ProtocolVersion::HTTP_DEFAULT);
    if is_batch && !version.allows_batches() {
        return Err(TransportError::BatchRejected(format!(
            "Invalid request: JSON-RPC batches are not supported in protocol version {version}"
        )));
    }
    let mut messages = messages;
    if let Some(s) = &target.http {
        state.route_client_messages(&s.id, &mut messages).await;
    }
    let extensions = parts.extensions;
    if !messages
        .iter()
        .any(|m| matches!(m, Ok(Message::Request(_))))
    {
        return Ok(run_notifications(&state, &target, messages, extensions).await);
    }
    let slots = target.slots.take();
    let call = Call {
        messages,
        is_batch,
        version,
        extensions,
        slots,
    };
    let mut response = run_requests(&state, &target, call, is_initialize).await?;
    if let (true, Some(s)) = (is_initialize, &target.http)
        && let Ok(v) = HeaderValue::from_str(&s.id)
    {
        response.headers_mut().insert(SESSION_ID_HEADER, v);
    }
    Ok(response)
}

/// Notifications and answers only: handles them, then 202.
async fn run_notifications(
    state: &Arc<ServerState>,
    target: &PostSession,
    messages: Vec<Result<Message, mcp_proto::Response>>,
    extensions: http::Extensions,
) -> Response {
    for m in messages {
        match m {
            Ok(message) => {
                let outbound = Arc::new(mcp_proto::NoOutbound);
                state
                    .run_message(
                        Arc::clone(&target.proto),
                        message,
                        outbound,
                        extensions.clone(),
                    )
                    .await;
            }
            Err(reply) => return json_body(StatusCode::BAD_REQUEST, &Message::Response(reply)),
        }
    }
    if let Some(saved) = &target.saved {
        state.save_if_changed(&target.proto, saved).await;
    }
    StatusCode::ACCEPTED.into_response()
}

/// The requests of one POST and what they run with.
struct Call {
    messages: Vec<Result<Message, mcp_proto::Response>>,
    is_batch: bool,
    version: ProtocolVersion,
    extensions: http::Extensions,
    slots: Option<CallSlots>,
}

/// Runs the requests of a POST on a response stream (its log) and answers with the log as
/// one body or a stream.
async fn run_requests(
    state: &Arc<ServerState>,
    target: &PostSession,
    call: Call,
    is_initialize: bool,
) -> Result<Response, TransportError> {
    let log = Arc::new(state.new_log());
    let stream_id = match &target.http {
        Some(_) => ServerState::shared_stream_id(false),
        None => 1,
    };
    let sse = !state.config.json_response;
    if sse && call.version >= ProtocolVersion::V2025_11_25 {
        // Priming event: gives the client an event id to resume from.
        log.append(None);
    }
    let outbound: Arc<dyn mcp_proto::Outbound> = Arc::new(LogOutbound {
        log: Arc::clone(&log),
    });
    let replies = state.run_all(&target.proto, call.messages, outbound, call.extensions);
    let (task_state, task_log) = (Arc::clone(state), Arc::clone(&log));
    let (proto, saved) = (Arc::clone(&target.proto), target.saved.clone());
    // The session object lives as long as its call (a transient copy's route and
    // registration end with it).
    let (session, slots, is_batch) = (target.http.clone(), call.slots, call.is_batch);
    let work = async move {
        let replies = replies.await;
        if let Some(saved) = &saved {
            task_state.save_if_changed(&proto, saved).await;
        }
        task_log.finish(super::reply_events(replies, is_batch));
        drop((slots, session));
    };
    match (&target.http, &target.client) {
        (Some(session), Some(client)) if is_initialize => {
            // Other replicas learn of the session only once it is stored with what
            // `initialize` negotiated; until then its id is not handed out.
            work.await;
            state.store_session(session, client).await?;
        }
        _ => state.run_call(work).await,
    }
    Ok(if sse {
        whole_or_stream(state, &target.http, log, stream_id).await
    } else {
        json_or_stream(state, &target.http, log, stream_id).await
    })
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
    // The client is sent only what is stored: resumable on any replica.
    let log = match session {
        Some(s) => mirror_to_store(state, event_stream_key(&s.id, stream_id), log, stop.clone()),
        None => log,
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
    let finished = tokio::time::timeout(WHOLE_BODY_WAIT, log.settle()).await;
    match finished {
        Ok(Settled::Complete(events)) => {
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
    match log.settle().await {
        Settled::Complete(events) if events.len() == 1 => {
            let body = events[0].data.as_deref().unwrap_or("").to_owned();
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Settled::Complete(_) | Settled::Streaming => {
            stream_response(state, session, log, stream_id, 0)
        }
        // Every request was cancelled: nothing to answer.
        Settled::Empty => StatusCode::ACCEPTED.into_response(),
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
    request: Request,
) -> Result<Response, TransportError> {
    let headers = request.headers();
    check_origin(headers, &state.config)?;
    if state.config.stateless || !state.config.get_stream {
        return Err(TransportError::MethodNotAllowed("POST, DELETE"));
    }
    if !accepts(headers, "text/event-stream") {
        return Err(TransportError::NotAcceptable("text/event-stream"));
    }
    header_version(headers)?;
    let subject = AuthSubject::of(request.extensions());
    let last_event = header_str(headers, LAST_EVENT_ID).and_then(parse_event_id);
    resume_or_open(&state, headers, subject.as_deref(), last_event).await
}

/// Opens the standalone stream of a session on this replica, numbered `stream_id`, after
/// `prefix` (replayed events).
fn open_standalone(
    state: &Arc<ServerState>,
    session: &Arc<HttpSession>,
    stream_id: u64,
    prefix: Option<bytes::Bytes>,
) -> Response {
    let log = Arc::new(state.new_log());
    if let Some(previous) = session.set_stream(Some(Arc::clone(&log))) {
        // Superseded by a resumption: its reader ends.
        previous.close();
    }
    state.service.stream_opened(
        &session.proto,
        Arc::new(LogOutbound {
            log: Arc::clone(&log),
        }),
    );
    let guard = StandaloneGuard {
        session: Arc::clone(session),
        log: Arc::clone(&log),
    };
    // The client is sent only what is stored: resumable on any replica.
    let sent = mirror_to_store(
        state,
        event_stream_key(&session.id, stream_id),
        log,
        session.closed.clone(),
    );
    let body = follow_log(
        sent,
        0,
        EventFraming::Resumable { stream_id },
        prefix,
        state.config.keep_alive,
        session.closed.clone(),
        guard,
    );
    sse_response(body)
}

/// `GET`: a response stream (odd id) resumes from the store's events on any replica,
/// following the stream until its response. Otherwise this replica claims the session
/// (deliveries for it come here) and opens its standalone stream, first replaying what the
/// previous one sent after `Last-Event-ID`.
async fn resume_or_open(
    state: &Arc<ServerState>,
    headers: &HeaderMap,
    subject: Option<&str>,
    last_event: Option<(u64, u64)>,
) -> Result<Response, TransportError> {
    if let Some((stream_id, seq)) = last_event.filter(|(id, _)| id % 2 == 1) {
        let session = existing_session(state, headers, subject, Lookup::Calls(0))
            .await?
            .session;
        let key = event_stream_key(&session.id, stream_id);
        let store = &state.store;
        if let Replay::Events(events) = store.read_events_after(&key, seq).await? {
            tracing::debug!(session = %session.tag(), stream_id, seq, "resuming a response stream from the store");
            let body = replay_response_stream(
                state,
                Arc::clone(store),
                key,
                stream_id,
                seq,
                events,
                session.closed.clone(),
            );
            return Ok(sse_response(body));
        }
    }
    let session = existing_session(state, headers, subject, Lookup::Claim)
        .await?
        .session;
    let mut prefix = None;
    if let Some((stream_id, seq)) = last_event.filter(|(id, _)| id % 2 == 0) {
        let key = event_stream_key(&session.id, stream_id);
        if let Replay::Events(events) = state.store.read_events_after(&key, seq).await? {
            let mut out = Vec::new();
            frame_stored(stream_id, &events, &mut out);
            prefix = Some(bytes::Bytes::from(out));
        }
    } else if session.has_open_stream() {
        return Err(TransportError::StreamConflict);
    }
    Ok(open_standalone(
        state,
        &session,
        ServerState::shared_stream_id(true),
        prefix,
    ))
}

/// Parses `<stream>-<seq>`; `None` for anything else, and for a `seq` with no successor
/// (the stream resumes after it).
fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (stream, seq) = id.split_once('-')?;
    let seq: u64 = seq.parse().ok()?;
    seq.checked_add(1)?;
    Some((stream.parse().ok()?, seq))
}

pub(crate) async fn delete(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    extensions: http::Extensions,
) -> Result<Response, TransportError> {
    check_origin(&headers, &state.config)?;
    if state.config.stateless {
        return Err(TransportError::MethodNotAllowed("POST"));
    }
    let subject = AuthSubject::of(&extensions);
    let id = session_id_header(&headers)?;
    // Ends it everywhere: its owner is told to close its streams.
    if !state.store.delete(id, subject.as_deref()).await? {
        return Err(TransportError::UnknownSession);
    }
    state.end_session(id);
    Ok(StatusCode::OK.into_response())
}
