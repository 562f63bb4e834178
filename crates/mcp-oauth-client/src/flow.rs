//! One authorization at one authorization server: the client's identity, the grant, the
//! token request.

use reqwest::Url;
use serde::Deserialize;

use crate::config::{AssertionSource, Grant, IdentityProviderExchange, OAuthConfig};
use crate::http::{Fetcher, oauth_error, parse_http_url, parse_json, unexpected_status};
use crate::identity::client_identity;
use crate::metadata::AuthorizationServerMetadata;
use crate::pkce::{Pkce, random_token};
use crate::store::{ClientRegistration, TokenSet};
use crate::token::{TokenRequest, client_authentication, form, refresh_params};
use crate::{Error, grant_types};

/// `requested_token_type` of an identity assertion authorization grant.
const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// `subject_token_type` of an OpenID Connect ID token.
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// What one authorization needs.
#[derive(Debug)]
pub(crate) struct Authorization<'a> {
    pub fetcher: &'a Fetcher,
    pub config: &'a OAuthConfig,
    pub metadata: &'a AuthorizationServerMetadata,
    /// The `resource` indicator (RFC 8707).
    pub resource: &'a str,
    /// The scopes to ask for, space-separated.
    pub scope: Option<String>,
}

impl Authorization<'_> {
    /// Runs the configured grant and returns the new tokens.
    pub async fn obtain_tokens(&self) -> Result<TokenSet, Error> {
        let registration = client_identity(self.fetcher, self.config, self.metadata).await?;
        let params = match &self.config.grant {
            Grant::AuthorizationCode => self.authorization_code(&registration).await?,
            Grant::ClientCredentials => self.grant_params(grant_types::CLIENT_CREDENTIALS),
            Grant::JwtBearer(source) => {
                let assertion = self.assertion(source).await?;
                let mut params = self.grant_params(grant_types::JWT_BEARER);
                params.insert(1, ("assertion", assertion));
                params
            }
        };
        TokenRequest {
            metadata: self.metadata,
            auth: client_authentication(
                &registration,
                self.metadata,
                self.config.client_assertion_key.as_ref(),
            ),
            params,
            requested_scope: self.scope.clone(),
            previous_refresh_token: None,
        }
        .send(self.fetcher)
        .await
    }

    /// Refreshes `tokens`, which must hold a refresh token.
    pub async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, Error> {
        let refresh_token = tokens.refresh_token.clone().unwrap_or_default();
        let registration = client_identity(self.fetcher, self.config, self.metadata).await?;
        TokenRequest {
            metadata: self.metadata,
            auth: client_authentication(
                &registration,
                self.metadata,
                self.config.client_assertion_key.as_ref(),
            ),
            params: refresh_params(&refresh_token, self.resource),
            requested_scope: tokens.scope.clone(),
            previous_refresh_token: Some(refresh_token),
        }
        .send(self.fetcher)
        .await
    }

    /// `grant_type`, then `scope` when any, then `resource`.
    fn grant_params(&self, grant_type: &str) -> Vec<(&'static str, String)> {
        let mut params = vec![("grant_type", grant_type.to_owned())];
        if let Some(scope) = &self.scope {
            params.push(("scope", scope.clone()));
        }
        params.push(("resource", self.resource.to_owned()));
        params
    }

    /// The authorization code grant: PKCE, the user's approval, the checked response.
    async fn authorization_code(
        &self,
        registration: &ClientRegistration,
    ) -> Result<Vec<(&'static str, String)>, Error> {
        let metadata = self.metadata;
        if !metadata.supports_pkce_s256() {
            return Err(Error::PkceNotSupported {
                issuer: metadata.issuer.clone(),
            });
        }
        let pkce = Pkce::generate();
        let state = random_token(16);
        let handler = &self.config.authorization_handler;
        let redirect_uri = handler.redirect_uri();
        let url = self.authorization_url(registration, &redirect_uri, &pkce, &state)?;
        tracing::debug!(issuer = %metadata.issuer, scope = ?self.scope, "authorization request");
        let response = handler.authorize(&url).await?;
        let code = check_authorization_response(&response, &state, metadata)?;
        Ok(vec![
            ("grant_type", grant_types::AUTHORIZATION_CODE.to_owned()),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", pkce.verifier),
            ("resource", self.resource.to_owned()),
        ])
    }

    fn authorization_url(
        &self,
        registration: &ClientRegistration,
        redirect_uri: &str,
        pkce: &Pkce,
        state: &str,
    ) -> Result<Url, Error> {
        let endpoint = self
            .metadata
            .authorization_endpoint
            .as_deref()
            .ok_or_else(|| Error::AuthorizationServerLacks {
                issuer: self.metadata.issuer.clone(),
                what: "authorization endpoint",
            })?;
        let mut url = parse_http_url(endpoint)?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &registration.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_challenge", &pkce.challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", state);
            if let Some(scope) = &self.scope {
                query.append_pair("scope", scope);
            }
            query.append_pair("resource", self.resource);
        }
        Ok(url)
    }

    /// The assertion of a JWT bearer grant.
    async fn assertion(&self, source: &AssertionSource) -> Result<String, Error> {
        match source {
            AssertionSource::Jwt(jwt) => Ok(jwt.clone()),
            AssertionSource::IdentityProvider(exchange) => {
                self.identity_assertion_grant(exchange).await
            }
        }
    }

    /// Token exchange (RFC 8693) at the identity provider: the user's ID token becomes an
    /// identity assertion grant for this authorization server and resource.
    async fn identity_assertion_grant(
        &self,
        exchange: &IdentityProviderExchange,
    ) -> Result<String, Error> {
        #[derive(Deserialize)]
        struct ExchangeResponse {
            access_token: String,
        }
        let endpoint = parse_http_url(&exchange.token_endpoint)?;
        let mut params = vec![
            ("grant_type", grant_types::TOKEN_EXCHANGE.to_owned()),
            ("requested_token_type", ID_JAG_TOKEN_TYPE.to_owned()),
            ("audience", self.metadata.issuer.clone()),
            ("resource", self.resource.to_owned()),
            ("subject_token", exchange.id_token.clone()),
            ("subject_token_type", ID_TOKEN_TYPE.to_owned()),
            ("client_id", exchange.client_id.clone()),
        ];
        if let Some(scope) = &self.scope {
            params.push(("scope", scope.clone()));
        }
        if let Some(secret) = &exchange.client_secret {
            params.push(("client_secret", secret.clone()));
        }
        let request = form(self.fetcher.client().post(endpoint.clone()), &params);
        let response = self.fetcher.send(request, &endpoint).await?;
        if !response.status.is_success() {
            return Err(match oauth_error(&response.body) {
                Some((error, description)) => Error::TokenRefused { error, description },
                None => unexpected_status(&endpoint, &response),
            });
        }
        let parsed: ExchangeResponse =
            parse_json(&endpoint, "token exchange response", &response.body)?;
        Ok(parsed.access_token)
    }
}

