//! The crate's error type.

/// Everything that can go wrong serving or calling MCP over stdio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the server's input (stdin) failed.
    #[error("cannot read the input stream")]
    Read(#[source] std::io::Error),
    /// Writing the server's output (stdout) failed, e.g. the client went away.
    #[error("cannot write the output stream")]
    Write(#[source] std::io::Error),
    /// The server program could not be started.
    #[error("cannot start {program:?}")]
    Spawn {
        /// The program.
        program: String,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// The started process has no stdin or stdout pipe.
    #[error("the process {program:?} has no stdin or stdout pipe")]
    MissingPipe {
        /// The program.
        program: String,
    },
    /// Waiting for or killing the server process failed.
    #[error("cannot wait for the server process")]
    Wait(#[source] std::io::Error),
    /// The MCP session over the process failed (handshake, requests).
    #[error("MCP client error")]
    Client(#[from] mcp_sse::Error),
}
