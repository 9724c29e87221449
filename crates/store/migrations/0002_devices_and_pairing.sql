-- Device pairing (protocol spec §4.5, §4.6).
--
-- One row per paired device id (hex SHA-256 of its Ed25519 public key). Approval is per role:
-- `roles_json` lists the approved roles, `scopes_json` the approved scope baseline (sorted,
-- unique). Client metadata (platform, deviceFamily) is pinned at approval time.
CREATE TABLE paired_devices (
  device_id TEXT NOT NULL PRIMARY KEY,
  public_key TEXT NOT NULL,
  display_name TEXT,
  label TEXT,
  platform TEXT,
  device_family TEXT,
  client_id TEXT,
  client_mode TEXT,
  browser_origin TEXT,
  remote_ip TEXT,
  role TEXT,
  roles_json TEXT NOT NULL,
  scopes_json TEXT NOT NULL,
  approved_via TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  approved_at INTEGER NOT NULL,
  last_seen_at INTEGER,
  last_seen_reason TEXT
) STRICT;

-- Device tokens, one per (device, role). Only the SHA-256 of the bearer token is stored: a
-- copy of this database never yields a usable token.
CREATE TABLE device_tokens (
  device_id TEXT NOT NULL REFERENCES paired_devices (device_id) ON DELETE CASCADE,
  role TEXT NOT NULL,
  token_sha256 BLOB NOT NULL CHECK (length(token_sha256) = 32),
  scopes_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  rotated_at INTEGER,
  revoked_at INTEGER,
  last_used_at INTEGER,
  PRIMARY KEY (device_id, role)
) STRICT;

-- Pending pairing requests (new devices, role/scope/metadata upgrades). They expire.
CREATE TABLE device_pairing_requests (
  request_id TEXT NOT NULL PRIMARY KEY,
  device_id TEXT NOT NULL,
  public_key TEXT NOT NULL,
  display_name TEXT,
  platform TEXT,
  device_family TEXT,
  client_id TEXT,
  client_mode TEXT,
  browser_origin TEXT,
  role TEXT,
  roles_json TEXT NOT NULL,
  scopes_json TEXT NOT NULL,
  remote_ip TEXT,
  silent INTEGER NOT NULL DEFAULT 0 CHECK (silent IN (0, 1)),
  is_repair INTEGER NOT NULL DEFAULT 0 CHECK (is_repair IN (0, 1)),
  reason TEXT,
  created_at INTEGER NOT NULL,
  refreshed_at INTEGER,
  expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX device_pairing_requests_by_device ON device_pairing_requests (device_id, created_at);
CREATE INDEX device_pairing_requests_by_expiry ON device_pairing_requests (expires_at);
