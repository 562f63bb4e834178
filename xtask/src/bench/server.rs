//! `cargo xtask bench serve`: the servers the benchmark measures, each in its own process so
//! that it can be pinned to its own core.
//!
//! - `echo`: a bare axum `POST /echo` that parses the JSON body and answers a fixed JSON-RPC
//!   result (the same shape as a `roll_dice` result) carrying the request's id: the ceiling of
//!   what any JSON-over-HTTP server can do on this machine.
//! - `dice`: [`mcp_sse::McpHttpServer`] serving the `Dice Roller` with `roll_dice` over legacy
//!   SSE (`/sse`, `/messages/`) and streamable HTTP (`/mcp`).
//! - `dice-auth`: the same behind [`mcp_auth::ResourceServer`] (bearer JWT, audience
//!   `dice-server`). The public key comes from `--public-key <PEM file>`; without it the server
//!   generates a development key pair and prints a token.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderValue, StatusCode, header};
use mcp_proto::{McpServer, ToolError};
use mcp_sse::{McpHttpServer, ServerConfig};
use rand::Rng;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::net::TcpListener;

/// The audience of the tokens the `dice-auth` server accepts.
pub const AUDIENCE: &str = "dice-server";
/// The path of the echo endpoint.
pub const ECHO_PATH: &str = "/echo";
/// The echo answered as one SSE `message` event, written at once (a body of known length).
pub const ECHO_SSE_PATH: &str = "/echo-sse";
/// The echo answered as an SSE stream the way `mcp-sse` writes one: a `retry` prefix at once,
/// the event from a spawned task, then the end of the chunked body.
pub const ECHO_SSE_STREAM_PATH: &str = "/echo-sse-stream";
/// The fixed result the echo server answers (the shape of a `roll_dice` result).
const ECHO_RESULT: &str = r#"{"content":[{"type":"text","text":"[4,2,6]"}],"structuredContent":{"result":[4,2,6]},"isError":false}"#;

/// Which server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Bare axum JSON endpoint: the ceiling.
    Echo,
    /// Our MCP server with the dice tool, both transports.
    Dice,
    /// The dice server behind the bearer JWT layer.
    DiceAuth,
}

impl Mode {
    /// The name used on the command line and in log file names.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Dice => "dice",
            Mode::DiceAuth => "dice-auth",
        }
    }
}

/// Options of `cargo xtask bench serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Which server to run.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Port on 127.0.0.1 (0 picks a free one, printed on stdout).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// `dice-auth`: PEM file with the public key tokens are checked against.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Answer streamable HTTP calls with a JSON body instead of an SSE stream.
    #[arg(long)]
    pub json_response: bool,
    /// Most live sessions, and open connections (the idle-session measurement opens 10 000).
    #[arg(long, default_value_t = 50_000)]
    pub max_sessions: usize,
    /// How long a kept-alive connection may stay idle (the server's `header_read_timeout`);
    /// the idle-session measurement holds its connections open for longer than the default.
    #[arg(long, default_value_t = 10)]
    pub keep_alive_secs: u64,
}

/// Arguments of `roll_dice`.
#[derive(Debug, Deserialize, JsonSchema)]
struct RollDice {
    /// How many dice to roll.
    #[schemars(range(min = 1, max = 100))]
    n_dice: u32,
}

/// Rolls `n_dice` six-sided dice.
async fn roll_dice(args: RollDice) -> Result<Vec<u8>, ToolError> {
    let mut rng = rand::thread_rng();
    Ok((0..args.n_dice).map(|_| rng.gen_range(1..=6)).collect())
}

/// The `Dice Roller` MCP service.
pub fn dice_service() -> anyhow::Result<McpServer> {
    McpServer::builder("Dice Roller")
        .tool(
            "roll_dice",
            "Roll `n_dice` 6-sided dice and return the results.",
            roll_dice,
        )
        .build()
        .context("building the dice service")
}

/// The echo endpoint: parses the body as JSON and answers the fixed result with its id.
async fn echo(body: Bytes) -> Response {
    let id = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => value.get("id").cloned().unwrap_or(serde_json::Value::Null),
        Err(_) => return (StatusCode::BAD_REQUEST, "malformed JSON").into_response(),
    };
    let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{ECHO_RESULT}}}"#);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The echo reply as an SSE `message` event; `None` for a body that is not JSON.
fn echo_event(body: &Bytes) -> Option<String> {
    let id = serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("id")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    Some(format!(
        "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{ECHO_RESULT}}}\n\n"
    ))
}

