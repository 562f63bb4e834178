//! Task records in Redis (2026-07-28 `io.modelcontextprotocol/tasks`), so that any replica
//! answers `tasks/get`, `tasks/update` and `tasks/cancel` for any task.
//!
//! - `mcp:task:<id>`: the record as JSON, expiring when the record says
//!   ([`TaskRecord::expires_at_ms`]).
//! - `mcp:tasks:subject:<subject>`: the ids of a subject's tasks, for its limit of unfinished
//!   tasks (ended and expired ones are pruned when it creates one).
//!
//! A change is a compare-and-set: read, change in Rust, write if the record is still what was
//! read (else read again). The write announces the change on the broadcast stream every
//! replica reads, in the same script: a replica waiting for the task (a cancellation, an
//! answer, a listener) wakes within a round trip, wherever the change was made. Reading an unfinished task checks its replica's heartbeat in
//! `mcp:replicas`: when the lease ran out, the replica is taken for dead and the task is
//! recorded as failed, so a task never stays "working" after its replica died; the failure is
//! reported at most one heartbeat lease (three keep-alive ticks) after the last heartbeat.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use mcp_proto::BoxFuture;
use mcp_proto::jsonrpc::ErrorObject;
use mcp_proto::task::{TaskChange, TaskError, TaskEvent, TaskRecord, TaskStore, now_ms};
use redis::Value;
use tokio::sync::oneshot;

use super::{RedisStore, text};
use crate::scripts::LuaScript;

/// KEYS[1] task key, KEYS[2] the subject's task set, KEYS[3] the index of restartable tasks.
/// ARGV: record JSON, expiry (ms since the epoch), most unfinished tasks, task key prefix,
/// task id, set TTL ms, 1 when the task may be restarted. Returns 1 created, 0 over the
/// limit, -1 the id exists.
const CREATE: &str = r"
local active = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local raw = redis.call('GET', ARGV[4] .. id)
  local live = false
  if raw then
    local t = cjson.decode(raw)
    live = t.status == 'working' or t.status == 'input_required'
  end
  if live then active = active + 1 else redis.call('SREM', KEYS[2], id) end
end
if active >= tonumber(ARGV[3]) then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[2]) then return -1 end
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if ARGV[7] == '1' then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5]) end
return 1
";

/// KEYS[1] task key, KEYS[2] the live replicas. Returns nil, or {record JSON, 1 when its
/// replica's heartbeat is current or it needs none, else 0}.
const GET: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local t = cjson.decode(raw)
local alive = 1
if (t.status == 'working' or t.status == 'input_required') and type(t.owner) == 'string' then
  local score = redis.call('ZSCORE', KEYS[2], t.owner)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  if (not score) or tonumber(score) < now then alive = 0 end
end
return {raw, alive}
";

/// KEYS[1] task key, KEYS[2] the broadcast stream every replica reads, KEYS[3] the index of
/// restartable tasks. ARGV: the JSON read, the new JSON, its expiry (ms since the epoch), the
/// task id, the stream's bound, its TTL ms, 1 when the task ended. Returns 1 written (and the
/// change announced to every replica), 0 changed meanwhile, -1 gone.
const SWAP: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw then return -1 end
if raw ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 't', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if ARGV[7] == '1' then redis.call('ZREM', KEYS[3], ARGV[4]) end
return 1
";

/// KEYS[1] the index of restartable tasks (ids scored by expiry), KEYS[2] the live replicas.
/// ARGV: task key prefix, most records returned. Returns the records of unfinished indexed
/// tasks whose replica's heartbeat ran out; drops expired and ended tasks from the index.
const ORPHANS: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, 999)) do
  local raw = redis.call('GET', ARGV[1] .. id)
  if not raw then
    redis.call('ZREM', KEYS[1], id)
  else
    local t = cjson.decode(raw)
    if t.status ~= 'working' and t.status ~= 'input_required' then
      redis.call('ZREM', KEYS[1], id)
    elseif type(t.owner) == 'string' then
      local score = redis.call('ZSCORE', KEYS[2], t.owner)
      if (not score) or tonumber(score) < now then table.insert(out, raw) end
    end
  end
  if #out >= tonumber(ARGV[2]) then break end
end
return out
";

/// KEYS[1] a subject's task set. ARGV: task key prefix, most records returned. Returns the
/// records of the subject's tasks that still exist (the others leave the set).
const LIST: &str = r"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local raw = redis.call('GET', ARGV[1] .. id)
  if raw then table.insert(out, raw) else redis.call('SREM', KEYS[1], id) end
  if #out >= tonumber(ARGV[2]) then break end
