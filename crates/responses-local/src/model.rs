//! The model seam: what decides tool calls and writes the answer.
//!
//! The endpoint calls [`Model::next_step`] repeatedly while it builds a response: each step either
//! calls one offered MCP tool or writes the final answer. [`DeterministicModel`] is the default; a
//! real model backend can implement the same trait.

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::connector::ListedTool;
use crate::error::{Error, english_list};

/// One conversation message seen by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `user`, `assistant`, `system` or `developer`.
    pub role: String,
    /// The message's text.
    pub text: String,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOffer {
    /// The MCP server's label.
    pub server_label: String,
    /// The tool as the server listed it.
    pub tool: ListedTool,
}

/// How a tool call of the current turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActivityResult {
    /// The call returned this output text.
    Output(String),
    /// The call failed; a short description.
    Failed(String),
    /// The user denied the approval request.
    Denied {
        /// The reason the user gave, if any.
        reason: Option<String>,
    },
}

/// A tool call made (or refused) since the latest user message.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolActivity {
    /// The MCP server's label.
    pub server_label: String,
    /// The tool's name.
    pub name: String,
    /// The arguments the call was made with.
    pub arguments: Value,
    /// How it ended.
    pub result: ActivityResult,
}

/// Everything the model sees for one step.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInput {
    /// The request's `instructions`.
    pub instructions: Option<String>,
    /// The conversation along the `previous_response_id` chain, oldest first.
    pub messages: Vec<ChatMessage>,
    /// The tools it may call now (after `allowed_tools`); empty when it must answer.
    pub tools: Vec<ToolOffer>,
    /// Tool calls since the latest user message, oldest first.
    pub activity: Vec<ToolActivity>,
}

impl ModelInput {
    /// The text of the latest user message ("" when there is none).
    pub fn latest_user_text(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map_or("", |m| m.text.as_str())
    }
}

/// What the model does next.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ModelStep {
    /// Call a tool with these arguments.
    CallTool {
        /// One of the offered server labels.
        server_label: String,
        /// One of the offered tool names for that server.
        name: String,
        /// The arguments, a JSON object.
        arguments: Value,
    },
    /// Finish with this answer.
    Answer(String),
}

/// Decides tool calls and writes answers.
pub trait Model: Send + Sync + 'static {
    /// The next step for `input`.
    fn next_step(&self, input: ModelInput) -> BoxFuture<'_, Result<ModelStep, Error>>;
}

/// A model without randomness: it calls the best-matching tool once per user message, then
/// describes the result.
///
/// For "Roll a few dice!" with a `roll_dice` tool it calls `roll_dice` with `{"n_dice":3}` (or the
/// number the message names) and answers "You rolled 3 dice and got the following results: 6, 4,
/// and 2!" with the values the call returned (`[6,4,2]` or `{"result":[6,4,2]}`). For other tools it
/// picks the one whose name and description share the most words with the message (the first
/// listed on a tie) and builds arguments from its input schema ([`example_arguments`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeterministicModel;

impl Model for DeterministicModel {
    fn next_step(&self, input: ModelInput) -> BoxFuture<'_, Result<ModelStep, Error>> {
        Box::pin(async move { Ok(decide(&input)) })
    }
}

fn decide(input: &ModelInput) -> ModelStep {
    let question = input.latest_user_text();
    if !input.activity.is_empty() {
        return ModelStep::Answer(describe_activity(question, &input.activity));
    }
    match choose_tool(question, &input.tools) {
        Some(offer) => ModelStep::CallTool {
            server_label: offer.server_label.clone(),
            name: offer.tool.name.clone(),
            arguments: arguments_for(question, &offer.tool),
        },
        None if question.is_empty() => {
            ModelStep::Answer("I have no tools available for this request.".to_owned())
        }
        None => ModelStep::Answer(format!(
            "I have no tools available for this request. You said: \"{question}\""
        )),
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect()
}

fn asks_for_dice(question: &str) -> bool {
    let q = question.to_lowercase();
    q.contains("dice") || q.contains("die") || q.contains("roll")
}

fn is_dice_tool(tool: &ListedTool) -> bool {
    tool.name == "roll_dice"
}

fn choose_tool<'a>(question: &str, tools: &'a [ToolOffer]) -> Option<&'a ToolOffer> {
    if asks_for_dice(question)
        && let Some(dice) = tools.iter().find(|o| is_dice_tool(&o.tool))
    {
        return Some(dice);
    }
    let asked = words(question);
    let mut best: Option<(&ToolOffer, usize)> = None;
    for offer in tools {
        let mut vocabulary = words(&offer.tool.name.replace(['_', '-'], " "));
        vocabulary.extend(words(offer.tool.description.as_deref().unwrap_or("")));
        let score = asked.iter().filter(|w| vocabulary.contains(w)).count();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((offer, score));
        }
    }
    best.map(|(offer, _)| offer)
}

