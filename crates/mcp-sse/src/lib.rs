//! # mcp-sse: MCP over HTTP
//!
//! (guide written with the server and client)

pub mod client;
mod error;
pub mod server;

pub use error::Error;
pub use server::{McpHttpServer, RunningServer, ServerConfig, ctrl_c};
