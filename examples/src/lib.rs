//! # mcp-examples: the dice flow of FastMCP's OpenAI integration guide, in Rust
//!
//! The binaries in `src/bin` are thin: the logic lives in the crates.
//!
//! - `dice_server`: the guide's "Dice Roller" with one tool, `roll_dice(n_dice) -> list[int]`,
//!   over legacy HTTP+SSE at `/sse` and streamable HTTP at `/mcp`, on `127.0.0.1:8000`.
//! - `dice_server_auth`: the same behind bearer-JWT auth (audience `dice-server`), minting and
//!   printing a development token as the guide does.
//!
//! Both run as replicas of one service with `--redis redis://HOST:PORT` (or `MCP_REDIS_URL`,
//! see [`ReplicaArgs`]): sessions live in Redis, so any replica serves any request of any
//! session behind a load balancer without stickiness. `--echo` adds the `echo(token)` tool
//! the replica tests use ([`dice::server_with_echo`]); `--slow` adds `roll_dice_slowly(n_dice,
//! seconds)`, which runs as a task for clients that ask (see `dice_task`), and
//! `roll_dice_durably(n_dice, seconds)`, the same restarted on another replica if its replica
//! stops.
//! - `dice_task`: calls `roll_dice_slowly` as a task and follows it to its result.
//! - `responses_local`: the local stand-in for OpenAI's `POST /v1/responses`.
//! - `dice_client`: the guide's Python call in Rust; without `OPENAI_API_KEY` it runs the whole
//!   flow on this machine (dice server + local Responses endpoint, in-process).
//!
//! This library holds the dice tool they share:
//!
//! ```
//! let server = mcp_examples::dice::server().unwrap();
//! assert_eq!(server.tools()[0].name, "roll_dice");
//! let with_echo = mcp_examples::dice::server_with_echo(true).unwrap();
//! assert_eq!(with_echo.tools()[1].name, "echo");
//! ```

use std::net::SocketAddr;

/// The dice tool of FastMCP's OpenAI integration guide.
pub mod dice {
    use mcp_proto::{McpServer, ToolError};
    use rand::Rng;
    use schemars::JsonSchema;
    use serde::Deserialize;

    /// The guide's description of `roll_dice`.
    pub const DESCRIPTION: &str = "Roll `n_dice` 6-sided dice and return the results.";

    /// Arguments of `roll_dice`.
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RollDice {
        /// How many dice to roll (1 to 100).
        #[schemars(range(min = 1, max = 100))]
        pub n_dice: u32,
    }

    /// Rolls `n_dice` six-sided dice.
    pub async fn roll_dice(args: RollDice) -> Result<Vec<u8>, ToolError> {
        let mut rng = rand::thread_rng();
        Ok((0..args.n_dice).map(|_| rng.gen_range(1..=6)).collect())
    }

    /// The "Dice Roller" server with its one tool.
    pub fn server() -> Result<McpServer, mcp_proto::Error> {
        server_with_echo(false)
    }

    /// The description of `echo`.
    pub const ECHO_DESCRIPTION: &str = "Return `token` unchanged.";

    /// Longest wait `echo` accepts, in milliseconds.
    pub const ECHO_MAX_DELAY_MS: u32 = 10_000;

    /// Arguments of `echo`.
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Echo {
        /// The text to get back.
        pub token: String,
        /// Wait this long (milliseconds, at most 10 000) before answering: a call that is
        /// still running, for stream resumption tests.
        #[serde(default)]
        #[schemars(range(max = 10_000))]
        pub delay_ms: Option<u32>,
    }

