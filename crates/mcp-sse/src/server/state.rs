//! Shared server state: the session registry, limits, shutdown, and running one message.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mcp_proto::jsonrpc::code;
use mcp_proto::{
    BoxFuture, ErrorObject, McpService, Message, MessageContext, Outbound, Response, SendError,
    Session, SessionState,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::config::ServerConfig;
use super::event_log::EventLog;
use super::transport_error::TransportError;
use mcp_proto::types::method::CANCELLED;

use crate::store::{DeliveryEvent, NewSession, SessionStore, StoreError, TransportKind};

/// Which transport a session belongs to.
pub(crate) type SessionKind = TransportKind;

/// One live session of either transport.
#[derive(Debug)]
pub(crate) struct HttpSession {
    pub(crate) id: String,
    pub(crate) kind: SessionKind,
    pub(crate) proto: Arc<Session>,
    /// Legacy: the session stream. Streamable: the standalone GET stream, when open.
    pub(crate) stream: Mutex<Option<Arc<EventLog>>>,
    /// Streamable: recent response streams, for `Last-Event-ID` resumption.
    pub(crate) response_streams: Mutex<VecDeque<(u64, Arc<EventLog>)>>,
    next_stream: AtomicU64,
    last_seen: Mutex<Instant>,
    created: Instant,
    pub(crate) in_flight: Arc<Semaphore>,
    /// Fires when the session ends: its streams close.
    pub(crate) closed: CancellationToken,
    /// The authenticated subject that created it; another subject cannot use it.
    pub(crate) subject: Option<Arc<str>>,
    /// A transient copy of a shared session whose stream another replica holds: the service
    /// to tell when the request is over (it was told of a stream through the store).
    transient_of: Option<TransientOf>,
    /// Shared mode: keeps the session findable by its server-request prefix while it lives.
    route: Option<RouteGuard>,
}

/// Sessions by the prefix of their server-to-client request ids: where a client's answer
/// goes (shared mode).
type Routes = Arc<Mutex<HashMap<String, std::sync::Weak<Session>>>>;

/// Removes a session's route when it is dropped.
#[derive(Debug)]
struct RouteGuard {
    routes: std::sync::Weak<Mutex<HashMap<String, std::sync::Weak<Session>>>>,
    prefix: String,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if let Some(routes) = self.routes.upgrade() {
            lock(&routes).remove(&self.prefix);
        }
    }
}

/// The service a transient session was announced to.
struct TransientOf(Arc<dyn McpService>);

impl std::fmt::Debug for TransientOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransientOf")
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        if let Some(TransientOf(service)) = self.transient_of.take() {
            service.session_closed(&self.proto);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HttpSession {
    fn new(
        id: String,
        kind: SessionKind,
        proto: Session,
        subject: Option<Arc<str>>,
        max_in_flight: usize,
        closed: CancellationToken,
    ) -> Self {
        Self {
            id,
            kind,
            proto: Arc::new(proto),
            stream: Mutex::new(None),
            response_streams: Mutex::new(VecDeque::new()),
            next_stream: AtomicU64::new(0),
            last_seen: Mutex::new(Instant::now()),
            created: Instant::now(),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            closed,
            subject,
            transient_of: None,
            route: None,
        }
    }

    pub(crate) fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        lock(&self.last_seen).elapsed()
    }

    /// Whether the session outlived its idle timeout (streamable) or its lifetime (any).
    fn is_expired(&self, config: &ServerConfig) -> bool {
        self.created.elapsed() >= config.session_lifetime
            || (self.kind == SessionKind::Streamable
                && self.idle_for() > config.session_idle_timeout)
    }

    /// A new response stream id, unique within the session (0 is the standalone stream).
    pub(crate) fn next_stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The subject of a request may use this session.
    fn admits(&self, subject: Option<&str>) -> bool {
        self.subject.as_deref() == subject
    }

    /// Remembers a response stream for resumption, forgetting the oldest beyond `keep`.
    pub(crate) fn remember_stream(&self, stream_id: u64, log: Arc<EventLog>, keep: usize) {
        let mut streams = lock(&self.response_streams);
        streams.push_back((stream_id, log));
        while streams.len() > keep {
            streams.pop_front();
        }
    }

    /// A remembered response stream.
    pub(crate) fn find_stream(&self, stream_id: u64) -> Option<Arc<EventLog>> {
        lock(&self.response_streams)
            .iter()
            .find(|(id, _)| *id == stream_id)
            .map(|(_, log)| Arc::clone(log))
    }

    /// Whether this replica holds an open stream of the session.
    pub(crate) fn has_open_stream(&self) -> bool {
        self.stream().is_some_and(|l| !l.is_closed())
    }

    pub(crate) fn stream(&self) -> Option<Arc<EventLog>> {
        lock(&self.stream).clone()
    }

    pub(crate) fn set_stream(&self, log: Option<Arc<EventLog>>) -> Option<Arc<EventLog>> {
        std::mem::replace(&mut *lock(&self.stream), log)
    }
}

