//! JSON-RPC 2.0 wire types: requests, notifications, responses and errors.
//!
//! Ids are numbers or strings and are echoed back exactly as received (a number keeps its
//! textual form through [`serde_json::Number`]). A `null` id is not a request id: a message
//! carrying one is rejected with `-32600`.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

mod envelope;
use envelope::{Body, Entry, Envelope};

/// The JSON-RPC version string every message carries.
pub const JSONRPC_VERSION: &str = "2.0";

/// Standard JSON-RPC and MCP error codes.
pub mod code {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// MCP (up to 2025-11-25): the requested resource does not exist.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// MCP 2025-11-25: the request needs a URL-mode elicitation first.
    pub const URL_ELICITATION_REQUIRED: i64 = -32042;
    /// MCP 2026-07-28: `Mcp-Method`/`Mcp-Name` headers disagree with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// MCP 2026-07-28: the client lacks a capability the request needs.
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    /// MCP 2026-07-28: the requested protocol version is not supported.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    /// Implementation-defined: the request timed out on the server.
    pub const REQUEST_TIMEOUT: i64 = -32001;
}

/// A request id: a number or a string, never `null`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
// Not `#[non_exhaustive]`: JSON-RPC 2.0 allows exactly a string or a number, and
// callers should match all of them.
pub enum RequestId {
    /// A numeric id, kept in its exact textual form.
    Number(NumberId),
    /// A string id.
    String(String),
}

/// A numeric id kept as received so that it is echoed exactly. Two ids are equal, and
/// ordered, as their JSON texts are.
#[derive(Debug, Clone)]
pub struct NumberId(serde_json::Number);

impl NumberId {
    /// What identifies the number's text: its kind and its bits (a float's text is the
    /// shortest that reads back to its bits, so equal bits are equal texts).
    fn key(&self) -> (u8, u64) {
        let n = &self.0;
        match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => (0, u),
            (None, Some(i)) => (1, i.cast_unsigned()),
            (None, None) => (2, n.as_f64().map_or(0, f64::to_bits)),
        }
    }
}

impl PartialEq for NumberId {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for NumberId {}

impl std::hash::Hash for NumberId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for NumberId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NumberId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self == other {
            return std::cmp::Ordering::Equal;
        }
        self.0.to_string().cmp(&other.0.to_string())
    }
}

impl From<i64> for RequestId {
    fn from(n: i64) -> Self {
        RequestId::Number(NumberId(n.into()))
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId::String(s.to_owned())
    }
}

impl From<String> for RequestId {
    fn from(s: String) -> Self {
        RequestId::String(s)
    }
}

impl RequestId {
    /// Converts the id to its JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            RequestId::Number(n) => Value::Number(n.0.clone()),
            RequestId::String(s) => Value::String(s.clone()),
        }
    }

    /// Reads an id from a JSON value; `None` for anything but a number or a string.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => Some(RequestId::Number(NumberId(n.clone()))),
            Value::String(s) => Some(RequestId::String(s.clone())),
            _ => None,
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{}", n.0),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RequestId::Number(n) => n.0.serialize(serializer),
            RequestId::String(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        RequestId::from_value(&value)
            .ok_or_else(|| D::Error::custom("request id must be a string or a number"))
    }
}

/// A request: a method call that expects a response.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The id the response will carry.
    pub id: RequestId,
    /// The method name.
    pub method: String,
    /// The parameters, when present.
    pub params: Option<Value>,
}

/// A notification: a method call without an id, answered by nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The method name.
    pub method: String,
    /// The parameters, when present.
    pub params: Option<Value>,
}

/// The error object of an error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The error code (see [`code`]).
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Extra information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// Builds an error object.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Attaches `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// `-32700` parse error.
    pub fn parse_error(detail: impl fmt::Display) -> Self {
        Self::new(code::PARSE_ERROR, format!("Parse error: {detail}"))
    }

    /// `-32600` invalid request.
    pub fn invalid_request(detail: impl fmt::Display) -> Self {
        Self::new(code::INVALID_REQUEST, format!("Invalid request: {detail}"))
    }

    /// `-32601` method not found.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            code::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )
    }

    /// `-32602` invalid params.
    pub fn invalid_params(detail: impl fmt::Display) -> Self {
        Self::new(code::INVALID_PARAMS, format!("Invalid params: {detail}"))
    }

    /// `-32603` internal error.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::new(code::INTERNAL_ERROR, format!("Internal error: {detail}"))
    }
}

/// A response: the result of a request or its error. `id` is `None` only for errors about a
/// message whose id could not be read (it is then serialized as `null`).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id of the request answered.
    pub id: Option<RequestId>,
    /// The result or the error.
    pub outcome: Result<Value, ErrorObject>,
}

impl Response {
    /// A successful response.
    pub fn result(id: RequestId, result: Value) -> Self {
        Self {
            id: Some(id),
            outcome: Ok(result),
        }
    }

