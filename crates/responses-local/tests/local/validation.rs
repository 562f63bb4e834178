//! Every request validation rule, as a table: the exact status and body of each invalid request
//! (OpenAI's `{"error":{"message","type","param","code"}}`), and the loose inputs still accepted.

use serde_json::{Value, json};

use crate::support::*;

/// The exact error body for a 400 `invalid_request_error`.
fn body(message: &str, param: Option<&str>, code: Option<&str>) -> String {
    let text = |s: Option<&str>| s.map_or("null".to_owned(), |s| json!(s).to_string());
    format!(
        r#"{{"error":{{"message":{},"type":"invalid_request_error","param":{},"code":{}}}}}"#,
        json!(message),
        text(param),
        text(code)
    )
}

fn missing(param: &str) -> String {
    body(
        &format!("Missing required parameter: '{param}'."),
        Some(param),
        Some("missing_required_parameter"),
    )
}

fn invalid_type(param: &str, expected: &str, got: &str) -> String {
    body(
        &format!("Invalid type for '{param}': expected {expected}, but got {got} instead."),
        Some(param),
        Some("invalid_type"),
    )
}

fn invalid_value(param: &str, value: &str, supported: &str) -> String {
    body(
        &format!("Invalid value: '{value}'. Supported values are: {supported}."),
        Some(param),
        Some("invalid_value"),
    )
}

fn unsupported(param: &str, message: &str) -> String {
    body(message, Some(param), Some("unsupported_value"))
}

/// `{"model":"m","input":"hi"}` with `fields` added.
fn request(fields: Value) -> Value {
    let mut request = json!({"model":"m","input":"hi"});
    for (k, v) in fields.as_object().unwrap() {
        request[k] = v.clone();
    }
    request
}

/// A request whose only tool is the dice `mcp` tool with `fields` added.
fn with_tool(fields: Value) -> Value {
    let mut tool =
        json!({"type":"mcp","server_label":"dice_server","server_url":"http://dice.test/sse"});
    for (k, v) in fields.as_object().unwrap() {
        tool[k] = v.clone();
    }
    request(json!({ "tools": [tool] }))
}

/// A request whose `input` is this one item.
fn with_item(item: Value) -> Value {
    request(json!({ "input": [item] }))
}

const PARSE: &str = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)";

const TOOL_TYPES: &str = "'function', 'file_search', 'computer_use_preview', 'web_search', 'web_search_preview', 'mcp', 'code_interpreter', 'image_generation', 'local_shell', 'shell', 'custom', and 'apply_patch'";

const ITEM_TYPES: &str = "'message', 'mcp_approval_request', 'mcp_approval_response', 'mcp_call', 'mcp_list_tools', and 'item_reference'";

