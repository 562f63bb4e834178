//! What the server sends validates against the official JSON Schema of each protocol version,
//! and every MCP type survives a serde round trip.
//!
//! The server is driven through [`McpService::handle`] for each version negotiated with
//! `initialize`; each response is checked against the version's schema definition in a strict
//! form (no field the version does not define), and fields a version lacks are asserted absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Debug;

use common::*;
use mcp_proto::jsonrpc::{ErrorObject, Response};
use mcp_proto::types::*;
use mcp_proto::{Message, ProtocolVersion, RequestId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use ProtocolVersion::{V2024_11_05, V2025_03_26, V2025_06_18, V2025_11_25};

fn call(
    fx: &Fixture,
    session: &std::sync::Arc<mcp_proto::Session>,
    id: i64,
    name: &str,
    arguments: Value,
) -> Value {
    request(
        &fx.server,
        session,
        id,
        "tools/call",
        Some(json!({"name": name, "arguments": arguments})),
    )
}

// ---------------------------------------------------------------------------------------------
// The server, version by version
// ---------------------------------------------------------------------------------------------

#[test]
fn initialize_result_matches_each_version() {
    for v in ProtocolVersion::STATEFUL {
        let fx = fixture();
        let session = new_session();
        let response = initialize(&fx.server, &session, v);
        assert_response(v, "InitializeResult", &response);
        assert_eq!(response["id"], json!(0));
        let result = &response["result"];
        assert_eq!(result["protocolVersion"], v.as_str());
        assert_eq!(result["serverInfo"]["name"], "Dice Roller");
        assert_eq!(result["serverInfo"]["version"], "1.2.3");
        assert_eq!(result["instructions"], "Roll dice with roll_dice.");
        assert_eq!(
            result["capabilities"]["tools"],
            json!({"listChanged": true})
        );
        assert_eq!(result["capabilities"]["logging"], json!({}));
        // `Implementation.title` arrived in 2025-06-18.
        assert_eq!(
            result["serverInfo"].get("title").is_some(),
            v >= V2025_06_18,
            "{v}: {result}"
        );
        assert_eq!(session.protocol_version(), Some(v));
        assert!(session.state().initialized);
    }
}

#[test]
fn unknown_client_version_gets_the_newest_stateful_version() {
    let fx = fixture();
    let session = new_session();
    let response = request(
        &fx.server,
        &session,
        1,
        "initialize",
        Some(json!({"protocolVersion": "2099-01-01", "capabilities": {},
                    "clientInfo": {"name": "future", "version": "9"}})),
    );
    assert_eq!(response["result"]["protocolVersion"], "2025-11-25");
    assert_response(V2025_11_25, "InitializeResult", &response);
}

#[test]
fn tools_list_matches_each_version() {
    for v in ProtocolVersion::STATEFUL {
        let fx = fixture();
        let session = new_session();
        initialize(&fx.server, &session, v);
        let response = request(&fx.server, &session, 1, "tools/list", None);
        assert_response(v, "ListToolsResult", &response);
        let tools = response["result"]["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["roll_dice", "media", "sum", "explode"], "{v}");
        assert!(response["result"].get("nextCursor").is_none());
        for tool in tools {
            let name = tool["name"].as_str().unwrap();
            assert_eq!(tool["inputSchema"]["type"], "object", "{v} {name}");
            assert_eq!(
                tool.get("title").is_some(),
                v >= V2025_06_18,
                "{v} {name} title: {tool}"
            );
            assert_eq!(
                tool.get("annotations").is_some(),
                v >= V2025_03_26 && name == "media",
                "{v} {name} annotations: {tool}"
            );
            assert_eq!(
                tool.get("icons").is_some(),
                v >= V2025_11_25 && name == "media",
                "{v} {name} icons: {tool}"
            );
            assert_eq!(
                tool.get("outputSchema").is_some(),
                v >= V2025_06_18 && name != "media",
                "{v} {name} outputSchema: {tool}"
            );
            // A `$schema` dialect in tool schemas only from 2025-11-25 (SEP-1613).
            if v < V2025_11_25 {
                assert!(tool["inputSchema"].get("$schema").is_none(), "{v} {tool}");
            }
        }
        let dice = &tools[0];
        assert_eq!(
            dice["description"],
            "Roll `n_dice` 6-sided dice and return the results."
        );
        let n_dice = &dice["inputSchema"]["properties"]["n_dice"];
        assert_eq!(n_dice["minimum"], json!(1));
        assert_eq!(n_dice["maximum"], json!(100));
        assert_eq!(dice["inputSchema"]["required"], json!(["n_dice"]));
        if v >= V2025_06_18 {
            assert_eq!(dice["title"], "Roll Dice");
            assert_eq!(tools[1]["title"], "Media Sampler");
            let out = &dice["outputSchema"];
            assert_eq!(out["type"], "object");
            assert_eq!(out["required"], json!(["result"]));
            assert_eq!(out["properties"]["result"]["type"], "array");
            assert_eq!(out["x-fastmcp-wrap-result"], json!(true));
            // An object output is not wrapped.
            let sum_out = &tools[2]["outputSchema"];
            assert_eq!(sum_out["type"], "object");
            assert!(sum_out["properties"].get("total").is_some(), "{sum_out}");
            assert!(sum_out.get("x-fastmcp-wrap-result").is_none());
        }
    }
}

#[test]
fn tools_list_pages_follow_the_cursor() {
    let server = mcp_proto::McpServer::builder("paged")
        .page_size(3)
        .tool("a", "a", |_: mcp_proto::NoArgs| async {
            Ok::<_, mcp_proto::ToolError>(1)
        })
        .tool("b", "b", |_: mcp_proto::NoArgs| async {
            Ok::<_, mcp_proto::ToolError>(2)
        })
        .tool("c", "c", |_: mcp_proto::NoArgs| async {
            Ok::<_, mcp_proto::ToolError>(3)
        })
        .tool("d", "d", |_: mcp_proto::NoArgs| async {
            Ok::<_, mcp_proto::ToolError>(4)
        })
        .build()
        .unwrap();
    for v in ProtocolVersion::STATEFUL {
        let session = new_session();
        initialize(&server, &session, v);
        let first = request(&server, &session, 1, "tools/list", Some(json!({})));
        assert_response(v, "ListToolsResult", &first);
        assert_eq!(first["result"]["tools"].as_array().unwrap().len(), 3);
        let cursor = first["result"]["nextCursor"].as_str().unwrap().to_owned();
        let second = request(
            &server,
            &session,
            2,
            "tools/list",
            Some(json!({"cursor": cursor})),
        );
        assert_response(v, "ListToolsResult", &second);
        assert_eq!(second["result"]["tools"][0]["name"], "d");
        assert!(second["result"].get("nextCursor").is_none());
    }
}

#[test]
fn dice_call_matches_each_version() {
    for v in ProtocolVersion::STATEFUL {
        let fx = fixture();
        let session = new_session();
        initialize(&fx.server, &session, v);
        let response = call(&fx, &session, 7, "roll_dice", json!({"n_dice": 3}));
        assert_response(v, "CallToolResult", &response);
        assert_eq!(response["id"], json!(7));
        let result = &response["result"];
        assert_eq!(
            result["content"],
            json!([{"type": "text", "text": "[1,2,3]"}])
        );
        assert_eq!(result["isError"], json!(false));
        if v >= V2025_06_18 {
            assert_eq!(result["structuredContent"], json!({"result": [1, 2, 3]}));
        } else {
            assert!(result.get("structuredContent").is_none(), "{v}: {result}");
        }
        assert_eq!(fx.dice_calls(), 1);
    }
}

#[test]
fn structured_object_output_is_not_wrapped() {
    for v in ProtocolVersion::STATEFUL {
        let fx = fixture();
        let session = new_session();
        initialize(&fx.server, &session, v);
        let response = call(&fx, &session, 3, "sum", json!({"values": [1, 2, 39]}));
        assert_response(v, "CallToolResult", &response);
        let result = &response["result"];
        let text: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, json!({"count": 3, "total": 42}));
        if v >= V2025_06_18 {
            assert_eq!(
                result["structuredContent"],
                json!({"count": 3, "total": 42})
            );
        } else {
            assert!(result.get("structuredContent").is_none());
        }
    }
}

#[test]
fn every_content_type_matches_each_version() {
    for v in ProtocolVersion::STATEFUL {
        let fx = fixture();
        let session = new_session();
        initialize(&fx.server, &session, v);
        let response = call(&fx, &session, 4, "media", json!({}));
        assert_response(v, "CallToolResult", &response);
        let content = response["result"]["content"].as_array().unwrap();
        let types: Vec<&str> = content
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        let expected: &[&str] = match v {
            // No audio before 2025-03-26, no resource_link before 2025-06-18: both become text.
            V2024_11_05 => &["text", "image", "text", "resource", "text"],
            V2025_03_26 => &["text", "image", "audio", "resource", "text"],
            _ => &["text", "image", "audio", "resource", "resource_link"],
        };
        assert_eq!(types, expected, "{v}");
        assert_eq!(
            content[1],
            json!({"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"})
        );
        assert_eq!(
            content[3],
            json!({"type": "resource", "resource": {"uri": "test://dice/rules",
                   "mimeType": "text/plain", "text": "Roll, then add."}})
        );
        if v >= V2025_06_18 {
            assert_eq!(
                content[4],
                json!({"type": "resource_link", "uri": "test://dice/history", "name": "history",
                       "title": "Roll history", "description": "Every roll so far",
                       "mimeType": "application/json", "size": 42})
            );
        } else {
            let text = content[4]["text"].as_str().unwrap();
            assert!(text.contains("test://dice/history"), "{text}");
        }
        assert!(response["result"].get("structuredContent").is_none());
    }
}

#[test]
fn tool_failure_is_a_result_with_is_error() {
    for v in ProtocolVersion::STATEFUL {
        let fx = fixture();
        let session = new_session();
        initialize(&fx.server, &session, v);
        let response = call(&fx, &session, 5, "explode", json!({}));
        assert_response(v, "CallToolResult", &response);
        assert_eq!(
            response["result"],
            json!({"content": [{"type": "text", "text": EXPLODE_MESSAGE}], "isError": true})
        );
    }
}

/// Invalid arguments: a JSON-RPC `-32602` error before 2025-11-25, a tool execution error
/// (`isError: true`) from 2025-11-25 (SEP-1303). The handler never runs.
#[test]
fn invalid_arguments_follow_each_version() {
    let cases = [
        (json!({"n_dice": "three"}), "n_dice"),
        (json!({"n_dice": 101}), "100"),
        (json!({"n_dice": 0}), "1"),
        (json!({"n_dice": -4}), "n_dice"),
        (json!({}), "n_dice"),
        (json!({"n_dice": 2.5}), "n_dice"),
    ];
    for v in ProtocolVersion::STATEFUL {
        let fx = fixture();
        let session = new_session();
        initialize(&fx.server, &session, v);
        for (i, (args, mention)) in cases.iter().enumerate() {
            let id = 10 + i as i64;
            let response = call(&fx, &session, id, "roll_dice", args.clone());
            assert_eq!(response["id"], json!(id));
            if v >= V2025_11_25 {
                assert_response(v, "CallToolResult", &response);
                let result = &response["result"];
                assert_eq!(result["isError"], json!(true), "{v} {args}: {result}");
                let text = result["content"][0]["text"].as_str().unwrap();
                assert!(
                    text.starts_with("Invalid arguments for tool 'roll_dice'"),
                    "{text}"
                );
                assert!(text.contains(mention), "{v} {args}: {text}");
            } else {
                assert_response(v, "CallToolResult", &response);
                assert_eq!(error_code(&response), -32602, "{v} {args}: {response}");
                let message = response["error"]["message"].as_str().unwrap();
                assert!(message.contains("roll_dice"), "{message}");
                assert!(message.contains(mention), "{v} {args}: {message}");
            }
        }
        assert_eq!(
            fx.dice_calls(),
            0,
            "{v}: a handler ran on invalid arguments"
        );
        // The bounds themselves are accepted.
        for n in [1, 100] {
            let response = call(&fx, &session, 99, "roll_dice", json!({ "n_dice": n }));
            assert_eq!(response["result"]["isError"], json!(false), "{v} {n}");
        }
        assert_eq!(fx.dice_calls(), 2);
    }
}

#[test]
fn unknown_tool_is_a_protocol_error_in_every_version() {
    for v in ProtocolVersion::STATEFUL {
        let fx = fixture();
        let session = new_session();
        initialize(&fx.server, &session, v);
        let response = call(&fx, &session, 8, "no_such_tool", json!({}));
        assert_response(v, "CallToolResult", &response);
        assert_eq!(error_code(&response), -32602);
        assert_eq!(response["id"], json!(8));
        assert_eq!(
            response["error"]["message"],
            "Invalid params: Unknown tool: 'no_such_tool'"
        );
    }
}

#[test]
fn ping_set_level_and_unknown_method_match_each_version() {
    for v in ProtocolVersion::STATEFUL {
        let fx = fixture();
        let session = new_session();
        initialize(&fx.server, &session, v);

        let ping = request(&fx.server, &session, 1, "ping", None);
        assert_response(v, "EmptyResult", &ping);
        assert_eq!(ping, json!({"jsonrpc": "2.0", "id": 1, "result": {}}));

        let set = request(
            &fx.server,
            &session,
            2,
            "logging/setLevel",
            Some(json!({"level": "warning"})),
        );
        assert_response(v, "EmptyResult", &set);
        assert_eq!(set["result"], json!({}));
        assert_eq!(session.state().log_level, Some(LoggingLevel::Warning));

        let bad_level = request(
            &fx.server,
            &session,
            3,
            "logging/setLevel",
            Some(json!({"level": "loud"})),
        );
        assert_response(v, "EmptyResult", &bad_level);
        assert_eq!(error_code(&bad_level), -32602);
        assert_eq!(bad_level["id"], json!(3));

        let unknown = request(&fx.server, &session, 4, "dice/juggle", None);
        assert_response(v, "EmptyResult", &unknown);
        assert_eq!(error_code(&unknown), -32601);
        assert_eq!(unknown["error"]["message"], "Method not found: dice/juggle");
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips of every message type, validated against the schema where it has the definition
// ---------------------------------------------------------------------------------------------

/// Serializes, deserializes and compares; then validates the JSON against `def` in every
/// stateful version from `since` on (as published), and strictly in 2025-11-25.
fn round_trip<T>(value: &T, def: &str, since: ProtocolVersion) -> Value
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let json = serde_json::to_value(value).unwrap();
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, value, "{text}");
    let back: T = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(&back, value, "{text}");
    if let Some(spec) = spec() {
        let mut checked = 0;
        for v in ProtocolVersion::STATEFUL {
            if v < since || !spec.has(v, def) {
                continue;
            }
            assert_schema_loose(v, def, &json);
            checked += 1;
        }
        assert!(checked > 0, "no version has {def}");
        if spec.has(V2025_11_25, def) {
            assert_schema(V2025_11_25, def, &json);
        }
    }
    json
}

/// Like [`round_trip`], for the types without `for_version`: also strictly from `since` on.
fn round_trip_strict<T>(value: &T, def: &str, since: ProtocolVersion) -> Value
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let json = round_trip(value, def, since);
    for v in ProtocolVersion::STATEFUL {
        if v >= since && spec().is_some_and(|s| s.has(v, def)) {
            assert_schema(v, def, &json);
        }
    }
    json
}

