//! # mcp-sse: MCP over HTTP
//!
//! (guide written with the server and client)

mod error;

pub use error::Error;
