//! `cargo xtask soak`: well-behaved clients and one abusive client at the same time, against
//! one process and then against three replicas on Redis behind nginx ([`crate::cluster`]).
//!
//! Every deployment runs `dice_server_auth --echo` with one shared key pair, so each client is a
//! subject of its own: the well-behaved clients are `good`, the abuser `mallory`. In each:
//!
//! - **well-behaved load**: `--sessions` sessions (half legacy SSE, half streamable HTTP),
//!   `--concurrency` at a time, `--calls` `echo` calls with unique tokens spread over them,
//!   each checked to come back once, to its caller; latencies give p50 and p99.
//! - **the abuser**, meanwhile, directly at one replica: sessions until its per-client cap
//!   answers 429; an `initialize` over the size limit (400, `-32602`); a batch of 10 000 calls
//!   (400, `-32600`); a legacy SSE stream it never reads while its calls send megabytes to it
//!   (the connection is cut at the write deadline and the session is gone); connections that
//!   send half their headers (cut at the header deadline).
//! - **memory**: all of the above runs twice on the same servers. The servers' RSS (summed
//!   over replicas) is read fresh, after the first round (the allocator's high-water mark),
//!   at the peak of the second and after it; Redis's `used_memory` after each round. What a
//!   leak would show is growth from the first round's end to the second's. When the second
//!   round ends over the bound (the allocator of several processes still settling), a third
//!   runs and must come back within 10% of the second's end: a leak grows every round.
//!
//! It passes only when every well-behaved call succeeded, every abuse got the answer it should,
//! and RSS and Redis memory came back within 10% of where they started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::cluster::{self, Cluster, ClusterConfig};
use crate::process;

/// The audience of the soak's tokens.
const AUDIENCE: &str = "dice-server";
/// Each abuser's per-client session cap (the servers are started with it).
const CLIENT_SESSIONS: usize = 200;
/// The write deadline the servers are started with, in milliseconds (their header deadline
/// is the default 10 s, longer than nginx's upstream keep-alive).
const DEADLINE_MS: u64 = 2000;
/// The servers' header deadline (the default), in milliseconds.
const HEADER_DEADLINE_MS: u64 = 10_000;
/// Half-sent requests the abuser holds open.
const SLOWLORIS: usize = 200;
/// How long memory may take to come back once the clients are gone: the server's keep-alive
/// period (when it notices a closed legacy stream at the latest) and a margin.
const SETTLE: Duration = Duration::from_secs(25);
/// How much memory may stay above where it started.
const MEMORY_SLACK: f64 = 1.10;

/// Options of `cargo xtask soak`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Well-behaved sessions per deployment (half legacy SSE, half streamable HTTP).
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Well-behaved calls per deployment, spread over the sessions.
    #[arg(long, default_value_t = 100_000)]
    pub calls: u64,
    /// Well-behaved sessions open at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The short form CI runs: 1 000 sessions and 10 000 calls.
    #[arg(long)]
    pub quick: bool,
    /// Only the one-process deployment.
    #[arg(long)]
    pub one_process: bool,
}

/// Runs the soak; see the module docs.
pub fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    if args.quick {
        args.sessions = args.sessions.min(1000);
        args.calls = args.calls.min(10_000);
    }
    let root = crate::workspace_root();
    for script in ["scripts/install-redis.sh", "scripts/install-nginx.sh"] {
        let mut install = Command::new("bash");
        install.arg(root.join(script));
        process::run_checked(install)?;
    }
    let binaries = cluster::build_examples()?;
    let keys = Keys::mint(&binaries)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut deployments = vec![("one process", 1usize, false)];
    if !args.one_process {
        deployments.push(("3 replicas on Redis", 3, true));
    }
    let mut passed = true;
    for (name, replicas, shared) in deployments {
        let mut config = ClusterConfig::new(&binaries["dice_server_auth"], replicas)
            .name(format!("soak-{replicas}"))
            .args(server_args(&keys.private_key));
        if !shared {
            config = config.memory_sessions();
        }
        let cluster = Cluster::start(config)?;
        let report = runtime.block_on(soak(&cluster, &args, &keys, shared))?;
        println!("\n== {name} ==\n{}", report.render());
        if !report.passed() {
            cluster.print_logs();
            passed = false;
        }
    }
    println!("\nsoak: {}", if passed { "PASS" } else { "FAIL" });
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn server_args(private_key: &Path) -> Vec<String> {
    vec![
        "--echo".into(),
        "--private-key-file".into(),
        private_key.to_string_lossy().into_owned(),
        "--max-sessions-per-client".into(),
        CLIENT_SESSIONS.to_string(),
        "--write-timeout-ms".into(),
        DEADLINE_MS.to_string(),
    ]
}

