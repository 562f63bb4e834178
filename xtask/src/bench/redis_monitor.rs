//! What Redis itself saw: the commands its clients sent, counted from a `MONITOR` connection
//! (a bare RESP connection, no client library, no `redis-cli`), so that the replicated bench
//! counts round trips on the Redis side rather than trusting the replicas' own counters.
//!
//! Why `MONITOR` and not `INFO commandstats`: Redis counts the commands a Lua script runs
//! (`redis.call`) under their own names too, so one `EVALSHA` round trip shows up there as
//! `evalsha` + `hmget` + `hset` + `pexpire` + ... . `MONITOR` names the source of each command
//! (`[0 127.0.0.1:40312]` for a client, `[0 lua]` for a script), and only client commands are
//! counted here. The windows are cut by marker commands (`ECHO xtask-bench-mark-<n>`) sent on
//! another connection: Redis runs commands one at a time, so every command lands on one side
//! of a marker, exactly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Longest line read from Redis (a `MONITOR` line shows a whole command, Lua sources included).
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// What the marker commands echo, followed by their number or [`END_MARK`].
const MARK_PREFIX: &str = "xtask-bench-mark-";
const END_MARK: &str = "end";

/// Calls per command name (lower case) in one window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandCounts(pub BTreeMap<String, u64>);

impl CommandCounts {
    /// Calls of `command` (0 when none).
    pub fn get(&self, command: &str) -> u64 {
        self.0.get(command).copied().unwrap_or(0)
    }
}

/// One line of `MONITOR` output, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MonitorLine {
    /// A command a client sent: its name (lower case) and first argument.
    Client { command: String, first: String },
    /// A command a Lua script ran (inside its client's `EVALSHA`).
    Script,
}

/// Parses `+<time> [<db> <source>] "<command>" "<arg>" ...` (without the `+`).
fn parse_monitor_line(line: &str) -> anyhow::Result<MonitorLine> {
    let open = line
        .find('[')
        .with_context(|| format!("MONITOR line without a source: {line:?}"))?;
    let close = line[open..]
        .find(']')
        .map(|i| open + i)
        .with_context(|| format!("MONITOR line without a source: {line:?}"))?;
    let source = line[open + 1..close]
        .split_whitespace()
        .nth(1)
        .unwrap_or("");
    if source == "lua" {
        return Ok(MonitorLine::Script);
    }
    let mut quoted = line[close + 1..].split('"').skip(1).step_by(2);
    let command = quoted
        .next()
        .with_context(|| format!("MONITOR line without a command: {line:?}"))?
        .to_ascii_lowercase();
    let first = quoted.next().unwrap_or("").to_owned();
    Ok(MonitorLine::Client { command, first })
}

