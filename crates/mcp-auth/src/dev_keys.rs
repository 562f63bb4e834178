//! A development RSA key pair that mints tokens. **For development and testing only**: a real
//! deployment gets its tokens from an authorization server and never holds the signing key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{AuthError, Cause};

/// Default `sub` of development tokens.
pub const DEV_SUBJECT: &str = "dev-user";

/// Default `iss` of development tokens.
pub const DEV_ISSUER: &str = "https://mcp-auth.dev.invalid";

/// Default lifetime of development tokens (`exp` = `iat` + 1 hour).
pub const DEV_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// An RSA-2048 key pair that signs RS256 tokens. **Development and testing only.**
///
/// The Rust counterpart of FastMCP's `RSAKeyPair`: generate a pair, give the public key to a
/// [`crate::JwtVerifier`], and mint tokens with [`create_token`](Self::create_token).
///
/// ```
/// # fn main() -> Result<(), mcp_auth::AuthError> {
/// use mcp_auth::{JwtVerifier, RsaKeyPair};
///
/// let kp = RsaKeyPair::generate()?;
/// let token = kp.create_token().audience("dice-server").scopes(["dice:roll"]).sign()?;
/// let verifier = JwtVerifier::from_public_key_pem(&kp.public_key_pem())?.audience("dice-server");
/// # let identity = futures::executor::block_on(verifier.verify_token(&token))?;
/// # assert_eq!(identity.subject.as_deref(), Some("dev-user"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RsaKeyPair {
    encoding_key: EncodingKey,
    public_key_pem: String,
    private_key_pem: String,
    n: String,
    e: String,
    kid: String,
}

impl std::fmt::Debug for RsaKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn key_error(cause: impl std::error::Error + Send + Sync + 'static) -> AuthError {
    AuthError::KeyGeneration(Cause::new(cause))
}

impl RsaKeyPair {
    /// Generates a fresh 2048-bit key pair from the OS random source. Takes a few seconds in
    /// unoptimized builds.
    pub fn generate() -> Result<Self, AuthError> {
        let private_key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(key_error)?;
        Self::from_private_key(private_key)
    }

    /// Loads a pair from its private key PEM (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`),
    /// e.g. one saved from [`private_key_pem`](Self::private_key_pem).
    pub fn from_private_key_pem(pem: &str) -> Result<Self, AuthError> {
        let private_key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|e| AuthError::invalid_key("not an RSA private key PEM").with_source(e))?;
        Self::from_private_key(private_key)
    }

    fn from_private_key(private_key: RsaPrivateKey) -> Result<Self, AuthError> {
        let public_key = private_key.to_public_key();
        let public_key_pem = public_key
            .to_public_key_pem(LineEnding::LF)
            .map_err(key_error)?;
        let private_key_pem = private_key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(key_error)?
            .to_string();
        let pkcs1 = private_key.to_pkcs1_der().map_err(key_error)?;
        let n = URL_SAFE_NO_PAD.encode(public_key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(public_key.e().to_bytes_be());
        // RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order.
        let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        Ok(Self {
            encoding_key: EncodingKey::from_rsa_der(pkcs1.as_bytes()),
            public_key_pem,
            private_key_pem,
            n,
            e,
            kid,
        })
    }

    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_key_pem(&self) -> String {
        self.public_key_pem.clone()
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Keep it secret.
    pub fn private_key_pem(&self) -> String {
        self.private_key_pem.clone()
    }

    /// The key id: the RFC 7638 JWK thumbprint, also put in the `kid` header of tokens.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK: `{"kty":"RSA","use":"sig","alg":"RS256","kid":..,"n":..,"e":..}`.
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
        })
    }

    /// A JWKS document `{"keys": [public_jwk]}`, e.g. to serve at a JWKS URL.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }

    /// Starts a token: `sub` [`DEV_SUBJECT`], `iss` [`DEV_ISSUER`], `iat` now, `exp` in one hour,
    /// `kid` header set, no audience.
    pub fn create_token(&self) -> TokenBuilder<'_> {
        TokenBuilder {
            key_pair: self,
            subject: Some(DEV_SUBJECT.to_owned()),
            issuer: Some(DEV_ISSUER.to_owned()),
            audiences: Vec::new(),
            scopes: Vec::new(),
            lifetime: DEV_TOKEN_LIFETIME,
            issued_at: None,
            not_before: None,
            extra: Map::new(),
            kid: Some(self.kid.clone()),
        }
    }
}

/// Builds and signs a development token; see [`RsaKeyPair::create_token`].
#[derive(Debug, Clone)]
#[must_use = "call .sign() to get the token"]
pub struct TokenBuilder<'k> {
    key_pair: &'k RsaKeyPair,
    subject: Option<String>,
    issuer: Option<String>,
    audiences: Vec<String>,
    scopes: Vec<String>,
    lifetime: Duration,
    issued_at: Option<u64>,
    not_before: Option<u64>,
    extra: Map<String, Value>,
    kid: Option<String>,
}

impl TokenBuilder<'_> {
    /// Adds an audience; one gives `"aud": "x"`, several give `"aud": ["x", "y"]`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Sets `sub`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets `iss`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Adds scopes, sent as the space-separated `scope` claim.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Sets the lifetime: `exp` = `iat` + `lifetime` (default 1 hour).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Sets `iat` (seconds since the Unix epoch) instead of now; `exp` follows it. Use a past
    /// time to mint an expired token.
    pub fn issued_at(mut self, unix_seconds: u64) -> Self {
        self.issued_at = Some(unix_seconds);
        self
    }

    /// Sets `nbf` (seconds since the Unix epoch).
    pub fn not_before(mut self, unix_seconds: u64) -> Self {
        self.not_before = Some(unix_seconds);
        self
    }

    /// Sets any claim, overriding the standard ones; `Value::Null` removes the claim.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }

    /// Sets the `kid` header (default: the pair's [`RsaKeyPair::kid`]).
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Leaves out the `kid` header, like FastMCP's tokens.
    pub fn without_kid(mut self) -> Self {
        self.kid = None;
        self
    }

    /// The claims the token will carry.
    pub fn claims(&self) -> Map<String, Value> {
        let issued_at = self.issued_at.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs()
        });
        let mut claims = Map::new();
        if let Some(issuer) = &self.issuer {
            claims.insert("iss".into(), issuer.clone().into());
        }
        if let Some(subject) = &self.subject {
            claims.insert("sub".into(), subject.clone().into());
        }
        match self.audiences.as_slice() {
            [] => {}
            [single] => {
                claims.insert("aud".into(), single.clone().into());
            }
            several => {
                claims.insert("aud".into(), several.to_vec().into());
            }
        }
        claims.insert("iat".into(), issued_at.into());
        claims.insert(
            "exp".into(),
            issued_at.saturating_add(self.lifetime.as_secs()).into(),
        );
        if let Some(not_before) = self.not_before {
            claims.insert("nbf".into(), not_before.into());
        }
        if !self.scopes.is_empty() {
            claims.insert("scope".into(), self.scopes.join(" ").into());
        }
        for (name, value) in &self.extra {
            if value.is_null() {
                claims.remove(name);
            } else {
                claims.insert(name.clone(), value.clone());
            }
        }
        claims
    }

    /// Signs the token (RS256) and returns its compact form.
    pub fn sign(self) -> Result<String, AuthError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, &self.claims(), &self.key_pair.encoding_key)
            .map_err(|e| AuthError::TokenSigning(Cause::new(e)))
    }
}
