//! Two `mcp-gateway` replicas on Redis behind nginx, each with its own `dice_server --stdio
//! --echo` child: a session opened through one gateway is served by the other, over both
//! transports, and ended through either. (`--per-session` is refused with `--redis`: a
//! session's own child lives in one gateway process, which the other replicas cannot reach;
//! `mcp-gateway`'s CLI tests check the refusal.)

use std::path::Path;
use std::time::Duration;

use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use mcp_stack_tests::cluster::{Cluster, ClusterConfig};
use serde_json::json;

use crate::calls::token;
use crate::raw::{self, RawClient};

/// How long a legacy stream may take to carry an answer.
const STREAM_WAIT: Duration = Duration::from_secs(10);

/// Two gateways serving `dice_server --stdio --echo`, sharing sessions through Redis. The
/// gateway binary is the one built beside the examples' (`cargo xtask replicas` builds it).
fn gateway_cluster(name: &str) -> Cluster {
    let dice = Path::new(env!("CARGO_BIN_EXE_dice_server"));
    let gateway = dice.with_file_name("mcp-gateway");
    assert!(
        gateway.is_file(),
        "{} is missing: cargo build -p mcp-gateway (cargo xtask replicas does)",
        gateway.display()
    );
    let child = dice.to_string_lossy().into_owned();
    let config = ClusterConfig::new(&gateway, 2).name(name).args([
        "--",
        child.as_str(),
        "--stdio",
        "--echo",
    ]);
    Cluster::start(config).unwrap()
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
async fn a_legacy_stream_on_one_gateway_carries_the_answers_to_posts_on_the_other() {
    let cluster = gateway_cluster("gateway-legacy");
    let raw = RawClient::new();
    let (mut stream, id) = raw.open_legacy(&cluster.replica_url(0, "/sse"), None).await;
    let endpoint = |i: usize| cluster.replica_url(i, &format!("/messages/?session_id={id}"));
    let reply = raw
        .post(&endpoint(1), None, None, &raw::initialize_request(1))
        .await;
    assert_eq!(
        reply.status,
        202,
        "initialize on gateway 1: {}",
        reply.describe()
    );
    let answer = stream.next_json(STREAM_WAIT).await;
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(
        answer["result"]["serverInfo"]["name"], "Dice Roller",
        "{answer}"
    );
    let reply = raw
        .post(&endpoint(0), None, None, &raw::initialized())
        .await;
    assert_eq!(reply.status, 202, "initialized: {}", reply.describe());
    let mut sent = Vec::new();
    for n in 0..4u64 {
        let token = token("gw-legacy", n);
        let replica = (n as usize + 1) % 2;
        let message = raw::echo_request(100 + n, &token, None);
        let reply = raw.post(&endpoint(replica), None, None, &message).await;
        assert_eq!(
            reply.status,
            202,
            "echo on gateway {replica}: {}",
            reply.describe()
        );
        sent.push((100 + n, token));
    }
    for (id, token) in sent {
        let answer = stream.next_json(STREAM_WAIT).await;
        assert_eq!(answer["id"], id, "out of order: {answer}");
        let echoed = &answer["result"]["structuredContent"]["result"];
        assert_eq!(echoed, token.as_str(), "the answer to {id}: {answer}");
    }
}
