//! [`RedisStore`]: the [`SessionStore`] of replicas that share one Redis.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mcp_proto::{BoxFuture, SessionState};
use mcp_sse::TransportKind;
use mcp_sse::store::{
    CallSlotRequest, Deliveries, Delivery, DeliveryEvent, DeliveryQueue, EventStore, NewSession,
    Replay, ReplicaBus, SessionRecord, SessionStore, StoreError, StoredEvent,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamId, StreamReadReply};
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::RedisConfig;
use crate::scripts::{LuaScript, Scripts};

mod releases;
mod tasks;

use releases::{FLUSH_DELAY, FlushGuard, PendingReleases, Pushed};

/// Most deliveries read from Redis in one round trip.
const DELIVERY_BATCH: usize = 256;

/// Bound of the stream every replica reads broadcasts from (trimmed approximately).
const BROADCAST_MAX: &str = "1000";

/// The field of a broadcast entry that announces a changed task (its id).
const TASK_CHANGED: &str = "t";

/// The [`SessionStore`] on Redis; see the crate docs for the layout and the guarantees.
///
/// Every operation is one round trip (one `EVALSHA` of an atomic Lua script) with a budget of
/// [`RedisConfig::op_timeout`]; when Redis is unreachable it fails with
/// [`StoreError::Unavailable`], and the connection is re-established by itself when Redis is
/// back. [`RedisStore::round_trips`] counts the requests sent. Call slots given back
/// ([`SessionStore::release_calls`]) have no round trip of their own under load: they ride
/// on this replica's next load (applied first), or go alone after 10 ms when none comes.
#[derive(Debug)]
pub struct RedisStore {
    config: RedisConfig,
    conn: ConnectionManager,
    client: redis::Client,
    scripts: Scripts,
    round_trips: AtomicU64,
    reads: Arc<AtomicU64>,
    session_prefix: String,
    delivery_prefix: String,
    broadcast_key: String,
    /// Sorted set of every live session key, scored by expiry: the global session cap.
    quota_all_key: String,
    /// Per client: sorted set of its live session keys, scored by expiry.
    quota_client_prefix: String,
    /// Per session: how many call slots are taken.
    calls_prefix: String,
    /// Sorted set of live replicas, scored by when their heartbeat runs out.
    replicas_key: String,
    event_prefix: String,
    delivery_ttl_ms: String,
    delivery_max: String,
    events_ttl_ms: String,
    events_max: String,
    queue: DeliveryQueue,
    /// Tasks waited for on this replica, woken by announced changes.
    task_watchers: Arc<tasks::TaskWatchers>,
    reader_started: AtomicBool,
    /// Call slots given back, waiting to ride on the next load.
    releases: PendingReleases,
    _stop_reader: DropGuard,
    stop: CancellationToken,
}

/// Longest time sent to Redis: a century, in milliseconds (exact in Lua's doubles).
const MAX_MILLIS: u128 = 100 * 365 * 24 * 60 * 60 * 1000;

/// Milliseconds for Redis: at least 1, at most a century (`Duration::MAX` means "never").
fn millis(d: Duration) -> String {
    d.as_millis().clamp(1, MAX_MILLIS).to_string()
}

fn manager_config(connect: Duration, response: Duration) -> ConnectionManagerConfig {
    // No retries inside one call: a call during an outage makes one connection attempt and
    // fails within the budget; the next call tries again.
    ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response))
}

/// Maps a Redis error: unreachable, timed out, loading or read-only is `Unavailable`; an error
/// answer to a valid request is `Failed`.
fn store_error(e: RedisError) -> StoreError {
    match e.kind() {
        ErrorKind::Parse
        | ErrorKind::UnexpectedReturnType
        | ErrorKind::InvalidClientConfig
        | ErrorKind::Server(ServerErrorKind::ResponseError)
        | ErrorKind::Server(ServerErrorKind::NoPerm) => {
            StoreError::failed("Redis refused the request").with_source(e)
        }
        _ => StoreError::unavailable("Redis could not be reached").with_source(e),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other)?.parse().ok(),
    }
}