    /// An error response.
    pub fn error(id: Option<RequestId>, error: ErrorObject) -> Self {
        Self {
            id,
            outcome: Err(error),
        }
    }
}

/// Any JSON-RPC 2.0 message.
#[derive(Debug, Clone, PartialEq)]
// Not `#[non_exhaustive]`: JSON-RPC 2.0 (a frozen spec) has exactly these three kinds of message, and
// callers should match all of them.
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A response (result or error).
    Response(Response),
}

impl Message {
    /// Builds a request message.
    pub fn request(
        id: impl Into<RequestId>,
        method: impl Into<String>,
        params: Option<Value>,
    ) -> Self {
        Message::Request(Request {
            id: id.into(),
            method: method.into(),
            params,
        })
    }

    /// Builds a notification message.
    pub fn notification(method: impl Into<String>, params: Option<Value>) -> Self {
        Message::Notification(Notification {
            method: method.into(),
            params,
        })
    }

    /// The method name of a request or a notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request(r) => Some(&r.method),
            Message::Notification(n) => Some(&n.method),
            Message::Response(_) => None,
        }
    }

    /// Serializes to compact JSON text.
    pub fn to_json(&self) -> String {
        // Serializing a Message cannot fail: every field is plain JSON.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Serializes to compact JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads one message from a JSON value, or says why it is not a valid JSON-RPC message.
    /// The error carries the id when one could be read, so the answer can echo it.
    pub fn from_value(value: Value) -> Result<Message, Box<Response>> {
        match value {
            Value::Object(map) => Message::from_entry(Entry::Object(Envelope::from_map(map))),
            _ => Message::from_entry(Entry::NotAnObject),
        }
    }

    /// Checks an entry's members and builds the message they describe.
    fn from_entry(entry: Entry) -> Result<Message, Box<Response>> {
        let Entry::Object(envelope) = entry else {
            return Err(Box::new(Response::error(
                None,
                ErrorObject::invalid_request("a JSON-RPC message must be an object"),
            )));
        };
        let Envelope {
            is_version_2,
            id: raw_id,
            method,
            params,
            result,
            error,
        } = envelope;
        let id = raw_id.as_ref().and_then(RequestId::from_value);
        let fail = |detail: &str| {
            Err(Box::new(Response::error(
                id.clone(),
                ErrorObject::invalid_request(detail),
            )))
        };
        if !is_version_2 {
            return fail("\"jsonrpc\" must be \"2.0\"");
        }
        // `null` is only allowed on an error response about an unreadable request.
        let is_error_response = method.is_none() && error.is_some();
        if let Some(raw) = &raw_id
            && id.is_none()
            && !(raw.is_null() && is_error_response)
        {
            let detail = if raw.is_null() {
                "\"id\" must not be null"
            } else {
                "\"id\" must be a string or a number"
            };
            return fail(detail);
        }
        if let Some(method) = method {
            let Value::String(method) = method else {
                return fail("\"method\" must be a string");
            };
            let params = match params {
                None => None,
                Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
                Some(_) => return fail("\"params\" must be an object or an array"),
            };
            return Ok(match id {
                Some(id) => Message::Request(Request { id, method, params }),
                None => Message::Notification(Notification { method, params }),
            });
        }
        match (result, error) {
            (Some(result), None) => match id {
                Some(id) => Ok(Message::Response(Response::result(id, result))),
                None => fail("a result response needs an \"id\""),
            },
            (None, Some(error)) => match serde_json::from_value::<ErrorObject>(error) {
                Ok(error) => Ok(Message::Response(Response::error(id, error))),
                Err(_) => fail("\"error\" must have an integer \"code\" and a string \"message\""),
            },
            (Some(_), Some(_)) => fail("a response has either \"result\" or \"error\", not both"),
            (None, None) => fail("a message needs \"method\", \"result\" or \"error\""),
        }
    }
}

