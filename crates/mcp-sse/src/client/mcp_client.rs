//! [`McpClient`]: an MCP session over either HTTP transport.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mcp_oauth_client::{OAuthClient, OAuthConfig};
use mcp_proto::jsonrpc::ErrorObject;
use mcp_proto::types::{
    ClientCapabilities, InitializeResult, ListToolsResult, ProgressParams, method,
};
use mcp_proto::{
    BoxFuture, CallToolResult, ClientEvent, ClientSession, Implementation, Message, Notification,
    Pagination, ProtocolVersion, RequestId, Response, Tool, parse_result,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::stateless::{InputHandler, StatelessClient};
use super::{
    AbortOnDrop, DEFAULT_CONNECT_TIMEOUT, DEFAULT_INCOMING_CAPACITY, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_REQUEST_TIMEOUT, Incoming, SseClientTransport, StreamableHttpClientTransport,
    TransportOptions, parse_header, parse_url,
};
use crate::{Error, TransportKind};

/// A transport [`McpClient`] can run a session over besides the HTTP ones: it sends each
/// JSON-RPC message, and everything the peer sends arrives on the [`Incoming`] channel
/// handed to [`McpClientBuilder::connect_with`] with it. `mcp-stdio` implements it for a
/// server running as a child process.
pub trait MessageTransport: std::fmt::Debug + Send + Sync + 'static {
    /// Sends one message to the server.
    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), Error>>;
    /// Ends the connection (the incoming channel ends once the peer is gone).
    fn close(&self) -> BoxFuture<'_, Result<(), Error>>;
    /// The session id, if the transport has one.
    fn session_id(&self) -> Option<String> {
        None
    }
}

/// Configures and connects an [`McpClient`]; made by [`McpClient::builder`].
#[derive(Clone)]
pub struct McpClientBuilder {
    url: String,
    headers: Vec<(String, String)>,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// `None`: chosen from the URL by [`TransportKind::from_url_path`].
    kind: Option<TransportKind>,
    version: ProtocolVersion,
    info: Implementation,
    capabilities: ClientCapabilities,
    incoming_capacity: usize,
    max_message_bytes: usize,
    http_client: Option<reqwest::Client>,
    server_stream: bool,
    on_notification: Option<NotificationCallback>,
    input: Option<InputHandler>,
    discover_first: bool,
    oauth: Option<OAuthConfig>,
}

impl std::fmt::Debug for McpClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("McpClientBuilder")
            .field("url", &self.url)
            .field("headers", &header_names)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("info", &self.info)
            .field("server_stream", &self.server_stream)
            .field("oauth", &self.oauth.is_some())
            .finish_non_exhaustive()
    }
}

impl McpClientBuilder {
    /// Adds a header sent on every HTTP request (checked by [`McpClientBuilder::connect`]).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends `Authorization: Bearer <token>` on every HTTP request.
    pub fn bearer_token(self, token: impl AsRef<str>) -> Self {
        let value = format!("Bearer {}", token.as_ref());
        self.header("authorization", value)
    }

    /// Authorizes with OAuth 2.1 as the server demands: on a 401 the client discovers the
    /// authorization server, registers, obtains a token (through
    /// `config.authorization_handler`), then sends the request again; it refreshes tokens
    /// before expiry and steps up scopes on a 403 `insufficient_scope`. Replaces any
    /// [`McpClientBuilder::bearer_token`].
    pub fn oauth(mut self, config: OAuthConfig) -> Self {
        self.oauth = Some(config);
        self
    }

