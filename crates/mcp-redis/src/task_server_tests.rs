//! Tasks (2026-07-28 `io.modelcontextprotocol/tasks`) on replicas sharing one Redis: several
//! `mcp-sse` servers in this process, each its own replica, on real sockets and a real
//! `redis-server`. Each request picks its replica explicitly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_proto::task::{TaskLimits, TaskStatus};
use mcp_proto::{McpServer, NoArgs, ProtocolVersion, TaskSupport, ToolDef, ToolError};
use mcp_sse::client::{McpClient, ToolCallStart};
use mcp_sse::store::SharedStore;
use mcp_sse::{McpHttpServer, ServerConfig};

use crate::test_redis::TestRedis;
use crate::{RedisConfig, RedisStore};

/// When the handler of `hold` was dropped (the task was stopped), per test.
type Dropped = Arc<Mutex<Option<Instant>>>;

/// How many times `roll_again` started, per test.
type Runs = Arc<AtomicUsize>;

/// Records the instant it is dropped.
struct DropClock(Dropped);

impl Drop for DropClock {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

fn service(dropped: &Dropped, runs: &Runs) -> McpServer {
    let dropped = Arc::clone(dropped);
    let runs = Arc::clone(runs);
    let optional = |name: &str| ToolDef::new(name, "t").task_support(TaskSupport::Optional);
    McpServer::builder("task-replicas")
        .tool_with(optional("hold"), move |_: NoArgs| {
            let clock = DropClock(Arc::clone(&dropped));
            async move {
                let _clock = clock;
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<_, ToolError>("held")
            }
        })
        .tool_with(optional("nap"), |_: NoArgs| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, ToolError>("napped")
        })
        .tool_with(optional("roll_again").restartable(), move |_: NoArgs| {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, ToolError>(format!("run {run}"))
            }
        })
        .build()
        .unwrap()
}

struct Replica {
    url: String,
    _task: tokio::task::JoinHandle<()>,
}

/// The replicas' keep-alive tick; a replica counts as dead three ticks after its last one.
const TICK: Duration = Duration::from_millis(200);

