//! Starting, waiting for and measuring real processes.
//!
//! - [`BackgroundProcess`]: a child process whose stdout and stderr go to a log file, that runs in
//!   its own process group and is killed (with everything it started, e.g. the binary behind
//!   `cargo run`) when dropped.
//! - [`BackgroundProcess::wait_for_tcp`] and [`BackgroundProcess::wait_for_http`]: readiness waits
//!   with a timeout that fail early, with the log, when the process exits.
//! - [`free_port`]: a free TCP port on 127.0.0.1 for a process that cannot be told to use port 0.
//! - [`pinned`]: a command pinned to some CPUs with `taskset` when it is installed.
//! - [`run_checked`], [`cargo`], [`log_dir`]: running foreground steps.
//! - [`pin_running_process`], [`process_rss_kib`], [`open_files_limit`],
//!   [`raise_open_files_limit`], [`process_trees`]: measuring and tuning running processes
//!   (Linux `/proc`; CPU time is `mcp_loadgen::process_cpu_time`).
//!
//! Everything here is blocking `std` code.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How often a readiness wait tries again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long one connection attempt or HTTP exchange of a readiness wait may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a dropped process gets to exit after SIGTERM before SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);
/// How many lines of the log [`BackgroundProcess::log_tail`] callers usually print.
pub const LOG_TAIL_LINES: usize = 200;

/// A child process started in the background with its output captured in a log file.
///
/// The child leads a new process group. Dropping the value sends SIGTERM to the group, waits
/// up to two seconds, then sends SIGKILL, so nothing it started outlives it.
#[derive(Debug)]
pub struct BackgroundProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
}

impl BackgroundProcess {
    /// Starts `command` with stdin closed and stdout and stderr appended to `log_path`
    /// (created, or truncated, along with its parent directories).
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = log_path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("creating log directory {}", parent.display()))?;
        }
        let log = File::create(log_path)
            .with_context(|| format!("creating log file {}", log_path.display()))?;
        let log_for_stderr = log
            .try_clone()
            .with_context(|| format!("sharing log file {}", log_path.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_for_stderr))
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}: {}", describe(&command)))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log_path: log_path.to_owned(),
        })
    }

    /// The name given at [`BackgroundProcess::spawn`], used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (also the process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Where the output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The exit status if the process has exited.
    pub fn exit_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("checking whether {} is running", self.name))
    }

    /// Fails, with the end of the log, if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.exit_status()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited early ({status}); last lines of {}:\n{}",
                self.name,
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            ),
        }
    }

    /// The last `lines` lines of the log (lossily decoded).
    pub fn log_tail(&self, lines: usize) -> String {
        match fs::read(&self.log_path) {
            Ok(bytes) => tail_lines(&String::from_utf8_lossy(&bytes), lines),
            Err(error) => format!("(cannot read {}: {error})", self.log_path.display()),
        }
    }

    /// Prints the end of the log to stderr under a header naming the process (what a failed
    /// test or command shows).
    #[allow(clippy::print_stderr)]
    pub fn print_log(&self) {
        eprintln!(
            "----- {} log ({}) -----\n{}\n----- end of {} log -----",
            self.name,
            self.log_path.display(),
            self.log_tail(LOG_TAIL_LINES),
            self.name
        );
    }

    /// Waits until `addr` accepts TCP connections. Fails with the log on timeout or exit.
    pub fn wait_for_tcp(&mut self, addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.ensure_running()?;
            if TcpStream::connect_timeout(&addr, ATTEMPT_TIMEOUT).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not accept connections on {addr} within {timeout:?}; last lines of {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until `GET url` gets an HTTP response (any status) and returns its status code.
    /// `url` is `http://host:port/path`. Fails with the log on timeout or exit.
    pub fn wait_for_http(&mut self, url: &str, timeout: Duration) -> anyhow::Result<u16> {
        let target = HttpTarget::parse(url)?;
        let deadline = Instant::now() + timeout;
        loop {
            self.ensure_running()?;
            let last_error = match target.get_status() {
                Ok(status) => return Ok(status),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} did not answer GET {url} within {timeout:?} (last error: {last_error:#}); last lines of {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Stops the process group now (SIGTERM, then SIGKILL after a grace period) and reaps it.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            signal_group(self.child.id(), "KILL");
            return;
        }
        signal_group(self.child.id(), "TERM");
        let deadline = Instant::now() + TERMINATE_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                // The leader is gone; make sure nothing else of the group is left.
                signal_group(self.child.id(), "KILL");
                return;
            }
            thread::sleep(POLL_INTERVAL);
        }
        signal_group(self.child.id(), "KILL");
        // Ignoring errors: the process may already be gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BackgroundProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `signal` (a name such as `TERM`) to the process group `group`, ignoring failures
/// (the group may be gone already). Uses the `kill` program: this crate forbids `unsafe`.
pub fn signal_group(group: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{group}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last `lines` lines of `text`.
fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// `http://host:port/path`, split for a raw HTTP/1.1 request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpTarget {
    host_port: String,
    path: String,
}

impl HttpTarget {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("readiness URL {url:?} must start with http://");
        };
        let (host_port, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if host_port.is_empty() || !host_port.contains(':') {
            bail!("readiness URL {url:?} must name host and port");
        }
        Ok(Self {
            host_port: host_port.to_owned(),
            path: path.to_owned(),
        })
    }

    /// One `GET` with `Connection: close`; returns the status code of the answer.
    fn get_status(&self) -> anyhow::Result<u16> {
        use std::net::ToSocketAddrs;
        let addr = self
            .host_port
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", self.host_port))?
            .next()
            .with_context(|| format!("{} resolves to no address", self.host_port))?;
        let mut stream = TcpStream::connect_timeout(&addr, ATTEMPT_TIMEOUT)?;
        stream.set_read_timeout(Some(ATTEMPT_TIMEOUT))?;
        stream.set_write_timeout(Some(ATTEMPT_TIMEOUT))?;
        // One write, so that the server sees the whole request at once.
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path, self.host_port
        );
        stream.write_all(request.as_bytes())?;
        let mut status_line = String::new();
        BufReader::new(stream.take(1024)).read_line(&mut status_line)?;
        parse_status_line(&status_line)
    }
}

/// The status code of an HTTP/1.x status line such as `HTTP/1.1 200 OK`.
fn parse_status_line(line: &str) -> anyhow::Result<u16> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") => code
            .parse()
            .with_context(|| format!("bad status code in {line:?}")),
        _ => bail!("not an HTTP status line: {line:?}"),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Another process may take it before it is
/// used; prefer letting servers bind port 0 and report their address when they can.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener
        .local_addr()
        .context("reading the bound port")?
        .port())
}

