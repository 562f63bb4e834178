//! Shared server state: the session registry, limits, shutdown, and running one message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mcp_proto::jsonrpc::code;
use mcp_proto::{
    BoxFuture, EncodedReply, ErrorObject, McpService, Message, MessageContext, Outbound, Response,
    SendError, Session, SessionState,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::config::ServerConfig;
use super::event_log::EventLog;
use super::transport_error::TransportError;
use mcp_proto::types::method::CANCELLED;

use crate::TransportKind;
use crate::store::{
    CallSlotRequest, DeliveryEvent, NewSession, SessionRecord, SharedStore, StoreError,
};

/// One live session of either transport.
#[derive(Debug)]
pub(crate) struct HttpSession {
    pub(crate) id: String,
    pub(crate) kind: TransportKind,
    pub(crate) proto: Arc<Session>,
    /// Legacy SSE: the session stream. Streamable: the standalone GET stream, when open.
    pub(crate) stream: Mutex<Option<Arc<EventLog>>>,
    last_seen: Mutex<Instant>,
    created: Instant,
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
        kind: TransportKind,
        proto: Session,
        subject: Option<Arc<str>>,
        closed: CancellationToken,
    ) -> Self {
        Self {
            id,
            kind,
            proto: Arc::new(proto),
            stream: Mutex::new(None),
            last_seen: Mutex::new(Instant::now()),
            created: Instant::now(),
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

    /// Whether the session outlived its lifetime, or its idle timeout without a stream open
    /// here (a listen-only session lives as long as its stream).
    fn is_expired(&self, config: &ServerConfig) -> bool {
        self.created.elapsed() >= config.session_lifetime
            || (!self.has_open_stream() && self.idle_for() > config.session_idle_timeout)
    }

    /// The session id as logged.
    pub(crate) fn tag(&self) -> SessionTag<'_> {
        SessionTag(&self.id)
    }

    /// The subject of a request may use this session.
    fn admits(&self, subject: Option<&str>) -> bool {
        self.subject.as_deref() == subject
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
    /// Where sessions live: a `MemoryStore` by default, shared with other replicas when it
    /// is one (Redis).
    pub(crate) store: Arc<dyn SharedStore>,
    /// Whether the delivery and keep-alive tasks of the shared store run.
    shared_tasks: AtomicBool,
    /// Shared mode: sessions by server-request prefix, for answers from the client.
    routes: Routes,
    /// Where tool calls run as tasks, and where their records live.
    tasks: Mutex<mcp_proto::TaskHost>,
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
        store: Arc<dyn SharedStore>,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let tasks = crate::server::tasks::host(
            Arc::new(mcp_proto::task::MemoryTaskStore::new()),
            &config,
            shutdown.clone(),
        )
        .with_replica(store.replica_id());
        Self {
            service,
            config,
            sessions: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
            shutdown,
            draining: AtomicBool::new(false),
            calls: TaskTracker::new(),
            cancel_calls: CancellationToken::new(),
            store,
            shared_tasks: AtomicBool::new(false),
            routes: Arc::new(Mutex::new(HashMap::new())),
            tasks: Mutex::new(tasks),
        }
    }

    /// Keeps task records in `store` from now on.
    pub(crate) fn set_task_store(&self, store: Arc<dyn mcp_proto::task::TaskStore>) {
        let mut host = lock(&self.tasks);
        *host = crate::server::tasks::host(store, &self.config, self.shutdown.clone())
            .with_replica(self.store.replica_id());
    }

    /// Where tool calls run as tasks.
    pub(crate) fn task_host(&self) -> mcp_proto::TaskHost {
        lock(&self.tasks).clone()
    }

    pub(crate) fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Creates and registers a session on this replica, or says why not (capacity,
    /// shutdown); [`ServerState::store_session`] then records it in the store.
    pub(crate) fn create_session(
        &self,
        kind: TransportKind,
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
        tracing::debug!(session = %session.tag(), ?kind, "session created");
        Ok(session)
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
        tracing::debug!(session = %session.tag(), "session ended");
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
        kind: TransportKind,
        state: SessionState,
        subject: Option<Arc<str>>,
    ) -> HttpSession {
        let prefix = format!(
            "{ROUTED_PREFIX}{}.{:016x}",
            self.store.replica_id(),
            rand::random::<u64>()
        );
        let proto =
            Session::with_state(Some(id.clone()), state).with_server_request_prefix(prefix.clone());
        let mut session = HttpSession::new(id, kind, proto, subject, self.shutdown.child_token());
        lock(&self.routes).insert(prefix.clone(), Arc::downgrade(&session.proto));
        session.route = Some(RouteGuard {
            routes: Arc::downgrade(&self.routes),
            prefix,
        });
        session
    }

    /// Takes the client's answers to server-to-client requests out of `messages` and sends
    /// each to the copy of the session that asked, here or on another (live) replica; and
    /// takes out cancellations, broadcast to every replica (the call may run on any) in a
    /// bounded form: the request id and at most [`MAX_CANCEL_REASON`] characters of reason.
    pub(crate) async fn route_client_messages(
        &self,
        session_id: &str,
        messages: &mut Vec<Result<Message, Response>>,
    ) {
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
                cancellations.extend(bounded_cancellation(n.params.as_ref()));
                false
            }
            _ => true,
        });
        let store = &self.store;
        let tag = SessionTag(session_id);
        for cancellation in cancellations {
            if let Err(e) = store.broadcast(session_id, &cancellation).await {
                tracing::warn!(session = %tag, error = %e, "cannot broadcast a cancellation");
            }
        }
        for (replica, prefix, answer) in answers {
            if replica == store.replica_id() {
                self.complete_answer(session_id, &prefix, answer);
                continue;
            }
            let json = Message::Response(answer).to_json();
            if json.len() > MAX_FORWARDED_BYTES {
                tracing::warn!(session = %tag, bytes = json.len(), "a client answer too large to forward to another replica; dropped");
                continue;
            }
            match store.forward_to_replica(&replica, session_id, &json).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(session = %tag, %replica, "an answer for a replica that is not alive; dropped")
                }
                Err(e) => {
                    tracing::warn!(session = %tag, %replica, error = %e, "cannot forward a client answer to its replica")
                }
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
                tracing::debug!(session = %SessionTag(session_id), %request, "call cancelled");
            }
        }
    }

    /// Hands a client's answer to the copy of session `session_id` on this replica whose
    /// request it answers (an answer sent in another session is dropped).
    fn complete_answer(&self, session_id: &str, prefix: &str, answer: Response) {
        let session = lock(&self.routes)
            .get(prefix)
            .and_then(std::sync::Weak::upgrade)
            .filter(|s| s.id() == Some(session_id));
        let (Some(session), Some(id)) = (session, answer.id) else {
            tracing::debug!(%prefix, "an answer for a request that no longer waits; dropped");
            return;
        };
        if !session.complete_server_request(&id, answer.outcome) {
            tracing::debug!(%id, "an answer for a request that no longer waits; dropped");
        }
    }

    /// Records a session just created here in the store, with what was negotiated so far,
    /// counted against the session caps (the caller answers 503 or 429 when this fails; the
    /// session is ended).
    pub(crate) async fn store_session(
        &self,
        session: &HttpSession,
        client: &ClientKey,
    ) -> Result<(), TransportError> {
        let idle = match session.kind {
            // Its replica restarts the idle time on every keep-alive tick while the stream is
            // open; a replica that dies leaves a record that expires a few ticks later.
            TransportKind::LegacySse => (self.config.keep_alive * 4).max(Duration::from_secs(10)),
            TransportKind::StreamableHttp => self.config.session_idle_timeout,
        };
        let new = NewSession::new(session.id.clone(), session.kind)
            .state(session.proto.state())
            .subject(session.subject.as_deref().map(str::to_owned))
            .idle_timeout(idle)
            .max_lifetime(self.config.session_lifetime)
            .quota(
                client.0.clone(),
                self.config.max_sessions,
                self.config.max_sessions_per_client,
            );
        if let Err(e) = self.store.create(new).await {
            self.end_session(&session.id);
            return Err(e.into());
        }
        Ok(())
    }

    /// The session `id` of `subject`, for one request (one round trip to the store): this
    /// replica's live copy when it has one it may use (its state refreshed from the store),
    /// else a transient copy on the stored state. `claim` makes this replica its owner (a
    /// stream opens here). Returns the state as stored, to tell later whether the request
    /// changed it.
    pub(crate) async fn find_session(
        self: &Arc<Self>,
        id: &str,
        kind: TransportKind,
        subject: Option<&str>,
        lookup: Lookup,
    ) -> Result<FoundSession, TransportError> {
        let store = &self.store;
        let (record, slots) = self.load_record(id, kind, subject, lookup).await?;
        let claim = lookup == Lookup::Claim;
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
        let owned_here = claim || record.owner == store.replica_id();
        if let Some(session) = self.local_copy(id, kind, subject, owned_here) {
            if !session.proto.state_is(&record.state) {
                session
                    .proto
                    .update_state(|state| *state = record.state.clone());
            }
            session.touch();
            return Ok(FoundSession {
                session,
                saved: record.state,
                slots,
            });
        }
        if self.draining.load(Ordering::SeqCst) {
            return Err(TransportError::ShuttingDown);
        }
        let session = self.copy_of_record(&record, kind, owned_here)?;
        Ok(FoundSession {
            session,
            saved: record.state,
            slots,
        })
    }

    /// The stored record of a session, with the call slots `lookup` asks for (one round trip).
    async fn load_record(
        self: &Arc<Self>,
        id: &str,
        kind: TransportKind,
        subject: Option<&str>,
        lookup: Lookup,
    ) -> Result<(Option<SessionRecord>, Option<CallSlots>), TransportError> {
        let store = &self.store;
        Ok(match lookup {
            Lookup::Claim => (store.claim(id, subject).await?, None),
            Lookup::Calls(0) => (store.load(id, subject).await?, None),
            Lookup::Calls(n) => {
                let request = CallSlotRequest {
                    n,
                    max: self.config.max_in_flight_per_session,
                    // A slot a dead replica kept is freed once no call could still run.
                    ttl: self.config.call_timeout + Duration::from_secs(60),
                };
                match store.load_and_acquire(id, subject, request).await? {
                    Some((record, true)) => (Some(record), Some(self.call_slots(id, n))),
                    Some((record, false)) if record.kind == kind => {
                        return Err(TransportError::TooManyInFlight);
                    }
                    Some((record, false)) => (Some(record), None),
                    None => (None, None),
                }
            }
        })
    }

    /// A copy of a stored session on this replica: kept live here when this replica owns it,
    /// else transient, for one request.
    fn copy_of_record(
        &self,
        record: &SessionRecord,
        kind: TransportKind,
        owned_here: bool,
    ) -> Result<Arc<HttpSession>, TransportError> {
        let store = &self.store;
        let mut session = self.new_http_session(
            record.id.clone(),
            kind,
            record.state.clone(),
            record.subject.as_deref().map(Arc::from),
        );
        if !owned_here {
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
        if owned_here {
            // This replica holds its stream from now on: keep it live here.
            let mut sessions = lock(&self.sessions);
            if sessions.len() >= self.config.max_sessions {
                return Err(TransportError::TooManySessions);
            }
            sessions.insert(record.id.clone(), Arc::clone(&session));
        }
        Ok(session)
    }

    /// This replica's copy of a session, if it may serve a request: it is the owner's, or it
    /// holds the session's stream. A copy left behind by an owner that moved is dropped.
    fn local_copy(
        &self,
        id: &str,
        kind: TransportKind,
        subject: Option<&str>,
        owned_here: bool,
    ) -> Option<Arc<HttpSession>> {
        let mut sessions = lock(&self.sessions);
        let session = sessions.get(id)?;
        if session.kind != kind || !session.admits(subject) {
            return None;
        }
        if owned_here || session.has_open_stream() {
            return Some(Arc::clone(session));
        }
        sessions.remove(id);
        None
    }

    /// Saves a session's state in the store if handling a request changed it from `saved`,
    /// so the next request on any replica sees it.
    pub(crate) async fn save_if_changed(&self, session: &Session, saved: &SessionState) {
        let Some(id) = session.id() else {
            return;
        };
        if session.state_is(saved) {
            return;
        }
        let state = session.state();
        let tag = SessionTag(id);
        match self.store.save_state(id, &state).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(session = %tag, "session ended before its state was saved")
            }
            Err(e) => tracing::warn!(session = %tag, error = %e, "cannot save session state"),
        }
    }

    /// Deletes a session from the store in the background (its stream closed here).
    pub(crate) fn forget_in_store(&self, id: &str, subject: Option<Arc<str>>) {
        let store = Arc::clone(&self.store);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id = id.to_owned();
        runtime.spawn(async move {
            if let Err(e) = store.delete(&id, subject.as_deref()).await {
                // Its record expires by itself: nothing refreshes it any more.
                tracing::debug!(session = %SessionTag(&id), error = %e, "cannot delete session from the store");
            }
        });
    }

    /// In-flight slots of `session_id` just taken in the store.
    fn call_slots(self: &Arc<Self>, session_id: &str, n: usize) -> CallSlots {
        CallSlots {
            state: Arc::clone(self),
            session_id: session_id.to_owned(),
            n,
        }
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
        let store = Arc::clone(&self.store);
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
                        tracing::debug!(session = %SessionTag(session_id), "no open stream here for a delivery; dropped")
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
                        self.complete_answer(session_id, &prefix, answer);
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
                    tracing::debug!(session = %SessionTag(session_id), "a forwarded client message is not an answer; dropped")
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

    /// A new event log bounded as the config says (events and bytes).
    pub(crate) fn new_log(&self) -> EventLog {
        EventLog::new(self.config.stream_buffer, self.config.stream_buffer_bytes)
    }

    /// Runs the messages of one POST concurrently through the service; the future yields
    /// each one's reply (the decoding error's reply for those that did not decode).
    pub(crate) fn run_all(
        self: &Arc<Self>,
        proto: &Arc<Session>,
        messages: Vec<Result<Message, Response>>,
        outbound: Arc<dyn Outbound>,
        mut extensions: http::Extensions,
    ) -> impl std::future::Future<Output = Vec<Option<EncodedReply>>> + Send + 'static {
        let count = messages.len();
        // The last message takes the extensions themselves: one message (the usual POST)
        // copies nothing.
        let runs: Vec<_> = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| match m {
                Ok(message) => {
                    let extensions = if i + 1 == count {
                        std::mem::take(&mut extensions)
                    } else {
                        extensions.clone()
                    };
                    self.run_message(
                        Arc::clone(proto),
                        message,
                        Arc::clone(&outbound),
                        extensions,
                    )
                }
                Err(reply) => Box::pin(std::future::ready(Some(EncodedReply::from_message(
                    &Message::Response(reply),
                )))),
            })
            .collect();
        futures::future::join_all(runs)
    }

    /// Runs one client message through the service, with the call timeout.
    pub(crate) fn run_message(
        self: &Arc<Self>,
        session: Arc<Session>,
        message: Message,
        outbound: Arc<dyn Outbound>,
        extensions: http::Extensions,
    ) -> BoxFuture<'static, Option<EncodedReply>> {
        let state = Arc::clone(self);
        let crate::metrics::MessageLabels { method, id, tool } =
            crate::metrics::MessageLabels::of(&message);
        let transport = crate::server::observe::transport_of(&extensions, &self.config);
        let span = tracing::info_span!("mcp.message", transport, session = %SessionTag(session.id().unwrap_or("-")), %method, id = ?id.as_ref().map(ToString::to_string));
        Box::pin(
            async move {
                let started = std::time::Instant::now();
                let mut extensions = extensions;
                extensions.insert(state.task_host());
                if let Some(id) = session.id() {
                    // The session's own stream, wherever it is held (tasks notify on it).
                    extensions.insert(mcp_proto::SessionStream(Arc::new(StoreOutbound {
                        store: Arc::clone(&state.store),
                        session_id: id.to_owned(),
                    })));
                }
                let ctx = MessageContext::new(Arc::clone(&session))
                    .with_outbound(outbound)
                    .with_extensions(extensions);
                let fut = state.service.handle_encoded(message, ctx);
                let mut timed_out = false;
                let reply = async {
                    let outcome = tokio::select! {
                        // The call first: one that finishes at once never waits on the token.
                        biased;
                        reply = tokio::time::timeout(state.config.call_timeout, fut) => reply.ok(),
                        () = state.cancel_calls.cancelled() => {
                            let id = id?;
                            session.cancel_request(&id);
                            tracing::warn!("call cancelled: the server is shutting down");
                            return Some(EncodedReply::from_message(&error_reply(id, code::INTERNAL_ERROR, "Server shutting down: the call was cancelled".into())));
                        }
                    };
                    match outcome {
                        Some(reply) => reply,
                        None => {
                            timed_out = true;
                            let id = id?;
                            session.cancel_request(&id);
                            tracing::warn!(timeout = ?state.config.call_timeout, "call timed out");
                            let secs = state.config.call_timeout.as_secs_f64();
                            Some(EncodedReply::from_message(&error_reply(id, code::REQUEST_TIMEOUT, format!("Request timed out after {secs} s"))))
                        }
                    }
                }
                .await;
                crate::metrics::record_message(
                    &crate::metrics::HandledMessage {
                        transport,
                        method: &method,
                        tool: tool.as_deref(),
                        timed_out,
                        elapsed: started.elapsed(),
                    },
                    reply.as_ref().map(|r| r.outcome),
                );
                reply
            }
            .instrument(span),
        )
    }
}

