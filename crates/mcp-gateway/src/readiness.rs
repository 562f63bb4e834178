//! `/readyz` that also says whether the child runs.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::Gateway;

/// `health` (from [`mcp_sse::McpHttpServer::health_router`]) with `GET /readyz` answering
/// 503 `{"status":"child_unavailable"}` while the shared child is not running (starting, or
/// restarting after a crash), so load balancers send traffic to replicas whose child runs.
pub fn with_child_readiness(health: Router, gateway: &Gateway) -> Router {
    health.layer(middleware::from_fn_with_state(gateway.clone(), child_ready))
}

async fn child_ready(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/readyz" && !gateway.is_ready() {
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"child_unavailable"}"#,
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return response;
    }
    next.run(request).await
}
