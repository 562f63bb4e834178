//! The harness for tests and `cargo xtask` commands that run real processes, and (in
//! `tests/`) the cross-crate tests of the whole stack.
//!
//! - [`process`]: a [`process::BackgroundProcess`] whose output goes to a log file and whose
//!   process group dies with it; readiness waits that fail early with the log; free ports,
//!   CPU pinning and `/proc` figures (RSS, CPU time, open-file limits).
//! - [`redis`]: one [`redis::RedisServer`] helper for every test and command that needs a
//!   real `redis-server` (the `mcp-redis` tests, the replica clusters).
//! - [`cluster`]: Redis, N dice server replicas sharing sessions through it, and nginx doing
//!   round robin in front of them.
//! - `raw` (feature `raw`): a raw MCP-over-HTTP client for tests that check the wire itself,
//!   and SSE bodies and streams read with `mcp-sse`'s parser.
//!
//! Without the `raw` feature it depends on none of the stack's crates, so any of them can use
//! it in its tests.
//!
//! ```
//! use std::process::Command;
//! use mcp_stack_tests::process::{self, BackgroundProcess};
//!
//! let log = process::log_dir().join("doc").join("echo.log");
//! let mut command = Command::new("sh");
//! command.args(["-c", "echo hello"]);
//! let mut echo = BackgroundProcess::spawn("echo", command, &log)?;
//! while echo.exit_status()?.is_none() {
//!     std::thread::sleep(std::time::Duration::from_millis(10));
//! }
//! assert_eq!(echo.log_tail(1), "hello");
//! # anyhow::Ok(())
//! ```

pub mod cluster;
pub mod process;
#[cfg(feature = "raw")]
pub mod raw;
pub mod redis;

use std::path::PathBuf;

/// The root of the workspace (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}
