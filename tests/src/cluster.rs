//! A cluster of real processes on loopback: one `redis-server`, N dice server replicas sharing
//! their sessions through it (`--redis`), and an nginx round-robin load balancer in front of
//! them with no stickiness. Used by `cargo xtask replicas` and the replicated bench run.
//!
//! Everything lives in one directory (`<target>/xtask-logs/cluster/<name>/`, emptied at start):
//! Redis's data (`appendonly yes`, so a restart on the same port and directory keeps the
//! sessions), nginx's generated configuration, pid file, temp paths and error log, and one log
//! file per process. Dropping the [`Cluster`] stops nginx, the replicas and Redis (each process
//! group gets SIGTERM, then SIGKILL after two seconds).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use mcp_stack_tests::cluster::{Cluster, ClusterConfig};
//! let dice_server = std::path::Path::new("target/debug/dice_server");
//! let config = ClusterConfig::new(dice_server, 3).name("replicas").arg("--echo");
//! let mut cluster = Cluster::start(config)?;
//! let url = cluster.lb_url("/mcp"); // http://127.0.0.1:<nginx port>/mcp
//! cluster.kill_replica(1)?; // SIGKILL
//! cluster.restart_replica(1)?; // same port, same replica id
//! cluster.stop_redis();
//! cluster.start_redis()?;
//! # Ok(()) }
//! ```
//!
//! With [`ClusterConfig::memory_sessions`] there is no Redis: each replica keeps its sessions
//! in memory (the baseline: one replica behind the same nginx).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::{self, BackgroundProcess};
use crate::redis::{Persistence, RedisServer};

/// How long a process of the cluster may take to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections each nginx worker may hold (a proxied SSE stream holds two: client and
/// upstream); two workers give room for well over 2 000 concurrent SSE streams.
pub const NGINX_WORKER_CONNECTIONS: u32 = 16_384;
/// Most open files each nginx worker asks for (`worker_rlimit_nofile`); less when this
/// process's hard limit is lower (a worker cannot go past it without privileges).
pub const NGINX_WORKER_NOFILE: u64 = 65_536;
/// How long nginx waits for an upstream's next byte: long, so idle SSE streams stay open.
pub const NGINX_READ_TIMEOUT: Duration = Duration::from_secs(3600);

/// What to start: see [`Cluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The replica binary (`dice_server` or `dice_server_auth`).
    pub binary: PathBuf,
    /// How many replicas.
    pub replicas: usize,
    /// Names the cluster's directory (`<target>/xtask-logs/cluster/<name>/`).
    pub name: String,
    /// Arguments given to every replica after `--host`, `--port`, `--redis` and
    /// `--replica-id` (e.g. `--echo`, `--private-key-file F`).
    pub args: Vec<String>,
    /// Environment of every replica (on top of this process's; `RUST_LOG` defaults to `warn`).
    pub env: Vec<(String, String)>,
    /// CPUs (a `taskset -c` list) the replicas run on, when `taskset` exists.
    pub replica_cpus: Option<String>,
    /// Whether the replicas share sessions through Redis (default); without, no Redis runs
    /// and each replica keeps its sessions in memory.
    pub shared_sessions: bool,
}

impl ClusterConfig {
    /// `replicas` replicas of `binary`, in the directory `cluster/`.
    pub fn new(binary: &Path, replicas: usize) -> Self {
        Self {
            binary: binary.to_owned(),
            replicas,
            name: "cluster".to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            replica_cpus: None,
            shared_sessions: true,
        }
    }

    /// No Redis: each replica keeps its sessions in memory (for a one-replica baseline).
    pub fn memory_sessions(mut self) -> Self {
        self.shared_sessions = false;
        self
    }

    /// Sets the directory name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds an argument for every replica.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments for every replica.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for every replica.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Pins the replicas to `cpus` (a `taskset -c` list such as `0` or `0-1`).
    pub fn replica_cpus(mut self, cpus: impl Into<String>) -> Self {
        self.replica_cpus = Some(cpus.into());
        self
    }
}

/// One replica: its fixed port and id, and its process while it runs.
#[derive(Debug)]
struct Replica {
    id: String,
    port: u16,
    process: Option<BackgroundProcess>,
    starts: usize,
}

/// Redis, the replicas and nginx, running; see the module documentation.
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    dir: PathBuf,
    redis: Option<RedisServer>,
    replicas: Vec<Replica>,
    lb_port: u16,
    nginx: Option<BackgroundProcess>,
}

