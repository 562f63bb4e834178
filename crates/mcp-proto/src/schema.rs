//! Plain JSON Schema 2020-12 from Rust types, and the subset OpenAI's strict structured
//! outputs accept.
//!
//! schemars describes Rust numbers with `format` values such as `uint8`, `int32` or `double`.
//! They are not JSON Schema formats: strict validators reject them and the TypeScript SDK
//! warns (`unknown format "uint8" ignored`) on every call. [`generator`] replaces them with
//! what they mean, `minimum`/`maximum` for integers, and drops every `format` that JSON Schema
//! 2020-12 does not define. Every schema [`crate::McpServer`] lists comes from it.
//!
//! ```
//! use mcp_proto::schema_object;
//! use serde_json::json;
//!
//! #[derive(schemars::JsonSchema)]
//! struct Roll { n_dice: u8, seed: Option<u64>, scale: f64 }
//!
//! let schema = schema_object::<Roll>()?;
//! assert_eq!(schema["properties"]["n_dice"], json!({"type": "integer", "minimum": 0, "maximum": 255}));
//! assert_eq!(schema["properties"]["seed"],
//!     json!({"type": ["integer", "null"], "minimum": 0, "maximum": u64::MAX}));
//! assert_eq!(schema["properties"]["scale"], json!({"type": "number"}));
//! # Ok::<(), String>(())
//! ```
//!
//! ## OpenAI strict mode
//!
//! OpenAI's function calling with `strict: true` (and `response_format` JSON schemas) accepts
//! a subset of JSON Schema: every object lists all its properties in `required` and sets
//! `additionalProperties: false`, optional values are nullable instead, and keywords such as
//! `minLength`, `default` or `format` values outside a short list are refused.
//! [`openai_strict`] rewrites a schema into that subset; [`SchemaProfile::OpenAiStrict`]
//! (through [`crate::ServerBuilder::schema_profile`]) makes a server list its tools' input
//! schemas that way, so a host can pass them to the model unchanged.
//!
//! ```
//! use mcp_proto::schema::openai_strict;
//! use serde_json::json;
//!
//! let schema = json!({"type": "object", "properties": {
//!     "n_dice": {"type": "integer", "minimum": 1, "default": 1},
//!     "label": {"type": "string", "maxLength": 20}}, "required": ["n_dice"]});
//! let strict = openai_strict(schema.as_object().unwrap());
//! assert_eq!(serde_json::Value::Object(strict), json!({"type": "object", "properties": {
//!     "n_dice": {"type": "integer", "minimum": 1},
//!     "label": {"type": ["string", "null"]}},
//!     "required": ["label", "n_dice"], "additionalProperties": false}));
//! ```

use schemars::transform::{Transform, transform_subschemas};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// A JSON object (a schema).
type JsonObject = Map<String, Value>;

/// The `format` values JSON Schema 2020-12 defines (Validation, section 7.3).
pub const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Which JSON Schema a server lists for its tools' arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaProfile {
    /// Plain JSON Schema 2020-12, as generated (the default).
    #[default]
    Standard,
    /// The subset OpenAI's strict structured outputs accept (see [`openai_strict`]). Only
    /// input schemas change, since the model writes arguments, not results; arguments are
    /// still validated against the full schema, after `null` values of properties that
    /// were optional are removed.
    OpenAiStrict,
}

/// Replaces schemars' non-standard `format` values: integer formats become `minimum` and
/// `maximum` (bounds already present are kept), and every format JSON Schema 2020-12 does
/// not define is removed. Applied to every subschema.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardFormats;

impl Transform for StandardFormats {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(object) = schema.as_object_mut() {
            standardize_format(object);
        }
        transform_subschemas(self, schema);
    }
}

fn standardize_format(object: &mut JsonObject) {
    let Some(format) = object.get("format").and_then(Value::as_str) else {
        return;
    };
    if STANDARD_FORMATS.contains(&format) {
        return;
    }
    let (minimum, maximum) = integer_bounds(format);
    object.remove("format");
    if let Some(min) = minimum {
        object.entry("minimum").or_insert(min);
    }
    if let Some(max) = maximum {
        object.entry("maximum").or_insert(max);
    }
}

