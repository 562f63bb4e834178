//! The verified caller, and the trait that produces it from a token.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::AuthError;

/// Who made a request, as established by a verified bearer token.
///
/// [`crate::BearerAuthLayer`] inserts it into the request's [`http::Extensions`]; handlers (and MCP
/// tools, whose context carries the HTTP request's extensions) read it with
/// `extensions.get::<mcp_auth::Identity>()`.
///
/// Every field is shared: the layer clones a cached identity into each request's extensions,
/// and that clone only counts references (no string, list or claim is copied per request).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// The `sub` claim: the user or service the token was issued to.
    pub subject: Option<Arc<str>>,
    /// The OAuth client that obtained the token (`client_id` claim, else `azp`).
    pub client_id: Option<Arc<str>>,
    /// Granted scopes (`scope` space-separated string, or `scp` array).
    pub scopes: Arc<[String]>,
    /// Expiry as seconds since the Unix epoch (`exp`), if the token has one.
    pub expires_at: Option<u64>,
    /// Every claim of the token, as sent.
    pub claims: Arc<Map<String, Value>>,
}

impl Identity {
    /// Builds an identity from a JWT claims object, reading `sub`, `client_id`/`azp`,
    /// `scope`/`scp` and `exp`.
    pub fn from_claims(claims: Map<String, Value>) -> Self {
        let string_claim = |name: &str| claims.get(name).and_then(Value::as_str).map(Arc::from);
        let subject = string_claim("sub");
        let client_id = string_claim("client_id").or_else(|| string_claim("azp"));
        let scopes = scopes_from_claims(&claims);
        let expires_at = claims.get("exp").and_then(|exp| {
            exp.as_u64().or_else(|| {
                exp.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
        });
        Self {
            subject,
            client_id,
            scopes: Arc::from(scopes),
            expires_at,
            claims: Arc::new(claims),
        }
    }

    /// Whether the token granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }

    /// `Ok(())` if the token granted `scope`, otherwise [`AuthError::InsufficientScope`] naming it.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        self.require_scopes(&[scope])
    }

    /// `Ok(())` if the token granted every scope in `scopes`, otherwise
    /// [`AuthError::InsufficientScope`] naming all of `scopes`.
    pub fn require_scopes<S: AsRef<str>>(&self, scopes: &[S]) -> Result<(), AuthError> {
        if scopes.iter().all(|scope| self.has_scope(scope.as_ref())) {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope {
                required: scopes.iter().map(|s| s.as_ref().to_owned()).collect(),
            })
        }
    }
}

fn scopes_from_claims(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    let mut push = |scope: &str| {
        if !scope.is_empty() && !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    };
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(list)) => list.split(' ').for_each(&mut push),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(&mut push),
            _ => {}
        }
    }
    scopes
}

/// Checks a bearer token and says who it belongs to.
///
/// [`crate::JwtVerifier`] implements it for JWTs; implement it yourself for opaque tokens or token
/// introspection. The trait is dyn-compatible, so verifiers are stored as `Arc<dyn TokenVerifier>`.
///
/// ```
/// use futures::future::BoxFuture;
/// use mcp_auth::{AuthError, Identity, TokenVerifier};
///
/// /// Accepts exactly one static token (an example; do not use in production).
/// struct StaticToken(String);
///
/// impl TokenVerifier for StaticToken {
///     fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>> {
///         Box::pin(async move {
///             if token == self.0 {
///                 Ok(Identity { subject: Some("admin".into()), ..Identity::default() })
///             } else {
///                 Err(AuthError::Rejected { reason: "unknown token".into() })
///             }
///         })
///     }
/// }
/// ```
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token` (without the `Bearer ` prefix) and returns the caller's identity.
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>>;
}

impl<V: TokenVerifier + ?Sized> TokenVerifier for Arc<V> {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>> {
        (**self).verify(token)
    }
}

impl<V: TokenVerifier + ?Sized> TokenVerifier for Box<V> {
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, AuthError>> {
        (**self).verify(token)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn reads_standard_claims_and_space_separated_scope() {
        let id = Identity::from_claims(claims(json!({
            "sub": "alice", "azp": "cli", "scope": "read  write", "exp": 1_900_000_000u64
        })));
        assert_eq!(id.subject.as_deref(), Some("alice"));
        assert_eq!(id.client_id.as_deref(), Some("cli"));
        assert_eq!(*id.scopes, ["read".to_owned(), "write".to_owned()]);
        assert_eq!(id.expires_at, Some(1_900_000_000));
        assert!(id.has_scope("write"));
        assert!(!id.has_scope("admin"));
    }

    #[test]
    fn reads_scp_array_and_prefers_client_id_over_azp() {
        let id = Identity::from_claims(claims(json!({
            "client_id": "app", "azp": "other", "scp": ["a", "b", 3, "a"]
        })));
        assert_eq!(id.client_id.as_deref(), Some("app"));
        assert_eq!(*id.scopes, ["a".to_owned(), "b".to_owned()]);
        assert_eq!(id.subject, None);
        assert_eq!(id.expires_at, None);
    }

    #[test]
    fn require_scope_names_the_missing_scopes() {
        let id = Identity::from_claims(claims(json!({"scope": "read"})));
        assert_eq!(id.require_scope("read"), Ok(()));
        assert_eq!(
            id.require_scopes(&["read", "write"]),
            Err(AuthError::InsufficientScope {
                required: vec!["read".to_owned(), "write".to_owned()]
            })
        );
        assert_eq!(
            id.require_scope("write").map_err(|e| e.to_string()),
            Err("the token lacks the required scope(s): write".to_owned())
        );
    }
}
