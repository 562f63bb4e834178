//! A small incremental parser of `text/event-stream` bodies, enough for the load generator.

/// One event with data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Feed chunks with [`SseParser::push`], take complete events with [`SseParser::next_event`].
/// Comments, `retry:`/`id:`-only blocks and events with empty data (priming events) are skipped.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// Where the next unparsed line starts.
    start: usize,
    event: Option<String>,
    data: Option<String>,
}

/// Most bytes buffered without a complete event; more means the stream is not SSE.
const MAX_PENDING: usize = 16 * 1024 * 1024;

impl SseParser {
    /// Appends received bytes. Fails when an incomplete event grows beyond 16 MiB.
    pub fn push(&mut self, chunk: &[u8]) -> anyhow::Result<()> {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(chunk);
        if self.buffer.len() - self.start > MAX_PENDING {
            anyhow::bail!("an SSE event is larger than {MAX_PENDING} bytes");
        }
        Ok(())
    }

    /// The next complete event with data, if one has arrived.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        while let Some(offset) = self.buffer[self.start..].iter().position(|&b| b == b'\n') {
            let end = self.start + offset;
            let mut line = &self.buffer[self.start..end];
            self.start = end + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                let event = self.event.take();
                if let Some(data) = self.data.take().filter(|d| !d.is_empty()) {
                    self.compact();
                    return Some(SseEvent {
                        event: event.unwrap_or_else(|| "message".to_owned()),
                        data,
                    });
                }
                continue;
            }
            if line[0] == b':' {
                continue;
            }
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &line[line.len()..]),
            };
            let value = String::from_utf8_lossy(value);
            match name {
                b"event" => self.event = Some(value.into_owned()),
                b"data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(&value);
                    }
                    None => self.data = Some(value.into_owned()),
                },
                _ => {}
            }
        }
        self.compact();
        None
    }

    /// Drops the parsed prefix of the buffer once it is large.
    fn compact(&mut self) {
        if self.start >= 64 * 1024 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_anywhere_and_skips_what_has_no_data() {
        let stream = b"retry: 1000\n\nid: 1-0\ndata: \n\n: ping\n\nevent: endpoint\ndata: /messages/?session_id=ab\n\nid: 1-1\r\nevent: message\r\ndata: {\"id\":1}\r\n\r\ndata: a\ndata:b\n\n";
        for split in 0..stream.len() {
            let mut parser = SseParser::default();
            let mut events = Vec::new();
            for chunk in [&stream[..split], &stream[split..]] {
                parser.push(chunk).unwrap();
                while let Some(event) = parser.next_event() {
                    events.push(event);
                }
            }
            assert_eq!(
                events,
                vec![
                    SseEvent {
                        event: "endpoint".into(),
                        data: "/messages/?session_id=ab".into()
                    },
                    SseEvent {
                        event: "message".into(),
                        data: "{\"id\":1}".into()
                    },
                    SseEvent {
                        event: "message".into(),
                        data: "a\nb".into()
                    },
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_incomplete_event_waits_for_its_blank_line() {
        let mut parser = SseParser::default();
        parser.push(b"event: message\ndata: {}\n").unwrap();
        assert_eq!(parser.next_event(), None);
        parser.push(b"\n").unwrap();
        assert_eq!(
            parser.next_event(),
            Some(SseEvent {
                event: "message".into(),
                data: "{}".into()
            })
        );
        assert_eq!(parser.next_event(), None);
    }
}
