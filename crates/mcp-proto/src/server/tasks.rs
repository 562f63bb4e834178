//! The server's side of the tasks extension: which calls become tasks, the inline part of a
//! task call, and `tasks/get`, `tasks/update`, `tasks/cancel`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use serde_json::{Value, json};

use super::{Call, Era, McpServer, call_result};
use crate::cancel::CancellationSignal;
use crate::jsonrpc::{ErrorObject, code};
use crate::service::{AuthSubject, SessionStream};
use crate::task::{
    self, TaskError, TaskEvent, TaskHost, TaskRecord, TaskRestart, TaskSupport, new_task_id, now_ms,
};
use crate::task_run::{TaskInput, TaskLink, run_task};
use crate::tool::{CallFailure, HandlerFuture, RegisteredTool, ToolOutput};

/// How the inline part of a task call ended.
enum Inline {
    Done(Result<ToolOutput, CallFailure>),
    NeedsInput,
    Start,
    Cancelled,
}

/// The `-32021` a client gets for a tasks method or a task-required tool without the
/// extension.
pub(super) fn extension_required(what: &str) -> ErrorObject {
    ErrorObject::new(
        code::MISSING_REQUIRED_CLIENT_CAPABILITY,
        format!(
            "Missing required client capability: {what} needs the {} extension",
            task::EXTENSION
        ),
    )
    .with_data(json!({"requiredCapabilities": {"extensions": {task::EXTENSION: {}}}}))
}

impl McpServer {
    /// Whether this server offers tasks on this transport (a transport that runs tasks puts
    /// a [`TaskHost`] in the request's extensions).
    pub(super) fn offers_tasks(&self, extensions: &http::Extensions) -> bool {
        extensions.get::<TaskHost>().is_some()
            && self
                .inner
                .tools
                .iter()
                .any(|t| t.task_support != TaskSupport::Forbidden)
    }

    /// The host to run this call as a task on, `None` for a plain call, or the error for a
    /// task-required tool the client cannot run as one.
    pub(super) fn task_host(
        &self,
        call: &Call<'_>,
        tool: &RegisteredTool,
        raw: &Value,
    ) -> Result<Option<TaskHost>, ErrorObject> {
        let Era::Stateless(meta) = &call.era else {
            return self.experimental_task_host(call, tool, raw);
        };
        if tool.task_support == TaskSupport::Forbidden {
            return Ok(None);
        }
        let negotiated = meta.client_capabilities.has_extension(task::EXTENSION);
        let host = call.extensions.get::<TaskHost>();
        match (tool.task_support, negotiated, host) {
            (_, true, Some(host)) => Ok(Some(host.clone())),
            (TaskSupport::Required, false, _) => {
                Err(extension_required(&format!("tool '{}'", tool.tool.name)))
            }
            (TaskSupport::Required, true, None) => Err(ErrorObject::internal(format!(
                "tool '{}' runs only as a task, and this transport runs no tasks",
                tool.tool.name
            ))),
            _ => Ok(None),
        }
    }

    /// A task call: runs inline (answering input rounds like a plain call) until the task
    /// starts, at once or when a deferred handler asks, then answers with the task and runs
    /// on in the background.
    pub(super) async fn call_as_task(
        &self,
        call: &Call<'_>,
        raw: &Value,
        binding: String,
        (tool, args): (&RegisteredTool, Value),
        host: TaskHost,
    ) -> Option<Result<Value, ErrorObject>> {
        let rounds = match self.stateless_rounds(raw, &binding) {
            Ok(r) => Arc::new(Mutex::new(r)),
            Err(e) => return Some(Err(e)),
        };
        let needs_input = CancellationSignal::new();
        // The handler's own signal: the request's until the task starts, the task's after.
        let task_signal = CancellationSignal::new();
        let link = Arc::new(TaskLink::default());
        let mut ctx = self.tool_context(
            call,
            Some((Arc::clone(&rounds), needs_input.clone())),
            task_signal.clone(),
        );
        ctx.task = Some(Arc::clone(&link));
        let restart = tool.restartable.then(|| TaskRestart {
            tool: tool.tool.name.clone(),
            arguments: args.clone(),
            protocol_version: call.version,
            client_capabilities: (*ctx.client_capabilities).clone(),
            restarts_left: host.limits.max_restarts,
        });
        let mut handler: HandlerFuture = Box::pin(tool.invoke(ctx, args));
        let stateful = matches!(call.era, Era::Stateful);
        // A 2025-11-25 task has no input rounds before it starts: it starts at once.
        if !tool.defer_task || stateful {
            link.request_start();
        }
        let request = call.ctx.session.begin_request(call.id.clone());
        let inline = run_inline(&mut handler, &request, &needs_input, &link).await;
        call.ctx.session.end_request(&call.id);
        match inline {
            Inline::Done(done) => {
                let result = call_result(call.version, &tool.tool.name, done);
                Some(result.map(super::ResultBody::into_value))
            }
            Inline::Cancelled => {
                task_signal.cancel();
                None
            }
            Inline::NeedsInput => {
                let r = std::mem::take(&mut *rounds.lock().unwrap_or_else(|p| p.into_inner()));
                if let Some(failure) = r.failure {
                    return Some(Err(failure));
                }
                Some(Ok(self.input_required(r.needed, r.responses, binding)))
            }
            Inline::Start => {
                let start = TaskStart {
                    host,
                    link,
                    subject: AuthSubject::of(&call.extensions).map(|s| s.to_string()),
                    signal: task_signal,
                    restart,
                    experimental: stateful.then(|| Experimental::of(call, raw)),
                };
                Some(start.run(handler, call, &tool.tool.name).await)
            }
        }
    }

