//! 2026-07-28 input rounds through the gateway: our conformance fixture server, run over stdio
//! as the gateway's child (it speaks 2025-11-25 there), asks its client during calls; a
//! 2026-07-28 client gets `InputRequiredResult`s and answers them by retrying the call, on
//! real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mcp_gateway::{ChildCommand, Gateway, GatewayConfig};
use mcp_proto::ProtocolVersion;
use mcp_proto::types::ClientCapabilities;
use mcp_sse::client::McpClient;
use mcp_sse::{McpHttpServer, RunningServer};
use serde_json::{Value, json};

const CONFORMANCE: &str = env!("CARGO_BIN_EXE_conformance_server");

/// A gateway in front of `conformance_server --stdio`, served on a free port.
async fn gateway(config: GatewayConfig) -> (Gateway, RunningServer) {
    let command = ChildCommand::new(CONFORMANCE)
        .arg("--stdio")
        .env("RUST_LOG", "warn");
    let gateway = Gateway::new(command, config);
    gateway.wait_ready(Duration::from_secs(20)).await.unwrap();
    let server = McpHttpServer::new(gateway.clone())
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    (gateway, server)
}

fn meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "rounds-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    })
}

fn all_capabilities() -> Value {
    json!({"elicitation": {}, "sampling": {}, "roots": {}})
}

/// POSTs a 2026-07-28 request (`params` gets the `_meta`); returns the HTTP status and the
/// JSON-RPC answer (a JSON body, or the last `data:` line of the stream).
async fn request(
    server: &RunningServer,
    method: &str,
    mut params: Value,
    capabilities: Value,
) -> (u16, Value) {
    params["_meta"] = meta(capabilities);
    let name = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let response = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .header("mcp-name", name)
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let answer = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .rfind(|d| !d.is_empty())
        .map_or_else(
            || serde_json::from_str(&text).unwrap(),
            |d| serde_json::from_str(d).unwrap(),
        );
    (status, answer)
}

async fn call(server: &RunningServer, params: Value) -> (u16, Value) {
    request(server, "tools/call", params, all_capabilities()).await
}

fn accept(content: Value) -> Value {
    json!({"action": "accept", "content": content})
}

fn text_of(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"].as_str().unwrap()
}

