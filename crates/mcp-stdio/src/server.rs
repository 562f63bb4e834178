//! The server side: an [`McpService`] on a byte stream pair (a process's stdin and stdout).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_proto::jsonrpc::code;
use mcp_proto::types::method;
use mcp_proto::{
    BoxFuture, Decoded, ErrorObject, McpService, Message, MessageContext, Outbound, RequestId,
    Response, SendError, Session,
};
use mcp_sse::metrics::{HandledMessage, MessageLabels};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::Error;
use crate::framing::{DEFAULT_MAX_LINE_BYTES, Line, LineReader, write_line};

/// The JSON-RPC code for "too many requests in flight" (implementation-defined range).
pub const SERVER_BUSY: i64 = -32000;

/// Limits of a stdio connection; build it with `..StdioConfig::default()`.
#[derive(Debug, Clone)]
pub struct StdioConfig {
    /// Bound on one incoming line (one JSON-RPC message or batch). A longer line is skipped
    /// and answered with `-32600` (its id cannot be known). Default 4 MiB.
    pub max_line_bytes: usize,
    /// Messages queued for stdout before senders wait. Default 256.
    pub outbound_capacity: usize,
    /// Requests running at once; more are answered with [`SERVER_BUSY`]. Default 64.
    pub max_in_flight: usize,
    /// Time one request may run before it is cancelled and answered with `-32001`.
    /// Default 5 minutes.
    pub call_timeout: Duration,
    /// After stdin closes, time running requests get to finish (their answers are still
    /// written) before they are cancelled. Default 5 s.
    pub shutdown_grace: Duration,
}

impl Default for StdioConfig {
    fn default() -> Self {
        Self {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            outbound_capacity: 256,
            max_in_flight: 64,
            call_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves an [`McpService`] over newline-delimited JSON-RPC: one session per connection,
/// requests run concurrently, notifications and answers to the server's own requests are
/// handled in the order they arrive.
///
/// Nothing but JSON-RPC messages is written to the output; logs go through `tracing`, which
/// the binary should send to stderr.
#[derive(Clone)]
pub struct StdioServer {
    service: Arc<dyn McpService>,
    config: StdioConfig,
}

impl std::fmt::Debug for StdioServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Sends server-to-client messages to the writer task.
#[derive(Debug, Clone)]
struct LineOutbound {
    lines: mpsc::Sender<String>,
}

impl Outbound for LineOutbound {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            self.lines
                .send(message.to_json())
                .await
                .map_err(|_| SendError::Closed)
        })
    }
}

/// What one connection shares between its reader loop and its request tasks.
struct Connection {
    service: Arc<dyn McpService>,
    config: StdioConfig,
    session: Arc<Session>,
    outbound: LineOutbound,
}

impl StdioServer {
    /// A server with default limits.
    pub fn new(service: impl McpService) -> Self {
        Self::with_config(service, StdioConfig::default())
    }

    /// A server with the given limits.
    pub fn with_config(service: impl McpService, config: StdioConfig) -> Self {
        Self {
            service: Arc::new(service),
            config,
        }
    }

    /// Serves the process's stdin and stdout until stdin closes.
    pub async fn serve_stdio(self) -> Result<(), Error> {
        self.serve(tokio::io::stdin(), tokio::io::stdout()).await
    }

