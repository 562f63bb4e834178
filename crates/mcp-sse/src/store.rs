//! The session seam: what replicas of one server must share so that any replica can serve any
//! request of any session.
//!
//! A store is three small traits, each used where it is needed, and [`SharedStore`] for all of
//! them together (what `McpHttpServer::session_store` takes):
//!
//! - **Session records** ([`SessionStore`], [`SessionRecord`]): the serializable [`mcp_proto::SessionState`] of a
//!   session, the transport it belongs to, the authenticated subject that created it (a lookup
//!   with another subject finds nothing), the replica that holds its stream, and its idle and
//!   lifetime limits, enforced by the store itself (a record whose replica died still expires).
//! - **Delivery** ([`ReplicaBus`]) of server-to-client messages to the replica that holds a session's stream:
//!   [`SessionStore::deliver`] on any replica, [`SessionStore::subscribe`] on the holder. Each
//!   replica has one bounded delivery queue; a delivered payload reaches it once, in the order
//!   the deliveries were made.
//! - **An event store** ([`EventStore`]) for `Last-Event-ID` resumption on any replica: bounded per stream, with
//!   a time to live ([`SessionStore::append_event`], [`SessionStore::read_events_after`]).
//!
//! [`MemoryStore`] keeps all of it in this process, bounded (the default, one replica); the
//! `mcp-redis` crate shares it between processes through Redis. Every method returns a boxed
//! future, so a store is used as `Arc<dyn SharedStore>`. A store that cannot be reached
//! answers [`StoreError::Unavailable`] (transports answer 503 with a JSON body).
//!
//! ```
//! use mcp_sse::TransportKind;
//! use mcp_sse::store::{
//!     DeliveryEvent, MemoryStore, NewSession, ReplicaBus, SessionStore,
//! };
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), mcp_sse::store::StoreError> {
//! let store = MemoryStore::new();
//! let mut deliveries = store.subscribe().await?;
//! let session = NewSession::new("s1", TransportKind::LegacySse)
//!     .subject(Some("alice".into()))
//!     .idle_timeout(Duration::from_secs(300));
//! store.create(session).await?;
//! assert!(store.load("s1", Some("bob")).await?.is_none()); // another subject: not found
//! assert!(store.deliver("s1", r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).await?);
//! let delivery = deliveries.recv().await.ok_or(mcp_sse::store::StoreError::Closed)?;
//! assert_eq!(delivery.session_id, "s1");
//! assert!(matches!(delivery.event, DeliveryEvent::Message(_)));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_proto::{BoxError, BoxFuture, SessionState};

use crate::TransportKind;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a store operation can fail with.
///
/// The store's own error (a Redis error, a serde error) is kept as the
/// [`source`](std::error::Error::source) of [`StoreError::Unavailable`],
/// [`StoreError::Failed`] and [`StoreError::InvalidConfig`]:
///
/// ```
/// use std::error::Error as _;
/// use mcp_sse::store::StoreError;
///
/// let cause = serde_json::from_str::<u32>("x").unwrap_err();
/// let err = StoreError::failed("stored state is unreadable").with_source(cause);
/// assert!(matches!(&err, StoreError::Failed { detail, .. } if detail == "stored state is unreadable"));
/// assert!(err.source().unwrap().is::<serde_json::Error>());
/// assert!(!err.is_unavailable());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or did not answer in time (transports answer 503).
    #[error("session store unavailable: {detail}")]
    Unavailable {
        /// What could not be done.
        detail: String,
        /// The store's error, when there is one (none for a timeout).
        #[source]
        source: Option<BoxError>,
    },
    /// A session with this id already exists.
    #[error("session {0} already exists")]
    SessionExists(String),
    /// A bound of the store is reached (in-memory sessions, a full delivery queue).
    #[error("session store full: {0}")]
    Full(String),
    /// The client creating a session already holds as many as it may
    /// ([`NewSession::quota`]); other clients still can.
    #[error("this client holds its {0} sessions already")]
    ClientQuota(usize),
    /// This replica's deliveries are already being received by another [`Deliveries`].
    #[error("deliveries of this replica are already subscribed")]
    AlreadySubscribed,
    /// The store is gone (dropped) while waiting.
    #[error("session store closed")]
    Closed,
    /// The store answered with an error or with data this version cannot read.
    #[error("session store failed: {detail}")]
    Failed {
        /// What failed.
        detail: String,
        /// The store's error or the decoding error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The store's configuration is unusable (a bad URL, a zero limit).
    #[error("invalid session store configuration: {detail}")]
    InvalidConfig {
        /// What is wrong.
        detail: String,
        /// The parse or connection error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// [`StoreError::Unavailable`] without a source (add one with [`StoreError::with_source`]).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable {
            detail: detail.into(),
            source: None,
        }
    }

    /// [`StoreError::Failed`] without a source (add one with [`StoreError::with_source`]).
    pub fn failed(detail: impl Into<String>) -> Self {
        Self::Failed {
            detail: detail.into(),
            source: None,
        }
    }

    /// [`StoreError::InvalidConfig`] without a source (add one with
    /// [`StoreError::with_source`]).
    pub fn invalid_config(detail: impl Into<String>) -> Self {
        Self::InvalidConfig {
            detail: detail.into(),
            source: None,
        }
    }

    /// Sets the cause of an [`StoreError::Unavailable`], [`StoreError::Failed`] or
    /// [`StoreError::InvalidConfig`]; other variants have none and are returned unchanged.
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> Self {
        if let Self::Unavailable { source, .. }
        | Self::Failed { source, .. }
        | Self::InvalidConfig { source, .. } = &mut self
        {
            *source = Some(cause.into());
        }
        self
    }

    /// Whether the request should be answered with 503 (retry later) rather than 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Full(_))
    }
}