/// The range of a schemars integer format (bounds beyond 64 bits are left open).
fn integer_bounds(format: &str) -> (Option<Value>, Option<Value>) {
    match format {
        "int8" => (Some(json!(i8::MIN)), Some(json!(i8::MAX))),
        "int16" => (Some(json!(i16::MIN)), Some(json!(i16::MAX))),
        "int32" => (Some(json!(i32::MIN)), Some(json!(i32::MAX))),
        "int64" | "int" => (Some(json!(i64::MIN)), Some(json!(i64::MAX))),
        "uint8" => (Some(json!(0)), Some(json!(u8::MAX))),
        "uint16" => (Some(json!(0)), Some(json!(u16::MAX))),
        "uint32" => (Some(json!(0)), Some(json!(u32::MAX))),
        "uint64" | "uint" => (Some(json!(0)), Some(json!(u64::MAX))),
        "uint128" => (Some(json!(0)), None),
        _ => (None, None),
    }
}

/// A schema generator for JSON Schema 2020-12 with [`StandardFormats`] applied.
pub fn generator() -> SchemaGenerator {
    schemars::generate::SchemaSettings::draft2020_12()
        .with_transform(StandardFormats)
        .into_generator()
}

/// Generates the JSON Schema of `T` as an object, without the `title` schemars adds and with
/// only standard formats (see [`generator`]).
pub fn schema_object<T: JsonSchema>() -> Result<JsonObject, String> {
    let mut value = generator().into_root_schema_for::<T>().to_value();
    match value.as_object_mut() {
        Some(obj) => {
            obj.remove("title");
            Ok(std::mem::take(obj))
        }
        // `true`/`false` schemas: accept anything / nothing.
        None => Ok(JsonObject::new()),
    }
}

/// The `format` values OpenAI's strict mode accepts.
const OPENAI_FORMATS: &[&str] = &[
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
];

/// Keywords OpenAI's strict mode accepts; everything else is dropped (besides the schema
/// maps `properties` and `$defs`, whose keys are names).
const OPENAI_KEYWORDS: &[&str] = &[
    "$schema",
    "$ref",
    "$defs",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "enum",
    "const",
    "description",
    "title",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
];

/// Rewrites a schema into the subset OpenAI's strict structured outputs accept: every object
/// schema lists all its properties as `required` (a property that was optional becomes
/// nullable: `"null"` joins its `type`, or it becomes `anyOf [.., {"type": "null"}]`) and
/// gets `additionalProperties: false`; `oneOf` becomes `anyOf`; unsupported keywords
/// (`default`, `minLength`, `examples`, `x-…`, …) and formats are removed.
pub fn openai_strict(schema: &JsonObject) -> JsonObject {
    let mut out = schema.clone();
    strict_object(&mut out);
    out
}

fn strict_object(schema: &mut JsonObject) {
    if let Some(one_of) = schema.remove("oneOf") {
        schema.entry("anyOf").or_insert(one_of);
    }
    schema.retain(|key, _| OPENAI_KEYWORDS.contains(&key.as_str()));
    if schema
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| !OPENAI_FORMATS.contains(&f))
    {
        schema.remove("format");
    }
    for key in ["properties", "$defs"] {
        if let Some(Value::Object(map)) = schema.get_mut(key) {
            map.values_mut().for_each(strict_value);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(value) = schema.get_mut(key) {
            strict_value(value);
        }
    }
    if let Some(Value::Array(any_of)) = schema.get_mut("anyOf") {
        any_of.iter_mut().for_each(strict_value);
    }
    let is_object =
        schema.get("type") == Some(&json!("object")) || schema.contains_key("properties");
    if is_object {
        require_every_property(schema);
    }
}

fn strict_value(value: &mut Value) {
    if let Value::Object(object) = value {
        strict_object(object);
    }
}

fn require_every_property(schema: &mut JsonObject) {
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut names = Vec::new();
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for (name, property) in properties.iter_mut() {
            if !required.contains(name) {
                make_nullable(property);
            }
            names.push(Value::String(name.clone()));
        }
    }
    schema.insert("required".into(), Value::Array(names));
    schema.insert("additionalProperties".into(), Value::Bool(false));
}

fn make_nullable(property: &mut Value) {
    let Value::Object(object) = property else {
        return;
    };
    match object.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            if t != "null" {
                object.insert("type".into(), json!([t, "null"]));
            }
        }
        Some(Value::Array(types)) => {
            if !types.contains(&json!("null")) {
                types.push(json!("null"));
            }
        }
        _ => {
            if let Some(Value::Array(any_of)) = object.get_mut("anyOf") {
                if !any_of.contains(&json!({"type": "null"})) {
                    any_of.push(json!({"type": "null"}));
                }
                return;
            }
            let inner = std::mem::take(object);
            let description = inner.get("description").cloned();
            let mut wrapped = JsonObject::new();
            if let Some(d) = description {
                wrapped.insert("description".into(), d);
            }
            wrapped.insert(
                "anyOf".into(),
                json!([Value::Object(inner), {"type": "null"}]),
            );
            *object = wrapped;
        }
    }
}

