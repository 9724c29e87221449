//! Structured logging: `tracing` to stderr (human or JSON) and, always, JSON lines to
//! `<state>/logs/pincer.log` (bounded, rotated) through a dedicated writer thread, plus an
//! in-memory ring of recent lines that serves `logs.tail` without touching the disk.
//!
//! Nothing secret is ever logged: auth types redact themselves in `Debug`, and call sites log
//! modes and reasons, never tokens, passwords or signatures.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use parking_lot::Mutex;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::LogFormat;

/// Rotate the log file past this size (one previous file is kept as `pincer.log.1`).
pub const MAX_LOG_FILE_BYTES: u64 = 10 * 1024 * 1024;
const RING_MAX_LINES: usize = 2_000;
const RING_MAX_BYTES: usize = 1024 * 1024;
const CHANNEL_CAPACITY: usize = 8_192;

#[derive(Default)]
struct Ring {
    /// (byte offset in the current file, line without newline)
    lines: VecDeque<(u64, Arc<str>)>,
    bytes: usize,
    /// Size of the current file (or of the virtual stream when there is no file).
    size: u64,
}

/// Recent log lines and the log file they were written to.
pub struct LogStore {
    ring: Mutex<Ring>,
    tx: Option<SyncSender<Vec<u8>>>,
    path: Option<PathBuf>,
    dropped: AtomicU64,
}

impl LogStore {
    /// A store without a file (tests, or when the state dir is unusable).
    pub fn memory_only() -> Arc<LogStore> {
        Arc::new(LogStore {
            ring: Mutex::new(Ring::default()),
            tx: None,
            path: None,
            dropped: AtomicU64::new(0),
        })
    }

    /// A store appending to `path` (mode 0600) from a dedicated thread.
    pub fn with_file(path: PathBuf) -> std::io::Result<Arc<LogStore>> {
        if let Some(dir) = path.parent() {
            crate::state_dir::ensure_private_dir(dir).map_err(std::io::Error::other)?;
        }
        let file = open_log(&path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (tx, rx) = sync_channel::<Vec<u8>>(CHANNEL_CAPACITY);
        let store = Arc::new(LogStore {
            ring: Mutex::new(Ring {
                size,
                ..Default::default()
            }),
            tx: Some(tx),
            path: Some(path.clone()),
            dropped: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&store);
        std::thread::Builder::new()
            .name("pincer-log-writer".into())
            .spawn(move || writer_thread(rx, file, path, size, weak))?;
        Ok(store)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn submit(&self, line: Vec<u8>) {
        match &self.tx {
            Some(tx) => match tx.try_send(line) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
            None => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches('\n');
                let mut ring = self.ring.lock();
                let offset = ring.size;
                ring.size += text.len() as u64 + 1;
                push_ring(&mut ring, offset, text);
            }
        }
    }

    /// Current size of the log stream.
    pub fn size(&self) -> u64 {
        self.ring.lock().size
    }

    /// Serve a tail request from memory when the ring covers it.
    pub fn tail_from_ring(&self, req: &TailRequest) -> Option<TailResult> {
        let ring = self.ring.lock();
        let first = ring.lines.front().map(|(o, _)| *o).unwrap_or(ring.size);
        let whole_stream = first == 0;
        let covered = match req.cursor {
            None => whole_stream || ring.lines.len() >= req.limit,
            Some(c) if c > ring.size => whole_stream,
            Some(c) => c >= first,
        };
        if !covered {
            return None;
        }
        let lines: Vec<(u64, Arc<str>)> = ring.lines.iter().cloned().collect();
        Some(select(&lines, ring.size, req, first))
    }

    /// Serve a tail request, reading the file if the ring does not cover it.
    pub fn tail(&self, req: &TailRequest) -> TailResult {
        if let Some(r) = self.tail_from_ring(req) {
            return r;
        }
        match &self.path {
            Some(path) => {
                read_file_tail(path, req).unwrap_or_else(|_| TailResult::empty(self.size()))
            }
            None => TailResult::empty(self.size()),
        }
    }
}

fn push_ring(ring: &mut Ring, offset: u64, text: &str) {
    ring.bytes += text.len();
    ring.lines.push_back((offset, Arc::from(text)));
    while ring.lines.len() > RING_MAX_LINES || ring.bytes > RING_MAX_BYTES {
        match ring.lines.pop_front() {
            Some((_, l)) => ring.bytes -= l.len(),
            None => break,
        }
    }
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn writer_thread(
    rx: Receiver<Vec<u8>>,
    mut file: File,
    path: PathBuf,
    mut size: u64,
    store: std::sync::Weak<LogStore>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 256 {
                break;
            }
        }
        let Some(store) = store.upgrade() else { return };
        let mut written = Vec::with_capacity(batch.len());
        for line in batch {
            if size + line.len() as u64 > MAX_LOG_FILE_BYTES && size > 0 {
                let _ = file.flush();
                let rotated = path.with_extension("log.1");
                let _ = std::fs::rename(&path, &rotated);
                match open_log(&path) {
                    Ok(f) => file = f,
                    Err(_) => return,
                }
                size = 0;
                let mut ring = store.ring.lock();
                ring.lines.clear();
                ring.bytes = 0;
                ring.size = 0;
            }
            if file.write_all(&line).is_err() {
                store.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            written.push((size, line.clone()));
            size += line.len() as u64;
        }
        let _ = file.flush();
        let mut ring = store.ring.lock();
        for (offset, line) in written {
            let text = String::from_utf8_lossy(&line);
            push_ring(&mut ring, offset, text.trim_end_matches('\n'));
        }
        ring.size = size;
    }
}

/// `logs.tail` params after validation and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailRequest {
    pub cursor: Option<u64>,
    pub limit: usize,
    pub max_bytes: usize,
}

/// `logs.tail` result (before adding `file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailResult {
    pub cursor: u64,
    pub size: u64,
    pub lines: Vec<String>,
    pub truncated: bool,
    pub reset: bool,
    pub skipped_bytes: u64,
}

