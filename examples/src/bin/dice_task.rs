//! A long-running tool call as a task, end to end: `roll_dice_slowly(n_dice, seconds)` is
//! started as a task (2026-07-28 `io.modelcontextprotocol/tasks`), the client gets the task at
//! once, polls `tasks/get` at the interval the server asks for, and reads the result inlined
//! in the completed task. Every request is short, whatever the call's length: no proxy
//! timeout cuts it, and any replica sharing the task store can answer the polls.
//!
//! Without `--server-url` a dice server (with `--slow`) starts in-process; with one, it must
//! serve `roll_dice_slowly` (`dice_server --slow`). `--cancel-after` cancels the task instead.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use mcp_proto::ProtocolVersion;
use mcp_proto::task::TaskStatus;
use mcp_sse::McpHttpServer;
use mcp_sse::client::{McpClient, ToolCallStart};
use serde_json::json;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Roll dice slowly as an MCP task and follow it to its result")]
struct Args {
    /// The MCP server's streamable HTTP URL (`.../mcp`). Default: a dice server in-process.
    #[arg(long)]
    server_url: Option<String>,
    /// How many dice.
    #[arg(long, default_value_t = 3)]
    n_dice: u32,
    /// How long the roll takes, in seconds.
    #[arg(long, default_value_t = 2)]
    seconds: u32,
    /// Cancel the task after this many milliseconds instead of waiting for it.
    #[arg(long)]
    cancel_after: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mcp_examples::init_tracing_quiet();
    let args = Args::parse();
    let mut local = None;
    let url = match &args.server_url {
        Some(url) => url.clone(),
        None => {
            let service = mcp_examples::dice::server_with_tools(false, true)?;
            let running = McpHttpServer::new(service).spawn("127.0.0.1:0").await?;
            let url = running.url("/mcp");
            local = Some(running);
            url
        }
    };
    let client = McpClient::builder(url.clone())
        .protocol_version(ProtocolVersion::V2026_07_28)
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let arguments = json!({"n_dice": args.n_dice, "seconds": args.seconds});
    let task = match client
        .start_tool_task("roll_dice_slowly", arguments)
        .await?
    {
        ToolCallStart::Task(task) => task,
        ToolCallStart::Done(result) => bail!("the server ran the call at once: {result:?}"),
        _ => bail!("an answer this example does not know"),
    };
    println!("task {} is {:?}", task.task_id, task.status);
    if let Some(ms) = args.cancel_after {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        client.cancel_task(&task.task_id).await?;
        let after = client.get_task(&task.task_id).await?;
        println!("cancelled: the task is {:?}", after.status);
    } else {
        let poll = Duration::from_millis(task.poll_interval_ms.unwrap_or(500));
        loop {
            let now = client.get_task(&task.task_id).await?;
            println!("  {:?}", now.status);
            if now.status != TaskStatus::Working {
                break;
            }
            tokio::time::sleep(poll).await;
        }
        let result = client
            .wait_task(
                &task.task_id,
                Duration::from_secs(u64::from(args.seconds) + 30),
            )
            .await?;
        let rolls = result.structured_content.unwrap_or_default();
        println!("rolled: {}", rolls["result"]);
    }
    if let Some(running) = local {
        running.shutdown().await?;
    }
    Ok(())
}
