//! [`McpTool`]: a remote MCP server as a Responses API tool.

use async_openai::types::mcp::{
    MCPTool, MCPToolAllowedTools, MCPToolApprovalFilter, MCPToolApprovalSetting, MCPToolFilter,
    MCPToolRequireApproval,
};
use async_openai::types::responses::Tool;

/// Which tools need the caller's approval before they run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequireApproval {
    /// No tool needs approval (`"never"`).
    Never,
    /// Every tool needs approval (`"always"`, also the API's default).
    Always,
    /// Per tool: names that always need approval and names that never do (others need it).
    PerTool {
        /// Tools that always need approval.
        always: Vec<String>,
        /// Tools that never need approval.
        never: Vec<String>,
    },
}

/// Which of the server's tools the model may use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllowedTools {
    /// Just these names (a plain list on the wire).
    Names(Vec<String>),
    /// A filter object: names and/or the server's read-only annotation.
    Filter {
        /// Allowed names.
        tool_names: Option<Vec<String>>,
        /// Only tools whose `readOnlyHint` equals this.
        read_only: Option<bool>,
    },
}

/// A remote MCP server offered to the model, built step by step and turned into async-openai's
/// [`Tool::Mcp`].
///
/// ```
/// use responses_client::{McpTool, RequireApproval};
///
/// let tool = McpTool::new("dice_server", "https://example.com/sse")
///     .bearer_token("secret")
///     .require_approval(RequireApproval::Never);
/// let json = serde_json::to_value(tool.into_tool()).unwrap();
/// assert_eq!(json["type"], "mcp");
/// assert_eq!(json["headers"]["Authorization"], "Bearer secret");
/// assert_eq!(json["require_approval"], "never");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpTool {
    server_label: String,
    server_url: String,
    headers: Vec<(String, String)>,
    authorization: Option<String>,
    require_approval: Option<RequireApproval>,
    allowed_tools: Option<AllowedTools>,
    server_description: Option<String>,
}

impl McpTool {
    /// A server with its label (how calls name it) and URL (`.../sse` or `.../mcp`).
    pub fn new(server_label: impl Into<String>, server_url: impl Into<String>) -> Self {
        Self {
            server_label: server_label.into(),
            server_url: server_url.into(),
            headers: Vec::new(),
            authorization: None,
            require_approval: None,
            allowed_tools: None,
            server_description: None,
        }
    }

    /// Adds an HTTP header sent to the MCP server (a later value for the same name replaces it).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Adds `Authorization: Bearer <token>` to the headers (the way FastMCP's OpenAI
    /// integration guide passes it).
    pub fn bearer_token(self, token: impl AsRef<str>) -> Self {
        let value = format!("Bearer {}", token.as_ref());
        self.header("Authorization", value)
    }

    /// Sets the `authorization` field (an OAuth access token the API forwards).
    pub fn authorization(mut self, token: impl Into<String>) -> Self {
        self.authorization = Some(token.into());
        self
    }

    /// Sets `require_approval` (absent means the API asks for approval of every call).
    pub fn require_approval(mut self, policy: RequireApproval) -> Self {
        self.require_approval = Some(policy);
        self
    }

    /// Allows only these tool names.
    pub fn allowed_tools<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_tools = Some(AllowedTools::Names(
            names.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Sets `allowed_tools` to a list or a filter.
    pub fn allowed(mut self, allowed: AllowedTools) -> Self {
        self.allowed_tools = Some(allowed);
        self
    }

    /// Describes the server to the model.
    pub fn server_description(mut self, description: impl Into<String>) -> Self {
        self.server_description = Some(description.into());
        self
    }

    /// The server label.
    pub fn server_label(&self) -> &str {
        &self.server_label
    }

    /// async-openai's MCP tool type.
    pub fn to_mcp_tool(&self) -> MCPTool {
        let names_filter = |names: &[String]| {
            (!names.is_empty()).then(|| MCPToolFilter {
                read_only: None,
                tool_names: Some(names.to_vec()),
            })
        };
        let headers = (!self.headers.is_empty()).then(|| {
            serde_json::Value::Object(
                self.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect(),
            )
        });
        let require_approval = self.require_approval.as_ref().map(|policy| match policy {
            RequireApproval::Never => {
                MCPToolRequireApproval::ApprovalSetting(MCPToolApprovalSetting::Never)
            }
            RequireApproval::Always => {
                MCPToolRequireApproval::ApprovalSetting(MCPToolApprovalSetting::Always)
            }
            RequireApproval::PerTool { always, never } => {
                MCPToolRequireApproval::Filter(MCPToolApprovalFilter {
                    always: names_filter(always),
                    never: names_filter(never),
                })
            }
        });
        let allowed_tools = self.allowed_tools.as_ref().map(|allowed| match allowed {
            AllowedTools::Names(names) => MCPToolAllowedTools::List(names.clone()),
            AllowedTools::Filter {
                tool_names,
                read_only,
            } => MCPToolAllowedTools::Filter(MCPToolFilter {
                read_only: *read_only,
                tool_names: tool_names.clone(),
            }),
        });
        MCPTool {
            server_label: self.server_label.clone(),
            server_url: Some(self.server_url.clone()),
            headers,
            authorization: self.authorization.clone(),
            require_approval,
            allowed_tools,
            server_description: self.server_description.clone(),
            ..MCPTool::default()
        }
    }

    /// async-openai's [`Tool::Mcp`].
    pub fn into_tool(self) -> Tool {
        Tool::Mcp(self.to_mcp_tool())
    }
}

impl From<McpTool> for Tool {
    fn from(tool: McpTool) -> Self {
        tool.into_tool()
    }
}

impl From<McpTool> for MCPTool {
    fn from(tool: McpTool) -> Self {
        tool.to_mcp_tool()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_field_maps_onto_the_wire() {
        let tool = McpTool::new("dice_server", "http://127.0.0.1:8000/mcp")
            .header("X-Trace", "1")
            .bearer_token("t")
            .authorization("oauth")
            .require_approval(RequireApproval::PerTool {
                always: vec!["delete".to_owned()],
                never: vec!["roll_dice".to_owned()],
            })
            .allowed_tools(["roll_dice", "delete"])
            .server_description("Dice");
        assert_eq!(
            serde_json::to_value(tool.into_tool()).unwrap(),
            json!({
                "type": "mcp",
                "server_label": "dice_server",
                "server_url": "http://127.0.0.1:8000/mcp",
                "headers": {"X-Trace": "1", "Authorization": "Bearer t"},
                "authorization": "oauth",
                "require_approval": {"always": {"tool_names": ["delete"]}, "never": {"tool_names": ["roll_dice"]}},
                "allowed_tools": ["roll_dice", "delete"],
                "server_description": "Dice"
            })
        );
    }

    #[test]
    fn settings_and_filters_serialize_as_the_api_expects() {
        let always = McpTool::new("s", "http://h/sse")
            .require_approval(RequireApproval::Always)
            .allowed(AllowedTools::Filter {
                tool_names: None,
                read_only: Some(true),
            });
        let json = serde_json::to_value(always.into_tool()).unwrap();
        assert_eq!(json["require_approval"], json!("always"));
        assert_eq!(json["allowed_tools"], json!({"read_only": true}));
        let bare = serde_json::to_value(McpTool::new("s", "http://h/sse").into_tool()).unwrap();
        assert_eq!(
            bare,
            json!({"type":"mcp","server_label":"s","server_url":"http://h/sse"})
        );
    }
}