/// The soak's key pair and its two subjects' tokens.
struct Keys {
    private_key: PathBuf,
    good: String,
    mallory: String,
}

impl Keys {
    fn mint(binaries: &BTreeMap<String, PathBuf>) -> anyhow::Result<Self> {
        let jwt_tool = &binaries["jwt_tool"];
        let dir = process::log_dir().join("soak-keys");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let private_key = dir.join("private.pem");
        let mut mint = Command::new(jwt_tool);
        mint.args(["mint", "--audience", AUDIENCE, "--subject", "good"])
            .arg("--private-key-out")
            .arg(&private_key)
            .arg("--public-key-out")
            .arg(dir.join("public.pem"));
        let good = process::output_checked(mint)?.trim().to_owned();
        let mut sign = Command::new(jwt_tool);
        sign.args(["sign", "--audience", AUDIENCE, "--subject", "mallory"])
            .arg("--private-key")
            .arg(&private_key);
        let mallory = process::output_checked(sign)?.trim().to_owned();
        Ok(Self {
            private_key,
            good,
            mallory,
        })
    }
}

/// What one deployment showed.
#[derive(Debug, Default)]
struct Report {
    calls: u64,
    ok: u64,
    failures: Vec<String>,
    p50: Duration,
    p99: Duration,
    elapsed: Duration,
    rss_kib: [u64; 3],
    /// RSS of the freshly started servers, before the first round.
    fresh_rss_kib: u64,
    redis_bytes: Option<[u64; 2]>,
    abuse: Vec<(String, Result<String, String>)>,
}

impl Report {
    fn passed(&self) -> bool {
        let memory_back = |start: u64, end: u64| end as f64 <= start as f64 * MEMORY_SLACK;
        self.ok == self.calls
            && self.abuse.iter().all(|(_, r)| r.is_ok())
            && memory_back(self.rss_kib[0], self.rss_kib[2])
            && self.redis_bytes.is_none_or(|[a, b]| memory_back(a, b))
    }

