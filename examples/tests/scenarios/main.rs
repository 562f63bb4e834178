//! The example binaries as real processes, in deployments a user would run.
//!
//! - [`e2e`]: `dice_server`, `dice_server_auth` and `responses_local` together: the guide's
//!   flow through `POST /v1/responses` (runs with every `cargo test`).
//! - [`replicas`]: three `dice_server` replicas on Redis behind nginx (ignored: they need
//!   redis-server and nginx; `cargo xtask replicas` installs both and runs them).
//! - [`soak`]: well-behaved clients beside an abusive one, on one process and on three
//!   replicas; success, latency and memory (ignored; `cargo xtask soak`).
// Tests print their figures (throughput, memory) beside the verdict.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod calls;
mod e2e;
mod replicas;
mod soak;
