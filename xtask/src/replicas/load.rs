//! Sessions of our `McpClient` through the load balancer making `echo` calls with unique
//! tokens, and the tally that proves each response came back once, to the right caller.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use mcp_sse::Error as ClientError;
use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use serde_json::json;
use tokio::sync::Semaphore;

/// Budget of one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Budget of one connection (handshake included).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many failure messages a tally keeps as examples.
const EXAMPLES_KEPT: usize = 8;

/// Which transport a session uses, with the URL path it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Legacy HTTP+SSE at `/sse`.
    Legacy,
    /// Streamable HTTP at `/mcp`.
    Streamable,
}

impl Kind {
    /// `/sse` or `/mcp`.
    pub fn path(self) -> &'static str {
        match self {
            Self::Legacy => "/sse",
            Self::Streamable => "/mcp",
        }
    }

    /// The client's transport.
    pub fn transport(self) -> TransportKind {
        match self {
            Self::Legacy => TransportKind::LegacySse,
            Self::Streamable => TransportKind::StreamableHttp,
        }
    }

    /// `legacy` or `streamable`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Streamable => "streamable",
        }
    }
}

/// Connects one session of `kind` at `base` (e.g. `http://127.0.0.1:8080`).
pub async fn connect(base: &str, kind: Kind, bearer: Option<&str>) -> anyhow::Result<McpClient> {
    let url = format!("{base}{}", kind.path());
    let mut builder = McpClient::builder(&url)
        .transport(kind.transport())
        .connect_timeout(CONNECT_TIMEOUT)
        .request_timeout(CALL_TIMEOUT);
    if let Some(token) = bearer {
        builder = builder.bearer_token(token);
    }
    builder
        .connect()
        .await
        .with_context(|| format!("connecting a {} session at {url}", kind.label()))
}

/// Connects `kinds.len()` sessions, `parallel` at a time; fails on the first that cannot.
pub async fn connect_all(
    base: &str,
    kinds: &[Kind],
    parallel: usize,
) -> anyhow::Result<Vec<McpClient>> {
    let permits = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        let permits = Arc::clone(&permits);
        let base = base.to_owned();
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            connect(&base, kind, None).await
        }));
    }
    let mut clients = Vec::with_capacity(kinds.len());
    for task in tasks {
        clients.push(task.await.context("a connecting task panicked")??);
    }
    Ok(clients)
}

/// Closes every client, `parallel` at a time (streamable sessions send `DELETE`).
pub async fn close_all(clients: Vec<McpClient>, parallel: usize) {
    let permits = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::with_capacity(clients.len());
    for client in clients {
        let permits = Arc::clone(&permits);
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// The token `echo` answered with (its structured `result`), or why there is none.
pub async fn echo(client: &McpClient, token: &str) -> Result<String, CallFailure> {
    let call = client.call_tool("echo", json!({ "token": token }));
    let result = match tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(1), call).await {
        Err(_) => {
            return Err(CallFailure::Other(format!(
                "no answer within {CALL_TIMEOUT:?}"
            )));
        }
        Ok(Err(error)) => return Err(CallFailure::from(error)),
        Ok(Ok(result)) => result,
    };
    if result.is_error == Some(true) {
        return Err(CallFailure::Other(format!(
            "echo answered an error: {:?}",
            result.content
        )));
    }
    match result
        .structured_content
        .as_ref()
        .and_then(|s| s["result"].as_str())
    {
        Some(got) => Ok(got.to_owned()),
        None => Err(CallFailure::Other(format!(
            "echo answered without structuredContent.result: {:?}",
            result.structured_content
        ))),
    }
}

/// Why a call got no token back.
#[derive(Debug, Clone)]
pub enum CallFailure {
    /// The session is over (its stream ended, or 404 on its id): reconnecting is the cure.
    SessionGone(String),
    /// An HTTP status (e.g. 502 from nginx for a request in flight on a killed replica, 503
    /// while Redis is away).
    Status(u16, String),
    /// Anything else.
    Other(String),
}

impl From<ClientError> for CallFailure {
    fn from(error: ClientError) -> Self {
        match &error {
            ClientError::SessionClosed => Self::SessionGone(error.to_string()),
            ClientError::Http { status, body, .. } => {
                Self::Status(status.as_u16(), format!("{error}: {}", short(body)))
            }
            _ => Self::Other(error.to_string()),
        }
    }
}

impl CallFailure {
    /// The HTTP status, when the failure is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status(status, _) => Some(*status),
            _ => None,
        }
    }
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SessionGone(m) | Self::Status(_, m) | Self::Other(m) => f.write_str(m),
        }
    }
}

/// `text` on one line (whitespace runs become one space), cut to 120 characters.
fn short(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(120).collect()
}

