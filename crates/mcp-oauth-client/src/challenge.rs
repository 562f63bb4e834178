//! The `Bearer` challenge of a `WWW-Authenticate` header (RFC 6750 section 3, RFC 9728
//! section 5.1).

use http::HeaderMap;

/// What a 401 or 403 answer asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// `error`: `invalid_token`, `insufficient_scope`, ... (absent when no token was sent).
    pub error: Option<String>,
    /// `scope`: the scopes the request needs, space-separated.
    pub scope: Option<String>,
    /// `resource_metadata`: the URL of the protected resource metadata (RFC 9728).
    pub resource_metadata: Option<String>,
}

impl BearerChallenge {
    /// The `Bearer` challenge among the `WWW-Authenticate` headers, or an empty one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Self::parse)
            .unwrap_or_default()
    }

    /// Parses one header value; `None` when it holds no `Bearer` challenge.
    pub fn parse(value: &str) -> Option<Self> {
        let params = bearer_params(value)?;
        let mut challenge = Self::default();
        for (name, value) in params {
            match name.to_ascii_lowercase().as_str() {
                "error" => challenge.error = Some(value),
                "scope" => challenge.scope = Some(value),
                "resource_metadata" => challenge.resource_metadata = Some(value),
                _ => {}
            }
        }
        Some(challenge)
    }

    /// Whether the server says the token lacks scopes (`error="insufficient_scope"`).
    pub fn is_insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }

    /// Whether the server says the token is invalid or expired (`error="invalid_token"`).
    pub fn is_invalid_token(&self) -> bool {
        self.error.as_deref() == Some("invalid_token")
    }
}

/// The auth-params of the `Bearer` challenge in `value`, which may hold several challenges.
fn bearer_params(value: &str) -> Option<Vec<(String, String)>> {
    let mut rest = value.trim_start();
    let mut in_bearer = false;
    let mut found = false;
    let mut params = Vec::new();
    while !rest.is_empty() {
        let token_end = rest
            .find(|c: char| c == '=' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = rest[token_end..].trim_start();
        if let Some(value_part) = after.strip_prefix('=') {
            let (param_value, remaining) = param_value(value_part.trim_start());
            if in_bearer {
                params.push((token.to_owned(), param_value));
            }
            rest = remaining;
        } else if token.is_empty() {
            // A stray comma: skipped below.
            rest = after;
        } else {
            // A scheme name starts a new challenge.
            if found && in_bearer {
                break;
            }
            in_bearer = token.eq_ignore_ascii_case("bearer");
            found |= in_bearer;
            rest = after;
        }
        rest = rest.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    found.then_some(params)
}

/// Reads a token or quoted-string value; returns it and what follows.
fn param_value(input: &str) -> (String, &str) {
    if let Some(quoted) = input.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (value, &quoted[i + 1..]),
                other => value.push(other),
            }
        }
        (value, "")
    } else {
        let end = input.find(',').unwrap_or(input.len());
        (input[..end].trim().to_owned(), &input[end..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_gives_its_parameters() {
        let c = BearerChallenge::parse(
            r#"Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", error_description="need \"more\"""#,
        )
        .unwrap();
        assert!(c.is_insufficient_scope());
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource")
        );
    }

    #[test]
    fn the_bearer_challenge_is_found_among_others() {
        let c = BearerChallenge::parse(
            r#"DPoP algs="ES256", scope="x", Bearer realm="r", error=invalid_token, scope="mcp""#,
        )
        .unwrap();
        assert!(c.is_invalid_token());
        assert_eq!(c.scope.as_deref(), Some("mcp"));
        assert_eq!(c.resource_metadata, None);
    }

    #[test]
    fn a_bare_bearer_scheme_is_an_empty_challenge_and_other_schemes_none() {
        assert_eq!(
            BearerChallenge::parse("Bearer"),
            Some(BearerChallenge::default())
        );
        assert_eq!(BearerChallenge::parse(r#"Basic realm="x""#), None);
    }
}