/// Default idle timeout of a session: 30 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default maximum lifetime of a session: 24 hours.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A session to create: see [`SessionStore::create`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// The session id (unguessable, chosen by the transport).
    pub id: String,
    /// Its transport.
    pub kind: TransportKind,
    /// The negotiated state so far.
    pub state: SessionState,
    /// The authenticated subject that creates it (`None` without authentication).
    pub subject: Option<String>,
    /// Ends the session when it is not used for this long.
    pub idle_timeout: Duration,
    /// Ends the session this long after creation, used or not.
    pub max_lifetime: Duration,
    /// Whose quota the session counts against: the subject, or the client's address without
    /// authentication.
    pub client: String,
    /// Most live sessions in the store (0: only the store's own bound).
    pub max_sessions: usize,
    /// Most live sessions of [`NewSession::client`] (0: no per-client cap).
    pub max_per_client: usize,
}

impl NewSession {
    /// A session with default state, no subject and the default limits.
    pub fn new(id: impl Into<String>, kind: TransportKind) -> Self {
        Self {
            id: id.into(),
            kind,
            state: SessionState::default(),
            subject: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            client: String::new(),
            max_sessions: 0,
            max_per_client: 0,
        }
    }

    /// Counts the session against `client`'s quota of `max_per_client` and the store-wide
    /// `max_sessions` (0: no cap); [`SessionStore::create`] refuses it when either is full.
    pub fn quota(
        mut self,
        client: impl Into<String>,
        max_sessions: usize,
        max_per_client: usize,
    ) -> Self {
        self.client = client.into();
        self.max_sessions = max_sessions;
        self.max_per_client = max_per_client;
        self
    }

    /// Sets the negotiated state.
    pub fn state(mut self, state: SessionState) -> Self {
        self.state = state;
        self
    }

    /// Sets the authenticated subject.
    pub fn subject(mut self, subject: Option<String>) -> Self {
        self.subject = subject;
        self
    }

    /// Sets the idle timeout.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Sets the maximum lifetime.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }
}

/// A stored session, as [`SessionStore::load`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The session id.
    pub id: String,
    /// Its transport.
    pub kind: TransportKind,
    /// The negotiated state.
    pub state: SessionState,
    /// The subject that created it.
    pub subject: Option<String>,
    /// The replica that holds its stream: deliveries go there.
    pub owner: String,
    /// Creation time, milliseconds since the Unix epoch (the store's clock).
    pub created_at_ms: u64,
    /// Last use, milliseconds since the Unix epoch (the store's clock).
    pub last_seen_ms: u64,
    /// The idle timeout it was created with.
    pub idle_timeout: Duration,
    /// The maximum lifetime it was created with.
    pub max_lifetime: Duration,
}

/// What a delivery carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryEvent {
    /// A server-to-client JSON-RPC message (serialized) to write on the session's stream.
    Message(String),
    /// The session was deleted (for instance by `DELETE` on another replica): close its stream.
    SessionEnded,
    /// A message from the client (its answer to a server-to-client request) that reached
    /// another replica, for the call on this replica that waits for it.
    FromClient(String),
}

/// In-flight slots a request wants: see [`SessionStore::acquire_calls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSlotRequest {
    /// How many (one per request of a batch).
    pub n: usize,
    /// The session's most.
    pub max: usize,
    /// When slots not given back are freed.
    pub ttl: Duration,
}

/// One delivery to this replica, for one of the sessions whose stream it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The session.
    pub session_id: String,
    /// What to do with its stream.
    pub event: DeliveryEvent,
}

type ReceiverSlot = Arc<Mutex<Option<mpsc::Receiver<Delivery>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A replica's bounded delivery queue, for store implementations: the store keeps the
/// sending side; [`DeliveryQueue::subscribe`] hands out the receiving side, which returns to
/// the queue when the [`Deliveries`] is dropped, so nothing queued is lost between two
/// subscriptions.
#[derive(Debug)]
pub struct DeliveryQueue {
    sender: mpsc::Sender<Delivery>,
    slot: ReceiverSlot,
}

