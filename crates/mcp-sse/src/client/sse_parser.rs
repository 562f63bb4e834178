//! An incremental parser for `text/event-stream` bodies (the WHATWG "server-sent events"
//! format): CRLF, LF and CR line endings, `:` comment lines, multi-line `data:`, `event:`,
//! `id:` and `retry:`, with a bound on the size of one event.

use std::collections::VecDeque;
use std::time::Duration;

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type; `message` when the server sent no `event:` field.
    pub event: String,
    /// The data lines joined with `\n`.
    pub data: String,
    /// The last event id seen on the stream so far, if any.
    pub id: Option<String>,
    /// The reconnection delay the server asked for, if it sent `retry:` in this event.
    pub retry: Option<Duration>,
}

/// The stream sent an event larger than the parser's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a server-sent event exceeds {limit} bytes")]
pub struct EventTooLarge {
    /// The bound in bytes.
    pub limit: usize,
}

/// Incremental `text/event-stream` parser: feed it chunks as they arrive, take events out.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    event: String,
    last_id: Option<String>,
    retry: Option<Duration>,
    reconnect_delay: Option<Duration>,
    after_cr: bool,
    at_start: bool,
    max_event_bytes: usize,
    ready: VecDeque<SseEvent>,
}

impl SseParser {
    /// A parser that refuses events (and lines) over `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            event: String::new(),
            last_id: None,
            retry: None,
            reconnect_delay: None,
            after_cr: false,
            at_start: true,
            max_event_bytes: max_event_bytes.max(1),
            ready: VecDeque::new(),
        }
    }

    /// Feeds one chunk of the body.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), EventTooLarge> {
        if self.at_start && !chunk.is_empty() {
            // A UTF-8 byte order mark may open the stream (possibly split; rare enough to
            // handle only when whole).
            if let Some(rest) = chunk.strip_prefix(b"\xEF\xBB\xBF") {
                chunk = rest;
            }
            self.at_start = false;
        }
        while !chunk.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if chunk[0] == b'\n' {
                    chunk = &chunk[1..];
                    continue;
                }
            }
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    self.push_line_bytes(&chunk[..pos])?;
                    self.after_cr = chunk[pos] == b'\r';
                    chunk = &chunk[pos + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&String::from_utf8_lossy(&line))?;
                }
                None => {
                    self.push_line_bytes(chunk)?;
                    chunk = &[];
                }
            }
        }
        Ok(())
    }

    /// The next complete event, if one is ready.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    /// The last event id seen (for `Last-Event-ID` on reconnection).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The last `retry:` delay the stream asked for, if any (kept across events).
    pub fn reconnect_delay(&self) -> Option<Duration> {
        self.reconnect_delay
    }

    /// Starts reading a new connection of the same stream: drops any partial line and
    /// event, keeps the last event id and the reconnection delay.
    pub fn reset_connection(&mut self) {
        self.line.clear();
        self.data.clear();
        self.has_data = false;
        self.event.clear();
        self.retry = None;
        self.after_cr = false;
        self.at_start = true;
        self.ready.clear();
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) -> Result<(), EventTooLarge> {
        if self.line.len() + bytes.len() + self.data.len() > self.max_event_bytes {
            return Err(EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: &str) -> Result<(), EventTooLarge> {
        if line.is_empty() {
            self.dispatch();
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_event_bytes {
                    return Err(EventTooLarge {
                        limit: self.max_event_bytes,
                    });
                }
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                    self.reconnect_delay = self.retry;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) {
        let event = std::mem::take(&mut self.event);
        let retry = self.retry.take();
        if !self.has_data {
            self.data.clear();
            return;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        self.ready.push_back(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
            retry,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c).unwrap();
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        out
    }

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.map(str::to_owned),
            retry: None,
        }
    }

    #[test]
    fn crlf_lf_and_cr_endings_give_the_same_events() {
        let lf = b"event: endpoint\ndata: /messages/?session_id=ab\n\ndata: {}\n\n";
        let crlf = b"event: endpoint\r\ndata: /messages/?session_id=ab\r\n\r\ndata: {}\r\n\r\n";
        let cr = b"event: endpoint\rdata: /messages/?session_id=ab\r\rdata: {}\r\r";
        let want = vec![
            ev("endpoint", "/messages/?session_id=ab", None),
            ev("message", "{}", None),
        ];
        assert_eq!(parse_all(&[lf]), want);
        assert_eq!(parse_all(&[crlf]), want);
        assert_eq!(parse_all(&[cr]), want);
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_ending() {
        // "\r" at the end of a chunk and "\n" at the start of the next must not make a
        // blank line (which would dispatch early).
        let got = parse_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(got, vec![ev("message", "a\nb", None)]);
    }

    #[test]
    fn comments_are_ignored_and_multiline_data_joins_with_newline() {
        let got = parse_all(&[
            b": ping - 2026-11-25 17:00:00\r\n\r\n",
            b"event: message\r\ndata: {\"a\":\r\n: interleaved comment\r\ndata: 1}\r\n\r\n",
        ]);
        assert_eq!(got, vec![ev("message", "{\"a\":\n1}", None)]);
    }

    #[test]
    fn id_persists_retry_is_per_event_and_empty_data_is_dispatched() {
        let got = parse_all(&[
            b"id: 7\nretry: 3000\ndata:\n\n",
            b"id: 8\nretry: 1500\ndata: x\n\n",
            b"data:y\n\n",
            b"retry: 1x\ndata: z\n\n",
        ]);
        // "data:" with an empty value still counts as data: the spec dispatches it.
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: "message".into(),
                    data: String::new(),
                    id: Some("7".into()),
                    retry: Some(Duration::from_millis(3000))
                },
                SseEvent {
                    event: "message".into(),
                    data: "x".into(),
                    id: Some("8".into()),
                    retry: Some(Duration::from_millis(1500))
                },
                ev("message", "y", Some("8")),
                ev("message", "z", Some("8")),
            ]
        );
        // An event with only an id (no data line) is not dispatched, but sets the id.
        let mut p = SseParser::new(1024);
        p.feed(b"id: 42\n\n").unwrap();
        assert_eq!(p.next_event(), None);
        assert_eq!(p.last_event_id(), Some("42"));
    }

    #[test]
    fn reset_connection_keeps_last_id_and_delay_and_drops_partial_event() {
        let mut p = SseParser::new(1024);
        p.feed(b"id: 3\nretry: 250\ndata:\n\ndata: partial")
            .unwrap();
        assert!(p.next_event().is_some());
        p.reset_connection();
        p.feed(b"\n\n").unwrap();
        assert_eq!(p.next_event(), None);
        assert_eq!(p.last_event_id(), Some("3"));
        assert_eq!(p.reconnect_delay(), Some(Duration::from_millis(250)));
        p.feed(b"data: next\n\n").unwrap();
        assert_eq!(p.next_event(), Some(ev("message", "next", Some("3"))));
    }

    #[test]
    fn field_without_colon_and_bom() {
        let got = parse_all(&[b"\xEF\xBB\xBFdata\nevent\ndata: q\n\n"]);
        assert_eq!(got, vec![ev("message", "\nq", None)]);
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut p = SseParser::new(16);
        assert_eq!(p.feed(b"data: 0123456789\n"), Ok(()));
        assert_eq!(
            p.feed(b"data: 0123456789\n"),
            Err(EventTooLarge { limit: 16 })
        );
        let mut p = SseParser::new(16);
        assert_eq!(
            p.feed(b"data: 01234567890123456789"),
            Err(EventTooLarge { limit: 16 })
        );
    }
}
