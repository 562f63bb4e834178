//! RFC 9728 protected resource metadata, and [`ResourceServer`], which mounts it together with
//! the [`BearerAuthLayer`].

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::HeaderValue;
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::{AuthError, BearerAuthLayer, TokenVerifier};

/// Path of the RFC 9728 metadata document at the server root.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// The RFC 9728 document that tells OAuth clients which authorization servers issue tokens for
/// this resource. MCP requires `authorization_servers` to name at least one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: the MCP endpoint's canonical URL, e.g. `https://mcp.example.com/mcp`.
    pub resource: String,
    /// Issuer URLs of the authorization servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Where the resource's own signing keys are published (rarely needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Scopes clients may request for this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How tokens may be presented; MCP allows only `["header"]`.
    #[serde(default)]
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// A URL of human-readable documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

impl ProtectedResourceMetadata {
    /// Metadata for `resource` with `bearer_methods_supported: ["header"]` and nothing else.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            jwks_uri: None,
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: None,
            resource_documentation: None,
        }
    }

    /// A router serving this document, unauthenticated, at [`WELL_KNOWN_PATH`] and at the
    /// path-suffixed form for the resource's path (e.g.
    /// `/.well-known/oauth-protected-resource/mcp` for `https://host/mcp`).
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let suffixed = Url::parse(&self.resource)
            .ok()
            .map(|url| well_known_path(&url))
            .filter(|path| path != WELL_KNOWN_PATH);
        let document = Arc::new(self);
        let handler = move || {
            let document = Arc::clone(&document);
            async move { metadata_response(&document) }
        };
        let mut router = Router::new().route(WELL_KNOWN_PATH, get(handler.clone()));
        if let Some(path) = suffixed {
            router = router.route(&path, get(handler));
        }
        router
    }
}

fn metadata_response(document: &ProtectedResourceMetadata) -> Response {
    let mut response = axum::Json(document).into_response();
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// `/.well-known/oauth-protected-resource` followed by the resource's path (without a trailing
/// slash), RFC 9728 §3.1.
fn well_known_path(resource: &Url) -> String {
    format!("{WELL_KNOWN_PATH}{}", resource.path().trim_end_matches('/'))
}

/// The URL of the metadata document for `resource` (path-suffixed form), as sent in
/// `resource_metadata`. Fails unless `resource` is an absolute http(s) URL without query or
/// fragment.
pub fn resource_metadata_url(resource: &str) -> Result<String, AuthError> {
    let url = parse_resource(resource)?;
    Ok(format!(
        "{}{}",
        url.origin().ascii_serialization(),
        well_known_path(&url)
    ))
}

fn parse_resource(resource: &str) -> Result<Url, AuthError> {
    let invalid = AuthError::invalid_config;
    let url = Url::parse(resource)
        .map_err(|e| invalid(format!("the resource `{resource}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!(
            "the resource `{resource}` must be an absolute http(s) URL"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "the resource `{resource}` must not have a query or fragment"
        )));
    }
    Ok(url)
}

/// An OAuth 2.1 resource server in one value: the bearer layer and the RFC 9728 metadata that its
/// challenges point to.
///
/// ```
/// # fn main() -> Result<(), mcp_auth::AuthError> {
/// # let pem = mcp_auth::RsaKeyPair::generate()?.public_key_pem();
/// use axum::{Router, routing::post};
/// use mcp_auth::{JwtVerifier, ResourceServer};
///
/// let verifier = JwtVerifier::from_public_key_pem(&pem)?.audience("http://127.0.0.1:8000/mcp");
/// let server = ResourceServer::new("http://127.0.0.1:8000/mcp", verifier)?
///     .authorization_server("https://auth.example.com")
///     .required_scopes(["mcp:tools"]);
/// assert_eq!(
///     server.metadata_url(),
///     "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"
/// );
/// // The MCP routes need a token; the metadata routes stay open.
/// let app: Router = server.protect(Router::new().route("/mcp", post(|| async { "ok" })));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ResourceServer {
    metadata: ProtectedResourceMetadata,
    metadata_url: String,
    layer: BearerAuthLayer,
}