    /// Serves one connection until `input` ends (then running requests get
    /// [`StdioConfig::shutdown_grace`] to answer) or `output` fails.
    ///
    /// Errors: [`Error::Read`] when `input` fails, [`Error::Write`] when `output` does.
    pub async fn serve<R, W>(self, input: R, output: W) -> Result<(), Error>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (lines, queued) = mpsc::channel(self.config.outbound_capacity.max(1));
        let (stop_writer, stopped) = oneshot::channel();
        let mut writer = tokio::spawn(write_lines(output, queued, stopped));
        let connection = Arc::new(Connection {
            service: Arc::clone(&self.service),
            config: self.config.clone(),
            session: Arc::new(Session::new(None)),
            outbound: LineOutbound { lines },
        });
        let outbound: Arc<dyn Outbound> = Arc::new(connection.outbound.clone());
        self.service.stream_opened(&connection.session, outbound);
        tracing::info!(transport = "stdio", "MCP server reading stdin");
        let mut reader = LineReader::new(BufReader::new(input), self.config.max_line_bytes);
        let mut calls = JoinSet::new();
        let outcome = loop {
            let line = tokio::select! {
                line = reader.next_line() => line,
                written = &mut writer => break Err(writer_failure(written)),
            };
            while calls.try_join_next().is_some() {}
            match line {
                Ok(Line::Eof) => break Ok(()),
                Ok(Line::TooLong { bytes }) => {
                    connection.reply(too_long(bytes, &self.config)).await
                }
                Ok(Line::Complete(bytes)) => connection.accept(&bytes, &mut calls).await,
                Err(e) => break Err(Error::Read(e)),
            }
        };
        tracing::debug!(transport = "stdio", running = calls.len(), "input closed");
        finish_calls(&mut calls, &connection).await;
        self.service.session_closed(&connection.session);
        let _ = stop_writer.send(());
        if outcome.is_ok() {
            return match writer.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Error::Write(e)),
                Err(e) => Err(Error::Write(std::io::Error::other(e))),
            };
        }
        outcome
    }
}

fn writer_failure(written: Result<std::io::Result<()>, tokio::task::JoinError>) -> Error {
    match written {
        Ok(Err(e)) => Error::Write(e),
        Ok(Ok(())) => Error::Write(std::io::ErrorKind::BrokenPipe.into()),
        Err(e) => Error::Write(std::io::Error::other(e)),
    }
}

/// Lets running calls answer for the grace period, then cancels the rest.
async fn finish_calls(calls: &mut JoinSet<()>, connection: &Connection) {
    let grace = connection.config.shutdown_grace;
    let drained = async { while calls.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            running = calls.len(),
            "stdin closed; cancelling calls still running"
        );
        connection.session.cancel_all();
        calls.abort_all();
        while calls.join_next().await.is_some() {}
    }
}

/// Writes queued lines until told to stop, then writes what is still queued.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut output: W,
    mut queued: mpsc::Receiver<String>,
    mut stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    loop {
        tokio::select! {
            line = queued.recv() => match line {
                Some(line) => write_line(&mut output, &line).await?,
                None => return Ok(()),
            },
            _ = &mut stop => break,
        }
    }
    while let Ok(line) = queued.try_recv() {
        write_line(&mut output, &line).await?;
    }
    Ok(())
}

/// The method (`response` for an answer), the request id, and the tool of a `tools/call`.
fn too_long(bytes: usize, config: &StdioConfig) -> Message {
    mcp_sse::metrics::record_limit_rejection("line_bytes");
    tracing::warn!(
        bytes,
        limit = config.max_line_bytes,
        "message over the line limit"
    );
    Message::Response(Response::error(
        None,
        ErrorObject::invalid_request(format!(
            "the message is {bytes} bytes, over the {}-byte limit of this server",
            config.max_line_bytes
        )),
    ))
}

impl Connection {
    async fn reply(&self, message: Message) {
        if self.outbound.lines.send(message.to_json()).await.is_err() {
            tracing::debug!("stdout closed; reply dropped");
        }
    }

