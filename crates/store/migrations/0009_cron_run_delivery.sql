-- Delivery outcome of each run (the reference's run-log fields `deliveryStatus`,
-- `deliveryError`, `deliverySuppressionReason`, `completionStatus`). They depend on what the
-- runner did and on the job's delivery settings at run time, so they are recorded with the
-- receipt instead of being derived later. Receipts written before this migration keep NULLs
-- (the wire leaves the fields out).
ALTER TABLE cron_run_receipts ADD COLUMN delivery_status TEXT
  CHECK (delivery_status IN ('delivered', 'not-delivered', 'not-requested', 'unknown'));
ALTER TABLE cron_run_receipts ADD COLUMN delivery_error TEXT;
ALTER TABLE cron_run_receipts ADD COLUMN delivery_suppression_reason TEXT
  CHECK (delivery_suppression_reason IN ('empty', 'silent', 'heartbeat', 'channel_transform'));
ALTER TABLE cron_run_receipts ADD COLUMN completion_status TEXT
  CHECK (completion_status IN ('succeeded', 'failed', 'unknown'));
