//! The client side: a server started as a child process, driven through
//! [`mcp_sse::client::McpClient`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use mcp_proto::{BoxFuture, Decoded, Message};
use mcp_sse::client::{Incoming, McpClient, McpClientBuilder, MessageTransport};
use tokio::io::BufReader;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, mpsc};

use crate::Error;
use crate::framing::{DEFAULT_MAX_LINE_BYTES, Line, LineReader, write_line};

/// Default time a server gets to exit after its stdin closes, before it is killed.
pub const DEFAULT_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What to start: a program, its arguments, environment and working directory, and how the
/// connection to it is bounded.
///
/// ```
/// let command = mcp_stdio::StdioCommand::new("dice_server")
///     .arg("--stdio")
///     .env("RUST_LOG", "warn");
/// assert_eq!(command.program(), "dice_server");
/// ```
#[derive(Debug, Clone)]
pub struct StdioCommand {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    clear_env: bool,
    stderr: StderrMode,
    close_grace: Duration,
    max_line_bytes: usize,
    incoming_capacity: usize,
}

impl StdioCommand {
    /// Starts `program` (looked up in `PATH` like a shell would).
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            current_dir: None,
            clear_env: false,
            stderr: StderrMode::Inherit,
            close_grace: DEFAULT_CLOSE_GRACE,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            incoming_capacity: 256,
        }
    }

    /// The program.
    pub fn program(&self) -> &str {
        self.program.to_str().unwrap_or("(non-UTF-8 program name)")
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = A>, A: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the server (the rest is inherited unless
    /// [`StdioCommand::env_clear`] was called).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the server with only the variables given with [`StdioCommand::env`]: nothing of
    /// this process's environment (its secrets) is inherited.
    pub fn env_clear(mut self) -> Self {
        self.clear_env = true;
        self
    }

    /// Sets the server's working directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Whether the server's stderr (its logs) goes to ours (default) or is discarded.
    pub fn inherit_stderr(mut self, inherit: bool) -> Self {
        self.stderr = if inherit {
            StderrMode::Inherit
        } else {
            StderrMode::Discard
        };
        self
    }

    /// Pipes the server's stderr to this process instead: read it from
    /// [`StdioClientTransport::take_stderr`] (e.g. to log it with a prefix). A pipe nobody
    /// reads fills up and blocks the server, so read it.
    pub fn capture_stderr(mut self) -> Self {
        self.stderr = StderrMode::Capture;
        self
    }

    /// Time the server gets to exit after its stdin closes before it is killed. Default 2 s.
    pub fn close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// Bound on one message from the server. Default 4 MiB.
    pub fn max_line_bytes(mut self, limit: usize) -> Self {
        self.max_line_bytes = limit;
        self
    }

    /// Starts the process and runs an MCP session with it: `client` carries the session
    /// settings (version, capabilities, input handler, timeouts); start from
    /// [`McpClient::transport_builder`].
    ///
    /// Errors: [`Error::Spawn`] when the program cannot start, [`Error::Client`] when the
    /// handshake fails (the process is then stopped).
    pub async fn connect(&self, client: McpClientBuilder) -> Result<McpClient, Error> {
        let (transport, incoming) = StdioClientTransport::spawn(self)?;
        Ok(client.connect_with(Arc::new(transport), incoming).await?)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        if self.clear_env {
            command.env_clear();
        }
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(match self.stderr {
                StderrMode::Inherit => Stdio::inherit(),
                StderrMode::Discard => Stdio::null(),
                StderrMode::Capture => Stdio::piped(),
            })
            .kill_on_drop(true);
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        command
    }
}

/// Where a server's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StderrMode {
    Inherit,
    Discard,
    Capture,
}

/// A server process: messages go to its stdin as lines, its stdout lines arrive on the
/// incoming channel. [`MessageTransport::close`] closes its stdin, waits for it to exit for
/// the grace period, then kills it; dropping the transport kills it.
#[derive(Debug)]
pub struct StdioClientTransport {
    program: String,
    stdin: Mutex<Option<ChildStdin>>,
    stderr: std::sync::Mutex<Option<ChildStderr>>,
    child: Mutex<Child>,
    close_grace: Duration,
}

