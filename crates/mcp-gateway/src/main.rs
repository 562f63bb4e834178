//! `mcp-gateway [FLAGS] -- COMMAND [ARGS…]`: serves a stdio MCP server at `/sse` and `/mcp`.
//!
//! ```text
//! mcp-gateway --port 8000 -- npx -y @modelcontextprotocol/server-everything
//! mcp-gateway --jwks-url https://auth.example.com/jwks.json --audience https://mcp.example.com/mcp \
//!     --issuer https://auth.example.com --resource-url https://mcp.example.com/mcp -- uvx my-server
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::ffi::OsString;
use std::time::Duration;

use axum::Router;
use clap::Parser;
use mcp_auth::{JwtVerifier, ResourceServer};
use mcp_gateway::{
    ChildCommand, Error, Gateway, GatewayConfig, RemoteConfig, RemoteServer, ToolFilter,
};
use mcp_sse::{McpHttpServer, ServerConfig};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "mcp-gateway",
    version,
    about = "Serves a stdio MCP server over HTTP+SSE (/sse) and streamable HTTP (/mcp), with auth and limits"
)]
struct Args {
    /// Address to bind; anything but loopback exposes the server to the network.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to bind (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Serve streamable HTTP without sessions.
    #[arg(long)]
    stateless: bool,
    /// One child per client session (for servers that keep per-user state). Not with
    /// --stateless (no sessions) nor --redis: a session's child runs in one gateway process,
    /// which the other replicas cannot reach.
    #[arg(long, conflicts_with_all = ["stateless", "redis"])]
    per_session: bool,
    /// Set a variable in the child's environment (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Pass a variable of the gateway's environment to the child (repeatable). Only PATH, HOME
    /// and the variables named here reach the child.
    #[arg(long = "pass-env", value_name = "NAME")]
    pass_env: Vec<String>,
    /// Prefix of the child's stderr lines in the log (default: the program's file name).
    #[arg(long)]
    name: Option<String>,
    /// Expose only this tool (repeatable).
    #[arg(long = "allow-tool", value_name = "NAME")]
    allow_tool: Vec<String>,
    /// Hide this tool (repeatable).
    #[arg(long = "deny-tool", value_name = "NAME")]
    deny_tool: Vec<String>,
    /// Accept this Origin besides localhost ones (repeatable), e.g. https://app.example.com.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Share sessions with the other replicas through Redis at this URL.
    #[arg(long, env = "MCP_REDIS_URL", value_name = "URL")]
    redis: Option<String>,
    /// This replica's id in Redis (default: random).
    #[arg(long, value_name = "ID", requires = "redis")]
    replica_id: Option<String>,
    /// Serve Prometheus metrics at GET /metrics (outside auth).
    #[arg(long)]
    metrics: bool,
    /// How long the child has to start and answer `initialize`, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    start_timeout_ms: u64,
    /// How long a request waits for a restarting child before its error, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    restart_wait_ms: u64,
    /// How long a client has to answer a request of the child (sampling, elicitation,
    /// roots), in milliseconds; for a 2026-07-28 client, how long a call waits for the retry
    /// answering its `InputRequiredResult`.
    #[arg(long, value_name = "MS", default_value_t = 120_000)]
    client_answer_timeout_ms: u64,
    /// Reverse direction: serve the remote HTTP MCP server at this URL over stdin/stdout
    /// (for local hosts that only start stdio servers) instead of running a command.
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    connect: Option<String>,
    /// With --connect: the bearer token for the remote server (better given through the
    /// environment than on the command line, where other users can see it).
    #[arg(
        long,
        env = "MCP_GATEWAY_BEARER_TOKEN",
        hide_env_values = true,
        requires = "connect"
    )]
    bearer_token: Option<String>,
    /// The stdio MCP server to run, after `--`.
    #[arg(
        last = true,
        required_unless_present = "connect",
        value_name = "COMMAND"
    )]
    command: Vec<OsString>,
}

/// Bearer-JWT authentication of every MCP request (off unless a key source is given).
#[derive(Debug, Clone, clap::Args)]
struct AuthArgs {
    /// Verify tokens with this public key (PEM file: RSA, EC or Ed25519).
    #[arg(long, value_name = "FILE", conflicts_with = "jwks_url")]
    jwt_public_key: Option<std::path::PathBuf>,
    /// Verify tokens with the keys of this JWKS URL.
    #[arg(long, value_name = "URL")]
    jwks_url: Option<String>,
    /// The audience tokens must carry (default: the resource URL).
    #[arg(long, value_name = "AUD")]
    audience: Option<String>,
    /// The issuer tokens must carry.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// The canonical URL of the MCP endpoint, for RFC 9728 metadata
    /// (default: http://HOST:PORT/mcp).
    #[arg(long, value_name = "URL")]
    resource_url: Option<String>,
    /// An authorization server for the metadata (repeatable; default: the issuer).
    #[arg(long = "authorization-server", value_name = "URL")]
    authorization_servers: Vec<String>,
    /// A scope every token must carry (repeatable).
    #[arg(long = "required-scope", value_name = "SCOPE")]
    required_scopes: Vec<String>,
}

