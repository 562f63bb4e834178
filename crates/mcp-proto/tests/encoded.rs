//! `McpService::handle_encoded` against `McpService::handle` + `Message::to_vec`: the same
//! bytes for every kind of answer (a tool's value written straight to bytes, a result the
//! tool built, tool errors, JSON-RPC errors, other methods), in every protocol version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use mcp_proto::{
    EncodedReply, McpServer, McpService, Message, MessageContext, NoArgs, ProtocolVersion,
    ReplyOutcome, Session, ToolError,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

/// The answer of both paths to the same message, from the same session.
fn both(
    server: &McpServer,
    session: &Arc<Session>,
    message: Message,
) -> (Option<Vec<u8>>, Option<EncodedReply>) {
    let ctx = || MessageContext::new(Arc::clone(session));
    let plain = futures::executor::block_on(server.handle(message.clone(), ctx()));
    let encoded = futures::executor::block_on(server.handle_encoded(message, ctx()));
    (plain.map(|m| m.to_vec()), encoded)
}

/// Sends `message` down both paths and checks that the bytes are equal; returns the reply.
fn same_bytes(server: &McpServer, session: &Arc<Session>, message: Message) -> EncodedReply {
    let (plain, encoded) = both(server, session, message.clone());
    let (plain, encoded) = (plain.expect("a reply"), encoded.expect("an encoded reply"));
    assert_eq!(
        String::from_utf8_lossy(&encoded.bytes),
        String::from_utf8_lossy(&plain),
        "{message:?}"
    );
    encoded
}

/// A `tools/call` of `tool` with `arguments`, carrying `_meta` when given.
fn call(
    id: impl Into<mcp_proto::RequestId>,
    tool: &str,
    arguments: Value,
    meta: Option<&Value>,
) -> Message {
    let mut params = json!({"name": tool, "arguments": arguments});
    if let Some(meta) = meta {
        params["_meta"] = meta.clone();
    }
    Message::request(id, "tools/call", Some(params))
}

/// Every version: the stateful ones through `initialize`, 2026-07-28 through `_meta`.
fn versions(server: &McpServer) -> Vec<(ProtocolVersion, Arc<Session>, Option<Value>)> {
    let mut out: Vec<_> = ProtocolVersion::STATEFUL
        .into_iter()
        .map(|v| {
            let session = new_session();
            initialize(server, &session, v);
            (v, session, None)
        })
        .collect();
    let stateless = Arc::new(Session::new(None));
    out.push((
        ProtocolVersion::V2026_07_28,
        stateless,
        Some(stateless_meta()),
    ));
    out
}

#[test]
fn every_tools_call_answer_is_the_same_bytes_in_every_version() {
    let fx = fixture();
    for (version, session, meta) in versions(&fx.server) {
        let meta = meta.as_ref();
        let dice = same_bytes(
            &fx.server,
            &session,
            call(1, "roll_dice", json!({"n_dice": 3}), meta),
        );
        assert_eq!(dice.outcome, ReplyOutcome::Result, "{version}");
        let sum = same_bytes(
            &fx.server,
            &session,
            call("s-1", "sum", json!({"values": [4, 5]}), meta),
        );
        assert_eq!(sum.outcome, ReplyOutcome::Result, "{version}");
        let media = same_bytes(&fx.server, &session, call(3, "media", json!({}), meta));
        assert_eq!(media.outcome, ReplyOutcome::Result, "{version}");
        let explode = same_bytes(&fx.server, &session, call(4, "explode", json!({}), meta));
        assert_eq!(explode.outcome, ReplyOutcome::ToolError, "{version}");
        let unknown = same_bytes(&fx.server, &session, call(5, "nope", json!({}), meta));
        assert_eq!(unknown.outcome, ReplyOutcome::Error(-32602), "{version}");
        let invalid = same_bytes(
            &fx.server,
            &session,
            call(6, "roll_dice", json!({"n_dice": 0}), meta),
        );
        let expected = if version.argument_errors_are_tool_errors() {
            ReplyOutcome::ToolError
        } else {
            ReplyOutcome::Error(-32602)
        };
        assert_eq!(invalid.outcome, expected, "{version}");
        let not_an_object = same_bytes(&fx.server, &session, call(7, "roll_dice", json!(5), meta));
        assert_eq!(
            not_an_object.outcome,
            ReplyOutcome::Error(-32602),
            "{version}"
        );
    }
}

#[test]
fn the_fast_path_writes_the_envelope_and_the_result_exactly() {
    let fx = fixture();
    let session = new_session();
    initialize(&fx.server, &session, ProtocolVersion::V2025_11_25);
    let reply = same_bytes(
        &fx.server,
        &session,
        call(42, "roll_dice", json!({"n_dice": 3}), None),
    );
    assert_eq!(
        String::from_utf8(reply.bytes).unwrap(),
        r#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"text":"[1,2,3]","type":"text"}],"isError":false,"structuredContent":{"result":[1,2,3]}}}"#
    );
    let session = new_session();
    initialize(&fx.server, &session, ProtocolVersion::V2024_11_05);
    let reply = same_bytes(
        &fx.server,
        &session,
        call(
            mcp_proto::RequestId::from_value(&json!(1.5)).unwrap(),
            "roll_dice",
            json!({"n_dice": 2}),
            None,
        ),
    );
    assert_eq!(
        String::from_utf8(reply.bytes).unwrap(),
        r#"{"jsonrpc":"2.0","id":1.5,"result":{"content":[{"text":"[1,2]","type":"text"}],"isError":false}}"#
    );
}

