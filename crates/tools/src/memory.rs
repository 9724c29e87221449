//! Memory: chunking of `MEMORY.md`, `USER.md` and `memory/**/*.md` (pure), index sync against a
//! [`MemoryIndex`], and the `memory_search` / `memory_get` tools.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::confine::Workspace;
use crate::context::ToolContext;
use crate::error::ToolError;
use crate::host::{MemoryChunk, MemoryIndex, MemoryQuery};
use crate::output::ToolOutput;
use crate::registry::{Tool, ToolSpec};
use crate::schema::builtin_spec;
use crate::sessions::builtin_tool;
use crate::util::blocking;

/// Target chunk size (characters); chunks break at headings and blank lines near it.
pub const CHUNK_TARGET_CHARS: usize = 1200;
/// Hard upper bound for one chunk.
pub const CHUNK_MAX_CHARS: usize = 2400;
/// Largest memory file indexed or read.
pub const MEMORY_FILE_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Default `memory_get` excerpt length (lines).
pub const GET_DEFAULT_LINES: usize = 200;

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Split a Markdown file into chunks with 1-based inclusive line ranges. Breaks before headings,
/// and at blank lines once a chunk reaches the target size; an over-long paragraph is cut at the
/// hard limit.
pub fn chunk_markdown(path: &str, text: &str) -> Vec<MemoryChunk> {
    let mut chunks = Vec::new();
    let mut heading: Option<String> = None;
    let mut chunk_heading: Option<String> = None;
    let mut buf = String::new();
    let mut start = 0usize;
    let mut end = 0usize;
    let mut flush = |buf: &mut String, start: usize, end: usize, h: &Option<String>| {
        let trimmed = buf.trim();
        if !trimmed.is_empty() {
            chunks.push(MemoryChunk {
                path: path.to_owned(),
                start_line: start,
                end_line: end,
                heading: h.clone(),
                text: trimmed.to_owned(),
                hash: hex_sha256(trimmed.as_bytes()),
            });
        }
        buf.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let is_heading = line.starts_with('#') && line.trim_start_matches('#').starts_with(' ');
        let blank = line.trim().is_empty();
        let size = buf.chars().count();
        if !buf.trim().is_empty()
            && (is_heading
                || (blank && size >= CHUNK_TARGET_CHARS)
                || size + line.chars().count() > CHUNK_MAX_CHARS)
        {
            flush(&mut buf, start, end, &chunk_heading);
        }
        if is_heading {
            heading = Some(line.trim_start_matches('#').trim().to_owned());
        }
        if buf.is_empty() {
            if blank {
                continue;
            }
            start = lineno;
            chunk_heading = heading.clone();
        }
        buf.push_str(line);
        buf.push('\n');
        if !blank {
            end = lineno;
        }
    }
    flush(&mut buf, start, end, &chunk_heading);
    chunks
}

/// Is `rel` a memory file path (`MEMORY.md`, `USER.md`, `memory/**/*.md`)?
pub fn is_memory_path(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    s == "MEMORY.md" || s == "USER.md" || (s.starts_with("memory/") && s.ends_with(".md"))
}

