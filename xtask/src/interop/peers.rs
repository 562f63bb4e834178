//! The programs the scenarios drive: our example binaries (built here), the Python peers
//! (installed by `scripts/install-peers.sh py`) and the scripts in `interop/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use mcp_stack_tests::process::{self, find_on_path};

/// The example binaries the scenarios run.
pub const BINARIES: [&str; 5] = [
    "dice_server",
    "dice_server_auth",
    "responses_local",
    "interop_client",
    "jwt_tool",
];

/// Builds [`BINARIES`] (package `mcp-examples`, dev profile) and returns their paths by name,
/// as cargo reports them.
pub fn build_binaries() -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut command = process::cargo();
    command
        .current_dir(mcp_stack_tests::workspace_root())
        .args(["build", "--package", "mcp-examples"])
        .arg("--message-format=json-render-diagnostics");
    for name in BINARIES {
        command.args(["--bin", name]);
    }
    let stdout = process::output_checked(command)?;
    let found = process::cargo_executables(&stdout);
    for name in BINARIES {
        if !found.contains_key(name) {
            bail!("cargo built no executable named {name}");
        }
    }
    Ok(found)
}

/// Installs the pinned Python peers (idempotent) and returns the venv's `python`.
pub fn install_python() -> anyhow::Result<PathBuf> {
    let script = mcp_stack_tests::workspace_root().join("scripts/install-peers.sh");
    let mut command = Command::new("bash");
    command.arg(&script).arg("py");
    let stdout = process::output_checked(command)?;
    let python = stdout
        .lines()
        .find_map(|line| line.strip_prefix("PYTHON="))
        .with_context(|| format!("{} printed no PYTHON= line", script.display()))?;
    let python = PathBuf::from(python);
    if !python.is_file() {
        bail!("{} does not exist after installing", python.display());
    }
    Ok(python)
}

/// The Node peers installed by `scripts/install-peers.sh node ts inspector`.
#[derive(Debug, Clone)]
pub struct NodePeers {
    /// Node 22.
    pub node: PathBuf,
    /// The `@modelcontextprotocol/sdk` package directory.
    pub ts_sdk: PathBuf,
    /// The MCP Inspector's CLI entry point.
    pub inspector: PathBuf,
}

/// Installs Node 22, the TypeScript SDK and the MCP Inspector (pinned) into `.tools/`.
pub fn install_node_peers() -> anyhow::Result<NodePeers> {
    let script = mcp_stack_tests::workspace_root().join("scripts/install-peers.sh");
    let mut command = Command::new("bash");
    command.arg(&script).args(["node", "ts", "inspector"]);
    let stdout = process::output_checked(command)?;
    let value = |key: &str| -> anyhow::Result<PathBuf> {
        let path = stdout
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("{} printed no {key}= line", script.display()))?;
        let path = PathBuf::from(path);
        if !path.exists() {
            bail!("{} does not exist after installing", path.display());
        }
        Ok(path)
    };
    Ok(NodePeers {
        node: value("NODE")?,
        ts_sdk: value("TS_SDK")?,
        inspector: value("INSPECTOR")?,
    })
}

/// A script in the repository's `interop/` folder.
pub fn script(name: &str) -> PathBuf {
    mcp_stack_tests::workspace_root().join("interop").join(name)
}

/// Fails unless the coreutils `timeout` program is available.
pub fn require_timeout_program() -> anyhow::Result<()> {
    if find_on_path("timeout").is_none() {
        bail!("the `timeout` program (coreutils) is not on PATH; every peer runs under it");
    }
    Ok(())
}

/// What a peer run produced.
#[derive(Debug)]
pub struct PeerRun {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl PeerRun {
    /// Whether `timeout` stopped it (exit code 124, or 137 after the follow-up SIGKILL).
    pub fn timed_out(&self) -> bool {
        matches!(self.code, Some(124 | 137))
    }

    /// The end of stderr (or, when that is empty, of stdout), for a failure message.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text.trim().lines().collect();
        lines[lines.len().saturating_sub(12)..].join("\n")
    }
}

/// A peer invocation: program, arguments and environment, run under `timeout`.
#[derive(Debug, Clone)]
pub struct Peer {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Peer {
    /// Runs `program` (a path).
    pub fn new(program: &Path) -> Self {
        Self {
            program: program.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Runs a script of `interop/` with the venv's `python`.
    pub fn python(python: &Path, script_name: &str) -> Self {
        Self::new(python).arg(script(script_name).to_string_lossy())
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<str>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: &str, value: impl AsRef<str>) -> Self {
        self.env.push((name.to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The command line, for messages.
    pub fn describe(&self) -> String {
        std::iter::once(self.program.to_string_lossy().into_owned())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs to completion under `timeout -k 5 <limit>`, with stdin closed and output captured.
    pub fn run(&self, limit: Duration) -> anyhow::Result<PeerRun> {
        let mut command = Command::new("timeout");
        command
            .arg("-k")
            .arg("5")
            .arg(format!("{}", limit.as_secs().max(1)))
            .arg(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(mcp_stack_tests::workspace_root())
            .stdin(Stdio::null());
        let output = command
            .output()
            .with_context(|| format!("starting {}", self.describe()))?;
        Ok(PeerRun {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn executables_come_from_compiler_artifacts() {
        let json = [
            r#"{"reason":"compiler-artifact","target":{"name":"mcp_examples"},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"dice_server"},"executable":"/t/debug/dice_server"}"#,
            r#"{"reason":"build-finished","success":true}"#,
            "not json",
        ]
        .join("\n");
        let found = process::cargo_executables(&json);
        assert_eq!(found.len(), 1);
        assert_eq!(found["dice_server"], PathBuf::from("/t/debug/dice_server"));
    }

    #[test]
    fn peers_run_under_timeout_and_capture_output() {
        require_timeout_program().unwrap();
        let ok = Peer::new(Path::new("/bin/sh"))
            .args(["-c", "echo out; echo err >&2; echo \"$X\""])
            .env("X", "from-env")
            .run(Duration::from_secs(10))
            .unwrap();
        assert_eq!(ok.code, Some(0));
        assert_eq!(ok.stdout, "out\nfrom-env\n");
        assert_eq!(ok.tail(), "err");
        assert!(!ok.timed_out());

        let started = Instant::now();
        let slow = Peer::new(Path::new("/bin/sh"))
            .args(["-c", "sleep 30"])
            .run(Duration::from_secs(1))
            .unwrap();
        assert!(slow.timed_out(), "{slow:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