fn obj(v: Value) -> JsonObject {
    v.as_object().cloned().unwrap()
}

fn icon() -> Icon {
    Icon {
        src: "https://example.com/dice.png".into(),
        mime_type: Some("image/png".into()),
        sizes: Some(vec!["48x48".into(), "any".into()]),
        theme: Some("dark".into()),
    }
}

fn full_implementation() -> Implementation {
    Implementation {
        name: "dice".into(),
        title: Some("Dice".into()),
        version: "1.0.0".into(),
        description: Some("Rolls dice".into()),
        icons: Some(vec![icon()]),
        website_url: Some("https://example.com".into()),
    }
}

fn full_tool() -> Tool {
    Tool {
        name: "roll_dice".into(),
        title: Some("Roll Dice".into()),
        description: Some("Roll dice.".into()),
        input_schema: obj(json!({"type": "object",
            "properties": {"n_dice": {"type": "integer", "minimum": 1}},
            "required": ["n_dice"]})),
        output_schema: Some(obj(json!({"type": "object",
            "properties": {"result": {"type": "array"}}, "required": ["result"]}))),
        annotations: Some(ToolAnnotations {
            title: Some("Dice".into()),
            read_only_hint: Some(true),
            destructive_hint: Some(false),
            idempotent_hint: Some(false),
            open_world_hint: Some(false),
        }),
        icons: Some(vec![icon()]),
        meta: Some(obj(json!({"example.com/owner": "tests"}))),
        execution: None,
    }
}