/// Reads one `\n`-terminated line of at most `max` bytes; `None` at the end of the stream.
async fn read_line_bounded(
    reader: &mut (impl AsyncBufRead + Unpin),
    max: usize,
) -> anyhow::Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned()));
        }
        let (taken, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if line.len() > max {
            bail!("a line from Redis is longer than {max} bytes");
        }
        if done {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

/// Follows a `MONITOR` stream, counting client commands per window until the end marker.
async fn follow(mut reader: impl AsyncBufRead + Unpin) -> anyhow::Result<Vec<CommandCounts>> {
    let mut windows = vec![CommandCounts::default()];
    loop {
        let line = read_line_bounded(&mut reader, MAX_LINE_BYTES)
            .await?
            .context("Redis closed the MONITOR connection")?;
        let Some(line) = line.strip_prefix('+') else {
            bail!("MONITOR sent {line:?}");
        };
        match parse_monitor_line(line)? {
            MonitorLine::Script => {}
            MonitorLine::Client { command, first }
                if command == "echo" && first.starts_with(MARK_PREFIX) =>
            {
                if first[MARK_PREFIX.len()..] == *END_MARK {
                    return Ok(windows);
                }
                windows.push(CommandCounts::default());
            }
            MonitorLine::Client { command, .. } => {
                if let Some(window) = windows.last_mut() {
                    *window.0.entry(command).or_default() += 1;
                }
            }
        }
    }
}

/// Counts the commands Redis's clients send, in windows cut by [`Monitor::mark`].
#[derive(Debug)]
pub struct Monitor {
    follower: JoinHandle<anyhow::Result<Vec<CommandCounts>>>,
    marker: BufReader<TcpStream>,
    marks: usize,
    timeout: Duration,
}

impl Monitor {
    /// Connects to the Redis at `addr` twice: a `MONITOR` connection, followed by a task, and
    /// one for the markers. Every step has `timeout`.
    pub async fn start(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Self> {
        let connect = |what: &'static str| async move {
            tokio::time::timeout(timeout, TcpStream::connect(addr))
                .await
                .with_context(|| format!("connecting to Redis at {addr} ({what}) timed out"))?
                .with_context(|| format!("connecting to Redis at {addr} ({what})"))
        };
        let mut monitor = BufReader::new(connect("MONITOR").await?);
        monitor
            .get_mut()
            .write_all(b"*1\r\n$7\r\nMONITOR\r\n")
            .await?;
        let ok = tokio::time::timeout(timeout, read_line_bounded(&mut monitor, 1024))
            .await
            .context("Redis did not answer MONITOR")??;
        if ok.as_deref() != Some("+OK") {
            bail!("Redis answered MONITOR with {ok:?}");
        }
        Ok(Self {
            follower: tokio::spawn(follow(monitor)),
            marker: BufReader::new(connect("markers").await?),
            marks: 0,
            timeout,
        })
    }

    async fn send_mark(&mut self, mark: &str) -> anyhow::Result<()> {
        let text = format!("{MARK_PREFIX}{mark}");
        let command = format!("*2\r\n$4\r\nECHO\r\n${}\r\n{text}\r\n", text.len());
        self.marker.get_mut().write_all(command.as_bytes()).await?;
        let header = tokio::time::timeout(
            self.timeout,
            read_line_bounded(&mut self.marker, MAX_LINE_BYTES),
        )
        .await
        .context("Redis did not answer ECHO")??;
        let echoed = tokio::time::timeout(
            self.timeout,
            read_line_bounded(&mut self.marker, MAX_LINE_BYTES),
        )
        .await
        .context("Redis did not answer ECHO")??;
        if header != Some(format!("${}", text.len())) || echoed.as_deref() != Some(text.as_str()) {
            bail!("Redis answered ECHO with {header:?} {echoed:?}");
        }
        Ok(())
    }

    /// Closes the current window: what Redis runs from now on counts in the next one.
    pub async fn mark(&mut self) -> anyhow::Result<()> {
        self.marks += 1;
        let mark = self.marks.to_string();
        self.send_mark(&mark).await
    }

    /// Closes the last window and returns every window's counts: the one before the first
    /// mark, then one per mark.
    pub async fn finish(mut self) -> anyhow::Result<Vec<CommandCounts>> {
        self.send_mark(END_MARK).await?;
        let windows = tokio::time::timeout(self.timeout, &mut self.follower)
            .await
            .context("the MONITOR stream did not reach the end mark")?
            .context("the MONITOR task failed")??;
        if windows.len() != self.marks + 1 {
            bail!(
                "MONITOR showed {} marks, {} were sent",
                windows.len() - 1,
                self.marks
            );
        }
        Ok(windows)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[test]
    fn monitor_lines_name_the_command_and_tell_scripts_apart() {
        assert_eq!(
            parse_monitor_line(
                r#"1700000000.123456 [0 127.0.0.1:40312] "EVALSHA" "ab12" "1" "mcp:session:x""#
            )
            .unwrap(),
            MonitorLine::Client {
                command: "evalsha".into(),
                first: "ab12".into()
            }
        );
        assert_eq!(
            parse_monitor_line(r#"1700000000.123457 [0 lua] "hmget" "mcp:session:x" "t""#).unwrap(),
            MonitorLine::Script
        );
        assert_eq!(
            parse_monitor_line(r#"1700000000.2 [0 unix:/tmp/r.sock] "ping""#).unwrap(),
            MonitorLine::Client {
                command: "ping".into(),
                first: String::new()
            }
        );
        assert_eq!(
            parse_monitor_line("garbage").unwrap_err().to_string(),
            "MONITOR line without a source: \"garbage\""
        );
    }

    #[tokio::test]
    async fn windows_are_cut_at_the_marks() {
        let stream = concat!(
            "+1.0 [0 127.0.0.1:1] \"XREAD\" \"COUNT\"\r\n",
            "+1.1 [0 127.0.0.1:2] \"echo\" \"xtask-bench-mark-1\"\r\n",
            "+1.2 [0 127.0.0.1:1] \"evalsha\" \"ab\"\r\n",
            "+1.3 [0 lua] \"hset\" \"k\"\r\n",
            "+1.4 [0 127.0.0.1:3] \"ECHO\" \"hello\"\r\n",
            "+1.5 [0 127.0.0.1:1] \"EVALSHA\" \"ab\"\r\n",
            "+1.6 [0 127.0.0.1:2] \"echo\" \"xtask-bench-mark-end\"\r\n",
            "+1.7 [0 127.0.0.1:1] \"evalsha\" \"ab\"\r\n",
        );
        let windows = follow(stream.as_bytes()).await.unwrap();
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0].0, BTreeMap::from([("xread".to_owned(), 1)]));
        assert_eq!(
            windows[1].0,
            BTreeMap::from([("echo".to_owned(), 1), ("evalsha".to_owned(), 2)])
        );
        assert_eq!(windows[1].get("hset"), 0);
        let cut = follow("+1.0 [0 127.0.0.1:1] \"ping\"\r\n".as_bytes())
            .await
            .unwrap_err();
        assert_eq!(cut.to_string(), "Redis closed the MONITOR connection");
        let error = follow("-ERR no\r\n".as_bytes()).await.unwrap_err();
        assert_eq!(error.to_string(), "MONITOR sent \"-ERR no\"");
    }

    #[tokio::test]
    async fn lines_are_bounded() {
        let mut reader = "abc\r\ndefgh\nij".as_bytes();
        assert_eq!(
            read_line_bounded(&mut reader, 10).await.unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(
            read_line_bounded(&mut reader, 10).await.unwrap().as_deref(),
            Some("defgh")
        );
        assert_eq!(
            read_line_bounded(&mut reader, 10).await.unwrap().as_deref(),
            Some("ij")
        );
        assert_eq!(read_line_bounded(&mut reader, 10).await.unwrap(), None);
        let long = "x".repeat(50);
        assert!(read_line_bounded(&mut long.as_bytes(), 10).await.is_err());
    }

    /// A fake Redis: answers MONITOR, echoes ECHOs on the marker connection and streams the
    /// matching MONITOR lines, plus one client command and one script command per window.
    #[tokio::test]
    async fn a_monitor_counts_client_commands_between_marks_over_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut monitor, _) = listener.accept().await.unwrap();
            let mut request = vec![0; b"*1\r\n$7\r\nMONITOR\r\n".len()];
            monitor.read_exact(&mut request).await.unwrap();
            assert_eq!(request, b"*1\r\n$7\r\nMONITOR\r\n");
            monitor.write_all(b"+OK\r\n").await.unwrap();
            let (marker, _) = listener.accept().await.unwrap();
            let mut marker = BufReader::new(marker);
            loop {
                let mut lines = Vec::new();
                for _ in 0..5 {
                    lines.push(read_line_bounded(&mut marker, 1024).await.unwrap().unwrap());
                }
                let text = lines[4].clone();
                monitor
                    .write_all(
                        format!(
                            "+1.0 [0 127.0.0.1:9] \"evalsha\" \"x\"\r\n+1.0 [0 lua] \"hset\"\r\n+1.1 [0 127.0.0.1:8] \"ECHO\" \"{text}\"\r\n"
                        )
                        .as_bytes(),
                    )
                    .await
                    .unwrap();
                marker
                    .get_mut()
                    .write_all(format!("${}\r\n{text}\r\n", text.len()).as_bytes())
                    .await
                    .unwrap();
                if text.ends_with("end") {
                    break;
                }
            }
        });
        let mut monitor = Monitor::start(addr, Duration::from_secs(5)).await.unwrap();
        monitor.mark().await.unwrap();
        monitor.mark().await.unwrap();
        let windows = monitor.finish().await.unwrap();
        assert_eq!(windows.len(), 3);
        for window in &windows {
            assert_eq!(window.0, BTreeMap::from([("evalsha".to_owned(), 1)]));
        }
        server.await.unwrap();
    }
}
