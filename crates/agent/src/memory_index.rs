//! The memory index tools search: `pincer-store`'s FTS5 tables behind the tools crate's
//! [`MemoryIndex`] trait. Chunking and the incremental sync (by file hash) are the tools
//! crate's (`memory::sync_memory_index`); this adapter stores and searches.

use async_trait::async_trait;
use pincer_store::{MemoryChunkRow, Store};
use pincer_tools::host::{HostError, MemoryChunk, MemoryHit, MemoryIndex, MemoryQuery};

/// Longest snippet returned per hit (characters).
const SNIPPET_CHARS: usize = 700;

/// [`MemoryIndex`] over the gateway's SQLite store.
#[derive(Clone)]
pub struct StoreMemoryIndex {
    store: Store,
}

impl StoreMemoryIndex {
    pub fn new(store: Store) -> Self {
        StoreMemoryIndex { store }
    }
}

fn failed(e: pincer_store::StoreError) -> HostError {
    HostError::Failed(format!("memory index: {e}"))
}

fn line(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[async_trait]
impl MemoryIndex for StoreMemoryIndex {
    async fn replace_file(
        &self,
        agent_id: &str,
        path: &str,
        file_hash: &str,
        chunks: Vec<MemoryChunk>,
    ) -> Result<(), HostError> {
        let rows = chunks
            .into_iter()
            .map(|c| MemoryChunkRow {
                path: c.path,
                start_line: line(c.start_line),
                end_line: line(c.end_line),
                heading: c.heading,
                text: c.text,
                hash: c.hash,
            })
            .collect();
        self.store
            .memory_replace_file(
                agent_id,
                path,
                file_hash,
                rows,
                crate::util::now_ms() as i64,
            )
            .await
            .map_err(failed)
    }

    async fn indexed_files(&self, agent_id: &str) -> Result<Vec<(String, String)>, HostError> {
        self.store
            .memory_indexed_files(agent_id)
            .await
            .map_err(failed)
    }

    async fn search(&self, query: &MemoryQuery) -> Result<Vec<MemoryHit>, HostError> {
        let hits = self
            .store
            .memory_search(
                &query.agent_id,
                &query.query,
                query.max_results.max(1),
                query.min_score.unwrap_or(0.0),
            )
            .await
            .map_err(failed)?;
        Ok(hits
            .into_iter()
            .map(|h| MemoryHit {
                path: h.path,
                start_line: h.start_line as usize,
                end_line: h.end_line as usize,
                score: (h.score * 1000.0).round() / 1000.0,
                snippet: snippet(&h.text),
            })
            .collect())
    }

    async fn get(&self, agent_id: &str, path: &str) -> Result<Vec<MemoryChunk>, HostError> {
        let rows = self
            .store
            .memory_chunks(agent_id, path)
            .await
            .map_err(failed)?;
        Ok(rows
            .into_iter()
            .map(|r| MemoryChunk {
                path: r.path,
                start_line: r.start_line as usize,
                end_line: r.end_line as usize,
                heading: r.heading,
                text: r.text,
                hash: r.hash,
            })
            .collect())
    }
}

/// Brings the agent's memory index up to date in the background at the start of a run that
/// offers `memory_search`, so the first search finds a warm index (the search itself syncs
/// again, cheaply: unchanged files are skipped by hash). One sync per agent at a time.
pub(crate) fn sync_in_background(ctx: &pincer_tools::ToolContext) {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static RUNNING: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(index) = ctx.hosts.memory.clone() else {
        return;
    };
    let agent = ctx.agent_id.to_string();
    let running = RUNNING.get_or_init(|| Mutex::new(HashSet::new()));
    if !running
        .lock()
        .map(|mut r| r.insert(agent.clone()))
        .unwrap_or(false)
    {
        return;
    }
    let workspace = std::sync::Arc::clone(&ctx.workspace);
    tokio::spawn(async move {
        if let Err(e) =
            pincer_tools::memory::sync_memory_index(workspace, &agent, index.as_ref()).await
        {
            tracing::debug!(agent = %agent, error = %e, "memory index sync failed");
        }
        if let Ok(mut r) = running.lock() {
            r.remove(&agent);
        }
    });
}
