//! Reading a `tools/call`'s params without copying them: the tool's name is borrowed and
//! the arguments object is moved out. Malformed params get the errors reading them into
//! [`crate::types::CallToolParams`] gives.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::types::JsonObject;

/// What a call names: its tool. `_meta`, when present, must be an object.
#[derive(Debug, Deserialize)]
pub(super) struct CallTarget<'a> {
    /// The tool's name.
    #[serde(borrow)]
    pub(super) name: Cow<'a, str>,
    #[serde(rename = "_meta", default)]
    _meta: Option<AnyObject>,
}

impl<'a> CallTarget<'a> {
    /// Reads the target from params whose `arguments` were taken out.
    pub(super) fn read(params: &'a Value) -> Result<Self, serde_json::Error> {
        Self::deserialize(params)
    }
}

/// Any JSON object, checked and skipped without being copied.
#[derive(Debug)]
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = AnyObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // What serde says of a map, so that the error reads as it did.
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyObject)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// The call's `arguments` as an object value: moved as they are, `{}` when absent or null.
pub(super) fn arguments_object(arguments: Option<Value>) -> Result<Value, serde_json::Error> {
    match arguments {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(object @ Value::Object(_)) => Ok(object),
        // Not an object: serde says why, in the words it always has.
        Some(other) => <Option<JsonObject>>::deserialize(other)
            .map(|object| Value::Object(object.unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CallToolParams;
    use serde_json::json;

    /// The error reading into `CallToolParams` gives.
    fn typed_error(params: &Value) -> String {
        serde_json::from_value::<CallToolParams>(params.clone())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn malformed_params_get_the_typed_errors() {
        for params in [
            json!({}),
            json!({"name": 5}),
            json!({"name": "t", "_meta": 5}),
            json!({"name": "t", "_meta": [1]}),
            json!({"name": null}),
        ] {
            let target = CallTarget::read(&params).unwrap_err().to_string();
            assert_eq!(target, typed_error(&params), "{params}");
        }
        for arguments in [json!(5), json!("x"), json!([1])] {
            let params = json!({"name": "t", "arguments": arguments.clone()});
            let ours = arguments_object(Some(arguments)).unwrap_err().to_string();
            assert_eq!(ours, typed_error(&params), "{params}");
        }
    }

    #[test]
    fn the_name_is_borrowed_and_the_arguments_moved() {
        let params = json!({"name": "roll", "_meta": {"progressToken": 1}, "task": {}});
        let target = CallTarget::read(&params).unwrap();
        assert!(matches!(target.name, Cow::Borrowed("roll")));
        assert_eq!(arguments_object(None).unwrap(), json!({}));
        assert_eq!(arguments_object(Some(Value::Null)).unwrap(), json!({}));
        assert_eq!(
            arguments_object(Some(json!({"n": 1}))).unwrap(),
            json!({"n": 1})
        );
    }
}
