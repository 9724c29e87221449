//! Incremental newline-delimited JSON framing (Ollama's native streaming format): one JSON
//! value per line, lines split across chunks anywhere, CR LF tolerated, blank lines skipped.

/// A line exceeded the size bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NDJSON line exceeds {limit} bytes")]
pub struct NdjsonTooLarge {
    pub limit: usize,
}

/// Incremental line splitter.
#[derive(Debug)]
pub struct NdjsonParser {
    line: Vec<u8>,
    limit: usize,
}

impl Default for NdjsonParser {
    fn default() -> Self {
        Self::new()
    }
}

impl NdjsonParser {
    /// A parser with the default 16 MiB line bound.
    pub fn new() -> Self {
        Self::with_limit(crate::sse::DEFAULT_SSE_LIMIT)
    }

    /// A parser rejecting lines longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            limit,
        }
    }

    /// Feeds a chunk; complete non-blank lines (without their terminator) go to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<String>) -> Result<(), NdjsonTooLarge> {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            if self.line.len() + end > self.limit {
                return Err(NdjsonTooLarge { limit: self.limit });
            }
            self.line.extend_from_slice(&chunk[..end]);
            self.emit(out);
            chunk = &chunk[end + 1..];
        }
        if self.line.len() + chunk.len() > self.limit {
            return Err(NdjsonTooLarge { limit: self.limit });
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    /// End of stream: a final line without a newline is still a line.
    pub fn finish(&mut self, out: &mut Vec<String>) {
        self.emit(out);
    }

    fn emit(&mut self, out: &mut Vec<String>) {
        let mut line = self.line.as_slice();
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            out.push(String::from_utf8_lossy(line).into_owned());
        }
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b"{\"a\":\"h\xC3\xA9\"}\n\r\n{\"b\":2}\r\n\n{\"done\":true}";

    fn parse(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = NdjsonParser::new();
        let mut out = Vec::new();
        for c in chunks {
            assert!(p.feed(c, &mut out).is_ok());
        }
        p.finish(&mut out);
        out
    }

    #[test]
    fn any_split_gives_the_same_lines() {
        let expected = vec![
            "{\"a\":\"hé\"}".to_owned(),
            "{\"b\":2}".to_owned(),
            "{\"done\":true}".to_owned(),
        ];
        for split in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(split);
            assert_eq!(parse(&[a, b]), expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse(&bytes), expected);
    }

    #[test]
    fn bounds_line_length() {
        let mut p = NdjsonParser::with_limit(8);
        let mut out = Vec::new();
        assert!(p.feed(b"12345\n", &mut out).is_ok());
        assert_eq!(
            p.feed(b"123456789", &mut out),
            Err(NdjsonTooLarge { limit: 8 })
        );
    }
}
