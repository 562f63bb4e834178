//! The legacy HTTP+SSE transport (protocol 2024-11-05): `GET /sse` opens the session stream,
//! whose first event names the endpoint clients `POST` their messages to.

use std::sync::Arc;

use axum::extract::{OriginalUri, Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use mcp_proto::{AuthSubject, Outbound, ProtocolVersion};

use super::event_log::EventLog;
use super::http_util::{
    EventFraming, check_initialize, check_origin, decode_messages, follow_log, read_body,
    sse_response,
};
use super::state::{ClientKey, LogOutbound, Lookup, ServerState, SessionTag, StoreOutbound};
use super::transport_error::TransportError;
use crate::TransportKind;
use crate::store::SharedStore;

/// Ends the session when its stream's body is dropped (client gone or stream finished).
struct LegacySessionGuard {
    state: Arc<ServerState>,
    id: String,
    subject: Option<Arc<str>>,
}

impl Drop for LegacySessionGuard {
    fn drop(&mut self) {
        if self.state.end_session(&self.id) {
            self.state.forget_in_store(&self.id, self.subject.take());
        }
    }
}

/// Where the replies to a legacy POST go: the session's stream when this replica holds it,
/// else the replica that does, through the shared store.
enum ReplySink {
    Local(Arc<EventLog>),
    Remote(Arc<dyn SharedStore>, String),
}

impl ReplySink {
    async fn send(&self, event: Arc<str>) {
        match self {
            Self::Local(log) => {
                if log.append(Some(event)).is_none() {
                    tracing::debug!("session stream closed before the response could be sent");
                }
            }
            Self::Remote(store, id) => match store.deliver(id, &event).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(session = %SessionTag(id), "session ended before the response could be sent")
                }
                Err(e) => {
                    tracing::warn!(session = %SessionTag(id), error = %e, "cannot deliver a response to the session's replica")
                }
            },
        }
    }
}

pub(crate) async fn open_stream(
    State(state): State<Arc<ServerState>>,
    OriginalUri(original): OriginalUri,
    request: Request,
) -> Result<Response, TransportError> {
    check_origin(request.headers(), &state.config)?;
    let subject = AuthSubject::of(request.extensions());
    let client = ClientKey::of(subject.as_deref(), request.extensions());
    let session = state.create_session(TransportKind::LegacySse, subject.clone())?;
    state.store_session(&session, &client).await?;
    let log = Arc::new(state.new_log());
    session.set_stream(Some(Arc::clone(&log)));
    state.service.stream_opened(
        &session.proto,
        Arc::new(super::state::LogOutbound {
            log: Arc::clone(&log),
        }),
    );
    // When mounted under a prefix (`Router::nest`), the endpoint must carry it.
    let mount = original
        .path()
        .strip_suffix(request.uri().path())
        .unwrap_or("");
    let endpoint = format!(
        "{mount}{}?session_id={}",
        state.config.messages_path, session.id
    );
    tracing::info!(session = %session.tag(), "legacy SSE session opened");
    let prefix = Bytes::from(format!("event: endpoint\ndata: {endpoint}\n\n"));
    let guard = LegacySessionGuard {
        state: Arc::clone(&state),
        id: session.id.clone(),
        subject,
    };
    let body = follow_log(
        log,
        0,
        EventFraming::LegacySse,
        Some(prefix),
        state.config.keep_alive,
        session.closed.clone(),
        guard,
    );
    Ok(sse_response(body))
}

/// The query of `POST /messages/`: the session, under either name clients use.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct MessagesQuery {
    session_id: Option<String>,
    #[serde(rename = "sessionId")]
    session_id_camel: Option<String>,
}

pub(crate) async fn post_message(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<MessagesQuery>,
    request: Request,
) -> Result<Response, TransportError> {
    let (parts, body) = request.into_parts();
    check_origin(&parts.headers, &state.config)?;
    let id = query
        .session_id
        .as_ref()
        .or(query.session_id_camel.as_ref())
        .ok_or(TransportError::MissingSessionId(
            "session_id query parameter",
        ))?;
    let subject = AuthSubject::of(&parts.extensions);
    let bytes = read_body(
        body,
        &parts.headers,
        state.config.max_body_bytes,
        state.config.body_read_timeout,
    )
    .await?;
    // The session is looked up first (an unknown one is 404 whatever the body), taking the
    // in-flight slots its requests need in the same step.
    let decoded = decode_messages(&bytes, &state.config);
    let lookup = match &decoded {
        Ok((messages, _)) => Lookup::calls(messages),
        Err(_) => Lookup::Calls(0),
    };
    let found = state
        .find_session(id, TransportKind::LegacySse, subject.as_deref(), lookup)
        .await?;
    let (mut messages, is_batch) = decoded?;
    check_initialize(&messages, is_batch, bytes.len(), &state.config)?;
    let (session, saved_state, slots) = (found.session, found.saved, found.slots);
    let version = session
        .proto
        .protocol_version()
        .unwrap_or(ProtocolVersion::V2024_11_05);
    if is_batch && !version.allows_batches() {
        return Err(TransportError::BatchRejected(format!(
            "Invalid request: JSON-RPC batches are not supported in protocol version {version}"
        )));
    }
    let sink = match session.stream() {
        Some(log) => ReplySink::Local(log),
        None => ReplySink::Remote(Arc::clone(&state.store), session.id.clone()),
    };
    state
        .route_client_messages(&session.id, &mut messages)
        .await;
    let outbound: Arc<dyn Outbound> = match &sink {
        ReplySink::Local(log) => Arc::new(LogOutbound {
            log: Arc::clone(log),
        }),
        ReplySink::Remote(store, id) => Arc::new(StoreOutbound {
            store: Arc::clone(store),
            session_id: id.clone(),
        }),
    };
    let replies = state.run_all(&session.proto, messages, outbound, parts.extensions);
    let task_state = Arc::clone(&state);
    let work = async move {
        let replies = replies.await;
        task_state
            .save_if_changed(&session.proto, &saved_state)
            .await;
        for event in super::reply_events(replies, is_batch) {
            sink.send(event).await;
        }
        drop(slots);
    };
    state.run_call(work).await;
    Ok((StatusCode::ACCEPTED, "Accepted").into_response())
}
