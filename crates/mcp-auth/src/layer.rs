//! [`BearerAuthLayer`]: a tower layer that lets a request through only with a valid bearer token.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use futures::future::BoxFuture;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response};
use tower::{Layer, Service};

use crate::challenge::{ChallengeContext, error_response};
use crate::token_cache::VerifiedTokenCache;
use crate::{AuthError, Identity, TokenVerifier};

/// Longest `Authorization` header accepted by default (8 KiB); longer ones get 401 `invalid_token`.
pub const DEFAULT_MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

/// Verified tokens remembered by default.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 10_000;

/// Most bytes the verified tokens remembered may hold by default (16 MiB; an entry counts its
/// claims' JSON twice plus a fixed overhead).
pub const DEFAULT_TOKEN_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Longest time a verified token is remembered (also bounded by the token's `exp`).
pub const TOKEN_CACHE_MAX_TTL: Duration = Duration::from_secs(300);

/// Requires `Authorization: Bearer <token>` on every request of the wrapped service.
///
/// The token is checked by a [`TokenVerifier`] (results are cached by token hash, see
/// [`token_cache_capacity`](Self::token_cache_capacity)), then against
/// [`required_scopes`](Self::required_scopes). On success the [`Identity`] is inserted into the
/// request's extensions; on failure the request never reaches the inner service and the client
/// gets 401/403 with an RFC 6750 `WWW-Authenticate` challenge and a JSON body (see
/// [`AuthError::status`]). The scheme name is case-insensitive; tokens in the query string
/// (`?access_token=`) or the body are never read, so such requests count as unauthenticated.
///
/// ```no_run
/// # fn main() -> Result<(), mcp_auth::AuthError> {
/// # let pem = mcp_auth::RsaKeyPair::generate()?.public_key_pem();
/// use axum::{Router, routing::get};
/// use mcp_auth::{BearerAuthLayer, JwtVerifier};
///
/// let verifier = JwtVerifier::from_public_key_pem(&pem)?.audience("dice-server");
/// let app: Router = Router::new()
///     .route("/mcp", get(|| async { "hello" }))
///     .layer(BearerAuthLayer::new(verifier));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BearerAuthLayer {
    verifier: Arc<dyn TokenVerifier>,
    cache: Option<Arc<VerifiedTokenCache>>,
    resource_metadata: Option<Arc<str>>,
    required_scopes: Arc<[String]>,
    scope_challenge: Option<Arc<str>>,
    max_authorization_bytes: usize,
}

