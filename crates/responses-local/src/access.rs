//! Who may use the endpoint: loopback `Host`/`Origin` only (unless opened up) and the API key.
//!
//! A web page the developer visits can make the browser send requests to `127.0.0.1` (directly, or
//! by DNS rebinding a name it controls to `127.0.0.1`). Such requests carry the page's own name in
//! `Host` (after rebinding) or in `Origin` (a cross-site request), so the endpoint answers only
//! requests whose `Host` is a loopback name and whose `Origin`, when present, is loopback too. The
//! API key stops any other local program that does not know it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The names that always count as loopback, in the form `Host` carries them (without port).
const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

/// Which `Host` and `Origin` names are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostPolicy {
    /// Accept any `Host` and `Origin`.
    any: bool,
    /// Extra names (lowercase, without port) accepted besides the loopback ones.
    allowed: Vec<String>,
}

impl HostPolicy {
    /// Accepts `name` (a host name or IP address, with or without port) as well.
    pub fn allow(&mut self, name: &str) {
        let name = normalize_host(name);
        if !name.is_empty() && !self.allowed.contains(&name) {
            self.allowed.push(name);
        }
    }

    /// Accepts every `Host` and `Origin`.
    pub fn allow_any(&mut self) {
        self.any = true;
    }

    fn accepts(&self, host: &str) -> bool {
        self.any
            || LOOPBACK_HOSTS.contains(&host)
            || self.allowed.iter().any(|allowed| allowed == host)
    }

    /// Checks the request's `Host` (or URI authority) and its `Origin`, if any.
    fn check(&self, headers: &HeaderMap, uri: &http::Uri) -> Result<(), ApiError> {
        if self.any {
            return Ok(());
        }
        let host = headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| uri.authority().map(http::uri::Authority::as_str))
            .unwrap_or("");
        if !self.accepts(&normalize_host(host)) {
            return Err(ApiError::host_not_allowed(host));
        }
        let Some(origin) = headers.get(http::header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("");
        match origin_host(origin) {
            Some(name) if self.accepts(&name) => Ok(()),
            _ => Err(ApiError::origin_not_allowed(origin)),
        }
    }
}

/// The host part of an authority (`name`, `name:port`, `[v6]`, `[v6]:port`), lowercased; a bare
/// IPv6 address gets brackets, as `Host` writes it.
fn normalize_host(authority: &str) -> String {
    let authority = authority.trim().to_ascii_lowercase();
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => authority[..=end].to_owned(),
            None => authority,
        };
    }
    match authority.matches(':').count() {
        0 => authority,
        1 => authority
            .split_once(':')
            .map_or(authority.clone(), |(host, _)| host.to_owned()),
        _ => format!("[{authority}]"),
    }
}

/// The host of an `Origin` value (`scheme://host[:port]`); `None` for `null` or anything else.
fn origin_host(origin: &str) -> Option<String> {
    let (_, authority) = origin.split_once("://")?;
    let authority = authority.split('/').next().unwrap_or("");
    (!authority.is_empty()).then(|| normalize_host(authority))
}

/// The API key requests must present as `Authorization: Bearer <key>`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApiKey(Arc<str>);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// The prefix of generated keys.
    const GENERATED_PREFIX: &'static str = "sk-local-";

    /// A given key.
    pub fn new(key: &str) -> Self {
        Self(Arc::from(key))
    }

    /// A fresh random key: `sk-local-` and 48 hex digits (192 random bits).
    pub fn generate() -> Self {
        let bytes: [u8; 24] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(Arc::from(format!("{}{hex}", Self::GENERATED_PREFIX)))
    }

    /// The key itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the `Authorization: Bearer` header; the comparison takes the same time wherever
    /// the keys differ.
    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|key| !key.is_empty())
            .ok_or_else(ApiError::missing_api_key)?;
        if bool::from(presented.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::incorrect_api_key(presented))
        }
    }
}

/// The access rules of one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub hosts: HostPolicy,
    pub key: ApiKey,
}

/// The middleware: 403 for a foreign `Host` or `Origin`, then 401 without the right key.
pub(crate) async fn guard(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    let checked = access
        .hosts
        .check(request.headers(), request.uri())
        .and_then(|()| access.key.check(request.headers()));
    match checked {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::info!(
                status = %error.status,
                code = ?error.error.code,
                "request refused"
            );
            error.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn hosts_are_compared_without_port_and_case() {
        assert_eq!(normalize_host("LocalHost:8080"), "localhost");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("::1"), "[::1]");
        assert_eq!(normalize_host("127.0.0.1"), "127.0.0.1");
        assert_eq!(
            origin_host("http://127.0.0.1:3000").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(origin_host("null"), None);
    }

    #[test]
    fn only_loopback_is_accepted_by_default() {
        let policy = HostPolicy::default();
        let uri = http::Uri::from_static("/v1/responses");
        for host in ["127.0.0.1:8080", "localhost", "[::1]:1"] {
            assert!(policy.check(&headers(&[("host", host)]), &uri).is_ok());
        }
        for host in ["attacker.example", "127.0.0.1.nip.io:8080", "10.0.0.2", ""] {
            let refused = policy.check(&headers(&[("host", host)]), &uri);
            assert_eq!(refused.map_err(|e| e.status.as_u16()), Err(403), "{host}");
        }
        let foreign_origin = headers(&[("host", "127.0.0.1"), ("origin", "https://evil.test")]);
        assert!(policy.check(&foreign_origin, &uri).is_err());
        let null_origin = headers(&[("host", "127.0.0.1"), ("origin", "null")]);
        assert!(policy.check(&null_origin, &uri).is_err());
        let local_origin = headers(&[("host", "localhost"), ("origin", "http://localhost:5173")]);
        assert!(policy.check(&local_origin, &uri).is_ok());
    }

    #[test]
    fn allowed_names_and_any_open_it_up() {
        let uri = http::Uri::from_static("/");
        let mut policy = HostPolicy::default();
        policy.allow("Dev.Box:8080");
        assert!(
            policy
                .check(&headers(&[("host", "dev.box:9")]), &uri)
                .is_ok()
        );
        let origin = headers(&[("host", "dev.box"), ("origin", "http://dev.box")]);
        assert!(policy.check(&origin, &uri).is_ok());
        assert!(policy.check(&headers(&[("host", "other")]), &uri).is_err());
        policy.allow_any();
        assert!(policy.check(&headers(&[("host", "other")]), &uri).is_ok());
    }

    #[test]
    fn keys_must_match_exactly() {
        let key = ApiKey::new("sk-local-abc");
        assert!(
            key.check(&headers(&[("authorization", "Bearer sk-local-abc")]))
                .is_ok()
        );
        for wrong in ["Bearer sk-local-abd", "Bearer sk-local-ab", "Bearer x"] {
            let refused = key.check(&headers(&[("authorization", wrong)]));
            assert_eq!(
                refused.map_err(|e| e.error.code),
                Err(Some("invalid_api_key".to_owned()))
            );
        }
        let generated = ApiKey::generate();
        assert!(generated.as_str().starts_with("sk-local-"));
        assert_eq!(generated.as_str().len(), 9 + 48);
        assert_ne!(generated, ApiKey::generate());
    }
}