/// Whether the `taskset` program (util-linux) is on `PATH`.
pub fn taskset_available() -> bool {
    find_on_path("taskset").is_some()
}

/// The full path of `program` if it is an executable file in a directory of `PATH`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A command for `program` pinned to `cpus` (a `taskset -c` list such as `0` or `2-3`) when
/// `taskset` is available; otherwise the plain command. The second value says which it is.
pub fn pinned(program: impl AsRef<OsStr>, cpus: &str) -> (Command, bool) {
    if taskset_available() {
        let mut command = Command::new("taskset");
        command.arg("-c").arg(cpus).arg(program);
        (command, true)
    } else {
        (Command::new(program), false)
    }
}

/// A `cargo` command: the cargo that runs this xtask (`$CARGO`), or `cargo` from `PATH`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `command` in the foreground with inherited stdio; fails unless it exits with 0.
pub fn run_checked(mut command: Command) -> anyhow::Result<()> {
    let shown = describe(&command);
    let status = command
        .status()
        .with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Runs `command` with captured stdout (stderr inherited) and returns stdout; fails unless it
/// exits with 0.
pub fn output_checked(mut command: Command) -> anyhow::Result<String> {
    let shown = describe(&command);
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {shown}"))?;
    if !output.status.success() {
        bail!("{shown} failed ({})", output.status);
    }
    String::from_utf8(output.stdout).with_context(|| format!("{shown} printed non-UTF-8 output"))
}

/// The directory for log files of background processes: `<target dir>/xtask-logs`.
pub fn log_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    target.join("xtask-logs")
}

/// `program arg arg ...` for messages.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Pins the running process `pid` (all its threads) to `cpus` (a `taskset` list such as `1`).
/// Fails when `taskset` is missing or refuses.
pub fn pin_running_process(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let mut command = Command::new("taskset");
    command
        .arg("-a")
        .arg("-pc")
        .arg(cpus)
        .arg(pid.to_string())
        .stdout(Stdio::null());
    run_checked(command)
}

/// The resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn process_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss_kib(&status).with_context(|| format!("{path} has no VmRSS line"))
}

