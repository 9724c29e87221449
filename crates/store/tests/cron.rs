//! The automations tables: job rows, one running receipt per job, history pages, pruning,
//! scratch compare-and-swap — against a real SQLite file, reopened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pincer_store::{
    CronJobRow, CronRunDelivery, CronRunFinish, CronRunQuery, CronRunReceipt, CronRunStatus,
    SortDir, Store, StoreError, StoreOptions, MAX_SCRATCH_BYTES,
};

fn job(id: &str, next: Option<i64>) -> CronJobRow {
    CronJobRow {
        job_id: id.into(),
        name: format!("job {id}"),
        enabled: true,
        payload_kind: "systemEvent".into(),
        job_json: format!(r#"{{"id":"{id}"}}"#),
        state_json: "{}".into(),
        next_run_at_ms: next,
        config_revision: "sha256:x".into(),
        created_at_ms: 1,
        updated_at_ms: 1,
        ..CronJobRow::default()
    }
}

fn receipt(id: &str, job: &str, started: i64) -> CronRunReceipt {
    CronRunReceipt {
        receipt_id: id.into(),
        job_id: job.into(),
        agent_id: None,
        config_revision: "sha256:x".into(),
        trigger: "schedule".into(),
        scheduled_for_ms: Some(started),
        status: CronRunStatus::Running,
        owner_pid: 7,
        started_at_ms: started,
        finished_at_ms: None,
        summary: None,
        error: None,
        delivery: CronRunDelivery::default(),
    }
}

fn done(status: CronRunStatus, at: i64) -> CronRunFinish {
    CronRunFinish {
        status,
        finished_at_ms: at,
        summary: Some("s".into()),
        error: None,
        delivery: CronRunDelivery::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_receipts_history_and_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pincer.sqlite");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    store
        .cron_write(|tx| {
            tx.put_job(&job("a", Some(100)))?;
            let mut b = job("b", None);
            b.declaration_key = Some("heartbeat:main".into());
            b.enabled = false;
            tx.put_job(&b)?;
            tx.insert_receipt(&receipt("r1", "a", 100))
        })
        .await
        .unwrap();
    // A second running receipt for the same job is refused; the batch's other ops survive.
    let err = store
        .cron_write(|tx| tx.insert_receipt(&receipt("r2", "a", 101)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected(ref m) if m.contains("already has a run")),
        "{err}"
    );
    // A duplicate declaration key is refused by the unique index.
    let mut dup = job("c", None);
    dup.declaration_key = Some("heartbeat:main".into());
    assert!(store.cron_write(move |tx| tx.put_job(&dup)).await.is_err());
    // A family of system jobs is read by its key prefix alone.
    let declared = store
        .cron_write(|tx| {
            let mut d = job("d", None);
            d.declaration_key = Some("heartbeat:ops".into());
            tx.put_job(&d)?;
            let mut e = job("e", None);
            e.declaration_key = Some("heartbeats-other".into());
            tx.put_job(&e)?;
            tx.declared_jobs("heartbeat:")
        })
        .await
        .unwrap();
    let keys: Vec<_> = declared
        .iter()
        .map(|r| r.declaration_key.clone().unwrap())
        .collect();
    assert_eq!(keys, ["heartbeat:main", "heartbeat:ops"]);
    store
        .cron_write(|tx| {
            tx.delete_job("d")?;
            tx.delete_job("e")
        })
        .await
        .unwrap();
    let index = store
        .cron_index(|r| (r.job_id.to_string(), r.enabled, r.next_run_at_ms))
        .await
        .unwrap();
    assert_eq!(index.len(), 2);
    assert!(index.contains(&("a".into(), true, Some(100))));
    assert!(index.contains(&("b".into(), false, None)));
    store
        .cron_write(|tx| {
            let mut delivered = done(CronRunStatus::Ok, 150);
            delivered.delivery = CronRunDelivery {
                status: Some("delivered".into()),
                error: None,
                suppression_reason: None,
                completion_status: Some("succeeded".into()),
            };
            assert!(tx.finish_receipt("r1", &delivered)?);
            assert!(
                !tx.finish_receipt("r1", &done(CronRunStatus::Error, 160))?,
                "finishes once"
            );
            assert!(tx.put_state("a", r#"{"nextRunAtMs":200}"#, Some(200))?);
            for (i, t) in [(2, 200), (3, 300), (4, 400)] {
                tx.insert_receipt(&receipt(&format!("r{i}"), "a", t))?;
                tx.finish_receipt(&format!("r{i}"), &done(CronRunStatus::Error, t + 5))?;
            }
            tx.insert_receipt(&receipt("rb", "b", 500))?;
            Ok(())
        })
        .await
        .unwrap();
    // Reopen: everything is on disk.
    store.close().await;
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(
        store.cron_job("a").await.unwrap().unwrap().next_run_at_ms,
        Some(200)
    );
    let page = store
        .cron_runs(CronRunQuery {
            job_id: Some("a".into()),
            limit: 2,
            ..CronRunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 4);
    assert!(page.has_more);
    let ids: Vec<&str> = page.runs.iter().map(|r| r.receipt_id.as_str()).collect();
    assert_eq!(ids, ["r4", "r3"]);
    let asc = store
        .cron_runs(CronRunQuery {
            statuses: vec![CronRunStatus::Ok],
            sort: SortDir::Asc,
            limit: 10,
            ..CronRunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(asc.runs.len(), 1);
    assert_eq!(asc.runs[0].finished_at_ms, Some(150));
    assert_eq!(asc.runs[0].summary.as_deref(), Some("s"));
    assert_eq!(asc.runs[0].delivery.status.as_deref(), Some("delivered"));
    assert_eq!(
        asc.runs[0].delivery.completion_status.as_deref(),
        Some("succeeded")
    );
    // Delivery-status filter: a run recorded without one counts as not-requested.
    let by_delivery = |statuses: &[&str]| {
        let q = CronRunQuery {
            delivery_statuses: statuses.iter().map(|s| s.to_string()).collect(),
            limit: 50,
            ..CronRunQuery::default()
        };
        let store = store.clone();
        async move {
            let page = store.cron_runs(q).await.unwrap();
            let mut ids: Vec<String> = page.runs.into_iter().map(|r| r.receipt_id).collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(by_delivery(&["delivered"]).await, ["r1"]);
    assert_eq!(
        by_delivery(&["not-requested"]).await,
        ["r2", "r3", "r4", "rb"]
    );
    assert!(by_delivery(&["not-delivered", "unknown"]).await.is_empty());
    // The schema keeps the vocabulary closed.
    let bogus = store
        .cron_write(|tx| {
            tx.insert_receipt(&receipt("rx", "x", 900))?;
            let mut f = done(CronRunStatus::Ok, 901);
            f.delivery.status = Some("sent".into());
            tx.finish_receipt("rx", &f)
        })
        .await;
    assert!(bogus.is_err());
    let running = store.cron_write(|tx| tx.running_receipts()).await.unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].receipt_id, "rb");
    // Pruning: older than 250, then at most 1 per job; running receipts stay.
    let removed = store.cron_write(|tx| tx.prune_runs(250, 1)).await.unwrap();
    assert_eq!(removed, 3);
    let all = store
        .cron_runs(CronRunQuery {
            limit: 50,
            ..CronRunQuery::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = all.runs.iter().map(|r| r.receipt_id.as_str()).collect();
    assert_eq!(ids, ["rb", "r4"]);
    // Scratch: compare-and-swap by revision, size cap, removed with the job.
    let rev = store
        .cron_write(|tx| tx.set_scratch("a", Some("- check inbox"), Some(0), 10))
        .await
        .unwrap();
    assert_eq!(rev, 1);
    let stale = store
        .cron_write(|tx| tx.set_scratch("a", Some("x"), Some(0), 11))
        .await
        .unwrap_err();
    assert!(stale.to_string().contains("revision 1"), "{stale}");
    let big = "x".repeat(MAX_SCRATCH_BYTES + 1);
    assert!(store
        .cron_write(move |tx| tx.set_scratch("a", Some(&big), None, 12))
        .await
        .is_err());
    assert!(store
        .cron_write(|tx| tx.set_scratch("ghost", Some("x"), None, 12))
        .await
        .is_err());
    assert_eq!(
        store.cron_scratch("a").await.unwrap().unwrap().content,
        "- check inbox"
    );
    assert!(store.cron_write(|tx| tx.delete_job("a")).await.unwrap());
    assert!(store.cron_scratch("a").await.unwrap().is_none());
    assert!(store.cron_job("a").await.unwrap().is_none());
    // History survives the job.
    assert!(store.cron_run("r4").await.unwrap().is_some());
}
