//! `cargo xtask bench`: throughput and latency of our MCP transports against a bare axum
//! ceiling, the cost of bearer auth, and server memory per idle session.
//!
//! The servers run as child processes (`cargo xtask bench serve --mode echo|dice|dice-auth`, see
//! [`server`]) pinned to CPU 0 with `taskset`; this process, pinned to CPU 1, is the load generator
//! ([`mcp_loadgen`]): for 1 and 32 sessions, each on its own keep-alive connection (two for legacy
//! SSE), a closed loop of `tools/call roll_dice {"n_dice":3}` with a warm-up and a measured window,
//! in the order echo, streamable, legacy SSE, streamable with auth, streamable with JSON responses,
//! so that ratios compare neighbouring measurements. Then, for each `--idle-kind` (default: echo
//! keep-alive connections as the baseline, streamable sessions, legacy SSE sessions each with a
//! keep-alive POST connection), a fresh server gets 10 000 idle sessions and its RSS growth per
//! session is set against the target ([`idle`]).
//!
//! The measurements need an optimized build: started from a debug build (as `cargo xtask`
//! does), the command builds `xtask` in release mode and runs that binary. It is not a test: it
//! prints figures (median [min, max] over `--runs`), a PASS/MISS line per target and, last, every
//! target of issue 17's table ([`GOALS`]); it fails only when calls fail (or, with `--strict`,
//! when a target is missed). `--quick` runs short phases for CI.
//!
//! Then the gateway row ([`gateway`]): the dice server directly over HTTP, through
//! `mcp-gateway` and through the npm `mcp-proxy`, with the ratios (`--gateway`).
//!
//! Then the replicated run ([`replicated`]): calls per second through nginx (round robin, no
//! stickiness) in front of three `dice_server` replicas sharing sessions through Redis, beside one
//! replica keeping them in memory behind the same nginx, for streamable HTTP and legacy SSE, with
//! the ratio (a target); and the Redis round trips per call counted on the Redis side (its
//! `MONITOR` stream, idle background subtracted) next to their targets. It needs `redis-server` and
//! `nginx` (`scripts/install-nginx.sh`), and is not part of CI: `--replicated auto` (the default)
//! runs it after the other rows when both are installed, but not with `--quick`; `--replicated yes`
//! runs it in any case, `--replicated no` never, and `--replicated only` runs nothing else, e.g.
//! `cargo xtask bench --replicated only --quick` (about a minute).

mod gateway;
mod idle;
mod redis_monitor;
mod replicated;
mod server;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};

use mcp_loadgen::{Phase, PhaseResult, Target, Timing, ToolCall};
use mcp_stack_tests::process::{self, BackgroundProcess};
use server::Mode;

/// Set in the environment of the release binary the debug build starts, so it runs the bench
/// instead of building again.
const RELEASE_MARKER: &str = "XTASK_BENCH_RELEASE";
/// Descriptors the generator and the idle-session server need besides one per session.
const SPARE_FILES: u64 = 256;

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Internal: run one of the measured servers.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Measured seconds per phase (default 10; 2 with --quick).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Warm-up seconds before each measured window (default 2; 0.5 with --quick).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Short phases and 1 000 idle sessions: a smoke run for CI.
    #[arg(long)]
    pub quick: bool,
    /// Repeat the whole matrix this many times: each row shows its median rate, and ratios
    /// (x echo, auth cost) are the median of the ratios taken within each run.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Concurrent sessions per phase (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub sessions: Vec<usize>,
    /// Idle sessions of each --idle-kind for the memory measurement (0 skips it; default
    /// 10 000, 1 000 with --quick; fewer when the open-file limits are lower).
    #[arg(long)]
    pub idle_sessions: Option<usize>,
    /// Do not pin the server and the generator to separate CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Exit with 1 when a target is missed.
    #[arg(long)]
    pub strict: bool,
    /// What the idle sessions hold, measured in turn (comma-separated): the echo baseline,
    /// streamable and legacy SSE sessions (the targets), and diagnostics.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "echo,streamable,sse"
    )]
    pub idle_kind: Vec<idle::IdleKind>,
    /// Measure only these rows (comma-separated: echo, streamable, sse, auth, json, or none;
    /// diagnostics: echo-sse, echo-sse-stream); default the first five.
    /// Handy with `perf record -p <server pid>`; the ratios need `echo`.
    #[arg(long, value_delimiter = ',')]
    pub rows: Vec<String>,
    /// The replicated run (3 replicas on Redis vs 1 in memory, both behind nginx; Redis round
    /// trips per call): `auto` runs it when redis-server and nginx are installed, except with
    /// --quick; `yes` always (fails without them); `no` never; `only` runs nothing else.
    #[arg(long, value_enum, default_value = "auto")]
    pub replicated: ReplicatedWhen,
    /// The gateway row (issue 21): the dice server directly over HTTP, through `mcp-gateway`
    /// and through the npm `mcp-proxy` (installed into .tools/ when missing). `auto` runs it
    /// except with --quick; `only` runs nothing else.
    #[arg(long, value_enum, default_value = "auto")]
    pub gateway: ReplicatedWhen,
}

/// When `cargo xtask bench` runs its replicated part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplicatedWhen {
    /// When redis-server and nginx are installed, except with `--quick`.
    Auto,
    /// Always (fails when redis-server or nginx is missing).
    Yes,
    /// Never.
    No,
    /// Only the replicated part: no other rows, no idle sessions.
    Only,
}

/// Subcommands of `cargo xtask bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Run one of the measured servers until SIGINT/SIGTERM.
    #[command(hide = true)]
    Serve(server::ServeArgs),
}