impl ResourceServer {
    /// A resource server for the MCP endpoint at `resource` (its canonical URL, e.g.
    /// `https://mcp.example.com/mcp`), checking tokens with `verifier`.
    pub fn new(resource: &str, verifier: impl TokenVerifier) -> Result<Self, AuthError> {
        let metadata_url = resource_metadata_url(resource)?;
        Ok(Self {
            metadata: ProtectedResourceMetadata::new(resource),
            layer: BearerAuthLayer::new(verifier).resource_metadata(metadata_url.clone()),
            metadata_url,
        })
    }

    /// Adds an authorization server (its issuer URL) to the metadata.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.metadata.authorization_servers.push(issuer.into());
        self
    }

    /// Adds scopes to `scopes_supported`.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for scope in scopes {
            let scope = scope.into();
            if !self.metadata.scopes_supported.contains(&scope) {
                self.metadata.scopes_supported.push(scope);
            }
        }
        self
    }

    /// Scopes every request's token must carry (403 `insufficient_scope` otherwise); they are
    /// added to `scopes_supported` too.
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.layer = self.layer.required_scopes(scopes.clone());
        self.scopes_supported(scopes)
    }

    /// Sets `resource_name`.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.metadata.resource_name = Some(name.into());
        self
    }

    /// Changes the bearer layer (cache size, header limit), keeping its `resource_metadata`.
    pub fn map_layer(mut self, change: impl FnOnce(BearerAuthLayer) -> BearerAuthLayer) -> Self {
        self.layer = change(self.layer);
        self
    }

    /// The metadata document.
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.metadata
    }

    /// The URL of the metadata document, as sent in `resource_metadata`.
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The bearer layer, whose challenges point at [`metadata_url`](Self::metadata_url).
    pub fn layer(&self) -> BearerAuthLayer {
        self.layer.clone()
    }

    /// The unauthenticated metadata routes (see [`ProtectedResourceMetadata::router`]).
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        if self.metadata.authorization_servers.is_empty() {
            tracing::warn!(
                resource = %self.metadata.resource,
                "protected resource metadata lists no authorization server; MCP clients need one"
            );
        }
        self.metadata.clone().router()
    }

    /// `router` with every route behind the bearer layer, merged with the open metadata routes.
    /// `router` must not have routes of its own under `/.well-known/oauth-protected-resource`.
    pub fn protect<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        router.layer(self.layer()).merge(self.metadata_router())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls() {
        assert_eq!(
            resource_metadata_url("https://MCP.example.com/public/mcp/"),
            Ok(
                "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp"
                    .to_owned()
            )
        );
        assert_eq!(
            resource_metadata_url("http://127.0.0.1:8000"),
            Ok("http://127.0.0.1:8000/.well-known/oauth-protected-resource".to_owned())
        );
        for bad in [
            "mcp",
            "ftp://host/x",
            "http://host/mcp?x=1",
            "http://host/mcp#f",
        ] {
            assert!(
                matches!(
                    resource_metadata_url(bad),
                    Err(AuthError::InvalidConfig { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn metadata_serialization() {
        let mut metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp");
        assert_eq!(
            serde_json::to_value(&metadata).unwrap(),
            serde_json::json!({
                "resource": "https://mcp.example.com/mcp",
                "bearer_methods_supported": ["header"]
            })
        );
        metadata
            .authorization_servers
            .push("https://auth.example.com".into());
        metadata.scopes_supported.push("mcp:tools".into());
        assert_eq!(
            serde_json::to_value(&metadata).unwrap(),
            serde_json::json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://auth.example.com"],
                "scopes_supported": ["mcp:tools"],
                "bearer_methods_supported": ["header"]
            })
        );
    }
}