/// Receives this replica's deliveries until shutdown, resubscribing after a failure.
async fn deliveries_loop(
    state: std::sync::Weak<ServerState>,
    store: Arc<dyn SharedStore>,
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
/// those the store no longer has (expired, or deleted on another replica), and takes over
/// the restartable tasks of replicas that died.
async fn keep_alive_loop(
    state: std::sync::Weak<ServerState>,
    store: Arc<dyn SharedStore>,
    stop: CancellationToken,
    tick: Duration,
) {
    loop {
        // Alive for a few ticks: answers from clients are forwarded here only meanwhile.
        if let Err(e) = store.heartbeat(tick * 3).await {
            tracing::warn!(error = %e, "cannot tell the store this replica is alive");
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = stop.cancelled() => return,
        }
        let Some(ids) = state.upgrade().map(|s| s.held_streams()) else {
            return;
        };
        if let Some(state) = state.upgrade() {
            resume_orphaned_tasks(&state).await;
        }
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
                        tracing::debug!(session = %SessionTag(id), "session gone from the store; closing its stream");
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

/// Takes over tasks of restartable tools whose replica died, and runs them here.
async fn resume_orphaned_tasks(state: &ServerState) {
    let restarted = state.service.resume_orphaned_tasks(state.task_host()).await;
    if restarted > 0 {
        tracing::info!(restarted, "took over tasks of a replica that stopped");
    }
}

/// An [`Outbound`] for a session whose stream another replica holds: each message is
/// delivered to it through the shared store.
#[derive(Debug)]
pub(crate) struct StoreOutbound {
    pub(crate) store: Arc<dyn SharedStore>,
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
                    tracing::warn!(session = %SessionTag(&self.session_id), error = %e, "cannot deliver a message to the session's replica");
                    Err(SendError::Closed)
                }
            }
        })
    }
}

