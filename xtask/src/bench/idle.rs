//! Memory per idle session: the server's RSS before and after opening (and initializing) many
//! sessions that then stay idle, for each kind of idle connection the targets name.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};

use mcp_loadgen::{EchoSession, HttpConnection, LegacySession, LegacyStream, StreamableSession};
use mcp_stack_tests::process;

/// Sessions opened at once.
const OPEN_CONCURRENCY: usize = 64;
/// Connections the `initialize` POSTs share for [`IdleKind::SseSharedPosts`].
const POST_CONNECTIONS: usize = 16;
/// How long the server gets to settle before its RSS is read.
const SETTLE: Duration = Duration::from_millis(500);

/// What each idle session holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum IdleKind {
    /// A keep-alive connection to the echo server after one call: the cost of an idle
    /// HTTP/1.1 connection in axum/hyper alone (the baseline).
    Echo,
    /// A streamable HTTP session, initialized, its client keeping the keep-alive connection it
    /// initialized on (the streamable target).
    Streamable,
    /// A streamable HTTP session, initialized, its connection then closed: the session alone.
    StreamableClosed,
    /// A legacy SSE session, initialized, its client keeping the stream and a keep-alive
    /// connection of its own for the POSTs (the legacy SSE target).
    Sse,
    /// A legacy SSE session, initialized over a few POST connections shared by all sessions:
    /// the stream and the session alone.
    SseSharedPosts,
    /// A legacy SSE stream with its `endpoint` event read, never initialized.
    SseStreamOnly,
}

impl IdleKind {
    /// What the report calls it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Echo => "keep-alive connections to the echo server",
            Self::Streamable => "streamable sessions (initialized, connection kept)",
            Self::StreamableClosed => "streamable sessions (initialized, connection closed)",
            Self::Sse => "legacy SSE sessions (stream + keep-alive POST connection)",
            Self::SseSharedPosts => "legacy SSE sessions (stream; POSTs on shared connections)",
            Self::SseStreamOnly => "legacy SSE streams (endpoint read, not initialized)",
        }
    }

    /// Connections (file descriptors on each side) one session holds while idle.
    pub fn connections(self) -> usize {
        match self {
            Self::Sse => 2,
            Self::StreamableClosed => 0,
            _ => 1,
        }
    }

    /// Whether the echo server (not the dice server) is measured.
    pub fn on_echo_server(self) -> bool {
        self == Self::Echo
    }
}

/// What the idle-session measurement found.
#[derive(Debug, Clone)]
pub struct IdleReport {
    /// What each session holds.
    pub kind: IdleKind,
    /// Sessions held open.
    pub sessions: usize,
    /// Server RSS before opening them.
    pub rss_before_kib: u64,
    /// Server RSS with all of them open and idle.
    pub rss_open_kib: u64,
    /// Server RSS after the client closed them.
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

/// Opens `count` idle sessions of `kind` on `addr` (the echo server's for [`IdleKind::Echo`])
/// and reads the RSS of `server_pid` before, while they are open and after the client closed
/// them. The opening must finish within `limit`.
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
        .with_context(|| format!("opening {count} idle sessions took over {limit:?}"))?
        .with_context(|| format!("opening {}", kind.label()))?;
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

/// What keeps idle sessions open until it is dropped.
type Held = Box<dyn std::any::Any + Send>;

async fn open_idle(kind: IdleKind, addr: SocketAddr, count: usize) -> anyhow::Result<Held> {
    let streamable = || async move { Ok(StreamableSession::open(addr, None).await?) };
    let held: Held = match kind {
        IdleKind::Echo => Box::new(
            open_each(count, || async move {
                let mut session = EchoSession::open(addr, super::server::ECHO_PATH).await?;
                session.call(&super::dice_call(), 1).await?;
                anyhow::Ok(session)
            })
            .await?,
        ),
        IdleKind::Streamable => Box::new(open_each(count, streamable).await?),
        IdleKind::StreamableClosed => {
            drop(open_each(count, streamable).await?);
            Box::new(())
        }
        IdleKind::Sse => Box::new(
            open_each(count, || async move {
                Ok(LegacySession::open(addr, None).await?)
            })
            .await?,
        ),
        IdleKind::SseStreamOnly => Box::new(
            open_each(count, || async move {
                Ok(LegacyStream::open(addr, None).await?)
            })
            .await?,
        ),
        IdleKind::SseSharedPosts => Box::new(open_shared_posts(addr, count).await?),
    };
    Ok(held)
}

/// `count` results of `open`, [`OPEN_CONCURRENCY`] at a time.
async fn open_each<T, F, Fut>(count: usize, open: F) -> anyhow::Result<Vec<T>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    futures::stream::iter(0..count)
        .map(|_| open())
        .buffer_unordered(OPEN_CONCURRENCY)
        .try_collect()
        .await
}

/// Legacy SSE streams, initialized over [`POST_CONNECTIONS`] connections they share.
async fn open_shared_posts(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<LegacyStream>> {
    let streams: Vec<LegacyStream> = open_each(count, || async move {
        Ok(LegacyStream::open(addr, None).await?)
    })
    .await?;
    let mut groups: Vec<Vec<LegacyStream>> = (0..POST_CONNECTIONS).map(|_| Vec::new()).collect();
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
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_sessions_of_each_kind_are_counted_in_server_memory() {
        let server = mcp_sse::McpHttpServer::new(super::super::server::dice_service().unwrap())
            .spawn("127.0.0.1:0")
            .await
            .unwrap();
        for kind in [IdleKind::Sse, IdleKind::SseSharedPosts] {
            let report = measure_idle(
                kind,
                server.local_addr(),
                std::process::id(),
                40,
                Duration::from_secs(20),
            )
            .await
            .unwrap();
            assert_eq!((report.kind, report.sessions), (kind, 40));
            assert!(report.rss_before_kib > 0 && report.rss_open_kib > 0);
            // Closed streams end their sessions.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while server.server().session_count() > 0 && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(server.server().session_count(), 0, "{kind:?}");
        }
        let report = measure_idle(
            IdleKind::Streamable,
            server.local_addr(),
            std::process::id(),
            40,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert_eq!(report.sessions, 40);
        // Streamable sessions outlive their connections (until their idle timeout).
        assert_eq!(server.server().session_count(), 40);
        server.shutdown().await.unwrap();
    }

    #[test]
    fn connections_per_kind() {
        assert_eq!(IdleKind::Sse.connections(), 2);
        assert_eq!(IdleKind::Streamable.connections(), 1);
        assert!(IdleKind::Echo.on_echo_server() && !IdleKind::Sse.on_echo_server());
    }
}