fn malformed(what: &str, value: &Value) -> StoreError {
    StoreError::failed(format!("unexpected answer to {what}: {value:?}"))
}

impl RedisStore {
    /// A store for Redis at `config.url`, without connecting yet: the first operation connects
    /// (so a replica can start while Redis is down). [`StoreError::InvalidConfig`] for a bad
    /// URL or a zero limit. Must be called inside a Tokio runtime.
    pub fn new(config: RedisConfig) -> Result<Self, StoreError> {
        config.check().map_err(StoreError::invalid_config)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::invalid_config(
                "RedisStore must be created inside a Tokio runtime",
            ));
        }
        let client = redis::Client::open(config.url.as_str()).map_err(|e| {
            StoreError::invalid_config(format!("Redis URL {}", config.url)).with_source(e)
        })?;
        let conn = ConnectionManager::new_lazy_with_config(
            client.clone(),
            manager_config(config.op_timeout, config.op_timeout),
        )
        .map_err(|e| StoreError::invalid_config("cannot set up the connection").with_source(e))?;
        let stop = CancellationToken::new();
        let prefix = &config.key_prefix;
        Ok(Self {
            session_prefix: format!("{prefix}:session:"),
            delivery_prefix: format!("{prefix}:deliveries:"),
            broadcast_key: format!("{prefix}:broadcast"),
            quota_all_key: format!("{prefix}:quota:all"),
            quota_client_prefix: format!("{prefix}:quota:client:"),
            calls_prefix: format!("{prefix}:calls:"),
            replicas_key: format!("{prefix}:replicas"),
            event_prefix: format!("{prefix}:events:"),
            delivery_ttl_ms: millis(config.delivery_ttl),
            delivery_max: config.delivery_stream_max.to_string(),
            events_ttl_ms: millis(config.events_ttl),
            events_max: config.events_per_stream.to_string(),
            queue: DeliveryQueue::new(config.delivery_queue),
            task_watchers: Arc::default(),
            reader_started: AtomicBool::new(false),
            releases: PendingReleases::default(),
            _stop_reader: stop.clone().drop_guard(),
            stop,
            conn,
            client,
            scripts: Scripts::new(),
            round_trips: AtomicU64::new(0),
            reads: Arc::new(AtomicU64::new(0)),
            config,
        })
    }

    /// [`RedisStore::new`], then one round trip that checks Redis answers and loads the
    /// scripts; [`StoreError::Unavailable`] if it does not within the budget.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let store = Self::new(config)?;
        store.load_scripts().await?;
        Ok(store)
    }

    /// Loads every script (one round trip); done by [`RedisStore::connect`], and by itself
    /// when Redis lost them (a restart).
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        for script in self.scripts.all() {
            pipe.cmd("SCRIPT").arg("LOAD").arg(script.source).ignore();
        }
        let mut conn = self.conn.clone();
        self.timed(async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Blocking reads of this replica's delivery stream made so far (not counted in
    /// [`SessionStore::round_trips`]: they wait for deliveries rather than serve a request).
    pub fn delivery_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn session_key(&self, id: &str) -> String {
        format!("{}{id}", self.session_prefix)
    }

    fn event_key(&self, stream_key: &str) -> String {
        format!("{}{stream_key}", self.event_prefix)
    }

    /// Runs one request with the budget; counts it.
    async fn timed<T>(
        &self,
        request: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(self.config.op_timeout, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(store_error(e)),
            Err(_) => Err(StoreError::unavailable(format!(
                "Redis did not answer within {} ms",
                self.config.op_timeout.as_millis()
            ))),
        }
    }

    /// `EVALSHA`, falling back to `EVAL` (which caches the script again) when Redis lost it.
    async fn eval(
        &self,
        script: &LuaScript,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Value, StoreError> {
        let build = |command: &str, body: &str| {
            let mut cmd = redis::cmd(command);
            cmd.arg(body).arg(keys.len()).arg(keys).arg(args);
            cmd
        };
        let evalsha = build("EVALSHA", &script.sha);
        let mut conn = self.conn.clone();
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let budget = self.config.op_timeout;
        let outcome = tokio::time::timeout(budget, async {
            let mut first = evalsha.query_async::<Value>(&mut conn).await;
            if first.as_ref().is_err_and(RedisError::is_connection_refusal) {
                // The cached connection attempt had failed (Redis was down): the manager has
                // started a new one; the request was never sent, so sending it again is safe.
                first = evalsha.query_async::<Value>(&mut conn).await;
            }
            match first {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    tracing::debug!(
                        script = script.name,
                        "script not cached in Redis; sending it"
                    );
                    self.round_trips.fetch_add(1, Ordering::Relaxed);
                    build("EVAL", script.source)
                        .query_async::<Value>(&mut conn)
                        .await
                }
                other => other,
            }
        })
        .await;
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let error = store_error(e);
                tracing::warn!(script = script.name, %error, "Redis operation failed");
                Err(error)
            }
            Err(_) => Err(StoreError::unavailable(format!(
                "Redis did not answer within {} ms",
                budget.as_millis()
            ))),
        }
    }

    async fn load_or_claim(
        &self,
        id: &str,
        subject: Option<&str>,
        claim: bool,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let found = self.load_with(id, subject, claim, None).await?;
        Ok(found.map(|(record, _)| record))
    }

    /// After [`FLUSH_DELAY`], gives back the slots no load has carried.
    async fn flush_releases(&self) -> Result<(), StoreError> {
        let mut guard = FlushGuard {
            pending: &self.releases,
            armed: true,
        };
        tokio::time::sleep(FLUSH_DELAY).await;
        guard.armed = false;
        let due = self.releases.start_flush();
        if due.is_empty() {
            return Ok(());
        }
        self.send_releases(due).await
    }

    /// Gives back slots of several sessions in one round trip.
    async fn send_releases(&self, due: Vec<(String, usize)>) -> Result<(), StoreError> {
        let keys: Vec<&str> = due.iter().map(|(k, _)| k.as_str()).collect();
        let counts: Vec<String> = due.iter().map(|(_, n)| n.to_string()).collect();
        let counts: Vec<&str> = counts.iter().map(String::as_str).collect();
        self.eval(&self.scripts.release_calls, &keys, &counts)
            .await?;
        Ok(())
    }

    /// The LOAD script: loads (and claims, or takes call slots) in one round trip.
    async fn load_with(
        &self,
        id: &str,
        subject: Option<&str>,
        claim: bool,
        slots: Option<CallSlotRequest>,
    ) -> Result<Option<(SessionRecord, bool)>, StoreError> {
        let key = self.session_key(id);
        let calls_key = format!("{}{id}", self.calls_prefix);
        let (n, max, ttl) = match slots {
            Some(s) => (s.n.to_string(), s.max.to_string(), millis(s.ttl)),
            None => ("0".to_owned(), "0".to_owned(), "0".to_owned()),
        };
        let owner = if claim {
            self.config.replica_id.as_str()
        } else {
            ""
        };
        // Slots given back since the last round trip ride on this one (applied first, so
        // this session's own finished calls never count against it). If it fails, they
        // come back when their counters expire.
        let carried = self.releases.take();
        let counts: Vec<String> = carried.iter().map(|(_, n)| n.to_string()).collect();
        let mut keys = vec![key.as_str()];
        keys.extend(carried.iter().map(|(k, _)| k.as_str()));
        let mut args = vec![
            subject.unwrap_or(""),
            if subject.is_some() { "1" } else { "0" },
            owner,
            &self.quota_all_key,
            &calls_key,
            &n,
            &max,
            &ttl,
        ];
        args.extend(counts.iter().map(String::as_str));
        let value = self.eval(&self.scripts.load, &keys, &args).await?;
        let fields = match &value {
            Value::Nil => return Ok(None),
            Value::Array(fields) if fields.len() == 8 => fields,
            other => return Err(malformed("load", other)),
        };
        let field = |i: usize| text(&fields[i]).ok_or_else(|| malformed("load", &value));
        let num = |i: usize| number(&fields[i]).ok_or_else(|| malformed("load", &value));
        let kind_name = field(0)?;
        let kind = TransportKind::parse(&kind_name).ok_or_else(|| {
            StoreError::failed(format!(
                "session {id} has an unknown transport {kind_name:?}"
            ))
        })?;
        let state: SessionState = serde_json::from_str(&field(1)?).map_err(|e| {
            StoreError::failed(format!("stored state of session {id} is unreadable")).with_source(e)
        })?;
        let record = SessionRecord {
            id: id.to_owned(),
            kind,
            state,
            subject: subject.map(str::to_owned),
            owner: field(2)?,
            created_at_ms: num(3)?,
            last_seen_ms: num(4)?,
            idle_timeout: Duration::from_millis(num(5)?),
            max_lifetime: Duration::from_millis(num(6)?),
        };
        Ok(Some((record, num(7)? == 1)))
    }

    fn start_reader(&self) {
        if self.reader_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let response = self.config.delivery_block + self.config.op_timeout;
        let conn = match ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            manager_config(self.config.op_timeout, response),
        ) {
            Ok(conn) => conn,
            Err(e) => {
                // Only a misconfiguration gets here, and `new` already checked the client.
                tracing::error!(error = %e, "cannot create the delivery connection");
                return;
            }
        };
        let reader = DeliveryReader {
            conn,
            key: format!("{}{}", self.delivery_prefix, self.config.replica_id),
            broadcast_key: self.broadcast_key.clone(),
            sender: self.queue.sender(),
            task_watchers: Arc::clone(&self.task_watchers),
            stop: self.stop.clone(),
            block: self.config.delivery_block,
            budget: response,
            reads: Arc::clone(&self.reads),
            last: "0-0".to_owned(),
            broadcast_last: None,
            backoff: INITIAL_BACKOFF,
        };
        tokio::spawn(reader.run());
    }
}

