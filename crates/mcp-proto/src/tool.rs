//! Typed tools: handlers, their context, errors and generated schemas.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::cancel::CancellationSignal;
use crate::client_features::{
    CreateMessageParams, CreateMessageResult, ElicitParams, ElicitResult, ListRootsResult,
};
use crate::error::Error;
use crate::input::{InputChannel, InputError, InputRequest, parse_answer};
use crate::jsonrpc::{Message, RequestId};
use crate::schema::{SchemaProfile, drop_null_optionals, openai_strict};
use crate::service::{BoxFuture, Outbound, SendError, Session};
pub use crate::tool_output::ToolOutput;
use crate::types::{
    CallToolResult, ClientCapabilities, Icon, JsonObject, LoggingLevel, LoggingMessageParams,
    ProgressParams, Tool, ToolAnnotations, method,
};
use crate::version::ProtocolVersion;

/// A tool failure the model should see: it becomes a result with `isError: true`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    message: String,
}

impl ToolError {
    /// A failure with a message for the model.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<String> for ToolError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for ToolError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// Arguments type for a tool that takes none: its schema is an empty object.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// What a handler gets besides its arguments.
#[derive(Clone)]
pub struct ToolContext {
    pub(crate) request_id: RequestId,
    pub(crate) session: Arc<Session>,
    pub(crate) version: ProtocolVersion,
    pub(crate) progress_token: Option<RequestId>,
    /// The last progress sent (as `f64` bits), shared by the context's clones; only when the
    /// client gave a progress token.
    pub(crate) last_progress: Option<Arc<AtomicU64>>,
    pub(crate) outbound: Arc<dyn Outbound>,
    pub(crate) cancellation: CancellationSignal,
    pub(crate) extensions: Arc<http::Extensions>,
    pub(crate) meta: Option<Arc<JsonObject>>,
    pub(crate) client_capabilities: Arc<ClientCapabilities>,
    pub(crate) input: InputChannel,
    /// Stateless requests opt in to log messages per request; `None` means the session decides.
    pub(crate) request_log_level: Option<LoggingLevel>,
    /// The server's `subscriptions/listen` streams.
    pub(crate) listeners: Arc<crate::listen::Listeners>,
    /// The task this call runs as (or may become), when it is a task call.
    pub(crate) task: Option<Arc<crate::task_run::TaskLink>>,
}

impl std::fmt::Debug for ToolContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolContext")
            .field("request_id", &self.request_id)
            .field("session_id", &self.session.id())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl ToolContext {
    /// The id of the `tools/call` request.
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    /// The session id, when the transport has sessions.
    pub fn session_id(&self) -> Option<&str> {
        self.session.id()
    }

    /// The protocol version of this call.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// Fires when the client cancels the call (or the session ends).
    pub fn cancellation(&self) -> &CancellationSignal {
        &self.cancellation
    }

    /// Extensions of the HTTP request (e.g. the caller's identity from an auth layer).
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    /// The request's `_meta`, if any.
    pub fn meta(&self) -> Option<&JsonObject> {
        self.meta.as_deref()
    }

    /// Whether the client asked for progress (sent a `progressToken`).
    pub fn wants_progress(&self) -> bool {
        self.progress_token.is_some()
    }

    /// Reports progress. Sent only when the client gave a progress token, and only when
    /// `progress` is larger than the last value sent (the spec requires it to increase).
    pub async fn progress(
        &self,
        progress: f64,
        total: Option<f64>,
        message: Option<&str>,
    ) -> Result<(), SendError> {
        let (Some(token), Some(last_progress)) = (self.progress_token.clone(), &self.last_progress)
        else {
            return Ok(());
        };
        let bits = progress.to_bits();
        let previous = last_progress.load(Ordering::SeqCst);
        if previous != u64::MAX && f64::from_bits(previous) >= progress {
            tracing::debug!(progress, "progress did not increase; not sent");
            return Ok(());
        }
        last_progress.store(bits, Ordering::SeqCst);
        let params = ProgressParams {
            progress_token: token,
            progress,
            total,
            message: message
                .filter(|_| self.version.has_annotations_and_audio())
                .map(str::to_owned),
        };
        self.notify(method::PROGRESS, &params).await
    }

    /// The capabilities the client declared (at `initialize`, or in this request's `_meta`).
    pub fn client_capabilities(&self) -> &ClientCapabilities {
        &self.client_capabilities
    }

    /// Asks the client a question; see [`crate::input`] for how each era carries it. Under
    /// 2026-07-28 the question's key is `input_<k>` for the k-th question of the call.
    pub async fn ask(&self, request: InputRequest) -> Result<Value, InputError> {
        if let Some(task) = self.task.as_ref().and_then(|t| t.input()) {
            return task.ask(None, request, &self.client_capabilities).await;
        }
        self.input
            .ask(None, request, &self.client_capabilities)
            .await
    }

    /// Makes a deferred task call (see [`crate::ToolDef::defer_task`]) a task: the client
    /// gets its `CreateTaskResult` now and the handler runs on in the background, where its
    /// questions become the task's `inputRequests`. Does nothing in a call that is not a
    /// task call or is one already.
    pub async fn start_task(&self) {
        if let Some(task) = &self.task {
            task.start().await;
        }
    }

    /// The id of the task this call runs as, once it is one.
    pub fn task_id(&self) -> Option<&str> {
        self.task
            .as_ref()
            .and_then(|t| t.input())
            .map(|i| i.task_id())
    }

    /// Asks the client a question under a key of the handler's choosing: under 2026-07-28
    /// it is the key of the `inputRequests` entry and of the client's `inputResponses`
    /// answer (in a stateful session the key is not sent).
    pub async fn ask_as(
        &self,
        key: impl Into<String>,
        request: InputRequest,
    ) -> Result<Value, InputError> {
        if let Some(task) = self.task.as_ref().and_then(|t| t.input()) {
            return task
                .ask(Some(key.into()), request, &self.client_capabilities)
                .await;
        }
        self.input
            .ask(Some(key.into()), request, &self.client_capabilities)
            .await
    }

    /// Asks several questions at once, each under its key; the answers come back in the same
    /// order. Under 2026-07-28 every unanswered question goes out in the same
    /// `InputRequiredResult`; in a stateful session they are sent together on the call's stream.
    pub async fn ask_all(
        &self,
        requests: Vec<(String, InputRequest)>,
    ) -> Vec<Result<Value, InputError>> {
        let futures: Vec<_> = requests
            .into_iter()
            .map(|(key, request)| Box::pin(self.ask_as(key, request)))
            .collect();
        join_all(futures).await
    }

    /// Asks the client's model to generate a message (`sampling/createMessage`).
    pub async fn sample(
        &self,
        params: CreateMessageParams,
    ) -> Result<CreateMessageResult, InputError> {
        parse_answer(self.ask(InputRequest::Sampling(params)).await?)
    }

    /// Asks the user for input (`elicitation/create`, form or URL mode).
    pub async fn elicit(&self, params: ElicitParams) -> Result<ElicitResult, InputError> {
        parse_answer(self.ask(InputRequest::Elicitation(params)).await?)
    }

    /// Asks the client for its roots (`roots/list`).
    pub async fn list_roots(&self) -> Result<ListRootsResult, InputError> {
        parse_answer(self.ask(InputRequest::ListRoots).await?)
    }

    /// [`ToolContext::sample`] under a chosen key (see [`ToolContext::ask_as`]).
    pub async fn sample_as(
        &self,
        key: impl Into<String>,
        params: CreateMessageParams,
    ) -> Result<CreateMessageResult, InputError> {
        parse_answer(self.ask_as(key, InputRequest::Sampling(params)).await?)
    }

    /// [`ToolContext::elicit`] under a chosen key (see [`ToolContext::ask_as`]).
    pub async fn elicit_as(
        &self,
        key: impl Into<String>,
        params: ElicitParams,
    ) -> Result<ElicitResult, InputError> {
        parse_answer(self.ask_as(key, InputRequest::Elicitation(params)).await?)
    }

    /// [`ToolContext::list_roots`] under a chosen key (see [`ToolContext::ask_as`]).
    pub async fn list_roots_as(
        &self,
        key: impl Into<String>,
    ) -> Result<ListRootsResult, InputError> {
        parse_answer(self.ask_as(key, InputRequest::ListRoots).await?)
    }

    /// Announces a change to the clients listening for it (see
    /// [`crate::McpServer::notify_changed`]).
    pub async fn notify_changed(&self, change: crate::listen::Change) {
        self.listeners.notify(change).await;
    }

    /// Sends a log message when the client's level lets it through. Stateful sessions set the
    /// level with `logging/setLevel` (default `info`); a 2026-07-28 request opts in through
    /// its `_meta` and gets nothing otherwise.
    pub async fn log(
        &self,
        level: LoggingLevel,
        logger: Option<&str>,
        data: Value,
    ) -> Result<(), SendError> {
        let min = if self.version.is_stateless() {
            match self.request_log_level {
                Some(l) => l,
                None => return Ok(()),
            }
        } else {
            self.session.state().log_level.unwrap_or(LoggingLevel::Info)
        };
        if level < min {
            return Ok(());
        }
        let params = LoggingMessageParams {
            level,
            logger: logger.map(str::to_owned),
            data,
        };
        self.notify(method::LOG_MESSAGE, &params).await
    }

    async fn notify(&self, method: &str, params: &impl Serialize) -> Result<(), SendError> {
        let params = serde_json::to_value(params).map_err(|_| SendError::Unsupported)?;
        self.outbound
            .send(Message::notification(method, Some(params)))
            .await
    }
}

/// Polls every future to completion; the outputs keep the input order.
async fn join_all<F: Future + Unpin>(futures: Vec<F>) -> Vec<F::Output> {
    let mut slots: Vec<(F, Option<F::Output>)> = futures.into_iter().map(|f| (f, None)).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (fut, out) in slots.iter_mut() {
            if out.is_none() {
                match std::pin::Pin::new(fut).poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(slots.iter_mut().filter_map(|(_, o)| o.take()).collect())
        }
    })
    .await
}

