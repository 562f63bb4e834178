//! The streamable HTTP client transport (protocol 2025-03-26 and later).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use mcp_proto::{Message, ProtocolVersion, RequestId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::sse_parser::SseParser;
use super::{
    HttpClient, Incoming, TransportOptions, connect_error, decode_incoming, http_error,
    is_media_type, parse_url, read_body,
};
use crate::Error;

/// The session header (`Mcp-Session-Id`; header names are case-insensitive).
pub const SESSION_ID_HEADER: &str = crate::headers::SESSION_ID;
/// The negotiated-version header (`MCP-Protocol-Version`).
pub const PROTOCOL_VERSION_HEADER: &str = crate::headers::PROTOCOL_VERSION;
/// How many times one response stream is resumed before its request is reported lost.
pub const MAX_RESUME_ATTEMPTS: u32 = 3;
/// Delay before resuming when the server sent no `retry:`.
const DEFAULT_RESUME_DELAY: Duration = Duration::from_secs(1);
/// Upper bound on the server's `retry:` delay.
const MAX_RESUME_DELAY: Duration = Duration::from_secs(10);

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// A client of streamable HTTP: every client message is a `POST` to one MCP URL; the answer
/// to a request is one `application/json` body or a `text/event-stream` carrying the
/// server's notifications and requests, then the response.
///
/// The transport remembers the `Mcp-Session-Id` the server issues (on the `initialize`
/// answer) and sends it, with `MCP-Protocol-Version` once set, on every later request.
/// Clones share the session.
#[derive(Debug, Clone)]
pub struct StreamableHttpClientTransport {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    http: HttpClient,
    url: reqwest::Url,
    request_timeout: Duration,
    max_message_bytes: usize,
    state: Mutex<State>,
    closed: CancellationToken,
}

#[derive(Debug)]
struct State {
    session_id: Option<HeaderValue>,
    protocol_version: Option<ProtocolVersion>,
    /// Taken on close, so the incoming channel ends once the running streams stop.
    tx: Option<mpsc::Sender<Incoming>>,
}

impl StreamableHttpClientTransport {
    /// A transport for the MCP endpoint at `url`. Nothing is sent until the first message.
    /// Returns the transport and the bounded channel of server messages; the channel ends
    /// after [`StreamableHttpClientTransport::close`] or when the server ends the session.
    pub fn new(
        url: &str,
        options: TransportOptions,
    ) -> Result<(Self, mpsc::Receiver<Incoming>), Error> {
        let url = parse_url(url)?;
        let http = options.http_client()?;
        let (tx, rx) = mpsc::channel(options.incoming_capacity.max(1));
        Ok((
            Self {
                shared: Arc::new(Shared {
                    http,
                    url,
                    request_timeout: options.request_timeout,
                    max_message_bytes: options.max_message_bytes,
                    state: Mutex::new(State {
                        session_id: None,
                        protocol_version: None,
                        tx: Some(tx),
                    }),
                    closed: CancellationToken::new(),
                }),
            },
            rx,
        ))
    }

    /// The MCP URL.
    pub fn url(&self) -> &reqwest::Url {
        &self.shared.url
    }

