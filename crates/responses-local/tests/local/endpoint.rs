//! The local Responses endpoint over real sockets, with an in-process fake MCP connector.

use std::time::Duration;

use crate::support::*;
use async_openai::types::responses::{MCPToolCallError, OutputItem, ResponseStreamEvent};
use futures::StreamExt;
use responses_local::LocalResponses;
use serde_json::{Value, json};

const GUIDE_424: &str = r#"{"error":{"message":"Error retrieving tool list from MCP server: 'dice_server'. Http status code: 401 (Unauthorized)","type":"external_connector_error","param":"tools","code":"http_error"}}"#;

#[tokio::test]
async fn requests_without_the_endpoints_key_get_401() {
    let endpoint = start(FakeConnector::default()).await;
    let url = format!("{}/responses", endpoint.base_url());
    let missing = r#"{"error":{"message":"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    let client = reqwest::Client::new();
    let body = json!({"model":"m","input":"hi"});
    let send = |auth: Option<String>| {
        let mut request = client.post(&url).json(&body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    for auth in [
        None,
        Some("Basic dXNlcjpwdw=="),
        Some("Bearer "),
        Some("Bearer"),
    ] {
        let answer = send(auth.map(str::to_owned)).await;
        assert_eq!(answer, (401, missing.to_owned()), "auth {auth:?}");
    }
    let wrong = r#"{"error":{"message":"Incorrect API key provided: sk-*****************cdeg. Use the key the local Responses endpoint printed at start, or the one it was given with --api-key.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    let near_miss = format!("{}g", &API_KEY[..API_KEY.len() - 1]);
    for key in [
        near_miss.as_str(),
        "sk-anything-at-all",
        &API_KEY[..API_KEY.len() - 1],
    ] {
        let (status, text) = send(Some(format!("Bearer {key}"))).await;
        assert_eq!(status, 401, "key {key}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"]["code"], "invalid_api_key", "key {key}");
    }
    assert_eq!(
        send(Some(format!("Bearer {near_miss}"))).await,
        (401, wrong.to_owned())
    );
    assert_eq!(send(Some(format!("Bearer {API_KEY}"))).await.0, 200);
    let get = client.get(format!("{url}/resp_x")).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 401);
    let delete = client.delete(format!("{url}/resp_x")).send().await.unwrap();
    assert_eq!(delete.status().as_u16(), 401);
}

#[tokio::test]
async fn an_unauthorized_mcp_server_gives_the_real_424_byte_for_byte() {
    let connector = FakeConnector::default();
    let endpoint = start(connector.clone()).await;
    let (status, text) = post(
        &endpoint,
        &dice_request("http://auth.test/sse", Some("never")),
    )
    .await;
    assert_eq!(status, 424);
    assert_eq!(text, GUIDE_424);

    // With the token in `headers` (the way FastMCP's OpenAI integration guide does it) and in `authorization`, it works.
    let mut request = dice_request("http://auth.test/sse", Some("never"));
    request["tools"][0]["headers"] = json!({"Authorization": format!("Bearer {GOOD_TOKEN}")});
    let body = post_ok(&endpoint, &request).await;
    assert_eq!(item_types(&body), ["mcp_list_tools", "mcp_call", "message"]);
    assert_eq!(
        body["tools"][0]["headers"],
        Value::Null,
        "headers are not echoed"
    );
    let mut request = dice_request("http://auth.test/sse", Some("never"));
    request["tools"][0]["authorization"] = json!(GOOD_TOKEN);
    let body = post_ok(&endpoint, &request).await;
    assert_eq!(item_types(&body), ["mcp_list_tools", "mcp_call", "message"]);

    // The stream variant fails before streaming, with the same answer.
    let mut request = dice_request("http://auth.test/sse", Some("never"));
    request["stream"] = json!(true);
    let (status, text) = post(&endpoint, &request).await;
    assert_eq!((status, text.as_str()), (424, GUIDE_424));
}

