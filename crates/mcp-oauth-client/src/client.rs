//! [`OAuthClient`]: the tokens for one MCP server, obtained, refreshed and stepped up as the
//! server's answers demand.

use http::{HeaderMap, StatusCode};
use reqwest::Url;

use crate::Error;
use crate::challenge::BearerChallenge;
use crate::config::{Grant, OAuthConfig};
use crate::flow::Authorization;
use crate::http::{Fetcher, parse_http_url};
use crate::metadata::{
    AuthorizationServerMetadata, canonical_resource, discover_authorization_server,
    discover_protected_resource, legacy_authorization_server,
};
use crate::pkce::s256;
use crate::store::TokenSet;

/// What to do after a 401 or 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recovery {
    /// New credentials are in place: send the request again.
    Retry,
    /// Authorization cannot help (a 403 that is not about scope): return the answer.
    GiveUp,
}

/// The OAuth 2.1 client of one MCP server. Transports ask it for the `Authorization` header
/// of each request ([`OAuthClient::authorization`]) and hand it every 401 and 403
/// ([`OAuthClient::recover`]); it discovers the authorization server, registers, authorizes,
/// refreshes and steps up scopes as needed. Concurrent callers share one authorization.
#[derive(Debug)]
pub struct OAuthClient {
    server: Url,
    /// The store key of this server's tokens: its canonical URI.
    store_key: String,
    config: OAuthConfig,
    fetcher: Fetcher,
    session: tokio::sync::Mutex<Session>,
}

/// What the client learned about the server.
#[derive(Debug, Default)]
struct Session {
    discovered: Option<Discovered>,
    /// Fingerprint (SHA-256) of the access token a 401 already led to refresh.
    refreshed_after_401: Option<String>,
    /// Re-authorizations so far for each demanded scope set (sorted, space-separated).
    step_ups: std::collections::HashMap<String, u32>,
}

/// The result of discovery.
#[derive(Debug, Clone)]
struct Discovered {
    /// The `resource` indicator to send.
    resource: String,
    metadata: AuthorizationServerMetadata,
    /// `scopes_supported` of the protected resource metadata.
    resource_scopes: Option<Vec<String>>,
}

impl OAuthClient {
    /// A client for the MCP server at `server_url`. Nothing is fetched until needed.
    pub fn new(server_url: &str, config: OAuthConfig) -> Result<Self, Error> {
        let server = parse_http_url(server_url)?;
        Ok(Self {
            store_key: canonical_resource(&server),
            fetcher: Fetcher::new(config.http)?,
            server,
            config,
            session: tokio::sync::Mutex::new(Session::default()),
        })
    }

    /// The MCP server URL.
    pub fn server_url(&self) -> &Url {
        &self.server
    }

    /// The configuration.
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// The `Authorization` header value for the next request (`Bearer ...`), `None` before any
    /// authorization. A token about to expire is refreshed first when possible; one that
    /// cannot be refreshed is dropped, so the server's 401 starts a new authorization.
    pub async fn authorization(&self) -> Result<Option<String>, Error> {
        let Some(tokens) = self.config.store.tokens(&self.store_key).await else {
            return Ok(None);
        };
        if !tokens.expires_within(self.config.refresh_margin) {
            return Ok(Some(bearer(&tokens)));
        }
        let session = self.session.lock().await;
        // Another caller may have refreshed while this one waited.
        let Some(tokens) = self.config.store.tokens(&self.store_key).await else {
            return Ok(None);
        };
        if !tokens.expires_within(self.config.refresh_margin) {
            return Ok(Some(bearer(&tokens)));
        }
        let refreshed = match (&session.discovered, &tokens.refresh_token) {
            (Some(discovered), Some(_)) => {
                let refresh = self
                    .authorization_at(discovered, None)
                    .refresh(&tokens)
                    .await;
                refresh.inspect_err(|error| tracing::warn!(%error, "refreshing the access token before expiry failed")).ok()
            }
            _ => None,
        };
        match refreshed {
            Some(tokens) => {
                tracing::debug!(issuer = %tokens.issuer, "access token refreshed before expiry");
                self.config
                    .store
                    .save_tokens(&self.store_key, tokens.clone())
                    .await;
                Ok(Some(bearer(&tokens)))
            }
            None => {
                self.config.store.clear_tokens(&self.store_key).await;
                Ok(None)
            }
        }
    }