    /// Returns the token: each call of a replica test carries a unique one it must get back,
    /// so a lost, duplicated or misdelivered response shows.
    pub async fn echo(args: Echo) -> Result<String, ToolError> {
        if let Some(ms) = args.delay_ms {
            if ms > ECHO_MAX_DELAY_MS {
                return Err(ToolError::new(format!(
                    "delay_ms {ms} is over {ECHO_MAX_DELAY_MS}"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(ms))).await;
        }
        Ok(args.token)
    }

    /// The "Dice Roller" server, with `echo(token) -> str` after `roll_dice` when `echo` is set.
    pub fn server_with_echo(echo_tool: bool) -> Result<McpServer, mcp_proto::Error> {
        server_with_tools(echo_tool, false)
    }

    /// The description of `roll_dice_slowly`.
    pub const SLOW_DESCRIPTION: &str =
        "Roll `n_dice` 6-sided dice, taking `seconds` seconds; runs as a task when the client can.";

    /// Longest `roll_dice_slowly` takes, in seconds.
    pub const SLOW_MAX_SECONDS: u32 = 600;

    /// Arguments of `roll_dice_slowly`.
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RollDiceSlowly {
        /// How many dice to roll (1 to 100).
        #[schemars(range(min = 1, max = 100))]
        pub n_dice: u32,
        /// How long to take, in seconds (at most 600).
        #[schemars(range(max = 600))]
        pub seconds: u32,
    }

    /// Rolls `n_dice` dice one after the other over `seconds` seconds: a call longer than a
    /// proxy's timeout, which a client runs as a task (2026-07-28 `io.modelcontextprotocol/tasks`)
    /// and polls, or calls plainly and waits.
    pub async fn roll_dice_slowly(args: RollDiceSlowly) -> Result<Vec<u8>, ToolError> {
        let total = std::time::Duration::from_secs(u64::from(args.seconds.min(SLOW_MAX_SECONDS)));
        let pause = total / args.n_dice.max(1);
        let mut rolls = Vec::new();
        for _ in 0..args.n_dice {
            tokio::time::sleep(pause).await;
            rolls.push(rand::thread_rng().gen_range(1..=6));
        }
        Ok(rolls)
    }

    /// The description of `roll_dice_durably`.
    pub const DURABLE_DESCRIPTION: &str = "Roll `n_dice` 6-sided dice, taking `seconds` seconds; \
         runs as a task when the client can, and starts again on another replica if its replica stops.";

    /// The "Dice Roller" server: `roll_dice`, then `echo` when `echo_tool` is set, then
    /// `roll_dice_slowly` and `roll_dice_durably` (task-optional; the latter restartable on
    /// another replica, see `ToolDef::restartable`) when `slow_tool` is set.
    pub fn server_with_tools(
        echo_tool: bool,
        slow_tool: bool,
    ) -> Result<McpServer, mcp_proto::Error> {
        let mut builder =
            McpServer::builder("Dice Roller").tool("roll_dice", DESCRIPTION, roll_dice);
        if echo_tool {
            builder = builder.tool("echo", ECHO_DESCRIPTION, echo);
        }
        if slow_tool {
            let def = mcp_proto::ToolDef::new("roll_dice_slowly", SLOW_DESCRIPTION)
                .task_support(mcp_proto::TaskSupport::Optional);
            builder = builder.tool_with(def, roll_dice_slowly);
            let durable = mcp_proto::ToolDef::new("roll_dice_durably", DURABLE_DESCRIPTION)
                .task_support(mcp_proto::TaskSupport::Optional)
                .restartable();
            builder = builder.tool_with(durable, roll_dice_slowly);
        }
        builder.build()
    }
}

/// Running as one of several replicas that share sessions through Redis.
///
/// Without `--redis` (and without `MCP_REDIS_URL`) sessions live in the process, as before.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReplicaArgs {
    /// Share sessions with the other replicas through Redis at this URL
    /// (`redis://[user:password@]host:port[/db]`).
    #[arg(long, env = "MCP_REDIS_URL", value_name = "URL")]
    pub redis: Option<String>,
    /// This replica's id in Redis (default: random, new for every start). Must differ
    /// between replicas running at the same time.
    #[arg(long, value_name = "ID", requires = "redis")]
    pub replica_id: Option<String>,
}

impl ReplicaArgs {
    /// With `--redis`: connects a [`mcp_redis::RedisStore`] and gives it to `server`
    /// ([`mcp_sse::McpHttpServer::session_store`]); fails, naming the URL, when Redis cannot
    /// be reached at start. Without it: `server` unchanged.
    pub async fn apply(
        &self,
        server: mcp_sse::McpHttpServer,
    ) -> anyhow::Result<mcp_sse::McpHttpServer> {
        let Some(url) = &self.redis else {
            return Ok(server);
        };
        let mut config = mcp_redis::RedisConfig::new(url.clone());
        if let Some(id) = &self.replica_id {
            config = config.replica_id(id.clone());
        }
        let replica_id = config.replica_id.clone();
        let shown = redacted_url(url);
        let store = mcp_redis::RedisStore::connect(config)
            .await
            .map_err(|error| anyhow::anyhow!("cannot use Redis at {shown}: {error}"))?;
        tracing::info!(redis = %shown, replica_id = %replica_id, "sessions and tasks shared through Redis");
        let store = std::sync::Arc::new(store);
        Ok(server.session_store(store.clone()).task_store(store))
    }
}

/// The transport limits a dice server takes on its command line; each defaults to
/// [`mcp_sse::ServerConfig`]'s (see the README's "Limits" table).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Most live sessions, over both transports (and across replicas on Redis).
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<usize>,
    /// Most live sessions of one client (subject, or address without auth).
    #[arg(long, value_name = "N")]
    pub max_sessions_per_client: Option<usize>,
    /// Most open connections.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Longest time to receive a request's headers, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Longest wait of one write to a client that does not read, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub write_timeout_ms: Option<u64>,
    /// Keep-alive tick, in milliseconds: SSE keep-alive comments, and the replica heartbeat
    /// in Redis (a replica counts as dead three ticks after its last one).
    #[arg(long, value_name = "MS")]
    pub keep_alive_ms: Option<u64>,
}

