//! `dice_server --stdio` and `conformance_server --stdio` as real child processes: our
//! stdio client against them, the purity of stdout, cancellation over a pipe, and a strict
//! JSON Schema validator over every schema they list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_proto::types::ClientCapabilities;
use mcp_proto::{ErrorObject, Tool};
use mcp_sse::client::{McpClient, MessageTransport};
use mcp_stdio::{StdioClientTransport, StdioCommand};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const DICE: &str = env!("CARGO_BIN_EXE_dice_server");
const CONFORMANCE: &str = env!("CARGO_BIN_EXE_conformance_server");

fn command(program: &str) -> StdioCommand {
    StdioCommand::new(program)
        .arg("--stdio")
        .env("RUST_LOG", "warn")
        .close_grace(Duration::from_secs(5))
}

#[tokio::test]
async fn our_client_rolls_dice_over_stdio_and_the_server_exits_on_close() {
    let (transport, incoming) = StdioClientTransport::spawn(&command(DICE)).unwrap();
    let transport = Arc::new(transport);
    let seam: Arc<dyn MessageTransport> = transport.clone();
    let client = McpClient::transport_builder()
        .connect_with(seam, incoming)
        .await
        .unwrap();
    assert_eq!(client.transport_kind(), None);
    assert_eq!(client.server_info().unwrap().name, "Dice Roller");
    let tools = client.list_tools().await.unwrap();
    assert_eq!(
        tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["roll_dice"]
    );
    let result = client
        .call_tool("roll_dice", json!({"n_dice": 4}))
        .await
        .unwrap();
    let rolls = result.structured_content.unwrap()["result"].clone();
    let rolls: Vec<u8> = serde_json::from_value(rolls).unwrap();
    assert_eq!(rolls.len(), 4);
    assert!(rolls.iter().all(|r| (1..=6).contains(r)), "{rolls:?}");
    assert!(transport.pid().await.is_some());
    client.close().await.unwrap();
    // The server exited by itself when its stdin closed: nothing is left to kill.
    assert_eq!(transport.pid().await, None);
    let status = transport.shutdown().await.unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Starts a server with piped stdin, stdout and stderr.
fn raw_process(program: &str, extra: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(program)
        .arg("--stdio")
        .args(extra)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}
{"jsonrpc":"2.0","method":"notifications/initialized"}
"#;

/// Writes `input`, closes stdin, and returns (stdout lines as JSON, stderr, exit code).
async fn run_to_end(mut child: tokio::process::Child, input: &str) -> (Vec<Value>, String, i32) {
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the server exits after stdin closes")
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (
        lines,
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}

#[tokio::test]
async fn stdout_carries_only_json_rpc_and_logs_go_to_stderr() {
    let child = raw_process(DICE, &[]);
    let input = format!(
        "{INIT}{}\n{}\n",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":2}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#
    );
    let (mut lines, stderr, code) = run_to_end(child, &input).await;
    assert_eq!(code, 0);
    // Requests run concurrently: answers come in any order.
    lines.sort_by_key(|l| l["id"].as_i64());
    let ids: Vec<&Value> = lines.iter().map(|l| &l["id"]).collect();
    assert_eq!(ids, [&json!(0), &json!(1), &json!(2)], "{lines:?}");
    assert!(lines.iter().all(|l| l["jsonrpc"] == "2.0"));
    assert_eq!(
        lines[1]["result"]["structuredContent"]["result"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(stderr.contains("MCP server reading stdin"), "{stderr}");
}

#[tokio::test]
async fn a_cancelled_call_over_a_pipe_gets_no_answer() {
    let child = raw_process(DICE, &["--echo"]);
    let input = format!(
        "{INIT}{}\n{}\n{}\n",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"token":"slow","delay_ms":3000}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"test"}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"token":"fast"}}}"#,
    );
    let started = std::time::Instant::now();
    let (lines, _, code) = run_to_end(child, &input).await;
    assert_eq!(code, 0);
    let ids: Vec<&Value> = lines.iter().map(|l| &l["id"]).collect();
    // Without the cancellation, call 1 would answer within the 5 s shutdown grace.
    assert_eq!(ids, [&json!(0), &json!(2)], "{lines:?}");
    assert_eq!(lines[1]["result"]["content"][0]["text"], "fast");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_oversized_line_is_refused_and_the_session_goes_on() {
    let child = raw_process(DICE, &[]);
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let input = format!("{huge}\n{INIT}");
    let (lines, _, code) = run_to_end(child, &input).await;
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["id"], Value::Null);
    assert_eq!(lines[0]["error"]["code"], -32600);
    assert_eq!(lines[1]["id"], 0);
    assert_eq!(lines[1]["result"]["protocolVersion"], "2025-11-25");
}

