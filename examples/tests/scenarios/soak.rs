//! Well-behaved clients and one abusive client at the same time, against one process and
//! against three replicas on Redis behind nginx (`mcp_stack_tests::cluster`).
//!
//! Every deployment runs `dice_server_auth --echo` with one shared key pair, so each client is a
//! subject of its own: the well-behaved clients are `good`, the abuser `mallory`. In each:
//!
//! - **well-behaved load**: sessions (half legacy SSE, half streamable HTTP), 64 at a time,
//!   `echo` calls with unique tokens spread over them, each checked to come back to its caller;
//!   latencies give p50 and p99. 1 000 sessions and 10 000 calls; 10 000 and 100 000 with
//!   `MCP_SOAK_FULL=1` (`cargo xtask soak` without `--quick`).
//! - **the abuser**, meanwhile, directly at one replica: sessions until its per-client cap
//!   answers 429; an `initialize` over the size limit (400, `-32602`); a batch of 10 000 calls
//!   (400, `-32600`); a legacy SSE stream it never reads while its calls send megabytes to it
//!   (the connection is cut at the write deadline and the session is gone); connections that
//!   send half their headers (cut at the header deadline).
//! - **memory**: a first round of all of the above warms the servers up (the allocator's
//!   high-water mark); the servers' RSS (summed over replicas) and Redis's `used_memory` are
//!   read before and after a second round, which must leave them within 10%. When the second
//!   round ends over the bound (the allocators of several processes still settling), a third
//!   runs and must come back within 10% of the second's end: a leak grows every round.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use mcp_stack_tests::cluster::{Cluster, ClusterConfig};
use mcp_stack_tests::process;
use mcp_stack_tests::raw::RawClient;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

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
/// Well-behaved sessions open at once.
const CONCURRENCY: usize = 64;

#[test]
#[ignore = "needs redis-server and nginx, and minutes: cargo xtask soak"]
fn soak_one_process() {
    soak(1);
}

#[test]
#[ignore = "needs redis-server and nginx, and minutes: cargo xtask soak"]
fn soak_three_replicas_on_redis() {
    soak(3);
}

/// The deployment of `replicas` replicas (one: sessions in memory), the keys, and the rounds.
fn soak(replicas: usize) {
    let keys = Keys::mint();
    let mut config =
        ClusterConfig::new(Path::new(env!("CARGO_BIN_EXE_dice_server_auth")), replicas)
            .name(format!("soak-{replicas}"))
            .args([
                "--echo",
                "--private-key-file",
                &keys.private_key.to_string_lossy(),
            ])
            .args(["--max-sessions-per-client", &CLIENT_SESSIONS.to_string()])
            .args(["--write-timeout-ms", &DEADLINE_MS.to_string()]);
    if replicas == 1 {
        config = config.memory_sessions();
    }
    let cluster = Cluster::start(config).unwrap();
    let (sessions, calls) = match std::env::var_os("MCP_SOAK_FULL") {
        Some(_) => (10_000, 100_000),
        None => (1000, 10_000),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(rounds(&cluster, &keys, sessions, calls));
}

/// The soak's key pair and its two subjects' tokens.
struct Keys {
    private_key: PathBuf,
    good: String,
    mallory: String,
}

impl Keys {
    fn mint() -> Self {
        let dir = process::log_dir().join("soak-keys");
        std::fs::create_dir_all(&dir).unwrap();
        let private_key = dir.join("private.pem");
        let jwt_tool = |args: &[&str]| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_jwt_tool"));
            command.args(args).args(["--audience", AUDIENCE]);
            command
        };
        let mut mint = jwt_tool(&["mint", "--subject", "good"]);
        mint.arg("--private-key-out").arg(&private_key);
        mint.arg("--public-key-out").arg(dir.join("public.pem"));
        let good = process::output_checked(mint).unwrap().trim().to_owned();
        let mut sign = jwt_tool(&["sign", "--subject", "mallory"]);
        sign.arg("--private-key").arg(&private_key);
        let mallory = process::output_checked(sign).unwrap().trim().to_owned();
        Self {
            private_key,
            good,
            mallory,
        }
    }
}

/// The servers' RSS in KiB, summed.
fn rss_kib(cluster: &Cluster) -> u64 {
    let pids = (0..cluster.replica_count()).filter_map(|i| cluster.replica_pid(i));
    pids.filter_map(|pid| process::process_rss_kib(pid).ok())
        .sum()
}

/// Redis's `used_memory` in bytes (`None` without Redis).
fn redis_used_memory(cluster: &Cluster) -> Option<u64> {
    cluster.redis_pid()?;
    let info = cluster.redis_cli(&["INFO", "memory"]).unwrap();
    let used = info.lines().find_map(|l| l.strip_prefix("used_memory:"));
    Some(
        used.and_then(|v| v.trim().parse().ok())
            .expect("no used_memory in INFO memory"),
    )
}

