//! The reverse direction: a remote HTTP MCP server served as a stdio server, for local hosts
//! that only start stdio servers (`mcp-gateway --connect URL`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_proto::types::InitializeParams;
use mcp_proto::{
    BoxFuture, ErrorObject, McpService, Message, MessageContext, Notification, Outbound,
    ProtocolVersion, Request, Response, Session,
};
use mcp_sse::client::{McpClient, McpClientBuilder};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::forward::{self, Forward};
use crate::lock;

/// How [`RemoteServer`] reaches the remote server.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The remote MCP endpoint (`…/sse` selects legacy HTTP+SSE, anything else streamable HTTP).
    pub url: String,
    /// Sent as `Authorization: Bearer …` on every HTTP request.
    pub bearer_token: Option<String>,
    /// Longest wait for one answer of the remote server.
    pub request_timeout: Duration,
    /// How long the local host has to answer a request of the remote server.
    pub host_answer_timeout: Duration,
}

impl RemoteConfig {
    /// Defaults for `url`: no token, 5 min per request, 2 min for the host's answers.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            bearer_token: None,
            request_timeout: Duration::from_secs(300),
            host_answer_timeout: Duration::from_secs(120),
        }
    }
}

/// An [`McpService`] for [`mcp_stdio::StdioServer`] that forwards everything to a remote HTTP
/// MCP server. The host's `initialize` opens the remote session with the host's own version,
/// capabilities and client info, and is answered with the remote's result; requests and
/// notifications go on to the remote server, whose notifications (progress, logs, list
/// changes) and requests (sampling, elicitation, roots) come back to the host.
///
/// ```no_run
/// # async fn run() -> Result<(), mcp_stdio::Error> {
/// use mcp_gateway::{RemoteConfig, RemoteServer};
///
/// let remote = RemoteServer::new(RemoteConfig {
///     bearer_token: std::env::var("MCP_TOKEN").ok(),
///     ..RemoteConfig::new("https://mcp.example.com/mcp")
/// });
/// mcp_stdio::StdioServer::new(remote).serve_stdio().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RemoteServer {
    inner: Arc<RemoteInner>,
}

#[derive(Debug)]
struct RemoteInner {
    config: RemoteConfig,
    client: OnceCell<McpClient>,
    host: Mutex<Option<HostStream>>,
}

/// Where messages of the remote server to the host go.
#[derive(Clone)]
struct HostStream {
    session: Arc<Session>,
    outbound: Arc<dyn Outbound>,
}

impl std::fmt::Debug for HostStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostStream").finish_non_exhaustive()
    }
}

impl RemoteServer {
    /// A service that connects to the remote server at the host's `initialize`.
    pub fn new(config: RemoteConfig) -> Self {
        Self {
            inner: Arc::new(RemoteInner {
                config,
                client: OnceCell::new(),
                host: Mutex::new(None),
            }),
        }
    }

    /// Closes the remote session, if one was opened.
    pub async fn close(&self) {
        if let Some(client) = self.inner.client.get()
            && let Err(error) = client.close().await
        {
            tracing::debug!(%error, "closing the remote session failed");
        }
    }

    fn host(&self) -> Option<HostStream> {
        lock(&self.inner.host).clone()
    }

    /// The remote session's builder, with the host's parameters and the hooks that bring
    /// the remote server's messages back to the host.
    fn builder(&self, params: InitializeParams) -> McpClientBuilder {
        let c = &self.inner.config;
        let version = params
            .protocol_version
            .parse::<ProtocolVersion>()
            .ok()
            .filter(|v| !v.is_stateless())
            .unwrap_or(ProtocolVersion::LATEST_STATEFUL);
        let mut builder = McpClient::builder(c.url.clone())
            .protocol_version(version)
            .capabilities(params.capabilities)
            .client_info(params.client_info)
            .request_timeout(c.request_timeout);
        if let Some(token) = &c.bearer_token {
            builder = builder.bearer_token(token);
        }
        let notify = self.clone();
        let ask = self.clone();
        builder
            .on_notification(move |n| {
                let relay = notify.clone();
                tokio::spawn(async move { relay.to_host(n).await });
            })
            .on_input(move |method, params| {
                let relay = ask.clone();
                async move { relay.ask_host(method, params).await }
            })
    }

    async fn to_host(&self, notification: Notification) {
        if let Some(host) = self.host() {
            let _ = host
                .outbound
                .send(Message::Notification(notification))
                .await;
        }
    }

