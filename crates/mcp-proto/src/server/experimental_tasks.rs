//! The experimental tasks of 2025-11-25, on sessions opened with `initialize`: a `tools/call`
//! with a `task` param answers `{task}` at once and runs on; `tasks/get`, `tasks/result`
//! (blocks until the task ended, relaying its questions as server-to-client requests on its
//! own stream), `tasks/list` (the session's tasks) and `tasks/cancel`; status changes go to
//! the session's stream as `notifications/tasks/status`. The records, limits and runs are the
//! same as the 2026-07-28 extension's (see [`crate::task`]); only the wire differs.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::{Call, Era, McpServer};
use crate::jsonrpc::{ErrorObject, Message, code};
use crate::service::AuthSubject;
use crate::task::{
    self, TaskError, TaskEvent, TaskHost, TaskRecord, TaskStatus, TaskSupport, now_ms,
};
use crate::tool::RegisteredTool;
use crate::version::ProtocolVersion;

/// Tasks one `tasks/list` page holds.
const LIST_PAGE: usize = 50;
/// Most tasks of one session `tasks/list` looks at.
const LIST_MAX: usize = 1000;

/// The `tasks` capability a 2025-11-25 server declares: list, cancel, task-augmented
/// `tools/call`.
pub(super) fn capability() -> Map<String, Value> {
    let Value::Object(m) = json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}})
    else {
        return Map::new();
    };
    m
}

/// Whether a request runs in a 2025-11-25 session of a transport that runs tasks.
fn experimental_host<'c>(call: &'c Call<'_>) -> Option<&'c TaskHost> {
    let stateful = matches!(call.era, Era::Stateful);
    (stateful && call.version == ProtocolVersion::V2025_11_25)
        .then(|| call.extensions.get::<TaskHost>())
        .flatten()
}