end
return out
";

struct TaskScripts {
    create: LuaScript,
    get: LuaScript,
    swap: LuaScript,
    orphans: LuaScript,
    list: LuaScript,
}

static SCRIPTS: LazyLock<TaskScripts> = LazyLock::new(|| TaskScripts {
    create: LuaScript::new("task_create", CREATE),
    get: LuaScript::new("task_get", GET),
    swap: LuaScript::new("task_swap", SWAP),
    orphans: LuaScript::new("task_orphans", ORPHANS),
    list: LuaScript::new("task_list", LIST),
});

/// Most compare-and-set attempts of one change before giving up.
const MAX_ATTEMPTS: usize = 16;

/// How often a waiting task looks again when this replica does not read the broadcast
/// stream (its deliveries are not subscribed), so no change is announced to it.
const WATCH_POLL: Duration = Duration::from_millis(100);

/// How often a waiting task looks again although no change was announced: the fallback for
/// an announcement lost while Redis was away. Changes are announced to every replica as they
/// are written (the broadcast stream), so a watcher normally wakes within a round trip.
const WATCH_FALLBACK: Duration = Duration::from_secs(1);

/// The tasks waited for on this replica, woken when a change of theirs is announced.
#[derive(Debug, Default)]
pub(crate) struct TaskWatchers {
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
}

impl TaskWatchers {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<()>>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves at the next announced change of task `id` (or when the store is dropped).
    fn watch(&self, id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.lock();
        let list = waiting.entry(id.to_owned()).or_default();
        // Watchers whose futures are gone go first, so a long wait cannot grow the list.
        list.retain(|w| !w.is_closed());
        list.push(tx);
        rx
    }

    /// Wakes every watcher of task `id`.
    pub(crate) fn wake(&self, id: &str) {
        for w in self.lock().remove(id).unwrap_or_default() {
            let _ = w.send(());
        }
    }

    /// How many tasks are waited for.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

fn unavailable(e: impl std::fmt::Display) -> TaskError {
    TaskError::Unavailable(e.to_string())
}

fn encode(record: &TaskRecord) -> Result<String, TaskError> {
    serde_json::to_string(record).map_err(unavailable)
}

fn decode(raw: &str) -> Result<TaskRecord, TaskError> {
    serde_json::from_str(raw).map_err(|e| unavailable(format!("malformed task record: {e}")))
}

/// The failure recorded for a task whose replica stopped.
fn replica_died(owner: &str) -> TaskEvent {
    TaskEvent::Fail(ErrorObject::internal(format!(
        "the replica running this task ({owner}) stopped: its heartbeat lease ran out"
    )))
}

impl RedisStore {
    fn task_key(&self, id: &str) -> String {
        format!("{}:task:{id}", self.config.key_prefix)
    }

    fn restartable_key(&self) -> String {
        format!("{}:tasks:restartable", self.config.key_prefix)
    }

    fn task_subject_key(&self, subject: Option<&str>) -> String {
        format!(
            "{}:tasks:subject:{}",
            self.config.key_prefix,
            subject.unwrap_or("")
        )
    }

    async fn create_task(&self, record: TaskRecord, max_active: usize) -> Result<(), TaskError> {
        let json = encode(&record)?;
        let key = self.task_key(&record.task_id);
        let set = self.task_subject_key(record.subject.as_deref());
        let prefix = format!("{}:task:", self.config.key_prefix);
        let set_ttl = record.ttl_ms.saturating_add(record.run_limit_ms).max(1);
        let restartable = if record.restart.is_some() { "1" } else { "0" };
        let answer = self
            .eval(
                &SCRIPTS.create,
                &[&key, &set, &self.restartable_key()],
                &[
                    &json,
                    &record.expires_at_ms().to_string(),
                    &max_active.to_string(),
                    &prefix,
                    &record.task_id,
                    &set_ttl.to_string(),
                    restartable,
                ],
            )
            .await
            .map_err(unavailable)?;
        match answer {
            Value::Int(1) => Ok(()),
            Value::Int(0) => Err(TaskError::TooManyTasks { limit: max_active }),
            other => Err(unavailable(format!(
                "task {} not created: {other:?}",
                record.task_id
            ))),
        }
    }

