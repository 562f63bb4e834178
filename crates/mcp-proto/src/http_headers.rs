//! The HTTP headers a 2026-07-28 request carries besides its body: `Mcp-Method`, `Mcp-Name`
//! and the `Mcp-Param-*` headers mirroring tool arguments marked with `x-mcp-header`.

use base64::Engine;
use serde_json::Value;

use crate::jsonrpc::{ErrorObject, code};

/// The header naming a stateless request's method.
pub const METHOD_HEADER: &str = "Mcp-Method";
/// The header naming the tool, prompt or resource of a stateless request.
pub const NAME_HEADER: &str = "Mcp-Name";
/// Prefix of the headers mirroring tool arguments marked with `x-mcp-header`.
pub const PARAM_HEADER_PREFIX: &str = "Mcp-Param-";

/// Writes a header value as is when it is plain visible ASCII (inner spaces allowed), else
/// in the `=?base64?<UTF-8 bytes in base64>?=` form (non-ASCII, control characters, leading
/// or trailing whitespace).
pub fn encode_header_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    if plain {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

/// The `Mcp-Method` and (for `tools/call`, `prompts/get`, `resources/read`) `Mcp-Name`
/// headers of a stateless request.
pub fn standard_headers(method: &str, params: Option<&Value>) -> Vec<(&'static str, String)> {
    let mut headers = vec![(METHOD_HEADER, method.to_owned())];
    let field = match method {
        crate::types::method::TOOLS_CALL | crate::types::method::PROMPTS_GET => Some("name"),
        crate::types::method::RESOURCES_READ => Some("uri"),
        crate::task::TASKS_GET | crate::task::TASKS_UPDATE | crate::task::TASKS_CANCEL => {
            Some("taskId")
        }
        _ => None,
    };
    if let Some(name) = field.and_then(|f| params?.get(f)).and_then(Value::as_str) {
        headers.push((NAME_HEADER, encode_header_value(name)));
    }
    headers
}

/// The tool arguments a tool wants mirrored in headers: `(argument, header name)` for every
/// input property with an `x-mcp-header` annotation. An annotation that is empty, not an HTTP
/// token, on a property that is not a string, integer or boolean (`number` is not allowed),
/// or repeated (ignoring case) makes the tool unusable:
/// the error says why, and clients must leave such a tool out.
pub fn tool_header_params(tool: &crate::types::Tool) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let Some(props) = tool
        .input_schema
        .get("properties")
        .and_then(Value::as_object)
    else {
        return Ok(out);
    };
    for (arg, schema) in props {
        let Some(annotation) = schema.get("x-mcp-header") else {
            continue;
        };
        let name = annotation
            .as_str()
            .ok_or_else(|| format!("x-mcp-header of {arg:?} is not a string"))?;
        let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(format!(
                "x-mcp-header {name:?} of {arg:?} is not a valid header name"
            ));
        }
        let primitive = match schema.get("type") {
            Some(Value::String(t)) => matches!(t.as_str(), "string" | "integer" | "boolean"),
            _ => false,
        };
        if !primitive {
            return Err(format!(
                "x-mcp-header on {arg:?}, which is not a primitive type"
            ));
        }
        if out.iter().any(|(_, h)| h.eq_ignore_ascii_case(name)) {
            return Err(format!("x-mcp-header {name:?} is used twice"));
        }
        out.push((arg.clone(), name.to_owned()));
    }
    Ok(out)
}

/// The `Mcp-Param-*` headers of a `tools/call` with these arguments (null and absent
/// arguments get no header; strings, numbers and booleans their text, encoded as
/// [`encode_header_value`] says).
pub fn param_headers(tool: &crate::types::Tool, arguments: &Value) -> Vec<(String, String)> {
    let Ok(params) = tool_header_params(tool) else {
        return Vec::new();
    };
    params
        .into_iter()
        .filter_map(|(arg, header)| {
            let text = match arguments.get(&arg)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((
                format!("{PARAM_HEADER_PREFIX}{header}"),
                encode_header_value(&text),
            ))
        })
        .collect()
}

