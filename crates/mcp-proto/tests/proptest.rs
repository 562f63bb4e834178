//! Property tests: arbitrary bytes and arbitrary JSON fed to `decode` and the server never
//! panic, and always yield a valid response, a valid error, or nothing (for notifications and
//! responses).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, OnceLock};

use common::*;
use mcp_proto::{Decoded, McpServer, Message, ProtocolVersion, Response, Session, decode};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn server() -> &'static McpServer {
    static FIXTURE: OnceLock<McpServer> = OnceLock::new();
    FIXTURE.get_or_init(|| fixture().server)
}

/// A fresh session, initialized at `version` unless `None`.
fn session(version: Option<ProtocolVersion>) -> Arc<Session> {
    let s = new_session();
    if let Some(v) = version {
        initialize(server(), &s, v);
    }
    s
}

/// Checks a serialized response: JSON-RPC 2.0, an id that is a string, a number or (for an
/// error about an unreadable message) null, and exactly one of an object `result` or an
/// `error` with an integer code and a string message. Ids of MCP requests are validated
/// against the version's schema when they are integers or strings.
fn assert_valid_response(v: ProtocolVersion, response: &Value, expected_id: Option<&Value>) {
    let obj = response.as_object().expect("a response is an object");
    assert_eq!(obj.get("jsonrpc"), Some(&json!("2.0")), "{response}");
    let id = obj.get("id").expect("a response has an id");
    assert!(
        id.is_string() || id.is_number() || id.is_null(),
        "{response}"
    );
    if let Some(expected) = expected_id {
        assert_eq!(id, expected, "{response}");
    }
    match (obj.get("result"), obj.get("error")) {
        (Some(result), None) => {
            assert!(result.is_object(), "{response}");
            if id.is_string() || id.is_i64() || id.is_u64() {
                assert_schema_loose(v, result_response_def(v), response);
            }
        }
        (None, Some(error)) => {
            let code = error["code"].as_i64().expect("integer code");
            assert!(
                [-32700, -32600, -32601, -32602, -32603].contains(&code),
                "unexpected code {code}: {response}"
            );
            assert!(error["message"].is_string(), "{response}");
            if id.is_string() || id.is_i64() || id.is_u64() {
                assert_schema(v, error_response_def(v), response);
            }
        }
        _ => panic!("neither result nor error: {response}"),
    }
    assert_eq!(obj.len(), 3, "extra members: {response}");
}

/// Feeds raw bytes through `decode` and the server, and checks every answer.
fn check_bytes(version: Option<ProtocolVersion>, bytes: &[u8]) {
    let v = version.unwrap_or(ProtocolVersion::HTTP_DEFAULT);
    let session = session(version);
    let to_value =
        |r: Response| -> Value { serde_json::from_slice(&Message::Response(r).to_vec()).unwrap() };
    match decode(bytes) {
        Err(error) => {
            let code = error.outcome.as_ref().unwrap_err().code;
            assert!(code == -32700 || code == -32600, "{code}");
            assert_valid_response(v, &to_value(error), None);
        }
        Ok(Decoded::Single(message)) => check_message(v, &session, message),
        Ok(Decoded::Batch(items)) => {
            assert!(!items.is_empty());
            for item in items {
                match item {
                    Ok(message) => check_message(v, &session, message),
                    Err(error) => {
                        assert_eq!(error.outcome.as_ref().unwrap_err().code, -32600);
                        assert_valid_response(v, &to_value(error), None);
                    }
                }
            }
        }
    }
}

