//! How MCP failures read in answers: the 424 of a tool listing, the `error` of a failed call.

use http::StatusCode;
use serde_json::Value;

use crate::connector::{ConnectorError, ToolCallOutcome};
use crate::error::ApiError;
use crate::model::ActivityResult;
use crate::response::McpCallError;

/// The 424 for a server whose tool list could not be fetched.
///
/// An HTTP failure reproduces OpenAI's body exactly (`code` `http_error`). A server that could not
/// be reached at all (refused, reset, DNS, TLS, no HTTP answer, no answer in time while
/// connecting) gets one text whatever the cause, the one OpenAI shows for such servers ("Http
/// status code: 424 (Failed Dependency)"), so the answer does not tell which local ports are
/// open; the cause goes to the log. Timeouts and protocol errors of a server that did answer
/// `initialize` keep their own codes (`timeout_error`, `mcp_protocol_error`).
pub(super) fn list_tools_error(server_label: &str, error: &ConnectorError) -> ApiError {
    let prefix = format!("Error retrieving tool list from MCP server: '{server_label}'.");
    let (detail, code) = match error {
        ConnectorError::Http { status, reason } => (
            format!(
                "Http status code: {status} ({})",
                reason_phrase(*status, reason)
            ),
            "http_error",
        ),
        ConnectorError::Unreachable(_) => (
            format!(
                "Http status code: {} ({})",
                UNREACHABLE_STATUS.as_u16(),
                reason_phrase(UNREACHABLE_STATUS.as_u16(), "")
            ),
            "http_error",
        ),
        ConnectorError::Timeout => ("Request timed out.".to_owned(), "timeout_error"),
        ConnectorError::Protocol { code, message } => (
            format!("MCP protocol error {code}: {message}"),
            "mcp_protocol_error",
        ),
    };
    ApiError::new(
        StatusCode::FAILED_DEPENDENCY,
        "external_connector_error",
        format!("{prefix} {detail}"),
        Some("tools"),
        Some(code),
    )
}

/// The status reported for a server that could not be reached, whatever the cause.
pub(super) const UNREACHABLE_STATUS: StatusCode = StatusCode::FAILED_DEPENDENCY;

fn reason_phrase(status: u16, reason: &str) -> String {
    if reason.is_empty() {
        StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown")
            .to_owned()
    } else {
        reason.to_owned()
    }
}

/// The `output` (or `error`) of an `mcp_call` item, and what the model is told, for the outcome
/// of a call.
pub(super) fn call_result(
    server_label: &str,
    outcome: Result<ToolCallOutcome, ConnectorError>,
) -> (Result<String, McpCallError>, ActivityResult) {
    match outcome {
        Ok(ToolCallOutcome::Output(text)) => (Ok(text.clone()), ActivityResult::Output(text)),
        Ok(ToolCallOutcome::ToolExecutionError { content }) => {
            let text: Vec<&str> = content
                .iter()
                .filter_map(|c| c.get("text").and_then(Value::as_str))
                .collect();
            let told = ActivityResult::Failed(text.join(" "));
            (Err(McpCallError::ToolExecution { content }), told)
        }
        Ok(ToolCallOutcome::ProtocolError { code, message })
        | Err(ConnectorError::Protocol { code, message }) => (
            Err(McpCallError::Protocol {
                code,
                message: message.clone(),
            }),
            ActivityResult::Failed(message),
        ),
        Err(ConnectorError::Http { status, reason }) => http_failure(status, &reason),
        Err(ConnectorError::Unreachable(why)) => {
            tracing::info!(%server_label, %why, "calling an MCP tool: server unreachable");
            http_failure(UNREACHABLE_STATUS.as_u16(), "")
        }
        Err(ConnectorError::Timeout) => (
            Err(McpCallError::Http {
                code: 504,
                message: "Request timed out".to_owned(),
            }),
            ActivityResult::Failed("the request timed out".to_owned()),
        ),
    }
}

/// A failed call's `http_error` for an HTTP status (424 stands for "could not reach").
fn http_failure(status: u16, reason: &str) -> (Result<String, McpCallError>, ActivityResult) {
    let message = reason_phrase(status, reason);
    let told = ActivityResult::Failed(format!("HTTP {status} ({message})"));
    (
        Err(McpCallError::Http {
            code: status,
            message,
        }),
        told,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_424_body_is_openais() {
        let e = list_tools_error(
            "dice_server",
            &ConnectorError::Http {
                status: 401,
                reason: "Unauthorized".to_owned(),
            },
        );
        assert_eq!(e.status, StatusCode::FAILED_DEPENDENCY);
        assert_eq!(
            e.body(),
            r#"{"error":{"message":"Error retrieving tool list from MCP server: 'dice_server'. Http status code: 401 (Unauthorized)","type":"external_connector_error","param":"tools","code":"http_error"}}"#
        );
    }

    #[test]
    fn an_empty_reason_uses_the_standard_phrase() {
        let e = list_tools_error(
            "s",
            &ConnectorError::Http {
                status: 403,
                reason: String::new(),
            },
        );
        assert_eq!(
            e.error.message,
            "Error retrieving tool list from MCP server: 's'. Http status code: 403 (Forbidden)"
        );
    }
}
