//! The local stand-in for OpenAI's Responses API (`POST /v1/responses` with `mcp` tools).
//!
//! Safe on a developer's laptop by default: it answers only loopback `Host`/`Origin` (see
//! `--allow-host`, `--allow-any-host`) and requests carrying its API key, which it generates and
//! prints at start unless one is given (`--api-key` or `OPENAI_API_KEY`).
#![allow(clippy::print_stdout)]

use std::time::Duration;

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
    /// The API key clients must send as `Authorization: Bearer <key>`. Default: a random key,
    /// printed at start.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Also accept this name in `Host` and `Origin` besides 127.0.0.1, localhost and [::1]
    /// (repeat for more names).
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// Accept any `Host` and `Origin` (only behind a proxy or tunnel that checks them: a web page
    /// can otherwise reach the endpoint by DNS rebinding).
    #[arg(long)]
    allow_any_host: bool,
    /// The most `mcp` tools one request may carry.
    #[arg(long, default_value_t = responses_local::DEFAULT_MAX_MCP_TOOLS)]
    max_mcp_tools: usize,
    /// How many bytes of responses and history the store keeps.
    #[arg(long, default_value_t = responses_local::DEFAULT_STORE_MAX_BYTES)]
    store_max_bytes: usize,
    /// How many seconds a stored response is kept.
    #[arg(long, default_value_t = responses_local::DEFAULT_STORE_TTL.as_secs())]
    store_ttl_secs: u64,
}

impl Args {
    /// The endpoint these arguments describe.
    fn endpoint(&self) -> anyhow::Result<LocalResponses> {
        let mut builder = LocalResponses::builder()
            .max_mcp_tools(self.max_mcp_tools)
            .store_max_bytes(self.store_max_bytes)
            .store_ttl(Duration::from_secs(self.store_ttl_secs));
        if let Some(key) = &self.api_key {
            builder = builder.api_key(key);
        }
        for name in &self.allow_hosts {
            builder = builder.allow_host(name);
        }
        if self.allow_any_host {
            builder = builder.allow_any_host();
        }
        Ok(builder.build()?)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mcp_examples::init_tracing();
    let args = Args::parse();
    let endpoint = args.endpoint()?;
    let listener =
        tokio::net::TcpListener::bind(mcp_examples::bind_address(&args.host, args.port)).await?;
    println!(
        "Local Responses endpoint: OPENAI_BASE_URL=http://{}/v1",
        listener.local_addr()?
    );
    if args.api_key.is_none() {
        println!(
            "API key (generated; choose one with --api-key): OPENAI_API_KEY={}",
            endpoint.api_key()
        );
    }
    tokio::select! {
        r = endpoint.serve(listener) => r?,
        _ = mcp_sse::ctrl_c() => {}
    }
    Ok(())
}