fn annotations() -> ContentAnnotations {
    ContentAnnotations {
        audience: Some(vec![Role::User, Role::Assistant]),
        priority: Some(0.5),
        last_modified: Some("2025-01-12T15:00:58Z".into()),
    }
}

fn every_block(with_annotations: bool) -> Vec<ContentBlock> {
    let a = || with_annotations.then(annotations);
    vec![
        ContentBlock::Text {
            text: "hi".into(),
            annotations: a(),
        },
        ContentBlock::Image {
            data: "AA==".into(),
            mime_type: "image/png".into(),
            annotations: a(),
        },
        ContentBlock::Audio {
            data: "AA==".into(),
            mime_type: "audio/wav".into(),
            annotations: a(),
        },
        ContentBlock::Resource {
            resource: ResourceContents::Text {
                uri: "test://a".into(),
                mime_type: Some("text/plain".into()),
                text: "body".into(),
            },
            annotations: a(),
        },
        ContentBlock::Resource {
            resource: ResourceContents::Blob {
                uri: "test://b".into(),
                mime_type: None,
                blob: "AAEC".into(),
            },
            annotations: None,
        },
        ContentBlock::ResourceLink {
            uri: "test://c".into(),
            name: "c".into(),
            title: Some("C".into()),
            description: Some("the c".into()),
            mime_type: Some("text/plain".into()),
            size: Some(3),
            annotations: a(),
        },
    ]
}

