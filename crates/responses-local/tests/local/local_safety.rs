//! The endpoint is safe on a developer's laptop: loopback `Host`/`Origin` only, a generated API
//! key, a cap on `mcp` tools connected concurrently, and a store bounded in bytes and time whose
//! `previous_response_id` chains share their history. Real sockets, fake MCP connectors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use futures::future::BoxFuture;
use responses_local::{
    ConnectorError, ListedTool, LocalResponses, McpConnection, McpConnector, McpTarget,
    ToolCallOutcome,
};
use serde_json::{Value, json};

fn hello() -> Value {
    json!({"model":"m","input":"hi"})
}

#[tokio::test]
async fn a_foreign_host_gets_403_unless_allowed() {
    let endpoint = start(FakeConnector::default()).await;
    let port = endpoint.addr().port();
    let foreign = format!("attacker.example:{port}");
    let (status, text) = post_with(&endpoint, API_KEY, &[("host", &foreign)], &hello()).await;
    assert_eq!(status, 403);
    assert_eq!(
        text,
        format!(
            r#"{{"error":{{"message":"Host '{foreign}' is not allowed. The local Responses endpoint answers only loopback hosts (127.0.0.1, localhost, [::1]) unless started with --allow-host NAME or --allow-any-host.","type":"invalid_request_error","param":null,"code":"host_not_allowed"}}}}"#
        )
    );
    // Before the key is even looked at, and on every route.
    let (status, _) = post_with(&endpoint, "wrong", &[("host", &foreign)], &hello()).await;
    assert_eq!(status, 403);
    let get = reqwest::Client::new()
        .get(format!("{}/responses/resp_x", endpoint.base_url()))
        .header("host", &foreign)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 403);
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let (status, text) = post_with(&endpoint, API_KEY, &[("host", &host)], &hello()).await;
        assert_eq!(status, 200, "{host}: {text}");
    }

    let opened = start_with(
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .allow_host("dev.box"),
    )
    .await;
    let (status, _) = post_with(&opened, API_KEY, &[("host", "dev.box:1234")], &hello()).await;
    assert_eq!(status, 200);
    let (status, _) = post_with(&opened, API_KEY, &[("host", &foreign)], &hello()).await;
    assert_eq!(status, 403);
    let any = start_with(
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .allow_any_host(),
    )
    .await;
    let (status, _) = post_with(&any, API_KEY, &[("host", &foreign)], &hello()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_foreign_origin_gets_403() {
    let endpoint = start(FakeConnector::default()).await;
    let (status, text) = post_with(
        &endpoint,
        API_KEY,
        &[("origin", "https://attacker.example")],
        &hello(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        text,
        r#"{"error":{"message":"Origin 'https://attacker.example' is not allowed. The local Responses endpoint answers only requests without Origin or from a loopback origin unless started with --allow-host NAME or --allow-any-host.","type":"invalid_request_error","param":null,"code":"origin_not_allowed"}}"#
    );
    for origin in ["null", "http://127.0.0.1.attacker.example"] {
        let (status, _) = post_with(&endpoint, API_KEY, &[("origin", origin)], &hello()).await;
        assert_eq!(status, 403, "{origin}");
    }
    for origin in [
        "http://localhost:5173",
        "http://127.0.0.1",
        "http://[::1]:80",
    ] {
        let (status, _) = post_with(&endpoint, API_KEY, &[("origin", origin)], &hello()).await;
        assert_eq!(status, 200, "{origin}");
    }
}

#[tokio::test]
async fn without_a_configured_key_a_random_one_is_generated_and_required() {
    let build = || {
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .build()
            .unwrap()
    };
    let (one, other) = (build(), build());
    assert!(one.api_key().starts_with("sk-local-"), "{}", one.api_key());
    assert_ne!(one.api_key(), other.api_key());
    let endpoint = one.spawn("127.0.0.1:0").await.unwrap();
    let key = endpoint.api_key().to_owned();
    assert_eq!(post_with(&endpoint, &key, &[], &hello()).await.0, 200);
    let (status, text) = post_with(&endpoint, other.api_key(), &[], &hello()).await;
    assert_eq!(status, 401);
    assert!(text.contains(r#""code":"invalid_api_key""#), "{text}");
    assert!(
        LocalResponses::builder().api_key("").build().is_err(),
        "an empty key is refused"
    );
    assert!(LocalResponses::builder().api_key("a b").build().is_err());
}

#[tokio::test]
async fn too_many_mcp_tools_get_400_before_any_connection() {
    let connector = FakeConnector::default();
    let endpoint = start(connector.clone()).await;
    let tools = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"type":"mcp","server_label":format!("s{i}"),"server_url":"http://dice.test/sse","require_approval":"never"}))
            .collect()
    };
    let request = |n: usize| json!({"model":"m","input":"hi","tools":tools(n)});
    let (status, text) = post(&endpoint, &request(17)).await;
    assert_eq!(status, 400);
    assert_eq!(
        text,
        r#"{"error":{"message":"Invalid 'tools': array too long. Expected an array with maximum length 16, but got an array with length 17 instead.","type":"invalid_request_error","param":"tools","code":"array_above_max_length"}}"#
    );
    assert_eq!(connector.count("connect"), 0);
    let body = post_ok(&endpoint, &request(16)).await;
    let lists = item_types(&body)
        .iter()
        .filter(|t| *t == "mcp_list_tools")
        .count();
    assert_eq!(lists, 16);

    let capped = start_with(
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .max_mcp_tools(2),
    )
    .await;
    assert_eq!(post(&capped, &request(3)).await.0, 400);
    assert_eq!(post(&capped, &request(2)).await.0, 200);
}

