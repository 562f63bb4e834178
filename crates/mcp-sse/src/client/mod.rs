//! The client side: [`SseClientTransport`] (legacy HTTP+SSE, 2024-11-05),
//! [`StreamableHttpClientTransport`] (streamable HTTP, 2025-03-26 and later) and
//! [`McpClient`], which runs the MCP session over either (or over any [`MessageTransport`],
//! such as `mcp-stdio`'s child process).
//!
//! A transport moves JSON-RPC messages: `send` POSTs one message, and everything the server
//! sends arrives on a bounded [`tokio::sync::mpsc::Receiver`] of [`Incoming`] items, in the
//! order the server sent them. [`McpClient`] drives [`mcp_proto::ClientSession`] on top:
//! request ids, matching answers, the `initialize` handshake, pagination, progress callbacks
//! and timeouts.

mod legacy_sse;
mod mcp_client;
#[cfg(test)]
mod oauth_tests;
mod sse_parser;
mod stateless;
mod streamable;
mod tasks;
#[cfg(test)]
mod test_fixtures;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use mcp_oauth_client::{OAuthClient, Recovery};
use mcp_proto::{Decoded, Message, RequestId};

use crate::Error;

pub use legacy_sse::SseClientTransport;
pub use mcp_client::{McpClient, McpClientBuilder, MessageTransport};
pub use sse_parser::{EventTooLarge, SseEvent, SseParser};
pub use stateless::{InputHandler, MAX_INPUT_ROUNDS};
pub use streamable::{MAX_RESUME_ATTEMPTS, StreamableHttpClientTransport};
pub use tasks::{TaskStates, ToolCallStart};

/// Default time to open a connection (and, for legacy SSE, to receive the `endpoint` event).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time one request may take, from sending it to its answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default bound on server messages waiting to be read.
pub const DEFAULT_INCOMING_CAPACITY: usize = 256;
/// Default bound on one message (or one server-sent event) from the server.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// How much of an error response's body [`Error::Http`] keeps.
pub const ERROR_BODY_LIMIT: usize = 4096;
/// How many times one HTTP request is sent again after the OAuth client recovered from a 401
/// or 403 (a refresh, an authorization, step-ups).
pub const MAX_AUTH_RECOVERIES: u32 = 4;

/// Settings shared by both transports.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Headers sent on every HTTP request (e.g. `Authorization`).
    pub headers: HeaderMap,
    /// Time to open a connection; for legacy SSE, also the wait for the `endpoint` event.
    pub connect_timeout: Duration,
    /// Time one HTTP exchange may take (response headers and a JSON body; for a streamed
    /// answer, the whole stream).
    pub request_timeout: Duration,
    /// Bound of the channel of incoming server messages; a full channel stops reading from
    /// the network until it drains.
    pub incoming_capacity: usize,
    /// Bound on one message or server-sent event from the server.
    pub max_message_bytes: usize,
    /// The `reqwest` client to use (for proxies, TLS settings, a shared pool); `None` uses a
    /// process-wide client built with `connect_timeout`. `headers` are added either way.
    pub http_client: Option<reqwest::Client>,
    /// The OAuth client that supplies `Authorization` (replacing any in `headers`) and
    /// recovers from 401 and 403 answers; `None` sends `headers` as they are.
    pub oauth: Option<Arc<OAuthClient>>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            headers: HeaderMap::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            incoming_capacity: DEFAULT_INCOMING_CAPACITY,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            http_client: None,
            oauth: None,
        }
    }
}

impl TransportOptions {
    /// Adds a header sent on every request; a bad name or value is [`Error::InvalidHeader`].
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, Error> {
        let (name, value) = parse_header(name, value)?;
        self.headers.append(name, value);
        Ok(self)
    }

    fn http_client(&self) -> Result<HttpClient, Error> {
        let client = match &self.http_client {
            Some(client) => client.clone(),
            None => shared_reqwest_client(self.connect_timeout)?,
        };
        let mut headers = self.headers.clone();
        if self.oauth.is_some() {
            headers.remove(AUTHORIZATION);
        }
        Ok(HttpClient {
            client,
            headers,
            oauth: self.oauth.clone(),
        })
    }
}

/// A `reqwest` client plus the headers every request carries, and the OAuth client that
/// authorizes them.
#[derive(Debug, Clone)]
struct HttpClient {
    client: reqwest::Client,
    headers: HeaderMap,
    oauth: Option<Arc<OAuthClient>>,
}

impl HttpClient {
    fn get(&self, url: reqwest::Url) -> reqwest::RequestBuilder {
        self.client.get(url).headers(self.headers.clone())
    }

    fn post(&self, url: reqwest::Url) -> reqwest::RequestBuilder {
        self.client.post(url).headers(self.headers.clone())
    }

    fn delete(&self, url: reqwest::Url) -> reqwest::RequestBuilder {
        self.client.delete(url).headers(self.headers.clone())
    }

