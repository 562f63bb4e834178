//! Our `McpClient` as a command-line peer for `cargo xtask interop`: connects to an MCP server,
//! lists its tools, calls `roll_dice` and prints one JSON object on stdout:
//!
//! ```text
//! {"transport":"sse","protocol_version":"2025-11-25","server_info":{...},
//!  "tools":["roll_dice"],"result":{"content":[...],"structuredContent":{"result":[4,1,6]},...}}
//! ```
//!
//! Usage: `interop_client <url> [--token T] [--transport sse|streamable] [--n-dice N]`, or
//! `interop_client <program> --transport stdio [--arg A]...` to start the server as a child
//! process and speak stdio. Without `--transport`, a URL whose path ends in `/sse` selects
//! legacy HTTP+SSE and anything else streamable HTTP. Exits 1, with the reason on stderr, on any failure (connection, HTTP
//! status such as 401, timeout, a JSON-RPC error).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use serde_json::{Value, json};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "List and call roll_dice on an MCP server with our McpClient; prints JSON")]
struct Args {
    /// The server's MCP URL (`http://host:port/sse` or `http://host:port/mcp`), or with
    /// `--transport stdio` the server program to start.
    url: String,
    /// With `--transport stdio`: an argument of the server program (repeatable).
    #[arg(long = "arg", allow_hyphen_values = true)]
    args: Vec<String>,
    /// Bearer token sent as `Authorization: Bearer <token>`.
    #[arg(long)]
    token: Option<String>,
    /// The transport; by default chosen from the URL (`/sse` = legacy SSE).
    #[arg(long, value_enum)]
    transport: Option<Transport>,
    /// How many dice to roll.
    #[arg(long, default_value_t = 3)]
    n_dice: u32,
    /// Deadline for the whole exchange, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

/// The transport to speak.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Transport {
    /// Legacy HTTP+SSE (2024-11-05).
    Sse,
    /// Streamable HTTP (2025-03-26 and later).
    Streamable,
    /// stdio: the server runs as our child process.
    Stdio,
}

impl Transport {
    /// The HTTP transport; `None` for stdio.
    fn http_kind(self) -> Option<TransportKind> {
        match self {
            Transport::Sse => Some(TransportKind::LegacySse),
            Transport::Streamable => Some(TransportKind::StreamableHttp),
            Transport::Stdio => None,
        }
    }
}

/// Starts the server program and connects over stdio.
async fn connect_stdio(args: &Args, timeout: Duration) -> anyhow::Result<McpClient> {
    let command = mcp_stdio::StdioCommand::new(&args.url).args(&args.args);
    let builder = McpClient::transport_builder().request_timeout(timeout);
    Ok(command.connect(builder).await?)
}

/// Connects, lists, calls, closes; returns the JSON report.
async fn exchange(args: &Args) -> anyhow::Result<Value> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let client = if matches!(args.transport, Some(Transport::Stdio)) {
        connect_stdio(args, timeout).await?
    } else {
        connect_http(args, timeout).await?
    };
    report(client, args.n_dice).await
}

/// Connects over HTTP.
async fn connect_http(args: &Args, timeout: Duration) -> anyhow::Result<McpClient> {
    let mut builder = McpClient::builder(args.url.clone())
        .connect_timeout(timeout)
        .request_timeout(timeout);
    if let Some(kind) = args.transport.and_then(Transport::http_kind) {
        builder = builder.transport(kind);
    }
    if let Some(token) = &args.token {
        builder = builder.bearer_token(token);
    }
    Ok(builder.connect().await?)
}

/// Lists, calls, closes; returns the JSON report.
async fn report(client: McpClient, n_dice: u32) -> anyhow::Result<Value> {
    let transport = match client.transport_kind() {
        Some(TransportKind::LegacySse) => "sse",
        None => "stdio",
        Some(_) => "streamable",
    };
    let tools = client.list_tools().await?;
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    let result = client
        .call_tool("roll_dice", json!({ "n_dice": n_dice }))
        .await?;
    let report = json!({
        "transport": transport,
        "protocol_version": client.protocol_version().to_string(),
        "server_info": client.server_info(),
        "tools": names,
        "result": result,
    });
    client.close().await?;
    Ok(report)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let deadline = Duration::from_secs(args.timeout_secs.saturating_add(5));
    match tokio::time::timeout(deadline, exchange(&args)).await {
        Ok(Ok(report)) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            eprintln!("interop_client: error: {error:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("interop_client: error: no result within {deadline:?}");
            ExitCode::FAILURE
        }
    }
}
