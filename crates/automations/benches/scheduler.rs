//! Scheduler overhead with 10,000 automations (issue 10 targets: ≤ 2 MiB extra memory,
//! wake-ups only when a job is due).
//!
//! `cargo bench -p pincer-automations --bench scheduler` prints:
//! * RSS before/after the scheduler loaded 10,000 jobs from SQLite (the store, its page
//!   cache and the runtime are warmed first, so the delta is the scheduler's own), plus the
//!   index's own size estimate;
//! * a simulated day on the test clock (10,000 daily cron jobs spread over 1,440 distinct
//!   minutes, a no-op runner): timer wake-ups, wake-ups that found nothing due (must be 0),
//!   runs, and the wall time the day took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_automations::job::{JobContext, JobDefinition, JobId, JobState, Origin};
use pincer_automations::scheduler::row_from_job;
use pincer_automations::{
    CronJob, JobRunner, NewJob, RunOutcome, RunRequest, Scheduler, SchedulerConfig, TestClock,
};
use pincer_store::{Durability, Store, StoreOptions};

const JOBS: usize = 10_000;
const DAY_MS: i64 = 86_400_000;
const START_MS: i64 = 1_798_761_600_000; // 2027-01-01T00:00:00Z

struct Noop;

#[async_trait::async_trait]
impl JobRunner for Noop {
    async fn run(&self, _request: RunRequest) -> RunOutcome {
        RunOutcome::ok(None)
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ctx() -> JobContext {
    JobContext {
        default_agent_id: "main".into(),
        known_agents: None,
        default_tz: jiff::tz::TimeZone::UTC,
    }
}

fn job(i: usize) -> CronJob {
    let minute = i % 1_440;
    let def: JobDefinition = NewJob::from_value(serde_json::json!({
        "name": format!("job-{i}"),
        "schedule": {"kind": "cron", "expr": format!("{} {} * * *", minute % 60, minute / 60), "tz": "UTC", "staggerMs": 0},
        "wakeMode": "next-heartbeat",
        "payload": {"kind": "systemEvent", "text": format!("reminder {i}")}
    }))
    .unwrap()
    .into_definition(JobId::new_random(), START_MS, Origin::User, &ctx())
    .unwrap();
    let next = def
        .schedule
        .compile(&jiff::tz::TimeZone::UTC)
        .unwrap()
        .next_after(START_MS, &def.id.to_string());
    CronJob::new(
        def,
        JobState {
            next_run_at_ms: next,
            ..JobState::default()
        },
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path().join("pincer.sqlite"),
            StoreOptions {
                durability: Durability::Normal,
                readers: 1,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let rows: Vec<_> = (0..JOBS).map(|i| row_from_job(&job(i)).unwrap()).collect();
        store
            .cron_write(move |tx| {
                for r in &rows {
                    tx.put_job(r)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        // Warm the reader's page cache and the runtime with the same query the scheduler
        // runs, so the measured delta is the scheduler's own memory.
        for _ in 0..2 {
            let _ = store
                .cron_index(|r| (r.job_id.to_string(), r.enabled, r.next_run_at_ms))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = rss_kib();
        let clock = TestClock::new(START_MS);
        let loaded = Instant::now();
        let config = SchedulerConfig {
            job_context: ctx(),
            ..SchedulerConfig::default()
        };
        let (sched, report) = Scheduler::start(store.clone(), Arc::new(clock.clone()), Arc::new(Noop), config)
            .await
            .unwrap();
        let load_ms = loaded.elapsed().as_secs_f64() * 1e3;
        sched.settle().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after = rss_kib();
        let status = sched.status().await.unwrap();
        println!("scheduler/10k-jobs: loaded {} jobs in {load_ms:.1} ms", report.jobs);
        println!(
            "scheduler/10k-jobs: RSS {before} KiB -> {after} KiB, delta {} KiB ({:.2} MiB); index estimate {:.2} MiB ({} B/job)",
            after.saturating_sub(before),
            after.saturating_sub(before) as f64 / 1024.0,
            status.index_bytes as f64 / 1_048_576.0,
            status.index_bytes / JOBS
        );

        // A simulated day: step the test clock from deadline to deadline.
        let day = Instant::now();
        let end = START_MS + DAY_MS;
        let mut steps = 0u64;
        loop {
            sched.settle().await.unwrap();
            let Some(next) = clock.wait_for_sleeper(Duration::from_secs(5)).await else {
                break;
            };
            if next > end {
                break;
            }
            clock.set(next);
            steps += 1;
            // Let the timer (not a command) wake the scheduler: wait until it has handled
            // this deadline and armed the next one before asking it to settle.
            let limit = Instant::now() + Duration::from_secs(10);
            while clock.next_deadline().is_none_or(|d| d <= next) && Instant::now() < limit {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        sched.settle().await.unwrap();
        let stats = sched.stats();
        println!(
            "scheduler/simulated-day: {steps} timer deadlines reached, {} timer wake-ups, {} with nothing due, {} due batches, {} runs started, {} finished, {} overlaps skipped, wall {:.2} s",
            stats.timer_wakeups,
            stats.idle_timer_wakeups,
            stats.due_batches,
            stats.runs_started,
            stats.runs_finished,
            stats.overlaps_skipped,
            day.elapsed().as_secs_f64()
        );
        let distinct_minutes = 1_440;
        println!(
            "scheduler/simulated-day: expected {distinct_minutes} wake-ups (distinct due minutes) and {JOBS} runs"
        );
        // However many jobs: one timer, armed for the earliest due one.
        println!(
            "scheduler/timers: {} sleeper(s) registered for {JOBS} jobs, next deadline {} ms after the day",
            clock.sleeper_count(),
            clock.next_deadline().map_or(-1, |d| d - end)
        );
        sched.shutdown().await;
    });
}
