//! Newline-delimited framing with a bound on line length.
//!
//! A line longer than the bound is skipped to its newline without being kept in memory, so
//! an oversized message costs one error reply and never stalls the connection.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Default bound on one JSON-RPC message (one line), in bytes.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// What [`LineReader::next_line`] read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// One line, without its `\n` (or `\r\n`).
    Complete(Vec<u8>),
    /// A line over the bound, skipped; `bytes` is its length.
    TooLong {
        /// How long the line was.
        bytes: usize,
    },
    /// The stream ended.
    Eof,
}

/// Reads lines of at most `limit` bytes from a buffered reader.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    reader: R,
    limit: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(crate) fn new(reader: R, limit: usize) -> Self {
        Self { reader, limit }
    }

    /// The next line; a last line without a newline counts as a line.
    pub(crate) async fn next_line(&mut self) -> std::io::Result<Line> {
        let mut line = Vec::new();
        let mut length = 0usize;
        loop {
            let buffer = self.reader.fill_buf().await?;
            if buffer.is_empty() {
                return Ok(match length {
                    0 => Line::Eof,
                    n if n > self.limit => Line::TooLong { bytes: n },
                    _ => Line::Complete(trim_cr(line)),
                });
            }
            let (chunk, used, ended) = match buffer.iter().position(|&b| b == b'\n') {
                Some(at) => (&buffer[..at], at + 1, true),
                None => (buffer, buffer.len(), false),
            };
            length += chunk.len();
            if length <= self.limit {
                line.extend_from_slice(chunk);
            } else if !line.is_empty() {
                line = Vec::new();
            }
            self.reader.consume(used);
            if ended {
                return Ok(if length > self.limit {
                    Line::TooLong { bytes: length }
                } else {
                    Line::Complete(trim_cr(line))
                });
            }
        }
    }
}

fn trim_cr(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// Writes one message as a line and flushes it.
pub(crate) async fn write_line<W: AsyncWrite + Unpin>(
    writer: &mut W,
    json: &str,
) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(json.len() + 1);
    bytes.extend_from_slice(json.as_bytes());
    bytes.push(b'\n');
    writer.write_all(&bytes).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], limit: usize) -> Vec<Line> {
        // A small buffer makes lines span several reads.
        let reader = tokio::io::BufReader::with_capacity(4, input);
        let mut reader = LineReader::new(reader, limit);
        let mut out = Vec::new();
        loop {
            let line = reader.next_line().await.unwrap();
            let eof = line == Line::Eof;
            out.push(line);
            if eof {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_across_reads_and_strips_cr() {
        let out = lines(b"{\"a\":1}\r\n\n{\"b\":22}", 16).await;
        assert_eq!(
            out,
            vec![
                Line::Complete(b"{\"a\":1}".to_vec()),
                Line::Complete(Vec::new()),
                Line::Complete(b"{\"b\":22}".to_vec()),
                Line::Eof
            ]
        );
    }

    #[tokio::test]
    async fn an_oversized_line_is_skipped_and_the_next_one_read() {
        let out = lines(b"0123456789abcdef\nok\n0123456789", 8).await;
        assert_eq!(
            out,
            vec![
                Line::TooLong { bytes: 16 },
                Line::Complete(b"ok".to_vec()),
                Line::TooLong { bytes: 10 },
                Line::Eof
            ]
        );
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_is_kept() {
        let out = lines(b"12345678\n", 8).await;
        assert_eq!(out[0], Line::Complete(b"12345678".to_vec()));
    }
}
