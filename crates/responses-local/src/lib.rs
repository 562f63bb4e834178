//! A faithful local stand-in for OpenAI's `POST /v1/responses` with remote MCP tools, acting as an
//! MCP client.
//!
//! Point an OpenAI client (the Python SDK, `async-openai`, `responses-client`) at
//! `http://127.0.0.1:<port>/v1` and it behaves like the hosted Responses API for `mcp` tools:
//!
//! - the same request validation (400 `invalid_request_error` with `param`), a required
//!   `Authorization: Bearer <key>` (401 `invalid_api_key` otherwise, the key compared in constant
//!   time): the key given to [`LocalResponsesBuilder::api_key`], or a random one generated at
//!   build time ([`LocalResponses::api_key`] tells it);
//! - per `mcp` tool an `mcp_list_tools` item (reused along a `previous_response_id` chain),
//!   `allowed_tools`, `require_approval` (`mcp_approval_request` items answered by
//!   `mcp_approval_response` input items), `mcp_call` items and a final `message`;
//! - the exact 424 `external_connector_error` body when a server's tool list cannot be fetched:
//!   `{"error":{"message":"Error retrieving tool list from MCP server: 'dice_server'. Http status
//!   code: 401 (Unauthorized)","type":"external_connector_error","param":"tools","code":"http_error"}}`.
//!   A server that cannot be reached at all (refused, reset, DNS, TLS, not HTTP, no answer while
//!   connecting) gets one text whatever the cause, "... Http status code: 424 (Failed
//!   Dependency)" as OpenAI shows it, so answers do not tell which local ports are open (the cause
//!   is logged). Other listing failures keep the type, status and message prefix with their own
//!   `code`: `timeout_error` ("... Request timed out.") and `mcp_protocol_error`;
//! - `stream: true` with the real event sequence and `sequence_number`s; `store` with
//!   `GET /v1/responses/{id}` (and `DELETE`).
//!
//! Safe on a developer's laptop by default:
//!
//! - only requests whose `Host` is loopback (`127.0.0.1`, `localhost`, `[::1]`, any port) and whose
//!   `Origin`, if any, is loopback are served; others get 403 (`host_not_allowed`,
//!   `origin_not_allowed`), so a web page cannot reach the endpoint by DNS rebinding.
//!   [`LocalResponsesBuilder::allow_host`] and [`LocalResponsesBuilder::allow_any_host`] open it up;
//! - at most 16 `mcp` tools per request ([`LocalResponsesBuilder::max_mcp_tools`]; more is a 400
//!   `array_above_max_length`), connected and listed concurrently, output in the order given;
//! - the store keeps at most 10 000 responses, 64 MiB and one hour
//!   ([`LocalResponsesBuilder::store_capacity`], [`LocalResponsesBuilder::store_max_bytes`],
//!   [`LocalResponsesBuilder::store_ttl`]); a `previous_response_id` chain shares its history (each
//!   stored response holds only the items it added), so a link costs its own items.
//!
//! Two seams keep it testable and open: an [`McpConnector`] opens MCP sessions (an adapter over a
//! real MCP client, or an in-process fake), and a [`Model`] decides tool calls and writes the
//! answer ([`DeterministicModel`] by default: "Roll a few dice!" → `roll_dice({"n_dice":3})` →
//! "You rolled 3 dice and got the following results: 6, 4, and 2!").
//!
//! Differences from the hosted API, on purpose: only `mcp` tools are supported; the echoed `tools`
//! carry `headers: null` and no `authorization`; a failed call's `http_error` uses code 502 for an
//! unreachable server and 504 for a timeout; `output_text` is added to every response body.
//!
//! ```no_run
//! use futures::future::BoxFuture;
//! use responses_local::{ConnectorError, LocalResponses, McpConnection, McpConnector, McpTarget};
//!
//! /// A connector that cannot reach anything (plug in a real MCP client adapter instead).
//! struct Nowhere;
//!
//! impl McpConnector for Nowhere {
//!     fn connect(
//!         &self,
//!         target: McpTarget,
//!     ) -> BoxFuture<'static, Result<Box<dyn McpConnection>, ConnectorError>> {
//!         Box::pin(async move { Err(ConnectorError::Unreachable(target.server_url)) })
//!     }
//! }
//!
//! # async fn demo() -> Result<(), responses_local::Error> {
//! let endpoint = LocalResponses::builder().connector(Nowhere).build()?;
//! let running = endpoint.spawn("127.0.0.1:0").await?;
//! println!("OPENAI_BASE_URL={}", running.base_url());
//! println!("OPENAI_API_KEY={}", running.api_key());
//! running.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod access;
mod connector;
mod engine;
mod error;
mod history;
mod http;
mod mcp_sse_connector;
mod model;
mod request;
mod response;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use connector::{
    ConnectorError, ListedTool, McpConnection, McpConnector, McpTarget, ToolCallOutcome,
};
pub use error::Error;
pub use mcp_sse_connector::HttpMcpConnector;
pub use model::{
    ActivityResult, ChatMessage, DeterministicModel, Model, ModelInput, ModelStep, ToolActivity,
    ToolOffer, example_arguments,
};

