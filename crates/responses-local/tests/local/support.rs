//! Test support: an in-process fake of the `McpConnector` seam, and HTTP helpers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use responses_local::{
    ConnectorError, ListedTool, LocalResponses, McpConnection, McpConnector, McpTarget,
    RunningEndpoint, ToolCallOutcome,
};
use serde_json::{Value, json};

/// The API key the endpoints started here accept.
pub const API_KEY: &str = "sk-test-0123456789abcdef";

/// The token the fake `auth` server accepts.
pub const GOOD_TOKEN: &str = "good-token";

/// URLs the fake knows:
/// - `http://dice.test/sse`: `roll_dice` returning compact JSON like `[6,4,2]`;
/// - `http://structured.test/mcp`: `roll_dice` returning `{"result":[...]}`;
/// - `http://auth.test/sse`: like dice, but connecting needs `Authorization: Bearer good-token`
///   (otherwise HTTP 401 Unauthorized);
/// - `http://tools.test/mcp`: `roll_dice`, `get_weather` (read-only), `explode` (tool error),
///   `bad_args` (JSON-RPC error);
/// - `http://slow.test/mcp`: never answers `tools/list`;
/// - `http://blackhole.test/mcp`: never answers the connection;
/// - a URL containing `nxdomain`: unreachable by a DNS failure;
/// - anything else: unreachable (connection refused).
#[derive(Clone, Default)]
pub struct FakeConnector {
    log: Arc<Mutex<Vec<String>>>,
}

impl FakeConnector {
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }
}

fn dice_tool() -> ListedTool {
    ListedTool {
        name: "roll_dice".to_owned(),
        description: Some("Roll `n_dice` 6-sided dice and return the results.".to_owned()),
        input_schema: json!({"properties":{"n_dice":{"title":"N Dice","type":"integer"}},"required":["n_dice"],"type":"object"}),
        annotations: None,
    }
}

struct FakeConnection {
    label: String,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl FakeConnection {
    fn record(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

fn roll(n: u64) -> Vec<i64> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n).map(|_| rng.gen_range(1..=6)).collect()
}

impl McpConnection for FakeConnection {
    fn list_tools(&mut self) -> BoxFuture<'_, Result<Vec<ListedTool>, ConnectorError>> {
        Box::pin(async move {
            self.record(format!("list_tools {}", self.label));
            match self.url.as_str() {
                "http://tools.test/mcp" => Ok(vec![
                    dice_tool(),
                    ListedTool {
                        name: "get_weather".to_owned(),
                        description: Some("Current weather for a city".to_owned()),
                        input_schema: json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
                        annotations: Some(json!({"readOnlyHint": true})),
                    },
                    ListedTool {
                        name: "explode".to_owned(),
                        description: Some("Always fails".to_owned()),
                        input_schema: json!({"type":"object"}),
                        annotations: None,
                    },
                    ListedTool {
                        name: "bad_args".to_owned(),
                        description: Some("Rejects its arguments".to_owned()),
                        input_schema: json!({"type":"object"}),
                        annotations: None,
                    },
                ]),
                "http://slow.test/mcp" => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(vec![])
                }
                _ => Ok(vec![dice_tool()]),
            }
        })
    }

    fn call_tool(
        &mut self,
        name: &str,
        arguments: Value,
    ) -> BoxFuture<'_, Result<ToolCallOutcome, ConnectorError>> {
        let name = name.to_owned();
        Box::pin(async move {
            self.record(format!("call {} {} {}", self.label, name, arguments));
            match name.as_str() {
                "roll_dice" => {
                    let n = arguments["n_dice"].as_u64().unwrap_or(0);
                    let values = roll(n);
                    let text = if self.url.starts_with("http://structured.test") {
                        json!({"result": values}).to_string()
                    } else {
                        serde_json::to_string(&values).unwrap()
                    };
                    Ok(ToolCallOutcome::Output(text))
                }
                "get_weather" => Ok(ToolCallOutcome::Output(format!(
                    "Sunny in {}",
                    arguments["city"].as_str().unwrap_or("?")
                ))),
                "explode" => Ok(ToolCallOutcome::ToolExecutionError {
                    content: vec![json!({"type":"text","text":"boom"})],
                }),
                "bad_args" => Ok(ToolCallOutcome::ProtocolError {
                    code: -32602,
                    message: "Invalid params".to_owned(),
                }),
                other => Ok(ToolCallOutcome::ProtocolError {
                    code: -32602,
                    message: format!("Unknown tool: {other}"),
                }),
            }
        })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        self.record(format!("close {}", self.label));
        Box::pin(async {})
    }
}

