//! `cargo xtask conformance`: the official MCP conformance suite
//! (`@modelcontextprotocol/conformance@0.2.0-alpha.12`, installed with Node 22 into `.tools/` by
//! `scripts/install-peers.sh`) against our fixture server and our client, for both dated
//! requirement sets, each at its own wire.
//!
//! 1. Builds the fixtures (`conformance_server`, `conformance_client` of `mcp-examples`).
//! 2. Starts the fixture server on a free port and runs `server --requirements REV` for
//!    2025-11-25 and 2026-07-28, reading each scenario's `checks.json`.
//! 3. Runs every client scenario of both sets, `auth/*` included (the fixture authorizes with
//!    `mcp-oauth-client`), one by one, against the client fixture; auth scenarios are also
//!    counted on their own.
//! 4. Runs the server legs again through the gateway (`mcp-gateway -- conformance_server
//!    --stdio`, tests `<rev>/gateway/<scenario>`): every scenario passed directly must pass
//!    there too.
//! 5. Scenarios a set marks "never scored" (extensions, pending) run and are reported as such
//!    (`[not scored]`, with the verdict); they do not fail the run. There is no
//!    expected-failures list.
//!
//! Every scenario is a test of a `libtest-mimic` harness (`<rev>/server/<scenario>`,
//! `<rev>/client/<scenario>`): one line each, the failures' details and the usual
//! `test result:` line; exits 1 on any scored failure. Logs and the suite's outputs go to
//! `<target>/xtask-logs/conformance/`.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use libtest_mimic::{Arguments, Trial};

use mcp_stack_tests::process::{self, BackgroundProcess};

/// The requirement sets, each run at its own wire.
const REVISIONS: [&str; 2] = ["2025-11-25", "2026-07-28"];
/// Per-scenario timeout of the client leg, in milliseconds.
const CLIENT_TIMEOUT_MS: u64 = 30_000;

/// Options of `cargo xtask conformance`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run only these requirement sets (default: both).
    #[arg(long = "requirements", value_parser = ["2025-11-25", "2026-07-28"])]
    pub requirements: Vec<String>,
    /// Skip the client scenarios.
    #[arg(long)]
    pub server_only: bool,
    /// Skip the server scenarios.
    #[arg(long, conflicts_with = "server_only")]
    pub client_only: bool,
}

/// What one requirement set lists.
#[derive(Debug, Default, PartialEq)]
struct SetListing {
    server: Vec<String>,
    client: Vec<String>,
    /// Never-scored scenarios and their leg (`server` or `client`).
    not_scored: Vec<(String, String)>,
}

/// Parses the output of `list --requirements REV`.
fn parse_listing(text: &str) -> SetListing {
    #[derive(PartialEq)]
    enum Section {
        None,
        Server,
        Client,
        NotScored,
    }
    let mut section = Section::None;
    let mut listing = SetListing::default();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("Server scenarios") {
            section = Section::Server;
        } else if trimmed.starts_with("Client scenarios") {
            section = Section::Client;
        } else if trimmed.starts_with("Run and reported, but never scored") {
            section = Section::NotScored;
        } else if let Some(item) = trimmed.strip_prefix("- ") {
            match section {
                Section::Server => listing.server.push(item.to_owned()),
                Section::Client => listing.client.push(item.to_owned()),
                Section::NotScored => {
                    if let Some((name, leg)) = item.rsplit_once(" [") {
                        listing
                            .not_scored
                            .push((name.to_owned(), leg.trim_end_matches(']').to_owned()));
                    }
                }
                Section::None => {}
            }
        }
    }
    listing
}

/// The verdict on one scenario.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Passed,
    Failed(String),
}

