//! Scenario g/tasks: tool calls run as tasks (2026-07-28 `io.modelcontextprotocol/tasks`)
//! across replicas sharing their task records in Redis.
//!
//! It runs on a cluster of its own: `dice_server --slow --keep-alive-ms 2000`.
//!
//! - A task started through nginx (`roll_dice_slowly`, 2 s) is read to completion through
//!   every replica's own URL: each reports the same completed result.
//! - A long task (60 s) is started through nginx; the replica running it (its `owner` in
//!   Redis) gets SIGKILL; read through another replica, the task is still `working` at
//!   first, then `failed` with the dead replica named once its heartbeat lease ran out. The
//!   time from the kill to the failure being reported is the scenario's figure.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mcp_proto::ProtocolVersion;
use mcp_proto::task::{DetailedTask, TaskStatus};
use mcp_sse::client::{McpClient, ToolCallStart};
use serde_json::{Value, json};

use super::{Outcome, REPLICAS, finish};
use crate::cluster::{Cluster, ClusterConfig};

/// The keep-alive tick this scenario's replicas run with (`--keep-alive-ms`); their
/// heartbeat lease is three ticks.
const KEEP_ALIVE_MS: u64 = 2000;

/// Starts a cluster of `dice_server --slow --keep-alive-ms 2000` of its own (a short lease,
/// without changing the shared cluster's keep-alive) and runs the scenario on it.
pub(super) async fn run(dice_server: &std::path::Path) -> anyhow::Result<Outcome> {
    let config = ClusterConfig::new(dice_server, REPLICAS)
        .name("replicas-tasks")
        .args(["--slow", "--keep-alive-ms"])
        .arg(KEEP_ALIVE_MS.to_string());
    println!("replicas: starting redis-server, {REPLICAS} dice_server --slow replicas and nginx");
    let mut cluster = Cluster::start(config)?;
    let outcome = tasks_across_replicas(&mut cluster).await;
    if outcome.as_ref().map_or(true, |o| !o.passed) {
        cluster.print_logs();
    }
    outcome
}

async fn client(url: &str) -> anyhow::Result<McpClient> {
    McpClient::builder(url)
        .protocol_version(ProtocolVersion::V2026_07_28)
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))
}

async fn start(client: &McpClient, seconds: u32) -> anyhow::Result<DetailedTask> {
    let args = json!({"n_dice": 3, "seconds": seconds});
    match client.start_tool_task("roll_dice_slowly", args).await? {
        ToolCallStart::Task(task) => Ok(task),
        other => bail!("roll_dice_slowly did not start a task: {other:?}"),
    }
}

/// Polls `task_id` through `client` until its status is not `working`, for at most `limit`.
async fn until_not_working(
    client: &McpClient,
    task_id: &str,
    limit: Duration,
) -> anyhow::Result<DetailedTask> {
    let deadline = Instant::now() + limit;
    loop {
        let task = client.get_task(task_id).await?;
        if task.status != TaskStatus::Working || Instant::now() >= deadline {
            return Ok(task);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the scenario.
async fn tasks_across_replicas(cluster: &mut Cluster) -> anyhow::Result<Outcome> {
    let mut notes = Vec::new();
    let mut failures = Vec::new();
    let lb = client(&cluster.lb_url("/mcp")).await?;
    let mut replicas = Vec::new();
    for url in cluster.replica_urls("/mcp") {
        replicas.push(client(&url).await?);
    }

    // A task on a live replica, read to completion through every replica.
    let task = start(&lb, 2).await?;
    let mut results: Vec<Value> = Vec::new();
    for (i, replica) in replicas.iter().enumerate() {
        let done = until_not_working(replica, &task.task_id, Duration::from_secs(20)).await?;
        if done.status != TaskStatus::Completed {
            failures.push(format!(
                "replica {i} reports the live task {:?}",
                done.status
            ));
        }
        results.push(done.result.unwrap_or_default());
    }
    let rolls = &results[0]["structuredContent"]["result"];
    if rolls.as_array().map_or(0, Vec::len) != 3 || results.iter().any(|r| r != &results[0]) {
        failures.push(format!("the replicas disagree on the result: {results:?}"));
    }
    notes.push(format!(
        "live task completed, read through {} replicas: {rolls}",
        replicas.len()
    ));

    // A task whose replica dies.
    let task = start(&lb, 60).await?;
    let record = cluster.redis_cli(&["GET", &format!("mcp:task:{}", task.task_id)])?;
    let owner = serde_json::from_str::<Value>(record.trim())
        .ok()
        .and_then(|r| r["owner"].as_str().map(str::to_owned))
        .with_context(|| format!("no owner in the task record {record:?}"))?;
    let victim = (0..cluster.replica_count())
        .find(|&i| cluster.replica_id(i) == Some(owner.as_str()))
        .with_context(|| format!("no replica has the id {owner}"))?;
    let reader = (victim + 1) % cluster.replica_count();
    cluster.kill_replica(victim)?;
    let killed = Instant::now();
    let right_after = replicas[reader].get_task(&task.task_id).await?;
    let lease = Duration::from_millis(3 * KEEP_ALIVE_MS);
    let failed = until_not_working(
        &replicas[reader],
        &task.task_id,
        lease + Duration::from_secs(10),
    )
    .await?;
    let took = killed.elapsed();
    notes.push(format!(
        "replica {victim} killed mid-task: read through replica {reader}, {:?} at once, {:?} after {:.1} s (lease {} s)",
        right_after.status,
        failed.status,
        took.as_secs_f64(),
        lease.as_secs()
    ));
    if failed.status != TaskStatus::Failed {
        failures.push(format!(
            "the dead replica's task is {:?}, not failed",
            failed.status
        ));
    }
    let message = failed.error.map(|e| e.message).unwrap_or_default();
    if !message.contains(&format!("({owner}) stopped")) {
        failures.push(format!(
            "the failure does not name the dead replica: {message:?}"
        ));
    }
    if took > lease + Duration::from_secs(2) {
        failures.push(format!(
            "failure reported after {took:?}, over the lease ({lease:?}) + 2 s"
        ));
    }
    Ok(finish("g/tasks", notes, failures))
}
