//! The stdio server over in-process pipes: framing errors, the session, server-to-client
//! requests, progress, cancellation and the end of input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mcp_proto::client_features::ElicitParams;
use mcp_proto::types::ProgressParams;
use mcp_proto::{McpServer, NoArgs, ToolContext, ToolError};
use mcp_stdio::{StdioConfig, StdioServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::task::JoinHandle;

#[derive(Deserialize, JsonSchema)]
struct Sleep {
    ms: u64,
}

async fn sleep(ctx: ToolContext, args: Sleep) -> Result<String, ToolError> {
    for step in 1..=2u32 {
        let _ = ctx.progress(f64::from(step), Some(2.0), None).await;
    }
    tokio::time::sleep(Duration::from_millis(args.ms)).await;
    Ok(format!("slept {} ms", args.ms))
}

async fn ask_name(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
    let schema =
        json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]});
    let Value::Object(schema) = schema else {
        return Err(ToolError::new("schema"));
    };
    let answer = ctx
        .elicit_as("name", ElicitParams::form("Your name?", schema))
        .await?;
    let name = answer.content.and_then(|c| c.get("name").cloned());
    Ok(format!(
        "hello {}",
        name.and_then(|n| n.as_str().map(str::to_owned))
            .unwrap_or_default()
    ))
}

struct Peer {
    input: DuplexStream,
    output: Lines<BufReader<DuplexStream>>,
    server: JoinHandle<Result<(), mcp_stdio::Error>>,
}

impl Peer {
    fn start(config: StdioConfig) -> Self {
        let service = McpServer::builder("stdio-test")
            .tool("sleep", "Sleeps.", sleep)
            .tool("ask_name", "Asks for a name.", ask_name)
            .build()
            .unwrap();
        let (input, server_in) = tokio::io::duplex(1 << 16);
        let (server_out, output) = tokio::io::duplex(1 << 16);
        let server =
            tokio::spawn(StdioServer::with_config(service, config).serve(server_in, server_out));
        Self {
            input,
            output: BufReader::new(output).lines(),
            server,
        }
    }

    async fn send_raw(&mut self, line: &str) {
        self.input.write_all(line.as_bytes()).await.unwrap();
        self.input.write_all(b"\n").await.unwrap();
    }

    async fn send(&mut self, message: Value) {
        self.send_raw(&message.to_string()).await;
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(5), self.output.next_line())
            .await
            .expect("a line within 5 s")
            .unwrap()
            .expect("the output is open");
        serde_json::from_str(&line).unwrap()
    }

    async fn initialize(&mut self) {
        self.send(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},
            "clientInfo":{"name":"t","version":"1"}}}),
        )
        .await;
        let init = self.next().await;
        assert_eq!(init["id"], 0);
        assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
        self.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
    }
}

#[tokio::test]
async fn bad_lines_get_errors_and_the_connection_goes_on() {
    let mut peer = Peer::start(StdioConfig {
        max_line_bytes: 256,
        ..StdioConfig::default()
    });
    peer.send_raw(&format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(300)
    ))
    .await;
    assert_eq!(
        peer.next().await,
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,
            "message":"Invalid request: the message is 349 bytes, over the 256-byte limit of this server"}})
    );
    peer.send_raw("{\"jsonrpc\":").await;
    let parse = peer.next().await;
    assert_eq!(parse["error"]["code"], -32700);
    assert_eq!(parse["id"], Value::Null);
    peer.send(json!({"jsonrpc":"2.0","id":"x"})).await;
    assert_eq!(peer.next().await["error"]["code"], -32600);
    peer.send_raw("   ").await;
    peer.initialize().await;
    peer.send(json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await;
    assert_eq!(
        peer.next().await,
        json!({"jsonrpc":"2.0","id":1,"result":{}})
    );
}

#[tokio::test]
async fn progress_then_result_and_eof_waits_for_running_calls() {
    let mut peer = Peer::start(StdioConfig::default());
    peer.initialize().await;
    peer.send(
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"sleep","arguments":{"ms":200},"_meta":{"progressToken":"p"}}}),
    )
    .await;
    peer.input.shutdown().await.unwrap();
    for step in 1..=2 {
        let note = peer.next().await;
        assert_eq!(note["method"], "notifications/progress");
        let params: ProgressParams = serde_json::from_value(note["params"].clone()).unwrap();
        assert_eq!(params.progress, f64::from(step));
        assert_eq!(params.total, Some(2.0));
    }
    let result = peer.next().await;
    assert_eq!(result["id"], 2);
    assert_eq!(result["result"]["content"][0]["text"], "slept 200 ms");
    tokio::time::timeout(Duration::from_secs(5), peer.server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(peer.output.next_line().await.unwrap(), None);
}

#[tokio::test]
async fn a_cancelled_call_is_not_answered_and_eof_after_grace_cancels() {
    let mut peer = Peer::start(StdioConfig {
        shutdown_grace: Duration::from_millis(100),
        ..StdioConfig::default()
    });
    peer.initialize().await;
    peer.send(json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":60000}}}))
        .await;
    peer.send(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}))
        .await;
    peer.send(json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":60000}}}))
        .await;
    peer.send(json!({"jsonrpc":"2.0","id":5,"method":"ping"}))
        .await;
    assert_eq!(peer.next().await["id"], 5);
    peer.input.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), peer.server)
        .await
        .expect("the server stops after the grace period")
        .unwrap()
        .unwrap();
    // Neither sleeping call answered: 3 was cancelled, 4 was cut by the end of input.
    assert_eq!(peer.output.next_line().await.unwrap(), None);
}

#[tokio::test]
async fn elicitation_travels_as_a_server_request_on_stdout() {
    let mut peer = Peer::start(StdioConfig::default());
    peer.initialize().await;
    peer.send(json!({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"ask_name","arguments":{}}}))
        .await;
    let question = peer.next().await;
    assert_eq!(question["method"], "elicitation/create");
    assert_eq!(question["params"]["message"], "Your name?");
    let id = question["id"].clone();
    peer.send(
        json!({"jsonrpc":"2.0","id":id,"result":{"action":"accept","content":{"name":"Ada"}}}),
    )
    .await;
    let result = peer.next().await;
    assert_eq!(result["id"], 6);
    assert_eq!(result["result"]["content"][0]["text"], "hello Ada");
}

#[tokio::test]
async fn requests_beyond_the_in_flight_bound_are_refused() {
    let mut peer = Peer::start(StdioConfig {
        max_in_flight: 1,
        ..StdioConfig::default()
    });
    peer.initialize().await;
    peer.send(json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":300}}}))
        .await;
    peer.send(json!({"jsonrpc":"2.0","id":8,"method":"ping"}))
        .await;
    assert_eq!(
        peer.next().await,
        json!({"jsonrpc":"2.0","id":8,"error":{"code":-32000,"message":"Server busy: 1 requests are already running"}})
    );
    assert_eq!(peer.next().await["id"], 7);
}

#[tokio::test]
async fn a_2026_request_is_served_without_initialize() {
    let mut peer = Peer::start(StdioConfig::default());
    peer.send(
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"sleep","arguments":{"ms":1},
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                 "io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},
                 "io.modelcontextprotocol/clientCapabilities":{}}}}),
    )
    .await;
    let result = peer.next().await;
    assert_eq!(result["id"], 1);
    assert_eq!(result["result"]["resultType"], "complete");
    assert_eq!(result["result"]["content"][0]["text"], "slept 1 ms");
}
