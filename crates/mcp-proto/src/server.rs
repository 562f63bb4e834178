//! The server core: a builder with tool, resource, prompt and completion registries, and
//! the dispatch of every MCP request in both eras.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::cancel::{CancellationSignal, run_until_cancelled};
use crate::error::Error;
use crate::http_headers;
use crate::input::{InputChannel, Rounds};
use crate::jsonrpc::{ErrorObject, Message, Request, RequestId};
use crate::listen::{self, Change, ListenFilter, Listeners};
use crate::registry::{
    self, CompleteFn, IntoPromptResult, PromptFailure, RegisteredPrompt, RegisteredResource,
    RegisteredTemplate,
};
use crate::schema::SchemaProfile;
use crate::service::{BoxFuture, EncodedReply, McpService, MessageContext, Session};
use crate::stateless::DiscoverResult;
use crate::stateless::{self, RequestMeta, RequestStateSigner, StateError};
use crate::task;
use crate::tool::{
    CallFailure, RegisteredTool, ToolContext, ToolDef, ToolError, ToolHandler, ToolOutput,
};
use crate::types::{
    CallToolResult, CancelledParams, CompleteParams, CompleteResult, Completion, EmptyResult,
    GetPromptParams, Implementation, InitializeParams, InitializeResult, ListChangedCapability,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    LoggingLevel, PaginatedParams, ReadResourceResult, Resource, ResourceTemplate,
    ResourceUriParams, ResourcesCapability, ServerCapabilities, SetLevelParams, Tool, method,
};
use crate::version::ProtocolVersion;
use answer::{Answer, ResultBody};

mod answer;
mod call_params;
mod experimental_tasks;
mod task_follow;
mod task_restart;
mod tasks;
#[cfg(test)]
mod test_runtime;

/// Default number of items on one page of a list result.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Most resource subscriptions one session may hold.
pub const MAX_SUBSCRIPTIONS: usize = 1024;

/// Builds an [`McpServer`].
#[derive(Debug)]
pub struct ServerBuilder {
    info: Implementation,
    instructions: Option<String>,
    tools: Vec<RegisteredTool>,
    resources: Vec<RegisteredResource>,
    templates: Vec<RegisteredTemplate>,
    prompts: Vec<RegisteredPrompt>,
    completion: Option<CompletionHandler>,
    page_size: usize,
    cache_ttl_ms: u64,
    signer: Option<RequestStateSigner>,
    schema_profile: SchemaProfile,
    errors: Vec<Error>,
}

/// The `completion/complete` handler.
struct CompletionHandler(Box<CompleteFn>);