    fn render(&self) -> String {
        let mut out = format!(
            "well-behaved: {} of {} calls succeeded ({:.3}%) in {:.1} s, p50 {:.2} ms, p99 {:.2} ms\n",
            self.ok,
            self.calls,
            self.ok as f64 * 100.0 / self.calls.max(1) as f64,
            self.elapsed.as_secs_f64(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
        );
        for failure in self.failures.iter().take(5) {
            out.push_str(&format!("  failed: {failure}\n"));
        }
        let [before, peak, after] = self.rss_kib;
        out.push_str(&format!(
            "server RSS: fresh {} KiB; before the measured round {before} KiB; its peak {peak} KiB, after it {after} KiB ({:+.1}%)\n",
            self.fresh_rss_kib,
            (after as f64 / before.max(1) as f64 - 1.0) * 100.0
        ));
        if let Some([before, after]) = self.redis_bytes {
            out.push_str(&format!(
                "Redis used_memory: before {before} B, after {after} B ({:+.1}%)\n",
                (after as f64 / before.max(1) as f64 - 1.0) * 100.0
            ));
        }
        for (what, outcome) in &self.abuse {
            match outcome {
                Ok(detail) => out.push_str(&format!("  PASS abuser {what}: {detail}\n")),
                Err(detail) => out.push_str(&format!("  FAIL abuser {what}: {detail}\n")),
            }
        }
        out.push_str(if self.passed() { "PASS" } else { "FAIL" });
        out
    }
}

/// One deployment: warm-up, then the load and the abuser at once, then the memory check.
async fn soak(cluster: &Cluster, args: &Args, keys: &Keys, shared: bool) -> anyhow::Result<Report> {
    let lb = cluster.lb_url("");
    let target = cluster.replica_url(0, "");
    let pids: Vec<u32> = (0..cluster.replica_count())
        .filter_map(|i| cluster.replica_pid(i))
        .collect();
    let rss = || {
        pids.iter()
            .filter_map(|&p| process::process_rss_kib(p).ok())
            .sum::<u64>()
    };
    let fresh = rss();
    // One round of everything first, so the allocator's high-water mark, buffers and
    // connection pools exist before "before" is read: what is compared is what a second
    // round leaves behind (a leak grows with every round; the allocator's footprint does not).
    let (warm_up, _) = tokio::join!(
        good_load(&lb, &keys.good, args.sessions, args.calls, args.concurrency),
        abuse_all(&target, &keys.mallory),
    );
    warm_up?;
    tokio::time::sleep(SETTLE).await;
    let pids: Vec<u32> = (0..cluster.replica_count())
        .filter_map(|i| cluster.replica_pid(i))
        .collect();
    let rss = || {
        pids.iter()
            .filter_map(|&p| process::process_rss_kib(p).ok())
            .sum::<u64>()
    };
    let redis = || redis_used_memory(cluster);
    let before = rss();
    let redis_before = if shared { Some(redis()?) } else { None };
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pids) = (Arc::clone(&peak), Arc::clone(&sampling), pids.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let now: u64 = pids
                    .iter()
                    .filter_map(|&p| process::process_rss_kib(p).ok())
                    .sum();
                peak.fetch_max(now, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let started = Instant::now();
    let (load, abuse) = tokio::join!(
        good_load(&lb, &keys.good, args.sessions, args.calls, args.concurrency),
        abuse_all(&target, &keys.mallory),
    );
    let elapsed = started.elapsed();
    let mut load = load?;
    let mut abuse = abuse;
    let mut before = before;
    let mut after = settle(&rss, before).await;
    // The allocator's footprint can still move after one round on several processes; a
    // leak grows again with every round. One more round must then come back within bound.
    if after as f64 > before as f64 * MEMORY_SLACK {
        println!("RSS {after} KiB after round 2 is over {before} KiB + 10%: one more round");
        before = after;
        let (more, more_abuse) = tokio::join!(
            good_load(&lb, &keys.good, args.sessions, args.calls, args.concurrency),
            abuse_all(&target, &keys.mallory),
        );
        let more = more?;
        load.calls += more.calls;
        load.ok += more.ok;
        load.failures.extend(more.failures);
        load.latencies.extend(more.latencies);
        abuse.extend(more_abuse);
        after = settle(&rss, before).await;
    }
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let redis_after = if shared { Some(redis()?) } else { None };
    Ok(Report {
        p50: load.percentile(0.50),
        p99: load.percentile(0.99),
        calls: load.calls,
        ok: load.ok,
        failures: load.failures,
        elapsed,
        rss_kib: [before, peak.load(Ordering::Relaxed), after],
        fresh_rss_kib: fresh,
        redis_bytes: redis_before.zip(redis_after).map(|(a, b)| [a, b]),
        abuse,
    })
}

/// RSS once the clients are gone: streamable sessions were deleted, legacy ones end when the
/// server sees their stream gone (at the latest on its next keep-alive write, 15 s). Waits
/// up to [`SETTLE`] for it to come within bound of `before`.
async fn settle(rss: &impl Fn() -> u64, before: u64) -> u64 {
    let settled = Instant::now() + SETTLE;
    let mut after = rss();
    while after as f64 > before as f64 * MEMORY_SLACK && Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = rss();
    }
    after
}

fn redis_used_memory(cluster: &Cluster) -> anyhow::Result<u64> {
    let info = cluster.redis_cli(&["INFO", "memory"])?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no used_memory in INFO memory")
}

/// What the well-behaved clients saw.
#[derive(Debug, Default)]
struct LoadOutcome {
    calls: u64,
    ok: u64,
    failures: Vec<String>,
    latencies: Vec<Duration>,
}

impl LoadOutcome {
    fn percentile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let i = ((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1);
        sorted.get(i).copied().unwrap_or_default()
    }
}

/// `sessions` sessions of `good` (alternating transports), `concurrency` at a time, sharing
/// `calls` echo calls; each session closes when its calls are done.
async fn good_load(
    base: &str,
    token: &str,
    sessions: usize,
    calls: u64,
    concurrency: usize,
) -> anyhow::Result<LoadOutcome> {
    let outcome = Arc::new(Mutex::new(LoadOutcome::default()));
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let per_session = calls / sessions.max(1) as u64;
    let mut tasks = Vec::with_capacity(sessions);
    for s in 0..sessions {
        let n = per_session + u64::from((s as u64) < calls % sessions.max(1) as u64);
        let (permits, outcome) = (Arc::clone(&permits), Arc::clone(&outcome));
        let (base, token) = (base.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let (path, kind) = if s % 2 == 0 {
                ("/sse", TransportKind::LegacySse)
            } else {
                ("/mcp", TransportKind::StreamableHttp)
            };
            let record = |ok: bool, failure: Option<String>, latency: Option<Duration>| {
                let mut o = outcome.lock().unwrap_or_else(PoisonError::into_inner);
                o.calls += 1;
                o.ok += u64::from(ok);
                o.latencies.extend(latency);
                if let Some(f) = failure.filter(|_| o.failures.len() < 20) {
                    o.failures.push(f);
                }
            };
            let client = McpClient::builder(format!("{base}{path}"))
                .transport(kind)
                .bearer_token(&token)
                .request_timeout(Duration::from_secs(30))
                .connect()
                .await;
            let client = match client {
                Ok(c) => c,
                Err(e) => {
                    for _ in 0..n {
                        record(false, Some(format!("session {s}: connect: {e}")), None);
                    }
                    return;
                }
            };
            for c in 0..n {
                let tag = format!("s{s}-c{c}-{:08x}", rand::random::<u32>());
                let sent = Instant::now();
                match client.call_tool("echo", json!({"token": tag})).await {
                    Ok(r)
                        if r.structured_content
                            .as_ref()
                            .and_then(|v| v["result"].as_str())
                            == Some(tag.as_str()) =>
                    {
                        record(true, None, Some(sent.elapsed()));
                    }
                    Ok(r) => record(
                        false,
                        Some(format!("{tag}: wrong answer {:?}", r.content)),
                        None,
                    ),
                    Err(e) => record(false, Some(format!("{tag}: {e}")), None),
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        }));
    }
    for task in tasks {
        task.await.context("a session task panicked")?;
    }
    let outcome = Arc::try_unwrap(outcome)
        .map_err(|_| anyhow::anyhow!("load outcome still shared"))?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    Ok(outcome)
}

/// Every abuse at once against `base` (one replica, no load balancer between), each with the
/// answer it should get.
async fn abuse_all(base: &str, token: &str) -> Vec<(String, Result<String, String>)> {
    let mallory = Abuser::new(base, token);
    let (sessions, initialize, batch, reader, slowloris) = tokio::join!(
        mallory.sessions_to_cap(),
        mallory.oversized_initialize(),
        mallory.huge_batch(),
        mallory.reader_that_never_reads(),
        slowloris(base),
    );
    vec![
        (
            format!("opens sessions until its cap ({CLIENT_SESSIONS})"),
            sessions,
        ),
        ("sends a 64 KiB initialize".into(), initialize),
        ("sends a batch of 10 000 calls".into(), batch),
        ("never reads its SSE stream".into(), reader),
        (format!("holds {SLOWLORIS} half-sent requests"), slowloris),
    ]
}

/// The abuser's raw HTTP client.
struct Abuser {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Abuser {
    fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    /// POSTs `body` to `/mcp`: status, session id, JSON body (the `data:` of an SSE answer).
    async fn post(
        &self,
        session: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Option<String>, Value), String> {
        let mut request = self
            .http
            .post(format!("{}/mcp", self.base))
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if let Some(s) = session {
            request = request
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-03-26");
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.map_err(|e| e.to_string())?;
        let data = text
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or(&text);
        Ok((
            status,
            session,
            serde_json::from_str(data).unwrap_or(Value::Null),
        ))
    }

    fn initialize(padding: usize) -> Value {
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-03-26",
            "capabilities":{"experimental":{"padding":"x".repeat(padding)}},
            "clientInfo":{"name":"mallory","version":"1"}}})
    }

