//! The crate's error type.

/// Everything that can go wrong starting or running a gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The child MCP server could not be started.
    #[error("cannot start the MCP server {program:?}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: mcp_stdio::Error,
    },
    /// The child did not answer `initialize` within the start timeout.
    #[error("the MCP server {program:?} did not answer `initialize` within {seconds} s")]
    StartTimeout {
        /// The program.
        program: String,
        /// The timeout.
        seconds: f64,
    },
    /// The child closed its stdout before answering `initialize`.
    #[error("the MCP server {program:?} exited before answering `initialize`")]
    ExitedDuringStart {
        /// The program.
        program: String,
    },
    /// The child answered `initialize` with an error or an unreadable result.
    #[error("the MCP server {program:?} refused `initialize`: {detail}")]
    InitializeRefused {
        /// The program.
        program: String,
        /// Its error message, or what is wrong with the result.
        detail: String,
    },
    /// The child was not running when the gateway needed it to (it failed to start, or
    /// keeps exiting).
    #[error("the MCP server did not start: {detail}")]
    NotStarted {
        /// Why, as a client would be told.
        detail: String,
    },
    /// Serving over stdin/stdout (`--connect`) failed.
    #[error("stdio transport error")]
    Stdio(#[source] mcp_stdio::Error),
    /// Writing to the child failed.
    #[error("cannot write to the MCP server")]
    Write(#[source] mcp_sse::Error),
    /// A `KEY=VALUE` option without `=` or with an empty key.
    #[error("invalid environment assignment {0:?}: expected KEY=VALUE")]
    InvalidEnv(String),
    /// Options that cannot be used together.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The HTTP side failed (binding, serving).
    #[error("HTTP transport error")]
    Http(#[from] mcp_sse::Error),
    /// Authentication setup failed (key, JWKS URL, resource URL).
    #[error("authentication setup failed")]
    Auth(#[from] mcp_auth::AuthError),
    /// The Redis session store could not be reached at start.
    #[error("cannot use Redis at {url}")]
    Redis {
        /// The URL, password redacted.
        url: String,
        /// Why.
        #[source]
        source: mcp_sse::StoreError,
    },
    /// Reading a file named on the command line, or stdio I/O, failed.
    #[error("I/O error")]
    Io(#[from] std::io::Error),
}
