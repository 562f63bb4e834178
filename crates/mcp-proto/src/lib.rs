//! # mcp-proto: the Model Context Protocol with no I/O
//!
//! This crate holds everything about MCP that does not touch a socket, in the spirit of
//! `quinn-proto`: JSON-RPC 2.0 messages ([`jsonrpc`]), every MCP message type
//! ([`types`]), protocol versions and their negotiation ([`ProtocolVersion`]), the server core
//! ([`McpServer`], with a typed tool registry that generates standard JSON Schema, see
//! [`schema`]), the seam a
//! transport calls ([`McpService`]), and the client's session logic ([`ClientSession`]).
//! It depends on no async runtime: transports such as `mcp-sse` move the bytes.
//!
//! ## A server with one tool
//!
//! Registering a tool reads like registering an axum route: a name, a description and an
//! async function over a `Deserialize + JsonSchema` argument type.
//!
//! ```
//! use std::sync::Arc;
//! use mcp_proto::{McpServer, McpService, Message, MessageContext, Session, ToolError};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//! use serde_json::json;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct RollDice {
//!     /// How many dice to roll.
//!     #[schemars(range(min = 1, max = 100))]
//!     n_dice: u32,
//! }
//!
//! async fn roll_dice(args: RollDice) -> Result<Vec<u8>, ToolError> {
//!     Ok((0..args.n_dice).map(|i| (i % 6 + 1) as u8).collect())
//! }
//!
//! let server = McpServer::builder("Dice Roller")
//!     .tool("roll_dice", "Roll `n_dice` 6-sided dice and return the results.", roll_dice)
//!     .build()?;
//!
//! // A transport hands each message to the service with the session it belongs to.
//! let session = Arc::new(Session::new(Some("s1".into())));
//! let init = Message::request(0, "initialize", Some(json!({"protocolVersion": "2025-06-18",
//!     "capabilities": {}, "clientInfo": {"name": "doc", "version": "1"}})));
//! futures::executor::block_on(server.handle(init, MessageContext::new(session.clone())));
//! let call = Message::request(1, "tools/call", Some(json!({"name": "roll_dice", "arguments": {"n_dice": 3}})));
//! let reply = futures::executor::block_on(server.handle(call, MessageContext::new(session)));
//! let reply = serde_json::to_value(reply.unwrap())?;
//! assert_eq!(reply["result"]["structuredContent"], json!({"result": [1, 2, 3]}));
//! assert_eq!(reply["result"]["content"][0]["text"], "[1,2,3]");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Tool calls can run as tasks (the 2026-07-28 `io.modelcontextprotocol/tasks` extension):
//! see [`task`] for the records, their state machine and the store and runtime a transport
//! provides.
//!
//! ## How it fits
//! `mcp-sse` serves any [`McpService`] over the legacy HTTP+SSE transport and streamable
//! HTTP, and drives [`ClientSession`] for its client; `mcp-auth` puts the caller's identity in
//! the HTTP request extensions, which reach tool handlers through [`ToolContext::extensions`].

pub mod cancel;
pub mod client;
pub mod client_features;
mod error;
pub mod http_headers;
pub mod input;
pub mod jsonrpc;
pub mod listen;
mod registry;
pub mod schema;
mod server;
pub mod service;
pub mod stateless;
pub mod task;
mod task_run;
mod tool;
mod tool_output;
pub mod types;
mod version;

pub use cancel::CancellationSignal;
pub use client::{ClientEvent, ClientSession, Pagination, parse_result};
pub use error::{BoxError, Error, error_chain};
pub use input::{InputError, InputRequest};
pub use jsonrpc::{
    Decoded, ErrorObject, Message, Notification, Request, RequestId, Response, decode,
};
pub use registry::IntoPromptResult;
pub use schema::SchemaProfile;
pub use server::{DEFAULT_PAGE_SIZE, McpServer, ServerBuilder, tool_error};
pub use service::{
    AuthSubject, BoxFuture, EncodedReply, McpService, MessageContext, NoOutbound, Outbound,
    ReplyOutcome, SendError, Session, SessionState, SessionStream,
};
pub use task::{TaskHost, TaskSupport};
pub use tool::{
    ArgsOnly, IntoToolOutput, NoArgs, ToolContext, ToolDef, ToolError, ToolHandler, ToolOutput,
    WithContext, schema_object,
};
pub use types::{CallToolResult, ContentBlock, Implementation, Tool};
pub use version::{ProtocolVersion, UnknownVersion};
