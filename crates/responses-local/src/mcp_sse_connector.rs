//! The connector that reaches real MCP servers over HTTP, through `mcp-sse`'s client.

use std::time::Duration;

use futures::future::BoxFuture;
use mcp_proto::{CallToolResult, ContentBlock};
use mcp_sse::client::McpClient;
use serde_json::Value;

use crate::connector::{
    ConnectorError, ListedTool, McpConnection, McpConnector, McpTarget, ToolCallOutcome,
};

/// Connects to MCP servers the way OpenAI's hosted MCP tool does: legacy HTTP+SSE when the
/// URL's path ends in `/sse`, streamable HTTP otherwise, sending the tool's headers on every
/// request.
#[derive(Debug, Clone)]
pub struct HttpMcpConnector {
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Default for HttpMcpConnector {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl HttpMcpConnector {
    /// A connector with default timeouts (10 s to connect, 60 s per request).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the per-request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

impl McpConnector for HttpMcpConnector {
    fn connect(
        &self,
        target: McpTarget,
    ) -> BoxFuture<'static, Result<Box<dyn McpConnection>, ConnectorError>> {
        let config = self.clone();
        Box::pin(async move {
            // The transport follows the URL: legacy SSE for a path ending in `/sse`.
            let mut builder = McpClient::builder(target.server_url.clone())
                .connect_timeout(config.connect_timeout)
                .request_timeout(config.request_timeout)
                .client_info(mcp_proto::Implementation::new("openai-mcp", "1.0.0"));
            for (name, value) in &target.headers {
                builder = builder.header(name.clone(), value.clone());
            }
            let client = builder.connect().await.map_err(map_error)?;
            Ok(Box::new(HttpMcpConnection { client }) as Box<dyn McpConnection>)
        })
    }
}

struct HttpMcpConnection {
    client: McpClient,
}

impl McpConnection for HttpMcpConnection {
    fn list_tools(&mut self) -> BoxFuture<'_, Result<Vec<ListedTool>, ConnectorError>> {
        Box::pin(async move {
            let tools = self.client.list_tools().await.map_err(map_error)?;
            Ok(tools
                .into_iter()
                .map(|t| ListedTool {
                    name: t.name,
                    description: t.description,
                    input_schema: Value::Object(t.input_schema),
                    annotations: t.annotations.and_then(|a| serde_json::to_value(a).ok()),
                })
                .collect())
        })
    }

    fn call_tool(
        &mut self,
        name: &str,
        arguments: Value,
    ) -> BoxFuture<'_, Result<ToolCallOutcome, ConnectorError>> {
        let name = name.to_owned();
        Box::pin(async move {
            match self.client.call_tool(&name, arguments).await {
                Ok(result) => Ok(outcome(result)),
                Err(mcp_sse::Error::Protocol(mcp_proto::Error::Rpc(e))) => {
                    Ok(ToolCallOutcome::ProtocolError {
                        code: e.code,
                        message: e.message,
                    })
                }
                Err(e) => Err(map_error(e)),
            }
        })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Err(e) = self.client.close().await {
                tracing::debug!(error = %e, "closing the MCP session failed");
            }
        })
    }
}

/// The `output` string of an `mcp_call`: the text blocks, or the structured content as
/// JSON when there is no text.
fn outcome(result: CallToolResult) -> ToolCallOutcome {
    if result.is_error() {
        return ToolCallOutcome::ToolExecutionError {
            content: result
                .content
                .iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect(),
        };
    }
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(ContentBlock::as_text)
        .collect();
    let output = if !texts.is_empty() {
        texts.join("\n")
    } else if let Some(structured) = &result.structured_content {
        structured.to_string()
    } else {
        serde_json::to_string(&result.content).unwrap_or_default()
    };
    ToolCallOutcome::Output(output)
}

fn map_error(e: mcp_sse::Error) -> ConnectorError {
    match e {
        mcp_sse::Error::Http { status, reason, .. } => ConnectorError::Http {
            status: status.as_u16(),
            reason,
        },
        mcp_sse::Error::Timeout(..) => ConnectorError::Timeout,
        mcp_sse::Error::Protocol(mcp_proto::Error::Rpc(e)) => ConnectorError::Protocol {
            code: e.code,
            message: e.message,
        },
        other => ConnectorError::Unreachable(mcp_proto::error_chain(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_prefers_text_then_structured() {
        let r = CallToolResult {
            content: vec![ContentBlock::text("[6,4,2]")],
            structured_content: Some(json!({"result":[6,4,2]})),
            is_error: Some(false),
            meta: None,
        };
        assert_eq!(outcome(r), ToolCallOutcome::Output("[6,4,2]".into()));
        let r = CallToolResult {
            content: vec![],
            structured_content: Some(json!({"a":1})),
            is_error: None,
            meta: None,
        };
        assert_eq!(outcome(r), ToolCallOutcome::Output("{\"a\":1}".into()));
        let r = CallToolResult::error_text("boom");
        assert_eq!(
            outcome(r),
            ToolCallOutcome::ToolExecutionError {
                content: vec![json!({"type":"text","text":"boom"})]
            }
        );
    }

    #[test]
    fn http_errors_keep_status_and_reason() {
        let e = mcp_sse::Error::Http {
            status: http::StatusCode::UNAUTHORIZED,
            reason: "Unauthorized".into(),
            body: String::new(),
        };
        assert_eq!(
            map_error(e),
            ConnectorError::Http {
                status: 401,
                reason: "Unauthorized".into()
            }
        );
    }
}
