//! Memory per idle legacy SSE session: the server's RSS before and after opening (and
//! initializing) many sessions that then stay idle.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};

use super::client::{HttpConnection, LegacyStream, legacy_initialize};
use crate::process;

/// Streams opened at once.
const OPEN_CONCURRENCY: usize = 64;
/// Connections the `initialize` POSTs share.
const POST_CONNECTIONS: usize = 16;
/// How long the server gets to settle before its RSS is read.
const SETTLE: Duration = Duration::from_millis(500);

/// What the idle-session measurement found.
#[derive(Debug, Clone)]
pub struct IdleReport {
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

/// Opens `count` legacy SSE sessions on `addr` (reading each `endpoint` event), initializes
/// each over a few shared POST connections, and reads the RSS of `server_pid` around it. The
/// whole measurement must finish within `limit`.
pub async fn measure_idle_sessions(
    addr: SocketAddr,
    server_pid: u32,
    count: usize,
    limit: Duration,
) -> anyhow::Result<IdleReport> {
    tokio::time::sleep(SETTLE).await;
    let rss_before_kib = process::process_rss_kib(server_pid)?;
    let started = Instant::now();
    let opening = async {
        let streams: Vec<LegacyStream> = futures::stream::iter(0..count)
            .map(|_| LegacyStream::open(addr, None))
            .buffer_unordered(OPEN_CONCURRENCY)
            .try_collect()
            .await
            .context("opening an idle SSE session")?;
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
                        legacy_initialize(stream, &mut posts, None).await?;
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
    let streams = tokio::time::timeout(limit, opening)
        .await
        .with_context(|| format!("opening {count} idle SSE sessions took over {limit:?}"))?
        .context("initializing an idle SSE session")?;
    let setup = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let rss_open_kib = process::process_rss_kib(server_pid)?;
    drop(streams);
    tokio::time::sleep(SETTLE * 2).await;
    let rss_closed_kib = process::process_rss_kib(server_pid)?;
    Ok(IdleReport {
        sessions: count,
        rss_before_kib,
        rss_open_kib,
        rss_closed_kib,
        setup,
    })
}