impl DeliveryQueue {
    /// A queue holding at most `capacity` deliveries (at least 1).
    pub fn new(capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self {
            sender,
            slot: Arc::new(Mutex::new(Some(receiver))),
        }
    }

    /// The sending side.
    pub fn sender(&self) -> mpsc::Sender<Delivery> {
        self.sender.clone()
    }

    /// Takes the receiving side, or [`StoreError::AlreadySubscribed`].
    pub fn subscribe(&self) -> Result<Deliveries, StoreError> {
        let receiver = lock(&self.slot)
            .take()
            .ok_or(StoreError::AlreadySubscribed)?;
        Ok(Deliveries {
            receiver: Some(receiver),
            slot: Arc::clone(&self.slot),
        })
    }
}

/// The deliveries to this replica, in order; see [`SessionStore::subscribe`].
#[derive(Debug)]
pub struct Deliveries {
    receiver: Option<mpsc::Receiver<Delivery>>,
    slot: ReceiverSlot,
}

impl Deliveries {
    /// The next delivery; `None` once the store is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.receiver.as_mut()?.recv().await
    }

    /// The next delivery if one is queued now.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.receiver.as_mut()?.try_recv().ok()
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        if let Some(receiver) = self.receiver.take() {
            *lock(&self.slot) = Some(receiver);
        }
    }
}

/// One stored event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its sequence number within the stream.
    pub seq: u64,
    /// Its payload (the serialized message; empty for a priming event).
    pub payload: String,
}

/// What [`SessionStore::read_events_after`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// Every stored event after the position, in order (empty: nothing new).
    Events(Vec<StoredEvent>),
    /// No such stream: never written, expired or deleted.
    UnknownStream,
    /// Events after the position were dropped (the stream outgrew its bound): the client
    /// cannot resume without a gap.
    Lagged,
}

/// Session records: their state, subject, limits and quotas, and the in-flight slots of their
/// calls. Implementations: [`MemoryStore`], `mcp_redis::RedisStore`.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// This replica's id: the owner of the sessions it creates or claims.
    fn replica_id(&self) -> &str;

    /// Creates a session owned by this replica, with its limits; [`StoreError::SessionExists`]
    /// if the id is taken, [`StoreError::Full`] beyond [`NewSession::max_sessions`] live
    /// sessions, [`StoreError::ClientQuota`] beyond [`NewSession::max_per_client`] live
    /// sessions of its client.
    fn create(&self, session: NewSession) -> BoxFuture<'_, Result<SessionRecord, StoreError>>;

    /// The session, if it exists and was created by `subject` (another subject finds nothing);
    /// restarts its idle timeout.
    fn load<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>>;

    /// [`SessionStore::load`], and makes this replica the session's owner: deliveries for it
    /// come here from now on (a streamable `GET` stream opened on this replica).
    fn claim<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>>;

    /// Replaces the negotiated state of a session; `false` if it does not exist.
    fn save_state<'a>(
        &'a self,
        id: &'a str,
        state: &'a SessionState,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Restarts the idle timeout of sessions whose streams this replica holds open (called on
    /// the keep-alive tick); says for each whether it still exists.
    fn touch<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<bool>, StoreError>>;

    /// Deletes the session if `subject` created it and tells its owner
    /// ([`DeliveryEvent::SessionEnded`]); `false` if there was no such session.
    fn delete<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Takes `n` of the session's `max` slots for running calls, counted across replicas;
    /// `false` when fewer than `n` are free. Slots not given back within `ttl` (their replica
    /// died) are freed by the store.
    fn acquire_calls<'a>(
        &'a self,
        session_id: &'a str,
        n: usize,
        max: usize,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// [`SessionStore::load`] and, when the session is found, [`SessionStore::acquire_calls`]
    /// in one step (one round trip where the store can): the record and whether the slots
    /// were taken. The default makes the two calls.
    fn load_and_acquire<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
        slots: CallSlotRequest,
    ) -> BoxFuture<'a, Result<Option<(SessionRecord, bool)>, StoreError>> {
        Box::pin(async move {
            let Some(record) = self.load(id, subject).await? else {
                return Ok(None);
            };
            let taken = self
                .acquire_calls(id, slots.n, slots.max, slots.ttl)
                .await?;
            Ok(Some((record, taken)))
        })
    }

    /// Gives back `n` slots taken with [`SessionStore::acquire_calls`].
    fn release_calls<'a>(
        &'a self,
        session_id: &'a str,
        n: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// How many requests this store has sent to its backend so far (0 in memory).
    fn round_trips(&self) -> u64 {
        0
    }

    /// Whether the backend answers (a `PING` for Redis); `/readyz` reports this replica not
    /// ready while it fails. In memory there is nothing to reach.
    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Delivery between replicas: what one replica sends the replica holding a session's stream
