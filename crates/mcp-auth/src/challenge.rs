//! The one place where an [`AuthError`] becomes an HTTP response (RFC 6750 §3, MCP authorization).
//!
//! | error | status | `WWW-Authenticate` | body `error` |
//! |---|---|---|---|
//! | no bearer credentials | 401 | `Bearer [scope=".."], resource_metadata=".."` (no error code) | `unauthorized` |
//! | bad, expired, unverifiable token | 401 | `Bearer error="invalid_token", error_description="..", ..` | `invalid_token` |
//! | two `Authorization` headers | 400 | `Bearer error="invalid_request", ..` | `invalid_request` |
//! | token lacks scopes | 403 | `Bearer error="insufficient_scope", scope="..", resource_metadata=".."` | `insufficient_scope` |
//! | JWKS unavailable | 503 | none | `temporarily_unavailable` |
//! | configuration error | 500 | none | `server_error` |

use axum::body::Body;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::AuthError;

impl AuthError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::AmbiguousCredentials => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthError::KeySetUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::InvalidKey { .. }
            | AuthError::InvalidConfig { .. }
            | AuthError::KeyGeneration { .. }
            | AuthError::TokenSigning { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            AuthError::MissingCredentials
            | AuthError::EmptyToken
            | AuthError::TokenTooLarge { .. }
            | AuthError::MalformedToken { .. }
            | AuthError::AlgorithmNotAllowed { .. }
            | AuthError::UnknownSigningKey
            | AuthError::InvalidSignature
            | AuthError::TokenExpired
            | AuthError::TokenNotYetValid
            | AuthError::MissingClaim { .. }
            | AuthError::InvalidClaim { .. }
            | AuthError::WrongAudience
            | AuthError::WrongIssuer
            | AuthError::Rejected { .. } => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 error code for the `WWW-Authenticate` challenge, `None` when the request
    /// carried no credentials (RFC 6750 §3.1) or the error is not the client's.
    pub fn challenge_error_code(&self) -> Option<&'static str> {
        match self.status() {
            StatusCode::UNAUTHORIZED if *self == AuthError::MissingCredentials => None,
            StatusCode::UNAUTHORIZED => Some("invalid_token"),
            StatusCode::FORBIDDEN => Some("insufficient_scope"),
            StatusCode::BAD_REQUEST => Some("invalid_request"),
            _ => None,
        }
    }

    /// The `error` member of the JSON body.
    fn body_error_code(&self) -> &'static str {
        match self.status() {
            StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
            StatusCode::INTERNAL_SERVER_ERROR => "server_error",
            _ => self.challenge_error_code().unwrap_or("unauthorized"),
        }
    }
}

/// What the challenge says beyond the error itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChallengeContext<'a> {
    /// URL of the RFC 9728 metadata document.
    pub(crate) resource_metadata: Option<&'a str>,
    /// Space-separated scopes this resource requires.
    pub(crate) scope: Option<&'a str>,
}

/// Keeps only the characters RFC 6750 allows in a quoted attribute value
/// (`%x20-21 / %x23-5B / %x5D-7E`).
fn quoted_value(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '?',
        })
        .collect()
}

/// The `WWW-Authenticate` value for `error`, or `None` when the status does not carry one.
pub(crate) fn www_authenticate(error: &AuthError, context: ChallengeContext<'_>) -> Option<String> {
    let status = error.status();
    if !matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST
    ) {
        return None;
    }
    let mut params: Vec<(&str, String)> = Vec::new();
    if let Some(code) = error.challenge_error_code() {
        params.push(("error", code.to_owned()));
    }
    match error {
        AuthError::InsufficientScope { required } => {
            params.push(("scope", required.join(" ")));
        }
        _ => {
            if error.challenge_error_code().is_some() {
                params.push(("error_description", error.to_string()));
            }
            if let Some(scope) = context.scope.filter(|s| !s.is_empty()) {
                params.push(("scope", scope.to_owned()));
            }
        }
    }
    if let Some(url) = context.resource_metadata {
        params.push(("resource_metadata", url.to_owned()));
    }
    let params: Vec<String> = params
        .into_iter()
        .map(|(name, value)| format!("{name}=\"{}\"", quoted_value(&value)))
        .collect();
    Some(if params.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", params.join(", "))
    })
}

/// The full HTTP response for `error`: status, `WWW-Authenticate`, and
/// `{"error": "...", "error_description": "..."}`.
pub(crate) fn error_response(error: &AuthError, context: ChallengeContext<'_>) -> Response<Body> {
    let body = serde_json::json!({
        "error": error.body_error_code(),
        "error_description": error.to_string(),
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = www_authenticate(error, context) {
        let value = HeaderValue::from_str(&challenge)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        headers.insert(WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRM: &str = "http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp";

    fn context() -> ChallengeContext<'static> {
        ChallengeContext {
            resource_metadata: Some(PRM),
            scope: None,
        }
    }

    #[test]
    fn challenges_by_error() {
        let cases = [
            (
                AuthError::MissingCredentials,
                Some(format!("Bearer resource_metadata=\"{PRM}\"")),
            ),
            (
                AuthError::TokenExpired,
                Some(format!(
                    "Bearer error=\"invalid_token\", error_description=\"the token has expired\", resource_metadata=\"{PRM}\""
                )),
            ),
            (
                AuthError::InsufficientScope {
                    required: vec!["a".into(), "b".into()],
                },
                Some(format!(
                    "Bearer error=\"insufficient_scope\", scope=\"a b\", resource_metadata=\"{PRM}\""
                )),
            ),
            (
                AuthError::AmbiguousCredentials,
                Some(format!(
                    "Bearer error=\"invalid_request\", error_description=\"the request has more than one Authorization header\", resource_metadata=\"{PRM}\""
                )),
            ),
            (
                AuthError::KeySetUnavailable {
                    reason: "down".into(),
                },
                None,
            ),
            (AuthError::invalid_config("x"), None),
        ];
        for (error, expected) in cases {
            assert_eq!(www_authenticate(&error, context()), expected, "{error:?}");
        }
        assert_eq!(
            www_authenticate(&AuthError::MissingCredentials, ChallengeContext::default()),
            Some("Bearer".to_owned())
        );
        assert_eq!(
            www_authenticate(
                &AuthError::MissingCredentials,
                ChallengeContext {
                    scope: Some("mcp:tools"),
                    ..context()
                }
            ),
            Some(format!(
                "Bearer scope=\"mcp:tools\", resource_metadata=\"{PRM}\""
            ))
        );
    }

    #[test]
    fn quoted_values_drop_quotes_backslashes_and_controls() {
        let error = AuthError::Rejected {
            reason: "say \"hi\"\\\u{7}é".into(),
        };
        assert_eq!(
            www_authenticate(&error, ChallengeContext::default()),
            Some(
                "Bearer error=\"invalid_token\", error_description=\"the token was rejected: say ?hi????\""
                    .to_owned()
            )
        );
    }

    #[test]
    fn statuses_and_body_codes() {
        assert_eq!(
            AuthError::MissingCredentials.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            AuthError::MissingCredentials.body_error_code(),
            "unauthorized"
        );
        assert_eq!(AuthError::WrongAudience.body_error_code(), "invalid_token");
        assert_eq!(
            AuthError::KeySetUnavailable {
                reason: String::new()
            }
            .status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            AuthError::KeySetUnavailable {
                reason: String::new()
            }
            .body_error_code(),
            "temporarily_unavailable"
        );
        assert_eq!(AuthError::invalid_key("").body_error_code(), "server_error");
    }
}
