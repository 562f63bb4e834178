//! A cached JWKS document fetched over HTTP, refreshed with one shared fetch at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH};
use jsonwebtoken::jwk::Jwk;
use reqwest::Url;

use crate::AuthError;
use crate::keys::{VerificationKey, select_key};

/// How the key set is fetched and cached.
#[derive(Debug, Clone)]
pub(crate) struct JwksSettings {
    pub(crate) url: Url,
    pub(crate) client: reqwest::Client,
    /// At most one fetch per this interval (unknown `kid`, expiry, and failures alike). Also the
    /// shortest cache lifetime.
    pub(crate) refresh_interval: Duration,
    pub(crate) fetch_timeout: Duration,
    /// Lifetime when the response has no usable `Cache-Control: max-age`.
    pub(crate) default_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) max_keys: usize,
    pub(crate) max_body_bytes: usize,
}

impl JwksSettings {
    pub(crate) fn new(url: &str) -> Result<Self, AuthError> {
        let url = Url::parse(url)
            .map_err(|e| AuthError::invalid_config("bad JWKS URL").with_source(e))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AuthError::invalid_config(
                "the JWKS URL must use http or https".to_owned(),
            ));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| {
                AuthError::invalid_config("cannot build the HTTP client").with_source(e)
            })?;
        Ok(Self {
            url,
            client,
            refresh_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(5),
            default_ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(24 * 3600),
            max_keys: 64,
            max_body_bytes: 256 * 1024,
        })
    }
}

#[derive(Debug, Default)]
struct CachedKeys {
    keys: Arc<[VerificationKey]>,
    /// `None` until a fetch has succeeded.
    expires_at: Option<Instant>,
    /// Bumped on every fetch attempt, successful or not.
    generation: u64,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// The shared, cached key set of one JWKS URL.
#[derive(Debug)]
pub(crate) struct JwksKeySet {
    settings: JwksSettings,
    cache: RwLock<CachedKeys>,
    fetch_lock: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

/// What one look at the cache found.
struct Lookup {
    key: Option<VerificationKey>,
    fresh: bool,
    generation: u64,
    may_fetch: bool,
    loaded: bool,
}

impl JwksKeySet {
    pub(crate) fn new(settings: JwksSettings) -> Self {
        Self {
            settings,
            cache: RwLock::new(CachedKeys::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    pub(crate) fn settings(&self) -> &JwksSettings {
        &self.settings
    }

    /// How many HTTP fetches of the key set were started.
    pub(crate) fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn lookup(&self, kid: Option<&str>) -> Lookup {
        let now = Instant::now();
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        Lookup {
            key: select_key(&cache.keys, kid).cloned(),
            fresh: cache.expires_at.is_some_and(|expiry| now < expiry),
            generation: cache.generation,
            may_fetch: cache
                .last_attempt
                .is_none_or(|at| now.duration_since(at) >= self.settings.refresh_interval),
            loaded: cache.expires_at.is_some(),
        }
    }

    /// The key a token with this `kid` must be verified with, fetching the key set if it is not
    /// loaded, has expired, or does not know the `kid` (rate-limited).
    pub(crate) async fn key_for(&self, kid: Option<&str>) -> Result<VerificationKey, AuthError> {
        let seen = self.lookup(kid);
        if seen.fresh
            && let Some(key) = seen.key
        {
            return Ok(key);
        }
        if !seen.may_fetch {
            return self.without_fetch(seen);
        }
        let wait = self.settings.fetch_timeout + Duration::from_secs(1);
        let Ok(_guard) = tokio::time::timeout(wait, self.fetch_lock.lock()).await else {
            return Err(AuthError::KeySetUnavailable {
                reason: "timed out waiting for the key set".to_owned(),
            });
        };
        let now_seen = self.lookup(kid);
        if now_seen.generation != seen.generation || !now_seen.may_fetch {
            // Another request fetched while this one waited; its result is as new as it gets.
            return self.without_fetch(now_seen);
        }
        self.refresh().await;
        let after = self.lookup(kid);
        match after.key {
            Some(key) => Ok(key),
            None => self.without_fetch(after),
        }
    }

    /// The answer when no fetch may happen now: a stale key if there is one, else an error.
    fn without_fetch(&self, seen: Lookup) -> Result<VerificationKey, AuthError> {
        if let Some(key) = seen.key {
            return Ok(key);
        }
        if seen.loaded {
            Err(AuthError::UnknownSigningKey)
        } else {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            Err(AuthError::KeySetUnavailable {
                reason: cache
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "the key set has not been fetched".to_owned()),
            })
        }
    }

    async fn refresh(&self) {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = tokio::time::timeout(self.settings.fetch_timeout, self.fetch())
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "fetching the key set took longer than {:?}",
                    self.settings.fetch_timeout
                ))
            });
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.generation += 1;
        cache.last_attempt = Some(started);
        match result {
            Ok((keys, ttl)) => {
                tracing::debug!(url = %self.settings.url, keys = keys.len(), ?ttl, "fetched JWKS");
                cache.keys = keys.into();
                cache.expires_at = Some(started + ttl);
                cache.last_error = None;
            }
            Err(reason) => {
                tracing::warn!(url = %self.settings.url, %reason, "JWKS fetch failed");
                cache.last_error = Some(reason);
            }
        }
    }

