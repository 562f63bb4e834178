//! `GET /healthz` and `GET /readyz` for load balancers and orchestrators.
//!
//! - `/healthz` (liveness): 200 `{"status":"ok"}` whenever the process serves HTTP.
//! - `/readyz` (readiness): 200 `{"status":"ready"}` when the server takes new traffic;
//!   503 `{"status":"draining"}` once [`super::McpHttpServer::drain`] started (before the
//!   listener stops accepting), and 503 `{"status":"store_unavailable","error":"…"}` when
//!   the session store does not pass its health check within [`STORE_CHECK_TIMEOUT`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::state::ServerState;

/// How long `/readyz` waits for the session store's health check.
pub const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

fn status(code: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (code, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Liveness: the process serves.
pub(crate) async fn healthz() -> Response {
    status(StatusCode::OK, json!({"status": "ok"}))
}

/// Readiness: not draining, and the session store (if any) reachable.
pub(crate) async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    if state.draining.load(Ordering::SeqCst) {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "draining"}),
        );
    }
    let checked = tokio::time::timeout(STORE_CHECK_TIMEOUT, state.store.health()).await;
    let error = match checked {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "no answer within {} s",
            STORE_CHECK_TIMEOUT.as_secs()
        )),
    };
    if let Some(error) = error {
        tracing::warn!(%error, "not ready: session store");
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "store_unavailable", "error": error}),
        );
    }
    status(StatusCode::OK, json!({"status": "ready"}))
}
