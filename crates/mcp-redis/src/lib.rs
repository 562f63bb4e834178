//! # mcp-redis: replicas of one MCP server sharing sessions through Redis
//!
//! [`RedisStore`] implements [`mcp_sse::store::SessionStore`], the seam through which the
//! `mcp-sse` transports keep what replicas must share: session records, delivery of
//! server-to-client messages to the replica holding a session's stream, and the event store
//! behind `Last-Event-ID`. In-memory ([`mcp_sse::MemoryStore`]) stays the default; a server
//! switches by being given an `Arc<RedisStore>` instead.
//!
//! ## Layout in Redis (prefix `mcp`, see [`RedisConfig::key_prefix`])
//!
//! - `mcp:session:<id>`: a hash (transport, `SessionState` as JSON, subject, owner replica,
//!   created/seen times, limits) whose `PEXPIRE` is always `min(idle timeout, lifetime left)`:
//!   Redis removes idle and over-age sessions by itself, whichever replica died.
//! - `mcp:deliveries:<replica>`: a Redis Stream per replica, the deliveries to it; capped
//!   (`MAXLEN ~`), trimmed by its reader, expiring an hour after the last delivery.
//! - `mcp:events:<stream key>`: a sorted set per resumable stream (score = sequence number),
//!   capped and expiring.
//!
//! Every operation is one Lua script (`EVALSHA`), so it is atomic and costs one round trip;
//! times come from Redis's clock. [`mcp_sse::store::SessionStore::round_trips`] counts them.
//!
//! ## Why Streams, not Pub/Sub, for delivery
//!
//! Pub/Sub drops whatever is published while the subscriber's connection is down (a Redis
//! restart, a network blip), so a response could be lost. Each replica instead reads its own
//! stream with `XREAD` from the id of the last entry it took: a read that fails is repeated
//! from the same id (nothing skipped, nothing read twice), and entries are appended in the
//! order the deliveries were made, so a session's messages arrive in order, exactly once. A
//! delivery whose request timed out is reported as `Unavailable` and not retried, so a retry
//! cannot duplicate it. What stays at-most-once: entries lost when Redis itself restarts
//! without persistence, and entries trimmed when a replica falls more than
//! [`RedisConfig::delivery_stream_max`] behind.
//!
//! ## How the server uses it (wiring still to do in `mcp-sse/src/server`)
//!
//! - **Legacy SSE, `GET /sse` on A, `POST /messages/` on B**: A `create`s the session (owner A)
//!   and `touch`es its open sessions on each keep-alive tick. B `load`s it with the caller's
//!   subject (1 round trip), runs the call, and `deliver`s the response (1 round trip); A's
//!   `subscribe` loop writes it to the stream. When B is A, the response goes straight to the
//!   local stream: 1 round trip.
//! - **Streamable HTTP, initialized on A, used on B**: A `create`s the session and
//!   `save_state`s after `initialize`; a `POST` on B `load`s it (1 round trip) and answers on its
//!   own response stream. A `GET` stream opened on A `claim`s the session (owner A), so what B
//!   produces for the session is `deliver`ed to A.
//! - **`DELETE` on C**: `delete` with the caller's subject (1 round trip) removes the record and
//!   queues `SessionEnded` for the owner, which closes its streams.
//! - **`Last-Event-ID` on any replica**: the replica holding a stream `append_event`s each event
//!   under `<session>/<stream id>`; any replica `read_events_after` the client's last id.
//! - **Redis down**: every operation fails with `StoreError::Unavailable` within
//!   [`RedisConfig::op_timeout`] (transports answer 503 with a JSON body); the next operation
//!   after Redis is back reconnects, with no restart.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcp_redis::{RedisConfig, RedisStore};
//! use mcp_sse::store::{DeliveryEvent, NewSession, SessionStore, TransportKind};
//!
//! # async fn run() -> Result<(), mcp_sse::StoreError> {
//! // Replica A holds the session's stream; replica B runs a call for it.
//! let a: Arc<dyn SessionStore> =
//!     Arc::new(RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?);
//! let b = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let mut deliveries = a.subscribe().await?;
//! let session = NewSession::new("0123abcd", TransportKind::Legacy).subject(Some("alice".into()));
//! a.create(session).await?;
//!
//! if let Some(record) = b.load("0123abcd", Some("alice")).await? {
//!     assert_eq!(record.owner, a.replica_id());
//!     b.deliver(&record.id, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).await?;
//! }
//! while let Some(delivery) = deliveries.recv().await {
//!     if let DeliveryEvent::Message(json) = delivery.event {
//!         // write `json` as an SSE `message` event on the stream of `delivery.session_id`
//!         let _ = json;
//!     }
//! }
//! # Ok(()) }
//! ```

mod config;
mod scripts;
mod store;
#[cfg(test)]
mod test_redis;
#[cfg(test)]
mod tests;

pub use config::RedisConfig;
pub use store::RedisStore;
