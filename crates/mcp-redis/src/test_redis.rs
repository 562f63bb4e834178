//! The tests' `redis-server`: the workspace's one helper ([`RedisServer::for_test`]: a free
//! loopback port, a temporary directory, no persistence, one clear line when it is not
//! installed), with the few calls these tests make.

use mcp_stack_tests::redis::RedisServer;

/// One `redis-server` process, stopped (and its directory removed) on drop.
#[derive(Debug)]
pub(crate) struct TestRedis(RedisServer);

impl TestRedis {
    /// Starts `redis-server` on a free port.
    pub(crate) fn start() -> Self {
        Self(RedisServer::for_test())
    }

    /// `redis://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        self.0.url()
    }

    /// Kills the server (as a crash would: SIGKILL) and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        self.0.kill();
    }

    /// Starts the server again on the same port (empty: no persistence).
    pub(crate) fn restart(&mut self) {
        self.0.start_again().unwrap();
    }

    /// A plain connection, to look at keys directly.
    pub(crate) async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}