impl Cluster {
    /// Starts Redis, then the replicas (each on a free port, `--redis` pointing at it,
    /// `--replica-id replica-<i>`), then nginx, and waits until each answers (nginx: until a
    /// request through it reaches a replica). Fails with the failing process's log.
    pub fn start(config: ClusterConfig) -> anyhow::Result<Self> {
        if config.replicas == 0 {
            bail!("a cluster needs at least one replica");
        }
        let nginx = nginx_program().context(
            "nginx is not on PATH (nor in /usr/sbin); install it with `bash scripts/install-nginx.sh`",
        )?;
        let dir = process::log_dir().join("cluster").join(&config.name);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
        }
        let temp = dir.join("nginx/temp");
        fs::create_dir_all(&temp).with_context(|| format!("creating {}", temp.display()))?;
        let mut replicas = Vec::with_capacity(config.replicas);
        for i in 0..config.replicas {
            replicas.push(Replica {
                id: format!("replica-{i}"),
                port: process::free_port()?,
                process: None,
                starts: 0,
            });
        }
        let mut cluster = Self {
            lb_port: process::free_port()?,
            config,
            dir,
            redis: None,
            replicas,
            nginx: None,
        };
        if cluster.config.shared_sessions {
            let dir = cluster.dir.join("redis");
            cluster.redis = Some(RedisServer::start(&dir, Persistence::AppendOnly)?);
        }
        for i in 0..cluster.replicas.len() {
            cluster.start_replica(i)?;
        }
        cluster.start_nginx(&nginx)?;
        Ok(cluster)
    }

    /// `http://127.0.0.1:<nginx port><path>` (`path` such as `/mcp` or `/sse`).
    pub fn lb_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.lb_port)
    }

    /// nginx's port.
    pub fn lb_port(&self) -> u16 {
        self.lb_port
    }

    /// `http://127.0.0.1:<replica i's port><path>`, straight to replica `i`.
    pub fn replica_url(&self, i: usize, path: &str) -> String {
        let port = self.replicas.get(i).map_or(0, |r| r.port);
        format!("http://127.0.0.1:{port}{path}")
    }

    /// Every replica's URL for `path`.
    pub fn replica_urls(&self, path: &str) -> Vec<String> {
        (0..self.replicas.len())
            .map(|i| self.replica_url(i, path))
            .collect()
    }

    /// How many replicas the cluster has (running or not).
    pub fn replica_count(&self) -> usize {
        self.replicas.len()
    }

    /// Replica `i`'s process id while it runs (for CPU and memory figures).
    pub fn replica_pid(&self, i: usize) -> Option<u32> {
        self.replicas
            .get(i)
            .and_then(|r| r.process.as_ref())
            .map(BackgroundProcess::id)
    }

    /// `redis://127.0.0.1:<port>` (empty when the sessions are in memory).
    pub fn redis_url(&self) -> String {
        self.redis
            .as_ref()
            .map(RedisServer::url)
            .unwrap_or_default()
    }

    /// Redis's process id while it runs.
    pub fn redis_pid(&self) -> Option<u32> {
        self.redis.as_ref().and_then(RedisServer::pid)
    }

    /// nginx's master process id.
    pub fn nginx_pid(&self) -> Option<u32> {
        self.nginx.as_ref().map(BackgroundProcess::id)
    }

    /// The process ids of everything running: nginx's master, the replicas, Redis (their
    /// children are found through `/proc`).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.nginx.iter().map(BackgroundProcess::id).collect();
        pids.extend(
            self.replicas
                .iter()
                .filter_map(|r| r.process.as_ref().map(BackgroundProcess::id)),
        );
        pids.extend(self.redis_pid());
        pids
    }

    /// Fails, with its log, if a process that should run (nginx, a replica not killed on
    /// purpose, Redis unless stopped on purpose) has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(nginx) = &mut self.nginx {
            nginx.ensure_running()?;
        }
        for replica in &mut self.replicas {
            if let Some(process) = &mut replica.process {
                process.ensure_running()?;
            }
        }
        if let Some(redis) = &mut self.redis {
            redis.ensure_running()?;
        }
        Ok(())
    }

    /// The cluster's directory (logs, Redis data, nginx configuration).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `redis-cli -p <port> <args>` and returns its output (e.g. `INFO commandstats`).
    pub fn redis_cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = Command::new("redis-cli");
        command
            .arg("-h")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.redis.as_ref().map_or(0, RedisServer::port).to_string())
            .args(args)
            .stdin(Stdio::null());
        process::output_checked(command)
    }

    /// Kills replica `i` with SIGKILL (no graceful shutdown: its streams break) and reaps it.
    pub fn kill_replica(&mut self, i: usize) -> anyhow::Result<()> {
        let replica = self
            .replicas
            .get_mut(i)
            .with_context(|| format!("no replica {i}"))?;
        let Some(mut running) = replica.process.take() else {
            bail!("replica {i} is not running");
        };
        process::signal_group(running.id(), "KILL");
        let deadline = Instant::now() + Duration::from_secs(5);
        while running.exit_status()?.is_none() {
            if Instant::now() >= deadline {
                bail!(
                    "replica {i} (pid {}) survived SIGKILL for 5 s",
                    running.id()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        drop(running);
        Ok(())
    }

    /// Starts replica `i` again (same port, same replica id) after [`Cluster::kill_replica`]
    /// (or kills it first if it still runs), and waits until it answers.
    pub fn restart_replica(&mut self, i: usize) -> anyhow::Result<()> {
        if self.replicas.get(i).is_some_and(|r| r.process.is_some()) {
            self.kill_replica(i)?;
        }
        self.start_replica(i)
    }

    /// Stops Redis (SIGTERM: it writes its append-only file and exits; SIGKILL after two
    /// seconds). Does nothing when it is not running.
    pub fn stop_redis(&mut self) {
        if let Some(redis) = &mut self.redis {
            redis.stop();
        }
    }

    /// Starts Redis again on the same port with the same directory (its append-only file
    /// brings the sessions back) and waits until it answers `PING`.
    pub fn start_redis(&mut self) -> anyhow::Result<()> {
        match &mut self.redis {
            Some(redis) if !redis.is_running() => redis.start_again(),
            Some(_) => Ok(()),
            None => bail!("this cluster keeps sessions in memory; it has no Redis to start"),
        }
    }

    /// Prints the end of every running process's log to stderr (after a failure).
    #[allow(clippy::print_stderr)]
    pub fn print_logs(&self) {
        if let Some(redis) = &self.redis {
            redis.print_log();
        }
        if let Some(nginx) = &self.nginx {
            nginx.print_log();
        }
        for replica in &self.replicas {
            if let Some(process) = &replica.process {
                process.print_log();
            }
        }
        let error_log = self.dir.join("nginx/error.log");
        if let Ok(text) = fs::read_to_string(&error_log) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!(
                "----- nginx error log ({}) -----\n{tail}",
                error_log.display()
            );
        }
    }

    fn start_replica(&mut self, i: usize) -> anyhow::Result<()> {
        let redis_url = self.redis_url();
        let config = &self.config;
        let replica = self
            .replicas
            .get_mut(i)
            .with_context(|| format!("no replica {i}"))?;
        let mut command = match &config.replica_cpus {
            Some(cpus) => process::pinned(&config.binary, cpus).0,
            None => Command::new(&config.binary),
        };
        command
            .args(["--host", "127.0.0.1", "--port"])
            .arg(replica.port.to_string());
        if config.shared_sessions {
            command
                .arg("--redis")
                .arg(&redis_url)
                .arg("--replica-id")
                .arg(&replica.id);
        }
        command
            .args(&config.args)
            .env_remove("MCP_REDIS_URL")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .envs(config.env.iter().map(|(k, v)| (k, v)));
        replica.starts += 1;
        let log = self
            .dir
            .join(format!("{}-{}.log", replica.id, replica.starts));
        let mut running = BackgroundProcess::spawn(&replica.id, command, &log)?;
        let _ = process::raise_open_files_limit(running.id());
        running.wait_for_http(
            &format!("http://127.0.0.1:{}/mcp", replica.port),
            START_TIMEOUT,
        )?;
        replica.process = Some(running);
        Ok(())
    }

    fn start_nginx(&mut self, program: &Path) -> anyhow::Result<()> {
        let nginx_dir = self.dir.join("nginx");
        let upstreams: Vec<u16> = self.replicas.iter().map(|r| r.port).collect();
        let hard = process::open_files_limit(std::process::id()).map_or(4096, |(_, hard)| hard);
        let nofile = hard.min(NGINX_WORKER_NOFILE);
        let conf = nginx_config(
            &nginx_dir,
            self.lb_port,
            &upstreams,
            nofile,
            running_as_root(),
        );
        let conf_path = nginx_dir.join("nginx.conf");
        fs::write(&conf_path, conf).with_context(|| format!("writing {}", conf_path.display()))?;
        let error_log = nginx_dir.join("error.log");
        let mut command = Command::new(program);
        command
            .arg("-p")
            .arg(&nginx_dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(&error_log);
        let mut nginx = BackgroundProcess::spawn("nginx", command, &self.dir.join("nginx.log"))?;
        let _ = process::raise_open_files_limit(nginx.id());
        // Ready once a request through it reaches a replica (nginx answers 502 until then).
        let url = self.lb_url("/mcp");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let status = nginx.wait_for_http(&url, START_TIMEOUT)?;
            if status != 502 && status != 504 {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "nginx on port {} answers {status}; error log {}",
                    self.lb_port,
                    error_log.display()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.nginx = Some(nginx);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failing test (a panic) shows what the processes said.
        if std::thread::panicking() {
            self.print_logs();
        }
        // Front to back: nginx, the replicas, then Redis.
        drop(self.nginx.take());
        for replica in &mut self.replicas {
            drop(replica.process.take());
        }
        drop(self.redis.take());
    }
}

/// nginx on `PATH`, or Debian's `/usr/sbin/nginx` (not on a non-root user's `PATH`).
fn nginx_program() -> Option<PathBuf> {
    process::find_on_path("nginx").or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    })
}

/// Whether this process runs as root (`Uid:` of `/proc/self/status`).
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            == Some("0")
    })
}

