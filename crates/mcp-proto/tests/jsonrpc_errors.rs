//! One test per JSON-RPC error path, bytes in and bytes out the way a transport drives the
//! server (`decode`, then `McpService::handle`), asserting the code and the id, in every
//! protocol version negotiated with `initialize`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use mcp_proto::{Decoded, McpServer, Message, ProtocolVersion, Session, decode};
use serde_json::{Value, json};

/// A fixture plus one initialized session per stateful version.
fn sessions() -> (Fixture, Vec<(ProtocolVersion, Arc<Session>)>) {
    let fx = fixture();
    let sessions = ProtocolVersion::STATEFUL
        .into_iter()
        .map(|v| {
            let s = new_session();
            initialize(&fx.server, &s, v);
            (v, s)
        })
        .collect();
    (fx, sessions)
}

/// Sends `bytes` in every version and returns the single response of each.
fn each_version(bytes: &[u8], check: impl Fn(ProtocolVersion, &Value)) {
    let (fx, sessions) = sessions();
    for (v, session) in sessions {
        let responses = handle_bytes(&fx.server, &session, bytes);
        assert_eq!(
            responses.len(),
            1,
            "{v}: {}: {responses:?}",
            String::from_utf8_lossy(bytes)
        );
        check(v, &responses[0]);
    }
}

/// Asserts an error response with `code` and `id` (`Value::Null` for "no id could be read"),
/// valid against the version's schema. An error about an unreadable id carries `"id": null` as
/// JSON-RPC 2.0 requires; the MCP schemas do not allow a null id, so for those only the error
/// object is validated.
fn assert_error(v: ProtocolVersion, response: &Value, code: i64, id: Value) {
    assert_eq!(error_code(response), code, "{v}: {response}");
    assert_eq!(response.get("id"), Some(&id), "{v}: {response}");
    assert_eq!(response["jsonrpc"], "2.0");
    assert!(response.get("result").is_none());
    let message = response["error"]["message"].as_str().unwrap();
    assert!(!message.is_empty());
    if id.is_null() {
        let error_def = format!("{}/properties/error", error_response_def(v));
        assert_schema(v, &error_def, &response["error"]);
    } else {
        assert_schema(v, error_response_def(v), response);
    }
}

// ---------------------------------------------------------------------------------------------
// -32700
// ---------------------------------------------------------------------------------------------

#[test]
fn parse_error_is_32700_with_null_id() {
    for bytes in [
        &br#"{"jsonrpc":"2.0","id":1,"method":"ping""#[..],
        b"",
        b"{not json}",
        b"\xff\xfe",
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},"#,
    ] {
        each_version(bytes, |v, r| {
            assert_error(v, r, -32700, Value::Null);
            assert!(
                r["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("Parse error")
            );
        });
    }
}

// ---------------------------------------------------------------------------------------------
// -32600
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_jsonrpc_is_32600_with_the_id() {
    each_version(br#"{"id":5,"method":"ping"}"#, |v, r| {
        assert_error(v, r, -32600, json!(5));
        assert_eq!(
            r["error"]["message"],
            "Invalid request: \"jsonrpc\" must be \"2.0\""
        );
    });
}

#[test]
fn wrong_jsonrpc_version_is_32600_with_the_id() {
    each_version(br#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#, |v, r| {
        assert_error(v, r, -32600, json!("a"))
    });
    each_version(br#"{"jsonrpc":2.0,"id":"b","method":"ping"}"#, |v, r| {
        assert_error(v, r, -32600, json!("b"))
    });
}

#[test]
fn id_of_the_wrong_type_is_32600_with_null_id() {
    for id in ["{}", "[1]", "true"] {
        let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        each_version(text.as_bytes(), |v, r| {
            assert_error(v, r, -32600, Value::Null);
            assert_eq!(
                r["error"]["message"],
                "Invalid request: \"id\" must be a string or a number"
            );
        });
    }
}

#[test]
fn null_id_is_32600_with_null_id() {
    each_version(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, |v, r| {
        assert_error(v, r, -32600, Value::Null);
        assert_eq!(
            r["error"]["message"],
            "Invalid request: \"id\" must not be null"
        );
    });
}