/// Removes the `null` values of properties a schema does not require (the top-level
/// arguments a strict-mode model filled with `null` for "absent").
pub(crate) fn drop_null_optionals(schema: &JsonObject, arguments: &mut Value) {
    let Value::Object(args) = arguments else {
        return;
    };
    let required = schema.get("required").and_then(Value::as_array);
    args.retain(|name, value| {
        !value.is_null() || required.is_some_and(|r| r.iter().any(|n| n == name.as_str()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    struct Numbers {
        a: u8,
        b: i16,
        c: u32,
        d: i64,
        e: usize,
        f: f32,
        g: u128,
        #[schemars(range(min = 1, max = 100))]
        bounded: u32,
        ip: std::net::IpAddr,
        list: Vec<u16>,
    }

    fn properties() -> JsonObject {
        let schema = schema_object::<Numbers>().unwrap();
        schema["properties"].as_object().unwrap().clone()
    }

    #[test]
    fn integer_formats_become_bounds() {
        let p = properties();
        assert_eq!(p["a"], json!({"type":"integer","minimum":0,"maximum":255}));
        assert_eq!(
            p["b"],
            json!({"type":"integer","minimum":-32768,"maximum":32767})
        );
        assert_eq!(
            p["c"],
            json!({"type":"integer","minimum":0,"maximum":4294967295u64})
        );
        assert_eq!(
            p["d"],
            json!({"type":"integer","minimum":i64::MIN,"maximum":i64::MAX})
        );
        assert_eq!(
            p["e"],
            json!({"type":"integer","minimum":0,"maximum":u64::MAX})
        );
        assert_eq!(p["g"], json!({"type":"integer","minimum":0}));
        assert_eq!(
            p["list"]["items"],
            json!({"type":"integer","minimum":0,"maximum":65535})
        );
    }

    #[test]
    fn declared_bounds_win_and_unknown_formats_go() {
        let p = properties();
        assert_eq!(
            p["bounded"],
            json!({"type":"integer","minimum":1,"maximum":100})
        );
        assert_eq!(p["f"], json!({"type":"number"}));
        assert_eq!(p["ip"], json!({"type":"string"}));
    }

    #[test]
    fn standard_formats_stay() {
        #[allow(dead_code)]
        #[derive(JsonSchema)]
        struct Addr {
            v4: std::net::Ipv4Addr,
        }
        let s = schema_object::<Addr>().unwrap();
        assert_eq!(
            s["properties"]["v4"],
            json!({"type":"string","format":"ipv4"})
        );
    }

    #[test]
    fn strict_mode_handles_refs_nesting_and_one_of() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "inner": {"$ref": "#/$defs/Inner"},
                "kind": {"oneOf": [{"const": "a"}, {"const": "b"}], "default": "a"},
                "tags": {"type": "array", "items": {"type": "string", "format": "uri"}, "uniqueItems": true}
            },
            "required": ["tags"],
            "x-fastmcp-wrap-result": true,
            "$defs": {"Inner": {"type": "object", "properties": {"n": {"type": "integer"}}}}
        });
        let strict = openai_strict(schema.as_object().unwrap());
        assert_eq!(
            Value::Object(strict),
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "inner": {"anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}]},
                    "kind": {"anyOf": [{"const": "a"}, {"const": "b"}, {"type": "null"}]},
                    "tags": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["inner", "kind", "tags"],
                "additionalProperties": false,
                "$defs": {"Inner": {"type": "object", "properties": {"n": {"type": ["integer", "null"]}},
                    "required": ["n"], "additionalProperties": false}}
            })
        );
    }

    #[test]
    fn null_optionals_are_dropped_before_validation() {
        let schema = json!({"type":"object","properties":{"a":{},"b":{}},"required":["a"]});
        let mut args = json!({"a": null, "b": null, "c": 1});
        drop_null_optionals(schema.as_object().unwrap(), &mut args);
        assert_eq!(args, json!({"a": null, "c": 1}));
    }
}
