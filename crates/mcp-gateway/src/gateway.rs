//! [`Gateway`]: an [`McpService`] that forwards every message to a child MCP server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_proto::jsonrpc::code;
use mcp_proto::stateless::RequestMeta;
use mcp_proto::types::{InitializeParams, LoggingLevel};
use mcp_proto::{
    BoxFuture, ErrorObject, McpService, Message, MessageContext, Notification, Outbound,
    ProtocolVersion, Request, RequestId, Response, Session,
};
use serde_json::{Value, json};

use crate::command::ChildCommand;
use crate::forward::{self, Forward};
use crate::input_rounds::{ParkLimits, ParkedCalls};
use crate::lock;
use crate::streams::Streams;
use crate::supervisor::{ChildSpec, Supervisor};
use crate::tool_filter::ToolFilter;
use crate::upstream::{Outcome, Route, Upstream, UpstreamLimits};

/// How the gateway runs its child and what it exposes.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// One child per client session, started by the session's `initialize` with the client's
    /// own parameters and stopped when the session ends, instead of one child shared by all
    /// sessions. For servers that keep per-user state. Needs sessions: not with stateless
    /// HTTP, 2026-07-28 clients, or replicas.
    pub per_session: bool,
    /// Which tools are exposed.
    pub tools: ToolFilter,
    /// Most requests waiting for the child's answers (per child).
    pub max_pending: usize,
    /// How long a client has to answer a request of the child (sampling, elicitation,
    /// roots) before the child gets a timeout error; for a 2026-07-28 client, how long a
    /// call waits for the retry that answers its `InputRequiredResult` before it is
    /// cancelled at the child.
    pub client_answer_timeout: Duration,
    /// Most 2026-07-28 calls waiting for their clients' input at once.
    pub max_calls_waiting_for_input: usize,
    /// Most of those per authenticated subject (all anonymous clients count as one).
    pub max_calls_waiting_for_input_per_client: usize,
    /// How long the child has to start and answer `initialize`.
    pub start_timeout: Duration,
    /// How long a request waits for a child that is restarting before it gets an error.
    pub restart_wait: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            per_session: false,
            tools: ToolFilter::default(),
            max_pending: 1024,
            client_answer_timeout: Duration::from_secs(120),
            max_calls_waiting_for_input: 256,
            max_calls_waiting_for_input_per_client: 32,
            start_timeout: Duration::from_secs(30),
            restart_wait: Duration::from_secs(5),
        }
    }
}

/// The [`McpService`] of the gateway: serve it with [`mcp_sse::McpHttpServer`] (or any
/// transport) and each client message goes to the child MCP server, each message of the
/// child to the client it belongs to.
///
/// By default one child serves every session: the gateway initializes it once, answers the
/// clients' `initialize` with its result (at the version both sides speak), and gives each
/// forwarded request an id (and progress token) of its own. See the crate docs for how
/// messages are routed.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    command: ChildCommand,
    config: GatewayConfig,
    streams: Arc<Streams>,
    shared: Option<Supervisor>,
    sessions: Mutex<HashMap<String, Arc<Supervisor>>>,
    parked: Arc<ParkedCalls>,
}

/// What the gateway says it is when it initializes a shared child.
fn gateway_init_params() -> Value {
    json!({
        "protocolVersion": ProtocolVersion::LATEST_STATEFUL.as_str(),
        "capabilities": {
            "roots": {"listChanged": true},
            "sampling": {},
            "elicitation": {"form": {}, "url": {}},
        },
        "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
    })
}

