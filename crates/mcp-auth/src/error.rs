//! The crate's error type.
//!
//! How each error becomes an HTTP response (status, `WWW-Authenticate`, JSON body) is decided in one
//! place, [`crate::challenge`].

use std::sync::Arc;

/// Everything that can go wrong while configuring authentication or checking a bearer token.
///
/// Messages never contain the token or values copied from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carried no bearer token in its `Authorization` header (no header, another
    /// scheme such as `Basic`, or a token only in the query string, which is never read).
    #[error("the request has no bearer token in its Authorization header")]
    MissingCredentials,
    /// The request carried more than one `Authorization` header.
    #[error("the request has more than one Authorization header")]
    AmbiguousCredentials,
    /// `Authorization: Bearer` was sent without a token.
    #[error("the bearer token is empty")]
    EmptyToken,
    /// The `Authorization` header is longer than the configured limit.
    #[error("the Authorization header is longer than {limit} bytes")]
    TokenTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The token is not a well-formed JWT (or contains characters a bearer token cannot contain).
    #[error("the token is malformed: {reason}")]
    MalformedToken {
        /// Which part is malformed and how.
        reason: &'static str,
    },
    /// The token's `alg` header is not one of the algorithms allowed for the configured key.
    #[error("the token's signing algorithm {algorithm} is not accepted")]
    AlgorithmNotAllowed {
        /// The algorithm name if it is a known one (`none`, `HS256`, ...), otherwise `unrecognized`.
        algorithm: String,
    },
    /// No configured or published key matches the token's `kid`.
    #[error("the token was signed with an unknown key")]
    UnknownSigningKey,
    /// The signature does not verify with the configured key.
    #[error("the token's signature is invalid")]
    InvalidSignature,
    /// The token's `exp` is in the past (beyond the leeway).
    #[error("the token has expired")]
    TokenExpired,
    /// The token's `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    TokenNotYetValid,
    /// A claim that the verifier requires (`exp`, `aud`, `iss`) is absent.
    #[error("the token has no `{claim}` claim")]
    MissingClaim {
        /// The claim's name.
        claim: String,
    },
    /// A claim has the wrong JSON type (for example a string `exp`).
    #[error("the token's `{claim}` claim has an invalid format")]
    InvalidClaim {
        /// The claim's name.
        claim: String,
    },
    /// The token's `aud` does not name this resource.
    #[error("the token is not intended for this resource (audience mismatch)")]
    WrongAudience,
    /// The token's `iss` is not a trusted issuer.
    #[error("the token was issued by an untrusted issuer")]
    WrongIssuer,
    /// The token is valid but lacks scopes this resource requires.
    #[error("the token lacks the required scope(s): {}", required.join(" "))]
    InsufficientScope {
        /// All scopes required (the `scope` value of the challenge).
        required: Vec<String>,
    },
    /// The JWKS document could not be fetched or parsed, so no token can be verified right now.
    #[error("the signing keys are unavailable: {reason}")]
    KeySetUnavailable {
        /// What failed (HTTP status, timeout, parse error).
        reason: String,
    },
    /// A key given to the verifier could not be used (bad PEM, unsupported key type, HMAC key).
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why the key was rejected.
        reason: String,
        /// The parser's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// A configuration value is invalid (bad URL, algorithm from another key family, ...).
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
        /// The underlying error (a URL parse error, an HTTP client error), when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// Generating a development RSA key pair failed.
    #[error("RSA key generation failed")]
    KeyGeneration(#[source] Cause),
    /// Signing a development token failed.
    #[error("token signing failed")]
    TokenSigning(#[source] Cause),
    /// A custom [`crate::TokenVerifier`] rejected the token for its own reason.
    #[error("the token was rejected: {reason}")]
    Rejected {
        /// Why (sent to the client as the `error_description`; must not contain the token).
        reason: String,
    },
}

impl AuthError {
    /// [`AuthError::InvalidKey`] without a source.
    pub fn invalid_key(reason: impl Into<String>) -> Self {
        Self::InvalidKey {
            reason: reason.into(),
            source: None,
        }
    }

    /// [`AuthError::InvalidConfig`] without a source.
    pub fn invalid_config(reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            reason: reason.into(),
            source: None,
        }
    }

    /// Sets the cause of an [`AuthError::InvalidKey`] or [`AuthError::InvalidConfig`]; other
    /// variants are returned unchanged.
    pub fn with_source(
        mut self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        if let Self::InvalidKey { source, .. } | Self::InvalidConfig { source, .. } = &mut self {
            *source = Some(Cause::new(cause));
        }
        self
    }
}

/// The cause an [`AuthError`] keeps as its [`source`](std::error::Error::source): any error,
/// shared so that the error stays cheap to clone (verifiers cache failures), and compared by
/// its message.
///
/// ```
/// use std::error::Error as _;
/// use mcp_auth::{AuthError, RsaKeyPair};
///
/// let err = RsaKeyPair::from_private_key_pem("not a key").unwrap_err();
/// assert!(matches!(&err, AuthError::InvalidKey { reason, .. } if reason == "not an RSA private key PEM"));
/// let cause = err.source().unwrap().downcast_ref::<mcp_auth::Cause>().unwrap();
/// assert!(!cause.to_string().is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Wraps an error (or a message).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(Arc::from(error.into()))
    }

    /// The wrapped error, for downcasting to its concrete type.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}
