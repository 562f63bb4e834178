//! `cargo xtask replicas`: three `dice_server` replicas sharing their sessions through a real
//! `redis-server`, behind a real nginx doing round robin with no stickiness ([`crate::cluster`]),
//! driven through it by our `McpClient` (both transports) and by the Python `mcp` and `fastmcp`
//! clients. Each scenario prints `PASS`/`FAIL` with its figures; the command fails if any fails.
//!
//! - **a/load**: 1 000 sessions (half legacy SSE, half streamable HTTP) through nginx, 10 000
//!   `echo` calls with unique tokens, bounded concurrency: every token comes back once, to its
//!   caller (lost, duplicated and misdelivered answers are counted); the sessions' owners in
//!   Redis show the spread over the replicas.
//! - **b/any-replica**: a streamable session initialized on replica 0's own URL answers calls
//!   on replicas 1 and 2 and through nginx; the response stream of a call still running on
//!   replica 0 (`echo` with `delay_ms`), broken after its first event, resumes with
//!   `Last-Event-ID` on replicas 1 and 2 and delivers the answer; `DELETE` on replica 2 makes
//!   the session 404 on 0 and 1. A legacy stream on replica 0 receives, in order, the answers
//!   to `POST /messages/` sent to replicas 1, 2 and 0.
//! - **c/subject**: `dice_server_auth` replicas sharing one key pair: a streamable session
//!   created with alice's token is 404 with bob's token on every replica (calls and `DELETE`)
//!   and still works for alice everywhere; bob's `POST /messages/` to alice's legacy session is
//!   404 on every replica, alice's are answered on her stream.
//! - **d/kill**: sessions of both transports call through nginx while replica 1 gets SIGKILL:
//!   streamable sessions go on (a call in flight on the dead replica, answered 502 by nginx, is
//!   retried in the same session), none lost; legacy clients whose stream was on the dead
//!   replica see it end and reconnect (a new session), the others go on: exactly as many
//!   reconnect as Redis says had their stream there. Every key in Redis, the dead replica's
//!   included, has a time to live.
//! - **e/redis-restart**: Redis stopped while sessions of both transports call: a call and an
//!   `initialize` answer 503 with a JSON body; Redis started again (same port and directory,
//!   append-only file): service resumes with no replica restart, every call after recovery
//!   succeeds, and every session opened before still works.
//! - **f/python**: `interop/replicas_clients.py`: `mcp` (legacy and default modes, both
//!   transports) and `fastmcp` list the tools and call `roll_dice` and `echo` through nginx.
//! - **g/tasks** (a cluster of its own, `--slow --keep-alive-ms 2000`): tool calls run as
//!   tasks (2026-07-28): a task started through nginx is read
//!   to completion through every replica; the replica running a long task gets SIGKILL, and
//!   another replica reports the task `failed`, naming the dead replica, once its heartbeat
//!   lease (three `--keep-alive-ms` ticks) ran out; the time to report it is measured.
//!
//! It installs `redis-server` and `nginx` from the Debian packages first when they are missing
//! (`scripts/install-redis.sh`, `scripts/install-nginx.sh`), as the other peer checks install
//! their peers. Logs and the cluster's files: `<target>/xtask-logs/cluster/<name>/`.

mod load;
mod raw;
mod tasks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::Semaphore;

use crate::cluster::{self, Cluster, ClusterConfig};
use crate::process;
use load::{CallFailure, Kind, Tally};
use raw::RawClient;

/// How long the call of the resumption check runs, in milliseconds.
const RESUME_DELAY_MS: u32 = 700;
/// Replicas in every cluster.
const REPLICAS: usize = 3;
/// The audience of the tokens of scenario c.
const AUDIENCE: &str = "dice-server";

/// Options of `cargo xtask replicas`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only the scenarios whose name contains this text (e.g. `a/`, `kill`, `python`).
    #[arg(long)]
    pub filter: Option<String>,
    /// Sessions of scenario a (half legacy SSE, half streamable HTTP).
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,
    /// Calls of scenario a, spread evenly over its sessions.
    #[arg(long, default_value_t = 10_000)]
    pub calls: u64,
    /// Calls in flight at once in scenario a.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Time limit of the Python clients' run, in seconds.
    #[arg(long, default_value_t = 120)]
    pub python_timeout: u64,
}

/// One scenario's verdict.
#[derive(Debug)]
struct Outcome {
    name: &'static str,
    passed: bool,
    figures: String,
}

impl Outcome {
    fn new(name: &'static str, passed: bool, figures: String) -> Self {
        Self {
            name,
            passed,
            figures,
        }
    }

    fn print(&self) {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        println!("{verdict} {}: {}", self.name, self.figures);
    }
}

/// Names of the scenarios, in the order they run.
const SCENARIOS: [&str; 7] = [
    "b/any-replica",
    "c/subject",
    "f/python",
    "a/load",
    "d/kill",
    "e/redis-restart",
    "g/tasks",
];

