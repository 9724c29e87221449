//! Outbound chunking: split a reply into platform messages of at most `limit` units (and at
//! most `max_lines` lines) without breaking a code fence. When a fence must be split, the
//! chunk closes it and the next chunk reopens it with the same marker and info string, so
//! every chunk renders on its own. Prefers line boundaries; splits overlong lines at
//! whitespace, then anywhere (on a character boundary).

/// How the platform counts message length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Unicode scalar values (Discord, Slack).
    Chars,
    /// UTF-16 code units (Telegram).
    Utf16,
}

impl Measure {
    pub fn len(self, s: &str) -> usize {
        match self {
            Measure::Chars => s.chars().count(),
            Measure::Utf16 => s.encode_utf16().count(),
        }
    }

    fn char_len(self, c: char) -> usize {
        match self {
            Measure::Chars => 1,
            Measure::Utf16 => c.len_utf16(),
        }
    }
}

/// `streaming.chunkMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkMode {
    /// Fill each message up to the limit (default).
    #[default]
    Length,
    /// Keep blank-line separated paragraphs together where they fit.
    Newline,
}

/// Chunking parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    pub limit: usize,
    pub measure: Measure,
    pub max_lines: Option<usize>,
    pub mode: ChunkMode,
}

impl ChunkOptions {
    pub fn new(limit: usize) -> Self {
        ChunkOptions {
            limit,
            measure: Measure::Chars,
            max_lines: None,
            mode: ChunkMode::Length,
        }
    }
}

/// Smallest limit with which fences are preserved (room for reopen + close + content).
const MIN_FENCE_LIMIT: usize = 24;

#[derive(Debug, Clone)]
struct Fence {
    /// The closing marker (the opening run of backticks or tildes).
    marker: String,
    /// The opening line, repeated at the start of a continuation chunk.
    open_line: String,
}

/// If `line` opens a fence, its marker.
fn fence_open(line: &str) -> Option<String> {
    let t = line.trim_start();
    let ch = t.chars().next()?;
    if ch != '`' && ch != '~' {
        return None;
    }
    let run = t.chars().take_while(|c| *c == ch).count();
    if run < 3 {
        return None;
    }
    // A backtick fence's info string may not contain backticks.
    if ch == '`' && t[run..].contains('`') {
        return None;
    }
    Some(std::iter::repeat_n(ch, run).collect())
}

fn fence_closes(line: &str, fence: &Fence) -> bool {
    let t = line.trim();
    let Some(ch) = fence.marker.chars().next() else {
        return false;
    };
    let run = t.chars().take_while(|c| *c == ch).count();
    run >= fence.marker.len() && t.chars().all(|c| c == ch)
}

struct Packer {
    opts: ChunkOptions,
    fences: bool,
    chunks: Vec<String>,
    cur: String,
    cur_len: usize,
    cur_lines: usize,
    /// `cur` holds only a reopened fence header (nothing of its own yet).
    only_header: bool,
    fence: Option<Fence>,
}

impl Packer {
    fn new(opts: ChunkOptions) -> Self {
        Packer {
            fences: opts.limit >= MIN_FENCE_LIMIT,
            opts,
            chunks: Vec::new(),
            cur: String::new(),
            cur_len: 0,
            cur_lines: 0,
            only_header: false,
            fence: None,
        }
    }

    fn m(&self, s: &str) -> usize {
        self.opts.measure.len(s)
    }

    /// Room a closing fence needs at the end of the chunk when `fence` is open.
    fn reserve(&self, fence: Option<&Fence>) -> (usize, usize) {
        match fence {
            Some(f) if self.fences => (self.m(&f.marker) + 1, 1),
            _ => (0, 0),
        }
    }

    fn fits(&self, add_len: usize, fence_after: Option<&Fence>) -> bool {
        let sep = usize::from(!self.cur.is_empty());
        let (reserve_len, reserve_lines) = self.reserve(fence_after);
        let len_ok = self.cur_len + sep + add_len + reserve_len <= self.opts.limit;
        let lines_ok = self
            .opts
            .max_lines
            .is_none_or(|max| self.cur_lines + 1 + reserve_lines <= max.max(1));
        len_ok && lines_ok
    }

