-- Exec approvals (runtime spec §7.3, protocol §5.2 "Exec approvals") and the memory index
-- (runtime spec §4.8).

-- The approvals document (`exec.approvals.get|set`, allow-always grants): one row per config
-- key (`default` today). `raw_json` is the whole document as the gateway validated it.
CREATE TABLE exec_approvals_config (
  config_key TEXT NOT NULL PRIMARY KEY,
  raw_json TEXT NOT NULL,
  updated_at_ms INTEGER NOT NULL
) STRICT;

-- Approval requests: pending until decided by an operator, expired at their deadline, or
-- closed when the gateway restarts (nobody is waiting for them any more). Resolved rows are
-- kept for `exec.approval.resolve` repeats ("approval already resolved") and pruned later.
CREATE TABLE exec_approvals (
  approval_id TEXT NOT NULL PRIMARY KEY CHECK (length(approval_id) > 0),
  kind TEXT NOT NULL DEFAULT 'exec' CHECK (kind IN ('exec')),
  status TEXT NOT NULL CHECK (status IN ('pending', 'allowed', 'denied', 'expired', 'cancelled')),
  -- The `request` object of `exec.approval.requested`.
  request_json TEXT NOT NULL,
  agent_id TEXT,
  session_key TEXT,
  run_id TEXT,
  tool_call_id TEXT,
  requested_by_conn INTEGER,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  decision TEXT CHECK (decision IN ('allow-once', 'allow-always', 'deny')),
  terminal_reason TEXT CHECK (
    terminal_reason IN ('user', 'timeout', 'no-approval-route', 'run-aborted', 'gateway-restart')
  ),
  resolved_at_ms INTEGER,
  resolved_by TEXT,
  CHECK (expires_at_ms >= created_at_ms),
  CHECK ((status = 'pending') = (resolved_at_ms IS NULL))
) STRICT;

CREATE INDEX exec_approvals_status_expiry ON exec_approvals(status, expires_at_ms);
CREATE INDEX exec_approvals_resolved ON exec_approvals(resolved_at_ms);

-- Memory index: the memory files of each agent's workspace (`MEMORY.md`, `USER.md`,
-- `memory/**/*.md`) with the hash they were indexed at, their chunks (1-based inclusive line
-- ranges), and an FTS5 index over the chunks (external content, kept in step by triggers).
CREATE TABLE memory_files (
  agent_id TEXT NOT NULL,
  path TEXT NOT NULL,
  file_hash TEXT NOT NULL,
  indexed_at_ms INTEGER NOT NULL,
  PRIMARY KEY (agent_id, path)
) STRICT;

CREATE TABLE memory_chunks (
  chunk_id INTEGER PRIMARY KEY,
  agent_id TEXT NOT NULL,
  path TEXT NOT NULL,
  start_line INTEGER NOT NULL CHECK (start_line >= 1),
  end_line INTEGER NOT NULL CHECK (end_line >= start_line),
  heading TEXT,
  text TEXT NOT NULL,
  hash TEXT NOT NULL,
  FOREIGN KEY (agent_id, path) REFERENCES memory_files(agent_id, path) ON DELETE CASCADE
) STRICT;

CREATE INDEX memory_chunks_file ON memory_chunks(agent_id, path, start_line);

CREATE VIRTUAL TABLE memory_chunks_fts USING fts5(
  text,
  heading,
  path,
  content = 'memory_chunks',
  content_rowid = 'chunk_id',
  tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER memory_chunks_fts_insert AFTER INSERT ON memory_chunks BEGIN
  INSERT INTO memory_chunks_fts(rowid, text, heading, path)
    VALUES (new.chunk_id, new.text, new.heading, new.path);
END;

CREATE TRIGGER memory_chunks_fts_delete AFTER DELETE ON memory_chunks BEGIN
  INSERT INTO memory_chunks_fts(memory_chunks_fts, rowid, text, heading, path)
    VALUES ('delete', old.chunk_id, old.text, old.heading, old.path);
END;
