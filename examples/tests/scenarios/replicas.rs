//! Three `dice_server` replicas sharing their sessions through a real `redis-server`, behind a
//! real nginx doing round robin with no stickiness (`mcp_stack_tests::cluster`), driven by raw
//! HTTP, by our `McpClient` (both transports) and by the Python `mcp` and `fastmcp` clients.
//! Each test starts its own cluster; they need redis-server and nginx, so they are ignored by
//! a plain `cargo test` and run by `cargo xtask replicas`, which installs both first.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcp_sse::client::McpClient;
use mcp_stack_tests::cluster::{Cluster, ClusterConfig};
use mcp_stack_tests::process;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::calls::{self, CallFailure, Kind, Tally, token};
use mcp_stack_tests::raw::{self, RawClient};

mod gateway;
mod tasks;

/// How long the call of the resumption check runs, in milliseconds.
const RESUME_DELAY_MS: u32 = 700;
/// Replicas in every cluster.
const REPLICAS: usize = 3;
/// The audience of the tokens of the subject test.
const AUDIENCE: &str = "dice-server";
/// How long a legacy stream may take to carry an answer.
const STREAM_WAIT: Duration = Duration::from_secs(10);

/// Three replicas of `dice_server --echo` on Redis behind nginx.
fn dice_cluster(name: &str) -> Cluster {
    let config = ClusterConfig::new(Path::new(env!("CARGO_BIN_EXE_dice_server")), REPLICAS)
        .name(name)
        .arg("--echo");
    Cluster::start(config).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn any_replica_serves_resumes_and_deletes_a_streamable_session() {
    let cluster = dice_cluster("any-replica");
    let raw = RawClient::new();
    let mcp = cluster.replica_urls("/mcp");
    let session = raw.open_session(&mcp[0], None).await;
    let lb = cluster.lb_url("/mcp");
    let targets = [&mcp[1], &mcp[2], &mcp[0], &lb, &lb, &lb];
    for (id, url) in (10..).zip(targets) {
        let token = token("b", id);
        let reply = raw.echo(url, &session, None, id, &token).await;
        let got = (reply.status, reply.echoed());
        assert_eq!(
            got,
            (200, Some(token)),
            "{url} with replica 0's session: {}",
            reply.describe()
        );
    }

    // A call still running on replica 0 (echo with a delay) whose response stream breaks after
    // its first event is resumed with `GET` + `Last-Event-ID` on replica 1, then on replica 2
    // from the same point.
    let token = token("b-resume", 20);
    let slow = raw::echo_request(20, &token, Some(RESUME_DELAY_MS));
    let mut stream = match raw.post_stream(&mcp[0], &session, &slow).await {
        Ok(stream) => stream,
        Err(reply) => panic!(
            "a slow call was not answered as a stream: {}",
            reply.describe()
        ),
    };
    let first = stream.next_event(Duration::from_secs(5)).await;
    drop(stream);
    let first_id = first
        .id
        .expect("the first event of a running call's stream has no id");
    for i in [1, 2] {
        let mut resumed = match raw.get_stream(&mcp[i], &session, Some(&first_id)).await {
            Ok(stream) => stream,
            Err(reply) => panic!("resuming on replica {i}: {}", reply.describe()),
        };
        let answer = loop {
            let event = resumed.next_event(Duration::from_secs(5)).await;
            if let Ok(message) = serde_json::from_str::<Value>(&event.data) {
                break message;
            }
        };
        assert_eq!(answer["id"], 20, "replica {i} replayed {answer}");
        let echoed = &answer["result"]["structuredContent"]["result"];
        assert_eq!(echoed, token.as_str(), "replica {i} replayed {answer}");
    }

    // DELETE on replica 2: 404 on 0 and 1, and a second DELETE is 404 too.
    let reply = raw.delete(&mcp[2], &session, None).await;
    assert!(
        (200..300).contains(&reply.status),
        "DELETE: {}",
        reply.describe()
    );
    for (id, i) in [(30, 0), (31, 1)] {
        let reply = raw.echo(&mcp[i], &session, None, id, &token).await;
        assert_eq!(
            reply.status,
            404,
            "replica {i} after DELETE: {}",
            reply.describe()
        );
    }
    assert_eq!(raw.delete(&mcp[0], &session, None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn a_legacy_stream_carries_in_order_the_answers_to_posts_on_every_replica() {
    let cluster = dice_cluster("legacy-any-replica");
    let raw = RawClient::new();
    let (mut stream, endpoint, answer) = legacy_session(&cluster, &raw, [1, 2], "replica").await;
    assert!(answer["result"]["protocolVersion"].is_string(), "{answer}");
    let mut sent = Vec::new();
    for n in 0..6u64 {
        let (token, replica) = (token("b-legacy", n), [1, 2, 0][n as usize % 3]);
        let message = raw::echo_request(100 + n, &token, None);
        let what = format!("echo on replica {replica}");
        post_accepted(&raw, &endpoint(replica), &message, &what).await;
        sent.push((100 + n, token));
    }
    for (id, token) in sent {
        let answer = stream.next_json(STREAM_WAIT).await;
        assert_eq!(answer["id"], id, "out of order: {answer}");
        let echoed = &answer["result"]["structuredContent"]["result"];
        assert_eq!(echoed, token.as_str(), "the answer to {id}: {answer}");
    }
}

/// A legacy SSE stream opened on replica (or gateway) 0 of `cluster`, its session initialized
/// by a POST to replica `on[0]` and `notifications/initialized` on `on[1]`: the stream, the
/// POST endpoint of each replica, and the answer to `initialize` (read from the stream).
pub(super) async fn legacy_session(
    cluster: &Cluster,
    raw: &RawClient,
    on: [usize; 2],
    what: &str,
) -> (raw::SseStream, impl Fn(usize) -> String, Value) {
    let (mut stream, id) = raw.open_legacy(&cluster.replica_url(0, "/sse"), None).await;
    let endpoint = move |i: usize| cluster.replica_url(i, &format!("/messages/?session_id={id}"));
    let initialize = raw::initialize_request(1);
    let init_on = format!("initialize on {what} {}", on[0]);
    post_accepted(raw, &endpoint(on[0]), &initialize, &init_on).await;
    let answer = stream.next_json(STREAM_WAIT).await;
    assert_eq!(answer["id"], 1, "{answer}");
    let initialized_on = format!("initialized on {what} {}", on[1]);
    post_accepted(raw, &endpoint(on[1]), &raw::initialized(), &initialized_on).await;
    (stream, endpoint, answer)
}

/// Posts `message` to a legacy endpoint and asserts the 202 that accepts it.
pub(super) async fn post_accepted(raw: &RawClient, url: &str, message: &Value, what: &str) {
    let reply = raw.post(url, None, None, message).await;
    assert_eq!(reply.status, 202, "{what}: {}", reply.describe());
}

/// `jwt_tool` run with `args`: its output, trimmed.
fn jwt_tool(args: &[&str], paths: &[(&str, &Path)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jwt_tool"));
    command.args(args).args(["--audience", AUDIENCE]);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    process::output_checked(command).unwrap().trim().to_owned()
}

/// Three `dice_server_auth --echo` replicas sharing one key pair, and tokens for two
/// subjects of it: alice's and bob's.
fn auth_cluster(name: &str) -> (Cluster, String, String) {
    let keys = process::log_dir()
        .join("cluster")
        .join(format!("{name}-keys"));
    std::fs::create_dir_all(&keys).unwrap();
    let key = keys.join("private.pem");
    let public = keys.join("public.pem");
    let out = [
        ("--private-key-out", key.as_path()),
        ("--public-key-out", public.as_path()),
    ];
    let alice = jwt_tool(&["mint", "--subject", "alice"], &out);
    let bob = jwt_tool(&["sign", "--subject", "bob"], &[("--private-key", &key)]);
    let binary = Path::new(env!("CARGO_BIN_EXE_dice_server_auth"));
    let config = ClusterConfig::new(binary, REPLICAS)
        .name(name)
        .arg("--echo");
    let config = config.arg("--private-key-file").arg(key.to_string_lossy());
    (Cluster::start(config).unwrap(), alice, bob)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn a_streamable_session_belongs_to_its_subject_on_every_replica() {
    let (cluster, alice, bob) = auth_cluster("subject-streamable");
    let (alice, bob) = (Some(alice.as_str()), Some(bob.as_str()));
    let raw = RawClient::new();
    let mcp = cluster.replica_urls("/mcp");
    let session = raw.open_session(&cluster.lb_url("/mcp"), alice).await;
    for (id, url) in (1..).zip(&mcp) {
        let reply = raw.echo(url, &session, bob, id, &token("c-bob", id)).await;
        assert_eq!(
            reply.status,
            404,
            "bob with alice's session at {url}: {}",
            reply.describe()
        );
    }
    let reply = raw.delete(&mcp[1], &session, bob).await;
    assert_eq!(reply.status, 404, "bob's DELETE: {}", reply.describe());
    let reply = raw
        .echo(&mcp[0], &session, None, 9, &token("c-none", 9))
        .await;
    assert_eq!(reply.status, 401, "no token: {}", reply.describe());
    for (id, url) in (10..).zip(&mcp) {
        let token = token("c-alice", id);
        let reply = raw.echo(url, &session, alice, id, &token).await;
        assert_eq!(
            reply.echoed(),
            Some(token),
            "alice at {url}: {}",
            reply.describe()
        );
    }
    // Bob has sessions of his own.
    let bobs = raw.open_session(&cluster.lb_url("/mcp"), bob).await;
    let token_b = token("c-bob-own", 1);
    let reply = raw
        .echo(&cluster.lb_url("/mcp"), &bobs, bob, 1, &token_b)
        .await;
    assert_eq!(
        reply.echoed(),
        Some(token_b),
        "bob's own session: {}",
        reply.describe()
    );
}

/// Alice's legacy stream on replica 0: bob's POSTs to its endpoint are 404 on every replica,
/// alice's are accepted on every replica and answered on her stream.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn a_legacy_session_belongs_to_its_subject_on_every_replica() {
    let (cluster, alice, bob) = auth_cluster("subject-legacy");
    let (alice, bob) = (Some(alice.as_str()), Some(bob.as_str()));
    let raw = RawClient::new();
    let (mut stream, id) = raw
        .open_legacy(&cluster.replica_url(0, "/sse"), alice)
        .await;
    let endpoint = |i: usize| cluster.replica_url(i, &format!("/messages/?session_id={id}"));
    let reply = raw
        .post(&endpoint(1), None, alice, &raw::initialize_request(1))
        .await;
    assert_eq!(
        reply.status,
        202,
        "alice's initialize: {}",
        reply.describe()
    );
    stream.next_event(STREAM_WAIT).await;
    for i in 0..REPLICAS {
        let message = raw::echo_request(20, &token("c-bob-legacy", 20), None);
        let reply = raw.post(&endpoint(i), None, bob, &message).await;
        assert_eq!(
            reply.status,
            404,
            "bob on alice's endpoint, replica {i}: {}",
            reply.describe()
        );
    }
    for (id, i) in (30..).zip(0..REPLICAS) {
        let token = token("c-alice-legacy", id);
        let reply = raw
            .post(
                &endpoint(i),
                None,
                alice,
                &raw::echo_request(id, &token, None),
            )
            .await;
        assert_eq!(
            reply.status,
            202,
            "alice's echo on replica {i}: {}",
            reply.describe()
        );
        let answer = stream.next_json(STREAM_WAIT).await;
        assert_eq!(answer["id"], id, "{answer}");
        let echoed = &answer["result"]["structuredContent"]["result"];
        assert_eq!(echoed, token.as_str(), "the answer to {id}: {answer}");
    }
}

#[test]
#[ignore = "needs redis-server, nginx and the Python peers: cargo xtask replicas"]
fn python_mcp_and_fastmcp_clients_work_through_nginx() {
    let root = mcp_stack_tests::workspace_root();
    let python = root.join(".tools/py/bin/python");
    assert!(
        python.is_file(),
        "no {}: run `bash scripts/install-peers.sh py`",
        python.display()
    );
    let cluster = dice_cluster("replicas-python");
    let mut command = Command::new("timeout");
    command
        .args(["-k", "5", "120"])
        .arg(python)
        .arg(root.join("interop/replicas_clients.py"))
        .arg("--mcp-url")
        .arg(cluster.lb_url("/mcp"))
        .arg("--sse-url")
        .arg(cluster.lb_url("/sse"))
        .args(["--calls", "5"])
        .current_dir(&root);
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    assert!(!stderr.lines().any(|l| l.starts_with("FAIL: ")), "{stderr}");
    let mut lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let summary = lines.pop();
    assert_eq!(
        summary,
        Some(serde_json::json!({"clients": 7, "failed": 0})),
        "{stdout}"
    );
    assert_eq!(lines.len(), 7, "{stdout}");
    println!("python clients x (5 roll_dice + 5 echo): {lines:?}");
}

/// Sessions, calls and calls in flight of the load test.
const LOAD_SESSIONS: usize = 1000;
const LOAD_CALLS: u64 = 10_000;
const LOAD_CONCURRENCY: usize = 64;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn every_call_of_a_thousand_sessions_comes_back_once_to_its_caller() {
    let cluster = dice_cluster("replicas-load");
    let opened = Instant::now();
    let clients =
        calls::connect_all(&cluster.lb_url(""), &Kind::alternating(LOAD_SESSIONS), 32).await;
    let open_time = opened.elapsed();
    let owners = session_owners(&cluster, None);
    let tally = Arc::new(Tally::default());
    let permits = Arc::new(Semaphore::new(LOAD_CONCURRENCY));
    let started = Instant::now();
    let per_session = LOAD_CALLS / LOAD_SESSIONS as u64;
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, client)| {
            let (client, tally, permits) = (client.clone(), tally.clone(), permits.clone());
            tokio::spawn(async move {
                for n in 0..per_session {
                    let _permit = permits.acquire().await.unwrap();
                    if let Err(why) = tally.call(&client, &format!("a{i}"), n).await {
                        tally.record_lost(&why);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let rate = tally.calls() as f64 / started.elapsed().as_secs_f64();
    println!(
        "{LOAD_SESSIONS} sessions opened in {open_time:.1?}; {}; {rate:.0} calls/s with \
         {LOAD_CONCURRENCY} in flight; session owners: {owners:?}",
        tally.summary()
    );
    tally.assert_clean("calls through nginx");
    assert_eq!(tally.calls(), LOAD_CALLS);
    assert_eq!(
        owners.len(),
        REPLICAS,
        "sessions not spread over every replica: {owners:?}"
    );
}

/// How many live sessions of `kind` (`legacy`, `streamable`, or any) each replica owns, read
/// from Redis's session records.
fn session_owners(cluster: &Cluster, kind: Option<&str>) -> BTreeMap<String, usize> {
    let script = "local o = {} for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
                  local v = redis.call('HMGET', k, 'owner', 'kind') \
                  if v[1] and (ARGV[2] == '' or v[2] == ARGV[2]) then table.insert(o, v[1]) end \
                  end return o";
    let kind = kind.unwrap_or("");
    let args = ["--no-raw", "EVAL", script, "0", "mcp:session:*", kind];
    let mut counts = BTreeMap::new();
    // `--no-raw` prints `1) "replica-0"`.
    for owner in cluster
        .redis_cli(&args)
        .unwrap()
        .lines()
        .filter_map(|l| l.split('"').nth(1))
    {
        *counts.entry(owner.to_owned()).or_default() += 1;
    }
    counts
}

/// How many of the cluster's keys in Redis (`mcp:*`) never expire (no TTL).
fn keys_without_expiry(cluster: &Cluster) -> u64 {
    let script = "local forever = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
                  if redis.call('PTTL', k) == -1 then forever = forever + 1 end end return forever";
    let text = cluster.redis_cli(&["EVAL", script, "0", "mcp:*"]).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("redis-cli answered {text:?}"))
}

/// Sessions per transport and calls per session of the kill test.
const KILL_SESSIONS: usize = 30;
const KILL_CALLS: u64 = 40;

/// Makes `calls` calls in `client`'s session; a call that fails is retried (up to 3 attempts)
/// in a new session through the load balancer when its session is gone, in the same one
/// otherwise (502 from nginx for a call in flight on a killed replica). Counts the new
/// sessions in `reconnects`.
async fn call_with_retries(
    base: String,
    kind: Kind,
    mut client: Arc<McpClient>,
    calls: u64,
    done: Arc<AtomicU64>,
    (tally, reconnects): (Arc<Tally>, Arc<AtomicU64>),
) {
    let prefix = format!("d-{:016x}", rand::random::<u64>());
    for n in 0..calls {
        let token = token(&prefix, n);
        tally.count();
        for attempt in 1..=3 {
            match tally.attempt(&client, &token).await {
                Ok(()) => break,
                Err(why) if attempt == 3 => tally.record_lost(&why),
                Err(CallFailure::SessionGone(why)) => {
                    tally.example(format!("{kind:?} session reconnects: {why}"));
                    reconnects.fetch_add(1, Ordering::Relaxed);
                    client = Arc::new(calls::connect(&base, kind).await);
                }
                Err(why) => {
                    tally.example(format!("{kind:?} session retries: {why}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn a_killed_replica_costs_only_the_legacy_streams_it_held() {
    let mut cluster = dice_cluster("replicas-kill");
    let base = cluster.lb_url("");
    let kinds = Kind::alternating(2 * KILL_SESSIONS);
    let clients = calls::connect_all(&base, &kinds, 16).await;
    let done = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Tally::default());
    let reconnects = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let tasks: Vec<_> = kinds
        .iter()
        .zip(clients)
        .map(|(&kind, client)| {
            let counters = (
                tally.clone(),
                reconnects[usize::from(kind == Kind::Streamable)].clone(),
            );
            let calls = call_with_retries(
                base.clone(),
                kind,
                client,
                KILL_CALLS,
                done.clone(),
                counters,
            );
            tokio::spawn(calls)
        })
        .collect();
    // Replica 1 gets SIGKILL once a third of the calls are done; exactly the legacy sessions
    // whose stream it held must reconnect.
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < kinds.len() as u64 * KILL_CALLS / 3 {
        assert!(
            Instant::now() < deadline,
            "a third of the calls took over 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let legacy_owners = session_owners(&cluster, Some("legacy"));
    let on_victim = legacy_owners.get("replica-1").copied().unwrap_or(0) as u64;
    cluster.kill_replica(1).unwrap();
    // What the dead replica left in Redis (its sessions, its delivery stream) expires by itself.
    assert_eq!(
        keys_without_expiry(&cluster),
        0,
        "keys without a time to live"
    );
    for task in tasks {
        task.await.unwrap();
    }
    let [legacy, streamable] = reconnects.map(|n| n.load(Ordering::Relaxed));
    println!(
        "{}; reconnected: legacy {legacy} (streams on replica 1: {on_victim}, legacy owners \
         {legacy_owners:?}), streamable {streamable}",
        tally.summary()
    );
    tally.assert_clean("calls while replica 1 was killed");
    assert_eq!(streamable, 0, "a streamable session had to reconnect");
    assert!(legacy > 0, "no legacy stream was on the killed replica");
    assert_eq!(
        legacy, on_victim,
        "reconnected legacy sessions != streams on replica 1"
    );
}

/// Sessions of the Redis restart test, per transport.
const RESTART_SESSIONS: usize = 20;

/// Calls `echo` in every session in a loop until `stop`, ignoring the outcome: load while
/// Redis goes away and comes back, whose effects the checks after recovery would show.
fn background_calls(
    clients: &[Arc<McpClient>],
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let spawn = |(i, client): (usize, &Arc<McpClient>)| {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let _ = calls::echo(&client, &token(&format!("e{i}"), n)).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    clients.iter().enumerate().map(spawn).collect()
}

/// Every session makes one call, which must come back.
async fn every_session_answers(clients: &[Arc<McpClient>], what: &str) {
    let tally = Tally::default();
    for (n, client) in (0..).zip(clients) {
        if let Err(why) = tally.call(client, what, n).await {
            tally.record_lost(&why);
        }
    }
    tally.assert_clean(what);
}

/// With Redis stopped, a call in an existing session and a new `initialize` answer 503 with
/// a JSON-RPC error body (within 2 s of the stop).
async fn assert_unavailable(raw: &RawClient, url: &str, session: &str) {
    let mut reply = raw.echo(url, session, None, 500, "e-probe").await;
    for id in 501..520 {
        if reply.status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        reply = raw.echo(url, session, None, id, "e-probe").await;
    }
    assert_eq!(
        reply.status,
        503,
        "a call with Redis down: {}",
        reply.describe()
    );
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
    assert!(
        reply.message().is_some_and(|m| m.get("error").is_some()),
        "{}",
        reply.describe()
    );
    let reply = raw.post(url, None, None, &raw::initialize_request(1)).await;
    assert_eq!(
        reply.status,
        503,
        "initialize with Redis down: {}",
        reply.describe()
    );
}

/// How long after Redis came back the probe session answered again (at most 20 s).
async fn recovery_time(raw: &RawClient, url: &str, session: &str) -> Duration {
    let restarted = Instant::now();
    let token = token("e-probe", 1);
    loop {
        let reply = raw.echo(url, session, None, 900, &token).await;
        if reply.echoed().as_deref() == Some(token.as_str()) {
            return restarted.elapsed();
        }
        let waited = restarted.elapsed();
        assert!(
            waited < Duration::from_secs(20),
            "no recovery in 20 s: {}",
            reply.describe()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn service_resumes_after_a_redis_restart_without_replica_restarts() {
    let mut cluster = dice_cluster("replicas-redis-restart");
    let kinds = Kind::alternating(2 * RESTART_SESSIONS);
    let clients = calls::connect_all(&cluster.lb_url(""), &kinds, 8).await;
    let raw = RawClient::new();
    let lb = cluster.lb_url("/mcp");
    let probe = raw.open_session(&lb, None).await;
    every_session_answers(&clients, "before the stop").await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = background_calls(&clients, &stop);
    let replica_pids: Vec<_> = (0..REPLICAS).map(|i| cluster.replica_pid(i)).collect();

    cluster.stop_redis();
    assert_unavailable(&raw, &lb, &probe).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.start_redis().unwrap();
    let recovered = recovery_time(&raw, &lb, &probe).await;
    println!("the session of before answered {recovered:.1?} after the restart");

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    every_session_answers(&clients, "after recovery").await;
    cluster.ensure_running().unwrap();
    let pids_after: Vec<_> = (0..REPLICAS).map(|i| cluster.replica_pid(i)).collect();
    assert_eq!(pids_after, replica_pids, "a replica was restarted");
}