#[test]
fn lifecycle_types_round_trip() {
    round_trip_strict(&icon(), "Icon", V2025_11_25);
    round_trip(&full_implementation(), "Implementation", V2025_11_25);
    round_trip_strict(
        &Implementation::new("dice", "1.0.0"),
        "Implementation",
        V2024_11_05,
    );
    for v in ProtocolVersion::STATEFUL {
        let json = serde_json::to_value(full_implementation().for_version(v)).unwrap();
        assert_schema(v, "Implementation", &json);
    }
    let server_caps = ServerCapabilities {
        experimental: Some(obj(json!({"example": {"on": true}}))),
        logging: Some(JsonObject::new()),
        completions: Some(JsonObject::new()),
        prompts: Some(ListChangedCapability {
            list_changed: Some(true),
        }),
        resources: Some(ResourcesCapability {
            subscribe: Some(true),
            list_changed: Some(false),
        }),
        tools: Some(ListChangedCapability {
            list_changed: Some(true),
        }),
        extensions: None,
        tasks: None,
    };
    round_trip(&server_caps, "ServerCapabilities", V2025_03_26);
    round_trip_strict(
        &ServerCapabilities::default(),
        "ServerCapabilities",
        V2024_11_05,
    );
    for v in ProtocolVersion::STATEFUL {
        let json = serde_json::to_value(server_caps.for_version(v)).unwrap();
        assert_schema(v, "ServerCapabilities", &json);
        assert_eq!(json.get("completions").is_some(), v >= V2025_03_26);
    }
    let client_caps = ClientCapabilities {
        experimental: Some(JsonObject::new()),
        roots: Some(ListChangedCapability {
            list_changed: Some(true),
        }),
        sampling: Some(JsonObject::new()),
        elicitation: Some(JsonObject::new()),
        tasks: None,
        extensions: None,
    };
    round_trip(&client_caps, "ClientCapabilities", V2025_06_18);
    round_trip_strict(
        &ClientCapabilities {
            elicitation: None,
            ..client_caps.clone()
        },
        "ClientCapabilities",
        V2024_11_05,
    );
    let init = InitializeParams {
        protocol_version: "2025-06-18".into(),
        capabilities: client_caps,
        client_info: Implementation::new("client", "0.1"),
    };
    round_trip(&init, "InitializeRequest/properties/params", V2025_06_18);
    let init_result = InitializeResult {
        protocol_version: "2025-11-25".into(),
        capabilities: server_caps,
        server_info: full_implementation(),
        instructions: Some("Roll.".into()),
    };
    round_trip(&init_result, "InitializeResult", V2025_11_25);
    round_trip_strict(&EmptyResult {}, "EmptyResult", V2024_11_05);
    round_trip_strict(
        &PaginatedParams {
            cursor: Some("2".into()),
        },
        "PaginatedRequest/properties/params",
        V2024_11_05,
    );
    round_trip_strict(
        &PaginatedParams::default(),
        "PaginatedRequest/properties/params",
        V2024_11_05,
    );
}

