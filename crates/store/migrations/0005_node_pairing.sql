-- Node command-surface approval, the second pairing layer (protocol spec §4.6, §5.2 "Nodes").
--
-- A node is a paired device with the `node` role (paired_devices); its node id is the device id.
-- Device pairing says *who* may connect as a node; this layer says *what* it may be asked to
-- do: the caps, commands and permissions an operator approved (`node.pair.approve`).

-- The approved surface of a node (one row per node id). `commands_json`/`caps_json` are JSON
-- string arrays in declared order; `permissions_json` a JSON object of booleans (or NULL).
-- `display_name` is the approved name, replaced by `node.rename`.
CREATE TABLE node_surfaces (
  node_id TEXT NOT NULL PRIMARY KEY,
  display_name TEXT,
  platform TEXT,
  version TEXT,
  device_family TEXT,
  model_identifier TEXT,
  client_id TEXT,
  client_mode TEXT,
  remote_ip TEXT,
  caps_json TEXT NOT NULL,
  commands_json TEXT NOT NULL,
  permissions_json TEXT,
  created_at INTEGER NOT NULL,
  approved_at INTEGER NOT NULL,
  last_connected_at INTEGER,
  last_disconnected_at INTEGER,
  last_seen_at INTEGER,
  last_seen_reason TEXT
) STRICT;

-- A pending surface request: at most one per node (a reconnect with another surface refreshes
-- it in place). Only commands the platform allowlist admits are stored here.
CREATE TABLE node_pairing_requests (
  request_id TEXT NOT NULL PRIMARY KEY,
  node_id TEXT NOT NULL UNIQUE,
  display_name TEXT,
  platform TEXT,
  version TEXT,
  device_family TEXT,
  model_identifier TEXT,
  client_id TEXT,
  client_mode TEXT,
  remote_ip TEXT,
  caps_json TEXT NOT NULL,
  commands_json TEXT NOT NULL,
  permissions_json TEXT,
  silent INTEGER NOT NULL DEFAULT 0 CHECK (silent IN (0, 1)),
  created_at INTEGER NOT NULL
) STRICT;