    async fn sessions_to_cap(&self) -> Result<String, String> {
        let mut opened = Vec::new();
        for _ in 0..CLIENT_SESSIONS + 10 {
            match self.post(None, &Self::initialize(0)).await? {
                (200, Some(id), _) => opened.push(id),
                (429, _, body) if opened.len() == CLIENT_SESSIONS => {
                    let message = body["error"]["message"].as_str().unwrap_or("").to_owned();
                    self.delete_all(&opened).await;
                    return Ok(format!("{} sessions, then 429 {message:?}", opened.len()));
                }
                (status, _, body) => {
                    self.delete_all(&opened).await;
                    return Err(format!("after {} sessions: {status} {body}", opened.len()));
                }
            }
        }
        self.delete_all(&opened).await;
        Err(format!("{} sessions and never refused", opened.len()))
    }

    async fn delete_all(&self, sessions: &[String]) {
        for id in sessions {
            let _ = self
                .http
                .delete(format!("{}/mcp", self.base))
                .bearer_auth(&self.token)
                .header("mcp-session-id", id)
                .send()
                .await;
        }
    }

    async fn oversized_initialize(&self) -> Result<String, String> {
        match self.post(None, &Self::initialize(64 * 1024)).await? {
            (400, None, body) if body["error"]["code"] == -32602 => {
                Ok(format!("400 {}", body["error"]["message"]))
            }
            (status, _, body) => Err(format!("{status} {body}")),
        }
    }