/// Runs the command; see the module documentation.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let selected: Vec<&'static str> = SCENARIOS
        .into_iter()
        .filter(|name| args.filter.as_deref().is_none_or(|f| name.contains(f)))
        .collect();
    if selected.is_empty() {
        bail!("no scenario matches --filter {:?}", args.filter);
    }
    // Like the other peer checks, this command installs what it runs (Debian packages) when
    // it is missing; both scripts do nothing when it is there.
    for script in ["scripts/install-redis.sh", "scripts/install-nginx.sh"] {
        println!("replicas: bash {script}");
        let mut command = Command::new("bash");
        command.arg(crate::workspace_root().join(script));
        process::run_checked(command)?;
    }
    println!("replicas: building the example binaries");
    let binaries = cluster::build_examples()?;
    let python = if selected.contains(&"f/python") {
        println!("replicas: installing the Python peers (scripts/install-peers.sh py)");
        Some(crate::interop::peers::install_python()?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let record = |outcome: anyhow::Result<Outcome>, name: &'static str, out: &mut Vec<Outcome>| {
        let outcome =
            outcome.unwrap_or_else(|error| Outcome::new(name, false, format!("{error:#}")));
        outcome.print();
        out.push(outcome);
    };

    // Scenarios b, f, a, d, e share one cluster of `dice_server --echo`.
    let dice_scenarios = [
        "b/any-replica",
        "f/python",
        "a/load",
        "d/kill",
        "e/redis-restart",
    ];
    if selected.iter().any(|s| dice_scenarios.contains(s)) {
        let config = ClusterConfig::new(&binary(&binaries, "dice_server")?, REPLICAS)
            .name("replicas")
            .arg("--echo");
        println!("replicas: starting redis-server, {REPLICAS} dice_server replicas and nginx");
        let mut cluster = Cluster::start(config)?;
        println!(
            "replicas: load balancer {} -> {}",
            cluster.lb_url(""),
            cluster.replica_urls("").join(", ")
        );
        for name in selected
            .iter()
            .copied()
            .filter(|s| dice_scenarios.contains(s))
        {
            let outcome = match name {
                "b/any-replica" => runtime.block_on(any_replica(&cluster)),
                "f/python" => match &python {
                    Some(python) => python_clients(&cluster, python, args.python_timeout),
                    None => Err(anyhow::anyhow!("the Python peers are not installed")),
                },
                "a/load" => runtime.block_on(load_run(&cluster, &args)),
                "d/kill" => runtime.block_on(kill_replica(&mut cluster)),
                _ => runtime.block_on(redis_restart(&mut cluster)),
            };
            let failed = outcome.as_ref().map_or(true, |o| !o.passed);
            record(outcome, name, &mut outcomes);
            if failed {
                cluster.print_logs();
            }
            // Every scenario starts with the whole cluster up.
            cluster.start_redis()?;
            for i in 0..cluster.replica_count() {
                if cluster.replica_pid(i).is_none() {
                    cluster.restart_replica(i)?;
                }
            }
        }
    }
    if selected.contains(&"c/subject") {
        let outcome = runtime.block_on(subject_binding(&binaries));
        record(outcome, "c/subject", &mut outcomes);
    }
    if selected.contains(&"g/tasks") {
        let outcome = runtime.block_on(tasks::run(&binary(&binaries, "dice_server")?));
        record(outcome, "g/tasks", &mut outcomes);
    }

    let failed = outcomes.iter().filter(|o| !o.passed).count();
    println!(
        "replicas: {} passed, {failed} failed in {:.0?}",
        outcomes.len() - failed,
        started.elapsed()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn binary(binaries: &BTreeMap<String, PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    binaries
        .get(name)
        .cloned()
        .with_context(|| format!("no {name} binary was built"))
}

// ---- b: any replica serves any session -------------------------------------------------------

async fn any_replica(cluster: &Cluster) -> anyhow::Result<Outcome> {
    let raw = RawClient::new()?;
    let mcp: Vec<String> = cluster.replica_urls("/mcp");
    let mut notes = Vec::new();
    let mut failures = Vec::new();

    // Streamable: initialize on replica 0, call on 1 and 2, then through nginx.
    let session = raw.open_session(&mcp[0], None).await?;
    let mut id = 10;
    let mut targets: Vec<(String, String)> = vec![
        ("replica 1".into(), mcp[1].clone()),
        ("replica 2".into(), mcp[2].clone()),
        ("replica 0".into(), mcp[0].clone()),
    ];
    for n in 0..3 {
        targets.push((format!("nginx #{n}"), cluster.lb_url("/mcp")));
    }
    for (label, url) in &targets {
        id += 1;
        let token = load::token("b", id);
        let reply = raw.echo(url, &session, None, id, &token).await?;
        if reply.status != 200 || reply.echoed().as_deref() != Some(token.as_str()) {
            failures.push(format!(
                "echo on {label} ({url}) with the session of replica 0: {}",
                reply.describe()
            ));
        }
    }
    notes.push(format!(
        "session from replica 0 answered on {} places",
        targets.len() - failures.len()
    ));

    // Resumption on another replica: a call still running on replica 0 (echo with a delay)
    // whose response stream breaks after its first event is resumed with `GET` +
    // `Last-Event-ID` on replica 1, then on replica 2 from the same point.
    id += 1;
    let token = load::token("b-resume", id);
    let slow = raw::slow_echo_request(id, &token, RESUME_DELAY_MS);
    match raw.post_stream(&mcp[0], &session, &slow).await? {
        Ok(mut stream) => {
            let first = stream.next_sse_event(Duration::from_secs(5)).await?;
            drop(stream); // the connection breaks before the answer
            match first.id {
                Some(first_id) => {
                    for i in [1, 2] {
                        match resumed_answer(&raw, &mcp[i], &session, &first_id).await {
                            Ok(answer)
                                if answer["id"] == id
                                    && answer["result"]["structuredContent"]["result"]
                                        == token.as_str() => {}
                            Ok(answer) => failures.push(format!(
                                "GET with Last-Event-ID {first_id} on replica {i} replayed {answer}, not the answer to call {id}"
                            )),
                            Err(error) => failures.push(format!(
                                "GET with Last-Event-ID {first_id} on replica {i}: {error:#}"
                            )),
                        }
                    }
                    notes.push(format!(
                        "a call's response stream broken on replica 0 resumed (Last-Event-ID {first_id}) on replicas 1 and 2"
                    ));
                }
                None => failures.push(format!(
                    "the first event of a running call's stream on replica 0 has no id: {first:?}"
                )),
            }
        }
        Err(reply) => failures.push(format!(
            "a call of echo with delay_ms {RESUME_DELAY_MS} on replica 0 was not answered as an SSE stream: {}",
            reply.describe()
        )),
    }

    // DELETE on replica 2: 404 on 0 and 1 (and a second DELETE is 404 too).
    let reply = raw.delete(&mcp[2], &session, None).await?;
    if !(200..300).contains(&reply.status) {
        failures.push(format!("DELETE on replica 2: {}", reply.describe()));
    }
    for i in [0, 1] {
        id += 1;
        let reply = raw
            .echo(&mcp[i], &session, None, id, &load::token("b", id))
            .await?;
        if reply.status != 404 {
            failures.push(format!(
                "echo on replica {i} after DELETE on replica 2: expected 404, got {}",
                reply.describe()
            ));
        }
    }
    let again = raw.delete(&mcp[0], &session, None).await?;
    if again.status != 404 {
        failures.push(format!(
            "second DELETE (replica 0): expected 404, got {}",
            again.describe()
        ));
    }
    notes.push("DELETE on replica 2 -> 404 on replicas 0 and 1".into());

    // Legacy: the stream on replica 0, the POSTs on replicas 1 and 2 (and 0), in order.
    let mut stream = raw
        .open_legacy(&cluster.replica_url(0, "/sse"), None)
        .await?;
    let legacy_id = stream.session_id.clone();
    let endpoint = |i: usize| cluster.replica_url(i, &format!("/messages/?session_id={legacy_id}"));
    let init = raw
        .post(&endpoint(1), None, None, &raw::initialize_request(1))
        .await?;
    if init.status != 202 {
        failures.push(format!(
            "legacy initialize POSTed to replica 1: {}",
            init.describe()
        ));
    }
    let (_, data) = stream.next_event(Duration::from_secs(10)).await?;
    let init_answer: serde_json::Value = serde_json::from_str(&data)?;
    if init_answer["id"] != 1 || init_answer["result"]["protocolVersion"].is_null() {
        failures.push(format!(
            "legacy initialize answer on replica 0's stream: {data}"
        ));
    }
    let initialized = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let reply = raw.post(&endpoint(2), None, None, &initialized).await?;
    if reply.status != 202 {
        failures.push(format!(
            "legacy initialized POSTed to replica 2: {}",
            reply.describe()
        ));
    }
    let mut sent = Vec::new();
    for n in 0..6u64 {
        let token = load::token("b-legacy", n);
        let replica = [1, 2, 0][n as usize % 3];
        let reply = raw
            .post(
                &endpoint(replica),
                None,
                None,
                &raw::echo_request(100 + n, &token),
            )
            .await?;
        if reply.status != 202 {
            failures.push(format!(
                "legacy echo POSTed to replica {replica}: {}",
                reply.describe()
            ));
        }
        sent.push((100 + n, token));
    }
    let mut received = Vec::new();
    for _ in 0..sent.len() {
        match stream.next_event(Duration::from_secs(10)).await {
            Ok((_, data)) => received.push(data),
            Err(error) => {
                failures.push(format!(
                    "legacy stream on replica 0: {error} after {} of {} answers",
                    received.len(),
                    sent.len()
                ));
                break;
            }
        }
    }
    for ((id, token), data) in sent.iter().zip(&received) {
        let answer: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        if answer["id"] != *id || answer["result"]["structuredContent"]["result"] != *token {
            failures.push(format!(
                "legacy answer out of order or wrong: expected id {id} {token}, got {data}"
            ));
        }
    }
    notes.push(format!(
        "legacy stream on replica 0 got {} of {} answers to POSTs on replicas 1, 2, 0 in order",
        received.len(),
        sent.len()
    ));
    Ok(finish("b/any-replica", notes, failures))
}

/// Resumes a response stream at `url` after `last_event_id`: the first JSON-RPC message
/// replayed.
async fn resumed_answer(
    raw: &RawClient,
    url: &str,
    session: &str,
    last_event_id: &str,
) -> anyhow::Result<serde_json::Value> {
    let mut stream = match raw.resume(url, session, last_event_id).await? {
        Ok(stream) => stream,
        Err(reply) => bail!("answered {}", reply.describe()),
    };
    loop {
        let event = stream.next_sse_event(Duration::from_secs(5)).await?;
        if let Ok(message) = serde_json::from_str::<serde_json::Value>(&event.data)
            && message.get("jsonrpc").is_some()
        {
            return Ok(message);
        }
    }
}

fn finish(name: &'static str, notes: Vec<String>, failures: Vec<String>) -> Outcome {
    let passed = failures.is_empty();
    let mut text = notes.join("; ");
    if !passed {
        text.push_str("\n    ");
        text.push_str(&failures.join("\n    "));
    }
    Outcome::new(name, passed, text)
}

// ---- c: sessions belong to their subject --------------------------------------------------

async fn subject_binding(binaries: &BTreeMap<String, PathBuf>) -> anyhow::Result<Outcome> {
    let jwt_tool = binary(binaries, "jwt_tool")?;
    let keys = process::log_dir()
        .join("cluster")
        .join("replicas-auth-keys");
    std::fs::create_dir_all(&keys).with_context(|| format!("creating {}", keys.display()))?;
    let private_key = keys.join("private.pem");
    let mut mint = Command::new(&jwt_tool);
    mint.args(["mint", "--audience", AUDIENCE, "--subject", "alice"])
        .arg("--private-key-out")
        .arg(&private_key)
        .arg("--public-key-out")
        .arg(keys.join("public.pem"));
    let alice = process::output_checked(mint)?.trim().to_owned();
    let bob = sign(&jwt_tool, &private_key, "bob")?;

    let config = ClusterConfig::new(&binary(binaries, "dice_server_auth")?, REPLICAS)
        .name("replicas-auth")
        .arg("--echo")
        .arg("--private-key-file")
        .arg(private_key.to_string_lossy());
    let cluster = Cluster::start(config)?;
    let outcome = subject_checks(&cluster, &alice, &bob).await;
    if outcome.as_ref().map_or(true, |o| !o.passed) {
        cluster.print_logs();
    }
    outcome
}

fn sign(jwt_tool: &Path, private_key: &Path, subject: &str) -> anyhow::Result<String> {
    let mut command = Command::new(jwt_tool);
    command
        .args(["sign", "--audience", AUDIENCE, "--subject", subject])
        .arg("--private-key")
        .arg(private_key);
    Ok(process::output_checked(command)?.trim().to_owned())
}

async fn subject_checks(cluster: &Cluster, alice: &str, bob: &str) -> anyhow::Result<Outcome> {
    let raw = RawClient::new()?;
    let mcp = cluster.replica_urls("/mcp");
    let mut failures = Vec::new();
    let session = raw
        .open_session(&cluster.lb_url("/mcp"), Some(alice))
        .await?;
    let mut id = 0;
    for (i, url) in mcp.iter().enumerate() {
        id += 1;
        let reply = raw
            .echo(url, &session, Some(bob), id, &load::token("c-bob", id))
            .await?;
        if reply.status != 404 {
            failures.push(format!(
                "bob's token with alice's session on replica {i}: expected 404, got {}",
                reply.describe()
            ));
        }
    }
    let reply = raw.delete(&mcp[1], &session, Some(bob)).await?;
    if reply.status != 404 {
        failures.push(format!(
            "DELETE with bob's token on replica 1: expected 404, got {}",
            reply.describe()
        ));
    }
    let without = raw
        .echo(&mcp[0], &session, None, 99, &load::token("c-none", 99))
        .await?;
    if without.status != 401 {
        failures.push(format!(
            "no token: expected 401, got {}",
            without.describe()
        ));
    }
    for (i, url) in mcp.iter().enumerate() {
        id += 1;
        let token = load::token("c-alice", id);
        let reply = raw.echo(url, &session, Some(alice), id, &token).await?;
        if reply.status != 200 || reply.echoed().as_deref() != Some(token.as_str()) {
            failures.push(format!(
                "alice on replica {i} after bob's attempts: {}",
                reply.describe()
            ));
        }
    }
    // Bob has sessions of his own, through the load balancer.
    let bobs = raw.open_session(&cluster.lb_url("/mcp"), Some(bob)).await?;
    let token = load::token("c-bob-own", 1);
    let reply = raw
        .echo(&cluster.lb_url("/mcp"), &bobs, Some(bob), 1, &token)
        .await?;
    if reply.echoed().as_deref() != Some(token.as_str()) {
        failures.push(format!("bob's own session: {}", reply.describe()));
    }
    // Legacy: alice's stream on replica 0; bob's POSTs to its endpoint are 404 on every
    // replica, alice's are accepted on every replica and answered on her stream.
    let mut stream = raw
        .open_legacy(&cluster.replica_url(0, "/sse"), Some(alice))
        .await?;
    let legacy_id = stream.session_id.clone();
    let endpoint = |i: usize| cluster.replica_url(i, &format!("/messages/?session_id={legacy_id}"));
    let init = raw
        .post(&endpoint(1), None, Some(alice), &raw::initialize_request(1))
        .await?;
    if init.status != 202 {
        failures.push(format!(
            "alice's legacy initialize on replica 1: {}",
            init.describe()
        ));
    }
    stream.next_event(Duration::from_secs(10)).await?;
    for i in 0..REPLICAS {
        id += 1;
        let message = raw::echo_request(id, &load::token("c-bob-legacy", id));
        let reply = raw.post(&endpoint(i), None, Some(bob), &message).await?;
        if reply.status != 404 {
            failures.push(format!(
                "bob's token on alice's legacy endpoint on replica {i}: expected 404, got {}",
                reply.describe()
            ));
        }
    }
    for i in 0..REPLICAS {
        id += 1;
        let token = load::token("c-alice-legacy", id);
        let reply = raw
            .post(
                &endpoint(i),
                None,
                Some(alice),
                &raw::echo_request(id, &token),
            )
            .await?;
        if reply.status != 202 {
            failures.push(format!(
                "alice's legacy echo on replica {i}: {}",
                reply.describe()
            ));
            continue;
        }
        let (_, data) = stream.next_event(Duration::from_secs(10)).await?;
        let answer: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
        if answer["id"] != id || answer["result"]["structuredContent"]["result"] != token.as_str() {
            failures.push(format!(
                "alice's legacy stream: expected the answer to {id} ({token}), got {data}"
            ));
        }
    }
    drop(stream);

    let notes = vec![
        format!("alice's session: bob -> 404 on {REPLICAS} replicas and on DELETE"),
        format!(
            "alice's legacy stream on replica 0: bob's POSTs -> 404 on {REPLICAS} replicas, alice's answered on her stream"
        ),
        format!("no token -> {}", without.status),
        format!("alice -> 200 with her token on {REPLICAS} replicas"),
    ];
    Ok(finish("c/subject", notes, failures))
}

// ---- f: the Python clients ------------------------------------------------------------------

fn python_clients(cluster: &Cluster, python: &Path, limit: u64) -> anyhow::Result<Outcome> {
    let script = crate::workspace_root().join("interop/replicas_clients.py");
    let mut command = Command::new("timeout");
    command
        .args(["-k", "5", &limit.max(1).to_string()])
        .arg(python)
        .arg(&script)
        .arg("--mcp-url")
        .arg(cluster.lb_url("/mcp"))
        .arg("--sse-url")
        .arg(cluster.lb_url("/sse"))
        .args(["--calls", "5"])
        .current_dir(crate::workspace_root())
        .stdin(std::process::Stdio::null());
    let output = command
        .output()
        .with_context(|| format!("running {}", process::describe(&command)))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let passed_clients: Vec<String> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            Some(format!(
                "{} ({})",
                v["client"].as_str()?,
                v["protocol_version"].as_str().unwrap_or("?")
            ))
        })
        .collect();
    let failures: Vec<String> = stderr
        .lines()
        .filter(|line| line.starts_with("FAIL: "))
        .map(str::to_owned)
        .collect();
    let passed = output.status.success() && failures.is_empty();
    let mut figures = format!(
        "{} clients x (5 roll_dice + 5 echo): {}",
        passed_clients.len(),
        passed_clients.join(", ")
    );
    if !passed {
        let tail: Vec<&str> = stderr.lines().collect();
        figures.push_str(&format!(
            "\n    exit {:?}\n    {}",
            output.status.code(),
            tail[tail.len().saturating_sub(15)..].join("\n    ")
        ));
    }
    Ok(Outcome::new("f/python", passed, figures))
}

