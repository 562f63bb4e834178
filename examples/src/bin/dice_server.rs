//! The "Dice Roller" MCP server of FastMCP's OpenAI integration guide: `roll_dice(n_dice)` over
//! legacy HTTP+SSE (`/sse`) and streamable HTTP (`/mcp`).
//!
//! Several replicas behind a load balancer share their sessions through Redis:
//! `dice_server --port 8001 --redis redis://127.0.0.1:6379 --replica-id a` (the URL may also come
//! from `MCP_REDIS_URL`). Any replica then serves any request of any session, over both
//! transports, without sticky sessions. `--echo` adds the `echo(token)` tool, `--slow` the
//! `roll_dice_slowly(n_dice, seconds)` tool, a task for clients that ask.
//!
//! `dice_server --stdio` serves the same tools over stdin/stdout instead (newline-delimited
//! JSON-RPC), the way desktop and IDE hosts start MCP servers; logs go to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::Parser;
use mcp_sse::{McpHttpServer, ServerConfig};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "The Dice Roller MCP server (legacy SSE at /sse, streamable HTTP at /mcp)")]
struct Args {
    #[command(flatten)]
    listen: mcp_examples::ListenArgs,
    /// Serve streamable HTTP without sessions (replicas without Redis; see `--redis`).
    #[arg(long)]
    stateless: bool,
    #[command(flatten)]
    replica: mcp_examples::ReplicaArgs,
    #[command(flatten)]
    limits: mcp_examples::LimitArgs,
    /// Also serve `echo(token: str) -> str` (the replica tests use it).
    #[arg(long)]
    echo: bool,
    /// Also serve `roll_dice_slowly(n_dice, seconds)`, which runs as a task for clients that
    /// ask (2026-07-28 `io.modelcontextprotocol/tasks`), and `roll_dice_durably(n_dice,
    /// seconds)`, the same restarted on another replica if its replica stops.
    #[arg(long)]
    slow: bool,
    /// Serve over stdin/stdout (newline-delimited JSON-RPC) instead of HTTP; exits when
    /// stdin closes.
    #[arg(long, conflicts_with = "stateless")]
    stdio: bool,
    #[command(flatten)]
    metrics: mcp_examples::MetricsArgs,
}

/// Runs the server; an error (a port in use, Redis unreachable at start) is printed on one
/// line and the exit code is 1.
#[tokio::main]
async fn main() {
    let code = match run().await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("dice_server: error: {error:#}");
            1
        }
    };
    // Exit here rather than drop the runtime: Tokio reads stdin (`--stdio`) on a blocking
    // thread that the runtime's drop would wait for if stdout failed first.
    std::process::exit(code);
}

async fn run() -> anyhow::Result<()> {
    mcp_examples::init_tracing();
    let args = Args::parse();
    let config = args.limits.apply(ServerConfig {
        stateless: args.stateless,
        ..ServerConfig::default()
    });
    let service = mcp_examples::dice::server_with_tools(args.echo, args.slow)?;
    args.metrics.apply().await?;
    if args.stdio {
        mcp_stdio::StdioServer::new(service).serve_stdio().await?;
        return Ok(());
    }
    let server = McpHttpServer::with_config(service, config);
    let server = args.replica.apply(server).await?;
    let listener = args.listen.bind().await?;
    let addr = listener.local_addr()?;
    println!(
        "Dice Roller MCP server: http://{addr}/sse (legacy SSE), http://{addr}/mcp (streamable HTTP)"
    );
    server.serve_listener(listener, mcp_sse::ctrl_c()).await?;
    Ok(())
}