fn arguments_for(question: &str, tool: &ListedTool) -> Value {
    let mut args = example_arguments(&tool.input_schema);
    let has_n_dice = tool
        .input_schema
        .get("properties")
        .and_then(|p| p.get("n_dice"))
        .is_some();
    if is_dice_tool(tool) && (has_n_dice || tool.input_schema.get("properties").is_none()) {
        let n = question
            .split(|c: char| !c.is_ascii_digit())
            .find_map(|w| w.parse::<u64>().ok())
            .filter(|n| (1..=100).contains(n))
            .unwrap_or(3);
        if let Value::Object(map) = &mut args {
            map.insert("n_dice".to_owned(), Value::from(n));
        }
    }
    args
}

/// Arguments that satisfy `schema`'s required properties: its `const`, `default` or first `enum`
/// value when given, else integers at their minimum (or 1), numbers likewise, strings `"example"`,
/// booleans `false`, arrays with `minItems` example items, nested objects recursively. Local
/// `$ref`s (`#/$defs/...`, `#/definitions/...`) are followed. Always returns an object.
pub fn example_arguments(schema: &Value) -> Value {
    match example_value(schema, schema, 0) {
        Value::Object(map) => Value::Object(map),
        _ => Value::Object(Map::new()),
    }
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
        return schema;
    };
    let Some(pointer) = reference.strip_prefix('#') else {
        return schema;
    };
    root.pointer(pointer).unwrap_or(schema)
}

fn example_value(root: &Value, schema: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    let schema = resolve(root, schema);
    if let Some(given) = given_value(schema) {
        return given.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let branch = branches
                .iter()
                .find(|b| resolve(root, b).get("type").and_then(Value::as_str) != Some("null"));
            if let Some(branch) = branch {
                return example_value(root, branch, depth + 1);
            }
        }
    }
    match schema_type(schema) {
        "integer" => example_integer(schema),
        "number" => {
            let mut n = schema.get("minimum").and_then(Value::as_f64).unwrap_or(1.0);
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                n = n.min(max);
            }
            Value::from(n)
        }
        "string" => Value::from("example"),
        "boolean" => Value::Bool(false),
        "array" => {
            let count = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            Value::Array(
                (0..count.min(16))
                    .map(|_| example_value(root, &items, depth + 1))
                    .collect(),
            )
        }
        "object" => example_object(root, schema, depth),
        _ => Value::Null,
    }
}

/// The schema's `const`, else its `default`, else its first `enum` value.
fn given_value(schema: &Value) -> Option<&Value> {
    schema
        .get("const")
        .or_else(|| schema.get("default"))
        .or_else(|| schema.get("enum").and_then(Value::as_array)?.first())
}

/// The schema's type: the first non-null one of a list, `object` for bare `properties`.
fn schema_type(schema: &Value) -> &str {
    match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "",
    }
}

/// The minimum (or the exclusive minimum plus one, or 1), capped by the maximum.
fn example_integer(schema: &Value) -> Value {
    let min = schema
        .get("minimum")
        .and_then(Value::as_f64)
        .map(|m| m.ceil() as i64)
        .or_else(|| {
            schema
                .get("exclusiveMinimum")
                .and_then(Value::as_f64)
                .map(|m| m.floor() as i64 + 1)
        });
    let mut n = min.unwrap_or(1);
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        n = n.min(max.floor() as i64);
    }
    Value::from(n)
}

/// An object with an example for each required property.
fn example_object(root: &Value, schema: &Value, depth: usize) -> Value {
    let mut out = Map::new();
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = schema.get("required").and_then(Value::as_array);
    if let (Some(properties), Some(required)) = (properties, required) {
        for name in required.iter().filter_map(Value::as_str) {
            let property = properties.get(name).cloned().unwrap_or(Value::Null);
            out.insert(name.to_owned(), example_value(root, &property, depth + 1));
        }
    }
    Value::Object(out)
}

/// The integers of a FastMCP-style result: `[6,4,2]` or `{"result":[6,4,2]}`.
fn integer_list(output: &str) -> Option<Vec<i64>> {
    let value: Value = serde_json::from_str(output).ok()?;
    let list = match &value {
        Value::Array(list) => list,
        Value::Object(map) => map.get("result")?.as_array()?,
        _ => return None,
    };
    list.iter().map(Value::as_i64).collect()
}

