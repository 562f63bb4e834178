//! MCP over HTTP: the legacy HTTP+SSE transport and streamable HTTP, server and client, on axum and reqwest.
