//! A real authorization server and protected resource on a local socket, for the tests:
//! configurable to misbehave the ways a client must notice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::pkce::s256;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// `resource` in the protected resource metadata; `None` is the server's own.
    pub prm_resource: Option<String>,
    /// `issuer` in the metadata; `None` is the server's own.
    pub metadata_issuer: Option<String>,
    pub pkce_methods: Option<Vec<&'static str>>,
    pub auth_methods: Vec<&'static str>,
    pub scopes_supported: Option<Vec<&'static str>>,
    /// The scope the MCP route demands (403 without it).
    pub required_scope: Option<&'static str>,
    /// The scope granted whatever is asked; `None` grants what is asked.
    pub granted_scope: Option<&'static str>,
    /// Sends back another state than the request's.
    pub tamper_state: bool,
    pub refresh_tokens: bool,
    pub expires_in: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            prm_resource: None,
            metadata_issuer: None,
            pkce_methods: Some(vec!["S256"]),
            auth_methods: vec!["client_secret_basic"],
            scopes_supported: None,
            required_scope: None,
            granted_scope: None,
            tamper_state: false,
            refresh_tokens: true,
            expires_in: 3600,
        }
    }
}

/// What the server saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub registrations: Vec<Value>,
    pub authorizations: Vec<HashMap<String, String>>,
    /// Token requests: form fields plus `authorization` when the header was sent.
    pub token_requests: Vec<HashMap<String, String>>,
}

#[derive(Debug, Default)]
struct Issued {
    /// code → (PKCE challenge, scope).
    codes: HashMap<String, (String, Option<String>)>,
    /// access token → (expiry, scope).
    access: HashMap<String, (Instant, Option<String>)>,
    /// refresh token → scope.
    refresh: HashMap<String, Option<String>>,
    counter: u32,
}

#[derive(Debug)]
struct Inner {
    base: String,
    behaviour: Behaviour,
    seen: Mutex<Seen>,
    issued: Mutex<Issued>,
}

/// A running server; `url()` is its MCP endpoint.
#[derive(Debug, Clone)]
pub struct TestServer {
    inner: Arc<Inner>,
}

impl TestServer {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Inner {
            base,
            behaviour,
            seen: Mutex::default(),
            issued: Mutex::default(),
        });
        let app = Router::new()
            .route("/.well-known/oauth-protected-resource/mcp", get(prm))
            .route("/.well-known/oauth-authorization-server", get(as_metadata))
            .route("/register", post(register))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/mcp", post(mcp))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { inner }
    }

    pub fn url(&self) -> String {
        format!("{}/mcp", self.inner.base)
    }

    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.seen.lock().unwrap()
    }

    /// Makes every access token issued so far invalid.
    pub fn revoke_access_tokens(&self) {
        self.inner.issued.lock().unwrap().access.clear();
    }

    /// Makes every access and refresh token issued so far invalid.
    pub fn revoke_all_tokens(&self) {
        let mut issued = self.inner.issued.lock().unwrap();
        issued.access.clear();
        issued.refresh.clear();
    }
}

type Shared = State<Arc<Inner>>;

async fn prm(State(s): Shared) -> Response {
    let resource = s
        .behaviour
        .prm_resource
        .clone()
        .unwrap_or_else(|| format!("{}/mcp", s.base));
    axum::Json(json!({"resource": resource, "authorization_servers": [s.base]})).into_response()
}

async fn as_metadata(State(s): Shared) -> Response {
    let b = &s.behaviour;
    let mut doc = json!({
        "issuer": b.metadata_issuer.clone().unwrap_or_else(|| s.base.clone()),
        "authorization_endpoint": format!("{}/authorize", s.base),
        "token_endpoint": format!("{}/token", s.base),
        "registration_endpoint": format!("{}/register", s.base),
        "token_endpoint_auth_methods_supported": b.auth_methods,
        "authorization_response_iss_parameter_supported": true,
    });
    if let Some(methods) = &b.pkce_methods {
        doc["code_challenge_methods_supported"] = json!(methods);
    }
    if let Some(scopes) = &b.scopes_supported {
        doc["scopes_supported"] = json!(scopes);
    }
    axum::Json(doc).into_response()
}

