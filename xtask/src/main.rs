//! Project automation, run as `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).
//!
//! Commands:
//! - `e2e`: the seed's flow with real processes: dice servers, the local Responses endpoint, and
//!   raw `POST /v1/responses` checks over both transports (see [`e2e`]).
//! - `bench`: both transports against a bare axum JSON echo in the same run, auth cost, and
//!   memory per idle SSE session (see [`bench`]).
//! - `conformance`: the official MCP conformance suite against our fixture server and client,
//!   both dated requirement sets (see [`conformance`]).
//! - `interop`: the Python `mcp`, `fastmcp` and `openai` packages against our servers and
//!   endpoint, and our client against FastMCP (see [`interop`]).
//! - `replicas`: three dice server replicas sharing sessions through a real Redis behind a
//!   real nginx (round robin, no stickiness), driven by our client and the Python clients;
//!   the cluster harness is [`cluster`] (see [`replicas`]).
//! - `soak`: well-behaved clients and one abusive client at the same time, on one process
//!   and on three replicas on Redis behind nginx: success rate, p99, memory (see [`soak`]).
//! - `deny`: installs cargo-deny into `.tools/` and runs `cargo deny check licenses bans sources`.
//! - `sans-io`: fails if the normal dependency closure of `mcp-proto` reaches an I/O runtime
//!   (tokio, hyper, axum, reqwest, mio, tokio-util), printing the path that leads there.
//!
//! Each command lives in its own module; the helpers for
//! starting servers and peers (log capture, readiness waits, free ports, CPU pinning) are in
//! [`process`].
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod cluster;
mod conformance;
mod deny;
mod e2e;
mod interop;
mod process;
mod replicas;
mod sans_io;
mod soak;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Project automation for the MCP stack workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    /// The command to run.
    #[command(subcommand)]
    command: Command,
}

/// The commands of `cargo xtask`.
#[derive(Debug, Subcommand)]
enum Command {
    /// End-to-end flow: dice server, local Responses endpoint and the client, over real sockets.
    E2e(e2e::Args),
    /// Benchmarks of the transports and the protocol core.
    Bench(bench::Args),
    /// The official MCP conformance suite against our fixture server and our client.
    Conformance(conformance::Args),
    /// Interoperability with the Python `mcp`, `fastmcp` and `openai` packages.
    Interop(interop::Args),
    /// Three replicas on Redis behind nginx: shared sessions, a killed replica, a Redis restart.
    Replicas(replicas::Args),
    /// Well-behaved clients beside an abusive one, on one process and on three replicas.
    Soak(soak::Args),
    /// Install cargo-deny into `.tools/` and check licenses, bans and sources.
    Deny(deny::Args),
    /// Check that `mcp-proto` stays free of I/O runtimes (reads `cargo metadata`).
    SansIo(sans_io::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::E2e(args) => e2e::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Conformance(args) => conformance::run(args),
        Command::Interop(args) => interop::run(args),
        Command::Replicas(args) => replicas::run(args),
        Command::Soak(args) => soak::run(args),
        Command::Deny(args) => deny::run(args),
        Command::SansIo(args) => sans_io::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The root of the workspace (the directory holding the root `Cargo.toml`).
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses() {
        let cli = Cli::try_parse_from(["xtask", "e2e"]).unwrap();
        assert!(matches!(cli.command, Command::E2e(_)));
        let cli = Cli::try_parse_from(["xtask", "sans-io"]).unwrap();
        assert!(matches!(cli.command, Command::SansIo(_)));
        let cli = Cli::try_parse_from(["xtask", "deny"]).unwrap();
        assert!(matches!(cli.command, Command::Deny(_)));
        assert!(Cli::try_parse_from(["xtask", "no-such-command"]).is_err());
    }

    #[test]
    fn conformance_options_parse() {
        let cli = Cli::try_parse_from(["xtask", "conformance", "--server-only"]).unwrap();
        assert!(matches!(cli.command, Command::Conformance(_)));
        let bad = ["xtask", "conformance", "--requirements", "2024-11-05"];
        assert!(Cli::try_parse_from(bad).is_err());
    }

    #[test]
    fn workspace_root_holds_the_root_manifest_and_deny_toml() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("deny.toml").is_file());
        assert!(root.join("xtask").is_dir());
    }
}
