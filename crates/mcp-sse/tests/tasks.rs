//! Tool calls as tasks (2026-07-28 `io.modelcontextprotocol/tasks`) over real sockets: the
//! routing headers and gating of the tasks methods, the client's task API end to end, input
//! rounds inside a task, cancellation, and the per-subject limit from `ServerConfig`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mcp_proto::client_features::ElicitParams;
use mcp_proto::task::{TaskLimits, TaskStatus};
use mcp_proto::types::ClientCapabilities;
use mcp_proto::{McpServer, ProtocolVersion, TaskSupport, ToolContext, ToolDef, ToolError};
use mcp_sse::client::{McpClient, ToolCallStart};
use mcp_sse::{Error, McpHttpServer, RunningServer, ServerConfig};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Deserialize, JsonSchema)]
struct Nap {
    ms: u64,
}

fn service() -> McpServer {
    let optional = |name: &str| ToolDef::new(name, "t").task_support(TaskSupport::Optional);
    McpServer::builder("Tasks")
        .tool_with(optional("nap"), |a: Nap| async move {
            tokio::time::sleep(Duration::from_millis(a.ms)).await;
            Ok::<_, ToolError>(format!("napped {}", a.ms))
        })
        .tool_with(
            optional("ask"),
            |ctx: ToolContext, _: mcp_proto::NoArgs| async move {
                let form = ElicitParams::form("Colour?", Map::new());
                let answer = ctx.elicit_as("colour", form).await?;
                Ok::<_, ToolError>(format!(
                    "colour {}",
                    answer.content.unwrap_or_default()["c"]
                ))
            },
        )
        .build()
        .unwrap()
}

async fn start(limits: TaskLimits) -> RunningServer {
    let config = ServerConfig {
        tasks: limits,
        ..ServerConfig::default()
    };
    McpHttpServer::with_config(service(), config)
        .spawn("127.0.0.1:0")
        .await
        .unwrap()
}

async fn client(server: &RunningServer) -> McpClient {
    McpClient::builder(server.url("/mcp"))
        .protocol_version(ProtocolVersion::V2026_07_28)
        .capabilities(ClientCapabilities {
            elicitation: Some(Map::new()),
            ..Default::default()
        })
        .on_input(|method, params| async move {
            assert_eq!(method, "elicitation/create");
            assert_eq!(params["message"], "Colour?");
            Ok(json!({"action": "accept", "content": {"c": "teal"}}))
        })
        .connect()
        .await
        .unwrap()
}

/// One raw 2026-07-28 POST: (HTTP status, JSON body).
async fn post(server: &RunningServer, method: &str, params: Value, name: &str) -> (u16, Value) {
    let mut params = params;
    let caps = if method == "tasks/get-without-extension" {
        json!({})
    } else {
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}})
    };
    let method = method.trim_end_matches("-without-extension");
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps});
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params});
    let response = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", method)
        .header("Mcp-Name", name)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .map_or(text.as_str(), str::trim);
    (status, serde_json::from_str(json).unwrap())
}

