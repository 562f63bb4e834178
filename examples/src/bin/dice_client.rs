//! The Python call of FastMCP's OpenAI integration guide, in Rust: ask the Responses API to
//! "Roll a few dice!" with the dice server as a remote `mcp` tool.
//!
//! With `OPENAI_API_KEY` set and `--server-url` naming a public server, it calls OpenAI. Without,
//! it runs the whole flow on this machine: the dice server and the local Responses endpoint
//! start in-process. `--auth` protects the dice server with a bearer JWT and shows both the
//! guide's 424 (no token) and the authorized call.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mcp_auth::{DEV_ISSUER, JwtVerifier, ResourceServer, RsaKeyPair};
use mcp_sse::McpHttpServer;
use responses_client::{
    ApprovalDecision, ApprovalLoop, McpTool, OpenAiResponses, RequireApproval, mcp_request,
};
use responses_local::LocalResponses;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Roll dice through the Responses API and a remote MCP tool")]
struct Args {
    /// The MCP server URL (`.../sse` or `.../mcp`). Default: a dice server started in-process.
    #[arg(long)]
    server_url: Option<String>,
    /// A bearer token for the MCP server.
    #[arg(long)]
    token: Option<String>,
    /// Run the in-process dice server behind bearer-JWT auth and show the 424 without a token.
    #[arg(long)]
    auth: bool,
    /// Use streamable HTTP (`/mcp`) instead of legacy SSE (`/sse`) for the in-process server.
    #[arg(long)]
    streamable: bool,
    /// The model.
    #[arg(long, default_value = "gpt-4.1")]
    model: String,
    /// The prompt.
    #[arg(long, default_value = "Roll a few dice!")]
    input: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mcp_examples::init_tracing_quiet();
    let args = Args::parse();
    let use_openai = std::env::var("OPENAI_API_KEY").is_ok() && args.server_url.is_some();

    // The MCP server: given, or in-process (optionally behind auth).
    let mut token = args.token.clone();
    let mut _dice = None;
    let server_url = match &args.server_url {
        Some(url) => url.clone(),
        None => {
            let (url, minted, handle) = start_dice_server(args.auth, args.streamable).await?;
            if minted.is_some() {
                token = minted;
            }
            _dice = Some(handle);
            url
        }
    };

    // The Responses API: OpenAI, or the local endpoint.
    let mut _endpoint = None;
    let api = if use_openai {
        println!("Responses API: OpenAI (OPENAI_API_KEY is set)");
        OpenAiResponses::builder()
            .timeout(Duration::from_secs(120))
            .build()
    } else {
        let endpoint = LocalResponses::builder()
            .build()?
            .spawn("127.0.0.1:0")
            .await?;
        println!(
            "Responses API: local endpoint at {} (no OPENAI_API_KEY)",
            endpoint.base_url()
        );
        let api = OpenAiResponses::builder()
            .base_url(endpoint.base_url())
            .api_key(endpoint.api_key())
            .timeout(Duration::from_secs(60))
            .build();
        _endpoint = Some(endpoint);
        api
    };
    println!("MCP server: {server_url}");

    let approve = |_: &_| ApprovalDecision::approve();
    let tool = |with_token: Option<&str>| {
        let t = McpTool::new("dice_server", &server_url).require_approval(RequireApproval::Never);
        match with_token {
            Some(tok) => t.bearer_token(tok),
            None => t,
        }
    };

    if args.auth {
        println!("\n> {} (without a token)", args.input);
        let request = mcp_request(&args.model, &args.input, [tool(None)]);
        match ApprovalLoop::new().run(&api, request, &approve).await {
            Ok(r) => println!(
                "unexpected success: {}",
                r.output_text().unwrap_or_default()
            ),
            Err(e) => println!("{e}"),
        }
    }

    println!("\n> {}", args.input);
    let request = mcp_request(&args.model, &args.input, [tool(token.as_deref())]);
    let response = ApprovalLoop::new()
        .run(&api, request, &approve)
        .await
        .context("the Responses API call failed")?;
    println!("{}", response.output_text().unwrap_or_default());
    Ok(())
}

/// A running in-process dice server.
enum DiceServer {
    /// Kept alive while the demo runs.
    Plain { _running: mcp_sse::RunningServer },
    /// The auth-protected server's task.
    Auth(tokio::task::JoinHandle<()>),
}

impl Drop for DiceServer {
    fn drop(&mut self) {
        if let DiceServer::Auth(task) = self {
            task.abort();
        }
    }
}

async fn start_dice_server(
    auth: bool,
    streamable: bool,
) -> anyhow::Result<(String, Option<String>, DiceServer)> {
    let path = if streamable { "/mcp" } else { "/sse" };
    let mcp = McpHttpServer::new(mcp_examples::dice::server()?);
    if !auth {
        let running = mcp.spawn("127.0.0.1:0").await?;
        return Ok((
            running.url(path),
            None,
            DiceServer::Plain { _running: running },
        ));
    }
    let key_pair = RsaKeyPair::generate()?;
    let token = key_pair.create_token().audience("dice-server").sign()?;
    println!("\n---\n\n🔑 Dice Roller access token:\n\n{token}\n\n---\n");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let verifier =
        JwtVerifier::from_public_key_pem(&key_pair.public_key_pem())?.audience("dice-server");
    let app = ResourceServer::new(&format!("http://{addr}/mcp"), verifier)?
        .authorization_server(DEV_ISSUER)
        .protect(mcp.router());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("dice server failed: {e}");
        }
    });
    Ok((
        format!("http://{addr}{path}"),
        Some(token),
        DiceServer::Auth(task),
    ))
}