/// Reads the `checks.json` files the server leg wrote to `dir`: scenario → verdict.
fn read_server_checks(dir: &Path) -> anyhow::Result<BTreeMap<String, Verdict>> {
    let mut verdicts = BTreeMap::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(dir_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(rest) = dir_name.strip_prefix("server-") else {
            continue;
        };
        // `<scenario>-<timestamp>`: the timestamp is `YYYY-MM-DDTHH-MM-SS-mmmZ`.
        let Some(t) = rest.rfind('T').and_then(|t| {
            rest[..t]
                .rfind('-')
                .and_then(|d| rest[..d].rfind('-').and_then(|m| rest[..m].rfind('-')))
        }) else {
            continue;
        };
        let scenario = rest[..t].to_owned();
        let text = fs::read_to_string(path.join("checks.json"))
            .with_context(|| format!("reading {}/checks.json", path.display()))?;
        let checks: Vec<serde_json::Value> = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}/checks.json", path.display()))?;
        let failures: Vec<String> = checks
            .iter()
            .filter(|c| c["status"] == "FAILURE")
            .map(|c| {
                let id = c["id"].as_str().unwrap_or("?");
                match c["errorMessage"].as_str() {
                    Some(m) => format!("{id}: {m}"),
                    None => id.to_owned(),
                }
            })
            .collect();
        let verdict = if failures.is_empty() {
            Verdict::Passed
        } else {
            Verdict::Failed(failures.join("; "))
        };
        verdicts.insert(scenario, verdict);
    }
    Ok(verdicts)
}

/// A test of a scenario whose verdict is `verdict`; a never-scored one always passes and
/// prints its verdict.
fn verdict_trial(
    name: String,
    scored: bool,
    verdict: impl FnOnce() -> Verdict + Send + 'static,
) -> Trial {
    let kind = if scored { "" } else { "not scored" };
    Trial::test(name.clone(), move || match verdict() {
        Verdict::Passed => Ok(()),
        Verdict::Failed(why) if scored => Err(why.into()),
        Verdict::Failed(why) => {
            println!("{name} (not scored) failed: {why}");
            Ok(())
        }
    })
    .with_kind(kind)
}

struct Suite {
    node: PathBuf,
    cli: PathBuf,
    out: PathBuf,
}

impl Suite {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.node);
        c.arg(&self.cli);
        c
    }

    fn listing(&self, rev: &str) -> anyhow::Result<SetListing> {
        let mut c = self.command();
        c.args(["list", "--client", "--requirements", rev]);
        let listing = parse_listing(&process::output_checked(c)?);
        if listing.server.is_empty() || listing.client.is_empty() {
            bail!("the suite listed no scenarios for {rev}");
        }
        Ok(listing)
    }

    /// Runs the server leg of `rev` against `url`; scenario → verdict.
    fn server_leg(
        &self,
        label: &str,
        rev: &str,
        url: &str,
    ) -> anyhow::Result<BTreeMap<String, Verdict>> {
        let dir = self.out.join(format!("{label}-{rev}"));
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir)?;
        let log = self.out.join(format!("{label}-{rev}.log"));
        let mut c = self.command();
        c.args(["server", "--url", url, "--requirements", rev, "-o"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log)?)
            .stderr(Stdio::inherit());
        let status = c.status().context("running the suite's server leg")?;
        let verdicts = read_server_checks(&dir)?;
        if verdicts.is_empty() {
            bail!(
                "the server leg of {rev} wrote no results ({status}); see {}",
                log.display()
            );
        }
        Ok(verdicts)
    }

    /// Runs one client scenario against the client fixture. `force` runs a scenario the
    /// suite would otherwise skip at `rev` (extensions are not on the spec timeline).
    fn client_scenario(
        &self,
        rev: &str,
        scenario: &str,
        client: &Path,
        force: bool,
    ) -> anyhow::Result<Verdict> {
        let dir = self.out.join(format!("client-{rev}"));
        fs::create_dir_all(&dir)?;
        let log = dir.join(format!("{}.log", scenario.replace('/', "_")));
        let mut c = self.command();
        c.arg("client")
            .arg("--command")
            .arg(client)
            .args(["--scenario", scenario, "--spec-version", rev, "--timeout"])
            .arg(CLIENT_TIMEOUT_MS.to_string())
            .args(force.then_some("--force"))
            .arg("-o")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log)?)
            .stderr(fs::File::options().append(true).open(&log)?);
        let status = c.status().context("running the suite's client leg")?;
        Ok(if status.success() {
            Verdict::Passed
        } else {
            let text = strip_ansi(&fs::read_to_string(&log).unwrap_or_default());
            let detail: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("FAILURE") || l.contains("WARNING") || l.contains('✗'))
                .take(3)
                .collect();
            Verdict::Failed(format!("{} (log: {})", detail.join(" | "), log.display()))
        })
    }
}

