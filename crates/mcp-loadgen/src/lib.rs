//! # mcp-loadgen: an MCP-aware closed-loop load generator
//!
//! Measures what an MCP server sustains: [`Phase`] opens N sessions (streamable HTTP, legacy
//! HTTP+SSE, or a plain echo endpoint as the ceiling to compare with), each on its own
//! HTTP/1.1 keep-alive connection, and has each repeat one `tools/call` as fast as its replies
//! come back. After a warm-up it records every call's latency in a measured window and the
//! CPU time the server's processes and the generator spent in it, and hands back a
//! [`PhaseResult`]: calls per second, p50 and p99, CPU time per call, and the first failure.
//! Every reply is checked (its id, no JSON-RPC error, no `isError`), every call has a deadline,
//! and a failed call ends its session, so a broken server shows as errors, not as a fast one.
//!
//! The clients are hyper's low-level HTTP/1.1 connection, not a general client: the generator
//! spends as little CPU per call as it can, so that it measures the server and not itself. The
//! sessions ([`StreamableSession`], [`LegacySession`], [`EchoSession`]) are usable on their
//! own, e.g. to open thousands of idle sessions or to send a session's calls to another
//! replica ([`StreamableSession::reconnect`], [`LegacySession::open_split`]).
//!
//! `cargo xtask bench` drives it against our servers; CPU time comes from Linux `/proc`
//! ([`process_cpu_time`]) and is `None` elsewhere.
//!
//! ## A short phase against an in-process server
//!
//! ```
//! use std::time::Duration;
//!
//! use mcp_loadgen::{Phase, Target, Timing, ToolCall};
//! use mcp_proto::{McpServer, ToolError};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Echo { text: String }
//!
//! async fn echo(args: Echo) -> Result<String, ToolError> {
//!     Ok(args.text)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = McpServer::builder("Echo").tool("echo", "Echoes.", echo).build()?;
//! let server = mcp_sse::McpHttpServer::new(service).spawn("127.0.0.1:0").await?;
//! let call = ToolCall::new("echo", serde_json::json!({"text": "hi"}));
//! let phase = Phase {
//!     target: Target::Streamable,
//!     addr: server.local_addr(),
//!     sessions: 2,
//!     token: None,
//!     call: &call,
//!     timing: Timing {
//!         warmup: Duration::from_millis(50),
//!         duration: Duration::from_millis(200),
//!         call_timeout: Duration::from_secs(5),
//!         max_calls_per_session: 100_000,
//!         setup_timeout: Duration::from_secs(10),
//!     },
//! };
//! let result = phase.run(&[std::process::id()]).await?;
//! assert_eq!(result.errors, 0, "{:?}", result.first_error);
//! println!("{:.0} calls/s, p99 {:?}", result.rps(), result.p99);
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

mod connection;
mod cpu;
mod error;
mod phase;
mod session;

pub use connection::HttpConnection;
pub use cpu::process_cpu_time;
pub use error::Error;
pub use phase::{Phase, PhaseResult, Target, Timing, percentile};
pub use session::{
    EchoSession, LEGACY_VERSION, LegacySession, LegacyStream, STREAMABLE_VERSION, Session,
    StreamableSession, ToolCall, check_reply,
};