/// State shared by every route.
pub(crate) struct ServerState {
    pub(crate) service: Arc<dyn McpService>,
    pub(crate) config: ServerConfig,
    sessions: Mutex<HashMap<String, Arc<HttpSession>>>,
    last_sweep: Mutex<Instant>,
    /// Fires on shutdown: every stream closes.
    pub(crate) shutdown: CancellationToken,
    /// Set once shutdown starts: no new sessions.
    pub(crate) draining: AtomicBool,
    /// Running calls, awaited on shutdown.
    pub(crate) calls: TaskTracker,
    /// Fires when the shutdown grace period is over: running calls are cancelled.
    pub(crate) cancel_calls: CancellationToken,
    /// Where sessions are shared with other replicas (`None`: this process alone).
    pub(crate) store: Option<Arc<dyn SessionStore>>,
    /// Whether the delivery and keep-alive tasks of the shared store run.
    shared_tasks: AtomicBool,
    /// Shared mode: sessions by server-request prefix, for answers from the client.
    routes: Routes,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("sessions", &self.session_count())
            .finish_non_exhaustive()
    }
}

impl Drop for ServerState {
    fn drop(&mut self) {
        // Stops the shared store's tasks of a server dropped without draining.
        self.shutdown.cancel();
    }
}

impl ServerState {
    pub(crate) fn new(
        service: Arc<dyn McpService>,
        config: ServerConfig,
        store: Option<Arc<dyn SessionStore>>,
    ) -> Self {
        Self {
            service,
            config,
            sessions: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
            shutdown: CancellationToken::new(),
            draining: AtomicBool::new(false),
            calls: TaskTracker::new(),
            cancel_calls: CancellationToken::new(),
            store,
            shared_tasks: AtomicBool::new(false),
            routes: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub(crate) fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Creates and registers a session, or says why not (capacity, shutdown).
    pub(crate) fn create_session(
        &self,
        kind: SessionKind,
        subject: Option<Arc<str>>,
    ) -> Result<Arc<HttpSession>, TransportError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(TransportError::ShuttingDown);
        }
        self.sweep_expired();
        let id = new_session_id();
        let session =
            Arc::new(self.new_http_session(id.clone(), kind, SessionState::default(), subject));
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= self.config.max_sessions {
            return Err(TransportError::TooManySessions);
        }
        sessions.insert(id, Arc::clone(&session));
        tracing::debug!(session = %session.id, ?kind, "session created");
        Ok(session)
    }

    /// A live session of the given kind, created by `subject`; expired sessions are ended on
    /// lookup.
    pub(crate) fn session(
        &self,
        id: &str,
        kind: SessionKind,
        subject: Option<&str>,
    ) -> Option<Arc<HttpSession>> {
        let session = lock(&self.sessions).get(id).cloned()?;
        if session.kind != kind || !session.admits(subject) {
            return None;
        }
        if session.is_expired(&self.config) {
            self.end_session(id);
            return None;
        }
        session.touch();
        Some(session)
    }

