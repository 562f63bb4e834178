//! The crate's error type.

use std::time::Duration;

use async_openai::error::OpenAIError;

/// Errors of the Responses API as this crate reports them.
///
/// Failures of the HTTP exchange keep `async-openai`'s error as their
/// [`source`](std::error::Error::source):
///
/// ```
/// use std::error::Error as _;
/// use async_openai::error::OpenAIError;
///
/// let bad_json = serde_json::from_str::<u32>("{").unwrap_err();
/// let err = responses_client::Error::from(OpenAIError::JSONDeserialize(bad_json, "{".into()));
/// assert!(matches!(err, responses_client::Error::InvalidResponse(_)));
/// assert!(err.source().unwrap().is::<OpenAIError>());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// HTTP 424 `external_connector_error`: an MCP server's tools could not be fetched or used.
    #[error("MCP connector failed: {0}")]
    ExternalConnector(ConnectorFailure),
    /// Any other error answer of the API (400 `invalid_request_error`, 401, 404, 5xx...).
    #[error("the Responses API answered HTTP {status}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error `type`, e.g. `invalid_request_error`.
        kind: Option<String>,
        /// The request parameter at fault, e.g. `tools[0].require_approval`.
        param: Option<String>,
        /// The error `code`, e.g. `invalid_value`.
        code: Option<String>,
        /// The human-readable message.
        message: String,
    },
    /// The API could not be reached (connection refused, TLS, DNS...).
    #[error("could not reach the Responses API")]
    Transport(#[source] OpenAIError),
    /// The API answered something that is not a valid response or event.
    #[error("the Responses API sent something unreadable")]
    InvalidResponse(#[source] OpenAIError),
    /// A streaming response broke off.
    #[error("the response stream failed")]
    Stream(#[source] OpenAIError),
    /// The request was rejected before it was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No answer (or no next stream event) within the configured time.
    #[error("no answer from the Responses API within {0:?}")]
    Timeout(Duration),
    /// The approval loop hit its round limit with approvals still pending.
    #[error(
        "approvals were still pending after {rounds} rounds (last response {last_response_id})"
    )]
    TooManyApprovalRounds {
        /// The limit that was reached.
        rounds: u32,
        /// The last response, which still asks for approval.
        last_response_id: String,
    },
}

impl Error {
    /// The connector failure, when this is a 424 `external_connector_error`.
    pub fn connector_failure(&self) -> Option<&ConnectorFailure> {
        match self {
            Error::ExternalConnector(failure) => Some(failure),
            _ => None,
        }
    }

    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::ExternalConnector(_) => Some(424),
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A 424 `external_connector_error`, with what its message says about the MCP server.
///
/// For "Error retrieving tool list from MCP server: 'dice_server'. Http status code: 401
/// (Unauthorized)": `server_label` `dice_server`, `upstream_status` 401, `upstream_reason`
/// `Unauthorized`, `code` `http_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorFailure {
    /// The MCP server's label, from the quoted name in the message.
    pub server_label: Option<String>,
    /// The HTTP status the MCP server answered with, when the message names one.
    pub upstream_status: Option<u16>,
    /// The reason phrase after the status, e.g. `Unauthorized`.
    pub upstream_reason: Option<String>,
    /// The error `code`, e.g. `http_error`.
    pub code: Option<String>,
    /// The full message.
    pub message: String,
}

impl std::fmt::Display for ConnectorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ConnectorFailure {
    /// Reads the server label and upstream status out of an `external_connector_error` message.
    pub fn parse(message: &str, code: Option<String>) -> Self {
        let server_label = message
            .split_once("MCP server: '")
            .and_then(|(_, rest)| rest.split_once('\'').map(|(label, _)| label.to_owned()));
        let status_part = message
            .split_once("Http status code: ")
            .map(|(_, rest)| rest.trim());
        let upstream_status = status_part.and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        });
        let upstream_reason = status_part.and_then(|rest| {
            let (_, after) = rest.split_once('(')?;
            let (reason, _) = after.rsplit_once(')')?;
            Some(reason.to_owned())
        });
        Self {
            server_label,
            upstream_status,
            upstream_reason,
            code,
            message: message.to_owned(),
        }
    }
}

impl From<OpenAIError> for Error {
    fn from(error: OpenAIError) -> Self {
        match error {
            OpenAIError::ApiError(answer) => {
                let status = answer.status_code.as_u16();
                let api = answer.api_error;
                if status == 424 || api.r#type.as_deref() == Some("external_connector_error") {
                    Error::ExternalConnector(ConnectorFailure::parse(&api.message, api.code))
                } else {
                    Error::Api {
                        status,
                        kind: api.r#type,
                        param: api.param,
                        code: api.code,
                        message: api.message,
                    }
                }
            }
            OpenAIError::InvalidArgument(e) => Error::InvalidRequest(e),
            e @ OpenAIError::Reqwest(_) => Error::Transport(e),
            e @ OpenAIError::StreamError(_) => Error::Stream(e),
            other => Error::InvalidResponse(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_424_message_is_parsed() {
        let failure = ConnectorFailure::parse(
            "Error retrieving tool list from MCP server: 'dice_server'. Http status code: 401 (Unauthorized)",
            Some("http_error".to_owned()),
        );
        assert_eq!(failure.server_label.as_deref(), Some("dice_server"));
        assert_eq!(failure.upstream_status, Some(401));
        assert_eq!(failure.upstream_reason.as_deref(), Some("Unauthorized"));
        assert_eq!(failure.code.as_deref(), Some("http_error"));
    }

    #[test]
    fn a_message_without_status_keeps_the_label() {
        let failure = ConnectorFailure::parse(
            "Error retrieving tool list from MCP server: 'x'. Connection failed: refused",
            Some("connection_error".to_owned()),
        );
        assert_eq!(failure.server_label.as_deref(), Some("x"));
        assert_eq!(failure.upstream_status, None);
        assert_eq!(failure.upstream_reason, None);
    }
}