impl std::fmt::Debug for CompletionHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompletionHandler")
    }
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

    /// Sets the instructions sent with `initialize` and `server/discover`.
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = Some(instructions.into());
        self
    }

    /// Sets the page size of list results (at least 1).
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Sets the `ttlMs` caching hint of 2026-07-28 list and discover results (default 60 s).
    pub fn cache_ttl_ms(mut self, ttl: u64) -> Self {
        self.cache_ttl_ms = ttl;
        self
    }

    /// Sets the key that signs 2026-07-28 `requestState` (default: random per process;
    /// replicas behind a load balancer must share one).
    pub fn request_state_key(mut self, key: [u8; 32]) -> Self {
        self.signer = Some(RequestStateSigner::with_key(key));
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

    /// Registers a static resource: `async fn(ToolContext) -> Result<Vec<ResourceContents>, ToolError>`.
    pub fn resource<F, Fut>(mut self, resource: Resource, read: F) -> Self
    where
        F: Fn(ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<crate::types::ResourceContents>, ToolError>>
            + Send
            + 'static,
    {
        self.resources.push(registry::resource(resource, read));
        self
    }

    /// Registers a URI template: `async fn(ToolContext, uri, Params)` where `Params`
    /// deserializes from the template's variables (e.g. `{id}`).
    pub fn resource_template<F, Fut, P>(mut self, template: ResourceTemplate, read: F) -> Self
    where
        F: Fn(ToolContext, String, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<crate::types::ResourceContents>, ToolError>>
            + Send
            + 'static,
        P: DeserializeOwned + Send + 'static,
    {
        let name = template.uri_template.clone();
        match registry::template(template, read) {
            Ok(t) => self.templates.push(t),
            Err(detail) => self
                .errors
                .push(Error::InvalidToolSchema { tool: name, detail }),
        }
        self
    }

    /// Registers a prompt whose arguments are the properties of `A`:
    /// `async fn(ToolContext, A) -> Result<Vec<PromptMessage> | GetPromptResult, ToolError>`.
    pub fn prompt<F, Fut, A, R>(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        get: F,
    ) -> Self
    where
        F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ToolError>> + Send + 'static,
        A: DeserializeOwned + JsonSchema + Send + 'static,
        R: IntoPromptResult,
    {
        let name = name.into();
        match registry::prompt(name.clone(), description.into(), get) {
            Ok(p) => self.prompts.push(p),
            Err(detail) => self
                .errors
                .push(Error::InvalidToolSchema { tool: name, detail }),
        }
        self
    }

    /// Sets the `completion/complete` handler (default: no suggestions).
    pub fn completion<F, Fut>(mut self, complete: F) -> Self
    where
        F: Fn(CompleteParams) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Completion, ToolError>> + Send + 'static,
    {
        let complete = Arc::new(complete);
        self.completion = Some(CompletionHandler(Box::new(move |p| {
            let complete = Arc::clone(&complete);
            Box::pin(async move { complete(p).await })
        })));
        self
    }

    /// Which JSON Schema the server lists for its tools' arguments: plain 2020-12 (the
    /// default) or the subset OpenAI's strict structured outputs accept (see
    /// [`crate::schema`]).
    pub fn schema_profile(mut self, profile: SchemaProfile) -> Self {
        self.schema_profile = profile;
        self
    }

    /// Finishes the server; fails if something could not be registered.
    pub fn build(mut self) -> Result<McpServer, Error> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        for tool in &mut self.tools {
            tool.apply_profile(self.schema_profile);
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
                resources: self.resources,
                templates: self.templates,
                prompts: self.prompts,
                completion: self.completion,
                page_size: self.page_size,
                cache_ttl_ms: self.cache_ttl_ms,
                signer: self.signer.unwrap_or_else(RequestStateSigner::random),
                listeners: Arc::new(Listeners::default()),
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
    resources: Vec<RegisteredResource>,
    templates: Vec<RegisteredTemplate>,
    prompts: Vec<RegisteredPrompt>,
    completion: Option<CompletionHandler>,
    page_size: usize,
    cache_ttl_ms: u64,
    signer: RequestStateSigner,
    listeners: Arc<Listeners>,
}

/// An MCP server: the protocol logic behind any transport. Cheap to clone.
///
/// It speaks every version from 2024-11-05 to 2026-07-28: an `initialize` selects stateful
/// semantics for the session, and a request carrying stateless `_meta` is served statelessly.
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

/// Which era a request is served in.
#[derive(Debug, Clone)]
enum Era {
    /// A request of a session opened with `initialize` (2024-11-05 to 2025-11-25).
    Stateful,
    /// A 2026-07-28 request, carrying its own `_meta`.
    Stateless(Box<RequestMeta>),
}

/// The per-request facts a handler run needs.
struct Call<'a> {
    id: RequestId,
    version: ProtocolVersion,
    era: Era,
    /// The session and the outbound sink (its extensions are taken out, into `extensions`).
    ctx: &'a MessageContext,
    /// The HTTP request's extensions, shared with the handler's context without a copy.
    extensions: Arc<http::Extensions>,
    meta: Option<Arc<Map<String, Value>>>,
}

/// How a handler run ended.
enum RunOutcome<T> {
    Done(T),
    Cancelled,
    /// 2026-07-28: the handler needs input; answer with `InputRequiredResult`.
    NeedsInput {
        needed: Vec<(String, Value)>,
        responses: Map<String, Value>,
    },
}

impl McpServer {
    /// Starts a server named `name`.
    pub fn builder(name: impl Into<String>) -> ServerBuilder {
        ServerBuilder {
            info: Implementation::new(name, env!("CARGO_PKG_VERSION")),
            instructions: None,
            tools: Vec::new(),
            resources: Vec::new(),
            templates: Vec::new(),
            prompts: Vec::new(),
            completion: None,
            page_size: DEFAULT_PAGE_SIZE,
            cache_ttl_ms: 60_000,
            signer: None,
            schema_profile: SchemaProfile::default(),
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
        let i = &self.inner;
        let has_resources = !i.resources.is_empty() || !i.templates.is_empty();
        ServerCapabilities {
            logging: Some(Default::default()),
            completions: (has_resources || !i.prompts.is_empty() || i.completion.is_some())
                .then(Default::default),
            // Changes announced with `notify_changed` reach stateful sessions' streams and
            // 2026-07-28 `subscriptions/listen` streams.
            tools: Some(ListChangedCapability {
                list_changed: Some(true),
            }),
            prompts: (!i.prompts.is_empty()).then_some(ListChangedCapability {
                list_changed: Some(true),
            }),
            resources: has_resources.then_some(ResourcesCapability {
                subscribe: Some(true),
                list_changed: Some(true),
            }),
            ..Default::default()
        }
    }

    fn capabilities_for(&self, version: ProtocolVersion) -> ServerCapabilities {
        let mut caps = self.capabilities().for_version(version);
        if version.is_stateless() {
            // No logging/setLevel and no resources/subscribe in the stateless era; list changes
            // reach `subscriptions/listen` streams.
            caps.logging = None;
            if let Some(r) = caps.resources.as_mut() {
                r.subscribe = None;
                r.list_changed = Some(true);
            }
            for c in [caps.tools.as_mut(), caps.prompts.as_mut()]
                .into_iter()
                .flatten()
            {
                c.list_changed = Some(true);
            }
        }
        caps
    }

    /// Announces a change: to every stateful session with an open stream (resource updates
    /// only to sessions subscribed to the resource), and to the 2026-07-28
    /// `subscriptions/listen` streams that asked for this kind of change.
    pub async fn notify_changed(&self, change: Change) {
        self.inner.listeners.notify(change).await;
    }

    /// 2026-07-28 `subscriptions/listen`: acknowledges, then keeps the stream open (the
    /// transport ends it by cancelling the request) and fans changes out to it.
    async fn listen(&self, call: &Call<'_>, raw: Value) -> Option<Result<Value, ErrorObject>> {
        let filter: ListenFilter = match raw.get("notifications") {
            None | Some(Value::Null) => ListenFilter::default(),
            Some(v) => match serde_json::from_value(v.clone()) {
                Ok(f) => f,
                Err(e) => {
                    return Some(Err(ErrorObject::invalid_params(format!(
                        "invalid notifications: {e}"
                    ))));
                }
            },
        };
        let has_resources = !self.inner.resources.is_empty() || !self.inner.templates.is_empty();
        let follow = match self.tasks_to_follow(call, filter.task_ids).await {
            Ok(f) => f,
            Err(e) => return Some(Err(e)),
        };
        let honoured = ListenFilter {
            tools_list_changed: filter.tools_list_changed,
            prompts_list_changed: filter.prompts_list_changed && !self.inner.prompts.is_empty(),
            resources_list_changed: filter.resources_list_changed && has_resources,
            resource_subscriptions: filter.resource_subscriptions.filter(|_| has_resources),
            task_ids: follow.as_ref().map(|f| f.ids().to_vec()),
        };
        let subscription_id = match &call.id {
            RequestId::String(s) => s.clone(),
            other => other.to_string(),
        };
        let session = &call.ctx.session;
        let cancellation = session.begin_request(call.id.clone());
        let outbound = Arc::clone(&call.ctx.outbound);
        let Some(key) = self.inner.listeners.add(
            subscription_id.clone(),
            honoured.clone(),
            Arc::clone(&outbound),
        ) else {
            session.end_request(&call.id);
            return Some(Err(ErrorObject::internal("too many open subscriptions")));
        };
        let ack = Message::notification(
            listen::SUBSCRIPTIONS_ACKNOWLEDGED,
            Some(json!({
                "_meta": {listen::META_SUBSCRIPTION_ID: subscription_id},
                "notifications": honoured,
            })),
        );
        if outbound.send(ack).await.is_ok() {
            let tasks = follow.map(|f| f.run(subscription_id, Arc::clone(&outbound)));
            task_follow::until_cancelled(&cancellation, tasks).await;
        }
        self.inner.listeners.remove(key);
        session.end_request(&call.id);
        None
    }

    fn initialize(
        &self,
        session: &Session,
        params: InitializeParams,
        extensions: &http::Extensions,
    ) -> InitializeResult {
        let version = ProtocolVersion::negotiate(&params.protocol_version);
        tracing::debug!(requested = %params.protocol_version, negotiated = %version, client = %params.client_info.name, "initialize");
        session.update_state(|s| {
            s.protocol_version = Some(version);
            s.client_info = Some(params.client_info);
            s.client_capabilities = params.capabilities;
        });
        let mut capabilities = self.capabilities_for(version);
        if version == ProtocolVersion::V2025_11_25 && self.offers_tasks(extensions) {
            capabilities.tasks = Some(experimental_tasks::capability());
        }
        InitializeResult {
            protocol_version: version.as_str().to_owned(),
            capabilities,
            server_info: self.inner.info.for_version(version),
            instructions: self.inner.instructions.clone(),
        }
    }

    fn discover(&self, extensions: &http::Extensions) -> DiscoverResult {
        let mut meta = Map::new();
        meta.insert(
            stateless::META_SERVER_INFO.into(),
            to_value(&self.inner.info),
        );
        let mut capabilities = self.capabilities_for(ProtocolVersion::LATEST);
        if self.offers_tasks(extensions) {
            capabilities
                .extensions
                .get_or_insert_with(Map::new)
                .insert(task::EXTENSION.into(), json!({}));
        }
        DiscoverResult {
            supported_versions: ProtocolVersion::supported_strings()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            capabilities,
            instructions: self.inner.instructions.clone(),
            meta: Some(meta),
        }
    }

    /// One page of a registry, each item converted with `convert` (only the page's items are).
    fn page<T, R>(
        &self,
        items: &[T],
        params: PaginatedParams,
        convert: impl Fn(&T) -> R,
    ) -> Result<(Vec<R>, Option<String>), ErrorObject> {
        let start = match params.cursor.as_deref() {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0 && n < items.len())
                .ok_or_else(|| ErrorObject::invalid_params(format!("invalid cursor {c:?}")))?,
        };
        let end = (start + self.inner.page_size).min(items.len());
        Ok((
            items[start..end].iter().map(convert).collect(),
            (end < items.len()).then(|| end.to_string()),
        ))
    }

    fn list_tools(
        &self,
        version: ProtocolVersion,
        params: PaginatedParams,
    ) -> Result<Value, ErrorObject> {
        let (tools, next_cursor) =
            self.page(&self.inner.tools, params, |t| t.tool.for_version(version))?;
        Ok(to_value(ListToolsResult { tools, next_cursor }))
    }

    fn tool_context(
        &self,
        call: &Call<'_>,
        rounds: Option<(Arc<Mutex<Rounds>>, CancellationSignal)>,
        cancellation: CancellationSignal,
    ) -> ToolContext {
        let session = &call.ctx.session;
        let (caps, log_level) = match &call.era {
            Era::Stateful => (session.client_capabilities(), None),
            Era::Stateless(meta) => (
                Arc::new(meta.client_capabilities.clone()),
                meta.raw
                    .get(stateless::META_LOG_LEVEL)
                    .and_then(|v| serde_json::from_value::<LoggingLevel>(v.clone()).ok()),
            ),
        };
        let input = match rounds {
            Some((rounds, needs_input)) => InputChannel::Rounds {
                rounds,
                needs_input,
            },
            None => InputChannel::Stream {
                session: Arc::clone(session),
                outbound: Arc::clone(&call.ctx.outbound),
            },
        };
        let progress_token = call
            .meta
            .as_ref()
            .and_then(|m| m.get("progressToken"))
            .and_then(RequestId::from_value);
        ToolContext {
            request_id: call.id.clone(),
            session: Arc::clone(session),
            version: call.version,
            last_progress: progress_token
                .is_some()
                .then(|| Arc::new(AtomicU64::new(u64::MAX))),
            progress_token,
            outbound: Arc::clone(&call.ctx.outbound),
            cancellation,
            extensions: Arc::clone(&call.extensions),
            meta: call.meta.clone(),
            client_capabilities: caps,
            input,
            request_log_level: log_level,
            listeners: Arc::clone(&self.inner.listeners),
            task: None,
        }
    }

    /// Runs a handler with cancellation, and in the stateless era with input rounds whose
    /// earlier answers come from the verified `requestState`.
    async fn run<T, F, Fut>(
        &self,
        call: &Call<'_>,
        params: &Value,
        binding: String,
        handler: F,
    ) -> Result<RunOutcome<T>, ErrorObject>
    where
        F: FnOnce(ToolContext) -> Fut,
        Fut: Future<Output = T>,
    {
        let rounds = match &call.era {
            Era::Stateful => None,
            Era::Stateless(_) => Some((
                Arc::new(Mutex::new(self.stateless_rounds(params, &binding)?)),
                CancellationSignal::new(),
            )),
        };
        let cancellation = call.ctx.session.begin_request(call.id.clone());
        let ctx = self.tool_context(call, rounds.clone(), cancellation.clone());
        let outcome = match &rounds {
            None => run_until_cancelled(&cancellation, handler(ctx)).await,
            Some((_, needs_input)) => {
                let either = run_until_cancelled(needs_input, handler(ctx));
                run_until_cancelled(&cancellation, either).await.flatten()
            }
        };
        call.ctx.session.end_request(&call.id);
        Ok(match (outcome, rounds) {
            (Some(v), _) => RunOutcome::Done(v),
            (None, Some((rounds, needs_input)))
                if needs_input.is_cancelled() && !cancellation.is_cancelled() =>
            {
                let r = std::mem::take(&mut *rounds.lock().unwrap_or_else(|p| p.into_inner()));
                if let Some(failure) = r.failure {
                    return Err(failure);
                }
                RunOutcome::NeedsInput {
                    needed: r.needed,
                    responses: r.responses,
                }
            }
            (None, _) => RunOutcome::Cancelled,
        })
    }

    /// The answers a stateless request brings: those its verified `requestState` carries and
    /// its `inputResponses`.
    fn stateless_rounds(&self, params: &Value, binding: &str) -> Result<Rounds, ErrorObject> {
        let mut responses = Map::new();
        if let Some(state) = params.get("requestState") {
            let token = state
                .as_str()
                .ok_or_else(|| ErrorObject::invalid_params("requestState must be a string"))?;
            let verified = self
                .inner
                .signer
                .verify(token, binding)
                .map_err(state_error)?;
            responses = verified.responses;
        }
        match params.get("inputResponses") {
            None => {}
            Some(Value::Object(answers)) => {
                for (k, v) in answers {
                    responses.insert(k.clone(), v.clone());
                }
            }
            Some(_) => {
                return Err(ErrorObject::invalid_params(
                    "inputResponses must be an object",
                ));
            }
        }
        Ok(Rounds {
            responses,
            ..Rounds::default()
        })
    }

    fn input_required(
        &self,
        needed: Vec<(String, Value)>,
        responses: Map<String, Value>,
        binding: String,
    ) -> Value {
        let requests: Map<String, Value> = needed.into_iter().collect();
        json!({
            "resultType": stateless::RESULT_INPUT_REQUIRED,
            "inputRequests": requests,
            "requestState": self.inner.signer.sign(responses, binding),
        })
    }

    async fn call_tool(
        &self,
        call: &Call<'_>,
        mut raw: Value,
    ) -> Option<Result<ResultBody, ErrorObject>> {
        // The arguments are moved out before the rest is read, so they are never copied.
        let arguments = raw.as_object_mut().and_then(|m| m.remove("arguments"));
        let read = call_params::CallTarget::read(&raw)
            .and_then(|target| Ok((target, call_params::arguments_object(arguments)?)));
        let (target, mut args) = match read {
            Ok(read) => read,
            Err(e) => return Some(Err(ErrorObject::invalid_params(e))),
        };
        let version = call.version;
        let Some(&i) = self.inner.index.get(target.name.as_ref()) else {
            return Some(Err(ErrorObject::invalid_params(format!(
                "Unknown tool: '{}'",
                target.name
            ))));
        };
        let tool = &self.inner.tools[i];
        let name = tool.tool.name.as_str();
        tool.normalize_arguments(&mut args);
        if let Some(headers) = call.extensions.get::<http_headers::ParamHeaders>()
            && let Err(e) = http_headers::check_param_headers(&tool.tool, &args, headers)
        {
            return Some(Err(e));
        }
        if let Err(detail) = tool.validate(&args) {
            let answer = invalid_arguments(version, name, detail);
            return Some(answer.map(ResultBody::Value));
        }
        // Only a stateless request can need input rounds, whose requestState is bound to this.
        let binding = if matches!(call.era, Era::Stateless(_)) {
            stateless::binding(method::TOOLS_CALL, name, &args)
        } else {
            String::new()
        };
        match self.task_host(call, tool, &raw) {
            Ok(None) => {}
            Ok(Some(host)) => {
                // Boxed: a task call's future is large, and plain calls are the common case.
                let answer =
                    Box::pin(self.call_as_task(call, &raw, binding, (tool, args), host)).await;
                return answer.map(|outcome| outcome.map(ResultBody::Value));
            }
            Err(e) => return Some(Err(e)),
        }
        let outcome = self
            .run(call, &raw, binding.clone(), move |ctx| {
                tool.invoke(ctx, args)
            })
            .await;
        match outcome {
            Err(e) => Some(Err(e)),
            Ok(RunOutcome::Cancelled) => None,
            Ok(RunOutcome::NeedsInput { needed, responses }) => Some(Ok(ResultBody::Value(
                self.input_required(needed, responses, binding),
            ))),
            Ok(RunOutcome::Done(done)) => Some(call_result(version, name, done)),
        }
    }

    async fn read_resource(
        &self,
        call: &Call<'_>,
        raw: Value,
    ) -> Option<Result<Value, ErrorObject>> {
        let params: ResourceUriParams = match serde_json::from_value(raw.clone()) {
            Ok(p) => p,
            Err(e) => return Some(Err(ErrorObject::invalid_params(e))),
        };
        let uri = params.uri;
        let found = if let Some(r) = self.inner.resources.iter().find(|r| r.resource.uri == uri) {
            Some((&r.read, HashMap::new()))
        } else {
            self.inner
                .templates
                .iter()
                .find_map(|t| t.matches(&uri).map(|vars| (&t.read, vars)))
        };
        let Some((read, vars)) = found else {
            return Some(Err(ErrorObject::new(
                call.version.resource_not_found_code(),
                format!("Resource not found: {uri}"),
            )
            .with_data(json!({ "uri": uri }))));
        };
        let binding = stateless::binding(method::RESOURCES_READ, &uri, &Value::Null);
        let outcome = self
            .run(call, &raw, binding.clone(), |ctx| {
                read(ctx, uri.clone(), vars)
            })
            .await;
        match outcome {
            Err(e) => Some(Err(e)),
            Ok(RunOutcome::Cancelled) => None,
            Ok(RunOutcome::NeedsInput { needed, responses }) => {
                Some(Ok(self.input_required(needed, responses, binding)))
            }
            Ok(RunOutcome::Done(Ok(contents))) => {
                Some(Ok(to_value(ReadResourceResult { contents })))
            }
            Ok(RunOutcome::Done(Err(e))) => Some(Err(ErrorObject::internal(e.message()))),
        }
    }

    async fn get_prompt(&self, call: &Call<'_>, raw: Value) -> Option<Result<Value, ErrorObject>> {
        let params: GetPromptParams = match serde_json::from_value(raw.clone()) {
            Ok(p) => p,
            Err(e) => return Some(Err(ErrorObject::invalid_params(e))),
        };
        let Some(prompt) = self
            .inner
            .prompts
            .iter()
            .find(|p| p.prompt.name == params.name)
        else {
            return Some(Err(ErrorObject::invalid_params(format!(
                "Unknown prompt: '{}'",
                params.name
            ))));
        };
        let args = Value::Object(params.arguments.unwrap_or_default());
        let binding = stateless::binding(method::PROMPTS_GET, &params.name, &args);
        let outcome = self
            .run(call, &raw, binding.clone(), |ctx| {
                (prompt.get)(ctx, args.clone())
            })
            .await;
        match outcome {
            Err(e) => Some(Err(e)),
            Ok(RunOutcome::Cancelled) => None,
            Ok(RunOutcome::NeedsInput { needed, responses }) => {
                Some(Ok(self.input_required(needed, responses, binding)))
            }
            Ok(RunOutcome::Done(Ok(result))) => Some(Ok(to_value(result))),
            Ok(RunOutcome::Done(Err(PromptFailure::InvalidArguments(d)))) => {
                Some(Err(ErrorObject::invalid_params(d)))
            }
            Ok(RunOutcome::Done(Err(PromptFailure::Failed(e)))) => {
                Some(Err(ErrorObject::internal(e.message())))
            }
        }
    }

    async fn complete(&self, raw: Value) -> Result<Value, ErrorObject> {
        let params: CompleteParams =
            serde_json::from_value(raw).map_err(ErrorObject::invalid_params)?;
        let completion = match &self.inner.completion {
            Some(f) => (f.0)(params)
                .await
                .map_err(|e| ErrorObject::internal(e.message()))?,
            None => Completion::default(),
        };
        let mut completion = completion;
        completion.values.truncate(100);
        Ok(to_value(CompleteResult { completion }))
    }

    fn subscribe(
        &self,
        session: &Session,
        raw: Value,
        subscribe: bool,
    ) -> Result<Value, ErrorObject> {
        let params: ResourceUriParams =
            serde_json::from_value(raw).map_err(ErrorObject::invalid_params)?;
        session.update_state(|s| {
            s.subscriptions.retain(|u| u != &params.uri);
            if subscribe {
                if s.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                    return Err(ErrorObject::invalid_params("too many subscriptions"));
                }
                s.subscriptions.push(params.uri.clone());
            }
            Ok(())
        })?;
        Ok(to_value(EmptyResult {}))
    }

    /// Answers one request; `None` when it was cancelled.
    async fn dispatch(&self, request: Request, mut ctx: MessageContext) -> Option<Answer> {
        let Request { id, method, params } = request;
        let era = match RequestMeta::from_params(params.as_ref()) {
            Some(meta) => Era::Stateless(Box::new(meta)),
            None => Era::Stateful,
        };
        let stateless_era = matches!(era, Era::Stateless(_));
        let raw = params.unwrap_or_else(|| json!({}));
        let checked = self
            .request_version(&era, &ctx.session)
            .and_then(|version| self.check_request(&method, &raw).map(|()| version));
        let version = match checked {
            Ok(v) => v,
            Err(e) => return Some(Answer::error(id, e)),
        };
        let meta = raw.get("_meta").and_then(Value::as_object).cloned();
        let extensions = Arc::new(std::mem::take(&mut ctx.extensions));
        let call = Call {
            id: id.clone(),
            version,
            era,
            ctx: &ctx,
            extensions,
            meta: meta.map(Arc::new),
        };
        let routed = if method == method::TOOLS_CALL {
            self.call_tool(&call, raw).await
        } else {
            let routed = self.route(&call, &method, raw).await;
            routed.map(|outcome| outcome.map(ResultBody::Value))
        };
        let Some(outcome) = routed else {
            return cancelled(&id);
        };
        let outcome = if stateless_era {
            outcome.map(|body| ResultBody::Value(self.stateless_result(&method, body.into_value())))
        } else {
            outcome
        };
        Some(Answer { id, outcome })
    }

    /// The protocol version a request speaks: its own `_meta` in the stateless era, the
    /// negotiated one (or the HTTP default) in a stateful session.
    fn request_version(
        &self,
        era: &Era,
        session: &Session,
    ) -> Result<ProtocolVersion, ErrorObject> {
        match era {
            Era::Stateless(meta) => meta.version(),
            Era::Stateful => Ok(session
                .protocol_version()
                .unwrap_or(ProtocolVersion::HTTP_DEFAULT)),
        }
    }

    /// Rejects params that are not an object and methods of a capability the server does
    /// not declare (for it, such a method does not exist).
    fn check_request(&self, method: &str, raw: &Value) -> Result<(), ErrorObject> {
        if !raw.is_object() {
            // MCP params are always objects (serde would read a struct from an array).
            return Err(ErrorObject::invalid_params("params must be an object"));
        }
        let i = &self.inner;
        let has_resources = !i.resources.is_empty() || !i.templates.is_empty();
        let undeclared = match method {
            method::RESOURCES_LIST
            | method::RESOURCE_TEMPLATES_LIST
            | method::RESOURCES_READ
            | method::RESOURCES_SUBSCRIBE
            | method::RESOURCES_UNSUBSCRIBE => !has_resources,
            method::PROMPTS_LIST | method::PROMPTS_GET => i.prompts.is_empty(),
            method::COMPLETION_COMPLETE => self.capabilities().completions.is_none(),
            _ => false,
        };
        if undeclared {
            return Err(ErrorObject::method_not_found(method));
        }
        Ok(())
    }

    /// Runs one request's method other than `tools/call`; `None` when it was cancelled (no
    /// response is sent).
    async fn route(
        &self,
        call: &Call<'_>,
        method: &str,
        raw: Value,
    ) -> Option<Result<Value, ErrorObject>> {
        let stateless_era = matches!(call.era, Era::Stateless(_));
        let session = &call.ctx.session;
        let outcome = match (method, stateless_era) {
            (method::RESOURCES_READ, _) => return self.read_resource(call, raw).await,
            (method::PROMPTS_GET, _) => return self.get_prompt(call, raw).await,
            // Long-lived and rare: boxed, so that they do not grow every request's future.
            (listen::SUBSCRIPTIONS_LISTEN, true) => return Box::pin(self.listen(call, raw)).await,
            (
                method::TOOLS_LIST
                | method::RESOURCES_LIST
                | method::RESOURCE_TEMPLATES_LIST
                | method::PROMPTS_LIST,
                _,
            ) => parse_paginated(raw).and_then(|p| self.list(method, call.version, p)),
            (method::COMPLETION_COMPLETE, _) => self.complete(raw).await,
            (method::SERVER_DISCOVER, true) => Ok(to_value(self.discover(&call.extensions))),
            (task::TASKS_GET | task::TASKS_UPDATE | task::TASKS_CANCEL, true) => {
                Box::pin(self.task_request(call, method, raw)).await
            }
            (
                task::TASKS_GET | task::TASKS_RESULT | task::TASKS_LIST | task::TASKS_CANCEL,
                false,
            ) => {
                return Box::pin(self.experimental_task_request(call, method, raw)).await;
            }
            (method::INITIALIZE, false) => parse_params::<InitializeParams>(raw)
                .map(|p| to_value(self.initialize(session, p, &call.extensions))),
            (method::PING, false) => Ok(to_value(EmptyResult {})),
            (method::LOGGING_SET_LEVEL, false) => parse_params::<SetLevelParams>(raw).map(|p| {
                session.update_state(|s| s.log_level = Some(p.level));
                to_value(EmptyResult {})
            }),
            (method::RESOURCES_SUBSCRIBE, false) => self.subscribe(session, raw, true),
            (method::RESOURCES_UNSUBSCRIBE, false) => self.subscribe(session, raw, false),
            (other, _) => Err(ErrorObject::method_not_found(other)),
        };
        Some(outcome)
    }

    /// One page of a `*/list` method's items, as seen by `version`.
    fn list(
        &self,
        method: &str,
        version: ProtocolVersion,
        p: PaginatedParams,
    ) -> Result<Value, ErrorObject> {
        let i = &self.inner;
        match method {
            method::RESOURCES_LIST => self
                .page(&i.resources, p, |r| r.resource.for_version(version))
                .map(|(resources, next_cursor)| {
                    to_value(ListResourcesResult {
                        resources,
                        next_cursor,
                    })
                }),
            method::RESOURCE_TEMPLATES_LIST => self
                .page(&i.templates, p, |t| t.template.for_version(version))
                .map(|(resource_templates, next_cursor)| {
                    to_value(ListResourceTemplatesResult {
                        resource_templates,
                        next_cursor,
                    })
                }),
            method::PROMPTS_LIST => self
                .page(&i.prompts, p, |p| p.prompt.for_version(version))
                .map(|(prompts, next_cursor)| {
                    to_value(ListPromptsResult {
                        prompts,
                        next_cursor,
                    })
                }),
            method::TOOLS_LIST => self.list_tools(version, p),
            other => Err(ErrorObject::method_not_found(other)),
        }
    }

    /// Adds `resultType` (and caching hints on list and discover results) to a stateless result.
    fn stateless_result(&self, method: &str, mut value: Value) -> Value {
        if let Value::Object(map) = &mut value {
            map.entry("resultType")
                .or_insert_with(|| json!(stateless::RESULT_COMPLETE));
            let scope = match method {
                method::TOOLS_LIST
                | method::PROMPTS_LIST
                | method::RESOURCES_LIST
                | method::RESOURCE_TEMPLATES_LIST => Some("public"),
                // Discover answers depend on nothing per user, but reads may.
                method::SERVER_DISCOVER => Some("public"),
                method::RESOURCES_READ => Some("private"),
                _ => None,
            };
            if let Some(scope) = scope
                && map.get("resultType") == Some(&json!(stateless::RESULT_COMPLETE))
            {
                map.entry("ttlMs")
                    .or_insert_with(|| json!(self.inner.cache_ttl_ms));
                map.entry("cacheScope").or_insert_with(|| json!(scope));
            }
            if let Value::Object(meta) = map.entry("_meta").or_insert_with(|| json!({})) {
                meta.entry(stateless::META_SERVER_INFO)
                    .or_insert_with(|| to_value(&self.inner.info));
            }
        }
        value
    }

    fn notify(&self, method: &str, params: Option<Value>, session: &Session) {
        match method {
            method::INITIALIZED => session.update_state(|s| s.initialized = true),
            method::CANCELLED => {
                if let Ok(p) = parse_params::<CancelledParams>(params.unwrap_or_default())
                    && let Some(id) = p.request_id
                {
                    let found = session.cancel_request(&id);
                    tracing::debug!(%id, found, reason = ?p.reason, "cancel request");
                }
            }
            other => tracing::debug!(method = other, "ignoring notification"),
        }
    }
}

/// A `tools/call` answer from how the handler ended.
fn call_result(
    version: ProtocolVersion,
    tool: &str,
    done: Result<ToolOutput, CallFailure>,
) -> Result<ResultBody, ErrorObject> {
    match done {
        Ok(output) => Ok(ResultBody::Tool { output, version }),
        Err(CallFailure::InvalidArguments(detail)) => {
            invalid_arguments(version, tool, detail).map(ResultBody::Value)
        }
        Err(CallFailure::Tool(e)) => Ok(ResultBody::Value(to_value(
            CallToolResult::error_text(e.message()).into_version(version),
        ))),
        Err(CallFailure::Panicked) => Err(ErrorObject::internal(format!(
            "tool '{tool}' failed unexpectedly"
        ))),
    }
}

/// Arguments that do not fit the schema: a tool error from 2025-11-25, else `-32602`.
fn invalid_arguments(
    version: ProtocolVersion,
    tool: &str,
    detail: String,
) -> Result<Value, ErrorObject> {
    let message = format!("Invalid arguments for tool '{tool}': {detail}");
    if version.argument_errors_are_tool_errors() {
        Ok(to_value(
            CallToolResult::error_text(message).into_version(version),
        ))
    } else {
        Err(ErrorObject::invalid_params(message))
    }
}

fn cancelled(id: &RequestId) -> Option<Answer> {
    tracing::debug!(%id, "request cancelled; no response sent");
    None
}

fn state_error(e: StateError) -> ErrorObject {
    ErrorObject::invalid_params(format!("Invalid requestState: {e}"))
}

impl McpService for McpServer {
    fn session_closed(&self, session: &Session) {
        session.cancel_all();
        self.inner.listeners.remove_session(session);
    }

    fn stream_opened(&self, session: &Arc<Session>, outbound: Arc<dyn crate::service::Outbound>) {
        if !self
            .inner
            .listeners
            .add_session(Arc::clone(session), outbound)
        {
            tracing::warn!("too many open streams; this one gets no change notifications");
        }
    }

    fn resume_orphaned_tasks(&self, host: task::TaskHost) -> BoxFuture<'static, usize> {
        let server = self.clone();
        Box::pin(async move { server.resume_orphaned_tasks(&host).await })
    }

    fn handle(&self, message: Message, ctx: MessageContext) -> BoxFuture<'static, Option<Message>> {
        let server = self.clone();
        Box::pin(async move {
            let answer = server.receive(message, ctx).await;
            answer.map(Answer::into_message)
        })
    }

    fn handle_encoded(
        &self,
        message: Message,
        ctx: MessageContext,
    ) -> BoxFuture<'static, Option<EncodedReply>> {
        let server = self.clone();
        Box::pin(async move {
            let answer = server.receive(message, ctx).await;
            answer.map(Answer::encode)
        })
    }
}