/// (and the calls running elsewhere), and who is alive. Implementations: [`MemoryStore`]
/// (one replica: it delivers to itself), `mcp_redis::RedisStore`.
pub trait ReplicaBus: Send + Sync + std::fmt::Debug {
    /// Says this replica is alive for `ttl`: messages are forwarded only to live replicas
    /// ([`SessionStore::forward_to_replica`]). Called on every keep-alive tick.
    fn heartbeat(&self, ttl: Duration) -> BoxFuture<'_, Result<(), StoreError>> {
        let _ = ttl;
        Box::pin(async { Ok(()) })
    }

    /// Sends a server-to-client message to the replica that holds the session's stream;
    /// `false` if the session does not exist. Deliveries reach the owner once each, in the
    /// order this replica made them.
    fn deliver<'a>(
        &'a self,
        session_id: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Sends a client's message to replica `replica` (where the call it answers runs), as a
    /// [`DeliveryEvent::FromClient`] for `session_id`, if that replica is alive (its last
    /// [`SessionStore::heartbeat`] has not run out); `false` otherwise. Deliveries to one
    /// replica keep the order this replica made them in. The default refuses: a store that cannot do this
    /// leaves answers to server-to-client requests on the replica they reached.
    fn forward_to_replica<'a>(
        &'a self,
        replica: &'a str,
        session_id: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let _ = (replica, session_id, payload);
        Box::pin(async {
            Err(StoreError::failed(
                "this store cannot forward messages between replicas",
            ))
        })
    }

    /// Sends a client's message for `session_id` to every replica, this one included, as a
    /// [`DeliveryEvent::FromClient`]: best effort, at most once (for cancellations, whose
    /// call may run on any replica). The default refuses.
    fn broadcast<'a>(
        &'a self,
        session_id: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = (session_id, payload);
        Box::pin(async {
            Err(StoreError::failed(
                "this store cannot broadcast to replicas",
            ))
        })
    }

    /// The deliveries to this replica. One subscription at a time
    /// ([`StoreError::AlreadySubscribed`]); dropping it keeps what is queued for the next.
    fn subscribe(&self) -> BoxFuture<'_, Result<Deliveries, StoreError>>;
}

/// The events behind `Last-Event-ID`: each stream's newest events, bounded, with a time to
/// live. Sequence numbers of one stream are consecutive (0, 1, 2, ...), as the transports'
/// event logs number them; that is how a dropped event is told from one never written.
pub trait EventStore: Send + Sync + std::fmt::Debug {
    /// Stores event `seq` of a stream, keeping the stream's newest events within the store's
    /// bound and restarting its time to live; `false` if `seq` was already stored.
    fn append_event<'a>(
        &'a self,
        stream_key: &'a str,
        seq: u64,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The stored events of a stream after `seq` (the last one the client saw).
    fn read_events_after<'a>(
        &'a self,
        stream_key: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, Result<Replay, StoreError>>;
}

/// Everything a server keeps behind its sessions: [`SessionStore`], [`ReplicaBus`] and
/// [`EventStore`] together, implemented for every type that implements the three
/// (`McpHttpServer::session_store` takes one).
pub trait SharedStore: SessionStore + ReplicaBus + EventStore {}

impl<T: SessionStore + ReplicaBus + EventStore + ?Sized> SharedStore for T {}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `now + d`, saturating at a century (a limit of `Duration::MAX` means "never").
fn later(now: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    now.checked_add(d.min(CENTURY))
        .or_else(|| now.checked_add(Duration::from_secs(24 * 60 * 60)))
        .unwrap_or(now)
}

/// Bounds of a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Most sessions at once.
    pub max_sessions: usize,
    /// Most queued deliveries.
    pub delivery_queue: usize,
    /// How long [`SessionStore::deliver`] waits for room in a full delivery queue.
    pub delivery_wait: Duration,
    /// Most events kept per stream (the oldest go first).
    pub events_per_stream: usize,
    /// Most event streams (the one closest to expiry goes first).
    pub event_streams: usize,
    /// An event stream is forgotten this long after its last append.
    pub events_ttl: Duration,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            delivery_queue: 1024,
            delivery_wait: Duration::from_secs(5),
            events_per_stream: 256,
            event_streams: 10_000,
            events_ttl: Duration::from_secs(10 * 60),
        }
    }
}

#[derive(Debug)]
struct MemorySession {
    record: SessionRecord,
    client: String,
    last_seen: Instant,
    deadline: Instant,
}

impl MemorySession {
    fn is_expired(&self, now: Instant) -> bool {
        now >= self.deadline || now.duration_since(self.last_seen) >= self.record.idle_timeout
    }
}

/// The sessions of a [`MemoryStore`], with how many each client holds.
#[derive(Debug, Default)]
struct MemorySessions {
    by_id: HashMap<String, MemorySession>,
    per_client: HashMap<String, usize>,
}

impl MemorySessions {
    fn count_of(&self, client: &str) -> usize {
        self.per_client.get(client).copied().unwrap_or(0)
    }

