//! OAuth 2.1 client for MCP: how an MCP client obtains the bearer token a protected MCP
//! server asks for.
//!
//! An MCP server reached over HTTP may answer `401` with a `WWW-Authenticate: Bearer`
//! challenge. [`OAuthClient`] then does what the MCP authorization spec (2025-11-25 and
//! 2026-07-28) prescribes:
//!
//! 1. **Discovery.** Protected resource metadata (RFC 9728) from the challenge's
//!    `resource_metadata`, else the path-inserted and root well-known URLs; metadata naming
//!    another resource is refused. Then the authorization server's metadata (RFC 8414 and
//!    OpenID Connect Discovery, path-insertion order), whose `issuer` must equal the one it
//!    was fetched for. A server without protected resource metadata gets the 2025-03-26
//!    fallback (its origin as authorization server, default endpoints).
//! 2. **Client identity**, in order: pre-registered credentials, a client ID metadata
//!    document URL, dynamic client registration (RFC 7591), kept per issuer in the
//!    [`CredentialStore`] so credentials never cross authorization servers.
//! 3. **Grant**: authorization code with PKCE S256 (refused if the server does not advertise
//!    S256), `state` and RFC 9207 `iss` checked, `resource` (RFC 8707) on every request; or
//!    client credentials, or a JWT bearer assertion (workload identity, or an identity
//!    assertion obtained by token exchange for enterprise-managed authorization). Token
//!    endpoint authentication `client_secret_basic`, `client_secret_post`, `none` or
//!    `private_key_jwt`.
//! 4. **Scopes** from the challenge, else `scopes_supported`, plus `offline_access` where
//!    offered; on `403 insufficient_scope` a bounded re-authorization for the union of
//!    scopes. Tokens are refreshed before expiry and once on a 401.
//!
//! What only the application can do is behind two traits: [`AuthorizationHandler`] takes the
//! user to the authorization URL and returns the redirect ([`HeadlessRedirect`] for servers
//! that approve by themselves, [`LoopbackRedirect`] for desktop apps), and
//! [`CredentialStore`] keeps tokens and registrations ([`InMemoryCredentialStore`]). Every
//! request to an authorization endpoint has a timeout and a bounded body ([`HttpLimits`]);
//! tokens never appear in logs, `Debug` output or errors.
//!
//! `mcp-sse`'s `McpClient::builder(url).oauth(config)` wires this into the MCP transports;
//! used alone, it looks like this:
//!
//! ```no_run
//! use mcp_oauth_client::{OAuthClient, OAuthConfig, Recovery};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let oauth = OAuthClient::new("https://mcp.example.com/mcp", OAuthConfig::new("my app"))?;
//! let http = reqwest::Client::new();
//! loop {
//!     let mut request = http.post("https://mcp.example.com/mcp").body("{}");
//!     if let Some(value) = oauth.authorization().await? {
//!         request = request.header("authorization", value.clone());
//!     }
//!     let response = request.send().await?;
//!     let status = response.status();
//!     if status == 401 || status == 403 {
//!         let sent = oauth.authorization().await?;
//!         if oauth.recover(status, response.headers(), sent.as_deref()).await? == Recovery::Retry {
//!             continue;
//!         }
//!     }
//!     break;
//! }
//! # Ok(())
//! # }
//! ```

mod challenge;
mod client;
mod config;
mod error;
mod flow;
mod http;
mod identity;
mod metadata;
mod pkce;
mod redirect;
mod store;
mod token;

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;

pub use challenge::BearerChallenge;
pub use client::{OAuthClient, Recovery};
pub use config::{
    AssertionSource, ClientAssertionKey, DEFAULT_MAX_STEP_UPS, DEFAULT_REFRESH_MARGIN, Grant,
    IdentityProviderExchange, OAuthConfig,
};
pub use error::Error;
pub use http::{DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, HttpLimits};
pub use metadata::{
    AuthorizationServerMetadata, ProtectedResourceMetadata, authorization_server_urls,
    canonical_resource, protected_resource_urls, resource_covers,
};
pub use redirect::{AuthorizationHandler, HeadlessRedirect, LoopbackRedirect, OpenUrl};
pub use store::{ClientRegistration, CredentialStore, InMemoryCredentialStore, TokenSet};

/// OAuth grant type identifiers.
pub mod grant_types {
    /// The authorization code grant.
    pub const AUTHORIZATION_CODE: &str = "authorization_code";
    /// The refresh token grant.
    pub const REFRESH_TOKEN: &str = "refresh_token";
    /// The client credentials grant.
    pub const CLIENT_CREDENTIALS: &str = "client_credentials";
    /// The JWT bearer grant (RFC 7523).
    pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    /// Token exchange (RFC 8693).
    pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
}
