//! The replicated run of `cargo xtask bench`: what sharing sessions through Redis
//! costs, in calls per second and in Redis round trips per call.
//!
//! Two deployments run side by side, each a real nginx doing round robin (no stickiness) in
//! front of `dice_server` processes (release build): one replica keeping its sessions in
//! memory, and [`REPLICAS`] replicas sharing theirs through one `redis-server`. CPU time per
//! call is shown for all serving processes and for each group (nginx, replicas, Redis). The load
//! balancer is in both, so the ratio is the cost of Redis and of crossing replicas. With
//! pinning, everything that serves (nginx, replicas, Redis) shares CPU 0 and the load generator
//! has CPU 1, as in the rest of the bench.
//!
//! - **Throughput**: the same closed loop as the other rows ([`mcp_loadgen`]), streamable HTTP
//!   and legacy SSE through the load balancer, in memory then on Redis, for each session count
//!   and run; the ratio replicated / in memory is taken within each run, then the median.
//! - **Round trips per call**, counted by Redis itself: the commands its clients send, from
//!   its `MONITOR` stream ([`super::redis_monitor`]; the commands a Lua script runs inside an
//!   `EVALSHA` are not round trips and are left out). Sessions are opened, then a window in
//!   which they stay idle (the background: delivery readers' blocking `XREAD`s timing out,
//!   keep-alive `touch`es), then a window in which every session makes exactly `calls` calls.
//!   Per call: (commands in the calls window − background rate × its length) / calls, per
//!   command. `xtrim` is left out: it goes in the same pipeline, so the same round trip, as
//!   the reader's next `xread`. Round trips on the request path are everything but the
//!   owner's delivery reads (`xread`), which are shown beside them. Scenarios: streamable
//!   POSTs through the load balancer and on a replica other than the one that initialized;
//!   legacy calls whose POST goes to another replica than the stream (every call crosses), to
//!   the stream's replica, and through the load balancer (two out of three cross); each at
//!   every `--sessions` count (delivery reads batch under load). The targets: at most 1 round
//!   trip per streamable POST (all of them), at most 2 on the request path of a legacy call
//!   that crosses replicas (the owner's delivery reads shown beside).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use mcp_loadgen::{LegacySession, Phase, Session, StreamableSession, Target};

use super::redis_monitor::{CommandCounts, Monitor};
use super::{Goal, Plan, Runs, Scorecard, markdown};
use mcp_stack_tests::process::process_trees;

/// Replicas sharing sessions through Redis.
pub const REPLICAS: usize = 3;
/// Most Redis round trips a streamable POST may cost.
pub const TARGET_STREAMABLE_ROUND_TRIPS: f64 = 1.0;
/// Most Redis round trips a legacy SSE call that crosses replicas may cost on its request path.
pub const TARGET_LEGACY_CROSSING_ROUND_TRIPS: f64 = 2.0;
/// The groups of serving processes whose CPU time is shown per call.
const CPU_GROUPS: [&str; 3] = ["nginx", "replicas", "Redis"];
/// Where everything that serves runs when pinned (the load generator has CPU 1).
const SERVER_CPUS: &str = "0";
/// Budget of each step of the `MONITOR` connection.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest idle window measuring the background (it is a few commands a second).
const MAX_IDLE_WINDOW: Duration = Duration::from_secs(3);
/// Commands that are not round trips of their own: the trim pipelined with each read.
const NOT_ROUND_TRIPS: [&str; 1] = ["xtrim"];
/// The owner's blocking reads of its delivery stream.
const DELIVERY_READS: &str = "xread";

/// Where sessions live in a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// One replica, sessions in its memory.
    Memory,
    /// [`REPLICAS`] replicas sharing sessions through Redis.
    Redis,
}

impl Store {
    fn label(self) -> String {
        match self {
            Store::Memory => "1 replica in memory".to_owned(),
            Store::Redis => format!("{REPLICAS} replicas on Redis"),
        }
    }
}

/// One throughput row: a transport on a deployment.
#[derive(Debug, Clone, Copy)]
struct Row {
    transport: Target,
    store: Store,
}

/// Rows in measuring order: each replicated row right after its in-memory neighbour.
#[rustfmt::skip]
const ROWS: [Row; 4] = [
    Row { transport: Target::Streamable, store: Store::Memory },
    Row { transport: Target::Streamable, store: Store::Redis },
    Row { transport: Target::LegacySse, store: Store::Memory },
    Row { transport: Target::LegacySse, store: Store::Redis },
];

