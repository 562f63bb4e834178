//! The legacy HTTP+SSE client transport (protocol 2024-11-05).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use mcp_proto::Message;
use tokio::sync::mpsc;

use super::sse_parser::{SseEvent, SseParser};
use super::{
    AbortOnDrop, HttpClient, Incoming, TransportOptions, connect_error, decode_incoming,
    http_error, is_media_type, parse_url,
};
use crate::Error;

/// A client of the legacy HTTP+SSE transport: one long `GET` stream carries every server
/// message as `event: message`, and each client message is a `POST` to the URI the server
/// announced in its first event, `event: endpoint`.
///
/// Clones share the connection; the stream closes (and the server ends the session) when
/// [`SseClientTransport::close`] is called or the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SseClientTransport {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    http: HttpClient,
    sse_url: reqwest::Url,
    endpoint: reqwest::Url,
    request_timeout: Duration,
    reader: AbortOnDrop,
}

type ByteStream = std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

impl SseClientTransport {
    /// Opens the SSE stream at `url` and waits (up to the connect timeout) for the `endpoint`
    /// event. Returns the transport and the bounded channel of server messages; the channel
    /// ends when the stream does.
    ///
    /// Errors: [`Error::InvalidUrl`], [`Error::Connect`], [`Error::Http`] for a non-2xx
    /// answer, [`Error::Timeout`] when no `endpoint` event arrives in time,
    /// [`Error::CrossOriginEndpoint`], and [`Error::Transport`] for a stream that is not
    /// `text/event-stream` or ends before the `endpoint` event.
    pub async fn connect(
        url: &str,
        options: TransportOptions,
    ) -> Result<(Self, mpsc::Receiver<Incoming>), Error> {
        let sse_url = parse_url(url)?;
        let http = options.http_client()?;
        let wait = options.connect_timeout;
        let opening = open_stream(&http, &sse_url, &options);
        let (body, parser, endpoint) = tokio::time::timeout(wait, opening)
            .await
            .map_err(|_| Error::Timeout(wait, "the SSE endpoint event"))??;
        let (tx, rx) = mpsc::channel(options.incoming_capacity.max(1));
        let reader = tokio::spawn(read_stream(body, parser, tx, sse_url.clone()));
        tracing::debug!(sse_url = %sse_url, endpoint = %endpoint, "legacy SSE transport connected");
        Ok((
            Self {
                shared: Arc::new(Shared {
                    http,
                    sse_url,
                    endpoint,
                    request_timeout: options.request_timeout,
                    reader: AbortOnDrop(reader.abort_handle()),
                }),
            },
            rx,
        ))
    }

    /// The URI messages are posted to, resolved against the SSE URL.
    pub fn endpoint(&self) -> &reqwest::Url {
        &self.shared.endpoint
    }

    /// The session id in the endpoint's query (`session_id` as in FastMCP and the Python
    /// SDK, or `sessionId` as in the TypeScript SDK), if there is one.
    pub fn session_id(&self) -> Option<String> {
        self.shared
            .endpoint
            .query_pairs()
            .find(|(k, _)| k == "session_id" || k == "sessionId")
            .map(|(_, v)| v.into_owned())
    }

    /// POSTs one message to the endpoint. The server answers `202 Accepted` (any 2xx is
    /// taken as accepted); anything else is [`Error::Http`] with its status, reason and body.
    /// Answers to requests arrive on the incoming channel.
    pub async fn send(&self, message: &Message) -> Result<(), Error> {
        let shared = &self.shared;
        let wait = shared.request_timeout;
        let post = shared
            .http
            .post(shared.endpoint.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(message.to_vec());
        let response = shared
            .http
            .send(post, &shared.endpoint, wait, "the answer to a POST")
            .await?;
        if !response.status().is_success() {
            return Err(http_error(response, wait).await);
        }
        Ok(())
    }

    /// Closes the SSE stream: the incoming channel ends and the server frees the session.
    pub fn close(&self) {
        self.shared.reader.0.abort();
        tracing::debug!(sse_url = %self.shared.sse_url, "legacy SSE transport closed");
    }
}

/// GETs the stream and reads up to the `endpoint` event.
async fn open_stream(
    http: &HttpClient,
    sse_url: &reqwest::Url,
    options: &TransportOptions,
) -> Result<(ByteStream, SseParser, reqwest::Url), Error> {
    let get = http
        .get(sse_url.clone())
        .header(ACCEPT, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache");
    let response = http
        .send(
            get,
            sse_url,
            options.request_timeout,
            "the answer to the SSE GET",
        )
        .await?;
    if !response.status().is_success() {
        return Err(http_error(response, options.request_timeout).await);
    }
    if !is_media_type(response.headers().get(CONTENT_TYPE), "text/event-stream") {
        return Err(Error::Transport(format!(
            "GET {sse_url} answered {:?}, not text/event-stream",
            response.headers().get(CONTENT_TYPE)
        )));
    }
    let mut body: ByteStream = Box::pin(response.bytes_stream());
    let mut parser = SseParser::new(options.max_message_bytes);
    loop {
        while let Some(event) = parser.next_event() {
            if event.event == "endpoint" {
                let endpoint = resolve_endpoint(sse_url, &event)?;
                return Ok((body, parser, endpoint));
            }
            tracing::warn!(event = %event.event, "SSE event before the endpoint event ignored");
        }
        match body.next().await {
            Some(Ok(chunk)) => parser
                .feed(&chunk)
                .map_err(|e| Error::MessageTooLarge { limit: e.limit })?,
            Some(Err(e)) => return Err(connect_error(sse_url, e)),
            None => {
                return Err(Error::Transport(format!(
                    "the SSE stream at {sse_url} ended before its endpoint event"
                )));
            }
        }
    }
}

/// Resolves the `endpoint` event's URI against the SSE URL; only the same origin is allowed.
fn resolve_endpoint(sse_url: &reqwest::Url, event: &SseEvent) -> Result<reqwest::Url, Error> {
    let raw = event.data.trim();
    let endpoint = sse_url.join(raw).map_err(|e| Error::InvalidUrl {
        url: raw.to_owned(),
        source: e.into(),
    })?;
    if endpoint.origin() != sse_url.origin() {
        return Err(Error::CrossOriginEndpoint {
            endpoint: endpoint.to_string(),
            sse_url: sse_url.to_string(),
        });
    }
    Ok(endpoint)
}

/// Forwards `message` events to the channel until the stream ends, breaks or the receiver
/// goes away. Dropping `tx` at the end closes the channel.
async fn read_stream(
    mut body: ByteStream,
    mut parser: SseParser,
    tx: mpsc::Sender<Incoming>,
    sse_url: reqwest::Url,
) {
    loop {
        while let Some(event) = parser.next_event() {
            if event.event != "message" {
                tracing::debug!(event = %event.event, "SSE event ignored");
                continue;
            }
            if event.data.trim().is_empty() {
                continue;
            }
            for item in decode_incoming(event.data.as_bytes()) {
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        }
        match body.next().await {
            Some(Ok(chunk)) => {
                if let Err(e) = parser.feed(&chunk) {
                    let error = Error::MessageTooLarge { limit: e.limit };
                    tracing::warn!(%sse_url, %error, "closing the SSE stream");
                    let _ = tx.send(Incoming::Malformed(error)).await;
                    return;
                }
            }
            Some(Err(e)) => {
                tracing::debug!(%sse_url, error = %mcp_proto::error_chain(&connect_error(&sse_url, e)), "SSE stream broke");
                return;
            }
            None => {
                tracing::debug!(%sse_url, "SSE stream ended");
                return;
            }
        }
    }
}
