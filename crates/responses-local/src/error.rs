//! The crate's error type and the OpenAI-shaped HTTP error bodies.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

/// Errors of this crate (building and serving the endpoint, and model failures).
///
/// The cause (an I/O error, a model's own error) is the [`source`](std::error::Error::source):
///
/// ```
/// use std::error::Error as _;
///
/// let err = responses_local::Error::Model("out of ideas".into());
/// assert_eq!(err.to_string(), "the model failed");
/// assert_eq!(err.source().unwrap().to_string(), "out of ideas");
/// assert_eq!(mcp_proto::error_chain(&err), "the model failed: out of ideas");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("could not listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server stopped with an I/O error.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// The configured API key is empty or has characters an `Authorization` header cannot carry.
    #[error("the API key must be non-empty visible ASCII without spaces")]
    InvalidApiKey,
    /// The model could not decide the next step; the source says why (a model's own error,
    /// or a description).
    #[error("the model failed")]
    Model(#[source] mcp_proto::BoxError),
    /// The model asked for a tool that was not offered to it.
    #[error("the model asked for tool '{name}' on '{server_label}', which was not offered")]
    UnknownToolChosen {
        /// The server label the model named.
        server_label: String,
        /// The tool name the model named.
        name: String,
    },
}

/// The inner object of an OpenAI error body: `{"message","type","param","code"}` in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorObject {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a ErrorObject,
}

/// An HTTP error answer in OpenAI's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub error: ErrorObject,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &str,
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        Self {
            status,
            error: ErrorObject {
                message: message.into(),
                kind: kind.to_owned(),
                param: param.map(str::to_owned),
                code: code.map(str::to_owned),
            },
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>, param: Option<&str>, code: Option<&str>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message,
            param,
            code,
        )
    }

    /// 400 "Missing required parameter: 'x'."
    pub fn missing(param: &str) -> Self {
        Self::invalid(
            format!("Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    }

    /// 400 "Invalid type for 'x': expected ..., but got ... instead."
    pub fn invalid_type(param: &str, expected: &str, got: &str) -> Self {
        Self::invalid(
            format!("Invalid type for '{param}': expected {expected}, but got {got} instead."),
            Some(param),
            Some("invalid_type"),
        )
    }

    /// 400 "Invalid value: 'x'. Supported values are: 'a', 'b', and 'c'."
    pub fn invalid_value(param: &str, value: &str, supported: &[String]) -> Self {
        Self::invalid(
            format!(
                "Invalid value: '{value}'. Supported values are: {}.",
                english_list(supported, "and", |s| format!("'{s}'"))
            ),
            Some(param),
            Some("invalid_value"),
        )
    }

    /// 400 for a body that is not JSON, in OpenAI's words.
    pub fn unparsable() -> Self {
        Self::invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but \
             what was sent was not valid JSON.)",
            None,
            None,
        )
    }

    /// 401 for a missing or malformed `Authorization: Bearer` header.
    pub fn missing_api_key() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You didn't provide an API key. You need to provide your API key in an Authorization \
             header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            None,
            Some("invalid_api_key"),
        )
    }

    /// 401 for a bearer key that is not the endpoint's; shows only the key's ends, like OpenAI.
    pub fn incorrect_api_key(presented: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            format!(
                "Incorrect API key provided: {}. Use the key the local Responses endpoint printed \
                 at start, or the one it was given with --api-key.",
                mask_key(presented)
            ),
            None,
            Some("invalid_api_key"),
        )
    }

    /// 403 for a request whose `Host` is not loopback nor allowed (DNS rebinding).
    pub fn host_not_allowed(host: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            format!(
                "Host '{}' is not allowed. The local Responses endpoint answers only loopback \
                 hosts (127.0.0.1, localhost, [::1]) unless started with --allow-host NAME or \
                 --allow-any-host.",
                shorten(host)
            ),
            None,
            Some("host_not_allowed"),
        )
    }

    /// 403 for a request from a web page whose `Origin` is not loopback nor allowed.
    pub fn origin_not_allowed(origin: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            format!(
                "Origin '{}' is not allowed. The local Responses endpoint answers only requests \
                 without Origin or from a loopback origin unless started with --allow-host NAME \
                 or --allow-any-host.",
                shorten(origin)
            ),
            None,
            Some("origin_not_allowed"),
        )
    }

    /// 400 for an array longer than its limit, in OpenAI's words.
    pub fn array_too_long(param: &str, max: usize, got: usize) -> Self {
        Self::invalid(
            format!(
                "Invalid '{param}': array too long. Expected an array with maximum length {max}, \
                 but got an array with length {got} instead."
            ),
            Some(param),
            Some("array_above_max_length"),
        )
    }

    /// 500 `server_error`.
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            message,
            None,
            None,
        )
    }

    /// The exact JSON body.
    pub fn body(&self) -> String {
        serde_json::to_string(&ErrorBody { error: &self.error }).unwrap_or_else(|_| {
            // Serializing plain strings cannot fail; keep a valid body regardless.
            r#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#
                .to_owned()
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(http::header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}

/// A presented key as OpenAI shows it in errors: its first 3 and last 4 characters.
fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// A header value echoed in a message, cut to 100 characters.
fn shorten(value: &str) -> String {
    value.chars().take(100).collect()
}

/// "a", "a and b", "a, b, and c".
pub(crate) fn english_list<T>(
    items: &[T],
    conjunction: &str,
    show: impl Fn(&T) -> String,
) -> String {
    let shown: Vec<String> = items.iter().map(show).collect();
    match shown.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} {conjunction} {b}"),
        [rest @ .., last] => format!("{}, {conjunction} {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_lists_use_the_oxford_comma() {
        let show = |n: &u32| n.to_string();
        assert_eq!(english_list(&[6u32], "and", show), "6");
        assert_eq!(english_list(&[6u32, 4], "and", show), "6 and 4");
        assert_eq!(english_list(&[6u32, 4, 2], "and", show), "6, 4, and 2");
    }

    #[test]
    fn presented_keys_are_masked() {
        assert_eq!(mask_key("short"), "*****");
        assert_eq!(mask_key("sk-local-0123456789"), "sk-************6789");
    }

    #[test]
    fn error_body_keeps_openai_field_order() {
        let e = ApiError::missing("model");
        assert_eq!(
            e.body(),
            r#"{"error":{"message":"Missing required parameter: 'model'.","type":"invalid_request_error","param":"model","code":"missing_required_parameter"}}"#
        );
    }
}