/// The `VmRSS` value (KiB) of a `/proc/<pid>/status` text.
fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let value = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then_some(value)
}

/// `roots` and all their descendants (Linux `/proc`), roots first.
pub fn process_trees(roots: &[u32]) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parent_pid(&stat)?))
        })
        .collect();
    let mut tree = roots.to_vec();
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next];
        for &(pid, ppid) in &parents {
            if ppid == parent && !tree.contains(&pid) {
                tree.push(pid);
            }
        }
        next += 1;
    }
    tree
}

/// The parent pid in a `/proc/<pid>/stat` line (the second field after the command's `)`).
fn parent_pid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The soft and hard limits on open files of process `pid` (`/proc/<pid>/limits`);
/// `u64::MAX` stands for unlimited.
pub fn open_files_limit(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/limits");
    let limits = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_open_files_limit(&limits).with_context(|| format!("{path} has no Max open files line"))
}

fn parse_open_files_limit(limits: &str) -> Option<(u64, u64)> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace().map(|v| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    });
    Some((values.next()??, values.next()??))
}

/// Raises the soft limit on open files of process `pid` to its hard limit with `prlimit`
/// (util-linux); returns the soft limit in force afterwards.
pub fn raise_open_files_limit(pid: u32) -> anyhow::Result<u64> {
    let (soft, hard) = open_files_limit(pid)?;
    if soft >= hard || find_on_path("prlimit").is_none() {
        return Ok(soft);
    }
    let hard_text = if hard == u64::MAX {
        "unlimited".to_owned()
    } else {
        hard.to_string()
    };
    let mut command = Command::new("prlimit");
    command
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={hard_text}:{hard_text}"));
    run_checked(command)?;
    Ok(open_files_limit(pid)?.0)
}

