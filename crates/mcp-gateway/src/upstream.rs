//! One running child MCP server: the gateway's session with it, over its stdin and stdout.
//!
//! Requests of many client sessions share the child: each gets an id of the gateway's (and
//! its progress token a token of the gateway's), so answers and progress find their way back
//! to the request that caused them. Requests of the child (sampling, elicitation, roots) go to
//! the session whose call is running; notifications that belong to no request go to the
//! sessions' streams.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_proto::jsonrpc::code;
use mcp_proto::{
    ErrorObject, Message, Notification, Outbound, Request, RequestId, Response, Session,
};
use mcp_sse::client::{Incoming, MessageTransport};
use mcp_stdio::StdioClientTransport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::command::ChildCommand;
use crate::input_rounds::{Asked, InputRounds};
use crate::lock;
use crate::streams::{Audience, Streams};

/// Longest stderr line of the child that is logged whole; longer ones are cut.
const MAX_STDERR_LINE: usize = 8 * 1024;

/// Bounds of one child connection.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamLimits {
    /// Most requests waiting for the child's answers.
    pub max_pending: usize,
    /// How long a client has to answer a request of the child.
    pub client_answer_timeout: Duration,
    /// How long the child has to answer `initialize`.
    pub start_timeout: Duration,
}

/// Where the messages related to one request go.
#[derive(Clone)]
pub(crate) struct Route {
    pub session: Arc<Session>,
    pub outbound: Arc<dyn Outbound>,
    /// Set for a 2026-07-28 call that can need input: the child's requests become its
    /// questions instead of requests on the client's stream.
    pub rounds: Option<Arc<InputRounds>>,
}

impl Route {
    /// Whether the call waits for its client's retry (its requests are no one else's).
    fn is_parked(&self) -> bool {
        self.rounds.as_ref().is_some_and(|r| r.is_parked())
    }
}

struct PendingCall {
    answer: oneshot::Sender<Result<Value, ErrorObject>>,
    route: Route,
    progress: Option<String>,
}

struct ProgressRoute {
    token: Value,
    outbound: Arc<dyn Outbound>,
}

/// A request of the child forwarded to a client, by the child's id.
enum ChildRequest {
    /// Sent on a session's stream under an id of the session.
    Stream {
        session: Arc<Session>,
        client_id: RequestId,
        outbound: Arc<dyn Outbound>,
    },
    /// A question of a 2026-07-28 call.
    Round(Arc<InputRounds>),
}

#[derive(Default)]
struct Table {
    open: bool,
    calls: HashMap<u64, PendingCall>,
    progress: HashMap<String, ProgressRoute>,
    child_requests: HashMap<RequestId, ChildRequest>,
}

/// A started, initialized child.
pub(crate) struct Upstream {
    name: String,
    transport: StdioClientTransport,
    next_id: AtomicU64,
    table: Mutex<Table>,
    streams: Arc<Streams>,
    /// The session id this child serves alone (`--per-session`), else `None`.
    scope: Option<String>,
    /// The child's `initialize` result.
    init: Value,
    limits: UpstreamLimits,
    closed: CancellationToken,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// How a forwarded request ended.
pub(crate) type Outcome = Result<Value, ErrorObject>;

impl Upstream {
    /// Starts the child, runs `initialize` with `init_params` and sends `initialized`.
    pub(crate) async fn start(
        command: &ChildCommand,
        init_params: Value,
        streams: Arc<Streams>,
        scope: Option<String>,
        limits: UpstreamLimits,
    ) -> Result<Arc<Self>, Error> {
        let name = command.name();
        let (transport, mut incoming) = StdioClientTransport::spawn(&command.stdio_command())
            .map_err(|source| Error::Spawn {
                program: name.clone(),
                source,
            })?;
        if let Some(stderr) = transport.take_stderr() {
            tokio::spawn(log_stderr(name.clone(), stderr));
        }
        let initialize = Message::request(RequestId::from(0), "initialize", Some(init_params));
        if let Err(error) = transport.send(&initialize).await {
            // Its stdin is closed: it exited (or closed it) right away.
            tracing::debug!(child = %name, %error, "cannot send initialize");
            let _ = transport.shutdown().await;
            return Err(Error::ExitedDuringStart { program: name });
        }
        let answer = tokio::time::timeout(limits.start_timeout, initialize_answer(&mut incoming));
        let init = match answer.await {
            Err(_) => {
                let _ = transport.shutdown().await;
                return Err(Error::StartTimeout {
                    program: name,
                    seconds: limits.start_timeout.as_secs_f64(),
                });
            }
            Ok(None) => {
                let _ = transport.shutdown().await;
                return Err(Error::ExitedDuringStart { program: name });
            }
            Ok(Some(Err(e))) => {
                let _ = transport.shutdown().await;
                return Err(Error::InitializeRefused {
                    program: name,
                    detail: e.message,
                });
            }
            Ok(Some(Ok(init))) => init,
        };
        let initialized = Message::notification("notifications/initialized", None);
        transport.send(&initialized).await.map_err(Error::Write)?;
        tracing::info!(child = %name, version = ?init.get("protocolVersion"), "MCP server started");
        let upstream = Arc::new(Self {
            name,
            transport,
            next_id: AtomicU64::new(1),
            table: Mutex::new(Table {
                open: true,
                ..Table::default()
            }),
            streams,
            scope,
            init,
            limits,
            closed: CancellationToken::new(),
        });
        tokio::spawn(Arc::clone(&upstream).read_loop(incoming));
        Ok(upstream)
    }

