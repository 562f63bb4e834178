//! `cargo xtask e2e`: the end-to-end flow over real sockets (the dice server, the local
//! Responses endpoint and the Responses client); arrives with issue 6.
//!
//! Not implemented yet: the command reports that and exits with code 2. Whoever fills it in
//! replaces [`Args`] with the real options and [`run`] with the real work, using the helpers in
//! [`crate::process`].

use std::process::ExitCode;

/// Options of `cargo xtask e2e`; for now any arguments are accepted and ignored.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Arguments for the future command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

/// Runs the command: for now, says that it arrives with issue 6 and returns exit code 2.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    Ok(crate::not_implemented("e2e", 6))
}
