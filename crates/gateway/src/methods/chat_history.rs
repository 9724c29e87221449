//! `chat.history`: the messages of a session's current transcript, newest `limit` first
//! page (returned oldest first), with the reference's per-message `__openclaw` metadata
//! (`id`, `seq` = message ordinal, `recordTimestampMs`, `transcriptPosition`), `sessionInfo`,
//! `defaults`, `hasMore`, `totalMessages` and a `deltaCursor`.
//!
//! Cursors:
//! * `deltaCursor` (the reference's shape: base64 of `{agentId, generation, lastSeq,
//!   sessionId, version}`) passed back as `cursor` returns only what was appended since
//!   (`kind: "delta"`), or `kind: "reset"` when the session moved to another sessionId or
//!   more arrived than one page holds.
//! * `nextCursor` (Pincer extension, present when `hasMore`) pages back to older messages.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::params::CHAT_HISTORY_PARAMS;
use pincer_sessions::SessionKey;
use pincer_store::{EntryFilter, HistoryPage, HistoryQuery, SessionRecord, StoredEntry};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::dispatch::{MethodRegistry, OwnedCall, Reply};
use crate::methods::sessions::{canonical_key, store_error};
use crate::session_rows::{model_defaults, session_row, RowKind, RunFacts};
use crate::util;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 200;
/// Largest page.
pub const MAX_LIMIT: usize = 1000;

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("chat.history", &CHAT_HISTORY_PARAMS, |c| {
        Box::pin(chat_history(c))
    });
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    session_key: String,
    agent_id: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    max_bytes: Option<usize>,
    max_chars: Option<usize>,
    session_id: Option<String>,
}

/// The reference's delta cursor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaCursor {
    agent_id: String,
    generation: String,
    last_seq: i64,
    session_id: String,
    version: u32,
}

/// Pincer's page-back cursor: the store's cursor plus the ordinal of the first message of
/// the page that produced it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
struct PageCursor {
    v: u32,
    c: String,
    o: i64,
}

enum Cursor {
    Delta(DeltaCursor),
    Page(PageCursor),
}

fn generation_of(session_id: &str) -> String {
    let digest = Sha256::digest(session_id.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn encode_delta(c: &DeltaCursor) -> String {
    STANDARD
        .encode(serde_json::to_vec(c).unwrap_or_default())
        .trim_end_matches('=')
        .to_string()
}

fn parse_cursor(text: &str) -> Option<Cursor> {
    let text = text.trim();
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
        .or_else(|| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(text.trim_end_matches('='))
                .ok()
        })?;
    if let Ok(d) = serde_json::from_slice::<DeltaCursor>(&bytes) {
        return Some(Cursor::Delta(d));
    }
    serde_json::from_slice::<PageCursor>(&bytes)
        .ok()
        .filter(|p| p.v == 1)
        .map(Cursor::Page)
}

fn encode_page(c: &PageCursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

fn bad_cursor() -> ErrorShape {
    ErrorShape::invalid_request("invalid chat.history cursor")
}

/// One transcript `message` entry as a `chat.history` message: the entry's `message`
/// object with `__openclaw` metadata merged in.
fn history_message(
    entry: &StoredEntry,
    ordinal: i64,
    source: &str,
    max_chars: Option<usize>,
) -> Option<Value> {
    let v = entry.value().ok()?;
    let mut message = match v.get("message")? {
        Value::Object(m) => m.clone(),
        _ => return None,
    };
    if let Some(limit) = max_chars {
        truncate_text(&mut message, limit);
    }
    Some(wire_message(
        message,
        &MessagePosition {
            entry_id: entry.entry_id.as_deref(),
            created_at: entry.created_at,
            raw_seq: entry.seq,
            ordinal,
            source,
        },
    ))
}

/// Where a transcript message sits (its `__openclaw` facts).
pub(crate) struct MessagePosition<'a> {
    pub entry_id: Option<&'a str>,
    /// When the entry was written (epoch ms).
    pub created_at: i64,
    /// The entry's raw transcript seq.
    pub raw_seq: i64,
    /// The message's ordinal among the window's messages.
    pub ordinal: i64,
    /// [`source_of`] the sessionId.
    pub source: &'a str,
}

/// A stored `message` object as the wire shows it (`chat.history` messages, the message of
/// `session.message`): `__openclaw` carries `id`, `idempotencyKey`, `recordTimestampMs`,
/// `transcriptPosition` and `seq` (the ordinal).
pub(crate) fn wire_message(mut message: Map<String, Value>, at: &MessagePosition<'_>) -> Value {
    let mut meta = match message.remove("__openclaw") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(id) = at.entry_id {
        meta.insert("id".into(), json!(id));
    }
    if let Some(k) = message.get("idempotencyKey") {
        meta.insert("idempotencyKey".into(), k.clone());
    }
    meta.insert("recordTimestampMs".into(), json!(at.created_at));
    meta.insert(
        "transcriptPosition".into(),
        json!({"source": at.source, "rawSeq": at.raw_seq}),
    );
    meta.insert("seq".into(), json!(at.ordinal));
    message.insert("__openclaw".into(), Value::Object(meta));
    Value::Object(message)
}

fn truncate_text(message: &mut Map<String, Value>, limit: usize) {
    let cut = |s: &mut String| {
        if s.chars().count() > limit {
            let mut t: String = s.chars().take(limit.saturating_sub(1)).collect();
            t.push('…');
            *s = t;
        }
    };
    match message.get_mut("content") {
        Some(Value::String(s)) => cut(s),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                if let Some(Value::String(s)) = b.get_mut("text") {
                    cut(s);
                }
            }
        }
        _ => {}
    }
}