    /// Time to open a connection (and, for legacy SSE, to get the endpoint event).
    /// Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time one request may take, from sending it to its answer. Default 60 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Chooses the transport. By default it follows the URL: legacy SSE when its path ends in
    /// `/sse`, streamable HTTP otherwise ([`TransportKind::from_url_path`], the rule FastMCP's
    /// client uses).
    pub fn transport(mut self, kind: TransportKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The protocol version offered in `initialize`. Default 2025-11-25. A 2026-07-28 (or
    /// later) version selects the stateless era: no `initialize` and no session; the client
    /// opens with `server/discover` and every request carries its `_meta` and headers.
    pub fn protocol_version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    /// The client's name and version sent in `initialize`. Default `mcp-sse` and this
    /// crate's version.
    pub fn client_info(mut self, info: Implementation) -> Self {
        self.info = info;
        self
    }

    /// The capabilities declared in `initialize`. Default none.
    pub fn capabilities(mut self, capabilities: ClientCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Bound of the queue of server messages not yet dispatched. Default 256.
    pub fn incoming_capacity(mut self, capacity: usize) -> Self {
        self.incoming_capacity = capacity;
        self
    }

    /// Bound on one message from the server. Default 16 MiB.
    pub fn max_message_bytes(mut self, limit: usize) -> Self {
        self.max_message_bytes = limit;
        self
    }

    /// Uses this `reqwest` client (proxies, TLS roots, a shared connection pool). By default
    /// a process-wide client per connect timeout is shared. The connect timeout of a given
    /// client is its own.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Streamable HTTP: after the handshake, also open the standalone `GET` stream, which
    /// carries server notifications and requests unrelated to any call (a server answering
    /// 405 has none; that is fine). Default off.
    pub fn server_stream(mut self, open: bool) -> Self {
        self.server_stream = open;
        self
    }

    /// Receives every server notification except progress delivered to a
    /// [`McpClient::call_tool_with_progress`] callback (e.g. `notifications/message`,
    /// `notifications/tools/list_changed`). It runs on the client's dispatch task: keep it short.
    pub fn on_notification(
        mut self,
        callback: impl Fn(Notification) + Send + Sync + 'static,
    ) -> Self {
        self.on_notification = Some(Arc::new(callback));
        self
    }

    /// Streamable HTTP: open with a 2026-07-28 `server/discover` and speak that era when the
    /// server answers it; otherwise fall back to `initialize` at
    /// [`McpClientBuilder::protocol_version`] (what the Python `mcp` 2.x client does).
    /// Default off: the era is the one `protocol_version` names.
    pub fn discover_first(mut self, on: bool) -> Self {
        self.discover_first = on;
        self
    }

    /// Answers the server's questions (`elicitation/create`, `sampling/createMessage`,
    /// `roots/list`) in both eras: server-to-client requests of a stateful session, and the
    /// `inputRequests` of a 2026-07-28 `InputRequiredResult` (the request is then retried with
    /// the answers). The handler gets the method and params and returns the result (e.g.
    /// `{"action":"accept","content":{..}}`) or a JSON-RPC error. Without one, such requests
    /// are refused with `-32601` (stateful) or fail the call (2026-07-28). Declare the matching
    /// capabilities with [`McpClientBuilder::capabilities`].
    pub fn on_input<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(String, Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Value, ErrorObject>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.input = Some(Arc::new(move |method, params| {
            let handler = Arc::clone(&handler);
            Box::pin(async move { handler(method, params).await })
        }));
        self
    }

    /// The transport [`McpClientBuilder::connect`] will use: the one chosen with
    /// [`McpClientBuilder::transport`], else the one the URL suggests.
    pub fn resolved_transport(&self) -> Result<TransportKind, Error> {
        match self.kind {
            Some(kind) => Ok(kind),
            None => Ok(TransportKind::from_url_path(parse_url(&self.url)?.path())),
        }
    }

    /// Runs the session over a transport of your own (see [`MessageTransport`]) and performs
    /// the `initialize` handshake. Settings that concern HTTP (URL, headers, HTTP client,
    /// transport kind, server stream, `discover_first`) do not apply. The 2026-07-28 era needs
    /// streamable HTTP: asking for it here is [`Error::Transport`].
    pub async fn connect_with(
        self,
        transport: Arc<dyn MessageTransport>,
        incoming: mpsc::Receiver<Incoming>,
    ) -> Result<McpClient, Error> {
        if self.version.is_stateless() {
            let _ = transport.close().await;
            return Err(Error::Transport(format!(
                "protocol {} needs streamable HTTP; this transport speaks stateful sessions",
                self.version.as_str()
            )));
        }
        let client = self.start(None, ClientTransport::Custom(transport), incoming, None);
        client.handshake(self.version, false).await
    }

    /// Connects and performs the handshake: `initialize` (checking the server's version is
    /// one we speak), then `notifications/initialized`.
    pub async fn connect(self) -> Result<McpClient, Error> {
        let kind = self.resolved_transport()?;
        let mut options = TransportOptions {
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            incoming_capacity: self.incoming_capacity,
            max_message_bytes: self.max_message_bytes,
            http_client: self.http_client.clone(),
            oauth: match &self.oauth {
                Some(config) => Some(Arc::new(
                    OAuthClient::new(&self.url, config.clone()).map_err(Error::Authorization)?,
                )),
                None => None,
            },
            ..TransportOptions::default()
        };
        for (name, value) in &self.headers {
            let (name, value) = parse_header(name, value)?;
            options.headers.append(name, value);
        }
        let stateless_version = if self.version.is_stateless() {
            Some(self.version)
        } else if self.discover_first && kind == TransportKind::StreamableHttp {
            Some(ProtocolVersion::LATEST)
        } else {
            None
        };
        let stateless = if let Some(version) = stateless_version {
            Some(Arc::new(StatelessClient::new(
                options.http_client()?,
                parse_url(&self.url)?,
                version,
                self.info.clone(),
                self.capabilities.clone(),
                self.request_timeout,
                self.max_message_bytes,
                self.input.clone(),
                self.on_notification.clone(),
            )))
        } else {
            None
        };
        let (transport, incoming) = match kind {
            TransportKind::LegacySse => {
                let (t, rx) = SseClientTransport::connect(&self.url, options).await?;
                (ClientTransport::Sse(t), rx)
            }
            _ => {
                let (t, rx) = StreamableHttpClientTransport::new(&self.url, options)?;
                (ClientTransport::Streamable(t), rx)
            }
        };
        let mut client = self.start(Some(kind), transport, incoming, stateless.clone());
        if let Some(stateless) = stateless {
            match stateless.discover().await {
                Ok(discovered) => {
                    client.discovered_info = discovered.server_info();
                    return Ok(client);
                }
                Err(e) if self.version.is_stateless() => return Err(e),
                Err(e) => {
                    // Not a 2026-07-28 server: the stateful `initialize` handshake, like the Python client.
                    tracing::debug!(error = %e, "server/discover failed; falling back to initialize");
                    client.stateless = None;
                }
            }
        }
        client.handshake(self.version, self.server_stream).await
    }

    /// The client with its dispatch task running, before any handshake.
    fn start(
        &self,
        kind: Option<TransportKind>,
        transport: ClientTransport,
        incoming: mpsc::Receiver<Incoming>,
        stateless: Option<Arc<StatelessClient>>,
    ) -> McpClient {
        let session =
            ClientSession::new(self.info.clone()).with_capabilities(self.capabilities.clone());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                session,
                waiters: HashMap::new(),
                progress: HashMap::new(),
                closed: false,
            }),
            request_timeout: self.request_timeout,
            next_progress_token: AtomicU64::new(0),
            on_notification: self.on_notification.clone(),
            input: self.input.clone(),
        });
        let dispatcher = tokio::spawn(dispatch(shared.clone(), transport.clone(), incoming));
        McpClient {
            shared,
            transport,
            kind,
            init: None,
            stateless,
            discovered_info: None,
            _dispatcher: AbortOnDrop(dispatcher.abort_handle()),
        }
    }
}

