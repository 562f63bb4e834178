//! The gateway row of `cargo xtask bench`: calls per second of `tools/call
//! roll_dice {"n_dice":3}` over streamable HTTP to the Rust dice server served three ways,
//! in the same run: directly over HTTP (`dice_server --port P`), through `mcp-gateway --
//! dice_server --stdio`, and through the npm `mcp-proxy` (pinned, installed by
//! `scripts/install-peers.sh mcp-proxy`) in front of the same stdio server. Each server (and
//! its child) is pinned to CPU 0 like the other rows; the ratios say what the stdio hop costs
//! and how the gateway compares with the most used bridge.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use mcp_stack_tests::process::{self, BackgroundProcess};

use mcp_loadgen::{Phase, PhaseResult, Target};

use super::{Plan, Spread, dice_call, log_dir, millis, phase_line};

/// The release binaries the row needs (built by the debug xtask before it starts the
/// release one).
pub const BINARIES: [(&str, &str); 2] = [
    ("mcp-examples", "dice_server"),
    ("mcp-gateway", "mcp-gateway"),
];

/// The three ways of serving the dice server, in measuring order.
const WAYS: [&str; 3] = ["direct HTTP", "mcp-gateway", "npm mcp-proxy"];

/// Starts `command` (pinned to CPU 0 when the plan pins) on `port`, waiting until it accepts.
fn start(
    name: &str,
    program: &Path,
    args: &[String],
    plan: &Plan,
    port: u16,
) -> anyhow::Result<BackgroundProcess> {
    let mut command = if plan.pin {
        process::pinned(program, "0").0
    } else {
        Command::new(program)
    };
    command.args(args).env("RUST_LOG", "warn");
    let mut server =
        BackgroundProcess::spawn(name, command, &log_dir().join(format!("{name}.log")))?;
    server.wait_for_tcp(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(60),
    )?;
    Ok(server)
}

/// Node and `mcp-proxy`'s entry point, installed when missing.
fn install_mcp_proxy() -> anyhow::Result<(PathBuf, PathBuf)> {
    let script = mcp_stack_tests::workspace_root().join("scripts/install-peers.sh");
    let mut command = Command::new("bash");
    command.arg(&script).args(["node", "mcp-proxy"]);
    let stdout = process::output_checked(command)?;
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(PathBuf::from)
            .with_context(|| format!("{} printed no {key}=", script.display()))
    };
    Ok((
        value("NODE")?,
        value("MCP_PROXY")?.join("dist/bin/mcp-proxy.mjs"),
    ))
}

/// Measures the three ways for each session count; prints the table. Returns whether calls
/// failed.
pub async fn measure(plan: &Plan, bin_dir: &Path) -> anyhow::Result<bool> {
    let (servers, ports) = start_ways(plan, bin_dir)?;
    let mut failed = false;
    let mut rows: Vec<(usize, [PhaseResult; 3])> = Vec::new();
    let call = dice_call();
    for &sessions in &plan.sessions {
        let mut results = Vec::new();
        for (i, server) in servers.iter().enumerate() {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, ports[i]));
            let phase = Phase {
                target: Target::Streamable,
                addr,
                sessions,
                token: None,
                call: &call,
                timing: plan.timing,
            };
            let result = phase
                .run(&[server.id()])
                .await
                .with_context(|| format!("{} with {sessions} session(s)", WAYS[i]))?;
            let line = phase_line(&result);
            eprintln!("  {:<28} {sessions:>4} session(s): {line}", WAYS[i]);
            failed |= result.errors > 0;
            results.push(result);
        }
        if let Ok(three) = <[PhaseResult; 3]>::try_from(results) {
            rows.push((sessions, three));
        }
    }
    report(&rows);
    Ok(failed)
}

/// Starts the dice server directly, behind `mcp-gateway` and behind `mcp-proxy`, in [`WAYS`]
/// order; returns them with their ports.
fn start_ways(plan: &Plan, bin_dir: &Path) -> anyhow::Result<([BackgroundProcess; 3], [u16; 3])> {
    let (node, proxy) = install_mcp_proxy()?;
    let dice = bin_dir.join("dice_server").to_string_lossy().into_owned();
    let ports = [
        process::free_port()?,
        process::free_port()?,
        process::free_port()?,
    ];
    let servers = [
        start(
            "dice-direct",
            Path::new(&dice),
            &["--port".into(), ports[0].to_string()],
            plan,
            ports[0],
        )?,
        start(
            "gateway",
            &bin_dir.join("mcp-gateway"),
            &[
                "--port".into(),
                ports[1].to_string(),
                "--".into(),
                dice.clone(),
                "--stdio".into(),
            ],
            plan,
            ports[1],
        )?,
        start(
            "mcp-proxy",
            &node,
            &[
                proxy.to_string_lossy().into_owned(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                ports[2].to_string(),
                "--server".into(),
                "stream".into(),
                "--".into(),
                dice.clone(),
                "--stdio".into(),
            ],
            plan,
            ports[2],
        )?,
    ];
    Ok((servers, ports))
}

fn report(rows: &[(usize, [PhaseResult; 3])]) {
    let mut cells = Vec::new();
    for (sessions, results) in rows {
        for (way, r) in WAYS.iter().zip(results) {
            let ratio = |base: &PhaseResult| {
                Spread::of(vec![r.rps() / base.rps()]).map_or("-".into(), |s| s.show(2, ""))
            };
            cells.push(vec![
                way.to_string(),
                sessions.to_string(),
                format!("{:.0}", r.rps()),
                millis(r.p50),
                millis(r.p99),
                ratio(&results[0]),
                ratio(&results[2]),
            ]);
        }
    }
    let header = "<served by|sessions|req/s|p50|p99|x direct|x mcp-proxy";
    println!(
        "\nA stdio server behind a gateway (streamable HTTP, roll_dice; CPU 0 serves, including the child):\n{}",
        super::markdown(header, &cells)
    );
}
