//! `/healthz` and `/readyz` on real sockets: outside an auth layer, not ready while
//! draining (before the listener stops accepting), and no `/metrics` unless installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcp_proto::{McpServer, NoArgs, ToolError};
use mcp_sse::{McpHttpServer, ServerConfig};
use serde_json::{Value, json};

fn service() -> McpServer {
    McpServer::builder("health-test")
        .tool("noop", "Does nothing.", |_: NoArgs| async {
            Ok::<_, ToolError>("ok".to_owned())
        })
        .build()
        .unwrap()
}

async fn get(url: String) -> (StatusCode, Option<String>, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().await.unwrap();
    (
        status,
        content_type,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

#[tokio::test]
async fn live_and_ready_until_draining_then_not_ready_while_still_accepting() {
    let config = ServerConfig {
        unready_delay: Duration::from_millis(800),
        ..ServerConfig::default()
    };
    let server = McpHttpServer::with_config(service(), config);
    let running = server.clone().spawn("127.0.0.1:0").await.unwrap();
    let (status, content_type, body) = get(running.url("/healthz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let (status, _, body) = get(running.url("/readyz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    let (status, _, _) = get(running.url("/metrics")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "metrics are off by default");

    let draining = tokio::spawn(async move { server.drain().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, body) = get(running.url("/readyz")).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "draining"})
        )
    );
    let (status, _, _) = get(running.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    draining.await.unwrap();
    running.shutdown().await.unwrap();
}

/// Refuses everything without `authorization: Bearer good`.
async fn require_token(request: Request, next: Next) -> Response {
    match request.headers().get("authorization") {
        Some(v) if v == "Bearer good" => next.run(request).await,
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

#[tokio::test]
async fn health_routes_mount_outside_an_auth_layer() {
    let mcp = McpHttpServer::new(service());
    let app = mcp
        .router()
        .layer(axum::middleware::from_fn(require_token))
        .merge(mcp.health_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(async move { axum::serve(listener, app).await });
    let (status, _, body) = get(format!("http://{addr}/readyz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    let (status, _, _) = get(format!("http://{addr}/sse")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    served.abort();
}