/// Turns what a handler returns into a `tools/call` result.
///
/// Any `Serialize + JsonSchema` type becomes `structuredContent` plus a text block with its
/// compact JSON, and the tool gets an `outputSchema`. A value whose schema is not an object
/// is wrapped as `{"result": value}`, as FastMCP does. Return [`CallToolResult`] to build
/// the content yourself (no `outputSchema`).
pub trait IntoToolOutput: Send + 'static {
    /// The tool's `outputSchema`, if it has one.
    fn output_schema() -> Result<Option<JsonObject>, String>;
    /// Converts the value.
    fn into_call_result(self) -> Result<CallToolResult, ToolError>;
    /// Converts the value the way the server sends it. The default goes through
    /// [`IntoToolOutput::into_call_result`]; a `Serialize` value is serialized once, to the
    /// JSON text its text block and `structuredContent` are both made from.
    fn into_output(self) -> Result<ToolOutput, ToolError>
    where
        Self: Sized,
    {
        self.into_call_result().map(ToolOutput::from)
    }
}

impl IntoToolOutput for CallToolResult {
    fn output_schema() -> Result<Option<JsonObject>, String> {
        Ok(None)
    }

    fn into_call_result(self) -> Result<CallToolResult, ToolError> {
        Ok(self)
    }
}

