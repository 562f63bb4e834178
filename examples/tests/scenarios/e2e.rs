//! The guide's whole story over real sockets and real processes: `dice_server`,
//! `dice_server_auth` (with a key pair the test generates, so it can mint good and bad tokens)
//! and `responses_local` on free ports, driven with raw `POST /v1/responses`, asserting the
//! exact bodies a user of OpenAI's API relies on. Every test runs over legacy SSE (`/sse`) and
//! streamable HTTP (`/mcp`). One (ignored; `cargo xtask e2e` runs it after installing the
//! Python peers) puts the seed's own FastMCP server, over stdio, behind `mcp-gateway`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mcp_stack_tests::process::{self, BackgroundProcess};
use serde_json::{Value, json};

/// The key `responses_local` is started with and every request sends.
const API_KEY: &str = "e2e-key";
/// Both transports, as the path of the dice server's URL.
const TRANSPORTS: [&str; 2] = ["sse", "mcp"];
/// The 424 for a server that cannot be reached, whatever the cause.
const CLOSED_PORT_424: &str = r#"{"error":{"message":"Error retrieving tool list from MCP server: 'dice_server'. Http status code: 424 (Failed Dependency)","type":"external_connector_error","param":"tools","code":"http_error"}}"#;
/// The exact 424 OpenAI's API gives for a call without a token (the guide shows it).
const UNAUTHORIZED_424: &str = r#"{"error":{"message":"Error retrieving tool list from MCP server: 'dice_server'. Http status code: 401 (Unauthorized)","type":"external_connector_error","param":"tools","code":"http_error"}}"#;

/// `responses_local` and one dice server (plain, or with bearer auth), stopped on drop.
struct Stack {
    responses: String,
    dice: String,
    good_token: String,
    wrong_audience: String,
    _processes: Vec<BackgroundProcess>,
}

impl Stack {
    /// `dice_server` behind `responses_local`.
    fn plain(test: &str) -> Self {
        Self::start(test, env!("CARGO_BIN_EXE_dice_server"), false)
    }

    /// `dice_server_auth` (its key pair made here) behind `responses_local`.
    fn auth(test: &str) -> Self {
        Self::start(test, env!("CARGO_BIN_EXE_dice_server_auth"), true)
    }

    fn start(test: &str, dice_binary: &str, auth: bool) -> Self {
        let logs = process::log_dir().join("e2e").join(test);
        let key_pair = mcp_auth::RsaKeyPair::generate().unwrap();
        let dice_port = process::free_port().unwrap();
        let mut dice = Command::new(dice_binary);
        dice.args(["--port", &dice_port.to_string()]);
        if auth {
            let key_file = logs.join("dice-server-key.pem");
            std::fs::create_dir_all(&logs).unwrap();
            std::fs::write(&key_file, key_pair.private_key_pem()).unwrap();
            dice.arg("--private-key-file").arg(key_file);
        }
        Self::with_server(&logs, ("dice_server", dice, dice_port), &key_pair)
    }

    /// FastMCP's dice server (the seed's `server.py`, `interop/fastmcp_dice_server.py`) over
    /// stdio as the child of an `mcp-gateway` process, behind `responses_local`. Needs the
    /// Python peers (`scripts/install-peers.sh py`) and the gateway binary beside the
    /// examples' (`cargo xtask e2e` provides both).
    fn fastmcp_behind_gateway(test: &str) -> Self {
        let logs = process::log_dir().join("e2e").join(test);
        let root = mcp_stack_tests::workspace_root();
        let python = root.join(".tools/py/bin/python");
        assert!(
            python.is_file(),
            "{} is missing: run scripts/install-peers.sh py (cargo xtask e2e does)",
            python.display()
        );
        let gateway = Path::new(env!("CARGO_BIN_EXE_dice_server")).with_file_name("mcp-gateway");
        assert!(
            gateway.is_file(),
            "{} is missing: cargo build -p mcp-gateway (cargo xtask e2e does)",
            gateway.display()
        );
        let port = process::free_port().unwrap();
        let mut command = Command::new(gateway);
        command
            .args(["--port", &port.to_string(), "--name", "fastmcp-dice", "--"])
            .arg(python)
            .arg(root.join("interop/fastmcp_dice_server.py"))
            .args(["--transport", "stdio"]);
        let key_pair = mcp_auth::RsaKeyPair::generate().unwrap();
        Self::with_server(&logs, ("mcp-gateway", command, port), &key_pair)
    }

