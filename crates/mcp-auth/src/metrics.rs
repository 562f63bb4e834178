//! The auth failure counter (`mcp_auth_failures_total{reason}`), recorded through the
//! `metrics` facade: a no-op until the application installs a recorder (`mcp-sse`'s
//! `metrics::install`).

use crate::AuthError;

/// The counter's name.
pub const AUTH_FAILURES_TOTAL: &str = "mcp_auth_failures_total";

/// A short, fixed label for why a request was refused.
pub fn failure_reason(error: &AuthError) -> &'static str {
    match error {
        AuthError::MissingCredentials => "missing_credentials",
        AuthError::AmbiguousCredentials => "ambiguous_credentials",
        AuthError::EmptyToken | AuthError::MalformedToken { .. } => "malformed_token",
        AuthError::TokenTooLarge { .. } => "token_too_large",
        AuthError::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
        AuthError::UnknownSigningKey | AuthError::InvalidSignature => "invalid_signature",
        AuthError::TokenExpired => "expired",
        AuthError::TokenNotYetValid => "not_yet_valid",
        AuthError::MissingClaim { .. } | AuthError::InvalidClaim { .. } => "invalid_claim",
        AuthError::WrongAudience => "wrong_audience",
        AuthError::WrongIssuer => "wrong_issuer",
        AuthError::InsufficientScope { .. } => "insufficient_scope",
        AuthError::KeySetUnavailable { .. } => "keys_unavailable",
        AuthError::Rejected { .. } => "rejected",
        AuthError::InvalidKey { .. }
        | AuthError::InvalidConfig { .. }
        | AuthError::KeyGeneration { .. }
        | AuthError::TokenSigning { .. } => "server_error",
    }
}

/// Counts one refused request.
pub(crate) fn record_failure(error: &AuthError) {
    metrics::counter!(AUTH_FAILURES_TOTAL, "reason" => failure_reason(error)).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_fixed_labels() {
        assert_eq!(failure_reason(&AuthError::WrongAudience), "wrong_audience");
        let malformed = AuthError::Rejected {
            reason: "anything a verifier says".into(),
        };
        assert_eq!(failure_reason(&malformed), "rejected");
    }
}
