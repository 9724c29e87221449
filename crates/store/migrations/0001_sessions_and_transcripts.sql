-- Sessions: one row per canonical session key. `entry_json` is the SessionEntry JSON
-- (reference-compatible shape); the other columns are projections of it used by
-- sessions.list filters, sorting and search.
CREATE TABLE sessions (
  session_key TEXT NOT NULL PRIMARY KEY,
  agent_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  session_id TEXT NOT NULL,
  label TEXT,
  display_name TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_interaction_at INTEGER,
  archived INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
  entry_json TEXT NOT NULL
) STRICT;
CREATE INDEX sessions_by_updated ON sessions (updated_at DESC);
CREATE INDEX sessions_by_agent_updated ON sessions (agent_id, updated_at DESC);
CREATE INDEX sessions_by_interaction ON sessions (last_interaction_at DESC);
CREATE INDEX sessions_by_label ON sessions (label) WHERE label IS NOT NULL;

-- One row per sessionId (transcript generation) of a key, with why it began and ended.
-- Rows outlive their `sessions` row when a session is deleted without its transcript.
CREATE TABLE session_windows (
  session_id TEXT NOT NULL PRIMARY KEY,
  session_key TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  previous_session_id TEXT,
  reason TEXT NOT NULL CHECK (reason IN ('initial', 'reset', 'rollover', 'fork', 'compaction')),
  end_reason TEXT CHECK (end_reason IS NULL OR end_reason IN ('new', 'reset', 'idle', 'daily', 'cron-stale', 'deleted')),
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  last_seq INTEGER NOT NULL DEFAULT 0,
  entry_count INTEGER NOT NULL DEFAULT 0,
  message_count INTEGER NOT NULL DEFAULT 0,
  leaf_id TEXT
) STRICT;
CREATE INDEX session_windows_by_key ON session_windows (session_key, started_at);

-- Append-only transcript: entries are never updated; `seq` is 1, 2, 3 ... per sessionId.
CREATE TABLE transcript_entries (
  session_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  entry_type TEXT NOT NULL,
  entry_id TEXT,
  created_at INTEGER NOT NULL,
  entry_json TEXT NOT NULL,
  PRIMARY KEY (session_id, seq)
) STRICT;
CREATE INDEX transcript_messages ON transcript_entries (session_id, seq) WHERE entry_type = 'message';
