//! Discovery: protected resource metadata (RFC 9728) and authorization server metadata
//! (RFC 8414, OpenID Connect Discovery), in the order the MCP authorization spec gives.

use reqwest::Url;
use serde::Deserialize;

use crate::Error;
use crate::http::{Fetcher, display_url, parse_http_url};

/// The well-known suffix of protected resource metadata.
const PROTECTED_RESOURCE_SUFFIX: &str = "/.well-known/oauth-protected-resource";
/// The well-known suffix of OAuth authorization server metadata.
const OAUTH_SERVER_SUFFIX: &str = "/.well-known/oauth-authorization-server";
/// The well-known suffix of OpenID Connect provider metadata.
const OPENID_SUFFIX: &str = "/.well-known/openid-configuration";

/// Protected resource metadata (RFC 9728 section 2): what the MCP server says about itself.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The resource identifier; must name the server being called.
    pub resource: String,
    /// Issuer identifiers of the authorization servers that issue tokens for it.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource understands.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
}

/// Authorization server metadata (RFC 8414 section 2, and the OpenID Connect fields it
/// shares).
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier; must equal the one the document was fetched for.
    pub issuer: String,
    /// Where the user authorizes (authorization code grant).
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Where codes, refresh tokens and assertions become access tokens.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// Dynamic client registration (RFC 7591).
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    /// Scopes the server knows.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// Grants the server supports.
    #[serde(default)]
    pub grant_types_supported: Option<Vec<String>>,
    /// PKCE methods; absent means no PKCE.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Client authentication methods at the token endpoint; absent means
    /// `client_secret_basic` (RFC 8414 section 2).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Whether a URL may be the `client_id` (client ID metadata documents).
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
    /// Whether authorization responses carry `iss` (RFC 9207).
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

impl AuthorizationServerMetadata {
    /// Whether `method` is a supported token endpoint authentication method.
    pub fn supports_auth_method(&self, method: &str) -> bool {
        match &self.token_endpoint_auth_methods_supported {
            Some(methods) => methods.iter().any(|m| m == method),
            None => method == "client_secret_basic",
        }
    }

    /// Whether the server lists `scope` in `scopes_supported`.
    pub fn supports_scope(&self, scope: &str) -> bool {
        self.scopes_supported
            .as_ref()
            .is_some_and(|s| s.iter().any(|x| x == scope))
    }

    /// Whether PKCE with S256 is advertised.
    pub fn supports_pkce_s256(&self) -> bool {
        self.code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| m.iter().any(|x| x == "S256"))
    }
}

/// The canonical URI of an MCP server (RFC 8707, MCP "canonical server URI"): lowercase
/// scheme and host, no fragment, no trailing slash on an empty path.
pub fn canonical_resource(server: &Url) -> String {
    let mut url = server.clone();
    url.set_fragment(None);
    let text = url.to_string();
    if url.path() == "/" && url.query().is_none() {
        text.trim_end_matches('/').to_owned()
    } else {
        text
    }
}

/// Whether protected resource metadata for `resource` may serve `server`: same origin, and
/// the server's path at or below the resource's path.
pub fn resource_covers(resource: &str, server: &Url) -> bool {
    let Ok(resource) = Url::parse(resource) else {
        return false;
    };
    if resource.origin() != server.origin() {
        return false;
    }
    let prefix = resource.path().trim_end_matches('/');
    let path = server.path();
    path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty()
}

/// The URLs to try for protected resource metadata: the challenge's `resource_metadata`,
/// then the path-inserted well-known URL, then the root one.
pub fn protected_resource_urls(server: &Url, from_challenge: Option<&str>) -> Vec<Url> {
    let mut urls = Vec::new();
    if let Some(url) = from_challenge.and_then(|u| parse_http_url(u).ok()) {
        urls.push(url);
    }
    let path = server.path().trim_end_matches('/');
    if !path.is_empty() {
        urls.extend(well_known(server, PROTECTED_RESOURCE_SUFFIX, path));
    }
    urls.extend(well_known(server, PROTECTED_RESOURCE_SUFFIX, ""));
    urls
}

/// The URLs to try for authorization server metadata of `issuer`, in the spec's order: for
/// an issuer with a path, OAuth path-inserted, OpenID path-inserted, OpenID path-appended;
/// without one, OAuth then OpenID at the root.
pub fn authorization_server_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    if path.is_empty() {
        return [OAUTH_SERVER_SUFFIX, OPENID_SUFFIX]
            .into_iter()
            .filter_map(|suffix| well_known(issuer, suffix, ""))
            .collect();
    }
    let mut urls: Vec<Url> = [OAUTH_SERVER_SUFFIX, OPENID_SUFFIX]
        .into_iter()
        .filter_map(|suffix| well_known(issuer, suffix, path))
        .collect();
    urls.extend(well_known(issuer, "", &format!("{path}{OPENID_SUFFIX}")));
    urls
}

/// `<origin><suffix><path>`.
fn well_known(base: &Url, suffix: &str, path: &str) -> Option<Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.set_path(&format!("{suffix}{path}"));
    Some(url)
}