#[tokio::test]
async fn tasks_methods_check_routing_headers_gating_and_ids() {
    let server = start(TaskLimits::default()).await;
    let (status, created) = post(
        &server,
        "tools/call",
        json!({"name": "nap", "arguments": {"ms": 50}}),
        "nap",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(created["result"]["resultType"], "task");
    let id = created["result"]["taskId"].as_str().unwrap().to_owned();
    let (status, wrong) = post(&server, "tasks/get", json!({"taskId": id}), "other-task").await;
    assert_eq!(status, 400);
    assert_eq!(wrong["error"]["code"], -32020);
    assert_eq!(
        wrong["error"]["message"],
        format!(
            "Header mismatch: Mcp-Name header value 'other-task' does not match body value '{id}'"
        )
    );
    let (status, gated) = post(
        &server,
        "tasks/get-without-extension",
        json!({"taskId": id}),
        &id,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(gated["error"]["code"], -32021);
    assert_eq!(
        gated["error"]["data"],
        json!({"requiredCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}})
    );
    let (status, unknown) = post(&server, "tasks/get", json!({"taskId": "zz"}), "zz").await;
    assert_eq!(status, 200);
    assert_eq!(
        unknown["error"],
        json!({"code": -32602, "message": "Invalid params: unknown task: zz"})
    );
    let (status, removed) = post(&server, "tasks/list", json!({}), "").await;
    assert_eq!(status, 404);
    assert_eq!(removed["error"]["code"], -32601);
    let (status, got) = post(&server, "tasks/get", json!({"taskId": id}), &id).await;
    assert_eq!(status, 200);
    assert_eq!(got["result"]["taskId"], id.as_str());
    assert_eq!(got["result"]["resultType"], "complete");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_client_runs_a_task_to_its_result_and_plain_calls_stay_plain() {
    let server = start(TaskLimits::default()).await;
    let client = client(&server).await;
    let result = client
        .call_tool_as_task("nap", json!({"ms": 150}), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        result.content[0],
        mcp_proto::ContentBlock::text("napped 150")
    );
    // Without asking for a task, the same tool answers as a plain call.
    let plain = client.call_tool("nap", json!({"ms": 1})).await.unwrap();
    assert_eq!(plain.content[0], mcp_proto::ContentBlock::text("napped 1"));
    let ToolCallStart::Task(task) = client
        .start_tool_task("nap", json!({"ms": 30_000}))
        .await
        .unwrap()
    else {
        panic!("nap runs as a task")
    };
    assert_eq!(task.status, TaskStatus::Working);
    assert_eq!(task.poll_interval_ms, Some(500));
    client.cancel_task(&task.task_id).await.unwrap();
    let e = client
        .wait_task(&task.task_id, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::TaskCancelled(id) if *id == task.task_id),
        "{e}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_task_asks_its_question_through_tasks_get_and_gets_the_answer_from_update() {
    let server = start(TaskLimits::default()).await;
    let client = client(&server).await;
    let ToolCallStart::Task(task) = client.start_tool_task("ask", json!({})).await.unwrap() else {
        panic!("ask runs as a task")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let parked = loop {
        let t = client.get_task(&task.task_id).await.unwrap();
        if t.status == TaskStatus::InputRequired || tokio::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(parked.status, TaskStatus::InputRequired);
    let questions = parked.input_requests.unwrap();
    assert_eq!(questions["colour"]["method"], "elicitation/create");
    let result = client
        .wait_task(&task.task_id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        result.content[0],
        mcp_proto::ContentBlock::text("colour \"teal\"")
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unfinished_tasks_per_subject_are_bounded_by_the_config() {
    let limits = TaskLimits {
        max_tasks_per_subject: 1,
        ..TaskLimits::default()
    };
    let server = start(limits).await;
    let client = client(&server).await;
    let first = client
        .start_tool_task("nap", json!({"ms": 30_000}))
        .await
        .unwrap();
    let e = client
        .start_tool_task("nap", json!({"ms": 1}))
        .await
        .unwrap_err();
    match e {
        Error::Protocol(mcp_proto::Error::Rpc(e)) => {
            assert_eq!(e.code, -32603);
            assert_eq!(
                e.message,
                "too many unfinished tasks for this subject (at most 1)"
            );
        }
        other => panic!("unexpected {other}"),
    }
    let ToolCallStart::Task(first) = first else {
        panic!("a task")
    };
    client.cancel_task(&first.task_id).await.unwrap();
    assert!(matches!(
        client
            .start_tool_task("nap", json!({"ms": 1}))
            .await
            .unwrap(),
        ToolCallStart::Task(_)
    ));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_waiting_client_wakes_on_pushed_states_not_at_the_poll_interval() {
    // Clients are told to poll every 5 s: only pushed states can end the wait sooner.
    let server = start(TaskLimits {
        poll_interval: Duration::from_secs(5),
        ..TaskLimits::default()
    })
    .await;
    let c = client(&server).await;
    let ToolCallStart::Task(napping) = c.start_tool_task("nap", json!({"ms": 300})).await.unwrap()
    else {
        panic!("not a task")
    };
    let started = std::time::Instant::now();
    let done = c
        .wait_task(&napping.task_id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.content[0], mcp_proto::ContentBlock::text("napped 300"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A question is pushed too, answered, and the result follows.
    let ToolCallStart::Task(asking) = c.start_tool_task("ask", json!({})).await.unwrap() else {
        panic!("not a task")
    };
    let started = std::time::Instant::now();
    let done = c
        .wait_task(&asking.task_id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        done.content[0],
        mcp_proto::ContentBlock::text("colour \"teal\"")
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn listen_tasks_follows_known_tasks_from_their_state_now_to_their_end() {
    let server = start(TaskLimits::default()).await;
    let c = client(&server).await;
    let ToolCallStart::Task(task) = c.start_tool_task("nap", json!({"ms": 200})).await.unwrap()
    else {
        panic!("not a task")
    };
    let mut states = c
        .listen_tasks(&[&task.task_id, "task-nobody-knows"])
        .await
        .unwrap();
    assert_eq!(states.following(), std::slice::from_ref(&task.task_id));
    let now = states.next().await.unwrap().unwrap();
    assert_eq!(
        (now.task_id.as_str(), now.status),
        (task.task_id.as_str(), TaskStatus::Working)
    );
    let end = tokio::time::timeout(Duration::from_secs(5), states.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(end.status, TaskStatus::Completed);
    assert_eq!(end.result.unwrap()["content"][0]["text"], "napped 200");
    // A task the server does not know is not followed: waiting for it falls back to polling,
    // which reports it unknown.
    let unknown = c
        .wait_task("task-nobody-knows", Duration::from_secs(5))
        .await
        .unwrap_err();
    match unknown {
        Error::Protocol(mcp_proto::Error::Rpc(e)) => {
            assert_eq!(e.code, -32602);
            assert_eq!(e.message, "Invalid params: unknown task: task-nobody-knows");
        }
        other => panic!("{other:?}"),
    }
    server.shutdown().await.unwrap();
}
