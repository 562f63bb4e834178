//! Shared fixtures: test keys, a protected axum server on 127.0.0.1:0, and a JWKS server.
#![allow(dead_code, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use futures::future::BoxFuture;
use http::{HeaderValue, StatusCode};
use mcp_auth::{AuthError, BearerAuthLayer, Identity, ResourceServer, RsaKeyPair, TokenVerifier};
use serde_json::{Value, json};
use tokio::net::TcpListener;

fn load(slot: &'static OnceLock<RsaKeyPair>, pem: &str) -> &'static RsaKeyPair {
    slot.get_or_init(|| RsaKeyPair::from_private_key_pem(pem).unwrap())
}

/// The key the protected servers trust.
pub fn primary() -> &'static RsaKeyPair {
    static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
    load(&KEY, include_str!("../data/primary.pem"))
}

/// An unrelated key (loaded from its PKCS#1 form).
pub fn other() -> &'static RsaKeyPair {
    static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
    load(&KEY, include_str!("../data/other_pkcs1.pem"))
}

/// The key an authorization server rotates to.
pub fn rotated() -> &'static RsaKeyPair {
    static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
    load(&KEY, include_str!("../data/rotated.pem"))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A verifier that counts its calls.
pub struct CountingVerifier<V> {
    inner: V,
    pub calls: Arc<AtomicUsize>,
}

