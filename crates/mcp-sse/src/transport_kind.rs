//! The two HTTP transports of MCP.

/// Which HTTP transport a session or a client speaks.
///
/// ```
/// use mcp_sse::TransportKind;
///
/// assert_eq!(TransportKind::from_url_path("/api/sse/"), TransportKind::LegacySse);
/// assert_eq!(TransportKind::from_url_path("/mcp"), TransportKind::StreamableHttp);
/// assert_eq!(TransportKind::parse(TransportKind::LegacySse.as_str()), Some(TransportKind::LegacySse));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// The legacy HTTP+SSE transport (2024-11-05): `GET /sse` opens the stream and the
    /// session, which lives as long as that stream; messages are `POST`ed to the endpoint it
    /// announces.
    LegacySse,
    /// Streamable HTTP (2025-03-26 and later): `POST` to the MCP URL; a session lives until
    /// `DELETE`, idle expiry or its lifetime.
    StreamableHttp,
}

impl TransportKind {
    /// The name stored with a session: `legacy` or `streamable` (names kept as they were so
    /// replicas of an older build read the same store).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LegacySse => "legacy",
            Self::StreamableHttp => "streamable",
        }
    }

    /// Parses a stored name (see [`TransportKind::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "legacy" => Some(Self::LegacySse),
            "streamable" => Some(Self::StreamableHttp),
            _ => None,
        }
    }

    /// The transport a URL path suggests, by the rule FastMCP's client uses: legacy SSE when
    /// the path ends in `/sse` (a trailing `/` ignored), streamable HTTP otherwise.
    pub fn from_url_path(path: &str) -> Self {
        if path.trim_end_matches('/').ends_with("/sse") {
            Self::LegacySse
        } else {
            Self::StreamableHttp
        }
    }
}
