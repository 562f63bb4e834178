//! Tool calls run as tasks (2026-07-28 `io.modelcontextprotocol/tasks`) across three
//! `dice_server --slow --keep-alive-ms 2000` replicas sharing their task records in Redis,
//! behind nginx.
//!
//! - A task started through nginx (`roll_dice_slowly`, 2 s) is read to completion through
//!   every replica's own URL: each reports the same completed result.
//! - A long task (60 s) is started through nginx; the replica running it (its `owner` in
//!   Redis) gets SIGKILL; read through another replica, the task is still `working` at first,
//!   then `failed`, naming the dead replica, once its heartbeat lease (three keep-alive ticks)
//!   ran out. The time from the kill to the report is printed.
//! - A task of a restartable tool (`roll_dice_durably`, 4 s) is started through nginx; its
//!   replica gets SIGKILL; read through a survivor it stays `working` until one of the two
//!   survivors takes it over (once: its record shows one restart used) and runs it again, then
//!   `completed` with three dice. The times from the kill to the take-over and to the result
//!   are printed.

use std::path::Path;
use std::time::{Duration, Instant};

use mcp_proto::ProtocolVersion;
use mcp_proto::task::{DetailedTask, TaskStatus};
use mcp_sse::client::{McpClient, ToolCallStart};
use mcp_stack_tests::cluster::{Cluster, ClusterConfig};
use serde_json::{Value, json};

use super::REPLICAS;

/// The replicas' keep-alive tick; their heartbeat lease is three ticks.
const KEEP_ALIVE_MS: u64 = 2000;

async fn client(url: &str) -> McpClient {
    McpClient::builder(url)
        .protocol_version(ProtocolVersion::V2026_07_28)
        .connect()
        .await
        .unwrap()
}

async fn start(client: &McpClient, seconds: u32) -> DetailedTask {
    start_tool(client, "roll_dice_slowly", seconds).await
}

async fn start_tool(client: &McpClient, tool: &str, seconds: u32) -> DetailedTask {
    let args = json!({"n_dice": 3, "seconds": seconds});
    match client.start_tool_task(tool, args).await.unwrap() {
        ToolCallStart::Task(task) => task,
        other => panic!("{tool} did not start a task: {other:?}"),
    }
}

/// The task's record in Redis.
fn stored(cluster: &Cluster, task_id: &str) -> Value {
    let record = cluster
        .redis_cli(&["GET", &format!("mcp:task:{task_id}")])
        .unwrap();
    serde_json::from_str(record.trim()).unwrap()
}

/// Which replica runs the task (its index), by the task's `owner` in Redis.
fn owner_of(cluster: &Cluster, task_id: &str) -> usize {
    let owner = stored(cluster, task_id)["owner"]
        .as_str()
        .unwrap()
        .to_owned();
    (0..REPLICAS)
        .find(|i| owner == format!("replica-{i}"))
        .unwrap_or_else(|| panic!("no replica has the id {owner}"))
}

