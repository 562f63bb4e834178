//! `responses-client` against the local endpoint, end to end over real sockets.

use std::sync::Mutex;

use crate::support::*;
use futures::StreamExt;
use responses_client::async_openai::types::responses::{
    MCPApprovalRequest, OutputItem, ResponseStreamEvent,
};
use responses_client::{
    ApprovalDecision, ApprovalLoop, Error, McpTool, OpenAiResponses, RequireApproval, ResponsesApi,
    mcp_request,
};

fn api(endpoint: &responses_local::RunningEndpoint) -> OpenAiResponses {
    OpenAiResponses::builder()
        .base_url(endpoint.base_url())
        .api_key(endpoint.api_key())
        .build()
}

fn call_values(response: &responses_client::async_openai::types::responses::Response) -> Vec<i64> {
    let call = response
        .output
        .iter()
        .find_map(|item| match item {
            OutputItem::McpCall(call) => Some(call),
            _ => None,
        })
        .expect("an mcp_call item");
    serde_json::from_str(call.output.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn the_approval_loop_approves_and_returns_the_final_answer() {
    let connector = FakeConnector::default();
    let endpoint = start(connector.clone()).await;
    let api = api(&endpoint);
    let seen = Mutex::new(Vec::new());
    let approver = |request: &MCPApprovalRequest| {
        seen.lock().unwrap().push((
            request.server_label.clone(),
            request.name.clone(),
            request.arguments.clone(),
        ));
        ApprovalDecision::approve()
    };
    let tool = McpTool::new("dice_server", "http://dice.test/sse")
        .require_approval(RequireApproval::Always);
    let response = ApprovalLoop::new()
        .run(
            &api,
            mcp_request("gpt-4.1", "Roll a few dice!", [tool]),
            &approver,
        )
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [(
            "dice_server".to_owned(),
            "roll_dice".to_owned(),
            r#"{"n_dice":3}"#.to_owned()
        )]
    );
    let values = call_values(&response);
    assert_eq!(response.output_text().unwrap(), dice_sentence(&values));
    assert!(response.previous_response_id.is_some());
    assert_eq!(connector.count("list_tools"), 1);

    // Retrieve the final response through the same backend.
    let fetched = api.retrieve(&response.id).await.unwrap();
    assert_eq!(fetched.output_text(), response.output_text());
}

#[tokio::test]
async fn the_approval_loop_can_deny_and_is_bounded() {
    let connector = FakeConnector::default();
    let endpoint = start(connector.clone()).await;
    let api = api(&endpoint);
    let tool = McpTool::new("dice_server", "http://dice.test/sse");
    let deny = |_: &MCPApprovalRequest| ApprovalDecision::deny("not today");
    let response = ApprovalLoop::new()
        .run(
            &api,
            mcp_request("gpt-4.1", "Roll a few dice!", [tool.clone()]),
            &deny,
        )
        .await
        .unwrap();
    assert_eq!(
        response.output_text().unwrap(),
        "The call to roll_dice on dice_server was not approved (not today), so I did not run it."
    );
    assert_eq!(connector.count("call"), 0);

    let approve = |_: &MCPApprovalRequest| ApprovalDecision::approve();
    let error = ApprovalLoop::new()
        .max_rounds(0)
        .run(
            &api,
            mcp_request("gpt-4.1", "Roll a few dice!", [tool]),
            &approve,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::TooManyApprovalRounds { rounds: 0, last_response_id } if last_response_id.starts_with("resp_")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_424_becomes_a_typed_connector_error() {
    let endpoint = start(FakeConnector::default()).await;
    let api = api(&endpoint);
    let tool = McpTool::new("dice_server", "http://auth.test/sse")
        .require_approval(RequireApproval::Never);
    let error = api
        .create(mcp_request("gpt-4.1", "Roll a few dice!", [tool.clone()]))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(424));
    let failure = error.connector_failure().expect("a connector failure");
    assert_eq!(failure.server_label.as_deref(), Some("dice_server"));
    assert_eq!(failure.upstream_status, Some(401));
    assert_eq!(failure.upstream_reason.as_deref(), Some("Unauthorized"));
    assert_eq!(failure.code.as_deref(), Some("http_error"));
    assert_eq!(
        failure.message,
        "Error retrieving tool list from MCP server: 'dice_server'. Http status code: 401 (Unauthorized)"
    );

    // With the bearer token the same call succeeds.
    let response = api
        .create(mcp_request(
            "gpt-4.1",
            "Roll a few dice!",
            [tool.bearer_token(GOOD_TOKEN)],
        ))
        .await
        .unwrap();
    assert_eq!(
        response.output_text().unwrap(),
        dice_sentence(&call_values(&response))
    );
}

#[tokio::test]
async fn other_api_errors_keep_status_param_and_code() {
    let endpoint = start(FakeConnector::default()).await;
    let api = api(&endpoint);
    let mut request = mcp_request("gpt-4.1", "hi", []);
    request.previous_response_id = Some("resp_missing".to_owned());
    let error = api.create(request).await.unwrap_err();
    match error {
        Error::Api {
            status,
            kind,
            param,
            code,
            message,
        } => {
            assert_eq!(status, 400);
            assert_eq!(kind.as_deref(), Some("invalid_request_error"));
            assert_eq!(param.as_deref(), Some("previous_response_id"));
            assert_eq!(code.as_deref(), Some("previous_response_not_found"));
            assert_eq!(
                message,
                "Previous response with id 'resp_missing' not found."
            );
        }
        other => panic!("{other:?}"),
    }

    let keyless = OpenAiResponses::builder()
        .base_url(endpoint.base_url())
        .api_key("")
        .build();
    let error = keyless
        .create(mcp_request("gpt-4.1", "hi", []))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(401));
}

#[tokio::test]
async fn streaming_through_the_client_yields_typed_events() {
    let endpoint = start(FakeConnector::default()).await;
    let api = api(&endpoint);
    let tool = McpTool::new("dice_server", "http://structured.test/mcp")
        .require_approval(RequireApproval::Never);
    let mut events = api
        .create_stream(mcp_request("gpt-4.1", "Roll a few dice!", [tool]))
        .await
        .unwrap();
    let mut sequence = Vec::new();
    let mut text = String::new();
    let mut completed = None;
    while let Some(event) = events.next().await {
        match event.unwrap() {
            ResponseStreamEvent::ResponseOutputTextDelta(delta) => {
                sequence.push(delta.sequence_number);
                text.push_str(&delta.delta);
            }
            ResponseStreamEvent::ResponseCompleted(done) => {
                sequence.push(done.sequence_number);
                completed = Some(done.response);
            }
            ResponseStreamEvent::ResponseCreated(e) => sequence.push(e.sequence_number),
            _ => {}
        }
    }
    assert_eq!(sequence.first(), Some(&0));
    assert!(sequence.windows(2).all(|w| w[0] < w[1]));
    let completed = completed.expect("response.completed");
    assert_eq!(completed.output_text().unwrap(), text);
    assert!(text.starts_with("You rolled 3 dice and got the following results: "));
}

/// A model that never answers.
struct Hang;

impl responses_local::Model for Hang {
    fn next_step(
        &self,
        _: responses_local::ModelInput,
    ) -> futures::future::BoxFuture<'_, Result<responses_local::ModelStep, responses_local::Error>>
    {
        Box::pin(async {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Err(responses_local::Error::Model("unreachable".into()))
        })
    }
}

#[tokio::test]
async fn the_client_gives_up_after_its_timeout() {
    let endpoint = start_with(
        responses_local::LocalResponses::builder()
            .connector(FakeConnector::default())
            .model(Hang),
    )
    .await;
    let api = OpenAiResponses::builder()
        .base_url(endpoint.base_url())
        .api_key(endpoint.api_key())
        .timeout(std::time::Duration::from_millis(200))
        .build();
    let error = api.create(mcp_request("m", "hi", [])).await.unwrap_err();
    assert!(
        matches!(error, Error::Timeout(d) if d == std::time::Duration::from_millis(200)),
        "{error:?}"
    );
}
