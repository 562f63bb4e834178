//! A `POST /v1/responses` body, read by serde into typed structs that fail with OpenAI's exact
//! 400 bodies.
//!
//! Each field is read as a [`shape`] that names what it expected and what it got, so serde's own
//! messages never reach the caller. Rules serde cannot say (a `null` that counts as absent for a
//! required field, URL schemes, unique labels, the cap on `tools`, dispatch on `type`) are checked
//! when a raw struct becomes its typed value; every [`fault`] becomes its 400 at one place.
//! Unknown fields are ignored, as newer SDKs send fields this endpoint has no use for; only
//! `require_approval` objects refuse unknown keys, as OpenAI does.
//!
//! serde reads the body in one pass, so a body with several problems gets the first one met:
//! in the body's order, except that `tools` come last (their count is checked before any is
//! read) and that a tool or an input item is read whole first, to dispatch on its `type`, then
//! its fields in name order. A required field is missing only once the object around it is read.
//!
//! async-openai's request types (`CreateResponse`, `MCPTool`) are not used: they deserialize
//! with serde's messages (and untagged enums that only say "did not match any variant"), where
//! this endpoint must answer exactly as OpenAI does.

mod fault;
mod input;
mod shape;
mod tool;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use fault::{Fault, required};
use input::Input;
pub(crate) use input::InputItem;
use shape::{Count, Dict, Flag, List, Number, Obj, Text};
pub(crate) use tool::{McpToolChoice, McpToolSpec, ToolChoice};
#[cfg(test)]
use tool::{RequireApproval, ToolFilter};

/// A validated request.
#[derive(Debug, Clone)]
pub(crate) struct CreateRequest {
    pub model: String,
    pub input: Vec<InputItem>,
    pub tools: Vec<McpToolSpec>,
    pub previous_response_id: Option<String>,
    pub instructions: Option<String>,
    pub stream: bool,
    pub store: bool,
    pub metadata: BTreeMap<String, String>,
    pub tool_choice: ToolChoice,
    pub max_tool_calls: Option<u32>,
    pub temperature: f64,
    pub top_p: f64,
    pub parallel_tool_calls: bool,
}

/// The body as serde reads it; every field may be absent or `null`.
#[derive(Deserialize)]
struct RawRequest {
    model: Option<Text>,
    input: Option<Input>,
    /// Read as values so that their count is checked before any of them.
    tools: Option<List<Value>>,
    previous_response_id: Option<Text>,
    instructions: Option<Text>,
    stream: Option<Flag>,
    store: Option<Flag>,
    parallel_tool_calls: Option<Flag>,
    temperature: Option<Number>,
    top_p: Option<Number>,
    max_tool_calls: Option<Count>,
    metadata: Option<Dict<Text>>,
    tool_choice: Option<ToolChoice>,
}

impl RawRequest {
    fn check(self, max_tools: usize) -> Result<CreateRequest, Fault> {
        let Text(model) = required(self.model, "model")?;
        let Input(input) = required(self.input, "input")?;
        let tools = self.tools.map_or(Ok(Vec::new()), |List(tools)| {
            tool::read_tools(tools, max_tools).map_err(|f| f.in_field("tools"))
        })?;
        let text = |t: Option<Text>| t.map(|Text(t)| t);
        Ok(CreateRequest {
            model,
            input,
            tools,
            previous_response_id: text(self.previous_response_id),
            instructions: text(self.instructions),
            stream: self.stream.is_some_and(|Flag(b)| b),
            store: self.store.is_none_or(|Flag(b)| b),
            metadata: self
                .metadata
                .map(|Dict(entries)| entries.into_iter().map(|(k, Text(v))| (k, v)).collect())
                .unwrap_or_default(),
            tool_choice: self.tool_choice.unwrap_or_default(),
            max_tool_calls: self.max_tool_calls.map(|Count(n)| n),
            temperature: self.temperature.map_or(1.0, |Number(n)| n),
            top_p: self.top_p.map_or(1.0, |Number(n)| n),
            parallel_tool_calls: self.parallel_tool_calls.is_none_or(|Flag(b)| b),
        })
    }
}

