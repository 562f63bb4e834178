//! # mcp-gateway: any stdio MCP server behind our HTTP transports
//!
//! Most MCP servers are stdio programs (`npx …`, `uvx …`, a binary) that a remote client such
//! as OpenAI's Responses API cannot reach. [`Gateway`] starts one as a child process and is an
//! [`mcp_proto::McpService`]: served by [`mcp_sse::McpHttpServer`], the child is reachable at
//! `/sse` (legacy HTTP+SSE) and `/mcp` (streamable HTTP) with everything that server brings:
//! bearer-JWT auth and RFC 9728 metadata (`mcp-auth`), Origin checks, every limit of
//! [`mcp_sse::ServerConfig`], stateless mode, health, readiness and metrics, and sessions
//! shared between replicas through Redis. The `mcp-gateway` binary wires it all from flags.
//!
//! ## Forwarding
//! The gateway forwards, it does not re-implement:
//! - Client requests go to the child under an id of the gateway's (many sessions share one
//!   child), and so does a request's `progressToken`; the child's answers and progress go back
//!   to the request's stream with the client's id and token. `notifications/cancelled` from a
//!   client (and a call timeout of the server) cancel the request at the child.
//! - Requests of the child (`sampling/createMessage`, `elicitation/create`, `roots/list`) go to
//!   the session whose call is running, under an id of that session; the answer goes back
//!   with the child's id. When calls of several sessions run at once the gateway cannot tell
//!   whose request it is and the child gets an error: use `--per-session` for such servers.
//! - Log messages go to the running call's stream (else to every session's stream), filtered
//!   by each session's `logging/setLevel`; list changes to every session's stream; resource
//!   updates to the sessions subscribed to the resource.
//! - `initialize` is answered from the child's own result at the version both sides speak;
//!   2026-07-28 clients are served by translation (see the `stateless` module docs), the
//!   child's requests during their calls as `InputRequiredResult`s answered by retrying the
//!   call, which waits at the gateway meanwhile (gathered for [`GATHER_WINDOW`], at most
//!   [`MAX_QUESTIONS`] per call, up to [`GatewayConfig::client_answer_timeout`]).
//!
//! ## Process management
//! A crashed child is restarted with backoff ([`RESTART_BACKOFF_START`] doubling up to
//! [`RESTART_BACKOFF_MAX`]); calls that were waiting get a JSON-RPC error at once, new calls
//! wait up to [`GatewayConfig::restart_wait`]. The child's stderr is logged line by line with
//! its name as prefix. Its environment holds only what [`ChildCommand`] was told to pass.
//!
//! ## The reverse direction
//! [`RemoteServer`] serves a remote HTTP MCP server (with a bearer token) over stdio, for
//! local hosts that only start stdio servers: `mcp-gateway --connect https://host/mcp`.
//!
//! ## Example
//!
//! ```no_run
//! use mcp_gateway::{ChildCommand, Gateway, GatewayConfig, ToolFilter};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let command = ChildCommand::new("npx").args(["-y", "@modelcontextprotocol/server-everything"]);
//! let config = GatewayConfig { tools: ToolFilter::default().deny("longRunningOperation"), ..Default::default() };
//! let gateway = Gateway::new(command, config);
//! mcp_sse::McpHttpServer::new(gateway.clone()).serve("127.0.0.1:8000", mcp_sse::ctrl_c()).await?;
//! gateway.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! A gateway is a plain service, so it also runs without HTTP; here over a stdio pair
//! with our own dice server as the child:
//!
//! ```
//! use mcp_gateway::{ChildCommand, ToolFilter};
//! let filter = ToolFilter::default().deny("rm");
//! assert!(!filter.allows("rm"));
//! let command = ChildCommand::new("dice_server").arg("--stdio").pass_env("RUST_LOG");
//! assert_eq!(command.name(), "dice_server");
//! ```

mod command;
mod connect;
mod error;
mod forward;
mod gateway;
mod input_rounds;
mod readiness;
mod stateless;
mod streams;
mod supervisor;
mod tool_filter;
mod upstream;

pub use command::{ChildCommand, DEFAULT_PASSED_ENV};
pub use connect::{RemoteConfig, RemoteServer};
pub use error::Error;
pub use gateway::{Gateway, GatewayConfig};
pub use input_rounds::{GATHER_WINDOW, MAX_QUESTION_BYTES, MAX_QUESTIONS};
pub use readiness::with_child_readiness;
pub use streams::MAX_STREAMS;
pub use supervisor::{RESTART_BACKOFF_MAX, RESTART_BACKOFF_START};
pub use tool_filter::{ToolFilter, unknown_tool};

/// Locks `m`, going on with the data a panicking holder left.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