impl LimitArgs {
    /// `config` with the limits given on the command line.
    pub fn apply(&self, mut config: mcp_sse::ServerConfig) -> mcp_sse::ServerConfig {
        let ms = std::time::Duration::from_millis;
        config.max_sessions = self.max_sessions.unwrap_or(config.max_sessions);
        config.max_sessions_per_client = self
            .max_sessions_per_client
            .unwrap_or(config.max_sessions_per_client);
        config.max_connections = self.max_connections.unwrap_or(config.max_connections);
        config.header_read_timeout = self
            .header_read_timeout_ms
            .map_or(config.header_read_timeout, ms);
        config.write_timeout = self.write_timeout_ms.map_or(config.write_timeout, ms);
        config.keep_alive = self.keep_alive_ms.map_or(config.keep_alive, ms);
        config
    }
}

/// `url` with any password replaced by `***`, for logs and errors.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split_once(':').map_or(credentials, |(u, _)| u);
            if credentials.contains(':') {
                format!("{scheme}://{user}:***@{host}{path}")
            } else {
                format!("{scheme}://{user}@{host}{path}")
            }
        }
        None => url.to_owned(),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Logs warnings and errors only (unless `RUST_LOG` says otherwise), for demo output.
pub fn init_tracing_quiet() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prometheus metrics of a dice server: off unless `--metrics` or `--metrics-port`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at `GET /metrics` beside the MCP routes (outside auth).
    #[arg(long)]
    pub metrics: bool,
    /// Serve `GET /metrics` on this loopback port of its own instead (also with `--stdio`).
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,
}

impl MetricsArgs {
    /// Installs the recorder when asked to, and starts the separate metrics listener.
    pub async fn apply(&self) -> anyhow::Result<()> {
        if !self.metrics && self.metrics_port.is_none() {
            return Ok(());
        }
        mcp_sse::metrics::install()?;
        if let Some(port) = self.metrics_port {
            let addr = bind_address("127.0.0.1", port);
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            tokio::spawn(async move {
                if let Err(error) =
                    mcp_sse::metrics::serve_listener(listener, mcp_sse::ctrl_c()).await
                {
                    tracing::error!(%error, "metrics listener failed");
                }
            });
        }
        Ok(())
    }
}

/// Where a server listens: `--host` (default loopback) and `--port`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// Address to bind; anything but loopback exposes the server to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
}

impl ListenArgs {
    /// Binds a listener.
    pub async fn bind(&self) -> std::io::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::bind(bind_address(&self.host, self.port)).await
    }
}

