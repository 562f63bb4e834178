//! Memory per idle legacy SSE session: the server's RSS before and after opening (and
//! initializing) many sessions that then stay idle.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};

use mcp_loadgen::{EchoSession, HttpConnection, LegacyStream};
use mcp_stack_tests::process;

/// Streams opened at once.
const OPEN_CONCURRENCY: usize = 64;
/// Connections the `initialize` POSTs share.
const POST_CONNECTIONS: usize = 16;
/// How long the server gets to settle before its RSS is read.
const SETTLE: Duration = Duration::from_millis(500);

/// What each idle connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdleKind {
    /// A legacy SSE session, stream open and initialized (what the idle target is about).
    Initialized,
    /// A legacy SSE stream with its `endpoint` event read, never initialized.
    StreamOnly,
    /// A keep-alive connection to the echo server after one call: the cost of an idle
    /// HTTP/1.1 connection in axum/hyper alone.
    EchoConnection,
}

/// What the idle-session measurement found.
#[derive(Debug, Clone)]
pub struct IdleReport {
    /// What each connection holds.
    pub kind: IdleKind,
    /// Sessions held open.
    pub sessions: usize,
    /// Server RSS before opening them.
    pub rss_before_kib: u64,
    /// Server RSS with all of them open and idle.
    pub rss_open_kib: u64,
    /// Server RSS after they closed.
    pub rss_closed_kib: u64,
    /// How long opening and initializing took.
    pub setup: Duration,
}

impl IdleReport {
    /// KiB of server memory per idle session.
    pub fn kib_per_session(&self) -> f64 {
        self.rss_open_kib.saturating_sub(self.rss_before_kib) as f64 / self.sessions.max(1) as f64
    }
}

/// Opens `count` idle connections of `kind` on `addr` (for [`IdleKind::Initialized`]: legacy SSE
/// streams with their `endpoint` event read, each initialized over a few shared POST
/// connections; `addr` is the echo server's for [`IdleKind::EchoConnection`]) and reads the RSS
/// of `server_pid` before, while they are open and after they closed. The opening must finish
/// within `limit`.
pub async fn measure_idle(
    kind: IdleKind,
    addr: SocketAddr,
    server_pid: u32,
    count: usize,
    limit: Duration,
) -> anyhow::Result<IdleReport> {
    tokio::time::sleep(SETTLE).await;
    let rss_before_kib = process::process_rss_kib(server_pid)?;
    let started = Instant::now();
    let held = tokio::time::timeout(limit, open_idle(kind, addr, count))
        .await
        .with_context(|| format!("opening {count} idle connections took over {limit:?}"))??;
    let setup = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let rss_open_kib = process::process_rss_kib(server_pid)?;
    drop(held);
    tokio::time::sleep(SETTLE * 2).await;
    let rss_closed_kib = process::process_rss_kib(server_pid)?;
    Ok(IdleReport {
        kind,
        sessions: count,
        rss_before_kib,
        rss_open_kib,
        rss_closed_kib,
        setup,
    })
}

/// What keeps idle connections open until dropped.
#[derive(Debug)]
enum Held {
    Streams { _open: Vec<LegacyStream> },
    Echo { _open: Vec<EchoSession> },
}

async fn open_idle(kind: IdleKind, addr: SocketAddr, count: usize) -> anyhow::Result<Held> {
    if kind == IdleKind::EchoConnection {
        let sessions = futures::stream::iter(0..count)
            .map(|_| async move {
                let mut session = EchoSession::open(addr, super::server::ECHO_PATH).await?;
                session.call(&super::dice_call(), 1).await?;
                anyhow::Ok(session)
            })
            .buffer_unordered(OPEN_CONCURRENCY)
            .try_collect()
            .await
            .context("opening an idle echo connection")?;
        return Ok(Held::Echo { _open: sessions });
    }
    let streams: Vec<LegacyStream> = futures::stream::iter(0..count)
        .map(|_| LegacyStream::open(addr, None))
        .buffer_unordered(OPEN_CONCURRENCY)
        .try_collect()
        .await
        .context("opening an idle SSE session")?;
    if kind == IdleKind::StreamOnly {
        return Ok(Held::Streams { _open: streams });
    }
    let opening = async {
        let mut groups: Vec<Vec<LegacyStream>> =
            (0..POST_CONNECTIONS).map(|_| Vec::new()).collect();
        for (i, stream) in streams.into_iter().enumerate() {
            groups[i % POST_CONNECTIONS].push(stream);
        }
        let tasks: Vec<_> = groups
            .into_iter()
            .map(|mut group| {
                tokio::spawn(async move {
                    let mut posts = HttpConnection::open(addr).await?;
                    for stream in &mut group {
                        stream.initialize(&mut posts, None).await?;
                    }
                    anyhow::Ok(group)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for task in tasks {
            all.extend(task.await.context("an initializing task failed")??);
        }
        anyhow::Ok(all)
    };
    let streams = opening.await.context("initializing an idle SSE session")?;
    Ok(Held::Streams { _open: streams })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_sessions_are_counted_in_server_memory() {
        let server = mcp_sse::McpHttpServer::new(super::super::server::dice_service().unwrap())
            .spawn("127.0.0.1:0")
            .await
            .unwrap();
        let report = measure_idle(
            IdleKind::Initialized,
            server.local_addr(),
            std::process::id(),
            40,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert_eq!(report.sessions, 40);
        assert!(report.rss_before_kib > 0 && report.rss_open_kib > 0);
        // Closed streams end their sessions.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while server.server().session_count() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(server.server().session_count(), 0);
        server.shutdown().await.unwrap();
    }
}