fn describe_activity(question: &str, activity: &[ToolActivity]) -> String {
    activity
        .iter()
        .map(|a| describe_one(question, a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn describe_one(question: &str, activity: &ToolActivity) -> String {
    let ToolActivity {
        server_label,
        name,
        result,
        ..
    } = activity;
    match result {
        ActivityResult::Output(output) => {
            let dice = name == "roll_dice" || asks_for_dice(question);
            match integer_list(output) {
                Some(values) if dice && values.len() == 1 => {
                    format!(
                        "You rolled 1 die and got the following result: {}!",
                        values[0]
                    )
                }
                Some(values) if dice && !values.is_empty() => format!(
                    "You rolled {} dice and got the following results: {}!",
                    values.len(),
                    english_list(&values, "and", i64::to_string)
                ),
                _ => format!("I called {name} on {server_label} and it returned: {output}"),
            }
        }
        ActivityResult::Failed(why) => {
            format!("I called {name} on {server_label}, but it failed: {why}")
        }
        ActivityResult::Denied { reason } => match reason {
            Some(reason) => format!(
                "The call to {name} on {server_label} was not approved ({reason}), so I did not run it."
            ),
            None => format!(
                "The call to {name} on {server_label} was not approved, so I did not run it."
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn offer(name: &str, description: &str, schema: Value) -> ToolOffer {
        ToolOffer {
            server_label: "srv".to_owned(),
            tool: ListedTool {
                name: name.to_owned(),
                description: Some(description.to_owned()),
                input_schema: schema,
                annotations: None,
            },
        }
    }

    fn dice() -> ToolOffer {
        offer(
            "roll_dice",
            "Roll `n_dice` 6-sided dice and return the results.",
            json!({"type":"object","properties":{"n_dice":{"type":"integer","title":"N Dice"}},"required":["n_dice"]}),
        )
    }

    fn user(text: &str) -> ModelInput {
        ModelInput {
            instructions: None,
            messages: vec![ChatMessage {
                role: "user".to_owned(),
                text: text.to_owned(),
            }],
            tools: vec![],
            activity: vec![],
        }
    }

    #[test]
    fn dice_request_calls_roll_dice_with_three() {
        let mut input = user("Roll a few dice!");
        input.tools = vec![offer("echo", "Echo text", json!({})), dice()];
        assert_eq!(
            decide(&input),
            ModelStep::CallTool {
                server_label: "srv".to_owned(),
                name: "roll_dice".to_owned(),
                arguments: json!({"n_dice":3})
            }
        );
    }

    #[test]
    fn dice_answer_uses_the_call_output() {
        let mut input = user("Roll a few dice!");
        input.activity = vec![ToolActivity {
            server_label: "dice_server".to_owned(),
            name: "roll_dice".to_owned(),
            arguments: json!({"n_dice":3}),
            result: ActivityResult::Output("[6,4,2]".to_owned()),
        }];
        assert_eq!(
            decide(&input),
            ModelStep::Answer(
                "You rolled 3 dice and got the following results: 6, 4, and 2!".to_owned()
            )
        );
        input.activity[0].result = ActivityResult::Output(r#"{"result":[5,1]}"#.to_owned());
        assert_eq!(
            decide(&input),
            ModelStep::Answer(
                "You rolled 2 dice and got the following results: 5 and 1!".to_owned()
            )
        );
    }

    #[test]
    fn other_tools_are_chosen_by_shared_words() {
        let mut input = user("What is the weather in Paris?");
        input.tools = vec![
            offer("add", "Add two numbers", json!({"type":"object"})),
            offer(
                "get_weather",
                "Current weather for a city",
                json!({"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer","minimum":2},"metric":{"type":"boolean"}},"required":["city","days"]}),
            ),
        ];
        assert_eq!(
            decide(&input),
            ModelStep::CallTool {
                server_label: "srv".to_owned(),
                name: "get_weather".to_owned(),
                arguments: json!({"city":"example","days":2})
            }
        );
    }

    #[test]
    fn no_tools_means_a_plain_answer() {
        assert_eq!(
            decide(&user("Hello")),
            ModelStep::Answer(
                "I have no tools available for this request. You said: \"Hello\"".to_owned()
            )
        );
    }

    #[test]
    fn example_arguments_cover_schema_kinds() {
        let schema = json!({
            "type":"object",
            "$defs":{"Point":{"type":"object","properties":{"x":{"type":"number","minimum":0.5}},"required":["x"]}},
            "properties":{
                "count":{"type":"integer","maximum":0},
                "mode":{"enum":["fast","slow"]},
                "tags":{"type":"array","items":{"type":"string"},"minItems":2},
                "point":{"$ref":"#/$defs/Point"},
                "maybe":{"anyOf":[{"type":"null"},{"type":"boolean"}]},
                "optional":{"type":"string"}
            },
            "required":["count","mode","tags","point","maybe"]
        });
        assert_eq!(
            example_arguments(&schema),
            json!({"count":0,"mode":"fast","tags":["example","example"],"point":{"x":0.5},"maybe":false})
        );
        assert_eq!(example_arguments(&json!(true)), json!({}));
    }

    #[test]
    fn denial_is_described() {
        let mut input = user("Roll a few dice!");
        input.activity = vec![ToolActivity {
            server_label: "dice_server".to_owned(),
            name: "roll_dice".to_owned(),
            arguments: json!({"n_dice":3}),
            result: ActivityResult::Denied { reason: None },
        }];
        assert_eq!(
            decide(&input),
            ModelStep::Answer(
                "The call to roll_dice on dice_server was not approved, so I did not run it."
                    .to_owned()
            )
        );
    }
}