impl std::fmt::Debug for BearerAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("resource_metadata", &self.resource_metadata)
            .field("required_scopes", &self.required_scopes)
            .field("max_authorization_bytes", &self.max_authorization_bytes)
            .field("token_cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl BearerAuthLayer {
    /// A layer checking tokens with `verifier`, with a token cache of
    /// [`DEFAULT_TOKEN_CACHE_CAPACITY`] entries and no `resource_metadata` in challenges.
    pub fn new(verifier: impl TokenVerifier) -> Self {
        Self::from_shared(Arc::new(verifier))
    }

    /// Like [`new`](Self::new), for a verifier that is already shared.
    pub fn from_shared(verifier: Arc<dyn TokenVerifier>) -> Self {
        Self {
            verifier,
            cache: Some(Arc::new(VerifiedTokenCache::new(
                DEFAULT_TOKEN_CACHE_CAPACITY,
                DEFAULT_TOKEN_CACHE_BYTES,
                TOKEN_CACHE_MAX_TTL,
            ))),
            resource_metadata: None,
            required_scopes: Arc::from(Vec::new()),
            scope_challenge: None,
            max_authorization_bytes: DEFAULT_MAX_AUTHORIZATION_BYTES,
        }
    }

    /// The RFC 9728 metadata URL sent as `resource_metadata` in every challenge.
    /// [`crate::ResourceServer`] sets it for you.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(Arc::from(url.into()));
        self
    }

    /// Scopes every token must carry; a valid token without them gets 403 `insufficient_scope`.
    /// They are also announced as `scope` in 401 challenges.
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.scope_challenge = (!scopes.is_empty()).then(|| Arc::from(scopes.join(" ")));
        self.required_scopes = Arc::from(scopes);
        self
    }

    /// How many verified tokens to remember (0 disables the cache), holding at most
    /// [`DEFAULT_TOKEN_CACHE_BYTES`]. Starts an empty cache.
    pub fn token_cache_capacity(self, capacity: usize) -> Self {
        self.token_cache(capacity, DEFAULT_TOKEN_CACHE_BYTES)
    }

    /// How many verified tokens to remember (0 disables the cache) and about how many bytes
    /// they may hold (an entry counts its claims' JSON twice plus a fixed overhead). Starts an
    /// empty cache.
    pub fn token_cache(mut self, capacity: usize, max_bytes: usize) -> Self {
        self.cache = (capacity > 0).then(|| {
            Arc::new(VerifiedTokenCache::new(
                capacity,
                max_bytes,
                TOKEN_CACHE_MAX_TTL,
            ))
        });
        self
    }

    /// Longest `Authorization` header accepted (default [`DEFAULT_MAX_AUTHORIZATION_BYTES`]).
    pub fn max_authorization_bytes(mut self, limit: usize) -> Self {
        self.max_authorization_bytes = limit;
        self
    }

    /// How many requests were authenticated from the token cache, without calling the verifier.
    pub fn token_cache_hits(&self) -> u64 {
        self.cache.as_ref().map_or(0, |cache| cache.hits())
    }

    /// Checks a request's headers: the identity to let it through with, or why not.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        let token = bearer_token(headers, self.max_authorization_bytes)?;
        let cached = self.cache.as_ref().and_then(|cache| cache.get(token));
        let identity = match cached {
            Some(identity) => identity,
            None => {
                let identity = self.verifier.verify(token).await?;
                if let Some(cache) = &self.cache {
                    cache.insert(token, &identity);
                }
                identity
            }
        };
        if !self.required_scopes.is_empty() {
            identity.require_scopes(&self.required_scopes)?;
        }
        Ok(identity)
    }

    /// The response a request failing with `error` gets.
    pub fn rejection(&self, error: &AuthError) -> Response<Body> {
        crate::metrics::record_failure(error);
        error_response(
            error,
            ChallengeContext {
                resource_metadata: self.resource_metadata.as_deref(),
                scope: self.scope_challenge.as_deref(),
            },
        )
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuthService {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service made by [`BearerAuthLayer`].
#[derive(Clone, Debug)]
pub struct BearerAuthService<S> {
    inner: S,
    /// Shared, so that each request takes one reference rather than copying the settings.
    layer: Arc<BearerAuthLayer>,
}

impl<S, B> Service<Request<B>> for BearerAuthService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone is not ready; keep the ready one for this request (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = Arc::clone(&self.layer);
        Box::pin(async move {
            match layer.authenticate(request.headers()).await {
                Ok(identity) => {
                    // Sessions are bound to the subject (else to the client) that created them.
                    if let Some(subject) = identity.subject.as_ref().or(identity.client_id.as_ref())
                    {
                        request
                            .extensions_mut()
                            .insert(mcp_proto::AuthSubject::new(Arc::clone(subject)));
                    }
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(error) => {
                    tracing::debug!(%error, status = %error.status(), "bearer authentication failed");
                    Ok(layer.rejection(&error))
                }
            }
        })
    }
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The bearer token of `Authorization: Bearer <token>`.
fn bearer_token(headers: &HeaderMap, max_bytes: usize) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingCredentials);
    };
    if values.next().is_some() {
        return Err(AuthError::AmbiguousCredentials);
    }
    if value.len() > max_bytes {
        return Err(AuthError::TokenTooLarge { limit: max_bytes });
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::MalformedToken {
            reason: "the Authorization header has non-ASCII characters",
        })?
        .trim();
    let (scheme, token) = match value.find([' ', '\t']) {
        Some(at) => (&value[..at], value[at..].trim()),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingCredentials);
    }
    if token.is_empty() {
        return Err(AuthError::EmptyToken);
    }
    if !is_b64token(token) {
        return Err(AuthError::MalformedToken {
            reason: "the bearer token has characters a token cannot contain",
        });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn bearer_token_parsing() {
        let parse = |values: &[&str]| bearer_token(&headers(values), 64).map(str::to_owned);
        assert_eq!(
            parse(&["Bearer abc.def-_~+/=="]),
            Ok("abc.def-_~+/==".to_owned())
        );
        assert_eq!(parse(&["bEaReR   abc  "]), Ok("abc".to_owned()));
        assert_eq!(parse(&["Bearer\tabc"]), Ok("abc".to_owned()));
        assert_eq!(parse(&[]), Err(AuthError::MissingCredentials));
        assert_eq!(
            parse(&["Basic dXNlcjpwYXNz"]),
            Err(AuthError::MissingCredentials)
        );
        assert_eq!(parse(&["Bearerabc"]), Err(AuthError::MissingCredentials));
        assert_eq!(parse(&["Bearer"]), Err(AuthError::EmptyToken));
        assert_eq!(parse(&["Bearer    "]), Err(AuthError::EmptyToken));
        assert_eq!(
            parse(&["Bearer a", "Bearer b"]),
            Err(AuthError::AmbiguousCredentials)
        );
        assert_eq!(
            parse(&["Bearer a b"]),
            Err(AuthError::MalformedToken {
                reason: "the bearer token has characters a token cannot contain"
            })
        );
        assert_eq!(
            parse(&["Bearer ==="]),
            Err(AuthError::MalformedToken {
                reason: "the bearer token has characters a token cannot contain"
            })
        );
        let long = format!("Bearer {}", "a".repeat(64));
        assert_eq!(parse(&[&long]), Err(AuthError::TokenTooLarge { limit: 64 }));
    }
}
