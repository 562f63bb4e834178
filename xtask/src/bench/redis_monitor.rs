//! What Redis itself saw: the commands its clients sent, counted from a `MONITOR` connection
//! (the `redis` crate's monitor connection), so that the replicated bench
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
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{Stream, StreamExt};
use redis::aio::MultiplexedConnection;
use tokio::task::JoinHandle;

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

/// Follows the lines of a `MONITOR` connection, counting client commands per window until
/// the end marker.
async fn follow(
    mut lines: impl Stream<Item = String> + Unpin,
) -> anyhow::Result<Vec<CommandCounts>> {
    let mut windows = vec![CommandCounts::default()];
    loop {
        let line = lines
            .next()
            .await
            .context("Redis closed the MONITOR connection")?;
        match parse_monitor_line(&line)? {
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
pub struct Monitor {
    follower: JoinHandle<anyhow::Result<Vec<CommandCounts>>>,
    marker: MultiplexedConnection,
    marks: usize,
    timeout: Duration,
}

impl Monitor {
    /// Connects to the Redis at `url` twice: a `MONITOR` connection, followed by a task, and
    /// one for the markers. Every step has `timeout`.
    pub async fn start(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).with_context(|| format!("Redis URL {url}"))?;
        let connect = async {
            let monitor = client.get_async_monitor().await?;
            let marker = client.get_multiplexed_async_connection().await?;
            redis::RedisResult::Ok((monitor, marker))
        };
        let (monitor, marker) = tokio::time::timeout(timeout, connect)
            .await
            .with_context(|| format!("connecting to Redis at {url} timed out"))?
            .with_context(|| format!("connecting to Redis at {url}"))?;
        Ok(Self {
            follower: tokio::spawn(follow(Box::pin(monitor.into_on_message::<String>()))),
            marker,
            marks: 0,
            timeout,
        })
    }

    async fn send_mark(&mut self, mark: &str) -> anyhow::Result<()> {
        let text = format!("{MARK_PREFIX}{mark}");
        let mut echo = redis::cmd("ECHO");
        let echo = echo.arg(&text).query_async::<String>(&mut self.marker);
        let echoed = tokio::time::timeout(self.timeout, echo)
            .await
            .context("Redis did not answer ECHO")??;
        if echoed != text {
            bail!("Redis answered ECHO {text} with {echoed:?}");
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
        let lines = [
            "1.0 [0 127.0.0.1:1] \"XREAD\" \"COUNT\"",
            "1.1 [0 127.0.0.1:2] \"echo\" \"xtask-bench-mark-1\"",
            "1.2 [0 127.0.0.1:1] \"evalsha\" \"ab\"",
            "1.3 [0 lua] \"hset\" \"k\"",
            "1.4 [0 127.0.0.1:3] \"ECHO\" \"hello\"",
            "1.5 [0 127.0.0.1:1] \"EVALSHA\" \"ab\"",
            "1.6 [0 127.0.0.1:2] \"echo\" \"xtask-bench-mark-end\"",
            "1.7 [0 127.0.0.1:1] \"evalsha\" \"ab\"",
        ];
        let stream = |lines: &[&str]| {
            futures::stream::iter(lines.iter().map(|l| l.to_string()).collect::<Vec<_>>())
        };
        let windows = follow(stream(&lines)).await.unwrap();
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0].0, BTreeMap::from([("xread".to_owned(), 1)]));
        assert_eq!(
            windows[1].0,
            BTreeMap::from([("echo".to_owned(), 1), ("evalsha".to_owned(), 2)])
        );
        assert_eq!(windows[1].get("hset"), 0);
        let cut = follow(stream(&lines[..1])).await.unwrap_err();
        assert_eq!(cut.to_string(), "Redis closed the MONITOR connection");
    }

    /// A real `redis-server`: the commands of a client between two marks are counted, the
    /// ones a script runs are not.
    #[tokio::test]
    async fn a_monitor_counts_client_commands_between_marks() {
        let server = mcp_stack_tests::redis::RedisServer::for_test();
        let mut monitor = Monitor::start(&server.url(), Duration::from_secs(5))
            .await
            .unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        monitor.mark().await.unwrap();
        let script = "redis.call('SET', KEYS[1], '1') return redis.call('GET', KEYS[1])";
        for _ in 0..3 {
            let _: String = redis::cmd("EVAL")
                .arg(script)
                .arg(1)
                .arg("k")
                .query_async(&mut connection)
                .await
                .unwrap();
        }
        monitor.mark().await.unwrap();
        let windows = monitor.finish().await.unwrap();
        assert_eq!(windows.len(), 3);
        assert_eq!(windows[1].0, BTreeMap::from([("eval".to_owned(), 3)]));
        assert_eq!(windows[2].0, BTreeMap::new());
    }
}