impl TailResult {
    fn empty(size: u64) -> Self {
        TailResult {
            cursor: size,
            size,
            lines: vec![],
            truncated: false,
            reset: false,
            skipped_bytes: 0,
        }
    }
}

/// Select lines for a request from `(offset, line)` pairs covering `[first, size)`.
fn select(lines: &[(u64, Arc<str>)], size: u64, req: &TailRequest, first: u64) -> TailResult {
    let mut result = TailResult::empty(size);
    let (start, reset) = match req.cursor {
        Some(c) if c > size => (Some(0), true),
        Some(c) => (Some(c), false),
        None => (None, false),
    };
    result.reset = reset;
    match start {
        None => {
            // The newest lines that fit.
            let mut picked: Vec<&str> = Vec::new();
            let mut bytes = 0usize;
            for (_, line) in lines.iter().rev() {
                if picked.len() >= req.limit || bytes + line.len() > req.max_bytes {
                    break;
                }
                bytes += line.len() + 1;
                picked.push(line);
            }
            result.truncated = picked.len() < lines.len() || first > 0;
            result.lines = picked.into_iter().rev().map(str::to_string).collect();
            result.cursor = size;
        }
        Some(from) => {
            let mut cursor = from.max(first);
            let mut bytes = 0usize;
            let mut skipped = 0u64;
            let mut taken = 0usize;
            let mut remaining = false;
            for (offset, line) in lines {
                let end = offset + line.len() as u64 + 1;
                if end <= from {
                    continue;
                }
                if *offset < from {
                    // The cursor points into this line: skip its rest.
                    skipped += end - from;
                    cursor = end;
                    continue;
                }
                if taken >= req.limit || bytes + line.len() > req.max_bytes {
                    remaining = true;
                    break;
                }
                bytes += line.len() + 1;
                taken += 1;
                result.lines.push(line.to_string());
                cursor = end;
            }
            result.truncated = remaining;
            result.skipped_bytes = skipped;
            result.cursor = if remaining { cursor } else { size.max(cursor) };
        }
    }
    result
}

fn read_file_tail(path: &Path, req: &TailRequest) -> std::io::Result<TailResult> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let (from, reset) = match req.cursor {
        Some(c) if c > size => (Some(0), true),
        Some(c) => (Some(c), false),
        None => (None, false),
    };
    // Read one byte early so we can tell whether we start on a line boundary.
    let read_from = match from {
        Some(c) => c.saturating_sub(1),
        None => size.saturating_sub(req.max_bytes as u64 + 1),
    };
    let want = (req.max_bytes as u64 + 64 * 1024).min(size.saturating_sub(read_from));
    file.seek(SeekFrom::Start(read_from))?;
    let mut buf = vec![0u8; want as usize];
    let n = file.read(&mut buf)?;
    buf.truncate(n);
    let text = String::from_utf8_lossy(&buf);
    let mut parts = text.split_inclusive('\n').peekable();
    let mut offset = read_from;
    let mut skipped = 0u64;
    if read_from > 0 || from.is_some_and(|c| c > 0) {
        // Drop the (possibly partial) line the read started in.
        if let Some(first) = parts.next() {
            let start = from.unwrap_or(read_from);
            let end = read_from + first.len() as u64;
            if from.is_some() && end > start {
                skipped = end - start;
            }
            offset = end;
        }
    }
    let first = offset;
    let mut lines: Vec<(u64, Arc<str>)> = Vec::new();
    for part in parts {
        if !part.ends_with('\n') {
            break;
        }
        lines.push((offset, Arc::from(part.trim_end_matches('\n'))));
        offset += part.len() as u64;
    }
    let covered_end = offset;
    let sel = TailRequest {
        cursor: from.map(|_| first),
        ..*req
    };
    let mut result = select(&lines, covered_end, &sel, first);
    result.reset = reset;
    result.size = size;
    result.skipped_bytes = skipped;
    if req.cursor.is_none() {
        result.cursor = size;
        result.truncated = result.truncated || read_from > 0;
    } else if covered_end < size {
        result.truncated = true;
    }
    Ok(result)
}

