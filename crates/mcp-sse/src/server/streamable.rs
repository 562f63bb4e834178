//! Streamable HTTP (protocol 2025-03-26 and later) on one endpoint: `POST` carries client
//! messages, `GET` opens the server-to-client stream (or resumes one), `DELETE` ends a session.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use mcp_proto::types::method;
use mcp_proto::{AuthSubject, Decoded, Message, ProtocolVersion, Session, SessionState};

use super::event_log::{EventLog, ReadOutcome};
use super::http_util::{
    EventFraming, accepts, check_origin, follow_log, frame_event, is_json_content, read_body,
    sse_response,
};
use super::state::{HttpSession, LogOutbound, ServerState, SessionKind};
use super::transport_error::{TransportError, json_body};
use crate::store::{Replay, SessionStore};

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

/// The `Mcp-Session-Id` of a request, or 400.
fn session_id_header(headers: &HeaderMap) -> Result<&str, TransportError> {
    header_str(headers, SESSION_ID_HEADER)
        .ok_or(TransportError::MissingSessionId("Mcp-Session-Id header"))
}

/// The session a request names, if `subject` may use it: from the shared store when there
/// is one (with the state as stored), else from this process.
async fn existing_session(
    state: &ServerState,
    headers: &HeaderMap,
    subject: Option<&str>,
    claim: bool,
) -> Result<(Arc<HttpSession>, Option<SessionState>), TransportError> {
    let id = session_id_header(headers)?;
    match &state.store {
        Some(store) => {
            let (session, saved) = state
                .shared_session(store, id, SessionKind::Streamable, subject, claim)
                .await?;
            Ok((session, Some(saved)))
        }
        None => state
            .session(id, SessionKind::Streamable, subject)
            .map(|s| (s, None))
            .ok_or(TransportError::UnknownSession),
    }
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
    let bytes = read_body(
        body,
        headers,
        state.config.max_body_bytes,
        state.config.body_read_timeout,
    )
    .await?;
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
    let subject = AuthSubject::of(&parts.extensions);
    let mut saved_state: Option<SessionState> = None;
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
        let s = state.create_session(SessionKind::Streamable, subject.clone())?;
        let proto = Arc::clone(&s.proto);
        (Some(s), proto)
    } else {
        let (s, saved) = existing_session(&state, headers, subject.as_deref(), false).await?;
        saved_state = saved;
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
    let mut messages = messages;
    if let Some(s) = &http_session {
        state.route_client_messages(&s.id, &mut messages).await;
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
        if let Some(saved) = &saved_state {
            state.save_if_changed(&proto, saved).await;
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
        Some(_) if state.store.is_some() => ServerState::shared_stream_id(false),
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
    // A new session (`initialize`) has no stored state yet: it is recorded in the shared store
    // once `initialize` has run, below.
    // The session object lives as long as its call (a transient copy's route and
    // registration end with it).
    let task_session = http_session.clone();
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
        if let Some(saved) = &saved_state {
            task_state.save_if_changed(&task_proto, saved).await;
        }
        task_log.finish(super::reply_events(replies, is_batch));
        drop(permit);
        drop(task_session);
    };
    match (&state.store, &http_session) {
        (Some(_), Some(session)) if is_initialize => {
            // Other replicas learn of the session only once it is stored with what
            // `initialize` negotiated; until then its id is not handed out.
            work.await;
            state.store_session(session).await?;
        }
        _ => state.run_call(work).await,
    }

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
    // With a shared store the client is sent only what is stored: resumable anywhere.
    let log = match (&state.store, session) {
        (Some(store), Some(s)) => mirror_to_store(
            Arc::clone(store),
            event_stream_key(&s.id, stream_id),
            log,
            stop.clone(),
            state.config.stream_buffer,
        ),
        _ => log,
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
    if let Some(store) = &state.store {
        return shared_get(&state, store, headers, subject.as_deref(), last_event).await;
    }
    let (session, _) = existing_session(&state, headers, subject.as_deref(), false).await?;
    if let Some((stream_id, seq)) = last_event {
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
    if session.has_open_stream() {
        return Err(TransportError::StreamConflict);
    }
    Ok(open_standalone(&state, &session, 0, None))
}

/// Opens the standalone stream of a session on this replica, numbered `stream_id`, after
/// `prefix` (replayed events).
fn open_standalone(
    state: &Arc<ServerState>,
    session: &Arc<HttpSession>,
    stream_id: u64,
    prefix: Option<bytes::Bytes>,
) -> Response {
    let log = Arc::new(EventLog::new(state.config.stream_buffer));
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
    // With a shared store the client is sent only what is stored: resumable anywhere.
    let sent = match &state.store {
        Some(store) => mirror_to_store(
            Arc::clone(store),
            event_stream_key(&session.id, stream_id),
            log,
            session.closed.clone(),
            state.config.stream_buffer,
        ),
        None => log,
    };
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

/// `GET` with a shared store. A response stream (odd id) resumes from the store's events on
/// any replica, following the stream until its response. Otherwise this replica claims the
/// session (deliveries for it come here) and opens its standalone stream, first replaying
/// what the previous one sent after `Last-Event-ID`.
async fn shared_get(
    state: &Arc<ServerState>,
    store: &Arc<dyn SessionStore>,
    headers: &HeaderMap,
    subject: Option<&str>,
    last_event: Option<(u64, u64)>,
) -> Result<Response, TransportError> {
    if let Some((stream_id, seq)) = last_event.filter(|(id, _)| id % 2 == 1) {
        let (session, _) = existing_session(state, headers, subject, false).await?;
        let key = event_stream_key(&session.id, stream_id);
        if let Replay::Events(events) = store.read_events_after(&key, seq).await? {
            tracing::debug!(session = %session.id, stream_id, seq, "resuming a response stream from the store");
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
    let (session, _) = existing_session(state, headers, subject, true).await?;
    let mut prefix = None;
    if let Some((stream_id, seq)) = last_event.filter(|(id, _)| id % 2 == 0) {
        let key = event_stream_key(&session.id, stream_id);
        if let Replay::Events(events) = store.read_events_after(&key, seq).await? {
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

/// The key of a stream's events in the shared store.
fn event_stream_key(session_id: &str, stream_id: u64) -> String {
    format!("{session_id}/{stream_id}")
}

/// Copies a stream's events to the shared store as they are written, so that a client can
/// resume it on any replica, until the stream ends. Returns the log to send the client: the
/// same events, each appended once it is stored (or once storing it failed), so a client never
/// holds an event id that another replica cannot resume from.
fn mirror_to_store(
    store: Arc<dyn SessionStore>,
    key: String,
    log: Arc<EventLog>,
    stop: tokio_util::sync::CancellationToken,
    capacity: usize,
) -> Arc<EventLog> {
    let stored = Arc::new(EventLog::new(capacity));
    let sent = Arc::clone(&stored);
    tokio::spawn(async move {
        let mut next = 0;
        loop {
            match log.read_from(next) {
                ReadOutcome::Events(events) => {
                    for e in events {
                        let payload = e.data.as_deref().unwrap_or("");
                        if let Err(err) = store.append_event(&key, e.seq, payload).await {
                            tracing::warn!(stream = %key, error = %err, "cannot store a stream event for resumption");
                        }
                        // Same order from 0, so the same sequence numbers.
                        stored.append(e.data);
                        next = e.seq + 1;
                    }
                }
                ReadOutcome::Pending => {
                    tokio::select! {
                        () = log.wait_beyond(next) => {}
                        () = stop.cancelled() => break,
                    }
                }
                ReadOutcome::Finished => break,
                ReadOutcome::Lagged => {
                    tracing::warn!(stream = %key, "the store fell behind a stream; it cannot be resumed past this point");
                    break;
                }
            }
        }
        stored.close();
    });
    sent
}

/// Frames stored events of stream `stream_id` (an empty payload is a priming event).
fn frame_stored(stream_id: u64, events: &[crate::store::StoredEvent], out: &mut Vec<u8>) {
    for e in events {
        let data = (!e.payload.is_empty()).then_some(e.payload.as_str());
        frame_event(EventFraming::Resumable { stream_id }, e.seq, data, out);
    }
}

/// Whether a stored event is the response that ends a response stream.
fn is_final_response(payload: &str) -> bool {
    fn is_response(v: &serde_json::Value) -> bool {
        v.get("id").is_some() && (v.get("result").is_some() || v.get("error").is_some())
    }
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Array(items)) => !items.is_empty() && items.iter().all(is_response),
        Ok(v) => is_response(&v),
        Err(_) => false,
    }
}

/// How often a response stream resumed from the store looks for new events.
const REPLAY_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A response stream resumed from the store: the stored events after `seq`, then new ones
/// as the replica running the call stores them, until its response (or the call timeout).
fn replay_response_stream(
    state: &Arc<ServerState>,
    store: Arc<dyn SessionStore>,
    key: String,
    stream_id: u64,
    seq: u64,
    first: Vec<crate::store::StoredEvent>,
    stop: tokio_util::sync::CancellationToken,
) -> axum::body::Body {
    struct Cursor {
        store: Arc<dyn SessionStore>,
        key: String,
        last: u64,
        batch: Vec<crate::store::StoredEvent>,
        done: bool,
        deadline: tokio::time::Instant,
        keep_alive: std::time::Duration,
        idle_since: tokio::time::Instant,
    }
    let now = tokio::time::Instant::now();
    let cursor = Cursor {
        store,
        key,
        last: seq,
        batch: first,
        done: false,
        deadline: now + state.config.call_timeout,
        keep_alive: state.config.keep_alive,
        idle_since: now,
    };
    let stream = futures::stream::unfold(cursor, move |mut c| {
        let stop = stop.clone();
        async move {
            loop {
                if c.done {
                    return None;
                }
                let batch = std::mem::take(&mut c.batch);
                if !batch.is_empty() {
                    let mut out = Vec::new();
                    let fresh: Vec<_> = batch.into_iter().filter(|e| e.seq > c.last).collect();
                    frame_stored(stream_id, &fresh, &mut out);
                    if let Some(last) = fresh.last() {
                        c.last = last.seq;
                    }
                    c.done |= fresh.iter().any(|e| is_final_response(&e.payload));
                    c.idle_since = tokio::time::Instant::now();
                    if !out.is_empty() {
                        return Some((
                            Ok::<_, std::convert::Infallible>(bytes::Bytes::from(out)),
                            c,
                        ));
                    }
                    continue;
                }
                if tokio::time::Instant::now() >= c.deadline {
                    return None;
                }
                tokio::select! {
                    () = tokio::time::sleep(REPLAY_POLL) => {}
                    () = stop.cancelled() => return None,
                }
                match c.store.read_events_after(&c.key, c.last).await {
                    Ok(Replay::Events(events)) if !events.is_empty() => c.batch = events,
                    Ok(Replay::Events(_)) => {
                        if c.idle_since.elapsed() >= c.keep_alive {
                            c.idle_since = tokio::time::Instant::now();
                            return Some((Ok(bytes::Bytes::from_static(b": ping\n\n")), c));
                        }
                    }
                    Ok(_) => return None,
                    Err(e) => {
                        tracing::debug!(stream = %c.key, error = %e, "resumed stream: store unavailable; polling again");
                    }
                }
            }
        }
    });
    axum::body::Body::from_stream(stream)
}

fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (stream, seq) = id.split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
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
    if let Some(store) = &state.store {
        let id = session_id_header(&headers)?;
        // Ends it everywhere: its owner is told to close its streams.
        let deleted = store.delete(id, subject.as_deref()).await?;
        if deleted {
            state.end_session(id);
            return Ok(StatusCode::OK.into_response());
        }
        return Err(TransportError::UnknownSession);
    }
    let (session, _) = existing_session(&state, &headers, subject.as_deref(), false).await?;
    state.end_session(&session.id);
    Ok(StatusCode::OK.into_response())
}
