//! # mcp-sse: MCP over HTTP, server and client
//!
//! Serves any [`mcp_proto::McpService`] (such as [`mcp_proto::McpServer`]) over both HTTP
//! transports from one `axum::Router`, and talks to MCP servers over both as a client.
//!
//! - **Legacy HTTP+SSE** (protocol 2024-11-05, the transport FastMCP's OpenAI integration
//!   guide uses, FastMCP's `transport="sse"`): `GET /sse` opens the session stream, whose first event is `endpoint`
//!   with `/messages/?session_id=<id>`; clients `POST` there (202) and read the answers as
//!   `event: message`.
//! - **Streamable HTTP** (2025-03-26 and later, including the stateless 2026-07-28 era) at
//!   `/mcp`: `POST` answers with one SSE `message` event or a JSON body, `GET` opens the
//!   server-to-client stream or resumes one with `Last-Event-ID`, `DELETE` ends a session.
//!
//! Every outbound stream is a bounded log (see [`ServerConfig::stream_buffer`]): producers never
//! block, and a reader that falls behind the window is disconnected rather than buffered without
//! limit. Sessions, in-flight calls, bodies, idle time and call time are all bounded
//! ([`ServerConfig`]). Accepted sockets get `TCP_NODELAY`.
//!
//! ## Serving the dice tool
//!
//! ```no_run
//! use mcp_proto::{McpServer, ToolError};
//! use mcp_sse::McpHttpServer;
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct RollDice { n_dice: u32 }
//!
//! async fn roll_dice(args: RollDice) -> Result<Vec<u8>, ToolError> {
//!     Ok(vec![6; args.n_dice.min(100) as usize])
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let service = McpServer::builder("Dice Roller")
//!     .tool("roll_dice", "Roll `n_dice` 6-sided dice and return the results.", roll_dice)
//!     .build()?;
//! // GET /sse + POST /messages/ and /mcp on 127.0.0.1:8000 until Ctrl-C; in-flight calls finish.
//! McpHttpServer::new(service).serve("127.0.0.1:8000", mcp_sse::ctrl_c()).await?;
//! # Ok(()) }
//! ```
//!
//! `McpHttpServer::router()` gives the routes to mount or wrap (auth from `mcp-auth`, CORS,
//! tracing); the HTTP request's extensions reach tool handlers through
//! `ToolContext::extensions`. A session belongs to the [`mcp_proto::AuthSubject`] that created
//! it (`mcp-auth` sets it from the token): another subject's requests find no such session.
//!
//! ## Sessions, limits and replicas
//!
//! Sessions always live behind the store traits of the [`store`] module: an in-process
//! [`MemoryStore`] by default; [`McpHttpServer::session_store`] hands them to another
//! [`SharedStore`] (`mcp_redis::RedisStore` in production), so replicas behind a load balancer
//! without stickiness share live sessions of both transports. The session caps (overall and
//! per client) and each session's in-flight slots are counted in the store, so they hold the
//! same on one process and across replicas. `serve`, `serve_listener` and `serve_app` also
//! hold every connection to a cap and to deadlines on headers, bodies and writes (see
//! [`ServerConfig`]).
//!
//! ## Calling a server
//!
//! ```no_run
//! # async fn run() -> Result<(), mcp_sse::Error> {
//! use mcp_sse::client::McpClient;
//!
//! // `.../sse` selects legacy SSE, anything else streamable HTTP.
//! let client = McpClient::builder("http://127.0.0.1:8000/sse")
//!     .bearer_token("token")
//!     .connect()
//!     .await?;
//! let tools = client.list_tools().await?;
//! let result = client.call_tool("roll_dice", serde_json::json!({"n_dice": 3})).await?;
//! client.close().await?;
//! # Ok(()) }
//! ```
//!
//! ## Health and metrics
//!
//! [`McpHttpServer::health_router`] serves `GET /healthz` (liveness) and `GET /readyz`
//! (readiness: 503 while draining or while the session store is unreachable), to mount
//! outside authentication. Prometheus metrics are off until [`metrics::install`] runs; then
//! the same router also serves `GET /metrics` (see [`metrics`] for every metric).
//!
//! A failed HTTP request keeps its status: [`Error::Http`] displays as
//! `Http status code: 401 (Unauthorized)`, the words OpenAI's connector errors use.

pub mod client;
mod error;
pub mod headers;
pub mod metrics;
pub mod server;
pub mod store;
mod transport_kind;

pub use error::Error;
pub use server::{
    McpHttpServer, PROTOCOL_VERSION_HEADER, RunningServer, SESSION_ID_HEADER, ServerConfig, ctrl_c,
};
pub use store::{EventStore, MemoryStore, ReplicaBus, SessionStore, SharedStore, StoreError};
pub use transport_kind::TransportKind;
