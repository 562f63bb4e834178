//! The server core: a builder with a tool registry, and the dispatch of every MCP request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::cancel::run_until_cancelled;
use crate::error::Error;
use crate::jsonrpc::{ErrorObject, Message, Request, RequestId, Response};
use crate::service::{BoxFuture, McpService, MessageContext, Session};
use crate::tool::{CallFailure, RegisteredTool, ToolContext, ToolDef, ToolHandler};
use crate::types::{
    CallToolParams, CallToolResult, CancelledParams, EmptyResult, Implementation, InitializeParams,
    InitializeResult, ListChangedCapability, ListToolsResult, PaginatedParams, ServerCapabilities,
    SetLevelParams, Tool, method,
};
use crate::version::ProtocolVersion;

/// Default number of items on one page of a list result.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Builds an [`McpServer`].
#[derive(Debug)]
pub struct ServerBuilder {
    info: Implementation,
    instructions: Option<String>,
    tools: Vec<RegisteredTool>,
    page_size: usize,
    errors: Vec<Error>,
}

impl ServerBuilder {
    /// Sets the server's display title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.info.title = Some(title.into());
        self
    }

    /// Sets the server's version (defaults to this crate's version).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.info.version = version.into();
        self
    }

    /// Sets the instructions sent with `initialize`.
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = Some(instructions.into());
        self
    }

    /// Sets the page size of list results (at least 1).
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Registers a tool, the way an axum route is registered: a name, a description and an
    /// async function over a `Deserialize + JsonSchema` argument type.
    ///
    /// A handler is `async fn(Args) -> Result<T, ToolError>` or
    /// `async fn(ToolContext, Args) -> Result<T, ToolError>`.
    pub fn tool<H, M>(
        self,
        name: impl Into<String>,
        description: impl Into<String>,
        handler: H,
    ) -> Self
    where
        H: ToolHandler<M>,
    {
        self.tool_with(ToolDef::new(name, description), handler)
    }

    /// Registers a tool with a full definition (title, annotations, icons).
    pub fn tool_with<H, M>(mut self, def: ToolDef, handler: H) -> Self
    where
        H: ToolHandler<M>,
    {
        match RegisteredTool::new(def, handler) {
            Ok(tool) => {
                if self.tools.iter().any(|t| t.tool.name == tool.tool.name) {
                    self.errors.push(Error::InvalidToolSchema {
                        tool: tool.tool.name.clone(),
                        detail: "a tool with this name is already registered".into(),
                    });
                } else {
                    self.tools.push(tool);
                }
            }
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Finishes the server; fails if a tool could not be registered.
    pub fn build(self) -> Result<McpServer, Error> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        let index = self
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.tool.name.clone(), i))
            .collect();
        Ok(McpServer {
            inner: Arc::new(ServerInner {
                info: self.info,
                instructions: self.instructions,
                tools: self.tools,
                index,
                page_size: self.page_size,
            }),
        })
    }
}

#[derive(Debug)]
struct ServerInner {
    info: Implementation,
    instructions: Option<String>,
    tools: Vec<RegisteredTool>,
    index: HashMap<String, usize>,
    page_size: usize,
}

/// An MCP server: the protocol logic behind any transport. Cheap to clone.
///
/// ```
/// use mcp_proto::{McpServer, ToolError};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Add { a: i64, b: i64 }
///
/// async fn add(args: Add) -> Result<i64, ToolError> {
///     args.a.checked_add(args.b).ok_or_else(|| ToolError::new("overflow"))
/// }
///
/// let server = McpServer::builder("Calculator").tool("add", "Add two integers.", add).build().unwrap();
/// assert_eq!(server.tools()[0].name, "add");
/// ```
#[derive(Debug, Clone)]
pub struct McpServer {
    inner: Arc<ServerInner>,
}

