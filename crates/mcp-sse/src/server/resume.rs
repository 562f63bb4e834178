//! Resumable streams: every event a session's stream sends is copied to the session
//! store's event store first, so `Last-Event-ID` resumes it on any replica.

use std::sync::Arc;

use super::event_log::{EventLog, ReadOutcome};
use super::http_util::{EventFraming, frame_event};
use super::state::{ServerState, SessionTag};
use crate::store::{Replay, SharedStore};

/// The key of a stream's events in the shared store.
pub(crate) fn event_stream_key(session_id: &str, stream_id: u64) -> String {
    format!("{session_id}/{stream_id}")
}

/// Copies a stream's events to the shared store as they are written, so that a client can
/// resume it on any replica, until the stream ends. Returns the log to send the client: the
/// same events, each appended once it is stored (or once storing it failed), so a client never
/// holds an event id that another replica cannot resume from.
pub(crate) fn mirror_to_store(
    state: &ServerState,
    key: String,
    log: Arc<EventLog>,
    stop: tokio_util::sync::CancellationToken,
) -> Arc<EventLog> {
    let store = Arc::clone(&state.store);
    let stored = Arc::new(state.new_log());
    let sent = Arc::clone(&stored);
    tokio::spawn(async move {
        let mut next = 0;
        loop {
            match log.read_from(next) {
                ReadOutcome::Events(events) => {
                    for e in events {
                        let payload = e.data.as_deref().unwrap_or("");
                        if let Err(err) = store.append_event(&key, e.seq, payload).await {
                            tracing::warn!(stream = %SessionTag(&key), error = %err, "cannot store a stream event for resumption");
                        }
                        // Same order from 0, so the same sequence numbers.
                        stored.append(e.data);
                        next = e.seq + 1;
                    }
                }
                ReadOutcome::Pending => {
                    tokio::select! {
                        () = log.wait_beyond(next) => {}
                        () = stop.cancelled() => break,
                    }
                }
                ReadOutcome::Finished => break,
                ReadOutcome::Lagged => {
                    tracing::warn!(stream = %SessionTag(&key), "the store fell behind a stream; it cannot be resumed past this point");
                    break;
                }
            }
        }
        stored.close();
    });
    sent
}

/// Frames stored events of stream `stream_id` (an empty payload is a priming event).
pub(crate) fn frame_stored(
    stream_id: u64,
    events: &[crate::store::StoredEvent],
    out: &mut Vec<u8>,
) {
    for e in events {
        let data = (!e.payload.is_empty()).then_some(e.payload.as_str());
        frame_event(EventFraming::Resumable { stream_id }, e.seq, data, out);
    }
}

/// Whether a stored event is the response that ends a response stream.
fn is_final_response(payload: &str) -> bool {
    fn is_response(v: &serde_json::Value) -> bool {
        v.get("id").is_some() && (v.get("result").is_some() || v.get("error").is_some())
    }
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Array(items)) => !items.is_empty() && items.iter().all(is_response),
        Ok(v) => is_response(&v),
        Err(_) => false,
    }
}

/// How often a response stream resumed from the store looks for new events.
const REPLAY_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A response stream resumed from the store: the stored events after `seq`, then new ones
/// as the replica running the call stores them, until its response (or the call timeout).
pub(crate) fn replay_response_stream(
    state: &Arc<ServerState>,
    store: Arc<dyn SharedStore>,
    key: String,
    stream_id: u64,
    seq: u64,
    first: Vec<crate::store::StoredEvent>,
    stop: tokio_util::sync::CancellationToken,
) -> axum::body::Body {
    struct Cursor {
        store: Arc<dyn SharedStore>,
        key: String,
        last: u64,
        batch: Vec<crate::store::StoredEvent>,
        done: bool,
        deadline: tokio::time::Instant,
        keep_alive: std::time::Duration,
        idle_since: tokio::time::Instant,
    }
    let now = tokio::time::Instant::now();
    let cursor = Cursor {
        store,
        key,
        last: seq,
        batch: first,
        done: false,
        deadline: now + state.config.call_timeout,
        keep_alive: state.config.keep_alive,
        idle_since: now,
    };
    let stream = futures::stream::unfold(cursor, move |mut c| {
        let stop = stop.clone();
        async move {
            loop {
                if c.done {
                    return None;
                }
                let batch = std::mem::take(&mut c.batch);
                if !batch.is_empty() {
                    let mut out = Vec::new();
                    let fresh: Vec<_> = batch.into_iter().filter(|e| e.seq > c.last).collect();
                    frame_stored(stream_id, &fresh, &mut out);
                    if let Some(last) = fresh.last() {
                        c.last = last.seq;
                    }
                    c.done |= fresh.iter().any(|e| is_final_response(&e.payload));
                    c.idle_since = tokio::time::Instant::now();
                    if !out.is_empty() {
                        return Some((
                            Ok::<_, std::convert::Infallible>(bytes::Bytes::from(out)),
                            c,
                        ));
                    }
                    continue;
                }
                if tokio::time::Instant::now() >= c.deadline {
                    return None;
                }
                tokio::select! {
                    () = tokio::time::sleep(REPLAY_POLL) => {}
                    () = stop.cancelled() => return None,
                }
                match c.store.read_events_after(&c.key, c.last).await {
                    Ok(Replay::Events(events)) if !events.is_empty() => c.batch = events,
                    Ok(Replay::Events(_)) => {
                        if c.idle_since.elapsed() >= c.keep_alive {
                            c.idle_since = tokio::time::Instant::now();
                            return Some((Ok(bytes::Bytes::from_static(b": ping\n\n")), c));
                        }
                    }
                    Ok(_) => return None,
                    Err(e) => {
                        tracing::debug!(stream = %SessionTag(&c.key), error = %e, "resumed stream: store unavailable; polling again");
                    }
                }
            }
        }
    });
    axum::body::Body::from_stream(stream)
}
