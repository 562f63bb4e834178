//! The request's `tools` (only `mcp` ones) and `tool_choice`.

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fault::{Fault, Kind, nested, required};
use super::shape::{Dict, Flag, List, Obj, Shape, Text, deserialize_shape};
use crate::connector::ListedTool;
use crate::response::Null;

/// Every tool `type` OpenAI knows; only `mcp` is supported here.
const TOOL_TYPES: &[&str] = &[
    "function",
    "file_search",
    "computer_use_preview",
    "web_search",
    "web_search_preview",
    "mcp",
    "code_interpreter",
    "image_generation",
    "local_shell",
    "shell",
    "custom",
    "apply_patch",
];

/// One `mcp` tool of the request. Serialized, it is the tool as the response echoes it:
/// `headers` come back `null` and `authorization` is not repeated, so secrets never are.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename = "mcp")]
pub(crate) struct McpToolSpec {
    pub server_label: String,
    pub server_url: String,
    /// `headers` in the order given, then `authorization` as a bearer header replacing any other.
    #[serde(serialize_with = "as_null")]
    pub headers: Vec<(String, String)>,
    pub allowed_tools: Option<AllowedTools>,
    /// `None` (absent) requires approval for every tool, as OpenAI does.
    pub require_approval: Option<RequireApproval>,
    pub server_description: Option<String>,
}

fn as_null<S: serde::Serializer, T>(_: &T, s: S) -> Result<S::Ok, S::Error> {
    Null.serialize(s)
}

impl McpToolSpec {
    /// Whether `allowed_tools` lets the model see `tool`.
    pub fn allows(&self, tool: &ListedTool) -> bool {
        self.allowed_tools.as_ref().is_none_or(|a| a.matches(tool))
    }

    /// Whether calling `tool` needs an `mcp_approval_request` first.
    pub fn requires_approval(&self, tool: &ListedTool) -> bool {
        self.require_approval
            .as_ref()
            .is_none_or(|r| r.requires_approval(tool))
    }
}

/// An `mcp` tool as serde reads it (`type` was checked before).
#[derive(Deserialize)]
struct RawMcpTool {
    server_label: Option<Text>,
    /// Any value but `null` is refused (not supported here).
    connector_id: Option<IgnoredAny>,
    tunnel_id: Option<IgnoredAny>,
    server_url: Option<Text>,
    headers: Option<Dict<Text>>,
    authorization: Option<Text>,
    allowed_tools: Option<AllowedTools>,
    require_approval: Option<RequireApproval>,
    server_description: Option<Text>,
}

impl RawMcpTool {
    fn check(self) -> Result<McpToolSpec, Fault> {
        let server_label = required(self.server_label, "server_label")?.0;
        for (field, value) in [
            ("connector_id", &self.connector_id),
            ("tunnel_id", &self.tunnel_id),
        ] {
            if value.is_some() {
                return Err(Fault::unsupported(format!(
                    "'{field}' is not supported by this local endpoint; use 'server_url'."
                ))
                .in_field(field));
            }
        }
        let server_url = required(self.server_url, "server_url")?.0;
        if !(server_url.starts_with("http://") || server_url.starts_with("https://")) {
            return Err(Fault::invalid(format!(
                "Invalid URL '{server_url}': the MCP server URL must start with http:// or https://."
            ))
            .in_field("server_url"));
        }
        let mut headers: Vec<(String, String)> = self
            .headers
            .map(|Dict(entries)| entries.into_iter().map(|(k, Text(v))| (k, v)).collect())
            .unwrap_or_default();
        if let Some(Text(token)) = self.authorization {
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
            headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
        }
        Ok(McpToolSpec {
            server_label,
            server_url,
            headers,
            allowed_tools: self.allowed_tools,
            require_approval: self.require_approval,
            server_description: self.server_description.map(|Text(d)| d),
        })
    }
}

/// `tools`: at most `max` of them (checked before any is read), each an `mcp` tool with its own
/// `server_label`. Faults are relative to `tools`.
pub(crate) fn read_tools(tools: Vec<Value>, max: usize) -> Result<Vec<McpToolSpec>, Fault> {
    if tools.len() > max {
        return Err(Fault::too_long(max, tools.len()));
    }
    let mut specs: Vec<McpToolSpec> = Vec::with_capacity(tools.len());
    for (index, tool) in tools.into_iter().enumerate() {
        let spec = read_tool(tool).map_err(|f| f.in_item(index))?;
        if specs.iter().any(|s| s.server_label == spec.server_label) {
            let message = format!(
                "Duplicate MCP server_label '{}': each mcp tool needs its own label.",
                spec.server_label
            );
            return Err(Fault::invalid(message)
                .in_field("server_label")
                .in_item(index));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// One tool, dispatched on its `type`: another known type is unsupported, an unknown one invalid.
fn read_tool(tool: Value) -> Result<McpToolSpec, Fault> {
    let kind = match &tool {
        Value::Object(fields) => fields.get("type"),
        other => return Err(Fault::invalid_type("an object", Kind::of(other))),
    };
    match kind {
        None | Some(Value::Null) => Err(Fault::missing("type")),
        Some(Value::String(kind)) if kind == "mcp" => nested::<Obj<RawMcpTool>>(tool)?.0.check(),
        Some(Value::String(kind)) if TOOL_TYPES.contains(&kind.as_str()) => {
            Err(Fault::unsupported(format!(
                "Tool type '{kind}' is not supported by this local endpoint; only 'mcp' tools are."
            ))
            .in_field("type"))
        }
        Some(Value::String(kind)) => Err(Fault::invalid_value(kind, TOOL_TYPES).in_field("type")),
        Some(other) => Err(Fault::invalid_type("a string", Kind::of(other)).in_field("type")),
    }
}

/// A set of tools by name and/or read-only flag; an empty filter matches every tool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ToolFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_names: Option<Vec<String>>,
}

impl ToolFilter {
    pub fn matches(&self, tool: &ListedTool) -> bool {
        let name_ok = self
            .tool_names
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == &tool.name));
        let read_only_ok = self.read_only.is_none_or(|ro| tool.is_read_only() == ro);
        name_ok && read_only_ok
    }
}