    fn insert(&mut self, id: String, session: MemorySession) {
        *self.per_client.entry(session.client.clone()).or_insert(0) += 1;
        if let Some(old) = self.by_id.insert(id, session) {
            self.uncount(&old.client);
        }
    }

    fn remove(&mut self, id: &str) -> Option<MemorySession> {
        let session = self.by_id.remove(id)?;
        self.uncount(&session.client);
        Some(session)
    }

    fn uncount(&mut self, client: &str) {
        if let Some(n) = self.per_client.get_mut(client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(client);
            }
        }
    }

    fn retain_live(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, s)| s.is_expired(now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove(&id);
        }
    }
}

#[derive(Debug)]
struct MemoryStream {
    events: VecDeque<StoredEvent>,
    expires: Instant,
}

/// The in-process [`SessionStore`]: one replica, everything bounded ([`MemoryLimits`]).
#[derive(Debug)]
pub struct MemoryStore {
    limits: MemoryLimits,
    sessions: Mutex<MemorySessions>,
    /// Slots taken by running calls, per session.
    calls: Mutex<HashMap<String, usize>>,
    streams: Mutex<HashMap<String, MemoryStream>>,
    queue: DeliveryQueue,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The replica id of a [`MemoryStore`].
pub const MEMORY_REPLICA_ID: &str = "local";

impl MemoryStore {
    /// A store with the default limits.
    pub fn new() -> Self {
        Self::with_limits(MemoryLimits::default())
    }

    /// A store with the given limits (zeros count as 1).
    pub fn with_limits(limits: MemoryLimits) -> Self {
        Self {
            queue: DeliveryQueue::new(limits.delivery_queue),
            limits,
            sessions: Mutex::new(MemorySessions::default()),
            calls: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// How many sessions are stored (expired ones included until swept).
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).by_id.len()
    }

    fn create_now(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        if sessions
            .by_id
            .get(&new.id)
            .is_some_and(|s| !s.is_expired(now))
        {
            return Err(StoreError::SessionExists(new.id));
        }
        let cap = match new.max_sessions {
            0 => self.limits.max_sessions.max(1),
            n => n.min(self.limits.max_sessions.max(1)),
        };
        let full = |s: &MemorySessions| {
            s.by_id.len() >= cap
                || (new.max_per_client > 0 && s.count_of(&new.client) >= new.max_per_client)
        };
        if full(&sessions) {
            sessions.retain_live(now);
            if sessions.by_id.len() >= cap {
                return Err(StoreError::Full(format!("{cap} sessions")));
            }
            if full(&sessions) {
                return Err(StoreError::ClientQuota(new.max_per_client));
            }
        }
        let ms = now_ms();
        let record = SessionRecord {
            id: new.id.clone(),
            kind: new.kind,
            state: new.state,
            subject: new.subject,
            owner: MEMORY_REPLICA_ID.to_owned(),
            created_at_ms: ms,
            last_seen_ms: ms,
            idle_timeout: new.idle_timeout,
            max_lifetime: new.max_lifetime,
        };
        sessions.insert(
            new.id,
            MemorySession {
                record: record.clone(),
                client: new.client,
                last_seen: now,
                deadline: later(now, new.max_lifetime),
            },
        );
        Ok(record)
    }

    fn load_now(&self, id: &str, subject: Option<&str>) -> Option<SessionRecord> {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        let session = sessions.by_id.get_mut(id)?;
        if session.is_expired(now) {
            sessions.remove(id);
            return None;
        }
        if session.record.subject.as_deref() != subject {
            return None;
        }
        session.last_seen = now;
        session.record.last_seen_ms = now_ms();
        Some(session.record.clone())
    }

    fn append_now(&self, key: &str, seq: u64, payload: &str) -> bool {
        let now = Instant::now();
        let per_stream = self.limits.events_per_stream.max(1);
        let mut streams = lock(&self.streams);
        if !streams.contains_key(key) && streams.len() >= self.limits.event_streams.max(1) {
            streams.retain(|_, s| s.expires > now);
            if streams.len() >= self.limits.event_streams.max(1) {
                let soonest = streams
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    streams.remove(&k);
                }
            }
        }
        let stream = streams
            .entry(key.to_owned())
            .or_insert_with(|| MemoryStream {
                events: VecDeque::new(),
                expires: now,
            });
        if stream.expires <= now {
            stream.events.clear();
        }
        stream.expires = later(now, self.limits.events_ttl);
        if stream.events.iter().any(|e| e.seq == seq) {
            return false;
        }
        let at = stream.events.partition_point(|e| e.seq < seq);
        stream.events.insert(
            at,
            StoredEvent {
                seq,
                payload: payload.to_owned(),
            },
        );
        while stream.events.len() > per_stream {
            stream.events.pop_front();
        }
        true
    }

