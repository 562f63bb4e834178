//! The transport label of the `mcp.message` span and the request metrics.

use axum::extract::OriginalUri;

use super::config::ServerConfig;

/// `sse` for the legacy messages endpoint, `streamable_http` otherwise (read from the path
/// axum routed, before any nesting stripped it).
pub(crate) fn transport_of(extensions: &http::Extensions, config: &ServerConfig) -> &'static str {
    let messages = config.messages_path.trim_end_matches('/');
    match extensions.get::<OriginalUri>() {
        Some(uri) if config.legacy_sse && uri.path().trim_end_matches('/').ends_with(messages) => {
            "sse"
        }
        _ => "streamable_http",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_messages_path_is_sse() {
        let config = ServerConfig::default();
        let mut extensions = http::Extensions::new();
        extensions.insert(OriginalUri("/messages/?session_id=1".parse().unwrap()));
        assert_eq!(transport_of(&extensions, &config), "sse");
        extensions.insert(OriginalUri("/mcp".parse().unwrap()));
        assert_eq!(transport_of(&extensions, &config), "streamable_http");
    }
}
