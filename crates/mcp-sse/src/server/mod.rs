//! The server side: both HTTP transports for any [`McpService`], as an `axum::Router`.

mod config;
mod connections;
mod event_log;
mod health;
mod http_util;
mod legacy_sse;
mod observe;
mod resume;
mod state;
mod stateless;
mod streamable;
mod tasks;
mod transport_error;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::routing::{get, post};
use mcp_proto::McpService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::ServerConfig;
pub use health::STORE_CHECK_TIMEOUT;
pub use streamable::{PROTOCOL_VERSION_HEADER, SESSION_ID_HEADER};

use crate::Error;
use crate::store::SharedStore;
use state::ServerState;

/// How long calls cancelled at shutdown have to write their error answers.
const CANCELLED_CALLS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves an [`McpService`] over the legacy HTTP+SSE transport (`GET /sse`,
/// `POST /messages/?session_id=`) and streamable HTTP (`/mcp`) from one router.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use mcp_proto::McpServer;
/// use mcp_sse::McpHttpServer;
///
/// let server = McpHttpServer::new(McpServer::builder("Dice Roller").build()?);
/// // Mount its router in your own app and wrap it with your layers...
/// let router: axum::Router = server.router();
/// # drop(router);
/// // ...or let it serve on 127.0.0.1:8000 until Ctrl-C:
/// server.serve("127.0.0.1:8000", mcp_sse::ctrl_c()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct McpHttpServer {
    state: Arc<ServerState>,
}

impl McpHttpServer {
    /// Both transports with default limits.
    pub fn new(service: impl McpService) -> Self {
        Self::with_config(service, ServerConfig::default())
    }

    /// Both transports (as enabled in `config`) with the given limits.
    pub fn with_config(service: impl McpService, config: ServerConfig) -> Self {
        let limits = crate::store::MemoryLimits {
            max_sessions: config.max_sessions.max(1),
            events_per_stream: config.stream_buffer.max(1),
            ..Default::default()
        };
        let store = Arc::new(crate::store::MemoryStore::with_limits(limits));
        Self {
            state: Arc::new(ServerState::new(Arc::new(service), config, store)),
        }
    }

    /// Shares sessions with other replicas through `store`: session records (bound to their
    /// subject, with idle and lifetime limits enforced by the store), delivery of
    /// server-to-client messages to the replica that holds a session's stream, and the
    /// events behind `Last-Event-ID` resumption. Any replica then serves any request of any
    /// session, behind a load balancer without stickiness. A request that needs the store
    /// while it is unreachable gets 503 with a JSON body; service resumes by itself when the
    /// store is back.
    ///
    /// Without this call, sessions live in this process, in a [`crate::MemoryStore`] bounded
    /// by the [`ServerConfig`] (the default). Give each server its own store value (one per
    /// replica: the store's replica id routes deliveries).
    ///
    /// ```no_run
    /// # async fn run(service: mcp_proto::McpServer) -> Result<(), mcp_sse::Error> {
    /// use std::sync::Arc;
    /// use mcp_sse::{McpHttpServer, MemoryStore};
    ///
    /// // `mcp_redis::RedisStore` in production; an in-process store works the same way.
    /// let server = McpHttpServer::new(service).session_store(Arc::new(MemoryStore::new()));
    /// server.serve("127.0.0.1:8000", mcp_sse::ctrl_c()).await?;
    /// # Ok(()) }
    /// ```
    pub fn session_store(self, store: Arc<dyn SharedStore>) -> Self {
        let state = &self.state;
        let new = ServerState::new(Arc::clone(&state.service), state.config.clone(), store);
        new.set_task_store(state.task_host().store);
        Self {
            state: Arc::new(new),
        }
    }

    /// Keeps task records (2026-07-28 `io.modelcontextprotocol/tasks`) in `store`, so that
    /// any replica answers `tasks/get`, `tasks/update` and `tasks/cancel` for any task.
    /// Without this call they live in this process, in a
    /// [`mcp_proto::task::MemoryTaskStore`].
    pub fn task_store(self, store: Arc<dyn mcp_proto::task::TaskStore>) -> Self {
        self.state.set_task_store(store);
        self
    }

    /// The session store: the one [`McpHttpServer::session_store`] set, else this process's
    /// [`crate::MemoryStore`].
    pub fn store(&self) -> &Arc<dyn SharedStore> {
        &self.state.store
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.state.config
    }