/// A connected MCP client over HTTP.
///
/// ```no_run
/// use mcp_sse::client::McpClient;
/// use serde_json::json;
///
/// # async fn run() -> Result<(), mcp_sse::Error> {
/// let client = McpClient::builder("http://127.0.0.1:8000/mcp")
///     .bearer_token("TOKEN")
///     .connect()
///     .await?;
/// let tools = client.list_tools().await?;
/// let result = client.call_tool("roll_dice", json!({"n_dice": 3})).await?;
/// println!("{} tools; result: {:?}", tools.len(), result.structured_content);
/// client.close().await?;
/// # Ok(()) }
/// ```
///
/// Requests may run concurrently from several tasks (`&self` methods). Dropping the client
/// stops its background task and closes the legacy SSE stream; call
/// [`McpClient::close`] to also end a streamable HTTP session on the server.
#[derive(Debug)]
pub struct McpClient {
    shared: Arc<Shared>,
    transport: ClientTransport,
    /// `None` for a transport given to [`McpClientBuilder::connect_with`].
    kind: Option<TransportKind>,
    init: Option<InitializeResult>,
    /// The 2026-07-28 era, when selected.
    pub(super) stateless: Option<Arc<StatelessClient>>,
    /// The server's identity from `server/discover`.
    discovered_info: Option<Implementation>,
    _dispatcher: AbortOnDrop,
}