impl<T: Serialize + JsonSchema + Send + 'static> IntoToolOutput for T {
    fn output_schema() -> Result<Option<JsonObject>, String> {
        let schema = schema_object::<T>()?;
        Ok(Some(if is_object_schema(&schema) {
            schema
        } else {
            wrap_schema(schema)
        }))
    }

    fn into_call_result(self) -> Result<CallToolResult, ToolError> {
        let output = self.into_output()?.wrapped_if(output_is_wrapped::<T>());
        Ok(output.into_call_result())
    }

    fn into_output(self) -> Result<ToolOutput, ToolError> {
        ToolOutput::json(&self)
    }
}

/// Whether `T`'s output is wrapped as `{"result": ...}`, computed once per type (for
/// [`IntoToolOutput::into_call_result`]; a registered tool knows it from its output schema).
fn output_is_wrapped<T: JsonSchema + 'static>() -> bool {
    use std::any::TypeId;
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};
    static CACHE: OnceLock<RwLock<HashMap<TypeId, bool>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = TypeId::of::<T>();
    if let Some(&w) = cache.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return w;
    }
    let wrapped = schema_object::<T>()
        .map(|s| !is_object_schema(&s))
        .unwrap_or(true);
    cache
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, wrapped);
    wrapped
}

pub use crate::schema::schema_object;

