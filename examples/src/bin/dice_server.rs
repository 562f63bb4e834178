//! The seed's "Dice Roller" MCP server: `roll_dice(n_dice)` over legacy HTTP+SSE (`/sse`) and
//! streamable HTTP (`/mcp`).
#![allow(clippy::print_stdout)]

use clap::Parser;
use mcp_sse::{McpHttpServer, ServerConfig};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "The Dice Roller MCP server (legacy SSE at /sse, streamable HTTP at /mcp)")]
struct Args {
    #[command(flatten)]
    listen: mcp_examples::ListenArgs,
    /// Serve streamable HTTP without sessions (for replicas behind a load balancer).
    #[arg(long)]
    stateless: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mcp_examples::init_tracing();
    let args = Args::parse();
    let config = ServerConfig {
        stateless: args.stateless,
        ..ServerConfig::default()
    };
    let server = McpHttpServer::with_config(mcp_examples::dice::server()?, config);
    let listener = args.listen.bind().await?;
    let addr = listener.local_addr()?;
    println!(
        "Dice Roller MCP server: http://{addr}/sse (legacy SSE), http://{addr}/mcp (streamable HTTP)"
    );
    server.serve_listener(listener, mcp_sse::ctrl_c()).await?;
    Ok(())
}