type ProgressCallback = Arc<dyn Fn(ProgressParams) + Send + Sync>;
type NotificationCallback = Arc<dyn Fn(Notification) + Send + Sync>;

struct Shared {
    state: Mutex<State>,
    request_timeout: Duration,
    next_progress_token: AtomicU64,
    on_notification: Option<NotificationCallback>,
    input: Option<InputHandler>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

struct State {
    session: ClientSession,
    waiters: HashMap<RequestId, oneshot::Sender<Result<Value, Error>>>,
    progress: HashMap<RequestId, ProgressCallback>,
    closed: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Clone)]
enum ClientTransport {
    Sse(SseClientTransport),
    Streamable(StreamableHttpClientTransport),
    Custom(Arc<dyn MessageTransport>),
}

impl ClientTransport {
    async fn send(&self, message: &Message) -> Result<(), Error> {
        match self {
            ClientTransport::Sse(t) => t.send(message).await,
            ClientTransport::Streamable(t) => t.send(message).await,
            ClientTransport::Custom(t) => t.send(message).await,
        }
    }

    async fn close(&self) -> Result<(), Error> {
        match self {
            ClientTransport::Sse(t) => {
                t.close();
                Ok(())
            }
            ClientTransport::Streamable(t) => t.close().await,
            ClientTransport::Custom(t) => t.close().await,
        }
    }
}

/// Removes a progress callback when the call ends, however it ends.
struct ProgressRegistration {
    shared: Arc<Shared>,
    token: RequestId,
}

impl Drop for ProgressRegistration {
    fn drop(&mut self) {
        self.shared.state().progress.remove(&self.token);
    }
}

impl McpClient {
    /// Starts configuring a client for the server at `url` (e.g. `http://127.0.0.1:8000/mcp`
    /// or `http://127.0.0.1:8000/sse`).
    pub fn builder(url: impl Into<String>) -> McpClientBuilder {
        McpClientBuilder {
            url: url.into(),
            headers: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            kind: None,
            version: ProtocolVersion::LATEST_STATEFUL,
            info: Implementation::new("mcp-sse", env!("CARGO_PKG_VERSION")),
            capabilities: ClientCapabilities::default(),
            incoming_capacity: DEFAULT_INCOMING_CAPACITY,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            http_client: None,
            server_stream: false,
            on_notification: None,
            input: None,
            discover_first: false,
            oauth: None,
        }
    }

    /// Starts configuring a client for a transport you provide to
    /// [`McpClientBuilder::connect_with`] (no URL; HTTP settings do not apply).
    pub fn transport_builder() -> McpClientBuilder {
        Self::builder(String::new())
    }

    /// The HTTP transport in use; `None` for a transport given to
    /// [`McpClientBuilder::connect_with`] (such as `mcp-stdio`'s child process).
    pub fn transport_kind(&self) -> Option<TransportKind> {
        self.kind
    }

    /// The negotiated protocol version.
    pub fn protocol_version(&self) -> ProtocolVersion {
        if let Some(m) = &self.stateless {
            return m.version();
        }
        self.shared
            .state()
            .session
            .protocol_version()
            .unwrap_or(ProtocolVersion::LATEST_STATEFUL)
    }

    /// The server's name and version from `initialize`.
    pub fn server_info(&self) -> Option<&Implementation> {
        self.init
            .as_ref()
            .map(|i| &i.server_info)
            .or(self.discovered_info.as_ref())
    }