// ---- a: many sessions, many calls -----------------------------------------------------------

async fn load_run(cluster: &Cluster, args: &Args) -> anyhow::Result<Outcome> {
    let sessions = args.sessions.max(2);
    let kinds: Vec<Kind> = (0..sessions)
        .map(|i| {
            if i % 2 == 0 {
                Kind::Legacy
            } else {
                Kind::Streamable
            }
        })
        .collect();
    let base = cluster.lb_url("");
    let opened = Instant::now();
    let clients = load::connect_all(&base, &kinds, 32).await?;
    let open_time = opened.elapsed();
    let owners = show_owners(&session_owners(cluster, None));

    let tally = Arc::new(Tally::default());
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let clients: Vec<Arc<mcp_sse::client::McpClient>> = clients.into_iter().map(Arc::new).collect();
    let per_session = args.calls / sessions as u64;
    let extra = args.calls % sessions as u64;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(sessions);
    for (i, client) in clients.iter().enumerate() {
        let calls = per_session + u64::from((i as u64) < extra);
        let (client, tally, permits) =
            (Arc::clone(client), Arc::clone(&tally), Arc::clone(&permits));
        tasks.push(tokio::spawn(async move {
            for n in 0..calls {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                let token = load::token(&format!("a{i}"), n);
                tally.calls.fetch_add(1, Ordering::Relaxed);
                match load::echo(&client, &token).await {
                    Ok(got) => tally.record_answer(&token, &got),
                    Err(why) => tally.record_lost(&token, &why),
                }
            }
        }));
    }
    for task in tasks {
        task.await.context("a calling task panicked")?;
    }
    let elapsed = started.elapsed();
    let clients: Vec<_> = clients
        .into_iter()
        .filter_map(|c| Arc::try_unwrap(c).ok())
        .collect();
    load::close_all(clients, 64).await;

    let calls = Tally::get(&tally.calls);
    let mut figures = format!(
        "{sessions} sessions ({} legacy, {} streamable) opened in {:.1?}; {}; {:.0} calls/s with {} in flight; session owners: {owners}",
        kinds.iter().filter(|k| **k == Kind::Legacy).count(),
        kinds.iter().filter(|k| **k == Kind::Streamable).count(),
        open_time,
        tally.summary(),
        calls as f64 / elapsed.as_secs_f64().max(1e-9),
        args.concurrency
    );
    let passed = tally.clean() && calls == args.calls;
    if !passed {
        figures.push_str(&format!(
            "\n    examples: {}",
            tally.examples().join("\n    ")
        ));
    }
    Ok(Outcome::new("a/load", passed, figures))
}