#[tokio::test]
async fn unreachable_servers_get_one_answer_whatever_the_cause() {
    let endpoint = start_with(
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .mcp_timeout(Duration::from_millis(200)),
    )
    .await;
    let uniform = r#"{"error":{"message":"Error retrieving tool list from MCP server: 'dice_server'. Http status code: 424 (Failed Dependency)","type":"external_connector_error","param":"tools","code":"http_error"}}"#;
    // Refused, DNS failure, and a connection that never answers: nothing tells them apart.
    for url in [
        "http://127.0.0.1:9/sse",
        "http://nxdomain.test/sse",
        "http://blackhole.test/mcp",
    ] {
        let (status, text) = post(&endpoint, &dice_request(url, Some("never"))).await;
        assert_eq!((status, text.as_str()), (424, uniform), "{url}");
    }
    // A server that answered `initialize` but not `tools/list` in time keeps its own answer.
    let (status, text) = post(
        &endpoint,
        &dice_request("http://slow.test/mcp", Some("never")),
    )
    .await;
    assert_eq!(status, 424);
    assert_eq!(
        text,
        r#"{"error":{"message":"Error retrieving tool list from MCP server: 'dice_server'. Request timed out.","type":"external_connector_error","param":"tools","code":"timeout_error"}}"#
    );

    // A call to a server that cannot be reached (the list came from the chain) fails the same way.
    let first = post_ok(
        &endpoint,
        &dice_request("http://dice.test/sse", Some("never")),
    )
    .await;
    let mut moved = dice_request("http://127.0.0.1:9/sse", Some("never"));
    moved["previous_response_id"] = first["id"].clone();
    let second = post_ok(&endpoint, &moved).await;
    assert_eq!(item_types(&second), ["mcp_call", "message"]);
    assert_eq!(
        second["output"][0]["error"],
        json!({"type":"http_error","code":424,"message":"Failed Dependency"})
    );
}