    /// The `server/discover` result, in the 2026-07-28 era.
    pub fn discover_result(&self) -> Option<mcp_proto::stateless::DiscoverResult> {
        self.stateless.as_ref().and_then(|m| {
            m.discovered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }

    /// The whole `initialize` result (capabilities, instructions).
    pub fn initialize_result(&self) -> Option<&InitializeResult> {
        self.init.as_ref()
    }

    /// The server's session id (`Mcp-Session-Id`, or the legacy SSE endpoint's `session_id`).
    pub fn session_id(&self) -> Option<String> {
        match &self.transport {
            ClientTransport::Sse(t) => t.session_id(),
            ClientTransport::Streamable(t) => t.session_id(),
            ClientTransport::Custom(t) => t.session_id(),
        }
    }

    /// How many requests wait for their answers.
    pub fn pending_requests(&self) -> usize {
        let state = self.shared.state();
        state.waiters.len().max(state.session.pending())
    }

    /// Lists every tool, following `nextCursor` across pages (a server that repeats a cursor
    /// or sends more than 1000 pages is an error).
    pub async fn list_tools(&self) -> Result<Vec<Tool>, Error> {
        let mut tools = Vec::new();
        let mut pages = Pagination::default();
        let mut cursor: Option<String> = None;
        loop {
            let params = cursor.as_ref().map(|c| json!({ "cursor": c }));
            let value = self.request(method::TOOLS_LIST, params).await?;
            let page: ListToolsResult = parse_result(Ok(value))?;
            tools.extend(page.tools);
            match pages.next(page.next_cursor)? {
                Some(next) => cursor = Some(next),
                None => {
                    return Ok(match &self.stateless {
                        Some(m) => m.accept_tools(tools),
                        None => tools,
                    });
                }
            }
        }
    }

    /// Calls a tool. `arguments` is a JSON object (or `null` for none). A tool that fails
    /// returns a result with `isError: true`; a JSON-RPC error answer is
    /// `Error::Protocol(mcp_proto::Error::Rpc(..))`.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<CallToolResult, Error> {
        let params = call_params(name, arguments)?;
        let value = self.request(method::TOOLS_CALL, Some(params)).await?;
        Ok(parse_result(Ok(value))?)
    }

    /// Calls a tool with a progress token: every `notifications/progress` the server sends
    /// for it reaches `on_progress` (in order, before this returns the result).
    pub async fn call_tool_with_progress(
        &self,
        name: &str,
        arguments: Value,
        on_progress: impl Fn(ProgressParams) + Send + Sync + 'static,
    ) -> Result<CallToolResult, Error> {
        let mut params = call_params(name, arguments)?;
        if let Some(m) = &self.stateless {
            params["_meta"] = json!({ "progressToken": "progress-0" });
            let value = m
                .request(
                    method::TOOLS_CALL,
                    Some(params),
                    Some(Arc::new(on_progress)),
                )
                .await?;
            return Ok(parse_result(Ok(value))?);
        }
        let n = self
            .shared
            .next_progress_token
            .fetch_add(1, Ordering::Relaxed);
        let token = RequestId::from(format!("progress-{n}"));
        params["_meta"] = json!({ "progressToken": token.to_value() });
        self.shared
            .state()
            .progress
            .insert(token.clone(), Arc::new(on_progress));
        let _registration = ProgressRegistration {
            shared: self.shared.clone(),
            token,
        };
        let value = self.request(method::TOOLS_CALL, Some(params)).await?;
        Ok(parse_result(Ok(value))?)
    }

    /// Sends any request and returns its raw result.
    ///
    /// Errors: `Error::Protocol(mcp_proto::Error::Rpc(..))` for a JSON-RPC error answer;
    /// [`Error::Timeout`] after the request timeout (the request is then forgotten and a
    /// `notifications/cancelled` is sent); [`Error::SessionClosed`] when the session ended
    /// before the answer; transport errors ([`Error::Http`], [`Error::Connect`], ...).
    pub async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, Error> {
        if let Some(m) = &self.stateless {
            return m.request(method, params, None).await;
        }
        let (id, message, answer) = {
            let mut state = self.shared.state();
            if state.closed {
                return Err(Error::SessionClosed);
            }
            let message = state.session.request(method, params)?;
            let Message::Request(request) = &message else {
                return Err(Error::Transport("request building failed".into()));
            };
            let id = request.id.clone();
            let (tx, rx) = oneshot::channel();
            state.waiters.insert(id.clone(), tx);
            (id, message, rx)
        };
        let wait = self.shared.request_timeout;
        let exchange = async {
            self.transport.send(&message).await?;
            answer.await.map_err(|_| Error::SessionClosed)?
        };
        let span = tracing::debug_span!("mcp_request", method, id = %id);
        match tokio::time::timeout(wait, exchange).instrument(span).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                let mut state = self.shared.state();
                state.waiters.remove(&id);
                state.session.forget(&id);
                Err(error)
            }
            Err(_) => {
                let cancel = {
                    let mut state = self.shared.state();
                    state.waiters.remove(&id);
                    state.session.cancel(&id, Some("request timed out"))
                };
                tracing::debug!(%id, method, "request timed out");
                if let Some(cancel) = cancel {
                    let transport = self.transport.clone();
                    tokio::spawn(async move {
                        if let Err(e) = transport.send(&cancel).await {
                            tracing::debug!(error = %e, "could not send notifications/cancelled");
                        }
                    });
                }
                Err(Error::Timeout(wait, "the answer to a request"))
            }
        }
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), Error> {
        if self.stateless.is_some() {
            // No notification is meaningful to a stateless server.
            tracing::debug!(method, "not sent: 2026-07-28 has no client notifications");
            return Ok(());
        }
        if self.shared.state().closed {
            return Err(Error::SessionClosed);
        }
        self.transport
            .send(&Message::notification(method, params))
            .await
    }

    /// Ends the session: pending requests fail with [`Error::SessionClosed`], a streamable
    /// HTTP session is deleted on the server (`DELETE`), a legacy SSE stream is closed.
    pub async fn close(&self) -> Result<(), Error> {
        fail_pending(&self.shared);
        self.transport.close().await
    }

    /// `initialize` and `notifications/initialized`; on failure the transport is closed.
    async fn handshake(
        mut self,
        version: ProtocolVersion,
        server_stream: bool,
    ) -> Result<McpClient, Error> {
        match self.initialize(version).await {
            Ok(init) => {
                self.init = Some(init);
                if let (true, ClientTransport::Streamable(t)) = (server_stream, &self.transport) {
                    match t.open_server_stream().await {
                        Ok(true) => tracing::debug!("server stream open"),
                        Ok(false) => tracing::debug!("the server offers no server stream (405)"),
                        Err(e) => tracing::warn!(error = %e, "cannot open the server stream"),
                    }
                }
                Ok(self)
            }
            Err(e) => {
                let _ = self.transport.close().await;
                Err(e)
            }
        }
    }

    async fn initialize(&self, version: ProtocolVersion) -> Result<InitializeResult, Error> {
        let (id, message, answer) = {
            let mut state = self.shared.state();
            let message = state.session.initialize_request(version)?;
            let Message::Request(request) = &message else {
                return Err(Error::Transport("request building failed".into()));
            };
            let id = request.id.clone();
            let (tx, rx) = oneshot::channel();
            state.waiters.insert(id.clone(), tx);
            (id, message, rx)
        };
        let wait = self.shared.request_timeout;
        let exchange = async {
            self.transport.send(&message).await?;
            answer.await.map_err(|_| Error::SessionClosed)?
        };
        let outcome = tokio::time::timeout(wait, exchange)
            .await
            .map_err(|_| Error::Timeout(wait, "the answer to initialize"));
        let value = match outcome {
            Ok(Ok(value)) => value,
            Ok(Err(e)) | Err(e) => {
                let mut state = self.shared.state();
                state.waiters.remove(&id);
                state.session.forget(&id);
                return Err(e);
            }
        };
        let result = self
            .shared
            .state()
            .session
            .complete_initialize(ClientEvent::Response {
                id,
                method: method::INITIALIZE.to_owned(),
                outcome: Ok(value),
            })?;
        let negotiated = self.protocol_version();
        if let ClientTransport::Streamable(t) = &self.transport {
            t.set_protocol_version(negotiated);
        }
        let initialized = self.shared.state().session.initialized_notification();
        self.transport.send(&initialized).await?;
        tracing::debug!(
            version = negotiated.as_str(),
            server = %result.server_info.name,
            "MCP session initialized"
        );
        Ok(result)
    }
}

