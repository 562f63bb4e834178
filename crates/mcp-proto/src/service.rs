//! The seam between a transport and the protocol logic.
//!
//! A transport (HTTP+SSE, streamable HTTP, stdio, a test harness) owns the sockets. For each
//! message a client sends it calls [`McpService::handle`] with a [`MessageContext`]: the
//! [`Session`] the message belongs to, an [`Outbound`] sink for messages the service sends
//! while handling it (progress, logs, requests to the client), and the HTTP request's
//! extensions (where an auth layer puts the caller's identity). The service answers with
//! the response to send, or `None` for notifications, responses and cancelled requests.
//!
//! [`crate::McpServer`] implements the trait; users may implement their own.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use futures_channel::oneshot;

use crate::cancel::CancellationSignal;
use crate::jsonrpc::{ErrorObject, Message, RequestId, Response};
use crate::types::{ClientCapabilities, Implementation, LoggingLevel};
use crate::version::ProtocolVersion;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a message could not be sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The stream to the client is closed.
    #[error("the client's stream is closed")]
    Closed,
    /// The bounded queue to the client is full and its overflow rule dropped the message.
    #[error("the queue to the client is full")]
    Full,
    /// This transport cannot carry server-to-client messages for this request.
    #[error("no stream to the client for this message")]
    Unsupported,
}

/// Where a service sends server-to-client messages (progress, logging, list_changed,
/// requests to the client). Each transport decides the stream, the queue bound and the
/// overflow rule.
pub trait Outbound: Send + Sync {
    /// Queues one message for the client.
    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), SendError>>;
}

/// The authenticated subject of a request (a token's `sub`), put in the request's
/// extensions by whatever authenticated it (`mcp-auth`'s bearer layer does).
///
/// Transports bind a session to the subject that created it: the same session id presented
/// by another subject is unknown to them. Without one (no authentication), sessions are
/// bound to nobody.
///
/// ```
/// let mut extensions = http::Extensions::new();
/// extensions.insert(mcp_proto::AuthSubject::new("alice"));
/// assert_eq!(mcp_proto::AuthSubject::of(&extensions).as_deref(), Some("alice"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthSubject(pub std::sync::Arc<str>);

impl AuthSubject {
    /// A subject.
    pub fn new(subject: impl Into<std::sync::Arc<str>>) -> Self {
        Self(subject.into())
    }

    /// The subject in a request's extensions, if it was authenticated.
    pub fn of(extensions: &http::Extensions) -> Option<std::sync::Arc<str>> {
        extensions
            .get::<AuthSubject>()
            .map(|s| std::sync::Arc::clone(&s.0))
    }
}

/// The stream of a request's session outside any request (the streamable HTTP `GET` stream,
/// the legacy SSE stream), wherever it is held: transports with sessions put it in each
/// request's extensions, so that what outlives the request (a task's status notifications)
/// can still reach the client.
#[derive(Clone)]
pub struct SessionStream(pub Arc<dyn Outbound>);

impl std::fmt::Debug for SessionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionStream")
    }
}

/// An [`Outbound`] that has nowhere to send: every message is refused with
/// [`SendError::Unsupported`]. For transports (or tests) without a server-to-client channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOutbound;

impl Outbound for NoOutbound {
    fn send(&self, _message: Message) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async { Err(SendError::Unsupported) })
    }
}

/// The serializable part of a session: what was negotiated. Transports that share sessions
/// between processes store this.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionState {
    /// The negotiated version; `None` before `initialize`.
    pub protocol_version: Option<ProtocolVersion>,
    /// Whether `notifications/initialized` arrived.
    pub initialized: bool,
    /// The client's name and version.
    pub client_info: Option<Implementation>,
    /// The client's capabilities.
    pub client_capabilities: ClientCapabilities,
    /// The lowest log level the client asked for.
    pub log_level: Option<LoggingLevel>,
    /// Resource URIs the client subscribed to (`resources/subscribe`).
    #[serde(default)]
    pub subscriptions: Vec<String>,
}

/// One client's session: negotiated state plus the requests it has in flight.
///
/// Transports create one per connection (legacy SSE), per `Mcp-Session-Id` (streamable
/// HTTP) or per request (stateless mode).
#[derive(Debug)]
pub struct Session {
    id: Option<String>,
    state: Mutex<Negotiated>,
    in_flight: Mutex<HashMap<RequestId, CancellationSignal>>,
    server_requests: Mutex<ServerRequests>,
    server_request_prefix: String,
}

/// The negotiated state, and the client's capabilities shared with every handler's context
/// (made once, again after each change of the state).
#[derive(Debug)]
struct Negotiated {
    state: SessionState,
    capabilities: Option<Arc<ClientCapabilities>>,
}

/// Most server-to-client requests waiting for answers in one session.
pub const MAX_PENDING_SERVER_REQUESTS: usize = 64;