#[tokio::test]
async fn the_childs_elicitation_is_an_input_required_result_answered_by_the_retry() {
    let (gateway, server) = gateway(GatewayConfig::default()).await;
    let tool = "test_input_required_result_elicitation";
    let (status, first) = call(&server, json!({"name": tool, "arguments": {}})).await;
    assert_eq!(status, 200, "{first}");
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    // The key is the one the child's handler chose; the gateway's `_meta` entry is gone.
    assert_eq!(
        result["inputRequests"],
        json!({"user_name": {"method": "elicitation/create", "params": {
            "message": "What is your name?",
            "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        }}})
    );
    let state = result["requestState"].as_str().unwrap().to_owned();
    assert_eq!(gateway.calls_waiting_for_input(), 1);
    let retry = json!({"name": tool, "arguments": {}, "requestState": state,
        "inputResponses": {"user_name": accept(json!({"name": "Alice"}))}});
    let (status, done) = call(&server, retry.clone()).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["result"]["resultType"], "complete");
    assert_eq!(text_of(&done), "Hello, Alice!");
    assert_eq!(gateway.calls_waiting_for_input(), 0);
    // The call is over: its state names nothing any more.
    let (status, again) = call(&server, retry).await;
    assert_eq!(status, 200);
    assert_eq!(again["error"]["code"], -32602);
    assert_eq!(
        again["error"]["message"],
        "Invalid params: Invalid requestState: its call no longer waits for input (answered already, or the wait ended)"
    );
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn questions_asked_together_go_out_in_one_round_and_rounds_follow_each_other() {
    let (gateway, server) = gateway(GatewayConfig::default()).await;
    let tool = "test_input_required_result_multiple_inputs";
    let (_, first) = call(&server, json!({"name": tool, "arguments": {}})).await;
    let requests = &first["result"]["inputRequests"];
    let mut methods: Vec<(&str, &str)> = requests
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v["method"].as_str().unwrap()))
        .collect();
    methods.sort_unstable();
    assert_eq!(
        methods,
        [
            ("client_roots", "roots/list"),
            ("greeting", "sampling/createMessage"),
            ("user_name", "elicitation/create"),
        ]
    );
    let answers = json!({
        "user_name": accept(json!({"name": "Alice"})),
        "greeting": {"role": "assistant", "content": {"type": "text", "text": "Hello there!"}, "model": "m"},
        "client_roots": {"roots": [{"uri": "file:///test/root", "name": "Test Root"}]},
    });
    let retry = json!({"name": tool, "arguments": {}, "inputResponses": answers,
        "requestState": first["result"]["requestState"]});
    let (_, done) = call(&server, retry).await;
    assert_eq!(
        text_of(&done),
        "Name: Alice; Greeting: Hello there!; Roots: 1"
    );

    let tool = "test_input_required_result_multi_round";
    let (_, r1) = call(&server, json!({"name": tool, "arguments": {}})).await;
    assert_eq!(
        r1["result"]["inputRequests"]["step1"]["method"],
        "elicitation/create"
    );
    let state1 = r1["result"]["requestState"].clone();
    let step1 = json!({"name": tool, "arguments": {}, "requestState": state1,
        "inputResponses": {"step1": accept(json!({"name": "Alice"}))}});
    let (_, r2) = call(&server, step1.clone()).await;
    assert_eq!(r2["result"]["resultType"], "input_required", "{r2}");
    assert_eq!(
        r2["result"]["inputRequests"]["step2"]["params"]["message"],
        "Step 2: What is your favorite color?"
    );
    let state2 = r2["result"]["requestState"].clone();
    assert_ne!(state1, state2);
    // The first round's state cannot be replayed once the call moved on.
    let (_, stale) = call(&server, step1).await;
    assert_eq!(
        stale["error"]["message"],
        "Invalid params: Invalid requestState: it is from an earlier round of this call"
    );
    let step2 = json!({"name": tool, "arguments": {}, "requestState": state2,
        "inputResponses": {"step2": accept(json!({"color": "blue"}))}});
    let (_, r3) = call(&server, step2).await;
    assert_eq!(
        text_of(&r3),
        "Multi-round complete for Alice who likes blue"
    );
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn request_state_is_refused_when_tampered_or_for_another_request() {
    let (gateway, server) = gateway(GatewayConfig::default()).await;
    let tool = "test_input_required_result_tampered_state";
    let (_, first) = call(&server, json!({"name": tool, "arguments": {}})).await;
    let state = first["result"]["requestState"].as_str().unwrap();
    let answers = json!({"confirm": accept(json!({"ok": true}))});
    let tampered = json!({"name": tool, "arguments": {}, "inputResponses": answers,
        "requestState": format!("{state}-TAMPERED")});
    let (status, refused) = call(&server, tampered).await;
    assert_eq!(status, 200);
    assert_eq!(
        refused["error"],
        json!({"code": -32602, "message": "Invalid params: Invalid requestState: requestState failed verification (or issued by another gateway process: a retry must reach the one that issued it)"})
    );
    // Bound to the tool and its arguments.
    let other = json!({"name": tool, "arguments": {"x": 1}, "inputResponses": answers,
        "requestState": state});
    let (_, refused) = call(&server, other).await;
    assert_eq!(
        refused["error"]["message"],
        "Invalid params: Invalid requestState: requestState belongs to a different request"
    );
    let not_a_string = json!({"name": tool, "arguments": {}, "requestState": 5});
    let (_, refused) = call(&server, not_a_string).await;
    assert_eq!(
        refused["error"]["message"],
        "Invalid params: requestState must be a string"
    );
    // The genuine state still resumes the call.
    let genuine = json!({"name": tool, "arguments": {}, "inputResponses": answers,
        "requestState": state});
    let (_, done) = call(&server, genuine).await;
    assert_eq!(text_of(&done), "integrity-ok: state verified");
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn answers_of_the_wrong_shape_are_invalid_params_and_end_the_call() {
    let (gateway, server) = gateway(GatewayConfig::default()).await;
    let tool = "test_input_required_result_elicitation";
    let wrong = json!({"name": tool, "arguments": {}, "inputResponses": {"user_name": 12345}});
    let (status, refused) = call(&server, wrong).await;
    assert_eq!(status, 200);
    assert_eq!(
        refused["error"],
        json!({"code": -32602, "message": "Invalid params: inputResponses.user_name is not a valid elicitation/create result"})
    );
    let null = json!({"name": tool, "arguments": {}, "inputResponses": null});
    let (_, refused) = call(&server, null).await;
    assert_eq!(
        refused["error"]["message"],
        "Invalid params: inputResponses must be an object"
    );
    // Answers given up front answer the child's questions by key; other keys are ignored.
    let up_front = json!({"name": tool, "arguments": {}, "inputResponses": {
        "user_name": accept(json!({"name": "Bob"})), "unknown": accept(json!({}))}});
    let (_, done) = call(&server, up_front).await;
    assert_eq!(text_of(&done), "Hello, Bob!");
    assert_eq!(gateway.calls_waiting_for_input(), 0);
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn questions_need_the_capabilities_the_request_declares() {
    let (gateway, server) = gateway(GatewayConfig::default()).await;
    // Nothing declared, sampling needed: -32021 naming it, HTTP 400.
    let params = json!({"name": "test_missing_capability", "arguments": {}});
    let (status, refused) = request(&server, "tools/call", params, json!({})).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["error"],
        json!({"code": -32021, "message": "Missing required client capability: sampling",
            "data": {"requiredCapabilities": {"sampling": {}}}})
    );
    // The child asks for elicitation and sampling; only sampling is declared.
    let params = json!({"name": "test_input_required_result_capabilities", "arguments": {}});
    let (_, first) = request(&server, "tools/call", params, json!({"sampling": {}})).await;
    let keys: Vec<&String> = first["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["sample_input"]);
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn prompts_need_input_too() {
    let (gateway, server) = gateway(GatewayConfig::default()).await;
    let name = "test_input_required_result_prompt";
    let (_, first) = request(
        &server,
        "prompts/get",
        json!({"name": name}),
        all_capabilities(),
    )
    .await;
    assert_eq!(first["result"]["resultType"], "input_required");
    let retry = json!({"name": name, "requestState": first["result"]["requestState"],
        "inputResponses": {"user_context": accept(json!({"context": "tests"}))}});
    let (_, done) = request(&server, "prompts/get", retry, all_capabilities()).await;
    assert_eq!(done["result"]["resultType"], "complete");
    assert_eq!(
        done["result"]["messages"][0]["content"]["text"],
        "Prompt with context: tests"
    );
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn waiting_calls_are_bounded_and_end_after_the_answer_timeout() {
    let config = GatewayConfig {
        client_answer_timeout: Duration::from_secs(1),
        max_calls_waiting_for_input_per_client: 1,
        ..GatewayConfig::default()
    };
    let (gateway, server) = gateway(config).await;
    let tool = json!({"name": "test_input_required_result_request_state", "arguments": {}});
    let (_, first) = call(&server, tool.clone()).await;
    assert_eq!(first["result"]["resultType"], "input_required");
    let (_, second) = call(&server, tool.clone()).await;
    assert_eq!(
        second["error"],
        json!({"code": -32603, "message": "Internal error: too many calls wait for client input at the gateway (limit 1 calls per client); retry later"})
    );
    assert_eq!(gateway.calls_waiting_for_input(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gateway.calls_waiting_for_input(), 0);
    let late = json!({"name": "test_input_required_result_request_state", "arguments": {},
        "requestState": first["result"]["requestState"],
        "inputResponses": {"confirm": accept(json!({"ok": true}))}});
    let (_, refused) = call(&server, late).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    // The child is free again: a new call runs its rounds.
    let (_, again) = call(&server, tool).await;
    assert_eq!(again["result"]["resultType"], "input_required");
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn our_2026_client_answers_the_rounds_through_the_gateway() {
    let (gateway, server) = gateway(GatewayConfig::default()).await;
    let capabilities: ClientCapabilities = serde_json::from_value(all_capabilities()).unwrap();
    let client = McpClient::builder(server.url("/mcp"))
        .protocol_version(ProtocolVersion::V2026_07_28)
        .capabilities(capabilities)
        .on_input(|method, params| async move {
            assert_eq!(method, "elicitation/create");
            let message = params["message"].as_str().unwrap_or_default();
            Ok(if message.starts_with("Step 1") {
                accept(json!({"name": "Ada"}))
            } else {
                accept(json!({"color": "green"}))
            })
        })
        .connect()
        .await
        .unwrap();
    let result = client
        .call_tool("test_input_required_result_multi_round", json!({}))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&result.content).unwrap()[0]["text"],
        "Multi-round complete for Ada who likes green"
    );
    assert_eq!(gateway.calls_waiting_for_input(), 0);
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}