/// Everything a run needs, resolved from [`Args`].
#[derive(Debug, Clone)]
struct Plan {
    timing: Timing,
    runs: usize,
    sessions: Vec<usize>,
    idle_sessions: usize,
    pin: bool,
    strict: bool,
    rows: Vec<usize>,
    idle_kinds: Vec<idle::IdleKind>,
    /// Whether the replicated part runs (`auto` resolved against `--quick`, not yet against
    /// the installed tools).
    replicated: ReplicatedWhen,
    /// Whether the gateway row runs.
    gateway: bool,
    /// Whether only the gateway row runs.
    gateway_only: bool,
}

impl Plan {
    fn from_args(args: &Args) -> anyhow::Result<Self> {
        let seconds = |value: Option<f64>, normal: f64, quick: f64, name: &str| {
            let value = value.unwrap_or(if args.quick { quick } else { normal });
            if !(value.is_finite() && (0.0..=3600.0).contains(&value)) {
                bail!("--{name} must be between 0 and 3600 seconds");
            }
            Ok(Duration::from_secs_f64(value))
        };
        let duration = seconds(args.duration, 10.0, 2.0, "duration")?;
        if duration.is_zero() {
            bail!("--duration must be more than 0");
        }
        let warmup = seconds(args.warmup, 2.0, 0.5, "warmup")?;
        if args.sessions.is_empty() || args.sessions.iter().any(|&n| n == 0 || n > 1000) {
            bail!("--sessions takes counts between 1 and 1000");
        }
        if !(1..=20).contains(&args.runs) {
            bail!("--runs must be between 1 and 20");
        }
        let idle_sessions = args
            .idle_sessions
            .unwrap_or(if args.quick { 1_000 } else { 10_000 });
        if idle_sessions > 100_000 {
            bail!("--idle-sessions must be at most 100000");
        }
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let pin = !args.no_pin && cpus >= 2 && process::taskset_available();
        if !args.no_pin && !pin {
            eprintln!(
                "xtask bench: not pinning ({cpus} CPU(s), taskset {}); figures are noisier",
                if process::taskset_available() {
                    "present"
                } else {
                    "missing"
                }
            );
        }
        let rows = rows_to_measure(&args.rows)?;
        Ok(Self {
            timing: Timing {
                warmup,
                duration,
                call_timeout: Duration::from_secs(5),
                max_calls_per_session: 50_000_000,
                setup_timeout: Duration::from_secs(30),
            },
            runs: args.runs,
            sessions: args.sessions.clone(),
            idle_sessions,
            pin,
            strict: args.strict,
            rows,
            idle_kinds: {
                let mut kinds = args.idle_kind.clone();
                kinds.sort_unstable();
                kinds.dedup();
                kinds
            },
            replicated: match (args.replicated, args.gateway) {
                (_, ReplicatedWhen::Only) => ReplicatedWhen::No,
                (ReplicatedWhen::Auto, _) if args.quick => ReplicatedWhen::No,
                (other, _) => other,
            },
            gateway: match args.gateway {
                ReplicatedWhen::Auto => !args.quick,
                ReplicatedWhen::Yes | ReplicatedWhen::Only => true,
                ReplicatedWhen::No => false,
            },
            gateway_only: args.gateway == ReplicatedWhen::Only,
        })
    }

    /// Whether the transport rows and the idle sessions run.
    fn runs_transports(&self) -> bool {
        self.replicated != ReplicatedWhen::Only && !self.gateway_only
    }

    /// Whether the replicated part may run: `yes`/`only`, or `auto` (decided by the tools).
    fn may_run_replicated(&self) -> bool {
        self.replicated != ReplicatedWhen::No
    }

    /// The most sessions measured, where the rates are judged.
    fn most_sessions(&self) -> usize {
        self.sessions.iter().copied().max().unwrap_or(1)
    }
}

/// The indexes into [`ROWS`] that `--rows` names, sorted (the default rows when it names none).
fn rows_to_measure(names: &[String]) -> anyhow::Result<Vec<usize>> {
    let mut rows = Vec::new();
    let none = names.iter().any(|name| name == "none");
    for name in names.iter().filter(|name| *name != "none") {
        match ROWS.iter().position(|row| row.key == name.as_str()) {
            Some(index) if !rows.contains(&index) => rows.push(index),
            Some(_) => {}
            None => bail!(
                "--rows takes {}, none; not {name:?}",
                ROWS.map(|row| row.key).join(", ")
            ),
        }
    }
    if rows.is_empty() && !none {
        rows = (0..DEFAULT_ROWS).collect();
    }
    rows.sort_unstable();
    Ok(rows)
}

/// Runs the command: serves (the hidden `serve`), rebuilds in release mode, or benchmarks.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(BenchCommand::Serve(serve)) = args.command {
        return server::serve(serve);
    }
    let plan = Plan::from_args(&args)?;
    if cfg!(debug_assertions) && std::env::var_os(RELEASE_MARKER).is_none() {
        return run_release_build(&plan);
    }
    if plan.pin {
        process::pin_running_process(std::process::id(), "1")
            .context("pinning the load generator to CPU 1")?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        tokio::select! {
            outcome = benchmark(&plan) => outcome,
            () = mcp_sse::ctrl_c() => bail!("interrupted; servers stopped"),
        }
    })
}

