//! `McpClient` with OAuth against one of our servers behind a bearer check, with a small
//! authorization server beside it, over real sockets in both eras.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mcp_oauth_client::OAuthConfig;
use mcp_proto::ProtocolVersion;
use mcp_proto::{McpServer, NoArgs, ToolContext, ToolError};
use serde_json::json;

use crate::McpHttpServer;
use crate::client::McpClient;

/// The authorization server's books: valid access tokens, live refresh tokens, and what it
/// was asked.
#[derive(Debug, Default)]
struct Books {
    base: String,
    access: Vec<String>,
    refresh: Vec<String>,
    counter: u32,
    authorizations: u32,
    grants: Vec<String>,
}

type Shared = Arc<Mutex<Books>>;

async fn hello(_: ToolContext, _: NoArgs) -> Result<String, ToolError> {
    Ok("hello".to_owned())
}

async fn require_token(State(books): State<Shared>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let (valid, base) = {
        let b = books.lock().unwrap();
        (
            token.as_ref().is_some_and(|t| b.access.contains(t)),
            b.base.clone(),
        )
    };
    if valid {
        return next.run(request).await;
    }
    let error = if token.is_some() {
        r#"error="invalid_token", "#
    } else {
        ""
    };
    let challenge = format!(
        r#"Bearer {error}resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        Body::empty(),
    )
        .into_response()
}

async fn protected_resource(State(books): State<Shared>) -> Response {
    let base = books.lock().unwrap().base.clone();
    axum::Json(json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]}))
        .into_response()
}

async fn server_metadata(State(books): State<Shared>) -> Response {
    let base = books.lock().unwrap().base.clone();
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
    .into_response()
}

async fn register() -> Response {
    (StatusCode::CREATED, axum::Json(json!({"client_id": "c1"}))).into_response()
}

async fn authorize(
    State(books): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    books.lock().unwrap().authorizations += 1;
    let mut target = reqwest::Url::parse(&q["redirect_uri"]).unwrap();
    target
        .query_pairs_mut()
        .append_pair("code", "the-code")
        .append_pair("state", &q["state"]);
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

async fn token(State(books): State<Shared>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut b = books.lock().unwrap();
    let grant = form["grant_type"].clone();
    if grant == "refresh_token" {
        let Some(at) = b.refresh.iter().position(|r| *r == form["refresh_token"]) else {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant"})),
            )
                .into_response();
        };
        b.refresh.remove(at);
    }
    b.grants.push(grant);
    b.counter += 1;
    let (access, refresh) = (format!("at-{}", b.counter), format!("rt-{}", b.counter));
    b.access.push(access.clone());
    b.refresh.push(refresh.clone());
    axum::Json(json!({
        "access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": refresh,
    }))
    .into_response()
}

/// Our MCP server at `/mcp` behind the bearer check, and the authorization server.
async fn start() -> (String, Shared) {
    let mcp = McpServer::builder("oauth-test")
        .tool("hello", "Says hello.", hello)
        .build()
        .unwrap();
    let books = Shared::default();
    let protected = McpHttpServer::new(mcp)
        .router()
        .layer(middleware::from_fn_with_state(books.clone(), require_token));
    let app = Router::new()
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(server_metadata),
        )
        .route("/register", post(register))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(books.clone())
        .merge(protected);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    books.lock().unwrap().base = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("{base}/mcp"), books)
}

#[tokio::test]
async fn the_client_authorizes_on_the_first_401_and_refreshes_a_rejected_token_unnoticed() {
    for version in [ProtocolVersion::V2025_11_25, ProtocolVersion::V2026_07_28] {
        let (url, books) = start().await;
        let client = McpClient::builder(url)
            .protocol_version(version)
            .oauth(OAuthConfig::new("oauth test"))
            .connect()
            .await
            .unwrap();
        let result = client.call_tool("hello", json!({})).await.unwrap();
        assert_eq!(
            serde_json::to_value(&result.content[0]).unwrap()["text"],
            "hello",
            "{version}"
        );
        // The server forgets every access token: the next call refreshes and goes through.
        books.lock().unwrap().access.clear();
        let result = client.call_tool("hello", json!({})).await.unwrap();
        assert_eq!(
            serde_json::to_value(&result.content[0]).unwrap()["text"],
            "hello",
            "{version}"
        );
        let b = books.lock().unwrap();
        assert_eq!(b.authorizations, 1, "{version}");
        assert_eq!(
            b.grants,
            ["authorization_code", "refresh_token"],
            "{version}"
        );
    }
}

#[tokio::test]
async fn without_oauth_the_401_is_the_error() {
    let (url, _) = start().await;
    let err = McpClient::builder(url).connect().await.unwrap_err();
    assert_eq!(err.http_status(), Some(StatusCode::UNAUTHORIZED));
}
