//! The client's identity at an authorization server, in the spec's order of preference:
//! pre-registered credentials, a client ID metadata document, dynamic client registration
//! (RFC 7591).

use serde::Deserialize;
use serde_json::json;

use crate::config::{Grant, OAuthConfig};
use crate::http::{Fetcher, parse_http_url, parse_json, unexpected_status};
use crate::metadata::AuthorizationServerMetadata;
use crate::store::ClientRegistration;
use crate::{Error, grant_types};

/// A dynamic registration response (RFC 7591 section 3.2.1).
#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// The client's registration at `metadata`'s server: pre-registered, kept from before, a
/// metadata document URL, or a new dynamic registration (kept in the store).
pub(crate) async fn client_identity(
    fetcher: &Fetcher,
    config: &OAuthConfig,
    metadata: &AuthorizationServerMetadata,
) -> Result<ClientRegistration, Error> {
    if let Some(client) = &config.client {
        return Ok(client.clone());
    }
    if let Some(kept) = config.store.registration(&metadata.issuer).await {
        return Ok(kept);
    }
    if metadata.client_id_metadata_document_supported
        && let Some(url) = &config.client_metadata_url
    {
        return Ok(ClientRegistration {
            client_id: url.clone(),
            client_secret: None,
            token_endpoint_auth_method: Some("none".to_owned()),
        });
    }
    let Some(endpoint) = metadata.registration_endpoint.as_deref() else {
        return Err(Error::NoClientIdentity {
            issuer: metadata.issuer.clone(),
        });
    };
    let registration = register(fetcher, config, metadata, endpoint).await?;
    config
        .store
        .save_registration(&metadata.issuer, registration.clone())
        .await;
    Ok(registration)
}

/// The authentication method asked for in registration: `none` (a public client) where
/// supported, else the first secret method the server supports.
fn registration_auth_method(
    config: &OAuthConfig,
    metadata: &AuthorizationServerMetadata,
) -> &'static str {
    if config.client_assertion_key.is_some() {
        return "private_key_jwt";
    }
    ["none", "client_secret_basic", "client_secret_post"]
        .into_iter()
        .find(|m| metadata.supports_auth_method(m))
        .unwrap_or("client_secret_basic")
}

/// The grant types this configuration uses.
fn registered_grant_types(config: &OAuthConfig) -> Vec<&'static str> {
    match config.grant {
        Grant::AuthorizationCode => {
            vec![grant_types::AUTHORIZATION_CODE, grant_types::REFRESH_TOKEN]
        }
        Grant::ClientCredentials => vec![grant_types::CLIENT_CREDENTIALS],
        Grant::JwtBearer(_) => vec![grant_types::JWT_BEARER],
    }
}

/// POSTs a dynamic registration.
async fn register(
    fetcher: &Fetcher,
    config: &OAuthConfig,
    metadata: &AuthorizationServerMetadata,
    endpoint: &str,
) -> Result<ClientRegistration, Error> {
    let url = parse_http_url(endpoint)?;
    let method = registration_auth_method(config, metadata);
    let interactive = matches!(config.grant, Grant::AuthorizationCode);
    let redirect_uris: Vec<String> = if interactive {
        vec![config.authorization_handler.redirect_uri()]
    } else {
        Vec::new()
    };
    let body = json!({
        "client_name": config.client_name,
        "redirect_uris": redirect_uris,
        "grant_types": registered_grant_types(config),
        "response_types": if interactive { vec!["code"] } else { Vec::new() },
        "token_endpoint_auth_method": method,
        "application_type": config.application_type,
    });
    tracing::debug!(endpoint = %url, %method, "dynamic client registration");
    let request = fetcher
        .client()
        .post(url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(body.to_string());
    let response = fetcher.send(request, &url).await?;
    if !response.status.is_success() {
        return Err(unexpected_status(&url, &response));
    }
    let registered: RegistrationResponse =
        parse_json(&url, "client registration response", &response.body)?;
    Ok(ClientRegistration {
        client_id: registered.client_id,
        client_secret: registered.client_secret,
        token_endpoint_auth_method: registered
            .token_endpoint_auth_method
            .or_else(|| Some(method.to_owned())),
    })
}
