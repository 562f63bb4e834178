//! The axum routes: `POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use http::{Method, StatusCode, Uri};
use serde::Serialize;
use tokio_stream::wrappers::ReceiverStream;

use crate::access::{self, Access};
use crate::engine::{self, Shared};
use crate::error::ApiError;
use crate::request;
use crate::response::EncodedEvent;

/// Capacity of the per-stream event queue.
const STREAM_QUEUE: usize = 64;

/// The routes behind the access guard (loopback `Host`/`Origin`, API key) and the body limit.
pub(crate) fn router(shared: Arc<Shared>, access: Arc<Access>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/responses", post(create_response))
        .route(
            "/v1/responses/{id}",
            get(retrieve_response).delete(delete_response),
        )
        .fallback(invalid_url)
        .method_not_allowed_fallback(invalid_url)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(access, access::guard))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn create_response(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            return ApiError::new(
                status,
                "invalid_request_error",
                format!(
                    "The request body could not be read: {}",
                    rejection.body_text()
                ),
                None,
                (status == StatusCode::PAYLOAD_TOO_LARGE).then_some("request_too_large"),
            )
            .into_response();
        }
    };
    let request = match request::parse(&body, shared.max_mcp_tools) {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
    let stream = request.stream;
    let prepared = match engine::prepare(&shared, request).await {
        Ok(prepared) => prepared,
        Err(e) => return e.into_response(),
    };
    if !stream {
        return match engine::run(&shared, prepared, None).await {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => e.into_response(),
        };
    }
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
    tokio::spawn(async move {
        // Failures are reported in-stream as `response.failed`.
        let _ = engine::run(&shared, prepared, Some(tx)).await;
    });
    let events = ReceiverStream::new(rx).map(|event: EncodedEvent| {
        Ok::<_, Infallible>(Event::default().event(event.kind).data(event.data))
    });
    Sse::new(events).into_response()
}

/// The answer to `DELETE /v1/responses/{id}`.
#[derive(Serialize)]
struct Deleted<'a> {
    id: &'a str,
    object: &'static str,
    deleted: bool,
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("Response with id '{id}' not found."),
        None,
        None,
    )
}

async fn retrieve_response(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match shared.store.get(&id) {
        Some(stored) => (
            StatusCode::OK,
            [(http::header::CONTENT_TYPE, "application/json")],
            stored.body.clone(),
        )
            .into_response(),
        None => not_found(&id).into_response(),
    }
}

async fn delete_response(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if shared.store.remove(&id) {
        let deleted = Deleted {
            id: &id,
            object: "response",
            deleted: true,
        };
        match serde_json::to_string(&deleted) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => ApiError::server(e.to_string()).into_response(),
        }
    } else {
        not_found(&id).into_response()
    }
}

async fn invalid_url(method: Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("Invalid URL ({method} {})", uri.path()),
        None,
        None,
    )
    .into_response()
}