/// Follows this replica's delivery stream into the local queue.
///
/// Exactly once, in order: one reader per replica reads its stream with `XREAD` from the id
/// of the last entry it queued; a failed or timed-out read is repeated from the same id, so
/// nothing is skipped or read twice; entries already queued are trimmed (`XTRIM MINID`) in the
/// same round trip as the next read. The same read follows the broadcast stream that every
/// replica reads (from its newest entry when the reader starts; never trimmed by readers);
/// its task announcements wake this replica's task watchers instead of being queued.
struct DeliveryReader {
    conn: ConnectionManager,
    key: String,
    broadcast_key: String,
    sender: mpsc::Sender<Delivery>,
    task_watchers: Arc<tasks::TaskWatchers>,
    stop: CancellationToken,
    block: Duration,
    budget: Duration,
    reads: Arc<AtomicU64>,
    /// The id of the last entry of this replica's stream queued (`0-0` before any).
    last: String,
    /// The broadcast position; `None` until the reader has found the newest broadcast.
    broadcast_last: Option<String>,
    /// The wait before the next retry after a failed read.
    backoff: Duration,
}

/// The first wait after a failed delivery read; it doubles per failure up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between failed delivery reads.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl DeliveryReader {
    async fn run(mut self) {
        loop {
            let flow = match self.broadcast_last.clone() {
                // Broadcasts made before this replica started are not for it.
                None => self.find_broadcast_start().await,
                Some(broadcast_from) => self.read_batch(&broadcast_from).await,
            };
            if flow.is_break() || self.stop.is_cancelled() {
                return;
            }
        }
    }

    /// Sets the broadcast position to the newest broadcast entry (`0-0` when there is none).
    async fn find_broadcast_start(&mut self) -> ControlFlow<()> {
        let mut newest_cmd = redis::cmd("XREVRANGE");
        newest_cmd
            .arg(&self.broadcast_key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        self.reads.fetch_add(1, Ordering::Relaxed);
        let newest = tokio::select! {
            () = self.stop.cancelled() => return ControlFlow::Break(()),
            r = tokio::time::timeout(
                self.budget,
                newest_cmd.query_async::<redis::streams::StreamRangeReply>(&mut self.conn),
            ) => r,
        };
        match newest {
            Ok(Ok(reply)) => {
                self.broadcast_last = Some(
                    reply
                        .ids
                        .first()
                        .map_or_else(|| "0-0".to_owned(), |e| e.id.clone()),
                );
            }
            _ => {
                tracing::warn!("reading the broadcast position failed; retrying");
                self.pause().await;
            }
        }
        ControlFlow::Continue(())
    }

    /// Trims what is queued, reads the next batch of both streams and queues it.
    async fn read_batch(&mut self, broadcast_from: &str) -> ControlFlow<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("XTRIM")
            .arg(&self.key)
            .arg("MINID")
            .arg(&self.last)
            .ignore()
            .cmd("XREAD")
            .arg("COUNT")
            .arg(DELIVERY_BATCH)
            .arg("BLOCK")
            .arg(self.block.as_millis().max(1).to_string())
            .arg("STREAMS")
            .arg(&self.key)
            .arg(&self.broadcast_key)
            .arg(&self.last)
            .arg(broadcast_from);
        self.reads.fetch_add(1, Ordering::Relaxed);
        let read = tokio::select! {
            () = self.stop.cancelled() => return ControlFlow::Break(()),
            r = tokio::time::timeout(self.budget, pipe.query_async::<(Option<StreamReadReply>,)>(&mut self.conn)) => r,
        };
        match read {
            Ok(Ok((Some(reply),))) => {
                self.backoff = INITIAL_BACKOFF;
                return self.queue(reply).await;
            }
            Ok(Ok((None,))) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading deliveries failed; retrying");
                self.pause().await;
            }
            Err(_) => {
                tracing::warn!("reading deliveries timed out; retrying");
                self.pause().await;
            }
        }
        ControlFlow::Continue(())
    }

    /// Queues a batch in order, moving each stream's position past what it queued.
    async fn queue(&mut self, reply: StreamReadReply) -> ControlFlow<()> {
        for stream in reply.keys {
            let broadcast = stream.key == self.broadcast_key;
            for entry in stream.ids {
                if broadcast {
                    self.broadcast_last = Some(entry.id.clone());
                } else {
                    self.last.clone_from(&entry.id);
                }
                if let Some(task) = entry.map.get(TASK_CHANGED).and_then(text) {
                    self.task_watchers.wake(&task);
                    continue;
                }
                let Some(delivery) = parse_delivery(&entry) else {
                    tracing::warn!(id = %entry.id, "skipping a malformed delivery");
                    continue;
                };
                tokio::select! {
                    () = self.stop.cancelled() => return ControlFlow::Break(()),
                    sent = self.sender.send(delivery) => if sent.is_err() { return ControlFlow::Break(()) },
                }
            }
        }
        ControlFlow::Continue(())
    }

    async fn pause(&mut self) {
        tokio::select! {
            () = self.stop.cancelled() => {}
            () = tokio::time::sleep(self.backoff) => {}
        }
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

fn parse_delivery(entry: &StreamId) -> Option<Delivery> {
    let session_id = text(entry.map.get("s")?)?;
    let event = if let Some(payload) = entry.map.get("m") {
        DeliveryEvent::Message(text(payload)?)
    } else if let Some(payload) = entry.map.get("c") {
        DeliveryEvent::FromClient(text(payload)?)
    } else {
        entry.map.get("e")?;
        DeliveryEvent::SessionEnded
    };
    Some(Delivery { session_id, event })
}

fn flag(subject: Option<&str>) -> &'static str {
    if subject.is_some() { "1" } else { "0" }
}