impl McpServer {
    /// A 2025-11-25 `tools/call`: the host when the client asked for a task (`params.task`),
    /// `None` for a plain call, `-32601` for a task the tool forbids or a plain call of a tool
    /// that requires a task.
    pub(super) fn experimental_task_host(
        &self,
        call: &Call<'_>,
        tool: &RegisteredTool,
        raw: &Value,
    ) -> Result<Option<TaskHost>, ErrorObject> {
        let Some(host) = experimental_host(call) else {
            return Ok(None);
        };
        let asked = raw.get("task").is_some_and(|t| !t.is_null());
        let name = &tool.tool.name;
        match (tool.task_support, asked) {
            (TaskSupport::Forbidden, true) => Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("Tool '{name}' does not support task-augmented execution"),
            )),
            (TaskSupport::Required, false) => Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("Tool '{name}' requires task-augmented execution (params.task)"),
            )),
            (_, true) => Ok(Some(host.clone())),
            _ => Ok(None),
        }
    }

    /// `tasks/get`, `tasks/result`, `tasks/list` and `tasks/cancel` of 2025-11-25; `None`
    /// when the request was cancelled.
    pub(super) async fn experimental_task_request(
        &self,
        call: &Call<'_>,
        method: &str,
        raw: Value,
    ) -> Option<Result<Value, ErrorObject>> {
        let Some(host) = experimental_host(call) else {
            return Some(Err(ErrorObject::method_not_found(method)));
        };
        let subject = AuthSubject::of(&call.extensions).map(|s| s.to_string());
        if method == task::TASKS_LIST {
            return Some(self.list_tasks(call, host, subject.as_deref(), &raw).await);
        }
        let id = match raw.get("taskId").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => return Some(Err(ErrorObject::invalid_params("taskId must be a string"))),
        };
        let found = match host.store.get(&id, subject.as_deref()).await {
            Ok(Some(r)) => r,
            Ok(None) => return Some(Err(not_found(&id))),
            Err(e) => return Some(Err(e.to_error_object())),
        };
        match method {
            task::TASKS_GET => Some(Ok(found.experimental())),
            task::TASKS_CANCEL => Some(cancel(host, found).await),
            _ => self.task_result(call, host, &id, subject.as_deref()).await,
        }
    }

    /// `tasks/result`: waits for the task to end, relaying its questions to the client on
    /// this request's stream meanwhile; then exactly what the call would have answered.
    async fn task_result(
        &self,
        call: &Call<'_>,
        host: &TaskHost,
        id: &str,
        subject: Option<&str>,
    ) -> Option<Result<Value, ErrorObject>> {
        let request = call.ctx.session.begin_request(call.id.clone());
        let waited = run_or_cancel(&request, async {
            let mut relayed = HashSet::new();
            loop {
                let changed = host.store.watch(id);
                let record = match host.store.get(id, subject).await {
                    Ok(Some(r)) => r,
                    Ok(None) => return Err(not_found(id)),
                    Err(e) => return Err(e.to_error_object()),
                };
                if record.status.is_terminal() {
                    return final_result(record);
                }
                let open: Vec<_> = record
                    .input_requests
                    .iter()
                    .filter(|(k, _)| !relayed.contains(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if open.is_empty() {
                    changed.await;
                    continue;
                }
                for (key, question) in open {
                    relay(call, host, id, &key, &question).await?;
                    relayed.insert(key);
                }
            }
        })
        .await;
        call.ctx.session.end_request(&call.id);
        waited
    }

    /// `tasks/list`: the tasks of this session (and subject), oldest first, a page at a time.
    async fn list_tasks(
        &self,
        call: &Call<'_>,
        host: &TaskHost,
        subject: Option<&str>,
        raw: &Value,
    ) -> Result<Value, ErrorObject> {
        let start = match raw.get("cursor") {
            None | Some(Value::Null) => 0,
            Some(Value::String(c)) => c
                .parse::<usize>()
                .map_err(|_| ErrorObject::invalid_params(format!("invalid cursor: {c}")))?,
            Some(_) => return Err(ErrorObject::invalid_params("cursor must be a string")),
        };
        let Some(session) = call.ctx.session.id() else {
            return Ok(json!({"tasks": []}));
        };
        let mut tasks = host
            .store
            .list(subject, session, LIST_MAX)
            .await
            .map_err(|e| e.to_error_object())?;
        if start > tasks.len() {
            return Err(ErrorObject::invalid_params(format!(
                "invalid cursor: {start}"
            )));
        }
        tasks.sort_by(|a, b| (a.created_at_ms, &a.task_id).cmp(&(b.created_at_ms, &b.task_id)));
        let end = (start + LIST_PAGE).min(tasks.len());
        let page: Vec<Value> = tasks[start..end]
            .iter()
            .map(TaskRecord::experimental)
            .collect();
        let mut out = json!({ "tasks": page });
        if end < tasks.len() {
            out["nextCursor"] = json!(end.to_string());
        }
        Ok(out)
    }
}

fn not_found(id: &str) -> ErrorObject {
    ErrorObject::invalid_params(format!("Failed to retrieve task: unknown task {id}"))
}

/// `tasks/cancel`: a task that ended is `-32602`; otherwise it is cancelled before the answer
/// (the task as it is then).
async fn cancel(host: &TaskHost, found: TaskRecord) -> Result<Value, ErrorObject> {
    let id = found.task_id.clone();
    let change = |r: &mut TaskRecord| {
        if r.status.is_terminal() {
            return Err(TaskError::Ended {
                id: r.task_id.clone(),
                status: r.status,
            });
        }
        r.apply(TaskEvent::Cancel, now_ms())
    };
    let cancelled = host.store.update(&id, &change).await.map_err(|e| match e {
        TaskError::Ended { status, .. } => ErrorObject::invalid_params(format!(
            "Cannot cancel task {id}: it is already {}",
            status.as_str()
        )),
        other => other.to_error_object(),
    })?;
    if let Some(signal) = host
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
    {
        signal.cancel();
    }
    Ok(cancelled.experimental())
}

/// What `tasks/result` answers for an ended task: the call's result (tied to the task by
/// `_meta`), or its error.
fn final_result(record: TaskRecord) -> Result<Value, ErrorObject> {
    let related = json!({ "taskId": record.task_id });
    match record.status {
        TaskStatus::Completed => {
            let mut result = record.result.unwrap_or_else(|| json!({"content": []}));
            if let Value::Object(m) = &mut result {
                let meta = m.entry("_meta").or_insert_with(|| json!({}));
                if let Value::Object(meta) = meta {
                    meta.insert(task::META_RELATED_TASK.into(), related);
                }
            }
            Ok(result)
        }
        TaskStatus::Cancelled => Err(ErrorObject::internal(format!(
            "task {} was cancelled",
            record.task_id
        ))),
        _ => Err(record
            .error
            .unwrap_or_else(|| ErrorObject::internal("the task failed"))),
    }
}

/// Sends one of the task's questions to the client as a server-to-client request on this
/// request's stream (tied to the task by `_meta`), and records the answer in the task.
async fn relay(
    call: &Call<'_>,
    host: &TaskHost,
    id: &str,
    key: &str,
    question: &Value,
) -> Result<(), ErrorObject> {
    let method = question
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut params = question.get("params").cloned().unwrap_or_else(|| json!({}));
    if let Value::Object(p) = &mut params {
        let meta = p.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.insert(task::META_RELATED_TASK.into(), json!({ "taskId": id }));
        }
    }
    let session = &call.ctx.session;
    let (request_id, answer) = session
        .begin_server_request()
        .map_err(|e| ErrorObject::internal(format!("cannot ask the client: {e}")))?;
    let message = Message::request(request_id.clone(), method, Some(params));
    if let Err(e) = call.ctx.outbound.send(message).await {
        session.abandon_server_request(&request_id);
        return Err(ErrorObject::internal(format!(
            "cannot ask the client for task {id}: {e}"
        )));
    }
    let answer = match answer.await {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => return Err(error),
        Err(_) => return Err(ErrorObject::internal("the session ended")),
    };
    let event = TaskEvent::Answer([(key.to_owned(), answer)].into_iter().collect());
    host.store
        .update(id, &|r: &mut TaskRecord| r.apply(event.clone(), now_ms()))
        .await
        .map(drop)
        .map_err(|e| e.to_error_object())
}