impl Serialize for Message {
    // Written straight to the serializer: building a `Map` first would deep-clone `params`
    // and `result` for every message.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("jsonrpc", JSONRPC_VERSION)?;
        match self {
            Message::Request(r) => {
                map.serialize_entry("id", &r.id)?;
                map.serialize_entry("method", &r.method)?;
                if let Some(p) = &r.params {
                    map.serialize_entry("params", p)?;
                }
            }
            Message::Notification(n) => {
                map.serialize_entry("method", &n.method)?;
                if let Some(p) = &n.params {
                    map.serialize_entry("params", p)?;
                }
            }
            Message::Response(r) => {
                map.serialize_entry("id", &r.id)?;
                match &r.outcome {
                    Ok(result) => map.serialize_entry("result", result)?,
                    Err(e) => map.serialize_entry("error", e)?,
                }
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entry = Entry::deserialize(deserializer)?;
        Message::from_entry(entry).map_err(|e| match e.outcome {
            Err(err) => D::Error::custom(err.message),
            Ok(_) => D::Error::custom("invalid JSON-RPC message"),
        })
    }
}

/// What one HTTP body or SSE `data` field decoded to.
#[derive(Debug, Clone, PartialEq)]
// Not `#[non_exhaustive]`: a JSON-RPC 2.0 body is exactly one message or a batch, and
// callers should match all of them.
pub enum Decoded {
    /// A single message.
    Single(Message),
    /// A batch (JSON array): each entry is a message or the error answer for it.
    Batch(Vec<Result<Message, Response>>),
}

/// Decodes raw bytes into one message or a batch.
///
/// Invalid JSON yields a `-32700` response with a `null` id; a JSON value that is not a
/// message yields `-32600` (echoing the id when it could be read); an empty batch is `-32600`.
/// Whether a batch is allowed depends on the protocol version and is decided by the caller
/// (see [`crate::ProtocolVersion::allows_batches`]).
pub fn decode(bytes: &[u8]) -> Result<Decoded, Response> {
    let body: Body = serde_json::from_slice(bytes)
        .map_err(|e| Response::error(None, ErrorObject::parse_error(e)))?;
    match body {
        Body::Batch(entries) => {
            if entries.is_empty() {
                return Err(Response::error(
                    None,
                    ErrorObject::invalid_request("an empty batch is not a request"),
                ));
            }
            Ok(Decoded::Batch(
                entries
                    .into_iter()
                    .map(|entry| Message::from_entry(entry).map_err(|e| *e))
                    .collect(),
            ))
        }
        Body::Single(entry) => Message::from_entry(entry)
            .map(Decoded::Single)
            .map_err(|e| *e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err_of(bytes: &[u8]) -> Response {
        decode(bytes).unwrap_err()
    }

    #[test]
    fn parse_error_has_null_id_and_code() {
        let r = err_of(b"{not json");
        assert_eq!(r.id, None);
        assert_eq!(r.outcome.unwrap_err().code, code::PARSE_ERROR);
        let m = Message::Response(err_of(b"{"));
        let v: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["error"]["code"], json!(-32700));
    }

    #[test]
    fn invalid_request_echoes_id() {
        let r = err_of(br#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#);
        assert_eq!(r.id, Some(RequestId::from(7)));
        assert_eq!(r.outcome.unwrap_err().code, code::INVALID_REQUEST);
        let r = err_of(br#"{"jsonrpc":"2.0","id":"a","method":5}"#);
        assert_eq!(r.id, Some(RequestId::from("a")));
        assert_eq!(r.outcome.unwrap_err().code, code::INVALID_REQUEST);
    }

    #[test]
    fn null_id_is_invalid_request() {
        let r = err_of(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#);
        assert_eq!(r.id, None);
        let e = r.outcome.unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        assert!(e.message.contains("null"), "{}", e.message);
    }

    #[test]
    fn non_object_and_empty_batch_are_invalid() {
        assert_eq!(
            err_of(b"42").outcome.unwrap_err().code,
            code::INVALID_REQUEST
        );
        assert_eq!(
            err_of(b"[]").outcome.unwrap_err().code,
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn ids_are_echoed_exactly() {
        for raw in ["1", "-3", "12345678901234567890", "1.5", "\"x-1\"", "\"\""] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{raw},"method":"ping"}}"#);
            let Decoded::Single(Message::Request(req)) = decode(text.as_bytes()).unwrap() else {
                panic!("not a request")
            };
            let resp = Message::Response(Response::result(req.id, json!({})));
            let out = resp.to_json();
            assert!(
                out.contains(&format!(r#""id":{raw}"#)),
                "{out} lacks id {raw}"
            );
        }
    }

    #[test]
    fn messages_round_trip() {
        let msgs = [
            Message::request(1, "tools/list", Some(json!({"cursor": "2"}))),
            Message::request("abc", "ping", None),
            Message::notification("notifications/initialized", None),
            Message::Response(Response::result(RequestId::from(3), json!({"x": 1}))),
            Message::Response(Response::error(
                Some(RequestId::from("q")),
                ErrorObject::method_not_found("nope").with_data(json!({"m": 1})),
            )),
            Message::Response(Response::error(None, ErrorObject::parse_error("eof"))),
        ];
        for m in msgs {
            let text = m.to_json();
            let back: Message = serde_json::from_str(&text).unwrap();
            assert_eq!(back, m, "{text}");
        }
    }

    #[test]
    fn batch_keeps_per_entry_errors() {
        let Decoded::Batch(items) =
            decode(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"foo":1}]"#).unwrap()
        else {
            panic!("not a batch")
        };
        assert!(items[0].is_ok());
        assert_eq!(
            items[1]
                .as_ref()
                .unwrap_err()
                .outcome
                .as_ref()
                .unwrap_err()
                .code,
            code::INVALID_REQUEST
        );
    }
}