impl SessionStore for RedisStore {
    fn replica_id(&self) -> &str {
        &self.config.replica_id
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let pong: String = self
                .timed(async move { redis::cmd("PING").query_async(&mut conn).await })
                .await?;
            match pong.as_str() {
                "PONG" => Ok(()),
                other => Err(StoreError::failed(format!("PING answered {other:?}"))),
            }
        })
    }

    fn create(&self, session: NewSession) -> BoxFuture<'_, Result<SessionRecord, StoreError>> {
        Box::pin(async move {
            let state = serde_json::to_string(&session.state)
                .map_err(|e| StoreError::failed("cannot serialize session state").with_source(e))?;
            let key = self.session_key(&session.id);
            let idle = millis(session.idle_timeout);
            let max = millis(session.max_lifetime);
            let mine = format!("{}{}", self.quota_client_prefix, session.client);
            let (most, most_per_client) = (
                session.max_sessions.to_string(),
                session.max_per_client.to_string(),
            );
            let value = self
                .eval(
                    &self.scripts.create,
                    &[&key],
                    &[
                        session.kind.as_str(),
                        &state,
                        session.subject.as_deref().unwrap_or(""),
                        flag(session.subject.as_deref()),
                        &self.config.replica_id,
                        &idle,
                        &max,
                        &self.quota_all_key,
                        &mine,
                        &most,
                        &most_per_client,
                    ],
                )
                .await?;
            let created = match &value {
                Value::Nil => return Err(StoreError::SessionExists(session.id)),
                Value::Int(-1) => {
                    return Err(StoreError::Full(format!(
                        "{} sessions",
                        session.max_sessions
                    )));
                }
                Value::Int(-2) => return Err(StoreError::ClientQuota(session.max_per_client)),
                other => number(other).ok_or_else(|| malformed("create", other))?,
            };
            Ok(SessionRecord {
                id: session.id,
                kind: session.kind,
                state: session.state,
                subject: session.subject,
                owner: self.config.replica_id.clone(),
                created_at_ms: created,
                last_seen_ms: created,
                idle_timeout: session.idle_timeout,
                max_lifetime: session.max_lifetime,
            })
        })
    }

    fn load<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(self.load_or_claim(id, subject, false))
    }

    fn claim<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(self.load_or_claim(id, subject, true))
    }

    fn save_state<'a>(
        &'a self,
        id: &'a str,
        state: &'a SessionState,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let state = serde_json::to_string(state)
                .map_err(|e| StoreError::failed("cannot serialize session state").with_source(e))?;
            let key = self.session_key(id);
            let value = self
                .eval(&self.scripts.save_state, &[&key], &[&state])
                .await?;
            Ok(value == Value::Int(1))
        })
    }

    fn touch<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<bool>, StoreError>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ids.iter().map(|id| self.session_key(id)).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let value = self
                .eval(&self.scripts.touch, &keys, &[&self.quota_all_key])
                .await?;
            match &value {
                Value::Array(items) if items.len() == ids.len() => {
                    Ok(items.iter().map(|v| *v == Value::Int(1)).collect())
                }
                other => Err(malformed("touch", other)),
            }
        })
    }

    fn delete<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = self.session_key(id);
            let value = self
                .eval(
                    &self.scripts.delete,
                    &[&key],
                    &[
                        subject.unwrap_or(""),
                        flag(subject),
                        &self.delivery_prefix,
                        id,
                        &self.delivery_max,
                        &self.delivery_ttl_ms,
                        &self.quota_all_key,
                    ],
                )
                .await?;
            Ok(value == Value::Int(1))
        })
    }

    fn acquire_calls<'a>(
        &'a self,
        session_id: &'a str,
        n: usize,
        max: usize,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = format!("{}{session_id}", self.calls_prefix);
            let (n, max, ttl) = (n.to_string(), max.to_string(), millis(ttl));
            let value = self
                .eval(&self.scripts.acquire_calls, &[&key], &[&n, &max, &ttl])
                .await?;
            Ok(value == Value::Int(1))
        })
    }

    fn load_and_acquire<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
        slots: CallSlotRequest,
    ) -> BoxFuture<'a, Result<Option<(SessionRecord, bool)>, StoreError>> {
        Box::pin(self.load_with(id, subject, false, Some(slots)))
    }

    fn release_calls<'a>(
        &'a self,
        session_id: &'a str,
        n: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let key = format!("{}{session_id}", self.calls_prefix);
        match self.releases.push(key, n) {
            Pushed::Queued => Box::pin(std::future::ready(Ok(()))),
            Pushed::ScheduleFlush => Box::pin(self.flush_releases()),
            Pushed::SendNow(key, n) => Box::pin(self.send_releases(vec![(key, n)])),
        }
    }

    fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

