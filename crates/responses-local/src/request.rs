//! Parsing and validating a `POST /v1/responses` body the way OpenAI does.

use serde_json::{Map, Value};

use crate::connector::ListedTool;
use crate::error::ApiError;

/// A validated request.
#[derive(Debug, Clone)]
pub(crate) struct CreateRequest {
    pub model: String,
    pub input: Vec<InputItem>,
    pub tools: Vec<McpToolSpec>,
    /// The request's tools as the response echoes them (secrets removed).
    pub tools_echo: Vec<Value>,
    pub previous_response_id: Option<String>,
    pub instructions: Option<String>,
    pub stream: bool,
    pub store: bool,
    pub metadata: Map<String, Value>,
    pub tool_choice: Value,
    pub tools_disabled: bool,
    pub max_tool_calls: Option<u32>,
    pub temperature: f64,
    pub top_p: f64,
    pub parallel_tool_calls: bool,
}

/// One item of `input`.
#[derive(Debug, Clone)]
pub(crate) enum InputItem {
    Message {
        role: String,
        text: String,
    },
    ApprovalResponse {
        index: usize,
        approval_request_id: String,
        approve: bool,
        reason: Option<String>,
    },
    ApprovalRequest {
        id: String,
        server_label: String,
        name: String,
        arguments: String,
    },
    ListTools {
        server_label: String,
        tools: Vec<ListedTool>,
    },
}

/// One `mcp` tool of the request.
#[derive(Debug, Clone)]
pub(crate) struct McpToolSpec {
    pub server_label: String,
    pub server_url: String,
    pub headers: Vec<(String, String)>,
    pub allowed: Option<ToolFilter>,
    pub approval: ApprovalPolicy,
}

/// A set of tools by name and/or read-only flag; an empty filter matches every tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ToolFilter {
    pub tool_names: Option<Vec<String>>,
    pub read_only: Option<bool>,
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

/// `require_approval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApprovalPolicy {
    Always,
    Never,
    Filter {
        always: Option<ToolFilter>,
        never: Option<ToolFilter>,
    },
}

impl ApprovalPolicy {
    /// Whether calling `tool` needs an `mcp_approval_request` first. In a filter, `always` wins over
    /// `never`, and a tool matched by neither needs approval (OpenAI's default).
    pub fn requires_approval(&self, tool: &ListedTool) -> bool {
        match self {
            ApprovalPolicy::Always => true,
            ApprovalPolicy::Never => false,
            ApprovalPolicy::Filter { always, never } => {
                if always.as_ref().is_some_and(|f| f.matches(tool)) {
                    return true;
                }
                !never.as_ref().is_some_and(|f| f.matches(tool))
            }
        }
    }
}

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

const INPUT_ITEM_TYPES: &[&str] = &[
    "message",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "mcp_list_tools",
    "item_reference",
];