impl Gateway {
    /// A gateway for `command`. Without [`GatewayConfig::per_session`] the shared child starts
    /// now, in the background (call from within a Tokio runtime); see [`Gateway::wait_ready`].
    pub fn new(command: ChildCommand, config: GatewayConfig) -> Self {
        let streams = Arc::new(Streams::default());
        let shared = (!config.per_session).then(|| {
            Supervisor::spawn(ChildSpec {
                command: command.clone(),
                init_params: gateway_init_params(),
                streams: Arc::clone(&streams),
                scope: None,
                limits: limits(&config),
            })
        });
        let parked = Arc::new(ParkedCalls::new(ParkLimits {
            max_calls: config.max_calls_waiting_for_input.max(1),
            max_per_client: config.max_calls_waiting_for_input_per_client.max(1),
            max_bytes: MAX_WAITING_INPUT_BYTES,
            wait: config.client_answer_timeout,
        }));
        Self {
            inner: Arc::new(Inner {
                command,
                config,
                streams,
                shared,
                sessions: Mutex::new(HashMap::new()),
                parked,
            }),
        }
    }

    /// Waits until the shared child runs (at once with `--per-session`); the error says why
    /// it does not.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), crate::Error> {
        match &self.inner.shared {
            Some(shared) => shared
                .running(timeout)
                .await
                .map(|_| ())
                .map_err(|e| crate::Error::NotStarted { detail: e.message }),
            None => Ok(()),
        }
    }

    /// Whether the gateway can serve now: the shared child runs (always with per-session
    /// children, which start with their sessions).
    pub fn is_ready(&self) -> bool {
        self.inner
            .shared
            .as_ref()
            .is_none_or(|s| s.current().is_some())
    }

    /// The process id of the shared child, while it runs.
    pub async fn child_pid(&self) -> Option<u32> {
        let upstream = self.inner.shared.as_ref()?.current()?;
        upstream.pid().await
    }

    /// How many times the shared child was restarted.
    pub fn restarts(&self) -> u64 {
        self.inner.shared.as_ref().map_or(0, Supervisor::restarts)
    }

    /// How many per-session children run.
    pub fn session_children(&self) -> usize {
        lock(&self.inner.sessions).len()
    }

    /// Stops every child (stdin closed, killed after the grace period) and waits for them.
    pub async fn shutdown(&self) {
        let children: Vec<Arc<Supervisor>> =
            lock(&self.inner.sessions).drain().map(|(_, s)| s).collect();
        for child in children {
            child.stop_and_wait().await;
        }
        if let Some(shared) = &self.inner.shared {
            shared.stop_and_wait().await;
        }
    }

    /// The child serving `session`.
    fn supervisor_for(&self, session: &Session) -> Result<SupervisorRef<'_>, ErrorObject> {
        if let Some(shared) = &self.inner.shared {
            return Ok(SupervisorRef::Shared(shared));
        }
        session
            .id()
            .and_then(|id| lock(&self.inner.sessions).get(id).cloned())
            .map(SupervisorRef::Own)
            .ok_or_else(|| {
                ErrorObject::new(
                    code::INVALID_REQUEST,
                    "Invalid request: no MCP server process for this session; \
                     initialize a session first (per-session mode serves sessions only)",
                )
            })
    }

    async fn request(&self, request: Request, ctx: MessageContext) -> Option<Response> {
        if let Some(meta) = RequestMeta::from_params(request.params.as_ref()) {
            return self.stateless_request(request, meta, ctx).await;
        }
        let session = &ctx.session;
        match request.method.as_str() {
            "initialize" => return Some(self.initialize(request, session).await),
            "tools/call" => {
                if let Some(error) = self.inner.config.tools.check_call(request.params.as_ref()) {
                    return Some(Response::error(Some(request.id), error));
                }
            }
            "logging/setLevel" => {
                let level = request
                    .params
                    .as_ref()
                    .and_then(|p| p.get("level"))
                    .and_then(|l| serde_json::from_value::<LoggingLevel>(l.clone()).ok());
                if let Some(level) = level {
                    session.update_state(|s| s.log_level = Some(level));
                }
            }
            "resources/subscribe" | "resources/unsubscribe" => {
                record_subscription(session, &request);
            }
            _ => {}
        }
        let method = request.method.clone();
        let mut response = self.forward(request, &ctx).await?;
        if method == "tools/list"
            && let Ok(result) = &mut response.outcome
        {
            self.inner.config.tools.filter_list(result);
        }
        Some(response)
    }

    /// Sends a request to the child; `None` when the client cancelled it.
    pub(crate) async fn forward(&self, request: Request, ctx: &MessageContext) -> Option<Response> {
        let id = request.id.clone();
        let outcome = self.forward_outcome(request, ctx).await?;
        Some(Response {
            id: Some(id),
            outcome,
        })
    }

    /// The running child serving `session` (waiting for a restart up to
    /// [`GatewayConfig::restart_wait`]).
    pub(crate) async fn upstream_for(
        &self,
        session: &Session,
    ) -> Result<Arc<Upstream>, ErrorObject> {
        let supervisor = self.supervisor_for(session)?;
        supervisor
            .get()
            .running(self.inner.config.restart_wait)
            .await
    }

    async fn forward_outcome(&self, request: Request, ctx: &MessageContext) -> Option<Outcome> {
        let upstream = match self.upstream_for(&ctx.session).await {
            Ok(u) => u,
            Err(error) => return Some(Err(error)),
        };
        let id = request.id.clone();
        let cancelled = ctx.session.begin_request(id.clone());
        let route = Route {
            session: Arc::clone(&ctx.session),
            outbound: Arc::clone(&ctx.outbound),
            rounds: None,
        };
        let outcome = tokio::select! {
            outcome = upstream.call(request, route) => Some(outcome),
            () = cancelled.cancelled() => None,
        };
        ctx.session.end_request(&id);
        outcome
    }

    /// `initialize`: answered from the shared child's result, or by a new child of the
    /// session's own.
    async fn initialize(&self, request: Request, session: &Arc<Session>) -> Response {
        let id = request.id;
        let raw = request.params.unwrap_or_else(|| json!({}));
        let params: InitializeParams = match serde_json::from_value(raw.clone()) {
            Ok(p) => p,
            Err(e) => return Response::error(Some(id), ErrorObject::invalid_params(e)),
        };
        let init = match &self.inner.shared {
            Some(shared) => {
                let wait = self.inner.config.start_timeout + self.inner.config.restart_wait;
                shared.running(wait).await.map(|u| u.init().clone())
            }
            None => self.start_session_child(session, raw).await,
        };
        let mut init = match init {
            Ok(init) => init,
            Err(error) => return Response::error(Some(id), error),
        };
        let child_version = init
            .get("protocolVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<ProtocolVersion>().ok());
        let version = if self.inner.shared.is_some() {
            let ours = ProtocolVersion::negotiate(&params.protocol_version);
            let version = child_version.filter(|c| *c < ours).unwrap_or(ours);
            init["protocolVersion"] = json!(version.as_str());
            version
        } else {
            child_version.unwrap_or_else(|| ProtocolVersion::negotiate(&params.protocol_version))
        };
        session.update_state(|s| {
            s.protocol_version = Some(version);
            s.client_info = Some(params.client_info);
            s.client_capabilities = params.capabilities;
        });
        Response::result(id, init)
    }

    /// Starts the child of a session with the client's `initialize` parameters.
    async fn start_session_child(
        &self,
        session: &Arc<Session>,
        init_params: Value,
    ) -> Result<Value, ErrorObject> {
        let Some(session_id) = session.id().map(str::to_owned) else {
            return Err(ErrorObject::invalid_request(
                "per-session mode needs sessions: this request has none",
            ));
        };
        let supervisor = Arc::new(Supervisor::spawn(ChildSpec {
            command: self.inner.command.clone(),
            init_params,
            streams: Arc::clone(&self.inner.streams),
            scope: Some(session_id.clone()),
            limits: limits(&self.inner.config),
        }));
        let upstream = match supervisor.running(self.inner.config.start_timeout).await {
            Ok(u) => u,
            Err(error) => {
                supervisor.stop();
                return Err(error);
            }
        };
        let replaced = lock(&self.inner.sessions).insert(session_id, supervisor);
        if let Some(old) = replaced {
            old.stop();
        }
        Ok(upstream.init().clone())
    }

    async fn notification(&self, notification: Notification, session: &Session) {
        let Notification { method, params } = notification;
        match method.as_str() {
            "notifications/initialized" => session.update_state(|s| s.initialized = true),
            "notifications/cancelled" => {
                let id = params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(RequestId::from_value);
                if let Some(id) = id {
                    // Dropping the forwarded call cancels it at the child.
                    session.cancel_request(&id);
                }
            }
            _ => {
                let Ok(supervisor) = self.supervisor_for(session) else {
                    return;
                };
                match supervisor.get().current() {
                    Some(upstream) => upstream.notify(&method, params).await,
                    None => {
                        tracing::debug!(%method, "notification dropped: the MCP server is down")
                    }
                }
            }
        }
    }

    pub(crate) fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// The shared child's `initialize` result (for 2026-07-28 `server/discover`).
    pub(crate) async fn child_init(&self, session: &Session) -> Result<Value, ErrorObject> {
        Ok(self.upstream_for(session).await?.init().clone())
    }

    /// The 2026-07-28 calls waiting for their clients' input.
    pub(crate) fn parked(&self) -> &Arc<ParkedCalls> {
        &self.inner.parked
    }

    /// How many 2026-07-28 calls wait for their clients' input (`InputRequiredResult`
    /// answered, retry not yet received).
    pub fn calls_waiting_for_input(&self) -> usize {
        self.inner.parked.len()
    }
}