    /// Authorizes now, without waiting for the server to ask (discovery from the well-known
    /// URLs).
    pub async fn authorize(&self) -> Result<(), Error> {
        let mut session = self.session.lock().await;
        let discovered = self.discover(&BearerChallenge::default()).await?;
        session.discovered = Some(discovered.clone());
        let scope = self.select_scope(&BearerChallenge::default(), &discovered, &[]);
        self.obtain(&discovered, scope).await
    }

    /// Handles a 401 or 403 answer to a request sent with `sent` (its `Authorization` value):
    /// refreshes once on a rejected token, re-authorizes (re-discovering the authorization
    /// server, which may have changed), or on `insufficient_scope` re-authorizes with the
    /// union of granted and demanded scopes.
    pub async fn recover(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        sent: Option<&str>,
    ) -> Result<Recovery, Error> {
        let challenge = BearerChallenge::from_headers(headers);
        if status == StatusCode::FORBIDDEN && !challenge.is_insufficient_scope() {
            return Ok(Recovery::GiveUp);
        }
        let mut session = self.session.lock().await;
        let current = self.config.store.tokens(&self.store_key).await;
        if let Some(tokens) = &current
            && sent != Some(bearer(tokens).as_str())
        {
            // Renewed by a concurrent request while this one was answered.
            return Ok(Recovery::Retry);
        }
        let discovered = self.discover(&challenge).await?;
        session.discovered = Some(discovered.clone());
        let current = match current {
            Some(tokens) if tokens.issuer != discovered.metadata.issuer => {
                tracing::info!(from = %tokens.issuer, to = %discovered.metadata.issuer, "the authorization server changed: new registration and tokens");
                self.config.store.clear_tokens(&self.store_key).await;
                None
            }
            other => other,
        };
        if status == StatusCode::FORBIDDEN {
            return self
                .step_up(&mut session, &challenge, &discovered, current.as_ref())
                .await;
        }
        if let Some(tokens) = current.as_ref().filter(|_| sent.is_some())
            && self
                .refresh_after_401(&mut session, &discovered, tokens)
                .await
        {
            return Ok(Recovery::Retry);
        }
        let granted: Vec<String> = current
            .iter()
            .flat_map(|t| t.scopes().map(str::to_owned))
            .collect();
        let scope = self.select_scope(&challenge, &discovered, &granted);
        self.obtain(&discovered, scope).await?;
        Ok(Recovery::Retry)
    }

    /// Refreshes a token a 401 rejected, once per token; whether it worked.
    async fn refresh_after_401(
        &self,
        session: &mut Session,
        discovered: &Discovered,
        tokens: &TokenSet,
    ) -> bool {
        let fingerprint = s256(&tokens.access_token);
        if tokens.refresh_token.is_none()
            || session.refreshed_after_401.as_deref() == Some(fingerprint.as_str())
        {
            return false;
        }
        session.refreshed_after_401 = Some(fingerprint);
        match self
            .authorization_at(discovered, None)
            .refresh(tokens)
            .await
        {
            Ok(fresh) => {
                tracing::debug!(issuer = %fresh.issuer, "access token refreshed after a 401");
                self.config.store.save_tokens(&self.store_key, fresh).await;
                true
            }
            Err(error) => {
                tracing::info!(%error, "refresh after a 401 failed: authorizing again");
                false
            }
        }
    }