/// One round: the load and the abuser at once; fails on any failed call or abuse answered
/// otherwise than it should.
async fn round(cluster: &Cluster, keys: &Keys, sessions: usize, calls: u64) {
    let started = Instant::now();
    let (lb, replica) = (cluster.lb_url(""), cluster.replica_url(0, ""));
    let (load, ()) = tokio::join!(
        good_load(&lb, &keys.good, sessions, calls),
        abuse_all(&replica, &keys.mallory),
    );
    println!(
        "well-behaved: {} of {} calls succeeded in {:.1?}, p50 {:.2?}, p99 {:.2?}",
        load.ok,
        load.calls,
        started.elapsed(),
        load.percentile(0.50),
        load.percentile(0.99)
    );
    assert_eq!(
        load.ok, load.calls,
        "failed calls, e.g.: {:?}",
        load.failures
    );
}

/// Warm-up, a measured round (and a third when the allocators still settle), the memory check.
async fn rounds(cluster: &Cluster, keys: &Keys, sessions: usize, calls: u64) {
    round(cluster, keys, sessions, calls).await;
    tokio::time::sleep(SETTLE).await;
    let (mut before, redis_before) = (rss_kib(cluster), redis_used_memory(cluster));
    round(cluster, keys, sessions, calls).await;
    let mut after = settle(cluster, before).await;
    if after as f64 > before as f64 * MEMORY_SLACK {
        println!("RSS {after} KiB after round 2 is over {before} KiB + 10%: one more round");
        before = after;
        round(cluster, keys, sessions, calls).await;
        after = settle(cluster, before).await;
    }
    println!("server RSS before the measured round {before} KiB, after it {after} KiB");
    assert!(
        after as f64 <= before as f64 * MEMORY_SLACK,
        "RSS {before} -> {after} KiB"
    );
    if let (Some(before), Some(after)) = (redis_before, redis_used_memory(cluster)) {
        println!("Redis used_memory: before {before} B, after {after} B");
        assert!(
            after as f64 <= before as f64 * MEMORY_SLACK,
            "Redis {before} -> {after} B"
        );
    }
}

/// RSS once the clients are gone: streamable sessions were deleted, legacy ones end when the
/// server sees their stream gone (at the latest on its next keep-alive write, 15 s). Waits
/// up to [`SETTLE`] for it to come within bound of `before`.
async fn settle(cluster: &Cluster, before: u64) -> u64 {
    let settled = Instant::now() + SETTLE;
    let mut after = rss_kib(cluster);
    while after as f64 > before as f64 * MEMORY_SLACK && Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = rss_kib(cluster);
    }
    after
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
    fn record(&mut self, outcome: Result<Duration, String>) {
        self.calls += 1;
        match outcome {
            Ok(latency) => {
                self.ok += 1;
                self.latencies.push(latency);
            }
            Err(failure) if self.failures.len() < 20 => self.failures.push(failure),
            Err(_) => {}
        }
    }

    fn percentile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let i = ((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1);
        sorted.get(i).copied().unwrap_or_default()
    }
}