/// Largest client answer forwarded to another replica.
const MAX_FORWARDED_BYTES: usize = 1024 * 1024;

/// Longest cancellation reason broadcast to the replicas, in characters.
const MAX_CANCEL_REASON: usize = 256;

/// A cancellation as broadcast: the request id (a number, or a string of at most 256
/// bytes) and a reason cut to [`MAX_CANCEL_REASON`] characters; `None` without a usable id.
fn bounded_cancellation(params: Option<&serde_json::Value>) -> Option<String> {
    let params = params?;
    let request = params.get("requestId")?;
    let usable = request.is_number() || request.as_str().is_some_and(|s| s.len() <= 256);
    if !usable {
        return None;
    }
    let mut bounded = serde_json::json!({ "requestId": request });
    if let Some(reason) = params.get("reason").and_then(|r| r.as_str()) {
        let reason: String = reason.chars().take(MAX_CANCEL_REASON).collect();
        bounded["reason"] = serde_json::Value::String(reason);
    }
    let notification = mcp_proto::Notification {
        method: CANCELLED.to_owned(),
        params: Some(bounded),
    };
    Some(Message::Notification(notification).to_json())
}

/// A session id as logged: a short hash, so logs never hold the id itself (without
/// authentication, the id is what lets a client use its session).
pub(crate) struct SessionTag<'a>(pub(crate) &'a str);