/// Removes terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads `KEY=value` lines printed by the installer.
fn installer_value(output: &str, key: &str) -> Option<PathBuf> {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| PathBuf::from(v.trim()))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| mcp_stack_tests::workspace_root().join("target"))
}

/// Builds the fixtures: the server's and the client's binaries.
fn build_fixtures(root: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let mut build = process::cargo();
    build
        .current_dir(root)
        .args(["build", "-p", "mcp-examples", "-p", "mcp-gateway"]);
    build.args(["--bin", "conformance_server", "--bin", "conformance_client"]);
    build.args(["--bin", "mcp-gateway"]);
    process::run_checked(build)?;
    let bin_dir = target_dir().join("debug");
    Ok((
        bin_dir.join("conformance_server"),
        bin_dir.join("conformance_client"),
    ))
}

/// Installs Node 22 and the suite into `.tools/`.
fn install_suite(root: &Path) -> anyhow::Result<Suite> {
    let mut install = Command::new("bash");
    install
        .current_dir(root)
        .arg(root.join("scripts/install-peers.sh"));
    install.args(["node", "conformance"]);
    let installed = process::output_checked(install)?;
    let value = |key| installer_value(&installed, key).with_context(|| format!("no {key}="));
    let suite = Suite {
        node: value("NODE")?,
        cli: value("CONFORMANCE")?,
        out: process::log_dir().join("conformance"),
    };
    fs::create_dir_all(&suite.out)?;
    Ok(suite)
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = mcp_stack_tests::workspace_root();
    let (server_bin, client_bin) = build_fixtures(&root)?;
    let suite = Arc::new(install_suite(&root)?);
    let port = process::free_port()?;
    let mut server_command = Command::new(&server_bin);
    server_command.arg("--port").arg(port.to_string());
    let log = suite.out.join("fixture-server.log");
    let mut server = BackgroundProcess::spawn("conformance_server", server_command, &log)?;
    server.wait_for_tcp(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(20),
    )?;
    let url = format!("http://127.0.0.1:{port}/mcp");

    let mut trials = Vec::new();
    let mut direct = Vec::new();
    let chosen =
        |rev: &&&str| args.requirements.is_empty() || args.requirements.iter().any(|a| a == **rev);
    for rev in REVISIONS.iter().filter(chosen) {
        let listing = suite.listing(rev)?;
        let not_scored = |leg: &'static str| {
            let unscored = listing.not_scored.iter().filter(move |(_, l)| l == leg);
            unscored.map(|(scenario, _)| (scenario.clone(), false))
        };
        if !args.client_only {
            // The suite runs the whole server leg at once; each scenario's verdict is a test.
            let verdicts = suite.server_leg("server", rev, &url)?;
            server.ensure_running()?;
            direct.push((rev.to_string(), listing.server.clone(), verdicts.clone()));
            let scored = listing.server.iter().map(|s| (s.clone(), true));
            for (scenario, scored) in scored.chain(not_scored("server")) {
                let verdict = verdicts.get(&scenario).cloned();
                let verdict = verdict.unwrap_or_else(|| Verdict::Failed("no result".into()));
                trials.push(verdict_trial(
                    format!("{rev}/server/{scenario}"),
                    scored,
                    || verdict,
                ));
            }
        }
        if !args.server_only {
            let scored = listing.client.iter().map(|s| (s.clone(), true));
            for (scenario, scored) in scored.chain(not_scored("client")) {
                let (suite, client, rev) = (Arc::clone(&suite), client_bin.clone(), *rev);
                let name = format!("{rev}/client/{scenario}");
                trials.push(verdict_trial(name, scored, move || {
                    let verdict = suite.client_scenario(rev, &scenario, &client, !scored);
                    verdict.unwrap_or_else(|error| Verdict::Failed(format!("{error:#}")))
                }));
            }
        }
    }
    server.stop();
    if !direct.is_empty() {
        let gateway = server_bin.with_file_name("mcp-gateway");
        trials.extend(gateway_legs(&suite, &gateway, &server_bin, &direct)?);
    }
    let arguments = Arguments {
        test_threads: Some(1),
        ..Arguments::default()
    };
    Ok(libtest_mimic::run(&arguments, trials).exit_code())
}

