//! Tasks (2026-07-28 `io.modelcontextprotocol/tasks`) on replicas sharing one Redis: several
//! `mcp-sse` servers in this process, each its own replica, on real sockets and a real
//! `redis-server`. Each request picks its replica explicitly.

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

/// Records the instant it is dropped.
struct DropClock(Dropped);

impl Drop for DropClock {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

fn service(dropped: &Dropped) -> McpServer {
    let dropped = Arc::clone(dropped);
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
        .build()
        .unwrap()
}

struct Replica {
    url: String,
    _task: tokio::task::JoinHandle<()>,
}

async fn replicas(redis: &TestRedis, n: usize, dropped: &Dropped) -> Vec<Replica> {
    let config = ServerConfig {
        keep_alive: Duration::from_millis(200),
        tasks: TaskLimits::default(),
        ..ServerConfig::default()
    };
    let mut out = Vec::new();
    for i in 0..n {
        let store = Arc::new(
            RedisStore::connect(
                RedisConfig::new(redis.url())
                    .replica_id(format!("replica-{i}"))
                    .op_timeout(Duration::from_millis(500)),
            )
            .await
            .unwrap(),
        );
        let shared: Arc<dyn SharedStore> = store.clone();
        let server = McpHttpServer::with_config(service(dropped), config.clone())
            .session_store(shared)
            .task_store(store);
        let app = server.router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        out.push(Replica { url, _task: task });
    }
    out
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
    assert_eq!(states.following(), [id.clone()]);
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