impl McpServer {
    /// Starts a server named `name`.
    pub fn builder(name: impl Into<String>) -> ServerBuilder {
        ServerBuilder {
            info: Implementation::new(name, env!("CARGO_PKG_VERSION")),
            instructions: None,
            tools: Vec::new(),
            page_size: DEFAULT_PAGE_SIZE,
            errors: Vec::new(),
        }
    }

    /// The server's name and version.
    pub fn info(&self) -> &Implementation {
        &self.inner.info
    }

    /// Every tool, in registration order.
    pub fn tools(&self) -> Vec<Tool> {
        self.inner.tools.iter().map(|t| t.tool.clone()).collect()
    }

    /// The capabilities this server declares.
    pub fn capabilities(&self) -> ServerCapabilities {
        ServerCapabilities {
            logging: Some(Default::default()),
            tools: Some(ListChangedCapability {
                list_changed: Some(false),
            }),
            ..Default::default()
        }
    }

    fn initialize(&self, session: &Session, params: InitializeParams) -> InitializeResult {
        let version = ProtocolVersion::negotiate(&params.protocol_version);
        tracing::debug!(requested = %params.protocol_version, negotiated = %version, client = %params.client_info.name, "initialize");
        session.update_state(|s| {
            s.protocol_version = Some(version);
            s.client_info = Some(params.client_info);
            s.client_capabilities = params.capabilities;
        });
        InitializeResult {
            protocol_version: version.as_str().to_owned(),
            capabilities: self.capabilities().for_version(version),
            server_info: self.inner.info.for_version(version),
            instructions: self.inner.instructions.clone(),
        }
    }

    fn list_tools(
        &self,
        version: ProtocolVersion,
        params: PaginatedParams,
    ) -> Result<ListToolsResult, ErrorObject> {
        let tools = &self.inner.tools;
        let start = match params.cursor.as_deref() {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0 && n < tools.len())
                .ok_or_else(|| ErrorObject::invalid_params(format!("invalid cursor {c:?}")))?,
        };
        let end = (start + self.inner.page_size).min(tools.len());
        Ok(ListToolsResult {
            tools: tools[start..end]
                .iter()
                .map(|t| t.tool.for_version(version))
                .collect(),
            next_cursor: (end < tools.len()).then(|| end.to_string()),
        })
    }

    async fn call_tool(
        &self,
        request_id: RequestId,
        version: ProtocolVersion,
        params: CallToolParams,
        ctx: &MessageContext,
    ) -> Option<Result<Value, ErrorObject>> {
        let Some(&i) = self.inner.index.get(&params.name) else {
            return Some(Err(ErrorObject::invalid_params(format!(
                "Unknown tool: '{}'",
                params.name
            ))));
        };
        let tool = &self.inner.tools[i];
        let args = Value::Object(params.arguments.unwrap_or_default());
        let invalid_args = |detail: String| {
            let message = format!("Invalid arguments for tool '{}': {detail}", params.name);
            if version.argument_errors_are_tool_errors() {
                Ok(to_value(
                    CallToolResult::error_text(message).for_version(version),
                ))
            } else {
                Err(ErrorObject::invalid_params(message))
            }
        };
        if let Err(detail) = tool.validate(&args) {
            return Some(invalid_args(detail));
        }
        let progress_token = params
            .meta
            .as_ref()
            .and_then(|m| m.get("progressToken"))
            .and_then(RequestId::from_value);
        let cancellation = ctx.session.begin_request(request_id.clone());
        let tool_ctx = ToolContext {
            request_id: request_id.clone(),
            session: Arc::clone(&ctx.session),
            version,
            progress_token,
            last_progress: Arc::new(AtomicU64::new(u64::MAX)),
            outbound: Arc::clone(&ctx.outbound),
            cancellation: cancellation.clone(),
            extensions: Arc::new(ctx.extensions.clone()),
            meta: params.meta,
        };
        let outcome = run_until_cancelled(&cancellation, tool.invoke(tool_ctx, args)).await;
        ctx.session.end_request(&request_id);
        // `None`: cancelled, and a cancelled request gets no response.
        outcome.map(|outcome| match outcome {
            Ok(result) => Ok(to_value(result.for_version(version))),
            Err(CallFailure::InvalidArguments(detail)) => invalid_args(detail),
            Err(CallFailure::Tool(e)) => Ok(to_value(
                CallToolResult::error_text(e.message()).for_version(version),
            )),
        })
    }

    async fn dispatch(&self, request: Request, ctx: MessageContext) -> Option<Message> {
        let Request { id, method, params } = request;
        let session = Arc::clone(&ctx.session);
        let version = session
            .protocol_version()
            .unwrap_or(ProtocolVersion::HTTP_DEFAULT);
        let outcome: Result<Value, ErrorObject> = match method.as_str() {
            method::TOOLS_CALL => match parse_params::<CallToolParams>(params) {
                Ok(p) => match self.call_tool(id.clone(), version, p, &ctx).await {
                    Some(outcome) => outcome,
                    None => {
                        tracing::debug!(%id, "request cancelled; no response sent");
                        return None;
                    }
                },
                Err(e) => Err(e),
            },
            method::INITIALIZE => parse_params::<InitializeParams>(params)
                .map(|p| to_value(self.initialize(&session, p))),
            method::PING => Ok(to_value(EmptyResult {})),
            method::TOOLS_LIST => parse_optional_params::<PaginatedParams>(params)
                .and_then(|p| self.list_tools(version, p))
                .map(to_value),
            method::LOGGING_SET_LEVEL => parse_params::<SetLevelParams>(params).map(|p| {
                session.update_state(|s| s.log_level = Some(p.level));
                to_value(EmptyResult {})
            }),
            other => Err(ErrorObject::method_not_found(other)),
        };
        Some(Message::Response(Response {
            id: Some(id),
            outcome,
        }))
    }

    fn notify(&self, method: &str, params: Option<Value>, session: &Session) {
        match method {
            method::INITIALIZED => session.update_state(|s| s.initialized = true),
            method::CANCELLED => {
                if let Ok(p) = parse_params::<CancelledParams>(params) {
                    if let Some(id) = p.request_id {
                        let found = session.cancel_request(&id);
                        tracing::debug!(%id, found, reason = ?p.reason, "cancel request");
                    }
                }
            }
            other => tracing::debug!(method = other, "ignoring notification"),
        }
    }
}