/// Stable, opaque transcript source id of a sessionId.
pub(crate) fn source_of(session_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(
        format!("transcript:{session_id}").as_bytes(),
    ))
}

async fn chat_history(call: OwnedCall) -> Reply {
    match history(&call).await {
        Ok(v) => Reply::json(&v),
        Err(e) => Reply::Error(e),
    }
}

async fn history(call: &OwnedCall) -> Result<Value, ErrorShape> {
    let p: Params = call.parse()?;
    let state = &call.state;
    let key = canonical_key(state, &p.session_key, p.agent_id.as_deref())?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let cursor = match p.cursor.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(text) => Some(parse_cursor(text).ok_or_else(bad_cursor)?),
        None => None,
    };
    let record = state.store.get_session(&key).await.map_err(store_error)?;
    let loaded = state.config.current();
    let cfg = &loaded.config;
    let agent_id = key
        .agent_id()
        .map(str::to_string)
        .unwrap_or_else(|| cfg.default_agent_id());
    let now_ms = util::now_ms();

    let Some(record) = record else {
        // No session yet: an empty history with the key's defaults.
        let mut out = Map::new();
        out.insert("sessionKey".into(), json!(p.session_key));
        out.insert("messages".into(), json!([]));
        out.insert("pendingInputs".into(), json!({"items": [], "total": 0}));
        out.insert("hasMore".into(), json!(false));
        out.insert("totalMessages".into(), json!(0));
        out.insert(
            "defaults".into(),
            model_defaults(cfg, &agent_id, RowKind::History),
        );
        out.insert(
            "sessionInfo".into(),
            session_row(
                cfg,
                &key,
                None,
                RowKind::History,
                &RunFacts {
                    active_run_ids: state.agent.active_run_ids(&key.to_string()),
                    active_leaf_entry_id: None,
                },
                now_ms,
            ),
        );
        if matches!(cursor, Some(Cursor::Delta(_))) {
            out.insert("kind".into(), json!("reset"));
        }
        return Ok(Value::Object(out));
    };
    let session_id = record.entry.session_id.clone();
    if let Some(requested) = &p.session_id {
        if *requested != session_id {
            return Err(ErrorShape::invalid_request(format!(
                "session {key} is at another sessionId than {requested}"
            )));
        }
    }

    let (kind, store_cursor, first_ordinal_hint) = match &cursor {
        None => (None, None, None),
        Some(Cursor::Page(pc)) => (None, Some(pc.c.clone()), Some(pc.o)),
        Some(Cursor::Delta(d)) if d.session_id != session_id => (Some("reset"), None, None),
        Some(Cursor::Delta(_)) => (Some("delta"), None, None),
    };
    let page: HistoryPage = state
        .store
        .history_of(
            &session_id,
            HistoryQuery {
                limit,
                cursor: store_cursor,
                filter: EntryFilter::Messages,
            },
        )
        .await
        .map_err(store_error)?;
    let total = page.counts.messages;
    // Ordinal of the page's first message: counted from the end for the newest page, from
    // the previous page's first ordinal when paging back.
    let first_ordinal = match first_ordinal_hint {
        Some(o) => o - page.entries.len() as i64,
        None => total - page.entries.len() as i64 + 1,
    };
    let mut kind = kind;
    let mut entries: Vec<(i64, &StoredEntry)> = page
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (first_ordinal + i as i64, e))
        .collect();
    if let (Some("delta"), Some(Cursor::Delta(d))) = (kind, &cursor) {
        let oldest = entries.first().map(|(_, e)| e.seq);
        entries.retain(|(_, e)| e.seq > d.last_seq);
        // More arrived than one page shows: the client must reload.
        if page.has_more && oldest.is_some_and(|s| s > d.last_seq) {
            kind = Some("reset");
        }
    }
    let source = source_of(&session_id);
    let mut messages: Vec<Value> = entries
        .iter()
        .filter_map(|(ord, e)| history_message(e, *ord, &source, p.max_chars))
        .collect();
    let mut has_more = page.has_more;
    let mut next_cursor = page.next_cursor.clone().map(|c| PageCursor {
        v: 1,
        c,
        o: first_ordinal,
    });
    if let Some(max) = p.max_bytes {
        // Keep the newest messages that fit.
        let mut size = 0usize;
        let mut keep = messages.len();
        for (i, m) in messages.iter().enumerate().rev() {
            size += m.to_string().len();
            if size > max {
                keep = messages.len() - i - 1;
                break;
            }
        }
        if keep < messages.len() {
            let dropped = messages.len() - keep;
            messages.drain(..dropped);
            has_more = true;
            if let Some((ord, e)) = entries.get(dropped) {
                // Page back from the first kept message.
                next_cursor = Some(PageCursor {
                    v: 1,
                    c: store_cursor_before(&session_id, e.seq),
                    o: *ord,
                });
            }
        }
    }
    let leaf = state
        .store
        .tail(&session_id, 1, EntryFilter::All)
        .await
        .ok()
        .and_then(|t| t.last().and_then(|e| e.entry_id.clone()));
    let runs = RunFacts {
        active_run_ids: state.agent.active_run_ids(&key.to_string()),
        active_leaf_entry_id: leaf,
    };
    let delta = DeltaCursor {
        agent_id: agent_id.clone(),
        generation: generation_of(&session_id),
        last_seq: page.counts.last_seq,
        session_id: session_id.clone(),
        version: 1,
    };
    let mut out = Map::new();
    if let Some(k) = kind {
        out.insert("kind".into(), json!(k));
    }
    out.insert("sessionKey".into(), json!(p.session_key));
    out.insert("sessionId".into(), json!(session_id));
    out.insert("messages".into(), Value::Array(messages));
    out.insert("pendingInputs".into(), json!({"items": [], "total": 0}));
    out.insert("deltaCursor".into(), json!(encode_delta(&delta)));
    if kind.is_none() && has_more {
        if let Some(nc) = &next_cursor {
            out.insert("nextCursor".into(), json!(encode_page(nc)));
        }
    }
    out.insert("hasMore".into(), json!(kind.is_none() && has_more));
    out.insert("totalMessages".into(), json!(total));
    out.insert(
        "defaults".into(),
        model_defaults(cfg, &agent_id, RowKind::History),
    );
    out.insert(
        "sessionInfo".into(),
        session_info(cfg, &key, &record, &runs, now_ms),
    );
    Ok(Value::Object(out))
}