fn call_params(name: &str, arguments: Value) -> Result<Value, Error> {
    match arguments {
        Value::Null => Ok(json!({ "name": name })),
        Value::Object(_) => Ok(json!({ "name": name, "arguments": arguments })),
        other => Err(Error::InvalidArguments(other.to_string())),
    }
}

/// Fails every pending request with [`Error::SessionClosed`] and refuses new ones.
fn fail_pending(shared: &Shared) {
    let mut state = shared.state();
    state.closed = true;
    let ids: Vec<RequestId> = state.waiters.keys().cloned().collect();
    for id in ids {
        state.session.forget(&id);
    }
    // Dropping the senders wakes the waiting requests with `SessionClosed`.
    state.waiters.clear();
    state.progress.clear();
}

/// Routes everything the server sends: answers to their waiting requests, progress to its
/// callback, server requests to an answer. When the channel ends, the session is over.
async fn dispatch(
    shared: Arc<Shared>,
    transport: ClientTransport,
    mut incoming: mpsc::Receiver<Incoming>,
) {
    while let Some(item) = incoming.recv().await {
        match item {
            Incoming::Message(message) => handle_message(&shared, &transport, message),
            Incoming::Lost { id, error } => {
                let waiter = {
                    let mut state = shared.state();
                    state.session.forget(&id);
                    state.waiters.remove(&id)
                };
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Err(error));
                }
            }
            Incoming::Malformed(error) => {
                tracing::warn!(%error, "ignoring a malformed message from the server");
            }
        }
    }
    tracing::debug!("the server's message stream ended; the session is closed");
    fail_pending(&shared);
}