/// Workspace-relative memory files (symlinked entries are skipped: they could point anywhere).
pub fn list_memory_files(ws: &Workspace) -> Vec<String> {
    let root = ws.root();
    let mut out = Vec::new();
    for f in ["MEMORY.md", "USER.md"] {
        if std::fs::symlink_metadata(root.join(f)).is_ok_and(|m| m.is_file()) {
            out.push(f.to_owned());
        }
    }
    let mut stack = vec![std::path::PathBuf::from("memory")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let rel = dir.join(e.file_name());
            if ft.is_dir() && stack.len() < 1024 {
                stack.push(rel);
            } else if ft.is_file() && rel.extension().is_some_and(|x| x == "md") {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Bring the index up to date with the workspace: re-chunk changed files, drop removed ones.
/// Returns the number of files (re)indexed.
pub async fn sync_memory_index(
    ws: Arc<Workspace>,
    agent_id: &str,
    index: &dyn MemoryIndex,
) -> Result<usize, ToolError> {
    let indexed: HashMap<String, String> =
        index.indexed_files(agent_id).await?.into_iter().collect();
    let ws2 = Arc::clone(&ws);
    let files: Vec<(String, String, Vec<MemoryChunk>)> = blocking(move || {
        let mut out = Vec::new();
        for rel in list_memory_files(&ws2) {
            let p = ws2.resolve(&rel)?;
            let Ok(bytes) = ws2.read_file(&p, MEMORY_FILE_MAX_BYTES) else {
                continue;
            };
            let hash = hex_sha256(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            let chunks = chunk_markdown(&rel, &text);
            out.push((rel, hash, chunks));
        }
        Ok(out)
    })
    .await?;
    let mut changed = 0;
    for (rel, hash, chunks) in &files {
        if indexed.get(rel) != Some(hash) {
            index
                .replace_file(agent_id, rel, hash, chunks.clone())
                .await?;
            changed += 1;
        }
    }
    for path in indexed.keys() {
        if !files.iter().any(|(rel, _, _)| rel == path) {
            index.replace_file(agent_id, path, "", Vec::new()).await?;
            changed += 1;
        }
    }
    Ok(changed)
}

builtin_tool!(MemorySearchTool, "memory_search");
builtin_tool!(MemoryGetTool, "memory_get");

fn memory_host(ctx: &ToolContext) -> Result<&Arc<dyn MemoryIndex>, ToolError> {
    ctx.hosts.memory.as_ref().ok_or_else(|| {
        ToolError::Unavailable("Memory search is not available in this context.".into())
    })
}

#[async_trait]
impl Tool for MemorySearchTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let query = args
            .get("query")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| ToolError::invalid("memory_search", "query must not be blank"))?
            .to_owned();
        let max_results = args
            .get("maxResults")
            .and_then(Value::as_u64)
            .map_or(6, |n| usize::try_from(n).unwrap_or(50))
            .clamp(1, 50);
        let corpus = args
            .get("corpus")
            .and_then(Value::as_str)
            .unwrap_or("memory")
            .to_owned();
        let mut warnings = Vec::new();
        if corpus != "memory" {
            warnings.push(json!({
                "corpus": corpus,
                "warning": "only the memory corpus is indexed on this gateway; results cover memory files only",
            }));
        }
        let index = memory_host(ctx)?;
        let ws = crate::fs::workspace_for(ctx);
        sync_memory_index(ws, &ctx.agent_id, index.as_ref()).await?;
        let hits = index
            .search(&MemoryQuery {
                agent_id: ctx.agent_id.to_string(),
                query,
                max_results,
                min_score: args.get("minScore").and_then(Value::as_f64),
                corpus: "memory".into(),
            })
            .await?;
        let results: Vec<Value> = hits
            .iter()
            .take(max_results)
            .map(|h| {
                json!({
                    "path": h.path,
                    "startLine": h.start_line,
                    "endLine": h.end_line,
                    "score": h.score,
                    "snippet": h.snippet,
                    "citation": format!("{}#L{}-L{}", h.path, h.start_line, h.end_line),
                })
            })
            .collect();
        Ok(ToolOutput::json(json!({
            "status": "ok",
            "corpus": corpus,
            "results": results,
            "warnings": warnings,
        })))
    }
}

#[async_trait]
impl Tool for MemoryGetTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let path = args
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned();
        if args.get("corpus").and_then(Value::as_str) == Some("wiki") {
            return Ok(ToolOutput::json(json!({
                "status": "not_found",
                "path": path,
                "corpus": "wiki",
                "warning": "no compiled-wiki supplements are registered",
            })));
        }
        let from = args.get("from").and_then(Value::as_u64).unwrap_or(1).max(1);
        let lines = args
            .get("lines")
            .and_then(Value::as_u64)
            .map_or(GET_DEFAULT_LINES, |n| {
                usize::try_from(n).unwrap_or(GET_DEFAULT_LINES)
            })
            .clamp(1, 2000);
        let ws = crate::fs::workspace_for(ctx);
        let p = ws.resolve(&path)?;
        if !is_memory_path(&p.rel) {
            return Err(ToolError::PathDenied(format!(
                "memory_get only reads MEMORY.md, USER.md and Markdown files under memory/ (got '{path}')."
            )));
        }
        let from = usize::try_from(from).unwrap_or(1);
        blocking(move || {
            let rel = p.rel.to_string_lossy().into_owned();
            let bytes = match ws.read_file(&p, MEMORY_FILE_MAX_BYTES) {
                Ok(b) => b,
                Err(ToolError::NotFound(_)) => {
                    return Ok(ToolOutput::json(
                        json!({"status": "not_found", "path": rel}),
                    ));
                }
                Err(e) => return Err(e),
            };
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = (from - 1).min(all.len());
            let end = (start + lines).min(all.len());
            let excerpt = all[start..end].join("\n");
            let truncated = end < all.len();
            Ok(ToolOutput::json(json!({
                "status": "ok",
                "path": rel,
                "from": start + 1,
                "lines": end - start,
                "totalLines": all.len(),
                "truncated": truncated,
                "nextFrom": if truncated { Some(end + 1) } else { None },
                "text": excerpt,
            })))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_follow_headings_and_line_ranges() {
        let text = "# Title\nintro line\n\n## Work\nfact one\nfact two\n\n## Home\nfact three\n";
        let chunks = chunk_markdown("MEMORY.md", text);
        assert_eq!(chunks.len(), 3);
        assert_eq!((chunks[0].start_line, chunks[0].end_line), (1, 2));
        assert_eq!((chunks[1].start_line, chunks[1].end_line), (4, 6));
        assert_eq!(chunks[1].heading.as_deref(), Some("Work"));
        assert_eq!(chunks[2].text, "## Home\nfact three");
        assert_eq!(chunks[2].heading.as_deref(), Some("Home"));
    }

    #[test]
    fn long_paragraphs_are_split() {
        let line = "x".repeat(100);
        let text = std::iter::repeat_n(line.as_str(), 60)
            .collect::<Vec<_>>()
            .join("\n");
        let chunks = chunk_markdown("memory/a.md", &text);
        assert!(chunks.len() >= 3);
        assert!(chunks.iter().all(|c| c.text.len() <= CHUNK_MAX_CHARS));
        assert_eq!(chunks[0].start_line, 1);
        assert_eq!(chunks.last().map(|c| c.end_line), Some(60));
    }

    #[test]
    fn memory_paths() {
        assert!(is_memory_path(Path::new("MEMORY.md")));
        assert!(is_memory_path(Path::new("memory/2026-01-01.md")));
        assert!(!is_memory_path(Path::new("AGENTS.md")));
        assert!(!is_memory_path(Path::new("memory/x.txt")));
    }
}