/// What came back for the calls of a run.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls made (first attempts).
    pub calls: AtomicU64,
    /// Calls that got their own token back.
    pub ok: AtomicU64,
    /// Calls that never got an answer (after any retries the scenario allows).
    pub lost: AtomicU64,
    /// Answers carrying another call's token.
    pub misdelivered: AtomicU64,
    /// Extra attempts made after a failure.
    pub retried: AtomicU64,
    /// Sessions replaced by a new one, by transport (legacy, streamable).
    pub reconnected: [AtomicU64; 2],
    seen: Mutex<HashMap<String, u32>>,
    examples: Mutex<Vec<String>>,
}

impl Tally {
    /// Records a token that came back.
    pub fn record_answer(&self, expected: &str, got: &str) {
        if got == expected {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misdelivered.fetch_add(1, Ordering::Relaxed);
            self.example(format!("sent {expected}, got {got}"));
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        *seen.entry(got.to_owned()).or_default() += 1;
    }

    /// Records a call that got nothing.
    pub fn record_lost(&self, token: &str, why: &CallFailure) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        self.example(format!("{token}: {why}"));
    }

    /// Keeps a failure message as an example (the first few).
    pub fn example(&self, text: String) {
        let mut examples = self.examples.lock().unwrap_or_else(PoisonError::into_inner);
        if examples.len() < EXAMPLES_KEPT {
            examples.push(text);
        }
    }

    /// Tokens that came back more than once.
    pub fn duplicated(&self) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.values()
            .filter(|&&n| n > 1)
            .map(|&n| u64::from(n - 1))
            .sum()
    }

    /// The kept failure examples.
    pub fn examples(&self) -> Vec<String> {
        self.examples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts a reconnection of a `kind` session.
    pub fn count_reconnect(&self, kind: Kind) {
        let slot = match kind {
            Kind::Legacy => 0,
            Kind::Streamable => 1,
        };
        self.reconnected[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Reconnections of `kind` sessions.
    pub fn reconnects(&self, kind: Kind) -> u64 {
        let slot = match kind {
            Kind::Legacy => 0,
            Kind::Streamable => 1,
        };
        self.reconnected[slot].load(Ordering::Relaxed)
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// `calls N, ok N, lost N, duplicated N, misdelivered N`.
    pub fn summary(&self) -> String {
        format!(
            "calls {}, ok {}, lost {}, duplicated {}, misdelivered {}",
            Self::get(&self.calls),
            Self::get(&self.ok),
            Self::get(&self.lost),
            self.duplicated(),
            Self::get(&self.misdelivered)
        )
    }

    /// Whether every call got its own token back exactly once.
    pub fn clean(&self) -> bool {
        Self::get(&self.ok) == Self::get(&self.calls)
            && Self::get(&self.lost) == 0
            && Self::get(&self.misdelivered) == 0
            && self.duplicated() == 0
    }
}

/// A unique token: `<prefix>-<n>-<16 random hex digits>`.
pub fn token(prefix: &str, n: u64) -> String {
    format!("{prefix}-{n}-{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_lost_duplicated_and_misdelivered_answers() {
        let tally = Tally::default();
        tally.calls.store(4, Ordering::Relaxed);
        tally.record_answer("a", "a");
        tally.record_answer("b", "b");
        tally.record_answer("c", "b"); // c got b's answer: misdelivered, and b twice
        tally.record_lost("d", &CallFailure::Other("timeout".into()));
        assert_eq!(
            tally.summary(),
            "calls 4, ok 2, lost 1, duplicated 1, misdelivered 1"
        );
        assert!(!tally.clean());
        assert_eq!(tally.examples(), ["sent c, got b", "d: timeout"]);

        let clean = Tally::default();
        clean.calls.store(1, Ordering::Relaxed);
        clean.record_answer("x", "x");
        assert!(clean.clean());
    }

    #[test]
    fn tokens_are_unique_and_paths_match_transports() {
        let a = token("s1", 7);
        assert!(
            a.starts_with("s1-7-") && a.len() == "s1-7-".len() + 16,
            "{a}"
        );
        assert_ne!(a, token("s1", 7));
        assert_eq!(Kind::Legacy.path(), "/sse");
        assert_eq!(Kind::Streamable.path(), "/mcp");
    }

    #[test]
    fn client_errors_map_to_failures() {
        assert!(matches!(
            CallFailure::from(ClientError::SessionClosed),
            CallFailure::SessionGone(_)
        ));
        let http = ClientError::Http {
            status: http::StatusCode::BAD_GATEWAY,
            reason: "Bad Gateway".into(),
            body: "<html>".into(),
        };
        match CallFailure::from(http) {
            CallFailure::Status(502, text) => {
                assert_eq!(text, "Http status code: 502 (Bad Gateway): <html>")
            }
            other => panic!("{other:?}"),
        }
        let http = ClientError::Http {
            status: http::StatusCode::BAD_GATEWAY,
            reason: "Bad Gateway".into(),
            body: "<html>\n<head><title>502</title></head>\n".into(),
        };
        match CallFailure::from(http) {
            CallFailure::Status(502, text) => assert_eq!(
                text,
                "Http status code: 502 (Bad Gateway): <html> <head><title>502</title></head>"
            ),
            other => panic!("{other:?}"),
        }
    }
}