/// The nginx configuration: a round-robin upstream over `upstream_ports` (no stickiness),
/// listening on `127.0.0.1:<port>`, every path inside `dir`, in the foreground. Proxying suits
/// SSE: HTTP/1.1 with keep-alive to the upstreams, no buffering either way, hour-long reads.
/// Each worker may open `nofile` files and hold up to that many connections (at most
/// [`NGINX_WORKER_CONNECTIONS`], less a margin for its own files). As root, the workers stay
/// root (they must write the temp paths inside `dir`).
pub fn nginx_config(
    dir: &Path,
    port: u16,
    upstream_ports: &[u16],
    nofile: u64,
    as_root: bool,
) -> String {
    let dir = dir.display();
    let connections = nofile
        .saturating_sub(64)
        .clamp(1024, u64::from(NGINX_WORKER_CONNECTIONS));
    let read_timeout = NGINX_READ_TIMEOUT.as_secs();
    let mut servers = String::new();
    for upstream in upstream_ports {
        let _ = writeln!(servers, "        server 127.0.0.1:{upstream};");
    }
    let user = if as_root { "user root;\n" } else { "" };
    format!(
        "# Generated by cargo xtask (xtask/src/cluster.rs); round robin, no stickiness.
{user}daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections {connections};
    multi_accept on;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/temp/client_body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    client_max_body_size 8m;
    keepalive_requests 100000;

    upstream replicas {{
{servers}        keepalive 256;
        # Shorter than the replicas' idle limit (their 10 s header deadline), so nginx never
        # reuses a connection a replica is closing.
        keepalive_timeout 5s;
    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_cache off;
            proxy_read_timeout {read_timeout}s;
            proxy_send_timeout {read_timeout}s;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_config_balances_without_stickiness_and_suits_sse() {
        let conf = nginx_config(
            Path::new("/tmp/c/nginx"),
            8080,
            &[9001, 9002, 9003],
            20_000,
            false,
        );
        assert!(conf.contains(
            "    upstream replicas {\n        server 127.0.0.1:9001;\n        server 127.0.0.1:9002;\n        server 127.0.0.1:9003;\n        keepalive 256;\n"
        ), "{conf}");
        for line in [
            "daemon off;",
            "pid /tmp/c/nginx/nginx.pid;",
            "error_log /tmp/c/nginx/error.log warn;",
            "worker_connections 16384;",
            "worker_rlimit_nofile 20000;",
            "listen 127.0.0.1:8080;",
            "proxy_pass http://replicas;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "proxy_buffering off;",
            "proxy_read_timeout 3600s;",
            "client_body_temp_path /tmp/c/nginx/temp/client_body;",
            "proxy_temp_path /tmp/c/nginx/temp/proxy;",
        ] {
            assert!(
                conf.lines().any(|l| l.trim() == line),
                "missing {line:?}:\n{conf}"
            );
        }
        // No stickiness of any kind.
        for sticky in ["ip_hash", "hash ", "sticky", "least_conn"] {
            assert!(!conf.contains(sticky), "{sticky} in:\n{conf}");
        }
        assert!(!conf.contains("user root;"));
        let as_root = nginx_config(Path::new("/d"), 1, &[2], 4096, true);
        assert!(as_root.lines().nth(1) == Some("user root;"), "{as_root}");
        // A low limit lowers the connections under it.
        assert!(as_root.contains("worker_connections 4032;"), "{as_root}");
        assert!(as_root.contains("worker_rlimit_nofile 4096;"), "{as_root}");
    }

    #[test]
    fn a_cluster_needs_a_replica() {
        let error = Cluster::start(ClusterConfig::new(Path::new("/bin/true"), 0))
            .unwrap_err()
            .to_string();
        assert_eq!(error, "a cluster needs at least one replica");
    }

    #[test]
    fn config_builder_collects_arguments() {
        let config = ClusterConfig::new(Path::new("/x/dice_server"), 3)
            .name("n")
            .arg("--echo")
            .args(["--private-key-file", "k.pem"])
            .env("A", "b")
            .replica_cpus("0");
        assert_eq!(config.args, ["--echo", "--private-key-file", "k.pem"]);
        assert_eq!(config.env, [("A".to_owned(), "b".to_owned())]);
        assert_eq!(config.name, "n");
        assert_eq!(config.replica_cpus.as_deref(), Some("0"));
        assert_eq!(config.replicas, 3);
        assert!(config.shared_sessions);
        assert!(!config.memory_sessions().shared_sessions);
    }
}
