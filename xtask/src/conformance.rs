//! `cargo xtask conformance`: the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`, installed by `scripts/install-peers.sh`) against our
//! fixture server and our client, for both dated requirement sets; arrives with issue 10
//! (which replaces the first form of it in issue 7).
//!
//! Not implemented yet: the command reports that and exits with code 2. Whoever fills it in
//! replaces [`Args`] with the real options and [`run`] with the real work, using the helpers in
//! [`crate::process`].

use std::process::ExitCode;

/// Options of `cargo xtask conformance`; for now any arguments are accepted and ignored.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Arguments for the future command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs the command: for now, says that it arrives with issue 10 and returns exit code 2.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    Ok(crate::not_implemented("conformance", 10))
}