    /// The child's `initialize` result.
    pub(crate) fn init(&self) -> &Value {
        &self.init
    }

    /// The process id, while it runs.
    pub(crate) async fn pid(&self) -> Option<u32> {
        self.transport.pid().await
    }

    /// Resolves once the child's stdout closed (it exited or is exiting).
    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Closes the child's stdin, waits for it to exit (killing it after the grace period)
    /// and describes how it ended.
    pub(crate) async fn stop(&self) -> String {
        match self.transport.shutdown().await {
            Ok(status) => status.to_string(),
            Err(error) => format!("cannot wait for it: {error}"),
        }
    }

    /// Answers every request still waiting with an error saying why: the child is gone.
    pub(crate) fn fail_all(&self, reason: &str) {
        let calls: Vec<PendingCall> = {
            let mut table = lock(&self.table);
            table.open = false;
            table.progress.clear();
            table.child_requests.clear();
            table.calls.drain().map(|(_, c)| c).collect()
        };
        for call in calls {
            let _ = call.answer.send(Err(ErrorObject::internal(reason)));
        }
    }

    /// Sends a request to the child and waits for its answer. Dropping the future before the
    /// answer cancels the request at the child (`notifications/cancelled`).
    pub(crate) async fn call(self: &Arc<Self>, request: Request, route: Route) -> Outcome {
        let child_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut params = request.params;
        let (rx, progress) = self.register(child_id, &mut params, route)?;
        let mut guard = CancelOnDrop {
            upstream: Arc::clone(self),
            child_id,
            progress,
            armed: true,
        };
        let message = Message::request(child_request_id(child_id), request.method, params);
        if let Err(error) = self.transport.send(&message).await {
            guard.forget();
            return Err(ErrorObject::internal(format!(
                "cannot write to the MCP server: {error}"
            )));
        }
        let outcome = rx
            .await
            .unwrap_or_else(|_| Err(ErrorObject::internal("the MCP server process went away")));
        guard.armed = false;
        guard.forget();
        outcome
    }

    /// Records a call about to be sent; rewrites its progress token to one of the gateway's.
    fn register(
        &self,
        child_id: u64,
        params: &mut Option<Value>,
        route: Route,
    ) -> Result<(oneshot::Receiver<Outcome>, Option<String>), ErrorObject> {
        let mut table = lock(&self.table);
        if !table.open {
            return Err(ErrorObject::internal("the MCP server process went away"));
        }
        if table.calls.len() >= self.limits.max_pending {
            return Err(ErrorObject::internal(format!(
                "too many calls in flight to the MCP server (limit {})",
                self.limits.max_pending
            )));
        }
        let token_slot = params
            .as_mut()
            .and_then(|p| p.get_mut("_meta"))
            .and_then(|m| m.get_mut("progressToken"));
        let progress = match token_slot {
            Some(token) => {
                let ours = format!("gw-{child_id}");
                let theirs = std::mem::replace(token, json!(ours));
                table.progress.insert(
                    ours.clone(),
                    ProgressRoute {
                        token: theirs,
                        outbound: Arc::clone(&route.outbound),
                    },
                );
                Some(ours)
            }
            None => None,
        };
        let (tx, rx) = oneshot::channel();
        table.calls.insert(
            child_id,
            PendingCall {
                answer: tx,
                route,
                progress: progress.clone(),
            },
        );
        Ok((rx, progress))
    }

