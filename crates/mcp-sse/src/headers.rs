//! The HTTP header names of both transports, server and client, in one place (lowercase, as
//! HTTP/2 and `http::HeaderName` spell them; `mcp_proto::http_headers` gives the 2026-07-28 request
//! headers in their wire spelling).

/// `Mcp-Session-Id`: the session of a streamable HTTP request.
pub const SESSION_ID: &str = "mcp-session-id";
/// `MCP-Protocol-Version`: the protocol version of a request.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// `Last-Event-ID`: where a resumed stream starts again.
pub const LAST_EVENT_ID: &str = "last-event-id";
/// `Mcp-Method` (2026-07-28): the JSON-RPC method of a request.
pub const METHOD: &str = "mcp-method";
/// `Mcp-Name` (2026-07-28): the tool, prompt or resource a request names.
pub const NAME: &str = "mcp-name";

#[cfg(test)]
mod tests {
    #[test]
    fn request_headers_match_the_protocol_crate() {
        assert!(super::METHOD.eq_ignore_ascii_case(mcp_proto::http_headers::METHOD_HEADER));
        assert!(super::NAME.eq_ignore_ascii_case(mcp_proto::http_headers::NAME_HEADER));
    }
}
