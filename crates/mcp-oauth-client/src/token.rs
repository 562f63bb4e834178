//! The token endpoint: client authentication (`client_secret_basic`, `client_secret_post`,
//! `none`, `private_key_jwt`) and token responses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Url;
use serde::Deserialize;

use crate::config::ClientAssertionKey;
use crate::http::{Fetcher, oauth_error, parse_http_url, parse_json, unexpected_status};
use crate::metadata::AuthorizationServerMetadata;
use crate::pkce::random_token;
use crate::store::{ClientRegistration, TokenSet};
use crate::{Error, grant_types};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
const JWT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a client assertion is valid.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// How the client proves who it is at the token endpoint.
#[derive(Clone, Copy)]
pub(crate) enum ClientAuthentication<'a> {
    /// A public client: `client_id` in the body.
    None { client_id: &'a str },
    /// HTTP Basic with the form-encoded id and secret.
    SecretBasic { client_id: &'a str, secret: &'a str },
    /// `client_id` and `client_secret` in the body.
    SecretPost { client_id: &'a str, secret: &'a str },
    /// A signed JWT (RFC 7523), audience the issuer.
    PrivateKeyJwt {
        client_id: &'a str,
        key: &'a ClientAssertionKey,
    },
}

impl std::fmt::Debug for ClientAuthentication<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None { .. } => "none",
            Self::SecretBasic { .. } => "client_secret_basic",
            Self::SecretPost { .. } => "client_secret_post",
            Self::PrivateKeyJwt { .. } => "private_key_jwt",
        })
    }
}

/// The authentication method: a signing key means `private_key_jwt`; otherwise the method the
/// registration fixed, or for a secret the first of basic and post the server supports.
pub(crate) fn client_authentication<'a>(
    registration: &'a ClientRegistration,
    metadata: &AuthorizationServerMetadata,
    key: Option<&'a ClientAssertionKey>,
) -> ClientAuthentication<'a> {
    let client_id = registration.client_id.as_str();
    if let Some(key) = key {
        return ClientAuthentication::PrivateKeyJwt { client_id, key };
    }
    let Some(secret) = registration.client_secret.as_deref() else {
        return ClientAuthentication::None { client_id };
    };
    let method = registration
        .token_endpoint_auth_method
        .as_deref()
        .or_else(|| {
            ["client_secret_basic", "client_secret_post", "none"]
                .into_iter()
                .find(|m| metadata.supports_auth_method(m))
        });
    match method {
        Some("client_secret_post") => ClientAuthentication::SecretPost { client_id, secret },
        Some("none") => ClientAuthentication::None { client_id },
        _ => ClientAuthentication::SecretBasic { client_id, secret },
    }
}

/// A successful token response (RFC 6749 section 5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// A token request to one authorization server.
#[derive(Debug)]
pub(crate) struct TokenRequest<'a> {
    pub metadata: &'a AuthorizationServerMetadata,
    pub auth: ClientAuthentication<'a>,
    /// The grant's parameters (`grant_type` first).
    pub params: Vec<(&'static str, String)>,
    /// The scope requested, kept as the granted scope when the server does not echo one.
    pub requested_scope: Option<String>,
    /// The refresh token to keep when the server issues no new one.
    pub previous_refresh_token: Option<String>,
}

