//! The gateway (`mcp-gateway`) in front of our stdio servers run as real child processes,
//! served on real sockets: forwarding in both directions, restarts, the tool filter,
//! 2026-07-28 translation and per-session children.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_gateway::{ChildCommand, Gateway, GatewayConfig, ToolFilter};
use mcp_proto::ProtocolVersion;
use mcp_proto::types::ClientCapabilities;
use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use mcp_sse::{McpHttpServer, RunningServer, ServerConfig};
use mcp_stack_tests::raw::{RawClient, initialize_at as initialize};
use serde_json::{Value, json};

const DICE: &str = env!("CARGO_BIN_EXE_dice_server");
const CONFORMANCE: &str = env!("CARGO_BIN_EXE_conformance_server");

fn child(program: &str) -> ChildCommand {
    ChildCommand::new(program)
        .arg("--stdio")
        .env("RUST_LOG", "warn")
}

/// A gateway for `command` served on a free port, once its child runs.
async fn serve(
    command: ChildCommand,
    config: GatewayConfig,
    http: ServerConfig,
) -> (Gateway, RunningServer) {
    let gateway = Gateway::new(command, config);
    gateway.wait_ready(Duration::from_secs(20)).await.unwrap();
    let server = McpHttpServer::with_config(gateway.clone(), http)
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    (gateway, server)
}

async fn dice_gateway(config: GatewayConfig) -> (Gateway, RunningServer) {
    serve(child(DICE).arg("--echo"), config, ServerConfig::default()).await
}

/// POSTs one JSON-RPC message to `/mcp`; returns the status, the session header and the
/// JSON answer (the body's last message: the answer after any notifications).
async fn post(
    server: &RunningServer,
    session: Option<&str>,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, Option<String>, Value) {
    let url = server.url("/mcp");
    let reply = RawClient::new()
        .post_with(&url, session, headers, &body)
        .await;
    let answer = reply.last_message();
    (reply.status, reply.session_id, answer)
}

/// Opens a streamable HTTP session by hand; returns its id.
async fn open_session(server: &RunningServer) -> String {
    RawClient::new()
        .open_session(&server.url("/mcp"), None)
        .await
}

