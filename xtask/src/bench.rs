//! `cargo xtask bench`: throughput and latency of our MCP transports against a bare axum
//! ceiling, the cost of bearer auth, and memory per idle legacy SSE session.
//!
//! The servers run as child processes (`cargo xtask bench serve --mode echo|dice|dice-auth`,
//! see [`server`]) pinned to CPU 0 with `taskset`; this process, pinned to CPU 1, is the load
//! generator ([`mcp_loadgen`]): for 1 and 32 sessions, each on its own keep-alive
//! connection (two for legacy SSE), a closed loop of `tools/call roll_dice {"n_dice":3}` with a
//! warm-up and a measured window, in the order echo, streamable, legacy SSE, streamable with
//! auth, streamable with JSON responses, so that ratios compare neighbouring measurements.
//! Then a fresh dice server gets 10 000 idle legacy SSE sessions ([`idle`]).
//!
//! The measurements need an optimized build: started from a debug build (as `cargo xtask`
//! does), the command builds `xtask` in release mode and runs that binary. It is not a test:
//! it prints figures and the verdict on the targets, and fails only when calls fail (or, with
//! `--strict`, when a target is missed). `--quick` runs short phases for CI.
//!
//! Then the gateway row ([`gateway`]): the dice server directly over HTTP, through
//! `mcp-gateway` and through the npm `mcp-proxy`, with the ratios (`--gateway`).
//!
//! Then the replicated run ([`replicated`]): calls per second through nginx
//! (round robin, no stickiness) in front of three `dice_server` replicas sharing sessions
//! through Redis, beside one replica keeping them in memory behind the same nginx, for
//! streamable HTTP and legacy SSE, with the ratio; and the Redis round trips per call counted
//! on the Redis side (its `MONITOR` stream, idle background subtracted) next to their targets.
//! It needs `redis-server` and `nginx` (`scripts/install-nginx.sh`), and is not part of CI:
//! `--replicated auto` (the default) runs it after the other rows when both are installed,
//! but not with `--quick`; `--replicated yes` runs it in any case, `--replicated no` never,
//! and `--replicated only` runs nothing else, e.g.
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
/// The targets: streamable and legacy SSE rates as a share of the echo ceiling, the cost of
/// auth, and memory per idle SSE session.
const TARGET_STREAMABLE_RATIO: f64 = 0.7;
const TARGET_SSE_RATIO: f64 = 0.5;
const TARGET_AUTH_COST: f64 = 0.10;
const TARGET_IDLE_KIB: f64 = 16.0;
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
    /// Idle legacy SSE sessions for the memory measurement (0 skips it; default 10 000,
    /// 1 000 with --quick).
    #[arg(long)]
    pub idle_sessions: Option<usize>,
    /// Do not pin the server and the generator to separate CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Exit with 1 when a target is missed.
    #[arg(long)]
    pub strict: bool,
    /// What the idle connections hold: initialized legacy SSE sessions (the target), bare
    /// streams, or idle keep-alive connections to the echo server (the axum/hyper baseline).
    #[arg(long, value_enum, default_value = "initialized")]
    pub idle_kind: idle::IdleKind,
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
    idle_kind: idle::IdleKind,
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
            idle_kind: args.idle_kind,
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

