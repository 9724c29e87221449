-- Automations (runtime spec §9.1): job definitions, per-run receipts, monitor scratch.
--
-- `job_json` is the job definition (the spec's CronJob without `state`), `state_json` its
-- runtime state; both are owned by pincer-automations, the store only keeps them. The
-- projections (`enabled`, `next_run_at_ms`, ...) let the scheduler build its index at start
-- without parsing every definition.
CREATE TABLE cron_jobs (
  job_id TEXT NOT NULL PRIMARY KEY,
  declaration_key TEXT,
  agent_id TEXT,
  name TEXT NOT NULL,
  enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  payload_kind TEXT NOT NULL,
  job_json TEXT NOT NULL,
  state_json TEXT NOT NULL DEFAULT '{}',
  next_run_at_ms INTEGER,
  config_revision TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
) STRICT;
-- System-owned jobs (heartbeat monitors) are converged by their declaration key.
CREATE UNIQUE INDEX cron_jobs_by_declaration ON cron_jobs (declaration_key)
  WHERE declaration_key IS NOT NULL;
CREATE INDEX cron_jobs_by_created ON cron_jobs (created_at_ms, job_id);

-- One receipt per run. A receipt is written (status `running`) and committed *before* the
-- run starts, so a crash mid-run leaves a `running` row that the next start marks
-- `interrupted` instead of running the occurrence again. At most one `running` receipt per
-- job (per-job concurrency of one, enforced by the partial unique index).
CREATE TABLE cron_run_receipts (
  receipt_id TEXT NOT NULL PRIMARY KEY,
  job_id TEXT NOT NULL,
  agent_id TEXT,
  config_revision TEXT NOT NULL,
  run_trigger TEXT NOT NULL,
  scheduled_for_ms INTEGER,
  status TEXT NOT NULL,
  owner_pid INTEGER NOT NULL,
  started_at_ms INTEGER NOT NULL,
  finished_at_ms INTEGER,
  summary TEXT,
  error_text TEXT,
  CHECK (status IN ('running', 'ok', 'error', 'skipped', 'interrupted')),
  CHECK ((status = 'running') = (finished_at_ms IS NULL))
) STRICT;
CREATE UNIQUE INDEX cron_run_receipts_one_running ON cron_run_receipts (job_id)
  WHERE status = 'running';
CREATE INDEX cron_run_receipts_job_history
  ON cron_run_receipts (job_id, started_at_ms DESC, receipt_id DESC);
CREATE INDEX cron_run_receipts_history ON cron_run_receipts (started_at_ms DESC, receipt_id DESC);

-- Heartbeat monitor scratch (`cron.scratch.get|set`): text appended to the heartbeat prompt,
-- compare-and-swap by revision, at most 256 KiB.
CREATE TABLE cron_job_scratch (
  job_id TEXT NOT NULL PRIMARY KEY,
  content TEXT NOT NULL,
  revision INTEGER NOT NULL CHECK (revision >= 1),
  updated_at_ms INTEGER NOT NULL,
  CHECK (length(CAST(content AS BLOB)) <= 262144)
) STRICT;