fn dice_values(call: &Value) -> Vec<i64> {
    serde_json::from_str(call["output"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn the_dice_flow_answers_with_the_call_output() {
    let connector = FakeConnector::default();
    let endpoint = start(connector.clone()).await;
    let body = post_ok(
        &endpoint,
        &dice_request("http://dice.test/sse", Some("never")),
    )
    .await;

    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "gpt-4.1");
    assert!(body["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(item_types(&body), ["mcp_list_tools", "mcp_call", "message"]);

    let list = &body["output"][0];
    assert!(list["id"].as_str().unwrap().starts_with("mcpl_"));
    assert_eq!(list["server_label"], "dice_server");
    assert_eq!(list["error"], Value::Null);
    assert_eq!(
        list["tools"],
        json!([{"name":"roll_dice","description":"Roll `n_dice` 6-sided dice and return the results.",
                "input_schema":{"properties":{"n_dice":{"title":"N Dice","type":"integer"}},"required":["n_dice"],"type":"object"},
                "annotations":null}])
    );

    let call = &body["output"][1];
    assert!(call["id"].as_str().unwrap().starts_with("mcp_"));
    assert_eq!(call["name"], "roll_dice");
    assert_eq!(call["arguments"], r#"{"n_dice":3}"#);
    assert_eq!(call["status"], "completed");
    assert_eq!(call["error"], Value::Null);
    assert_eq!(call["approval_request_id"], Value::Null);
    let values = dice_values(call);
    assert_eq!(values.len(), 3);
    assert!(values.iter().all(|v| (1..=6).contains(v)));

    let message = &body["output"][2];
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["status"], "completed");
    assert_eq!(message["content"][0]["type"], "output_text");
    assert_eq!(message["content"][0]["text"], dice_sentence(&values));
    assert_eq!(body["output_text"], dice_sentence(&values));

    let usage = &body["usage"];
    let (input, output) = (
        usage["input_tokens"].as_u64().unwrap(),
        usage["output_tokens"].as_u64().unwrap(),
    );
    assert!(input > 0 && output > 0);
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), input + output);
    // The openai SDK (3.57) requires both detail fields.
    assert_eq!(
        usage["input_tokens_details"],
        json!({"cached_tokens": 0, "cache_write_tokens": 0})
    );
    assert_eq!(
        usage["output_tokens_details"],
        json!({"reasoning_tokens": 0})
    );

    let typed = assert_async_openai_reads(&body);
    assert_eq!(typed.output_text().unwrap(), dice_sentence(&values));
    assert!(matches!(&typed.output[1], OutputItem::McpCall(c) if c.arguments == r#"{"n_dice":3}"#));

    assert_eq!(
        connector.log(),
        [
            "connect dice_server http://dice.test/sse".to_owned(),
            "list_tools dice_server".to_owned(),
            r#"call dice_server roll_dice {"n_dice":3}"#.to_owned(),
            "close dice_server".to_owned(),
        ]
    );
}

#[tokio::test]
async fn structured_results_are_read_too() {
    let endpoint = start(FakeConnector::default()).await;
    let body = post_ok(
        &endpoint,
        &dice_request("http://structured.test/mcp", Some("never")),
    )
    .await;
    let output: Value =
        serde_json::from_str(body["output"][1]["output"].as_str().unwrap()).unwrap();
    let values: Vec<i64> = serde_json::from_value(output["result"].clone()).unwrap();
    assert_eq!(values.len(), 3);
    assert_eq!(body["output_text"], dice_sentence(&values));
}

#[tokio::test]
async fn approval_always_round_trips_approve_and_deny() {
    let connector = FakeConnector::default();
    let endpoint = start(connector.clone()).await;
    let request = dice_request("http://dice.test/sse", Some("always"));

    // Approve.
    let first = post_ok(&endpoint, &request).await;
    assert_eq!(
        item_types(&first),
        ["mcp_list_tools", "mcp_approval_request"]
    );
    assert_eq!(first["output_text"], "");
    let approval = &first["output"][1];
    let approval_id = approval["id"].as_str().unwrap();
    assert!(approval_id.starts_with("mcpr_"));
    assert_eq!(approval["server_label"], "dice_server");
    assert_eq!(approval["name"], "roll_dice");
    assert_eq!(approval["arguments"], r#"{"n_dice":3}"#);
    assert_async_openai_reads(&first);
    assert_eq!(connector.count("call"), 0);

    let mut follow_up = request.clone();
    follow_up["previous_response_id"] = first["id"].clone();
    follow_up["input"] =
        json!([{"type":"mcp_approval_response","approval_request_id":approval_id,"approve":true}]);
    let second = post_ok(&endpoint, &follow_up).await;
    assert_eq!(second["previous_response_id"], first["id"]);
    assert_eq!(item_types(&second), ["mcp_call", "message"]);
    assert_eq!(second["output"][0]["approval_request_id"], approval_id);
    let values = dice_values(&second["output"][0]);
    assert_eq!(second["output_text"], dice_sentence(&values));
    assert_async_openai_reads(&second);
    assert_eq!(connector.count("list_tools"), 1);
    assert_eq!(connector.count("call"), 1);

    // Along the chain, the answered approval is no longer pending.
    let mut again = follow_up.clone();
    again["previous_response_id"] = second["id"].clone();
    let (status, text) = post(&endpoint, &again).await;
    assert_eq!(status, 400);
    assert!(text.contains("No pending approval request found"), "{text}");

    // Deny.
    let first = post_ok(&endpoint, &request).await;
    let approval_id = first["output"][1]["id"].as_str().unwrap();
    let mut follow_up = request.clone();
    follow_up["previous_response_id"] = first["id"].clone();
    follow_up["input"] =
        json!([{"type":"mcp_approval_response","approval_request_id":approval_id,"approve":false}]);
    let denied = post_ok(&endpoint, &follow_up).await;
    assert_eq!(item_types(&denied), ["message"]);
    assert_eq!(
        denied["output_text"],
        "The call to roll_dice on dice_server was not approved, so I did not run it."
    );
    assert_eq!(connector.count("call"), 1, "a denied call does not run");
}

#[tokio::test]
async fn absent_require_approval_asks_and_filters_decide_per_tool() {
    let endpoint = start(FakeConnector::default()).await;
    let body = post_ok(&endpoint, &dice_request("http://dice.test/sse", None)).await;
    assert_eq!(
        item_types(&body),
        ["mcp_list_tools", "mcp_approval_request"]
    );

    let mut request = dice_request("http://dice.test/sse", None);
    request["tools"][0]["require_approval"] = json!({"never":{"tool_names":["roll_dice"]}});
    let body = post_ok(&endpoint, &request).await;
    assert_eq!(item_types(&body), ["mcp_list_tools", "mcp_call", "message"]);

    request["tools"][0]["require_approval"] =
        json!({"always":{"tool_names":["roll_dice"]},"never":{"tool_names":["roll_dice"]}});
    let body = post_ok(&endpoint, &request).await;
    assert_eq!(
        item_types(&body),
        ["mcp_list_tools", "mcp_approval_request"]
    );
    assert_async_openai_reads(&body);
}

#[tokio::test]
async fn allowed_tools_excluding_roll_dice_is_honoured() {
    let connector = FakeConnector::default();
    let endpoint = start(connector.clone()).await;
    let mut request = dice_request("http://tools.test/mcp", Some("never"));
    request["tools"][0]["allowed_tools"] = json!(["get_weather"]);
    let body = post_ok(&endpoint, &request).await;
    assert_eq!(item_types(&body), ["mcp_list_tools", "mcp_call", "message"]);
    let names: Vec<&str> = body["output"][0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather"]);
    assert_eq!(body["output"][1]["name"], "get_weather");
    assert_eq!(body["output"][1]["arguments"], r#"{"city":"example"}"#);
    assert_eq!(body["output"][1]["output"], "Sunny in example");
    assert_eq!(
        body["output_text"],
        "I called get_weather on dice_server and it returned: Sunny in example"
    );
    assert_eq!(connector.count("call dice_server roll_dice"), 0);

    // The filter form: read-only tools only.
    request["tools"][0]["allowed_tools"] = json!({"read_only": true});
    let body = post_ok(&endpoint, &request).await;
    assert_eq!(body["output"][0]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(body["output"][1]["name"], "get_weather");
    assert_async_openai_reads(&body);

    // Nothing allowed: a plain answer.
    request["tools"][0]["allowed_tools"] = json!([]);
    let body = post_ok(&endpoint, &request).await;
    assert_eq!(item_types(&body), ["mcp_list_tools", "message"]);
    assert_eq!(
        body["output_text"],
        "I have no tools available for this request. You said: \"Roll a few dice!\""
    );
}

#[tokio::test]
async fn failed_calls_carry_typed_errors() {
    let endpoint = start(FakeConnector::default()).await;
    for (tool, expected) in [
        (
            "explode",
            json!({"type":"mcp_tool_execution_error","content":[{"type":"text","text":"boom"}]}),
        ),
        (
            "bad_args",
            json!({"type":"mcp_protocol_error","code":-32602,"message":"Invalid params"}),
        ),
    ] {
        let mut request = dice_request("http://tools.test/mcp", Some("never"));
        request["tools"][0]["allowed_tools"] = json!([tool]);
        let body = post_ok(&endpoint, &request).await;
        let call = &body["output"][1];
        assert_eq!(call["status"], "failed");
        assert_eq!(call["output"], Value::Null);
        assert_eq!(call["error"], expected);
        let typed = assert_async_openai_reads(&body);
        let OutputItem::McpCall(call) = &typed.output[1] else {
            panic!("not an mcp_call")
        };
        match (tool, call.error.as_ref().unwrap()) {
            ("explode", MCPToolCallError::McpToolExecutionError(_)) => {}
            ("bad_args", MCPToolCallError::McpProtocolError(e)) => assert_eq!(e.code, -32602),
            (t, e) => panic!("{t}: unexpected {e:?}"),
        }
    }
}

#[tokio::test]
async fn tool_lists_are_reused_along_a_previous_response_chain() {
    let connector = FakeConnector::default();
    let endpoint = start(connector.clone()).await;
    let request = dice_request("http://dice.test/sse", Some("never"));
    let first = post_ok(&endpoint, &request).await;
    let mut second_request = request.clone();
    second_request["previous_response_id"] = first["id"].clone();
    second_request["input"] = json!("Roll 2 dice");
    let second = post_ok(&endpoint, &second_request).await;
    assert_eq!(item_types(&second), ["mcp_call", "message"]);
    assert_eq!(second["output"][0]["arguments"], r#"{"n_dice":2}"#);
    let values = dice_values(&second["output"][0]);
    assert_eq!(second["output_text"], dice_sentence(&values));
    assert_eq!(
        connector.count("list_tools"),
        1,
        "log: {:?}",
        connector.log()
    );
    assert_eq!(
        connector.count("connect"),
        2,
        "the call still needs a session"
    );

    // Passing the earlier list as an input item avoids listing too.
    let mut manual = request.clone();
    manual["input"] =
        json!([first["output"][0].clone(), {"role":"user","content":"Roll a few dice!"}]);
    let third = post_ok(&endpoint, &manual).await;
    assert_eq!(item_types(&third), ["mcp_call", "message"]);
    assert_eq!(connector.count("list_tools"), 1);
}

#[tokio::test]
async fn streaming_sends_the_real_event_sequence() {
    let endpoint = start(FakeConnector::default()).await;
    let mut request = dice_request("http://dice.test/sse", Some("never"));
    request["stream"] = json!(true);
    let events = stream_events(&endpoint, &request).await;

    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    let deltas = kinds
        .iter()
        .filter(|k| **k == "response.output_text.delta")
        .count();
    assert!(deltas > 1, "the text arrives in several deltas");
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(kinds, expected);

    for (i, (kind, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], kind.as_str());
        assert_eq!(data["sequence_number"], i as u64);
        let typed: ResponseStreamEvent = serde_json::from_value(data.clone())
            .unwrap_or_else(|e| panic!("async-openai cannot read {kind}: {e}\n{data:#}"));
        let _ = typed;
    }
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    assert_eq!(events[0].1["response"]["output"], json!([]));
    assert_eq!(events[2].1["output_index"], 0);
    assert_eq!(events[6].1["output_index"], 1);
    assert_eq!(events[8].1["delta"], r#"{"n_dice":3}"#);

    let text: String = events
        .iter()
        .filter(|(k, _)| k == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output_text"], text.as_str());
    let values = dice_values(&completed["output"][1]);
    assert_eq!(text, dice_sentence(&values));

    // The stored response is the completed one.
    let stored: Value = reqwest::Client::new()
        .get(format!(
            "{}/responses/{}",
            endpoint.base_url(),
            completed["id"].as_str().unwrap()
        ))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(&stored, completed);
}

#[tokio::test]
async fn streamed_approval_requests_and_failed_calls_are_typed() {
    let endpoint = start(FakeConnector::default()).await;
    let mut request = dice_request("http://dice.test/sse", Some("always"));
    request["stream"] = json!(true);
    let kinds: Vec<String> = stream_events(&endpoint, &request)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.mcp_list_tools.in_progress",
            "response.mcp_list_tools.completed",
            "response.output_item.done",
            "response.output_item.added",
            "response.output_item.done",
            "response.completed"
        ]
    );

    let mut request = dice_request("http://tools.test/mcp", Some("never"));
    request["tools"][0]["allowed_tools"] = json!(["explode"]);
    request["stream"] = json!(true);
    let events = stream_events(&endpoint, &request).await;
    assert!(events.iter().any(|(k, _)| k == "response.mcp_call.failed"));
    for (_, data) in &events {
        serde_json::from_value::<ResponseStreamEvent>(data.clone()).unwrap();
    }
}

#[tokio::test]
async fn async_openai_reads_the_stream_it_asked_for() {
    use async_openai::Client;
    use async_openai::config::OpenAIConfig;
    let endpoint = start(FakeConnector::default()).await;
    let client = Client::with_config(
        OpenAIConfig::new()
            .with_api_base(endpoint.base_url())
            .with_api_key(API_KEY),
    );
    let request =
        serde_json::from_value(dice_request("http://dice.test/sse", Some("never"))).unwrap();
    let mut stream = client.responses().create_stream(request).await.unwrap();
    let mut count = 0;
    let mut last = None;
    while let Some(event) = stream.next().await {
        let event = event.unwrap();
        count += 1;
        last = Some(event);
    }
    assert!(count > 15);
    let Some(ResponseStreamEvent::ResponseCompleted(done)) = last else {
        panic!("last event is not response.completed")
    };
    let call = match &done.response.output[1] {
        OutputItem::McpCall(call) => call.clone(),
        other => panic!("{other:?}"),
    };
    let values: Vec<i64> = serde_json::from_str(call.output.as_deref().unwrap()).unwrap();
    assert_eq!(done.response.output_text().unwrap(), dice_sentence(&values));
}

#[tokio::test]
async fn stored_responses_can_be_fetched_and_deleted() {
    let endpoint = start(FakeConnector::default()).await;
    let client = reqwest::Client::new();
    let body = post_ok(
        &endpoint,
        &dice_request("http://dice.test/sse", Some("never")),
    )
    .await;
    let id = body["id"].as_str().unwrap();
    let url = format!("{}/responses/{id}", endpoint.base_url());
    let stored: Value = client
        .get(&url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored, body);
    assert_eq!(stored["store"], true);

    let deleted = client
        .delete(&url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    assert_eq!(
        deleted.json::<Value>().await.unwrap(),
        json!({"id": id, "object": "response", "deleted": true})
    );
    let missing = client.get(&url).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(
        missing.text().await.unwrap(),
        format!(
            r#"{{"error":{{"message":"Response with id '{id}' not found.","type":"invalid_request_error","param":null,"code":null}}}}"#
        )
    );

    let mut request = dice_request("http://dice.test/sse", Some("never"));
    request["store"] = json!(false);
    let unstored = post_ok(&endpoint, &request).await;
    assert_eq!(unstored["store"], false);
    let url = format!(
        "{}/responses/{}",
        endpoint.base_url(),
        unstored["id"].as_str().unwrap()
    );
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );

    let wrong = client
        .get(format!("{}/nothing", endpoint.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 404);
    assert_eq!(
        wrong.text().await.unwrap(),
        r#"{"error":{"message":"Invalid URL (GET /v1/nothing)","type":"invalid_request_error","param":null,"code":null}}"#
    );
}

#[tokio::test]
async fn the_store_and_request_bodies_are_bounded() {
    let endpoint = start_with(
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .store_capacity(2)
            .max_body_bytes(1024),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body = post_ok(&endpoint, &json!({"model":"m","input":"hi"})).await;
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        status_of(&endpoint, &ids[0]).await,
        404,
        "the oldest was evicted"
    );
    assert_eq!(status_of(&endpoint, &ids[1]).await, 200);
    assert_eq!(status_of(&endpoint, &ids[2]).await, 200);

    let (code, text) = post(&endpoint, &json!({"model":"m","input":"x".repeat(2000)})).await;
    assert_eq!(code, 413);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
}

#[tokio::test]
async fn without_tools_the_model_answers_plainly() {
    let endpoint = start(FakeConnector::default()).await;
    let body = post_ok(
        &endpoint,
        &json!({"model":"gpt-4.1","input":[{"role":"user","content":"Hello there"}],"instructions":"Be brief","metadata":{"k":"v"}}),
    )
    .await;
    assert_eq!(item_types(&body), ["message"]);
    assert_eq!(
        body["output_text"],
        "I have no tools available for this request. You said: \"Hello there\""
    );
    assert_eq!(body["instructions"], "Be brief");
    assert_eq!(body["metadata"], json!({"k":"v"}));
    assert_eq!(body["tools"], json!([]));
    assert_async_openai_reads(&body);
}

/// A model that shouts the user's message back, or fails, or never answers.
#[derive(Clone, Copy)]
enum TestModel {
    Shout,
    Fail,
    Hang,
}

impl responses_local::Model for TestModel {
    fn next_step(
        &self,
        input: responses_local::ModelInput,
    ) -> futures::future::BoxFuture<'_, Result<responses_local::ModelStep, responses_local::Error>>
    {
        Box::pin(async move {
            match self {
                TestModel::Shout => Ok(responses_local::ModelStep::Answer(
                    input.latest_user_text().to_uppercase(),
                )),
                TestModel::Fail => Err(responses_local::Error::Model("out of ideas".into())),
                TestModel::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Err(responses_local::Error::Model("unreachable".into()))
                }
            }
        })
    }
}

#[tokio::test]
async fn a_custom_model_plugs_in_and_its_failures_are_reported() {
    let shout = start_with(
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .model(TestModel::Shout),
    )
    .await;
    let body = post_ok(&shout, &dice_request("http://dice.test/sse", Some("never"))).await;
    assert_eq!(item_types(&body), ["mcp_list_tools", "message"]);
    assert_eq!(body["output_text"], "ROLL A FEW DICE!");

    let failing = start_with(
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .model(TestModel::Fail),
    )
    .await;
    let (status, text) = post(&failing, &json!({"model":"m","input":"hi"})).await;
    assert_eq!(status, 500);
    assert_eq!(
        text,
        r#"{"error":{"message":"the model failed: out of ideas","type":"server_error","param":null,"code":null}}"#
    );
    let events = stream_events(&failing, &json!({"model":"m","input":"hi","stream":true})).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );
    let failed: ResponseStreamEvent = serde_json::from_value(events[2].1.clone()).unwrap();
    let ResponseStreamEvent::ResponseFailed(failed) = failed else {
        panic!("not response.failed")
    };
    assert_eq!(
        failed.response.error.unwrap().message,
        "the model failed: out of ideas"
    );

    let hanging = start_with(
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .model(TestModel::Hang)
            .model_timeout(Duration::from_millis(100)),
    )
    .await;
    let (status, text) = post(&hanging, &json!({"model":"m","input":"hi"})).await;
    assert_eq!(status, 500);
    assert!(text.contains("the model did not answer in time"), "{text}");
}

#[tokio::test]
async fn tool_choice_none_and_max_tool_calls_zero_keep_tools_unused() {
    let connector = FakeConnector::default();
    let endpoint = start(connector.clone()).await;
    for (key, value) in [("tool_choice", json!("none")), ("max_tool_calls", json!(0))] {
        let mut request = dice_request("http://dice.test/sse", Some("never"));
        request[key] = value.clone();
        let body = post_ok(&endpoint, &request).await;
        assert_eq!(item_types(&body), ["mcp_list_tools", "message"], "{key}");
        assert_eq!(body[key], value);
    }
    assert_eq!(connector.count("call"), 0);
}

#[tokio::test]
async fn an_mcp_tool_choice_narrows_the_tools_offered() {
    let endpoint = start(FakeConnector::default()).await;
    let mut request = dice_request("http://tools.test/mcp", Some("never"));
    request["tool_choice"] =
        json!({"type":"mcp","server_label":"dice_server","name":"get_weather"});
    let body = post_ok(&endpoint, &request).await;
    assert_eq!(body["output"][1]["name"], "get_weather");
    assert_async_openai_reads(&body);

    request["tool_choice"] = json!({"type":"function","name":"f"});
    let (status, text) = post(&endpoint, &request).await;
    assert_eq!(status, 400);
    assert_eq!(
        text,
        r#"{"error":{"message":"Tool choice 'function' is not supported by this local endpoint; only 'mcp' is.","type":"invalid_request_error","param":"tool_choice.type","code":"unsupported_value"}}"#
    );
}
