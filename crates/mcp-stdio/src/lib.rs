//! # mcp-stdio: MCP over stdin and stdout
//!
//! The stdio transport of the MCP specification: the client starts the server as a child
//! process and both exchange JSON-RPC messages as lines (UTF-8 JSON, one message per line,
//! `\n`-terminated) on the server's stdin and stdout. The server may log to stderr; nothing
//! else ever reaches stdout. Desktop and IDE hosts start MCP servers this way.
//!
//! - [`StdioServer`] serves any [`mcp_proto::McpService`] (such as [`mcp_proto::McpServer`])
//!   on stdin/stdout, or on any pair of byte streams: one session per connection (stateful
//!   `initialize` sessions and 2026-07-28 requests carrying their `_meta` alike), requests
//!   running concurrently, server-to-client requests (elicitation, sampling, roots),
//!   notifications, cancellation and progress. A line over [`StdioConfig::max_line_bytes`]
//!   is skipped and answered with `-32600`; invalid JSON gets `-32700`; the connection goes
//!   on. When stdin closes, running calls get [`StdioConfig::shutdown_grace`] to answer and
//!   [`StdioServer::serve`] returns.
//! - [`StdioCommand`] starts a server process (program, arguments, environment) and runs an
//!   [`mcp_sse::client::McpClient`] session with it: the same client API as the HTTP
//!   transports. Closing the client closes the server's stdin, waits for it to exit for a
//!   grace period, then kills it.
//!
//! ## Serving the dice tool on stdio
//!
//! ```no_run
//! use mcp_proto::{McpServer, ToolError};
//! use mcp_stdio::StdioServer;
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
//! // Logs must go to stderr: stdout carries the protocol.
//! StdioServer::new(service).serve_stdio().await?;
//! # Ok(()) }
//! ```
//!
//! ## A session over a pair of pipes
//!
//! [`StdioServer::serve`] takes any reader and writer, which is how this example talks to a
//! server without starting a process:
//!
//! ```
//! use mcp_proto::{McpServer, NoArgs, ToolError};
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = McpServer::builder("hello")
//!     .tool("hello", "Says hello.", |_: NoArgs| async { Ok::<_, ToolError>("hello".to_owned()) })
//!     .build()?;
//! let (mut client_end, server_in) = tokio::io::duplex(4096);
//! let (server_out, client_in) = tokio::io::duplex(4096);
//! let server = tokio::spawn(mcp_stdio::StdioServer::new(service).serve(server_in, server_out));
//! let initialize = concat!(
//!     r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","#,
//!     r#""capabilities":{},"clientInfo":{"name":"doc","version":"1"}}}"#, "\n");
//! client_end.write_all(initialize.as_bytes()).await?;
//! let mut replies = BufReader::new(client_in).lines();
//! let init: serde_json::Value = serde_json::from_str(&replies.next_line().await?.unwrap_or_default())?;
//! assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
//! client_end.write_all(b"{not json}\n").await?;
//! let parse_error: serde_json::Value = serde_json::from_str(&replies.next_line().await?.unwrap_or_default())?;
//! assert_eq!(parse_error["error"]["code"], -32700);
//! drop(client_end); // stdin closes: the server returns
//! server.await??;
//! # Ok(()) }
//! ```
//!
//! ## Starting a server process
//!
//! ```no_run
//! # async fn run() -> Result<(), mcp_stdio::Error> {
//! use mcp_sse::client::McpClient;
//! use mcp_stdio::StdioCommand;
//!
//! let client = StdioCommand::new("dice_server")
//!     .arg("--stdio")
//!     .env("RUST_LOG", "warn")
//!     .connect(McpClient::transport_builder())
//!     .await?;
//! let result = client.call_tool("roll_dice", serde_json::json!({"n_dice": 3})).await?;
//! client.close().await?; // stdin closes; the server exits (or is killed after the grace period)
//! # Ok(()) }
//! ```
//!
//! ## How it fits
//! `mcp-proto` holds the protocol; this crate only moves lines, like `mcp-sse` moves HTTP.
//! The client side plugs into `mcp-sse`'s [`mcp_sse::client::MessageTransport`] seam, so
//! an application uses one `McpClient` whatever the transport.

mod client;
mod error;
mod framing;
mod server;

pub use client::{DEFAULT_CLOSE_GRACE, StdioClientTransport, StdioCommand};
pub use error::Error;
pub use framing::DEFAULT_MAX_LINE_BYTES;
pub use server::{SERVER_BUSY, StdioConfig, StdioServer};