/// Reads the raw body; a `tools` array longer than `max_tools` is a 400.
pub(crate) fn parse(body: &[u8], max_tools: usize) -> Result<CreateRequest, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let Obj(raw): Obj<RawRequest> =
        serde_path_to_error::deserialize(&mut json).map_err(fault::body_error)?;
    json.end().map_err(|_| ApiError::unparsable())?;
    raw.check(max_tools).map_err(Fault::into_api_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::ListedTool;
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

    fn dice_tool(fields: Value) -> Result<McpToolSpec, ApiError> {
        let mut tool = json!({"type":"mcp","server_label":"s","server_url":"http://h/sse"});
        for (k, v) in fields.as_object().unwrap() {
            tool[k] = v.clone();
        }
        let mut request = parse_json(json!({"model":"m","input":"x","tools":[tool]}))?;
        Ok(request.tools.remove(0))
    }

    #[test]
    fn absent_require_approval_means_approval_is_required() {
        let spec = dice_tool(json!({})).unwrap();
        assert_eq!(spec.require_approval, None);
        assert!(spec.requires_approval(&tool("roll_dice", false)));
    }

    #[test]
    fn approval_filters_match_names_and_read_only() {
        let spec = dice_tool(json!({"require_approval":
            {"always":{"tool_names":["delete"]},"never":{"read_only":true}}}))
        .unwrap();
        assert_eq!(
            spec.require_approval,
            Some(RequireApproval::Filter {
                always: Some(ToolFilter {
                    tool_names: Some(vec!["delete".to_owned()]),
                    read_only: None,
                }),
                never: Some(ToolFilter {
                    tool_names: None,
                    read_only: Some(true),
                }),
            })
        );
        assert!(spec.requires_approval(&tool("delete", true)));
        assert!(!spec.requires_approval(&tool("read", true)));
        assert!(spec.requires_approval(&tool("write", false)));
    }

    #[test]
    fn authorization_field_becomes_a_bearer_header_and_is_not_echoed() {
        let spec = dice_tool(
            json!({"headers":{"X-Trace":"1","authorization":"Bearer old"},
            "authorization":"tok","allowed_tools":["roll_dice"],"require_approval":"never"}),
        )
        .unwrap();
        assert_eq!(
            spec.headers,
            [
                ("X-Trace".to_owned(), "1".to_owned()),
                ("Authorization".to_owned(), "Bearer tok".to_owned())
            ]
        );
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"type":"mcp","server_label":"s","server_url":"http://h/sse","headers":null,"allowed_tools":["roll_dice"],"require_approval":"never","server_description":null}"#
        );
    }

    #[test]
    fn filters_and_tool_choices_echo_as_given() {
        let spec = dice_tool(json!({"allowed_tools":{"read_only":true},
            "require_approval":{"never":{"tool_names":["a"]}}}))
        .unwrap();
        let echo = serde_json::to_value(&spec).unwrap();
        assert_eq!(echo["allowed_tools"], json!({"read_only":true}));
        assert_eq!(
            echo["require_approval"],
            json!({"never":{"tool_names":["a"]}})
        );
        for choice in [
            json!("none"),
            json!({"type":"mcp","server_label":"s"}),
            json!({"type":"mcp","server_label":"s","name":"roll_dice"}),
        ] {
            let request =
                parse_json(json!({"model":"m","input":"x","tool_choice":choice})).unwrap();
            assert_eq!(serde_json::to_value(&request.tool_choice).unwrap(), choice);
        }
    }

    #[test]
    fn input_items_are_parsed() {
        let req = parse_json(json!({"model":"m","input":[
            {"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_text","text":"there"}]},
            {"type":"mcp_approval_response","approval_request_id":"mcpr_1","approve":false,"reason":"no"},
            {"type":"mcp_call","id":"mcp_1"}
        ]}))
        .unwrap();
        assert_eq!(
            req.input,
            [
                InputItem::Message {
                    role: "user".to_owned(),
                    text: "hi\nthere".to_owned()
                },
                InputItem::ApprovalResponse {
                    approval_request_id: "mcpr_1".to_owned(),
                    approve: false,
                    reason: Some("no".to_owned())
                },
                InputItem::Earlier,
            ]
        );
    }

    #[test]
    fn duplicate_top_level_fields_are_refused_with_serdes_words() {
        let err = parse(br#"{"model":"a","model":"b","input":"x"}"#, 16).unwrap_err();
        assert_eq!(
            err.body(),
            r#"{"error":{"message":"Invalid 'body': duplicate field `model`.","type":"invalid_request_error","param":"body","code":null}}"#
        );
    }
}