fn is_object_schema(schema: &JsonObject) -> bool {
    schema.get("type") == Some(&Value::String("object".into()))
}

/// The member of an output schema saying the value is wrapped as `{"result": value}`.
const WRAP_MARKER: &str = "x-fastmcp-wrap-result";

/// Whether an output schema is FastMCP's `{"result": value}` wrapper.
fn is_wrapped_schema(schema: Option<&JsonObject>) -> bool {
    schema.and_then(|s| s.get(WRAP_MARKER)) == Some(&Value::Bool(true))
}

fn wrap_schema(mut inner: JsonObject) -> JsonObject {
    let dialect = inner.remove("$schema");
    let defs = inner.remove("$defs");
    let mut outer = JsonObject::new();
    if let Some(d) = dialect {
        outer.insert("$schema".into(), d);
    }
    outer.insert("type".into(), json!("object"));
    outer.insert(
        "properties".into(),
        json!({ "result": Value::Object(inner) }),
    );
    outer.insert("required".into(), json!(["result"]));
    outer.insert(WRAP_MARKER.into(), json!(true));
    if let Some(d) = defs {
        outer.insert("$defs".into(), d);
    }
    outer
}

/// An async function usable as a tool: `async fn(Args) -> Result<Out, ToolError>` or
/// `async fn(ToolContext, Args) -> Result<Out, ToolError>`. `Marker` tells the two apart.
pub trait ToolHandler<Marker>: Send + Sync + 'static {
    /// The argument type, deserialized from the call's `arguments`.
    type Args: DeserializeOwned + JsonSchema + Send + 'static;
    /// What the handler returns on success.
    type Output: IntoToolOutput;
    /// Runs the handler.
    fn call(
        &self,
        ctx: ToolContext,
        args: Self::Args,
    ) -> BoxFuture<'static, Result<Self::Output, ToolError>>;
}

/// Marker for handlers that take only their arguments.
#[derive(Debug)]
pub struct ArgsOnly;
/// Marker for handlers that take a [`ToolContext`] and their arguments.
#[derive(Debug)]
pub struct WithContext;

impl<F, Fut, A, R> ToolHandler<(ArgsOnly, A)> for F
where
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ToolError>> + Send + 'static,
    A: DeserializeOwned + JsonSchema + Send + 'static,
    R: IntoToolOutput,
{
    type Args = A;
    type Output = R;
    fn call(&self, _ctx: ToolContext, args: A) -> BoxFuture<'static, Result<R, ToolError>> {
        Box::pin(self(args))
    }
}

impl<F, Fut, A, R> ToolHandler<(WithContext, A)> for F
where
    F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ToolError>> + Send + 'static,
    A: DeserializeOwned + JsonSchema + Send + 'static,
    R: IntoToolOutput,
{
    type Args = A;
    type Output = R;
    fn call(&self, ctx: ToolContext, args: A) -> BoxFuture<'static, Result<R, ToolError>> {
        Box::pin(self(ctx, args))
    }
}

/// Why a call did not reach or finish the handler, before it is mapped to the protocol.
#[derive(Debug)]
pub(crate) enum CallFailure {
    /// Arguments do not match the schema (or do not deserialize).
    InvalidArguments(String),
    /// The handler returned an error.
    Tool(ToolError),
    /// The handler panicked (a bug in the tool): a JSON-RPC internal error, not a crash.
    Panicked,
}

/// Polls a handler's future and turns a panic inside it into [`CallFailure::Panicked`], so
/// one faulty tool cannot take down the connection or the task serving it.
pub(crate) struct CatchPanic {
    inner: HandlerFuture,
}

impl std::future::Future for CatchPanic {
    type Output = Result<ToolOutput, CallFailure>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll,
            Err(_) => {
                tracing::error!("a tool handler panicked");
                std::task::Poll::Ready(Err(CallFailure::Panicked))
            }
        }
    }
}

/// A running handler: its output, or why it has none.
pub(crate) type HandlerFuture = BoxFuture<'static, Result<ToolOutput, CallFailure>>;

type ErasedCall = dyn Fn(ToolContext, Value) -> HandlerFuture + Send + Sync;