    /// The record as stored (its JSON) and whether its replica still lives.
    async fn read_task(&self, id: &str) -> Result<Option<(String, bool)>, TaskError> {
        let key = self.task_key(id);
        let answer = self
            .eval(&SCRIPTS.get, &[&key, &self.replicas_key], &[])
            .await
            .map_err(unavailable)?;
        match answer {
            Value::Nil => Ok(None),
            Value::Array(items) if items.len() == 2 => {
                let raw = text(&items[0]).ok_or_else(|| unavailable("malformed task answer"))?;
                Ok(Some((raw, !matches!(items[1], Value::Int(0)))))
            }
            other => Err(unavailable(format!("unexpected task answer: {other:?}"))),
        }
    }

    /// Applies `change` with compare-and-set; `None` when the task is gone.
    async fn swap_task(
        &self,
        id: &str,
        change: TaskChange<'_>,
    ) -> Result<Option<TaskRecord>, TaskError> {
        let key = self.task_key(id);
        for _ in 0..MAX_ATTEMPTS {
            let Some((raw, _)) = self.read_task(id).await? else {
                return Ok(None);
            };
            let mut record = decode(&raw)?;
            change(&mut record)?;
            let json = encode(&record)?;
            let expiry = record.expires_at_ms().to_string();
            let ended = if record.status.is_terminal() {
                "1"
            } else {
                "0"
            };
            let answer = self
                .eval(
                    &SCRIPTS.swap,
                    &[&key, &self.broadcast_key, &self.restartable_key()],
                    &[
                        &raw,
                        &json,
                        &expiry,
                        id,
                        super::BROADCAST_MAX,
                        &self.delivery_ttl_ms,
                        ended,
                    ],
                )
                .await
                .map_err(unavailable)?;
            match answer {
                Value::Int(1) => {
                    self.task_watchers.wake(id);
                    return Ok(Some(record));
                }
                Value::Int(-1) => return Ok(None),
                _ => continue,
            }
        }
        Err(unavailable(format!(
            "task {id} kept changing; gave up after {MAX_ATTEMPTS} attempts"
        )))
    }

    async fn get_task(
        &self,
        id: &str,
        subject: Option<&str>,
    ) -> Result<Option<TaskRecord>, TaskError> {
        let Some((raw, alive)) = self.read_task(id).await? else {
            return Ok(None);
        };
        let record = decode(&raw)?;
        if record.subject.as_deref() != subject {
            return Ok(None);
        }
        if alive {
            return Ok(Some(record));
        }
        if record.restarts_on_replica_loss() {
            // Another replica takes it over on its next keep-alive tick (`orphans`).
            return Ok(Some(record));
        }
        self.fail_orphan(record).await
    }

    /// Records that the task's replica died (unless it ended meanwhile or another replica
    /// took it over).
    async fn fail_orphan(&self, record: TaskRecord) -> Result<Option<TaskRecord>, TaskError> {
        let id = record.task_id.as_str();
        let owner = record.owner.clone().unwrap_or_default();
        tracing::warn!(task = %id, replica = %owner, "the replica running a task stopped; the task failed");
        let died = replica_died(&owner);
        // Another reader may have recorded it first, or the task may have just ended: both
        // leave the record as it should be.
        let failed = self
            .swap_task(id, &|r: &mut TaskRecord| {
                if r.status.is_terminal() || r.owner.as_deref() != Some(owner.as_str()) {
                    return Ok(());
                }
                r.apply(died.clone(), now_ms())
            })
            .await?;
        Ok(failed)
    }