/// The `Mcp-Param-*` headers of a 2026-07-28 HTTP request (names lowercased, values as
/// sent), put in the request's extensions by the transport so the server can check them
/// against the tool's `x-mcp-header` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamHeaders(pub Vec<(String, String)>);

/// Decodes a header value that may use the `=?base64?...?=` form (strict Base64 with
/// padding); `None` when the Base64 is invalid or not UTF-8. A value missing the prefix or
/// the suffix is taken literally.
pub fn decode_header_value(raw: &str) -> Option<String> {
    let value = raw.trim_matches([' ', '\t']);
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_owned()),
    }
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers against its arguments: every annotated
/// argument with a value needs its header, equal to the value once decoded; a header for an
/// argument without a value is a mismatch too. The error is the `-32020` to answer.
pub(crate) fn check_param_headers(
    tool: &crate::types::Tool,
    arguments: &Value,
    headers: &ParamHeaders,
) -> Result<(), ErrorObject> {
    let Ok(params) = tool_header_params(tool) else {
        return Ok(());
    };
    for (arg, header) in params {
        let name = format!("{PARAM_HEADER_PREFIX}{header}").to_ascii_lowercase();
        let sent = headers.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        let expected = match arguments.get(&arg) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        };
        let mismatch = |detail: String| {
            ErrorObject::new(code::HEADER_MISMATCH, format!("Header mismatch: {detail}"))
        };
        match (expected, sent) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(mismatch(format!(
                    "missing {PARAM_HEADER_PREFIX}{header} header"
                )));
            }
            (None, Some(_)) => {
                return Err(mismatch(format!(
                    "{PARAM_HEADER_PREFIX}{header} header sent for an argument without a value"
                )));
            }
            (Some(expected), Some(sent)) => {
                let decoded = decode_header_value(sent).ok_or_else(|| {
                    mismatch(format!(
                        "{PARAM_HEADER_PREFIX}{header} header has invalid Base64"
                    ))
                })?;
                if decoded != expected {
                    return Err(mismatch(format!(
                        "{PARAM_HEADER_PREFIX}{header} header value does not match the argument {arg:?}"
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn header_values_are_plain_or_base64() {
        assert_eq!(encode_header_value("us west 1"), "us west 1");
        assert_eq!(encode_header_value(""), "");
        assert_eq!(encode_header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_header_value("\tindented"), "=?base64?CWluZGVudGVk?=");
    }

    #[test]
    fn tool_header_annotations_are_checked_and_mirrored() {
        let tool = |props: Value| crate::types::Tool {
            name: "t".into(),
            title: None,
            description: None,
            input_schema: serde_json::from_value(json!({"type":"object","properties": props}))
                .unwrap(),
            output_schema: None,
            annotations: None,
            icons: None,
            meta: None,
            execution: None,
        };
        let good = tool(
            json!({"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"integer","x-mcp-header":"N"},"q":{"type":"string"}}),
        );
        let headers = param_headers(&good, &json!({"region":"us-west1","n":42,"q":"x"}));
        assert!(headers.contains(&("Mcp-Param-Region".into(), "us-west1".into())));
        assert!(headers.contains(&("Mcp-Param-N".into(), "42".into())));
        assert_eq!(headers.len(), 2);
        assert!(param_headers(&good, &json!({"region":null})).is_empty());
        for bad in [
            json!({"a":{"type":"string","x-mcp-header":""}}),
            json!({"a":{"type":"object","x-mcp-header":"A"}}),
            json!({"a":{"type":"number","x-mcp-header":"A"}}),
            json!({"a":{"type":"string","x-mcp-header":"My Region"}}),
            json!({"a":{"type":"string","x-mcp-header":"Région"}}),
            json!({"a":{"type":"string","x-mcp-header":"A"},"b":{"type":"string","x-mcp-header":"a"}}),
        ] {
            assert!(tool_header_params(&tool(bad.clone())).is_err(), "{bad}");
        }
        assert_eq!(
            standard_headers("tools/call", Some(&json!({"name":"t"}))),
            vec![
                (METHOD_HEADER, "tools/call".to_owned()),
                (NAME_HEADER, "t".to_owned())
            ]
        );
    }
}