    /// Ends a session: forgets it, closes its streams, cancels its calls.
    pub(crate) fn end_session(&self, id: &str) -> bool {
        let Some(session) = lock(&self.sessions).remove(id) else {
            return false;
        };
        session.closed.cancel();
        if let Some(log) = session.set_stream(None) {
            log.close();
        }
        self.service.session_closed(&session.proto);
        tracing::debug!(session = %id, "session ended");
        true
    }

    /// Ends idle streamable sessions; runs at most once a second, from session creation.
    fn sweep_expired(&self) {
        {
            let mut last = lock(&self.last_sweep);
            if last.elapsed() < Duration::from_secs(1) {
                return;
            }
            *last = Instant::now();
        }
        let expired: Vec<String> = lock(&self.sessions)
            .values()
            .filter(|s| s.is_expired(&self.config))
            .map(|s| s.id.clone())
            .collect();
        for id in expired {
            self.end_session(&id);
        }
    }

    /// A session object; in shared mode its server-to-client requests get ids that name this
    /// replica and this copy of the session, and it is findable by them while it lives.
    fn new_http_session(
        &self,
        id: String,
        kind: SessionKind,
        state: SessionState,
        subject: Option<Arc<str>>,
    ) -> HttpSession {
        let mut proto = Session::with_state(Some(id.clone()), state);
        let mut prefix = None;
        if let Some(store) = &self.store {
            let p = format!(
                "{ROUTED_PREFIX}{}.{:016x}",
                store.replica_id(),
                rand::random::<u64>()
            );
            proto = proto.with_server_request_prefix(p.clone());
            prefix = Some(p);
        }
        let mut session = HttpSession::new(
            id,
            kind,
            proto,
            subject,
            self.config.max_in_flight_per_session,
            self.shutdown.child_token(),
        );
        if let Some(prefix) = prefix {
            lock(&self.routes).insert(prefix.clone(), Arc::downgrade(&session.proto));
            session.route = Some(RouteGuard {
                routes: Arc::downgrade(&self.routes),
                prefix,
            });
        }
        session
    }

    /// Shared mode: takes the client's answers to server-to-client requests out of `messages`
    /// and sends each to the copy of the session that asked, here or on another replica; and
    /// takes out cancellations, broadcast to every replica (the call may run on any).
    pub(crate) async fn route_client_messages(
        &self,
        session_id: &str,
        messages: &mut Vec<Result<Message, Response>>,
    ) {
        let Some(store) = &self.store else {
            return;
        };
        let mut answers = Vec::new();
        let mut cancellations = Vec::new();
        messages.retain(|m| match m {
            Ok(Message::Response(r)) => match routed_target(r) {
                Some((replica, prefix)) => {
                    answers.push((replica.to_owned(), prefix.to_owned(), r.clone()));
                    false
                }
                None => true,
            },
            Ok(Message::Notification(n)) if n.method == CANCELLED => {
                cancellations.push(Message::Notification(n.clone()).to_json());
                false
            }
            _ => true,
        });
        // The call a cancellation is for may run on any replica: tell them all.
        for cancellation in cancellations {
            if let Err(e) = store.broadcast(session_id, &cancellation).await {
                tracing::warn!(session = %session_id, error = %e, "cannot broadcast a cancellation");
            }
        }
        for (replica, prefix, answer) in answers {
            if replica == store.replica_id() {
                self.complete_answer(&prefix, answer);
                continue;
            }
            let json = Message::Response(answer).to_json();
            if let Err(e) = store.forward_to_replica(&replica, session_id, &json).await {
                tracing::warn!(session = %session_id, %replica, error = %e, "cannot forward a client answer to its replica");
            }
        }
    }

    /// Cancels `request` in whichever copy of the session runs it on this replica.
    fn cancel_here(&self, session_id: &str, request: &mcp_proto::RequestId) {
        let copies: Vec<Arc<Session>> = lock(&self.routes)
            .values()
            .filter_map(std::sync::Weak::upgrade)
            .filter(|s| s.id() == Some(session_id))
            .collect();
        for copy in copies {
            if copy.cancel_request(request) {
                tracing::debug!(session = %session_id, %request, "call cancelled");
            }
        }
    }