fn check_message(v: ProtocolVersion, session: &Arc<Session>, message: Message) {
    // The message re-serializes to JSON that decodes to the same kind of message with the
    // same id and method (params may differ in the last digit of a float: serde_json's parser
    // is not correctly rounded without its `float_roundtrip` feature).
    let Decoded::Single(again) = decode(&message.to_vec()).unwrap() else {
        panic!("a single message re-decoded as a batch")
    };
    match (&again, &message) {
        (Message::Request(a), Message::Request(b)) => {
            assert_eq!((&a.id, &a.method), (&b.id, &b.method));
        }
        (Message::Notification(a), Message::Notification(b)) => assert_eq!(a.method, b.method),
        (Message::Response(a), Message::Response(b)) => assert_eq!(a.id, b.id),
        _ => panic!("{message:?} re-decoded as {again:?}"),
    }
    let expected_id = match &message {
        Message::Request(r) => Some(r.id.to_value()),
        _ => None,
    };
    let reply = handle(server(), session, message);
    match expected_id {
        Some(id) => {
            let reply = reply.expect("a request gets a response");
            // initialize may have moved the session to another version.
            let v = session.protocol_version().unwrap_or(v);
            assert_valid_response(v, &reply, Some(&id));
        }
        None => assert_eq!(reply, None, "a notification or response got an answer"),
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_version() -> impl Strategy<Value = Option<ProtocolVersion>> {
    prop_oneof![
        Just(None),
        prop::sample::select(ProtocolVersion::STATEFUL.to_vec()).prop_map(Some),
    ]
}

/// Messages that look like MCP: a mix of real and made-up methods, ids of every kind, and
/// params that are sometimes right and often not.
fn arb_mcp_message() -> impl Strategy<Value = Value> {
    let method = prop_oneof![
        Just("initialize".to_owned()),
        Just("ping".to_owned()),
        Just("tools/list".to_owned()),
        Just("tools/call".to_owned()),
        Just("logging/setLevel".to_owned()),
        Just("notifications/initialized".to_owned()),
        Just("notifications/cancelled".to_owned()),
        Just("resources/list".to_owned()),
        "[a-z/]{0,16}",
    ];
    let id = prop_oneof![
        Just(None),
        any::<i64>().prop_map(|n| Some(json!(n))),
        ".{0,6}".prop_map(|s| Some(json!(s))),
        arb_json().prop_map(Some),
    ];
    let tool_args = prop_oneof![
        (0u64..200).prop_map(|n| json!({ "n_dice": n })),
        arb_json().prop_map(|v| json!({ "n_dice": v })),
        prop::collection::vec(any::<i64>(), 0..5).prop_map(|values| json!({ "values": values })),
        arb_json(),
    ];
    let tool_name = prop_oneof![
        Just("roll_dice"),
        Just("media"),
        Just("sum"),
        Just("explode"),
        Just("nope"),
    ];
    let params = prop_oneof![
        Just(None),
        (tool_name, tool_args)
            .prop_map(|(name, arguments)| Some(json!({"name": name, "arguments": arguments}))),
        prop::sample::select(vec!["debug", "info", "bogus"])
            .prop_map(|level| Some(json!({ "level": level }))),
        ".{0,4}".prop_map(|c| Some(json!({ "cursor": c }))),
        prop::sample::select(vec!["2024-11-05", "2025-06-18", "2025-11-25", "1999"])
            .prop_map(|pv| Some(json!({"protocolVersion": pv, "capabilities": {},
                                     "clientInfo": {"name": "p", "version": "1"}}))),
        arb_json().prop_map(Some),
    ];
    (
        prop::sample::select(vec![Some(json!("2.0")), None, Some(json!("1.0"))]),
        id,
        prop::option::of(method),
        params,
    )
        .prop_map(|(jsonrpc, id, method, params)| {
            let mut m = Map::new();
            if let Some(j) = jsonrpc {
                m.insert("jsonrpc".into(), j);
            }
            if let Some(id) = id {
                m.insert("id".into(), id);
            }
            if let Some(method) = method {
                m.insert("method".into(), json!(method));
            }
            if let Some(p) = params {
                m.insert("params".into(), p);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(version in arb_version(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_bytes(version, &bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(version in arb_version(), value in arb_json()) {
        check_bytes(version, &serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn mcp_like_messages_get_valid_answers(version in arb_version(), value in arb_mcp_message()) {
        check_bytes(version, &serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn mcp_like_batches_get_valid_answers(
        version in arb_version(),
        values in prop::collection::vec(arb_mcp_message(), 1..5),
    ) {
        check_bytes(version, &serde_json::to_vec(&values).unwrap());
    }

    #[test]
    fn text_that_is_almost_json_never_panics(
        version in arb_version(),
        value in arb_mcp_message(),
        cut in any::<prop::sample::Index>(),
    ) {
        let text = serde_json::to_vec(&value).unwrap();
        let cut = cut.index(text.len() + 1);
        check_bytes(version, &text[..cut]);
    }
}
