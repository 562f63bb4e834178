//! Which tools of the child the gateway exposes (`--allow-tool`, `--deny-tool`).

use std::collections::BTreeSet;

use mcp_proto::ErrorObject;
use serde_json::Value;

/// An allow-list and a deny-list of tool names, applied to `tools/list` results and
/// `tools/call` requests. A tool is exposed when it is not denied and, if an allow-list is
/// given, is on it. A hidden tool is indistinguishable from one that does not exist: its
/// calls get the `-32602` error of an unknown tool, without reaching the child.
///
/// ```
/// use mcp_gateway::ToolFilter;
///
/// let filter = ToolFilter::default().allow("roll_dice").allow("echo").deny("echo");
/// assert!(filter.allows("roll_dice"));
/// assert!(!filter.allows("echo"));
/// assert!(!filter.allows("rm_rf"));
/// assert!(ToolFilter::default().allows("anything"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolFilter {
    allowed: Option<BTreeSet<String>>,
    denied: BTreeSet<String>,
}

impl ToolFilter {
    /// Exposes `name` (and, once any name is allowed, only allowed names).
    pub fn allow(mut self, name: impl Into<String>) -> Self {
        self.allowed
            .get_or_insert_with(BTreeSet::new)
            .insert(name.into());
        self
    }

    /// Hides `name`.
    pub fn deny(mut self, name: impl Into<String>) -> Self {
        self.denied.insert(name.into());
        self
    }

    /// Whether every tool is exposed.
    pub fn is_open(&self) -> bool {
        self.allowed.is_none() && self.denied.is_empty()
    }

    /// Whether the tool `name` is exposed.
    pub fn allows(&self, name: &str) -> bool {
        !self.denied.contains(name) && self.allowed.as_ref().is_none_or(|a| a.contains(name))
    }

    /// Removes hidden tools from a `tools/list` result.
    pub fn filter_list(&self, result: &mut Value) {
        if self.is_open() {
            return;
        }
        if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
            tools.retain(|tool| {
                tool.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|name| self.allows(name))
            });
        }
    }

    /// The error for a `tools/call` of a hidden tool, `None` when the call may go on.
    pub fn check_call(&self, params: Option<&Value>) -> Option<ErrorObject> {
        if self.is_open() {
            return None;
        }
        let name = params
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        (!self.allows(name)).then(|| unknown_tool(name))
    }
}

/// The error a call of an unknown (or hidden) tool gets: `-32602 Unknown tool: NAME`.
pub fn unknown_tool(name: &str) -> ErrorObject {
    ErrorObject::new(
        mcp_proto::jsonrpc::code::INVALID_PARAMS,
        format!("Unknown tool: {name}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_keep_only_exposed_tools_in_order() {
        let filter = ToolFilter::default().deny("b");
        let mut result = json!({"tools": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"title": "no name"}], "nextCursor": "2"});
        filter.filter_list(&mut result);
        assert_eq!(
            result,
            json!({"tools": [{"name": "a"}, {"name": "c"}], "nextCursor": "2"})
        );
    }

    #[test]
    fn hidden_calls_get_the_unknown_tool_error() {
        let filter = ToolFilter::default().allow("a");
        assert_eq!(filter.check_call(Some(&json!({"name": "a"}))), None);
        let error = filter.check_call(Some(&json!({"name": "b"}))).unwrap();
        assert_eq!(error.code, -32602);
        assert_eq!(error.message, "Unknown tool: b");
        assert_eq!(
            filter.check_call(None).map(|e| e.message),
            Some("Unknown tool: ".to_owned())
        );
    }
}