    /// Sends `request` within `wait` (`what` names the answer awaited, for the timeout
    /// error). With an OAuth client, the request carries its token, and a 401 or 403 it can
    /// recover from (refresh, authorization, step-up) sends the request again, at most
    /// [`MAX_AUTH_RECOVERIES`] times; the authorization itself is not counted in `wait`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &reqwest::Url,
        wait: Duration,
        what: &'static str,
    ) -> Result<reqwest::Response, Error> {
        let Some(oauth) = &self.oauth else {
            return send_within(request, url, wait, what).await;
        };
        let mut recoveries = 0;
        loop {
            let attempt = request.try_clone().ok_or_else(|| {
                Error::Transport("a streamed request body cannot be sent again".to_owned())
            })?;
            let sent = oauth.authorization().await.map_err(Error::Authorization)?;
            let attempt = match &sent {
                Some(value) => attempt.header(AUTHORIZATION, sensitive(value)?),
                None => attempt,
            };
            let response = send_within(attempt, url, wait, what).await?;
            let status = response.status();
            if (status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN)
                || recoveries == MAX_AUTH_RECOVERIES
            {
                return Ok(response);
            }
            recoveries += 1;
            let recovery = oauth
                .recover(status, response.headers(), sent.as_deref())
                .await
                .map_err(Error::Authorization)?;
            if recovery != Recovery::Retry {
                return Ok(response);
            }
        }
    }
}

/// Sends a request within `wait`.
async fn send_within(
    request: reqwest::RequestBuilder,
    url: &reqwest::Url,
    wait: Duration,
    what: &'static str,
) -> Result<reqwest::Response, Error> {
    tokio::time::timeout(wait, request.send())
        .await
        .map_err(|_| Error::Timeout(wait, what))?
        .map_err(|e| connect_error(url, e))
}

/// A header value marked sensitive (kept out of debug output and HTTP/2 header tables).
fn sensitive(value: &str) -> Result<HeaderValue, Error> {
    let mut header = HeaderValue::from_str(value).map_err(|e| Error::InvalidHeader {
        name: AUTHORIZATION.to_string(),
        source: e.into(),
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// How many distinct connect timeouts get a cached client.
const CACHED_CLIENTS: usize = 8;

/// A process-wide `reqwest` client per connect timeout. Building one loads the platform's
/// TLS roots (tens of milliseconds), and sharing one shares its connection pool, so
/// transports reuse them.
fn shared_reqwest_client(connect_timeout: Duration) -> Result<reqwest::Client, Error> {
    static CLIENTS: std::sync::Mutex<Vec<(Duration, reqwest::Client)>> =
        std::sync::Mutex::new(Vec::new());
    let mut clients = CLIENTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, client)) = clients.iter().find(|(t, _)| *t == connect_timeout) {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .build()
        .map_err(Error::HttpClient)?;
    if clients.len() < CACHED_CLIENTS {
        clients.push((connect_timeout, client.clone()));
    }
    Ok(client)
}

/// Validates a header name and value.
pub(crate) fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let header_name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|e| Error::InvalidHeader {
            name: name.to_owned(),
            source: e.into(),
        })?;
    let header_value = HeaderValue::from_str(value).map_err(|e| Error::InvalidHeader {
        name: name.to_owned(),
        source: e.into(),
    })?;
    Ok((header_name, header_value))
}

/// What a transport delivers from the server.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming {
    /// A JSON-RPC message (response, notification or server request).
    Message(Message),
    /// The answer to this request can no longer arrive: the stream that was to carry it
    /// ended or broke first (streamable HTTP).
    Lost {
        /// The request that will not be answered.
        id: RequestId,
        /// What happened.
        error: Error,
    },
    /// The server sent something that is not a JSON-RPC message; the stream goes on.
    Malformed(Error),
}

/// Parses an HTTP URL.
fn parse_url(url: &str) -> Result<reqwest::Url, Error> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Error::InvalidUrl {
        url: url.to_owned(),
        source: e.into(),
    })?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(Error::InvalidUrl {
            url: url.to_owned(),
            source: format!("scheme {other:?} is not http or https").into(),
        }),
    }
}

/// A `reqwest` failure as [`Error::Connect`], keeping it as the source.
fn connect_error(url: &reqwest::Url, err: reqwest::Error) -> Error {
    Error::Connect {
        url: url.to_string(),
        source: err,
    }
}

/// Turns a non-success response into [`Error::Http`], keeping the status, the reason phrase
/// as sent (or the canonical one) and the start of the body.
async fn http_error(mut response: reqwest::Response, wait: Duration) -> Error {
    let status = response.status();
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| status.canonical_reason().map(str::to_owned))
        .unwrap_or_default();
    let mut body = Vec::new();
    let read = async {
        while body.len() < ERROR_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(wait.min(Duration::from_secs(5)), read).await;
    body.truncate(ERROR_BODY_LIMIT);
    Error::Http {
        status,
        reason,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
async fn read_body(
    response: &mut reqwest::Response,
    url: &reqwest::Url,
    limit: usize,
) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| connect_error(url, e))? {
        if body.len() + chunk.len() > limit {
            return Err(Error::MessageTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Decodes one JSON body or SSE `data` into incoming items.
fn decode_incoming(bytes: &[u8]) -> Vec<Incoming> {
    match mcp_proto::decode(bytes) {
        Ok(Decoded::Single(m)) => vec![Incoming::Message(m)],
        Ok(Decoded::Batch(items)) => items
            .into_iter()
            .map(|item| match item {
                Ok(m) => Incoming::Message(m),
                Err(resp) => Incoming::Malformed(malformed(resp)),
            })
            .collect(),
        Err(resp) => vec![Incoming::Malformed(malformed(resp))],
    }
}

fn malformed(resp: mcp_proto::Response) -> Error {
    let detail = match resp.outcome {
        Err(e) => e.message,
        Ok(_) => "invalid message".to_owned(),
    };
    Error::Transport(format!(
        "the server sent an invalid JSON-RPC message: {detail}"
    ))
}

/// Whether a `Content-Type` header value names `media` (ignoring parameters and case).
fn is_media_type(value: Option<&HeaderValue>, media: &str) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media))
}

/// Aborts a task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
#[cfg(test)]
mod tests;
