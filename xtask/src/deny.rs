//! `cargo xtask deny`: installs cargo-deny into `.tools/` (`scripts/install-cargo-deny.sh`) and
//! runs `cargo deny check licenses bans sources` with the repository's `deny.toml`.
//!
//! The advisory database is fetched from a git host our build machines cannot reach, so the
//! `advisories` check is not in the default list; `cargo xtask deny advisories` runs it where the
//! network allows.

use std::process::{Command, ExitCode};

use anyhow::Context;

use mcp_stack_tests::process;

/// The checks run when none are named.
const DEFAULT_CHECKS: [&str; 3] = ["licenses", "bans", "sources"];

/// Options of `cargo xtask deny`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checks to run (cargo-deny names: advisories, bans, licenses, sources); default:
    /// licenses bans sources.
    pub checks: Vec<String>,
}

/// Installs cargo-deny if needed and runs the checks; the exit code is cargo-deny's verdict.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = mcp_stack_tests::workspace_root();
    let installer = root.join("scripts").join("install-cargo-deny.sh");
    let mut install = Command::new("bash");
    install.arg(&installer);
    let installed = process::output_checked(install)?;
    let binary = installed
        .lines()
        .last()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .with_context(|| format!("{} printed no binary path", installer.display()))?
        .to_owned();

    let checks: Vec<String> = if args.checks.is_empty() {
        DEFAULT_CHECKS
            .iter()
            .map(|check| (*check).to_owned())
            .collect()
    } else {
        args.checks
    };
    let mut deny = Command::new(&binary);
    deny.current_dir(&root)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("check")
        // The inclusion graphs of duplicate-version warnings run to hundreds of lines.
        .arg("--hide-inclusion-graph")
        .args(&checks);
    eprintln!("xtask: {}", process::describe(&deny));
    let status = deny
        .status()
        .with_context(|| format!("starting {binary}"))?;
    if status.success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "xtask: cargo deny check {} failed ({status})",
            checks.join(" ")
        );
        Ok(ExitCode::FAILURE)
    }
}