/// Parses the raw body; a `tools` array longer than `max_tools` is a 400.
pub(crate) fn parse(body: &[u8], max_tools: usize) -> Result<CreateRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        ApiError::invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but \
             what was sent was not valid JSON.)",
            None,
            None,
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::invalid_type("body", "an object", &value));
    };

    let model = match obj.get("model") {
        None | Some(Value::Null) => return Err(ApiError::missing("model")),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(ApiError::invalid_type("model", "a string", other)),
    };
    let input = match obj.get("input") {
        None | Some(Value::Null) => return Err(ApiError::missing("input")),
        Some(Value::String(s)) => vec![InputItem::Message {
            role: "user".to_owned(),
            text: s.clone(),
        }],
        Some(Value::Array(items)) => parse_input_items(items)?,
        Some(other) => {
            return Err(ApiError::invalid_type(
                "input",
                "a string or an array",
                other,
            ));
        }
    };
    // Checked in this order, so the first problem is the one reported.
    let (tools, tools_echo) = parse_tools(obj.get("tools"), max_tools)?;
    let previous_response_id = optional_string(&obj, "previous_response_id")?;
    let instructions = optional_string(&obj, "instructions")?;
    let stream = optional_bool(&obj, "stream")?.unwrap_or(false);
    let store = optional_bool(&obj, "store")?.unwrap_or(true);
    let parallel_tool_calls = optional_bool(&obj, "parallel_tool_calls")?.unwrap_or(true);
    let temperature = optional_number(&obj, "temperature")?.unwrap_or(1.0);
    let top_p = optional_number(&obj, "top_p")?.unwrap_or(1.0);
    let max_tool_calls = parse_max_tool_calls(obj.get("max_tool_calls"))?;
    let metadata = parse_metadata(obj.get("metadata"))?;
    let (tool_choice, tools_disabled) = parse_tool_choice(obj.get("tool_choice"))?;
    Ok(CreateRequest {
        model,
        input,
        tools,
        tools_echo,
        previous_response_id,
        instructions,
        stream,
        store,
        metadata,
        tool_choice,
        tools_disabled,
        max_tool_calls,
        temperature,
        top_p,
        parallel_tool_calls,
    })
}

/// `tools`: the `mcp` tools, each with its own `server_label`, and their echo.
fn parse_tools(
    value: Option<&Value>,
    max_tools: usize,
) -> Result<(Vec<McpToolSpec>, Vec<Value>), ApiError> {
    let mut tools: Vec<McpToolSpec> = Vec::new();
    let mut tools_echo = Vec::new();
    let list = match value {
        None | Some(Value::Null) => return Ok((tools, tools_echo)),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(ApiError::invalid_type("tools", "an array", other)),
    };
    if list.len() > max_tools {
        return Err(ApiError::array_too_long("tools", max_tools, list.len()));
    }
    for (index, tool) in list.iter().enumerate() {
        let (spec, echo) = parse_tool(index, tool)?;
        if tools.iter().any(|t| t.server_label == spec.server_label) {
            return Err(ApiError::invalid(
                format!(
                    "Duplicate MCP server_label '{}': each mcp tool needs its own label.",
                    spec.server_label
                ),
                Some(&format!("tools[{index}].server_label")),
                Some("invalid_value"),
            ));
        }
        tools.push(spec);
        tools_echo.push(echo);
    }
    Ok((tools, tools_echo))
}

/// `max_tool_calls`: a non-negative integer that fits in 32 bits.
fn parse_max_tool_calls(value: Option<&Value>) -> Result<Option<u32>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(ApiError::invalid_type("max_tool_calls", "an integer", v)),
        },
    }
}

/// `metadata`: an object of strings.
fn parse_metadata(value: Option<&Value>) -> Result<Map<String, Value>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            for (key, value) in m {
                if !value.is_string() {
                    return Err(ApiError::invalid_type(
                        &format!("metadata.{key}"),
                        "a string",
                        value,
                    ));
                }
            }
            Ok(m.clone())
        }
        Some(other) => Err(ApiError::invalid_type("metadata", "an object", other)),
    }
}

/// `tool_choice` as echoed, and whether it disables tools (`none`).
fn parse_tool_choice(value: Option<&Value>) -> Result<(Value, bool), ApiError> {
    match value {
        None | Some(Value::Null) => Ok((Value::String("auto".to_owned()), false)),
        Some(Value::String(s)) => match s.as_str() {
            "auto" | "required" => Ok((Value::String(s.clone()), false)),
            "none" => Ok((Value::String(s.clone()), true)),
            other => Err(ApiError::invalid_value(
                "tool_choice",
                other,
                &["none", "auto", "required"],
            )),
        },
        Some(v @ Value::Object(choice)) => {
            check_mcp_tool_choice(choice)?;
            Ok((v.clone(), false))
        }
        Some(other) => Err(ApiError::invalid_type(
            "tool_choice",
            "a string or an object",
            other,
        )),
    }
}