    /// `tasks/get`, `tasks/update` and `tasks/cancel` (2026-07-28, with the extension).
    pub(super) async fn task_request(
        &self,
        call: &Call<'_>,
        method: &str,
        raw: Value,
    ) -> Result<Value, ErrorObject> {
        let Some(host) = call.extensions.get::<TaskHost>() else {
            return Err(ErrorObject::method_not_found(method));
        };
        let negotiated = match &call.era {
            Era::Stateless(meta) => meta.client_capabilities.has_extension(task::EXTENSION),
            Era::Stateful => false,
        };
        if !negotiated {
            return Err(extension_required(method));
        }
        let id = raw
            .get("taskId")
            .and_then(Value::as_str)
            .ok_or_else(|| ErrorObject::invalid_params("taskId must be a string"))?;
        let subject = AuthSubject::of(&call.extensions);
        let store = &host.store;
        let record = store
            .get(id, subject.as_deref())
            .await
            .map_err(|e| e.to_error_object())?
            .ok_or_else(|| TaskError::NotFound(id.to_owned()).to_error_object())?;
        let event = match method {
            task::TASKS_GET => return Ok(record.detailed()),
            task::TASKS_UPDATE => match raw.get("inputResponses") {
                Some(Value::Object(answers)) => TaskEvent::Answer(answers.clone()),
                _ => {
                    return Err(ErrorObject::invalid_params(
                        "inputResponses must be an object",
                    ));
                }
            },
            _ => TaskEvent::Cancel,
        };
        let cancel = event == TaskEvent::Cancel;
        store
            .update(id, &|r: &mut TaskRecord| r.apply(event.clone(), now_ms()))
            .await
            .map_err(|e| e.to_error_object())?;
        if cancel
            && let Some(signal) = host
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
        {
            signal.cancel();
        }
        // An acknowledgement: the task's new state is read with tasks/get.
        Ok(json!({}))
    }
}

/// What starting a task needs.
struct TaskStart {
    host: TaskHost,
    link: Arc<TaskLink>,
    subject: Option<String>,
    signal: CancellationSignal,
    restart: Option<TaskRestart>,
    /// A 2025-11-25 task (of a session): its wire and its session.
    experimental: Option<Experimental>,
}

/// What a 2025-11-25 task call adds: the TTL it asked for, its session, and the session's
/// stream for its status notifications.
struct Experimental {
    ttl_ms: Option<u64>,
    session_id: Option<String>,
    stream: Option<SessionStream>,
}

impl Experimental {
    fn of(call: &Call<'_>, raw: &Value) -> Self {
        Self {
            ttl_ms: raw.pointer("/task/ttl").and_then(Value::as_u64),
            session_id: call.ctx.session.id().map(str::to_owned),
            stream: call.extensions.get::<SessionStream>().cloned(),
        }
    }
}

