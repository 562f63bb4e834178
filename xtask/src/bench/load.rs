//! Closed-loop load phases: N sessions, each calling as fast as its replies come back, with a
//! warm-up, a measured window, per-call latencies, and the CPU time both processes spent.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::client::{BenchSession, EchoSession, LegacySession, StreamableSession};
use super::server::{ECHO_PATH, ECHO_SSE_PATH, ECHO_SSE_STREAM_PATH};
use mcp_stack_tests::process;

/// What a phase drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `POST /echo` on the echo server.
    Echo,
    /// The echo answered as one SSE event in one write.
    EchoSse,
    /// The echo answered as an SSE stream written in pieces, like `mcp-sse` does.
    EchoSseStream,
    /// Streamable HTTP at `/mcp`.
    Streamable,
    /// Legacy HTTP+SSE.
    LegacySse,
}

impl Transport {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Echo => "echo",
            Transport::EchoSse => "echo as one SSE event",
            Transport::EchoSseStream => "echo as a chunked SSE stream",
            Transport::Streamable => "streamable",
            Transport::LegacySse => "legacy SSE",
        }
    }
}

/// Durations and bounds of a phase.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Calls before the measured window (not recorded).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Longest a single call may take; a slower one counts as an error and ends its session.
    pub call_timeout: Duration,
    /// Most calls one session makes in a phase (a bound on memory and time).
    pub max_calls_per_session: u64,
    /// Longest opening and initializing all sessions may take.
    pub setup_timeout: Duration,
}

/// What one session measured.
#[derive(Debug, Default)]
struct SessionOutcome {
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// The outcome of one phase.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// Calls completed inside the measured window.
    pub completed: u64,
    /// The measured window.
    pub window: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Failed or timed-out calls (each ends its session).
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// CPU time the server process spent in the window (all server processes together).
    pub server_cpu: Option<Duration>,
    /// The same per group of server processes, as given to [`run_phase_grouped`].
    pub server_cpu_groups: Vec<Option<Duration>>,
    /// CPU time this process (the generator) spent in the window.
    pub generator_cpu: Option<Duration>,
}

impl PhaseResult {
    /// Calls per second.
    pub fn rps(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64()
    }

    /// Server CPU time per call.
    pub fn server_cpu_per_call(&self) -> Option<Duration> {
        self.per_call(self.server_cpu?)
    }

    /// Generator CPU time per call.
    pub fn generator_cpu_per_call(&self) -> Option<Duration> {
        self.per_call(self.generator_cpu?)
    }

    /// CPU time per call of each group of server processes.
    pub fn server_cpu_per_call_by_group(&self) -> Vec<Option<Duration>> {
        self.server_cpu_groups
            .iter()
            .map(|cpu| self.per_call((*cpu)?))
            .collect()
    }

    fn per_call(&self, cpu: Duration) -> Option<Duration> {
        (self.completed > 0).then(|| cpu / u32::try_from(self.completed).unwrap_or(u32::MAX))
    }
}

/// The value at percentile `p` (0..=100) of sorted values, by the nearest-rank method.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn open_session(
    transport: Transport,
    addr: SocketAddr,
    token: Option<&str>,
) -> anyhow::Result<BenchSession> {
    Ok(match transport {
        Transport::Echo => BenchSession::Echo(EchoSession::open(addr, ECHO_PATH).await?),
        Transport::EchoSse => BenchSession::Echo(EchoSession::open(addr, ECHO_SSE_PATH).await?),
        Transport::EchoSseStream => {
            BenchSession::Echo(EchoSession::open(addr, ECHO_SSE_STREAM_PATH).await?)
        }
        Transport::Streamable => {
            BenchSession::Streamable(StreamableSession::open(addr, token).await?)
        }
        Transport::LegacySse => BenchSession::Legacy(LegacySession::open(addr, token).await?),
    })
}

async fn drive(
    mut session: BenchSession,
    warm_end: Instant,
    end: Instant,
    timing: Timing,
) -> SessionOutcome {
    let mut outcome = SessionOutcome::default();
    let mut id = 1u64;
    loop {
        let started = Instant::now();
        if started >= end || id > timing.max_calls_per_session {
            break;
        }
        match tokio::time::timeout(timing.call_timeout, session.call(id)).await {
            Ok(Ok(())) => {
                let finished = Instant::now();
                if started >= warm_end && finished <= end {
                    outcome
                        .latencies_ns
                        .push(u64::try_from((finished - started).as_nanos()).unwrap_or(u64::MAX));
                }
            }
            Ok(Err(error)) => {
                outcome.errors += 1;
                outcome.first_error = Some(format!("call {id}: {error:#}"));
                break;
            }
            Err(_) => {
                outcome.errors += 1;
                outcome.first_error = Some(format!(
                    "call {id}: no reply within {:?}",
                    timing.call_timeout
                ));
                break;
            }
        }
        id += 1;
    }
    outcome
}

/// CPU time the processes `pids` used together; `None` when none of them could be read.
fn cpu_time_of(pids: &[u32]) -> Option<Duration> {
    pids.iter()
        .filter_map(|&pid| process::process_cpu_time(pid))
        .reduce(|a, b| a + b)
}

/// Opens `sessions` sessions of `transport` on `addr`, runs the closed loop for the warm-up
/// and the window, and measures. `server_pids` (the server's processes) are sampled for CPU
/// time together.
pub async fn run_phase(
    transport: Transport,
    addr: SocketAddr,
    sessions: usize,
    token: Option<&str>,
    server_pids: &[u32],
    timing: Timing,
) -> anyhow::Result<PhaseResult> {
    run_phase_grouped(
        transport,
        addr,
        sessions,
        token,
        &[server_pids.to_vec()],
        timing,
    )
    .await
}