/// An object `tool_choice` must be `{"type": "mcp", "server_label": .., "name"?: ..}`.
fn check_mcp_tool_choice(choice: &Map<String, Value>) -> Result<(), ApiError> {
    match choice.get("type").and_then(Value::as_str) {
        Some("mcp") => {
            required_str(choice, "server_label", "tool_choice.server_label")?;
            match choice.get("name").filter(|n| !n.is_null()) {
                Some(name) if !name.is_string() => {
                    Err(ApiError::invalid_type("tool_choice.name", "a string", name))
                }
                _ => Ok(()),
            }
        }
        Some(other) => Err(ApiError::invalid(
            format!(
                "Tool choice '{other}' is not supported by this local endpoint; only 'mcp' is."
            ),
            Some("tool_choice.type"),
            Some("unsupported_value"),
        )),
        None => Err(ApiError::missing("tool_choice.type")),
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::invalid_type(key, "a string", other)),
    }
}

fn optional_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::invalid_type(key, "a boolean", other)),
    }
}

fn optional_number(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(ApiError::invalid_type(key, "a number", other)),
    }
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<&'a str, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(ApiError::missing(param)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ApiError::invalid_type(param, "a string", other)),
    }
}

fn parse_input_items(items: &[Value]) -> Result<Vec<InputItem>, ApiError> {
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        if let Some(parsed) = parse_input_item(index, item)? {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// One `input` item; `None` for the kinds that carry no state the endpoint needs.
fn parse_input_item(index: usize, item: &Value) -> Result<Option<InputItem>, ApiError> {
    let at = format!("input[{index}]");
    let Value::Object(obj) = item else {
        return Err(ApiError::invalid_type(&at, "an object", item));
    };
    let kind = match obj.get("type") {
        None | Some(Value::Null) => "message",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(ApiError::invalid_type(
                &format!("{at}.type"),
                "a string",
                other,
            ));
        }
    };
    let field = |key: &str| -> Result<String, ApiError> {
        Ok(required_str(obj, key, &format!("{at}.{key}"))?.to_owned())
    };
    Ok(Some(match kind {
        "message" => parse_message(obj, &at)?,
        "mcp_approval_response" => parse_approval_response(obj, &at, index)?,
        "mcp_approval_request" => InputItem::ApprovalRequest {
            id: field("id")?,
            server_label: field("server_label")?,
            name: field("name")?,
            arguments: field("arguments")?,
        },
        "mcp_list_tools" => InputItem::ListTools {
            server_label: field("server_label")?,
            tools: parse_listed_tools(obj, &at)?,
        },
        // Earlier calls and references carry no state the endpoint needs.
        "mcp_call" | "item_reference" => return Ok(None),
        other => {
            return Err(ApiError::invalid_value(
                &format!("{at}.type"),
                other,
                INPUT_ITEM_TYPES,
            ));
        }
    }))
}

/// A `message` item: a known role, and text or content parts (their texts joined by lines).
fn parse_message(obj: &Map<String, Value>, at: &str) -> Result<InputItem, ApiError> {
    const ROLES: [&str; 4] = ["user", "assistant", "system", "developer"];
    let role = required_str(obj, "role", &format!("{at}.role"))?;
    if !ROLES.contains(&role) {
        return Err(ApiError::invalid_value(&format!("{at}.role"), role, &ROLES));
    }
    let text = match obj.get("content") {
        None | Some(Value::Null) => return Err(ApiError::missing(&format!("{at}.content"))),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => {
            return Err(ApiError::invalid_type(
                &format!("{at}.content"),
                "a string or an array",
                other,
            ));
        }
    };
    Ok(InputItem::Message {
        role: role.to_owned(),
        text,
    })
}

/// An `mcp_approval_response` item.
fn parse_approval_response(
    obj: &Map<String, Value>,
    at: &str,
    index: usize,
) -> Result<InputItem, ApiError> {
    let id = required_str(
        obj,
        "approval_request_id",
        &format!("{at}.approval_request_id"),
    )?;
    let approve = match obj.get("approve") {
        None | Some(Value::Null) => return Err(ApiError::missing(&format!("{at}.approve"))),
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::invalid_type(
                &format!("{at}.approve"),
                "a boolean",
                other,
            ));
        }
    };
    Ok(InputItem::ApprovalResponse {
        index,
        approval_request_id: id.to_owned(),
        approve,
        reason: obj.get("reason").and_then(Value::as_str).map(str::to_owned),
    })
}

