//! Incremental Server-Sent Events parser (WHATWG HTML "event stream interpretation").
//!
//! Bytes arrive in arbitrary pieces: a line ending, a multi-byte character or a `data:` field
//! may be split anywhere, CR LF may straddle two chunks. The parser buffers only the
//! unfinished line and the event being assembled, and bounds both.

use std::fmt;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, or `"message"` when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` seen (sticky across events, as the spec says).
    pub id: Option<String>,
    /// A `retry:` reconnection time in milliseconds, if this event carried one.
    pub retry_ms: Option<u64>,
}

/// The stream broke the framing rules we can tolerate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("SSE line or event exceeds {limit} bytes")]
    TooLarge { limit: usize },
}

/// Incremental parser; feed bytes, collect events.
pub struct SseParser {
    line: Vec<u8>,
    /// A CR ended the previous chunk: a leading LF in the next one belongs to it.
    pending_cr: bool,
    at_stream_start: bool,
    event_type: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
    limit: usize,
}

impl fmt::Debug for SseParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseParser")
            .field("buffered", &(self.line.len() + self.data.len()))
            .finish()
    }
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

/// Default bound on one line or one assembled event (providers send small events; a huge
/// one means a broken or hostile server).
pub const DEFAULT_SSE_LIMIT: usize = 16 * 1024 * 1024;

impl SseParser {
    /// A parser with the default size limit.
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_SSE_LIMIT)
    }

    /// A parser that rejects lines/events longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            pending_cr: false,
            at_stream_start: true,
            event_type: String::new(),
            data: String::new(),
            has_data: false,
            last_id: None,
            retry_ms: None,
            limit,
        }
    }

    /// Feeds a chunk; complete events are appended to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.pending_cr {
            self.pending_cr = false;
            if chunk.first() == Some(&b'\n') {
                chunk = &chunk[1..];
            }
        }
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    if self.line.len() + chunk.len() > self.limit {
                        return Err(SseError::TooLarge { limit: self.limit });
                    }
                    self.line.extend_from_slice(chunk);
                    return Ok(());
                }
                Some(end) => {
                    let terminator = chunk[end];
                    if self.line.is_empty() {
                        self.process_line(&chunk[..end], out)?;
                    } else {
                        if self.line.len() + end > self.limit {
                            return Err(SseError::TooLarge { limit: self.limit });
                        }
                        self.line.extend_from_slice(&chunk[..end]);
                        let line = std::mem::take(&mut self.line);
                        self.process_line(&line, out)?;
                        self.line = line;
                        self.line.clear();
                    }
                    chunk = &chunk[end + 1..];
                    if terminator == b'\r' {
                        match chunk.first() {
                            Some(b'\n') => chunk = &chunk[1..],
                            Some(_) => {}
                            None => self.pending_cr = true,
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// End of stream. Per the spec an event without its terminating blank line is discarded.
    pub fn finish(&mut self) {
        self.line.clear();
        self.data.clear();
        self.has_data = false;
        self.event_type.clear();
    }

    /// Whether nothing is buffered (useful to tell a clean end from a truncated one).
    pub fn is_idle(&self) -> bool {
        self.line.is_empty() && !self.has_data
    }

    fn process_line(&mut self, mut line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.at_stream_start {
            self.at_stream_start = false;
            if let Some(rest) = line.strip_prefix(b"\xEF\xBB\xBF") {
                line = rest;
            }
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(SseError::TooLarge { limit: self.limit });
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
                self.has_data = true;
            }
            b"event" => self.event_type = String::from_utf8_lossy(value).into_owned(),
            b"id" if !value.contains(&0) => {
                self.last_id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry_ms = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let retry_ms = self.retry_ms.take();
        if !self.has_data {
            self.event_type.clear();
            return;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event = if self.event_type.is_empty() {
            "message".to_owned()
        } else {
            std::mem::take(&mut self.event_type)
        };
        self.event_type.clear();
        out.push(SseEvent {
            event,
            data,
            id: self.last_id.clone(),
            retry_ms,
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        p.finish();
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: None,
            retry_ms: None,
        }
    }

    const STREAM: &[u8] = b": keep-alive comment\n\
event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
data: first line\ndata:second line\ndata\n\n\
data: [DONE]\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            ev("message_start", "{\"type\":\"message_start\"}"),
            ev("message", "first line\nsecond line\n"),
            ev("message", "[DONE]"),
        ]
    }

    #[test]
    fn parses_whole_stream() {
        assert_eq!(parse_all(&[STREAM]), expected());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        for split in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(split);
            assert_eq!(parse_all(&[a, b]), expected(), "split at {split}");
        }
        for split_a in (0..STREAM.len()).step_by(3) {
            for split_b in split_a..STREAM.len() {
                let (a, rest) = STREAM.split_at(split_a);
                let (b, c) = rest.split_at(split_b - split_a);
                assert_eq!(
                    parse_all(&[a, b, c]),
                    expected(),
                    "splits {split_a}/{split_b}"
                );
            }
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse_all(&bytes), expected(), "one byte at a time");
    }

    #[test]
    fn crlf_and_cr_line_endings_at_any_split() {
        let crlf: Vec<u8> = String::from_utf8_lossy(STREAM)
            .replace('\n', "\r\n")
            .into_bytes();
        let cr: Vec<u8> = String::from_utf8_lossy(STREAM)
            .replace('\n', "\r")
            .into_bytes();
        for stream in [&crlf, &cr] {
            for split in 0..=stream.len() {
                let (a, b) = stream.split_at(split);
                assert_eq!(parse_all(&[a, b]), expected(), "split at {split}");
            }
        }
    }

    #[test]
    fn multibyte_characters_split_across_chunks() {
        let stream = "data: héllo wörld ✓\n\n".as_bytes();
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(parse_all(&[a, b]), vec![ev("message", "héllo wörld ✓")]);
        }
    }

    #[test]
    fn ids_retry_bom_and_unknown_fields() {
        let out = parse_all(&[
            b"\xEF\xBB\xBFid: 7\nretry: 1500\nfoo: bar\ndata: x\n\nevent: ping\n\ndata: y\n\n",
        ]);
        assert_eq!(out.len(), 2, "an event with no data is not dispatched");
        assert_eq!(out[0].id.as_deref(), Some("7"));
        assert_eq!(out[0].retry_ms, Some(1500));
        assert_eq!(out[1].id.as_deref(), Some("7"), "ids are sticky");
        assert_eq!(
            out[1].event, "message",
            "the ping's type does not leak into the next event"
        );
    }

    #[test]
    fn truncated_final_event_is_discarded() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(b"data: complete\n\ndata: trunc", &mut out).unwrap();
        assert!(!p.is_idle());
        p.finish();
        assert_eq!(out, vec![ev("message", "complete")]);
    }

    #[test]
    fn oversized_lines_are_rejected() {
        let mut p = SseParser::with_limit(16);
        let mut out = Vec::new();
        assert!(p.feed(b"data: 0123456789", &mut out).is_ok());
        assert_eq!(
            p.feed(b"abcdefgh", &mut out),
            Err(SseError::TooLarge { limit: 16 })
        );
        let mut p = SseParser::with_limit(16);
        assert!(p
            .feed(b"data: 0123456789\ndata: 0123456789\n", &mut out)
            .is_err());
    }
}