impl StdioClientTransport {
    /// Starts the process; returns the transport and the channel of its messages, which
    /// ends when its stdout does.
    pub fn spawn(command: &StdioCommand) -> Result<(Self, mpsc::Receiver<Incoming>), Error> {
        let program = command.program().to_owned();
        let mut child = command.command().spawn().map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::MissingPipe { program });
        };
        let stderr = child.stderr.take();
        let (tx, rx) = mpsc::channel(command.incoming_capacity.max(1));
        tokio::spawn(read_messages(stdout, command.max_line_bytes, tx));
        tracing::debug!(program, pid = child.id(), "MCP server process started");
        Ok((
            Self {
                program,
                stdin: Mutex::new(Some(stdin)),
                stderr: std::sync::Mutex::new(stderr),
                child: Mutex::new(child),
                close_grace: command.close_grace,
            },
            rx,
        ))
    }

    /// The process id, while it runs.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.id()
    }

    /// The server's stderr pipe, once, when the command asked for
    /// [`StdioCommand::capture_stderr`].
    pub fn take_stderr(&self) -> Option<ChildStderr> {
        match self.stderr.lock() {
            Ok(mut pipe) => pipe.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// Closes stdin, waits up to the grace period for the process to exit, then kills it.
    /// Returns how it ended.
    pub async fn shutdown(&self) -> Result<std::process::ExitStatus, Error> {
        drop(self.stdin.lock().await.take());
        let mut child = self.child.lock().await;
        match tokio::time::timeout(self.close_grace, child.wait()).await {
            Ok(status) => status.map_err(Error::Wait),
            Err(_) => {
                tracing::warn!(program = %self.program, grace = ?self.close_grace,
                    "the server did not exit after its stdin closed; killing it");
                child.kill().await.map_err(Error::Wait)?;
                child.wait().await.map_err(Error::Wait)
            }
        }
    }
}

impl MessageTransport for StdioClientTransport {
    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), mcp_sse::Error>> {
        Box::pin(async move {
            let mut stdin = self.stdin.lock().await;
            let Some(pipe) = stdin.as_mut() else {
                return Err(mcp_sse::Error::SessionClosed);
            };
            write_line(pipe, &message.to_json())
                .await
                .map_err(|source| mcp_sse::Error::TransportIo {
                    transport: "stdio",
                    source,
                })
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), mcp_sse::Error>> {
        Box::pin(async move {
            match self.shutdown().await {
                Ok(status) => {
                    tracing::debug!(program = %self.program, %status, "MCP server process ended");
                    Ok(())
                }
                Err(Error::Wait(source)) => Err(mcp_sse::Error::TransportIo {
                    transport: "stdio",
                    source,
                }),
                Err(other) => Err(mcp_sse::Error::Transport(other.to_string())),
            }
        })
    }
}

/// Forwards the server's stdout lines as incoming messages until it closes.
async fn read_messages(stdout: ChildStdout, limit: usize, tx: mpsc::Sender<Incoming>) {
    let mut reader = LineReader::new(BufReader::new(stdout), limit);
    loop {
        let items = match reader.next_line().await {
            Ok(Line::Eof) => break,
            Ok(Line::TooLong { .. }) => {
                vec![Incoming::Malformed(mcp_sse::Error::MessageTooLarge {
                    limit,
                })]
            }
            Ok(Line::Complete(bytes)) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Line::Complete(bytes)) => decode_line(&bytes),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the server's stdout");
                break;
            }
        };
        for item in items {
            if tx.send(item).await.is_err() {
                return;
            }
        }
    }
    tracing::debug!("the server's stdout closed");
}

fn decode_line(bytes: &[u8]) -> Vec<Incoming> {
    let invalid = |e: mcp_proto::Response| {
        let detail = e.outcome.err().map(|e| e.message).unwrap_or_default();
        Incoming::Malformed(mcp_sse::Error::Transport(format!(
            "the server wrote a line that is not a JSON-RPC message: {detail}"
        )))
    };
    match mcp_proto::decode(bytes) {
        Ok(Decoded::Single(message)) => vec![Incoming::Message(message)],
        Ok(Decoded::Batch(items)) => items
            .into_iter()
            .map(|item| item.map_or_else(invalid, Incoming::Message))
            .collect(),
        Err(e) => vec![invalid(e)],
    }
}
