//! The `mcp-gateway` binary on real sockets, with small shell scripts as children: auth and
//! RFC 9728 metadata, health and readiness, Origin checks, the child's stderr and
//! environment, and command-line errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const GATEWAY: &str = env!("CARGO_BIN_EXE_mcp-gateway");

/// A child that answers `initialize` and then reads (and ignores) everything.
const INIT_ONLY: &str = r#"read line; printf '%s\n' '{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"sh-server","version":"1"}}}'; cat > /dev/null"#;

struct Running {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

fn gateway(args: &[&str]) -> Command {
    let mut command = Command::new(GATEWAY);
    command
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the gateway and waits for the address it prints.
async fn start(args: &[&str]) -> Running {
    let mut child = gateway(args).spawn().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&stderr);
    let mut pipe = child.stderr.take().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the gateway printed its address")
        .unwrap()
        .unwrap_or_else(|| panic!("no address; stderr: {}", stderr.lock().unwrap()));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    Running {
        child,
        addr,
        stderr,
    }
}

fn initialize() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
}

async fn post_init(addr: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn sse_json(text: &str) -> Value {
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .rfind(|d| !d.is_empty())
        .unwrap_or(text);
    serde_json::from_str(data).unwrap()
}

#[tokio::test]
async fn auth_guards_the_mcp_routes_and_leaves_metadata_and_health_open() {
    let keys = mcp_auth::RsaKeyPair::generate().unwrap();
    let dir = std::env::temp_dir().join(format!("mcp-gateway-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("public.pem");
    std::fs::write(&key_file, keys.public_key_pem()).unwrap();
    let key_path = key_file.to_str().unwrap();
    let mut gw = start(&[
        "--port",
        "0",
        "--jwt-public-key",
        key_path,
        "--audience",
        "gw-test",
        "--issuer",
        "https://issuer.example",
        "--",
        "sh",
        "-c",
        INIT_ONLY,
    ])
    .await;
    let addr = gw.addr.clone();

    let denied = post_init(&addr, &[]).await;
    assert_eq!(denied.status(), 401);
    let challenge = denied.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let metadata_url = format!("http://{addr}/.well-known/oauth-protected-resource/mcp");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );

    let metadata: Value = reqwest::get(&metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], format!("http://{addr}/mcp"));
    assert_eq!(
        metadata["authorization_servers"],
        json!(["https://issuer.example"])
    );

    let wrong_audience = keys
        .create_token()
        .audience("other")
        .issuer("https://issuer.example")
        .sign()
        .unwrap();
    let refused = post_init(
        &addr,
        &[("authorization", &format!("Bearer {wrong_audience}"))],
    )
    .await;
    assert_eq!(refused.status(), 401);

    let token = keys
        .create_token()
        .audience("gw-test")
        .issuer("https://issuer.example")
        .sign()
        .unwrap();
    let bearer = format!("Bearer {token}");
    let accepted = post_init(&addr, &[("authorization", &bearer)]).await;
    assert_eq!(accepted.status(), 200);
    let init = sse_json(&accepted.text().await.unwrap());
    assert_eq!(init["result"]["serverInfo"]["name"], "sh-server");

    let evil = post_init(
        &addr,
        &[
            ("authorization", &bearer),
            ("origin", "http://evil.example"),
        ],
    )
    .await;
    assert_eq!(evil.status(), 403);

    for (path, body) in [
        ("/healthz", json!({"status":"ok"})),
        ("/readyz", json!({"status":"ready"})),
    ] {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap(), body);
    }
    gw.child.start_kill().unwrap();
    gw.child.wait().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_childs_stderr_is_logged_with_its_name_and_the_gateways_variables_stay_out() {
    // CARGO_MANIFEST_DIR is in the gateway's environment (cargo sets it for tests).
    let script = r#"echo "secret=[$CARGO_MANIFEST_DIR] given=[$GIVEN]" >&2; exit 3"#;
    let output = gateway(&[
        "--port",
        "0",
        "--env",
        "GIVEN=1",
        "--name",
        "fake",
        "--start-timeout-ms",
        "1500",
        "--",
        "sh",
        "-c",
        script,
    ])
    .output()
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[fake] secret=[] given=[1]"), "{stderr}");
    assert!(
        stderr.contains("mcp-gateway: error: the MCP server did not start: Internal error: the MCP server process is not running (the MCP server \"fake\" exited before answering `initialize`); it is being restarted"),
        "{stderr}"
    );
}

#[tokio::test]
async fn readiness_and_calls_report_a_child_that_stays_down() {
    // The child serves once, for half a second; every restart fails at once.
    let marker = std::env::temp_dir().join(format!("mcp-gateway-once-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let script = format!(
        r#"[ -e '{m}' ] && exit 1; touch '{m}'; read line; printf '%s\n' '{{"jsonrpc":"2.0","id":0,"result":{{"protocolVersion":"2025-11-25","capabilities":{{}},"serverInfo":{{"name":"once","version":"1"}}}}}}'; sleep 0.5; exit 0"#,
        m = marker.display()
    );
    let mut gw = start(&[
        "--port",
        "0",
        "--start-timeout-ms",
        "300",
        "--restart-wait-ms",
        "200",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .await;
    let readyz = format!("http://{}/readyz", gw.addr);
    assert_eq!(reqwest::get(&readyz).await.unwrap().status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut last = (0, Value::Null);
    while std::time::Instant::now() < deadline {
        let response = reqwest::get(&readyz).await.unwrap();
        last = (response.status().as_u16(), response.json().await.unwrap());
        if last.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last, (503, json!({"status": "child_unavailable"})));
    let started = std::time::Instant::now();
    let answer = post_init(&gw.addr, &[]).await;
    assert_eq!(answer.status(), 200);
    let answer = sse_json(&answer.text().await.unwrap());
    assert_eq!(answer["error"]["code"], -32603);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Internal error: the MCP server process is not running ("),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    gw.child.start_kill().unwrap();
    gw.child.wait().await.unwrap();
    let log = gw.stderr.lock().unwrap().clone();
    assert!(log.contains("MCP server down; restarting"), "{log}");
    let _ = std::fs::remove_file(&marker);
}

#[tokio::test]
async fn command_line_errors_are_reported() {
    let bad_env = gateway(&["--env", "NOEQUALS", "--", "true"])
        .output()
        .await
        .unwrap();
    assert_eq!(bad_env.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad_env.stderr).trim(),
        "mcp-gateway: error: invalid environment assignment \"NOEQUALS\": expected KEY=VALUE"
    );
    let conflict = gateway(&["--per-session", "--stateless", "--", "true"])
        .output()
        .await
        .unwrap();
    assert_eq!(conflict.status.code(), Some(2));
    // A session's own child cannot be shared between replicas: refused before anything runs.
    let replicas = gateway(&[
        "--per-session",
        "--redis",
        "redis://127.0.0.1:1",
        "--",
        "true",
    ])
    .output()
    .await
    .unwrap();
    assert_eq!(replicas.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&replicas.stderr);
    assert!(
        stderr
            .starts_with("error: the argument '--per-session' cannot be used with '--redis <URL>'"),
        "{stderr}"
    );
    let no_command = gateway(&["--port", "0"]).output().await.unwrap();
    assert_eq!(no_command.status.code(), Some(2));
}

/// An authenticated HTTP MCP server with a `hello` tool, in this process; returns its
/// `/mcp` URL and a valid token.
async fn remote_server() -> (String, String) {
    use mcp_proto::{McpServer, NoArgs, ToolError};
    let keys = mcp_auth::RsaKeyPair::generate().unwrap();
    let service = McpServer::builder("remote")
        .tool("hello", "Says hello.", |_: NoArgs| async {
            Ok::<_, ToolError>("hello from afar".to_owned())
        })
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let verifier = mcp_auth::JwtVerifier::from_public_key_pem(&keys.public_key_pem())
        .unwrap()
        .audience("remote");
    let auth = mcp_auth::ResourceServer::new(&url, verifier)
        .unwrap()
        .authorization_server("https://issuer.example");
    let mcp = mcp_sse::McpHttpServer::new(service);
    let app = auth.protect(mcp.router());
    tokio::spawn(mcp.serve_app(app, listener, std::future::pending()));
    let token = keys.create_token().audience("remote").sign().unwrap();
    (url, token)
}

/// Runs `mcp-gateway --connect url` with `input` on stdin; returns its stdout lines as JSON.
async fn connect(url: &str, token: Option<&str>, input: &[Value]) -> (Vec<Value>, i32) {
    use tokio::io::AsyncWriteExt;
    let mut command = gateway(&["--connect", url]);
    command
        .stdin(Stdio::piped())
        .env_remove("MCP_GATEWAY_BEARER_TOKEN");
    if let Some(token) = token {
        command.env("MCP_GATEWAY_BEARER_TOKEN", token);
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut answers = Vec::new();
    for message in input {
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
        if message.get("id").is_some() {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            answers.push(serde_json::from_str(&line).unwrap());
        }
    }
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    (answers, status.code().unwrap_or(-1))
}

#[tokio::test]
async fn connect_serves_a_remote_http_server_over_stdio_with_a_bearer_token() {
    let (url, token) = remote_server().await;
    let input = [
        initialize(),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":"list","method":"tools/list"}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"hello","arguments":{}}}),
        json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope","arguments":{}}}),
    ];
    let (answers, code) = connect(&url, Some(&token), &input).await;
    assert_eq!(code, 0);
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[0]["result"]["serverInfo"]["name"], "remote");
    assert_eq!(answers[0]["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(answers[1]["id"], "list");
    assert_eq!(answers[1]["result"]["tools"][0]["name"], "hello");
    assert_eq!(
        answers[2]["result"]["content"],
        json!([{"type":"text","text":"hello from afar"}])
    );
    assert_eq!(answers[3]["id"], 4);
    assert_eq!(answers[3]["error"]["code"], -32602, "{}", answers[3]);

    // Without the token the remote server refuses, and the host is told why.
    let (answers, code) = connect(&url, None, &input[..1]).await;
    assert_eq!(code, 0);
    assert_eq!(answers[0]["error"]["code"], -32603);
    let message = answers[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("Internal error: cannot connect to {url}: ")),
        "{message}"
    );
    assert!(message.contains("401"), "{message}");
}