    /// The tasks of `subject` created in `session` (of the subject's at most `max`).
    async fn list_tasks(
        &self,
        subject: Option<&str>,
        session: &str,
        max: usize,
    ) -> Result<Vec<TaskRecord>, TaskError> {
        let prefix = format!("{}:task:", self.config.key_prefix);
        let answer = self
            .eval(
                &SCRIPTS.list,
                &[&self.task_subject_key(subject)],
                &[&prefix, &max.to_string()],
            )
            .await
            .map_err(unavailable)?;
        let Value::Array(items) = answer else {
            return Err(unavailable(format!("unexpected list answer: {answer:?}")));
        };
        let mut out = Vec::new();
        for item in &items {
            let raw = text(item).ok_or_else(|| unavailable("malformed list answer"))?;
            let record = decode(&raw)?;
            if record.session_id.as_deref() == Some(session) && record.subject.as_deref() == subject
            {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Unfinished restartable tasks whose replica died; those with no restart left are
    /// failed here instead.
    async fn orphaned_tasks(&self, max: usize) -> Result<Vec<TaskRecord>, TaskError> {
        let prefix = format!("{}:task:", self.config.key_prefix);
        let answer = self
            .eval(
                &SCRIPTS.orphans,
                &[&self.restartable_key(), &self.replicas_key],
                &[&prefix, &max.to_string()],
            )
            .await
            .map_err(unavailable)?;
        let Value::Array(items) = answer else {
            return Err(unavailable(format!(
                "unexpected orphans answer: {answer:?}"
            )));
        };
        let mut orphans = Vec::with_capacity(items.len());
        for item in &items {
            let raw = text(item).ok_or_else(|| unavailable("malformed orphans answer"))?;
            let record = decode(&raw)?;
            if record.restarts_on_replica_loss() {
                orphans.push(record);
            } else {
                self.fail_orphan(record).await?;
            }
        }
        Ok(orphans)
    }
}

impl TaskStore for RedisStore {
    fn create(
        &self,
        record: TaskRecord,
        max_active: usize,
    ) -> BoxFuture<'_, Result<(), TaskError>> {
        Box::pin(self.create_task(record, max_active))
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<TaskRecord>, TaskError>> {
        Box::pin(self.get_task(id, subject))
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        change: TaskChange<'a>,
    ) -> BoxFuture<'a, Result<TaskRecord, TaskError>> {
        Box::pin(async move {
            self.swap_task(id, change)
                .await?
                .ok_or_else(|| TaskError::NotFound(id.to_owned()))
        })
    }

    fn orphans(&self, max: usize) -> BoxFuture<'_, Result<Vec<TaskRecord>, TaskError>> {
        Box::pin(self.orphaned_tasks(max))
    }

    fn list<'a>(
        &'a self,
        subject: Option<&'a str>,
        session: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<TaskRecord>, TaskError>> {
        Box::pin(self.list_tasks(subject, session, max))
    }

    /// Wakes when any replica announces a change of the task (on the broadcast stream this
    /// replica reads once its deliveries are subscribed), and after [`WATCH_FALLBACK`]
    /// regardless; without a subscription, after [`WATCH_POLL`].
    fn watch(&self, id: &str) -> BoxFuture<'static, ()> {
        let changed = self.task_watchers.watch(id);
        let fallback = if self
            .reader_started
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            WATCH_FALLBACK
        } else {
            WATCH_POLL
        };
        Box::pin(async move {
            tokio::select! {
                _ = changed => {}
                () = tokio::time::sleep(fallback) => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use mcp_proto::task::{TaskEvent, TaskRecord, TaskStatus, TaskStore, now_ms};
    use mcp_sse::store::ReplicaBus;
    use serde_json::json;

    use crate::test_redis::TestRedis;
    use crate::{RedisConfig, RedisStore};

    async fn replica(redis: &TestRedis, name: &str) -> RedisStore {
        RedisStore::connect(RedisConfig::new(redis.url()).replica_id(name))
            .await
            .unwrap()
    }

    fn record(id: &str, subject: &str, owner: &str) -> TaskRecord {
        let mut r = TaskRecord::new(id, Some(subject.into()), now_ms(), 60_000, 100);
        r.owner = Some(owner.into());
        r.run_limit_ms = 60_000;
        r
    }

    #[tokio::test]
    async fn any_replica_reads_and_changes_a_task_and_the_limit_counts_unfinished_ones() {
        let redis = TestRedis::start();
        let (a, b) = (replica(&redis, "a").await, replica(&redis, "b").await);
        a.heartbeat(Duration::from_secs(30)).await.unwrap();
        a.create(record("t1", "alice", "a"), 2).await.unwrap();
        a.create(record("t2", "alice", "a"), 2).await.unwrap();
        assert_eq!(
            b.create(record("t3", "alice", "b"), 2).await,
            Err(mcp_proto::task::TaskError::TooManyTasks { limit: 2 })
        );
        assert!(b.get("t1", Some("bob")).await.unwrap().is_none());
        let seen = b.get("t1", Some("alice")).await.unwrap().unwrap();
        assert_eq!(seen.status, TaskStatus::Working);
        let ask = TaskEvent::AskInput {
            key: "k".into(),
            request: json!({"method": "elicitation/create"}),
        };
        a.update("t1", &|r| r.apply(ask.clone(), now_ms()))
            .await
            .unwrap();
        let answer = TaskEvent::Answer(
            [("k".to_owned(), json!({"action": "accept"}))]
                .into_iter()
                .collect(),
        );
        let answered = b
            .update("t1", &|r| r.apply(answer.clone(), now_ms()))
            .await
            .unwrap();
        assert_eq!(answered.status, TaskStatus::Working);
        assert_eq!(answered.input_responses["k"], json!({"action": "accept"}));
        b.update("t2", &|r| r.apply(TaskEvent::Cancel, now_ms()))
            .await
            .unwrap();
        // An ended task frees its place and stays readable.
        b.create(record("t3", "alice", "b"), 2).await.unwrap();
        assert_eq!(
            a.get("t2", Some("alice")).await.unwrap().unwrap().status,
            TaskStatus::Cancelled
        );
        assert_eq!(
            a.update("nope", &|_| Ok(())).await,
            Err(mcp_proto::task::TaskError::NotFound("nope".into()))
        );
        let ended = a
            .update("t2", &|r| r.apply(TaskEvent::Complete(json!({})), now_ms()))
            .await
            .unwrap_err();
        assert_eq!(
            ended.to_string(),
            "task t2 is cancelled and takes no more changes"
        );
    }

    #[tokio::test]
    async fn any_replica_lists_a_sessions_tasks_of_its_subject() {
        let redis = TestRedis::start();
        let (a, b) = (replica(&redis, "a").await, replica(&redis, "b").await);
        let in_session = |id: &str, subject: &str, session: &str| {
            let mut r = record(id, subject, "a");
            r.session_id = Some(session.into());
            r
        };
        a.create(in_session("s1-1", "alice", "s1"), 8)
            .await
            .unwrap();
        a.create(in_session("s1-2", "alice", "s1"), 8)
            .await
            .unwrap();
        a.create(in_session("s2-1", "alice", "s2"), 8)
            .await
            .unwrap();
        a.create(in_session("bob", "bob", "s1"), 8).await.unwrap();
        let mut ids: Vec<String> = b
            .list(Some("alice"), "s1", 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.task_id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["s1-1", "s1-2"]);
        assert_eq!(b.list(Some("bob"), "s1", 100).await.unwrap().len(), 1);
        assert!(b.list(None, "s1", 100).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_change_on_one_replica_wakes_a_watcher_on_another_within_a_round_trip() {
        let redis = TestRedis::start();
        let (a, b) = (replica(&redis, "a").await, replica(&redis, "b").await);
        // Replica a reads its deliveries (and so the announcements), as a server does.
        let _deliveries = a.subscribe().await.unwrap();
        a.create(record("t", "alice", "a"), 8).await.unwrap();
        // Let the reader take its position on the broadcast stream.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let watch = a.watch("t");
            assert_eq!(a.task_watchers.len(), 1);
            let changed = Instant::now();
            b.update("t", &|r| {
                r.status_message = Some(format!("{:?}", Instant::now()));
                Ok(())
            })
            .await
            .unwrap();
            watch.await;
            waits.push(changed.elapsed());
        }
        waits.sort();
        // The fallback would take a second; an announcement takes a round trip or two.
        assert!(waits[2] < Duration::from_millis(200), "{waits:?}");
        // Woken watchers are forgotten.
        assert_eq!(a.task_watchers.len(), 0);
        // A replica that does not read its deliveries falls back to polling.
        let started = Instant::now();
        b.watch("t").await;
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    fn restartable(id: &str, owner: &str, restarts_left: u32) -> TaskRecord {
        let mut r = record(id, "alice", owner);
        r.restart = Some(mcp_proto::task::TaskRestart {
            tool: "roll".into(),
            arguments: json!({"n_dice": 3, "content": []}),
            protocol_version: mcp_proto::ProtocolVersion::V2026_07_28,
            client_capabilities: Default::default(),
            restarts_left,
        });
        r
    }

    #[tokio::test]
    async fn a_dead_replicas_restartable_task_waits_for_one_take_over_and_spent_ones_fail() {
        let redis = TestRedis::start();
        let (a, b, c) = (
            replica(&redis, "a").await,
            replica(&redis, "b").await,
            replica(&redis, "c").await,
        );
        let lease = Duration::from_millis(200);
        a.heartbeat(lease).await.unwrap();
        b.heartbeat(Duration::from_secs(30)).await.unwrap();
        a.create(restartable("again", "a", 1), 8).await.unwrap();
        a.create(restartable("spent", "a", 0), 8).await.unwrap();
        a.create(restartable("live", "b", 1), 8).await.unwrap();
        a.create(record("plain", "alice", "a"), 8).await.unwrap();
        assert!(b.orphans(16).await.unwrap().is_empty());
        tokio::time::sleep(lease + Duration::from_millis(50)).await;
        // Read while orphaned: still working, waiting to be taken over.
        let seen = c.get("again", Some("alice")).await.unwrap().unwrap();
        assert_eq!(seen.status, TaskStatus::Working);
        // The spent one is failed by the look for orphans; only the restartable one is listed.
        let orphans = b.orphans(16).await.unwrap();
        assert_eq!(
            orphans
                .iter()
                .map(|r| r.task_id.as_str())
                .collect::<Vec<_>>(),
            ["again"]
        );
        // Arguments survive Redis as they were (an empty array stays an array).
        assert_eq!(
            orphans[0].restart.as_ref().unwrap().arguments,
            json!({"n_dice": 3, "content": []})
        );
        let spent = c.get("spent", Some("alice")).await.unwrap().unwrap();
        assert_eq!(spent.status, TaskStatus::Failed);
        // Two survivors claim it: one wins, the other is refused.
        let claim = |to: &str| TaskEvent::Restart {
            from: "a".into(),
            to: to.into(),
        };
        let (by_b, by_c) = (claim("b"), claim("c"));
        let change_b = |r: &mut TaskRecord| r.apply(by_b.clone(), now_ms());
        let change_c = |r: &mut TaskRecord| r.apply(by_c.clone(), now_ms());
        let (won, lost) = tokio::join!(b.update("again", &change_b), c.update("again", &change_c));
        assert!(won.is_ok() != lost.is_ok(), "{won:?} {lost:?}");
        let winner = won.or(lost).unwrap();
        assert_eq!(winner.status, TaskStatus::Working);
        // Its new replica beats: no longer an orphan; once ended, out of the index.
        let owner = winner.owner.clone().unwrap();
        assert!(owner == "b" || owner == "c");
        (if owner == "b" { &b } else { &c })
            .heartbeat(Duration::from_secs(30))
            .await
            .unwrap();
        assert!(b.orphans(16).await.unwrap().is_empty());
        b.update("again", &|r| {
            r.apply(TaskEvent::Complete(json!({})), now_ms())
        })
        .await
        .unwrap();
        let index: Vec<String> = redis::cmd("ZRANGE")
            .arg("mcp:tasks:restartable")
            .arg(0)
            .arg(-1)
            .query_async(&mut b.conn.clone())
            .await
            .unwrap();
        assert_eq!(index, ["live"]);
        // A plain task of the dead replica is failed when read, as before.
        assert_eq!(
            c.get("plain", Some("alice")).await.unwrap().unwrap().status,
            TaskStatus::Failed
        );
    }

    #[tokio::test]
    async fn a_task_whose_replica_stops_beating_is_reported_failed_within_its_lease() {
        let redis = TestRedis::start();
        let (a, b) = (replica(&redis, "a").await, replica(&redis, "b").await);
        let lease = Duration::from_millis(300);
        a.heartbeat(lease).await.unwrap();
        let beat = Instant::now();
        a.create(record("t", "alice", "a"), 8).await.unwrap();
        assert_eq!(
            b.get("t", Some("alice")).await.unwrap().unwrap().status,
            TaskStatus::Working
        );
        // Replica a stops beating (as if killed): b reports the task failed once the lease ran out.
        let failed = loop {
            let t = b.get("t", Some("alice")).await.unwrap().unwrap();
            if t.status != TaskStatus::Working || beat.elapsed() > Duration::from_secs(5) {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let took = beat.elapsed();
        assert_eq!(failed.status, TaskStatus::Failed);
        assert!(
            took >= lease && took < lease + Duration::from_millis(500),
            "{took:?}"
        );
        let error = failed.error.unwrap();
        assert_eq!(error.code, -32603);
        assert_eq!(
            error.message,
            "Internal error: the replica running this task (a) stopped: its heartbeat lease ran out"
        );
        // A task whose replica beats stays working.
        b.heartbeat(Duration::from_secs(30)).await.unwrap();
        b.create(record("live", "alice", "b"), 8).await.unwrap();
        tokio::time::sleep(lease).await;
        assert_eq!(
            a.get("live", Some("alice")).await.unwrap().unwrap().status,
            TaskStatus::Working
        );
    }
}