#[test]
fn tool_types_round_trip() {
    let tool = full_tool();
    round_trip(&tool, "Tool", V2025_11_25);
    for v in ProtocolVersion::STATEFUL {
        let json = serde_json::to_value(tool.for_version(v)).unwrap();
        assert_schema(v, "Tool", &json);
    }
    round_trip_strict(
        &ToolAnnotations {
            title: Some("t".into()),
            read_only_hint: Some(true),
            destructive_hint: Some(true),
            idempotent_hint: Some(true),
            open_world_hint: Some(true),
        },
        "ToolAnnotations",
        V2025_03_26,
    );
    let list = ListToolsResult {
        tools: vec![tool.clone(), tool.for_version(V2024_11_05)],
        next_cursor: Some("2".into()),
    };
    round_trip(&list, "ListToolsResult", V2025_11_25);
    let call = CallToolParams {
        name: "roll_dice".into(),
        arguments: Some(obj(json!({"n_dice": 2}))),
        meta: Some(obj(json!({"progressToken": "p-1"}))),
    };
    round_trip_strict(&call, "CallToolRequest/properties/params", V2024_11_05);
    let result = CallToolResult {
        content: every_block(true),
        structured_content: Some(json!({"result": [1, 2]})),
        is_error: Some(false),
        meta: Some(obj(json!({"example.com/t": 1}))),
    };
    round_trip(&result, "CallToolResult", V2025_11_25);
    for v in ProtocolVersion::STATEFUL {
        let json = serde_json::to_value(result.for_version(v)).unwrap();
        assert_schema(v, "CallToolResult", &json);
        assert_eq!(json.get("structuredContent").is_some(), v >= V2025_06_18);
        assert_eq!(
            json["content"][0].get("annotations").is_some(),
            v >= V2025_03_26,
            "{v}: {json}"
        );
    }
    round_trip_strict(
        &CallToolResult::error_text("no"),
        "CallToolResult",
        V2024_11_05,
    );
}

#[test]
fn content_types_round_trip() {
    for block in every_block(true) {
        let json = round_trip(&block, "ContentBlock", V2025_06_18);
        for v in ProtocolVersion::STATEFUL {
            let json = serde_json::to_value(block.for_version(v)).unwrap();
            assert_schema(v, "CallToolResult/properties/content/items", &json);
        }
        if let Some(spec) = spec() {
            assert!(spec.has(V2025_06_18, "ContentBlock"), "{json}");
        }
    }
    // Annotations arrived as a definition of their own in 2025-03-26.
    round_trip_strict(&annotations(), "Annotations", V2025_06_18);
    round_trip_strict(&Role::Assistant, "Role", V2024_11_05);
    round_trip_strict(
        &ResourceContents::Blob {
            uri: "test://b".into(),
            mime_type: Some("application/octet-stream".into()),
            blob: "AAEC".into(),
        },
        "BlobResourceContents",
        V2024_11_05,
    );
    round_trip_strict(
        &ResourceContents::Text {
            uri: "test://t".into(),
            mime_type: None,
            text: "x".into(),
        },
        "TextResourceContents",
        V2024_11_05,
    );
}

#[test]
fn resource_types_round_trip() {
    let resource = Resource {
        uri: "test://r".into(),
        name: "r".into(),
        title: Some("R".into()),
        description: Some("the r".into()),
        mime_type: Some("text/plain".into()),
        size: Some(10),
        icons: Some(vec![icon()]),
    };
    round_trip(&resource, "Resource", V2025_11_25);
    let template = ResourceTemplate {
        uri_template: "test://r/{id}".into(),
        name: "r".into(),
        title: Some("R".into()),
        description: Some("rs".into()),
        mime_type: Some("text/plain".into()),
        icons: Some(vec![icon()]),
    };
    round_trip(&template, "ResourceTemplate", V2025_11_25);
    round_trip(
        &ListResourcesResult {
            resources: vec![resource],
            next_cursor: Some("n".into()),
        },
        "ListResourcesResult",
        V2025_11_25,
    );
    round_trip(
        &ListResourceTemplatesResult {
            resource_templates: vec![template],
            next_cursor: None,
        },
        "ListResourceTemplatesResult",
        V2025_11_25,
    );
    round_trip_strict(
        &ResourceUriParams {
            uri: "test://r".into(),
        },
        "ReadResourceRequest/properties/params",
        V2024_11_05,
    );
    round_trip_strict(
        &ResourceUriParams {
            uri: "test://r".into(),
        },
        "ResourceUpdatedNotification/properties/params",
        V2024_11_05,
    );
    round_trip_strict(
        &ReadResourceResult {
            contents: vec![
                ResourceContents::Text {
                    uri: "test://r".into(),
                    mime_type: Some("text/plain".into()),
                    text: "hello".into(),
                },
                ResourceContents::Blob {
                    uri: "test://r2".into(),
                    mime_type: None,
                    blob: "AA==".into(),
                },
            ],
        },
        "ReadResourceResult",
        V2024_11_05,
    );
}