fn event_stream(body: axum::body::Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// [`ECHO_SSE_PATH`].
async fn echo_sse(body: Bytes) -> Response {
    match echo_event(&body) {
        Some(event) => event_stream(axum::body::Body::from(event)),
        None => (StatusCode::BAD_REQUEST, "malformed JSON").into_response(),
    }
}

/// [`ECHO_SSE_STREAM_PATH`].
async fn echo_sse_stream(body: Bytes) -> Response {
    use futures::StreamExt;
    let (reply, replied) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = reply.send(echo_event(&body).unwrap_or_default());
    });
    let prefix = futures::stream::once(async { Bytes::from_static(b"retry: 1000\n\n") });
    let event = futures::stream::once(async move {
        Bytes::from(format!("id: 1-0\n{}", replied.await.unwrap_or_default()))
    });
    let chunks = prefix
        .chain(event)
        .map(Ok::<Bytes, std::convert::Infallible>);
    event_stream(axum::body::Body::from_stream(chunks))
}

/// Runs the server until SIGINT/SIGTERM.
pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve_async(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve_async(args: ServeArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let addr = listener.local_addr()?;
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    println!(
        "bench server {} listening on {addr} ({workers} worker thread(s))",
        args.mode.name()
    );
    let config = ServerConfig {
        json_response: args.json_response,
        max_sessions: args.max_sessions,
        // Every session of the bench comes from 127.0.0.1 and holds up to two connections (the
        // default cap, 768, would queue the rest in the backlog); the generator raises this
        // process's open-file limit to fit.
        max_sessions_per_client: args.max_sessions,
        max_connections: args.max_sessions.saturating_mul(2).saturating_add(64),
        header_read_timeout: Duration::from_secs(args.keep_alive_secs.max(1)),
        ..ServerConfig::default()
    };
    match args.mode {
        Mode::Echo => {
            let router = Router::new()
                .route(ECHO_PATH, post(echo))
                .route(ECHO_SSE_PATH, post(echo_sse))
                .route(ECHO_SSE_STREAM_PATH, post(echo_sse_stream));
            serve_router(listener, router, None).await
        }
        Mode::Dice => {
            let server = McpHttpServer::with_config(dice_service()?, config);
            server
                .serve_listener(listener, mcp_sse::ctrl_c())
                .await
                .context("serving")
        }
        Mode::DiceAuth => {
            let pem = match &args.public_key {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => {
                    let pair = mcp_auth::RsaKeyPair::generate()?;
                    let token = pair.create_token().audience(AUDIENCE).sign()?;
                    println!("development token (audience {AUDIENCE}): {token}");
                    pair.public_key_pem()
                }
            };
            let verifier = mcp_auth::JwtVerifier::from_public_key_pem(&pem)?.audience(AUDIENCE);
            let resource = mcp_auth::ResourceServer::new(&format!("http://{addr}/mcp"), verifier)?
                .authorization_server(mcp_auth::DEV_ISSUER);
            let server = McpHttpServer::with_config(dice_service()?, config);
            let router = resource.protect(server.router());
            serve_router(listener, router, Some(server)).await
        }
    }
}

/// Serves `router` with `TCP_NODELAY` on accepted sockets until SIGINT/SIGTERM, then drains
/// `mcp` if given.
async fn serve_router(
    listener: TcpListener,
    router: Router,
    mcp: Option<McpHttpServer>,
) -> anyhow::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        // Without it, small writes meet delayed ACKs (see the performance notes).
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            mcp_sse::ctrl_c().await;
            if let Some(server) = mcp {
                server.drain().await;
            }
        })
        .await
        .context("serving")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echo_answers_the_fixed_result_with_the_request_id() {
        let response = echo(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":3}}}"#,
        ))
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            HeaderValue::from_static("application/json")
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"jsonrpc": "2.0", "id": 17, "result": {
                "content": [{"type": "text", "text": "[4,2,6]"}],
                "structuredContent": {"result": [4, 2, 6]},
                "isError": false
            }})
        );
        let bad = echo(Bytes::from_static(b"{not json")).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn sse_echoes_frame_the_same_reply() {
        let call = Bytes::from_static(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call"}"#);
        let event = format!(
            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{ECHO_RESULT}}}\n\n"
        );
        for (response, expected) in [
            (echo_sse(call.clone()).await, event.clone()),
            (
                echo_sse_stream(call.clone()).await,
                format!("retry: 1000\n\nid: 1-0\n{event}"),
            ),
        ] {
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                HeaderValue::from_static("text/event-stream")
            );
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            assert_eq!(String::from_utf8(body.to_vec()).unwrap(), expected);
        }
        assert_eq!(
            echo_sse(Bytes::from_static(b"[")).await.status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn roll_dice_rolls_n_six_sided_dice() {
        let rolls = roll_dice(RollDice { n_dice: 100 }).await.unwrap();
        assert_eq!(rolls.len(), 100);
        assert!(rolls.iter().all(|r| (1..=6).contains(r)), "{rolls:?}");
        dice_service().unwrap();
    }
}