#[test]
fn other_methods_and_errors_are_the_same_bytes() {
    let fx = fixture();
    for (version, session, meta) in versions(&fx.server) {
        let params = meta.map(|m| json!({"_meta": m}));
        let list = same_bytes(
            &fx.server,
            &session,
            Message::request(10, "tools/list", params.clone()),
        );
        assert_eq!(list.outcome, ReplyOutcome::Result, "{version}");
        let missing = same_bytes(
            &fx.server,
            &session,
            Message::request(11, "no/such", params),
        );
        assert_eq!(missing.outcome, ReplyOutcome::Error(-32601), "{version}");
    }
    let session = new_session();
    initialize(&fx.server, &session, ProtocolVersion::V2025_06_18);
    let ping = same_bytes(&fx.server, &session, Message::request("p", "ping", None));
    assert_eq!(
        String::from_utf8(ping.bytes).unwrap(),
        r#"{"jsonrpc":"2.0","id":"p","result":{}}"#
    );
    let note = Message::notification("notifications/initialized", None);
    assert_eq!(both(&fx.server, &session, note), (None, None));
}

#[derive(Serialize, JsonSchema)]
struct Point {
    y: i32,
    x: i32,
}

#[test]
fn strings_panics_and_member_order() {
    let server = McpServer::builder("s")
        .tool("say", "Says.", |_: NoArgs| async {
            Ok::<_, ToolError>("a \"quoted\"\nline".to_owned())
        })
        .tool("point", "A point.", |_: NoArgs| async {
            Ok::<_, ToolError>(Point { y: 2, x: 1 })
        })
        .tool("boom", "Panics.", |_: NoArgs| async {
            if std::hint::black_box(true) {
                panic!("bug in the tool");
            }
            Ok::<String, ToolError>(String::new())
        })
        .build()
        .unwrap();
    let session = new_session();
    initialize(&server, &session, ProtocolVersion::V2025_11_25);
    let say = same_bytes(&server, &session, call(1, "say", json!({}), None));
    let say: Value = serde_json::from_slice(&say.bytes).unwrap();
    assert_eq!(say["result"]["content"][0]["text"], "a \"quoted\"\nline");
    assert_eq!(
        say["result"]["structuredContent"],
        json!({"result": "a \"quoted\"\nline"})
    );
    let boom = same_bytes(&server, &session, call(2, "boom", json!({}), None));
    assert_eq!(boom.outcome, ReplyOutcome::Error(-32603));
    // A tool's own object keeps its members' order in the bytes; the value path sorts them.
    let (plain, encoded) = both(&server, &session, call(3, "point", json!({}), None));
    let encoded = String::from_utf8(encoded.unwrap().bytes).unwrap();
    assert_eq!(
        encoded,
        r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"text":"{\"y\":2,\"x\":1}","type":"text"}],"isError":false,"structuredContent":{"y":2,"x":1}}}"#
    );
    let plain: Value = serde_json::from_slice(&plain.unwrap()).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&encoded).unwrap(), plain);
}

#[test]
fn the_default_method_serializes_what_handle_answers() {
    /// A service with only `handle`.
    struct Echo;
    impl McpService for Echo {
        fn handle(
            &self,
            message: Message,
            _ctx: MessageContext,
        ) -> mcp_proto::BoxFuture<'static, Option<Message>> {
            let reply = match message {
                Message::Request(r) if r.method == "fail" => Some(Message::Response(
                    mcp_proto::Response::error(Some(r.id), mcp_proto::ErrorObject::internal("no")),
                )),
                Message::Request(r) => Some(Message::Response(mcp_proto::Response::result(
                    r.id,
                    json!({"isError": true, "content": []}),
                ))),
                _ => None,
            };
            Box::pin(async move { reply })
        }
    }
    let ctx = || MessageContext::new(new_session());
    let ok =
        futures::executor::block_on(Echo.handle_encoded(Message::request(1, "x", None), ctx()))
            .unwrap();
    assert_eq!(ok.outcome, ReplyOutcome::ToolError);
    assert_eq!(
        String::from_utf8(ok.bytes).unwrap(),
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#
    );
    let failed =
        futures::executor::block_on(Echo.handle_encoded(Message::request(2, "fail", None), ctx()))
            .unwrap();
    assert_eq!(failed.outcome, ReplyOutcome::Error(-32603));
    let none =
        futures::executor::block_on(Echo.handle_encoded(Message::notification("n", None), ctx()));
    assert_eq!(none, None);
}
