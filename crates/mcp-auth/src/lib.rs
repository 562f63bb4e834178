//! OAuth 2.1 resource server for MCP: bearer JWT verification as a tower layer, RFC 9728
//! metadata, and a development RSA key pair.
//!
//! An MCP server reached over HTTP is an OAuth *resource server* (MCP authorization spec): every
//! request carries `Authorization: Bearer <token>`, the server checks the token's signature,
//! expiry, audience, issuer and scopes, and answers failures with RFC 6750 challenges that point
//! to its RFC 9728 metadata document. This crate does that for any axum router:
//!
//! - [`TokenVerifier`]: token in, [`Identity`] or [`AuthError`] out. [`JwtVerifier`] implements it
//!   for JWTs signed with a PEM/JWK public key or keys from a JWKS URL (cached, refreshed on an
//!   unknown `kid`, one shared fetch). Implement it yourself for opaque tokens.
//! - [`BearerAuthLayer`]: the tower layer. It caches verified tokens by hash, inserts the
//!   [`Identity`] into the request extensions, and maps errors to 401/403 in one place.
//! - [`ResourceServer`]: the layer plus the `/.well-known/oauth-protected-resource` routes.
//! - [`RsaKeyPair`]: **development and testing only**, mints RS256 tokens, like FastMCP's
//!   `RSAKeyPair`.
//!
//! The transports in `mcp-sse` copy the HTTP request's extensions into the tool handler context,
//! so a tool reads the caller with `ctx.extensions().get::<mcp_auth::Identity>()` and can demand a
//! scope with [`Identity::require_scope`].
//!
//! # Responses
//!
//! Every failure is answered in one place, with a JSON body `{"error": "..", "error_description": ".."}`
//! that never contains the token:
//!
//! | failure | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no bearer credentials (no header, another scheme, token only in `?access_token=`) | 401 | `Bearer [scope=".."], resource_metadata=".."` |
//! | empty, oversized (> 8 KiB), malformed, badly signed, expired, wrong audience/issuer | 401 | `Bearer error="invalid_token", error_description="..", ..` |
//! | two `Authorization` headers | 400 | `Bearer error="invalid_request", ..` |
//! | valid token without the required scopes | 403 | `Bearer error="insufficient_scope", scope="..", resource_metadata=".."` |
//! | JWKS cannot be fetched | 503 | none (body `temporarily_unavailable`) |
//!
//! # Example
//!
//! Protect a route, mint a development token, and call it:
//!
//! ```
//! use axum::{Extension, Router, routing::get};
//! use mcp_auth::{Identity, JwtVerifier, ResourceServer, RsaKeyPair};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Development only: a key pair and a token for audience "dice-server".
//! let kp = RsaKeyPair::generate()?;
//! let token = kp.create_token().audience("dice-server").sign()?;
//!
//! let verifier = JwtVerifier::from_public_key_pem(&kp.public_key_pem())?.audience("dice-server");
//! let server = ResourceServer::new("http://127.0.0.1:8000/mcp", verifier)?
//!     .authorization_server("https://auth.example.com");
//! let app: Router = server.protect(Router::new().route(
//!     "/mcp",
//!     get(|Extension(who): Extension<Identity>| async move {
//!         format!("hello {}", who.subject.unwrap_or_default())
//!     }),
//! ));
//!
//! // Without a token: 401 with a challenge that points at the metadata.
//! let anonymous = http::Request::get("/mcp").body(axum::body::Body::empty())?;
//! let response = tower::ServiceExt::oneshot(app.clone(), anonymous).await?;
//! assert_eq!(response.status(), 401);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     "Bearer resource_metadata=\"http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp\""
//! );
//!
//! // With the token: the handler runs and sees the caller.
//! let request = http::Request::get("/mcp")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(axum::body::Body::empty())?;
//! let response = tower::ServiceExt::oneshot(app, request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(())
//! # }
//! ```

mod challenge;
mod dev_keys;
mod error;
mod identity;
mod jwks;
mod jwt;
mod keys;
mod layer;
mod metadata;
pub mod metrics;
mod token_cache;

pub use dev_keys::{DEV_ISSUER, DEV_SUBJECT, DEV_TOKEN_LIFETIME, RsaKeyPair, TokenBuilder};
pub use error::{AuthError, Cause};
pub use identity::{Identity, TokenVerifier};
pub use jwt::{DEFAULT_LEEWAY, JwtVerifier, MAX_TOKEN_BYTES};
pub use layer::{
    BearerAuthLayer, BearerAuthService, DEFAULT_MAX_AUTHORIZATION_BYTES, DEFAULT_TOKEN_CACHE_BYTES,
    DEFAULT_TOKEN_CACHE_CAPACITY, TOKEN_CACHE_MAX_TTL,
};
pub use metadata::{
    ProtectedResourceMetadata, ResourceServer, WELL_KNOWN_PATH, resource_metadata_url,
};