/// The limits of [`ServerConfig`]; each defaults to its value there.
#[derive(Debug, Clone, clap::Args)]
struct LimitArgs {
    /// Most live sessions.
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// Most live sessions of one client (subject, or address without auth).
    #[arg(long, value_name = "N")]
    max_sessions_per_client: Option<usize>,
    /// Most open connections.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Most open connections from one address.
    #[arg(long, value_name = "N")]
    max_connections_per_address: Option<usize>,
    /// Largest request body, in bytes.
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// Most requests running at once in one session.
    #[arg(long, value_name = "N")]
    max_in_flight_per_session: Option<usize>,
    /// Longest call, in milliseconds (then -32001 and the call is cancelled at the child).
    #[arg(long, value_name = "MS")]
    call_timeout_ms: Option<u64>,
    /// Longest idle time of a session, in milliseconds.
    #[arg(long, value_name = "MS")]
    session_idle_timeout_ms: Option<u64>,
    /// Longest life of a session, in milliseconds.
    #[arg(long, value_name = "MS")]
    session_lifetime_ms: Option<u64>,
    /// Longest time to receive a request's headers, in milliseconds.
    #[arg(long, value_name = "MS")]
    header_read_timeout_ms: Option<u64>,
    /// Longest time to receive a request's body, in milliseconds.
    #[arg(long, value_name = "MS")]
    body_read_timeout_ms: Option<u64>,
    /// Longest wait of one write to a client that does not read, in milliseconds.
    #[arg(long, value_name = "MS")]
    write_timeout_ms: Option<u64>,
    /// Events kept per outbound stream.
    #[arg(long, value_name = "N")]
    stream_buffer: Option<usize>,
    /// Bytes kept per outbound stream.
    #[arg(long, value_name = "BYTES")]
    stream_buffer_bytes: Option<usize>,
    /// How long running calls get to finish at shutdown, in milliseconds.
    #[arg(long, value_name = "MS")]
    shutdown_grace_ms: Option<u64>,
}

impl LimitArgs {
    fn apply(&self, mut c: ServerConfig) -> ServerConfig {
        let ms = Duration::from_millis;
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = self.$field {
                    c.$field = v;
                }
            };
            ($field:ident, $arg:ident) => {
                if let Some(v) = self.$arg {
                    c.$field = ms(v);
                }
            };
        }
        set!(max_sessions);
        set!(max_sessions_per_client);
        set!(max_connections);
        set!(max_connections_per_address);
        set!(max_body_bytes);
        set!(max_in_flight_per_session);
        set!(stream_buffer);
        set!(stream_buffer_bytes);
        set!(call_timeout, call_timeout_ms);
        set!(session_idle_timeout, session_idle_timeout_ms);
        set!(session_lifetime, session_lifetime_ms);
        set!(header_read_timeout, header_read_timeout_ms);
        set!(body_read_timeout, body_read_timeout_ms);
        set!(write_timeout, write_timeout_ms);
        set!(shutdown_grace, shutdown_grace_ms);
        c
    }
}

/// Runs the gateway; an error is printed on one line and the exit code is 1.
#[tokio::main]
async fn main() {
    init_tracing();
    let code = match run(Args::parse()).await {
        Ok(()) => 0,
        Err(error) => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("mcp-gateway: error: {text}");
            1
        }
    };
    // Exit here rather than drop the runtime: with --connect, Tokio reads stdin on a blocking
    // thread that the runtime's drop would wait for.
    std::process::exit(code);
}