    /// `server` (name, command, port) and `responses_local`, both running.
    fn with_server(
        logs: &Path,
        server: (&str, Command, u16),
        key_pair: &mcp_auth::RsaKeyPair,
    ) -> Self {
        let (server_name, server_command, server_port) = server;
        let responses_port = process::free_port().unwrap();
        let mut responses = Command::new(env!("CARGO_BIN_EXE_responses_local"));
        responses.args(["--port", &responses_port.to_string(), "--api-key", API_KEY]);
        let mut processes = Vec::new();
        for (name, mut command, port) in [
            (server_name, server_command, server_port),
            ("responses_local", responses, responses_port),
        ] {
            command.env("RUST_LOG", "info");
            let log = logs.join(format!("{name}.log"));
            let mut process = BackgroundProcess::spawn(name, command, &log).unwrap();
            let addr = ([127, 0, 0, 1], port).into();
            process.wait_for_tcp(addr, Duration::from_secs(60)).unwrap();
            processes.push(process);
        }
        Self {
            responses: format!("http://127.0.0.1:{responses_port}/v1/responses"),
            dice: format!("http://127.0.0.1:{server_port}"),
            good_token: key_pair
                .create_token()
                .audience("dice-server")
                .sign()
                .unwrap(),
            wrong_audience: key_pair
                .create_token()
                .audience("another-server")
                .sign()
                .unwrap(),
            _processes: processes,
        }
    }

    /// The dice server's URL over `transport` (`sse` or `mcp`).
    fn dice_url(&self, transport: &str) -> String {
        format!("{}/{transport}", self.dice)
    }

