//! Server limits and options.

use std::time::Duration;

/// Limits and options of the HTTP transports. Every field has a sane default.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Path of the legacy SSE stream (`GET`). Default `/sse`.
    pub sse_path: String,
    /// Path legacy clients POST messages to. Default `/messages/`.
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
    /// Most live sessions (both transports together); more get 503. Default 10 000.
    pub max_sessions: usize,
    /// A streamable session unused this long is ended. Default 30 min.
    pub session_idle_timeout: Duration,
    /// Any session is ended this long after it was created, used or not. Default 24 h.
    pub session_lifetime: Duration,
    /// Longest a single call may run before it is cancelled and answered with an error.
    /// Default 5 min.
    pub call_timeout: Duration,
    /// Most requests running at once in one session; more get 429. Default 64.
    pub max_in_flight_per_session: usize,
    /// Events kept per stream for slow readers and resumption. Default 256.
    pub stream_buffer: usize,
    /// Finished response streams kept per session for `Last-Event-ID` resumption. Default 16.
    pub resumable_streams: usize,
    /// On shutdown, how long in-flight calls may take to finish. Default 30 s.
    pub shutdown_grace: Duration,
    /// `retry` (ms) advertised on response streams for reconnection. Default 1000.
    pub retry_ms: u64,
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
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(24 * 60 * 60),
            call_timeout: Duration::from_secs(5 * 60),
            max_in_flight_per_session: 64,
            stream_buffer: 256,
            resumable_streams: 16,
            shutdown_grace: Duration::from_secs(30),
            retry_ms: 1000,
        }
    }
}