#[test]
fn non_object_is_32600_with_null_id() {
    for text in ["42", "\"ping\"", "true", "null"] {
        each_version(text.as_bytes(), |v, r| {
            assert_error(v, r, -32600, Value::Null)
        });
    }
}

#[test]
fn method_of_the_wrong_type_is_32600_with_the_id() {
    each_version(br#"{"jsonrpc":"2.0","id":9,"method":["ping"]}"#, |v, r| {
        assert_error(v, r, -32600, json!(9))
    });
}

#[test]
fn scalar_params_are_32600_with_the_id() {
    each_version(
        br#"{"jsonrpc":"2.0","id":"p","method":"ping","params":3}"#,
        |v, r| assert_error(v, r, -32600, json!("p")),
    );
}

#[test]
fn message_without_method_result_or_error_is_32600_with_the_id() {
    each_version(br#"{"jsonrpc":"2.0","id":3}"#, |v, r| {
        assert_error(v, r, -32600, json!(3))
    });
    each_version(
        br#"{"jsonrpc":"2.0","id":4,"result":{},"error":{"code":1,"message":"m"}}"#,
        |v, r| assert_error(v, r, -32600, json!(4)),
    );
    each_version(
        br#"{"jsonrpc":"2.0","id":6,"error":{"code":"x"}}"#,
        |v, r| assert_error(v, r, -32600, json!(6)),
    );
}

#[test]
fn empty_batch_is_32600_with_null_id() {
    each_version(b"[]", |v, r| assert_error(v, r, -32600, Value::Null));
}

// ---------------------------------------------------------------------------------------------
// -32601
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_method_is_32601_with_the_id() {
    each_version(
        br#"{"jsonrpc":"2.0","id":11,"method":"dice/juggle"}"#,
        |v, r| {
            assert_error(v, r, -32601, json!(11));
            assert_eq!(r["error"]["message"], "Method not found: dice/juggle");
        },
    );
    each_version(
        br#"{"jsonrpc":"2.0","id":"s-1","method":"resources/list"}"#,
        |v, r| assert_error(v, r, -32601, json!("s-1")),
    );
}

#[test]
fn unknown_notification_gets_no_answer() {
    let (fx, sessions) = sessions();
    for (v, session) in sessions {
        let out = handle_bytes(
            &fx.server,
            &session,
            br#"{"jsonrpc":"2.0","method":"notifications/dice/juggled","params":{"x":1}}"#,
        );
        assert!(out.is_empty(), "{v}: {out:?}");
        // A malformed cancellation is a notification too: ignored, not answered.
        let out = handle_bytes(
            &fx.server,
            &session,
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{}}}"#,
        );
        assert!(out.is_empty(), "{v}: {out:?}");
    }
}