fn session_info(
    cfg: &pincer_config::Config,
    key: &SessionKey,
    record: &SessionRecord,
    runs: &RunFacts,
    now_ms: u64,
) -> Value {
    session_row(cfg, key, Some(record), RowKind::History, runs, now_ms)
}

/// The store's cursor for "entries before `seq`" (`v1:<seq>:<sessionId>`, base64url).
fn store_cursor_before(session_id: &str, seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{seq}:{session_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_cursor_round_trips_in_the_reference_shape() {
        let c = DeltaCursor {
            agent_id: "main".into(),
            generation: generation_of("s1"),
            last_seq: 8,
            session_id: "s1".into(),
            version: 1,
        };
        let text = encode_delta(&c);
        let decoded = STANDARD
            .decode(format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4)))
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&decoded).unwrap_or_default();
        let keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            vec!["agentId", "generation", "lastSeq", "sessionId", "version"]
        );
        assert!(matches!(parse_cursor(&text), Some(Cursor::Delta(d)) if d == c));
        let page = PageCursor {
            v: 1,
            c: "abc".into(),
            o: 7,
        };
        assert!(matches!(parse_cursor(&encode_page(&page)), Some(Cursor::Page(p)) if p == page));
        assert!(parse_cursor("not a cursor").is_none());
    }

    #[test]
    fn the_reference_delta_cursor_parses() {
        let golden = "eyJhZ2VudElkIjoibWFpbiIsImdlbmVyYXRpb24iOiJmYzA1NzM1OWFlZGE0MGI1YTk2NWFiZDEzMzJhZjkyYSIsImxhc3RTZXEiOjgsInNlc3Npb25JZCI6IjYyZWI3NjE2LTFiNzgtNDFmNi1iMzJjLWNiNDgyMGNiZDczNiIsInZlcnNpb24iOjF9";
        match parse_cursor(golden) {
            Some(Cursor::Delta(d)) => {
                assert_eq!(d.last_seq, 8);
                assert_eq!(d.session_id, "62eb7616-1b78-41f6-b32c-cb4820cbd736");
            }
            _ => panic!("golden cursor did not parse"),
        }
    }
}