/// How many live sessions of `kind` (`legacy`, `streamable`, or any when `None`) each
/// replica owns, read from Redis's session records.
fn session_owners(
    cluster: &Cluster,
    kind: Option<&str>,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let script = "local o = {} for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
                  local v = redis.call('HMGET', k, 'owner', 'kind') \
                  if v[1] and (ARGV[2] == '' or v[2] == ARGV[2]) then table.insert(o, v[1]) end \
                  end return o";
    let text = cluster.redis_cli(&[
        "--no-raw",
        "EVAL",
        script,
        "0",
        "mcp:session:*",
        kind.unwrap_or(""),
    ])?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        // `--no-raw` prints `1) "replica-0"`.
        if let Some(owner) = line.split('"').nth(1) {
            *counts.entry(owner.to_owned()).or_default() += 1;
        }
    }
    Ok(counts)
}

/// How many of the cluster's keys in Redis (`mcp:*`) there are, and how many never expire
/// (no TTL): sessions, delivery streams and event streams must all expire by themselves.
fn keys_without_expiry(cluster: &Cluster) -> anyhow::Result<(u64, u64)> {
    let script = "local n, forever = 0, 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
                  n = n + 1 if redis.call('PTTL', k) == -1 then forever = forever + 1 end \
                  end return {n, forever}";
    let text = cluster.redis_cli(&["EVAL", script, "0", "mcp:*"])?;
    let numbers: Vec<u64> = text
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    match numbers[..] {
        [n, forever] => Ok((n, forever)),
        _ => bail!("unexpected answer from redis-cli: {text:?}"),
    }
}

