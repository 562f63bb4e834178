//! Labels for the `mcp.message` span and the request metrics.

use axum::extract::OriginalUri;
use mcp_proto::types::method;
use mcp_proto::{Message, RequestId};

use super::config::ServerConfig;

/// The method (`response` for an answer from the client), the request id, and for
/// `tools/call` the tool named.
pub(crate) fn message_labels(message: &Message) -> (String, Option<RequestId>, Option<String>) {
    match message {
        Message::Request(r) => {
            let tool = (r.method == method::TOOLS_CALL)
                .then(|| r.params.as_ref()?.get("name")?.as_str().map(str::to_owned))
                .flatten();
            (r.method.clone(), Some(r.id.clone()), tool)
        }
        Message::Notification(n) => (n.method.clone(), None, None),
        Message::Response(_) => ("response".to_owned(), None, None),
    }
}

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
    use serde_json::json;

    #[test]
    fn labels_of_a_tool_call_and_of_an_answer() {
        let call = Message::request(7, "tools/call", Some(json!({"name": "roll_dice"})));
        let (method, id, tool) = message_labels(&call);
        assert_eq!(
            (method.as_str(), tool.as_deref()),
            ("tools/call", Some("roll_dice"))
        );
        assert_eq!(id, Some(RequestId::from(7)));
        let answer = Message::Response(mcp_proto::Response::result(RequestId::from(1), json!({})));
        assert_eq!(message_labels(&answer).0, "response");
    }

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