/// Builds `xtask` (and for the replicated part `dice_server`) in release mode and runs it with
/// the same arguments.
fn run_release_build(plan: &Plan) -> anyhow::Result<ExitCode> {
    build_release("xtask", None)?;
    if plan.may_run_replicated() {
        build_release("mcp-examples", Some(replicated::DICE_SERVER))?;
    }
    if plan.gateway {
        for (package, bin) in gateway::BINARIES {
            build_release(package, Some(bin))?;
        }
    }
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let release = exe
        .parent()
        .and_then(|debug| debug.parent())
        .map(|target| {
            target
                .join("release")
                .join(exe.file_name().unwrap_or_default())
        })
        .context("locating the release binary")?;
    let status = Command::new(&release)
        .args(std::env::args_os().skip(1))
        .env(RELEASE_MARKER, "1")
        .status()
        .with_context(|| format!("starting {}", release.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// The call every phase repeats: `tools/call roll_dice {"n_dice":3}`.
fn dice_call() -> ToolCall {
    ToolCall::new("roll_dice", serde_json::json!({"n_dice": 3}))
}

/// `cargo build --release` of `package` (only its binary `bin` when given).
fn build_release(package: &str, bin: Option<&str>) -> anyhow::Result<()> {
    let mut build = process::cargo();
    build.current_dir(mcp_stack_tests::workspace_root());
    build.args(["build", "--release", "--quiet", "--package", package]);
    if let Some(bin) = bin {
        build.args(["--bin", bin]);
    }
    eprintln!("xtask bench: {}", process::describe(&build));
    process::run_checked(build)
}

/// A measured server process.
#[derive(Debug)]
struct ServerProcess {
    process: BackgroundProcess,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(name: &str, mode: Mode, extra: &[&str], plan: &Plan) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the xtask binary")?;
        let mut command = if plan.pin {
            process::pinned(&exe, "0").0
        } else {
            Command::new(&exe)
        };
        let port = process::free_port()?;
        command
            .args(["bench", "serve", "--mode", mode.name(), "--port"])
            .arg(port.to_string())
            .args(extra);
        let log = log_dir().join(format!("{name}.log"));
        let mut process = BackgroundProcess::spawn(name, command, &log)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        process.wait_for_tcp(addr, Duration::from_secs(30))?;
        eprintln!(
            "xtask bench: server {name} (pid {}) on {addr}",
            process.id()
        );
        Ok(Self { process, addr })
    }

    fn pid(&self) -> u32 {
        self.process.id()
    }
}

fn log_dir() -> PathBuf {
    process::log_dir().join("bench")
}

/// One row of the report: a transport on one of the servers.
#[derive(Debug, Clone, Copy)]
struct Row {
    key: &'static str,
    label: &'static str,
    server: ServerSlot,
    target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerSlot {
    Echo,
    Dice,
    DiceAuth,
    DiceJson,
}

/// Rows measured unless `--rows` names others: the last two are diagnostics.
const DEFAULT_ROWS: usize = 5;

#[rustfmt::skip]
const ROWS: [Row; 7] = [
    Row { key: "echo", label: "echo (ceiling)", server: ServerSlot::Echo,
        target: Target::Echo { path: server::ECHO_PATH } },
    Row { key: "streamable", label: "streamable", server: ServerSlot::Dice,
        target: Target::Streamable },
    Row { key: "sse", label: "legacy SSE", server: ServerSlot::Dice, target: Target::LegacySse },
    Row { key: "auth", label: "streamable + auth", server: ServerSlot::DiceAuth,
        target: Target::Streamable },
    Row { key: "json", label: "streamable, JSON responses", server: ServerSlot::DiceJson,
        target: Target::Streamable },
    Row { key: "echo-sse", label: "echo as one SSE event", server: ServerSlot::Echo,
        target: Target::Echo { path: server::ECHO_SSE_PATH } },
    Row { key: "echo-sse-stream", label: "echo as chunked SSE stream", server: ServerSlot::Echo,
        target: Target::Echo { path: server::ECHO_SSE_STREAM_PATH } },
];

struct Servers {
    echo: ServerProcess,
    dice: ServerProcess,
    dice_auth: ServerProcess,
    dice_json: ServerProcess,
}

impl Servers {
    /// Starts the four servers; returns them with a token the `dice-auth` server accepts.
    fn start(plan: &Plan) -> anyhow::Result<(Self, String)> {
        let key_pair =
            mcp_auth::RsaKeyPair::generate().context("generating the development key")?;
        let token = key_pair
            .create_token()
            .audience(server::AUDIENCE)
            .lifetime(Duration::from_secs(24 * 3600))
            .sign()?;
        let public_key = log_dir().join("dice-auth-public-key.pem");
        std::fs::write(&public_key, key_pair.public_key_pem())
            .with_context(|| format!("writing {}", public_key.display()))?;
        let public_key = public_key.to_string_lossy().into_owned();
        let auth_args = ["--public-key", public_key.as_str()];
        let servers = Servers {
            echo: ServerProcess::start("echo", Mode::Echo, &[], plan)?,
            dice: ServerProcess::start("dice", Mode::Dice, &[], plan)?,
            dice_auth: ServerProcess::start("dice-auth", Mode::DiceAuth, &auth_args, plan)?,
            dice_json: ServerProcess::start("dice-json", Mode::Dice, &["--json-response"], plan)?,
        };
        Ok((servers, token))
    }

    fn get(&self, slot: ServerSlot) -> &ServerProcess {
        match slot {
            ServerSlot::Echo => &self.echo,
            ServerSlot::Dice => &self.dice,
            ServerSlot::DiceAuth => &self.dice_auth,
            ServerSlot::DiceJson => &self.dice_json,
        }
    }

    fn all_mut(&mut self) -> [&mut ServerProcess; 4] {
        [
            &mut self.echo,
            &mut self.dice,
            &mut self.dice_auth,
            &mut self.dice_json,
        ]
    }
}

async fn benchmark(plan: &Plan) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(log_dir())
        .with_context(|| format!("creating {}", log_dir().display()))?;
    let mut card = Scorecard::default();
    let mut failed = plan.runs_transports() && transports(plan, &mut card).await?;
    if plan.gateway {
        let bin_dir = std::env::current_exe()
            .context("locating the xtask binary")?
            .parent()
            .map(std::path::Path::to_path_buf)
            .context("locating the release folder")?;
        failed |= gateway::measure(plan, &bin_dir).await?;
    }
    if plan.may_run_replicated() {
        match replicated::missing_tools() {
            Some(missing) if plan.replicated == ReplicatedWhen::Auto => {
                eprintln!("xtask bench: replicated run skipped: {missing}");
            }
            Some(missing) => bail!("the replicated run needs {missing}"),
            None => {
                let dice_server = std::env::current_exe()
                    .context("locating the xtask binary")?
                    .with_file_name(replicated::DICE_SERVER);
                let report = replicated::measure(plan, &dice_server).await?;
                replicated::report(plan, &report, &mut card);
                failed |= report.failed;
            }
        }
    }
    println!("\n{}", card.summary(plan.runs));
    if failed {
        eprintln!("xtask bench: some calls failed (see above)");
        return Ok(ExitCode::FAILURE);
    }
    if plan.strict && card.missed > 0 {
        eprintln!("xtask bench: {} target(s) missed", card.missed);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// One result per run for each (row, sessions).
type RunResults = BTreeMap<(usize, usize), Vec<PhaseResult>>;

/// The transport rows and the idle sessions, judged on `card`; says whether calls failed.
async fn transports(plan: &Plan, card: &mut Scorecard) -> anyhow::Result<bool> {
    let (servers, token) = Servers::start(plan)?;
    eprintln!(
        "xtask bench (pid {}): {}; warm-up {:?}, {:?} measured per phase, {} run(s); load average {}; logs in {}",
        std::process::id(),
        if plan.pin {
            "servers on CPU 0, generator on CPU 1"
        } else {
            "not pinned"
        },
        plan.timing.warmup,
        plan.timing.duration,
        plan.runs,
        load_average(),
        log_dir().display()
    );
    let (results, failed) = measure_rows(plan, servers, &token).await?;
    let mut idle = Vec::new();
    if plan.idle_sessions > 0 {
        for &kind in &plan.idle_kinds {
            idle.push(idle_phase(plan, kind).await?);
        }
    }
    report(plan, &Runs(&results), &idle, card);
    Ok(failed)
}

/// Every row of the plan at every session count, `plan.runs` times; says whether calls failed.
async fn measure_rows(
    plan: &Plan,
    mut servers: Servers,
    token: &str,
) -> anyhow::Result<(RunResults, bool)> {
    let mut results = RunResults::new();
    let mut failed = false;
    let call = dice_call();
    for run in 1..=plan.runs {
        for &sessions in &plan.sessions {
            for &index in &plan.rows {
                let row = &ROWS[index];
                let server = servers.get(row.server);
                let phase = Phase {
                    target: row.target,
                    addr: server.addr,
                    sessions,
                    token: (row.server == ServerSlot::DiceAuth).then_some(token),
                    call: &call,
                    timing: plan.timing,
                };
                let result = match phase.run(&[server.pid()]).await {
                    Ok(result) => result,
                    Err(error) => {
                        for s in servers.all_mut() {
                            s.process.print_log();
                        }
                        return Err(anyhow::Error::new(error)
                            .context(format!("{} with {sessions} session(s)", row.label)));
                    }
                };
                let line = phase_line(&result);
                eprintln!(
                    "  run {run}: {:<28} {sessions:>4} session(s): {line}",
                    row.label
                );
                failed |= result.errors > 0;
                results.entry((index, sessions)).or_default().push(result);
            }
        }
        for s in servers.all_mut() {
            s.process.ensure_running()?;
        }
    }
    Ok((results, failed))
}

/// The run with the median rate of each row.
fn medians(results: &RunResults) -> BTreeMap<(usize, usize), PhaseResult> {
    results
        .iter()
        .filter_map(|(key, runs)| Some((*key, PhaseResult::median_by_rate(runs)?)))
        .collect()
}

/// `req/s p50 p99 (errors)` of a phase, for the progress lines.
fn phase_line(result: &PhaseResult) -> String {
    format!(
        "{:>9.0} req/s p50 {} p99 {}{}",
        result.rps(),
        millis(result.p50),
        millis(result.p99),
        match &result.first_error {
            Some(error) => format!(" ({} errors; first: {error})", result.errors),
            None => String::new(),
        }
    )
}

/// A fresh server with `plan.idle_sessions` idle sessions of `kind` (fewer when the open-file
/// limits do not allow them all).
async fn idle_phase(plan: &Plan, kind: idle::IdleKind) -> anyhow::Result<idle::IdleReport> {
    let mut count = plan.idle_sessions;
    let own = process::raise_open_files_limit(std::process::id())?;
    let server = if kind.on_echo_server() {
        ServerProcess::start("echo-idle", Mode::Echo, &[], plan)?
    } else {
        // Kept-alive connections stay open for the whole measurement.
        let args = ["--keep-alive-secs", "3600"];
        ServerProcess::start("dice-idle", Mode::Dice, &args, plan)?
    };
    let theirs = process::raise_open_files_limit(server.pid())?;
    let files = usize::try_from(own.min(theirs).saturating_sub(SPARE_FILES)).unwrap_or(usize::MAX);
    let fits = files / kind.connections().max(1);
    if fits < count {
        eprintln!(
            "xtask bench: open-file limits (generator {own}, server {theirs}) allow {fits} idle sessions of {} connection(s), not {count}",
            kind.connections()
        );
        count = fits;
    }
    let limit = Duration::from_secs(30)
        + Duration::from_millis(20) * u32::try_from(count).unwrap_or(u32::MAX);
    match idle::measure_idle(kind, server.addr, server.pid(), count, limit).await {
        Ok(report) => Ok(report),
        Err(error) => {
            server.process.print_log();
            Err(error)
        }
    }
}

fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn micros(d: Option<Duration>) -> String {
    d.map_or("?".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1e6))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            let fields: Vec<&str> = text.split_whitespace().take(3).collect();
            (fields.len() == 3).then(|| fields.join(" "))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// One of issue 17's targets: its row in [`GOALS`], the order of the issue's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Goal(usize);

/// What each [`Goal`] measures (in its order), `<=` or `>=`, the bound, the unit of values.
const GOALS: [(&str, &str, f64, &str); 10] = [
    ("mcp-proto vs serde_json (cargo bench)", "<=", 2.0, "x"),
    ("streamable HTTP vs echo", ">=", 0.7, "x"),
    ("legacy SSE vs echo", ">=", 0.5, "x"),
    ("p50, streamable vs echo", "<=", 1.3, "x"),
    ("JWT auth cost, streamable", "<=", 10.0, "%"),
    ("idle streamable session", "<=", 16.0, " KiB"),
    ("idle SSE session + keep-alive POSTs", "<=", 24.0, " KiB"),
    ("3 replicas on Redis vs 1, streamable", ">=", 0.75, "x"),
    ("3 replicas on Redis vs 1, legacy SSE", ">=", 0.6, "x"),
    ("p99 / p50, streamable", "<=", 1.5, ""),
];

impl Goal {
    const STREAMABLE: Goal = Goal(1);
    const SSE: Goal = Goal(2);
    const ONE_SESSION_P50: Goal = Goal(3);
    const AUTH_COST: Goal = Goal(4);
    const IDLE_STREAMABLE: Goal = Goal(5);
    const IDLE_SSE: Goal = Goal(6);
    const REPLICAS_STREAMABLE: Goal = Goal(7);
    const REPLICAS_SSE: Goal = Goal(8);
    const TAIL: Goal = Goal(9);

    /// What it measures (at `sessions`, when given), and the bound: `<= 1.3x`.
    fn describe(self, sessions: Option<usize>) -> (String, String) {
        let (what, op, bound, unit) = GOALS[self.0];
        let at = sessions.map_or(String::new(), |n| format!(", {n} session(s)"));
        (format!("{what}{at}"), format!("{op} {bound}{unit}"))
    }

    /// Whether `value` meets it.
    fn met(self, value: f64) -> bool {
        let (_, op, bound, _) = GOALS[self.0];
        op == "<=" && value <= bound || op == ">=" && value >= bound
    }

    /// `spread` in its unit: ratios with 2 decimals, percentages and KiB with 1.
    fn show(self, spread: &Spread) -> String {
        let unit = GOALS[self.0].3;
        spread.show(if unit == "x" || unit.is_empty() { 2 } else { 1 }, unit)
    }
}

/// The verdicts of a bench run: what it measured of each [`Goal`], and how many targets
/// (those and the Redis round trips) it missed.
#[derive(Debug, Default)]
struct Scorecard {
    measured: BTreeMap<Goal, (Option<usize>, Spread)>,
    missed: usize,
}

impl Scorecard {
    /// Prints `target <name>: <value> PASS|MISS`, counting a miss.
    fn verdict(&mut self, name: &str, value: &str, ok: bool) {
        println!("target {name}: {value} {}", pass(ok));
        self.missed += usize::from(!ok);
    }

    /// Judges `goal` on `spread` (measured at `sessions`, when it says where), with `detail`.
    fn judge(&mut self, goal: Goal, sessions: Option<usize>, spread: Spread, detail: &str) {
        let (what, bound) = goal.describe(sessions);
        let value = goal.show(&spread);
        self.verdict(
            &format!("{what} {bound}"),
            &format!("{value}{detail}"),
            goal.met(spread.median),
        );
        self.measured.insert(goal, (sessions, spread));
    }

    /// Every goal in the issue's order with its value, its bound and the verdict.
    fn summary(&self, runs: usize) -> String {
        let rows: Vec<Vec<String>> = (0..GOALS.len())
            .map(Goal)
            .map(|goal| {
                let measured = self.measured.get(&goal);
                let (what, bound) = goal.describe(measured.and_then(|(sessions, _)| *sessions));
                let (value, verdict) = match measured {
                    Some((_, spread)) => (goal.show(spread), pass(goal.met(spread.median))),
                    None => ("-".to_owned(), "not measured"),
                };
                vec![what, value, bound, verdict.to_owned()]
            })
            .collect();
        let table = markdown("<target|measured|<bound|<verdict", &rows);
        format!("Issue 17's targets (median [min, max] over {runs} run(s)):\n{table}")
    }
}

/// How a verdict reads.
fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// Values over the runs: the median (the upper one of an even count), the least, the most.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

impl Spread {
    /// The spread of the finite `values`; `None` when there are none.
    fn of(mut values: Vec<f64>) -> Option<Self> {
        values.retain(|value| value.is_finite());
        values.sort_by(f64::total_cmp);
        let (min, max, runs) = (*values.first()?, *values.last()?, values.len());
        let median = values[runs / 2];
        Some(Self {
            median,
            min,
            max,
            runs,
        })
    }

    /// The median with `decimals` and `unit`, then `[min, max]` when there are several runs.
    fn show(&self, decimals: usize, unit: &str) -> String {
        let (median, min, max) = (self.median, self.min, self.max);
        let spread = format!(" [{min:.decimals$}, {max:.decimals$}]");
        let spread = if self.runs > 1 { spread.as_str() } else { "" };
        format!("{median:.decimals$}{unit}{spread}")
    }
}

/// Every run's results, for figures taken within each run (the rows of a run are measured
/// back to back, so a ratio compares like with like when the machine's load drifts) and then
/// spread over the runs.
struct Runs<'r>(&'r RunResults);

/// A figure of one phase.
type Value = fn(&PhaseResult) -> f64;

impl Runs<'_> {
    /// `value` of `row` at `sessions` in each run.
    fn each(&self, row: usize, sessions: usize, value: Value) -> Vec<f64> {
        let runs = self.0.get(&(row, sessions)).map_or(&[][..], Vec::as_slice);
        runs.iter().map(value).collect()
    }

    /// `value` of `row` over that of `base` within each run, both at `sessions`.
    fn ratios(&self, row: usize, base: usize, sessions: usize, value: Value) -> Vec<f64> {
        let bases = self.each(base, sessions, value);
        let rows = self.each(row, sessions, value);
        rows.iter().zip(bases).map(|(r, b)| r / b).collect()
    }

    /// The rate of `row` over that of `base`, both at `sessions`.
    fn rate(&self, row: usize, base: usize, sessions: usize) -> Option<Spread> {
        Spread::of(self.ratios(row, base, sessions, PhaseResult::rps))
    }

    /// `req/s`, `p50 ms`, `p99 ms` of `row` and its rate over `base`'s, as table cells.
    fn cells(&self, row: usize, base: usize, sessions: usize) -> [String; 4] {
        let cell =
            |values, decimals| Spread::of(values).map_or("?".into(), |s| s.show(decimals, ""));
        [
            cell(self.each(row, sessions, PhaseResult::rps), 0),
            cell(self.each(row, sessions, |r| r.p50.as_secs_f64() * 1e3), 3),
            cell(self.each(row, sessions, |r| r.p99.as_secs_f64() * 1e3), 3),
            cell(self.ratios(row, base, sessions, PhaseResult::rps), 2),
        ]
    }
}

/// What the transport rows measured of their goals, each with the session count it is judged
/// at: the rates, the auth cost and the tail at the most sessions, the p50 at one session.
fn rate_goals(runs: &Runs<'_>, most: usize) -> [(Goal, usize, Option<Spread>); 5] {
    let p50 = Spread::of(runs.ratios(1, 0, 1, |r| r.p50.as_secs_f64()));
    let tail = runs.each(1, most, |r| r.p99.as_secs_f64() / r.p50.as_secs_f64());
    [
        (Goal::STREAMABLE, most, runs.rate(1, 0, most)),
        (Goal::SSE, most, runs.rate(2, 0, most)),
        (Goal::ONE_SESSION_P50, 1, p50),
        (Goal::AUTH_COST, most, auth_cost(runs, most)),
        (Goal::TAIL, most, Spread::of(tail)),
    ]
}

/// The share of the streamable rate that auth costs at `sessions`, in percent.
fn auth_cost(runs: &Runs<'_>, sessions: usize) -> Option<Spread> {
    let ratios = runs.ratios(3, 1, sessions, PhaseResult::rps);
    Spread::of(ratios.iter().map(|ratio| 100.0 * (1.0 - ratio)).collect())
}

/// Prints the table and the verdicts of the transport rows and of the idle sessions.
fn report(plan: &Plan, runs: &Runs<'_>, idle: &[idle::IdleReport], card: &mut Scorecard) {
    let medians = medians(runs.0);
    print_table(plan, runs, &medians);
    let most = plan.most_sessions();
    // The rates and CPU time per call of the runs of median rate, auth beside plain.
    let auth_detail = |sessions| match (medians.get(&(3, sessions)), medians.get(&(1, sessions))) {
        (Some(auth), Some(plain)) => format!(
            " ({:.0} vs {:.0} req/s; server CPU per call {} vs {} µs)",
            auth.rps(),
            plain.rps(),
            micros(auth.server_cpu_per_call()),
            micros(plain.server_cpu_per_call()),
        ),
        _ => String::new(),
    };
    for &n in plan.sessions.iter().filter(|&&n| n != most) {
        if let Some(cost) = auth_cost(runs, n).map(|cost| Goal::AUTH_COST.show(&cost)) {
            println!(
                "auth cost (streamable, {n} session(s)): {cost}{}",
                auth_detail(n)
            );
        }
    }
    for (goal, n, spread) in rate_goals(runs, most) {
        let detail = if goal == Goal::AUTH_COST {
            auth_detail(n)
        } else {
            String::new()
        };
        if let Some(spread) = spread {
            card.judge(goal, Some(n), spread, &detail);
        }
    }
    idle_verdicts(idle, card);
}

/// The markdown table of every row (rates, latencies and ratios over the runs, CPU time from
/// the run of median rate) and a line per row.
fn print_table(plan: &Plan, runs: &Runs<'_>, medians: &BTreeMap<(usize, usize), PhaseResult>) {
    let (mut rows, mut lines) = (Vec::new(), Vec::new());
    for &sessions in &plan.sessions {
        for (index, row) in ROWS.iter().enumerate() {
            let Some(r) = medians.get(&(index, sessions)) else {
                continue;
            };
            let share = |cpu: Option<Duration>| {
                cpu.map_or("?".to_owned(), |c| {
                    format!("{:.0}%", 100.0 * c.as_secs_f64() / r.window.as_secs_f64())
                })
            };
            let [rps, p50, p99, ratio] = runs.cells(index, 0, sessions);
            lines.push(format!(
                "{} {sessions} session(s): {rps} req/s p50 {p50} ms p99 {p99} ms = {ratio} x echo",
                row.label
            ));
            let (server, generator) = (r.server_cpu_per_call(), r.generator_cpu_per_call());
            rows.push(vec![
                row.label.to_owned(),
                sessions.to_string(),
                rps,
                p50,
                p99,
                ratio,
                share(r.server_cpu),
                micros(server),
                share(r.generator_cpu),
                micros(generator),
                r.errors.to_string(),
            ]);
        }
    }
    let header = "<server / transport|sessions|req/s|p50 ms|p99 ms|x echo|server CPU|server µs/call|gen CPU|gen µs/call|errors";
    println!("\n{}\n{}", markdown(header, &rows), lines.join("\n"));
}

/// Memory per idle session of each kind measured, set against the echo baseline and the
/// targets.
fn idle_verdicts(idle: &[idle::IdleReport], card: &mut Scorecard) {
    let echo = idle
        .iter()
        .find(|r| r.kind == idle::IdleKind::Echo)
        .map(idle::IdleReport::kib_per_session);
    for report in idle {
        let per = report.kib_per_session();
        println!(
            "idle {}: {} opened in {:.1} s; server RSS {:.1} MiB -> {:.1} MiB ({:.1} MiB after they closed) = {per:.1} KiB each{}",
            report.kind.label(),
            report.sessions,
            report.setup.as_secs_f64(),
            report.rss_before_kib as f64 / 1024.0,
            report.rss_open_kib as f64 / 1024.0,
            report.rss_closed_kib as f64 / 1024.0,
            match echo {
                Some(echo) if report.kind != idle::IdleKind::Echo =>
                    format!(" ({:+.1} KiB vs an idle echo connection)", per - echo),
                _ => String::new(),
            }
        );
    }
    for report in idle {
        let goal = match report.kind {
            idle::IdleKind::Streamable => Goal::IDLE_STREAMABLE,
            idle::IdleKind::Sse => Goal::IDLE_SSE,
            _ => continue,
        };
        if let Some(spread) = Spread::of(vec![report.kib_per_session()]) {
            card.judge(goal, None, spread, " (one measurement)");
        }
    }
}

/// A markdown table: `header`'s cells split at `|` (a leading `<` aligns a column left, the
/// others align right), each column as wide as its widest cell.
pub(crate) fn markdown(header: &str, rows: &[Vec<String>]) -> String {
    let left: Vec<bool> = header.split('|').map(|c| c.starts_with('<')).collect();
    let header: Vec<String> = header.split('|').map(|c| c.replace('<', "")).collect();
    let mut widths = vec![0; header.len()];
    for row in std::iter::once(&header).chain(rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    for (n, row) in std::iter::once(&header).chain(rows).enumerate() {
        for ((cell, &width), &left) in row.iter().zip(&widths).zip(&left) {
            let (l, r) = (format!("{cell:<width$}"), format!("{cell:>width$}"));
            table += &format!("| {} ", if left { l } else { r });
        }
        table += "|\n";
        for (&width, &left) in widths.iter().zip(&left).filter(|_| n == 0) {
            table += &format!("|{:->1$}", if left { "-" } else { ":" }, width + 2);
        }
        table += if n == 0 { "|\n" } else { "" };
    }
    table
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn plan(argv: &[&str]) -> anyhow::Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))?;
        Plan::from_args(&cli.args)
    }

    #[test]
    fn defaults_quick_and_explicit_durations() {
        let normal = plan(&[]).unwrap();
        assert_eq!(normal.timing.duration, Duration::from_secs(10));
        assert_eq!(normal.timing.warmup, Duration::from_secs(2));
        assert_eq!(normal.sessions, vec![1, 32]);
        assert_eq!(normal.idle_sessions, 10_000);
        assert_eq!(
            normal.idle_kinds,
            [
                idle::IdleKind::Echo,
                idle::IdleKind::Streamable,
                idle::IdleKind::Sse
            ]
        );
        let kinds = plan(&["--idle-kind", "sse,echo,sse"]).unwrap().idle_kinds;
        assert_eq!(kinds, [idle::IdleKind::Echo, idle::IdleKind::Sse]);
        let quick = plan(&["--quick"]).unwrap();
        assert_eq!(quick.timing.duration, Duration::from_secs(2));
        assert_eq!(quick.timing.warmup, Duration::from_millis(500));
        assert_eq!(quick.idle_sessions, 1_000);
        let explicit = plan(&["--quick", "--duration", "3", "--sessions", "4,8"]).unwrap();
        assert_eq!(explicit.timing.duration, Duration::from_secs(3));
        assert_eq!(explicit.sessions, vec![4, 8]);
    }

    #[test]
    fn bad_options_are_refused() {
        assert_eq!(
            plan(&["--duration", "0"]).unwrap_err().to_string(),
            "--duration must be more than 0"
        );
        assert_eq!(
            plan(&["--warmup=-1"]).unwrap_err().to_string(),
            "--warmup must be between 0 and 3600 seconds"
        );
        assert_eq!(
            plan(&["--sessions", "0"]).unwrap_err().to_string(),
            "--sessions takes counts between 1 and 1000"
        );
        assert_eq!(
            plan(&["--runs", "0"]).unwrap_err().to_string(),
            "--runs must be between 1 and 20"
        );
        assert_eq!(
            plan(&["--rows", "echo,nope"]).unwrap_err().to_string(),
            "--rows takes echo, streamable, sse, auth, json, echo-sse, echo-sse-stream, none; not \"nope\""
        );
        assert_eq!(plan(&["--rows", "sse,echo,sse"]).unwrap().rows, vec![0, 2]);
        assert_eq!(plan(&[]).unwrap().rows, vec![0, 1, 2, 3, 4]);
        assert_eq!(plan(&["--rows", "none"]).unwrap().rows, Vec::<usize>::new());
    }

    #[test]
    fn the_replicated_part_is_off_in_quick_runs_unless_asked_for() {
        let full = plan(&[]).unwrap();
        assert_eq!(full.replicated, ReplicatedWhen::Auto);
        assert!(full.runs_transports() && full.may_run_replicated());
        let quick = plan(&["--quick"]).unwrap();
        assert_eq!(quick.replicated, ReplicatedWhen::No);
        assert!(quick.runs_transports() && !quick.may_run_replicated());
        let only = plan(&["--quick", "--replicated", "only"]).unwrap();
        assert!(!only.runs_transports() && only.may_run_replicated());
        let yes = plan(&["--quick", "--replicated", "yes"]).unwrap();
        assert!(yes.runs_transports() && yes.may_run_replicated());
        assert!(!plan(&["--replicated", "no"]).unwrap().may_run_replicated());
        assert!(plan(&["--replicated", "sometimes"]).is_err());
    }

    fn phase(rps: u64, p50_us: u64, p99_us: u64) -> PhaseResult {
        PhaseResult {
            completed: rps,
            window: Duration::from_secs(1),
            p50: Duration::from_micros(p50_us),
            p99: Duration::from_micros(p99_us),
            errors: 0,
            first_error: None,
            server_cpu: None,
            server_cpu_groups: Vec::new(),
            generator_cpu: None,
        }
    }

    #[test]
    fn ratios_are_taken_within_each_run_then_the_median() {
        let mut results = RunResults::new();
        // The machine was 3x busier in the second run: per-run ratios stay 0.5, 0.5, 0.8.
        results.insert((0, 32), [100, 30, 100].map(|rps| phase(rps, 1, 1)).to_vec());
        results.insert((1, 32), [50, 15, 80].map(|rps| phase(rps, 1, 1)).to_vec());
        let spread = Spread {
            median: 0.5,
            min: 0.5,
            max: 0.8,
            runs: 3,
        };
        assert_eq!(Runs(&results).rate(1, 0, 32), Some(spread));
        assert_eq!(Runs(&results).rate(1, 0, 1), None);
        assert_eq!(spread.show(2, "x"), "0.50x [0.50, 0.80]");
        let upper = Spread::of(vec![3.0, f64::NAN, 1.0, 2.0, 4.0]).unwrap();
        assert_eq!(upper.show(1, ""), "3.0 [1.0, 4.0]");
        assert_eq!(Spread::of(vec![16.34]).unwrap().show(1, " KiB"), "16.3 KiB");
        assert_eq!(Spread::of(vec![f64::INFINITY]), None);
    }

    #[test]
    fn the_rate_p50_auth_and_tail_goals_are_taken_within_each_run() {
        let mut results = RunResults::new();
        // Two runs of echo (row 0), streamable (1) and streamable + auth (3), 1 and 4 sessions.
        results.insert((0, 1), vec![phase(1000, 100, 150), phase(900, 80, 150)]);
        results.insert((1, 1), vec![phase(800, 120, 200), phase(700, 120, 200)]);
        results.insert((0, 4), vec![phase(4000, 100, 150), phase(2000, 100, 150)]);
        results.insert((1, 4), vec![phase(3000, 200, 280), phase(1600, 200, 320)]);
        results.insert((3, 4), vec![phase(2700, 1, 1), phase(1200, 1, 1)]);
        let goals =
            rate_goals(&Runs(&results), 4).map(|(goal, n, s)| (goal, n, s.map(|s| goal.show(&s))));
        assert_eq!(
            goals,
            [
                (Goal::STREAMABLE, 4, Some("0.80x [0.75, 0.80]".to_owned())),
                (Goal::SSE, 4, None),
                (
                    Goal::ONE_SESSION_P50,
                    1,
                    Some("1.50x [1.20, 1.50]".to_owned())
                ),
                (Goal::AUTH_COST, 4, Some("25.0% [10.0, 25.0]".to_owned())),
                (Goal::TAIL, 4, Some("1.60 [1.40, 1.60]".to_owned())),
            ]
        );
    }

    #[test]
    fn the_scorecard_counts_misses_and_lists_every_goal_in_the_issues_order() {
        let mut card = Scorecard::default();
        let one = |value| Spread::of(vec![value]).unwrap();
        card.judge(Goal::TAIL, Some(32), one(1.5), "");
        card.judge(Goal::IDLE_SSE, None, one(24.05), "");
        card.judge(Goal::STREAMABLE, Some(32), one(0.69), "");
        card.judge(Goal::REPLICAS_SSE, Some(32), one(0.6), "");
        card.verdict("Redis round trips <= 1", "1.00", true);
        assert_eq!(card.missed, 2);
        let expected = "Issue 17's targets (median [min, max] over 1 run(s)):
| target                                              | measured | bound     | verdict      |
|-----------------------------------------------------|---------:|-----------|--------------|
| mcp-proto vs serde_json (cargo bench)               |        - | <= 2x     | not measured |
| streamable HTTP vs echo, 32 session(s)              |    0.69x | >= 0.7x   | MISS         |
| legacy SSE vs echo                                  |        - | >= 0.5x   | not measured |
| p50, streamable vs echo                             |        - | <= 1.3x   | not measured |
| JWT auth cost, streamable                           |        - | <= 10%    | not measured |
| idle streamable session                             |        - | <= 16 KiB | not measured |
| idle SSE session + keep-alive POSTs                 | 24.1 KiB | <= 24 KiB | MISS         |
| 3 replicas on Redis vs 1, streamable                |        - | >= 0.75x  | not measured |
| 3 replicas on Redis vs 1, legacy SSE, 32 session(s) |    0.60x | >= 0.6x   | PASS         |
| p99 / p50, streamable, 32 session(s)                |     1.50 | <= 1.5    | PASS         |
";
        assert_eq!(card.summary(1), expected);
    }

    #[test]
    fn the_hidden_serve_command_parses() {
        let cli = Cli::try_parse_from([
            "bench",
            "serve",
            "--mode",
            "dice-auth",
            "--port",
            "0",
            "--public-key",
            "k.pem",
        ])
        .unwrap();
        let Some(BenchCommand::Serve(serve)) = cli.args.command else {
            panic!("not the serve command");
        };
        assert_eq!(serve.mode, Mode::DiceAuth);
        assert_eq!(serve.port, 0);
        assert_eq!(serve.public_key, Some(PathBuf::from("k.pem")));
        assert!(!serve.json_response);
    }
}