    /// How many sessions are live, over both transports.
    pub fn session_count(&self) -> usize {
        self.state.session_count()
    }

    /// The routes, ready to be served, mounted, or wrapped with layers (auth, CORS, tracing).
    ///
    /// The first call starts this replica's delivery and keep-alive tasks on the current
    /// Tokio runtime (they stop on [`McpHttpServer::drain`]).
    pub fn router(&self) -> Router {
        self.state.start_shared_tasks();
        let c = &self.state.config;
        let mut router = Router::new();
        if c.legacy_sse {
            router = router.route(&c.sse_path, get(legacy_sse::open_stream));
            let messages = c.messages_path.clone();
            router = router.route(&messages, post(legacy_sse::post_message));
            let alternate = match messages.strip_suffix('/') {
                Some(trimmed) if !trimmed.is_empty() => Some(trimmed.to_owned()),
                Some(_) => None,
                None => Some(format!("{messages}/")),
            };
            if let Some(alt) = alternate {
                router = router.route(&alt, post(legacy_sse::post_message));
            }
        }
        if c.streamable_http {
            router = router.route(
                &c.mcp_path,
                get(streamable::get)
                    .post(streamable::post)
                    .delete(streamable::delete),
            );
        }
        router.with_state(Arc::clone(&self.state))
    }

    /// `GET /healthz`, `GET /readyz` and, once [`crate::metrics::install`] ran, `GET /metrics`:
    /// routes to mount **outside** authentication, since load balancers and Prometheus
    /// call them without tokens. [`McpHttpServer::serve`] includes them.
    ///
    /// ```no_run
    /// # use axum::{extract::Request, middleware::{self, Next}, response::Response};
    /// # async fn check_token(request: Request, next: Next) -> Response { next.run(request).await }
    /// # fn run(service: mcp_proto::McpServer) {
    /// let mcp = mcp_sse::McpHttpServer::new(service);
    /// // The MCP routes behind an auth layer (with mcp-auth:
    /// // `resource_server.protect(mcp.router())`), the health routes beside it.
    /// let app = mcp
    ///     .router()
    ///     .layer(middleware::from_fn(check_token))
    ///     .merge(mcp.health_router());
    /// # }
    /// ```
    ///
    /// `/readyz` answers 503 from the moment [`McpHttpServer::drain`] starts, and while the
    /// session store's [`SessionStore::health`] fails.
    pub fn health_router(&self) -> Router {
        let router = Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .with_state(Arc::clone(&self.state));
        let state = Arc::downgrade(&self.state);
        let gauges = move || {
            if let Some(state) = state.upgrade() {
                metrics::gauge!(crate::metrics::SESSIONS_OPEN).set(state.session_count() as f64);
                metrics::gauge!(crate::metrics::CALLS_IN_FLIGHT).set(state.calls.len() as f64);
            }
        };
        match crate::metrics::router_with(gauges) {
            Some(metrics) => router.merge(metrics),
            None => router,
        }
    }