/// Starts replica `name` on the current runtime: its URL.
async fn serve_replica(
    redis_url: String,
    name: String,
    dropped: Dropped,
    runs: Runs,
) -> (String, tokio::task::JoinHandle<()>) {
    let config = ServerConfig {
        keep_alive: TICK,
        tasks: TaskLimits::default(),
        ..ServerConfig::default()
    };
    let store = Arc::new(
        RedisStore::connect(
            RedisConfig::new(redis_url)
                .replica_id(name)
                .op_timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap(),
    );
    let shared: Arc<dyn SharedStore> = store.clone();
    let server = McpHttpServer::with_config(service(&dropped, &runs), config)
        .session_store(shared)
        .task_store(store);
    let app = server.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

async fn replicas(redis: &TestRedis, n: usize, dropped: &Dropped) -> Vec<Replica> {
    let mut out = Vec::new();
    for i in 0..n {
        let (url, task) = serve_replica(
            redis.url(),
            format!("replica-{i}"),
            Arc::clone(dropped),
            Runs::default(),
        )
        .await;
        out.push(Replica { url, _task: task });
    }
    out
}

/// A replica on a runtime of its own, so that it can stop at once, as if killed: its
/// heartbeat, its connections and the tasks it runs vanish without a word.
struct Doomed {
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Doomed {
    fn start(redis: &TestRedis, name: &str, runs: &Runs) -> Self {
        let (redis_url, name, runs) = (redis.url(), name.to_owned(), Arc::clone(runs));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let (url, _) =
                runtime.block_on(serve_replica(redis_url, name, Dropped::default(), runs));
            Self {
                url,
                runtime: Some(runtime),
            }
        })
        .join()
        .unwrap()
    }

    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn client(url: &str) -> McpClient {
    McpClient::builder(url)
        .protocol_version(ProtocolVersion::V2026_07_28)
        .connect()
        .await
        .unwrap()
}

async fn start(client: &McpClient, tool: &str) -> String {
    match client
        .start_tool_task(tool, serde_json::json!({}))
        .await
        .unwrap()
    {
        ToolCallStart::Task(t) => t.task_id,
        other => panic!("not a task: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_replica_stops_the_task_running_on_another_at_once() {
    let redis = TestRedis::start();
    let dropped: Dropped = Arc::default();
    let r = replicas(&redis, 2, &dropped).await;
    let (a, b) = (client(&r[0].url).await, client(&r[1].url).await);
    let mut latencies = Vec::new();
    for i in 0..7 {
        *dropped.lock().unwrap() = None;
        let id = start(&a, "hold").await;
        // Spread over a poll period, so a poll-based stop would show its average.
        tokio::time::sleep(Duration::from_millis(150 + i * 17)).await;
        let sent = Instant::now();
        b.cancel_task(&id).await.unwrap();
        let stopped = loop {
            if let Some(at) = *dropped.lock().unwrap() {
                break at;
            }
            assert!(sent.elapsed() < Duration::from_secs(5), "never stopped");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        latencies.push(stopped.saturating_duration_since(sent));
        assert_eq!(a.get_task(&id).await.unwrap().status, TaskStatus::Cancelled);
    }
    latencies.sort();
    eprintln!("cross-replica cancel latency (sent → handler dropped): {latencies:?}");
    let median = latencies[latencies.len() / 2];
    assert!(median < Duration::from_millis(50), "{latencies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_on_one_replica_gets_the_states_of_a_task_running_on_another() {
    let redis = TestRedis::start();
    let dropped: Dropped = Arc::default();
    let r = replicas(&redis, 2, &dropped).await;
    let (a, b) = (client(&r[0].url).await, client(&r[1].url).await);
    let id = start(&a, "nap").await;
    let mut states = b.listen_tasks(&[&id]).await.unwrap();
    assert_eq!(states.following(), std::slice::from_ref(&id));
    assert_eq!(
        states.next().await.unwrap().unwrap().status,
        TaskStatus::Working
    );
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), states.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(end.status, TaskStatus::Completed);
    assert_eq!(end.result.unwrap()["content"][0]["text"], "napped");
    // Pushed, not found by the 1 s fallback look.
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    // A wait through replica b ends as soon as the task does on replica a.
    let id = start(&a, "nap").await;
    let started = Instant::now();
    let done = b.wait_task(&id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(done.content[0], mcp_proto::ContentBlock::text("napped"));
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replicas_restartable_task_is_run_again_by_exactly_one_survivor() {
    let redis = TestRedis::start();
    let runs = Runs::default();
    let mut doomed = Doomed::start(&redis, "replica-0", &runs);
    let mut survivors = Vec::new();
    for name in ["replica-1", "replica-2"] {
        survivors.push(
            serve_replica(
                redis.url(),
                name.into(),
                Dropped::default(),
                Arc::clone(&runs),
            )
            .await,
        );
    }
    let reader = client(&survivors[0].0).await;
    let id = start(&client(&doomed.url).await, "roll_again").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    doomed.kill();
    let killed = Instant::now();
    // Read through a survivor: working (never failed) until another replica took it over.
    let restarted = loop {
        let task = reader.get_task(&id).await.unwrap();
        assert_eq!(task.status, TaskStatus::Working, "{task:?}");
        if task.status_message.is_some() {
            break task;
        }
        assert!(killed.elapsed() < Duration::from_secs(5), "never restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = killed.elapsed();
    let message = restarted.status_message.unwrap();
    assert!(
        [1, 2].iter().any(|i| message
            == format!("restarted on replica-{i}: the replica running it (replica-0) stopped")),
        "{message}"
    );
    let done = reader
        .wait_task(&id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.content[0], mcp_proto::ContentBlock::text("run 2"));
    // Both survivors kept looking: the task ran once more, not twice.
    let completed = killed.elapsed();
    tokio::time::sleep(3 * TICK).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    eprintln!(
        "restart after replica death: taken over {} ms after the kill (lease {} ms, tick {} ms), \
         completed {} ms after it (the tool takes 1000 ms)",
        took.as_millis(),
        (3 * TICK).as_millis(),
        TICK.as_millis(),
        completed.as_millis()
    );
    // The lease (3 ticks) and at most one tick, with room for a loaded machine.
    assert!(took < 10 * TICK, "{took:?}");
}
