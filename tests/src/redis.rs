//! A real `redis-server` on a loopback port, for tests and for the xtask clusters.
//!
//! [`RedisServer::start`] runs it in a directory of the caller's choosing, with or without an
//! append-only file ([`Persistence`]); it is killed with its process group on drop. Stopping and
//! starting it again keeps the port (and, when persistent, the data).
//!
//! [`RedisServer::for_test`] is the form unit tests use: a fresh temporary directory, no
//! persistence, and when `redis-server` is not installed the test binary ends with ONE line
//! saying how to install it (not one panic and backtrace per test).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::{self, BackgroundProcess};

/// What to say when `redis-server` is missing.
pub const INSTALL_HINT: &str =
    "redis-server is not installed: run `bash scripts/install-redis.sh` (Debian's redis-server)";
/// How long `redis-server` may take to answer `PING` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the data survives a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// No snapshots, no append-only file: a restart comes back empty.
    None,
    /// An append-only file (fsync every second): a restart brings the keys back.
    AppendOnly,
}

/// One `redis-server` process; see the module documentation.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    persistence: Persistence,
    process: Option<BackgroundProcess>,
    starts: usize,
    remove_dir_on_drop: bool,
}

impl RedisServer {
    /// Starts `redis-server` on a free port with its data and logs in `dir` (created), and
    /// waits until it answers `PING`. Fails with [`INSTALL_HINT`] when it is not installed.
    pub fn start(dir: &Path, persistence: Persistence) -> anyhow::Result<Self> {
        if process::find_on_path("redis-server").is_none() {
            bail!("{INSTALL_HINT}");
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut server = Self {
            port: process::free_port()?,
            dir: dir.to_owned(),
            persistence,
            process: None,
            starts: 0,
            remove_dir_on_drop: false,
        };
        server.start_again()?;
        Ok(server)
    }

    /// A server for one test: a fresh temporary directory (removed on drop), no persistence.
    /// When `redis-server` is missing, prints [`INSTALL_HINT`] once and ends the test binary
    /// with exit code 1; other failures panic like any failed test.
    #[allow(clippy::panic)]
    pub fn for_test() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        if process::find_on_path("redis-server").is_none() {
            // The first test here says it and ends the process; the others wait for the end.
            static SAID: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _once = SAID.lock();
            // Straight to the process's stderr: the test harness would swallow `eprintln!`
            // output of a test that ends the process.
            let _ = writeln!(std::io::stderr(), "error: {INSTALL_HINT}");
            std::process::exit(1);
        }
        let dir = std::env::temp_dir().join(format!(
            "mcp-redis-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match Self::start(&dir, Persistence::None) {
            Ok(mut server) => {
                server.remove_dir_on_drop = true;
                server
            }
            Err(error) => panic!("starting redis-server: {error:#}"),
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(BackgroundProcess::id)
    }

    /// Whether it has been started and not stopped since.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Fails, with its log, if it exited on its own.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match &mut self.process {
            Some(process) => process.ensure_running(),
            None => Ok(()),
        }
    }

    /// Kills it as a crash would (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process::signal_group(process.id(), "KILL");
            drop(process);
        }
    }

    /// Stops it (SIGTERM: it writes its append-only file and exits; SIGKILL after a grace).
    pub fn stop(&mut self) {
        drop(self.process.take());
    }

    /// Starts it again on the same port and directory (stopping it first if it runs) and
    /// waits until it answers `PING` (with an append-only file: once the file is loaded).
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.stop();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
            .args(["--maxclients", "10000", "--logfile", ""]);
        match self.persistence {
            Persistence::None => command.args(["--appendonly", "no"]),
            Persistence::AppendOnly => {
                command.args(["--appendonly", "yes", "--appendfsync", "everysec"])
            }
        };
        self.starts += 1;
        let log = self.dir.join(format!("redis-{}.log", self.starts));
        let mut redis = BackgroundProcess::spawn("redis-server", command, &log)?;
        let _ = process::raise_open_files_limit(redis.id());
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.ping() {
            redis.ensure_running()?;
            if Instant::now() >= deadline {
                bail!(
                    "redis-server on port {} never answered PING; log:\n{}",
                    self.port,
                    redis.log_tail(process::LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.process = Some(redis);
        Ok(())
    }

    /// Prints the end of its log to stderr (after a failure).
    pub fn print_log(&self) {
        if let Some(process) = &self.process {
            process.print_log();
        }
    }

    /// Whether it answers `PING` with `+PONG` (not `-LOADING` while it reads its file).
    fn ping(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if self.remove_dir_on_drop {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
