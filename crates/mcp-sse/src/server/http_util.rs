//! Request checks and SSE response bodies shared by both transports.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio_util::sync::CancellationToken;

use super::config::ServerConfig;
use super::event_log::{EventLog, ReadOutcome};
use super::transport_error::TransportError;

/// Rejects a request whose `Origin` is present and not allowed (DNS rebinding protection).
pub(crate) fn check_origin(
    headers: &HeaderMap,
    config: &ServerConfig,
) -> Result<(), TransportError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    if config.allow_any_origin {
        return Ok(());
    }
    let origin = origin.to_str().unwrap_or("");
    if is_loopback_origin(origin) || config.allowed_origins.iter().any(|o| o == origin) {
        Ok(())
    } else {
        Err(TransportError::ForbiddenOrigin(
            origin.chars().take(200).collect(),
        ))
    }
}

fn is_loopback_origin(origin: &str) -> bool {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let Some(authority) = rest else {
        return false;
    };
    let host = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, port)) if port.is_empty() || is_port(port) => return h == "::1",
            _ => return false,
        }
    } else {
        match authority.split_once(':') {
            Some((h, port)) if is_port(&format!(":{port}")) => h,
            Some(_) => return false,
            None => authority,
        }
    };
    host == "localhost" || host == "127.0.0.1"
}

fn is_port(s: &str) -> bool {
    s.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `Accept` allows `mime` (`*/*` and `type/*` count).
pub(crate) fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    let family = mime.split('/').next().unwrap_or("");
    // `family/*` without building the string for every item.
    let is_family_wildcard =
        |m: &str| m.strip_suffix("/*").is_some_and(|f| f == family) && !family.is_empty();
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| item.split(';').next().unwrap_or("").trim())
        .any(|m| m == mime || m == "*/*" || is_family_wildcard(m))
}

/// Whether `Content-Type` is JSON.
pub(crate) fn is_json_content(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

/// Reads the whole body within `deadline`, refusing more than `limit` bytes with 413 and a
/// body that is not all there in time with 408.
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, TransportError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(TransportError::PayloadTooLarge(limit));
    }
    let read = tokio::time::timeout(deadline, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| TransportError::BodyTimeout(deadline))?;
    read.map_err(|e| {
        let inner = e.into_inner();
        if inner.is::<http_body_util::LengthLimitError>()
            || inner
                .source()
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            TransportError::PayloadTooLarge(limit)
        } else {
            TransportError::BodyRead(inner.to_string())
        }
    })
}

/// Decodes a POST body into its messages, refusing a batch longer than the config allows.
/// Returns the messages (each decoded, or the error reply for it) and whether it was a batch.
pub(crate) fn decode_messages(
    bytes: &[u8],
    config: &ServerConfig,
) -> Result<(Vec<Result<mcp_proto::Message, mcp_proto::Response>>, bool), TransportError> {
    match mcp_proto::decode(bytes).map_err(TransportError::Malformed)? {
        mcp_proto::Decoded::Single(m) => Ok((vec![Ok(m)], false)),
        mcp_proto::Decoded::Batch(items) if items.len() > config.max_batch_len => {
            Err(TransportError::BatchRejected(format!(
                "Invalid request: a batch may hold at most {} messages",
                config.max_batch_len
            )))
        }
        mcp_proto::Decoded::Batch(items) => Ok((items, true)),
    }
}

/// Whether the messages hold an `initialize`; refuses one inside a batch, and one whose body
/// is over [`ServerConfig::max_initialize_bytes`] (what a session keeps of its client) with
/// JSON-RPC `-32602`.
pub(crate) fn check_initialize(
    messages: &[Result<mcp_proto::Message, mcp_proto::Response>],
    is_batch: bool,
    body_len: usize,
    config: &ServerConfig,
) -> Result<bool, TransportError> {
    let initialize = messages.iter().find_map(|m| match m {
        Ok(mcp_proto::Message::Request(r)) if r.method == mcp_proto::types::method::INITIALIZE => {
            Some(r)
        }
        _ => None,
    });
    let Some(request) = initialize else {
        return Ok(false);
    };
    if is_batch {
        return Err(TransportError::BatchRejected(
            "Invalid request: initialize must not be part of a batch".into(),
        ));
    }
    if body_len > config.max_initialize_bytes {
        return Err(TransportError::Malformed(mcp_proto::Response::error(
            Some(request.id.clone()),
            mcp_proto::ErrorObject::new(
                mcp_proto::jsonrpc::code::INVALID_PARAMS,
                format!(
                    "Invalid params: initialize may be at most {} bytes",
                    config.max_initialize_bytes
                ),
            ),
        )));
    }
    Ok(true)
}

