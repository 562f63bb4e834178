//! Server limits and options.

use std::time::Duration;

/// Limits and options of the HTTP transports. Every field has a sane default.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Path of the legacy SSE stream (`GET`). Default `/sse`.
    pub sse_path: String,
    /// Path legacy SSE clients POST messages to. Default `/messages/`.
    pub messages_path: String,
    /// Path of the streamable HTTP endpoint. Default `/mcp`.
    pub mcp_path: String,
    /// Serve the legacy HTTP+SSE transport. Default `true`.
    pub legacy_sse: bool,
    /// Serve streamable HTTP. Default `true`.
    pub streamable_http: bool,
    /// Streamable HTTP without sessions: every request stands alone, so replicas behind a
    /// load balancer need no shared state (to keep sessions across replicas instead, see
    /// `McpHttpServer::session_store`). Default `false`.
    pub stateless: bool,
    /// Offer the standalone `GET` stream on the streamable endpoint (405 otherwise). Default `true`.
    pub get_stream: bool,
    /// Answer streamable requests with a JSON body when nothing precedes the result, instead
    /// of an SSE stream. Default `false`: like the Python SDK (and so FastMCP), results go
    /// out as one SSE `message` event, which every client accepts (OpenAI's MCP client was
    /// seen parsing only SSE-framed answers).
    pub json_response: bool,
    /// Origins allowed in an `Origin` header (exact `scheme://host[:port]`), besides loopback
    /// origins on any port. A request with another `Origin` gets 403. Requests without
    /// `Origin` (non-browser clients) pass.
    pub allowed_origins: Vec<String>,
    /// Accept any `Origin` (turns off the DNS-rebinding check). Default `false`.
    pub allow_any_origin: bool,
    /// Largest request body. Default 4 MiB.
    pub max_body_bytes: usize,
    /// Period of keep-alive comments on idle streams. Default 15 s.
    pub keep_alive: Duration,
    /// Most live sessions (both transports together, counted in the session store, so across
    /// replicas when the store is shared); more get 503. Default 10 000.
    pub max_sessions: usize,
    /// Most live sessions of one client: one authenticated subject, or one client address
    /// without authentication (counted in the session store). More get 429, while other
    /// clients still open theirs. Default 1000 (a tenth of `max_sessions`).
    pub max_sessions_per_client: usize,
    /// Largest `initialize` request params (`clientInfo`, `capabilities`, ...), serialized:
    /// what a session keeps of its client. Larger ones are refused with JSON-RPC `-32602`.
    /// Default 16 KiB.
    pub max_initialize_bytes: usize,
    /// Most messages in one JSON-RPC batch (2025-03-26); larger batches get 400 with
    /// `-32600`. Each element takes one in-flight slot of its session. Default 64.
    pub max_batch_len: usize,
    /// A streamable session unused this long is ended. Default 30 min.
    pub session_idle_timeout: Duration,
    /// Any session is ended this long after it was created, used or not. Default 24 h.
    pub session_lifetime: Duration,
    /// Longest a single call may run before it is cancelled and answered with an error.
    /// Default 5 min.
    pub call_timeout: Duration,
    /// Most requests running at once in one session, wherever they run (counted in the
    /// session store); more get 429. Default 64. A store may give a finished call's slot
    /// back a moment later (the Redis store: with its next request, at most 10 ms after).
    pub max_in_flight_per_session: usize,
    /// Events kept per stream for slow readers and resumption. Default 256.
    pub stream_buffer: usize,
    /// Bytes of events kept per stream (the newest event is always kept); a reader that falls
    /// further behind is disconnected. Default 4 MiB.
    pub stream_buffer_bytes: usize,
    /// Finished response streams kept per session for `Last-Event-ID` resumption. Default 16.
    pub resumable_streams: usize,
    /// On shutdown, how long in-flight calls may take to finish; after it, the calls still
    /// running are cancelled and answered with a JSON-RPC error. Default 30 s.
    pub shutdown_grace: Duration,
    /// Most open connections when the server accepts them itself (`serve`, `spawn`); more
    /// wait in the listen backlog until one closes. Keep it under the process's file
    /// descriptor limit. Default 768.
    pub max_connections: usize,
    /// Most open connections from one client address (0: no per-address cap); more are
    /// closed as soon as they are accepted. Raise it (or set 0) behind a proxy, whose
    /// connections all come from one address. Default 0 (the overall cap and the read
    /// deadlines bound a slow client; set it when clients connect directly, not via NAT).
    pub max_connections_per_address: usize,
    /// Longest time to receive a request's headers, from the first byte (or from the end
    /// of the previous response on a kept-alive connection); then the connection is closed.
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// Longest time to receive a request's whole body; then 408. Default 30 s.
    pub body_read_timeout: Duration,
    /// Longest a write to a client may wait (a client that stops reading a stream): the
    /// connection is closed and what it held (a legacy SSE session, a stream) released.
    /// Default 30 s.
    pub write_timeout: Duration,
    /// On shutdown, how long `/readyz` answers 503 while the listener still accepts, so load
    /// balancers stop sending traffic before connections are refused. Default 0.
    pub unready_delay: Duration,
    /// `retry` (ms) advertised on response streams for reconnection. Default 1000.
    pub retry_ms: u64,
    /// Bounds on tool calls run as tasks (2026-07-28 `io.modelcontextprotocol/tasks`):
    /// unfinished tasks per subject (64), result bytes (1 MiB), how long a task is kept
    /// after its last change (15 min), the poll interval clients are told (500 ms), the
    /// longest run (1 h) and open questions per task (16).
    pub tasks: mcp_proto::task::TaskLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            sse_path: "/sse".into(),
            messages_path: "/messages/".into(),
            mcp_path: "/mcp".into(),
            legacy_sse: true,
            streamable_http: true,
            stateless: false,
            get_stream: true,
            json_response: false,
            allowed_origins: Vec::new(),
            allow_any_origin: false,
            max_body_bytes: 4 * 1024 * 1024,
            keep_alive: Duration::from_secs(15),
            max_sessions: 10_000,
            max_sessions_per_client: 1000,
            max_initialize_bytes: 16 * 1024,
            max_batch_len: 64,
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(24 * 60 * 60),
            call_timeout: Duration::from_secs(5 * 60),
            max_in_flight_per_session: 64,
            stream_buffer: 256,
            stream_buffer_bytes: 4 * 1024 * 1024,
            resumable_streams: 16,
            shutdown_grace: Duration::from_secs(30),
            max_connections: 768,
            max_connections_per_address: 0,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            unready_delay: Duration::ZERO,
            retry_ms: 1000,
            tasks: mcp_proto::task::TaskLimits::default(),
        }
    }
}
