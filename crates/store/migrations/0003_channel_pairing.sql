-- Chat-channel DM pairing and per-account channel cursors (runtime spec §6.2, §2.2).
--
-- `channel_pairing_requests`: one pending request per (channel, account, sender). The code is
-- 8 characters from an alphabet without 0/O/1/I; requests expire (`expires_at`) and at most a
-- few are pending per channel account (enforced by the store API, not the schema).
CREATE TABLE channel_pairing_requests (
  channel_key TEXT NOT NULL,
  account_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  code TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  meta_json TEXT,
  PRIMARY KEY (channel_key, account_id, request_id)
) STRICT;
CREATE INDEX channel_pairing_requests_by_code ON channel_pairing_requests (channel_key, code);
CREATE INDEX channel_pairing_requests_by_created
  ON channel_pairing_requests (channel_key, account_id, created_at, request_id);

-- Approved DM senders (DM access only; group access is configuration).
CREATE TABLE channel_pairing_allow_entries (
  channel_key TEXT NOT NULL,
  account_id TEXT NOT NULL,
  entry TEXT NOT NULL,
  sort_order INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (channel_key, account_id, entry)
) STRICT;

-- Small durable per-account state of a channel adapter, e.g. Telegram's getUpdates offset.
CREATE TABLE channel_cursors (
  channel_key TEXT NOT NULL,
  account_id TEXT NOT NULL,
  cursor_key TEXT NOT NULL,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (channel_key, account_id, cursor_key)
) STRICT;