impl TokenRequest<'_> {
    /// POSTs the request; the tokens, or [`Error::TokenRefused`] with the server's OAuth error.
    pub async fn send(self, fetcher: &Fetcher) -> Result<TokenSet, Error> {
        let endpoint = token_endpoint(self.metadata)?;
        let mut params = self.params;
        let mut request = fetcher.client().post(endpoint.clone());
        match self.auth {
            ClientAuthentication::None { client_id } => {
                params.push(("client_id", client_id.to_owned()));
            }
            ClientAuthentication::SecretBasic { client_id, secret } => {
                request = request.header(http::header::AUTHORIZATION, basic(client_id, secret));
            }
            ClientAuthentication::SecretPost { client_id, secret } => {
                params.push(("client_id", client_id.to_owned()));
                params.push(("client_secret", secret.to_owned()));
            }
            ClientAuthentication::PrivateKeyJwt { client_id, key } => {
                let assertion = client_assertion(client_id, &self.metadata.issuer, key)?;
                params.push(("client_id", client_id.to_owned()));
                params.push(("client_assertion_type", JWT_ASSERTION_TYPE.to_owned()));
                params.push(("client_assertion", assertion));
            }
        }
        let grant = params.first().map(|(_, g)| g.clone()).unwrap_or_default();
        tracing::debug!(endpoint = %endpoint, %grant, auth = ?self.auth, "token request");
        let response = fetcher.send(form(request, &params), &endpoint).await?;
        if !response.status.is_success() {
            return Err(match oauth_error(&response.body) {
                Some((error, description)) => Error::TokenRefused { error, description },
                None => unexpected_status(&endpoint, &response),
            });
        }
        let parsed: TokenResponse = parse_json(&endpoint, "token response", &response.body)?;
        if !parsed.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::UnsupportedTokenType(parsed.token_type));
        }
        Ok(TokenSet {
            access_token: parsed.access_token,
            refresh_token: parsed.refresh_token.or(self.previous_refresh_token),
            expires_at: parsed
                .expires_in
                .as_ref()
                .and_then(seconds)
                .map(|s| SystemTime::now() + Duration::from_secs(s)),
            scope: parsed.scope.or(self.requested_scope),
            issuer: self.metadata.issuer.clone(),
        })
    }
}

/// `expires_in` as a number of seconds (some servers send it as a string).
fn seconds(value: &serde_json::Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// The token endpoint of `metadata`.
pub(crate) fn token_endpoint(metadata: &AuthorizationServerMetadata) -> Result<Url, Error> {
    let endpoint =
        metadata
            .token_endpoint
            .as_deref()
            .ok_or_else(|| Error::AuthorizationServerLacks {
                issuer: metadata.issuer.clone(),
                what: "token endpoint",
            })?;
    parse_http_url(endpoint)
}

/// Sets a form-encoded body.
pub(crate) fn form(
    request: reqwest::RequestBuilder,
    params: &[(&str, String)],
) -> reqwest::RequestBuilder {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    request
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(body)
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 section 2.3.1).
fn basic(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    )
}

/// A signed client assertion: `iss` and `sub` the client, `aud` the issuer.
fn client_assertion(
    client_id: &str,
    issuer: &str,
    key: &ClientAssertionKey,
) -> Result<String, Error> {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        sub: &'a str,
        aud: &'a str,
        jti: String,
        iat: u64,
        exp: u64,
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = Claims {
        iss: client_id,
        sub: client_id,
        aud: issuer,
        jti: random_token(16),
        iat: now,
        exp: now + ASSERTION_LIFETIME.as_secs(),
    };
    let header = jsonwebtoken::Header::new(key.algorithm);
    jsonwebtoken::encode(&header, &claims, &key.encoding_key).map_err(Error::ClientAssertion)
}

/// The parameters of the refresh grant.
pub(crate) fn refresh_params(refresh_token: &str, resource: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", grant_types::REFRESH_TOKEN.to_owned()),
        ("refresh_token", refresh_token.to_owned()),
        ("resource", resource.to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(methods: Option<&[&str]>) -> AuthorizationServerMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://as.example",
            "token_endpoint_auth_methods_supported": methods,
        }))
        .unwrap()
    }

    fn registration(secret: Option<&str>, method: Option<&str>) -> ClientRegistration {
        ClientRegistration {
            client_id: "c".into(),
            client_secret: secret.map(Into::into),
            token_endpoint_auth_method: method.map(Into::into),
        }
    }

    #[test]
    fn the_method_follows_the_registration_then_the_server() {
        let name = |r: &ClientRegistration, m: &AuthorizationServerMetadata| {
            format!("{:?}", client_authentication(r, m, None))
        };
        let post_only = metadata(Some(&["client_secret_post"]));
        let none_only = metadata(Some(&["none"]));
        let unspecified = metadata(None);
        assert_eq!(name(&registration(None, None), &post_only), "none");
        assert_eq!(
            name(&registration(Some("s"), None), &post_only),
            "client_secret_post"
        );
        assert_eq!(
            name(&registration(Some("s"), None), &unspecified),
            "client_secret_basic"
        );
        assert_eq!(name(&registration(Some("s"), None), &none_only), "none");
        assert_eq!(
            name(
                &registration(Some("s"), Some("client_secret_basic")),
                &post_only
            ),
            "client_secret_basic"
        );
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(
            basic("a b", "p:w"),
            format!("Basic {}", STANDARD.encode("a+b:p%3Aw"))
        );
    }
}
