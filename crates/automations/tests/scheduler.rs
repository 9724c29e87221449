//! Scheduler behaviour on a controllable clock with a real SQLite store in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pincer_automations::heartbeat::resolve_heartbeats;
use pincer_automations::{
    AutomationError, Clock, CronAction, CronEvent, CronJob, DeliveryAttempt, JobContext, JobId,
    JobRunner, NewJob, Origin, RunMode, RunOutcome, RunRequest, RunStatus, RunTrigger, Scheduler,
    SchedulerConfig, StartReport, TestClock,
};
use pincer_store::{CronRunQuery, CronRunStatus, Durability, Store, StoreOptions};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, Semaphore};

fn ms(iso: &str) -> i64 {
    jiff::Timestamp::from_str(iso).unwrap().as_millisecond()
}

fn iso(ms: i64) -> String {
    pincer_automations::schedule::format_iso(ms)
}

/// Records every run; runs of jobs with a gate wait for a permit; outcomes are scripted by
/// job name (default: ok).
#[derive(Default)]
struct Runner {
    started: Mutex<Vec<RunRequest>>,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    outcomes: Mutex<HashMap<String, RunOutcome>>,
    notify: Mutex<Option<mpsc::UnboundedSender<String>>>,
}

impl Runner {
    fn gate(&self, name: &str) -> Arc<Semaphore> {
        let sem = Arc::new(Semaphore::new(0));
        self.gates.lock().unwrap().insert(name.into(), sem.clone());
        sem
    }
    fn fail(&self, name: &str, outcome: RunOutcome) {
        self.outcomes.lock().unwrap().insert(name.into(), outcome);
    }
    fn runs(&self) -> Vec<(String, i64, RunTrigger)> {
        self.started
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.job.def.name.clone(), r.started_at_ms, r.trigger))
            .collect()
    }
    fn times(&self, name: &str) -> Vec<String> {
        self.runs()
            .into_iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, t, _)| iso(t))
            .collect()
    }
    fn watch(&self) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.notify.lock().unwrap() = Some(tx);
        rx
    }
}