    fn read_now(&self, key: &str, seq: u64) -> Replay {
        let now = Instant::now();
        let mut streams = lock(&self.streams);
        let Some(stream) = streams.get(key) else {
            return Replay::UnknownStream;
        };
        if stream.expires <= now {
            streams.remove(key);
            return Replay::UnknownStream;
        }
        match stream.events.front() {
            None => Replay::UnknownStream,
            Some(first) if first.seq > seq.saturating_add(1) => Replay::Lagged,
            Some(_) => Replay::Events(
                stream
                    .events
                    .iter()
                    .filter(|e| e.seq > seq)
                    .cloned()
                    .collect(),
            ),
        }
    }

    async fn deliver_event(
        &self,
        session_id: &str,
        event: DeliveryEvent,
    ) -> Result<(), StoreError> {
        let delivery = Delivery {
            session_id: session_id.to_owned(),
            event,
        };
        match self
            .queue
            .sender
            .send_timeout(delivery, self.limits.delivery_wait)
            .await
        {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(StoreError::Full(format!(
                "delivery queue of {} still full after {:?}",
                self.limits.delivery_queue, self.limits.delivery_wait
            ))),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(StoreError::Closed),
        }
    }
}

impl SessionStore for MemoryStore {
    fn replica_id(&self) -> &str {
        MEMORY_REPLICA_ID
    }

    fn create(&self, session: NewSession) -> BoxFuture<'_, Result<SessionRecord, StoreError>> {
        let result = self.create_now(session);
        Box::pin(async move { result })
    }

    fn load<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        let result = self.load_now(id, subject);
        Box::pin(async move { Ok(result) })
    }

    fn claim<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        // One replica: it owns everything already.
        self.load(id, subject)
    }

    fn save_state<'a>(
        &'a self,
        id: &'a str,
        state: &'a SessionState,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let found = match lock(&self.sessions).by_id.get_mut(id) {
            Some(session) if !session.is_expired(Instant::now()) => {
                session.record.state = state.clone();
                true
            }
            _ => false,
        };
        Box::pin(async move { Ok(found) })
    }

    fn touch<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<bool>, StoreError>> {
        let now = Instant::now();
        let ms = now_ms();
        let mut sessions = lock(&self.sessions);
        let alive = ids
            .iter()
            .map(|id| match sessions.by_id.get_mut(id) {
                Some(s) if !s.is_expired(now) => {
                    s.last_seen = now;
                    s.record.last_seen_ms = ms;
                    true
                }
                Some(_) => {
                    sessions.remove(id);
                    false
                }
                None => false,
            })
            .collect();
        Box::pin(async move { Ok(alive) })
    }

    fn delete<'a>(
        &'a self,
        id: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let removed = {
                let now = Instant::now();
                let mut sessions = lock(&self.sessions);
                match sessions.by_id.get(id) {
                    Some(s) if s.is_expired(now) => {
                        sessions.remove(id);
                        false
                    }
                    Some(s) if s.record.subject.as_deref() == subject => {
                        sessions.remove(id);
                        true
                    }
                    _ => false,
                }
            };
            if removed {
                self.deliver_event(id, DeliveryEvent::SessionEnded).await?;
            }
            Ok(removed)
        })
    }

    fn acquire_calls<'a>(
        &'a self,
        session_id: &'a str,
        n: usize,
        max: usize,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut calls = lock(&self.calls);
        let held = calls.entry(session_id.to_owned()).or_insert(0);
        let taken = *held + n <= max;
        if taken {
            *held += n;
        } else if *held == 0 {
            calls.remove(session_id);
        }
        Box::pin(async move { Ok(taken) })
    }

    fn release_calls<'a>(
        &'a self,
        session_id: &'a str,
        n: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut calls = lock(&self.calls);
        if let Some(held) = calls.get_mut(session_id) {
            *held = held.saturating_sub(n);
            if *held == 0 {
                calls.remove(session_id);
            }
        }
        Box::pin(async { Ok(()) })
    }
}

impl ReplicaBus for MemoryStore {
    fn deliver<'a>(
        &'a self,
        session_id: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let exists = lock(&self.sessions)
                .by_id
                .get(session_id)
                .is_some_and(|s| !s.is_expired(Instant::now()));
            if !exists {
                return Ok(false);
            }
            self.deliver_event(session_id, DeliveryEvent::Message(payload.to_owned()))
                .await?;
            Ok(true)
        })
    }

    fn forward_to_replica<'a>(
        &'a self,
        replica: &'a str,
        session_id: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            // One replica: no other is alive.
            if replica != MEMORY_REPLICA_ID {
                return Ok(false);
            }
            self.deliver_event(session_id, DeliveryEvent::FromClient(payload.to_owned()))
                .await?;
            Ok(true)
        })
    }

    fn broadcast<'a>(
        &'a self,
        session_id: &'a str,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        // One replica: it is everyone.
        Box::pin(async move {
            self.deliver_event(session_id, DeliveryEvent::FromClient(payload.to_owned()))
                .await
        })
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<Deliveries, StoreError>> {
        let result = self.queue.subscribe();
        Box::pin(async move { result })
    }
}