    fn append(&mut self, piece: &str) {
        if !self.cur.is_empty() {
            self.cur.push('\n');
            self.cur_len += 1;
        }
        self.cur.push_str(piece);
        self.cur_len += self.m(piece);
        self.cur_lines += 1;
        self.only_header = false;
    }

    /// Ends the current chunk (closing an open fence) and starts the next one (reopening it).
    fn flush(&mut self) {
        if self.cur.is_empty() || self.only_header {
            return;
        }
        let fence = self.fence.clone().filter(|_| self.fences);
        if let Some(f) = &fence {
            self.cur.push('\n');
            self.cur.push_str(&f.marker);
        }
        let chunk = std::mem::take(&mut self.cur);
        self.chunks.push(chunk);
        self.cur_len = 0;
        self.cur_lines = 0;
        self.only_header = false;
        if let Some(f) = fence {
            self.append(&f.open_line);
            self.only_header = true;
        }
    }

    fn push_line(&mut self, line: &str) {
        let fence_after = match &self.fence {
            Some(f) if fence_closes(line, f) => None,
            Some(f) => Some(f.clone()),
            None => fence_open(line).map(|marker| Fence {
                marker,
                open_line: line.to_string(),
            }),
        };
        let len = self.m(line);
        if self.fits(len, fence_after.as_ref()) {
            self.append(line);
            self.fence = fence_after;
            return;
        }
        self.flush();
        if self.fits(len, fence_after.as_ref()) {
            self.append(line);
            self.fence = fence_after;
            return;
        }
        // The line alone is too long: split it. Fence markers are never split (a marker
        // line longer than the limit is treated as plain text).
        let fence_during = self.fence.clone();
        let mut rest = line;
        while !rest.is_empty() {
            let sep = usize::from(!self.cur.is_empty());
            let (reserve_len, _) = self.reserve(fence_during.as_ref());
            let room = self
                .opts
                .limit
                .saturating_sub(self.cur_len + sep + reserve_len);
            let lines_full = self.opts.max_lines.is_some_and(|max| {
                self.cur_lines + 1 + self.reserve(fence_during.as_ref()).1 > max.max(1)
            });
            if room == 0 || lines_full {
                if self.cur.is_empty() || self.only_header {
                    // Cannot make progress with the fence header in the way: drop fences.
                    self.fences = false;
                    self.cur.clear();
                    self.cur_len = 0;
                    self.cur_lines = 0;
                    self.only_header = false;
                    continue;
                }
                self.flush();
                continue;
            }
            let cut = split_point(rest, room, self.opts.measure);
            let (piece, tail) = rest.split_at(cut);
            self.append(piece.trim_end());
            rest = tail.trim_start();
            if !rest.is_empty() {
                self.flush();
            }
        }
        self.fence = fence_after;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.cur.is_empty() && !self.only_header {
            // An unterminated fence in the source stays unterminated, as written.
            self.chunks.push(std::mem::take(&mut self.cur));
        }
        self.chunks
            .into_iter()
            .map(|c| c.trim_end().to_string())
            .filter(|c| !c.trim().is_empty())
            .collect()
    }
}

/// Byte index at which to cut `s` so the head measures at most `room` (> 0): the last
/// whitespace within room if there is one in its second half, else as much as fits (at least
/// one character).
fn split_point(s: &str, room: usize, measure: Measure) -> usize {
    let mut used = 0;
    let mut end = 0;
    let mut last_space = None;
    for (i, c) in s.char_indices() {
        let w = measure.char_len(c);
        if used + w > room {
            break;
        }
        used += w;
        end = i + c.len_utf8();
        if c.is_whitespace() && used > room / 2 {
            last_space = Some(i);
        }
    }
    if end == 0 {
        // Not even one character fits (a wide char in a 1-unit room): take one anyway.
        return s.chars().next().map_or(s.len(), char::len_utf8);
    }
    if end == s.len() {
        return end;
    }
    match last_space {
        Some(i) if i > 0 => i,
        _ => end,
    }
}

