//! `cargo xtask interop`: interoperability with the Python `mcp`, `fastmcp` and `openai`
//! packages installed by `scripts/install-peers.sh`; arrives with issue 7.
//!
//! Not implemented yet: the command reports that and exits with code 2. Whoever fills it in
//! replaces [`Args`] with the real options and [`run`] with the real work, using the helpers in
//! [`crate::process`].

use std::process::ExitCode;

/// Options of `cargo xtask interop`; for now any arguments are accepted and ignored.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Arguments for the future command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs the command: for now, says that it arrives with issue 7 and returns exit code 2.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    Ok(crate::not_implemented("interop", 7))
}
