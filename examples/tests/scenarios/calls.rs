//! Sessions of our `McpClient` making `echo` calls with unique tokens, and the [`Tally`] that
//! proves each answer came back once, to the right caller.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_sse::Error as ClientError;
use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use serde_json::json;
use tokio::sync::Semaphore;

/// Budget of one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How many failure messages a tally keeps as examples.
const EXAMPLES_KEPT: usize = 8;

/// Which transport a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Legacy HTTP+SSE at `/sse`.
    Legacy,
    /// Streamable HTTP at `/mcp`.
    Streamable,
}

impl Kind {
    /// Half legacy, half streamable: `count` kinds alternating.
    pub fn alternating(count: usize) -> Vec<Kind> {
        (0..count)
            .map(|i| {
                if i % 2 == 0 {
                    Kind::Legacy
                } else {
                    Kind::Streamable
                }
            })
            .collect()
    }
}

/// Connects one session of `kind` at `base` (e.g. `http://127.0.0.1:8080`).
pub async fn connect(base: &str, kind: Kind) -> McpClient {
    let (path, transport) = match kind {
        Kind::Legacy => ("/sse", TransportKind::LegacySse),
        Kind::Streamable => ("/mcp", TransportKind::StreamableHttp),
    };
    McpClient::builder(format!("{base}{path}"))
        .transport(transport)
        .connect_timeout(Duration::from_secs(10))
        .request_timeout(CALL_TIMEOUT)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting a {kind:?} session at {base}{path}: {e}"))
}

/// Connects a session of each of `kinds`, `parallel` at a time.
pub async fn connect_all(base: &str, kinds: &[Kind], parallel: usize) -> Vec<Arc<McpClient>> {
    let permits = Arc::new(Semaphore::new(parallel));
    let tasks: Vec<_> = kinds
        .iter()
        .map(|&kind| {
            let (permits, base) = (Arc::clone(&permits), base.to_owned());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                Arc::new(connect(&base, kind).await)
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(kinds.len());
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    clients
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
    let structured = result.structured_content.as_ref();
    match structured.and_then(|s| s["result"].as_str()) {
        Some(got) if result.is_error != Some(true) => Ok(got.to_owned()),
        _ => Err(CallFailure::Other(format!(
            "echo answered {:?}",
            result.content
        ))),
    }
}

/// Why a call got no token back.
#[derive(Debug, Clone)]
pub enum CallFailure {
    /// The session is over (its stream ended, or 404 on its id): reconnecting is the cure.
    SessionGone(String),
    /// Anything else (e.g. 502 from nginx for a request in flight on a killed replica).
    Other(String),
}

impl From<ClientError> for CallFailure {
    fn from(error: ClientError) -> Self {
        match &error {
            ClientError::SessionClosed => Self::SessionGone(error.to_string()),
            ClientError::Http { body, .. } => {
                let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
                let body: String = body.chars().take(120).collect();
                Self::Other(format!("{error}: {body}"))
            }
            _ => Self::Other(error.to_string()),
        }
    }
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SessionGone(m) | Self::Other(m) => f.write_str(m),
        }
    }
}

/// What came back for the calls of a run.
#[derive(Debug, Default)]
pub struct Tally {
    calls: AtomicU64,
    ok: AtomicU64,
    lost: AtomicU64,
    misdelivered: AtomicU64,
    seen: Mutex<HashMap<String, u32>>,
    examples: Mutex<Vec<String>>,
}

impl Tally {
    /// Makes one call of `echo` with a fresh token and records what came back.
    pub async fn call(&self, client: &McpClient, prefix: &str, n: u64) -> Result<(), CallFailure> {
        let token = token(prefix, n);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.attempt(client, &token).await
    }

    /// Tries a call counted already (a retry, or the first attempt after [`Tally::count`])
    /// and records the answer if one came back.
    pub async fn attempt(&self, client: &McpClient, token: &str) -> Result<(), CallFailure> {
        let got = echo(client, token).await?;
        self.record_answer(token, &got);
        Ok(())
    }

    /// Counts a call whose attempts follow.
    pub fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a token that came back.
    pub fn record_answer(&self, expected: &str, got: &str) {
        if got == expected {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misdelivered.fetch_add(1, Ordering::Relaxed);
            self.example(format!("sent {expected}, got {got}"));
        }
        *self.seen.lock().unwrap().entry(got.to_owned()).or_default() += 1;
    }

    /// Records a call that got nothing after the retries its test allows.
    pub fn record_lost(&self, why: &CallFailure) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        self.example(why.to_string());
    }

    /// Keeps a message as an example (the first few).
    pub fn example(&self, text: String) {
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < EXAMPLES_KEPT {
            examples.push(text);
        }
    }

    /// Calls made (first attempts).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// `calls N, ok N, lost N, duplicated N, misdelivered N`, then the examples kept.
    pub fn summary(&self) -> String {
        let duplicated: u32 = self.seen.lock().unwrap().values().map(|n| n - 1).sum();
        format!(
            "calls {}, ok {}, lost {}, duplicated {duplicated}, misdelivered {}; examples: {:?}",
            self.calls(),
            self.ok.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed),
            self.misdelivered.load(Ordering::Relaxed),
            self.examples.lock().unwrap(),
        )
    }

    /// Fails unless every call got its own token back exactly once.
    pub fn assert_clean(&self, what: &str) {
        let ok = self.ok.load(Ordering::Relaxed);
        let unique = self.seen.lock().unwrap().len() as u64;
        assert!(
            ok == self.calls() && unique == ok && self.misdelivered.load(Ordering::Relaxed) == 0,
            "{what}: {}",
            self.summary()
        );
    }
}

/// A unique token: `<prefix>-<n>-<16 random hex digits>`.
pub fn token(prefix: &str, n: u64) -> String {
    format!("{prefix}-{n}-{:016x}", rand::random::<u64>())
}