    /// Sends a notification of a client to the child.
    pub(crate) async fn notify(&self, method: &str, params: Option<Value>) {
        let message = Message::notification(method, params);
        if let Err(error) = self.transport.send(&message).await {
            tracing::debug!(child = %self.name, %error, method, "notification not forwarded");
        }
    }

    /// The route of the latest running call, when every running call belongs to one session.
    /// Calls parked for their client's input count only when no other call runs.
    fn related_route(&self) -> Option<Route> {
        let table = lock(&self.table);
        let active = table.calls.values().any(|c| !c.route.is_parked());
        let candidates = || {
            table
                .calls
                .iter()
                .filter(move |(_, c)| !(active && c.route.is_parked()))
        };
        let (_, latest) = candidates().max_by_key(|(id, _)| **id)?;
        let session = &latest.route.session;
        candidates()
            .all(|(_, c)| Arc::ptr_eq(&c.route.session, session))
            .then(|| latest.route.clone())
    }

    /// Dispatches the child's messages until its stdout closes.
    async fn read_loop(self: Arc<Self>, mut incoming: mpsc::Receiver<Incoming>) {
        while let Some(item) = incoming.recv().await {
            match item {
                Incoming::Message(Message::Response(r)) => self.answer(r),
                Incoming::Message(Message::Notification(n)) => self.route_notification(n).await,
                Incoming::Message(Message::Request(r)) => {
                    tokio::spawn(Arc::clone(&self).serve_child_request(r));
                }
                Incoming::Malformed(error) => {
                    tracing::warn!(child = %self.name, %error, "the MCP server wrote an invalid message");
                }
                other => tracing::debug!(child = %self.name, ?other, "ignored"),
            }
        }
        lock(&self.table).open = false;
        self.closed.cancel();
    }