#[tokio::test]
async fn initialize_is_answered_from_the_child_and_calls_keep_the_clients_ids() {
    let (gateway, server) = dice_gateway(GatewayConfig::default()).await;
    let (status, session, init) = post(
        &server,
        None,
        &[],
        initialize(json!("init-1"), "2025-06-18"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(session.is_some());
    assert_eq!(init["id"], "init-1");
    // The client asked for an older version than the child speaks: it gets its own.
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init["result"]["serverInfo"]["name"], "Dice Roller");
    assert_eq!(
        init["result"]["capabilities"]["tools"],
        json!({"listChanged": true})
    );
    let session = session.unwrap();
    let headers = [("mcp-protocol-version", "2025-06-18")];
    post(
        &server,
        Some(&session),
        &headers,
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    for id in [json!(7), json!("seven"), json!(0)] {
        let call = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":3}}});
        let (status, _, answer) = post(&server, Some(&session), &headers, call).await;
        assert_eq!(status, 200);
        assert_eq!(answer["id"], id);
        let rolls = answer["result"]["structuredContent"]["result"]
            .as_array()
            .unwrap();
        assert_eq!(rolls.len(), 3, "{answer}");
    }
    // An error of the child passes through unchanged.
    let bad = json!({"jsonrpc":"2.0","id":9,"method":"nope/nothing"});
    let (_, _, answer) = post(&server, Some(&session), &headers, bad).await;
    assert_eq!(
        answer,
        json!({"jsonrpc":"2.0","id":9,"error":{"code":-32601,"message":"Method not found: nope/nothing"}})
    );
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn both_transports_reach_the_child() {
    let (gateway, server) = dice_gateway(GatewayConfig::default()).await;
    for (path, kind) in [
        ("/sse", TransportKind::LegacySse),
        ("/mcp", TransportKind::StreamableHttp),
    ] {
        let client = McpClient::builder(server.url(path))
            .connect()
            .await
            .unwrap();
        assert_eq!(client.transport_kind(), Some(kind));
        let tools = client.list_tools().await.unwrap();
        let names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["roll_dice", "echo"]);
        let result = client
            .call_tool("echo", json!({"token": path}))
            .await
            .unwrap();
        assert_eq!(result.structured_content.unwrap()["result"], path);
        client.close().await.unwrap();
    }
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn progress_and_logs_reach_the_calling_client_with_its_own_token() {
    let (gateway, server) = serve(
        child(CONFORMANCE),
        GatewayConfig::default(),
        ServerConfig::default(),
    )
    .await;
    let logs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&logs);
    let client = McpClient::builder(server.url("/mcp"))
        .on_notification(move |n| seen.lock().unwrap().push((n.method, n.params)))
        .connect()
        .await
        .unwrap();
    let progress = Arc::new(Mutex::new(Vec::new()));
    let steps = Arc::clone(&progress);
    let result = client
        .call_tool_with_progress("test_tool_with_progress", json!({}), move |p| {
            steps
                .lock()
                .unwrap()
                .push((p.progress_token.to_value(), p.progress));
        })
        .await
        .unwrap();
    let steps = progress.lock().unwrap().clone();
    assert_eq!(
        steps,
        vec![
            (json!("progress-0"), 0.0),
            (json!("progress-0"), 50.0),
            (json!("progress-0"), 100.0)
        ]
    );
    // The child saw a token of the gateway's, not the client's.
    let seen_by_child = serde_json::to_value(&result.content[0]).unwrap();
    assert!(
        seen_by_child["text"].as_str().unwrap().starts_with("gw-"),
        "{seen_by_child}"
    );

    client
        .request("logging/setLevel", Some(json!({"level": "info"})))
        .await
        .unwrap();
    client
        .call_tool("test_tool_with_logging", json!({}))
        .await
        .unwrap();
    let messages: Vec<Value> = logs
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, _)| m == "notifications/message")
        .map(|(_, p)| p.clone().unwrap()["data"].clone())
        .collect();
    assert_eq!(
        messages,
        [
            json!("Tool execution started"),
            json!("Tool processing data"),
            json!("Tool execution completed")
        ]
    );
    client.close().await.unwrap();
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn sampling_and_elicitation_of_the_child_are_answered_by_the_client() {
    let (gateway, server) = serve(
        child(CONFORMANCE),
        GatewayConfig::default(),
        ServerConfig::default(),
    )
    .await;
    let capabilities: ClientCapabilities =
        serde_json::from_value(json!({"sampling": {}, "elicitation": {}})).unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&asked);
    for path in ["/mcp", "/sse"] {
        let record = Arc::clone(&record);
        let client = McpClient::builder(server.url(path))
            .capabilities(capabilities.clone())
            .on_input(move |method, params| {
                record.lock().unwrap().push(method.clone());
                async move {
                    Ok(match method.as_str() {
                        "sampling/createMessage" => json!({"role":"assistant","content":{"type":"text","text":format!("echo {}", params["messages"][0]["content"]["text"].as_str().unwrap_or(""))},"model":"test"}),
                        _ => json!({"action":"accept","content":{"response":"yes"}}),
                    })
                }
            })
            .connect()
            .await
            .unwrap();
        let sampled = client
            .call_tool("test_sampling", json!({"prompt": "hi"}))
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&sampled.content[0]).unwrap()["text"],
            "LLM response: echo hi"
        );
        let elicited = client
            .call_tool("test_elicitation", json!({"message": "ok?"}))
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&elicited.content[0]).unwrap()["text"],
            r#"User response: action=accept, content={"response":"yes"}"#
        );
        client.close().await.unwrap();
    }
    assert_eq!(asked.lock().unwrap().len(), 4);
    // A client without the capability: the child's request is refused with -32601 and the
    // tool reports it.
    let client = McpClient::builder(server.url("/mcp"))
        .connect()
        .await
        .unwrap();
    let refused = client
        .call_tool("test_sampling", json!({"prompt": "hi"}))
        .await
        .unwrap();
    let text = serde_json::to_value(&refused.content[0]).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("the client does not support sampling/createMessage"),
        "{text}"
    );
    client.close().await.unwrap();
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn denied_tools_are_hidden_and_their_calls_refused_before_the_child() {
    let config = GatewayConfig {
        tools: ToolFilter::default().deny("echo"),
        ..GatewayConfig::default()
    };
    let (gateway, server) = dice_gateway(config).await;
    let session = open_session(&server).await;
    let headers = [("mcp-protocol-version", "2025-11-25")];
    let (_, _, list) = post(
        &server,
        Some(&session),
        &headers,
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
    )
    .await;
    let names: Vec<_> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("roll_dice")]);
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"token":"x"}}});
    let (status, _, answer) = post(&server, Some(&session), &headers, call).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"Unknown tool: echo"}})
    );
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_crashed_child_fails_its_calls_at_once_and_is_restarted() {
    let (gateway, server) = dice_gateway(GatewayConfig::default()).await;
    let client = McpClient::builder(server.url("/mcp"))
        .connect()
        .await
        .unwrap();
    let pid = gateway.child_pid().await.unwrap();
    let slow = tokio::spawn({
        let client_url = server.url("/mcp");
        async move {
            let client = McpClient::builder(client_url).connect().await.unwrap();
            let started = Instant::now();
            let outcome = client
                .call_tool("echo", json!({"token": "t", "delay_ms": 8000}))
                .await;
            (
                outcome.map(|_| ()).map_err(|e| e.to_string()),
                started.elapsed(),
            )
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (outcome, elapsed) = slow.await.unwrap();
    let error = outcome.unwrap_err();
    assert!(
        error.contains("the MCP server process exited") && error.contains("signal: 9"),
        "{error}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // The next call waits for the restarted child and succeeds.
    let result = client
        .call_tool("echo", json!({"token": "after"}))
        .await
        .unwrap();
    assert_eq!(result.structured_content.unwrap()["result"], "after");
    assert_eq!(gateway.restarts(), 1);
    assert_ne!(gateway.child_pid().await.unwrap(), pid);
    client.close().await.unwrap();
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_call_over_the_call_timeout_gets_the_timeout_error() {
    let http = ServerConfig {
        call_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let (gateway, server) = serve(child(DICE).arg("--echo"), GatewayConfig::default(), http).await;
    let session = open_session(&server).await;
    let call = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"token":"t","delay_ms":3000}}});
    let (status, _, answer) = post(
        &server,
        Some(&session),
        &[("mcp-protocol-version", "2025-11-25")],
        call,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"jsonrpc":"2.0","id":5,"error":{"code":-32001,"message":"Request timed out after 0.3 s"}})
    );
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_2026_client_is_served_by_translation() {
    let (gateway, server) = dice_gateway(GatewayConfig::default()).await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "server/discover"),
    ];
    let discover =
        json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":meta}});
    let (status, session, answer) = post(&server, None, &headers, discover).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(session, None);
    let result = &answer["result"];
    assert_eq!(result["resultType"], "complete");
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "Dice Roller"
    );
    assert_eq!(result["capabilities"].get("logging"), None);
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"token":"m"},"_meta":meta}});
    let (status, _, answer) = post(
        &server,
        None,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        call,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["resultType"], "complete");
    assert_eq!(answer["result"]["structuredContent"]["result"], "m");
    // Our 2026-07-28 client end to end.
    let client = McpClient::builder(server.url("/mcp"))
        .protocol_version(ProtocolVersion::V2026_07_28)
        .connect()
        .await
        .unwrap();
    assert_eq!(client.protocol_version(), ProtocolVersion::V2026_07_28);
    let result = client
        .call_tool("echo", json!({"token": "modern"}))
        .await
        .unwrap();
    assert_eq!(result.structured_content.unwrap()["result"], "modern");
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn per_session_children_start_and_stop_with_their_sessions() {
    let config = GatewayConfig {
        per_session: true,
        ..GatewayConfig::default()
    };
    let (gateway, server) = dice_gateway(config).await;
    assert_eq!(gateway.child_pid().await, None);
    let a = McpClient::builder(server.url("/mcp"))
        .connect()
        .await
        .unwrap();
    let b = McpClient::builder(server.url("/sse"))
        .connect()
        .await
        .unwrap();
    assert_eq!(gateway.session_children(), 2);
    for (client, token) in [(&a, "a"), (&b, "b")] {
        let result = client
            .call_tool("echo", json!({"token": token}))
            .await
            .unwrap();
        assert_eq!(result.structured_content.unwrap()["result"], token);
    }
    a.close().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gateway.session_children() != 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gateway.session_children(), 1);
    // A request outside any session has no child to go to.
    let (status, _, answer) = post(
        &server,
        None,
        &[],
        json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!(-32000)),
        "{answer}"
    );
    b.close().await.unwrap();
    server.shutdown().await.unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_child_gets_only_the_environment_it_is_given() {
    let dir = std::env::temp_dir().join(format!("mcp-gateway-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("env.txt");
    // The wrapper records what the child sees, then becomes the dice server.
    let script = format!(
        "printf '%s|%s|%s' \"$CARGO_MANIFEST_DIR\" \"$GIVEN\" \"$CARGO_PKG_NAME\" > '{}'; exec '{DICE}' --stdio",
        out.display()
    );
    let command = ChildCommand::new("sh")
        .args(["-c", &script])
        .env("GIVEN", "yes")
        .pass_env("CARGO_PKG_NAME");
    let gateway = Gateway::new(command, GatewayConfig::default());
    gateway.wait_ready(Duration::from_secs(20)).await.unwrap();
    // CARGO_MANIFEST_DIR is in this process's environment but not passed: the child has none.
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "|yes|mcp-examples");
    gateway.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