impl ReplicaBus for RedisStore {
    fn heartbeat(&self, ttl: Duration) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.eval(
                &self.scripts.heartbeat,
                &[&self.replicas_key],
                &[&self.config.replica_id, &millis(ttl)],
            )
            .await?;
            Ok(())
        })
    }

    fn deliver<'a>(
        &'a self,
        session_id: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = self.session_key(session_id);
            let value = self
                .eval(
                    &self.scripts.deliver,
                    &[&key],
                    &[
                        &self.delivery_prefix,
                        session_id,
                        payload,
                        &self.delivery_max,
                        &self.delivery_ttl_ms,
                    ],
                )
                .await?;
            Ok(value == Value::Int(1))
        })
    }

    fn forward_to_replica<'a>(
        &'a self,
        replica: &'a str,
        session_id: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = format!("{}{replica}", self.delivery_prefix);
            let value = self
                .eval(
                    &self.scripts.forward,
                    &[&key, &self.replicas_key],
                    &[
                        session_id,
                        payload,
                        &self.delivery_max,
                        &self.delivery_ttl_ms,
                        replica,
                    ],
                )
                .await?;
            Ok(value == Value::Int(1))
        })
    }

    fn broadcast<'a>(
        &'a self,
        session_id: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.eval(
                &self.scripts.forward,
                &[&self.broadcast_key],
                &[session_id, payload, BROADCAST_MAX, &self.delivery_ttl_ms],
            )
            .await?;
            Ok(())
        })
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<Deliveries, StoreError>> {
        Box::pin(async move {
            let deliveries = self.queue.subscribe()?;
            self.start_reader();
            Ok(deliveries)
        })
    }
}