/// How the calls of a round-trip scenario reach the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Everything through the load balancer.
    Balanced,
    /// Opened (stream, or `initialize`) on replica `open`, calls POSTed to replica `call`.
    Direct { open: usize, call: usize },
}

/// A round-trip measurement.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    label: &'static str,
    transport: Target,
    route: Route,
    /// The target on request-path round trips, if the issue sets one.
    target: Option<f64>,
}

/// The round-trip scenarios, in measuring order.
#[rustfmt::skip]
const SCENARIOS: [Scenario; 5] = [
    Scenario { label: "streamable POST through the LB", transport: Target::Streamable,
        route: Route::Balanced, target: Some(TARGET_STREAMABLE_ROUND_TRIPS) },
    Scenario { label: "streamable POST, initialized on A, called on B",
        transport: Target::Streamable, route: Route::Direct { open: 0, call: 1 },
        target: Some(TARGET_STREAMABLE_ROUND_TRIPS) },
    Scenario { label: "legacy SSE call, stream on A, POST on B", transport: Target::LegacySse,
        route: Route::Direct { open: 0, call: 1 },
        target: Some(TARGET_LEGACY_CROSSING_ROUND_TRIPS) },
    Scenario { label: "legacy SSE call, stream and POST on A", transport: Target::LegacySse,
        route: Route::Direct { open: 0, call: 0 }, target: None },
    Scenario { label: "legacy SSE call through the LB", transport: Target::LegacySse,
        route: Route::Balanced, target: None },
];

/// The replica binary (package `mcp-examples`), built in release mode next to `xtask`.
pub const DICE_SERVER: &str = "dice_server";

/// What the replicated run needs but cannot find, if anything.
pub fn missing_tools() -> Option<String> {
    let missing: Vec<&str> = [
        ("redis-server", "redis-server (Debian package redis-server)"),
        ("nginx", "nginx (bash scripts/install-nginx.sh)"),
    ]
    .into_iter()
    .filter(|(program, _)| {
        mcp_stack_tests::process::find_on_path(program).is_none()
            && !std::path::Path::new("/usr/sbin").join(program).is_file()
    })
    .map(|(_, what)| what)
    .collect();
    (!missing.is_empty()).then(|| missing.join(" and "))
}

/// The serving processes of one deployment.
pub struct Deployment {
    lb: SocketAddr,
    replicas: Vec<SocketAddr>,
    redis: Option<String>,
    cluster: mcp_stack_tests::cluster::Cluster,
}