/// Checks an authorization response (the redirect back) and returns its code: `state` must
/// be the request's; `iss` (RFC 9207), when present or advertised, must be the issuer, by
/// simple string comparison; an `error` is the server's refusal.
pub(crate) fn check_authorization_response(
    response: &Url,
    state: &str,
    metadata: &AuthorizationServerMetadata,
) -> Result<String, Error> {
    let mut code = None;
    let mut returned_state = None;
    let mut iss = None;
    let mut error = None;
    let mut description = None;
    for (name, value) in response.query_pairs() {
        let value = Some(value.into_owned());
        match name.as_ref() {
            "code" => code = value,
            "state" => returned_state = value,
            "iss" => iss = value,
            "error" => error = value,
            "error_description" => description = value,
            _ => {}
        }
    }
    if returned_state.as_deref() != Some(state) {
        return Err(Error::StateMismatch);
    }
    let iss_required = metadata.authorization_response_iss_parameter_supported;
    if (iss.is_some() || iss_required) && iss.as_deref() != Some(metadata.issuer.as_str()) {
        return Err(Error::IssuerParameterMismatch {
            expected: metadata.issuer.clone(),
            found: iss,
        });
    }
    if let Some(error) = error {
        return Err(Error::AuthorizationRefused { error, description });
    }
    code.ok_or(Error::MissingCode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(iss_supported: bool) -> AuthorizationServerMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://as.example",
            "authorization_response_iss_parameter_supported": iss_supported,
        }))
        .unwrap()
    }

    fn check(query: &str, iss_supported: bool) -> Result<String, Error> {
        let url = Url::parse(&format!("http://127.0.0.1/callback?{query}")).unwrap();
        check_authorization_response(&url, "s1", &metadata(iss_supported))
    }

    #[test]
    fn a_response_with_state_and_code_gives_the_code() {
        assert_eq!(check("code=c&state=s1", false).unwrap(), "c");
        assert_eq!(
            check("code=c&state=s1&iss=https%3A%2F%2Fas.example", true).unwrap(),
            "c"
        );
    }

    #[test]
    fn a_wrong_or_missing_state_is_refused() {
        assert!(matches!(
            check("code=c&state=s2", false),
            Err(Error::StateMismatch)
        ));
        assert!(matches!(check("code=c", false), Err(Error::StateMismatch)));
    }

    #[test]
    fn iss_is_compared_as_a_string_when_present_or_advertised() {
        for (query, advertised) in [
            ("code=c&state=s1", true),
            ("code=c&state=s1&iss=https%3A%2F%2Fevil.example", false),
            ("code=c&state=s1&iss=https%3A%2F%2Fas.example%2F", true),
        ] {
            assert!(
                matches!(
                    check(query, advertised),
                    Err(Error::IssuerParameterMismatch { .. })
                ),
                "{query}"
            );
        }
    }

    #[test]
    fn an_error_response_is_a_refusal() {
        assert!(matches!(
            check("error=access_denied&state=s1", false),
            Err(Error::AuthorizationRefused { error, .. }) if error == "access_denied"
        ));
    }
}