pub use store::StoreUsage;

use access::{Access, ApiKey, HostPolicy};
use engine::Shared;
use store::{ResponseStore, StoreLimits};

/// How long [`RunningEndpoint::shutdown`] waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The default of [`LocalResponsesBuilder::max_mcp_tools`].
pub const DEFAULT_MAX_MCP_TOOLS: usize = 16;
/// The default of [`LocalResponsesBuilder::store_capacity`].
pub const DEFAULT_STORE_CAPACITY: usize = 10_000;
/// The default of [`LocalResponsesBuilder::store_max_bytes`] (64 MiB).
pub const DEFAULT_STORE_MAX_BYTES: usize = 64 * 1024 * 1024;
/// The default of [`LocalResponsesBuilder::store_ttl`] (one hour).
pub const DEFAULT_STORE_TTL: Duration = Duration::from_secs(3600);

/// The local Responses endpoint, ready to be served.
#[derive(Debug, Clone)]
pub struct LocalResponses {
    shared: Arc<Shared>,
    access: Arc<Access>,
    max_body_bytes: usize,
}

/// Configures a [`LocalResponses`].
pub struct LocalResponsesBuilder {
    connector: Option<Arc<dyn McpConnector>>,
    model: Arc<dyn Model>,
    store: StoreLimits,
    max_body_bytes: usize,
    mcp_timeout: Duration,
    model_timeout: Duration,
    max_tool_calls: u32,
    max_mcp_tools: usize,
    api_key: Option<String>,
    hosts: HostPolicy,
}

impl std::fmt::Debug for LocalResponsesBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalResponsesBuilder")
            .field("has_connector", &self.connector.is_some())
            .field("store", &self.store)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("mcp_timeout", &self.mcp_timeout)
            .field("model_timeout", &self.model_timeout)
            .field("max_tool_calls", &self.max_tool_calls)
            .field("max_mcp_tools", &self.max_mcp_tools)
            .field("has_api_key", &self.api_key.is_some())
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl Default for LocalResponsesBuilder {
    fn default() -> Self {
        Self {
            connector: None,
            model: Arc::new(DeterministicModel),
            store: StoreLimits {
                max_responses: DEFAULT_STORE_CAPACITY,
                max_bytes: DEFAULT_STORE_MAX_BYTES,
                ttl: DEFAULT_STORE_TTL,
            },
            max_body_bytes: 4 * 1024 * 1024,
            mcp_timeout: Duration::from_secs(30),
            model_timeout: Duration::from_secs(60),
            max_tool_calls: 16,
            max_mcp_tools: DEFAULT_MAX_MCP_TOOLS,
            api_key: None,
            hosts: HostPolicy::default(),
        }
    }
}

impl LocalResponsesBuilder {
    /// The MCP connector (default [`HttpMcpConnector`]: real MCP servers over HTTP).
    pub fn connector(mut self, connector: impl McpConnector) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// The model (default [`DeterministicModel`]).
    pub fn model(mut self, model: impl Model) -> Self {
        self.model = Arc::new(model);
        self
    }

    /// How many stored responses are kept; the oldest is evicted first (default 10 000).
    pub fn store_capacity(mut self, capacity: usize) -> Self {
        self.store.max_responses = capacity;
        self
    }

    /// How many bytes the store may hold: response bodies and the chain history they share; the
    /// oldest responses are evicted first (default 64 MiB). A chain's history stays charged while
    /// any stored response of the chain refers to it.
    pub fn store_max_bytes(mut self, bytes: usize) -> Self {
        self.store.max_bytes = bytes;
        self
    }

    /// How long a stored response is kept (default one hour).
    pub fn store_ttl(mut self, ttl: Duration) -> Self {
        self.store.ttl = ttl;
        self
    }

    /// The most `mcp` tools one request may carry (default 16); more is a 400
    /// `array_above_max_length`.
    pub fn max_mcp_tools(mut self, tools: usize) -> Self {
        self.max_mcp_tools = tools;
        self
    }

