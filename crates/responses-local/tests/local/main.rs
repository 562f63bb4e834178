//! The local Responses endpoint over real sockets, with in-process fake MCP connectors: one test
//! binary whose modules share [`support`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod client_e2e;
mod endpoint;
mod local_safety;
mod support;
mod validation;