/// How one logged event is written on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EventFraming {
    /// `event: message` with no id (legacy SSE).
    LegacySse,
    /// `id: <stream>-<seq>` + `event: message` (streamable HTTP), priming events as `id` + empty data.
    Resumable {
        /// The stream id.
        stream_id: u64,
    },
}

pub(crate) fn frame_event(framing: EventFraming, seq: u64, data: Option<&str>, out: &mut Vec<u8>) {
    match framing {
        EventFraming::LegacySse => {}
        EventFraming::Resumable { stream_id } => {
            out.extend_from_slice(format!("id: {stream_id}-{seq}\n").as_bytes());
        }
    }
    match data {
        Some(json) => {
            out.extend_from_slice(b"event: message\ndata: ");
            // JSON text from serde_json has no raw newlines.
            out.extend_from_slice(json.as_bytes());
            out.extend_from_slice(b"\n\n");
        }
        None => out.extend_from_slice(b"data: \n\n"),
    }
}

/// Headers of every SSE response.
pub(crate) fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The events logged from `*next` on, framed, with `*next` moved past them; the log's answer
/// when it has no events to give.
fn frame_logged(
    log: &EventLog,
    next: &mut u64,
    framing: EventFraming,
) -> Result<Vec<u8>, ReadOutcome> {
    match log.read_from(*next) {
        ReadOutcome::Events(events) => {
            let mut out = Vec::new();
            for e in &events {
                frame_event(framing, e.seq, e.data.as_deref(), &mut out);
            }
            *next = events.last().map_or(*next, |e| e.seq + 1);
            Ok(out)
        }
        other => Err(other),
    }
}

/// Follows a log from `from`, framing each event, with keep-alive comments when idle.
/// Ends when the log is finished, when the reader lags behind the log's window, or when
/// `stop` fires. `prefix` is written first (e.g. the legacy SSE `endpoint` event). `guard` is
/// dropped when the body ends or the client goes away.
pub(crate) fn follow_log<G: Send + 'static>(
    log: Arc<EventLog>,
    from: u64,
    framing: EventFraming,
    prefix: Option<Bytes>,
    keep_alive: Duration,
    stop: CancellationToken,
    guard: G,
) -> Body {
    struct Reader<G> {
        log: Arc<EventLog>,
        next: u64,
        prefix: Option<Bytes>,
        done: bool,
        _guard: G,
    }
    let reader = Reader {
        log,
        next: from,
        prefix,
        done: false,
        _guard: guard,
    };
    let stream = futures::stream::unfold(reader, move |mut r| {
        let stop = stop.clone();
        async move {
            if let Some(p) = r.prefix.take() {
                // Send the prefix together with whatever is already logged: one write.
                let mut out = p.to_vec();
                if let Ok(logged) = frame_logged(&r.log, &mut r.next, framing) {
                    out.extend_from_slice(&logged);
                }
                return Some((Ok::<Bytes, std::convert::Infallible>(Bytes::from(out)), r));
            }
            if r.done {
                return None;
            }
            loop {
                match frame_logged(&r.log, &mut r.next, framing) {
                    Ok(out) => return Some((Ok(Bytes::from(out)), r)),
                    Err(ReadOutcome::Finished) => return None,
                    Err(ReadOutcome::Lagged) => {
                        tracing::warn!(
                            "SSE reader fell behind the stream buffer; closing the stream"
                        );
                        return None;
                    }
                    Err(_) => {}
                }
                tokio::select! {
                    _ = r.log.wait_beyond(r.next) => {}
                    _ = stop.cancelled() => {
                        // Deliver what is already logged, then end.
                        r.done = true;
                        let logged = frame_logged(&r.log, &mut r.next, framing);
                        return logged.ok().map(|out| (Ok(Bytes::from(out)), r));
                    }
                    _ = tokio::time::sleep(keep_alive) => {
                        return Some((Ok(Bytes::from_static(b": ping\n\n")), r));
                    }
                }
            }
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_pass_others_do_not() {
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "https://127.0.0.1:8000",
            "http://[::1]:9",
            "http://[::1]",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "http://evil.example.com",
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io",
            "null",
            "http://localhost:80:80",
            "ftp://localhost",
            "http://[::2]",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }

    #[test]
    fn accept_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream;q=0.9"),
        );
        assert!(accepts(&h, "application/json"));
        assert!(accepts(&h, "text/event-stream"));
        h.insert(header::ACCEPT, HeaderValue::from_static("text/plain"));
        assert!(!accepts(&h, "application/json"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(accepts(&h, "text/event-stream"));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/*, application/x"),
        );
        assert!(accepts(&h, "text/event-stream"));
        assert!(!accepts(&h, "application/json"));
        h.insert(header::ACCEPT, HeaderValue::from_static("/*, text/plain/*"));
        assert!(!accepts(&h, "text/event-stream"));
    }
}