    /// Re-authorizes for the scopes a 403 `insufficient_scope` demands, unless the token
    /// already has them all (then re-authorizing cannot help) or this demand already had its
    /// `max_step_ups` re-authorizations.
    async fn step_up(
        &self,
        session: &mut Session,
        challenge: &BearerChallenge,
        discovered: &Discovered,
        current: Option<&TokenSet>,
    ) -> Result<Recovery, Error> {
        let granted: Vec<String> = current
            .iter()
            .flat_map(|t| t.scopes().map(str::to_owned))
            .collect();
        let demanded: Vec<&str> = challenge
            .scope
            .iter()
            .flat_map(|s| s.split_whitespace())
            .collect();
        let mut demand: Vec<&str> = demanded.clone();
        demand.sort_unstable();
        let attempts = session.step_ups.entry(demand.join(" ")).or_default();
        let useless = demanded.iter().all(|d| granted.iter().any(|g| g == d));
        if useless || *attempts >= self.config.max_step_ups {
            return Err(Error::InsufficientScope {
                scope: challenge.scope.clone().unwrap_or_default(),
            });
        }
        *attempts += 1;
        let scope = self.select_scope(challenge, discovered, &granted);
        tracing::debug!(?scope, "step-up authorization");
        self.obtain(discovered, scope).await?;
        Ok(Recovery::Retry)
    }

    /// The scopes to request: those already granted, then the challenge's `scope` (else the
    /// resource's `scopes_supported`), then `offline_access` where the authorization server
    /// lists it and a refresh token is useful.
    fn select_scope(
        &self,
        challenge: &BearerChallenge,
        discovered: &Discovered,
        granted: &[String],
    ) -> Option<String> {
        let mut scopes: Vec<String> = granted.to_vec();
        let wanted: Vec<String> = match &challenge.scope {
            Some(scope) => scope.split_whitespace().map(str::to_owned).collect(),
            None => discovered.resource_scopes.clone().unwrap_or_default(),
        };
        for scope in wanted {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        let offline = "offline_access";
        if self.config.request_offline_access
            && matches!(self.config.grant, Grant::AuthorizationCode)
            && !scopes.is_empty()
            && discovered.metadata.supports_scope(offline)
            && !scopes.iter().any(|s| s == offline)
        {
            scopes.push(offline.to_owned());
        }
        (!scopes.is_empty()).then(|| scopes.join(" "))
    }

    /// Protected resource metadata, then the authorization server's; the 2025-03-26
    /// defaults for a server without the former.
    async fn discover(&self, challenge: &BearerChallenge) -> Result<Discovered, Error> {
        let from_challenge = challenge.resource_metadata.as_deref();
        match discover_protected_resource(&self.fetcher, &self.server, from_challenge).await? {
            Some(resource) => {
                let issuer = resource.authorization_servers.first().ok_or_else(|| {
                    Error::NoAuthorizationServer {
                        resource: resource.resource.clone(),
                    }
                })?;
                let metadata = discover_authorization_server(&self.fetcher, issuer).await?;
                Ok(Discovered {
                    resource: resource.resource,
                    metadata,
                    resource_scopes: resource.scopes_supported,
                })
            }
            None => Ok(Discovered {
                resource: self.store_key.clone(),
                metadata: legacy_authorization_server(&self.fetcher, &self.server).await?,
                resource_scopes: None,
            }),
        }
    }

    /// Runs the grant and keeps the tokens.
    async fn obtain(&self, discovered: &Discovered, scope: Option<String>) -> Result<(), Error> {
        let tokens = self
            .authorization_at(discovered, scope)
            .obtain_tokens()
            .await?;
        tracing::info!(issuer = %tokens.issuer, scope = ?tokens.scope, "authorized");
        self.config.store.save_tokens(&self.store_key, tokens).await;
        Ok(())
    }

    fn authorization_at<'a>(
        &'a self,
        discovered: &'a Discovered,
        scope: Option<String>,
    ) -> Authorization<'a> {
        Authorization {
            fetcher: &self.fetcher,
            config: &self.config,
            metadata: &discovered.metadata,
            resource: &discovered.resource,
            scope,
        }
    }
}

/// `Bearer <access token>`.
fn bearer(tokens: &TokenSet) -> String {
    format!("Bearer {}", tokens.access_token)
}