/// A connector whose servers each wait, once connected to, until every server of the request is
/// being connected to (a barrier), then answer after their own delay. Connecting one server after
/// the other never gets past the barrier.
#[derive(Clone)]
struct GatedConnector {
    barrier: Arc<tokio::sync::Barrier>,
    log: Arc<Mutex<Vec<String>>>,
}

impl GatedConnector {
    fn new(servers: usize) -> Self {
        Self {
            barrier: Arc::new(tokio::sync::Barrier::new(servers)),
            log: Arc::default(),
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

struct GatedConnection;

impl McpConnection for GatedConnection {
    fn list_tools(&mut self) -> BoxFuture<'_, Result<Vec<ListedTool>, ConnectorError>> {
        Box::pin(async {
            Ok(vec![ListedTool {
                name: "ping".to_owned(),
                description: Some("Answers pong".to_owned()),
                input_schema: json!({"type":"object"}),
                annotations: None,
            }])
        })
    }

    fn call_tool(
        &mut self,
        _name: &str,
        _arguments: Value,
    ) -> BoxFuture<'_, Result<ToolCallOutcome, ConnectorError>> {
        Box::pin(async { Ok(ToolCallOutcome::Output("pong".to_owned())) })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

impl McpConnector for GatedConnector {
    fn connect(
        &self,
        target: McpTarget,
    ) -> BoxFuture<'static, Result<Box<dyn McpConnection>, ConnectorError>> {
        let this = self.clone();
        Box::pin(async move {
            let label = target.server_label;
            this.log.lock().unwrap().push(format!("connect {label}"));
            this.barrier.wait().await;
            // The first server answers last, so the answers arrive out of request order.
            let delay = if label == "first" { 300 } else { 100 };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            this.log.lock().unwrap().push(format!("answer {label}"));
            Ok(Box::new(GatedConnection) as Box<dyn McpConnection>)
        })
    }
}

#[tokio::test]
async fn mcp_servers_are_connected_concurrently_and_listed_in_request_order() {
    let connector = GatedConnector::new(2);
    let endpoint = start_with(
        LocalResponses::builder()
            .connector(connector.clone())
            .mcp_timeout(Duration::from_secs(5)),
    )
    .await;
    let tool = |label: &str| json!({"type":"mcp","server_label":label,"server_url":format!("http://{label}.test/mcp"),"require_approval":"never"});
    let request = json!({"model":"m","input":"hi","tools":[tool("first"), tool("second")]});
    let body = post_ok(&endpoint, &request).await;
    let log = connector.log();
    assert_eq!(
        log[..2].iter().filter(|l| l.starts_with("connect")).count(),
        2,
        "both servers see their connection before either answers: {log:?}"
    );
    assert_eq!(log[2..], ["answer second", "answer first"]);
    let labels: Vec<&str> = body["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "mcp_list_tools")
        .map(|item| item["server_label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["first", "second"],
        "the order the tools were given"
    );
}

#[tokio::test]
async fn the_store_evicts_the_oldest_responses_beyond_its_byte_limit() {
    const LIMIT: usize = 12_000;
    let endpoint = start_with(
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .store_max_bytes(LIMIT),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let body = post_ok(&endpoint, &hello()).await;
        ids.push(body["id"].as_str().unwrap().to_owned());
        let usage = endpoint.store_usage();
        assert!(usage.bytes <= LIMIT, "{usage:?}");
    }
    let kept = endpoint.store_usage().responses;
    assert!((1..20).contains(&kept), "kept {kept} of 20");
    assert_eq!(status_of(&endpoint, &ids[0]).await, 404, "the oldest went");
    assert_eq!(
        status_of(&endpoint, &ids[19]).await,
        200,
        "the newest stays"
    );
    let mut evicted = hello();
    evicted["previous_response_id"] = json!(ids[0]);
    let (status, text) = post(&endpoint, &evicted).await;
    assert_eq!(status, 400);
    assert!(
        text.contains(r#""code":"previous_response_not_found""#),
        "{text}"
    );
}

#[tokio::test]
async fn stored_responses_expire_after_the_ttl() {
    let endpoint = start_with(
        LocalResponses::builder()
            .connector(FakeConnector::default())
            .store_ttl(Duration::from_secs(1)),
    )
    .await;
    let body = post_ok(&endpoint, &hello()).await;
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&endpoint, &id).await, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(status_of(&endpoint, &id).await, 404);
    let mut follow_up = hello();
    follow_up["previous_response_id"] = json!(id);
    let (status, text) = post(&endpoint, &follow_up).await;
    assert_eq!(
        (status, text),
        (
            400,
            format!(
                r#"{{"error":{{"message":"Previous response with id '{id}' not found.","type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}}}"#
            )
        )
    );
    assert_eq!(endpoint.store_usage().responses, 0);
}

#[tokio::test]
async fn a_previous_response_chain_grows_the_store_linearly() {
    const LINKS: usize = 160;
    let endpoint = start(FakeConnector::default()).await;
    let client = reqwest::Client::new();
    let mut previous: Option<String> = None;
    let mut bytes = Vec::new();
    for _ in 0..LINKS {
        let mut request =
            json!({"model":"m","input":"Tell me more about the dice you rolled before"});
        if let Some(id) = &previous {
            request["previous_response_id"] = json!(id);
        }
        let body: Value = client
            .post(format!("{}/responses", endpoint.base_url()))
            .bearer_auth(API_KEY)
            .json(&request)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        previous = Some(body["id"].as_str().unwrap().to_owned());
        bytes.push(endpoint.store_usage().bytes);
    }
    let (half, all) = (bytes[LINKS / 2 - 1], bytes[LINKS - 1]);
    assert!(
        all < half * 22 / 10,
        "{half} bytes after {} links but {all} after {LINKS}: each link should cost its own items",
        LINKS / 2
    );
    // The whole history is still there for the model: the answer quotes the latest message and
    // the usage counts every message of the chain.
    let last = post_ok(
        &endpoint,
        &json!({"model":"m","input":"hi","previous_response_id":previous}),
    )
    .await;
    let input_tokens = last["usage"]["input_tokens"].as_u64().unwrap();
    assert!(input_tokens > (LINKS as u64) * 10, "{input_tokens}");
}
