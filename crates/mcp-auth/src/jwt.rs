//! [`JwtVerifier`]: checks signed JWT access tokens against a public key or a JWKS URL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde_json::{Map, Value};

use crate::jwks::{JwksKeySet, JwksSettings};
use crate::keys::{VerificationKey, family_of, select_key};
use crate::{AuthError, Identity, TokenVerifier};

/// Longest token the verifier looks at, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
enum KeySource {
    Static(Arc<[VerificationKey]>),
    Jwks(Arc<JwksKeySet>),
}

/// Verifies JWT access tokens (RFC 7519 / RFC 9068) signed with an asymmetric key.
///
/// Built from a PEM public key, a JWK, a JWK set, or a JWKS URL, then narrowed with
/// [`audience`](Self::audience), [`issuer`](Self::issuer) and
/// [`required_scopes`](Self::required_scopes). Clones share the JWKS cache.
///
/// Checks, in order: the token's shape (three base64url parts, JSON header and claims, no `crit`);
/// the algorithm (never `none`, never HMAC; only the key's algorithms, `RS256` for an RSA key
/// unless a JWK names another or [`algorithms`](Self::algorithms) widens it); the signature; `exp`
/// (required) and `nbf` with [`leeway`](Self::leeway); the audience and issuer if configured
/// (then also required); the required scopes.
///
/// ```no_run
/// # fn main() -> Result<(), mcp_auth::AuthError> {
/// # let pem = mcp_auth::RsaKeyPair::generate()?.public_key_pem();
/// use mcp_auth::JwtVerifier;
///
/// let verifier = JwtVerifier::from_public_key_pem(&pem)?
///     .audience("https://mcp.example.com/mcp")
///     .issuer("https://auth.example.com")
///     .required_scopes(["mcp:tools"]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    keys: KeySource,
    audiences: Vec<String>,
    issuers: Vec<String>,
    required_scopes: Vec<String>,
    leeway: Duration,
    algorithms: Option<Vec<Algorithm>>,
}

impl JwtVerifier {
    fn with_keys(keys: KeySource) -> Self {
        Self {
            keys,
            audiences: Vec::new(),
            issuers: Vec::new(),
            required_scopes: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            algorithms: None,
        }
    }

    /// A verifier for one PEM public key: RSA as SPKI (`-----BEGIN PUBLIC KEY-----`) or PKCS#1
    /// (`-----BEGIN RSA PUBLIC KEY-----`), at least 2048 bits; or an EC P-256/P-384 or Ed25519
    /// SPKI key. Private keys are refused.
    pub fn from_public_key_pem(pem: &str) -> Result<Self, AuthError> {
        let key = VerificationKey::from_pem(pem)?;
        Ok(Self::with_keys(KeySource::Static(Arc::from(vec![key]))))
    }

    /// A verifier for one public JWK (RFC 7517), e.g. `{"kty":"RSA","n":"...","e":"AQAB"}`.
    /// Symmetric (`oct`) keys are refused.
    pub fn from_jwk(jwk: &Value) -> Result<Self, AuthError> {
        let key = VerificationKey::from_jwk_value(jwk)?;
        Ok(Self::with_keys(KeySource::Static(Arc::from(vec![key]))))
    }

    /// A verifier for a fixed JWK set `{"keys":[...]}`; tokens pick a key by `kid`. Unusable keys
    /// (symmetric, encryption) are skipped; at least one must remain.
    pub fn from_jwks(jwks: &Value) -> Result<Self, AuthError> {
        let keys = crate::jwks::parse_key_set(jwks.to_string().as_bytes(), usize::MAX)
            .map_err(AuthError::invalid_key)?;
        Ok(Self::with_keys(KeySource::Static(Arc::from(keys))))
    }

    /// A verifier that fetches its keys from a JWKS URL on first use.
    ///
    /// The key set is cached for its `Cache-Control: max-age` (5 minutes if absent, clamped to
    /// between the refresh interval and 24 hours) and refetched when it expires or when a token
    /// names an unknown `kid`, but at most once per [`jwks_refresh_interval`](Self::jwks_refresh_interval)
    /// (30 s by default). Concurrent requests share one fetch. Fetches time out after
    /// [`jwks_fetch_timeout`](Self::jwks_fetch_timeout) (5 s); the document may hold at most
    /// 256 KiB and 64 keys. If a refresh fails, the previous keys stay in use.
    pub fn from_jwks_url(url: &str) -> Result<Self, AuthError> {
        let settings = JwksSettings::new(url)?;
        Ok(Self::with_keys(KeySource::Jwks(Arc::new(JwksKeySet::new(
            settings,
        )))))
    }