impl McpConnector for FakeConnector {
    fn connect(
        &self,
        target: McpTarget,
    ) -> BoxFuture<'static, Result<Box<dyn McpConnection>, ConnectorError>> {
        let log = self.log.clone();
        Box::pin(async move {
            log.lock().unwrap().push(format!(
                "connect {} {}",
                target.server_label, target.server_url
            ));
            let headers: HashMap<String, String> = target
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            let known = [
                "http://dice.test/sse",
                "http://structured.test/mcp",
                "http://auth.test/sse",
                "http://tools.test/mcp",
                "http://slow.test/mcp",
            ];
            if target.server_url == "http://blackhole.test/mcp" {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if target.server_url.contains("nxdomain") {
                return Err(ConnectorError::Unreachable(format!(
                    "dns error: failed to lookup address information ({})",
                    target.server_url
                )));
            }
            if !known.contains(&target.server_url.as_str()) {
                return Err(ConnectorError::Unreachable(format!(
                    "tcp connect error: Connection refused ({})",
                    target.server_url
                )));
            }
            if target.server_url == "http://auth.test/sse"
                && headers.get("authorization").map(String::as_str)
                    != Some(&format!("Bearer {GOOD_TOKEN}"))
            {
                return Err(ConnectorError::Http {
                    status: 401,
                    reason: "Unauthorized".to_owned(),
                });
            }
            Ok(Box::new(FakeConnection {
                label: target.server_label,
                url: target.server_url,
                log,
            }) as Box<dyn McpConnection>)
        })
    }
}

/// Starts the endpoint with the fake connector on 127.0.0.1:0.
pub async fn start(connector: FakeConnector) -> RunningEndpoint {
    start_with(LocalResponses::builder().connector(connector)).await
}

/// Starts the endpoint built by `builder`, with [`API_KEY`], on 127.0.0.1:0.
pub async fn start_with(builder: responses_local::LocalResponsesBuilder) -> RunningEndpoint {
    builder
        .api_key(API_KEY)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0")
        .await
        .unwrap()
}

/// `POST /v1/responses` of `body` with `Authorization: Bearer <key>` and extra `headers`;
/// status and body text.
pub async fn post_with(
    endpoint: &RunningEndpoint,
    key: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/responses", endpoint.base_url()))
        .bearer_auth(key)
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// `POST /v1/responses` with `Authorization: Bearer <API_KEY>`; status and body text.
pub async fn post(endpoint: &RunningEndpoint, body: &Value) -> (u16, String) {
    post_with(endpoint, API_KEY, &[], body).await
}

/// `POST /v1/responses` of raw bytes as JSON with [`API_KEY`]; status and body text.
pub async fn post_bytes(endpoint: &RunningEndpoint, body: &'static str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/responses", endpoint.base_url()))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The status of `GET /v1/responses/{id}` with [`API_KEY`].
pub async fn status_of(endpoint: &RunningEndpoint, id: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/responses/{id}", endpoint.base_url()))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A streamed `POST /v1/responses` (200, `text/event-stream`): each event's name and data.
pub async fn stream_events(endpoint: &RunningEndpoint, request: &Value) -> Vec<(String, Value)> {
    let response = reqwest::Client::new()
        .post(format!("{}/responses", endpoint.base_url()))
        .bearer_auth(API_KEY)
        .json(request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = response.text().await.unwrap();
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(v).unwrap());
                }
            }
            (event.unwrap(), data.unwrap())
        })
        .collect()
}

/// Like [`post`], expecting 200 and JSON.
pub async fn post_ok(endpoint: &RunningEndpoint, body: &Value) -> Value {
    let (status, text) = post(endpoint, body).await;
    assert_eq!(status, 200, "body: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The request of FastMCP's OpenAI integration guide.
pub fn dice_request(url: &str, require_approval: Option<&str>) -> Value {
    let mut tool = json!({"type":"mcp","server_label":"dice_server","server_url": url});
    if let Some(policy) = require_approval {
        tool["require_approval"] = json!(policy);
    }
    json!({"model":"gpt-4.1","input":"Roll a few dice!","tools":[tool]})
}

/// The item types of a response's output.
pub fn item_types(response: &Value) -> Vec<String> {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap().to_owned())
        .collect()
}

/// The guide's sentence for these values.
pub fn dice_sentence(values: &[i64]) -> String {
    let shown: Vec<String> = values.iter().map(i64::to_string).collect();
    let list = match shown.as_slice() {
        [a] => a.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
        [] => String::new(),
    };
    format!(
        "You rolled {} dice and got the following results: {list}!",
        values.len()
    )
}

/// Asserts that async-openai's `Response` type reads `body`.
pub fn assert_async_openai_reads(body: &Value) -> async_openai::types::responses::Response {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("async-openai cannot read the response: {e}\n{body:#}"))
}
