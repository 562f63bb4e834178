//! The conformance client fixture: our `McpClient` driven through one scenario of the official
//! MCP conformance suite's client leg.
//!
//! The suite runs `conformance_client <server URL>` with `MCP_CONFORMANCE_SCENARIO` (the
//! scenario), `MCP_CONFORMANCE_PROTOCOL_VERSION` (the revision whose wire to speak) and, for
//! some scenarios, `MCP_CONFORMANCE_CONTEXT` (JSON). The process exits 0 when the scenario's
//! flow ran to its end. `cargo xtask conformance` runs it.

#![allow(clippy::print_stderr)]

use std::time::Duration;

use anyhow::{Context, bail};
use mcp_proto::types::ClientCapabilities;
use mcp_proto::{Implementation, ProtocolVersion};
use mcp_sse::client::{McpClient, TransportKind};
use serde_json::{Map, Value, json};

/// What the suite tells the fixture.
#[derive(Debug)]
struct Invocation {
    scenario: String,
    version: ProtocolVersion,
    context: Option<Value>,
    url: String,
}

fn invocation() -> anyhow::Result<Invocation> {
    let url = std::env::args()
        .skip(1)
        .last()
        .context("usage: conformance_client <server URL>")?;
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let version = std::env::var("MCP_CONFORMANCE_PROTOCOL_VERSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ProtocolVersion::LATEST_LEGACY);
    let context = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|c| serde_json::from_str(&c).ok());
    Ok(Invocation {
        scenario,
        version,
        context,
        url,
    })
}

fn capabilities() -> ClientCapabilities {
    ClientCapabilities {
        sampling: Some(Map::new()),
        elicitation: Some(Map::new()),
        ..Default::default()
    }
}

/// The legacy era (2025-11-25 and before): `initialize`, then the scenario's calls.
async fn legacy(inv: &Invocation) -> anyhow::Result<()> {
    let client = McpClient::builder(inv.url.clone())
        .transport(TransportKind::StreamableHttp)
        .protocol_version(inv.version)
        .client_info(Implementation::new("mcp-rs-conformance-client", "1.0.0"))
        .capabilities(capabilities())
        .server_stream(true)
        .request_timeout(Duration::from_secs(20))
        .connect()
        .await
        .context("initialize")?;
    let tools = client.list_tools().await.context("tools/list")?;
    match inv.scenario.as_str() {
        "tools_call" => {
            let r = client
                .call_tool("add_numbers", json!({"a": 2, "b": 3}))
                .await
                .context("tools/call add_numbers")?;
            eprintln!("add_numbers: {:?}", r.content);
        }
        "sse-retry" => {
            let r = client
                .call_tool("test_reconnection", json!({}))
                .await
                .context("tools/call test_reconnection")?;
            eprintln!("test_reconnection: {:?}", r.content);
        }
        "elicitation-sep1034-client-defaults" => {
            let r = client
                .call_tool("test_client_elicitation_defaults", json!({}))
                .await
                .context("tools/call test_client_elicitation_defaults")?;
            eprintln!("test_client_elicitation_defaults: {:?}", r.content);
        }
        _ => {
            // Any other scenario: the handshake and the tool list are the flow.
            if let Some(tool) = tools.first() {
                eprintln!("first tool: {}", tool.name);
            }
        }
    }
    let _ = client.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let inv = invocation()?;
    eprintln!(
        "scenario {} at {} against {}",
        inv.scenario, inv.version, inv.url
    );
    if inv.version.is_stateless() {
        bail!(
            "the 2026-07-28 wire is not supported by this client yet (scenario {})",
            inv.scenario
        );
    }
    let _ = &inv.context;
    legacy(&inv).await
}