#[tokio::test]
async fn bodies_that_are_not_a_json_object_get_exact_400s() {
    let endpoint = start(FakeConnector::default()).await;
    let cases = [
        ("{not json", body(PARSE, None, None)),
        ("", body(PARSE, None, None)),
        (r#"{"model":"m","input":"hi"} x"#, body(PARSE, None, None)),
        ("null", invalid_type("body", "an object", "null")),
        ("[1]", invalid_type("body", "an object", "an array")),
        (r#""x""#, invalid_type("body", "an object", "a string")),
        ("5", invalid_type("body", "an object", "an integer")),
        ("1.5", invalid_type("body", "an object", "a decimal")),
        ("true", invalid_type("body", "an object", "a boolean")),
    ];
    for (raw, expected) in cases {
        let (status, text) = post_bytes(&endpoint, raw).await;
        assert_eq!((status, text), (400, expected), "body {raw:?}");
    }
}

/// Each case: the request, and its exact 400 body.
fn top_level_cases() -> Vec<(Value, String)> {
    vec![
        (json!({"input":"hi"}), missing("model")),
        (json!({"model":null,"input":"hi"}), missing("model")),
        (
            json!({"model":5,"input":"hi"}),
            invalid_type("model", "a string", "an integer"),
        ),
        (
            json!({"model":["m"],"input":"hi"}),
            invalid_type("model", "a string", "an array"),
        ),
        (json!({"model":"m"}), missing("input")),
        (json!({"model":"m","input":null}), missing("input")),
        (
            json!({"model":"m","input":5}),
            invalid_type("input", "a string or an array", "an integer"),
        ),
        (
            json!({"model":"m","input":{}}),
            invalid_type("input", "a string or an array", "an object"),
        ),
        (
            request(json!({"previous_response_id":5})),
            invalid_type("previous_response_id", "a string", "an integer"),
        ),
        (
            request(json!({"instructions":true})),
            invalid_type("instructions", "a string", "a boolean"),
        ),
        (
            request(json!({"stream":"yes"})),
            invalid_type("stream", "a boolean", "a string"),
        ),
        (
            request(json!({"store":1})),
            invalid_type("store", "a boolean", "an integer"),
        ),
        (
            request(json!({"parallel_tool_calls":{}})),
            invalid_type("parallel_tool_calls", "a boolean", "an object"),
        ),
        (
            request(json!({"temperature":"hot"})),
            invalid_type("temperature", "a number", "a string"),
        ),
        (
            request(json!({"top_p":[]})),
            invalid_type("top_p", "a number", "an array"),
        ),
        (
            request(json!({"max_tool_calls":-1})),
            invalid_type("max_tool_calls", "an integer", "an integer"),
        ),
        (
            request(json!({"max_tool_calls":1.5})),
            invalid_type("max_tool_calls", "an integer", "a decimal"),
        ),
        (
            request(json!({"max_tool_calls":4_294_967_296_u64})),
            invalid_type("max_tool_calls", "an integer", "an integer"),
        ),
        (
            request(json!({"max_tool_calls":"3"})),
            invalid_type("max_tool_calls", "an integer", "a string"),
        ),
        (
            request(json!({"metadata":"x"})),
            invalid_type("metadata", "an object", "a string"),
        ),
        (
            request(json!({"metadata":{"k":1}})),
            invalid_type("metadata.k", "a string", "an integer"),
        ),
        (
            request(json!({"previous_response_id":"resp_nope"})),
            body(
                "Previous response with id 'resp_nope' not found.",
                Some("previous_response_id"),
                Some("previous_response_not_found"),
            ),
        ),
    ]
}

fn tool_choice_cases() -> Vec<(Value, String)> {
    vec![
        (
            request(json!({"tool_choice":"sometimes"})),
            invalid_value("tool_choice", "sometimes", "'none', 'auto', and 'required'"),
        ),
        (
            request(json!({"tool_choice":5})),
            invalid_type("tool_choice", "a string or an object", "an integer"),
        ),
        (
            request(json!({"tool_choice":{"type":"function","name":"f"}})),
            unsupported(
                "tool_choice.type",
                "Tool choice 'function' is not supported by this local endpoint; only 'mcp' is.",
            ),
        ),
        (
            request(json!({"tool_choice":{}})),
            missing("tool_choice.type"),
        ),
        (
            request(json!({"tool_choice":{"type":5}})),
            missing("tool_choice.type"),
        ),
        (
            request(json!({"tool_choice":{"type":"mcp"}})),
            missing("tool_choice.server_label"),
        ),
        (
            request(json!({"tool_choice":{"type":"mcp","server_label":5}})),
            invalid_type("tool_choice.server_label", "a string", "an integer"),
        ),
        (
            request(json!({"tool_choice":{"type":"mcp","server_label":"s","name":5}})),
            invalid_type("tool_choice.name", "a string", "an integer"),
        ),
    ]
}

fn input_item_cases() -> Vec<(Value, String)> {
    let approval = |fields: Value| {
        let mut item = json!({"type":"mcp_approval_request","id":"mcpr_1","server_label":"s","name":"n","arguments":"{}"});
        for (k, v) in fields.as_object().unwrap() {
            item[k] = v.clone();
        }
        with_item(item)
    };
    let listed =
        |tools: Value| with_item(json!({"type":"mcp_list_tools","server_label":"s","tools":tools}));
    vec![
        (
            with_item(json!(5)),
            invalid_type("input[0]", "an object", "an integer"),
        ),
        (
            with_item(json!({"type":5})),
            invalid_type("input[0].type", "a string", "an integer"),
        ),
        (
            with_item(json!({"type":"banana"})),
            invalid_value("input[0].type", "banana", ITEM_TYPES),
        ),
        (with_item(json!({"content":"x"})), missing("input[0].role")),
        (
            with_item(json!({"type":"message","role":5,"content":"x"})),
            invalid_type("input[0].role", "a string", "an integer"),
        ),
        (
            with_item(json!({"role":"robot","content":"x"})),
            invalid_value(
                "input[0].role",
                "robot",
                "'user', 'assistant', 'system', and 'developer'",
            ),
        ),
        (
            with_item(json!({"role":"user"})),
            missing("input[0].content"),
        ),
        (
            with_item(json!({"role":"user","content":true})),
            invalid_type("input[0].content", "a string or an array", "a boolean"),
        ),
        (
            with_item(json!({"type":"mcp_approval_response","approve":true})),
            missing("input[0].approval_request_id"),
        ),
        (
            with_item(
                json!({"type":"mcp_approval_response","approval_request_id":5,"approve":true}),
            ),
            invalid_type("input[0].approval_request_id", "a string", "an integer"),
        ),
        (
            with_item(json!({"type":"mcp_approval_response","approval_request_id":"mcpr_x"})),
            missing("input[0].approve"),
        ),
        (
            with_item(
                json!({"type":"mcp_approval_response","approval_request_id":"mcpr_x","approve":"yes"}),
            ),
            invalid_type("input[0].approve", "a boolean", "a string"),
        ),
        (
            with_item(
                json!({"type":"mcp_approval_response","approval_request_id":"mcpr_x","approve":true}),
            ),
            body(
                "No pending approval request found with id 'mcpr_x'.",
                Some("input[0].approval_request_id"),
                Some("invalid_value"),
            ),
        ),
        (approval(json!({"id":null})), missing("input[0].id")),
        (
            approval(json!({"server_label":5})),
            invalid_type("input[0].server_label", "a string", "an integer"),
        ),
        (approval(json!({"name":null})), missing("input[0].name")),
        (
            approval(json!({"arguments":{}})),
            invalid_type("input[0].arguments", "a string", "an object"),
        ),
        (
            with_item(json!({"type":"mcp_list_tools","tools":[]})),
            missing("input[0].server_label"),
        ),
        (
            with_item(json!({"type":"mcp_list_tools","server_label":"s"})),
            missing("input[0].tools"),
        ),
        (
            listed(json!("x")),
            invalid_type("input[0].tools", "an array", "a string"),
        ),
        (
            listed(json!([5])),
            invalid_type("input[0].tools[0]", "an object", "an integer"),
        ),
        (listed(json!([{}])), missing("input[0].tools[0].name")),
        (
            listed(json!([{"name":1}])),
            invalid_type("input[0].tools[0].name", "a string", "an integer"),
        ),
    ]
}

fn tool_cases() -> Vec<(Value, String)> {
    let tool = |tool: Value| request(json!({ "tools": [tool] }));
    vec![
        (
            request(json!({"tools":"x"})),
            invalid_type("tools", "an array", "a string"),
        ),
        (
            request(json!({"tools":{}})),
            invalid_type("tools", "an array", "an object"),
        ),
        (
            tool(json!(5)),
            invalid_type("tools[0]", "an object", "an integer"),
        ),
        (
            tool(json!({"server_label":"s","server_url":"http://dice.test/sse"})),
            missing("tools[0].type"),
        ),
        (
            tool(json!({"type":5})),
            invalid_type("tools[0].type", "a string", "an integer"),
        ),
        (
            tool(json!({"type":"banana"})),
            invalid_value("tools[0].type", "banana", TOOL_TYPES),
        ),
        (
            tool(json!({"type":"function","name":"f"})),
            unsupported(
                "tools[0].type",
                "Tool type 'function' is not supported by this local endpoint; only 'mcp' tools are.",
            ),
        ),
        (
            tool(json!({"type":"mcp","server_url":"http://dice.test/sse"})),
            missing("tools[0].server_label"),
        ),
        (
            with_tool(json!({"server_label":5})),
            invalid_type("tools[0].server_label", "a string", "an integer"),
        ),
        (
            tool(json!({"type":"mcp","server_label":"dice_server"})),
            missing("tools[0].server_url"),
        ),
        (
            with_tool(json!({"server_url":null})),
            missing("tools[0].server_url"),
        ),
        (
            with_tool(json!({"server_url":5})),
            invalid_type("tools[0].server_url", "a string", "an integer"),
        ),
        (
            with_tool(json!({"server_url":"ftp://dice.test/sse"})),
            body(
                "Invalid URL 'ftp://dice.test/sse': the MCP server URL must start with http:// or https://.",
                Some("tools[0].server_url"),
                Some("invalid_value"),
            ),
        ),
        (
            with_tool(json!({"connector_id":"connector_gmail"})),
            unsupported(
                "tools[0].connector_id",
                "'connector_id' is not supported by this local endpoint; use 'server_url'.",
            ),
        ),
        (
            with_tool(json!({"tunnel_id":"tun_1"})),
            unsupported(
                "tools[0].tunnel_id",
                "'tunnel_id' is not supported by this local endpoint; use 'server_url'.",
            ),
        ),
        (
            with_tool(json!({"headers":"x"})),
            invalid_type("tools[0].headers", "an object", "a string"),
        ),
        (
            with_tool(json!({"headers":{"X":1}})),
            invalid_type("tools[0].headers.X", "a string", "an integer"),
        ),
        (
            with_tool(json!({"server_description":5})),
            invalid_type("tools[0].server_description", "a string", "an integer"),
        ),
        (
            with_tool(json!({"authorization":5})),
            invalid_type("tools[0].authorization", "a string", "an integer"),
        ),
        (
            request(json!({"tools":[
                {"type":"mcp","server_label":"dice_server","server_url":"http://dice.test/sse"},
                {"type":"mcp","server_label":"dice_server","server_url":"http://tools.test/mcp"}]})),
            body(
                "Duplicate MCP server_label 'dice_server': each mcp tool needs its own label.",
                Some("tools[1].server_label"),
                Some("invalid_value"),
            ),
        ),
    ]
}

fn tool_filter_cases() -> Vec<(Value, String)> {
    vec![
        (
            with_tool(json!({"allowed_tools":"roll_dice"})),
            invalid_type(
                "tools[0].allowed_tools",
                "an array or an object",
                "a string",
            ),
        ),
        (
            with_tool(json!({"allowed_tools":["roll_dice",1]})),
            invalid_type("tools[0].allowed_tools[1]", "a string", "an integer"),
        ),
        (
            with_tool(json!({"allowed_tools":{"tool_names":"roll_dice"}})),
            invalid_type("tools[0].allowed_tools.tool_names", "an array", "a string"),
        ),
        (
            with_tool(json!({"allowed_tools":{"tool_names":[null]}})),
            invalid_type("tools[0].allowed_tools.tool_names[0]", "a string", "null"),
        ),
        (
            with_tool(json!({"allowed_tools":{"read_only":"yes"}})),
            invalid_type("tools[0].allowed_tools.read_only", "a boolean", "a string"),
        ),
        (
            with_tool(json!({"require_approval":"sometimes"})),
            invalid_value(
                "tools[0].require_approval",
                "sometimes",
                "'always' and 'never'",
            ),
        ),
        (
            with_tool(json!({"require_approval":5})),
            invalid_type(
                "tools[0].require_approval",
                "'always', 'never' or an object",
                "an integer",
            ),
        ),
        (
            with_tool(json!({"require_approval":{"sometimes":{}}})),
            body(
                "Unknown parameter: 'tools[0].require_approval.sometimes'.",
                Some("tools[0].require_approval.sometimes"),
                Some("unknown_parameter"),
            ),
        ),
        (
            with_tool(json!({"require_approval":{"always":5}})),
            invalid_type(
                "tools[0].require_approval.always",
                "an object",
                "an integer",
            ),
        ),
        (
            with_tool(json!({"require_approval":{"never":{"tool_names":"x"}}})),
            invalid_type(
                "tools[0].require_approval.never.tool_names",
                "an array",
                "a string",
            ),
        ),
        (
            with_tool(json!({"require_approval":{"never":{"read_only":1.5}}})),
            invalid_type(
                "tools[0].require_approval.never.read_only",
                "a boolean",
                "a decimal",
            ),
        ),
    ]
}

#[tokio::test]
async fn every_validation_rule_has_its_exact_400() {
    let endpoint = start(FakeConnector::default()).await;
    let cases = [
        top_level_cases(),
        tool_choice_cases(),
        input_item_cases(),
        tool_cases(),
        tool_filter_cases(),
    ];
    for (request, expected) in cases.into_iter().flatten() {
        let (status, text) = post(&endpoint, &request).await;
        assert_eq!((status, text), (400, expected), "request {request}");
    }
}

#[tokio::test]
async fn with_several_problems_the_first_met_in_the_body_is_reported() {
    let endpoint = start(FakeConnector::default()).await;
    let cases = [
        (
            json!({"input":5}),
            invalid_type("input", "a string or an array", "an integer"),
        ),
        (
            json!({"tools":[{"type":"banana"}],"stream":"yes","model":"m","input":"hi"}),
            invalid_type("stream", "a boolean", "a string"),
        ),
        (
            with_tool(json!({"server_url":"ftp://x","headers":{"X":1}})),
            invalid_type("tools[0].headers.X", "a string", "an integer"),
        ),
    ];
    for (request, expected) in cases {
        let (status, text) = post(&endpoint, &request).await;
        assert_eq!((status, text), (400, expected), "request {request}");
    }
}

#[tokio::test]
async fn too_many_tools_are_refused_before_their_items_are_read() {
    let endpoint = start_with(
        responses_local::LocalResponses::builder()
            .connector(FakeConnector::default())
            .max_mcp_tools(2),
    )
    .await;
    let (status, text) = post(&endpoint, &request(json!({"tools":[1, 2, 3]}))).await;
    assert_eq!(
        (status, text),
        (
            400,
            body(
                "Invalid 'tools': array too long. Expected an array with maximum length 2, but got an array with length 3 instead.",
                Some("tools"),
                Some("array_above_max_length"),
            )
        )
    );
}

#[tokio::test]
async fn an_approval_for_a_server_not_among_the_tools_is_refused() {
    let endpoint = start(FakeConnector::default()).await;
    let first = post_ok(
        &endpoint,
        &dice_request("http://dice.test/sse", Some("always")),
    )
    .await;
    let approval_id = first["output"][1]["id"].as_str().unwrap();
    let mut follow_up = dice_request("http://dice.test/sse", Some("always"));
    follow_up["tools"][0]["server_label"] = json!("other_server");
    follow_up["previous_response_id"] = first["id"].clone();
    follow_up["input"] =
        json!([{"type":"mcp_approval_response","approval_request_id":approval_id,"approve":true}]);
    let (status, text) = post(&endpoint, &follow_up).await;
    assert_eq!(
        (status, text),
        (
            400,
            body(
                &format!(
                    "Approval request '{approval_id}' is for MCP server 'dice_server', which is not among this request's tools."
                ),
                Some("input[0].approval_request_id"),
                Some("invalid_value"),
            )
        )
    );
    // With the right server, the denial goes through; a `reason` that is not a string is ignored.
    follow_up["tools"][0]["server_label"] = json!("dice_server");
    follow_up["input"][0]["approve"] = json!(false);
    follow_up["input"][0]["reason"] = json!(5);
    let denied = post_ok(&endpoint, &follow_up).await;
    assert_eq!(
        denied["output_text"],
        "The call to roll_dice on dice_server was not approved, so I did not run it."
    );
}

#[tokio::test]
async fn loose_inputs_the_endpoint_accepts() {
    let endpoint = start(FakeConnector::default()).await;
    let accepted = [
        request(json!({"unknown_field":1,"truncation":"auto","user":"u"})),
        request(
            json!({"tools":null,"metadata":null,"tool_choice":null,"stream":null,
            "store":null,"temperature":null,"top_p":null,"max_tool_calls":null,
            "previous_response_id":null,"instructions":null,"parallel_tool_calls":null}),
        ),
        request(json!({"temperature":0.5,"top_p":1,"max_tool_calls":0,"metadata":{"a":"b"}})),
        with_item(json!({"type":"mcp_call","name":5,"output":{"x":1}})),
        with_item(json!({"type":"item_reference","id":5})),
        with_item(
            json!({"type":null,"role":"user","content":[{"type":"input_image"},5,{"text":"hi"}]}),
        ),
        with_item(json!({"type":"mcp_list_tools","server_label":"s",
            "tools":[{"name":"t","description":5,"annotations":null}]})),
        with_tool(
            json!({"require_approval":"never","defer_loading":true,"connector_id":null,
            "tunnel_id":null,"headers":null,"authorization":null,"allowed_tools":null}),
        ),
        with_tool(json!({"require_approval":{"always":null,"never":{}},"allowed_tools":{}})),
        request(json!({"tool_choice":{"type":"mcp","server_label":"s","name":null}})),
    ];
    for request in accepted {
        let (status, text) = post(&endpoint, &request).await;
        assert_eq!(status, 200, "request {request}: {text}");
    }
}
