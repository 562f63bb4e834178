//! Where tokens and client registrations are kept: [`CredentialStore`], with
//! [`InMemoryCredentialStore`] as the default.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

/// Tokens for one resource, from one authorization server.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    /// The access token.
    pub access_token: String,
    /// The refresh token, when one was issued.
    pub refresh_token: Option<String>,
    /// When the access token expires, when the server said.
    pub expires_at: Option<SystemTime>,
    /// The scopes granted (or, when the server did not say, requested), space-separated.
    pub scope: Option<String>,
    /// The issuer of the authorization server that issued them; tokens of another issuer are
    /// not used after an authorization server change.
    pub issuer: String,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl TokenSet {
    /// Whether the access token expires within `margin` from now.
    pub fn expires_within(&self, margin: Duration) -> bool {
        self.expires_at
            .is_some_and(|at| at <= SystemTime::now() + margin)
    }

    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.iter().flat_map(|s| s.split_whitespace())
    }
}

/// The client's identity at one authorization server.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRegistration {
    /// The `client_id` (for a client ID metadata document, its URL).
    pub client_id: String,
    /// The `client_secret` of a confidential client.
    pub client_secret: Option<String>,
    /// How the client authenticates at the token endpoint (`client_secret_basic`,
    /// `client_secret_post`, `none`, `private_key_jwt`), when fixed by registration.
    pub token_endpoint_auth_method: Option<String>,
}

impl std::fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field("has_client_secret", &self.client_secret.is_some())
            .field(
                "token_endpoint_auth_method",
                &self.token_endpoint_auth_method,
            )
            .finish()
    }
}

/// Keeps tokens (by resource) and dynamic client registrations (by issuer), so a process can
/// persist them across runs. Registrations are keyed by issuer because credentials from one
/// authorization server are never presented to another.
pub trait CredentialStore: Send + Sync + std::fmt::Debug {
    /// The tokens kept for `resource`.
    fn tokens<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Option<TokenSet>>;
    /// Keeps `tokens` for `resource`, replacing any.
    fn save_tokens<'a>(&'a self, resource: &'a str, tokens: TokenSet) -> BoxFuture<'a, ()>;
    /// Forgets the tokens of `resource`.
    fn clear_tokens<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, ()>;
    /// The registration kept for the authorization server `issuer`.
    fn registration<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Option<ClientRegistration>>;
    /// Keeps `registration` for `issuer`, replacing any.
    fn save_registration<'a>(
        &'a self,
        issuer: &'a str,
        registration: ClientRegistration,
    ) -> BoxFuture<'a, ()>;
}

/// A [`CredentialStore`] in memory: credentials live as long as the process.
#[derive(Debug, Default)]
pub struct InMemoryCredentialStore {
    inner: Mutex<Stored>,
}

#[derive(Debug, Default)]
struct Stored {
    tokens: HashMap<String, TokenSet>,
    registrations: HashMap<String, ClientRegistration>,
}

impl InMemoryCredentialStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Stored> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CredentialStore for InMemoryCredentialStore {
    fn tokens<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, Option<TokenSet>> {
        let found = self.lock().tokens.get(resource).cloned();
        Box::pin(async move { found })
    }

    fn save_tokens<'a>(&'a self, resource: &'a str, tokens: TokenSet) -> BoxFuture<'a, ()> {
        self.lock().tokens.insert(resource.to_owned(), tokens);
        Box::pin(async {})
    }

    fn clear_tokens<'a>(&'a self, resource: &'a str) -> BoxFuture<'a, ()> {
        self.lock().tokens.remove(resource);
        Box::pin(async {})
    }

    fn registration<'a>(&'a self, issuer: &'a str) -> BoxFuture<'a, Option<ClientRegistration>> {
        let found = self.lock().registrations.get(issuer).cloned();
        Box::pin(async move { found })
    }

    fn save_registration<'a>(
        &'a self,
        issuer: &'a str,
        registration: ClientRegistration,
    ) -> BoxFuture<'a, ()> {
        self.lock()
            .registrations
            .insert(issuer.to_owned(), registration);
        Box::pin(async {})
    }
}