/// The description of a tool besides its handler: name, description, title, annotations, icons.
#[derive(Debug, Clone)]
pub struct ToolDef {
    name: String,
    description: String,
    title: Option<String>,
    annotations: Option<ToolAnnotations>,
    icons: Option<Vec<Icon>>,
    meta: Option<JsonObject>,
    input_schema: Option<JsonObject>,
    task_support: crate::task::TaskSupport,
    defer_task: bool,
    restartable: bool,
}

impl ToolDef {
    /// A tool named `name` described by `description`.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            title: None,
            annotations: None,
            icons: None,
            meta: None,
            input_schema: None,
            task_support: crate::task::TaskSupport::Forbidden,
            defer_task: false,
            restartable: false,
        }
    }

    /// Whether the tool may run as a task (see [`crate::task`]); listed as
    /// `execution.taskSupport` under 2026-07-28.
    pub fn task_support(mut self, support: crate::task::TaskSupport) -> Self {
        self.task_support = support;
        self
    }

    /// The call runs as a plain call (input rounds answered with `InputRequiredResult`)
    /// until the handler calls [`ToolContext::start_task`]; only then is the task created and
    /// the `CreateTaskResult` sent. Without this, a task call becomes a task before the
    /// handler starts.
    pub fn defer_task(mut self) -> Self {
        self.defer_task = true;
        self
    }

    /// The tool is safe to run again from its arguments (idempotent): when the replica
    /// running it as a task dies, another replica sharing the task store takes the task over
    /// and runs it again (at most `TaskLimits::max_restarts` times), instead of reporting it
    /// failed. Answers to its earlier questions are not kept: it asks again (under new keys:
    /// `inputRequests` keys are unique over a task's life).
    pub fn restartable(mut self) -> Self {
        self.restartable = true;
        self
    }

    /// Lists and validates arguments against this JSON Schema, verbatim, instead of the one
    /// generated from the handler's argument type (which must still deserialize from the
    /// arguments; a `serde_json::Map` takes anything). For schemas a Rust type cannot express,
    /// e.g. 2020-12 `$defs`/`$anchor`, `if`/`then`/`else`.
    pub fn input_schema(mut self, schema: JsonObject) -> Self {
        self.input_schema = Some(schema);
        self
    }

    /// Sets the display name.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets behaviour hints.
    pub fn annotations(mut self, annotations: ToolAnnotations) -> Self {
        self.annotations = Some(annotations);
        self
    }

    /// Sets icons.
    pub fn icons(mut self, icons: Vec<Icon>) -> Self {
        self.icons = Some(icons);
        self
    }

    /// Sets `_meta`.
    pub fn meta(mut self, meta: JsonObject) -> Self {
        self.meta = Some(meta);
        self
    }
}

/// A registered tool: its definition, its compiled argument validator and its handler.
pub(crate) struct RegisteredTool {
    pub(crate) tool: Tool,
    /// The input schema arguments are validated against, when the listed one differs
    /// (see [`SchemaProfile::OpenAiStrict`]).
    validated_schema: Option<JsonObject>,
    validator: jsonschema::Validator,
    call: Box<ErasedCall>,
    /// Whether it may run as a task.
    pub(crate) task_support: crate::task::TaskSupport,
    /// Whether the handler decides when the task starts.
    pub(crate) defer_task: bool,
    /// Whether its task may run again on another replica when its replica dies.
    pub(crate) restartable: bool,
}

impl std::fmt::Debug for RegisteredTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredTool")
            .field("name", &self.tool.name)
            .finish_non_exhaustive()
    }
}

/// The largest number of validation problems reported for one call.
const MAX_REPORTED_PROBLEMS: usize = 5;

