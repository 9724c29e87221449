//! Compaction (runtime.md §4.7): the older part of a session's context is replaced by a
//! model-written summary. A `compaction` entry `{summary, firstKeptEntryId, tokensBefore}`
//! is appended; later turns see the summary followed by the entries from `firstKeptEntryId`
//! on. The cut is always at a user message, so tool calls and their results stay together.

use std::sync::Arc;

use pincer_providers::{
    CallOptions, CompletionRequest, Message, ProviderError, ResolvedModel, ThinkingLevel,
};
use pincer_sessions::transcript::{CompactionEntry, EntryMeta};
use pincer_sessions::{SessionKey, TranscriptEntry};
use pincer_store::{AppendOptions, StoreError};
use serde_json::Map;
use tokio_util::sync::CancellationToken;

use crate::context::{self, summary_message, Context};
use crate::events::RunSource;
use crate::request::RunRequest;
use crate::runtime::Inner;
use crate::util::now_i64;

/// Longest `/compact` focus instruction (code points).
pub const MAX_INSTRUCTIONS_CHARS: usize = 800;

const SUMMARY_SYSTEM: &str =
    "You condense conversations between a user and an AI assistant so the \
assistant can continue later without the full history. Write a faithful summary in the \
conversation's language: the user's goals and preferences, decisions made, facts learned, \
files and commands involved, work finished, and work still open. Keep names, numbers, paths \
and identifiers exactly. Do not add anything that did not happen. Use short paragraphs or \
bullet points; no preamble.";

/// Why a compaction did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("nothing to compact yet")]
    NothingToCompact,
    #[error("no session for this key")]
    NoSession,
    #[error("the summary model failed: {0}")]
    Provider(ProviderError),
    #[error("the summary model returned no text")]
    EmptySummary,
    #[error("no model is available: {0}")]
    NoModel(String),
    #[error("the session store failed: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Failed(String),
}

/// What a manual compaction did (`sessions.compact`, `/compact`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    pub compacted: bool,
    pub reason: Option<String>,
    pub tokens_before: u64,
    pub tokens_after: u64,
}

/// Summarises the part of `context` before the cut, appends the compaction entry and
/// replaces that part of `context` with the summary.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn compact_context(
    inner: &Inner,
    key: &SessionKey,
    session_id: &str,
    context: &mut Context,
    chain: &[ResolvedModel],
    window: u64,
    tokens_before: u64,
    instructions: Option<&str>,
    cancel: &CancellationToken,
    force: bool,
) -> Result<(), CompactError> {
    // Forced (manual, or the provider said the prompt is too long): keep only the newest turn.
    let keep = if force {
        0
    } else {
        context::keep_recent_tokens(window.max(4_000))
    };
    let cut = context::choose_cut(&context.items, keep).ok_or(CompactError::NothingToCompact)?;
    let first_kept = context.items[cut].entry_id.clone();
    let mut older: Vec<Message> = Vec::with_capacity(cut + 1);
    if let Some(summary) = &context.summary {
        older.push(Message::user(summary_message(summary)));
    }
    older.extend(context.items[..cut].iter().map(|i| i.message.clone()));
    let max_chars = usize::try_from(window)
        .unwrap_or(usize::MAX)
        .saturating_mul(2)
        .max(8_000);
    let rendered = context::render_for_summary(&older, max_chars);
    let mut prompt =
        format!("Summarise the conversation below.\n\n<conversation>\n{rendered}</conversation>");
    if let Some(focus) = instructions.map(str::trim).filter(|f| !f.is_empty()) {
        let focus: String = focus.chars().take(MAX_INSTRUCTIONS_CHARS).collect();
        prompt.push_str(&format!("\n\nPay particular attention to: {focus}"));
    }
    let request = CompletionRequest {
        system_prompt: Some(SUMMARY_SYSTEM.into()),
        messages: vec![Message::user(prompt)],
        tools: Default::default(),
        max_tokens: Some(u32::try_from((window / 8).clamp(512, 8_192)).unwrap_or(4_096)),
        thinking: ThinkingLevel::Off,
        temperature: None,
    };
    let mut options = CallOptions {
        cancel: cancel.child_token(),
        idle_timeout: inner.options.idle_timeout,
        ..CallOptions::default()
    };
    options.request_timeout = Some(std::time::Duration::from_secs(180));
    if let Some((rate, transient)) = inner.options.retry {
        options.rate_limit_retry = rate;
        options.transient_retry = transient;
    }
    inner.client.ready().await;
    let (message, error) =
        pincer_providers::collect(inner.client.stream_chain(chain, &request, &options)).await;
    if let Some(e) = error {
        return Err(CompactError::Provider(e));
    }
    let summary = message.text().trim().to_owned();
    if summary.is_empty() {
        return Err(CompactError::EmptySummary);
    }
    let now = now_i64();
    let entry = TranscriptEntry::Compaction(CompactionEntry {
        summary: summary.clone(),
        first_kept_entry_id: first_kept,
        tokens_before,
        meta: EntryMeta::new(None, now),
        extra: Map::new(),
    });
    inner
        .store
        .append(
            key,
            vec![entry],
            AppendOptions {
                chain: true,
                touch: None,
                now_ms: now,
                expected_session_id: Some(session_id.to_owned()),
            },
        )
        .await?;
    context.summary = Some(summary);
    context.items.drain(..cut);
    inner
        .store
        .update_session(key, now, |e| {
            e.compaction_count = Some(e.compaction_count.unwrap_or(0) + 1);
            Ok(())
        })
        .await?;
    Ok(())
}

/// `sessions.compact`: runs `/compact` through the session's lane and reports the result.
pub(crate) async fn compact_now(
    inner: &Arc<Inner>,
    key: &SessionKey,
    instructions: Option<&str>,
) -> Result<CompactReport, CompactError> {
    let runtime = crate::AgentRuntime {
        inner: inner.clone(),
    };
    let message = match instructions.map(str::trim).filter(|i| !i.is_empty()) {
        Some(i) => format!("/compact {i}"),
        None => "/compact".to_owned(),
    };
    let run_id = format!("compact-{}", uuid::Uuid::new_v4());
    let mut req = RunRequest::new(run_id, key.clone(), message, RunSource::Agent);
    req.queue_mode = Some(pincer_config::model::messages::QueueMode::Followup);
    let mut submitted = runtime
        .submit(req)
        .await
        .map_err(|e| CompactError::Failed(e.to_string()))?;
    let outcome = submitted.handle.outcome().await;
    let report = outcome
        .compaction
        .clone()
        .ok_or_else(|| CompactError::Failed(outcome.summary()))?;
    Ok(report)
}