async fn register(State(s): Shared, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = request["token_endpoint_auth_method"]
        .as_str()
        .unwrap_or("client_secret_basic")
        .to_owned();
    s.seen.lock().unwrap().registrations.push(request);
    let mut answer = json!({"client_id": "client-1", "token_endpoint_auth_method": method});
    if method != "none" {
        answer["client_secret"] = json!("secret-1");
    }
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

async fn authorize(State(s): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    s.seen.lock().unwrap().authorizations.push(q.clone());
    let code = {
        let mut issued = s.issued.lock().unwrap();
        issued.counter += 1;
        let code = format!("code-{}", issued.counter);
        let challenge = q.get("code_challenge").cloned().unwrap_or_default();
        let granted = match s.behaviour.granted_scope {
            Some(scope) => Some(scope.to_owned()),
            None => q.get("scope").cloned(),
        };
        issued.codes.insert(code.clone(), (challenge, granted));
        code
    };
    let state = if s.behaviour.tamper_state {
        "tampered".to_owned()
    } else {
        q.get("state").cloned().unwrap_or_default()
    };
    let mut target = reqwest::Url::parse(q.get("redirect_uri").map_or("", String::as_str)).unwrap();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state)
        .append_pair("iss", &s.base);
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

async fn token(State(s): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let mut form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        form.insert("authorization".into(), auth.to_str().unwrap().to_owned());
    }
    s.seen.lock().unwrap().token_requests.push(form.clone());
    let mut issued = s.issued.lock().unwrap();
    let scope = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((challenge, scope)) = form.get("code").and_then(|c| issued.codes.remove(c))
            else {
                return oauth_error("invalid_grant");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            if s256(&verifier) != challenge || !form.contains_key("resource") {
                return oauth_error("invalid_grant");
            }
            scope
        }
        Some("refresh_token") => {
            match form
                .get("refresh_token")
                .and_then(|r| issued.refresh.remove(r))
            {
                Some(scope) => scope,
                None => return oauth_error("invalid_grant"),
            }
        }
        _ => return oauth_error("unsupported_grant_type"),
    };
    issued.counter += 1;
    let access = format!("at-{}", issued.counter);
    let expiry = Instant::now() + Duration::from_secs(s.behaviour.expires_in);
    issued
        .access
        .insert(access.clone(), (expiry, scope.clone()));
    let mut answer = json!({
        "access_token": access, "token_type": "Bearer", "expires_in": s.behaviour.expires_in,
    });
    if let Some(scope) = scope.clone() {
        answer["scope"] = json!(scope);
    }
    if s.behaviour.refresh_tokens {
        let refresh = format!("rt-{}", issued.counter);
        issued.refresh.insert(refresh.clone(), scope);
        answer["refresh_token"] = json!(refresh);
    }
    axum::Json(answer).into_response()
}

fn oauth_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": code}))).into_response()
}

async fn mcp(State(s): Shared, headers: HeaderMap) -> Response {
    let metadata = format!("{}/.well-known/oauth-protected-resource/mcp", s.base);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return challenge(
            StatusCode::UNAUTHORIZED,
            format!(r#"Bearer resource_metadata="{metadata}""#),
        );
    };
    let found = s.issued.lock().unwrap().access.get(token).cloned();
    let Some((_, scope)) = found.filter(|(expiry, _)| *expiry > Instant::now()) else {
        return challenge(
            StatusCode::UNAUTHORIZED,
            format!(r#"Bearer error="invalid_token", resource_metadata="{metadata}""#),
        );
    };
    if let Some(required) = s.behaviour.required_scope {
        let has = scope
            .as_deref()
            .is_some_and(|s| s.split_whitespace().any(|x| x == required));
        if !has {
            return challenge(
                StatusCode::FORBIDDEN,
                format!(
                    r#"Bearer error="insufficient_scope", scope="{required}", resource_metadata="{metadata}""#
                ),
            );
        }
    }
    axum::Json(json!({"ok": true})).into_response()
}

fn challenge(status: StatusCode, value: String) -> Response {
    (status, [(header::WWW_AUTHENTICATE, value)], "").into_response()
}
