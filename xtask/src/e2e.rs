//! `cargo xtask e2e`: the seed's whole story over real sockets and real processes.
//!
//! Builds the example binaries, starts `dice_server`, `dice_server_auth` (with a key pair this
//! command generates, so it can mint good and bad tokens) and `responses_local` on free ports,
//! waits for them, and drives `POST /v1/responses` with raw HTTP, asserting the exact bodies a
//! user of OpenAI's API relies on. Every scenario runs over legacy SSE (`/sse`) and streamable
//! HTTP (`/mcp`). On failure it prints the servers' logs and exits non-zero.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::process::{self, BackgroundProcess};

/// Options of `cargo xtask e2e`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip `cargo build` (use binaries already built).
    #[arg(long)]
    pub no_build: bool,
}

/// The 424 for a server that cannot be reached, whatever the cause.
const CLOSED_PORT_424: &str = r#"{"error":{"message":"Error retrieving tool list from MCP server: 'dice_server'. Http status code: 424 (Failed Dependency)","type":"external_connector_error","param":"tools","code":"http_error"}}"#;

/// The key `responses_local` is started with and every request sends.
const API_KEY: &str = "e2e-key";

/// The exact 424 the seed shows for a call without a token.
const SEED_424: &str = r#"{"error":{"message":"Error retrieving tool list from MCP server: 'dice_server'. Http status code: 401 (Unauthorized)","type":"external_connector_error","param":"tools","code":"http_error"}}"#;

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.no_build {
        let mut build = process::cargo();
        build.args(["build", "--quiet", "-p", "mcp-examples", "--bins"]);
        process::run_checked(build)?;
    }
    let bin_dir = target_dir().join("debug");
    let logs = process::log_dir().join("e2e");
    std::fs::create_dir_all(&logs)?;

    // A key pair of our own, so we can mint a good token and a wrong-audience one.
    let key_pair = mcp_auth::RsaKeyPair::generate()?;
    let key_file = logs.join("dice-server-key.pem");
    std::fs::write(&key_file, key_pair.private_key_pem())?;
    let good_token = key_pair.create_token().audience("dice-server").sign()?;
    let wrong_audience = key_pair.create_token().audience("another-server").sign()?;

    let plain_port = process::free_port()?;
    let auth_port = process::free_port()?;
    let responses_port = process::free_port()?;
    let mut servers = Vec::new();
    let start = |name: &str, args: Vec<String>| -> anyhow::Result<BackgroundProcess> {
        let mut command = Command::new(bin_dir.join(name));
        command.args(args).env("RUST_LOG", "info");
        BackgroundProcess::spawn(name, command, &logs.join(format!("{name}.log")))
    };
    servers.push(start(
        "dice_server",
        vec!["--port".into(), plain_port.to_string()],
    )?);
    servers.push(start(
        "dice_server_auth",
        vec![
            "--port".into(),
            auth_port.to_string(),
            "--private-key-file".into(),
            key_file.display().to_string(),
        ],
    )?);
    servers.push(start(
        "responses_local",
        vec![
            "--port".into(),
            responses_port.to_string(),
            "--api-key".into(),
            API_KEY.into(),
        ],
    )?);
    for (server, port) in servers
        .iter_mut()
        .zip([plain_port, auth_port, responses_port])
    {
        server.wait_for_tcp(([127, 0, 0, 1], port).into(), Duration::from_secs(60))?;
    }

    let ctx = Ctx {
        responses: format!("http://127.0.0.1:{responses_port}/v1/responses"),
        plain: format!("http://127.0.0.1:{plain_port}"),
        auth: format!("http://127.0.0.1:{auth_port}"),
        good_token,
        wrong_audience,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (passed, failed) = runtime.block_on(run_scenarios(&ctx));
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        for server in &servers {
            server.print_log();
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

struct Ctx {
    responses: String,
    plain: String,
    auth: String,
    good_token: String,
    wrong_audience: String,
}

type Scenario =
    for<'a> fn(&'static str, &'a Ctx) -> futures::future::BoxFuture<'a, anyhow::Result<()>>;

async fn run_scenarios(ctx: &Ctx) -> (usize, usize) {
    let scenarios: [(&str, Scenario); 8] = [
        ("no token gives the seed's 424", |t, c| {
            Box::pin(no_token(t, c))
        }),
        ("with the token the dice come back", |t, c| {
            Box::pin(with_token(t, c))
        }),
        ("a wrong-audience token gives 424 citing 401", |t, c| {
            Box::pin(wrong_audience(t, c))
        }),
        ("require_approval always: approve", |t, c| {
            Box::pin(approval(t, c, true))
        }),
        ("require_approval always: deny", |t, c| {
            Box::pin(approval(t, c, false))
        }),
        ("allowed_tools without roll_dice", |t, c| {
            Box::pin(allowed_tools(t, c))
        }),
        ("streaming event order", |t, c| Box::pin(streaming(t, c))),
        (
            "foreign Host/Origin 403, wrong key 401, closed port 424",
            |t, c| Box::pin(refusals(t, c)),
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    for transport in ["sse", "mcp"] {
        for (name, scenario) in &scenarios {
            let label = format!(
                "[{}] {name}",
                if transport == "sse" {
                    "legacy SSE"
                } else {
                    "streamable HTTP"
                }
            );
            match tokio::time::timeout(Duration::from_secs(60), scenario(transport, ctx)).await {
                Ok(Ok(())) => {
                    passed += 1;
                    println!("PASS {label}");
                }
                Ok(Err(e)) => {
                    failed += 1;
                    println!("FAIL {label}: {e:#}");
                }
                Err(_) => {
                    failed += 1;
                    println!("FAIL {label}: timed out after 60 s");
                }
            }
        }
    }
    (passed, failed)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

fn dice_tool(url: String, token: Option<&str>, extra: Value) -> Value {
    let mut tool = json!({
        "type": "mcp", "server_label": "dice_server", "server_url": url, "require_approval": "never",
    });
    if let Some(t) = token {
        tool["headers"] = json!({ "Authorization": format!("Bearer {t}") });
    }
    if let (Value::Object(tool), Value::Object(extra)) = (&mut tool, extra) {
        tool.extend(extra);
    }
    tool
}

async fn create(ctx: &Ctx, body: Value) -> anyhow::Result<(u16, String)> {
    let response = http()
        .post(&ctx.responses)
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .context("POST /v1/responses")?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

async fn create_ok(ctx: &Ctx, body: Value) -> anyhow::Result<Value> {
    let (status, text) = create(ctx, body).await?;
    ensure!(status == 200, "expected 200, got {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

fn items<'a>(response: &'a Value, kind: &str) -> Vec<&'a Value> {
    response["output"]
        .as_array()
        .map(|o| o.iter().filter(|i| i["type"] == kind).collect())
        .unwrap_or_default()
}

/// Checks a finished dice response: one call whose output are 3 dice in 1..=6, and an
/// `output_text` naming exactly those values in the seed's words.
fn check_dice(response: &Value) -> anyhow::Result<()> {
    ensure!(
        response["status"] == "completed",
        "status {}",
        response["status"]
    );
    let lists = items(response, "mcp_list_tools");
    ensure!(lists.len() == 1, "expected one mcp_list_tools item");
    ensure!(
        lists[0]["tools"][0]["name"] == "roll_dice",
        "roll_dice not listed"
    );
    let calls = items(response, "mcp_call");
    ensure!(
        calls.len() == 1,
        "expected one mcp_call, got {}",
        calls.len()
    );
    let call = calls[0];
    ensure!(
        call["name"] == "roll_dice" && call["error"].is_null(),
        "bad call {call}"
    );
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap_or(""))?;
    ensure!(arguments == json!({"n_dice": 3}), "arguments {arguments}");
    let dice: Vec<u8> = serde_json::from_str(call["output"].as_str().unwrap_or(""))
        .with_context(|| format!("mcp_call output {}", call["output"]))?;
    ensure!(
        dice.len() == 3 && dice.iter().all(|d| (1..=6).contains(d)),
        "dice {dice:?}"
    );
    let expected = format!(
        "You rolled 3 dice and got the following results: {}, {}, and {}!",
        dice[0], dice[1], dice[2]
    );
    ensure!(
        response["output_text"] == expected.as_str(),
        "output_text {} != {expected}",
        response["output_text"]
    );
    let messages = items(response, "message");
    ensure!(messages.len() == 1, "expected one message item");
    ensure!(
        messages[0]["content"][0]["text"] == expected.as_str(),
        "message text differs"
    );
    ensure!(
        response["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0,
        "usage not filled"
    );
    Ok(())
}

/// What the endpoint refuses: a foreign `Host` or `Origin` (403), a wrong key (401); and a
/// closed local port answers like any unreachable server (one text, no cause).
async fn refusals(transport: &'static str, ctx: &Ctx) -> anyhow::Result<()> {
    let body = json!({"model": "gpt-4.1", "input": "Roll a few dice!",
        "tools": [dice_tool(format!("{}/{transport}", ctx.plain), None, json!({}))]});
    let refused = |header: &'static str, value: &'static str, key: &'static str| {
        let request = http()
            .post(&ctx.responses)
            .bearer_auth(key)
            .header(header, value)
            .json(&body);
        async move {
            let response = request.send().await.context("POST /v1/responses")?;
            let status = response.status().as_u16();
            let error: Value = serde_json::from_str(&response.text().await?)?;
            anyhow::Ok((status, error["error"]["code"].clone()))
        }
    };
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
        let (status, code) = refused(header, value, key).await?;
        ensure!(
            (status, code.as_str()) == (want.0, Some(want.1)),
            "{header}: {value} with key {key}: got {status} {code}, want {want:?}"
        );
    }
    let closed = process::free_port()?;
    let body = json!({"model": "gpt-4.1", "input": "Roll a few dice!",
        "tools": [dice_tool(format!("http://127.0.0.1:{closed}/{transport}"), None, json!({}))]});
    let (status, text) = create(ctx, body).await?;
    ensure!(
        status == 424 && text == CLOSED_PORT_424,
        "closed port: got {status} {text}"
    );
    Ok(())
}

async fn no_token(transport: &'static str, ctx: &Ctx) -> anyhow::Result<()> {
    let body = json!({"model": "gpt-4.1", "input": "Roll a few dice!",
        "tools": [dice_tool(format!("{}/{transport}", ctx.auth), None, json!({}))]});
    let (status, text) = create(ctx, body).await?;
    ensure!(status == 424, "expected 424, got {status}: {text}");
    ensure!(
        text == SEED_424,
        "body differs from the seed's:\n  got  {text}\n  want {SEED_424}"
    );
    Ok(())
}

async fn with_token(transport: &'static str, ctx: &Ctx) -> anyhow::Result<()> {
    let body = json!({"model": "gpt-4.1", "input": "Roll a few dice!",
        "tools": [dice_tool(format!("{}/{transport}", ctx.auth), Some(&ctx.good_token), json!({}))]});
    check_dice(&create_ok(ctx, body).await?)
}

async fn wrong_audience(transport: &'static str, ctx: &Ctx) -> anyhow::Result<()> {
    let body = json!({"model": "gpt-4.1", "input": "Roll a few dice!",
        "tools": [dice_tool(format!("{}/{transport}", ctx.auth), Some(&ctx.wrong_audience), json!({}))]});
    let (status, text) = create(ctx, body).await?;
    ensure!(status == 424, "expected 424, got {status}: {text}");
    ensure!(
        text == SEED_424,
        "body differs:\n  got  {text}\n  want {SEED_424}"
    );
    Ok(())
}

async fn approval(transport: &'static str, ctx: &Ctx, approve: bool) -> anyhow::Result<()> {
    let tools = json!([dice_tool(
        format!("{}/{transport}", ctx.plain),
        None,
        json!({"require_approval": "always"})
    )]);
    let first = create_ok(
        ctx,
        json!({"model": "gpt-4.1", "input": "Roll a few dice!", "tools": tools}),
    )
    .await?;
    let requests = items(&first, "mcp_approval_request");
    ensure!(
        requests.len() == 1,
        "expected one approval request: {first}"
    );
    ensure!(
        items(&first, "mcp_call").is_empty(),
        "a call ran before approval"
    );
    ensure!(
        requests[0]["name"] == "roll_dice",
        "approval for {}",
        requests[0]["name"]
    );
    let answer = json!({
        "model": "gpt-4.1", "tools": tools, "previous_response_id": first["id"],
        "input": [{"type": "mcp_approval_response", "approval_request_id": requests[0]["id"], "approve": approve}],
    });
    let second = create_ok(ctx, answer).await?;
    ensure!(
        items(&second, "mcp_list_tools").is_empty(),
        "tools were listed again along the chain"
    );
    if approve {
        let calls = items(&second, "mcp_call");
        ensure!(calls.len() == 1, "expected the approved call: {second}");
        ensure!(
            calls[0]["approval_request_id"] == requests[0]["id"],
            "call not tied to its approval"
        );
        ensure!(
            second["output_text"]
                .as_str()
                .unwrap_or("")
                .starts_with("You rolled 3 dice"),
            "answer {}",
            second["output_text"]
        );
    } else {
        ensure!(
            items(&second, "mcp_call").is_empty(),
            "a denied call ran: {second}"
        );
        ensure!(
            items(&second, "message").len() == 1,
            "no answer after the denial"
        );
    }
    Ok(())
}

async fn allowed_tools(transport: &'static str, ctx: &Ctx) -> anyhow::Result<()> {
    let tool = dice_tool(
        format!("{}/{transport}", ctx.plain),
        None,
        json!({"allowed_tools": ["some_other_tool"]}),
    );
    let response = create_ok(
        ctx,
        json!({"model": "gpt-4.1", "input": "Roll a few dice!", "tools": [tool]}),
    )
    .await?;
    let lists = items(&response, "mcp_list_tools");
    ensure!(lists.len() == 1, "expected one mcp_list_tools item");
    ensure!(
        lists[0]["tools"].as_array().is_some_and(|t| t.is_empty()),
        "roll_dice was offered: {}",
        lists[0]
    );
    ensure!(
        items(&response, "mcp_call").is_empty(),
        "roll_dice ran though not allowed"
    );
    ensure!(items(&response, "message").len() == 1, "no answer");
    Ok(())
}

async fn streaming(transport: &'static str, ctx: &Ctx) -> anyhow::Result<()> {
    let body = json!({"model": "gpt-4.1", "input": "Roll a few dice!", "stream": true,
        "tools": [dice_tool(format!("{}/{transport}", ctx.plain), None, json!({}))]});
    let (status, text) = create(ctx, body).await?;
    ensure!(status == 200, "expected 200, got {status}: {text}");
    let mut types = Vec::new();
    for (i, block) in text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .enumerate()
    {
        let data = block
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .with_context(|| format!("event without data: {block}"))?;
        let event: Value = serde_json::from_str(data)?;
        ensure!(
            event["sequence_number"] == json!(i),
            "sequence_number {} at {i}",
            event["sequence_number"]
        );
        let kind = event["type"].as_str().unwrap_or("").to_owned();
        if let Some(name) = block.lines().find_map(|l| l.strip_prefix("event: ")) {
            ensure!(name == kind, "event name {name} != type {kind}");
        }
        if kind == "response.completed" {
            check_dice(&event["response"])?;
        }
        types.push(kind);
    }
    // The order the hosted tool produces (arguments events may come before or after in_progress).
    let expected = [
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
    let mut position = 0;
    for kind in &types {
        if position < expected.len() && kind == expected[position] {
            position += 1;
        }
    }
    if position != expected.len() {
        bail!(
            "events out of order at {:?}; got {types:?}",
            expected[position]
        );
    }
    for required in [
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.done",
    ] {
        ensure!(types.iter().any(|t| t == required), "missing {required}");
    }
    Ok(())
}