/// [`run_phase`] with the server's processes in groups (say load balancer, replicas, Redis),
/// each sampled for CPU time on its own and all together.
pub async fn run_phase_grouped(
    transport: Transport,
    addr: SocketAddr,
    sessions: usize,
    token: Option<&str>,
    server_groups: &[Vec<u32>],
    timing: Timing,
) -> anyhow::Result<PhaseResult> {
    let opening =
        futures::future::join_all((0..sessions).map(|_| open_session(transport, addr, token)));
    let opened = tokio::time::timeout(timing.setup_timeout, opening)
        .await
        .with_context(|| {
            format!(
                "opening {sessions} {} sessions took over {:?}",
                transport.name(),
                timing.setup_timeout
            )
        })?;
    let opened: Vec<BenchSession> = opened
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("opening a {} session", transport.name()))?;

    let start = Instant::now();
    let warm_end = start + timing.warmup;
    let end = warm_end + timing.duration;
    let tasks: Vec<_> = opened
        .into_iter()
        .map(|session| tokio::spawn(drive(session, warm_end, end, timing)))
        .collect();
    let own_pid = std::process::id();
    let server_groups = server_groups.to_vec();
    let sampler = tokio::spawn(async move {
        let sample = |groups: &[Vec<u32>]| -> Vec<Option<Duration>> {
            groups.iter().map(|pids| cpu_time_of(pids)).collect()
        };
        tokio::time::sleep_until(warm_end.into()).await;
        let before = (sample(&server_groups), process::process_cpu_time(own_pid));
        tokio::time::sleep_until(end.into()).await;
        let after = (sample(&server_groups), process::process_cpu_time(own_pid));
        let delta = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
        let groups: Vec<Option<Duration>> = before
            .0
            .iter()
            .zip(&after.0)
            .map(|(a, b)| delta(*a, *b))
            .collect();
        (groups, delta(before.1, after.1))
    });

    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let outcome = task.await.context("a session task failed")?;
        latencies.extend_from_slice(&outcome.latencies_ns);
        errors += outcome.errors;
        if first_error.is_none() {
            first_error = outcome.first_error;
        }
    }
    let (server_cpu_groups, generator_cpu) = sampler.await.unwrap_or((Vec::new(), None));
    let server_cpu = server_cpu_groups
        .iter()
        .flatten()
        .copied()
        .reduce(|a, b| a + b);
    latencies.sort_unstable();
    Ok(PhaseResult {
        completed: latencies.len() as u64,
        window: timing.duration,
        p50: Duration::from_nanos(percentile(&latencies, 50.0)),
        p99: Duration::from_nanos(percentile(&latencies, 99.0)),
        errors,
        first_error,
        server_cpu,
        server_cpu_groups,
        generator_cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&values, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[1, 2, 3], 50.0), 2);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn rates_and_cpu_per_call() {
        let result = PhaseResult {
            completed: 20_000,
            window: Duration::from_secs(2),
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            errors: 0,
            first_error: None,
            server_cpu: Some(Duration::from_millis(1_000)),
            server_cpu_groups: vec![Some(Duration::from_millis(600)), None],
            generator_cpu: Some(Duration::from_millis(500)),
        };
        assert_eq!(result.rps(), 10_000.0);
        assert_eq!(
            result.generator_cpu_per_call(),
            Some(Duration::from_micros(25))
        );
        assert_eq!(
            result.server_cpu_per_call(),
            Some(Duration::from_micros(50))
        );
        assert_eq!(
            result.server_cpu_per_call_by_group(),
            vec![Some(Duration::from_micros(30)), None]
        );
    }

    #[tokio::test]
    async fn phases_measure_every_transport_over_loopback() {
        let timing = Timing {
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(300),
            call_timeout: Duration::from_secs(5),
            max_calls_per_session: 1_000_000,
            setup_timeout: Duration::from_secs(10),
        };
        let server = mcp_sse::McpHttpServer::new(super::super::server::dice_service().unwrap())
            .spawn("127.0.0.1:0")
            .await
            .unwrap();
        let pid = std::process::id();
        for transport in [Transport::Streamable, Transport::LegacySse] {
            let result = run_phase(transport, server.local_addr(), 3, None, &[pid], timing)
                .await
                .unwrap();
            assert_eq!(result.errors, 0, "{:?}", result.first_error);
            // A count, not a rate: this shared machine may finish few calls in the window.
            assert!(result.completed > 0, "{transport:?}: {result:?}");
            assert!(result.p50 <= result.p99 && result.p99 < Duration::from_secs(5));
            assert!(result.server_cpu.is_some());
            assert_eq!(result.server_cpu_groups, vec![result.server_cpu]);
        }
        // A server without the dice tool: every call fails, and the phase says why.
        let empty =
            mcp_sse::McpHttpServer::new(mcp_proto::McpServer::builder("Empty").build().unwrap())
                .spawn("127.0.0.1:0")
                .await
                .unwrap();
        let result = run_phase(
            Transport::Streamable,
            empty.local_addr(),
            2,
            None,
            &[pid],
            timing,
        )
        .await
        .unwrap();
        assert_eq!(result.errors, 2);
        assert_eq!(result.completed, 0);
        let first = result.first_error.unwrap();
        assert!(first.starts_with("call 1: request 1 failed: "), "{first}");
        server.shutdown().await.unwrap();
        empty.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn idle_sessions_are_counted_in_server_memory() {
        let server = mcp_sse::McpHttpServer::new(super::super::server::dice_service().unwrap())
            .spawn("127.0.0.1:0")
            .await
            .unwrap();
        let report = super::super::idle::measure_idle(
            super::super::idle::IdleKind::Initialized,
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
