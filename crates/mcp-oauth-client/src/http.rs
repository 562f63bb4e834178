//! Bounded HTTP: every request to an authorization-related endpoint has a timeout, a bounded
//! response body and follows no redirect.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use reqwest::Url;
use serde::de::DeserializeOwned;

use crate::Error;

/// Default time one request to a metadata, registration, authorization or token endpoint may
/// take, from sending it to the end of its body.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on the body of such a response.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Limits on the HTTP requests the OAuth client makes (not the MCP requests themselves).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time one request may take, response body included.
    pub timeout: Duration,
    /// Bound on one response body.
    pub max_response_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_HTTP_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// A response read whole.
#[derive(Debug)]
pub(crate) struct ReadResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The HTTP client of the OAuth flows.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    limits: HttpLimits,
}

impl Fetcher {
    /// A client that follows no redirect (an authorization response is a redirect to read,
    /// and metadata must come from the URL asked).
    pub fn new(limits: HttpLimits) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.timeout)
            .build()
            .map_err(|source| Error::Request {
                url: String::new(),
                source,
            })?;
        Ok(Self { client, limits })
    }

    /// The underlying client, to build requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request and reads its whole (bounded) body within the timeout.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<ReadResponse, Error> {
        let exchange = async {
            let mut response = request.send().await.map_err(|source| Error::Request {
                url: display_url(url),
                source,
            })?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|source| Error::Request {
                url: display_url(url),
                source,
            })? {
                if body.len() + chunk.len() > self.limits.max_response_bytes {
                    return Err(Error::ResponseTooLarge {
                        url: display_url(url),
                        limit: self.limits.max_response_bytes,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(ReadResponse {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(self.limits.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                url: display_url(url),
                after: self.limits.timeout,
            })?
    }

    /// GETs a JSON document; any status but 2xx is [`Error::UnexpectedStatus`].
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: &Url,
        what: &'static str,
    ) -> Result<T, Error> {
        let request = self
            .client
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json");
        let response = self.send(request, url).await?;
        if !response.status.is_success() {
            return Err(unexpected_status(url, &response));
        }
        parse_json(url, what, &response.body)
    }
}

/// Parses a JSON body as `T`.
pub(crate) fn parse_json<T: DeserializeOwned>(
    url: &Url,
    what: &'static str,
    body: &[u8],
) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|source| Error::InvalidDocument {
        url: display_url(url),
        what,
        source,
    })
}

/// [`Error::UnexpectedStatus`] for a response, with the OAuth `error` code of its body.
pub(crate) fn unexpected_status(url: &Url, response: &ReadResponse) -> Error {
    Error::UnexpectedStatus {
        url: display_url(url),
        status: response.status,
        error: oauth_error(&response.body).map(|(code, _)| code),
    }
}

/// The `error` and `error_description` of an OAuth error body (RFC 6749 section 5.2).
pub(crate) fn oauth_error(body: &[u8]) -> Option<(String, Option<String>)> {
    #[derive(serde::Deserialize)]
    struct OAuthErrorBody {
        error: String,
        error_description: Option<String>,
    }
    let parsed: OAuthErrorBody = serde_json::from_slice(body).ok()?;
    Some((parsed.error, parsed.error_description))
}

/// A URL as shown in errors and logs: without query or fragment, which can carry codes.
pub(crate) fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Parses an absolute `http` or `https` URL.
pub(crate) fn parse_http_url(url: &str) -> Result<Url, Error> {
    let parsed = Url::parse(url).map_err(|e| Error::InvalidUrl {
        url: url.to_owned(),
        detail: e.to_string(),
    })?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(Error::InvalidUrl {
            url: url.to_owned(),
            detail: format!("scheme {other:?} is not http or https"),
        }),
    }
}