    /// Accepts tokens whose `aud` (string or array) contains this audience; call again to accept
    /// several. Once an audience is set, `aud` is required. Without one, `aud` is not checked,
    /// which MCP forbids in production: set it to this server's canonical URL.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens whose `iss` is this issuer; call again to accept several. Once an issuer is
    /// set, `iss` is required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Scopes every token must carry (`scope` or `scp`); otherwise
    /// [`AuthError::InsufficientScope`] (HTTP 403).
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Clock-skew allowance for `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Replaces the key-derived algorithm allow-list, e.g. `["RS256", "PS256"]`.
    ///
    /// Each key still only verifies algorithms of its own family. `none` and the HMAC algorithms
    /// are refused, and so are algorithms no configured (static) key could verify.
    pub fn algorithms<I, S>(mut self, names: I) -> Result<Self, AuthError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut algorithms = Vec::new();
        for name in names {
            let name = name.as_ref();
            let algorithm = Algorithm::from_str(name)
                .ok()
                .filter(|alg| family_of(*alg) != AlgorithmFamily::Hmac)
                .ok_or_else(|| {
                    AuthError::invalid_config(format!(
                        "`{name}` is not an accepted asymmetric signature algorithm"
                    ))
                })?;
            if let KeySource::Static(keys) = &self.keys
                && !keys.iter().any(|key| key.family == family_of(algorithm))
            {
                return Err(AuthError::invalid_config(format!(
                    "no configured key can verify {name}"
                )));
            }
            algorithms.push(algorithm);
        }
        if algorithms.is_empty() {
            return Err(AuthError::invalid_config(
                "the algorithm allow-list is empty".to_owned(),
            ));
        }
        self.algorithms = Some(algorithms);
        Ok(self)
    }

    fn map_jwks(mut self, change: impl FnOnce(&mut JwksSettings)) -> Self {
        if let KeySource::Jwks(set) = &self.keys {
            let mut settings = set.settings().clone();
            change(&mut settings);
            self.keys = KeySource::Jwks(Arc::new(JwksKeySet::new(settings)));
        }
        self
    }

    /// JWKS only: the shortest time between two fetches (default 30 s). Ignored for fixed keys.
    /// Configure before the verifier is cloned or used: it starts a fresh cache.
    pub fn jwks_refresh_interval(self, interval: Duration) -> Self {
        self.map_jwks(|settings| settings.refresh_interval = interval)
    }

    /// JWKS only: how long one fetch may take (default 5 s).
    pub fn jwks_fetch_timeout(self, timeout: Duration) -> Self {
        self.map_jwks(|settings| settings.fetch_timeout = timeout)
    }

    /// JWKS only: the HTTP client used for fetches (for proxies or custom TLS roots).
    pub fn jwks_http_client(self, client: reqwest::Client) -> Self {
        self.map_jwks(|settings| settings.client = client)
    }

    /// JWKS only: how many times the key set was fetched (0 for fixed keys).
    pub fn jwks_fetch_count(&self) -> u64 {
        match &self.keys {
            KeySource::Jwks(set) => set.fetch_count(),
            KeySource::Static(_) => 0,
        }
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            required.push("aud");
        }
        if !self.issuers.is_empty() {
            validation.set_issuer(&self.issuers);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// Verifies `token` and returns its identity. Same as [`TokenVerifier::verify`].
    pub async fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TokenTooLarge {
                limit: MAX_TOKEN_BYTES,
            });
        }
        let header = TokenHeader::parse(token)?;
        let key = match &self.keys {
            KeySource::Static(keys) => select_key(keys, header.kid.as_deref())
                .cloned()
                .ok_or(AuthError::UnknownSigningKey)?,
            KeySource::Jwks(set) => set.key_for(header.kid.as_deref()).await?,
        };
        let allowed = match &self.algorithms {
            Some(algorithms) => algorithms.contains(&header.algorithm),
            None => key.algorithms.contains(&header.algorithm),
        } && family_of(header.algorithm) == key.family;
        if !allowed {
            return Err(AuthError::AlgorithmNotAllowed {
                algorithm: format!("{:?}", header.algorithm),
            });
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(
            token,
            &key.key,
            &self.validation(header.algorithm),
        )
        .map_err(|e| from_jwt_error(e.into_kind()))?;
        let identity = Identity::from_claims(data.claims);
        if !self.required_scopes.is_empty() {
            identity.require_scopes(&self.required_scopes)?;
        }
        Ok(identity)
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>> {
        Box::pin(self.verify_token(token))
    }
}

/// The parts of a JWT header the verifier needs, after checking the token's shape.
#[derive(Debug)]
struct TokenHeader {
    algorithm: Algorithm,
    kid: Option<String>,
}

fn malformed(reason: &'static str) -> AuthError {
    AuthError::MalformedToken { reason }
}

impl TokenHeader {
    fn parse(token: &str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("a JWT has three dot-separated parts"));
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| malformed("the header is not valid base64url"))?;
        let header: Map<String, Value> = serde_json::from_slice(&header)
            .map_err(|_| malformed("the header is not a JSON object"))?;
        let claims = URL_SAFE_NO_PAD
            .decode(claims)
            .map_err(|_| malformed("the claims are not valid base64url"))?;
        serde_json::from_slice::<Map<String, Value>>(&claims)
            .map_err(|_| malformed("the claims are not a JSON object"))?;
        if header.contains_key("crit") {
            return Err(malformed("the header has unsupported critical extensions"));
        }
        let name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("the header has no `alg`"))?;
        let algorithm = Algorithm::from_str(name)
            .ok()
            .filter(|alg| family_of(*alg) != AlgorithmFamily::Hmac)
            .ok_or_else(|| AuthError::AlgorithmNotAllowed {
                algorithm: known_algorithm_name(name),
            })?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(malformed("the header's `kid` is not a string")),
        };
        Ok(Self { algorithm, kid })
    }
}

/// The algorithm name for an error message, only if it is a well-known one (never echo arbitrary
/// token content).
fn known_algorithm_name(name: &str) -> String {
    const KNOWN: [&str; 14] = [
        "none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512", "EdDSA",
    ];
    KNOWN
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .map_or_else(|| "unrecognized".to_owned(), |known| (*known).to_owned())
}

fn from_jwt_error(kind: ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat => AuthError::InvalidSignature,
        ErrorKind::ExpiredSignature => AuthError::TokenExpired,
        ErrorKind::ImmatureSignature => AuthError::TokenNotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim { claim },
        ErrorKind::InvalidClaimFormat(claim) => AuthError::InvalidClaim { claim },
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            AuthError::AlgorithmNotAllowed {
                algorithm: "unrecognized".to_owned(),
            }
        }
        ErrorKind::Base64(_) => malformed("the signature is not valid base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => malformed("the claims are not a JSON object"),
        _ => malformed("the token could not be decoded"),
    }
}