/// `replica-0 334, replica-1 333, ...`.
fn show_owners(owners: &anyhow::Result<BTreeMap<String, usize>>) -> String {
    match owners {
        Ok(counts) => counts
            .iter()
            .map(|(owner, n)| format!("{owner} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        Err(error) => format!("(cannot read: {error:#})"),
    }
}

// ---- d: a replica dies mid-run ---------------------------------------------------------------

/// Sessions per transport in scenario d.
const KILL_SESSIONS: usize = 30;
/// Calls per session in scenario d.
const KILL_CALLS: u64 = 40;
/// Pause between two calls of a session in scenario d.
const KILL_PAUSE: Duration = Duration::from_millis(20);

async fn kill_replica(cluster: &mut Cluster) -> anyhow::Result<Outcome> {
    let base = cluster.lb_url("");
    let kinds: Vec<Kind> = (0..2 * KILL_SESSIONS)
        .map(|i| {
            if i % 2 == 0 {
                Kind::Legacy
            } else {
                Kind::Streamable
            }
        })
        .collect();
    let clients = load::connect_all(&base, &kinds, 16).await?;
    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicU64::new(0));
    // Calls retried in the same session after nginx answered 502 (in flight on the victim).
    let bad_gateway = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let mut tasks = Vec::new();
    for (i, (client, kind)) in clients.into_iter().zip(kinds.iter().copied()).enumerate() {
        let (tally, done, base) = (Arc::clone(&tally), Arc::clone(&done), base.clone());
        let bad_gateway = Arc::clone(&bad_gateway);
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            for n in 0..KILL_CALLS {
                let token = load::token(&format!("d{i}"), n);
                tally.calls.fetch_add(1, Ordering::Relaxed);
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match load::echo(&client, &token).await {
                        Ok(got) => {
                            tally.record_answer(&token, &got);
                            break;
                        }
                        Err(why) if attempt >= 3 => {
                            tally.record_lost(&token, &why);
                            break;
                        }
                        Err(CallFailure::SessionGone(why)) => {
                            // The stream (legacy) or the session (streamable) is gone: a new
                            // session through the load balancer.
                            tally.count_reconnect(kind);
                            tally
                                .example(format!("{} session {i} reconnects: {why}", kind.label()));
                            match load::connect(&base, kind, None).await {
                                Ok(fresh) => {
                                    let _ = client.close().await;
                                    client = fresh;
                                }
                                Err(error) => tally.example(format!("reconnect failed: {error:#}")),
                            }
                            tally.retried.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(why) => {
                            // E.g. 502 from nginx for a request in flight on the killed replica.
                            if why.status() == Some(502) {
                                bad_gateway[usize::from(kind == Kind::Streamable)]
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            let status = why.status().map_or("no status".into(), |s| s.to_string());
                            tally.example(format!(
                                "{} session {i} retries after {status}: {why}",
                                kind.label()
                            ));
                            tally.retried.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(KILL_PAUSE).await;
            }
            let _ = client.close().await;
        }));
    }
    // Kill replica 1 once a third of the calls are done.
    let total = kinds.len() as u64 * KILL_CALLS;
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < total / 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let at = done.load(Ordering::Relaxed);
    let victim_pid = cluster.replica_pid(1);
    // The legacy sessions whose stream is on the victim: exactly those must reconnect.
    let legacy_owners = session_owners(cluster, Some("legacy"));
    let on_victim = legacy_owners
        .as_ref()
        .ok()
        .and_then(|o| o.get("replica-1").copied())
        .unwrap_or(0) as u64;
    cluster.kill_replica(1)?;
    let killed_at = Instant::now();
    // What the dead replica left in Redis (its sessions, its delivery stream) expires by itself.
    let expiry = keys_without_expiry(cluster);
    for task in tasks {
        task.await.context("a calling task panicked")?;
    }
    let after = killed_at.elapsed();
    let legacy_reconnects = tally.reconnects(Kind::Legacy);
    let streamable_reconnects = tally.reconnects(Kind::Streamable);
    let mut figures = format!(
        "{KILL_SESSIONS} legacy + {KILL_SESSIONS} streamable sessions x {KILL_CALLS} calls; replica 1 (pid {}) SIGKILLed after {at} calls; {}; retried {} (after 502 from nginx: legacy {}, streamable {}); reconnected: legacy {legacy_reconnects} (streams on replica 1: {on_victim}; legacy owners {}), streamable {streamable_reconnects}; run went on {:.1?} after the kill; Redis keys without expiry right after the kill: {}",
        victim_pid.map_or("?".into(), |p| p.to_string()),
        tally.summary(),
        Tally::get(&tally.retried),
        bad_gateway[0].load(Ordering::Relaxed),
        bad_gateway[1].load(Ordering::Relaxed),
        show_owners(&legacy_owners),
        after,
        match &expiry {
            Ok((n, forever)) => format!("{forever} of {n}"),
            Err(error) => format!("(cannot read: {error:#})"),
        }
    );
    let passed = tally.clean()
        && streamable_reconnects == 0
        && legacy_reconnects > 0
        && legacy_reconnects == on_victim
        && matches!(expiry, Ok((_, 0)));
    if !passed || !tally.examples().is_empty() {
        figures.push_str(&format!(
            "\n    events: {}",
            tally.examples().join("\n    ")
        ));
    }
    Ok(Outcome::new("d/kill", passed, figures))
}

// ---- e: Redis restarts mid-run ---------------------------------------------------------------

/// Streamable sessions of scenario e.
const RESTART_SESSIONS: usize = 20;
/// Legacy SSE sessions of scenario e.
const RESTART_LEGACY_SESSIONS: usize = 10;

async fn redis_restart(cluster: &mut Cluster) -> anyhow::Result<Outcome> {
    let base = cluster.lb_url("");
    let mut kinds = vec![Kind::Streamable; RESTART_SESSIONS];
    kinds.extend([Kind::Legacy; RESTART_LEGACY_SESSIONS]);
    let clients: Vec<Arc<mcp_sse::client::McpClient>> = load::connect_all(&base, &kinds, 8)
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    let raw = RawClient::new()?;
    let probe = raw.open_session(&cluster.lb_url("/mcp"), None).await?;
    let mut failures = Vec::new();
    let mut notes = Vec::new();

    // Background calls all along: failures while Redis is away are expected, none after.
    let before = Arc::new(Tally::default());
    let stop = Arc::new(AtomicU64::new(0));
    let phase = Arc::new(AtomicU64::new(0)); // 0 before, 1 while away, 2 after recovery
    // Calls made while Redis was away or coming back: answered, 503, anything else.
    let during = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let after_tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, stop, phase, during) = (
            Arc::clone(client),
            Arc::clone(&stop),
            Arc::clone(&phase),
            Arc::clone(&during),
        );
        let (before, after_tally) = (Arc::clone(&before), Arc::clone(&after_tally));
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while stop.load(Ordering::Relaxed) == 0 {
                n += 1;
                let token = load::token(&format!("e{i}"), n);
                let at = phase.load(Ordering::Relaxed);
                let result = load::echo(&client, &token).await;
                let tally = match (at, phase.load(Ordering::Relaxed)) {
                    (0, 0) => &before,
                    (2, 2) => &after_tally,
                    _ => {
                        let slot = match &result {
                            Ok(_) => 0,
                            Err(why) if why.status() == Some(503) => 1,
                            Err(_) => 2,
                        };
                        during[slot].fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                tally.calls.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(got) => tally.record_answer(&token, &got),
                    Err(why) => tally.record_lost(&token, &why),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    phase.store(1, Ordering::Relaxed);
    cluster.stop_redis();
    let stopped = Instant::now();
    // A request that needs Redis: a call in an existing session (its record is in Redis).
    let mut unavailable = None;
    for attempt in 0..20u64 {
        let reply = raw
            .echo(
                &cluster.lb_url("/mcp"),
                &probe,
                None,
                500 + attempt,
                "e-probe",
            )
            .await?;
        if reply.status == 503 {
            unavailable = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match &unavailable {
        Some(reply) => {
            let json: Option<serde_json::Value> = serde_json::from_str(&reply.body).ok();
            let has_error = json.as_ref().is_some_and(|v| v.get("error").is_some());
            if !reply.content_type.starts_with("application/json") || !has_error {
                failures.push(format!(
                    "503 without a JSON body with \"error\": content-type {:?}, body {}",
                    reply.content_type,
                    reply.describe()
                ));
            }
            notes.push(format!("Redis down: a call answered {}", reply.describe()));
        }
        None => failures.push("no 503 within 2 s of stopping Redis".into()),
    }
    let new_session = raw
        .post(
            &cluster.lb_url("/mcp"),
            None,
            None,
            &raw::initialize_request(1),
        )
        .await?;
    notes.push(format!("initialize while down: {}", new_session.status));
    if new_session.status != 503 {
        failures.push(format!(
            "initialize while Redis is down: expected 503, got {}",
            new_session.describe()
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let down_for = stopped.elapsed();
    cluster.start_redis()?;
    let restarted = Instant::now();

    // Recovery: the probe session answers again, with no replica restarted.
    let mut recovered = None;
    let mut last = String::new();
    while restarted.elapsed() < Duration::from_secs(20) {
        let token = load::token("e-probe", 1);
        match raw
            .echo(&cluster.lb_url("/mcp"), &probe, None, 900, &token)
            .await
        {
            Ok(reply) if reply.echoed().as_deref() == Some(token.as_str()) => {
                recovered = Some(restarted.elapsed());
                break;
            }
            Ok(reply) => last = reply.describe(),
            Err(error) => last = format!("{error:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match recovered {
        Some(after) => notes.push(format!(
            "Redis down {down_for:.1?}; the session of before answered {after:.1?} after the restart"
        )),
        None => failures.push(format!("no recovery within 20 s; last answer: {last}")),
    }
    phase.store(2, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(1, Ordering::Relaxed);
    for task in tasks {
        task.await.context("a calling task panicked")?;
    }
    // Every session opened before the restart still works, on every replica's turn.
    let mut still = 0;
    for (i, client) in clients.iter().enumerate() {
        let token = load::token(&format!("e-after{i}"), 0);
        match load::echo(client, &token).await {
            Ok(got) if got == token => still += 1,
            Ok(got) => failures.push(format!(
                "{} session {i} after the restart: sent {token}, got {got}",
                kinds[i].label()
            )),
            Err(why) => failures.push(format!(
                "{} session {i} after the restart: {why}",
                kinds[i].label()
            )),
        }
    }
    notes.push(format!(
        "{still} of {} sessions of before ({RESTART_SESSIONS} streamable, {RESTART_LEGACY_SESSIONS} legacy) work after the restart; background calls: before {}, while away or recovering {} answered / {} got 503 / {} other errors (not counted), after {}",
        kinds.len(),
        before.summary(),
        during[0].load(Ordering::Relaxed),
        during[1].load(Ordering::Relaxed),
        during[2].load(Ordering::Relaxed),
        after_tally.summary()
    ));
    if !before.clean() {
        failures.push(format!(
            "calls before the stop failed: {}",
            before.examples().join("; ")
        ));
    }
    if !after_tally.clean() {
        failures.push(format!(
            "calls after recovery failed: {}",
            after_tally.examples().join("; ")
        ));
    }
    let replicas_running = (0..cluster.replica_count())
        .filter(|&i| cluster.replica_pid(i).is_some())
        .count();
    if let Err(error) = cluster.ensure_running() {
        failures.push(format!("a process died: {error:#}"));
    }
    notes.push(format!(
        "{replicas_running} replicas running, none restarted"
    ));
    let clients: Vec<_> = clients
        .into_iter()
        .filter_map(|c| Arc::try_unwrap(c).ok())
        .collect();
    load::close_all(clients, 8).await;
    Ok(finish("e/redis-restart", notes, failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_unique_and_filterable() {
        let mut names = SCENARIOS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len());
        assert_eq!(SCENARIOS.iter().filter(|n| n.contains("kill")).count(), 1);
    }

    #[test]
    fn failures_are_listed_under_the_figures() {
        let ok = finish("x", vec!["a".into(), "b".into()], vec![]);
        assert!(ok.passed);
        assert_eq!(ok.figures, "a; b");
        let bad = finish("x", vec!["a".into()], vec!["f1".into(), "f2".into()]);
        assert!(!bad.passed);
        assert_eq!(bad.figures, "a\n    f1\n    f2");
    }
}