/// The server scenarios of one set as run directly: revision, scored scenarios, verdicts.
type DirectLeg = (String, Vec<String>, BTreeMap<String, Verdict>);

/// Runs the server legs again against `mcp-gateway -- conformance_server --stdio`: a test
/// `<rev>/gateway/<scenario>` for every scenario the fixture passes over HTTP directly.
fn gateway_legs(
    suite: &Suite,
    gateway_bin: &Path,
    server_bin: &Path,
    direct: &[DirectLeg],
) -> anyhow::Result<Vec<Trial>> {
    let port = process::free_port()?;
    let mut command = Command::new(gateway_bin);
    command
        .args(["--port", &port.to_string(), "--"])
        .arg(server_bin)
        .arg("--stdio")
        .env("RUST_LOG", "warn");
    let log = suite.out.join("gateway.log");
    let mut gateway = BackgroundProcess::spawn("mcp-gateway", command, &log)?;
    gateway.wait_for_tcp(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(20),
    )?;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut trials = Vec::new();
    for (rev, scenarios, direct_verdicts) in direct {
        let verdicts = suite.server_leg("gateway", rev, &url)?;
        gateway.ensure_running()?;
        let passed_directly = scenarios
            .iter()
            .filter(|s| direct_verdicts.get(*s) == Some(&Verdict::Passed));
        for scenario in passed_directly {
            let verdict = verdicts.get(scenario).cloned();
            let verdict = verdict.unwrap_or_else(|| Verdict::Failed("no result".into()));
            let name = format!("{rev}/gateway/{scenario}");
            trials.push(verdict_trial(name, true, || verdict));
        }
    }
    gateway.stop();
    Ok(trials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_sequences_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[31mFAILURE\u{1b}[0m x"), "FAILURE x");
    }

    #[test]
    fn listing_is_parsed_by_section() {
        let text = "Required for 2025-11-25 (48 scenarios, frozen; run at the 2025-11-25 wire):\n\nServer scenarios (test against a server):\n  - server-initialize\n  - ping\n\nClient scenarios (test against a client):\n  - initialize\n  - auth/metadata-default\n\nRun and reported, but never scored:\n  extension (6):\n    - auth/dpop [client]\n  pending (2):\n    - server-sse-polling [server]\n";
        let l = parse_listing(text);
        assert_eq!(l.server, ["server-initialize", "ping"]);
        assert_eq!(l.client, ["initialize", "auth/metadata-default"]);
        assert_eq!(
            l.not_scored,
            [
                ("auth/dpop".to_owned(), "client".to_owned()),
                ("server-sse-polling".to_owned(), "server".to_owned())
            ]
        );
    }

    #[test]
    fn server_checks_are_read_per_scenario() {
        let dir = std::env::temp_dir().join(format!("xtask-conf-{}", std::process::id()));
        let ok = dir.join("server-tools-call-error-2026-11-25T17-59-01-123Z");
        let bad = dir.join("server-ping-2026-11-25T17-59-02-456Z");
        fs::create_dir_all(&ok).unwrap();
        fs::create_dir_all(&bad).unwrap();
        fs::write(
            ok.join("checks.json"),
            r#"[{"id":"a","status":"SUCCESS"},{"id":"b","status":"WARNING"}]"#,
        )
        .unwrap();
        fs::write(
            bad.join("checks.json"),
            r#"[{"id":"ping","status":"FAILURE","errorMessage":"no"}]"#,
        )
        .unwrap();
        let v = read_server_checks(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(v["tools-call-error"], Verdict::Passed);
        assert_eq!(v["ping"], Verdict::Failed("ping: no".into()));
        assert_eq!(v.len(), 2);
    }
}
