//! One `tools/call` through the whole server, bytes in and bytes out (`decode`, dispatch to an
//! in-memory dice tool, serialize), against plain `serde_json` parse and serialize of the same
//! bytes in the same run, both through `McpService::handle` + `Message::to_vec` and through
//! `McpService::handle_encoded` (what transports call). Run with
//! `cargo bench -p mcp-proto --bench dispatch`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use divan::{Bencher, black_box};
use mcp_proto::{
    Decoded, McpServer, McpService, Message, MessageContext, ProtocolVersion, Session, ToolError,
    decode,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// The request every benchmark reads.
const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":3}}}"#;

#[derive(Deserialize, JsonSchema)]
struct RollDice {
    /// How many dice to roll.
    #[schemars(range(min = 1, max = 100))]
    n_dice: u32,
}

async fn roll_dice(args: RollDice) -> Result<Vec<u8>, ToolError> {
    Ok((0..args.n_dice).map(|i| (i % 6 + 1) as u8).collect())
}

fn main() {
    divan::main();
}

/// A server with the dice tool and a session initialized at `version`.
fn setup(version: ProtocolVersion) -> (McpServer, Arc<Session>) {
    let server = McpServer::builder("Dice Roller")
        .tool(
            "roll_dice",
            "Roll `n_dice` 6-sided dice and return the results.",
            roll_dice,
        )
        .build()
        .unwrap();
    let session = Arc::new(Session::new(Some("bench".into())));
    let init = Message::request(
        0,
        "initialize",
        Some(
            json!({"protocolVersion": version.as_str(), "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"}}),
        ),
    );
    futures::executor::block_on(server.handle(init, MessageContext::new(Arc::clone(&session))))
        .unwrap();
    (server, session)
}

/// Bytes in, bytes out through `decode`, `McpServer::handle` and `Message::to_vec`.
fn call_once(server: &McpServer, session: &Arc<Session>, bytes: &[u8]) -> Vec<u8> {
    let Ok(Decoded::Single(message)) = decode(bytes) else {
        panic!("not a single message")
    };
    let reply = futures::executor::block_on(
        server.handle(message, MessageContext::new(Arc::clone(session))),
    );
    reply.unwrap().to_vec()
}

/// Bytes in, bytes out through `decode` and `McpService::handle_encoded`.
fn call_once_encoded(server: &McpServer, session: &Arc<Session>, bytes: &[u8]) -> Vec<u8> {
    let Ok(Decoded::Single(message)) = decode(bytes) else {
        panic!("not a single message")
    };
    let reply = futures::executor::block_on(
        server.handle_encoded(message, MessageContext::new(Arc::clone(session))),
    );
    reply.unwrap().bytes
}

/// The MCP path at each version (2025-06-18 and later add `structuredContent`).
#[divan::bench(args = [ProtocolVersion::V2024_11_05, ProtocolVersion::V2025_06_18, ProtocolVersion::V2025_11_25])]
fn mcp_tools_call(bencher: Bencher<'_, '_>, version: ProtocolVersion) {
    let (server, session) = setup(version);
    let out = call_once(&server, &session, CALL);
    assert!(
        String::from_utf8_lossy(&out).contains(r#""text":"[1,2,3]""#),
        "{}",
        String::from_utf8_lossy(&out)
    );
    bencher.bench_local(|| call_once(&server, &session, black_box(CALL)));
}

/// The encoded path at each version: the same bytes, no `Value` built for the result.
#[divan::bench(args = [ProtocolVersion::V2024_11_05, ProtocolVersion::V2025_06_18, ProtocolVersion::V2025_11_25])]
fn mcp_tools_call_encoded(bencher: Bencher<'_, '_>, version: ProtocolVersion) {
    let (server, session) = setup(version);
    let out = call_once_encoded(&server, &session, CALL);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&call_once(&server, &session, CALL))
    );
    bencher.bench_local(|| call_once_encoded(&server, &session, black_box(CALL)));
}

/// The baseline: `serde_json` parse to a `Value` and serialize, of the same bytes.
#[divan::bench]
fn serde_json_baseline(bencher: Bencher<'_, '_>) {
    bencher.bench_local(|| {
        let value: Value = serde_json::from_slice(black_box(CALL)).unwrap();
        serde_json::to_vec(&value).unwrap()
    });
}