    /// Hands a client's answer to the session copy on this replica whose request it answers.
    fn complete_answer(&self, prefix: &str, answer: Response) {
        let session = lock(&self.routes)
            .get(prefix)
            .and_then(std::sync::Weak::upgrade);
        let (Some(session), Some(id)) = (session, answer.id) else {
            tracing::debug!(%prefix, "an answer for a request that no longer waits; dropped");
            return;
        };
        if !session.complete_server_request(&id, answer.outcome) {
            tracing::debug!(%id, "an answer for a request that no longer waits; dropped");
        }
    }

    /// Records a session just created here in the shared store, with what was negotiated so
    /// far (the caller answers 503 when this fails; the session is ended).
    pub(crate) async fn store_session(&self, session: &HttpSession) -> Result<(), TransportError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let idle = match session.kind {
            // Its replica restarts the idle time on every keep-alive tick while the stream is
            // open; a replica that dies leaves a record that expires a few ticks later.
            TransportKind::Legacy => (self.config.keep_alive * 4).max(Duration::from_secs(10)),
            TransportKind::Streamable => self.config.session_idle_timeout,
        };
        let new = NewSession::new(session.id.clone(), session.kind)
            .state(session.proto.state())
            .subject(session.subject.as_deref().map(str::to_owned))
            .idle_timeout(idle)
            .max_lifetime(self.config.session_lifetime);
        match store.create(new).await {
            Ok(_) => {
                if session.kind == TransportKind::Streamable {
                    // The store has it now; this replica keeps only sessions whose streams
                    // it holds, so what is sent to this one reaches whichever replica does.
                    lock(&self.sessions).remove(&session.id);
                }
                Ok(())
            }
            Err(e) => {
                self.end_session(&session.id);
                Err(e.into())
            }
        }
    }

    /// A session of the shared store, for a request of `subject` (one round trip): this
    /// replica's live session when it has one (its state refreshed from the store), else a
    /// transient session on the stored state. `claim` makes this replica its owner. Returns
    /// the state as stored, to tell later whether the request changed it.
    pub(crate) async fn shared_session(
        &self,
        store: &Arc<dyn SessionStore>,
        id: &str,
        kind: SessionKind,
        subject: Option<&str>,
        claim: bool,
    ) -> Result<(Arc<HttpSession>, SessionState), TransportError> {
        let record = if claim {
            store.claim(id, subject).await?
        } else {
            store.load(id, subject).await?
        };
        let Some(record) = record.filter(|r| r.kind == kind) else {
            // Expired, deleted on another replica, or another subject's.
            if lock(&self.sessions)
                .get(id)
                .is_some_and(|s| s.admits(subject))
            {
                self.end_session(id);
            }
            return Err(TransportError::UnknownSession);
        };
        let local = lock(&self.sessions).get(id).cloned();
        let session = match local {
            Some(session) if session.kind == kind && session.admits(subject) => {
                session.proto.update_state(|state| {
                    if *state != record.state {
                        *state = record.state.clone();
                    }
                });
                session.touch();
                session
            }
            _ => {
                if self.draining.load(Ordering::SeqCst) {
                    return Err(TransportError::ShuttingDown);
                }
                let mut session = self.new_http_session(
                    record.id.clone(),
                    kind,
                    record.state.clone(),
                    record.subject.as_deref().map(Arc::from),
                );
                if !claim && record.owner != store.replica_id() {
                    // What the service sends the session outside a request's own stream (list
                    // changes, resource updates) while this request runs goes to the replica
                    // holding its stream.
                    self.service.stream_opened(
                        &session.proto,
                        Arc::new(StoreOutbound {
                            store: Arc::clone(store),
                            session_id: record.id.clone(),
                        }),
                    );
                    session.transient_of = Some(TransientOf(Arc::clone(&self.service)));
                }
                let session = Arc::new(session);
                if claim {
                    // This replica holds its stream from now on: keep it live here.
                    let mut sessions = lock(&self.sessions);
                    if sessions.len() >= self.config.max_sessions {
                        return Err(TransportError::TooManySessions);
                    }
                    sessions.insert(record.id.clone(), Arc::clone(&session));
                }
                session
            }
        };
        Ok((session, record.state))
    }

    /// Saves a session's state in the shared store if handling a request changed it from
    /// `saved`, so the next request on any replica sees it.
    pub(crate) async fn save_if_changed(&self, session: &Session, saved: &SessionState) {
        let (Some(store), Some(id)) = (&self.store, session.id()) else {
            return;
        };
        if !session.update_state(|state| state != saved) {
            return;
        }
        let state = session.state();
        match store.save_state(id, &state).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!(session = %id, "session ended before its state was saved"),
            Err(e) => tracing::warn!(session = %id, error = %e, "cannot save session state"),
        }
    }

    /// Deletes a session from the shared store in the background (its stream closed here).
    pub(crate) fn forget_in_store(&self, id: &str, subject: Option<Arc<str>>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id = id.to_owned();
        runtime.spawn(async move {
            if let Err(e) = store.delete(&id, subject.as_deref()).await {
                // Its record expires by itself: nothing refreshes it any more.
                tracing::debug!(session = %id, error = %e, "cannot delete session from the store");
            }
        });
    }

    /// A new stream id for event ids in shared mode: random, so replicas never reuse one for
    /// the same session; odd for response streams, even for standalone streams. 53 bits, so
    /// JavaScript clients read them exactly.
    pub(crate) fn shared_stream_id(standalone: bool) -> u64 {
        let id = (rand::random::<u64>() >> 11).max(2);
        if standalone { id & !1 } else { id | 1 }
    }

    /// Starts, once, what a shared store needs running on this replica: the loop that writes
    /// deliveries from other replicas to the streams held here, and the keep-alive tick that
    /// keeps those sessions alive in the store (and ends the ones that ended elsewhere).
    pub(crate) fn start_shared_tasks(self: &Arc<Self>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if self.shared_tasks.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("the shared session store needs a Tokio runtime; deliveries stay off");
            self.shared_tasks.store(false, Ordering::SeqCst);
            return;
        };
        let stop = self.shutdown.clone();
        runtime.spawn(deliveries_loop(
            Arc::downgrade(self),
            Arc::clone(&store),
            stop.clone(),
        ));
        let tick = self.config.keep_alive.max(Duration::from_millis(100));
        runtime.spawn(keep_alive_loop(Arc::downgrade(self), store, stop, tick));
    }

    /// Writes one delivery from another replica to the stream it is for.
    fn apply_delivery(&self, session_id: &str, event: DeliveryEvent) {
        match event {
            DeliveryEvent::Message(json) => {
                let log = lock(&self.sessions)
                    .get(session_id)
                    .and_then(|s| s.stream());
                match log {
                    Some(log) if log.append(Some(Arc::from(json))).is_some() => {}
                    _ => {
                        tracing::debug!(session = %session_id, "no open stream here for a delivery; dropped")
                    }
                }
            }
            DeliveryEvent::SessionEnded => {
                self.end_session(session_id);
            }
            DeliveryEvent::FromClient(json) => match mcp_proto::decode(json.as_bytes()) {
                Ok(mcp_proto::Decoded::Single(Message::Response(answer))) => {
                    if let Some((_, prefix)) = routed_target(&answer) {
                        let prefix = prefix.to_owned();
                        self.complete_answer(&prefix, answer);
                    }
                }
                Ok(mcp_proto::Decoded::Single(Message::Notification(n)))
                    if n.method == CANCELLED =>
                {
                    let request =
                        n.params
                            .as_ref()
                            .and_then(|p| p.get("requestId"))
                            .and_then(|id| {
                                serde_json::from_value::<mcp_proto::RequestId>(id.clone()).ok()
                            });
                    if let Some(request) = request {
                        self.cancel_here(session_id, &request);
                    }
                }
                _ => {
                    tracing::debug!(session = %session_id, "a forwarded client message is not an answer; dropped")
                }
            },
        }
    }

    /// The sessions whose streams this replica holds open.
    fn held_streams(&self) -> Vec<String> {
        lock(&self.sessions)
            .values()
            .filter(|s| s.has_open_stream())
            .map(|s| s.id.clone())
            .collect()
    }

    /// Runs the work of one POST: polled once right here, so a call that completes without
    /// waiting costs no task and no wake-up; otherwise it goes on as a tracked task (awaited on
    /// shutdown), exactly as if it had been spawned from the start.
    pub(crate) async fn run_call(
        &self,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let mut work = Box::pin(work);
        let done =
            std::future::poll_fn(|cx| std::task::Poll::Ready(work.as_mut().poll(cx).is_ready()))
                .await;
        if !done {
            self.calls.spawn(work);
        }
    }

    /// Runs one client message through the service, with the call timeout.
    pub(crate) fn run_message(
        self: &Arc<Self>,
        session: Arc<Session>,
        message: Message,
        outbound: Arc<dyn Outbound>,
        extensions: http::Extensions,
    ) -> BoxFuture<'static, Option<Message>> {
        let state = Arc::clone(self);
        let (method, id) = match &message {
            Message::Request(r) => (r.method.clone(), Some(r.id.clone())),
            Message::Notification(n) => (n.method.clone(), None),
            Message::Response(_) => ("(response)".to_owned(), None),
        };
        let span = tracing::info_span!("mcp.message", session = session.id().unwrap_or("-"), %method, id = ?id.as_ref().map(ToString::to_string));
        Box::pin(
            async move {
                let ctx = MessageContext::new(Arc::clone(&session))
                    .with_outbound(outbound)
                    .with_extensions(extensions);
                let fut = state.service.handle(message, ctx);
                let outcome = tokio::select! {
                    reply = tokio::time::timeout(state.config.call_timeout, fut) => reply.ok(),
                    () = state.cancel_calls.cancelled() => {
                        let id = id?;
                        session.cancel_request(&id);
                        tracing::warn!("call cancelled: the server is shutting down");
                        return Some(error_reply(id, code::INTERNAL_ERROR, "Server shutting down: the call was cancelled".into()));
                    }
                };
                match outcome {
                    Some(reply) => reply,
                    None => {
                        let id = id?;
                        session.cancel_request(&id);
                        tracing::warn!(timeout = ?state.config.call_timeout, "call timed out");
                        let secs = state.config.call_timeout.as_secs_f64();
                        Some(error_reply(id, code::REQUEST_TIMEOUT, format!("Request timed out after {secs} s")))
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// Receives this replica's deliveries until shutdown, resubscribing after a failure.
async fn deliveries_loop(
    state: std::sync::Weak<ServerState>,
    store: Arc<dyn SessionStore>,
    stop: CancellationToken,
) {
    loop {
        let subscribed = tokio::select! {
            s = store.subscribe() => s,
            () = stop.cancelled() => return,
        };
        let mut deliveries = match subscribed {
            Ok(d) => d,
            Err(StoreError::AlreadySubscribed) => {
                tracing::error!(
                    "another server in this process receives this replica's deliveries; give each server its own store"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to deliveries; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        loop {
            let delivery = tokio::select! {
                d = deliveries.recv() => d,
                () = stop.cancelled() => return,
            };
            let Some(delivery) = delivery else {
                tracing::debug!("delivery subscription ended");
                return;
            };
            let Some(state) = state.upgrade() else {
                return;
            };
            state.apply_delivery(&delivery.session_id, delivery.event);
        }
    }
}

/// Every `tick`, restarts the idle time of the sessions whose streams are held here and ends
/// those the store no longer has (expired, or deleted on another replica).
async fn keep_alive_loop(
    state: std::sync::Weak<ServerState>,
    store: Arc<dyn SessionStore>,
    stop: CancellationToken,
    tick: Duration,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = stop.cancelled() => return,
        }
        let Some(ids) = state.upgrade().map(|s| s.held_streams()) else {
            return;
        };
        if ids.is_empty() {
            continue;
        }
        match store.touch(&ids).await {
            Ok(alive) => {
                let Some(state) = state.upgrade() else {
                    return;
                };
                for (id, alive) in ids.iter().zip(alive) {
                    if !alive {
                        tracing::debug!(session = %id, "session gone from the store; closing its stream");
                        state.end_session(id);
                    }
                }
            }
            // Streams stay open while the store is away; their records outlive a short outage.
            Err(e) => {
                tracing::warn!(error = %e, sessions = ids.len(), "cannot refresh sessions in the store")
            }
        }
    }
}

/// An [`Outbound`] for a session whose stream another replica holds: each message is
/// delivered to it through the shared store.
#[derive(Debug)]
pub(crate) struct StoreOutbound {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) session_id: String,
}

impl Outbound for StoreOutbound {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            match self
                .store
                .deliver(&self.session_id, &message.to_json())
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(SendError::Closed),
                Err(e) => {
                    tracing::warn!(session = %self.session_id, error = %e, "cannot deliver a message to the session's replica");
                    Err(SendError::Closed)
                }
            }
        })
    }
}

