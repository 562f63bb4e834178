//! The local stand-in for OpenAI's Responses API (`POST /v1/responses` with `mcp` tools).
#![allow(clippy::print_stdout)]

use clap::Parser;
use responses_local::LocalResponses;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    about = "A local, faithful stand-in for OpenAI's POST /v1/responses with remote MCP tools"
)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mcp_examples::init_tracing();
    let args = Args::parse();
    let listener =
        tokio::net::TcpListener::bind(mcp_examples::bind_address(&args.host, args.port)).await?;
    println!(
        "Local Responses endpoint: OPENAI_BASE_URL=http://{}/v1",
        listener.local_addr()?
    );
    let endpoint = LocalResponses::builder().build()?;
    tokio::select! {
        r = endpoint.serve(listener) => r?,
        _ = mcp_sse::ctrl_c() => {}
    }
    Ok(())
}