#[test]
fn prompt_and_completion_types_round_trip() {
    let argument = PromptArgument {
        name: "n".into(),
        title: Some("N".into()),
        description: Some("how many".into()),
        required: Some(true),
    };
    round_trip(&argument, "PromptArgument", V2025_06_18);
    let prompt = Prompt {
        name: "p".into(),
        title: Some("P".into()),
        description: Some("a prompt".into()),
        arguments: Some(vec![argument]),
        icons: Some(vec![icon()]),
    };
    round_trip(&prompt, "Prompt", V2025_11_25);
    round_trip(
        &ListPromptsResult {
            prompts: vec![prompt],
            next_cursor: None,
        },
        "ListPromptsResult",
        V2025_11_25,
    );
    round_trip_strict(
        &GetPromptParams {
            name: "p".into(),
            arguments: Some(obj(json!({"n": "3"}))),
        },
        "GetPromptRequest/properties/params",
        V2024_11_05,
    );
    let message = PromptMessage {
        role: Role::User,
        content: ContentBlock::text("roll for me"),
    };
    round_trip_strict(&message, "PromptMessage", V2024_11_05);
    round_trip_strict(
        &GetPromptResult {
            description: Some("d".into()),
            messages: vec![
                message,
                PromptMessage {
                    role: Role::Assistant,
                    content: ContentBlock::image("AA==", "image/png"),
                },
            ],
        },
        "GetPromptResult",
        V2024_11_05,
    );
    for reference in [
        CompletionReference::Prompt { name: "p".into() },
        CompletionReference::Resource {
            uri: "test://r/{id}".into(),
        },
    ] {
        let params = CompleteParams {
            reference,
            argument: CompletionArgument {
                name: "id".into(),
                value: "4".into(),
            },
            context: None,
        };
        round_trip_strict(&params, "CompleteRequest/properties/params", V2024_11_05);
    }
    round_trip(
        &CompleteParams {
            reference: CompletionReference::Prompt { name: "p".into() },
            argument: CompletionArgument {
                name: "b".into(),
                value: "".into(),
            },
            context: Some(json!({"arguments": {"a": "1"}})),
        },
        "CompleteRequest/properties/params",
        V2025_06_18,
    );
    round_trip_strict(
        &CompleteResult {
            completion: Completion {
                values: vec!["1".into(), "2".into()],
                total: Some(6),
                has_more: Some(true),
            },
        },
        "CompleteResult",
        V2024_11_05,
    );
    round_trip_strict(&CompleteResult::default(), "CompleteResult", V2024_11_05);
}

#[test]
fn notification_types_round_trip() {
    for level in [
        LoggingLevel::Debug,
        LoggingLevel::Info,
        LoggingLevel::Notice,
        LoggingLevel::Warning,
        LoggingLevel::Error,
        LoggingLevel::Critical,
        LoggingLevel::Alert,
        LoggingLevel::Emergency,
    ] {
        round_trip_strict(&level, "LoggingLevel", V2024_11_05);
        round_trip_strict(
            &SetLevelParams { level },
            "SetLevelRequest/properties/params",
            V2024_11_05,
        );
    }
    round_trip_strict(
        &LoggingMessageParams {
            level: LoggingLevel::Info,
            logger: Some("dice".into()),
            data: json!({"rolled": [1, 2]}),
        },
        "LoggingMessageNotification/properties/params",
        V2024_11_05,
    );
    round_trip_strict(
        &ProgressParams {
            progress_token: RequestId::from("tok"),
            progress: 0.5,
            total: Some(1.0),
            message: None,
        },
        "ProgressNotification/properties/params",
        V2024_11_05,
    );
    round_trip_strict(
        &ProgressParams {
            progress_token: RequestId::from(9),
            progress: 2.0,
            total: None,
            message: Some("rolling".into()),
        },
        "ProgressNotification/properties/params",
        V2025_03_26,
    );
    round_trip_strict(
        &CancelledParams {
            request_id: Some(RequestId::from(3)),
            reason: Some("user".into()),
        },
        "CancelledNotification/properties/params",
        V2024_11_05,
    );
}

#[test]
fn jsonrpc_messages_round_trip() {
    let messages = [
        (
            Message::request(1, "tools/list", Some(json!({"cursor": "1"}))),
            "JSONRPCRequest",
        ),
        (Message::request("req-1", "ping", None), "JSONRPCRequest"),
        (
            Message::notification("notifications/initialized", None),
            "JSONRPCNotification",
        ),
        (
            Message::notification(
                "notifications/cancelled",
                Some(json!({"requestId": 1, "reason": "gone"})),
            ),
            "JSONRPCNotification",
        ),
        (
            Message::Response(Response::result(RequestId::from(1), json!({}))),
            "JSONRPCResponse",
        ),
        (
            Message::Response(Response::error(
                Some(RequestId::from("x")),
                ErrorObject::method_not_found("nope").with_data(json!({"m": 1})),
            )),
            "JSONRPCError",
        ),
    ];
    for (message, def) in messages {
        let json = serde_json::to_value(&message).unwrap();
        let back: Message = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, message);
        let back: Message = serde_json::from_slice(&message.to_vec()).unwrap();
        assert_eq!(back, message);
        for v in ProtocolVersion::STATEFUL {
            let def = match def {
                "JSONRPCResponse" => result_response_def(v),
                "JSONRPCError" => error_response_def(v),
                other => other,
            };
            assert_schema(v, def, &json);
            assert_schema_loose(v, "JSONRPCMessage", &json);
        }
    }
    let error = ErrorObject::invalid_params("bad").with_data(json!([1]));
    let json = serde_json::to_value(&error).unwrap();
    assert_eq!(
        json,
        json!({"code": -32602, "message": "Invalid params: bad", "data": [1]})
    );
    assert_eq!(serde_json::from_value::<ErrorObject>(json).unwrap(), error);
}

