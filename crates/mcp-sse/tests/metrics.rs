//! `/metrics` once the Prometheus recorder is installed: requests by transport, method and
//! outcome, tool latency, sessions open, and limit rejections, after real calls over both
//! transports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mcp_proto::{McpServer, ToolError};
use mcp_sse::client::McpClient;
use mcp_sse::{McpHttpServer, ServerConfig};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, JsonSchema)]
struct Add {
    a: i64,
    b: i64,
}

async fn add(args: Add) -> Result<i64, ToolError> {
    Ok(args.a + args.b)
}

#[tokio::test]
async fn metrics_count_what_both_transports_served() {
    mcp_sse::metrics::install().unwrap();
    let service = McpServer::builder("metrics-test")
        .tool("add", "Adds.", add)
        .build()
        .unwrap();
    let config = ServerConfig {
        max_body_bytes: 4096,
        ..ServerConfig::default()
    };
    let running = McpHttpServer::with_config(service, config)
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    let sse = McpClient::builder(running.url("/sse"))
        .connect()
        .await
        .unwrap();
    sse.call_tool("add", json!({"a": 1, "b": 2})).await.unwrap();
    let http = McpClient::builder(running.url("/mcp"))
        .connect()
        .await
        .unwrap();
    http.call_tool("add", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    http.call_tool("nope", json!({})).await.unwrap_err();
    let too_big = reqwest::Client::new()
        .post(running.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(format!(r#"{{"pad":"{}"}}"#, "x".repeat(5000)))
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);

    let response = reqwest::get(running.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"mcp_requests_total{transport="sse",method="tools/call",outcome="ok"} 1"#,
        r#"mcp_requests_total{transport="streamable_http",method="tools/call",outcome="ok"} 1"#,
        r#"mcp_requests_total{transport="streamable_http",method="tools/call",outcome="error"} 1"#,
        r#"mcp_requests_total{transport="sse",method="initialize",outcome="ok"} 1"#,
        r#"mcp_requests_total{transport="streamable_http",method="notifications/initialized",outcome="notification"} 1"#,
        r#"mcp_tool_call_duration_seconds_count{tool="add",outcome="ok"} 2"#,
        r#"mcp_tool_call_duration_seconds_count{tool="unknown",outcome="error"} 1"#,
        r#"mcp_limit_rejections_total{limit="body_bytes"} 1"#,
        "mcp_sessions_open 2",
        "mcp_calls_in_flight 0",
        "# TYPE mcp_request_duration_seconds histogram",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    sse.close().await.unwrap();
    http.close().await.unwrap();
    running.shutdown().await.unwrap();
}
