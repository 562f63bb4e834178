//! What a [`crate::RedisStore`] needs to know: where Redis is, who this replica is, and the
//! bounds and timeouts of every operation.

use std::time::Duration;

/// Configuration of a [`crate::RedisStore`]; [`RedisConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// This replica's id: the owner of its sessions, and the name of its delivery stream.
    /// Default: 16 random hex digits, new for every process.
    pub replica_id: String,
    /// Prefix of every key (default `mcp`), so several deployments can share one Redis.
    pub key_prefix: String,
    /// Budget of every operation, connecting included (default 2 s); past it the operation
    /// fails with [`mcp_sse::StoreError::Unavailable`].
    pub op_timeout: Duration,
    /// How long one blocking read of this replica's deliveries waits (default 2 s).
    pub delivery_block: Duration,
    /// Bound of the local queue between the delivery reader and [`mcp_sse::store::Deliveries`]
    /// (default 1024); when it is full the reader stops reading, and deliveries wait in Redis.
    pub delivery_queue: usize,
    /// Bound of each replica's delivery stream in Redis (default 10 000, trimmed approximately,
    /// read entries trimmed by the reader).
    pub delivery_stream_max: usize,
    /// A replica's delivery stream expires this long after the last delivery to it (default
    /// 1 hour): what a dead replica leaves behind goes away.
    pub delivery_ttl: Duration,
    /// Most events kept per event stream (default 256).
    pub events_per_stream: usize,
    /// An event stream expires this long after its last append (default 10 minutes).
    pub events_ttl: Duration,
}

impl RedisConfig {
    /// The defaults, for Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            replica_id: format!("{:016x}", rand::random::<u64>()),
            key_prefix: "mcp".to_owned(),
            op_timeout: Duration::from_secs(2),
            delivery_block: Duration::from_secs(2),
            delivery_queue: 1024,
            delivery_stream_max: 10_000,
            delivery_ttl: Duration::from_secs(60 * 60),
            events_per_stream: 256,
            events_ttl: Duration::from_secs(10 * 60),
        }
    }

    /// Sets the replica id.
    pub fn replica_id(mut self, id: impl Into<String>) -> Self {
        self.replica_id = id.into();
        self
    }

    /// Sets the key prefix.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the budget of every operation.
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Sets how long one blocking read of deliveries waits.
    pub fn delivery_block(mut self, block: Duration) -> Self {
        self.delivery_block = block;
        self
    }

    /// Sets the bound of the local delivery queue.
    pub fn delivery_queue(mut self, capacity: usize) -> Self {
        self.delivery_queue = capacity;
        self
    }

    /// Sets the bound of each event stream.
    pub fn events_per_stream(mut self, max: usize) -> Self {
        self.events_per_stream = max;
        self
    }

    /// Sets the time to live of event streams.
    pub fn events_ttl(mut self, ttl: Duration) -> Self {
        self.events_ttl = ttl;
        self
    }

    /// Sets the time to live of delivery streams.
    pub fn delivery_ttl(mut self, ttl: Duration) -> Self {
        self.delivery_ttl = ttl;
        self
    }

    /// Checks the limits: what is wrong, in the user's terms.
    pub(crate) fn check(&self) -> Result<(), String> {
        let nonzero = [
            ("op_timeout", self.op_timeout.is_zero()),
            ("delivery_block", self.delivery_block.is_zero()),
            ("delivery_queue", self.delivery_queue == 0),
            ("delivery_stream_max", self.delivery_stream_max == 0),
            ("delivery_ttl", self.delivery_ttl.is_zero()),
            ("events_per_stream", self.events_per_stream == 0),
            ("events_ttl", self.events_ttl.is_zero()),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, zero)| *zero) {
            return Err(format!("{name} must be greater than zero"));
        }
        if self.replica_id.is_empty() {
            return Err("replica_id must not be empty".into());
        }
        Ok(())
    }
}