    /// The session id the server issued, if any.
    pub fn session_id(&self) -> Option<String> {
        self.state()
            .session_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The version sent in `MCP-Protocol-Version` from now on (set after `initialize`).
    pub fn set_protocol_version(&self, version: ProtocolVersion) {
        self.state().protocol_version = Some(version);
    }

    /// Whether the transport was closed (locally, or by the server ending the session).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// POSTs one message.
    ///
    /// For a request, the answer is read: a JSON body is decoded onto the incoming channel
    /// before this returns; an event stream is read by a background task that forwards each
    /// message (and reports [`Incoming::Lost`] if the stream ends before the response).
    /// Notifications and responses expect `202 Accepted` (any 2xx).
    ///
    /// Errors: [`Error::SessionClosed`] when the transport is closed or the server answers
    /// 404 to a request carrying a session id; [`Error::Http`] for any other non-2xx;
    /// [`Error::Timeout`], [`Error::Connect`], [`Error::Transport`] for an answer that is
    /// neither JSON nor an event stream.
    pub async fn send(&self, message: &Message) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::SessionClosed);
        }
        let shared = &self.shared;
        let (session_id, version) = {
            let state = self.state();
            (state.session_id.clone(), state.protocol_version)
        };
        let mut post = shared
            .http
            .post(shared.url.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(message.to_vec());
        if let Some(id) = &session_id {
            post = post.header(SESSION_ID_HEADER, id.clone());
        }
        if let Some(v) = version {
            post = post.header(PROTOCOL_VERSION_HEADER, v.as_str());
        }
        let wait = shared.request_timeout;
        let mut response = shared
            .http
            .send(post, &shared.url, wait, "the answer to a POST")
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND && session_id.is_some() {
            tracing::debug!(url = %shared.url, "the server ended the session (404)");
            self.mark_closed();
            return Err(Error::SessionClosed);
        }
        if !status.is_success() {
            return Err(http_error(response, wait).await);
        }
        if session_id.is_none()
            && let Some(id) = response.headers().get(SESSION_ID_HEADER)
        {
            self.state().session_id = Some(id.clone());
        }
        let Message::Request(request) = message else {
            return Ok(());
        };
        let content_type = response.headers().get(CONTENT_TYPE);
        if is_media_type(content_type, "text/event-stream") {
            return self.follow_answer_stream(response, request.id.clone());
        }
        if is_media_type(content_type, "application/json") {
            return self.deliver_json_answer(&mut response).await;
        }
        Err(Error::Transport(format!(
            "POST {} answered a request with {status} and content type {:?}",
            shared.url, content_type
        )))
    }

    /// Reads the event stream answering request `id` in a background task that forwards each
    /// message, and reports [`Incoming::Lost`] when the stream ends (or the request timeout
    /// passes) before the answer.
    fn follow_answer_stream(
        &self,
        response: reqwest::Response,
        id: RequestId,
    ) -> Result<(), Error> {
        let Some(tx) = self.state().tx.clone() else {
            return Err(Error::SessionClosed);
        };
        let wait = self.shared.request_timeout;
        let pump = self
            .clone()
            .read_event_stream(response, Some(id.clone()), tx.clone());
        let closed = self.shared.closed.clone();
        tokio::spawn(async move {
            tokio::select! {
                lost = tokio::time::timeout(wait, pump) => {
                    let error = match lost {
                        Ok(Some(error)) => error,
                        Ok(None) => return,
                        Err(_) => Error::Timeout(wait, "the end of a response stream"),
                    };
                    let _ = tx.send(Incoming::Lost { id, error }).await;
                }
                () = closed.cancelled() => {}
            }
        });
        Ok(())
    }

    /// Reads a JSON answer body (within the request timeout) onto the incoming channel.
    async fn deliver_json_answer(&self, response: &mut reqwest::Response) -> Result<(), Error> {
        let shared = &self.shared;
        let wait = shared.request_timeout;
        let body = tokio::time::timeout(
            wait,
            read_body(response, &shared.url, shared.max_message_bytes),
        )
        .await
        .map_err(|_| Error::Timeout(wait, "a JSON response body"))??;
        let Some(tx) = self.state().tx.clone() else {
            return Err(Error::SessionClosed);
        };
        for item in decode_incoming(&body) {
            tx.send(item).await.map_err(|_| Error::SessionClosed)?;
        }
        Ok(())
    }

    /// Ends the session: sends `DELETE` with the session id (a 405 answer, meaning the
    /// server does not allow it, and a 404, meaning it is already gone, are fine), then
    /// stops the running streams and ends the incoming channel. Other non-2xx answers are
    /// [`Error::Http`] (the transport is closed all the same).
    pub async fn close(&self) -> Result<(), Error> {
        if self.is_closed() {
            return Ok(());
        }
        let (session_id, version) = {
            let state = self.state();
            (state.session_id.clone(), state.protocol_version)
        };
        let result = match session_id {
            Some(id) => self.delete_session(id, version).await,
            None => Ok(()),
        };
        self.mark_closed();
        result
    }

    async fn delete_session(
        &self,
        id: HeaderValue,
        version: Option<ProtocolVersion>,
    ) -> Result<(), Error> {
        let shared = &self.shared;
        let mut delete = shared
            .http
            .delete(shared.url.clone())
            .header(SESSION_ID_HEADER, id);
        if let Some(v) = version {
            delete = delete.header(PROTOCOL_VERSION_HEADER, v.as_str());
        }
        let wait = shared.request_timeout;
        let response = shared
            .http
            .send(delete, &shared.url, wait, "the answer to DELETE")
            .await?;
        let status = response.status();
        if status.is_success()
            || status == StatusCode::METHOD_NOT_ALLOWED
            || status == StatusCode::NOT_FOUND
        {
            Ok(())
        } else {
            Err(http_error(response, wait).await)
        }
    }

    fn mark_closed(&self) {
        self.state().tx = None;
        self.shared.closed.cancel();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Forwards the messages of an event stream: a POST's (`id` is the request it answers)
    /// or the standalone GET stream (`id` is `None`). When the stream ends or breaks before
    /// the response to `id` and the server gave event ids, it resumes with `GET` and
    /// `Last-Event-ID` after the server's `retry:` delay (at most [`MAX_RESUME_ATTEMPTS`]
    /// times in a row). Returns `None` once the response went through, or the error to report.
    async fn read_event_stream(
        self,
        response: reqwest::Response,
        id: Option<RequestId>,
        tx: mpsc::Sender<Incoming>,
    ) -> Option<Error> {
        let url = self.shared.url.clone();
        let mut body: ByteStream = Box::pin(response.bytes_stream());
        let mut parser = SseParser::new(self.shared.max_message_bytes);
        let mut answered = false;
        let mut attempts = 0;
        loop {
            while let Some(event) = parser.next_event() {
                if event.event != "message" || event.data.trim().is_empty() {
                    continue;
                }
                attempts = 0;
                for item in decode_incoming(event.data.as_bytes()) {
                    if let Incoming::Message(Message::Response(r)) = &item {
                        answered |= id.is_some() && r.id == id;
                    }
                    if tx.send(item).await.is_err() {
                        return None;
                    }
                }
            }
            let ended = match body.next().await {
                Some(Ok(chunk)) => match parser.feed(&chunk) {
                    Ok(()) => continue,
                    Err(e) => {
                        return (!answered).then_some(Error::MessageTooLarge { limit: e.limit });
                    }
                },
                Some(Err(e)) => connect_error(&url, e),
                None => Error::Transport(match &id {
                    Some(id) => format!(
                        "the event stream from {url} ended before the response to request {id}"
                    ),
                    None => format!("the server's event stream from {url} ended"),
                }),
            };
            if answered {
                return None;
            }
            let Some(last_id) = parser.last_event_id().map(str::to_owned) else {
                return Some(ended);
            };
            if attempts == MAX_RESUME_ATTEMPTS {
                return Some(ended);
            }
            attempts += 1;
            let delay = parser
                .reconnect_delay()
                .unwrap_or(DEFAULT_RESUME_DELAY)
                .min(MAX_RESUME_DELAY);
            tokio::time::sleep(delay).await;
            tracing::debug!(%url, ?id, last_event_id = %last_id, attempt = attempts, "resuming an event stream");
            match self.get_stream(Some(&last_id)).await {
                Ok(response) => {
                    body = Box::pin(response.bytes_stream());
                    parser.reset_connection();
                }
                Err(e) => {
                    tracing::debug!(%url, error = %e, "cannot resume the event stream");
                    return Some(ended);
                }
            }
        }
    }

    /// Opens the standalone server-to-client stream (`GET` on the MCP URL), which carries
    /// server notifications and requests unrelated to any call, onto the incoming channel.
    /// Returns `false` when the server offers none (405). The stream is resumed like a
    /// response stream, and stops on [`StreamableHttpClientTransport::close`].
    pub async fn open_server_stream(&self) -> Result<bool, Error> {
        if self.is_closed() {
            return Err(Error::SessionClosed);
        }
        let had_session = self.state().session_id.is_some();
        let response = match self.get_stream(None).await {
            Ok(response) => response,
            Err(Error::Http { status, .. }) if status == StatusCode::METHOD_NOT_ALLOWED => {
                return Ok(false);
            }
            Err(Error::Http { status, .. }) if status == StatusCode::NOT_FOUND && had_session => {
                self.mark_closed();
                return Err(Error::SessionClosed);
            }
            Err(e) => return Err(e),
        };
        let Some(tx) = self.state().tx.clone() else {
            return Err(Error::SessionClosed);
        };
        let closed = self.shared.closed.clone();
        let pump = self.clone().read_event_stream(response, None, tx);
        tokio::spawn(async move {
            tokio::select! {
                ended = pump => {
                    if let Some(error) = ended {
                        tracing::debug!(%error, "the server's event stream is over");
                    }
                }
                () = closed.cancelled() => {}
            }
        });
        Ok(true)
    }

    /// `GET` on the MCP URL for an event stream; with `Last-Event-ID` the server replays what
    /// followed that event.
    async fn get_stream(&self, last_event_id: Option<&str>) -> Result<reqwest::Response, Error> {
        let shared = &self.shared;
        let (session_id, version) = {
            let state = self.state();
            (state.session_id.clone(), state.protocol_version)
        };
        let mut get = shared
            .http
            .get(shared.url.clone())
            .header(ACCEPT, "text/event-stream");
        if let Some(last) = last_event_id {
            get = get.header(crate::headers::LAST_EVENT_ID, last);
        }
        if let Some(id) = session_id {
            get = get.header(SESSION_ID_HEADER, id);
        }
        if let Some(v) = version {
            get = get.header(PROTOCOL_VERSION_HEADER, v.as_str());
        }
        let wait = shared.request_timeout;
        let response = shared
            .http
            .send(get, &shared.url, wait, "the answer to a GET")
            .await?;
        if !response.status().is_success() {
            return Err(http_error(response, wait).await);
        }
        if !is_media_type(response.headers().get(CONTENT_TYPE), "text/event-stream") {
            return Err(Error::Transport(format!(
                "GET {} answered {:?}, not text/event-stream",
                shared.url,
                response.headers().get(CONTENT_TYPE)
            )));
        }
        Ok(response)
    }
}