/// The `executable` of every `compiler-artifact` message in cargo's JSON output, by target name.
pub fn cargo_executables(cargo_json: &str) -> std::collections::BTreeMap<String, PathBuf> {
    cargo_json
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?.to_owned();
            let path = message["executable"].as_str()?;
            Some((name, PathBuf::from(path)))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn test_log(name: &str) -> PathBuf {
        log_dir()
            .join("process-tests")
            .join(format!("{name}-{}.log", std::process::id()))
    }

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        command
    }

    fn process_exists(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn reads_rss_and_open_file_limits() {
        assert_eq!(
            parse_vm_rss_kib("Name:\tx\nVmRSS:\t   12345 kB\nThreads:\t1\n"),
            Some(12345)
        );
        assert_eq!(parse_vm_rss_kib("Name:\tkernel-thread\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 unlimited            files\n";
        assert_eq!(parse_open_files_limit(limits), Some((1024, u64::MAX)));

        let own = std::process::id();
        assert!(process_rss_kib(own).unwrap() > 0);
        let (soft, hard) = open_files_limit(own).unwrap();
        assert!(soft <= hard);
        assert!(process_rss_kib(u32::MAX).is_err());
    }

    #[test]
    fn output_goes_to_the_log_file() {
        let log = test_log("output");
        let mut process =
            BackgroundProcess::spawn("echoer", shell("echo to-stdout; echo to-stderr >&2"), &log)
                .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while process.exit_status().unwrap().is_none() && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
        assert_eq!(process.log_tail(10), "to-stdout\nto-stderr");
        assert_eq!(process.log_tail(1), "to-stderr");
        assert_eq!(process.log_path(), log.as_path());
    }

    #[test]
    fn drop_kills_the_whole_process_group() {
        let log = test_log("group");
        // The shell starts a grandchild and reports its pid; both must die on drop.
        let mut process =
            BackgroundProcess::spawn("sleeper", shell("sleep 30 & echo $!; wait"), &log).unwrap();
        let leader = process.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        let grandchild = loop {
            if let Ok(pid) = process.log_tail(1).trim().parse::<u32>() {
                break pid;
            }
            assert!(Instant::now() < deadline, "grandchild pid never printed");
            thread::sleep(POLL_INTERVAL);
        };
        process.ensure_running().unwrap();
        assert!(process_exists(grandchild));
        drop(process);
        assert!(!process_exists(leader), "leader {leader} still exists");
        // The grandchild is reaped by init once killed; give that a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_exists(grandchild) && Instant::now() < deadline {
            let stat = fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
            if stat.contains(") Z ") {
                break; // killed, waiting to be reaped
            }
            thread::sleep(POLL_INTERVAL);
        }
        let stat = fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "grandchild {grandchild} still running: {stat}"
        );
    }

    #[test]
    fn waiting_fails_with_the_log_when_the_process_exits() {
        let log = test_log("early-exit");
        let mut process =
            BackgroundProcess::spawn("crasher", shell("echo boom-message; exit 3"), &log).unwrap();
        let port = free_port().unwrap();
        let error = process
            .wait_for_tcp(
                SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                Duration::from_secs(5),
            )
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("crasher exited early (exit status: 3)"),
            "{error}"
        );
        assert!(error.ends_with("boom-message"), "{error}");
    }

    #[test]
    fn waiting_for_a_port_nobody_opens_times_out() {
        let log = test_log("timeout");
        let mut process = BackgroundProcess::spawn("idle", shell("exec sleep 30"), &log).unwrap();
        let port = free_port().unwrap();
        let started = Instant::now();
        let error = process
            .wait_for_tcp(
                SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                Duration::from_millis(300),
            )
            .unwrap_err()
            .to_string();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(
            error.starts_with(&format!(
                "idle did not accept connections on 127.0.0.1:{port} within 300ms"
            )),
            "{error}"
        );
    }

    #[test]
    fn waits_for_tcp_and_http_readiness() {
        let log = test_log("ready");
        let mut process = BackgroundProcess::spawn("idle", shell("exec sleep 30"), &log).unwrap();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            // First connection: the TCP wait; second: the HTTP wait.
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                if !request.is_empty() {
                    let text = String::from_utf8_lossy(&request).into_owned();
                    stream
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                    return text;
                }
            }
            String::new()
        });
        process.wait_for_tcp(addr, Duration::from_secs(5)).unwrap();
        let status = process
            .wait_for_http(&format!("http://{addr}/mcp"), Duration::from_secs(5))
            .unwrap();
        assert_eq!(status, 405);
        let request = server.join().unwrap();
        assert!(
            request.starts_with(&format!("GET /mcp HTTP/1.1\r\nHost: {addr}\r\n")),
            "{request}"
        );
    }

    #[test]
    fn http_targets_and_status_lines_parse() {
        assert_eq!(
            HttpTarget::parse("http://127.0.0.1:8000/mcp").unwrap(),
            HttpTarget {
                host_port: "127.0.0.1:8000".into(),
                path: "/mcp".into()
            }
        );
        assert_eq!(HttpTarget::parse("http://localhost:1").unwrap().path, "/");
        assert!(HttpTarget::parse("https://127.0.0.1:8000/").is_err());
        assert!(HttpTarget::parse("http://127.0.0.1/").is_err());
        assert_eq!(parse_status_line("HTTP/1.1 200 OK\r\n").unwrap(), 200);
        assert_eq!(parse_status_line("HTTP/1.0 404\r\n").unwrap(), 404);
        assert!(parse_status_line("SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status_line("").is_err());
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn pinned_commands_run_on_the_given_cpu() {
        let (mut command, is_pinned) = pinned("sh", "0");
        command
            .arg("-c")
            .arg("grep Cpus_allowed_list /proc/self/status");
        assert_eq!(is_pinned, taskset_available());
        let output = output_checked(command).unwrap();
        if is_pinned {
            assert_eq!(output.trim(), "Cpus_allowed_list:\t0");
        } else {
            assert!(output.starts_with("Cpus_allowed_list:"));
        }
    }

    #[test]
    fn foreground_runs_report_failure() {
        run_checked(shell("exit 0")).unwrap();
        let error = run_checked(shell("exit 4")).unwrap_err().to_string();
        assert_eq!(error, "sh -c exit 4 failed (exit status: 4)");
        assert_eq!(output_checked(shell("printf hi")).unwrap(), "hi");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
        assert_eq!(tail_lines("", 5), "");
    }

    #[test]
    fn parent_pids_come_after_the_command_name() {
        assert_eq!(
            parent_pid("1234 (nginx: worker (x)) S 1200 1234 1234 0 -1"),
            Some(1200)
        );
        assert_eq!(parent_pid("garbage"), None);
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let own = std::process::id();
        let tree = process_trees(&[own]);
        assert_eq!(tree[0], own);
        assert!(tree.contains(&child.id()), "{tree:?}");
        assert_eq!(process_trees(&[child.id()]), vec![child.id()]);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