    /// `POST /v1/responses` with `body`: status and body text.
    async fn create(&self, body: &Value) -> (u16, String) {
        let response = http()
            .post(&self.responses)
            .bearer_auth(API_KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// `POST /v1/responses` that must answer 200: the response object.
    async fn create_ok(&self, body: &Value) -> Value {
        let (status, text) = self.create(body).await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A request asking for dice with the `mcp` tool at `url` (`extra` merged into the tool).
fn dice_request(url: String, token: Option<&str>, extra: Value) -> Value {
    let mut tool = json!({
        "type": "mcp", "server_label": "dice_server", "server_url": url, "require_approval": "never",
    });
    if let Some(t) = token {
        tool["headers"] = json!({ "Authorization": format!("Bearer {t}") });
    }
    if let (Value::Object(tool), Value::Object(extra)) = (&mut tool, extra) {
        tool.extend(extra);
    }
    json!({"model": "gpt-4.1", "input": "Roll a few dice!", "tools": [tool]})
}

fn items<'a>(response: &'a Value, kind: &str) -> Vec<&'a Value> {
    response["output"]
        .as_array()
        .map(|o| o.iter().filter(|i| i["type"] == kind).collect())
        .unwrap_or_default()
}

/// A finished dice response: one call whose output are 3 dice in 1..=6, and an `output_text`
/// naming exactly those values in the guide's words.
fn assert_dice(response: &Value) {
    assert_eq!(response["status"], "completed", "{response}");
    let lists = items(response, "mcp_list_tools");
    assert_eq!(lists.len(), 1, "{response}");
    assert_eq!(lists[0]["tools"][0]["name"], "roll_dice");
    let calls = items(response, "mcp_call");
    assert_eq!(calls.len(), 1, "{response}");
    assert_eq!(calls[0]["name"], "roll_dice");
    assert!(calls[0]["error"].is_null(), "{}", calls[0]);
    let arguments: Value = serde_json::from_str(calls[0]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"n_dice": 3}));
    let dice: Vec<u8> = serde_json::from_str(calls[0]["output"].as_str().unwrap()).unwrap();
    assert_eq!(dice.len(), 3, "{dice:?}");
    assert!(dice.iter().all(|d| (1..=6).contains(d)), "{dice:?}");
    let expected = format!(
        "You rolled 3 dice and got the following results: {}, {}, and {}!",
        dice[0], dice[1], dice[2]
    );
    assert_eq!(response["output_text"], expected.as_str());
    let messages = items(response, "message");
    assert_eq!(messages.len(), 1, "{response}");
    assert_eq!(messages[0]["content"][0]["text"], expected.as_str());
    assert!(response["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

/// The seed's flow with the seed's own server: FastMCP's dice server, a stdio program here,
/// served by `mcp-gateway` over both transports to the local Responses endpoint.
#[tokio::test]
#[ignore = "needs the Python peers and the gateway binary: cargo xtask e2e"]
async fn fastmcp_dice_over_stdio_behind_the_gateway_rolls_three_dice() {
    let stack = Stack::fastmcp_behind_gateway("fastmcp-gateway");
    for transport in TRANSPORTS {
        let body = dice_request(stack.dice_url(transport), None, json!({}));
        assert_dice(&stack.create_ok(&body).await);
    }
}

#[tokio::test]
async fn without_a_token_the_answer_is_openais_424_citing_401() {
    let stack = Stack::auth("no-token");
    for transport in TRANSPORTS {
        let body = dice_request(stack.dice_url(transport), None, json!({}));
        assert_eq!(
            stack.create(&body).await,
            (424, UNAUTHORIZED_424.into()),
            "{transport}"
        );
    }
}

#[tokio::test]
async fn with_the_token_the_dice_come_back() {
    let stack = Stack::auth("with-token");
    for transport in TRANSPORTS {
        let token = Some(stack.good_token.as_str());
        let body = dice_request(stack.dice_url(transport), token, json!({}));
        assert_dice(&stack.create_ok(&body).await);
    }
}

#[tokio::test]
async fn a_wrong_audience_token_gives_424_citing_401() {
    let stack = Stack::auth("wrong-audience");
    for transport in TRANSPORTS {
        let token = Some(stack.wrong_audience.as_str());
        let body = dice_request(stack.dice_url(transport), token, json!({}));
        assert_eq!(
            stack.create(&body).await,
            (424, UNAUTHORIZED_424.into()),
            "{transport}"
        );
    }
}

/// `require_approval: always`: the first response asks, the second (chained) carries the
/// call when approved and none when denied, without listing the tools again.
async fn approval(approve: bool) {
    let stack = Stack::plain(if approve { "approve" } else { "deny" });
    for transport in TRANSPORTS {
        let extra = json!({"require_approval": "always"});
        let body = dice_request(stack.dice_url(transport), None, extra);
        let first = stack.create_ok(&body).await;
        let requests = items(&first, "mcp_approval_request");
        assert_eq!(requests.len(), 1, "{first}");
        assert_eq!(requests[0]["name"], "roll_dice");
        assert!(
            items(&first, "mcp_call").is_empty(),
            "a call ran before approval: {first}"
        );
        let answer = json!({
            "model": "gpt-4.1", "tools": body["tools"], "previous_response_id": first["id"],
            "input": [{"type": "mcp_approval_response", "approval_request_id": requests[0]["id"], "approve": approve}],
        });
        let second = stack.create_ok(&answer).await;
        assert!(
            items(&second, "mcp_list_tools").is_empty(),
            "listed again: {second}"
        );
        let calls = items(&second, "mcp_call");
        if approve {
            assert_eq!(calls.len(), 1, "{second}");
            assert_eq!(calls[0]["approval_request_id"], requests[0]["id"]);
            let text = second["output_text"].as_str().unwrap();
            assert!(text.starts_with("You rolled 3 dice"), "{text}");
        } else {
            assert!(calls.is_empty(), "a denied call ran: {second}");
            assert_eq!(items(&second, "message").len(), 1, "{second}");
        }
    }
}

#[tokio::test]
async fn require_approval_always_then_approve() {
    approval(true).await;
}

#[tokio::test]
async fn require_approval_always_then_deny() {
    approval(false).await;
}

#[tokio::test]
async fn allowed_tools_without_roll_dice_offers_nothing() {
    let stack = Stack::plain("allowed-tools");
    for transport in TRANSPORTS {
        let extra = json!({"allowed_tools": ["some_other_tool"]});
        let body = dice_request(stack.dice_url(transport), None, extra);
        let response = stack.create_ok(&body).await;
        let lists = items(&response, "mcp_list_tools");
        assert_eq!(lists.len(), 1, "{response}");
        assert_eq!(lists[0]["tools"], json!([]), "roll_dice was offered");
        assert!(items(&response, "mcp_call").is_empty(), "{response}");
        assert_eq!(items(&response, "message").len(), 1, "{response}");
    }
}

/// The order the hosted tool produces (arguments events may come before or after
/// `in_progress`, so those two are only required, not placed).
const STREAM_ORDER: [&str; 16] = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.mcp_list_tools.in_progress",
    "response.mcp_list_tools.completed",
    "response.output_item.done",
    "response.output_item.added",
    "response.mcp_call.completed",
    "response.output_item.done",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
];

#[tokio::test]
async fn streamed_events_come_in_order_with_sequence_numbers() {
    let stack = Stack::plain("streaming");
    for transport in TRANSPORTS {
        let mut body = dice_request(stack.dice_url(transport), None, json!({}));
        body["stream"] = json!(true);
        let (status, text) = stack.create(&body).await;
        assert_eq!(status, 200, "{text}");
        let mut parser = mcp_sse::client::SseParser::new(1 << 20);
        parser.feed(text.as_bytes()).unwrap();
        let mut types = Vec::new();
        while let Some(event) = parser.next_event() {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(data["sequence_number"], json!(types.len()), "{transport}");
            assert_eq!(
                data["type"],
                event.event.as_str(),
                "event name and type differ"
            );
            if data["type"] == "response.completed" {
                assert_dice(&data["response"]);
            }
            types.push(data["type"].as_str().unwrap().to_owned());
        }
        let mut expected = STREAM_ORDER.iter().peekable();
        for kind in &types {
            expected.next_if(|want| **want == kind);
        }
        assert_eq!(
            expected.next(),
            None,
            "{transport}: out of order: {types:?}"
        );
        for required in [
            "response.mcp_call.in_progress",
            "response.mcp_call_arguments.done",
        ] {
            assert!(
                types.iter().any(|t| t == required),
                "{transport}: no {required}"
            );
        }
    }
}

/// What the endpoint refuses: a foreign `Host` or `Origin` (403), a wrong key (401); and a
/// closed local port answers like any unreachable server (one text, no cause).
#[tokio::test]
async fn foreign_host_or_origin_403_wrong_key_401_closed_port_424() {
    let stack = Stack::plain("refusals");
    for transport in TRANSPORTS {
        let body = dice_request(stack.dice_url(transport), None, json!({}));
        for (header, value, key, want) in [
            (
                "host",
                "attacker.example",
                API_KEY,
                (403, "host_not_allowed"),
            ),
            (
                "origin",
                "https://attacker.example",
                API_KEY,
                (403, "origin_not_allowed"),
            ),
            (
                "x-e2e",
                "wrong key",
                "not-the-key",
                (401, "invalid_api_key"),
            ),
        ] {
            let request = http()
                .post(&stack.responses)
                .bearer_auth(key)
                .header(header, value);
            let response = request.json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            let error: Value = response.json().await.unwrap();
            let got = (status, error["error"]["code"].as_str().unwrap_or_default());
            assert_eq!(got, want, "{transport}: {header}: {value} with key {key}");
        }
        let closed = process::free_port().unwrap();
        let url = format!("http://127.0.0.1:{closed}/{transport}");
        let body = dice_request(url, None, json!({}));
        assert_eq!(stack.create(&body).await, (424, CLOSED_PORT_424.into()));
    }
}
