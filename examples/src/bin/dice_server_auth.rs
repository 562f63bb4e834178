//! The authenticated "Dice Roller" of FastMCP's OpenAI integration guide: a development RSA
//! key pair, a token for audience `dice-server` printed at start, and every MCP route behind
//! bearer-JWT verification.
//!
//! Replicas share one key pair (`--private-key-file`, e.g. written by `jwt_tool mint`) and
//! their sessions through Redis (`--redis URL` or `MCP_REDIS_URL`, `--replica-id`). A session
//! belongs to the token's subject (`sub`, `--subject` for the printed token): the same session
//! id with another subject's token is 404 on every replica. `--echo` adds the `echo(token)`
//! tool.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use clap::Parser;
use mcp_auth::{DEV_ISSUER, JwtVerifier, ResourceServer, RsaKeyPair};
use mcp_sse::McpHttpServer;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "The Dice Roller MCP server behind bearer-JWT auth (audience dice-server)")]
struct Args {
    #[command(flatten)]
    listen: mcp_examples::ListenArgs,
    /// Also write the minted token to this file (for scripts).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Also write the public key (PEM) to this file.
    #[arg(long)]
    public_key_file: Option<PathBuf>,
    /// Load the key pair from this PKCS#8 PEM private key instead of generating one.
    #[arg(long)]
    private_key_file: Option<PathBuf>,
    /// The audience tokens must carry.
    #[arg(long, default_value = "dice-server")]
    audience: String,
    /// The subject (`sub`) of the printed token.
    #[arg(long, default_value = mcp_auth::DEV_SUBJECT)]
    subject: String,
    #[command(flatten)]
    replica: mcp_examples::ReplicaArgs,
    #[command(flatten)]
    limits: mcp_examples::LimitArgs,
    /// Also serve `echo(token: str) -> str` (the replica tests use it).
    #[arg(long)]
    echo: bool,
    #[command(flatten)]
    metrics: mcp_examples::MetricsArgs,
}

/// Runs the server; an error (a port in use, Redis unreachable at start) is printed on one
/// line and the exit code is 1.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dice_server_auth: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    mcp_examples::init_tracing();
    let args = Args::parse();
    args.metrics.apply().await?;

    // Development and testing only, as in the guide: generate a key pair and mint a token.
    let key_pair = match &args.private_key_file {
        Some(path) => RsaKeyPair::from_private_key_pem(&std::fs::read_to_string(path)?)?,
        None => RsaKeyPair::generate()?,
    };
    let access_token = key_pair
        .create_token()
        .audience(&args.audience)
        .subject(&args.subject)
        .sign()?;

    let verifier =
        JwtVerifier::from_public_key_pem(&key_pair.public_key_pem())?.audience(&args.audience);
    let listener = args.listen.bind().await?;
    let addr = listener.local_addr()?;
    let resource = format!("http://{addr}/mcp");
    let auth = ResourceServer::new(&resource, verifier)?.authorization_server(DEV_ISSUER);

    let config = args.limits.apply(mcp_sse::ServerConfig::default());
    let mcp = McpHttpServer::with_config(mcp_examples::dice::server_with_echo(args.echo)?, config);
    let mcp = args.replica.apply(mcp).await?;
    // Health, readiness and metrics stay outside auth: load balancers and Prometheus call
    // them without tokens.
    let app = auth.protect(mcp.router()).merge(mcp.health_router());

    if let Some(path) = &args.token_file {
        std::fs::write(path, &access_token)?;
    }
    if let Some(path) = &args.public_key_file {
        std::fs::write(path, key_pair.public_key_pem())?;
    }
    // The guide prints the token; do NOT do this in production.
    println!("\n---\n\n🔑 Dice Roller access token:\n\n{access_token}\n\n---\n");
    println!(
        "Dice Roller MCP server (auth): http://{addr}/sse (legacy SSE), http://{addr}/mcp (streamable HTTP)"
    );

    mcp.serve_app(app, listener, mcp_sse::ctrl_c()).await?;
    Ok(())
}