impl McpService for McpServer {
    fn handle(&self, message: Message, ctx: MessageContext) -> BoxFuture<'static, Option<Message>> {
        let server = self.clone();
        Box::pin(async move {
            match message {
                Message::Request(r) => server.dispatch(r, ctx).await,
                Message::Notification(n) => {
                    server.notify(&n.method, n.params, &ctx.session);
                    None
                }
                Message::Response(r) => {
                    tracing::debug!(id = ?r.id, "response from client with no pending request");
                    None
                }
            }
        })
    }
}

fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

// MCP params are always objects. serde would read a struct from a JSON array by position
// (`["roll_dice"]` as `{"name": "roll_dice"}`), so arrays are refused here explicitly.
fn parse_params<T: DeserializeOwned>(params: Option<Value>) -> Result<T, ErrorObject> {
    match params {
        None => serde_json::from_value(json!({})).map_err(ErrorObject::invalid_params),
        Some(p @ Value::Object(_)) => {
            serde_json::from_value(p).map_err(ErrorObject::invalid_params)
        }
        Some(_) => Err(ErrorObject::invalid_params("params must be an object")),
    }
}

fn parse_optional_params<T: DeserializeOwned + Default>(
    params: Option<Value>,
) -> Result<T, ErrorObject> {
    match params {
        None | Some(Value::Null) => Ok(T::default()),
        Some(p @ Value::Object(_)) => {
            serde_json::from_value(p).map_err(ErrorObject::invalid_params)
        }
        Some(_) => Err(ErrorObject::invalid_params("params must be an object")),
    }
}