/// Answers the conformance server's questions like a host would.
async fn answer(method: String, params: Value) -> Result<Value, ErrorObject> {
    match method.as_str() {
        "elicitation/create" => Ok(json!({"action": "accept", "content": {"response": "yes"}})),
        "sampling/createMessage" => {
            let prompt = params["messages"][0]["content"]["text"].clone();
            Ok(json!({"role": "assistant", "model": "test",
                "content": {"type": "text", "text": format!("echo {}", prompt.as_str().unwrap_or(""))}}))
        }
        other => Err(ErrorObject::method_not_found(other)),
    }
}

#[tokio::test]
async fn server_requests_progress_and_logs_reach_our_stdio_client() {
    let logs = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&logs);
    let capabilities: ClientCapabilities =
        serde_json::from_value(json!({"elicitation": {}, "sampling": {}})).unwrap();
    let client = command(CONFORMANCE)
        .connect(
            McpClient::transport_builder()
                .capabilities(capabilities)
                .on_input(answer)
                .on_notification(move |n| {
                    if n.method == "notifications/message" {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                }),
        )
        .await
        .unwrap();
    let elicited = client
        .call_tool("test_elicitation", json!({"message": "Proceed?"}))
        .await
        .unwrap();
    assert_eq!(elicited.is_error, Some(false), "{elicited:?}");
    assert!(elicited.content[0].as_text().unwrap().contains("accept"));
    let sampled = client
        .call_tool("test_sampling", json!({"prompt": "dice"}))
        .await
        .unwrap();
    assert!(
        sampled.content[0].as_text().unwrap().contains("echo dice"),
        "{sampled:?}"
    );
    let progress = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&progress);
    client
        .call_tool_with_progress("test_tool_with_progress", json!({}), move |p| {
            sink.lock().unwrap().push(p.progress);
        })
        .await
        .unwrap();
    assert_eq!(*progress.lock().unwrap(), [0.0, 50.0, 100.0]);
    client
        .call_tool("test_tool_with_logging", json!({}))
        .await
        .unwrap();
    assert_eq!(logs.load(Ordering::SeqCst), 3);
    client.close().await.unwrap();
}

/// A validator that knows only JSON Schema 2020-12 and treats unknown formats as errors.
fn strict(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::meta::validate(schema).map_err(|e| format!("not a valid schema: {e}"))?;
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .build(schema)
        .map_err(|e| e.to_string())
}

async fn tools_of(program: &str) -> Vec<Tool> {
    let client = command(program)
        .connect(McpClient::transport_builder())
        .await
        .unwrap();
    let tools = client.list_tools().await.unwrap();
    client.close().await.unwrap();
    tools
}

#[tokio::test]
async fn every_listed_schema_passes_a_strict_validator() {
    let mut checked = 0;
    for program in [DICE, CONFORMANCE] {
        for tool in tools_of(program).await {
            let mut schemas = vec![("inputSchema", Value::Object(tool.input_schema.clone()))];
            if let Some(output) = &tool.output_schema {
                schemas.push(("outputSchema", Value::Object(output.clone())));
            }
            for (which, schema) in schemas {
                if let Err(e) = strict(&schema) {
                    panic!("{} {which}: {e}\n{schema:#}", tool.name);
                }
                checked += 1;
            }
        }
    }
    // roll_dice (in, out) and every conformance tool's input schema.
    assert!(checked >= 20, "{checked} schemas");
    let dice_output = &tools_of(DICE).await[0].output_schema.clone().unwrap();
    assert_eq!(
        dice_output["properties"]["result"]["items"],
        json!({"type": "integer", "minimum": 0, "maximum": 255})
    );
}

#[test]
fn the_strict_validator_refuses_what_schemars_used_to_emit() {
    let error = strict(&json!({"type": "integer", "format": "uint8"})).unwrap_err();
    assert!(error.contains("uint8"), "{error}");
}