    fn answer(&self, response: Response) {
        let child_id = response.id.as_ref().and_then(|id| id.to_value().as_u64());
        let call = child_id.and_then(|id| {
            let mut table = lock(&self.table);
            let call = table.calls.remove(&id)?;
            if let Some(token) = &call.progress {
                table.progress.remove(token);
            }
            Some(call)
        });
        match call {
            Some(call) => {
                let _ = call.answer.send(response.outcome);
            }
            None => {
                tracing::debug!(child = %self.name, id = ?response.id, "answer to no pending call")
            }
        }
    }
}

/// What the child sends on its own: notifications and requests.
impl Upstream {
    async fn route_notification(&self, notification: Notification) {
        let Notification { method, params } = notification;
        match method.as_str() {
            "notifications/progress" => self.route_progress(params).await,
            "notifications/cancelled" => self.route_cancelled(params).await,
            "notifications/message" => {
                let level = params
                    .as_ref()
                    .and_then(|p| p.get("level"))
                    .and_then(|l| serde_json::from_value(l.clone()).ok());
                let message = Message::notification(method, params);
                let Some(level) = level else {
                    tracing::debug!(child = %self.name, "log message without a valid level dropped");
                    return;
                };
                self.to_related_or_all(message, Audience::LogLevel(level))
                    .await;
            }
            "notifications/resources/updated" => {
                let uri = params
                    .as_ref()
                    .and_then(|p| p.get("uri"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let message = Message::notification(method, params);
                if let Some(uri) = uri {
                    let audience = Audience::Subscribers(&uri);
                    self.streams
                        .broadcast(self.scope.as_deref(), audience, &message)
                        .await;
                }
            }
            m if m.ends_with("/list_changed") => {
                let message = Message::notification(method, params);
                self.streams
                    .broadcast(self.scope.as_deref(), Audience::All, &message)
                    .await;
            }
            _ => {
                let message = Message::notification(method, params);
                self.to_related_or_all(message, Audience::All).await;
            }
        }
    }

    /// Sends to the stream of the running call when all running calls are one session's,
    /// else to every session's stream.
    async fn to_related_or_all(&self, message: Message, audience: Audience<'_>) {
        if let Some(route) = self.related_route() {
            if crate::streams::wants(&route.session, audience) {
                let _ = route.outbound.send(message).await;
            }
            return;
        }
        self.streams
            .broadcast(self.scope.as_deref(), audience, &message)
            .await;
    }

    /// Progress of a call: back to the caller's stream, with the caller's token.
    async fn route_progress(&self, params: Option<Value>) {
        let Some(mut params) = params else { return };
        let ours = params.get("progressToken").and_then(Value::as_str);
        let route = ours.and_then(|t| {
            let table = lock(&self.table);
            let r = table.progress.get(t)?;
            Some((r.token.clone(), Arc::clone(&r.outbound)))
        });
        let Some((token, outbound)) = route else {
            tracing::debug!(child = %self.name, "progress for no running call dropped");
            return;
        };
        params["progressToken"] = token;
        let _ = outbound
            .send(Message::notification(
                "notifications/progress",
                Some(params),
            ))
            .await;
    }

    /// The child cancels one of its requests: the client is told, with the client's id.
    async fn route_cancelled(&self, params: Option<Value>) {
        let Some(mut params) = params else { return };
        let Some(child_id) = params.get("requestId").and_then(RequestId::from_value) else {
            return;
        };
        let Some(request) = lock(&self.table).child_requests.remove(&child_id) else {
            return;
        };
        match request {
            ChildRequest::Stream {
                session,
                client_id,
                outbound,
            } => {
                session.abandon_server_request(&client_id);
                params["requestId"] = client_id.to_value();
                let notification = Message::notification("notifications/cancelled", Some(params));
                let _ = outbound.send(notification).await;
            }
            ChildRequest::Round(rounds) => rounds.withdraw(&child_id),
        }
    }

    /// A request of the child: answered here (`ping`), or forwarded to the client whose call
    /// is running and its answer sent back.
    async fn serve_child_request(self: Arc<Self>, request: Request) {
        let Request { id, method, params } = request;
        let outcome = if method == "ping" {
            Some(Ok(json!({})))
        } else {
            match self.client_for(&method) {
                Ok(route) => self.ask_client(id.clone(), method, params, route).await,
                Err(error) => Some(Err(error)),
            }
        };
        let Some(outcome) = outcome else {
            return;
        };
        let reply = Message::Response(Response {
            id: Some(id),
            outcome,
        });
        if let Err(error) = self.transport.send(&reply).await {
            tracing::debug!(child = %self.name, %error, "answer to the MCP server not sent");
        }
    }

    /// The client session a request of the child is for, if it can tell and the client can
    /// answer it.
    fn client_for(&self, method: &str) -> Result<Route, ErrorObject> {
        let route = match self.related_route() {
            Some(route) => route,
            None => match self.streams.only(self.scope.as_deref()) {
                Some((session, outbound)) => Route {
                    session,
                    outbound,
                    rounds: None,
                },
                None => {
                    return Err(ErrorObject::new(
                        code::INTERNAL_ERROR,
                        format!(
                            "the gateway cannot tell which client session {method} is for; \
                             run it with --per-session"
                        ),
                    ));
                }
            },
        };
        if route.rounds.is_some() {
            // The call's rounds check the capabilities of each round's request.
            return Ok(route);
        }
        if route
            .session
            .protocol_version()
            .is_some_and(|v| v.is_stateless())
        {
            return Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!(
                    "Method not found: a 2026-07-28 client is not asked {method} during this request"
                ),
            ));
        }
        let caps = route.session.state().client_capabilities;
        let supported = match method {
            "sampling/createMessage" => caps.sampling.is_some(),
            "elicitation/create" => caps.elicitation.is_some(),
            "roots/list" => caps.roots.is_some(),
            _ => true,
        };
        if !supported {
            return Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("Method not found: the client does not support {method}"),
            ));
        }
        Ok(route)
    }

    /// Forwards a request of the child to a client under an id of its session; `None` when
    /// the child cancelled it (no answer is due).
    async fn ask_client(
        &self,
        child_id: RequestId,
        method: String,
        params: Option<Value>,
        route: Route,
    ) -> Option<Outcome> {
        if let Some(rounds) = &route.rounds {
            return self.ask_in_round(child_id, &method, params, rounds).await;
        }
        let session = Arc::clone(&route.session);
        let (client_id, answer) = match session.begin_server_request() {
            Ok(pair) => pair,
            Err(error) => return Some(Err(ErrorObject::internal(error))),
        };
        lock(&self.table).child_requests.insert(
            child_id.clone(),
            ChildRequest::Stream {
                session: Arc::clone(&session),
                client_id: client_id.clone(),
                outbound: Arc::clone(&route.outbound),
            },
        );
        let message = Message::request(client_id.clone(), method, params);
        let sent = route.outbound.send(message).await;
        let outcome = match sent {
            Err(error) => Some(Err(ErrorObject::internal(format!(
                "cannot reach the client: {error}"
            )))),
            Ok(()) => match tokio::time::timeout(self.limits.client_answer_timeout, answer).await {
                Ok(Ok(answer)) => Some(answer),
                Ok(Err(_)) => {
                    let still_due = lock(&self.table).child_requests.contains_key(&child_id);
                    still_due.then(|| Err(ErrorObject::internal("the client's session closed")))
                }
                Err(_) => Some(Err(ErrorObject::new(
                    code::REQUEST_TIMEOUT,
                    format!(
                        "the client did not answer within {} s",
                        self.limits.client_answer_timeout.as_secs_f64()
                    ),
                ))),
            },
        };
        session.abandon_server_request(&client_id);
        lock(&self.table).child_requests.remove(&child_id);
        outcome
    }
}