#[test]
fn response_from_the_client_gets_no_answer() {
    let (fx, sessions) = sessions();
    for (v, session) in sessions {
        for text in [
            &br#"{"jsonrpc":"2.0","id":77,"result":{}}"#[..],
            br#"{"jsonrpc":"2.0","id":78,"error":{"code":-1,"message":"no"}}"#,
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
        ] {
            let out = handle_bytes(&fx.server, &session, text);
            assert!(out.is_empty(), "{v}: {out:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// -32602
// ---------------------------------------------------------------------------------------------

#[test]
fn tools_call_without_params_is_32602_with_the_id() {
    each_version(
        br#"{"jsonrpc":"2.0","id":20,"method":"tools/call"}"#,
        |v, r| assert_error(v, r, -32602, json!(20)),
    );
    // MCP params are objects; serde would read `["roll_dice"]` as `{"name": "roll_dice"}` by
    // position, so the server must refuse arrays before deserializing.
    each_version(
        br#"{"jsonrpc":"2.0","id":21,"method":"tools/call","params":["roll_dice"]}"#,
        |v, r| {
            assert!(
                r.get("error").is_some(),
                "{v}: array params were read by position: {r}"
            );
            assert_error(v, r, -32602, json!(21));
            assert_eq!(
                r["error"]["message"],
                "Invalid params: params must be an object"
            );
        },
    );
    each_version(
        br#"{"jsonrpc":"2.0","id":23,"method":"logging/setLevel","params":["debug"]}"#,
        |v, r| assert_error(v, r, -32602, json!(23)),
    );
    each_version(
        br#"{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"roll_dice","arguments":[3]}}"#,
        |v, r| {
            assert_error(v, r, -32602, json!(22));
            assert_eq!(
                r["error"]["message"],
                "Invalid params: invalid type: sequence, expected a map"
            );
        },
    );
}

#[test]
fn initialize_with_bad_params_is_32602_with_the_id() {
    let fx = fixture();
    for text in [
        &br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#[..],
        br#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":7,"capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
    ] {
        let session = new_session();
        let out = handle_bytes(&fx.server, &session, text);
        assert_eq!(out.len(), 1);
        assert_error(ProtocolVersion::V2025_03_26, &out[0], -32602, json!(1));
        assert_eq!(session.protocol_version(), None);
    }
}

#[test]
fn unknown_tool_is_32602_with_the_id() {
    each_version(
        br#"{"jsonrpc":"2.0","id":"t","method":"tools/call","params":{"name":"nope","arguments":{}}}"#,
        |v, r| {
            assert_error(v, r, -32602, json!("t"));
            assert_eq!(r["error"]["message"], "Invalid params: Unknown tool: 'nope'");
        },
    );
}

#[test]
fn bad_cursor_is_32602_with_the_id() {
    for cursor in ["\"abc\"", "\"0\"", "\"4\"", "\"99\"", "\"-1\"", "7"] {
        let text = format!(
            r#"{{"jsonrpc":"2.0","id":30,"method":"tools/list","params":{{"cursor":{cursor}}}}}"#
        );
        each_version(text.as_bytes(), |v, r| {
            assert_error(v, r, -32602, json!(30))
        });
    }
}

#[test]
fn bad_log_level_is_32602_with_the_id() {
    each_version(
        br#"{"jsonrpc":"2.0","id":31,"method":"logging/setLevel","params":{"level":"loud"}}"#,
        |v, r| assert_error(v, r, -32602, json!(31)),
    );
    each_version(
        br#"{"jsonrpc":"2.0","id":32,"method":"logging/setLevel"}"#,
        |v, r| assert_error(v, r, -32602, json!(32)),
    );
}

#[test]
fn invalid_tool_arguments_are_32602_before_2025_11_25_and_a_tool_error_after() {
    let (fx, sessions) = sessions();
    for (v, session) in sessions {
        let out = handle_bytes(
            &fx.server,
            &session,
            br#"{"jsonrpc":"2.0","id":40,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":1000}}}"#,
        );
        let r = &out[0];
        if v.argument_errors_are_tool_errors() {
            assert_eq!(r["id"], json!(40));
            assert_eq!(r["result"]["isError"], json!(true), "{v}: {r}");
        } else {
            assert_error(v, r, -32602, json!(40));
        }
    }
    assert_eq!(fx.dice_calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// -32603
// ---------------------------------------------------------------------------------------------

/// `-32603` is not reachable through `McpServer`: every failure has a more specific answer.
/// A tool whose output cannot be serialized is the closest thing, and it is a tool error the
/// model can see, not an internal error.
#[test]
fn unserializable_tool_output_is_a_tool_error_not_an_internal_error() {
    struct Broken;
    impl serde::Serialize for Broken {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("broken on purpose"))
        }
    }
    impl schemars::JsonSchema for Broken {
        fn schema_name() -> std::borrow::Cow<'static, str> {
            "Broken".into()
        }
        fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
            schemars::json_schema!({"type": "object"})
        }
    }
    let server = McpServer::builder("broken")
        .tool(
            "broken",
            "Returns what cannot be serialized.",
            |_: mcp_proto::NoArgs| async { Ok::<_, mcp_proto::ToolError>(Broken) },
        )
        .build()
        .unwrap();
    for v in ProtocolVersion::STATEFUL {
        let session = new_session();
        initialize(&server, &session, v);
        let out = handle_bytes(
            &server,
            &session,
            br#"{"jsonrpc":"2.0","id":50,"method":"tools/call","params":{"name":"broken"}}"#,
        );
        let r = &out[0];
        assert_eq!(r["id"], json!(50));
        assert_eq!(r["result"]["isError"], json!(true), "{v}: {r}");
        let text = r["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("broken on purpose"), "{text}");
        assert_response(v, "CallToolResult", r);
    }
}

// ---------------------------------------------------------------------------------------------
// Ids and batches
// ---------------------------------------------------------------------------------------------

#[test]
fn ids_are_echoed_exactly() {
    let (fx, sessions) = sessions();
    for (v, session) in sessions {
        for id in [
            "0",
            "-1",
            "9007199254740993",
            "12345678901234567890",
            "\"\"",
            "\"dé-1 ☃\"",
            "\"1\"",
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let out = handle_bytes(&fx.server, &session, text.as_bytes());
            let expected: Value = serde_json::from_str(id).unwrap();
            assert_eq!(out[0]["id"], expected, "{v}");
            assert_eq!(out[0]["result"], json!({}));
            // And byte for byte: no float or string conversion on the way.
            let reply = fx_reply_text(&fx.server, &session, text.as_bytes());
            assert!(reply.contains(&format!(r#""id":{id}"#)), "{reply}");
        }
    }
}

fn fx_reply_text(server: &McpServer, session: &Arc<Session>, bytes: &[u8]) -> String {
    let Ok(Decoded::Single(message)) = decode(bytes) else {
        panic!("not a single message")
    };
    let reply = futures::executor::block_on(mcp_proto::McpService::handle(
        server,
        message,
        mcp_proto::MessageContext::new(Arc::clone(session)),
    ))
    .unwrap();
    String::from_utf8(reply.to_vec()).unwrap()
}

/// Batches were added in 2025-03-26 and removed in 2025-06-18 (see each version's changelog).
#[test]
fn only_2025_03_26_allows_batches() {
    use ProtocolVersion::*;
    let allowed: Vec<ProtocolVersion> = ProtocolVersion::ALL
        .into_iter()
        .filter(|v| v.allows_batches())
        .collect();
    assert_eq!(allowed, [V2025_03_26]);
    if let Some(spec) = spec() {
        for v in ProtocolVersion::STATEFUL {
            assert_eq!(spec.has(v, "JSONRPCBatchRequest"), v == V2025_03_26, "{v}");
        }
    }
}

#[test]
fn batch_decodes_each_entry_and_answers_each_request() {
    let batch = br#"[
        {"jsonrpc":"2.0","id":1,"method":"ping"},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":"two","method":"dice/juggle"},
        {"foo":1},
        {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":2}}}
    ]"#;
    let Ok(Decoded::Batch(items)) = decode(batch) else {
        panic!("not a batch")
    };
    assert_eq!(items.len(), 5);
    assert!(matches!(items[0], Ok(Message::Request(_))));
    assert!(matches!(items[1], Ok(Message::Notification(_))));
    assert!(matches!(items[2], Ok(Message::Request(_))));
    let invalid = items[3].as_ref().unwrap_err();
    assert_eq!(invalid.id, None);
    assert_eq!(invalid.outcome.as_ref().unwrap_err().code, -32600);

    let fx = fixture();
    let session = new_session();
    initialize(&fx.server, &session, ProtocolVersion::V2025_03_26);
    let out = handle_bytes(&fx.server, &session, batch);
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(out[0], json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
    assert_eq!(error_code(&out[1]), -32601);
    assert_eq!(out[1]["id"], "two");
    assert_error(ProtocolVersion::V2025_03_26, &out[2], -32600, Value::Null);
    assert_eq!(out[3]["id"], json!(3));
    assert_eq!(out[3]["result"]["content"][0]["text"], "[1,2]");
    let answerable = json!([out[0], out[1], out[3]]);
    assert_schema_loose(
        ProtocolVersion::V2025_03_26,
        "JSONRPCBatchResponse",
        &answerable,
    );
}