/// The `tools` of an `mcp_list_tools` item.
fn parse_listed_tools(obj: &Map<String, Value>, at: &str) -> Result<Vec<ListedTool>, ApiError> {
    let list = match obj.get("tools") {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) => return Err(ApiError::missing(&format!("{at}.tools"))),
        Some(other) => {
            return Err(ApiError::invalid_type(
                &format!("{at}.tools"),
                "an array",
                other,
            ));
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let param = format!("{at}.tools[{i}]");
            let Value::Object(t) = t else {
                return Err(ApiError::invalid_type(&param, "an object", t));
            };
            Ok(ListedTool {
                name: required_str(t, "name", &format!("{param}.name"))?.to_owned(),
                description: t
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                input_schema: t
                    .get("input_schema")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type":"object"})),
                annotations: t.get("annotations").filter(|a| !a.is_null()).cloned(),
            })
        })
        .collect()
}

fn parse_tool(index: usize, tool: &Value) -> Result<(McpToolSpec, Value), ApiError> {
    let at = format!("tools[{index}]");
    let Value::Object(obj) = tool else {
        return Err(ApiError::invalid_type(&at, "an object", tool));
    };
    check_tool_type(obj, &at)?;
    let server_label = required_str(obj, "server_label", &format!("{at}.server_label"))?.to_owned();
    let server_url = parse_server_url(obj, &at)?;
    let headers = parse_headers(obj, &at)?;
    let allowed = parse_allowed_tools(obj, &at)?;
    let approval = parse_approval(obj, &format!("{at}.require_approval"))?;
    let echo = tool_echo(obj, &server_label, &server_url);
    Ok((
        McpToolSpec {
            server_label,
            server_url,
            headers,
            allowed,
            approval,
        },
        echo,
    ))
}

/// Only `mcp` tools: another known type is unsupported here, an unknown one invalid.
fn check_tool_type(obj: &Map<String, Value>, at: &str) -> Result<(), ApiError> {
    let kind = required_str(obj, "type", &format!("{at}.type"))?;
    if kind == "mcp" {
        return Ok(());
    }
    if TOOL_TYPES.contains(&kind) {
        return Err(ApiError::invalid(
            format!(
                "Tool type '{kind}' is not supported by this local endpoint; only 'mcp' tools are."
            ),
            Some(&format!("{at}.type")),
            Some("unsupported_value"),
        ));
    }
    Err(ApiError::invalid_value(
        &format!("{at}.type"),
        kind,
        TOOL_TYPES,
    ))
}

/// `server_url` (`connector_id` and `tunnel_id` are not supported): an http(s) URL.
fn parse_server_url(obj: &Map<String, Value>, at: &str) -> Result<String, ApiError> {
    for unsupported in ["connector_id", "tunnel_id"] {
        if obj.get(unsupported).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid(
                format!(
                    "'{unsupported}' is not supported by this local endpoint; use 'server_url'."
                ),
                Some(&format!("{at}.{unsupported}")),
                Some("unsupported_value"),
            ));
        }
    }
    let server_url = required_str(obj, "server_url", &format!("{at}.server_url"))?.to_owned();
    if !(server_url.starts_with("http://") || server_url.starts_with("https://")) {
        return Err(ApiError::invalid(
            format!(
                "Invalid URL '{server_url}': the MCP server URL must start with http:// or https://."
            ),
            Some(&format!("{at}.server_url")),
            Some("invalid_value"),
        ));
    }
    Ok(server_url)
}