    async fn fetch(&self) -> Result<(Vec<VerificationKey>, Duration), String> {
        let settings = &self.settings;
        let mut response = settings
            .client
            .get(settings.url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("the JWKS endpoint answered {}", response.status()));
        }
        let ttl = response
            .headers()
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(cache_lifetime)
            .unwrap_or(settings.default_ttl)
            .clamp(
                settings.refresh_interval,
                settings.max_ttl.max(settings.refresh_interval),
            );
        let declared_length = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|len| len > settings.max_body_bytes as u64) {
            return Err(format!(
                "the JWKS document is larger than {} bytes",
                settings.max_body_bytes
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the response failed: {e}"))?
        {
            if body.len() + chunk.len() > settings.max_body_bytes {
                return Err(format!(
                    "the JWKS document is larger than {} bytes",
                    settings.max_body_bytes
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_key_set(&body, settings.max_keys)?;
        Ok((keys, ttl))
    }
}

/// Parses a JWKS document, keeping the usable signature keys (at most `max_keys`).
pub(crate) fn parse_key_set(body: &[u8], max_keys: usize) -> Result<Vec<VerificationKey>, String> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
    let entries = document
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| "the JWKS has no `keys` array".to_owned())?;
    let mut keys = Vec::new();
    for entry in entries {
        if keys.len() == max_keys {
            tracing::warn!(
                max_keys,
                "JWKS has more keys than allowed; ignoring the rest"
            );
            break;
        }
        let parsed = serde_json::from_value::<Jwk>(entry.clone())
            .map_err(|e| AuthError::invalid_key("not a JWK").with_source(e))
            .and_then(|jwk| VerificationKey::from_jwk(&jwk));
        match parsed {
            Ok(key) => keys.push(key),
            Err(e) => tracing::debug!(error = %e, "skipping unusable JWK"),
        }
    }
    if keys.is_empty() {
        return Err("the JWKS has no usable signature keys".to_owned());
    }
    Ok(keys)
}

/// The lifetime a `Cache-Control` value allows: `max-age=N`, or zero for `no-cache`/`no-store`.
pub(crate) fn cache_lifetime(cache_control: &str) -> Option<Duration> {
    let mut lifetime = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            lifetime = value
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
        }
    }
    lifetime
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_lifetimes() {
        assert_eq!(
            cache_lifetime("max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            cache_lifetime("public, MAX-AGE=\"60\", must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(cache_lifetime("no-store"), Some(Duration::ZERO));
        assert_eq!(cache_lifetime("max-age=60, no-cache"), Some(Duration::ZERO));
        assert_eq!(cache_lifetime("public"), None);
        assert_eq!(cache_lifetime("max-age=soon"), None);
    }

    #[test]
    fn key_set_parsing_skips_unusable_keys_and_bounds_count() {
        let n = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            [0xc5u8; 256],
        );
        let rsa = |kid: &str| serde_json::json!({"kty": "RSA", "kid": kid, "n": n, "e": "AQAB"});
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "weird"},
            rsa("a"), rsa("b"), rsa("c")
        ]});
        let keys = parse_key_set(doc.to_string().as_bytes(), 2);
        let kids: Option<Vec<Option<String>>> = keys
            .ok()
            .map(|keys| keys.into_iter().map(|k| k.kid).collect());
        assert_eq!(kids, Some(vec![Some("a".to_owned()), Some("b".to_owned())]));
        assert_eq!(
            parse_key_set(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#, 8).err(),
            Some("the JWKS has no usable signature keys".to_owned())
        );
        assert_eq!(
            parse_key_set(br#"{"nope":[]}"#, 8).err(),
            Some("the JWKS has no `keys` array".to_owned())
        );
    }
}