#[async_trait::async_trait]
impl JobRunner for Runner {
    async fn run(&self, request: RunRequest) -> RunOutcome {
        let name = request.job.def.name.clone();
        self.started.lock().unwrap().push(request);
        if let Some(tx) = self.notify.lock().unwrap().as_ref() {
            let _ = tx.send(name.clone());
        }
        let gate = self.gates.lock().unwrap().get(&name).cloned();
        if let Some(gate) = gate {
            let _permit = gate.acquire().await;
        }
        let scripted = self.outcomes.lock().unwrap().get(&name).cloned();
        scripted.unwrap_or_else(|| RunOutcome::ok(Some(format!("{name} done"))))
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    clock: TestClock,
    runner: Arc<Runner>,
    store: Store,
    sched: Scheduler,
    report: StartReport,
    events: broadcast::Receiver<CronEvent>,
}

fn config(tz: &str) -> SchedulerConfig {
    SchedulerConfig {
        job_context: JobContext {
            default_agent_id: "main".into(),
            known_agents: Some(vec!["main".into(), "ops".into()]),
            default_tz: jiff::tz::TimeZone::get(tz).unwrap(),
        },
        owner_pid: 4242,
        ..SchedulerConfig::default()
    }
}

fn open_store(path: &Path) -> Store {
    Store::open(
        path,
        StoreOptions {
            durability: Durability::Normal,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

impl Harness {
    async fn new(start: &str) -> Harness {
        Harness::with_config(start, config("UTC")).await
    }

    async fn with_config(start: &str, cfg: SchedulerConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("pincer.sqlite");
        let clock = TestClock::new(ms(start));
        let runner = Arc::new(Runner::default());
        let store = open_store(&path);
        let (sched, report) =
            Scheduler::start(store.clone(), Arc::new(clock.clone()), runner.clone(), cfg)
                .await
                .unwrap();
        let events = sched.subscribe();
        Harness {
            _dir: dir,
            path,
            clock,
            runner,
            store,
            sched,
            report,
            events,
        }
    }

    /// Simulates a process stop (runs in flight are dropped, receipts stay `running`) and a
    /// new start at `at` with a fresh store handle and runner.
    async fn restart(self, at: &str, cfg: SchedulerConfig) -> Harness {
        let Harness {
            _dir,
            path,
            clock,
            sched,
            store,
            ..
        } = self;
        sched.shutdown().await;
        drop(sched);
        tokio::time::sleep(Duration::from_millis(20)).await;
        store.close().await;
        clock.set(ms(at));
        let runner = Arc::new(Runner::default());
        let store = open_store(&path);
        let (sched, report) =
            Scheduler::start(store.clone(), Arc::new(clock.clone()), runner.clone(), cfg)
                .await
                .unwrap();
        let events = sched.subscribe();
        Harness {
            _dir,
            path,
            clock,
            runner,
            store,
            sched,
            report,
            events,
        }
    }

    async fn add(&self, v: Value) -> CronJob {
        self.sched
            .add(NewJob::from_value(v).unwrap(), Origin::User)
            .await
            .unwrap()
    }

    async fn settle(&self) {
        tokio::time::timeout(Duration::from_secs(20), self.sched.settle())
            .await
            .expect("scheduler did not settle")
            .unwrap();
    }

    /// Moves the clock to `at` and lets the scheduler finish what became due.
    async fn at(&self, at: &str) {
        self.clock.set(ms(at));
        self.settle().await;
    }

    /// Steps the clock from due time to due time until `until`, settling after each step.
    async fn run_until(&self, until: &str) {
        let end = ms(until);
        loop {
            self.settle().await;
            let next = self.sched.status().await.unwrap().next_wake_at_ms;
            match next {
                Some(t) if t <= end => self.clock.set(t.max(self.clock.now_ms())),
                _ => break,
            }
        }
        self.clock.set(end);
        self.settle().await;
    }

    async fn job(&self, id: JobId) -> CronJob {
        self.sched.get(id).await.unwrap().expect("job exists")
    }

    fn drain_events(&mut self) -> Vec<CronEvent> {
        let mut out = Vec::new();
        while let Ok(ev) = self.events.try_recv() {
            out.push(ev);
        }
        out
    }
}

fn system_event(name: &str, schedule: Value) -> Value {
    json!({"name": name, "schedule": schedule, "wakeMode": "next-heartbeat",
           "payload": {"kind": "systemEvent", "text": format!("{name} fired")}})
}

fn agent_turn(name: &str, schedule: Value) -> Value {
    json!({"name": name, "schedule": schedule,
           "payload": {"kind": "agentTurn", "message": format!("{name} please")}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_runs_on_time_records_history_and_emits_events() {
    let mut h = Harness::new("2026-05-01T10:00:00Z").await;
    let job = h
        .add(system_event(
            "tick",
            json!({"kind": "every", "everyMs": 600_000}),
        ))
        .await;
    assert_eq!(job.state.next_run_at_ms, Some(ms("2026-05-01T10:10:00Z")));
    h.at("2026-05-01T10:09:59Z").await;
    assert!(h.runner.runs().is_empty(), "nothing is due before 10:10");
    h.at("2026-05-01T10:10:00Z").await;
    h.run_until("2026-05-01T10:30:00Z").await;
    assert_eq!(
        h.runner.times("tick"),
        [
            "2026-05-01T10:10:00Z",
            "2026-05-01T10:20:00Z",
            "2026-05-01T10:30:00Z"
        ]
    );
    let after = h.job(job.def.id).await;
    assert_eq!(after.state.last_status, Some(RunStatus::Ok));
    assert_eq!(after.state.last_run_at_ms, Some(ms("2026-05-01T10:30:00Z")));
    assert_eq!(after.state.next_run_at_ms, Some(ms("2026-05-01T10:40:00Z")));
    assert_eq!(after.state.last_summary.as_deref(), Some("tick done"));
    assert!(after.state.running_at_ms.is_none());
    let runs = h
        .sched
        .runs(CronRunQuery {
            job_id: Some(job.def.id.to_string()),
            limit: 10,
            ..CronRunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.total, 3);
    assert!(runs
        .runs
        .iter()
        .all(|r| r.status == CronRunStatus::Ok && r.trigger == "schedule"));
    assert_eq!(
        runs.runs[0].scheduled_for_ms,
        Some(ms("2026-05-01T10:30:00Z"))
    );
    assert_eq!(runs.runs[0].owner_pid, 4242);
    let entry = pincer_automations::scheduler::run_entry_wire(&runs.runs[0]);
    assert_eq!(entry["action"], "finished");
    assert_eq!(entry["status"], "ok");
    assert_eq!(entry["jobId"], job.def.id.to_string());
    assert_eq!(entry["ts"], ms("2026-05-01T10:30:00Z"));
    assert_eq!(entry["durationMs"], 0);
    assert_eq!(entry["summary"], "tick done");
    // A system event asks for no delivery: the CLI's `cron run --wait` reads it as succeeded.
    assert_eq!(entry["deliveryStatus"], "not-requested");
    assert_eq!(entry["completionStatus"], "succeeded");
    assert!(entry.get("delivered").is_none(), "{entry}");
    assert!(entry.get("deliveryError").is_none(), "{entry}");
    // Scratch round trip with compare-and-swap.
    assert_eq!(
        h.sched
            .set_scratch(job.def.id, Some("- inbox".into()), Some(0), 1)
            .await
            .unwrap(),
        1
    );
    assert!(h
        .sched
        .set_scratch(job.def.id, Some("x".into()), Some(0), 2)
        .await
        .is_err());
    assert_eq!(
        h.sched.scratch(job.def.id).await.unwrap().unwrap().content,
        "- inbox"
    );
    let events = h.drain_events();
    let finished = events
        .iter()
        .find(|e| e.action == CronAction::Finished)
        .expect("a finished event");
    let wire = serde_json::to_value(finished).unwrap();
    assert_eq!(wire["deliveryStatus"], "not-requested", "{wire}");
    assert_eq!(wire["completionStatus"], "succeeded", "{wire}");
    let actions: Vec<CronAction> = events.iter().map(|e| e.action).collect();
    assert_eq!(&actions[..2], &[CronAction::Added, CronAction::Scheduled]);
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == CronAction::Started)
            .count(),
        3
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == CronAction::Finished)
            .count(),
        3
    );
    let wire = serde_json::to_value(CronEvent::new("x", CronAction::Finished)).unwrap();
    assert_eq!(wire, json!({"jobId": "x", "action": "finished"}));
    let stats = h.sched.stats();
    assert_eq!(stats.idle_timer_wakeups, 0, "{stats:?}");
    assert_eq!(stats.runs_finished, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_jobs_fire_in_their_own_time_zones() {
    let h = Harness::new("2026-07-03T00:00:00Z").await; // a Friday
    h.add(system_event(
        "berlin",
        json!({"kind": "cron", "expr": "0 8 * * 1-5", "tz": "Europe/Berlin"}),
    ))
    .await;
    h.add(agent_turn(
        "tokyo",
        json!({"kind": "cron", "expr": "0 8 * * 1-5", "tz": "Asia/Tokyo"}),
    ))
    .await;
    h.add(system_event(
        "seconds",
        json!({"kind": "cron", "expr": "30 15 9 * * *", "tz": "America/New_York"}),
    ))
    .await;
    h.run_until("2026-07-07T12:00:00Z").await;
    assert_eq!(
        h.runner.times("berlin"),
        [
            "2026-07-03T06:00:00Z",
            "2026-07-06T06:00:00Z",
            "2026-07-07T06:00:00Z"
        ]
    );
    // Tokyo's Monday 08:00 is Sunday 23:00 UTC.
    assert_eq!(
        h.runner.times("tokyo"),
        ["2026-07-05T23:00:00Z", "2026-07-06T23:00:00Z"]
    );
    assert_eq!(
        h.runner.times("seconds"),
        [
            "2026-07-03T13:15:30Z",
            "2026-07-04T13:15:30Z",
            "2026-07-05T13:15:30Z",
            "2026-07-06T13:15:30Z",
        ]
    );
    assert_eq!(h.sched.stats().idle_timer_wakeups, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dst_changes_in_both_directions_with_restarts_in_between() {
    let cfg = || config("America/New_York");
    let h = Harness::with_config("2026-03-07T12:00:00Z", cfg()).await;
    let spring = h
        .add(system_event(
            "spring",
            json!({"kind": "cron", "expr": "30 2 * * *"}),
        ))
        .await;
    let fall = h
        .add(system_event(
            "fall",
            json!({"kind": "cron", "expr": "30 1 * * *"}),
        ))
        .await;
    let half_hourly = h
        .add(system_event(
            "half-hourly",
            json!({"kind": "cron", "expr": "*/30 1-2 * * *"}),
        ))
        .await;
    assert_eq!(
        spring.state.next_run_at_ms,
        Some(ms("2026-03-08T07:00:00Z"))
    );
    // Spring forward: 02:30 does not exist on 2026-03-08; the job runs at 03:00 EDT.
    h.run_until("2026-03-09T12:00:00Z").await;
    assert_eq!(
        h.runner.times("spring"),
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    );
    // Restart (store reopened) in between the two changes.
    let h = h.restart("2026-10-31T12:00:00Z", cfg()).await;
    assert_eq!(h.report.jobs, 3);
    // Nothing ran while "down" except a catch-up of each missed job, once.
    let caught: Vec<&str> = h
        .report
        .catch_up
        .iter()
        .map(|c| c.job_id.as_str())
        .collect();
    assert_eq!(caught.len(), 3, "{:?}", h.report.catch_up);
    h.run_until("2026-11-02T12:00:00Z").await;
    // Fall back: 01:30 happens twice on 2026-11-01; the fixed-time job runs once.
    let fall_times: Vec<String> = h
        .runner
        .times("fall")
        .into_iter()
        .filter(|t| t.as_str() >= "2026-11-01")
        .collect();
    assert_eq!(fall_times, ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]);
    // The interval job runs on both passes of the repeated hour.
    let hh: Vec<String> = h
        .runner
        .times("half-hourly")
        .into_iter()
        .filter(|t| t.starts_with("2026-11-01"))
        .collect();
    assert_eq!(
        hh,
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T07:30:00Z",
        ]
    );
    let _ = (fall, half_hourly);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_runs_once_then_is_deleted_or_kept_disabled() {
    let mut h = Harness::new("2026-05-01T10:00:00Z").await;
    let gone = h
        .add(system_event(
            "remind",
            json!({"kind": "at", "at": "2026-05-01T10:05:00Z"}),
        ))
        .await;
    let kept = h
        .add(
            json!({"name": "keep", "schedule": {"kind": "at", "at": "5m"}, "deleteAfterRun": false,
            "payload": {"kind": "systemEvent", "text": "x"}}),
        )
        .await;
    h.run_until("2026-05-02T00:00:00Z").await;
    assert_eq!(h.runner.times("remind"), ["2026-05-01T10:05:00Z"]);
    assert_eq!(h.runner.times("keep"), ["2026-05-01T10:05:00Z"]);
    assert!(h.sched.get(gone.def.id).await.unwrap().is_none());
    let k = h.job(kept.def.id).await;
    assert!(!k.def.enabled);
    assert_eq!(k.state.next_run_at_ms, None);
    assert!(h
        .drain_events()
        .iter()
        .any(|e| e.action == CronAction::Removed && e.job_id == gone.def.id.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_runs_after_downtime_run_once_by_policy() {
    let h = Harness::new("2026-05-01T10:00:00Z").await;
    let ev = h
        .add(system_event(
            "events",
            json!({"kind": "every", "everyMs": 600_000}),
        ))
        .await;
    let turn = h
        .add(agent_turn(
            "turn",
            json!({"kind": "every", "everyMs": 600_000}),
        ))
        .await;
    let once = h
        .add(system_event(
            "once",
            json!({"kind": "at", "at": "2026-05-01T10:30:00Z"}),
        ))
        .await;
    let mut crowd = Vec::new();
    for i in 0..6 {
        crowd.push(
            h.add(system_event(
                &format!("crowd{i}"),
                json!({"kind": "every", "everyMs": 3_600_000}),
            ))
            .await,
        );
    }
    // Down from 10:00 until 13:00: "events" missed 18 occurrences.
    let h = h.restart("2026-05-01T13:00:00Z", config("UTC")).await;
    let decision = |id: JobId| {
        h.report
            .catch_up
            .iter()
            .find(|c| c.job_id == id.to_string())
            .cloned()
            .unwrap()
    };
    let now = ms("2026-05-01T13:00:00Z");
    assert_eq!(decision(ev.def.id).run_at_ms, Some(now));
    assert_eq!(decision(once.def.id).run_at_ms, Some(now));
    // Agent work waits two minutes after start.
    assert_eq!(decision(turn.def.id).run_at_ms, Some(now + 120_000));
    // Nine missed jobs without agent work: five now, the rest 5 s apart.
    let mut times: Vec<i64> = h
        .report
        .catch_up
        .iter()
        .filter(|c| c.job_id != turn.def.id.to_string())
        .filter_map(|c| c.run_at_ms)
        .collect();
    times.sort();
    assert_eq!(
        times,
        [
            now,
            now,
            now,
            now,
            now,
            now + 5_000,
            now + 10_000,
            now + 15_000
        ]
    );
    h.run_until("2026-05-01T13:05:00Z").await;
    assert_eq!(h.runner.times("events"), ["2026-05-01T13:00:00Z"]);
    assert_eq!(h.runner.times("once"), ["2026-05-01T13:00:00Z"]);
    assert_eq!(h.runner.times("turn"), ["2026-05-01T13:02:00Z"]);
    assert!(h
        .runner
        .runs()
        .iter()
        .filter(|r| r.0 != "turn")
        .all(|r| r.2 == RunTrigger::CatchUp));
    // Afterwards the regular cadence resumes from now.
    assert_eq!(
        h.job(ev.def.id).await.state.next_run_at_ms,
        Some(ms("2026-05-01T13:10:00Z"))
    );
    let _ = crowd;

    // With cron.skipMissedJobs recurring jobs skip to their next occurrence; one-shots
    // still catch up.
    let h2 = Harness::new("2026-05-01T10:00:00Z").await;
    let rec = h2
        .add(system_event(
            "rec",
            json!({"kind": "every", "everyMs": 600_000}),
        ))
        .await;
    let shot = h2
        .add(system_event(
            "shot",
            json!({"kind": "at", "at": "2026-05-01T10:30:00Z"}),
        ))
        .await;
    let mut cfg = config("UTC");
    cfg.catch_up.skip_missed_recurring = true;
    let h2 = h2.restart("2026-05-01T13:00:00Z", cfg).await;
    h2.settle().await;
    assert!(h2.runner.times("rec").is_empty());
    assert_eq!(h2.runner.times("shot"), ["2026-05-01T13:00:00Z"]);
    assert_eq!(
        h2.job(rec.def.id).await.state.next_run_at_ms,
        Some(ms("2026-05-01T13:10:00Z"))
    );
    let _ = shot;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_run_marks_the_run_interrupted_and_never_runs_it_twice() {
    let h = Harness::new("2026-05-01T10:00:00Z").await;
    let job = h
        .add(system_event(
            "slow",
            json!({"kind": "every", "everyMs": 600_000}),
        ))
        .await;
    let shot = h
        .add(system_event(
            "slow-shot",
            json!({"kind": "at", "at": "2026-05-01T10:10:00Z"}),
        ))
        .await;
    let _gate = h.runner.gate("slow");
    let _gate2 = h.runner.gate("slow-shot");
    let mut started = h.runner.watch();
    h.clock.set(ms("2026-05-01T10:10:00Z"));
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), started.recv())
            .await
            .unwrap();
    }
    let running = h.job(job.def.id).await;
    assert_eq!(
        running.state.running_at_ms,
        Some(ms("2026-05-01T10:10:00Z"))
    );
    // The claim already moved the schedule past the occurrence.
    assert_eq!(
        running.state.next_run_at_ms,
        Some(ms("2026-05-01T10:20:00Z"))
    );
    // The process dies mid-run and comes back at 10:15 (before the next occurrence).
    let h = h.restart("2026-05-01T10:15:00Z", config("UTC")).await;
    assert_eq!(h.report.interrupted.len(), 2, "{:?}", h.report.interrupted);
    assert!(h.report.catch_up.is_empty(), "{:?}", h.report.catch_up);
    h.settle().await;
    assert!(
        h.runner.runs().is_empty(),
        "the interrupted occurrence must not run again"
    );
    let after = h.job(job.def.id).await;
    assert_eq!(after.state.last_status, Some(RunStatus::Error));
    assert!(after
        .state
        .last_error
        .as_deref()
        .unwrap()
        .contains("interrupted"));
    assert!(after.state.running_at_ms.is_none());
    let one_shot = h.job(shot.def.id).await;
    assert!(
        !one_shot.def.enabled,
        "an interrupted one-shot is kept disabled, not replayed"
    );
    let runs = h
        .sched
        .runs(CronRunQuery {
            statuses: vec![CronRunStatus::Interrupted],
            limit: 10,
            ..CronRunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.total, 2);
    for r in &runs.runs {
        assert_eq!(r.delivery.status.as_deref(), Some("unknown"));
        assert_eq!(r.delivery.completion_status.as_deref(), Some("failed"));
        assert!(r.delivery.error.as_deref().unwrap().contains("interrupted"));
    }
    // A second restart does not count it again.
    let h = h.restart("2026-05-01T10:16:00Z", config("UTC")).await;
    assert!(h.report.interrupted.is_empty());
    // The next occurrence runs normally.
    h.run_until("2026-05-01T10:20:00Z").await;
    assert_eq!(h.runner.times("slow"), ["2026-05-01T10:20:00Z"]);
    assert!(h.runner.times("slow-shot").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_update_and_remove_rearm_the_timer() {
    let h = Harness::new("2026-05-01T10:00:00Z").await;
    assert_eq!(h.sched.status().await.unwrap().next_wake_at_ms, None);
    let job = h
        .add(system_event(
            "job",
            json!({"kind": "every", "everyMs": 3_600_000}),
        ))
        .await;
    assert_eq!(
        h.sched.status().await.unwrap().next_wake_at_ms,
        Some(ms("2026-05-01T11:00:00Z"))
    );
    // The scheduler is asleep until 11:00; an update to every 5 min re-arms it for 10:05.
    h.clock.wait_for_sleeper(Duration::from_secs(5)).await;
    assert_eq!(h.clock.next_deadline(), Some(ms("2026-05-01T11:00:00Z")));
    let patch = json!({"schedule": {"everyMs": 300_000}});
    let updated = h
        .sched
        .update(
            job.def.id,
            patch.as_object().unwrap().clone(),
            Some(job.config_revision.clone()),
            Origin::User,
        )
        .await
        .unwrap();
    assert_ne!(updated.config_revision, job.config_revision);
    assert_eq!(
        updated.state.next_run_at_ms,
        Some(ms("2026-05-01T10:05:00Z"))
    );
    h.settle().await;
    h.clock.wait_for_sleeper(Duration::from_secs(5)).await;
    assert_eq!(h.clock.next_deadline(), Some(ms("2026-05-01T10:05:00Z")));
    h.run_until("2026-05-01T10:10:00Z").await;
    assert_eq!(
        h.runner.times("job"),
        ["2026-05-01T10:05:00Z", "2026-05-01T10:10:00Z"]
    );
    // A stale revision is refused.
    let err = h
        .sched
        .update(
            job.def.id,
            json!({"name": "x"}).as_object().unwrap().clone(),
            Some(job.config_revision.clone()),
            Origin::User,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AutomationError::Conflict { .. }), "{err}");
    // Disabling disarms; removing forgets.
    let off = h
        .sched
        .update(
            job.def.id,
            json!({"enabled": false}).as_object().unwrap().clone(),
            None,
            Origin::User,
        )
        .await
        .unwrap();
    assert_eq!(off.state.next_run_at_ms, None);
    assert_eq!(h.sched.status().await.unwrap().next_wake_at_ms, None);
    assert!(h.sched.remove(job.def.id, Origin::User).await.unwrap());
    assert!(!h.sched.remove(job.def.id, Origin::User).await.unwrap());
    h.settle().await;
    assert_eq!(
        h.clock.sleeper_count(),
        0,
        "no timer is armed when nothing is scheduled"
    );
    h.clock.set(ms("2026-05-02T10:00:00Z"));
    h.settle().await;
    assert_eq!(h.runner.runs().len(), 2);
    assert_eq!(h.sched.stats().idle_timer_wakeups, 0);
    let missing = h
        .sched
        .update(job.def.id, serde_json::Map::new(), None, Origin::User)
        .await;
    let Err(err @ AutomationError::NotFound(_)) = missing else {
        panic!("expected NotFound, got {missing:?}");
    };
    // The same text as the wire error, so logs and answers agree.
    assert_eq!(
        err.to_string(),
        format!("cron job not found: {}", job.def.id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_per_job_at_a_time_and_a_global_cap() {
    let mut cfg = config("UTC");
    cfg.max_concurrent_runs = 2;
    let h = Harness::with_config("2026-05-01T10:00:00Z", cfg).await;
    let slow = h
        .add(system_event(
            "slow",
            json!({"kind": "every", "everyMs": 60_000}),
        ))
        .await;
    let gate = h.runner.gate("slow");
    let mut started = h.runner.watch();
    h.clock.set(ms("2026-05-01T10:01:00Z"));
    tokio::time::timeout(Duration::from_secs(10), started.recv())
        .await
        .unwrap();
    // Three more occurrences pass while the first run is still going.
    for t in [
        "2026-05-01T10:02:00Z",
        "2026-05-01T10:03:00Z",
        "2026-05-01T10:04:00Z",
    ] {
        h.clock.set(ms(t));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(h.runner.times("slow"), ["2026-05-01T10:01:00Z"]);
    // A manual run of a running job is refused.
    let err = h
        .sched
        .run_now(slow.def.id, RunMode::Force)
        .await
        .unwrap_err();
    assert!(matches!(err, AutomationError::AlreadyRunning(_)), "{err}");
    gate.add_permits(1);
    h.settle().await;
    // The overlapped occurrences were skipped; the schedule continues after the run.
    let after = h.job(slow.def.id).await;
    assert_eq!(after.state.next_run_at_ms, Some(ms("2026-05-01T10:05:00Z")));
    gate.add_permits(100);
    h.run_until("2026-05-01T10:05:00Z").await;
    assert_eq!(
        h.runner.times("slow"),
        ["2026-05-01T10:01:00Z", "2026-05-01T10:05:00Z"]
    );

    // Global cap: three jobs due together, two slots.
    h.sched
        .update(
            slow.def.id,
            json!({"enabled": false}).as_object().unwrap().clone(),
            None,
            Origin::User,
        )
        .await
        .unwrap();
    for name in ["a", "b", "c"] {
        h.runner.gate(name);
        h.add(system_event(
            name,
            json!({"kind": "at", "at": "2026-05-01T11:00:00Z"}),
        ))
        .await;
    }
    h.clock.set(ms("2026-05-01T11:00:00Z"));
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), started.recv())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let in_flight: Vec<String> = h
        .runner
        .runs()
        .into_iter()
        .map(|r| r.0)
        .filter(|n| n.len() == 1)
        .collect();
    assert_eq!(in_flight.len(), 2, "{in_flight:?}");
    assert_eq!(h.sched.status().await.unwrap().running, 2);
    let first = in_flight[0].clone();
    h.runner.gates.lock().unwrap()[&first].add_permits(1);
    tokio::time::timeout(Duration::from_secs(10), started.recv())
        .await
        .unwrap();
    for g in h.runner.gates.lock().unwrap().values() {
        g.add_permits(10);
    }
    h.settle().await;
    assert_eq!(h.runner.runs().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_runs_errors_backoff_and_timeouts() {
    let h = Harness::new("2026-05-01T10:00:00Z").await;
    let job = h
        .add(system_event(
            "job",
            json!({"kind": "every", "everyMs": 3_600_000}),
        ))
        .await;
    // Manual: out of band, the natural schedule is kept.
    let ack = h.sched.run_now(job.def.id, RunMode::Force).await.unwrap();
    assert!(ack.run_id.is_some());
    h.settle().await;
    assert_eq!(h.runner.runs()[0].2, RunTrigger::Manual);
    assert_eq!(
        h.job(job.def.id).await.state.next_run_at_ms,
        Some(ms("2026-05-01T11:00:00Z"))
    );
    let not_due = h.sched.run_now(job.def.id, RunMode::Due).await.unwrap();
    assert_eq!(not_due.reason.as_deref(), Some("not-due"));
    // Announced: the caller has the answer before the run's `started` event exists.
    let mut events = h.sched.subscribe();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let ack = h
        .sched
        .run_now_announced(
            job.def.id,
            RunMode::Force,
            Box::new(move |ack| {
                let started_yet = std::iter::from_fn(|| events.try_recv().ok())
                    .any(|e| e.action == CronAction::Started);
                seen_tx.send((ack.clone(), started_yet)).unwrap();
            }),
        )
        .await
        .unwrap();
    let (announced, started_yet) = seen_rx.try_recv().expect("announced before the answer");
    assert_eq!((announced, started_yet), (ack, false));
    h.settle().await;
    assert_eq!(h.runner.runs().len(), 2);
    let not_due = h
        .sched
        .run_now_announced(
            job.def.id,
            RunMode::Due,
            Box::new(|_| panic!("not claimed")),
        )
        .await
        .unwrap();
    assert_eq!(not_due.reason.as_deref(), Some("not-due"));
    // Errors back off: 30 s after a failed 11:00 run the job is retried... no earlier than
    // its next occurrence; with a 1-minute job the backoff dominates.
    let flaky = h
        .add(system_event(
            "flaky",
            json!({"kind": "every", "everyMs": 10_000}),
        ))
        .await;
    h.runner.fail("flaky", RunOutcome::error("provider down"));
    h.at("2026-05-01T10:00:10Z").await;
    let f = h.job(flaky.def.id).await;
    assert_eq!(f.state.consecutive_errors, 1);
    assert_eq!(f.state.last_error.as_deref(), Some("provider down"));
    assert_eq!(f.state.next_run_at_ms, Some(ms("2026-05-01T10:00:40Z")));
    h.at("2026-05-01T10:00:40Z").await;
    assert_eq!(
        h.job(flaky.def.id).await.state.next_run_at_ms,
        Some(ms("2026-05-01T10:01:40Z"))
    );
    h.runner.fail("flaky", RunOutcome::ok(None));
    h.at("2026-05-01T10:01:40Z").await;
    let f = h.job(flaky.def.id).await;
    assert_eq!(f.state.consecutive_errors, 0);
    assert_eq!(f.state.next_run_at_ms, Some(ms("2026-05-01T10:01:50Z")));
    h.sched
        .update(
            flaky.def.id,
            json!({"enabled": false}).as_object().unwrap().clone(),
            None,
            Origin::User,
        )
        .await
        .unwrap();

    // Timeout: the scheduler stops waiting at the deadline.
    let hang = h
        .add(
            json!({"name": "hang", "schedule": {"kind": "at", "at": "2026-05-01T10:05:00Z"},
            "payload": {"kind": "agentTurn", "message": "x", "timeoutSeconds": 5}}),
        )
        .await;
    let _gate = h.runner.gate("hang");
    let mut started = h.runner.watch();
    h.clock.set(ms("2026-05-01T10:05:00Z"));
    tokio::time::timeout(Duration::from_secs(10), started.recv())
        .await
        .unwrap();
    h.at("2026-05-01T10:05:05Z").await;
    let runs = h
        .sched
        .runs(CronRunQuery {
            job_id: Some(hang.def.id.to_string()),
            limit: 5,
            ..CronRunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.runs[0].status, CronRunStatus::Error);
    assert!(runs.runs[0].error.as_deref().unwrap().contains("timed out"));
    assert_eq!(
        runs.runs[0].finished_at_ms,
        Some(ms("2026-05-01T10:05:05Z"))
    );
    // An agent turn announces by default; the run ended before anyone could tell.
    let entry = pincer_automations::scheduler::run_entry_wire(&runs.runs[0]);
    assert_eq!(entry["deliveryStatus"], "unknown", "{entry}");
    assert_eq!(entry["completionStatus"], "failed", "{entry}");
    assert!(entry["deliveryError"]
        .as_str()
        .unwrap()
        .contains("timed out"));

    // What the runner reports about delivery is recorded with the receipt.
    for (name, outcome, delivery, completion, delivered, error) in [
        (
            "lost",
            RunOutcome::ok(Some("hi".into()))
                .with_delivery(DeliveryAttempt::Failed("no route to telegram".into())),
            "not-delivered",
            "failed",
            Some(false),
            Some("no route to telegram"),
        ),
        (
            "quiet",
            RunOutcome::ok(None).with_delivery(DeliveryAttempt::Suppressed(
                pincer_automations::SuppressionReason::Silent,
            )),
            "not-delivered",
            "succeeded",
            Some(false),
            None,
        ),
        (
            "sent",
            RunOutcome::ok(Some("hi".into())).with_delivery(DeliveryAttempt::Delivered),
            "delivered",
            "succeeded",
            Some(true),
            None,
        ),
    ] {
        let job = h
            .add(agent_turn(
                name,
                json!({"kind": "every", "everyMs": 3_600_000}),
            ))
            .await;
        h.runner.fail(name, outcome);
        h.sched.run_now(job.def.id, RunMode::Force).await.unwrap();
        h.settle().await;
        let runs = h
            .sched
            .runs(CronRunQuery {
                job_id: Some(job.def.id.to_string()),
                delivery_statuses: vec![delivery.to_string()],
                limit: 5,
                ..CronRunQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(runs.total, 1, "{name}");
        let entry = pincer_automations::scheduler::run_entry_wire(&runs.runs[0]);
        assert_eq!(entry["deliveryStatus"], delivery, "{name}: {entry}");
        assert_eq!(entry["completionStatus"], completion, "{name}: {entry}");
        assert_eq!(entry.get("delivered").and_then(Value::as_bool), delivered);
        assert_eq!(entry.get("deliveryError").and_then(Value::as_str), error);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_is_a_converged_system_job_with_wakes() {
    let h = Harness::new("2026-05-01T10:00:00Z").await;
    let settings = resolve_heartbeats(&pincer_config::Config::default()).unwrap();
    assert_eq!(settings.len(), 1);
    assert_eq!(settings[0].agent_id, "main");
    assert_eq!(settings[0].every_ms, Some(1_800_000));
    let specs: Vec<_> = settings.iter().map(|s| s.job_spec()).collect();
    let jobs = h
        .sched
        .converge_system_jobs("heartbeat:", specs.clone())
        .await
        .unwrap();
    let hb = &jobs[0];
    assert_eq!(hb.def.declaration_key.as_deref(), Some("heartbeat:main"));
    assert_eq!(hb.def.name, "heartbeat-main");
    assert_eq!(hb.def.display_name.as_deref(), Some("Heartbeat (main)"));
    let wire = serde_json::to_value(hb).unwrap();
    assert_eq!(wire["payload"], json!({"kind": "heartbeat"}));
    assert_eq!(wire["wakeMode"], "next-heartbeat");
    assert_eq!(wire["sessionTarget"], "main");
    assert_eq!(hb.state.next_run_at_ms, Some(ms("2026-05-01T10:30:00Z")));
    // Converging again changes nothing.
    let again = h
        .sched
        .converge_system_jobs("heartbeat:", specs)
        .await
        .unwrap();
    assert_eq!(again[0].config_revision, hb.config_revision);
    assert_eq!(again[0].def.id, hb.def.id);
    // Users cannot remove or edit it.
    assert!(matches!(
        h.sched.remove(hb.def.id, Origin::User).await,
        Err(AutomationError::SystemOwned(_))
    ));
    h.run_until("2026-05-01T11:00:00Z").await;
    assert_eq!(
        h.runner.times("heartbeat-main"),
        ["2026-05-01T10:30:00Z", "2026-05-01T11:00:00Z"]
    );
    // A wake runs it out of band without moving the cadence.
    assert!(h
        .sched
        .wake_at(hb.def.id, ms("2026-05-01T11:10:00Z"))
        .await
        .unwrap());
    h.run_until("2026-05-01T11:20:00Z").await;
    assert_eq!(h.runner.runs().last().unwrap().2, RunTrigger::Wake);
    assert_eq!(
        h.job(hb.def.id).await.state.next_run_at_ms,
        Some(ms("2026-05-01T11:30:00Z"))
    );
    // every: 0m keeps the job but disables it; a wake still runs it.
    let mut off = pincer_config::Config::default();
    off.agents.defaults.heartbeat = Some(pincer_config::model::agents::HeartbeatConfig {
        every: Some("0m".into()),
        ..Default::default()
    });
    let specs: Vec<_> = resolve_heartbeats(&off)
        .unwrap()
        .iter()
        .map(|s| s.job_spec())
        .collect();
    let jobs = h
        .sched
        .converge_system_jobs("heartbeat:", specs)
        .await
        .unwrap();
    assert!(!jobs[0].def.enabled);
    assert_eq!(jobs[0].def.id, hb.def.id);
    h.sched
        .wake_at(hb.def.id, ms("2026-05-01T11:25:00Z"))
        .await
        .unwrap();
    h.run_until("2026-05-01T13:00:00Z").await;
    let runs = h.runner.times("heartbeat-main");
    assert_eq!(runs.last().unwrap(), "2026-05-01T11:25:00Z");
    assert_eq!(runs.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_disabled_pauses_scheduled_runs_but_not_wakes_or_manual_runs() {
    let cfg: pincer_config::Config = serde_json::from_value(json!({
        "cron": {"enabled": false, "skipMissedJobs": true}
    }))
    .unwrap();
    let from_cfg = SchedulerConfig::from_config(&cfg);
    assert!(!from_cfg.enabled);
    assert!(from_cfg.catch_up.skip_missed_recurring);
    assert_eq!(from_cfg.job_context.default_agent_id, "main");
    let mut off = config("UTC");
    off.enabled = false;
    let h = Harness::with_config("2026-05-01T10:00:00Z", off).await;
    let job = h
        .add(system_event(
            "paused",
            json!({"kind": "every", "everyMs": 60_000}),
        ))
        .await;
    assert_eq!(job.state.next_run_at_ms, Some(ms("2026-05-01T10:01:00Z")));
    h.at("2026-05-01T11:00:00Z").await;
    assert!(h.runner.runs().is_empty());
    assert_eq!(h.sched.status().await.unwrap().next_wake_at_ms, None);
    h.sched
        .wake_at(job.def.id, ms("2026-05-01T11:00:30Z"))
        .await
        .unwrap();
    h.run_until("2026-05-01T11:01:00Z").await;
    h.sched.run_now(job.def.id, RunMode::Force).await.unwrap();
    h.settle().await;
    let triggers: Vec<RunTrigger> = h.runner.runs().into_iter().map(|r| r.2).collect();
    assert_eq!(triggers, [RunTrigger::Wake, RunTrigger::Manual]);
}