impl std::fmt::Display for SessionTag<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.0.hash(&mut hasher);
        write!(f, "{:012x}", hasher.finish() >> 16)
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

/// How [`ServerState::find_session`] looks a session up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// To run this many requests (in-flight slots taken in the same step; 0 for none).
    Calls(usize),
    /// To open its stream here: this replica becomes its owner.
    Claim,
}

impl Lookup {
    /// For the requests among `messages` (a batch takes one slot per request).
    pub(crate) fn calls(messages: &[Result<Message, Response>]) -> Self {
        Self::Calls(
            messages
                .iter()
                .filter(|m| matches!(m, Ok(Message::Request(_))))
                .count(),
        )
    }
}

/// A session found for a request: the copy to run it on, its state as stored, and the
/// in-flight slots taken for it.
#[derive(Debug)]
pub(crate) struct FoundSession {
    pub(crate) session: Arc<HttpSession>,
    pub(crate) saved: SessionState,
    pub(crate) slots: Option<CallSlots>,
}

/// Whose quota a new session counts against: its subject, else the client's address.
#[derive(Debug, Clone)]
pub(crate) struct ClientKey(String);

impl ClientKey {
    /// The key of a request: `sub:<subject>` with authentication, `addr:<ip>` without
    /// (when the server accepts connections itself), else one shared anonymous key.
    pub(crate) fn of(subject: Option<&str>, extensions: &http::Extensions) -> Self {
        if let Some(subject) = subject {
            return Self(format!("sub:{subject}"));
        }
        match extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
            Some(info) => Self(format!("addr:{}", info.0.ip())),
            None => Self("anonymous".to_owned()),
        }
    }
}

/// In-flight slots of a session, given back to the store when dropped.
#[derive(Debug)]
pub(crate) struct CallSlots {
    state: Arc<ServerState>,
    session_id: String,
    n: usize,
}

impl Drop for CallSlots {
    fn drop(&mut self) {
        let store = Arc::clone(&self.state.store);
        let id = std::mem::take(&mut self.session_id);
        let n = self.n;
        let release = async move {
            if let Err(e) = store.release_calls(&id, n).await {
                tracing::warn!(session = %SessionTag(&id), error = %e, "cannot give back in-flight slots; they expire");
            }
        };
        // An in-process store answers at once: no task.
        let mut release = Box::pin(release);
        if futures::FutureExt::now_or_never(release.as_mut()).is_some() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(release);
            }
            Err(_) => tracing::debug!("no runtime to give back in-flight slots; they expire"),
        }
    }
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