/// One well-behaved session of `good` making `calls` calls; closes when done.
async fn good_session(url: String, kind: TransportKind, token: String, calls: u64) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    let client = McpClient::builder(&url)
        .transport(kind)
        .bearer_token(&token)
        .request_timeout(Duration::from_secs(30))
        .connect()
        .await;
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            (0..calls).for_each(|_| outcome.record(Err(format!("{url}: connect: {e}"))));
            return outcome;
        }
    };
    for _ in 0..calls {
        let tag = format!("{:016x}", rand::random::<u64>());
        let sent = Instant::now();
        let answer = client.call_tool("echo", json!({"token": tag})).await;
        outcome.record(match answer {
            Ok(r)
                if r.structured_content
                    .as_ref()
                    .is_some_and(|v| v["result"] == tag) =>
            {
                Ok(sent.elapsed())
            }
            Ok(r) => Err(format!("{tag}: wrong answer {:?}", r.content)),
            Err(e) => Err(format!("{tag}: {e}")),
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    outcome
}

/// `sessions` sessions of `good` (alternating transports), [`CONCURRENCY`] at a time, sharing
/// `calls` echo calls.
async fn good_load(base: &str, token: &str, sessions: usize, calls: u64) -> LoadOutcome {
    let outcome = Arc::new(Mutex::new(LoadOutcome::default()));
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let tasks: Vec<_> = (0..sessions)
        .map(|s| {
            let n = calls / sessions as u64 + u64::from((s as u64) < calls % sessions as u64);
            let (path, kind) = match s % 2 {
                0 => ("/sse", TransportKind::LegacySse),
                _ => ("/mcp", TransportKind::StreamableHttp),
            };
            let session = good_session(format!("{base}{path}"), kind, token.to_owned(), n);
            let (permits, outcome) = (permits.clone(), outcome.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                let session = session.await;
                let mut total = outcome.lock().unwrap();
                total.calls += session.calls;
                total.ok += session.ok;
                total.latencies.extend(session.latencies);
                let room = 20usize.saturating_sub(total.failures.len());
                total
                    .failures
                    .extend(session.failures.into_iter().take(room));
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(outcome).unwrap().into_inner().unwrap()
}

/// Every abuse at once against `base` (one replica, no load balancer between); each must get
/// the answer it should.
async fn abuse_all(base: &str, token: &str) {
    let mallory = Abuser::new(base, token);
    tokio::join!(
        mallory.sessions_to_cap(),
        mallory.oversized_initialize(),
        mallory.huge_batch(),
        mallory.reader_that_never_reads(),
        slowloris(base),
    );
}

/// The abuser's raw HTTP client.
struct Abuser {
    raw: RawClient,
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Abuser {
    fn new(base: &str, token: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            raw: RawClient::new().version("2025-03-26"),
            http,
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    /// POSTs `body` to `/mcp`: status, session id, the JSON-RPC answer.
    async fn post(&self, session: Option<&str>, body: &Value) -> (u16, Option<String>, Value) {
        let url = format!("{}/mcp", self.base);
        let reply = self.raw.post(&url, session, Some(&self.token), body).await;
        let answer = reply.last_message();
        (reply.status, reply.session_id, answer)
    }

    async fn delete(&self, session: &str) {
        let url = format!("{}/mcp", self.base);
        self.raw.delete(&url, session, Some(&self.token)).await;
    }

    fn initialize(padding: usize) -> Value {
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-03-26",
            "capabilities":{"experimental":{"padding":"x".repeat(padding)}},
            "clientInfo":{"name":"mallory","version":"1"}}})
    }

    /// Sessions until the per-client cap answers 429 (exactly at the cap).
    async fn sessions_to_cap(&self) {
        let mut opened = Vec::new();
        let refusal = loop {
            match self.post(None, &Self::initialize(0)).await {
                (200, Some(id), _) if opened.len() < CLIENT_SESSIONS + 10 => opened.push(id),
                refusal => break refusal,
            }
        };
        for id in &opened {
            self.delete(id).await;
        }
        assert_eq!(
            refusal.0,
            429,
            "after {} sessions: {refusal:?}",
            opened.len()
        );
        assert_eq!(opened.len(), CLIENT_SESSIONS, "refused at the wrong count");
    }

    /// An `initialize` over the size limit: 400 with `-32602`.
    async fn oversized_initialize(&self) {
        let (status, session, body) = self.post(None, &Self::initialize(64 * 1024)).await;
        assert_eq!(
            (status, session, &body["error"]["code"]),
            (400, None, &json!(-32602)),
            "{body}"
        );
    }

    /// A batch of 10 000 calls: 400 with `-32600`.
    async fn huge_batch(&self) {
        let (status, session, _) = self.post(None, &Self::initialize(0)).await;
        let session =
            session.unwrap_or_else(|| panic!("initialize answered {status} without a session"));
        let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"token":"b"}}});
        let (status, _, body) = self
            .post(Some(&session), &Value::Array(vec![call; 10_000]))
            .await;
        self.delete(&session).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (400, &json!(-32600)),
            "{body}"
        );
    }

    /// Opens `/sse`, reads the endpoint event, then never reads again while its calls send
    /// ~16 MiB to the stream: the write deadline must cut the connection and end the session.
    async fn reader_that_never_reads(&self) {
        let addr = self.base.trim_start_matches("http://").to_owned();
        let mut tcp = TcpStream::connect(&addr).await.unwrap();
        let request = format!(
            "GET /sse HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
            self.token
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = vec![0u8; 4096];
        let n = tcp.read(&mut head).await.unwrap();
        let head = String::from_utf8_lossy(&head[..n]).into_owned();
        let endpoint = head.lines().find_map(|l| l.strip_prefix("data: "));
        let url = format!("{}{}", self.base, endpoint.expect("no endpoint event"));
        let post = |body: Value| {
            self.http
                .post(&url)
                .bearer_auth(&self.token)
                .json(&body)
                .send()
        };
        post(Self::initialize(0)).await.unwrap();
        let big = "y".repeat(256 * 1024);
        for i in 0..64 {
            let call = json!({"jsonrpc":"2.0","id":i + 1,"method":"tools/call",
                "params":{"name":"echo","arguments":{"token": big}}});
            // Once the stream is full, calls may be refused; that ends the sending.
            if post(call).await.unwrap().status() != 202 {
                break;
            }
        }
        let deadline = Instant::now() + Duration::from_millis(DEADLINE_MS * 5);
        loop {
            let ping = json!({"jsonrpc":"2.0","id":999,"method":"ping"});
            if post(ping).await.is_ok_and(|r| r.status() == 404) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the session outlived a stream nobody reads"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(tcp);
    }
}

/// Half-sent requests: each must be closed by the server at the header deadline.
async fn slowloris(base: &str) {
    let addr = base.trim_start_matches("http://").to_owned();
    let mut held = Vec::with_capacity(SLOWLORIS);
    for _ in 0..SLOWLORIS {
        let mut tcp = TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(tcp);
    }
    let started = Instant::now();
    let limit = Duration::from_millis(HEADER_DEADLINE_MS * 2);
    let mut still_open = 0;
    for mut tcp in held {
        let mut buf = [0u8; 256];
        let left = limit.saturating_sub(started.elapsed());
        if !matches!(
            tokio::time::timeout(left, tcp.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        ) {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "half-sent requests still open after {limit:?}"
    );
}