    /// Forwards a request of the remote server to the host and waits for its answer.
    async fn ask_host(&self, method: String, params: Value) -> Result<Value, ErrorObject> {
        let host = self
            .host()
            .ok_or_else(|| ErrorObject::internal("the local host is not connected"))?;
        let (id, answer) = host
            .session
            .begin_server_request()
            .map_err(ErrorObject::internal)?;
        let request = Message::request(id.clone(), method, Some(params));
        if let Err(error) = host.outbound.send(request).await {
            host.session.abandon_server_request(&id);
            return Err(ErrorObject::internal(format!(
                "cannot reach the host: {error}"
            )));
        }
        let wait = self.inner.config.host_answer_timeout;
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(ErrorObject::internal("the host's session closed")),
            Err(_) => {
                host.session.abandon_server_request(&id);
                Err(ErrorObject::new(
                    mcp_proto::jsonrpc::code::REQUEST_TIMEOUT,
                    format!("the host did not answer within {} s", wait.as_secs_f64()),
                ))
            }
        }
    }

    async fn initialize(
        &self,
        params: Option<Value>,
        session: &Session,
    ) -> Result<Value, ErrorObject> {
        let params: InitializeParams = serde_json::from_value(params.unwrap_or_else(|| json!({})))
            .map_err(ErrorObject::invalid_params)?;
        let builder = self.builder(params.clone());
        let client = self
            .inner
            .client
            .get_or_try_init(|| async {
                builder.connect().await.map_err(|e| {
                    ErrorObject::internal(format!(
                        "cannot connect to {}: {}",
                        self.inner.config.url,
                        mcp_proto::error_chain(&e)
                    ))
                })
            })
            .await?;
        let result = client
            .initialize_result()
            .ok_or_else(|| ErrorObject::internal("the remote session has no initialize result"))?;
        let version = result.protocol_version.parse::<ProtocolVersion>().ok();
        session.update_state(|s| {
            s.protocol_version = version;
            s.client_info = Some(params.client_info);
            s.client_capabilities = params.capabilities;
        });
        serde_json::to_value(result).map_err(ErrorObject::internal)
    }

    async fn request(&self, request: Request, ctx: MessageContext) -> Option<Response> {
        let Request { id, method, params } = request;
        if method == "initialize" {
            let outcome = self.initialize(params, &ctx.session).await;
            return Some(Response {
                id: Some(id),
                outcome,
            });
        }
        let Some(client) = self.inner.client.get() else {
            return Some(Response::error(
                Some(id),
                ErrorObject::invalid_request("initialize first"),
            ));
        };
        let cancelled = ctx.session.begin_request(id.clone());
        let outcome = tokio::select! {
            outcome = client.request(&method, params) => outcome.map_err(remote_error),
            () = cancelled.cancelled() => return None,
        };
        ctx.session.end_request(&id);
        Some(Response {
            id: Some(id),
            outcome,
        })
    }

    async fn notification(&self, notification: Notification, session: &Session) {
        let Notification { method, params } = notification;
        match method.as_str() {
            // The remote session was initialized when it opened.
            "notifications/initialized" => session.update_state(|s| s.initialized = true),
            "notifications/cancelled" => {
                let id = params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(mcp_proto::RequestId::from_value);
                if let Some(id) = id {
                    session.cancel_request(&id);
                }
            }
            _ => {
                if let Some(client) = self.inner.client.get()
                    && let Err(error) = client.notify(&method, params).await
                {
                    tracing::debug!(%method, %error, "notification not forwarded");
                }
            }
        }
    }
}

/// A failed remote request as the JSON-RPC error the host gets: the remote server's own
/// error when it answered with one.
fn remote_error(error: mcp_sse::Error) -> ErrorObject {
    match error {
        mcp_sse::Error::Protocol(mcp_proto::Error::Rpc(e)) => e,
        other => ErrorObject::internal(format!(
            "the remote MCP server failed: {}",
            mcp_proto::error_chain(&other)
        )),
    }
}

impl Forward for RemoteServer {
    fn request(
        &self,
        request: Request,
        ctx: MessageContext,
    ) -> impl Future<Output = Option<Response>> + Send {
        RemoteServer::request(self, request, ctx)
    }

    fn notification(
        &self,
        notification: Notification,
        session: &Session,
    ) -> impl Future<Output = ()> + Send {
        RemoteServer::notification(self, notification, session)
    }
}

impl McpService for RemoteServer {
    fn handle(&self, message: Message, ctx: MessageContext) -> BoxFuture<'static, Option<Message>> {
        forward::handle(self, message, ctx)
    }

    fn stream_opened(&self, session: &Arc<Session>, outbound: Arc<dyn Outbound>) {
        *lock(&self.inner.host) = Some(HostStream {
            session: Arc::clone(session),
            outbound,
        });
    }

    fn session_closed(&self, session: &Session) {
        session.cancel_all();
        lock(&self.inner.host).take();
    }
}
