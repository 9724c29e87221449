-- Inbound channel messages recorded before the platform is acknowledged (Telegram offset
-- advanced, Slack envelope acked) and marked handled once the agent accepted them, so a
-- crash in between replays them on the next start instead of losing them (issue 9).
-- `payload` is the normalised message (pincer-channels `ChannelMessage` JSON).
CREATE TABLE channel_inbound (
  channel_key TEXT NOT NULL,
  account_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  payload TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  handled_at INTEGER,
  PRIMARY KEY (channel_key, account_id, message_id)
) STRICT;
CREATE INDEX channel_inbound_pending
  ON channel_inbound (channel_key, account_id, received_at) WHERE handled_at IS NULL;
CREATE INDEX channel_inbound_handled ON channel_inbound (handled_at) WHERE handled_at IS NOT NULL;