    async fn huge_batch(&self) -> Result<String, String> {
        let (status, session, _) = self.post(None, &Self::initialize(0)).await?;
        let session = session.ok_or(format!("initialize answered {status} without a session"))?;
        let calls: Vec<Value> = (0..10_000)
            .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"echo","arguments":{"token":"b"}}}))
            .collect();
        let outcome = self.post(Some(&session), &Value::Array(calls)).await;
        self.delete_all(&[session]).await;
        match outcome? {
            (400, _, body) if body["error"]["code"] == -32600 => {
                Ok(format!("400 {}", body["error"]["message"]))
            }
            (status, _, body) => Err(format!("{status} {body}")),
        }
    }

    /// Opens `/sse`, reads the endpoint event, then never reads again while its calls send
    /// ~16 MiB to the stream: the write deadline must cut the connection and end the session.
    async fn reader_that_never_reads(&self) -> Result<String, String> {
        let addr = self.base.trim_start_matches("http://").to_owned();
        let mut tcp = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
        let request = format!(
            "GET /sse HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
            self.token
        );
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 4096];
        let n = tcp.read(&mut head).await.map_err(|e| e.to_string())?;
        let head = String::from_utf8_lossy(&head[..n]).into_owned();
        let endpoint = head
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .ok_or(format!("no endpoint event in {head:?}"))?
            .to_owned();
        let url = format!("{}{endpoint}", self.base);
        let post = |body: Value| {
            self.http
                .post(&url)
                .bearer_auth(&self.token)
                .json(&body)
                .send()
        };
        let init = Self::initialize(0);
        post(init).await.map_err(|e| e.to_string())?;
        let big = "y".repeat(256 * 1024);
        let started = Instant::now();
        let mut refused = None;
        for i in 0..64 {
            let call = json!({"jsonrpc":"2.0","id":i + 1,"method":"tools/call",
                "params":{"name":"echo","arguments":{"token": big}}});
            match post(call).await {
                Ok(r) if r.status() == 202 => {}
                Ok(r) => {
                    refused = Some(r.status().as_u16());
                    break;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        // The session ends once the write deadline cuts the stream.
        let deadline = Instant::now() + Duration::from_millis(DEADLINE_MS * 5);
        while Instant::now() < deadline {
            let ping = json!({"jsonrpc":"2.0","id":999,"method":"ping"});
            if let Ok(r) = post(ping).await
                && r.status() == 404
            {
                drop(tcp);
                return Ok(format!(
                    "session gone {:.1} s after the first call{}",
                    started.elapsed().as_secs_f64(),
                    refused.map_or(String::new(), |s| format!(
                        " (calls refused with {s} once the stream was full)"
                    ))
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err("the session outlived a stream nobody reads".into())
    }
}

/// Half-sent requests: each must be closed by the server at the header deadline.
async fn slowloris(base: &str) -> Result<String, String> {
    let addr = base.trim_start_matches("http://").to_owned();
    let mut held = Vec::with_capacity(SLOWLORIS);
    for _ in 0..SLOWLORIS {
        let mut tcp = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
        tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
            .await
            .map_err(|e| e.to_string())?;
        held.push(tcp);
    }
    let started = Instant::now();
    let limit = Duration::from_millis(HEADER_DEADLINE_MS * 2);
    let mut closed = 0;
    for mut tcp in held {
        let mut buf = [0u8; 256];
        let left = limit.saturating_sub(started.elapsed());
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(left, tcp.read(&mut buf)).await {
            closed += 1;
        }
    }
    if closed == SLOWLORIS {
        Ok(format!(
            "all {SLOWLORIS} closed within {:.1} s",
            started.elapsed().as_secs_f64()
        ))
    } else {
        Err(format!(
            "{} of {SLOWLORIS} still open after {limit:?}",
            SLOWLORIS - closed
        ))
    }
}
