//! # mcp-redis: replicas of one MCP server sharing sessions through Redis
//!
//! [`RedisStore`] implements the three store traits of `mcp-sse`, the seam through which its
//! transports keep what replicas must share: session records with their quotas and in-flight
//! slots ([`mcp_sse::store::SessionStore`]), delivery of server-to-client messages to the
//! replica holding a session's stream ([`mcp_sse::store::ReplicaBus`]), and the event store
//! behind `Last-Event-ID` ([`mcp_sse::store::EventStore`]). By default a server keeps its
//! sessions in an in-process `MemoryStore`; one builder call,
//! `McpHttpServer::session_store(Arc::new(redis_store))`, makes it a replica.
//!
//! ## Layout in Redis (prefix `mcp`, see [`RedisConfig::key_prefix`])
//!
//! - `mcp:session:<id>`: a hash (transport, `SessionState` as JSON, subject, owner replica,
//!   created/seen times, limits) whose `PEXPIRE` is always `min(idle timeout, lifetime left)`:
//!   Redis removes idle and over-age sessions by itself, whichever replica died.
//! - `mcp:deliveries:<replica>`: a Redis Stream per replica, the deliveries to it; capped
//!   (`MAXLEN ~`), trimmed by its reader, expiring an hour after the last delivery.
//! - `mcp:broadcast`: a Redis Stream every replica reads (cancellations, and the id of every
//!   task that changed, which wakes whatever waits for that task on any replica), capped at
//!   about 1 000 entries, expiring an hour after the last one.
//! - `mcp:events:<stream key>`: a sorted set per resumable stream (score = sequence number),
//!   capped and expiring.
//! - `mcp:quota:all` and `mcp:quota:client:<client>`: sorted sets of live session keys scored
//!   by when each expires (kept current on every load and touch): the global and per-client
//!   session caps.
//! - `mcp:calls:<id>`: the in-flight slots a session's calls hold, counted across replicas,
//!   expiring after the call timeout (a dead replica's slots come back).
//! - `mcp:replicas`: a sorted set of replica ids scored by when their heartbeat runs out:
//!   answers are forwarded only to live replicas, and a task whose replica's heartbeat ran out
//!   is failed or, for a restartable tool, taken over by another replica.
//! - `mcp:task:<id>`, `mcp:tasks:subject:<subject>`, `mcp:tasks:restartable`: task records
//!   (JSON, expiring with the record), each subject's task ids (its limit of unfinished tasks,
//!   2025-11-25 `tasks/list`), and the unfinished tasks of restartable tools scored by expiry
//!   (where survivors look for tasks of dead replicas).
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
//! ## Serving replicas
//!
//! Give each replica's server its own store (`McpHttpServer::session_store`); every replica
//! serves the same tools, and any of them answers any request of any session:
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcp_redis::{RedisConfig, RedisStore};
//!
//! # async fn run(tools: mcp_proto::McpServer) -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! mcp_sse::McpHttpServer::new(tools)
//!     .session_store(Arc::new(store))
//!     .serve("127.0.0.1:8000", mcp_sse::ctrl_c())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! What each request costs in Redis round trips:
//!
//! - **Legacy SSE, `GET /sse` on A, `POST /messages/` on B**: A `create`s the session (owner A)
//!   and `touch`es the sessions whose streams it holds on each keep-alive tick. B `load`s it
//!   with the caller's subject (1 round trip), runs the call, and `deliver`s the response (1
//!   round trip); A writes it to the stream. On A itself: 1 round trip (the `load`).
//! - **Streamable HTTP, initialized on A, used on B**: A `create`s the session once
//!   `initialize` has run; a `POST` on any replica `load`s it (1 round trip) and answers on
//!   its own response stream. A request that changes the negotiated state (`initialized`,
//!   `logging/setLevel`, subscriptions) saves it (1 more). A `GET` stream opened on A
//!   `claim`s the session, so what B sends the session outside a request (list changes,
//!   resource updates) is `deliver`ed to A.
//! - **Answers and cancellations**: a client's answer to a server-to-client request carries
//!   an id naming the replica that asked; another replica `forward_to_replica`s it (1 round
//!   trip). A `notifications/cancelled` is `broadcast` to every replica (1 round trip; every
//!   replica's delivery read also follows the `mcp:broadcast` stream), and the one running the
//!   call cancels it.
//! - **`DELETE` on C**: `delete` with the caller's subject (1 round trip) removes the record and
//!   queues `SessionEnded` for the owner, which closes its streams.
//! - **`Last-Event-ID` on any replica**: events of a response that is streamed (not answered
//!   at once) and of `GET` streams are stored under `<session>/<stream id>` as they are
//!   written; any replica replays them and follows the stream until its response.
//! - **Redis down**: every operation fails with `StoreError::Unavailable` within
//!   [`RedisConfig::op_timeout`] (transports answer 503 with a JSON body); the next operation
//!   after Redis is back reconnects, with no restart.
//!
//! The store operations, replica by replica:
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcp_redis::{RedisConfig, RedisStore};
//! use mcp_sse::TransportKind;
//! use mcp_sse::store::{DeliveryEvent, NewSession, ReplicaBus, SessionStore, SharedStore};
//!
//! # async fn run() -> Result<(), mcp_sse::StoreError> {
//! // Replica A holds the session's stream; replica B runs a call for it.
//! let a: Arc<dyn SharedStore> =
//!     Arc::new(RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?);
//! let b = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let mut deliveries = a.subscribe().await?;
//! let session = NewSession::new("0123abcd", TransportKind::LegacySse).subject(Some("alice".into()));
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
#[cfg(test)]
mod health_tests;
mod scripts;
#[cfg(test)]
mod server_tests;
mod store;
#[cfg(test)]
mod task_server_tests;
#[cfg(test)]
mod test_redis;
#[cfg(test)]
mod tests;

pub use config::RedisConfig;
pub use store::RedisStore;