async fn run(args: Args) -> Result<(), Error> {
    if let Some(url) = &args.connect {
        return connect(url, args.bearer_token.clone()).await;
    }
    let gateway = Gateway::new(child_command(&args)?, gateway_config(&args));
    let start_wait = Duration::from_millis(args.start_timeout_ms);
    if let Err(error) = gateway.wait_ready(start_wait).await {
        gateway.shutdown().await;
        return Err(error);
    }
    let config = args.limits.apply(ServerConfig {
        stateless: args.stateless,
        allowed_origins: args.allow_origin.clone(),
        ..ServerConfig::default()
    });
    let mcp = replicas(&args, McpHttpServer::with_config(gateway.clone(), config)).await?;
    let listener = tokio::net::TcpListener::bind(bind_address(&args.host, args.port)).await?;
    let addr = listener.local_addr()?;
    if args.metrics {
        mcp_sse::metrics::install()?;
    }
    let routes = match auth(&args, &addr)? {
        Some(resource_server) => resource_server.protect(mcp.router()),
        None => mcp.router(),
    };
    let app: Router = routes.merge(mcp_gateway::with_child_readiness(
        mcp.health_router(),
        &gateway,
    ));
    println!("mcp-gateway: http://{addr}/sse (legacy SSE), http://{addr}/mcp (streamable HTTP)");
    let served = mcp.serve_app(app, listener, mcp_sse::ctrl_c()).await;
    gateway.shutdown().await;
    Ok(served?)
}

/// `--connect`: the remote server over stdin/stdout until stdin closes.
async fn connect(url: &str, bearer_token: Option<String>) -> Result<(), Error> {
    let remote = RemoteServer::new(RemoteConfig {
        bearer_token,
        ..RemoteConfig::new(url)
    });
    let served = mcp_stdio::StdioServer::new(remote.clone())
        .serve_stdio()
        .await;
    remote.close().await;
    served.map_err(Error::Stdio)
}

fn child_command(args: &Args) -> Result<ChildCommand, Error> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Error::Config("no command after `--`".into()))?;
    let mut command = ChildCommand::new(program.clone()).args(rest.iter().cloned());
    for name in &args.pass_env {
        command = command.pass_env(name.clone());
    }
    for assignment in &args.env {
        command = command.env_assignment(assignment)?;
    }
    if let Some(name) = &args.name {
        command = command.name_as(name.clone());
    }
    Ok(command)
}

fn gateway_config(args: &Args) -> GatewayConfig {
    let mut tools = ToolFilter::default();
    for name in &args.allow_tool {
        tools = tools.allow(name.clone());
    }
    for name in &args.deny_tool {
        tools = tools.deny(name.clone());
    }
    GatewayConfig {
        per_session: args.per_session,
        tools,
        start_timeout: Duration::from_millis(args.start_timeout_ms),
        restart_wait: Duration::from_millis(args.restart_wait_ms),
        client_answer_timeout: Duration::from_millis(args.client_answer_timeout_ms.max(1)),
        ..GatewayConfig::default()
    }
}

/// The resource server when a key source is given.
fn auth(args: &Args, addr: &std::net::SocketAddr) -> Result<Option<ResourceServer>, Error> {
    let a = &args.auth;
    let verifier = match (&a.jwt_public_key, &a.jwks_url) {
        (Some(path), _) => JwtVerifier::from_public_key_pem(&std::fs::read_to_string(path)?)?,
        (None, Some(url)) => JwtVerifier::from_jwks_url(url)?,
        (None, None) => return Ok(None),
    };
    let resource = a
        .resource_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}/mcp"));
    let mut verifier = verifier.audience(a.audience.clone().unwrap_or_else(|| resource.clone()));
    if let Some(issuer) = &a.issuer {
        verifier = verifier.issuer(issuer.clone());
    }
    let mut servers = a.authorization_servers.clone();
    if servers.is_empty() {
        servers.extend(a.issuer.clone());
    }
    if servers.is_empty() {
        return Err(Error::Config(
            "auth needs --authorization-server or --issuer (RFC 9728 metadata names one)".into(),
        ));
    }
    let mut server = ResourceServer::new(&resource, verifier)?;
    for issuer in servers {
        server = server.authorization_server(issuer);
    }
    if !a.required_scopes.is_empty() {
        server = server.required_scopes(a.required_scopes.clone());
    }
    Ok(Some(server))
}

/// With `--redis`: sessions shared with the other replicas.
async fn replicas(args: &Args, server: McpHttpServer) -> Result<McpHttpServer, Error> {
    let Some(url) = &args.redis else {
        return Ok(server);
    };
    let mut config = mcp_redis::RedisConfig::new(url.clone());
    if let Some(id) = &args.replica_id {
        config = config.replica_id(id.clone());
    }
    let store = mcp_redis::RedisStore::connect(config)
        .await
        .map_err(|source| Error::Redis {
            url: redacted(url),
            source,
        })?;
    Ok(server.session_store(std::sync::Arc::new(store)))
}

/// `url` without its password.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://***@{host}")
        }
        _ => url.to_owned(),
    }
}

fn bind_address(host: &str, port: u16) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