/// What the server-request prefixes of shared sessions start with: `srv.<replica>.<copy>`.
const ROUTED_PREFIX: &str = "srv.";

/// The replica and session-copy prefix an answer is for, from its id
/// (`srv.<replica>.<copy>-<n>`); `None` for other ids.
fn routed_target(answer: &Response) -> Option<(&str, &str)> {
    let Some(mcp_proto::RequestId::String(id)) = &answer.id else {
        return None;
    };
    let (prefix, n) = id.rsplit_once('-')?;
    n.parse::<u64>().ok()?;
    let (replica, copy) = prefix.strip_prefix(ROUTED_PREFIX)?.rsplit_once('.')?;
    // Ids come back from the client: only well-formed ones are routed (a forged one must not
    // name arbitrary Redis keys).
    let plain = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    };
    (plain(replica, 128) && copy.len() == 16 && copy.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some((replica, prefix))
}

/// A JSON-RPC error answer to request `id`.
fn error_reply(id: mcp_proto::RequestId, code: i64, message: String) -> Message {
    Message::Response(Response::error(Some(id), ErrorObject::new(code, message)))
}

fn new_session_id() -> String {
    // `rand::random` draws from a CSPRNG (ChaCha seeded by the OS).
    format!("{:032x}", rand::random::<u128>())
}

