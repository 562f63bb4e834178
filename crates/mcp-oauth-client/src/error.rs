//! The crate's error type.

use std::time::Duration;

use http::StatusCode;

/// Everything that can stop an authorization. Messages name URLs, issuers and OAuth error
/// codes, never tokens, codes, verifiers or client secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An HTTP request to a metadata, registration, authorization or token endpoint failed
    /// before an answer arrived.
    #[error("request to {url} failed")]
    Request {
        /// The URL, without its query.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP request took longer than the configured timeout.
    #[error("{url} did not answer within {after:?}")]
    Timeout {
        /// The URL, without its query.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// A response body was larger than the configured bound.
    #[error("the response from {url} exceeds {limit} bytes")]
    ResponseTooLarge {
        /// The URL, without its query.
        url: String,
        /// The bound in bytes.
        limit: usize,
    },
    /// An endpoint answered with an unexpected HTTP status.
    #[error("{url} answered {status}{}", oauth_error_suffix(.error.as_deref()))]
    UnexpectedStatus {
        /// The URL, without its query.
        url: String,
        /// The status.
        status: StatusCode,
        /// The OAuth `error` code of the body, when it had one.
        error: Option<String>,
    },
    /// A response was not the JSON document expected.
    #[error("{url} sent a document that is not valid {what}")]
    InvalidDocument {
        /// The URL, without its query.
        url: String,
        /// What was expected (e.g. "protected resource metadata").
        what: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A URL given or discovered cannot be used.
    #[error("invalid URL {url:?}: {detail}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        detail: String,
    },
    /// The protected resource metadata names another resource than the server being called
    /// (RFC 9728 section 3.3).
    #[error("the protected resource metadata is for {advertised}, not for {requested}")]
    ResourceMismatch {
        /// The MCP server URL the client called.
        requested: String,
        /// The `resource` the metadata named.
        advertised: String,
    },
    /// The protected resource metadata lists no authorization server.
    #[error("the protected resource metadata of {resource} lists no authorization server")]
    NoAuthorizationServer {
        /// The resource.
        resource: String,
    },
    /// No authorization server metadata was found at any well-known URL of the issuer.
    #[error("no authorization server metadata found for issuer {issuer}")]
    AuthorizationServerMetadataNotFound {
        /// The issuer identifier.
        issuer: String,
    },
    /// The authorization server metadata names another issuer than the one it was fetched
    /// for (RFC 8414 section 3.3); it is not used.
    #[error("the authorization server metadata for {expected} names issuer {found}")]
    IssuerMismatch {
        /// The issuer the metadata was fetched for.
        expected: String,
        /// The issuer the metadata named.
        found: String,
    },
    /// The authorization server does not advertise PKCE with S256, so the authorization code
    /// grant is refused.
    #[error("the authorization server {issuer} does not advertise PKCE S256")]
    PkceNotSupported {
        /// The issuer.
        issuer: String,
    },
    /// The authorization server does not support the grant this client is configured for.
    #[error("the authorization server {issuer} has no {what}")]
    AuthorizationServerLacks {
        /// The issuer.
        issuer: String,
        /// What is missing (e.g. "token endpoint").
        what: &'static str,
    },
    /// The client has no identity at this authorization server: no pre-registered client,
    /// no client ID metadata document support, no registration endpoint.
    #[error(
        "no client identity for {issuer}: not pre-registered, and it supports neither client ID metadata documents nor dynamic registration"
    )]
    NoClientIdentity {
        /// The issuer.
        issuer: String,
    },
    /// The authorization endpoint answered with an OAuth error (the user or the server
    /// refused).
    #[error("the authorization was refused: {error}{}", description_suffix(.description.as_deref()))]
    AuthorizationRefused {
        /// The OAuth `error` code.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The authorization response carried another `state` than the request.
    #[error("the authorization response does not carry the state of the request")]
    StateMismatch,
    /// The authorization response's `iss` (RFC 9207) is missing although the server
    /// advertises it, or differs from the issuer.
    #[error("the authorization response's iss is {}, expected {expected}", .found.as_deref().unwrap_or("missing"))]
    IssuerParameterMismatch {
        /// The issuer.
        expected: String,
        /// What the response carried.
        found: Option<String>,
    },
    /// The authorization response has no `code`.
    #[error("the authorization response has no code")]
    MissingCode,
    /// The [`crate::AuthorizationHandler`] could not obtain the authorization response.
    #[error("no authorization response: {detail}")]
    NoAuthorizationResponse {
        /// Why.
        detail: String,
    },
    /// The token endpoint refused the request with an OAuth error.
    #[error("the token endpoint refused the request: {error}{}", description_suffix(.description.as_deref()))]
    TokenRefused {
        /// The OAuth `error` code (`invalid_grant`, `invalid_client`, ...).
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The token endpoint issued a token of a type this client cannot present.
    #[error("unsupported token type {0:?}")]
    UnsupportedTokenType(String),
    /// A client assertion (`private_key_jwt`) could not be signed.
    #[error("cannot sign the client assertion")]
    ClientAssertion(#[source] jsonwebtoken::errors::Error),
    /// The server still demands scopes after the allowed re-authorizations.
    #[error("the server demands scope {scope:?} that re-authorization did not obtain")]
    InsufficientScope {
        /// The scope the server last demanded.
        scope: String,
    },
}

fn oauth_error_suffix(error: Option<&str>) -> String {
    error.map(|e| format!(" ({e})")).unwrap_or_default()
}

fn description_suffix(description: Option<&str>) -> String {
    description.map(|d| format!(" ({d})")).unwrap_or_default()
}