impl Deployment {
    /// Starts the deployment for `store` with the release `dice_server` at `dice_server`;
    /// everything pinned to CPU 0 when `pin`.
    fn start(store: Store, dice_server: &std::path::Path, pin: bool) -> anyhow::Result<Self> {
        let mut config = match store {
            Store::Memory => mcp_stack_tests::cluster::ClusterConfig::new(dice_server, 1)
                .name("bench-memory")
                .memory_sessions(),
            Store::Redis => mcp_stack_tests::cluster::ClusterConfig::new(dice_server, REPLICAS)
                .name("bench-redis"),
        };
        if pin {
            config = config.replica_cpus(SERVER_CPUS);
        }
        let cluster = mcp_stack_tests::cluster::Cluster::start(config)
            .with_context(|| format!("starting {}", store.label()))?;
        let local = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let replicas = cluster
            .replica_urls("")
            .iter()
            .map(|url| {
                url.rsplit_once(':')
                    .and_then(|(_, port)| port.parse().ok())
                    .map(local)
                    .with_context(|| format!("no port in replica URL {url}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let deployment = Self {
            lb: local(cluster.lb_port()),
            replicas,
            redis: (store == Store::Redis).then(|| cluster.redis_url()),
            cluster,
        };
        if pin {
            // nginx (master and workers) and Redis share CPU 0 with the replicas.
            pin_all(&deployment.serving_pids(), SERVER_CPUS)?;
        }
        eprintln!(
            "xtask bench: {} behind nginx on {} (pids {:?}; logs in {})",
            store.label(),
            deployment.lb,
            deployment.serving_pids(),
            deployment.cluster.dir().display()
        );
        Ok(deployment)
    }

    /// Every process that serves: the load balancer (master and workers), the replicas and
    /// Redis, with whatever they started.
    fn serving_pids(&self) -> Vec<u32> {
        process_trees(&self.cluster.pids())
    }

    /// The serving processes in [`CPU_GROUPS`] order: nginx (master and workers), the
    /// replicas, Redis (none in memory).
    fn serving_groups(&self) -> Vec<Vec<u32>> {
        let replicas: Vec<u32> = (0..self.cluster.replica_count())
            .filter_map(|i| self.cluster.replica_pid(i))
            .collect();
        vec![
            process_trees(&self.cluster.nginx_pid().into_iter().collect::<Vec<_>>()),
            process_trees(&replicas),
            process_trees(&self.cluster.redis_pid().into_iter().collect::<Vec<_>>()),
        ]
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.cluster.ensure_running()
    }

    fn print_logs(&self) {
        self.cluster.print_logs();
    }
}

/// Pins `pids` (all threads of each) to `cpus`.
fn pin_all(pids: &[u32], cpus: &str) -> anyhow::Result<()> {
    for &pid in pids {
        mcp_stack_tests::process::pin_running_process(pid, cpus)
            .with_context(|| format!("pinning pid {pid} to CPU {cpus}"))?;
    }
    Ok(())
}

/// Round trips per call of one scenario.
#[derive(Debug, Clone)]
pub struct RoundTrips {
    /// Calls made (sessions × calls per session).
    pub calls: u64,
    /// Calls per command, background subtracted, per call (xtrim left out).
    pub per_command: Vec<(String, f64)>,
    /// Round trips on the request path per call (everything but the delivery reads).
    pub request: f64,
    /// The owner's delivery reads per call.
    pub delivery_reads: f64,
    /// How long the calls took, and the idle window measured before them.
    pub busy: Duration,
    /// The idle window.
    pub idle: Duration,
}

impl RoundTrips {
    /// Per-call figures from the commands of an idle window of length `idle` (the background)
    /// and of a window of length `busy` in which `calls` calls were made.
    pub fn attribute(
        background: &CommandCounts,
        during: &CommandCounts,
        idle: Duration,
        busy: Duration,
        calls: u64,
    ) -> Self {
        let scale = busy.as_secs_f64() / idle.as_secs_f64().max(1e-9);
        let calls_f = calls.max(1) as f64;
        let mut per_command = Vec::new();
        let mut request = 0.0;
        let mut delivery_reads = 0.0;
        for (name, &count) in &during.0 {
            if NOT_ROUND_TRIPS.contains(&name.as_str()) {
                continue;
            }
            let attributed = (count as f64 - background.get(name) as f64 * scale).max(0.0);
            let per_call = attributed / calls_f;
            if name == DELIVERY_READS {
                delivery_reads += per_call;
            } else {
                request += per_call;
            }
            per_command.push((name.clone(), per_call));
        }
        Self {
            calls,
            per_command,
            request,
            delivery_reads,
            busy,
            idle,
        }
    }

    /// `name per-call` for each command that rounds to more than 0.000 per call.
    fn breakdown(&self) -> String {
        let shown: Vec<&(String, f64)> = self
            .per_command
            .iter()
            .filter(|(_, per_call)| *per_call >= 0.0005)
            .collect();
        if shown.is_empty() {
            return "no commands".to_owned();
        }
        shown
            .iter()
            .map(|(name, per_call)| format!("{name} {per_call:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the replicated run measured.
pub struct ReplicatedReport {
    /// Throughput phases per (row, sessions), one per run.
    results: super::RunResults,
    /// Round trips per scenario (or why the scenario failed).
    round_trips: Vec<(Scenario, usize, anyhow::Result<RoundTrips>)>,
    /// Calls that failed in the throughput phases.
    pub failed: bool,
}

/// Runs the replicated comparison with `dice_server` (release build).
pub async fn measure(
    plan: &Plan,
    dice_server: &std::path::Path,
) -> anyhow::Result<ReplicatedReport> {
    let mut memory = Deployment::start(Store::Memory, dice_server, plan.pin)?;
    let mut redis = Deployment::start(Store::Redis, dice_server, plan.pin)?;
    eprintln!(
        "xtask bench replicated: nginx round robin on {} ({}) and on {} ({}); load average {}",
        memory.lb,
        Store::Memory.label(),
        redis.lb,
        Store::Redis.label(),
        super::load_average()
    );
    let (results, failed) = measure_rates(plan, &mut memory, &mut redis).await?;
    drop(memory);
    let round_trips = measure_round_trips(plan, &redis).await;
    redis.ensure_running()?;
    Ok(ReplicatedReport {
        results,
        round_trips,
        failed,
    })
}

/// The throughput rows on both deployments, `plan.runs` times; says whether calls failed.
async fn measure_rates(
    plan: &Plan,
    memory: &mut Deployment,
    redis: &mut Deployment,
) -> anyhow::Result<(super::RunResults, bool)> {
    let mut results = super::RunResults::new();
    let mut failed = false;
    let call = super::dice_call();
    for run in 1..=plan.runs {
        for &sessions in &plan.sessions {
            for (index, row) in ROWS.iter().enumerate() {
                let deployment = match row.store {
                    Store::Memory => &*memory,
                    Store::Redis => &*redis,
                };
                let phase = Phase {
                    target: row.transport,
                    addr: deployment.lb,
                    sessions,
                    token: None,
                    call: &call,
                    timing: plan.timing,
                };
                let what = format!("{} on {}", row.transport.name(), row.store.label());
                let result = match phase.run_grouped(&deployment.serving_groups()).await {
                    Ok(result) => result,
                    Err(error) => {
                        deployment.print_logs();
                        return Err(anyhow::Error::new(error)
                            .context(format!("{what} with {sessions} session(s)")));
                    }
                };
                let line = super::phase_line(&result);
                eprintln!("  run {run}: {what:<37} {sessions:>4} session(s): {line}");
                failed |= result.errors > 0;
                results.entry((index, sessions)).or_default().push(result);
            }
        }
        memory.ensure_running()?;
        redis.ensure_running()?;
    }
    Ok((results, failed))
}

/// Every round-trip scenario at every session count (a failed one is reported, not fatal).
async fn measure_round_trips(
    plan: &Plan,
    redis: &Deployment,
) -> Vec<(Scenario, usize, anyhow::Result<RoundTrips>)> {
    let total_calls: usize = if plan.timing.duration >= Duration::from_secs(5) {
        10_000
    } else {
        2_000
    };
    let mut round_trips = Vec::new();
    for &sessions in &plan.sessions {
        let per_session = (total_calls / sessions).max(10);
        for scenario in SCENARIOS {
            let outcome = count_round_trips(redis, scenario, sessions, per_session, plan).await;
            match &outcome {
                Ok(figures) => eprintln!(
                    "  round trips: {:<46} {:>4} session(s): {:.3} per call on the request path + {:.3} delivery reads ({}; {} calls in {:.2} s; background over {:.2} s idle)",
                    scenario.label,
                    sessions,
                    figures.request,
                    figures.delivery_reads,
                    figures.breakdown(),
                    figures.calls,
                    figures.busy.as_secs_f64(),
                    figures.idle.as_secs_f64()
                ),
                Err(error) => {
                    eprintln!("  round trips: {}: failed: {error:#}", scenario.label);
                    redis.print_logs();
                }
            }
            round_trips.push((scenario, sessions, outcome));
        }
    }
    round_trips
}

async fn open_scenario_session(
    deployment: &Deployment,
    scenario: Scenario,
) -> anyhow::Result<Session> {
    let replica = |index: usize| {
        deployment
            .replicas
            .get(index)
            .copied()
            .with_context(|| format!("no replica {index}"))
    };
    Ok(match (scenario.transport, scenario.route) {
        (target, Route::Balanced) => Session::open(target, deployment.lb, None).await?,
        (Target::Streamable, Route::Direct { open, call }) => {
            let mut session = StreamableSession::open(replica(open)?, None).await?;
            session.reconnect(replica(call)?).await?;
            Session::Streamable(session)
        }
        (Target::LegacySse, Route::Direct { open, call }) => {
            Session::Legacy(LegacySession::open_split(replica(open)?, replica(call)?, None).await?)
        }
        (other, _) => bail!("no round-trip scenario for {}", other.name()),
    })
}

/// Opens `sessions` sessions of `scenario`, measures the background over an idle window,
/// then has each make `per_session` calls, and attributes Redis's counts.
async fn count_round_trips(
    deployment: &Deployment,
    scenario: Scenario,
    sessions: usize,
    per_session: usize,
    plan: &Plan,
) -> anyhow::Result<RoundTrips> {
    let redis = deployment
        .redis
        .as_deref()
        .context("the deployment has no Redis to count round trips on")?;
    let opening = futures::future::join_all(
        (0..sessions).map(|_| open_scenario_session(deployment, scenario)),
    );
    let mut opened: Vec<Session> = tokio::time::timeout(plan.timing.setup_timeout, opening)
        .await
        .with_context(|| {
            format!(
                "opening {sessions} sessions took over {:?}",
                plan.timing.setup_timeout
            )
        })?
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("opening a session")?;
    // Whatever opening queued (deliveries of `initialize` replies) settles first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle_window = plan
        .timing
        .duration
        .clamp(Duration::from_secs(1), MAX_IDLE_WINDOW);
    let mut monitor = Monitor::start(redis, MONITOR_TIMEOUT).await?;
    monitor.mark().await?;
    let idle_started = Instant::now();
    tokio::time::sleep(idle_window).await;
    monitor.mark().await?;
    let busy_started = Instant::now();
    let idle = busy_started - idle_started;
    let timeout = plan.timing.call_timeout;
    let call = &super::dice_call();
    let calls = futures::future::join_all(opened.iter_mut().map(|session| async move {
        for id in 1..=per_session as u64 {
            tokio::time::timeout(timeout, session.call(call, id))
                .await
                .with_context(|| format!("call {id}: no reply within {timeout:?}"))??;
        }
        anyhow::Ok(())
    }))
    .await;
    let busy = busy_started.elapsed();
    let windows = monitor.finish().await?;
    calls.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    drop(opened);
    let [_, background, during] = windows.as_slice() else {
        bail!("expected 3 MONITOR windows, got {}", windows.len());
    };
    Ok(RoundTrips::attribute(
        background,
        during,
        idle,
        busy,
        (sessions * per_session) as u64,
    ))
}

/// Prints the replicated tables and verdicts on `card`.
pub fn report(plan: &Plan, report: &ReplicatedReport, card: &mut Scorecard) {
    let runs = Runs(&report.results);
    print_rates(plan, &runs);
    print_round_trips(report);
    let most = plan.most_sessions();
    for (goal, index) in [(Goal::REPLICAS_STREAMABLE, 1), (Goal::REPLICAS_SSE, 3)] {
        if let Some(spread) = runs.rate(index, index - 1, most) {
            card.judge(goal, Some(most), spread, "");
        }
    }
    round_trip_verdicts(report, card);
}

/// The rates of each deployment, and the replicated ones against the in-memory ones.
fn print_rates(plan: &Plan, runs: &Runs<'_>) {
    let medians = super::medians(runs.0);
    let (mut rows, mut lines) = (Vec::new(), Vec::new());
    for &sessions in &plan.sessions {
        for (index, row) in ROWS.iter().enumerate() {
            let Some(r) = medians.get(&(index, sessions)) else {
                continue;
            };
            let groups = r.server_cpu_per_call_by_group();
            let group = |i: usize| match row.store {
                Store::Memory if i == 2 => "-".to_owned(),
                _ => super::micros(groups.get(i).copied().flatten()),
            };
            let base = index - usize::from(row.store == Store::Redis);
            let [rps, p50, p99, ratio] = runs.cells(index, base, sessions);
            if row.store == Store::Redis {
                let [memory, memory_p50, memory_p99, _] = runs.cells(base, base, sessions);
                lines.push(format!(
                    "replicated {} {sessions} session(s): {rps} req/s p50 {p50} ms p99 {p99} ms on {} vs {memory} req/s p50 {memory_p50} ms p99 {memory_p99} ms on {} = {ratio} x",
                    row.transport.name(),
                    Store::Redis.label(),
                    Store::Memory.label(),
                ));
            }
            rows.push(vec![
                row.transport.name().to_owned(),
                row.store.label(),
                sessions.to_string(),
                rps,
                p50,
                p99,
                ratio,
                super::micros(r.server_cpu_per_call()),
                group(0),
                group(1),
                group(2),
                r.errors.to_string(),
            ]);
        }
    }
    println!(
        "\nReplicated (nginx round robin in front of both; median [min, max] over {} run(s); CPU: nginx, replicas and Redis together{}):",
        plan.runs,
        if plan.pin { ", all on CPU 0" } else { "" }
    );
    let groups = CPU_GROUPS.join("|");
    let header = format!(
        "<transport|<deployment|sessions|req/s|p50 ms|p99 ms|x in memory|CPU µs/call|{groups}|errors"
    );
    println!("{}\n{}", markdown(&header, &rows), lines.join("\n"));
}

/// The table of Redis round trips per call.
fn print_round_trips(report: &ReplicatedReport) {
    println!(
        "\nRedis round trips per call (commands from clients in Redis's MONITOR stream, background over an idle window subtracted; request path + the owner's delivery reads):"
    );
    let rows: Vec<Vec<String>> = report
        .round_trips
        .iter()
        .map(|(scenario, sessions, outcome)| {
            let mut row = vec![scenario.label.to_owned(), sessions.to_string()];
            row.extend(match outcome {
                Ok(f) => [f.request, f.delivery_reads, f.request + f.delivery_reads]
                    .map(|value| format!("{value:.2}"))
                    .into_iter()
                    .chain([f.calls.to_string(), f.breakdown()])
                    .collect(),
                Err(error) => vec![format!("not measured: {error:#}")],
            });
            row
        })
        .collect();
    let header = "<scenario|sessions|request|delivery reads|total|calls|<per command";
    println!("{}", markdown(header, &rows));
}

/// The verdicts on the round-trip targets, on `card`.
fn round_trip_verdicts(report: &ReplicatedReport, card: &mut Scorecard) {
    for (scenario, sessions, outcome) in &report.round_trips {
        let Some(target) = scenario.target else {
            continue;
        };
        // Streamable answers on the POST itself: every round trip counts. A legacy call's
        // reply reaches the stream's replica through its delivery reader, whose blocking reads
        // are shown beside the request path but not judged (they batch under load).
        let streamable = scenario.transport == Target::Streamable;
        let (value, ok) = match outcome {
            Ok(f) if streamable => {
                let all = f.request + f.delivery_reads;
                (format!("{all:.2}"), all <= target + 0.005)
            }
            Ok(f) => (
                format!(
                    "{:.2} ({:.2} with the owner's delivery reads)",
                    f.request,
                    f.request + f.delivery_reads
                ),
                f.request <= target + 0.005,
            ),
            Err(_) => ("not measured".to_owned(), false),
        };
        let what = if streamable {
            ""
        } else {
            " on the request path"
        };
        let name = format!(
            "Redis round trips <= {target:.0}{what}, {}, {sessions} session(s)",
            scenario.label
        );
        card.verdict(&name, &value, ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> CommandCounts {
        CommandCounts(pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect())
    }

    #[test]
    fn round_trips_subtract_the_background_and_leave_out_trims() {
        // Idle for 2 s: 2 blocking reads timed out (and their trims), one keep-alive touch.
        let idle = counts(&[("evalsha", 1), ("xread", 2), ("xtrim", 2)]);
        // 1 s of 1 000 calls: 2 000 evalsha (plus half a touch of background), 901 reads.
        let busy = counts(&[("evalsha", 2_000), ("xread", 901), ("xtrim", 901)]);
        let figures = RoundTrips::attribute(
            &idle,
            &busy,
            Duration::from_secs(2),
            Duration::from_secs(1),
            1_000,
        );
        assert_eq!(figures.calls, 1_000);
        assert!((figures.request - 1.9995).abs() < 1e-9, "{figures:?}");
        assert!((figures.delivery_reads - 0.9).abs() < 1e-9, "{figures:?}");
        assert_eq!(figures.breakdown(), "evalsha 2.000, xread 0.900");
        // Reads all explained by the background are left out of the breakdown.
        let streamable = RoundTrips::attribute(
            &idle,
            &counts(&[("evalsha", 1_001), ("xread", 1)]),
            Duration::from_secs(2),
            Duration::from_secs(1),
            1_000,
        );
        assert_eq!(streamable.delivery_reads, 0.0);
        assert_eq!(streamable.breakdown(), "evalsha 1.000");
        // Fewer commands than the background predicts: zero, not negative.
        let quiet = RoundTrips::attribute(
            &idle,
            &CommandCounts::default(),
            Duration::from_secs(1),
            Duration::from_secs(1),
            10,
        );
        assert_eq!(quiet.request, 0.0);
        assert_eq!(quiet.delivery_reads, 0.0);
        assert_eq!(quiet.breakdown(), "no commands");
    }
}
