//! A bounded, append-only log of the events of one SSE stream.
//!
//! Every stream the server writes (a legacy SSE session stream, a streamable POST's response
//! stream, a standalone GET stream) is a log: producers append without ever blocking, and
//! readers follow it from a position. The log keeps at most `capacity` events; older ones
//! are dropped. That is the overflow rule for every outbound queue: a reader that falls
//! further behind than the window loses its place, and its stream is closed (the client
//! can resume with `Last-Event-ID` where resumability applies, or reconnect), instead of
//! the server buffering without limit or a handler waiting on a slow client.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// One event: its sequence number and its JSON payload (`None` for a priming event).
#[derive(Debug, Clone)]
pub(crate) struct LoggedEvent {
    pub(crate) seq: u64,
    pub(crate) data: Option<Arc<str>>,
}

#[derive(Debug)]
struct LogInner {
    events: VecDeque<LoggedEvent>,
    /// Payload bytes of `events`.
    bytes: usize,
    next_seq: u64,
    closed: bool,
}

impl LogInner {
    fn push(&mut self, data: Option<Arc<str>>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += data.as_deref().map_or(0, str::len);
        self.events.push_back(LoggedEvent { seq, data });
        seq
    }

    /// Drops the oldest events beyond `capacity` events or `max_bytes` bytes (the newest
    /// event always stays).
    fn trim(&mut self, capacity: usize, max_bytes: usize) {
        while self.events.len() > capacity || (self.bytes > max_bytes && self.events.len() > 1) {
            if let Some(e) = self.events.pop_front() {
                self.bytes -= e.data.as_deref().map_or(0, str::len);
            }
        }
    }
}