    /// Handles one line: requests run as tasks, everything else (and `initialize`) in order.
    async fn accept(self: &Arc<Self>, bytes: &[u8], calls: &mut JoinSet<()>) {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match mcp_proto::decode(bytes) {
            Err(error) => self.reply(Message::Response(error)).await,
            Ok(Decoded::Single(Message::Request(request)))
                if request.method == method::INITIALIZE =>
            {
                // In order: what follows it (`notifications/initialized`) needs its session.
                if let Some(reply) = self.handle(Message::Request(request)).await {
                    self.reply(reply).await;
                }
            }
            Ok(Decoded::Single(Message::Request(request))) => {
                if calls.len() >= self.config.max_in_flight {
                    mcp_sse::metrics::record_limit_rejection("in_flight");
                    let busy = ErrorObject::new(
                        SERVER_BUSY,
                        format!(
                            "Server busy: {} requests are already running",
                            self.config.max_in_flight
                        ),
                    );
                    let reply = Response::error(Some(request.id), busy);
                    return self.reply(Message::Response(reply)).await;
                }
                let connection = Arc::clone(self);
                let mut work = Box::pin(async move {
                    if let Some(reply) = connection.handle(Message::Request(request)).await {
                        connection.reply(reply).await;
                    }
                });
                // One poll here, before the next line is read: the service registers the
                // request, so a `notifications/cancelled` right behind it finds it.
                if futures::poll!(work.as_mut()).is_pending() {
                    calls.spawn(work);
                }
            }
            Ok(Decoded::Single(message)) => {
                if let Some(reply) = self.handle(message).await {
                    self.reply(reply).await;
                }
            }
            Ok(Decoded::Batch(items)) => {
                let connection = Arc::clone(self);
                calls.spawn(async move { connection.handle_batch(items).await });
            }
        }
    }

    /// Runs the items of a batch concurrently and answers with one array.
    async fn handle_batch(self: Arc<Self>, items: Vec<Result<Message, Response>>) {
        let replies = futures::future::join_all(items.into_iter().map(|item| {
            let connection = Arc::clone(&self);
            async move {
                match item {
                    Ok(message) => connection.handle(message).await,
                    Err(error) => Some(Message::Response(error)),
                }
            }
        }))
        .await;
        let replies: Vec<Message> = replies.into_iter().flatten().collect();
        if replies.is_empty() {
            return;
        }
        match serde_json::to_string(&replies) {
            Ok(array) => {
                if self.outbound.lines.send(array).await.is_err() {
                    tracing::debug!("stdout closed; batch reply dropped");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot serialize a batch reply"),
        }
    }

    /// Hands one message to the service, with the call timeout for requests.
    async fn handle(&self, message: Message) -> Option<Message> {
        let MessageLabels { method, id, tool } = MessageLabels::of(&message);
        let span = tracing::info_span!("mcp.message", transport = "stdio", %method, id = ?id.as_ref().map(ToString::to_string));
        let outbound: Arc<dyn Outbound> = Arc::new(self.outbound.clone());
        let ctx = MessageContext::new(Arc::clone(&self.session)).with_outbound(outbound);
        let work = self.service.handle(message, ctx);
        let timeout = self.config.call_timeout;
        let started = Instant::now();
        let (reply, timed_out) = match tokio::time::timeout(timeout, work).instrument(span).await {
            Ok(reply) => (reply, false),
            Err(_) => (self.timed_out(id, &method), true),
        };
        let handled = HandledMessage {
            transport: "stdio",
            method: &method,
            tool: tool.as_deref(),
            timed_out,
            elapsed: started.elapsed(),
        };
        mcp_sse::metrics::record_message(&handled, reply.as_ref().map(mcp_proto::ReplyOutcome::of));
        reply
    }

    /// Cancels a request that ran out of time; the answer to send.
    fn timed_out(&self, id: Option<RequestId>, method: &str) -> Option<Message> {
        let id = id?;
        self.session.cancel_request(&id);
        let timeout = self.config.call_timeout;
        tracing::warn!(?timeout, %method, "call timed out");
        let error = ErrorObject::new(
            code::REQUEST_TIMEOUT,
            format!("Request timed out after {} s", timeout.as_secs_f64()),
        );
        Some(Message::Response(Response::error(Some(id), error)))
    }
}