/// The schemas themselves: every stateful version is there, and the strict form still accepts
/// the spec's own minimal examples (so a failure above is ours, not the strict rewrite's).
#[test]
fn schemas_are_present_and_strict_form_is_sound() {
    let Some(spec) = spec() else {
        return;
    };
    for v in ProtocolVersion::STATEFUL {
        assert!(spec.has(v, "CallToolResult"), "{v}");
        assert!(spec.has(v, "InitializeResult"), "{v}");
        let minimal = json!({"content": [{"type": "text", "text": "x"}]});
        spec.validate(v, "CallToolResult", &minimal, true).unwrap();
        let extra = json!({"content": [], "surprise": 1});
        assert!(spec.validate(v, "CallToolResult", &extra, true).is_err());
        assert!(spec.validate(v, "CallToolResult", &extra, false).is_ok());
    }
    // Fields a version lacks are caught by the strict form.
    let structured = json!({"content": [], "structuredContent": {"a": 1}});
    assert!(
        spec.validate(V2025_03_26, "CallToolResult", &structured, true)
            .is_err()
    );
    assert!(
        spec.validate(V2025_06_18, "CallToolResult", &structured, true)
            .is_ok()
    );
}

// ---------------------------------------------------------------------------------------------
// Resources, prompts and completion
// ---------------------------------------------------------------------------------------------