impl TaskStart {
    /// Records the task (so that `tasks/get` finds it as soon as the client has its id),
    /// hands the handler to the runtime and answers with the `CreateTaskResult`.
    async fn run(
        self,
        handler: HandlerFuture,
        call: &Call<'_>,
        tool: &str,
    ) -> Result<Value, ErrorObject> {
        let host = self.host;
        let limits = host.limits;
        let mut record = TaskRecord::new(
            new_task_id(),
            self.subject.clone(),
            now_ms(),
            millis(limits.ttl),
            millis(limits.poll_interval).max(1),
        );
        record.owner = host.replica.clone();
        record.run_limit_ms = millis(limits.max_duration);
        record.restart = self.restart;
        if let Some(experimental) = &self.experimental {
            // The client may ask for a shorter TTL, not a longer one.
            if let Some(ttl) = experimental.ttl_ms {
                record.ttl_ms = record.ttl_ms.min(ttl.max(1));
            }
            record.session_id.clone_from(&experimental.session_id);
        }
        if let Err(e) = host
            .store
            .create(record.clone(), limits.max_tasks_per_subject)
            .await
        {
            self.signal.cancel();
            return Err(e.to_error_object());
        }
        let id = record.task_id.clone();
        self.link
            .started(TaskInput::new(host.clone(), id.clone(), self.subject));
        host.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), self.signal.clone());
        tracing::debug!(task = %id, tool, "task started");
        host.runtime.spawn(Box::pin(run_task(
            host.clone(),
            record.clone(),
            handler,
            self.signal,
            call.version,
            tool.to_owned(),
        )));
        let Some(experimental) = self.experimental else {
            return Ok(record.create_result());
        };
        if let Some(stream) = experimental.stream {
            // Status changes go to the session's stream (not the state it starts in: the
            // answer carries that).
            super::task_follow::notify_session(&host, &record, stream);
        }
        Ok(json!({ "task": record.experimental() }))
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Polls a task call's handler until it finishes, needs input, asks to become a task, or
/// the request is cancelled.
async fn run_inline(
    handler: &mut HandlerFuture,
    request: &CancellationSignal,
    needs_input: &CancellationSignal,
    link: &TaskLink,
) -> Inline {
    let start = link.start_requested();
    let mut cancelled = std::pin::pin!(request.cancelled());
    let mut asked = std::pin::pin!(needs_input.cancelled());
    let mut starting = std::pin::pin!(start.cancelled());
    std::future::poll_fn(move |cx| {
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Inline::Cancelled);
        }
        if starting.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Inline::Start);
        }
        if let Poll::Ready(done) = handler.as_mut().poll(cx) {
            return Poll::Ready(Inline::Done(done));
        }
        if starting.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Inline::Start);
        }
        if asked.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Inline::NeedsInput);
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::super::test_runtime::{Kept, Threads};
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::*;
    use crate::client_features::ElicitParams;
    use crate::listen::META_SUBSCRIPTION_ID;
    use crate::service::{BoxFuture, MessageContext, Outbound, Session};
    use crate::task::{MemoryTaskStore, TaskLimits, TaskStore};
    use crate::tool::{NoArgs, ToolContext, ToolDef, ToolError};
    use crate::{McpService, Message, ProtocolVersion};

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Again {
        n: u32,
    }

    async fn ask_name(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
        let answers = ctx
            .ask_all(vec![
                (
                    "first".into(),
                    crate::InputRequest::Elicitation(ElicitParams::form(
                        "First?",
                        serde_json::Map::new(),
                    )),
                ),
                (
                    "last".into(),
                    crate::InputRequest::Elicitation(ElicitParams::form(
                        "Last?",
                        serde_json::Map::new(),
                    )),
                ),
            ])
            .await;
        let name = |i: usize| -> Result<String, ToolError> {
            let v = answers[i]
                .as_ref()
                .map_err(|e| ToolError::new(e.to_string()))?;
            Ok(v["content"]["name"].as_str().unwrap_or("?").to_owned())
        };
        Ok(format!("{} {}", name(0)?, name(1)?))
    }

    async fn deferred(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
        let who = ctx
            .elicit_as(
                "user_name",
                ElicitParams::form("Name?", serde_json::Map::new()),
            )
            .await?;
        ctx.start_task().await;
        assert!(ctx.task_id().is_some());
        let content = who.content.unwrap_or_default();
        Ok(format!(
            "Hello, {}",
            content.get("name").and_then(Value::as_str).unwrap_or("?")
        ))
    }

    fn server() -> McpServer {
        let optional = |name: &str| ToolDef::new(name, "t").task_support(TaskSupport::Optional);
        McpServer::builder("t")
            .tool_with(optional("quick"), |_: NoArgs| async {
                Ok::<_, ToolError>("done")
            })
            .tool_with(optional("again").restartable(), |a: Again| async move {
                Ok::<_, ToolError>(format!("ran again with {}", a.n))
            })
            .tool_with(
                optional("again_ask").restartable(),
                |ctx: ToolContext, _: Again| async move {
                    let form = ElicitParams::form("Colour?", serde_json::Map::new());
                    ctx.elicit_as("colour", form).await?;
                    Ok::<_, ToolError>("answered")
                },
            )
            .tool_with(optional("forever"), |_: NoArgs| async {
                std::future::pending::<()>().await;
                Ok::<_, ToolError>("never")
            })
            .tool_with(optional("fails"), |_: NoArgs| async {
                Err::<String, _>(ToolError::new("no luck"))
            })
            .tool_with(optional("panics"), |_: NoArgs| async {
                if std::hint::black_box(true) {
                    panic!("bug");
                }
                Ok::<_, ToolError>("x")
            })
            .tool_with(optional("big"), |_: NoArgs| async {
                Ok::<_, ToolError>("x".repeat(2000))
            })
            .tool_with(optional("ask_name"), ask_name)
            .tool_with(
                ToolDef::new("deferred", "t")
                    .task_support(TaskSupport::Required)
                    .defer_task(),
                deferred,
            )
            .tool("plain", "t", |_: NoArgs| async {
                Ok::<_, ToolError>("plain")
            })
            .build()
            .unwrap()
    }

    fn host(limits: TaskLimits) -> TaskHost {
        TaskHost::new(Arc::new(MemoryTaskStore::new()), Arc::new(Threads), limits)
    }

    struct Client {
        server: McpServer,
        host: TaskHost,
        subject: &'static str,
    }

    impl Client {
        fn new(limits: TaskLimits) -> Self {
            Self {
                server: server(),
                host: host(limits),
                subject: "alice",
            }
        }

        /// One stateless request; `tasks` declares the extension. Returns the whole response.
        fn send(&self, method: &str, mut params: Value, tasks: bool) -> Value {
            let caps = if tasks {
                json!({"elicitation": {}, "extensions": {task::EXTENSION: {}}})
            } else {
                json!({"elicitation": {}})
            };
            params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": caps});
            let mut ext = http::Extensions::new();
            ext.insert(self.host.clone());
            ext.insert(AuthSubject::new(self.subject));
            let session = Arc::new(Session::stateless(ProtocolVersion::V2026_07_28));
            let ctx = MessageContext::new(session).with_extensions(ext);
            let reply = futures::executor::block_on(
                self.server
                    .handle(Message::request(1, method, Some(params)), ctx),
            );
            serde_json::to_value(reply.unwrap()).unwrap()
        }

        fn start(&self, tool: &str) -> String {
            let r = self.send("tools/call", json!({"name": tool}), true);
            assert_eq!(r["result"]["resultType"], "task", "{r}");
            r["result"]["taskId"].as_str().unwrap().to_owned()
        }

        fn get(&self, id: &str) -> Value {
            self.send("tasks/get", json!({"taskId": id}), true)["result"].clone()
        }

        /// Polls until the task reaches `status` (or ends), for at most 5 s.
        fn wait_for(&self, id: &str, status: &str) -> Value {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let t = self.get(id);
                let ended =
                    ["completed", "failed", "cancelled"].contains(&t["status"].as_str().unwrap());
                if t["status"] == status || ended || Instant::now() > deadline {
                    return t;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    #[test]
    fn a_task_call_answers_at_once_and_its_result_is_inlined() {
        let c = Client::new(TaskLimits::default());
        let r = c.send("tools/call", json!({"name": "quick"}), true)["result"].clone();
        for key in [
            "taskId",
            "status",
            "createdAt",
            "lastUpdatedAt",
            "ttlMs",
            "pollIntervalMs",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        assert_eq!(r["ttlMs"], 900_000);
        assert_eq!(r["pollIntervalMs"], 500);
        assert!(r.get("task").is_none() && r.get("result").is_none());
        let id = r["taskId"].as_str().unwrap();
        let t = c.wait_for(id, "completed");
        assert_eq!(t["status"], "completed");
        assert_eq!(t["resultType"], "complete");
        assert_eq!(t["result"]["content"][0]["text"], "done");
        assert!(t["result"].get("_meta").is_none());
        assert_eq!(c.host.running(), 0);
    }

    #[test]
    fn without_the_extension_optional_runs_plain_and_required_is_refused() {
        let c = Client::new(TaskLimits::default());
        let plain = c.send("tools/call", json!({"name": "quick"}), false);
        assert_eq!(plain["result"]["resultType"], "complete");
        assert_eq!(plain["result"]["content"][0]["text"], "done");
        let refused = c.send("tools/call", json!({"name": "deferred"}), false);
        assert_eq!(refused["error"]["code"], -32021);
        assert_eq!(
            refused["error"]["data"],
            json!({"requiredCapabilities": {"extensions": {task::EXTENSION: {}}}})
        );
        // A tool that forbids tasks stays plain even with the extension and a v1 hint.
        let forbidden = c.send(
            "tools/call",
            json!({"name": "plain", "task": {"ttl": 1}}),
            true,
        );
        assert_eq!(forbidden["result"]["content"][0]["text"], "plain");
        assert!(forbidden["result"].get("taskId").is_none());
        for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
            let r = c.send(method, json!({"taskId": "x", "inputResponses": {}}), false);
            assert_eq!(r["error"]["code"], -32021, "{method}");
        }
    }

    #[test]
    fn unknown_tasks_other_subjects_and_removed_methods() {
        let c = Client::new(TaskLimits::default());
        let r = c.send("tasks/get", json!({"taskId": "nope"}), true);
        assert_eq!(
            r["error"],
            json!({"code": -32602, "message": "Invalid params: unknown task: nope"})
        );
        let bad = c.send("tasks/get", json!({"taskId": 7}), true);
        assert_eq!(
            bad["error"]["message"],
            "Invalid params: taskId must be a string"
        );
        let id = c.start("forever");
        let mut bob = Client::new(TaskLimits::default());
        bob.host = c.host.clone();
        bob.subject = "bob";
        assert_eq!(
            bob.send("tasks/get", json!({"taskId": id}), true)["error"]["code"],
            -32602
        );
        assert_eq!(
            bob.send("tasks/cancel", json!({"taskId": id}), true)["error"]["code"],
            -32602
        );
        for method in ["tasks/result", "tasks/list"] {
            assert_eq!(
                c.send(method, json!({"taskId": id}), true)["error"]["code"],
                -32601
            );
        }
        c.send("tasks/cancel", json!({"taskId": id}), true);
    }

    #[test]
    fn cancel_acks_empty_settles_cancelled_and_is_idempotent() {
        let c = Client::new(TaskLimits::default());
        let id = c.start("forever");
        assert_eq!(c.get(&id)["status"], "working");
        let ack = c.send("tasks/cancel", json!({"taskId": id}), true)["result"].clone();
        assert_eq!(ack["resultType"], "complete");
        assert!(ack.get("taskId").is_none() && ack.get("status").is_none());
        assert_eq!(c.get(&id)["status"], "cancelled");
        let again = c.send("tasks/cancel", json!({"taskId": id}), true);
        assert_eq!(again["result"]["resultType"], "complete");
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.host.running() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(c.host.running(), 0, "the handler stopped");
        assert_eq!(c.get(&id)["status"], "cancelled");
    }

    #[test]
    fn tool_errors_complete_with_is_error_and_panics_fail() {
        let c = Client::new(TaskLimits::default());
        let t = c.wait_for(&c.start("fails"), "completed");
        assert_eq!(t["status"], "completed");
        assert_eq!(t["result"]["isError"], true);
        assert_eq!(t["result"]["content"][0]["text"], "no luck");
        let t = c.wait_for(&c.start("panics"), "failed");
        assert_eq!(t["status"], "failed");
        assert_eq!(
            t["error"],
            json!({"code": -32603, "message": "Internal error: tool 'panics' failed unexpectedly"})
        );
        assert!(t.get("result").is_none());
    }

    #[test]
    fn limits_fail_big_results_refuse_extra_tasks_and_end_long_runs() {
        let limits = TaskLimits {
            max_result_bytes: 1000,
            max_tasks_per_subject: 2,
            max_duration: Duration::from_millis(100),
            ..TaskLimits::default()
        };
        let c = Client::new(limits);
        let t = c.wait_for(&c.start("big"), "failed");
        assert_eq!(t["status"], "failed");
        assert_eq!(t["error"]["code"], -32603);
        assert_eq!(
            t["error"]["message"],
            "the task's result is 4089 bytes, over the limit of 1000"
        );
        let a = c.start("forever");
        c.start("forever");
        let third = c.send("tools/call", json!({"name": "forever"}), true);
        assert_eq!(
            third["error"],
            json!({"code": -32603,
                "message": "too many unfinished tasks for this subject (at most 2)"})
        );
        let t = c.wait_for(&a, "failed");
        assert_eq!(
            t["error"],
            json!({"code": -32001, "message": "the task ran longer than its limit of 0 s"})
        );
    }
    impl Client {
        /// Opens a `subscriptions/listen` stream (`sub-1`) on a thread of its own; returns
        /// its session (to end it), what it was sent, and the thread.
        fn listen(
            &self,
            notifications: Value,
            tasks: bool,
        ) -> (
            Arc<Session>,
            Arc<Kept>,
            std::thread::JoinHandle<Option<Message>>,
        ) {
            let caps = if tasks {
                json!({"extensions": {task::EXTENSION: {}}})
            } else {
                json!({})
            };
            let params = json!({"notifications": notifications,
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": caps}});
            let mut ext = http::Extensions::new();
            ext.insert(self.host.clone());
            ext.insert(AuthSubject::new(self.subject));
            let session = Arc::new(Session::stateless(ProtocolVersion::V2026_07_28));
            let kept = Arc::new(Kept::default());
            let ctx = MessageContext::new(Arc::clone(&session))
                .with_outbound(Arc::clone(&kept) as Arc<dyn Outbound>)
                .with_extensions(ext);
            let request = Message::request("sub-1", "subscriptions/listen", Some(params));
            let server = self.server.clone();
            let thread = std::thread::spawn(move || {
                futures::executor::block_on(server.handle(request, ctx))
            });
            (session, kept, thread)
        }
    }

    #[test]
    fn a_listen_stream_gets_each_followed_task_now_and_at_each_change_until_it_ends() {
        let c = Client::new(TaskLimits::default());
        let asking = c.start("ask_name");
        let running = c.start("forever");
        c.wait_for(&asking, "input_required");
        let (session, kept, thread) = c.listen(
            json!({"toolsListChanged": true, "taskIds": [running, asking, "task-unknown", asking]}),
            true,
        );
        let ack = kept.wait(|m| m["method"] == "notifications/subscriptions/acknowledged");
        let mut expected = vec![asking.clone(), running.clone()];
        expected.sort();
        assert_eq!(
            ack["params"]["notifications"],
            json!({"toolsListChanged": true, "taskIds": expected})
        );
        let state = |id: &str, status: &str| {
            let (id, status) = (id.to_owned(), status.to_owned());
            kept.wait(move |m| {
                m["method"] == "notifications/tasks"
                    && m["params"]["taskId"] == id.as_str()
                    && m["params"]["status"] == status.as_str()
            })
        };
        // The state at subscription time, as tasks/get gives it, tagged with the stream.
        let now = state(&asking, "input_required");
        assert_eq!(
            now["params"]["_meta"],
            json!({META_SUBSCRIPTION_ID: "sub-1"})
        );
        assert_eq!(
            now["params"]["inputRequests"]["first"]["method"],
            "elicitation/create"
        );
        let mut get = c.get(&asking);
        for envelope in ["resultType", "_meta"] {
            get.as_object_mut().unwrap().remove(envelope);
        }
        let mut pushed = now["params"].clone();
        pushed.as_object_mut().unwrap().remove("_meta");
        assert_eq!(pushed, get);
        state(&running, "working");
        // Each change follows.
        let answer = |name: &str| json!({"action": "accept", "content": {"name": name}});
        c.send(
            "tasks/update",
            json!({"taskId": asking, "inputResponses": {"first": answer("Ada"), "last": answer("L")}}),
            true,
        );
        let done = state(&asking, "completed");
        assert_eq!(done["params"]["result"]["content"][0]["text"], "Ada L");
        c.send("tasks/cancel", json!({"taskId": running}), true);
        state(&running, "cancelled");
        let sent = kept.0.lock().unwrap().len();
        // Ended tasks send no more; the stream stays open until the client leaves.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(kept.0.lock().unwrap().len(), sent);
        assert!(!thread.is_finished());
        session.cancel_request(&crate::RequestId::from("sub-1"));
        assert!(thread.join().unwrap().is_none());
    }

    #[test]
    fn following_tasks_needs_the_extension_and_a_bounded_list() {
        let c = Client::new(TaskLimits::default());
        let id = c.start("forever");
        let (_, kept, thread) = c.listen(json!({"taskIds": [id]}), false);
        let reply = serde_json::to_value(thread.join().unwrap().unwrap()).unwrap();
        assert_eq!(reply["error"]["code"], -32021);
        assert_eq!(
            reply["error"]["data"],
            json!({"requiredCapabilities": {"extensions": {task::EXTENSION: {}}}})
        );
        assert!(kept.0.lock().unwrap().is_empty());
        let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
        let (_, _, thread) = c.listen(json!({"taskIds": many}), true);
        let reply = serde_json::to_value(thread.join().unwrap().unwrap()).unwrap();
        assert_eq!(
            reply["error"],
            json!({"code": -32602, "message":
                "Invalid params: notifications.taskIds lists 65 tasks; a stream follows at most 64"})
        );
    }

    /// Tasks in memory, shared by "replicas" of one test; tasks owned by `dead` are orphans.
    #[derive(Debug, Default)]
    struct SharedTasks(MemoryTaskStore);

    impl task::TaskStore for SharedTasks {
        fn create(&self, r: TaskRecord, max: usize) -> BoxFuture<'_, Result<(), TaskError>> {
            self.0.create(r, max)
        }

        fn get<'a>(
            &'a self,
            id: &'a str,
            subject: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Option<TaskRecord>, TaskError>> {
            self.0.get(id, subject)
        }

        fn update<'a>(
            &'a self,
            id: &'a str,
            change: task::TaskChange<'a>,
        ) -> BoxFuture<'a, Result<TaskRecord, TaskError>> {
            self.0.update(id, change)
        }

        fn watch(&self, id: &str) -> BoxFuture<'static, ()> {
            self.0.watch(id)
        }

        fn orphans(&self, _max: usize) -> BoxFuture<'_, Result<Vec<TaskRecord>, TaskError>> {
            let ids = ["again-1", "quick-1", "ask-1"];
            Box::pin(async move {
                let mut out = Vec::new();
                for id in ids {
                    if let Some(r) = self.0.get(id, Some("alice")).await?
                        && r.owner.as_deref() == Some("dead")
                        && r.restarts_on_replica_loss()
                    {
                        out.push(r);
                    }
                }
                Ok(out)
            })
        }
    }

    fn orphan(id: &str, tool: &str) -> TaskRecord {
        let mut r = TaskRecord::new(id, Some("alice".into()), now_ms(), 60_000, 100);
        r.owner = Some("dead".into());
        r.run_limit_ms = 60_000;
        r.restart = Some(TaskRestart {
            tool: tool.into(),
            arguments: json!({"n": 7}),
            protocol_version: ProtocolVersion::V2026_07_28,
            client_capabilities: crate::types::ClientCapabilities {
                elicitation: Some(serde_json::Map::new()),
                ..Default::default()
            },
            restarts_left: 1,
        });
        r
    }

    #[test]
    fn an_orphaned_restartable_task_is_taken_over_by_exactly_one_replica_and_runs_again() {
        let store = Arc::new(SharedTasks::default());
        let replica = |name: &str| {
            TaskHost::new(store.clone(), Arc::new(Threads), TaskLimits::default())
                .with_replica(name)
        };
        let (b, c) = (replica("b"), replica("c"));
        futures::executor::block_on(store.create(orphan("again-1", "again"), 8)).unwrap();
        futures::executor::block_on(store.create(orphan("quick-1", "quick"), 8)).unwrap();
        futures::executor::block_on(store.create(orphan("ask-1", "again_ask"), 8)).unwrap();
        let server = server();
        // Both survivors look at once: one takes the task over, the other is refused.
        let (sb, sc) = (server.clone(), server.clone());
        let (hb, hc) = (b.clone(), c.clone());
        let tb =
            std::thread::spawn(move || futures::executor::block_on(sb.resume_orphaned_tasks(&hb)));
        let tc =
            std::thread::spawn(move || futures::executor::block_on(sc.resume_orphaned_tasks(&hc)));
        let restarted = tb.join().unwrap() + tc.join().unwrap();
        assert_eq!(restarted, 2);
        let c = Client {
            server,
            host: b,
            subject: "alice",
        };
        let t = c.wait_for("again-1", "completed");
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(t["result"]["content"][0]["text"], "ran again with 7");
        let owner = futures::executor::block_on(store.get("again-1", Some("alice")))
            .unwrap()
            .unwrap()
            .owner;
        assert!(matches!(owner.as_deref(), Some("b" | "c")), "{owner:?}");
        assert_eq!(
            futures::executor::block_on(store.get("again-1", Some("alice")))
                .unwrap()
                .unwrap()
                .restart
                .unwrap()
                .restarts_left,
            0
        );
        // A tool that may not be restarted here fails instead, naming why.
        let t = c.get("quick-1");
        assert_eq!(t["status"], "failed");
        let message = t["error"]["message"].as_str().unwrap();
        let prefix = "Internal error: the replica running this task (dead) stopped, and tool 'quick' cannot be restarted on ";
        assert!(
            [format!("{prefix}b"), format!("{prefix}c")].contains(&message.to_owned()),
            "{message}"
        );
        // A restarted run asks under keys no earlier run used.
        let t = c.wait_for("ask-1", "input_required");
        assert_eq!(
            t["inputRequests"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["restart1-colour"]
        );
        // Nothing is left to take over.
        assert_eq!(
            futures::executor::block_on(c.server.resume_orphaned_tasks(&replica("d"))),
            0
        );
    }

    #[test]
    fn input_rounds_park_the_task_and_partial_answers_keep_it_waiting() {
        let c = Client::new(TaskLimits::default());
        let id = c.start("ask_name");
        let deadline = Instant::now() + Duration::from_secs(5);
        let t = loop {
            let t = c.get(&id);
            if t["inputRequests"].as_object().is_some_and(|m| m.len() == 2)
                || Instant::now() > deadline
            {
                break t;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(t["status"], "input_required");
        assert_eq!(t["inputRequests"]["first"]["method"], "elicitation/create");
        let answer = |name: &str| json!({"action": "accept", "content": {"name": name}});
        let ack = c.send(
            "tasks/update",
            json!({"taskId": id, "inputResponses": {"first": answer("Ada"), "other": {}}}),
            true,
        )["result"]
            .clone();
        assert_eq!(ack["resultType"], "complete");
        assert!(ack.get("status").is_none());
        let t = c.get(&id);
        assert_eq!(t["status"], "input_required");
        assert_eq!(t["inputRequests"].as_object().unwrap().len(), 1);
        assert!(t["inputRequests"].get("last").is_some());
        c.send(
            "tasks/update",
            json!({"taskId": id, "inputResponses": {"last": answer("Lovelace")}}),
            true,
        );
        let t = c.wait_for(&id, "completed");
        assert_eq!(t["result"]["content"][0]["text"], "Ada Lovelace");
        let late = c.send(
            "tasks/update",
            json!({"taskId": id, "inputResponses": {}}),
            true,
        );
        assert_eq!(late["error"]["code"], -32602);
        let bad = c.send(
            "tasks/update",
            json!({"taskId": id, "inputResponses": 3}),
            true,
        );
        assert_eq!(
            bad["error"]["message"],
            "Invalid params: inputResponses must be an object"
        );
    }

    #[test]
    fn a_deferred_task_gathers_input_inline_then_becomes_a_task() {
        let c = Client::new(TaskLimits::default());
        let first = c.send("tools/call", json!({"name": "deferred"}), true)["result"].clone();
        assert_eq!(first["resultType"], "input_required");
        assert!(first.get("taskId").is_none());
        assert!(first["inputRequests"].get("user_name").is_some());
        let second = c.send(
            "tools/call",
            json!({"name": "deferred", "requestState": first["requestState"],
                "inputResponses": {"user_name": {"action": "accept", "content": {"name": "Alice"}}}}),
            true,
        )["result"]
            .clone();
        assert_eq!(second["resultType"], "task", "{second}");
        assert!(second.get("requestState").is_none() && second.get("inputRequests").is_none());
        let t = c.wait_for(second["taskId"].as_str().unwrap(), "completed");
        assert_eq!(t["result"]["content"][0]["text"], "Hello, Alice");
    }

    #[test]
    fn discover_advertises_the_extension_only_with_a_host() {
        let c = Client::new(TaskLimits::default());
        let d = c.send("server/discover", json!({}), false);
        assert_eq!(
            d["result"]["capabilities"]["extensions"],
            json!({task::EXTENSION: {}})
        );
        assert!(d["result"]["capabilities"].get("tasks").is_none());
        let session = Arc::new(Session::stateless(ProtocolVersion::V2026_07_28));
        let params = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}});
        let reply = futures::executor::block_on(c.server.handle(
            Message::request(1, "server/discover", Some(params)),
            MessageContext::new(session),
        ));
        let v = serde_json::to_value(reply.unwrap()).unwrap();
        assert!(v["result"]["capabilities"].get("extensions").is_none());
        let listed = c.send("tools/list", json!({}), true)["result"]["tools"].clone();
        let support = |name: &str| {
            listed
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
                .unwrap()["execution"]
                .clone()
        };
        assert_eq!(support("quick"), json!({"taskSupport": "optional"}));
        assert_eq!(support("deferred"), json!({"taskSupport": "required"}));
        assert_eq!(support("plain"), Value::Null);
    }
}