impl RegisteredTool {
    pub(crate) fn new<H, M>(def: ToolDef, handler: H) -> Result<Self, Error>
    where
        H: ToolHandler<M>,
    {
        let invalid = |detail: String| Error::InvalidToolSchema {
            tool: def.name.clone(),
            detail,
        };
        let input_schema = match def.input_schema.clone() {
            Some(schema) => schema,
            None => schema_object::<H::Args>().map_err(invalid)?,
        };
        if !is_object_schema(&input_schema) {
            return Err(invalid(
                "the arguments type must be a struct (an object schema)".into(),
            ));
        }
        let output_schema = H::Output::output_schema().map_err(invalid)?;
        let validator = jsonschema::validator_for(&Value::Object(input_schema.clone()))
            .map_err(|e| invalid(e.to_string()))?;
        let title = def.title.clone().or_else(|| Some(display_title(&def.name)));
        let tool = Tool {
            name: def.name,
            title,
            description: Some(def.description),
            input_schema,
            output_schema,
            annotations: def.annotations,
            icons: def.icons,
            meta: def.meta,
            execution: (def.task_support != crate::task::TaskSupport::Forbidden).then_some(
                crate::task::ToolExecution {
                    task_support: Some(def.task_support),
                },
            ),
        };
        let handler = Arc::new(handler);
        // Decided once here, not per call: whether the value is sent as `{"result": value}`.
        let wrap = is_wrapped_schema(tool.output_schema.as_ref());
        let call: Box<ErasedCall> = Box::new(move |ctx, args| {
            let handler = Arc::clone(&handler);
            Box::pin(async move {
                let args: H::Args = serde_json::from_value(args)
                    .map_err(|e| CallFailure::InvalidArguments(e.to_string()))?;
                let out = handler.call(ctx, args).await.map_err(CallFailure::Tool)?;
                let output = out.into_output().map_err(CallFailure::Tool)?;
                Ok(output.wrapped_if(wrap))
            })
        });
        Ok(Self {
            tool,
            validated_schema: None,
            validator,
            call,
            task_support: def.task_support,
            defer_task: def.defer_task,
            restartable: def.restartable,
        })
    }

    /// Lists the input schema in `profile`'s form; validation keeps the full schema.
    pub(crate) fn apply_profile(&mut self, profile: SchemaProfile) {
        match profile {
            SchemaProfile::Standard => {}
            SchemaProfile::OpenAiStrict => {
                let strict = openai_strict(&self.tool.input_schema);
                let full = std::mem::replace(&mut self.tool.input_schema, strict);
                self.validated_schema = Some(full);
            }
        }
    }

    /// Prepares arguments for validation: under a strict profile, `null` stands for an
    /// absent optional property and is removed.
    pub(crate) fn normalize_arguments(&self, arguments: &mut Value) {
        if let Some(full) = &self.validated_schema {
            drop_null_optionals(full, arguments);
        }
    }

    /// Checks arguments against the input schema; the error lists the problems.
    pub(crate) fn validate(&self, args: &Value) -> Result<(), String> {
        // Valid arguments are the common case, and `is_valid` stops at the first problem
        // without building error values; the problems are listed only when there are some.
        if self.validator.is_valid(args) {
            return Ok(());
        }
        let problems: Vec<String> = self
            .validator
            .iter_errors(args)
            .take(MAX_REPORTED_PROBLEMS)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{}: {e}", path.trim_start_matches('/'))
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Starts the handler (the future is the erased handler's own box, not boxed again).
    pub(crate) fn invoke(&self, ctx: ToolContext, args: Value) -> CatchPanic {
        CatchPanic {
            inner: (self.call)(ctx, args),
        }
    }
}

/// `roll_dice` → `Roll Dice`, as FastMCP titles tools.
fn display_title(name: &str) -> String {
    name.split(['_', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Args {
        n: u8,
    }

    #[test]
    fn non_object_outputs_are_wrapped_like_fastmcp() {
        let schema = <Vec<u8> as IntoToolOutput>::output_schema()
            .unwrap()
            .unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["result"]));
        assert_eq!(schema["properties"]["result"]["type"], "array");
        assert_eq!(schema["x-fastmcp-wrap-result"], json!(true));
        let result = vec![1u8, 5, 5].into_call_result().unwrap();
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            json!({"content":[{"type":"text","text":"[1,5,5]"}],"structuredContent":{"result":[1,5,5]},"isError":false})
        );
    }

    #[test]
    fn string_output_text_is_not_quoted() {
        let r = "hello".to_string().into_call_result().unwrap();
        assert_eq!(r.content[0].as_text(), Some("hello"));
        assert_eq!(r.structured_content, Some(json!({"result":"hello"})));
    }

    #[test]
    fn titles_like_fastmcp() {
        assert_eq!(display_title("roll_dice"), "Roll Dice");
        assert_eq!(display_title("add"), "Add");
    }

    #[test]
    fn input_schema_has_no_title_and_keeps_bounds() {
        let s = schema_object::<Args>().unwrap();
        assert!(s.get("title").is_none());
        assert_eq!(s["properties"]["n"]["maximum"], json!(255));
    }
}
