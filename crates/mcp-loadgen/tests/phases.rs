//! Phases against real servers on loopback sockets.

use std::time::Duration;

use mcp_loadgen::{Phase, Target, Timing, ToolCall};
use mcp_proto::{McpServer, ToolError};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct RollDice {
    n_dice: u32,
}

async fn roll_dice(args: RollDice) -> Result<Vec<u8>, ToolError> {
    Ok(vec![6; args.n_dice.min(100) as usize])
}

fn timing() -> Timing {
    Timing {
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(300),
        call_timeout: Duration::from_secs(5),
        max_calls_per_session: 1_000_000,
        setup_timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn phases_measure_both_transports_over_loopback() {
    let service = McpServer::builder("Dice")
        .tool("roll_dice", "Rolls dice.", roll_dice)
        .build()
        .unwrap();
    let server = mcp_sse::McpHttpServer::new(service)
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    let call = ToolCall::new("roll_dice", serde_json::json!({"n_dice": 3}));
    let pid = std::process::id();
    for target in [Target::Streamable, Target::LegacySse] {
        let phase = Phase {
            target,
            addr: server.local_addr(),
            sessions: 3,
            token: None,
            call: &call,
            timing: timing(),
        };
        let result = phase.run(&[pid]).await.unwrap();
        assert_eq!(result.errors, 0, "{:?}", result.first_error);
        // A count, not a rate: this shared machine may finish few calls in the window.
        assert!(result.completed > 0, "{target:?}: {result:?}");
        assert!(result.p50 <= result.p99 && result.p99 < Duration::from_secs(5));
        assert!(result.server_cpu.is_some());
        assert_eq!(result.server_cpu_groups, vec![result.server_cpu]);
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn failed_calls_end_their_sessions_and_say_why() {
    // A server without the tool: every call fails, and the phase says why.
    let empty = mcp_sse::McpHttpServer::new(McpServer::builder("Empty").build().unwrap())
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    let call = ToolCall::new("roll_dice", serde_json::json!({"n_dice": 3}));
    let phase = Phase {
        target: Target::Streamable,
        addr: empty.local_addr(),
        sessions: 2,
        token: None,
        call: &call,
        timing: timing(),
    };
    let result = phase.run(&[std::process::id()]).await.unwrap();
    assert_eq!(result.errors, 2);
    assert_eq!(result.completed, 0);
    let first = result.first_error.unwrap();
    assert!(first.starts_with("call 1: request 1 failed: "), "{first}");
    // No server at all: opening fails with the address.
    let addr = empty.local_addr();
    empty.shutdown().await.unwrap();
    let error = Phase { addr, ..phase }.run(&[]).await.unwrap_err();
    assert_eq!(error.to_string(), "opening a streamable session");
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert_eq!(cause, format!("connecting to {addr}"));
}