/// An [`Outbound`] that appends to an event log.
#[derive(Debug)]
pub(crate) struct LogOutbound {
    pub(crate) log: Arc<EventLog>,
}

impl Outbound for LogOutbound {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), SendError>> {
        let result = match self.log.append(Some(Arc::from(message.to_json()))) {
            Some(_) => Ok(()),
            None => Err(SendError::Closed),
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &str) -> Response {
        Response::result(
            mcp_proto::RequestId::String(id.into()),
            serde_json::json!({}),
        )
    }

    #[test]
    fn answers_route_only_by_well_formed_ids() {
        assert_eq!(
            routed_target(&answer("srv.replica-1.00112233aabbccdd-7")),
            Some(("replica-1", "srv.replica-1.00112233aabbccdd"))
        );
        assert_eq!(
            routed_target(&answer("srv.a.b.00112233aabbccdd-1")),
            Some(("a.b", "srv.a.b.00112233aabbccdd"))
        );
        for forged in [
            "srv-1",
            "srv.replica-1.00112233aabbccdd",
            "srv.replica-1.00112233aabbccdd-x",
            "srv.replica 1.00112233aabbccdd-1",
            "srv.replica-1.xyz-1",
            "srv..00112233aabbccdd-1",
            "other.replica-1.00112233aabbccdd-1",
        ] {
            assert_eq!(routed_target(&answer(forged)), None, "{forged}");
        }
        let long = format!("srv.{}.00112233aabbccdd-1", "r".repeat(129));
        assert_eq!(routed_target(&answer(&long)), None);
        assert_eq!(
            routed_target(&Response::result(
                mcp_proto::RequestId::from(3_i64),
                serde_json::json!({})
            )),
            None
        );
    }
}