impl Upstream {
    /// A request of the child during a 2026-07-28 call: a question answered by the client's
    /// retry (or at once); `None` when the child cancelled it.
    async fn ask_in_round(
        &self,
        child_id: RequestId,
        method: &str,
        params: Option<Value>,
        rounds: &Arc<InputRounds>,
    ) -> Option<Outcome> {
        let answer = match rounds.ask(child_id.clone(), method, params) {
            Asked::Answered(outcome) => return Some(outcome),
            Asked::Waiting(answer) => answer,
        };
        lock(&self.table)
            .child_requests
            .insert(child_id.clone(), ChildRequest::Round(Arc::clone(rounds)));
        let outcome = match tokio::time::timeout(self.limits.client_answer_timeout, answer).await {
            Ok(Ok(answer)) => Some(answer),
            // Withdrawn: the child cancelled it.
            Ok(Err(_)) => None,
            Err(_) => {
                rounds.withdraw(&child_id);
                Some(Err(ErrorObject::new(
                    code::REQUEST_TIMEOUT,
                    format!(
                        "the client did not answer within {} s",
                        self.limits.client_answer_timeout.as_secs_f64()
                    ),
                )))
            }
        };
        lock(&self.table).child_requests.remove(&child_id);
        outcome
    }
}

/// Cancels a forwarded call at the child when its future is dropped before the answer.
struct CancelOnDrop {
    upstream: Arc<Upstream>,
    child_id: u64,
    progress: Option<String>,
    armed: bool,
}

impl CancelOnDrop {
    /// Forgets the call's routes.
    fn forget(&mut self) {
        let mut table = lock(&self.upstream.table);
        table.calls.remove(&self.child_id);
        if let Some(token) = &self.progress {
            table.progress.remove(token);
        }
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.forget();
        let upstream = Arc::clone(&self.upstream);
        let params = json!({"requestId": self.child_id, "reason": "cancelled by the client or timed out at the gateway"});
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                upstream
                    .notify("notifications/cancelled", Some(params))
                    .await;
            });
        }
    }
}

/// Waits for the answer to the `initialize` request (id 0); `None` when stdout closes first.
async fn initialize_answer(incoming: &mut mpsc::Receiver<Incoming>) -> Option<Outcome> {
    while let Some(item) = incoming.recv().await {
        match item {
            Incoming::Message(Message::Response(r)) if r.id == Some(RequestId::from(0)) => {
                return Some(r.outcome.and_then(|v| {
                    if v.get("protocolVersion").and_then(Value::as_str).is_some() {
                        Ok(v)
                    } else {
                        Err(ErrorObject::internal("the result has no protocolVersion"))
                    }
                }));
            }
            other => tracing::debug!(?other, "message before the initialize answer ignored"),
        }
    }
    None
}

/// Logs each stderr line of the child, prefixed with its name, until the pipe closes.
async fn log_stderr(name: String, stderr: tokio::process::ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_STDERR_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if !text.is_empty() {
                    tracing::info!(target: "mcp_gateway::child", "[{name}] {text}");
                }
            }
        }
    }
}

/// The id a call has at the child (ids stay below 2^53, exact in every JSON parser).
fn child_request_id(child_id: u64) -> RequestId {
    RequestId::from(i64::try_from(child_id).unwrap_or(i64::MAX))
}
