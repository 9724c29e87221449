//! Read queries (run on pooled read connections via `spawn_blocking`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use pincer_sessions::WindowReason;
use rusqlite::types::ToSql;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::error::{Result, StoreError};
use crate::types::{
    EntryFilter, HistoryPage, HistoryQuery, ListQuery, Preview, PreviewItem, SessionPage,
    SessionRecord, SessionWindow, SortBy, StoredEntry, TranscriptCounts,
};
use crate::writer::load_record;

pub(crate) const DEFAULT_LIST_LIMIT: usize = 100;
pub(crate) const MAX_LIST_LIMIT: usize = 1000;
pub(crate) const MAX_HISTORY_LIMIT: usize = 1000;

pub(crate) fn get_session(conn: &Connection, key: &str) -> Result<Option<SessionRecord>> {
    load_record(conn, key)
}

/// Placeholders (`?3, ?4, …`) for `values`, pushed onto `args`.
fn in_list(values: &[String], args: &mut Vec<Box<dyn ToSql>>) -> String {
    let mut ps = Vec::with_capacity(values.len());
    for v in values {
        args.push(Box::new(v.clone()));
        ps.push(format!("?{}", args.len()));
    }
    ps.join(", ")
}

pub(crate) fn list_sessions(conn: &Connection, q: &ListQuery) -> Result<SessionPage> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let arg = |v: Box<dyn ToSql>, args: &mut Vec<Box<dyn ToSql>>| {
        args.push(v);
        format!("?{}", args.len())
    };
    if let Some(agent) = &q.agent_id {
        let p = arg(Box::new(agent.clone()), &mut args);
        clauses.push(format!("agent_id = {p}"));
    }
    if !q.agent_ids.is_empty() {
        let ps = in_list(&q.agent_ids, &mut args);
        clauses.push(format!("agent_id IN ({ps})"));
    }
    if let Some(keys) = &q.keys {
        if keys.is_empty() {
            clauses.push("0".to_string());
        } else {
            let ps = in_list(keys, &mut args);
            clauses.push(format!("session_key IN ({ps})"));
        }
    }
    if let Some(pinned) = q.pinned {
        let test = if pinned { "IS NOT NULL" } else { "IS NULL" };
        clauses.push(format!("json_extract(entry_json, '$.pinnedAt') {test}"));
    }
    if let Some(label) = &q.label {
        let p = arg(Box::new(label.clone()), &mut args);
        clauses.push(format!("label = {p}"));
    }
    if let Some(search) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let p = arg(Box::new(search.to_lowercase()), &mut args);
        clauses.push(format!(
            "(instr(lower(session_key), {p}) > 0 OR instr(lower(coalesce(label, '')), {p}) > 0 \
             OR instr(lower(coalesce(display_name, '')), {p}) > 0)"
        ));
    }
    if let Some(minutes) = q.active_minutes {
        let since = q
            .now_ms
            .saturating_sub((minutes as i64).saturating_mul(60_000));
        let p = arg(Box::new(since), &mut args);
        clauses.push(format!("updated_at >= {p}"));
    }
    if !q.kinds.is_empty() {
        let ps = in_list(&q.kinds, &mut args);
        clauses.push(format!("kind IN ({ps})"));
    }
    if !q.exclude_kinds.is_empty() {
        let ps = in_list(&q.exclude_kinds, &mut args);
        clauses.push(format!("kind NOT IN ({ps})"));
    }
    if let Some(archived) = q.archived {
        clauses.push(format!("archived = {}", i64::from(archived)));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let order = match q.sort_by {
        SortBy::UpdatedAt => "updated_at DESC, session_key",
        SortBy::LastInteractionAt => "last_interaction_at DESC, updated_at DESC, session_key",
    };
    let limit = q
        .limit
        .unwrap_or(DEFAULT_LIST_LIMIT)
        .clamp(1, MAX_LIST_LIMIT);
    let total: i64 = {
        let arg_refs: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
        conn.prepare_cached(&format!("SELECT COUNT(*) FROM sessions {where_sql}"))?
            .query_row(arg_refs.as_slice(), |r| r.get(0))?
    };
    let lp = arg(Box::new(limit as i64), &mut args);
    let op = arg(Box::new(q.offset as i64), &mut args);
    let sql = format!(
        "SELECT session_key, agent_id, kind, entry_json FROM sessions {where_sql} ORDER BY {order} LIMIT {lp} OFFSET {op}"
    );
    let arg_refs: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(arg_refs.as_slice(), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut sessions = Vec::new();
    for row in rows {
        let (key, agent_id, kind, json) = row?;
        let entry = serde_json::from_str(&json).map_err(|source| StoreError::CorruptEntry {
            key: key.clone(),
            source,
        })?;
        sessions.push(SessionRecord {
            key,
            agent_id,
            kind,
            entry,
        });
    }
    let total_count = usize::try_from(total).unwrap_or(0);
    let end = q.offset + sessions.len();
    let has_more = end < total_count;
    Ok(SessionPage {
        sessions,
        total_count,
        limit_applied: limit,
        next_offset: has_more.then_some(end),
        has_more,
    })
}

pub(crate) fn current_session_id(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT session_id FROM sessions WHERE session_key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn counts(conn: &Connection, session_id: &str) -> Result<TranscriptCounts> {
    Ok(conn
        .prepare_cached("SELECT entry_count, message_count, last_seq FROM session_windows WHERE session_id = ?1")?
        .query_row([session_id], |r| {
            Ok(TranscriptCounts {
                entries: r.get(0)?,
                messages: r.get(1)?,
                last_seq: r.get(2)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

pub(crate) fn encode_cursor(session_id: &str, before_seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{before_seq}:{session_id}"))
}

pub(crate) fn decode_cursor(cursor: &str, session_id: &str) -> Result<i64> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| StoreError::BadCursor)?;
    let text = String::from_utf8(raw).map_err(|_| StoreError::BadCursor)?;
    let rest = text.strip_prefix("v1:").ok_or(StoreError::BadCursor)?;
    let (seq, sid) = rest.split_once(':').ok_or(StoreError::BadCursor)?;
    let seq: i64 = seq.parse().map_err(|_| StoreError::BadCursor)?;
    if sid != session_id || seq < 1 {
        return Err(StoreError::BadCursor);
    }
    Ok(seq)
}

pub(crate) fn history(
    conn: &Connection,
    session_id: &str,
    q: &HistoryQuery,
) -> Result<HistoryPage> {
    let limit = q.limit.clamp(1, MAX_HISTORY_LIMIT);
    let before = match &q.cursor {
        Some(c) => decode_cursor(c, session_id)?,
        None => i64::MAX,
    };
    let sql = match q.filter {
        EntryFilter::All => {
            "SELECT seq, entry_type, entry_id, created_at, entry_json FROM transcript_entries \
             WHERE session_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
        }
        EntryFilter::Messages => {
            "SELECT seq, entry_type, entry_id, created_at, entry_json FROM transcript_entries \
             WHERE session_id = ?1 AND seq < ?2 AND entry_type = 'message' ORDER BY seq DESC LIMIT ?3"
        }
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![session_id, before, (limit + 1) as i64], |r| {
        Ok(StoredEntry {
            seq: r.get(0)?,
            entry_type: r.get(1)?,
            entry_id: r.get(2)?,
            created_at: r.get(3)?,
            json: r.get(4)?,
        })
    })?;
    let mut entries = rows.collect::<Result<Vec<_>, _>>()?;
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    entries.reverse();
    let next_cursor = if has_more {
        entries.first().map(|e| encode_cursor(session_id, e.seq))
    } else {
        None
    };
    Ok(HistoryPage {
        session_id: session_id.to_string(),
        entries,
        has_more,
        next_cursor,
        counts: counts(conn, session_id)?,
    })
}

pub(crate) fn windows(conn: &Connection, key: &str) -> Result<Vec<SessionWindow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT session_id, session_key, previous_session_id, reason, end_reason, started_at, ended_at, \
         entry_count, message_count, last_seq FROM session_windows WHERE session_key = ?1 ORDER BY started_at, rowid",
    )?;
    let rows = stmt.query_map([key], |r| {
        let reason: String = r.get(3)?;
        Ok(SessionWindow {
            session_id: r.get(0)?,
            session_key: r.get(1)?,
            previous_session_id: r.get(2)?,
            reason: WindowReason::parse(&reason).unwrap_or(WindowReason::Initial),
            end_reason: r.get(4)?,
            started_at: r.get(5)?,
            ended_at: r.get(6)?,
            counts: TranscriptCounts {
                entries: r.get(7)?,
                messages: r.get(8)?,
                last_seq: r.get(9)?,
            },
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(crate) fn preview(
    conn: &Connection,
    keys: &[String],
    limit: usize,
    max_chars: usize,
) -> Result<Vec<Preview>> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(session_id) = current_session_id(conn, key)? else {
            out.push(Preview {
                key: key.clone(),
                status: "missing",
                items: Vec::new(),
            });
            continue;
        };
        let page = history(
            conn,
            &session_id,
            &HistoryQuery {
                limit: limit.max(1),
                cursor: None,
                filter: EntryFilter::Messages,
            },
        )?;
        let items = page
            .entries
            .iter()
            .filter_map(|e| e.value().ok())
            .filter_map(|v| preview_item(&v, max_chars))
            .collect();
        out.push(Preview {
            key: key.clone(),
            status: "ok",
            items,
        });
    }
    Ok(out)
}

/// `{role, text}` of a message entry: string content, or the text blocks of an array.
pub(crate) fn preview_item(entry: &Value, max_chars: usize) -> Option<PreviewItem> {
    let message = entry.get("message")?;
    let role = message.get("role")?.as_str()?.to_string();
    let text = match message.get("content")? {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    let text = if text.chars().count() > max_chars {
        let mut t: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        text
    };
    Some(PreviewItem { role, text })
}