const ROWS: [Row; 7] = [
    Row {
        key: "echo",
        label: "echo (ceiling)",
        server: ServerSlot::Echo,
        target: Target::Echo {
            path: server::ECHO_PATH,
        },
    },
    Row {
        key: "streamable",
        label: "streamable",
        server: ServerSlot::Dice,
        target: Target::Streamable,
    },
    Row {
        key: "sse",
        label: "legacy SSE",
        server: ServerSlot::Dice,
        target: Target::LegacySse,
    },
    Row {
        key: "auth",
        label: "streamable + auth",
        server: ServerSlot::DiceAuth,
        target: Target::Streamable,
    },
    Row {
        key: "json",
        label: "streamable, JSON responses",
        server: ServerSlot::DiceJson,
        target: Target::Streamable,
    },
    Row {
        key: "echo-sse",
        label: "echo as one SSE event",
        server: ServerSlot::Echo,
        target: Target::Echo {
            path: server::ECHO_SSE_PATH,
        },
    },
    Row {
        key: "echo-sse-stream",
        label: "echo as chunked SSE stream",
        server: ServerSlot::Echo,
        target: Target::Echo {
            path: server::ECHO_SSE_STREAM_PATH,
        },
    },
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
    let (mut failed, mut missed) = if plan.runs_transports() {
        transports(plan).await?
    } else {
        (false, 0)
    };
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
                missed += replicated::report(plan, &report);
                failed |= report.failed;
            }
        }
    }
    if failed {
        eprintln!("xtask bench: some calls failed (see above)");
        return Ok(ExitCode::FAILURE);
    }
    if plan.strict && missed > 0 {
        eprintln!("xtask bench: {missed} target(s) missed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// One result per run for each (row, sessions).
type RunResults = BTreeMap<(usize, usize), Vec<PhaseResult>>;

/// The transport rows and the idle sessions; says whether calls failed and how many targets
/// were missed.
async fn transports(plan: &Plan) -> anyhow::Result<(bool, usize)> {
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
    let idle = if plan.idle_sessions > 0 {
        Some(idle_phase(plan).await?)
    } else {
        None
    };
    let ratios = Ratios { runs: &results };
    let missed = report(plan, &medians(&results), &ratios, idle.as_ref());
    Ok((failed, missed))
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

async fn idle_phase(plan: &Plan) -> anyhow::Result<idle::IdleReport> {
    let mut count = plan.idle_sessions;
    let own = process::raise_open_files_limit(std::process::id())?;
    let server = match plan.idle_kind {
        idle::IdleKind::EchoConnection => ServerProcess::start("echo-idle", Mode::Echo, &[], plan)?,
        _ => ServerProcess::start("dice-idle", Mode::Dice, &[], plan)?,
    };
    let theirs = process::raise_open_files_limit(server.pid())?;
    let fits = usize::try_from(own.min(theirs).saturating_sub(SPARE_FILES)).unwrap_or(usize::MAX);
    if fits < count {
        eprintln!(
            "xtask bench: open-file limits (generator {own}, server {theirs}) allow {fits} idle sessions, not {count}"
        );
        count = fits;
    }
    let limit = Duration::from_secs(30)
        + Duration::from_millis(20) * u32::try_from(count).unwrap_or(u32::MAX);
    match idle::measure_idle(plan.idle_kind, server.addr, server.pid(), count, limit).await {
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

/// Rates relative to another row, taken within each run (the rows of a run are measured
/// back to back, so a ratio compares like with like when the machine's load drifts), then
/// the median over the runs.
struct Ratios<'r> {
    runs: &'r BTreeMap<(usize, usize), Vec<PhaseResult>>,
}

impl Ratios<'_> {
    /// Median over runs of `rps(row) / rps(base)`, both at `sessions`.
    fn of(&self, row: usize, base: usize, sessions: usize) -> Option<f64> {
        let rows = self.runs.get(&(row, sessions))?;
        let bases = self.runs.get(&(base, sessions))?;
        let mut ratios: Vec<f64> = rows
            .iter()
            .zip(bases)
            .map(|(r, b)| r.rps() / b.rps())
            .filter(|ratio| ratio.is_finite())
            .collect();
        median(&mut ratios)
    }
}

/// The median (the upper one of an even count); `None` when empty.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Prints the table, the summary lines and the verdicts; returns how many targets were missed.
fn report(
    plan: &Plan,
    results: &BTreeMap<(usize, usize), PhaseResult>,
    ratios: &Ratios<'_>,
    idle: Option<&idle::IdleReport>,
) -> usize {
    print_table(plan, results, ratios);
    let mut missed = 0;
    let mut verdict = |name: String, value: String, ok: bool| {
        println!(
            "target {name}: {value} {}",
            if ok { "ok" } else { "MISSED" }
        );
        if !ok {
            missed += 1;
        }
    };
    println!();
    rate_verdicts(plan, results, ratios, &mut verdict);
    if let Some(idle) = idle {
        idle_verdict(idle, &mut verdict);
    }
    missed
}

/// The markdown table of every row and its one-line summaries.
fn print_table(plan: &Plan, results: &BTreeMap<(usize, usize), PhaseResult>, ratios: &Ratios<'_>) {
    println!();
    println!(
        "| {:<28} | {:>8} | {:>9} | {:>9} | {:>9} | {:>6} | {:>10} | {:>12} | {:>8} | {:>11} | {:>6} |",
        "server / transport",
        "sessions",
        "req/s",
        "p50 ms",
        "p99 ms",
        "x echo",
        "server CPU",
        "server µs/call",
        "gen CPU",
        "gen µs/call",
        "errors"
    );
    println!(
        "{}",
        crate::bench::markdown_rule(&[
            (30, false),
            (9, true),
            (10, true),
            (10, true),
            (10, true),
            (7, true),
            (11, true),
            (13, true),
            (9, true),
            (12, true),
            (7, true)
        ])
    );
    for &sessions in &plan.sessions {
        for (index, row) in ROWS.iter().enumerate() {
            let Some(r) = results.get(&(index, sessions)) else {
                continue;
            };
            let share = |cpu: Option<Duration>| {
                cpu.map_or("?".to_owned(), |c| {
                    format!("{:.0}%", 100.0 * c.as_secs_f64() / r.window.as_secs_f64())
                })
            };
            println!(
                "| {:<28} | {:>8} | {:>9.0} | {:>9.3} | {:>9.3} | {:>6.2} | {:>10} | {:>12} | {:>8} | {:>11} | {:>6} |",
                row.label,
                sessions,
                r.rps(),
                r.p50.as_secs_f64() * 1000.0,
                r.p99.as_secs_f64() * 1000.0,
                ratios.of(index, 0, sessions).unwrap_or(f64::NAN),
                share(r.server_cpu),
                micros(r.server_cpu_per_call()),
                share(r.generator_cpu),
                micros(r.generator_cpu_per_call()),
                r.errors
            );
        }
    }
    println!();
    for &sessions in &plan.sessions {
        for (index, row) in ROWS.iter().enumerate() {
            if let (Some(r), Some(ratio)) = (
                results.get(&(index, sessions)),
                ratios.of(index, 0, sessions),
            ) {
                println!(
                    "{} {sessions} session{}: {:.0} req/s p50 {:.2} ms p99 {:.2} ms = {:.2}x echo",
                    row.label,
                    if sessions == 1 { "" } else { "s" },
                    r.rps(),
                    r.p50.as_secs_f64() * 1000.0,
                    r.p99.as_secs_f64() * 1000.0,
                    ratio
                );
            }
        }
    }
}

/// The throughput targets (ratios to the echo ceiling) and the cost of auth.
fn rate_verdicts(
    plan: &Plan,
    results: &BTreeMap<(usize, usize), PhaseResult>,
    ratios: &Ratios<'_>,
    verdict: &mut impl FnMut(String, String, bool),
) {
    let most = plan.sessions.iter().copied().max().unwrap_or(1);
    for (index, target) in [(1, TARGET_STREAMABLE_RATIO), (2, TARGET_SSE_RATIO)] {
        if let Some(ratio) = ratios.of(index, 0, most) {
            verdict(
                format!(
                    "{} >= {target:.1}x echo at {most} sessions",
                    ROWS[index].label
                ),
                format!("{ratio:.2}x"),
                ratio >= target,
            );
        }
    }
    for &sessions in &plan.sessions {
        if let (Some(plain), Some(auth), Some(ratio)) = (
            results.get(&(1, sessions)),
            results.get(&(3, sessions)),
            ratios.of(3, 1, sessions),
        ) {
            let cost = 1.0 - ratio;
            let figures = format!(
                "{:.1}% (median over runs; {:.0} vs {:.0} req/s; server CPU per call {} vs {} µs)",
                cost * 100.0,
                auth.rps(),
                plain.rps(),
                micros(auth.server_cpu_per_call()),
                micros(plain.server_cpu_per_call()),
            );
            if sessions == most {
                verdict(
                    format!("auth cost <= 10% (streamable, {sessions} sessions)"),
                    figures,
                    cost <= TARGET_AUTH_COST,
                );
            } else {
                println!("auth cost (streamable, {sessions} session(s)): {figures}");
            }
        }
    }
}

/// Memory per idle session.
fn idle_verdict(idle: &idle::IdleReport, verdict: &mut impl FnMut(String, String, bool)) {
    let what = match idle.kind {
        idle::IdleKind::Initialized => "legacy SSE sessions (stream open, initialized)",
        idle::IdleKind::StreamOnly => "legacy SSE streams (endpoint read, not initialized)",
        idle::IdleKind::EchoConnection => "keep-alive connections to the echo server",
    };
    println!(
        "idle {what}: {} opened in {:.1} s; server RSS {:.1} MiB -> {:.1} MiB ({:.1} MiB after they closed) = {:.1} KiB each",
        idle.sessions,
        idle.setup.as_secs_f64(),
        idle.rss_before_kib as f64 / 1024.0,
        idle.rss_open_kib as f64 / 1024.0,
        idle.rss_closed_kib as f64 / 1024.0,
        idle.kib_per_session()
    );
    if idle.kind == idle::IdleKind::Initialized {
        let per = idle.kib_per_session();
        verdict(
            format!("<= {TARGET_IDLE_KIB:.0} KiB per idle SSE session"),
            format!("{per:.1} KiB"),
            per <= TARGET_IDLE_KIB,
        );
    }
}

/// The rule under a markdown table's header: one `(width, right-aligned)` per column.
pub(crate) fn markdown_rule(columns: &[(usize, bool)]) -> String {
    let mut rule = String::from("|");
    for &(width, right) in columns {
        rule.push_str(&"-".repeat(width));
        if right {
            rule.push(':');
        }
        rule.push('|');
    }
    rule
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

    fn phase(rps: u64) -> PhaseResult {
        PhaseResult {
            completed: rps,
            window: Duration::from_secs(1),
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            errors: 0,
            first_error: None,
            server_cpu: None,
            server_cpu_groups: Vec::new(),
            generator_cpu: None,
        }
    }

    #[test]
    fn ratios_are_taken_within_each_run_then_the_median() {
        let mut runs = BTreeMap::new();
        // The machine was 3x busier in the second run: per-run ratios stay 0.5, 0.5, 0.8.
        runs.insert((0, 32), vec![phase(100), phase(30), phase(100)]);
        runs.insert((1, 32), vec![phase(50), phase(15), phase(80)]);
        let ratios = Ratios { runs: &runs };
        assert_eq!(ratios.of(1, 0, 32), Some(0.5));
        assert_eq!(ratios.of(1, 0, 1), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut []), None);
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