impl<V> CountingVerifier<V> {
    pub fn new(inner: V) -> Self {
        Self {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl<V: TokenVerifier> TokenVerifier for CountingVerifier<V> {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(token)
    }
}

/// An axum server whose `/mcp` route is protected and counts how often it ran.
pub struct Protected {
    pub base: String,
    pub metadata_url: String,
    pub handler_runs: Arc<AtomicUsize>,
    pub client: reqwest::Client,
    pub layer: Option<BearerAuthLayer>,
}

fn app(runs: Arc<AtomicUsize>) -> Router {
    let handler = move |Extension(identity): Extension<Identity>| {
        let runs = Arc::clone(&runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Json(json!({
                "subject": identity.subject.as_deref(),
                "client_id": identity.client_id.as_deref(),
                "scopes": &*identity.scopes,
                "iss": identity.claims.get("iss"),
            }))
        }
    };
    Router::new().route("/mcp", get(handler.clone()).post(handler))
}

async fn serve(listener: TcpListener, router: Router) {
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
}

impl Protected {
    /// Serves `/mcp` behind the resource server that `build` makes for resource `<base>/mcp`.
    pub async fn start(build: impl FnOnce(&str) -> ResourceServer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = build(&format!("{base}/mcp"));
        let runs = Arc::new(AtomicUsize::new(0));
        serve(listener, server.protect(app(Arc::clone(&runs)))).await;
        Self {
            base,
            metadata_url: server.metadata_url().to_owned(),
            handler_runs: runs,
            client: reqwest::Client::new(),
            layer: Some(server.layer()),
        }
    }

    /// Serves `/mcp` wrapped by `wrap` (for layers used without a resource server).
    pub async fn start_with_router(wrap: impl FnOnce(Router) -> Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        serve(listener, wrap(app(Arc::clone(&runs)))).await;
        Self {
            base,
            metadata_url: String::new(),
            handler_runs: runs,
            client: reqwest::Client::new(),
            layer: None,
        }
    }

    pub fn cache_hits(&self) -> u64 {
        self.layer.as_ref().unwrap().token_cache_hits()
    }

    /// Sends `GET /mcp` with this `Authorization` value; returns the status and JSON body.
    pub async fn call_ok(&self, authorization: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}/mcp", self.base))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn rejected(
        &self,
        authorization: Option<&str>,
        status: StatusCode,
        body_error: &str,
    ) -> reqwest::header::HeaderMap {
        let runs_before = self.handler_runs.load(Ordering::SeqCst);
        let mut request = self.client.get(format!("{}/mcp", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{authorization:?}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], body_error, "{body}");
        assert!(body["error_description"].is_string(), "{body}");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        // The token is never echoed.
        if let Some(token) = authorization
            .and_then(|value| value.split_once(' '))
            .map(|(_, token)| token.trim())
            .filter(|token| token.len() >= 6)
        {
            assert!(!body.to_string().contains(token), "{body}");
            for value in headers.values() {
                assert!(!value.to_str().unwrap_or_default().contains(token));
            }
        }
        assert_eq!(
            self.handler_runs.load(Ordering::SeqCst),
            runs_before,
            "the protected handler ran"
        );
        headers
    }

    /// Asserts a rejection: status, exact `WWW-Authenticate`, JSON `error`, handler not run.
    pub async fn expect_rejection(
        &self,
        authorization: Option<&str>,
        status: StatusCode,
        www_authenticate: &str,
        body_error: &str,
    ) {
        let headers = self.rejected(authorization, status, body_error).await;
        let challenges: Vec<_> = headers.get_all("www-authenticate").iter().collect();
        assert_eq!(challenges, vec![www_authenticate], "{authorization:?}");
    }

    /// Asserts a rejection that carries no `WWW-Authenticate` (e.g. 503).
    pub async fn expect_rejection_without_challenge(
        &self,
        authorization: Option<&str>,
        status: StatusCode,
        body_error: &str,
    ) -> Value {
        let runs_before = self.handler_runs.load(Ordering::SeqCst);
        let mut request = self.client.get(format!("{}/mcp", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        assert!(response.headers().get("www-authenticate").is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], body_error, "{body}");
        assert_eq!(self.handler_runs.load(Ordering::SeqCst), runs_before);
        body
    }
}

#[derive(Debug)]
struct JwksState {
    document: Value,
    status: StatusCode,
    cache_control: Option<String>,
    delay: Duration,
}

/// A JWKS endpoint on 127.0.0.1:0 whose document, status, `Cache-Control` and latency can be
/// changed while it runs; it counts its fetches.
#[derive(Clone)]
pub struct JwksServer {
    pub url: String,
    pub fetches: Arc<AtomicUsize>,
    state: Arc<Mutex<JwksState>>,
}

async fn jwks_handler(
    State((state, fetches)): State<(Arc<Mutex<JwksState>>, Arc<AtomicUsize>)>,
) -> impl IntoResponse {
    fetches.fetch_add(1, Ordering::SeqCst);
    let (document, status, cache_control, delay) = {
        let state = state.lock().unwrap();
        (
            state.document.clone(),
            state.status,
            state.cache_control.clone(),
            state.delay,
        )
    };
    tokio::time::sleep(delay).await;
    let mut response = (status, Json(document)).into_response();
    if let Some(value) = cache_control {
        response
            .headers_mut()
            .insert("cache-control", HeaderValue::from_str(&value).unwrap());
    }
    response
}

impl JwksServer {
    pub async fn start(document: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(JwksState {
            document,
            status: StatusCode::OK,
            cache_control: None,
            delay: Duration::ZERO,
        }));
        let fetches = Arc::new(AtomicUsize::new(0));
        let router = Router::new()
            .route("/jwks.json", get(jwks_handler))
            .with_state((Arc::clone(&state), Arc::clone(&fetches)));
        serve(listener, router).await;
        Self {
            url,
            fetches,
            state,
        }
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub fn set_document(&self, document: Value) {
        self.state.lock().unwrap().document = document;
    }

    pub fn set_status(&self, status: StatusCode) {
        self.state.lock().unwrap().status = status;
    }

    pub fn set_cache_control(&self, value: &str) {
        self.state.lock().unwrap().cache_control = Some(value.to_owned());
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }
}

/// `{"keys": [...]}` with the public JWKs of `pairs`.
pub fn key_set(pairs: &[&RsaKeyPair]) -> Value {
    json!({ "keys": pairs.iter().map(|pair| pair.public_jwk()).collect::<Vec<_>>() })
}
