//! `mcp-auth` in front of `mcp-sse`, over real sockets and both transports: the guide's
//! bearer-JWT flow, the caller's identity reaching tool handlers, and scope checks inside a tool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use mcp_auth::{DEV_ISSUER, Identity, JwtVerifier, ResourceServer, RsaKeyPair};
use mcp_proto::{McpServer, NoArgs, ToolContext, ToolError};
use mcp_sse::McpHttpServer;
use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use serde_json::{Value, json};

fn key_pair() -> &'static RsaKeyPair {
    static KP: OnceLock<RsaKeyPair> = OnceLock::new();
    KP.get_or_init(|| RsaKeyPair::generate().unwrap())
}

/// Reports who called, from the identity the auth layer put in the request extensions.
async fn whoami(ctx: ToolContext, calls: Arc<AtomicUsize>) -> Result<String, ToolError> {
    calls.fetch_add(1, Ordering::SeqCst);
    let who = ctx
        .extensions()
        .get::<Identity>()
        .ok_or_else(|| ToolError::new("no identity"))?;
    Ok(who.subject.as_deref().unwrap_or_default().to_owned())
}

/// Demands the `dice:admin` scope.
async fn admin(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
    let who = ctx
        .extensions()
        .get::<Identity>()
        .ok_or_else(|| ToolError::new("no identity"))?;
    who.require_scope("dice:admin")
        .map_err(|e| ToolError::new(e.to_string()))?;
    Ok("admin ok".into())
}

/// Starts the protected dice server; returns its address, the server task and a count of
/// `whoami` runs.
async fn start() -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<()>,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let service = McpServer::builder("Dice Roller")
        .tool(
            "whoami",
            "Who is calling.",
            move |ctx: ToolContext, _: NoArgs| whoami(ctx, Arc::clone(&counter)),
        )
        .tool("admin", "Needs the dice:admin scope.", admin)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let verifier = JwtVerifier::from_public_key_pem(&key_pair().public_key_pem())
        .unwrap()
        .audience("dice-server");
    let app = ResourceServer::new(&format!("http://{addr}/mcp"), verifier)
        .unwrap()
        .authorization_server(DEV_ISSUER)
        .protect(McpHttpServer::new(service).router());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task, calls)
}

fn token(scopes: &[&str]) -> String {
    key_pair()
        .create_token()
        .audience("dice-server")
        .subject("alice")
        .scopes(scopes.iter().copied())
        .sign()
        .unwrap()
}

fn text(result: &mcp_proto::CallToolResult) -> String {
    result.content[0].as_text().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn without_a_token_both_transports_answer_401_with_the_challenge() {
    let (addr, task, calls) = start().await;
    for (path, kind) in [
        ("/sse", TransportKind::LegacySse),
        ("/mcp", TransportKind::StreamableHttp),
    ] {
        let err = McpClient::builder(format!("http://{addr}{path}"))
            .transport(kind)
            .connect()
            .await
            .expect_err("connecting without a token must fail");
        assert_eq!(err.to_string(), "Http status code: 401 (Unauthorized)");
    }
    let raw = reqwest::Client::new()
        .get(format!("http://{addr}/sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    assert_eq!(
        raw.headers()["www-authenticate"],
        format!(
            "Bearer resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource/mcp\""
        )
    );
    let metadata: Value = reqwest::get(format!(
        "http://{addr}/.well-known/oauth-protected-resource/mcp"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["resource"], format!("http://{addr}/mcp"));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no tool ran");
    task.abort();
}

#[tokio::test]
async fn with_a_token_the_identity_reaches_the_tool_over_both_transports() {
    let (addr, task, calls) = start().await;
    for (path, kind) in [
        ("/sse", TransportKind::LegacySse),
        ("/mcp", TransportKind::StreamableHttp),
    ] {
        let client = McpClient::builder(format!("http://{addr}{path}"))
            .transport(kind)
            .bearer_token(token(&[]))
            .connect()
            .await
            .unwrap();
        let result = client.call_tool("whoami", json!({})).await.unwrap();
        assert!(!result.is_error(), "{result:?}");
        assert_eq!(text(&result), "alice");
        // A tool can demand a scope: missing it is a tool error the model sees.
        let denied = client.call_tool("admin", json!({})).await.unwrap();
        assert!(denied.is_error());
        assert!(text(&denied).contains("dice:admin"), "{}", text(&denied));
        client.close().await.unwrap();

        let admin_client = McpClient::builder(format!("http://{addr}{path}"))
            .transport(kind)
            .bearer_token(token(&["dice:admin"]))
            .connect()
            .await
            .unwrap();
        let allowed = admin_client.call_tool("admin", json!({})).await.unwrap();
        assert_eq!(text(&allowed), "admin ok");
        admin_client.close().await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    task.abort();
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_with_invalid_token() {
    let (addr, task, calls) = start().await;
    let wrong = key_pair().create_token().audience("other").sign().unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .bearer_auth(&wrong)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    let body = response.text().await.unwrap();
    assert!(!body.contains(&wrong), "the token is never echoed");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    task.abort();
}

fn token_for(subject: &str) -> String {
    key_pair()
        .create_token()
        .audience("dice-server")
        .subject(subject)
        .sign()
        .unwrap()
}

#[tokio::test]
async fn a_session_belongs_to_the_subject_that_created_it_on_both_transports() {
    let (addr, _task, calls) = start().await;
    let http = reqwest::Client::new();
    let alice = token_for("alice");
    let bob = token_for("bob");

    // Streamable HTTP: alice's session is unknown to bob, for POST, GET and DELETE.
    let client = McpClient::builder(format!("http://{addr}/mcp"))
        .transport(TransportKind::StreamableHttp)
        .protocol_version(mcp_proto::ProtocolVersion::V2025_11_25)
        .bearer_token(&alice)
        .connect()
        .await
        .unwrap();
    let session = client.session_id().unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "whoami", "arguments": {}}});
    let post = |token: String| {
        http.post(format!("http://{addr}/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", client.protocol_version().as_str())
            .json(&call)
            .send()
    };
    let refused = post(bob.clone()).await.unwrap();
    assert_eq!(refused.status(), 404);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Not Found: Unknown or expired session ID"
    );
    let get = http
        .get(format!("http://{addr}/mcp"))
        .bearer_auth(&bob)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
    let delete = http
        .delete(format!("http://{addr}/mcp"))
        .bearer_auth(&bob)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "bob's call never ran");
    // Still alice's.
    assert_eq!(post(alice.clone()).await.unwrap().status(), 200);
    let result = client.call_tool("whoami", json!({})).await.unwrap();
    assert_eq!(text(&result), "alice");

    // Legacy SSE: bob cannot post into alice's stream.
    let legacy = McpClient::builder(format!("http://{addr}/sse"))
        .transport(TransportKind::LegacySse)
        .bearer_token(&alice)
        .connect()
        .await
        .unwrap();
    let legacy_session = legacy.session_id().unwrap();
    let refused = http
        .post(format!(
            "http://{addr}/messages/?session_id={legacy_session}"
        ))
        .bearer_auth(&bob)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let result = legacy.call_tool("whoami", json!({})).await.unwrap();
    assert_eq!(text(&result), "alice");
}
