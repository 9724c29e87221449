//! Scripted turns: what the fake answers to the next model request. A script is
//! protocol-neutral; each endpoint renders it in its own wire format.

use std::time::Duration;

/// One answer of the fake.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// A streamed answer (possibly with an injected fault).
    Reply(Reply),
    /// A non-streamed HTTP error in the endpoint's own error body shape.
    HttpError(HttpError),
}

impl Turn {
    /// A streamed text answer, chunked word by word.
    pub fn text(text: &str) -> Self {
        Self::Reply(Reply::new().text(text))
    }

    /// An HTTP error with the provider's error body for `status`.
    pub fn http_error(status: u16) -> Self {
        Self::HttpError(HttpError {
            status,
            retry_after: None,
            message: None,
        })
    }

    /// HTTP 429 with `retry-after: <value>`.
    pub fn rate_limited(retry_after: &str) -> Self {
        Self::HttpError(HttpError {
            status: 429,
            retry_after: Some(retry_after.to_owned()),
            message: None,
        })
    }
}

impl From<Reply> for Turn {
    fn from(reply: Reply) -> Self {
        Self::Reply(reply)
    }
}

impl From<HttpError> for Turn {
    fn from(error: HttpError) -> Self {
        Self::HttpError(error)
    }
}

/// An HTTP error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError {
    pub status: u16,
    /// Sent as the `retry-after` header.
    pub retry_after: Option<String>,
    /// Error message (a status-specific default otherwise).
    pub message: Option<String>,
}

impl HttpError {
    /// Same error with a message.
    pub fn message(mut self, message: &str) -> Self {
        self.message = Some(message.to_owned());
        self
    }
}

/// A piece of model output, already split into the fragments that will be streamed.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text {
        chunks: Vec<String>,
    },
    Thinking {
        chunks: Vec<String>,
        signature: String,
    },
    ToolCall {
        id: String,
        name: String,
        argument_chunks: Vec<String>,
    },
}

/// Provider error kinds a fake can emit inside a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamErrorKind {
    Overloaded,
    RateLimit,
    Server,
}

/// Something going wrong after `after` complete frames (SSE events / NDJSON lines).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The provider's own in-stream error event, then the end of the body.
    ErrorEvent {
        after: usize,
        kind: StreamErrorKind,
        message: String,
    },
    /// A frame that is not valid JSON, then the rest of the stream as scripted.
    Malformed { after: usize },
    /// The connection is closed without finishing the body.
    Drop { after: usize },
    /// Nothing more is written; the connection stays open until the client leaves.
    Stall { after: usize },
}

/// How the model stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stop {
    /// `tool_calls`/`tool_use` if the reply has tool calls, else a normal end of turn.
    #[default]
    Auto,
    /// The output token limit was hit.
    Length,
}

/// Token counts reported by the fake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

/// A streamed answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub parts: Vec<Part>,
    /// Reported usage; by default 10 input tokens and one output token per fragment.
    pub usage: Option<FakeUsage>,
    pub stop: Stop,
    /// Pause after every frame.
    pub chunk_delay: Duration,
    /// Write every frame in pieces of this many bytes (each its own TCP write and HTTP
    /// chunk), so frames straddle reads at awkward places.
    pub fragment_bytes: Option<usize>,
    /// SSE lines end with CR LF instead of LF.
    pub crlf: bool,
    /// Interleave SSE comment lines (`: keep-alive`).
    pub comments: bool,
    pub fault: Option<Fault>,
}