impl EventStore for RedisStore {
    fn append_event<'a>(
        &'a self,
        stream_key: &'a str,
        seq: u64,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = self.event_key(stream_key);
            let seq = seq.to_string();
            let value = self
                .eval(
                    &self.scripts.append,
                    &[&key],
                    &[&seq, payload, &self.events_max, &self.events_ttl_ms],
                )
                .await?;
            Ok(value == Value::Int(1))
        })
    }

    fn read_events_after<'a>(
        &'a self,
        stream_key: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, Result<Replay, StoreError>> {
        Box::pin(async move {
            let key = self.event_key(stream_key);
            let value = self
                .eval(&self.scripts.read_after, &[&key], &[&seq.to_string()])
                .await?;
            let Value::Array(parts) = &value else {
                return Err(malformed("read_events_after", &value));
            };
            match parts.as_slice() {
                [Value::Int(0)] => Ok(Replay::UnknownStream),
                [Value::Int(1)] => Ok(Replay::Lagged),
                [Value::Int(2), Value::Array(members)] => members
                    .iter()
                    .map(|m| {
                        let member = text(m).ok_or_else(|| malformed("read_events_after", m))?;
                        let (seq, payload) = member
                            .split_once(':')
                            .and_then(|(s, p)| Some((s.parse().ok()?, p)))
                            .ok_or_else(|| malformed("read_events_after", m))?;
                        Ok(StoredEvent {
                            seq,
                            payload: payload.to_owned(),
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
                    .map(Replay::Events),
                _ => Err(malformed("read_events_after", &value)),
            }
        })
    }
}