/// `host:port` for a listener.
pub fn bind_address(host: &str, port: u16) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dice_are_in_range_and_counted() {
        let rolls = dice::roll_dice(dice::RollDice { n_dice: 50 })
            .await
            .unwrap();
        assert_eq!(rolls.len(), 50);
        assert!(rolls.iter().all(|r| (1..=6).contains(r)));
    }

    #[test]
    fn schema_bounds_n_dice() {
        let server = dice::server().unwrap();
        let schema = &server.tools()[0].input_schema;
        assert_eq!(schema["properties"]["n_dice"]["minimum"], 1);
        assert_eq!(schema["properties"]["n_dice"]["maximum"], 100);
        assert_eq!(schema["required"], serde_json::json!(["n_dice"]));
        assert_eq!(schema["additionalProperties"], false);
    }

    #[tokio::test]
    async fn echo_returns_the_token_and_is_opt_in() {
        let token = dice::echo(dice::Echo {
            token: "t-42".into(),
            delay_ms: None,
        })
        .await
        .unwrap();
        assert_eq!(token, "t-42");
        let started = std::time::Instant::now();
        let slow = dice::echo(dice::Echo {
            token: "t-43".into(),
            delay_ms: Some(50),
        })
        .await
        .unwrap();
        assert_eq!(slow, "t-43");
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
        let too_long = dice::echo(dice::Echo {
            token: "t".into(),
            delay_ms: Some(10_001),
        })
        .await
        .unwrap_err();
        assert_eq!(too_long.to_string(), "delay_ms 10001 is over 10000");
        let names = |s: mcp_proto::McpServer| -> Vec<String> {
            s.tools().into_iter().map(|t| t.name).collect()
        };
        assert_eq!(names(dice::server().unwrap()), ["roll_dice"]);
        assert_eq!(
            names(dice::server_with_echo(true).unwrap()),
            ["roll_dice", "echo"]
        );
        let schema = &dice::server_with_echo(true).unwrap().tools()[1].input_schema;
        assert_eq!(schema["required"], serde_json::json!(["token"]));
        assert_eq!(schema["properties"]["token"]["type"], "string");
        assert_eq!(schema["properties"]["delay_ms"]["maximum"], 10_000);
    }

    #[tokio::test]
    async fn roll_dice_slowly_runs_as_a_task_over_http_and_plainly_for_plain_calls() {
        use mcp_sse::client::{McpClient, ToolCallStart};
        let service = dice::server_with_tools(false, true).unwrap();
        let tools = service.tools();
        assert_eq!(tools[1].name, "roll_dice_slowly");
        assert_eq!(tools[2].name, "roll_dice_durably");
        assert_eq!(tools[1].execution, tools[2].execution);
        assert_eq!(
            serde_json::to_value(tools[1].execution).unwrap(),
            serde_json::json!({"taskSupport": "optional"})
        );
        let running = mcp_sse::McpHttpServer::new(service)
            .spawn("127.0.0.1:0")
            .await
            .unwrap();
        let client = McpClient::builder(running.url("/mcp"))
            .protocol_version(mcp_proto::ProtocolVersion::V2026_07_28)
            .connect()
            .await
            .unwrap();
        let args = serde_json::json!({"n_dice": 4, "seconds": 1});
        let started = std::time::Instant::now();
        let ToolCallStart::Task(task) = client
            .start_tool_task("roll_dice_slowly", args.clone())
            .await
            .unwrap()
        else {
            panic!("roll_dice_slowly runs as a task")
        };
        assert!(started.elapsed() < std::time::Duration::from_millis(900));
        let result = client
            .wait_task(&task.task_id, std::time::Duration::from_secs(10))
            .await
            .unwrap();
        assert!(started.elapsed() >= std::time::Duration::from_secs(1));
        let rolls = result.structured_content.unwrap()["result"].clone();
        assert_eq!(rolls.as_array().unwrap().len(), 4);
        let plain = client.call_tool("roll_dice_slowly", args).await.unwrap();
        assert_eq!(
            plain.structured_content.unwrap()["result"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        running.shutdown().await.unwrap();
    }

    #[test]
    fn redis_passwords_are_redacted() {
        assert_eq!(
            redacted_url("redis://user:secret@10.0.0.1:6379/2"),
            "redis://user:***@10.0.0.1:6379/2"
        );
        assert_eq!(redacted_url("redis://:secret@h:1"), "redis://:***@h:1");
        assert_eq!(redacted_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redacted_url("redis://user@h:6379"), "redis://user@h:6379");
        assert_eq!(redacted_url("not a url"), "not a url");
    }

    #[tokio::test]
    async fn without_redis_the_server_keeps_sessions_in_memory() {
        let server = mcp_sse::McpHttpServer::new(dice::server().unwrap());
        let server = ReplicaArgs::default().apply(server).await.unwrap();
        assert_eq!(
            server.store().replica_id(),
            mcp_sse::store::MEMORY_REPLICA_ID
        );
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_clear_error() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args = ReplicaArgs {
            redis: Some(format!("redis://127.0.0.1:{port}")),
            replica_id: Some("r1".into()),
        };
        let server = mcp_sse::McpHttpServer::new(dice::server().unwrap());
        let error = args.apply(server).await.unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("cannot use Redis at redis://127.0.0.1:{port}: ")),
            "{error}"
        );
    }

    #[test]
    fn ipv6_bind_addresses_are_bracketed() {
        assert_eq!(bind_address("::1", 8000), "[::1]:8000");
        assert_eq!(bind_address("127.0.0.1", 8000), "127.0.0.1:8000");
        assert_eq!(bind_address("localhost", 80), "localhost:80");
    }
}