impl McpServer {
    /// Takes one client message: answers a request, acts on a notification, hands a response
    /// to the server-to-client request waiting for it.
    async fn receive(&self, message: Message, ctx: MessageContext) -> Option<Answer> {
        match message {
            Message::Request(r) => self.dispatch(r, ctx).await,
            Message::Notification(n) => {
                self.notify(&n.method, n.params, &ctx.session);
                None
            }
            Message::Response(r) => {
                let delivered = match &r.id {
                    Some(id) => ctx.session.complete_server_request(id, r.outcome),
                    None => false,
                };
                if !delivered {
                    tracing::debug!(id = ?r.id, "response from client with no pending request");
                }
                None
            }
        }
    }
}

fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn parse_params<T: DeserializeOwned>(params: Value) -> Result<T, ErrorObject> {
    serde_json::from_value(params).map_err(ErrorObject::invalid_params)
}

fn parse_paginated(params: Value) -> Result<PaginatedParams, ErrorObject> {
    match params {
        Value::Null => Ok(PaginatedParams::default()),
        p => serde_json::from_value(p).map_err(ErrorObject::invalid_params),
    }
}

/// Convenience for tool authors: `ToolError` from any displayable error.
pub fn tool_error(e: impl std::fmt::Display) -> ToolError {
    ToolError::new(e.to_string())
}

#[cfg(test)]
mod panic_tests {
    use super::*;
    use crate::service::Session;
    use crate::tool::NoArgs;

    #[test]
    fn a_panicking_tool_is_an_internal_error_not_a_crash() {
        let server = McpServer::builder("s")
            .tool("boom", "Panics.", |_: NoArgs| async {
                if std::hint::black_box(true) {
                    panic!("bug in the tool");
                }
                Ok::<String, ToolError>(String::new())
            })
            .build()
            .unwrap();
        let session = Arc::new(Session::new(None));
        let call = Message::request(7, "tools/call", Some(json!({"name": "boom"})));
        let reply = futures::executor::block_on(server.handle(call, MessageContext::new(session)));
        let Some(Message::Response(r)) = reply else {
            panic!("no response")
        };
        assert_eq!(r.id, Some(RequestId::from(7)));
        let e = r.outcome.unwrap_err();
        assert_eq!(e.code, crate::jsonrpc::code::INTERNAL_ERROR);
        assert_eq!(e.message, "Internal error: tool 'boom' failed unexpectedly");
    }
}
