//! Shared server state: the session registry, limits, shutdown, and running one message.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mcp_proto::jsonrpc::code;
use mcp_proto::{
    BoxFuture, ErrorObject, McpService, Message, MessageContext, Outbound, Response, SendError,
    Session,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::config::ServerConfig;
use super::event_log::EventLog;
use super::transport_error::TransportError;

/// Which transport a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionKind {
    /// Legacy HTTP+SSE: lives as long as its stream.
    Legacy,
    /// Streamable HTTP: lives until DELETE or idle expiry.
    Streamable,
}

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
    pub(crate) in_flight: Arc<Semaphore>,
    /// Fires when the session ends: its streams close.
    pub(crate) closed: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HttpSession {
    pub(crate) fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        lock(&self.last_seen).elapsed()
    }

    /// A new response stream id, unique within the session (0 is the standalone stream).
    pub(crate) fn next_stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed) + 1
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
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("sessions", &self.session_count())
            .finish_non_exhaustive()
    }
}

impl ServerState {
    pub(crate) fn new(service: Arc<dyn McpService>, config: ServerConfig) -> Self {
        Self {
            service,
            config,
            sessions: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
            shutdown: CancellationToken::new(),
            draining: AtomicBool::new(false),
            calls: TaskTracker::new(),
        }
    }

    pub(crate) fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Creates and registers a session, or says why not (capacity, shutdown).
    pub(crate) fn create_session(
        &self,
        kind: SessionKind,
    ) -> Result<Arc<HttpSession>, TransportError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(TransportError::ShuttingDown);
        }
        self.sweep_expired();
        let id = new_session_id();
        let session = Arc::new(HttpSession {
            id: id.clone(),
            kind,
            proto: Arc::new(Session::new(Some(id.clone()))),
            stream: Mutex::new(None),
            response_streams: Mutex::new(VecDeque::new()),
            next_stream: AtomicU64::new(0),
            last_seen: Mutex::new(Instant::now()),
            in_flight: Arc::new(Semaphore::new(self.config.max_in_flight_per_session)),
            closed: self.shutdown.child_token(),
        });
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= self.config.max_sessions {
            return Err(TransportError::TooManySessions);
        }
        sessions.insert(id, Arc::clone(&session));
        tracing::debug!(session = %session.id, ?kind, "session created");
        Ok(session)
    }

    /// A live session of the given kind; expired sessions are ended on lookup.
    pub(crate) fn session(&self, id: &str, kind: SessionKind) -> Option<Arc<HttpSession>> {
        let session = lock(&self.sessions).get(id).cloned()?;
        if session.kind != kind {
            return None;
        }
        if kind == SessionKind::Streamable && session.idle_for() > self.config.session_idle_timeout
        {
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
        let idle = self.config.session_idle_timeout;
        let expired: Vec<String> = lock(&self.sessions)
            .values()
            .filter(|s| s.kind == SessionKind::Streamable && s.idle_for() > idle)
            .map(|s| s.id.clone())
            .collect();
        for id in expired {
            self.end_session(&id);
        }
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
                match tokio::time::timeout(state.config.call_timeout, fut).await {
                    Ok(reply) => reply,
                    Err(_) => {
                        let id = id?;
                        session.cancel_request(&id);
                        tracing::warn!(timeout = ?state.config.call_timeout, "call timed out");
                        Some(Message::Response(Response::error(
                            Some(id),
                            ErrorObject::new(
                                code::REQUEST_TIMEOUT,
                                format!(
                                    "Request timed out after {} s",
                                    state.config.call_timeout.as_secs_f64()
                                ),
                            ),
                        )))
                    }
                }
            }
            .instrument(span),
        )
    }
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