/// Polls `task_id` through `client` until it is not `working`, for at most `limit`.
async fn until_not_working(client: &McpClient, task_id: &str, limit: Duration) -> DetailedTask {
    let deadline = Instant::now() + limit;
    loop {
        let task = client.get_task(task_id).await.unwrap();
        if task.status != TaskStatus::Working || Instant::now() >= deadline {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn tasks_are_read_through_any_replica_and_a_dead_replicas_task_fails_within_its_lease() {
    let config = ClusterConfig::new(Path::new(env!("CARGO_BIN_EXE_dice_server")), REPLICAS)
        .name("tasks")
        .args(["--slow", "--keep-alive-ms"])
        .arg(KEEP_ALIVE_MS.to_string());
    let mut cluster = Cluster::start(config).unwrap();
    let lb = client(&cluster.lb_url("/mcp")).await;
    let mut replicas = Vec::new();
    for url in cluster.replica_urls("/mcp") {
        replicas.push(client(&url).await);
    }

    // A task on a live replica, read to completion through every replica.
    let task = start(&lb, 2).await;
    let mut results: Vec<Value> = Vec::new();
    for (i, replica) in replicas.iter().enumerate() {
        let done = until_not_working(replica, &task.task_id, Duration::from_secs(20)).await;
        assert_eq!(done.status, TaskStatus::Completed, "through replica {i}");
        results.push(done.result.unwrap_or_default());
    }
    let rolls = results[0]["structuredContent"]["result"].clone();
    assert_eq!(rolls.as_array().map_or(0, Vec::len), 3, "{results:?}");
    assert!(results.iter().all(|r| r == &results[0]), "{results:?}");

    // A task whose replica dies.
    let task = start(&lb, 60).await;
    let victim = owner_of(&cluster, &task.task_id);
    let owner = format!("replica-{victim}");
    let reader = (victim + 1) % REPLICAS;
    cluster.kill_replica(victim).unwrap();
    let killed = Instant::now();
    let right_after = replicas[reader].get_task(&task.task_id).await.unwrap();
    let lease = Duration::from_millis(3 * KEEP_ALIVE_MS);
    let failed = until_not_working(
        &replicas[reader],
        &task.task_id,
        lease + Duration::from_secs(10),
    )
    .await;
    let took = killed.elapsed();
    println!(
        "tasks: live task read to completion through {REPLICAS} replicas ({rolls}); replica {victim} \
         killed mid-task: through replica {reader} {:?} at once, {:?} after {:.1} s (lease {} s)",
        right_after.status,
        failed.status,
        took.as_secs_f64(),
        lease.as_secs()
    );
    if failed.status != TaskStatus::Failed {
        cluster.print_logs();
    }
    assert_eq!(right_after.status, TaskStatus::Working);
    assert_eq!(failed.status, TaskStatus::Failed);
    let error = failed.error.unwrap();
    assert_eq!(error.code, -32603);
    assert_eq!(
        error.message,
        format!(
            "Internal error: the replica running this task ({owner}) stopped: its heartbeat lease ran out"
        )
    );
    assert!(
        took < lease + Duration::from_secs(2),
        "reported after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs redis-server and nginx: cargo xtask replicas"]
async fn a_dead_replicas_restartable_task_runs_again_on_one_survivor_to_its_result() {
    let config = ClusterConfig::new(Path::new(env!("CARGO_BIN_EXE_dice_server")), REPLICAS)
        .name("tasks-restart")
        .args(["--slow", "--keep-alive-ms"])
        .arg(KEEP_ALIVE_MS.to_string());
    let mut cluster = Cluster::start(config).unwrap();
    let lb = client(&cluster.lb_url("/mcp")).await;
    let task = start_tool(&lb, "roll_dice_durably", 4).await;
    let victim = owner_of(&cluster, &task.task_id);
    let reader_index = (victim + 1) % REPLICAS;
    let reader = client(&cluster.replica_url(reader_index, "/mcp")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill_replica(victim).unwrap();
    let killed = Instant::now();
    let lease = Duration::from_millis(3 * KEEP_ALIVE_MS);
    // Working throughout (never failed) until a survivor takes it over.
    let taken_over = loop {
        let seen = reader.get_task(&task.task_id).await.unwrap();
        if seen.status != TaskStatus::Working || seen.status_message.is_some() {
            break seen;
        }
        assert!(
            killed.elapsed() < lease + Duration::from_secs(10),
            "not taken over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = killed.elapsed();
    if taken_over.status != TaskStatus::Working {
        cluster.print_logs();
    }
    assert_eq!(taken_over.status, TaskStatus::Working, "{taken_over:?}");
    let new_owner = owner_of(&cluster, &task.task_id);
    assert_ne!(new_owner, victim);
    assert_eq!(
        taken_over.status_message.as_deref(),
        Some(
            format!(
                "restarted on replica-{new_owner}: the replica running it (replica-{victim}) stopped"
            )
            .as_str()
        )
    );
    // One take-over: one of the three restarts used.
    assert_eq!(
        stored(&cluster, &task.task_id)["restart"]["restartsLeft"],
        2
    );
    let done = until_not_working(&reader, &task.task_id, Duration::from_secs(20)).await;
    let completed = killed.elapsed();
    assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    let rolls = done.result.unwrap_or_default()["structuredContent"]["result"].clone();
    assert_eq!(rolls.as_array().map_or(0, Vec::len), 3, "{rolls}");
    assert_eq!(
        stored(&cluster, &task.task_id)["restart"]["restartsLeft"],
        2
    );
    println!(
        "tasks: replica {victim} killed mid-task (roll_dice_durably, 4 s): taken over by replica \
         {new_owner} {:.1} s after the kill (lease {} s), completed ({rolls}) {:.1} s after it, \
         read through replica {reader_index}",
        took.as_secs_f64(),
        lease.as_secs(),
        completed.as_secs_f64()
    );
    assert!(
        took < lease + Duration::from_secs(2 * KEEP_ALIVE_MS / 1000 + 1),
        "{took:?}"
    );
}