type ClientAnswer = Result<serde_json::Value, ErrorObject>;

#[derive(Debug, Default)]
struct ServerRequests {
    next_id: u64,
    pending: HashMap<RequestId, oneshot::Sender<ClientAnswer>>,
}

impl Session {
    /// A session with an id (`None` for stateless requests).
    pub fn new(id: Option<String>) -> Self {
        Self::with_state(id, SessionState::default())
    }

    /// A session restored from stored state.
    pub fn with_state(id: Option<String>, state: SessionState) -> Self {
        Self {
            id,
            state: Mutex::new(Negotiated {
                state,
                capabilities: None,
            }),
            in_flight: Mutex::new(HashMap::new()),
            server_requests: Mutex::new(ServerRequests::default()),
            server_request_prefix: "srv".to_owned(),
        }
    }

    /// Sets what the ids of this session's server-to-client requests start with (default
    /// `srv`; ids are `<prefix>-<n>`). Transports that share a session between processes give
    /// each copy its own prefix, so the answer to a request can find the copy that asked.
    pub fn with_server_request_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.server_request_prefix = prefix.into();
        self
    }

    /// What the ids of this session's server-to-client requests start with.
    pub fn server_request_prefix(&self) -> &str {
        &self.server_request_prefix
    }

    /// A per-request session for stateless transports, at the given version.
    pub fn stateless(version: ProtocolVersion) -> Self {
        Self::with_state(
            None,
            SessionState {
                protocol_version: Some(version),
                initialized: true,
                ..SessionState::default()
            },
        )
    }

    /// The session id.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// A snapshot of the negotiated state.
    pub fn state(&self) -> SessionState {
        lock(&self.state).state.clone()
    }

    /// Changes the negotiated state.
    pub fn update_state<R>(&self, f: impl FnOnce(&mut SessionState) -> R) -> R {
        let mut negotiated = lock(&self.state);
        negotiated.capabilities = None;
        f(&mut negotiated.state)
    }

    /// The negotiated version, if any.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        lock(&self.state).state.protocol_version
    }

    /// The client's capabilities, shared (cloned once per change of the state, not per call).
    pub(crate) fn client_capabilities(&self) -> Arc<ClientCapabilities> {
        let mut negotiated = lock(&self.state);
        let Negotiated {
            state,
            capabilities,
        } = &mut *negotiated;
        Arc::clone(capabilities.get_or_insert_with(|| Arc::new(state.client_capabilities.clone())))
    }

    /// Registers a running request so that `notifications/cancelled` can stop it.
    pub fn begin_request(&self, id: RequestId) -> CancellationSignal {
        let signal = CancellationSignal::new();
        lock(&self.in_flight).insert(id, signal.clone());
        signal
    }

    /// Forgets a finished request.
    pub fn end_request(&self, id: &RequestId) {
        lock(&self.in_flight).remove(id);
    }

    /// Cancels a running request; `false` if it is unknown or finished.
    pub fn cancel_request(&self, id: &RequestId) -> bool {
        match lock(&self.in_flight).remove(id) {
            Some(signal) => {
                signal.cancel();
                true
            }
            None => false,
        }
    }

    /// Cancels every running request (the session is closing).
    pub fn cancel_all(&self) {
        for (_, signal) in lock(&self.in_flight).drain() {
            signal.cancel();
        }
        lock(&self.server_requests).pending.clear();
    }

    /// How many requests are running.
    pub fn in_flight(&self) -> usize {
        lock(&self.in_flight).len()
    }

    /// Allocates an id for a server-to-client request and a receiver for its answer.
    pub fn begin_server_request(
        &self,
    ) -> Result<(RequestId, oneshot::Receiver<ClientAnswer>), SendError> {
        let mut requests = lock(&self.server_requests);
        if requests.pending.len() >= MAX_PENDING_SERVER_REQUESTS {
            return Err(SendError::Full);
        }
        requests.next_id += 1;
        let id = RequestId::from(format!(
            "{}-{}",
            self.server_request_prefix, requests.next_id
        ));
        let (tx, rx) = oneshot::channel();
        requests.pending.insert(id.clone(), tx);
        Ok((id, rx))
    }

    /// Forgets a server-to-client request that could not be sent.
    pub fn abandon_server_request(&self, id: &RequestId) {
        lock(&self.server_requests).pending.remove(id);
    }

    /// Delivers the client's answer to a server-to-client request; `false` if none waits.
    pub fn complete_server_request(&self, id: &RequestId, answer: ClientAnswer) -> bool {
        match lock(&self.server_requests).pending.remove(id) {
            Some(tx) => tx.send(answer).is_ok(),
            None => false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything a service needs besides the message itself.
#[derive(Clone)]
pub struct MessageContext {
    /// The session the message belongs to.
    pub session: Arc<Session>,
    /// Where messages related to this one go.
    pub outbound: Arc<dyn Outbound>,
    /// Extensions of the HTTP request that carried the message (auth identity, etc.).
    pub extensions: http::Extensions,
}

impl std::fmt::Debug for MessageContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageContext")
            .field("session", &self.session.id())
            .finish_non_exhaustive()
    }
}