/// A `MakeWriter` that turns each formatted event into one line for the store.
#[derive(Clone)]
pub struct StoreWriter {
    store: Arc<LogStore>,
}

pub struct LineWriter {
    store: Arc<LogStore>,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if !self.buf.ends_with(b"\n") {
            self.buf.push(b'\n');
        }
        self.store.submit(std::mem::take(&mut self.buf));
    }
}

impl<'a> MakeWriter<'a> for StoreWriter {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            store: Arc::clone(&self.store),
            buf: Vec::with_capacity(256),
        }
    }
}

/// Install the global subscriber. Returns the store that backs `logs.tail`.
/// Safe to call once per process; later calls keep the first subscriber.
pub fn init(format: LogFormat, verbose: bool, log_file: Option<PathBuf>) -> Arc<LogStore> {
    let store = match log_file {
        Some(path) => LogStore::with_file(path.clone()).unwrap_or_else(|e| {
            eprintln!(
                "warning: cannot open log file {}: {e}; logging to memory only",
                path.display()
            );
            LogStore::memory_only()
        }),
        None => LogStore::memory_only(),
    };
    let level = if verbose {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    let targets = || {
        Targets::new()
            .with_default(level)
            .with_target("hyper", LevelFilter::WARN)
            .with_target("tungstenite", LevelFilter::WARN)
            .with_target("tokio_tungstenite", LevelFilter::WARN)
    };
    let file_layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(StoreWriter {
            store: Arc::clone(&store),
        })
        .with_filter(targets());
    let stderr_layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(targets())
            .boxed(),
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_filter(targets())
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cursor: Option<u64>, limit: usize, max_bytes: usize) -> TailRequest {
        TailRequest {
            cursor,
            limit,
            max_bytes,
        }
    }

    fn fill(store: &LogStore, n: usize) {
        for i in 0..n {
            store.submit(format!("{{\"n\":{i}}}\n").into_bytes());
        }
    }

    #[test]
    fn tail_without_cursor_returns_newest_lines() {
        let s = LogStore::memory_only();
        fill(&s, 10);
        let r = s.tail(&req(None, 3, 1000));
        assert_eq!(r.lines, vec!["{\"n\":7}", "{\"n\":8}", "{\"n\":9}"]);
        assert_eq!(r.cursor, s.size());
        assert!(r.truncated);
    }

    #[test]
    fn cursor_follows_new_lines_only() {
        let s = LogStore::memory_only();
        fill(&s, 2);
        let r1 = s.tail(&req(None, 100, 100_000));
        assert_eq!(r1.lines.len(), 2);
        assert!(!r1.truncated);
        fill(&s, 3);
        let r2 = s.tail(&req(Some(r1.cursor), 2, 100_000));
        assert_eq!(r2.lines, vec!["{\"n\":0}", "{\"n\":1}"]);
        assert!(r2.truncated);
        let r3 = s.tail(&req(Some(r2.cursor), 100, 100_000));
        assert_eq!(r3.lines, vec!["{\"n\":2}"]);
        assert!(!r3.truncated);
        assert_eq!(r3.cursor, s.size());
        let r4 = s.tail(&req(Some(r3.cursor), 100, 100_000));
        assert!(r4.lines.is_empty());
    }

    #[test]
    fn cursor_beyond_size_resets() {
        let s = LogStore::memory_only();
        fill(&s, 2);
        let r = s.tail(&req(Some(10_000), 100, 100_000));
        assert!(r.reset);
        assert_eq!(r.lines.len(), 2);
    }

    #[test]
    fn max_bytes_is_respected() {
        let s = LogStore::memory_only();
        fill(&s, 5);
        let r = s.tail(&req(Some(0), 100, 20));
        assert_eq!(r.lines.len(), 2);
        assert!(r.truncated);
    }

    #[test]
    fn file_backed_store_writes_lines_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("logs").join("pincer.log");
        let s = LogStore::with_file(path.clone()).unwrap_or_else(|e| panic!("{e}"));
        fill(&s, 50);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while s.size() < 10 * 8 + 40 * 9 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(on_disk.lines().count(), 50);
        let from_ring = s.tail(&req(None, 5, 10_000));
        let from_file =
            read_file_tail(&path, &req(None, 5, 10_000)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_ring.lines, from_file.lines);
        assert_eq!(
            from_file.lines.last().map(String::as_str),
            Some("{\"n\":49}")
        );
        // Cursor on a line boundary (line 1 starts at byte 8).
        let aligned =
            read_file_tail(&path, &req(Some(8), 2, 10_000)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(aligned.lines, vec!["{\"n\":1}", "{\"n\":2}"]);
        assert!(aligned.truncated);
        assert_eq!(aligned.cursor, 24);
        // A cursor inside a line skips the rest of it.
        let mid = read_file_tail(&path, &req(Some(9), 2, 10_000)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mid.lines, vec!["{\"n\":2}", "{\"n\":3}"]);
        assert_eq!(mid.skipped_bytes, 7);
        let start =
            read_file_tail(&path, &req(Some(0), 1, 10_000)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(start.lines, vec!["{\"n\":0}"]);
    }
}
