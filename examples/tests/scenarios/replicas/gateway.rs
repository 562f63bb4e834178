//! Two `mcp-gateway` replicas on Redis behind nginx, each with its own `dice_server --stdio
//! --echo` child: a session opened through one gateway is served by the other, over both
//! transports, and ended through either. A 2026-07-28 call that needs input waits in the
//! gateway that runs it: its retry must reach that gateway (the other refuses its
//! `requestState`). (`--per-session` is refused with `--redis`: a session's own child lives in
//! one gateway process, which the other replicas cannot reach; `mcp-gateway`'s CLI tests check
//! the refusal.)

use std::path::Path;
use std::time::Duration;

use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use mcp_stack_tests::cluster::{Cluster, ClusterConfig};
use mcp_stack_tests::raw::{self, RawClient};
use serde_json::{Value, json};

use super::{legacy_session, post_accepted};
use crate::calls::token;

/// How long a legacy stream may take to carry an answer.
const STREAM_WAIT: Duration = Duration::from_secs(10);

/// Two gateways serving `dice_server --stdio --echo`, sharing sessions through Redis.
fn gateway_cluster(name: &str) -> Cluster {
    let dice = env!("CARGO_BIN_EXE_dice_server");
    gateway_cluster_of(name, &[dice, "--stdio", "--echo"])
}

/// Two gateways serving `child`, sharing sessions through Redis. The gateway binary is the
/// one built beside the examples' (`cargo xtask replicas` builds it).
fn gateway_cluster_of(name: &str, child: &[&str]) -> Cluster {
    let gateway = Path::new(env!("CARGO_BIN_EXE_dice_server")).with_file_name("mcp-gateway");
    assert!(
        gateway.is_file(),
        "{} is missing: cargo build -p mcp-gateway (cargo xtask replicas does)",
        gateway.display()
    );
    let config = ClusterConfig::new(&gateway, 2)
        .name(name)
        .arg("--")
        .args(child.iter().copied());
    Cluster::start(config).unwrap()
}

/// A 2026-07-28 `tools/call` of `tool` with `extra` params: the JSON-RPC answer.
async fn call_2026(url: &str, tool: &str, extra: Value) -> Value {
    let mut params = json!({"name": tool, "arguments": {}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
    }});
    if let (Value::Object(params), Value::Object(extra)) = (&mut params, extra) {
        params.extend(extra);
    }
    let response = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let mut data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim);
    match data.rfind(|d| !d.is_empty()) {
        Some(last) => serde_json::from_str(last).unwrap(),
        None => serde_json::from_str(&text).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn a_streamable_session_opened_on_one_gateway_is_served_by_the_other() {
    let cluster = gateway_cluster("gateway-streamable");
    let raw = RawClient::new();
    let mcp = cluster.replica_urls("/mcp");
    let session = raw.open_session(&mcp[0], None).await;
    let lb = cluster.lb_url("/mcp");
    for (id, url) in (10..).zip([&mcp[1], &mcp[0], &mcp[1], &lb, &lb, &lb]) {
        let token = token("gw", id);
        let reply = raw.echo(url, &session, None, id, &token).await;
        assert_eq!(
            (reply.status, reply.echoed()),
            (200, Some(token)),
            "{url} with gateway 0's session: {}",
            reply.describe()
        );
    }
    // Ended on gateway 1, it is gone on gateway 0 too.
    let reply = raw.delete(&mcp[1], &session, None).await;
    assert!(
        (200..300).contains(&reply.status),
        "DELETE: {}",
        reply.describe()
    );
    let reply = raw.echo(&mcp[0], &session, None, 30, "after").await;
    assert_eq!(reply.status, 404, "after DELETE: {}", reply.describe());

    // Our client through nginx (round robin): every call lands on either gateway.
    let client = McpClient::builder(lb.as_str())
        .transport(TransportKind::StreamableHttp)
        .connect()
        .await
        .unwrap();
    for n in 0..6 {
        let token = token("gw-client", n);
        let result = client
            .call_tool("echo", json!({"token": token}))
            .await
            .unwrap();
        assert_eq!(result.structured_content.unwrap()["result"], token.as_str());
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn a_legacy_stream_on_one_gateway_carries_the_answers_to_posts_on_either() {
    let cluster = gateway_cluster("gateway-legacy");
    let raw = RawClient::new();
    let (mut stream, endpoint, answer) = legacy_session(&cluster, &raw, [1, 0], "gateway").await;
    assert_eq!(
        answer["result"]["serverInfo"]["name"], "Dice Roller",
        "{answer}"
    );
    let mut sent = Vec::new();
    for n in 0..4u64 {
        let token = token("gw-legacy", n);
        let replica = (n as usize + 1) % 2;
        let message = raw::echo_request(100 + n, &token, None);
        let what = format!("echo on gateway {replica}");
        post_accepted(&raw, &endpoint(replica), &message, &what).await;
        sent.push((100 + n, token));
    }
    // Each gateway's child answers on its own schedule: the answers come by id, in any order.
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..sent.len() {
        let answer = stream.next_json(STREAM_WAIT).await;
        let id = answer["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no id: {answer}"));
        answers.insert(id, answer);
    }
    for (id, token) in sent {
        let answer = &answers[&id];
        let echoed = &answer["result"]["structuredContent"]["result"];
        assert_eq!(echoed, token.as_str(), "the answer to {id}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn a_call_waiting_for_input_is_resumed_only_by_the_gateway_running_it() {
    let fixture = env!("CARGO_BIN_EXE_conformance_server");
    let cluster = gateway_cluster_of("gateway-input", &[fixture, "--stdio"]);
    let mcp = cluster.replica_urls("/mcp");
    let tool = "test_input_required_result_elicitation";
    let first = call_2026(&mcp[0], tool, json!({})).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let retry = json!({"requestState": first["result"]["requestState"],
        "inputResponses": {"user_name": {"action": "accept", "content": {"name": "Ada"}}}});
    let elsewhere = call_2026(&mcp[1], tool, retry.clone()).await;
    assert_eq!(elsewhere["error"]["code"], -32602, "{elsewhere}");
    assert_eq!(
        elsewhere["error"]["message"],
        "Invalid params: Invalid requestState: requestState failed verification (or issued by \
         another gateway process: a retry must reach the one that issued it)"
    );
    let done = call_2026(&mcp[0], tool, retry).await;
    assert_eq!(
        done["result"]["content"][0]["text"], "Hello, Ada!",
        "{done}"
    );
}