impl MessageContext {
    /// A context with no outbound channel and no extensions (tests, simple transports).
    pub fn new(session: Arc<Session>) -> Self {
        Self {
            session,
            outbound: Arc::new(NoOutbound),
            extensions: http::Extensions::new(),
        }
    }

    /// Replaces the outbound channel.
    pub fn with_outbound(mut self, outbound: Arc<dyn Outbound>) -> Self {
        self.outbound = outbound;
        self
    }

    /// Replaces the extensions.
    pub fn with_extensions(mut self, extensions: http::Extensions) -> Self {
        self.extensions = extensions;
        self
    }
}

/// A reply already serialized: the bytes of one JSON-RPC message and how the request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedReply {
    /// The message's compact JSON, as [`Message::to_vec`] writes it.
    pub bytes: Vec<u8>,
    /// How the request ended (for metrics and logs, without reading the bytes again).
    pub outcome: ReplyOutcome,
}

/// How a request ended, as its reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyOutcome {
    /// A result (or a message that is not a response).
    Result,
    /// A result with `isError: true` (a `tools/call` whose tool failed).
    ToolError,
    /// A JSON-RPC error with this code.
    Error(i64),
}

impl EncodedReply {
    /// Serializes a message.
    pub fn from_message(message: &Message) -> Self {
        let outcome = match message {
            Message::Response(Response {
                outcome: Err(e), ..
            }) => ReplyOutcome::Error(e.code),
            Message::Response(Response {
                outcome: Ok(result),
                ..
            }) if result.get("isError") == Some(&serde_json::Value::Bool(true)) => {
                ReplyOutcome::ToolError
            }
            _ => ReplyOutcome::Result,
        };
        Self {
            bytes: message.to_vec(),
            outcome,
        }
    }
}

/// Protocol logic behind a transport.
pub trait McpService: Send + Sync + 'static {
    /// Handles one client message. Returns the response to a request, or `None` for
    /// notifications, responses, and requests that were cancelled.
    fn handle(&self, message: Message, ctx: MessageContext) -> BoxFuture<'static, Option<Message>>;

    /// [`McpService::handle`] with the reply serialized: the bytes a transport writes. The
    /// default serializes what `handle` answers; [`crate::McpServer`] writes a `tools/call`
    /// result straight from the tool's serialized value, building no [`serde_json::Value`]
    /// for it. Either way the bytes are those of `handle`'s reply and [`Message::to_vec`]
    /// (up to the order of the members of a tool's own structured value).
    fn handle_encoded(
        &self,
        message: Message,
        ctx: MessageContext,
    ) -> BoxFuture<'static, Option<EncodedReply>> {
        let reply = self.handle(message, ctx);
        Box::pin(async move { reply.await.map(|m| EncodedReply::from_message(&m)) })
    }

    /// Called by a transport when a session ends (stream closed, DELETE, expiry).
    fn session_closed(&self, session: &Session) {
        session.cancel_all();
    }

    /// Called by a transport when it opens a session's stream for messages unrelated to any
    /// request (the streamable HTTP `GET` stream, the legacy SSE stream). The service may
    /// keep `outbound` to announce changes (list changes, resource updates); a failing send
    /// means the stream is gone.
    fn stream_opened(&self, session: &Arc<Session>, outbound: Arc<dyn Outbound>) {
        let _ = (session, outbound);
    }

    /// Called by a transport periodically (its keep-alive tick): takes over, and runs again
    /// here, tasks of restartable tools whose replica died; returns how many. The default
    /// restarts none.
    fn resume_orphaned_tasks(&self, host: crate::task::TaskHost) -> BoxFuture<'static, usize> {
        let _ = host;
        Box::pin(async { 0 })
    }
}

impl<S: McpService + ?Sized> McpService for Arc<S> {
    fn handle(&self, message: Message, ctx: MessageContext) -> BoxFuture<'static, Option<Message>> {
        (**self).handle(message, ctx)
    }

    fn handle_encoded(
        &self,
        message: Message,
        ctx: MessageContext,
    ) -> BoxFuture<'static, Option<EncodedReply>> {
        (**self).handle_encoded(message, ctx)
    }

    fn session_closed(&self, session: &Session) {
        (**self).session_closed(session)
    }

    fn stream_opened(&self, session: &Arc<Session>, outbound: Arc<dyn Outbound>) {
        (**self).stream_opened(session, outbound)
    }

    fn resume_orphaned_tasks(&self, host: crate::task::TaskHost) -> BoxFuture<'static, usize> {
        (**self).resume_orphaned_tasks(host)
    }
}