/// Paragraphs separated by blank lines outside fences.
fn paragraphs(text: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = vec![Vec::new()];
    let mut fence: Option<Fence> = None;
    for line in text.lines() {
        match &fence {
            Some(f) if fence_closes(line, f) => fence = None,
            Some(_) => {}
            None => {
                if let Some(marker) = fence_open(line) {
                    fence = Some(Fence {
                        marker,
                        open_line: String::new(),
                    });
                } else if line.trim().is_empty() {
                    if out.last().is_some_and(|p| !p.is_empty()) {
                        out.push(Vec::new());
                    }
                    continue;
                }
            }
        }
        if let Some(last) = out.last_mut() {
            last.push(line);
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// Splits `text` into chunks per `opts`. Empty (or whitespace-only) text yields no chunk.
pub fn chunk_text(text: &str, opts: &ChunkOptions) -> Vec<String> {
    let opts = ChunkOptions {
        limit: opts.limit.max(1),
        ..*opts
    };
    if opts.measure.len(text) <= opts.limit
        && opts
            .max_lines
            .is_none_or(|max| text.lines().count() <= max.max(1))
    {
        let t = text.trim_end();
        return if t.trim().is_empty() {
            Vec::new()
        } else {
            vec![t.to_string()]
        };
    }
    match opts.mode {
        ChunkMode::Length => {
            let mut p = Packer::new(opts);
            for line in text.lines() {
                p.push_line(line);
            }
            p.finish()
        }
        ChunkMode::Newline => {
            let mut out: Vec<String> = Vec::new();
            let mut cur = String::new();
            for para in paragraphs(text) {
                let joined = para.join("\n");
                let candidate = if cur.is_empty() {
                    joined.clone()
                } else {
                    format!("{cur}\n\n{joined}")
                };
                let fits = opts.measure.len(&candidate) <= opts.limit
                    && opts
                        .max_lines
                        .is_none_or(|max| candidate.lines().count() <= max.max(1));
                if fits {
                    cur = candidate;
                    continue;
                }
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                let alone = opts.measure.len(&joined) <= opts.limit
                    && opts.max_lines.is_none_or(|max| para.len() <= max.max(1));
                if alone {
                    cur = joined;
                } else {
                    let mut p = Packer::new(opts);
                    for line in &para {
                        p.push_line(line);
                    }
                    out.extend(p.finish());
                }
            }
            if !cur.trim().is_empty() {
                out.push(cur);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk has balanced fences (an even number of fence lines).
    fn balanced(chunk: &str) -> bool {
        let mut fence: Option<Fence> = None;
        for line in chunk.lines() {
            match &fence {
                Some(f) if fence_closes(line, f) => fence = None,
                Some(_) => {}
                None => {
                    fence = fence_open(line).map(|marker| Fence {
                        marker,
                        open_line: line.into(),
                    })
                }
            }
        }
        fence.is_none()
    }

    #[test]
    fn short_text_is_one_chunk_and_empty_text_none() {
        assert_eq!(chunk_text("hello", &ChunkOptions::new(10)), vec!["hello"]);
        assert!(chunk_text("  \n ", &ChunkOptions::new(10)).is_empty());
    }

    #[test]
    fn splits_at_line_boundaries_within_the_limit() {
        let text = (0..50)
            .map(|i| format!("line number {i:02}"))
            .collect::<Vec<_>>()
            .join("\n");
        let chunks = chunk_text(&text, &ChunkOptions::new(100));
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(c.chars().count() <= 100, "{c}");
            assert!(
                c.lines().all(|l| l.starts_with("line number")),
                "lines kept whole"
            );
        }
        assert_eq!(chunks.join("\n"), text, "nothing lost or reordered");
    }

    #[test]
    fn long_words_and_lines_are_split_at_whitespace_then_anywhere() {
        let text = "word ".repeat(100);
        let chunks = chunk_text(&text, &ChunkOptions::new(42));
        assert!(chunks
            .iter()
            .all(|c| c.chars().count() <= 42 && !c.starts_with(' ')));
        assert!(
            chunks.iter().all(|c| c.split(' ').all(|w| w == "word")),
            "{chunks:?}"
        );
        let blob = "x".repeat(250);
        let chunks = chunk_text(&blob, &ChunkOptions::new(100));
        assert_eq!(
            chunks.iter().map(String::len).collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
    }

    #[test]
    fn code_fences_are_closed_and_reopened() {
        let code: String = (0..40).map(|i| format!("let v{i} = {i};\n")).collect();
        let text = format!("Here you go:\n\n```rust\n{code}```\nDone.");
        let chunks = chunk_text(&text, &ChunkOptions::new(200));
        assert!(chunks.len() >= 3);
        for c in &chunks {
            assert!(c.chars().count() <= 200, "{} > 200", c.chars().count());
            assert!(balanced(c), "unbalanced chunk:\n{c}");
        }
        assert!(
            chunks[1].starts_with("```rust\n"),
            "reopened with the language: {}",
            chunks[1]
        );
        // Reassembling without the added fence lines yields the original code lines.
        let lines: Vec<&str> = chunks
            .iter()
            .flat_map(|c| c.lines())
            .filter(|l| l.starts_with("let "))
            .collect();
        assert_eq!(lines.len(), 40);
        assert!(chunks.last().is_some_and(|c| c.ends_with("Done.")));
    }

    #[test]
    fn tilde_fences_and_long_code_lines() {
        let text = format!("~~~\n{}\n~~~", "y".repeat(130));
        let chunks = chunk_text(&text, &ChunkOptions::new(60));
        for c in &chunks {
            assert!(c.chars().count() <= 60 && balanced(c), "{c}");
            assert!(c.starts_with("~~~"));
        }
        let ys: usize = chunks.iter().map(|c| c.matches('y').count()).sum();
        assert_eq!(ys, 130);
    }

    #[test]
    fn utf16_measure_counts_surrogate_pairs() {
        let text = "😀".repeat(30); // 60 UTF-16 units
        let opts = ChunkOptions {
            measure: Measure::Utf16,
            ..ChunkOptions::new(20)
        };
        let chunks = chunk_text(&text, &opts);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.encode_utf16().count() <= 20));
    }

    #[test]
    fn max_lines_is_honoured_with_fences() {
        let text = format!(
            "```\n{}\n```",
            (0..40)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let opts = ChunkOptions {
            max_lines: Some(17),
            ..ChunkOptions::new(2000)
        };
        let chunks = chunk_text(&text, &opts);
        assert!(chunks.len() >= 3);
        for c in &chunks {
            assert!(c.lines().count() <= 17, "{} lines", c.lines().count());
            assert!(balanced(c));
        }
    }

    #[test]
    fn newline_mode_keeps_paragraphs_together() {
        let para = |n: usize| format!("para {n} ").repeat(5).trim_end().to_string();
        let text = (0..6).map(para).collect::<Vec<_>>().join("\n\n");
        let opts = ChunkOptions {
            mode: ChunkMode::Newline,
            ..ChunkOptions::new(80)
        };
        let chunks = chunk_text(&text, &opts);
        for c in &chunks {
            assert!(c.chars().count() <= 80);
            for p in c.split("\n\n") {
                let n = p.split(' ').nth(1).unwrap_or_default();
                assert_eq!(p, para(n.parse().unwrap_or(99)), "paragraph kept whole");
            }
        }
        assert_eq!(chunks.join("\n\n"), text);
    }

    #[test]
    fn ten_thousand_characters_with_code() {
        let mut text = String::new();
        while text.len() < 10_000 {
            text.push_str("Some prose that explains the next block in detail.\n\n```python\n");
            for i in 0..30 {
                text.push_str(&format!("print('value {i}')\n"));
            }
            text.push_str("```\n\n");
        }
        for limit in [2000, 4000, 8000] {
            let chunks = chunk_text(&text, &ChunkOptions::new(limit));
            assert!(chunks.len() >= 10_000 / limit);
            for c in &chunks {
                assert!(c.chars().count() <= limit);
                assert!(balanced(c));
            }
            let prints: usize = chunks.iter().map(|c| c.matches("print(").count()).sum();
            assert_eq!(prints, text.matches("print(").count());
        }
    }
}