/// Fetches the protected resource metadata of `server`. `Ok(None)` when no URL had any
/// (a server of the 2025-03-26 revision); [`Error::ResourceMismatch`] when a document
/// names another resource.
pub(crate) async fn discover_protected_resource(
    fetcher: &Fetcher,
    server: &Url,
    from_challenge: Option<&str>,
) -> Result<Option<ProtectedResourceMetadata>, Error> {
    for url in protected_resource_urls(server, from_challenge) {
        let metadata: ProtectedResourceMetadata = match fetcher
            .get_json(&url, "protected resource metadata")
            .await
        {
            Ok(m) => m,
            Err(error) => {
                tracing::debug!(url = %display_url(&url), %error, "no protected resource metadata here");
                continue;
            }
        };
        if !resource_covers(&metadata.resource, server) {
            return Err(Error::ResourceMismatch {
                requested: canonical_resource(server),
                advertised: metadata.resource,
            });
        }
        tracing::debug!(url = %display_url(&url), resource = %metadata.resource, "protected resource metadata");
        return Ok(Some(metadata));
    }
    Ok(None)
}

/// Fetches and checks the metadata of the authorization server `issuer`.
pub(crate) async fn discover_authorization_server(
    fetcher: &Fetcher,
    issuer: &str,
) -> Result<AuthorizationServerMetadata, Error> {
    let issuer_url = parse_http_url(issuer)?;
    let mut unreachable = None;
    for url in authorization_server_urls(&issuer_url) {
        let metadata: AuthorizationServerMetadata = match fetcher
            .get_json(&url, "authorization server metadata")
            .await
        {
            Ok(m) => m,
            Err(error) => {
                tracing::debug!(url = %display_url(&url), %error, "no authorization server metadata here");
                if matches!(error, Error::Request { .. } | Error::Timeout { .. }) {
                    unreachable = Some(error);
                }
                continue;
            }
        };
        // RFC 8414 section 3.3: simple string comparison, no normalization.
        if metadata.issuer != issuer {
            return Err(Error::IssuerMismatch {
                expected: issuer.to_owned(),
                found: metadata.issuer,
            });
        }
        return Ok(metadata);
    }
    Err(
        unreachable.unwrap_or_else(|| Error::AuthorizationServerMetadataNotFound {
            issuer: issuer.to_owned(),
        }),
    )
}

/// The 2025-03-26 revision's fallback for a server without protected resource metadata: the
/// authorization server is the MCP server's origin, with its RFC 8414 metadata or, failing
/// that, the default endpoints `/authorize`, `/token` and `/register`.
pub(crate) async fn legacy_authorization_server(
    fetcher: &Fetcher,
    server: &Url,
) -> Result<AuthorizationServerMetadata, Error> {
    let origin = server.origin().ascii_serialization();
    match discover_authorization_server(fetcher, &origin).await {
        Err(Error::AuthorizationServerMetadataNotFound { .. }) => {
            tracing::debug!(%origin, "no metadata: the 2025-03-26 default endpoints");
            Ok(AuthorizationServerMetadata {
                authorization_endpoint: Some(format!("{origin}/authorize")),
                token_endpoint: Some(format!("{origin}/token")),
                registration_endpoint: Some(format!("{origin}/register")),
                scopes_supported: None,
                grant_types_supported: None,
                // 2025-03-26 makes PKCE mandatory for every client and server.
                code_challenge_methods_supported: Some(vec!["S256".to_owned()]),
                token_endpoint_auth_methods_supported: None,
                client_id_metadata_document_supported: false,
                authorization_response_iss_parameter_supported: false,
                issuer: origin,
            })
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn strings(urls: Vec<Url>) -> Vec<String> {
        urls.into_iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn protected_resource_urls_go_challenge_then_path_then_root() {
        assert_eq!(
            strings(protected_resource_urls(
                &url("https://ex.com/public/mcp?x=1"),
                Some("https://ex.com/custom.json")
            )),
            [
                "https://ex.com/custom.json",
                "https://ex.com/.well-known/oauth-protected-resource/public/mcp",
                "https://ex.com/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            strings(protected_resource_urls(&url("https://ex.com/"), None)),
            ["https://ex.com/.well-known/oauth-protected-resource"]
        );
    }

    #[test]
    fn authorization_server_urls_follow_the_path_insertion_order() {
        assert_eq!(
            strings(authorization_server_urls(&url(
                "https://auth.ex.com/tenant1"
            ))),
            [
                "https://auth.ex.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.ex.com/.well-known/openid-configuration/tenant1",
                "https://auth.ex.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strings(authorization_server_urls(&url("https://auth.ex.com"))),
            [
                "https://auth.ex.com/.well-known/oauth-authorization-server",
                "https://auth.ex.com/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn a_resource_covers_its_own_path_and_below_on_the_same_origin() {
        let server = url("https://mcp.ex.com/api/mcp");
        assert!(resource_covers("https://mcp.ex.com/api/mcp", &server));
        assert!(resource_covers("https://mcp.ex.com", &server));
        assert!(resource_covers("https://MCP.ex.com/api/", &server));
        assert!(!resource_covers("https://mcp.ex.com/api/mcp2", &server));
        assert!(!resource_covers(
            "https://evil.example.com/api/mcp",
            &server
        ));
        assert!(!resource_covers("http://mcp.ex.com/api/mcp", &server));
        assert!(!resource_covers("not a url", &server));
    }

    #[test]
    fn the_canonical_resource_has_no_fragment_or_bare_trailing_slash() {
        assert_eq!(
            canonical_resource(&url("HTTPS://MCP.ex.com/mcp#x")),
            "https://mcp.ex.com/mcp"
        );
        assert_eq!(
            canonical_resource(&url("https://mcp.ex.com/")),
            "https://mcp.ex.com"
        );
    }
}