/// What a response log holds once its writer is done, or has sent more than priming events:
/// see [`EventLog::settle`].
#[derive(Debug)]
pub(crate) enum Settled {
    /// The log is closed: every event it holds, in order.
    Complete(Vec<LoggedEvent>),
    /// A message came while the log is still open: stream it.
    Streaming,
    /// Closed with nothing to read, or the reader lost its place.
    Empty,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct EventLog {
    inner: Mutex<LogInner>,
    notify: Notify,
    capacity: usize,
    max_bytes: usize,
}

/// What a reader gets when it asks for the events after its position.
#[derive(Debug)]
pub(crate) enum ReadOutcome {
    /// Events at or after the position.
    Events(Vec<LoggedEvent>),
    /// Nothing new yet; wait.
    Pending,
    /// The log is closed and fully read.
    Finished,
    /// Events the reader had not read were dropped.
    Lagged,
}

impl EventLog {
    /// A log keeping at most `capacity` events and `max_bytes` bytes of payload.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(LogInner {
                events: VecDeque::new(),
                bytes: 0,
                next_seq: 0,
                closed: false,
            }),
            notify: Notify::new(),
            capacity: capacity.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event; returns its sequence number, or `None` if the log is closed.
    pub(crate) fn append(&self, data: Option<Arc<str>>) -> Option<u64> {
        let seq = {
            let mut inner = self.lock();
            if inner.closed {
                return None;
            }
            let seq = inner.push(data);
            inner.trim(self.capacity, self.max_bytes);
            seq
        };
        self.notify.notify_waiters();
        Some(seq)
    }

    /// Appends the last events and closes the log in one step, so a reader sees either none
    /// of them or all of them with the log closed.
    pub(crate) fn finish(&self, last: impl IntoIterator<Item = Arc<str>>) {
        {
            let mut inner = self.lock();
            if !inner.closed {
                for data in last {
                    inner.push(Some(data));
                }
                inner.trim(self.capacity, self.max_bytes);
                inner.closed = true;
            }
        }
        self.notify.notify_waiters();
    }

    /// Closes the log: readers finish after the last event.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// Whether the log is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Reads the events with `seq >= from`.
    pub(crate) fn read_from(&self, from: u64) -> ReadOutcome {
        let inner = self.lock();
        if let Some(first) = inner.events.front() {
            if first.seq > from {
                return ReadOutcome::Lagged;
            }
        } else if inner.next_seq > from {
            return ReadOutcome::Lagged;
        }
        let events: Vec<LoggedEvent> = inner
            .events
            .iter()
            .filter(|e| e.seq >= from)
            .cloned()
            .collect();
        if !events.is_empty() {
            ReadOutcome::Events(events)
        } else if inner.closed {
            ReadOutcome::Finished
        } else {
            ReadOutcome::Pending
        }
    }

    /// Waits until the log is closed ([`Settled::Complete`] with all its events, read in the
    /// same step as the close) or holds a message while still open ([`Settled::Streaming`]):
    /// how a POST decides between one whole answer and a stream.
    pub(crate) async fn settle(&self) -> Settled {
        loop {
            let next = {
                let inner = self.lock();
                match inner.events.front() {
                    Some(first) if first.seq > 0 => return Settled::Empty,
                    None if inner.closed => return Settled::Empty,
                    _ => {}
                }
                if inner.closed {
                    return Settled::Complete(inner.events.iter().cloned().collect());
                }
                if inner.events.iter().any(|e| e.data.is_some()) {
                    return Settled::Streaming;
                }
                inner.next_seq
            };
            self.wait_beyond(next).await;
        }
    }

    /// Waits until something changes after `from` (an append or the close).
    pub(crate) async fn wait_beyond(&self, from: u64) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let ReadOutcome::Pending = self.read_from(from) {
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &str) -> Option<Arc<str>> {
        Some(Arc::from(s))
    }

    #[test]
    fn readers_follow_and_finish() {
        let log = EventLog::new(4, usize::MAX);
        assert!(matches!(log.read_from(0), ReadOutcome::Pending));
        log.append(data("a"));
        log.append(data("b"));
        let ReadOutcome::Events(ev) = log.read_from(0) else {
            panic!()
        };
        assert_eq!(ev.len(), 2);
        assert!(matches!(log.read_from(2), ReadOutcome::Pending));
        log.close();
        assert!(matches!(log.read_from(2), ReadOutcome::Finished));
        assert_eq!(log.append(data("c")), None);
    }

    #[test]
    fn overflow_drops_oldest_and_lagging_readers_know() {
        let log = EventLog::new(2, usize::MAX);
        for s in ["a", "b", "c"] {
            log.append(data(s));
        }
        assert!(matches!(log.read_from(0), ReadOutcome::Lagged));
        let ReadOutcome::Events(ev) = log.read_from(1) else {
            panic!()
        };
        assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_but_never_the_newest() {
        let log = EventLog::new(100, 10);
        log.append(data("aaaa"));
        log.append(data("bbbb"));
        log.append(data("cccc"));
        // 12 bytes > 10: the oldest went.
        assert!(matches!(log.read_from(0), ReadOutcome::Lagged));
        let ReadOutcome::Events(ev) = log.read_from(1) else {
            panic!()
        };
        assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        let big = "x".repeat(50);
        log.append(data(&big));
        let ReadOutcome::Events(ev) = log.read_from(3) else {
            panic!()
        };
        assert_eq!(ev[0].data.as_deref(), Some(big.as_str()));
        assert!(matches!(log.read_from(2), ReadOutcome::Lagged));
    }

    #[tokio::test]
    async fn settle_tells_a_whole_answer_from_a_stream() {
        let log = EventLog::new(8, usize::MAX);
        log.append(None); // priming: not a message
        log.finish([Arc::from("r")]);
        let Settled::Complete(events) = log.settle().await else {
            panic!()
        };
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1]);

        let open = EventLog::new(8, usize::MAX);
        open.append(data("progress"));
        assert!(matches!(open.settle().await, Settled::Streaming));

        let cancelled = EventLog::new(8, usize::MAX);
        cancelled.close();
        assert!(matches!(cancelled.settle().await, Settled::Empty));
    }

    #[tokio::test]
    async fn wait_wakes_on_append() {
        let log = Arc::new(EventLog::new(8, usize::MAX));
        let l2 = Arc::clone(&log);
        let waiter = tokio::spawn(async move { l2.wait_beyond(0).await });
        tokio::task::yield_now().await;
        log.append(data("x"));
        tokio::time::timeout(std::time::Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