/// `headers` (strings), then `authorization` as a bearer header replacing any other.
fn parse_headers(obj: &Map<String, Value>, at: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                match value {
                    Value::String(v) => headers.push((name.clone(), v.clone())),
                    other => {
                        return Err(ApiError::invalid_type(
                            &format!("{at}.headers.{name}"),
                            "a string",
                            other,
                        ));
                    }
                }
            }
        }
        Some(other) => {
            return Err(ApiError::invalid_type(
                &format!("{at}.headers"),
                "an object",
                other,
            ));
        }
    }
    if let Some(token) = optional_string(obj, "authorization").map_err(|_| {
        ApiError::invalid_type(
            &format!("{at}.authorization"),
            "a string",
            &obj["authorization"],
        )
    })? {
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
        headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
    }
    Ok(headers)
}

/// `allowed_tools`: a list of names or a filter object.
fn parse_allowed_tools(obj: &Map<String, Value>, at: &str) -> Result<Option<ToolFilter>, ApiError> {
    let param = format!("{at}.allowed_tools");
    match obj.get("allowed_tools") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(names)) => Ok(Some(ToolFilter {
            tool_names: Some(string_list(names, &param)?),
            read_only: None,
        })),
        Some(v @ Value::Object(_)) => Ok(Some(parse_filter(v, &param)?)),
        Some(other) => Err(ApiError::invalid_type(
            &param,
            "an array or an object",
            other,
        )),
    }
}

/// `require_approval`: `always` (also when absent), `never`, or `{always, never}` filters.
fn parse_approval(obj: &Map<String, Value>, param: &str) -> Result<ApprovalPolicy, ApiError> {
    match obj.get("require_approval") {
        None | Some(Value::Null) => Ok(ApprovalPolicy::Always),
        Some(Value::String(s)) => match s.as_str() {
            "always" => Ok(ApprovalPolicy::Always),
            "never" => Ok(ApprovalPolicy::Never),
            other => Err(ApiError::invalid_value(param, other, &["always", "never"])),
        },
        Some(Value::Object(map)) => {
            if let Some(key) = map.keys().find(|k| *k != "always" && *k != "never") {
                return Err(ApiError::invalid(
                    format!("Unknown parameter: '{param}.{key}'."),
                    Some(&format!("{param}.{key}")),
                    Some("unknown_parameter"),
                ));
            }
            let filter = |key: &str| -> Result<Option<ToolFilter>, ApiError> {
                match map.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => parse_filter(v, &format!("{param}.{key}")).map(Some),
                }
            };
            Ok(ApprovalPolicy::Filter {
                always: filter("always")?,
                never: filter("never")?,
            })
        }
        Some(other) => Err(ApiError::invalid_type(
            param,
            "'always', 'never' or an object",
            other,
        )),
    }
}

/// The tool as the response echoes it: `headers` comes back null and `authorization` is
/// dropped, so secrets are never repeated.
fn tool_echo(obj: &Map<String, Value>, server_label: &str, server_url: &str) -> Value {
    let mut echo = Map::new();
    echo.insert("type".to_owned(), Value::String("mcp".to_owned()));
    echo.insert(
        "server_label".to_owned(),
        Value::String(server_label.to_owned()),
    );
    echo.insert(
        "server_url".to_owned(),
        Value::String(server_url.to_owned()),
    );
    echo.insert("headers".to_owned(), Value::Null);
    for key in ["allowed_tools", "require_approval", "server_description"] {
        echo.insert(key.to_owned(), obj.get(key).cloned().unwrap_or(Value::Null));
    }
    Value::Object(echo)
}

fn string_list(values: &[Value], param: &str) -> Result<Vec<String>, ApiError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(ApiError::invalid_type(
                &format!("{param}[{i}]"),
                "a string",
                other,
            )),
        })
        .collect()
}

