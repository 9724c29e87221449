-- The scheduler reads (job_id, enabled, next_run_at_ms) of every job at start. A covering
-- index lets SQLite scan that without paging the job definitions into its cache (10,000
-- jobs: ~0.6 MB of index pages instead of the whole table).
CREATE INDEX cron_jobs_schedule ON cron_jobs (job_id, enabled, next_run_at_ms);
