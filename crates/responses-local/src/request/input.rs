//! The request's `input` items.

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, SeqAccess};
use serde_json::{Map, Value};

use super::fault::{Fault, Kind, nested, required};
use super::shape::{Flag, List, Obj, Shape, Text, deserialize_shape};
use crate::connector::ListedTool;

/// Every input item `type` OpenAI knows that an MCP conversation can carry.
const INPUT_ITEM_TYPES: &[&str] = &[
    "message",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "mcp_list_tools",
    "item_reference",
];

const ROLES: &[&str] = &["user", "assistant", "system", "developer"];

/// `input`: a string (one user message) or a list of items.
#[derive(Debug)]
pub(crate) struct Input(pub Vec<InputItem>);

impl<'de> Shape<'de> for Input {
    const EXPECTED: &'static str = "a string or an array";

    fn from_string(text: String) -> Result<Self, Fault> {
        Ok(Input(vec![InputItem::Message {
            role: "user".to_owned(),
            text,
        }]))
    }

    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        List::from_seq(seq).map(|List(items)| Input(items))
    }
}

/// One item of `input`, by its `type` (`message` when absent).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InputItem {
    /// A message; content parts are joined by lines.
    Message { role: String, text: String },
    ApprovalResponse {
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
    /// An earlier `mcp_call` or an `item_reference`: nothing the endpoint needs.
    Earlier,
}

impl<'de> Shape<'de> for InputItem {
    const EXPECTED: &'static str = "an object";

    /// The item is read whole first, to pick its kind by `type` wherever that key is.
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let fields = Map::deserialize(MapAccessDeserializer::new(map))?;
        InputItem::read(fields).map_err(de::Error::custom)
    }
}

impl InputItem {
    fn read(fields: Map<String, Value>) -> Result<Self, Fault> {
        let kind = match fields.get("type") {
            None | Some(Value::Null) => "message".to_owned(),
            Some(Value::String(kind)) => kind.clone(),
            Some(other) => {
                return Err(Fault::invalid_type("a string", Kind::of(other)).in_field("type"));
            }
        };
        let item = Value::Object(fields);
        match kind.as_str() {
            "message" => nested::<RawMessage>(item)?.check(),
            "mcp_approval_response" => nested::<RawApprovalResponse>(item)?.check(),
            "mcp_approval_request" => nested::<RawApprovalRequest>(item)?.check(),
            "mcp_list_tools" => nested::<RawListTools>(item)?.check(),
            "mcp_call" | "item_reference" => Ok(InputItem::Earlier),
            other => Err(Fault::invalid_value(other, INPUT_ITEM_TYPES).in_field("type")),
        }
    }
}

#[derive(Deserialize)]
struct RawMessage {
    role: Option<Text>,
    content: Option<Content>,
}

impl RawMessage {
    fn check(self) -> Result<InputItem, Fault> {
        let Text(role) = required(self.role, "role")?;
        if !ROLES.contains(&role.as_str()) {
            return Err(Fault::invalid_value(&role, ROLES).in_field("role"));
        }
        let Content(text) = required(self.content, "content")?;
        Ok(InputItem::Message { role, text })
    }
}

/// A message's `content`: a string, or parts whose texts are joined by lines (parts without a
/// text, such as images, are passed over).
struct Content(String);

impl<'de> Shape<'de> for Content {
    const EXPECTED: &'static str = "a string or an array";

    fn from_string(text: String) -> Result<Self, Fault> {
        Ok(Content(text))
    }

    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        let List(parts) = List::<Value>::from_seq(seq)?;
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        Ok(Content(texts.join("\n")))
    }
}

#[derive(Deserialize)]
struct RawApprovalResponse {
    approval_request_id: Option<Text>,
    approve: Option<Flag>,
    /// Read loosely: a `reason` that is not a string is passed over.
    reason: Option<Value>,
}

impl RawApprovalResponse {
    fn check(self) -> Result<InputItem, Fault> {
        Ok(InputItem::ApprovalResponse {
            approval_request_id: required(self.approval_request_id, "approval_request_id")?.0,
            approve: required(self.approve, "approve")?.0,
            reason: self.reason.and_then(|r| r.as_str().map(str::to_owned)),
        })
    }
}

#[derive(Deserialize)]
struct RawApprovalRequest {
    id: Option<Text>,
    server_label: Option<Text>,
    name: Option<Text>,
    arguments: Option<Text>,
}

impl RawApprovalRequest {
    fn check(self) -> Result<InputItem, Fault> {
        Ok(InputItem::ApprovalRequest {
            id: required(self.id, "id")?.0,
            server_label: required(self.server_label, "server_label")?.0,
            name: required(self.name, "name")?.0,
            arguments: required(self.arguments, "arguments")?.0,
        })
    }
}

#[derive(Deserialize)]
struct RawListTools {
    server_label: Option<Text>,
    tools: Option<List<Obj<RawListedTool>>>,
}

/// A tool of an earlier `mcp_list_tools` item; only `name` is checked.
#[derive(Deserialize)]
struct RawListedTool {
    name: Option<Text>,
    description: Option<Value>,
    input_schema: Option<Value>,
    annotations: Option<Value>,
}

impl RawListTools {
    fn check(self) -> Result<InputItem, Fault> {
        let Text(server_label) = required(self.server_label, "server_label")?;
        let List(listed) = required(self.tools, "tools")?;
        let tools = listed
            .into_iter()
            .enumerate()
            .map(|(index, Obj(tool))| {
                let Text(name) =
                    required(tool.name, "name").map_err(|f| f.in_item(index).in_field("tools"))?;
                Ok(ListedTool {
                    name,
                    description: tool.description.and_then(|d| d.as_str().map(str::to_owned)),
                    input_schema: tool
                        .input_schema
                        .unwrap_or_else(|| serde_json::json!({"type": "object"})),
                    annotations: tool.annotations,
                })
            })
            .collect::<Result<_, Fault>>()?;
        Ok(InputItem::ListTools {
            server_label,
            tools,
        })
    }
}

deserialize_shape!(Input, InputItem, Content);