#[test]
fn resources_prompts_and_completion_match_each_version() {
    let server = full_server();
    for v in ProtocolVersion::STATEFUL {
        let session = new_session();
        let init = initialize(&server, &session, v);
        assert_response(v, "InitializeResult", &init);
        let caps = &init["result"]["capabilities"];
        assert_eq!(
            caps["resources"],
            json!({"subscribe": true, "listChanged": true})
        );
        assert_eq!(caps["prompts"], json!({"listChanged": true}));
        assert_eq!(caps.get("completions").is_some(), v >= V2025_03_26, "{v}");

        let list = request(&server, &session, 1, "resources/list", None);
        assert_response(v, "ListResourcesResult", &list);
        let resource = &list["result"]["resources"][0];
        assert_eq!(resource["uri"], "dice://rules");
        assert_eq!(
            resource.get("title").is_some(),
            v >= V2025_06_18,
            "{v}: {resource}"
        );
        assert_eq!(
            resource.get("icons").is_some(),
            v >= V2025_11_25,
            "{v}: {resource}"
        );

        let templates = request(&server, &session, 2, "resources/templates/list", None);
        assert_response(v, "ListResourceTemplatesResult", &templates);
        let template = &templates["result"]["resourceTemplates"][0];
        assert_eq!(template["uriTemplate"], "dice://rolls/{id}");
        assert_eq!(
            template.get("title").is_some(),
            v >= V2025_06_18,
            "{v}: {template}"
        );
        assert_eq!(
            template.get("icons").is_some(),
            v >= V2025_11_25,
            "{v}: {template}"
        );

        let read = request(
            &server,
            &session,
            3,
            "resources/read",
            Some(json!({"uri": "dice://rolls/r-7"})),
        );
        assert_response(v, "ReadResourceResult", &read);
        assert_eq!(
            read["result"]["contents"][0],
            json!({"uri": "dice://rolls/r-7", "mimeType": "application/json",
                   "text": "{\"id\":\"r-7\",\"dice\":[3,4]}"})
        );
        let missing = request(
            &server,
            &session,
            4,
            "resources/read",
            Some(json!({"uri": "dice://nowhere"})),
        );
        assert_response(v, "ReadResourceResult", &missing);
        assert_eq!(error_code(&missing), -32002, "{v}: {missing}");

        for (id, method) in [(5, "resources/subscribe"), (6, "resources/unsubscribe")] {
            let r = request(
                &server,
                &session,
                id,
                method,
                Some(json!({"uri": "dice://rules"})),
            );
            assert_response(v, "EmptyResult", &r);
            assert_eq!(r["result"], json!({}));
        }

        let prompts = request(&server, &session, 7, "prompts/list", None);
        assert_response(v, "ListPromptsResult", &prompts);
        let prompt = &prompts["result"]["prompts"][0];
        assert_eq!(prompt["name"], "roll_prompt");
        assert_eq!(prompt["arguments"][0]["name"], "dice");
        assert_eq!(prompt["arguments"][0]["required"], json!(true));
        if v < V2025_06_18 {
            assert!(prompt.get("title").is_none(), "{v}: {prompt}");
        }

        let got = request(
            &server,
            &session,
            8,
            "prompts/get",
            Some(json!({"name": "roll_prompt", "arguments": {"dice": "2d6"}})),
        );
        assert_response(v, "GetPromptResult", &got);
        assert_eq!(
            got["result"]["messages"],
            json!([{"role": "user", "content": {"type": "text", "text": "Roll 2d6 for me."}}])
        );
        let bad_prompt = request(
            &server,
            &session,
            9,
            "prompts/get",
            Some(json!({"name": "roll_prompt", "arguments": {}})),
        );
        assert_response(v, "GetPromptResult", &bad_prompt);
        assert_eq!(error_code(&bad_prompt), -32602, "{v}: {bad_prompt}");

        let completion = request(
            &server,
            &session,
            10,
            "completion/complete",
            Some(json!({"ref": {"type": "ref/prompt", "name": "roll_prompt"},
                        "argument": {"name": "dice", "value": ""}})),
        );
        assert_response(v, "CompleteResult", &completion);
        assert_eq!(
            completion["result"]["completion"],
            json!({"values": ["1d6", "2d6"], "total": 2, "hasMore": false})
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2026-07-28: stateless requests
// ---------------------------------------------------------------------------------------------

fn stateless_request(server: &mcp_proto::McpServer, id: i64, method: &str, params: Value) -> Value {
    let mut params = params;
    params
        .as_object_mut()
        .unwrap()
        .insert("_meta".into(), stateless_meta());
    // A stateless request gets a fresh session: nothing carries over between requests.
    request(server, &new_session(), id, method, Some(params))
}

#[test]
fn stateless_results_match_the_2026_07_28_schema() {
    use ProtocolVersion::V2026_07_28 as V;
    if spec().is_some_and(|s| !s.has(V, "DiscoverResult")) {
        return;
    }
    let fx = fixture();
    let server = &fx.server;

    let discover = stateless_request(server, 1, "server/discover", json!({}));
    assert_response(V, "DiscoverResult", &discover);
    let result = &discover["result"];
    assert_eq!(result["resultType"], "complete");
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28")),
        "{result}"
    );

    let list = stateless_request(server, 2, "tools/list", json!({}));
    assert_response(V, "ListToolsResult", &list);
    assert_eq!(list["result"]["resultType"], "complete");
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 4);

    let call = stateless_request(
        server,
        3,
        "tools/call",
        json!({"name": "roll_dice", "arguments": {"n_dice": 2}}),
    );
    assert_response(V, "CallToolResult", &call);
    assert_eq!(
        call["result"]["structuredContent"],
        json!({"result": [1, 2]})
    );
    assert_eq!(call["result"]["resultType"], "complete");

    let media = stateless_request(server, 4, "tools/call", json!({"name": "media"}));
    assert_response(V, "CallToolResult", &media);

    let invalid = stateless_request(
        server,
        5,
        "tools/call",
        json!({"name": "roll_dice", "arguments": {"n_dice": 101}}),
    );
    assert_response(V, "CallToolResult", &invalid);
    assert_eq!(invalid["result"]["isError"], json!(true));
    assert_eq!(fx.dice_calls(), 1);

    let unknown = stateless_request(server, 6, "dice/juggle", json!({}));
    assert_eq!(error_code(&unknown), -32601);
    assert_schema(V, "JSONRPCErrorResponse", &unknown);
    assert_schema(V, "MethodNotFoundError", &unknown["error"]);

    // initialize, ping and logging/setLevel do not exist in 2026-07-28.
    for method in ["ping", "logging/setLevel"] {
        let gone = stateless_request(server, 7, method, json!({"level": "info"}));
        assert_eq!(error_code(&gone), -32601, "{method}: {gone}");
    }

    let mut meta = stateless_meta();
    meta["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let unsupported = request(
        server,
        &new_session(),
        8,
        "tools/list",
        Some(json!({"_meta": meta})),
    );
    assert_eq!(error_code(&unsupported), -32022, "{unsupported}");
    assert_schema(V, "UnsupportedProtocolVersionError", &unsupported);
    assert_eq!(unsupported["error"]["data"]["requested"], "2099-01-01");
}

#[test]
fn experimental_task_shapes_match_the_2025_11_25_schema() {
    use mcp_proto::task::{TaskEvent, TaskRecord};
    let caps = ServerCapabilities {
        tasks: Some(obj(
            json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}),
        )),
        ..ServerCapabilities::default()
    };
    assert_schema(
        V2025_11_25,
        "ServerCapabilities",
        &serde_json::to_value(&caps).unwrap(),
    );
    let mut task = TaskRecord::new("t-1", None, 1_785_240_000_123, 60_000, 500);
    assert_schema(V2025_11_25, "Task", &task.experimental());
    assert_schema(
        V2025_11_25,
        "CreateTaskResult",
        &json!({ "task": task.experimental() }),
    );
    task.apply(TaskEvent::Cancel, 1_785_240_001_000).unwrap();
    assert_schema(V2025_11_25, "GetTaskResult", &task.experimental());
    // allOf of NotificationParams and Task: each part is checked, the whole loosely.
    assert_schema(V2025_11_25, "Task", &task.experimental());
    assert_schema_loose(
        V2025_11_25,
        "TaskStatusNotification",
        &json!({"jsonrpc": "2.0", "method": "notifications/tasks/status",
            "params": task.experimental()}),
    );
    assert_schema(
        V2025_11_25,
        "ListTasksResult",
        &json!({"tasks": [task.experimental()], "nextCursor": "1"}),
    );
}