    /// Drains the server for shutdown: refuses new sessions, waits (up to
    /// [`ServerConfig::shutdown_grace`]) for running calls to deliver their responses, then
    /// cancels the calls still running (each is answered with a JSON-RPC error saying the
    /// server is shutting down) and closes every stream. Call it when you serve
    /// [`McpHttpServer::router`] yourself.
    pub async fn drain(&self) {
        let state = &self.state;
        self.announce_draining().await;
        state.calls.close();
        if tokio::time::timeout(state.config.shutdown_grace, state.calls.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = state.calls.len(),
                "shutdown grace period over; cancelling the calls still running"
            );
            state.cancel_calls.cancel();
            // Cancelled calls answer at once; give their answers a moment to be written.
            let _ = tokio::time::timeout(CANCELLED_CALLS_DEADLINE, state.calls.wait()).await;
        }
        state.shutdown.cancel();
    }

    /// Turns `/readyz` to 503 (and refuses new sessions), then, the first time, waits
    /// [`ServerConfig::unready_delay`] while the listener still accepts, so load balancers
    /// stop sending traffic before connections are refused.
    async fn announce_draining(&self) {
        let state = &self.state;
        let was_draining = state.draining.swap(true, Ordering::SeqCst);
        if !was_draining && !state.config.unready_delay.is_zero() {
            tracing::info!(delay = ?state.config.unready_delay, "not ready; still accepting");
            tokio::time::sleep(state.config.unready_delay).await;
        }
    }

    /// Serves on `addr` (e.g. `"127.0.0.1:8000"`) until `shutdown` resolves, then drains.
    /// Accepted sockets get `TCP_NODELAY`.
    pub async fn serve(
        self,
        addr: &str,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let listener = TcpListener::bind(addr).await?;
        self.serve_listener(listener, shutdown).await
    }

    /// Serves on a bound listener until `shutdown` resolves, then drains.
    ///
    /// Every connection is held to the transport limits of [`ServerConfig`]: at most
    /// `max_connections` open (more wait in the listen backlog) and
    /// `max_connections_per_address` from one client address (more are closed at once), request
    /// headers read within `header_read_timeout`, and each write done within `write_timeout` (a
    /// client that stops reading is disconnected, its streams and legacy SSE session released).
    /// Handlers see the client's address as [`axum::extract::ConnectInfo<SocketAddr>`].
    pub async fn serve_listener(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let router = self.router().merge(self.health_router());
        self.serve_app(router, listener, shutdown).await
    }

    /// Serves `app` on `listener` with the connection limits of [`McpHttpServer::serve_listener`]
    /// until `shutdown` resolves, then drains this server: for an app built around
    /// [`McpHttpServer::router`] (wrapped in an auth layer, or mounted in a bigger router).
    ///
    /// ```no_run
    /// # async fn run(server: mcp_sse::McpHttpServer) -> Result<(), mcp_sse::Error> {
    /// let app = server.router().layer(tower_http::trace::TraceLayer::new_for_http());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    /// server.serve_app(app, listener, mcp_sse::ctrl_c()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn serve_app(
        self,
        app: Router,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "MCP server listening");
        let config = self.state.config.clone();
        let announcing = self.clone();
        // The listener accepts until this resolves: readiness turns first.
        let shutdown = async move {
            shutdown.await;
            announcing.announce_draining().await;
        };
        let drain = async {
            tracing::info!("shutting down: draining calls");
            self.drain().await;
        };
        connections::serve(listener, app, &config, shutdown, drain).await;
        Ok(())
    }

    /// Binds `addr` (use port 0 for a free one) and serves in a background task.
    pub async fn spawn(self, addr: &str) -> Result<RunningServer, Error> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let server = self.clone();
        let task = tokio::spawn(async move {
            server
                .serve_listener(listener, async move { signal.cancelled().await })
                .await
        });
        Ok(RunningServer {
            local_addr,
            server: self,
            stop,
            task,
        })
    }
}

/// A server running in a background task (see [`McpHttpServer::spawn`]).
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    server: McpHttpServer,
    stop: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
}

impl RunningServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.local_addr)
    }

    /// The server (for `session_count`, `config`).
    pub fn server(&self) -> &McpHttpServer {
        &self.server
    }

    /// Shuts down gracefully (running calls finish) and waits for the task.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.stop.cancel();
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::Io(std::io::Error::other(e))),
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM: a shutdown signal for
/// [`McpHttpServer::serve`].
pub async fn ctrl_c() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

/// The events to write for the replies to one POST: each reply alone, or one JSON array
/// for a batch.
fn reply_events(replies: Vec<Option<mcp_proto::EncodedReply>>, is_batch: bool) -> Vec<Arc<str>> {
    let mut replies = replies.into_iter().flatten();
    if !is_batch {
        return replies.map(|r| encoded_text(r.bytes)).collect();
    }
    let Some(first) = replies.next() else {
        return Vec::new();
    };
    let mut array = Vec::with_capacity(first.bytes.len() + 2);
    array.push(b'[');
    array.extend_from_slice(&first.bytes);
    for reply in replies {
        array.push(b',');
        array.extend_from_slice(&reply.bytes);
    }
    array.push(b']');
    vec![encoded_text(array)]
}

/// Serialized JSON as text (serde_json writes UTF-8; anything else is replaced, not lost).
fn encoded_text(bytes: Vec<u8>) -> Arc<str> {
    match String::from_utf8(bytes) {
        Ok(text) => Arc::from(text),
        Err(e) => Arc::from(String::from_utf8_lossy(e.as_bytes())),
    }
}