impl EventStore for MemoryStore {
    fn append_event<'a>(
        &'a self,
        stream_key: &'a str,
        seq: u64,
        payload: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let stored = self.append_now(stream_key, seq, payload);
        Box::pin(async move { Ok(stored) })
    }

    fn read_events_after<'a>(
        &'a self,
        stream_key: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, Result<Replay, StoreError>> {
        let replay = self.read_now(stream_key, seq);
        Box::pin(async move { Ok(replay) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_proto::ProtocolVersion;

    fn alice(id: &str) -> NewSession {
        NewSession::new(id, TransportKind::StreamableHttp).subject(Some("alice".into()))
    }

    #[tokio::test]
    async fn create_load_save_delete() {
        let store = MemoryStore::new();
        let created = store.create(alice("s1")).await.unwrap();
        assert_eq!(created.owner, "local");
        assert_eq!(created.kind, TransportKind::StreamableHttp);
        assert_eq!(created.subject.as_deref(), Some("alice"));
        assert!(matches!(
            store.create(alice("s1")).await,
            Err(StoreError::SessionExists(s)) if s == "s1"
        ));

        let state = SessionState {
            protocol_version: Some(ProtocolVersion::V2025_03_26),
            initialized: true,
            ..SessionState::default()
        };
        assert!(store.save_state("s1", &state).await.unwrap());
        assert!(!store.save_state("nope", &state).await.unwrap());
        let loaded = store.load("s1", Some("alice")).await.unwrap().unwrap();
        assert_eq!(loaded.state, state);
        assert_eq!(loaded.created_at_ms, created.created_at_ms);
        assert!(loaded.last_seen_ms >= created.last_seen_ms);

        // Another subject, or none: not found, and cannot delete it.
        assert_eq!(store.load("s1", Some("bob")).await.unwrap(), None);
        assert_eq!(store.load("s1", None).await.unwrap(), None);
        assert!(!store.delete("s1", Some("bob")).await.unwrap());

        let mut deliveries = store.subscribe().await.unwrap();
        assert!(store.delete("s1", Some("alice")).await.unwrap());
        assert!(!store.delete("s1", Some("alice")).await.unwrap());
        assert_eq!(store.load("s1", Some("alice")).await.unwrap(), None);
        assert_eq!(
            deliveries.try_recv(),
            Some(Delivery {
                session_id: "s1".into(),
                event: DeliveryEvent::SessionEnded
            })
        );
        assert_eq!(deliveries.try_recv(), None);
    }

    #[tokio::test]
    async fn idle_timeout_and_lifetime_expire_sessions() {
        let store = MemoryStore::new();
        store
            .create(alice("idle").idle_timeout(Duration::from_millis(400)))
            .await
            .unwrap();
        store
            .create(
                alice("life")
                    .idle_timeout(Duration::from_secs(60))
                    .max_lifetime(Duration::from_millis(700)),
            )
            .await
            .unwrap();
        // Uses keep "idle" alive past its idle timeout; "life" ends at its lifetime anyway.
        let started = std::time::Instant::now();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(store.load("idle", Some("alice")).await.unwrap().is_some());
            assert!(store.load("life", Some("alice")).await.unwrap().is_some());
        }
        tokio::time::sleep(Duration::from_millis(700).saturating_sub(started.elapsed())).await;
        assert!(store.load("idle", Some("alice")).await.unwrap().is_some());
        assert_eq!(store.load("life", Some("alice")).await.unwrap(), None);
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(store.load("idle", Some("alice")).await.unwrap(), None);
        assert_eq!(
            store.touch(&["idle".into(), "life".into()]).await.unwrap(),
            vec![false, false]
        );
        assert!(!store.deliver("idle", "{}").await.unwrap());
    }

    #[tokio::test]
    async fn unbounded_limits_mean_never() {
        let store = MemoryStore::with_limits(MemoryLimits {
            events_ttl: Duration::MAX,
            ..MemoryLimits::default()
        });
        let forever = alice("forever")
            .idle_timeout(Duration::MAX)
            .max_lifetime(Duration::MAX);
        store.create(forever).await.unwrap();
        let loaded = store.load("forever", Some("alice")).await.unwrap().unwrap();
        assert_eq!(loaded.max_lifetime, Duration::MAX);
        assert!(store.append_event("k", 0, "{}").await.unwrap());
        assert_eq!(
            store.read_events_after("k", 0).await.unwrap(),
            Replay::Events(vec![])
        );
    }

    #[tokio::test]
    async fn sessions_are_bounded() {
        let store = MemoryStore::with_limits(MemoryLimits {
            max_sessions: 2,
            ..MemoryLimits::default()
        });
        store.create(alice("a")).await.unwrap();
        store
            .create(alice("b").idle_timeout(Duration::from_millis(20)))
            .await
            .unwrap();
        assert!(matches!(
            store.create(alice("c")).await,
            Err(StoreError::Full(s)) if s == "2 sessions"
        ));
        tokio::time::sleep(Duration::from_millis(40)).await;
        // "b" expired: its room is reused.
        store.create(alice("c")).await.unwrap();
        assert_eq!(store.session_count(), 2);
    }

    #[tokio::test]
    async fn deliveries_arrive_in_order_and_survive_resubscription() {
        let store = MemoryStore::with_limits(MemoryLimits {
            delivery_queue: 4,
            delivery_wait: Duration::from_millis(50),
            ..MemoryLimits::default()
        });
        store.create(alice("s")).await.unwrap();
        assert!(!store.deliver("other", "x").await.unwrap());
        for i in 0..4 {
            assert!(store.deliver("s", &i.to_string()).await.unwrap());
        }
        // Queue full: the producer waits, then gets a specific error.
        let started = std::time::Instant::now();
        assert!(matches!(
            store.deliver("s", "4").await,
            Err(StoreError::Full(s)) if s == "delivery queue of 4 still full after 50ms"
        ));
        assert!(started.elapsed() >= Duration::from_millis(50));

        let mut first = store.subscribe().await.unwrap();
        assert!(matches!(
            store.subscribe().await.unwrap_err(),
            StoreError::AlreadySubscribed
        ));
        let got = first.recv().await.unwrap();
        assert_eq!(got.event, DeliveryEvent::Message("0".into()));
        drop(first);
        // What was queued is kept for the next subscription.
        let mut second = store.subscribe().await.unwrap();
        let rest: Vec<DeliveryEvent> = (0..3)
            .filter_map(|_| second.try_recv())
            .map(|d| d.event)
            .collect();
        assert_eq!(
            rest,
            ["1", "2", "3"]
                .map(|s| DeliveryEvent::Message(s.into()))
                .to_vec()
        );
        assert_eq!(second.try_recv(), None);
        drop(store);
        assert_eq!(second.recv().await, None);
    }

    #[tokio::test]
    async fn event_store_is_bounded_and_replays_after_a_position() {
        let store = MemoryStore::with_limits(MemoryLimits {
            events_per_stream: 3,
            event_streams: 2,
            events_ttl: Duration::from_millis(400),
            ..MemoryLimits::default()
        });
        assert_eq!(
            store.read_events_after("s/1", 0).await.unwrap(),
            Replay::UnknownStream
        );
        for seq in 0..5 {
            assert!(
                store
                    .append_event("s/1", seq, &format!("e{seq}"))
                    .await
                    .unwrap()
            );
        }
        assert!(!store.append_event("s/1", 4, "again").await.unwrap());
        let ev = |seq: u64| StoredEvent {
            seq,
            payload: format!("e{seq}"),
        };
        // Kept: 2, 3, 4. After 1: all of them; after 3: 4; after 4: nothing new.
        assert_eq!(
            store.read_events_after("s/1", 1).await.unwrap(),
            Replay::Events(vec![ev(2), ev(3), ev(4)])
        );
        assert_eq!(
            store.read_events_after("s/1", 3).await.unwrap(),
            Replay::Events(vec![ev(4)])
        );
        assert_eq!(
            store.read_events_after("s/1", 4).await.unwrap(),
            Replay::Events(vec![])
        );
        // Event 1 was dropped: a client that saw only 0 cannot resume.
        assert_eq!(
            store.read_events_after("s/1", 0).await.unwrap(),
            Replay::Lagged
        );
        // At most two streams: a third pushes out the one closest to expiry.
        store.append_event("s/2", 0, "x").await.unwrap();
        store.append_event("s/3", 0, "y").await.unwrap();
        assert_eq!(
            store.read_events_after("s/1", 4).await.unwrap(),
            Replay::UnknownStream
        );
        // Time to live.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(
            store.read_events_after("s/3", 0).await.unwrap(),
            Replay::UnknownStream
        );
    }

    #[test]
    fn transport_kinds_round_trip_and_errors_say_what_failed() {
        for kind in [TransportKind::LegacySse, TransportKind::StreamableHttp] {
            assert_eq!(TransportKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TransportKind::parse("grpc"), None);
        assert_eq!(
            StoreError::unavailable("timed out after 2s").to_string(),
            "session store unavailable: timed out after 2s"
        );
        assert!(StoreError::unavailable("").is_unavailable());
        assert!(!StoreError::failed("").is_unavailable());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = StoreError::unavailable("cannot reach the store").with_source(io);
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(
            source
                .downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(
            mcp_proto::error_chain(&err),
            "session store unavailable: cannot reach the store: refused"
        );
        // Variants without a cause stay as they are.
        assert!(
            std::error::Error::source(&StoreError::Closed.with_source(String::from("x"))).is_none()
        );
    }
}