#[derive(Deserialize)]
struct RawFilter {
    tool_names: Option<List<Text>>,
    read_only: Option<Flag>,
}

impl<'de> Shape<'de> for ToolFilter {
    const EXPECTED: &'static str = "an object";

    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let Obj(raw) = Obj::<RawFilter>::from_map(map)?;
        Ok(ToolFilter {
            tool_names: raw.tool_names.map(|List(names)| texts(names)),
            read_only: raw.read_only.map(|Flag(b)| b),
        })
    }
}

fn texts(list: Vec<Text>) -> Vec<String> {
    list.into_iter().map(|Text(t)| t).collect()
}

/// `allowed_tools`: a list of names or a filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum AllowedTools {
    Names(Vec<String>),
    Filter(ToolFilter),
}

impl AllowedTools {
    fn matches(&self, tool: &ListedTool) -> bool {
        match self {
            AllowedTools::Names(names) => names.iter().any(|n| n == &tool.name),
            AllowedTools::Filter(filter) => filter.matches(tool),
        }
    }
}

impl<'de> Shape<'de> for AllowedTools {
    const EXPECTED: &'static str = "an array or an object";

    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        let List(names) = List::<Text>::from_seq(seq)?;
        Ok(AllowedTools::Names(texts(names)))
    }

    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        ToolFilter::from_map(map).map(AllowedTools::Filter)
    }
}

/// `require_approval`: `always`, `never`, or `{always, never}` filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RequireApproval {
    Always,
    Never,
    #[serde(untagged)]
    Filter {
        #[serde(skip_serializing_if = "Option::is_none")]
        always: Option<ToolFilter>,
        #[serde(skip_serializing_if = "Option::is_none")]
        never: Option<ToolFilter>,
    },
}

impl RequireApproval {
    /// In a filter, `always` wins over `never`, and a tool matched by neither needs approval
    /// (OpenAI's default).
    fn requires_approval(&self, tool: &ListedTool) -> bool {
        match self {
            RequireApproval::Always => true,
            RequireApproval::Never => false,
            RequireApproval::Filter { always, never } => {
                always.as_ref().is_some_and(|f| f.matches(tool))
                    || !never.as_ref().is_some_and(|f| f.matches(tool))
            }
        }
    }
}

impl<'de> Shape<'de> for RequireApproval {
    const EXPECTED: &'static str = "'always', 'never' or an object";

    fn from_string(text: String) -> Result<Self, Fault> {
        match text.as_str() {
            "always" => Ok(RequireApproval::Always),
            "never" => Ok(RequireApproval::Never),
            other => Err(Fault::invalid_value(other, &["always", "never"])),
        }
    }

    /// Only `always` and `never` keys: anything else is an unknown parameter.
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let (mut always, mut never) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "always" => always = map.next_value::<Option<ToolFilter>>()?,
                "never" => never = map.next_value::<Option<ToolFilter>>()?,
                other => {
                    return Err(de::Error::custom(
                        Fault::unknown_parameter().in_field(other),
                    ));
                }
            }
        }
        Ok(RequireApproval::Filter { always, never })
    }
}

/// `tool_choice`, echoed as given: a mode, or `{"type": "mcp", "server_label": .., "name"?: ..}`
/// (only this server's tools, or only its tool `name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ToolChoice {
    None,
    #[default]
    Auto,
    Required,
    #[serde(untagged)]
    Mcp(McpToolChoice),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "mcp")]
pub(crate) struct McpToolChoice {
    pub server_label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct RawToolChoice {
    /// Read loosely: a `type` that is not a string counts as missing.
    #[serde(rename = "type")]
    kind: Option<Value>,
    server_label: Option<Text>,
    name: Option<Text>,
}

impl<'de> Shape<'de> for ToolChoice {
    const EXPECTED: &'static str = "a string or an object";

    fn from_string(text: String) -> Result<Self, Fault> {
        match text.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => Err(Fault::invalid_value(other, &["none", "auto", "required"])),
        }
    }

    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let Obj(raw) = Obj::<RawToolChoice>::from_map(map)?;
        let choice = match raw.kind.as_ref().and_then(Value::as_str) {
            Some("mcp") => required(raw.server_label, "server_label").map(|Text(label)| {
                ToolChoice::Mcp(McpToolChoice {
                    server_label: label,
                    name: raw.name.map(|Text(n)| n),
                })
            }),
            Some(other) => Err(Fault::unsupported(format!(
                "Tool choice '{other}' is not supported by this local endpoint; only 'mcp' is."
            ))
            .in_field("type")),
            None => Err(Fault::missing("type")),
        };
        choice.map_err(de::Error::custom)
    }
}

deserialize_shape!(ToolFilter, AllowedTools, RequireApproval, ToolChoice);
