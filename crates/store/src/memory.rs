//! The memory index (migration 0006): chunks of each agent's memory files with their line
//! ranges, searched with FTS5 (BM25). Chunking and deciding what to re-index happen in
//! `pincer-tools` (`memory::sync_memory_index`); the store replaces a file's chunks in one
//! transaction and answers searches.

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::Store;

/// One stored chunk of a memory file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryChunkRow {
    /// Workspace-relative path (`MEMORY.md`, `memory/2026-01-02.md`).
    pub path: String,
    /// 1-based inclusive line range.
    pub start_line: u32,
    pub end_line: u32,
    pub heading: Option<String>,
    pub text: String,
    pub hash: String,
}

/// One search hit, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHitRow {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub heading: Option<String>,
    pub text: String,
    /// Relevance in (0, 1): BM25 mapped through `r / (1 + r)`; higher is better.
    pub score: f64,
}

/// Most query terms used (the rest are ignored).
const MAX_TERMS: usize = 32;

/// An FTS5 query from free text: each word becomes a quoted term (so FTS syntax in the text is
/// inert) and terms are OR-ed, so a chunk matching more of them ranks higher. `None` when the
/// text has no word.
pub(crate) fn fts_query(text: &str) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
    {
        let w = word.to_lowercase();
        if !terms.contains(&w) {
            terms.push(w);
        }
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    if terms.is_empty() {
        return None;
    }
    Some(
        terms
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" OR "),
    )
}

fn search(
    conn: &Connection,
    agent_id: &str,
    query: &str,
    limit: usize,
    min_score: f64,
) -> Result<Vec<MemoryHitRow>> {
    let Some(q) = fts_query(query) else {
        return Ok(Vec::new());
    };
    // Weights: body 1, heading 2 (a heading match says what the chunk is about), path 0.5.
    let mut stmt = conn.prepare_cached(
        "SELECT c.path, c.start_line, c.end_line, c.heading, c.text, \
                bm25(memory_chunks_fts, 1.0, 2.0, 0.5) AS rank \
         FROM memory_chunks_fts JOIN memory_chunks c ON c.chunk_id = memory_chunks_fts.rowid \
         WHERE memory_chunks_fts MATCH ?1 AND c.agent_id = ?2 \
         ORDER BY rank LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![q, agent_id, limit as i64], |r| {
        let rank: f64 = r.get(5)?;
        let relevance = (-rank).max(0.0);
        Ok(MemoryHitRow {
            path: r.get(0)?,
            start_line: r.get(1)?,
            end_line: r.get(2)?,
            heading: r.get(3)?,
            text: r.get(4)?,
            score: relevance / (1.0 + relevance),
        })
    })?;
    let mut hits = Vec::new();
    for row in rows {
        let hit = row?;
        if hit.score >= min_score {
            hits.push(hit);
        }
    }
    Ok(hits)
}

impl Store {
    /// Replaces every chunk of `path` for `agent_id` and remembers `file_hash`; an empty
    /// `file_hash` removes the file from the index. One transaction.
    pub async fn memory_replace_file(
        &self,
        agent_id: &str,
        path: &str,
        file_hash: &str,
        chunks: Vec<MemoryChunkRow>,
        at_ms: i64,
    ) -> Result<()> {
        let (agent, path, hash) = (agent_id.to_owned(), path.to_owned(), file_hash.to_owned());
        self.write_with(move |c| {
            // Chunks go with their file (ON DELETE CASCADE, and the FTS trigger follows).
            c.prepare_cached("DELETE FROM memory_files WHERE agent_id = ?1 AND path = ?2")?
                .execute(params![agent, path])?;
            if hash.is_empty() {
                return Ok(());
            }
            c.prepare_cached(
                "INSERT INTO memory_files (agent_id, path, file_hash, indexed_at_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![agent, path, hash, at_ms])?;
            let mut insert = c.prepare_cached(
                "INSERT INTO memory_chunks (agent_id, path, start_line, end_line, heading, text, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for ch in &chunks {
                insert.execute(params![
                    agent,
                    path,
                    ch.start_line.max(1),
                    ch.end_line.max(ch.start_line.max(1)),
                    ch.heading,
                    ch.text,
                    ch.hash
                ])?;
            }
            Ok(())
        })
        .await
    }

    /// Indexed files of `agent_id` with the hash each was indexed at.
    pub async fn memory_indexed_files(&self, agent_id: &str) -> Result<Vec<(String, String)>> {
        let agent = agent_id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT path, file_hash FROM memory_files WHERE agent_id = ?1 ORDER BY path",
            )?;
            let rows = stmt.query_map([agent], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Up to `limit` chunks of `agent_id` matching `query` (free text), best first, with a
    /// score of at least `min_score`.
    pub async fn memory_search(
        &self,
        agent_id: &str,
        query: &str,
        limit: usize,
        min_score: f64,
    ) -> Result<Vec<MemoryHitRow>> {
        let (agent, query) = (agent_id.to_owned(), query.to_owned());
        self.read(move |c| search(c, &agent, &query, limit.max(1), min_score))
            .await
    }

    /// The chunks of one file, in line order.
    pub async fn memory_chunks(&self, agent_id: &str, path: &str) -> Result<Vec<MemoryChunkRow>> {
        let (agent, path) = (agent_id.to_owned(), path.to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT path, start_line, end_line, heading, text, hash FROM memory_chunks \
                 WHERE agent_id = ?1 AND path = ?2 ORDER BY start_line",
            )?;
            let rows = stmt.query_map(params![agent, path], |r| {
                Ok(MemoryChunkRow {
                    path: r.get(0)?,
                    start_line: r.get(1)?,
                    end_line: r.get(2)?,
                    heading: r.get(3)?,
                    text: r.get(4)?,
                    hash: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn query_terms_are_quoted_and_or_ed() {
        assert_eq!(
            fts_query("Deploy the API key?").as_deref(),
            Some("\"deploy\" OR \"the\" OR \"api\" OR \"key\"")
        );
        // FTS syntax is inert: quotes, NEAR, column filters, stars.
        assert_eq!(
            fts_query("\"x\" NEAR(a b) text:foo*").as_deref(),
            Some("\"x\" OR \"near\" OR \"a\" OR \"b\" OR \"text\" OR \"foo\"")
        );
        assert_eq!(fts_query("  ?!  "), None);
        assert_eq!(
            fts_query("Ünïcode straße").as_deref(),
            Some("\"ünïcode\" OR \"straße\"")
        );
    }
}
