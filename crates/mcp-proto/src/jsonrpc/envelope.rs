//! Reading a body straight into JSON-RPC members, without building a map for the envelope.
//!
//! A body is parsed once: the members a message can have (`jsonrpc`, `id`, `method`,
//! `params`, `result`, `error`) are kept as values, every other member is skipped unread, and
//! a repeated member keeps its last value (as a JSON object read into a map would).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The members of one JSON object that JSON-RPC gives a meaning to.
#[derive(Debug, Default)]
pub(super) struct Envelope {
    /// Whether `jsonrpc` is `"2.0"` (the member itself is not kept).
    pub(super) is_version_2: bool,
    pub(super) id: Option<Value>,
    pub(super) method: Option<Value>,
    pub(super) params: Option<Value>,
    pub(super) result: Option<Value>,
    pub(super) error: Option<Value>,
}

impl Envelope {
    /// Takes the members out of an object that was already parsed into a map.
    pub(super) fn from_map(mut map: Map<String, Value>) -> Self {
        Envelope {
            is_version_2: map.remove("jsonrpc").as_ref().and_then(Value::as_str)
                == Some(super::JSONRPC_VERSION),
            id: map.remove("id"),
            method: map.remove("method"),
            params: map.remove("params"),
            result: map.remove("result"),
            error: map.remove("error"),
        }
    }
}

/// One entry of a body: an object's members, or a JSON value that is not an object.
#[derive(Debug)]
pub(super) enum Entry {
    Object(Envelope),
    NotAnObject,
}

/// A whole body: one entry, or a batch (a JSON array) of them.
#[derive(Debug)]
pub(super) enum Body {
    Single(Entry),
    Batch(Vec<Entry>),
}

/// The member names worth keeping.
enum Member {
    Jsonrpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemberVisitor;
        impl Visitor<'_> for MemberVisitor {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
                Ok(match name {
                    "jsonrpc" => Member::Jsonrpc,
                    "id" => Member::Id,
                    "method" => Member::Method,
                    "params" => Member::Params,
                    "result" => Member::Result,
                    "error" => Member::Error,
                    _ => Member::Other,
                })
            }
        }
        deserializer.deserialize_str(MemberVisitor)
    }
}

/// Reads an object's members into an [`Envelope`].
fn read_members<'de, A: MapAccess<'de>>(mut map: A) -> Result<Envelope, A::Error> {
    let mut envelope = Envelope::default();
    while let Some(member) = map.next_key::<Member>()? {
        let slot = match member {
            Member::Jsonrpc => {
                envelope.is_version_2 = map.next_value::<IsVersion2>()?.0;
                continue;
            }
            Member::Id => &mut envelope.id,
            Member::Method => &mut envelope.method,
            Member::Params => &mut envelope.params,
            Member::Result => &mut envelope.result,
            Member::Error => &mut envelope.error,
            Member::Other => {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
        };
        *slot = Some(map.next_value::<Value>()?);
    }
    Ok(envelope)
}

/// Visits any JSON value; an object becomes an [`Envelope`], anything else is skipped.
struct EntryVisitor;

/// The `visit_*` methods of JSON's scalars, each answering `$value`.
macro_rules! visit_scalars {
    ($out:ty => $value:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
            Ok($value)
        }
        visit_scalars!($out => $value; visit_bool: bool, visit_i64: i64, visit_u64: u64,
            visit_f64: f64, visit_str: &str);
    };
    ($out:ty => $value:expr; $($method:ident: $ty:ty),*) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<$out, E> {
            Ok($value)
        })*
    };
}

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
        read_members(map).map(Entry::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Entry::NotAnObject)
    }
    visit_scalars!(Entry => Entry::NotAnObject);
}

/// Whether a value is the string `"2.0"`, read without keeping it.
struct IsVersion2(bool);

impl<'de> Deserialize<'de> for IsVersion2 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl<'de> Visitor<'de> for VersionVisitor {
            type Value = IsVersion2;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IsVersion2, E> {
                Ok(IsVersion2(v == super::JSONRPC_VERSION))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IsVersion2, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(IsVersion2(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IsVersion2, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IsVersion2(false))
            }
            fn visit_unit<E: de::Error>(self) -> Result<IsVersion2, E> {
                Ok(IsVersion2(false))
            }
            visit_scalars!(IsVersion2 => IsVersion2(false); visit_bool: bool, visit_i64: i64,
                visit_u64: u64, visit_f64: f64);
        }
        deserializer.deserialize_any(VersionVisitor)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EntryVisitor)
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = Body;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
                let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = seq.next_element::<Entry>()? {
                    entries.push(entry);
                }
                Ok(Body::Batch(entries))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Body, A::Error> {
                read_members(map).map(|e| Body::Single(Entry::Object(e)))
            }
            visit_scalars!(Body => Body::Single(Entry::NotAnObject));
        }
        deserializer.deserialize_any(BodyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_of_a_repeated_member_and_skips_the_others() {
        let body: Body =
            serde_json::from_str(r#"{"id":1,"x":{"deep":[1,2]},"id":"two","method":"m"}"#).unwrap();
        let Body::Single(Entry::Object(envelope)) = body else {
            panic!("not an object: {body:?}")
        };
        assert_eq!(envelope.id, Some(Value::from("two")));
        assert_eq!(envelope.method, Some(Value::from("m")));
        assert_eq!(envelope.params, None);
    }

    #[test]
    fn only_the_string_2_0_is_the_version() {
        for (text, expected) in [
            (r#"{"jsonrpc":"2.0"}"#, true),
            (r#"{"jsonrpc":"2\u002e0"}"#, true),
            (r#"{"jsonrpc":"1.0"}"#, false),
            (r#"{"jsonrpc":2.0}"#, false),
            (r#"{"jsonrpc":null}"#, false),
            (r#"{"jsonrpc":{"v":["2.0"]},"id":1}"#, false),
            (r#"{"jsonrpc":["2.0"]}"#, false),
            (r#"{"jsonrpc":"1.0","jsonrpc":"2.0"}"#, true),
            (r#"{"id":1}"#, false),
        ] {
            let body: Body = serde_json::from_str(text).unwrap();
            let Body::Single(Entry::Object(envelope)) = body else {
                panic!("not an object: {text}")
            };
            assert_eq!(envelope.is_version_2, expected, "{text}");
            let map: Map<String, Value> = serde_json::from_str(text).unwrap();
            assert_eq!(Envelope::from_map(map).is_version_2, expected, "{text}");
        }
    }

    #[test]
    fn a_null_member_is_present() {
        let body: Body = serde_json::from_str(r#"{"id":null}"#).unwrap();
        let Body::Single(Entry::Object(envelope)) = body else {
            panic!("not an object: {body:?}")
        };
        assert_eq!(envelope.id, Some(Value::Null));
    }

    #[test]
    fn scalars_and_nested_arrays_are_not_objects() {
        for text in ["1", "-1", "1.5", "true", "null", r#""s""#] {
            let body: Body = serde_json::from_str(text).unwrap();
            assert!(matches!(body, Body::Single(Entry::NotAnObject)), "{text}");
        }
        let body: Body = serde_json::from_str(r#"[[1],{"id":1},3]"#).unwrap();
        let Body::Batch(entries) = body else {
            panic!("not a batch")
        };
        assert!(matches!(entries[0], Entry::NotAnObject));
        assert!(matches!(entries[1], Entry::Object(_)));
        assert!(matches!(entries[2], Entry::NotAnObject));
    }
}