/// A supervisor borrowed from the gateway or held for one session.
enum SupervisorRef<'a> {
    Shared(&'a Supervisor),
    Own(Arc<Supervisor>),
}

impl SupervisorRef<'_> {
    fn get(&self) -> &Supervisor {
        match self {
            SupervisorRef::Shared(s) => s,
            SupervisorRef::Own(s) => s,
        }
    }
}

fn limits(config: &GatewayConfig) -> UpstreamLimits {
    UpstreamLimits {
        max_pending: config.max_pending.max(1),
        client_answer_timeout: config.client_answer_timeout,
        start_timeout: config.start_timeout,
    }
}

/// Most bytes of child requests all 2026-07-28 calls waiting for input may hold.
const MAX_WAITING_INPUT_BYTES: usize = 16 * 1024 * 1024;

/// Most resources one session may subscribe to through the gateway.
const MAX_SUBSCRIPTIONS: usize = 1024;

/// Remembers a session's resource subscription, so that updates reach it alone.
fn record_subscription(session: &Session, request: &Request) {
    let Some(uri) = request
        .params
        .as_ref()
        .and_then(|p| p.get("uri"))
        .and_then(Value::as_str)
    else {
        return;
    };
    let subscribe = request.method == "resources/subscribe";
    session.update_state(|s| {
        s.subscriptions.retain(|u| u != uri);
        if subscribe && s.subscriptions.len() < MAX_SUBSCRIPTIONS {
            s.subscriptions.push(uri.to_owned());
        }
    });
}

impl Forward for Gateway {
    fn request(
        &self,
        request: Request,
        ctx: MessageContext,
    ) -> impl Future<Output = Option<Response>> + Send {
        Gateway::request(self, request, ctx)
    }

    fn notification(
        &self,
        notification: Notification,
        session: &Session,
    ) -> impl Future<Output = ()> + Send {
        Gateway::notification(self, notification, session)
    }
}

impl McpService for Gateway {
    fn handle(&self, message: Message, ctx: MessageContext) -> BoxFuture<'static, Option<Message>> {
        forward::handle(self, message, ctx)
    }

    fn session_closed(&self, session: &Session) {
        session.cancel_all();
        self.inner.streams.remove(session);
        if self.inner.shared.is_none()
            && let Some(id) = session.id()
            && let Some(child) = lock(&self.inner.sessions).remove(id)
        {
            child.stop();
        }
    }

    fn stream_opened(&self, session: &Arc<Session>, outbound: Arc<dyn Outbound>) {
        if !self.inner.streams.add(session, outbound) {
            tracing::warn!(
                "too many open streams; this one gets no notifications of the MCP server"
            );
        }
    }
}