/// Runs `work` unless `request` is cancelled first (`None`).
async fn run_or_cancel<T>(
    request: &crate::cancel::CancellationSignal,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let mut cancelled = std::pin::pin!(request.cancelled());
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(move |cx| {
        if cancelled.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::super::test_runtime::{Kept, Threads};
    use std::sync::Arc;

    use serde_json::{Value, json};

    use crate::client_features::ElicitParams;
    use crate::service::{MessageContext, Outbound, Session, SessionStream};
    use crate::task::{MemoryTaskStore, TaskHost, TaskLimits};
    use crate::tool::{NoArgs, ToolContext, ToolDef, ToolError};
    use crate::{McpServer, McpService, Message, RequestId, TaskSupport};
    async fn ask_colour(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
        let answer = ctx
            .elicit_as(
                "colour",
                ElicitParams::form("Colour?", serde_json::Map::new()),
            )
            .await?;
        Ok(format!(
            "colour {}",
            answer.content.unwrap_or_default()["c"]
        ))
    }

    fn server() -> McpServer {
        let optional = |name: &str| ToolDef::new(name, "t").task_support(TaskSupport::Optional);
        McpServer::builder("t")
            .tool_with(optional("quick"), |_: NoArgs| async {
                Ok::<_, ToolError>("done")
            })
            .tool_with(optional("oops"), |_: NoArgs| async {
                Err::<String, _>(ToolError::new("no luck"))
            })
            .tool_with(optional("forever"), |_: NoArgs| async {
                std::future::pending::<()>().await;
                Ok::<_, ToolError>("never")
            })
            .tool_with(
                ToolDef::new("must", "t").task_support(TaskSupport::Required),
                |_: NoArgs| async { Ok::<_, ToolError>("as a task") },
            )
            .tool_with(optional("ask"), ask_colour)
            .tool("plain", "t", |_: NoArgs| async {
                Ok::<_, ToolError>("plain")
            })
            .build()
            .unwrap()
    }

    /// A 2025-11-25 session of one server, its stream, and what its requests' streams got.
    struct Client {
        server: McpServer,
        host: TaskHost,
        session: Arc<Session>,
        stream: Arc<Kept>,
        requests: Arc<Kept>,
    }

    impl Client {
        fn new(id: &str) -> Self {
            let host = TaskHost::new(
                Arc::new(MemoryTaskStore::new()),
                Arc::new(Threads),
                TaskLimits::default(),
            );
            Self::with(server(), host, id)
        }

        fn with(server: McpServer, host: TaskHost, id: &str) -> Self {
            let c = Self {
                server,
                host,
                session: Arc::new(Session::new(Some(id.into()))),
                stream: Arc::default(),
                requests: Arc::default(),
            };
            let init = c.send(
                "initialize",
                json!({"protocolVersion": "2025-11-25",
                    "capabilities": {"elicitation": {}},
                    "clientInfo": {"name": "c", "version": "1"}}),
            );
            assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
            c
        }

        fn context(&self) -> MessageContext {
            let mut ext = http::Extensions::new();
            ext.insert(self.host.clone());
            ext.insert(SessionStream(Arc::clone(&self.stream) as Arc<dyn Outbound>));
            MessageContext::new(Arc::clone(&self.session))
                .with_outbound(Arc::clone(&self.requests) as Arc<dyn Outbound>)
                .with_extensions(ext)
        }

        fn send(&self, method: &str, params: Value) -> Value {
            let request = Message::request(1, method, Some(params));
            let reply = futures::executor::block_on(self.server.handle(request, self.context()));
            serde_json::to_value(reply.unwrap()).unwrap()
        }

        /// Sends on a thread of its own (for requests that block).
        fn send_later(
            &self,
            id: &str,
            method: &str,
            params: Value,
        ) -> std::thread::JoinHandle<Value> {
            let request = Message::request(id, method, Some(params));
            let (server, ctx) = (self.server.clone(), self.context());
            std::thread::spawn(move || {
                let reply = futures::executor::block_on(server.handle(request, ctx));
                serde_json::to_value(reply.unwrap()).unwrap()
            })
        }

        fn start(&self, tool: &str) -> String {
            let r = self.send("tools/call", json!({"name": tool, "task": {"ttl": 60_000}}));
            r["result"]["task"]["taskId"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned()
        }
    }

    #[test]
    fn initialize_declares_tasks_and_tools_list_their_support() {
        let c = Client::new("s1");
        let init = c.send(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "c", "version": "1"}}),
        );
        assert_eq!(
            init["result"]["capabilities"]["tasks"],
            json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}})
        );
        let tools = c.send("tools/list", json!({}))["result"]["tools"].clone();
        let execution = |name: &str| {
            tools
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
                .unwrap()["execution"]
                .clone()
        };
        assert_eq!(execution("quick"), json!({"taskSupport": "optional"}));
        assert_eq!(execution("must"), json!({"taskSupport": "required"}));
        assert_eq!(execution("plain"), Value::Null);
        // An older revision has no tasks.
        let old = Client::new("s0");
        let init = old.send(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "c", "version": "1"}}),
        );
        assert!(init["result"]["capabilities"].get("tasks").is_none());
        let listed = old.send("tools/list", json!({}))["result"]["tools"][0].clone();
        assert!(listed.get("execution").is_none(), "{listed}");
        let get = old.send("tasks/get", json!({"taskId": "x"}));
        assert_eq!(
            get["error"],
            json!({"code": -32601, "message": "Method not found: tasks/get"})
        );
    }

    #[test]
    fn a_task_call_answers_the_task_then_get_and_result_give_its_state_and_outcome() {
        let c = Client::new("s1");
        let created = c.send(
            "tools/call",
            json!({"name": "quick", "task": {"ttl": 5_000}}),
        );
        let task = &created["result"]["task"];
        let mut keys: Vec<_> = task.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "createdAt",
                "lastUpdatedAt",
                "pollInterval",
                "status",
                "taskId",
                "ttl"
            ]
        );
        assert_eq!(
            (task["status"].clone(), task["ttl"].clone()),
            (json!("working"), json!(5_000))
        );
        assert_eq!(task["pollInterval"], 500);
        let id = task["taskId"].as_str().unwrap();
        let result = c.send("tasks/result", json!({"taskId": id}));
        assert_eq!(
            result["result"],
            json!({"content": [{"type": "text", "text": "done"}], "isError": false,
                "structuredContent": {"result": "done"},
                "_meta": {"io.modelcontextprotocol/related-task": {"taskId": id}}})
        );
        let got = c.send("tasks/get", json!({"taskId": id}))["result"].clone();
        assert_eq!(got["status"], "completed");
        assert!(got.get("result").is_none());
        // A tool error is a failed task whose result is the tool's.
        let failed = c.start("oops");
        let result = c.send("tasks/result", json!({"taskId": failed}))["result"].clone();
        assert_eq!(result["isError"], true);
        let got = c.send("tasks/get", json!({"taskId": failed}))["result"].clone();
        assert_eq!(got["status"], "failed");
        assert_eq!(
            got["statusMessage"],
            "the tool reported an error (see tasks/result)"
        );
        // The status changes went to the session's stream.
        let note = c
            .stream
            .wait(|m| m["params"]["taskId"] == id && m["params"]["status"] == "completed");
        assert_eq!(note["method"], "notifications/tasks/status");
        assert!(note["params"].get("result").is_none());
    }

    #[test]
    fn task_params_are_checked_against_each_tools_support() {
        let c = Client::new("s1");
        let plain_task = c.send("tools/call", json!({"name": "plain", "task": {}}));
        assert_eq!(
            plain_task["error"],
            json!({"code": -32601, "message": "Tool 'plain' does not support task-augmented execution"})
        );
        let must_plain = c.send("tools/call", json!({"name": "must"}));
        assert_eq!(
            must_plain["error"],
            json!({"code": -32601, "message": "Tool 'must' requires task-augmented execution (params.task)"})
        );
        // Without `task`, an optional tool is a plain call.
        let plain = c.send("tools/call", json!({"name": "quick"}));
        assert_eq!(plain["result"]["content"][0]["text"], "done");
        assert!(plain["result"].get("task").is_none());
        for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
            let unknown = c.send(method, json!({"taskId": "nope"}));
            assert_eq!(
                unknown["error"],
                json!({"code": -32602, "message": "Invalid params: Failed to retrieve task: unknown task nope"}),
                "{method}"
            );
        }
        // 2026-07-28 methods are not 2025-11-25 ones.
        let update = c.send("tasks/update", json!({"taskId": "nope"}));
        assert_eq!(update["error"]["code"], -32601);
    }

    #[test]
    fn cancel_answers_the_cancelled_task_and_refuses_an_ended_one() {
        let c = Client::new("s1");
        let id = c.start("forever");
        let waiting = c.send_later("r1", "tasks/result", json!({"taskId": id}));
        let cancelled = c.send("tasks/cancel", json!({"taskId": id}))["result"].clone();
        assert_eq!(cancelled["status"], "cancelled");
        assert_eq!(cancelled["statusMessage"], "cancelled by the client");
        let result = waiting.join().unwrap();
        assert_eq!(
            result["error"],
            json!({"code": -32603, "message": format!("Internal error: task {id} was cancelled")})
        );
        let again = c.send("tasks/cancel", json!({"taskId": id}));
        assert_eq!(
            again["error"],
            json!({"code": -32602, "message": format!("Invalid params: Cannot cancel task {id}: it is already cancelled")})
        );
    }

    #[test]
    fn result_relays_the_tasks_questions_on_its_stream_and_the_answers_resume_it() {
        let c = Client::new("s1");
        let id = c.start("ask");
        let waiting = c.send_later("r1", "tasks/result", json!({"taskId": id}));
        let question = c.requests.wait(|m| m["method"] == "elicitation/create");
        assert_eq!(question["params"]["message"], "Colour?");
        assert_eq!(
            question["params"]["_meta"],
            json!({"io.modelcontextprotocol/related-task": {"taskId": id}})
        );
        let got = c.send("tasks/get", json!({"taskId": id}))["result"].clone();
        assert_eq!(got["status"], "input_required");
        let request_id: RequestId = serde_json::from_value(question["id"].clone()).unwrap();
        assert!(c.session.complete_server_request(
            &request_id,
            Ok(json!({"action": "accept", "content": {"c": "teal"}}))
        ));
        let result = waiting.join().unwrap();
        assert_eq!(result["result"]["content"][0]["text"], "colour \"teal\"");
    }

    #[test]
    fn list_gives_the_sessions_own_tasks_a_page_at_a_time() {
        let store = Arc::new(MemoryTaskStore::new());
        let host = |_: ()| TaskHost::new(store.clone(), Arc::new(Threads), TaskLimits::default());
        let a = Client::with(server(), host(()), "session-a");
        let b = Client::with(server(), host(()), "session-b");
        let mine: Vec<String> = (0..3).map(|_| a.start("quick")).collect();
        b.start("quick");
        let listed = a.send("tasks/list", json!({}))["result"].clone();
        let mut ids: Vec<String> = listed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["taskId"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        let mut expected = mine.clone();
        expected.sort();
        assert_eq!(ids, expected);
        assert!(listed.get("nextCursor").is_none());
        let bad = a.send("tasks/list", json!({"cursor": "x"}));
        assert_eq!(
            bad["error"],
            json!({"code": -32602, "message": "Invalid params: invalid cursor: x"})
        );
        let past = a.send("tasks/list", json!({"cursor": "4"}));
        assert_eq!(past["error"]["code"], -32602);
    }
}