fn parse_filter(value: &Value, param: &str) -> Result<ToolFilter, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::invalid_type(param, "an object", value));
    };
    let tool_names = match map.get("tool_names") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => Some(string_list(names, &format!("{param}.tool_names"))?),
        Some(other) => {
            return Err(ApiError::invalid_type(
                &format!("{param}.tool_names"),
                "an array",
                other,
            ));
        }
    };
    let read_only = match map.get("read_only") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(ApiError::invalid_type(
                &format!("{param}.read_only"),
                "a boolean",
                other,
            ));
        }
    };
    Ok(ToolFilter {
        tool_names,
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, read_only: bool) -> ListedTool {
        ListedTool {
            name: name.to_owned(),
            description: None,
            input_schema: json!({"type":"object"}),
            annotations: Some(json!({"readOnlyHint": read_only})),
        }
    }

    fn parse_json(v: Value) -> Result<CreateRequest, ApiError> {
        parse(v.to_string().as_bytes(), 16)
    }

    #[test]
    fn absent_require_approval_means_approval_is_required() {
        let req = parse_json(json!({"model":"m","input":"x","tools":[
            {"type":"mcp","server_label":"s","server_url":"http://h/sse"}]}))
        .unwrap();
        assert_eq!(req.tools[0].approval, ApprovalPolicy::Always);
        assert!(
            req.tools[0]
                .approval
                .requires_approval(&tool("roll_dice", false))
        );
    }

    #[test]
    fn approval_filters_match_names_and_read_only() {
        let policy = ApprovalPolicy::Filter {
            always: Some(ToolFilter {
                tool_names: Some(vec!["delete".to_owned()]),
                read_only: None,
            }),
            never: Some(ToolFilter {
                tool_names: None,
                read_only: Some(true),
            }),
        };
        assert!(policy.requires_approval(&tool("delete", true)));
        assert!(!policy.requires_approval(&tool("read", true)));
        assert!(policy.requires_approval(&tool("write", false)));
    }

    #[test]
    fn authorization_field_becomes_a_bearer_header_and_is_not_echoed() {
        let req = parse_json(json!({"model":"m","input":"x","tools":[
            {"type":"mcp","server_label":"s","server_url":"http://h/mcp",
             "headers":{"authorization":"Bearer old","X-Trace":"1"},"authorization":"tok"}]}))
        .unwrap();
        assert_eq!(
            req.tools[0].headers,
            vec![
                ("X-Trace".to_owned(), "1".to_owned()),
                ("Authorization".to_owned(), "Bearer tok".to_owned())
            ]
        );
        assert_eq!(req.tools_echo[0]["headers"], Value::Null);
        assert!(req.tools_echo[0].get("authorization").is_none());
    }

    #[test]
    fn header_values_must_be_strings() {
        let err = parse_json(json!({"model":"m","input":"x","tools":[
            {"type":"mcp","server_label":"s","server_url":"http://h/mcp","headers":{"X":1}}]}))
        .unwrap_err();
        assert_eq!(
            err.body(),
            r#"{"error":{"message":"Invalid type for 'tools[0].headers.X': expected a string, but got an integer instead.","type":"invalid_request_error","param":"tools[0].headers.X","code":"invalid_type"}}"#
        );
    }

    #[test]
    fn input_items_are_parsed() {
        let req = parse_json(json!({"model":"m","input":[
            {"role":"user","content":[{"type":"input_text","text":"hi"}]},
            {"type":"mcp_approval_response","approval_request_id":"mcpr_1","approve":false,"reason":"no"}
        ]}))
        .unwrap();
        assert!(
            matches!(&req.input[0], InputItem::Message { role, text } if role == "user" && text == "hi")
        );
        assert!(
            matches!(&req.input[1], InputItem::ApprovalResponse { approve: false, reason: Some(r), .. } if r == "no")
        );
    }
}