/// Splits text into fragments at word starts ("Hello world" → "Hello", " world").
pub fn word_chunks(text: &str) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == ' ' && !current.is_empty() && !current.ends_with(' ') {
            chunks.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Splits text into `n` roughly equal fragments (on character boundaries).
pub fn even_chunks(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.clamp(1, chars.len().max(1));
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// Splits text at the given character offsets.
pub fn split_at_offsets(text: &str, offsets: &[usize]) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut cuts: Vec<usize> = offsets
        .iter()
        .copied()
        .filter(|&o| o > 0 && o < chars.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(chars.len())) {
        out.push(chars[start..cut].iter().collect());
        start = cut;
    }
    out
}

impl Reply {
    /// An empty reply (add parts with the builder methods).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds text streamed word by word.
    pub fn text(mut self, text: &str) -> Self {
        self.parts.push(Part::Text {
            chunks: word_chunks(text),
        });
        self
    }

    /// Adds text streamed in `n` fragments.
    pub fn text_in_chunks(mut self, text: &str, n: usize) -> Self {
        self.parts.push(Part::Text {
            chunks: even_chunks(text, n),
        });
        self
    }

    /// Adds a reasoning block (with an Anthropic-style signature).
    pub fn thinking(mut self, text: &str, signature: &str) -> Self {
        self.parts.push(Part::Thinking {
            chunks: word_chunks(text),
            signature: signature.to_owned(),
        });
        self
    }

    /// Adds a tool call whose JSON arguments are streamed in 5-character fragments, which
    /// cut keys, strings and escapes at awkward places.
    pub fn tool_call(self, id: &str, name: &str, arguments_json: &str) -> Self {
        let offsets: Vec<usize> = (5..arguments_json.chars().count()).step_by(5).collect();
        self.tool_call_split(id, name, arguments_json, &offsets)
    }

    /// Adds a tool call whose arguments are split at the given character offsets.
    pub fn tool_call_split(
        mut self,
        id: &str,
        name: &str,
        arguments_json: &str,
        offsets: &[usize],
    ) -> Self {
        self.parts.push(Part::ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            argument_chunks: split_at_offsets(arguments_json, offsets),
        });
        self
    }

    /// Reports these token counts.
    pub fn usage(mut self, input: u64, output: u64) -> Self {
        self.usage = Some(FakeUsage {
            input,
            output,
            ..FakeUsage::default()
        });
        self
    }

    /// Reports these token counts including cache reads/writes.
    pub fn usage_with_cache(mut self, usage: FakeUsage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Stops with the output-limit reason.
    pub fn length(mut self) -> Self {
        self.stop = Stop::Length;
        self
    }

    /// Pauses after each frame.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Writes frames in pieces of `bytes` bytes.
    pub fn fragment(mut self, bytes: usize) -> Self {
        self.fragment_bytes = Some(bytes.max(1));
        self
    }

    /// Uses CR LF line endings (SSE).
    pub fn crlf(mut self) -> Self {
        self.crlf = true;
        self
    }

    /// Interleaves SSE comments.
    pub fn comments(mut self) -> Self {
        self.comments = true;
        self
    }

    /// Sends the provider's error event after `after` frames.
    pub fn error_after(mut self, after: usize, kind: StreamErrorKind, message: &str) -> Self {
        self.fault = Some(Fault::ErrorEvent {
            after,
            kind,
            message: message.to_owned(),
        });
        self
    }

    /// Sends an invalid-JSON frame after `after` frames.
    pub fn malformed_after(mut self, after: usize) -> Self {
        self.fault = Some(Fault::Malformed { after });
        self
    }

    /// Drops the connection after `after` frames.
    pub fn drop_after(mut self, after: usize) -> Self {
        self.fault = Some(Fault::Drop { after });
        self
    }

    /// Stops writing (forever) after `after` frames.
    pub fn stall_after(mut self, after: usize) -> Self {
        self.fault = Some(Fault::Stall { after });
        self
    }

    /// Whether the reply contains tool calls.
    pub fn has_tool_calls(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::ToolCall { .. }))
    }

    /// The usage to report.
    pub fn effective_usage(&self) -> FakeUsage {
        self.usage.unwrap_or_else(|| {
            let fragments: usize = self
                .parts
                .iter()
                .map(|p| match p {
                    Part::Text { chunks } | Part::Thinking { chunks, .. } => chunks.len(),
                    Part::ToolCall {
                        argument_chunks, ..
                    } => argument_chunks.len(),
                })
                .sum();
            FakeUsage {
                input: 10,
                output: fragments as u64,
                ..FakeUsage::default()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunkers() {
        assert_eq!(
            word_chunks("Hello from  fake"),
            vec!["Hello", " from", "  fake"]
        );
        assert_eq!(even_chunks("abcdefg", 3), vec!["abc", "def", "g"]);
        assert_eq!(even_chunks("", 3), vec![] as Vec<String>);
        assert_eq!(
            split_at_offsets("{\"a\":1}", &[1, 3, 3, 99]),
            vec!["{", "\"a", "\":1}"]
        );
        assert_eq!(split_at_offsets("héllo", &[2]), vec!["hé", "llo"]);
    }
}
