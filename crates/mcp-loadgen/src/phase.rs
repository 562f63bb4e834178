//! Closed-loop phases: N sessions, each calling as fast as its replies come back, with a
//! warm-up, a measured window, per-call latencies, and the CPU time the server's processes and
//! the generator spent in the window.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::cpu::{cpu_time_of, process_cpu_time};
use crate::error::Error;
use crate::session::{Session, ToolCall};

/// What a phase's sessions talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A plain HTTP endpoint answering each POSTed request with a reply carrying its id (as
    /// JSON or one SSE event): the ceiling an MCP transport is compared with.
    Echo {
        /// The endpoint's path.
        path: &'static str,
    },
    /// Streamable HTTP at `/mcp`.
    Streamable,
    /// Legacy HTTP+SSE (`GET /sse`, `POST /messages/`).
    LegacySse,
}

impl Target {
    /// The name in reports and errors.
    pub fn name(self) -> &'static str {
        match self {
            Target::Echo { .. } => "echo",
            Target::Streamable => "streamable",
            Target::LegacySse => "legacy SSE",
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

/// One phase: `sessions` sessions of `target` on `addr`, each making `call` in a closed loop.
#[derive(Debug, Clone, Copy)]
pub struct Phase<'a> {
    /// What the sessions talk to.
    pub target: Target,
    /// Where.
    pub addr: SocketAddr,
    /// How many sessions call at once.
    pub sessions: usize,
    /// A bearer token for every request, if the server wants one.
    pub token: Option<&'a str>,
    /// The call each session repeats.
    pub call: &'a ToolCall,
    /// Warm-up, window and bounds.
    pub timing: Timing,
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
    /// CPU time the server's processes spent in the window (all of them together).
    pub server_cpu: Option<Duration>,
    /// The same per group of server processes, as given to [`Phase::run_grouped`].
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

    /// The result with the median rate of `runs` (the upper one of an even count).
    pub fn median_by_rate(runs: &[PhaseResult]) -> Option<PhaseResult> {
        let mut sorted = runs.to_vec();
        sorted.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
        let middle = sorted.len() / 2;
        (!sorted.is_empty()).then(|| sorted.swap_remove(middle))
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

/// What one session measured.
#[derive(Debug, Default)]
struct SessionOutcome {
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl SessionOutcome {
    fn failed(mut self, error: String) -> Self {
        self.errors += 1;
        self.first_error = Some(error);
        self
    }
}

/// CPU time of each server group and of the generator over the measured window.
type CpuSamples = (Vec<Option<Duration>>, Option<Duration>);

impl Phase<'_> {
    /// Opens the sessions, runs the closed loop for the warm-up and the window, and measures;
    /// `server_pids` (the server's processes) are sampled for CPU time together.
    pub async fn run(&self, server_pids: &[u32]) -> Result<PhaseResult, Error> {
        self.run_grouped(&[server_pids.to_vec()]).await
    }

    /// [`Phase::run`] with the server's processes in groups (say load balancer, replicas,
    /// Redis), each sampled for CPU time on its own and all together.
    pub async fn run_grouped(&self, server_groups: &[Vec<u32>]) -> Result<PhaseResult, Error> {
        let opened = self.open_sessions().await?;
        let start = Instant::now();
        let warm_end = start + self.timing.warmup;
        let end = warm_end + self.timing.duration;
        let tasks: Vec<_> = opened
            .into_iter()
            .map(|session| {
                let call = self.call.clone();
                tokio::spawn(drive(session, call, warm_end, end, self.timing))
            })
            .collect();
        let sampler = tokio::spawn(sample_cpu(server_groups.to_vec(), warm_end, end));
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        for task in tasks {
            let outcome = task.await.map_err(Error::Task)?;
            latencies.extend_from_slice(&outcome.latencies_ns);
            errors += outcome.errors;
            first_error = first_error.or(outcome.first_error);
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
            window: self.timing.duration,
            p50: Duration::from_nanos(percentile(&latencies, 50.0)),
            p99: Duration::from_nanos(percentile(&latencies, 99.0)),
            errors,
            first_error,
            server_cpu,
            server_cpu_groups,
            generator_cpu,
        })
    }

    /// Opens every session at once, within the setup timeout.
    async fn open_sessions(&self) -> Result<Vec<Session>, Error> {
        let target = self.target.name();
        let opening = futures::future::join_all(
            (0..self.sessions).map(|_| Session::open(self.target, self.addr, self.token)),
        );
        let timeout = self.timing.setup_timeout;
        let opened =
            tokio::time::timeout(timeout, opening)
                .await
                .map_err(|_| Error::SetupTimeout {
                    sessions: self.sessions,
                    target,
                    timeout,
                })?;
        opened
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|source| Error::Open {
                target,
                source: Box::new(source),
            })
    }
}

/// Samples the CPU time of each group and of this process at `warm_end` and at `end`.
async fn sample_cpu(server_groups: Vec<Vec<u32>>, warm_end: Instant, end: Instant) -> CpuSamples {
    let own_pid = std::process::id();
    let sample = |groups: &[Vec<u32>]| -> Vec<Option<Duration>> {
        groups.iter().map(|pids| cpu_time_of(pids)).collect()
    };
    tokio::time::sleep_until(warm_end.into()).await;
    let before = (sample(&server_groups), process_cpu_time(own_pid));
    tokio::time::sleep_until(end.into()).await;
    let after = (sample(&server_groups), process_cpu_time(own_pid));
    let delta = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
    let groups = before
        .0
        .iter()
        .zip(&after.0)
        .map(|(a, b)| delta(*a, *b))
        .collect();
    (groups, delta(before.1, after.1))
}

/// One session's closed loop; a failed or timed-out call ends it.
async fn drive(
    mut session: Session,
    call: ToolCall,
    warm_end: Instant,
    end: Instant,
    timing: Timing,
) -> SessionOutcome {
    let mut outcome = SessionOutcome::default();
    for id in 1..=timing.max_calls_per_session {
        let started = Instant::now();
        if started >= end {
            break;
        }
        match tokio::time::timeout(timing.call_timeout, session.call(&call, id)).await {
            Ok(Ok(())) => {
                let finished = Instant::now();
                if started >= warm_end && finished <= end {
                    let nanos = (finished - started).as_nanos();
                    outcome
                        .latencies_ns
                        .push(u64::try_from(nanos).unwrap_or(u64::MAX));
                }
            }
            Ok(Err(error)) => {
                let chain = mcp_proto::error_chain(&error);
                return outcome.failed(format!("call {id}: {chain}"));
            }
            Err(_) => {
                let limit = timing.call_timeout;
                return outcome.failed(format!("call {id}: no reply within {limit:?}"));
            }
        }
    }
    outcome
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

    fn result(completed: u64) -> PhaseResult {
        PhaseResult {
            completed,
            window: Duration::from_secs(2),
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            errors: 0,
            first_error: None,
            server_cpu: Some(Duration::from_millis(1_000)),
            server_cpu_groups: vec![Some(Duration::from_millis(600)), None],
            generator_cpu: Some(Duration::from_millis(500)),
        }
    }

    #[test]
    fn rates_and_cpu_per_call() {
        let result = result(20_000);
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
        assert_eq!(self::result(0).server_cpu_per_call(), None);
    }

    #[test]
    fn the_median_run_is_the_middle_rate() {
        let runs = [result(30), result(10), result(20), result(40)];
        let median = PhaseResult::median_by_rate(&runs).unwrap();
        assert_eq!(median.completed, 30);
        assert_eq!(
            PhaseResult::median_by_rate(&runs[1..2]).unwrap().completed,
            10
        );
        assert!(PhaseResult::median_by_rate(&[]).is_none());
    }
}
