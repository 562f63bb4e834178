//! Project automation, run as `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).
//!
//! Commands:
//! - `e2e`: the guide's flow with real processes (dice servers, the local Responses endpoint,
//!   raw `POST /v1/responses` over both transports): the `e2e` tests of
//!   `examples/tests/scenarios`, which `cargo test` runs too; then, after installing the
//!   Python peers and building `mcp-gateway`, the ignored ones (FastMCP's dice server over
//!   stdio behind the gateway).
//! - `bench`: both transports against a bare axum JSON echo in the same run, auth cost, and
//!   memory per idle SSE session (see [`bench`]).
//! - `conformance`: the official MCP conformance suite against our fixture server and client,
//!   both dated requirement sets (see [`conformance`]).
//! - `interop`: the Python `mcp`, `fastmcp` and `openai` packages against our servers and
//!   endpoint, and our client against FastMCP (see [`interop`]).
//! - `replicas`: three dice server replicas sharing sessions through a real Redis behind a
//!   real nginx (round robin, no stickiness), driven by our client and the Python clients:
//!   installs redis-server, nginx and the Python peers, then runs the ignored `replicas` tests
//!   of `examples/tests/scenarios` (with two `mcp-gateway` replicas on Redis too).
//! - `soak`: well-behaved clients and one abusive client at the same time, on one process
//!   and on three replicas on Redis behind nginx: success rate, p99, memory (the ignored
//!   `soak` tests of `examples/tests/scenarios`).
//! - `deny`: installs cargo-deny into `.tools/` and runs `cargo deny check licenses bans sources`.
//! - `sans-io`: fails if the normal dependency closure of `mcp-proto` reaches an I/O runtime
//!   (tokio, hyper, axum, reqwest, mio, tokio-util), printing the path that leads there.
//!
//! Each other command lives in its own module. Scenarios are Rust tests (in `examples/tests/`), run
//! with `cargo test` (see [`cargo_test`]); the helpers for starting servers and peers (log
//! capture, readiness waits, free ports, redis-server, the nginx cluster) are the
//! `mcp-stack-tests` crate's.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod conformance;
mod deny;
mod interop;
mod sans_io;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_stack_tests::workspace_root;

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
    E2e(E2eArgs),
    /// Benchmarks of the transports and the protocol core.
    Bench(bench::Args),
    /// The official MCP conformance suite against our fixture server and our client.
    Conformance(conformance::Args),
    /// Interoperability with the Python `mcp`, `fastmcp` and `openai` packages.
    Interop(interop::Args),
    /// Three replicas on Redis behind nginx: shared sessions, a killed replica, a Redis restart.
    Replicas(ReplicasArgs),
    /// Well-behaved clients beside an abusive one, on one process and on three replicas.
    Soak(SoakArgs),
    /// Install cargo-deny into `.tools/` and check licenses, bans and sources.
    Deny(deny::Args),
    /// Check that `mcp-proto` stays free of I/O runtimes (reads `cargo metadata`).
    SansIo(sans_io::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::E2e(args) => e2e(args),
        Command::Bench(args) => bench::run(args),
        Command::Conformance(args) => conformance::run(args),
        Command::Interop(args) => interop::run(args),
        Command::Replicas(args) => replicas(args),
        Command::Soak(args) => soak(args),
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

/// Options of `cargo xtask e2e`.
#[derive(Debug, clap::Args)]
struct E2eArgs {
    /// Only the scenarios that need peers (`cargo test` runs the others; CI uses this).
    #[arg(long)]
    peers_only: bool,
}

/// The e2e scenarios, then the ignored ones that need peers: the Python peers (installed
/// here) and the gateway binary (built here, beside the examples' binaries).
fn e2e(args: E2eArgs) -> anyhow::Result<ExitCode> {
    if !args.peers_only {
        cargo_test("e2e::", false, &[])?;
    }
    interop::peers::install_python()?;
    interop::peers::build_gateway()?;
    cargo_test("e2e::", true, &[])
}

/// Options of `cargo xtask replicas`.
#[derive(Debug, clap::Args)]
struct ReplicasArgs {
    /// Run only the tests whose name contains this text (e.g. `kill`, `python`).
    #[arg(long)]
    filter: Option<String>,
}

/// Installs what the replica tests run (each script does nothing when it is there), then runs
/// them.
fn replicas(args: ReplicasArgs) -> anyhow::Result<ExitCode> {
    install_redis_and_nginx()?;
    interop::peers::install_python()?;
    // The gateway replicas run the binary built beside the examples'.
    interop::peers::build_gateway()?;
    cargo_test(args.filter.as_deref().unwrap_or("replicas::"), true, &[])
}

/// Options of `cargo xtask soak`.
#[derive(Debug, clap::Args)]
struct SoakArgs {
    /// The short form CI runs: 1 000 sessions and 10 000 calls per deployment (else 10 000
    /// and 100 000).
    #[arg(long)]
    quick: bool,
    /// Only the one-process deployment.
    #[arg(long)]
    one_process: bool,
}

/// Installs redis-server and nginx, then runs the soak tests.
fn soak(args: SoakArgs) -> anyhow::Result<ExitCode> {
    install_redis_and_nginx()?;
    let filter = if args.one_process {
        "soak::soak_one_process"
    } else {
        "soak::"
    };
    let full: &[_] = if args.quick {
        &[]
    } else {
        &[("MCP_SOAK_FULL", "1")]
    };
    cargo_test(filter, true, full)
}

/// Runs `scripts/install-redis.sh` and `scripts/install-nginx.sh` (each does nothing when its
/// program is there).
fn install_redis_and_nginx() -> anyhow::Result<()> {
    for script in ["scripts/install-redis.sh", "scripts/install-nginx.sh"] {
        let mut command = std::process::Command::new("bash");
        command.arg(workspace_root().join(script));
        mcp_stack_tests::process::run_checked(command)?;
    }
    Ok(())
}

/// Runs the scenario tests of `examples/tests/scenarios` whose names contain `filter` (with
/// `ignored`, those marked `#[ignore]`: they need peers the command installed first), one at a
/// time; failures print like every other Rust test's. `--workspace` resolves features as
/// `cargo test --workspace` does, so what that built is reused, not built again.
fn cargo_test(filter: &str, ignored: bool, envs: &[(&str, &str)]) -> anyhow::Result<ExitCode> {
    let mut command = mcp_stack_tests::process::cargo();
    command
        .current_dir(workspace_root())
        .envs(envs.iter().copied())
        .args(["test", "--workspace", "--test", "scenarios", "--", filter]);
    if ignored {
        command.args(["--ignored", "--test-threads", "1", "--nocapture"]);
    }
    mcp_stack_tests::process::run_checked(command)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses() {
        let cli = Cli::try_parse_from(["xtask", "e2e"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::E2e(E2eArgs { peers_only: false })
        ));
        let cli = Cli::try_parse_from(["xtask", "e2e", "--peers-only"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::E2e(E2eArgs { peers_only: true })
        ));
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
