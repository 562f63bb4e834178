//! The seam between the endpoint and an MCP client.
//!
//! The endpoint never speaks MCP itself: for every `mcp` tool of a request it asks an
//! [`McpConnector`] for a [`McpConnection`] to the tool's server, lists the server's tools and
//! calls them through it. An adapter over a real MCP client (legacy SSE or streamable HTTP) plugs in
//! here; tests plug in an in-process fake.

use futures::future::BoxFuture;

/// Where and how to reach one MCP server, taken from an `mcp` tool of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpTarget {
    /// The tool's `server_label`, e.g. `dice_server`.
    pub server_label: String,
    /// The tool's `server_url`, e.g. `http://127.0.0.1:8000/sse`.
    pub server_url: String,
    /// HTTP headers to send on every request to the server, in the order given. The tool's
    /// `authorization` field arrives here as an `Authorization: Bearer <token>` header (it replaces
    /// an `Authorization` entry of `headers`).
    pub headers: Vec<(String, String)>,
}

/// One tool as the MCP server listed it; serialized, it is a tool of an `mcp_list_tools` item
/// (`input_schema` snake_case, absent fields `null`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ListedTool {
    /// The tool's name, e.g. `roll_dice`.
    pub name: String,
    /// The tool's description, if the server gave one.
    pub description: Option<String>,
    /// The tool's JSON Schema for its arguments (MCP `inputSchema`).
    pub input_schema: serde_json::Value,
    /// The tool's annotations (e.g. `{"readOnlyHint":true}`), if any.
    pub annotations: Option<serde_json::Value>,
}

impl ListedTool {
    /// Whether the server marked the tool read-only (`annotations.readOnlyHint == true`).
    pub fn is_read_only(&self) -> bool {
        self.annotations
            .as_ref()
            .and_then(|a| a.get("readOnlyHint"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

/// What a `tools/call` produced.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ToolCallOutcome {
    /// The tool ran; its result as the text the `mcp_call` item's `output` carries (for a FastMCP
    /// tool returning a list, compact JSON such as `[6,4,2]`).
    Output(String),
    /// The tool ran and reported an error (`isError: true`); the result's MCP content blocks.
    ToolExecutionError {
        /// The MCP content blocks of the failed result.
        content: Vec<serde_json::Value>,
    },
    /// The server answered the call with a JSON-RPC error.
    ProtocolError {
        /// The JSON-RPC error code, e.g. `-32602`.
        code: i64,
        /// The JSON-RPC error message.
        message: String,
    },
}

/// Why an MCP server could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The server answered with a non-success HTTP status, e.g. 401 Unauthorized.
    #[error("Http status code: {status} ({reason})")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The reason phrase, e.g. `Unauthorized`; empty to use the standard phrase.
        reason: String,
    },
    /// The server could not be reached (refused connection, DNS failure, TLS failure...).
    #[error("Connection failed: {0}")]
    Unreachable(String),
    /// The server broke the MCP protocol or answered with a JSON-RPC error.
    #[error("MCP protocol error {code}: {message}")]
    Protocol {
        /// The JSON-RPC error code.
        code: i64,
        /// The error message.
        message: String,
    },
    /// The server did not answer in time.
    #[error("Request timed out")]
    Timeout,
}

/// Opens connections to MCP servers.
pub trait McpConnector: Send + Sync + 'static {
    /// Connects (and initializes an MCP session) to `target`.
    fn connect(
        &self,
        target: McpTarget,
    ) -> BoxFuture<'static, Result<Box<dyn McpConnection>, ConnectorError>>;
}

/// An open MCP session with one server.
pub trait McpConnection: Send {
    /// Lists the server's tools (`tools/list`, following pagination).
    fn list_tools(&mut self) -> BoxFuture<'_, Result<Vec<ListedTool>, ConnectorError>>;

    /// Calls one tool (`tools/call`).
    fn call_tool(
        &mut self,
        name: &str,
        arguments: serde_json::Value,
    ) -> BoxFuture<'_, Result<ToolCallOutcome, ConnectorError>>;

    /// Ends the session (e.g. `DELETE` of a streamable HTTP session).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}