fn handle_message(shared: &Shared, transport: &ClientTransport, message: Message) {
    let event = shared.state().session.handle_message(message);
    match event {
        Ok(ClientEvent::Response { id, outcome, .. }) => {
            let waiter = shared.state().waiters.remove(&id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(outcome.map_err(|e| mcp_proto::Error::Rpc(e).into()));
            }
        }
        Ok(ClientEvent::Notification(n)) => {
            if n.method == method::PROGRESS {
                let params = n
                    .params
                    .clone()
                    .and_then(|p| serde_json::from_value::<ProgressParams>(p).ok());
                if let Some(params) = params {
                    let callback = shared.state().progress.get(&params.progress_token).cloned();
                    if let Some(callback) = callback {
                        callback(params);
                        return;
                    }
                }
            }
            tracing::debug!(method = %n.method, "server notification");
            if let Some(callback) = &shared.on_notification {
                callback(n);
            }
        }
        Ok(ClientEvent::ServerRequest(request))
            if request.method != method::PING && shared.input.is_some() =>
        {
            let Some(handler) = shared.input.clone() else {
                return;
            };
            let transport = transport.clone();
            tokio::spawn(async move {
                let params = request.params.clone().unwrap_or_else(|| json!({}));
                let reply = match handler(request.method.clone(), params).await {
                    Ok(result) => Response::result(request.id, result),
                    Err(error) => Response::error(Some(request.id), error),
                };
                if let Err(e) = transport.send(&Message::Response(reply)).await {
                    tracing::debug!(error = %e, "could not answer a server request");
                }
            });
        }
        Ok(ClientEvent::ServerRequest(request)) => {
            let reply = if request.method == method::PING {
                Response::result(request.id, json!({}))
            } else {
                Response::error(
                    Some(request.id),
                    ErrorObject::method_not_found(&request.method),
                )
            };
            let transport = transport.clone();
            tokio::spawn(async move {
                if let Err(e) = transport.send(&Message::Response(reply)).await {
                    tracing::debug!(error = %e, "could not answer a server request");
                }
            });
        }
        Ok(other) => tracing::debug!(event = ?other, "client event ignored"),
        Err(mcp_proto::Error::UnknownResponse(id)) => {
            tracing::debug!(%id, "answer to a request no longer waiting (timed out?)");
        }
        Err(error) => {
            let error = mcp_proto::error_chain(&error);
            tracing::warn!(%error, "unusable message from the server");
        }
    }
}