    /// The API key clients must send as `Authorization: Bearer <key>` (default: a random
    /// `sk-local-…` key generated by [`build`](Self::build), see [`LocalResponses::api_key`]).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Also accepts this name (host name or IP address; a port is ignored) in `Host` and
    /// `Origin`, besides the loopback names. Call once per name.
    pub fn allow_host(mut self, name: &str) -> Self {
        self.hosts.allow(name);
        self
    }

    /// Accepts any `Host` and `Origin`: only for an endpoint behind a proxy or tunnel that
    /// checks them itself, since a web page can then reach the endpoint by DNS rebinding.
    pub fn allow_any_host(mut self) -> Self {
        self.hosts.allow_any();
        self
    }

    /// The largest accepted request body (default 4 MiB; larger bodies get a 413).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The time limit for each MCP step: connecting, listing tools, one tool call (default 30 s).
    pub fn mcp_timeout(mut self, timeout: Duration) -> Self {
        self.mcp_timeout = timeout;
        self
    }

    /// The time limit for one model step (default 60 s).
    pub fn model_timeout(mut self, timeout: Duration) -> Self {
        self.model_timeout = timeout;
        self
    }

    /// The most tool calls in one response; a request's `max_tool_calls` can only lower it
    /// (default 16).
    pub fn max_tool_calls(mut self, calls: u32) -> Self {
        self.max_tool_calls = calls;
        self
    }

    /// Builds the endpoint; fails with [`Error::InvalidApiKey`] for an empty key or one with
    /// spaces or characters other than visible ASCII.
    pub fn build(self) -> Result<LocalResponses, Error> {
        let key = match &self.api_key {
            Some(key) if valid_api_key(key) => ApiKey::new(key),
            Some(_) => return Err(Error::InvalidApiKey),
            None => ApiKey::generate(),
        };
        let connector = self
            .connector
            .unwrap_or_else(|| Arc::new(HttpMcpConnector::default()));
        Ok(LocalResponses {
            shared: Arc::new(Shared {
                connector,
                model: self.model,
                store: ResponseStore::new(self.store),
                mcp_timeout: self.mcp_timeout,
                model_timeout: self.model_timeout,
                max_tool_calls: self.max_tool_calls,
                max_mcp_tools: self.max_mcp_tools,
            }),
            access: Arc::new(Access {
                hosts: self.hosts,
                key,
            }),
            max_body_bytes: self.max_body_bytes,
        })
    }
}

/// Whether `key` can be sent as `Authorization: Bearer <key>`.
fn valid_api_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic())
}

impl LocalResponses {
    /// Starts configuring an endpoint.
    pub fn builder() -> LocalResponsesBuilder {
        LocalResponsesBuilder::default()
    }

    /// The API key clients must send as `Authorization: Bearer <key>`: the configured one, or
    /// the one generated at build time (print it for the user).
    pub fn api_key(&self) -> &str {
        self.access.key.as_str()
    }

    /// How much the response store holds now.
    pub fn store_usage(&self) -> StoreUsage {
        self.shared.store.usage()
    }

    /// The routes (`/v1/responses`, `/v1/responses/{id}`) behind the `Host`/`Origin` and API key
    /// checks, to mount or wrap with layers.
    pub fn router(&self) -> axum::Router {
        http::router(
            self.shared.clone(),
            self.access.clone(),
            self.max_body_bytes,
        )
    }

    /// Serves on `listener` until the future is dropped or the server fails.
    pub async fn serve(self, listener: TcpListener) -> Result<(), Error> {
        axum::serve(listener, self.router())
            .await
            .map_err(Error::Serve)
    }

    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves in a background task.
    pub async fn spawn(self, addr: &str) -> Result<RunningEndpoint, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| Error::Bind {
            addr: addr.to_owned(),
            source,
        })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = self.router();
        let endpoint = self.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .map_err(Error::Serve)
        });
        tracing::info!(%local, "local Responses endpoint listening");
        Ok(RunningEndpoint {
            endpoint,
            addr: local,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A served endpoint; dropping it stops the server.
#[derive(Debug)]
pub struct RunningEndpoint {
    endpoint: LocalResponses,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl RunningEndpoint {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL for OpenAI clients, `http://<addr>/v1` (use as `OPENAI_BASE_URL`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The API key clients must send (use as `OPENAI_API_KEY`).
    pub fn api_key(&self) -> &str {
        self.endpoint.api_key()
    }

    /// How much the response store holds now.
    pub fn store_usage(&self) -> StoreUsage {
        self.endpoint.store_usage()
    }

    /// Stops accepting connections and waits (up to 5 s) for open ones to finish.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(Error::Serve(std::io::Error::other(join))),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for RunningEndpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
