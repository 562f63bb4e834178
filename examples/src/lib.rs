//! # mcp-examples: the seed's dice flow in Rust
//!
//! The binaries in `src/bin` are thin: the logic lives in the crates.
//!
//! - `dice_server`: the seed's "Dice Roller" with one tool, `roll_dice(n_dice) -> list[int]`,
//!   over legacy HTTP+SSE at `/sse` and streamable HTTP at `/mcp`, on `127.0.0.1:8000`.
//! - `dice_server_auth`: the same behind bearer-JWT auth (audience `dice-server`), minting and
//!   printing a development token as the seed does.
//! - `responses_local`: the local stand-in for OpenAI's `POST /v1/responses`.
//! - `dice_client`: the seed's Python call in Rust; without `OPENAI_API_KEY` it runs the whole
//!   flow on this machine (dice server + local Responses endpoint, in-process).
//!
//! This library holds the dice tool they share:
//!
//! ```
//! let server = mcp_examples::dice::server().unwrap();
//! assert_eq!(server.tools()[0].name, "roll_dice");
//! ```

use std::net::SocketAddr;

/// The dice tool of the seed.
pub mod dice {
    use mcp_proto::{McpServer, ToolError};
    use rand::Rng;
    use schemars::JsonSchema;
    use serde::Deserialize;

    /// The seed's description of `roll_dice`.
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
        McpServer::builder("Dice Roller")
            .tool("roll_dice", DESCRIPTION, roll_dice)
            .build()
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

    #[test]
    fn ipv6_bind_addresses_are_bracketed() {
        assert_eq!(bind_address("::1", 8000), "[::1]:8000");
        assert_eq!(bind_address("127.0.0.1", 8000), "127.0.0.1:8000");
        assert_eq!(bind_address("localhost", 80), "localhost:80");
    }
}
