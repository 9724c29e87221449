//! Automations through the real gateway (issue 10): jobs created over RPC, through the
//! agent's `automations` tool and with `pincer cron`, firing on time and delivering to the
//! conversation they came from; run history; no double runs across a restart (a run killed
//! mid-way is recorded as interrupted and never repeated); missed runs caught up once;
//! webhook delivery through the SSRF guard; the heartbeat (NO_REPLY stays silent, a real
//! message is delivered, the off switch, cadence, `wake` with its rate limit).

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pincer_fakes::http::{
    FakeHttpServer, Handler, Reply as HttpReply, Request, Response, ServerOptions,
};
use pincer_fakes::llm::{DefaultReply, FakeLlm, FakeLlmOptions, Reply};
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::agent::{self, op, provider_config, rpc, start_with, until, Gw, TOKEN};
use crate::bin;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A gateway on the fake model with `extra` merged into the config.
async fn gateway(extra: Value, fake: FakeLlm) -> Gw {
    let mut config = provider_config(&fake, json!({}));
    config["agents"] = json!({"defaults": {"model": {"primary": "mock/mock-model"}}});
    merge(&mut config, &extra);
    start_with(config, &[], fake).await
}

fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn is_cron(v: &Value, job: &str, action: &str) -> bool {
    v["event"] == "cron" && v["payload"]["jobId"] == job && v["payload"]["action"] == action
}

/// The text of a transcript message.
fn text_of(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

async fn history(ws: &mut RawWs, key: &str) -> Vec<Value> {
    let (h, _) = rpc(
        ws,
        &format!("h-{}", now_ms()),
        "chat.history",
        json!({"sessionKey": key, "limit": 50}),
    )
    .await;
    assert_eq!(h["ok"], true, "{h}");
    h["payload"]["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The last user message text of a recorded model request.
fn last_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .rfind(|m| m["role"] == "user")
        .map(text_of)
        .unwrap_or_default()
}

async fn add(ws: &mut RawWs, id: &str, job: Value) -> Value {
    let (res, _) = rpc(ws, id, "cron.add", job).await;
    assert_eq!(res["ok"], true, "{res}");
    res["payload"].clone()
}

async fn runs(ws: &mut RawWs, job: &str) -> Vec<Value> {
    let (res, _) = rpc(
        ws,
        &format!("r-{}", now_ms()),
        "cron.runs",
        json!({"id": job, "sortDir": "asc"}),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    res["payload"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_added_over_rpc_fires_on_time_delivers_to_the_main_chat_and_is_in_the_history() {
    let fake = FakeLlm::start().await.unwrap();
    let gw = gateway(json!({}), fake).await;
    gw.fake.push(Reply::new().text("Time to check the build."));
    let mut ws = op(&gw, &[]).await;
    let before = now_ms();
    let job = add(
        &mut ws,
        "a1",
        json!({"name": "build check", "schedule": {"kind": "at", "at": "2s"},
               "sessionTarget": "isolated", "deleteAfterRun": false,
               "payload": {"kind": "agentTurn", "message": "Remind me to check the build"}}),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    let next = job["nextRunAtMs"].as_i64().unwrap();
    assert!(
        (next - before - 2000).abs() < 1500,
        "next run {next} vs {before}"
    );
    assert_eq!(job["effectiveAgentId"], "main");
    let frames = until(&mut ws, |v| is_cron(v, &id, "finished")).await;
    let started = frames
        .iter()
        .find(|v| is_cron(v, &id, "started"))
        .expect("started event");
    let fired = started["payload"]["runAtMs"].as_i64().unwrap();
    assert!(fired >= next, "not early: {fired} < {next}");
    assert!(fired - next < 1500, "on time: fired {fired}, due {next}");
    let fin = &frames.last().unwrap()["payload"];
    assert_eq!(fin["status"], "ok", "{fin}");
    assert!(
        fin["summary"]
            .as_str()
            .unwrap()
            .starts_with("Time to check the build."),
        "{fin}"
    );
    // The model got the job's message in its own cron session.
    let req = gw.fake.model_requests().pop().unwrap();
    assert_eq!(last_user_text(&req.body), "Remind me to check the build");
    // Delivered (before the run finished): committed to the main chat, shown live to its readers.
    let chat = frames
        .iter()
        .find(|v| {
            v["event"] == "chat"
                && v["payload"]["sessionKey"] == "agent:main:main"
                && v["payload"]["state"] == "final"
        })
        .map(|v| &v["payload"])
        .expect("a chat event for the main session");
    assert_eq!(
        chat["message"]["content"][0]["text"],
        "Time to check the build."
    );
    let msgs = history(&mut ws, "main").await;
    assert_eq!(text_of(msgs.last().unwrap()), "Time to check the build.");
    // Run history.
    let entries = runs(&mut ws, &id).await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["status"], "ok");
    assert_eq!(entries[0]["trigger"], "schedule");
    assert!(entries[0]["durationMs"].as_i64().is_some());
    // A one-shot does not fire again.
    let (got, _) = rpc(&mut ws, "g1", "cron.get", json!({"id": id})).await;
    assert_eq!(got["payload"]["nextRunAtMs"], Value::Null, "{got}");
    let (status, _) = rpc(&mut ws, "s1", "cron.status", json!({})).await;
    assert_eq!(status["payload"]["enabled"], true);
    assert_eq!(
        status["payload"]["stats"]["idleTimerWakeups"], 0,
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_made_with_the_automations_tool_comes_back_to_the_chat_it_came_from() {
    let fake = FakeLlm::start().await.unwrap();
    let gw = gateway(
        json!({"agents": {"defaults": {"userTimezone": "Europe/Berlin"}}}),
        fake,
    )
    .await;
    // 1. "Remind me every weekday at 8:00 to check the build" → the model calls the tool.
    let weekday = json!({"action": "add", "job": {
        "schedule": {"kind": "cron", "expr": "0 8 * * 1-5"},
        "payload": {"kind": "agentTurn", "message": "Remind the user to check the build."}}});
    gw.fake
        .push(Reply::new().tool_call("call_1", "automations", &weekday.to_string()));
    // …and, to see one fire now, a one-shot two seconds ahead.
    let soon = json!({"action": "add", "job": {"name": "soon",
        "schedule": {"kind": "at", "at": "2s"},
        "payload": {"kind": "agentTurn", "message": "Remind the user to check the build."}}});
    gw.fake
        .push(Reply::new().tool_call("call_2", "cron", &soon.to_string()));
    gw.fake
        .push(Reply::new().text("Done: weekdays at 8:00, and once in two seconds."));
    gw.fake
        .push(Reply::new().text("Reminder: check the build!"));
    let mut ws = op(&gw, &["tool-events"]).await;
    let session = "agent:main:work";
    let (_, frames) = agent::chat_turn(
        &mut ws,
        "t1",
        session,
        "Remind me every weekday at 8:00 to check the build",
    )
    .await;
    let results: Vec<&Value> = frames
        .iter()
        .filter(|f| f["payload"]["stream"] == "tool" && f["payload"]["data"]["phase"] == "result")
        .collect();
    assert_eq!(results.len(), 2, "{frames:#?}");
    for r in &results {
        assert_eq!(r["payload"]["data"]["isError"], false, "{r}");
    }
    // The tool was offered to the model under its reference name.
    let first = &gw.fake.model_requests()[0].body;
    assert!(first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["function"]["name"] == "automations"));

    let (list, _) = rpc(&mut ws, "l1", "cron.list", json!({})).await;
    let jobs = list["payload"]["jobs"].as_array().unwrap().clone();
    let weekly = jobs
        .iter()
        .find(|j| j["schedule"]["kind"] == "cron")
        .expect("weekday job");
    assert_eq!(weekly["sessionTarget"], "current");
    assert_eq!(weekly["sessionKey"], session);
    assert_eq!(
        weekly["schedule"]["tz"], "Europe/Berlin",
        "the configured zone"
    );
    assert_eq!(weekly["name"], "Remind the user to check the build.");
    // Next run: a weekday at 8:00–8:05 Berlin time (06:00/07:00 UTC; top-of-hour stagger ≤ 5 min).
    let next = weekly["nextRunAtMs"].as_i64().unwrap();
    let secs = next / 1000;
    let (day, in_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (hour, minute) = (in_day / 3600, (in_day % 3600) / 60);
    assert!(matches!(hour, 6 | 7) && minute < 5, "{hour}:{minute} UTC");
    let dow = (day + 4).rem_euclid(7); // 0 = Sunday
    assert!((1..=5).contains(&dow), "weekday, got {dow}");
    assert!(next > now_ms() && next - now_ms() <= 4 * 86_400_000);

    let soon_job = jobs.iter().find(|j| j["name"] == "soon").expect("one-shot");
    let soon_id = soon_job["id"].as_str().unwrap().to_string();
    let frames = until(&mut ws, |v| is_cron(v, &soon_id, "finished")).await;
    assert_eq!(frames.last().unwrap()["payload"]["status"], "ok");
    // The result comes back to the conversation the request came from.
    let delivered = frames
        .iter()
        .find(|v| {
            v["event"] == "chat"
                && v["payload"]["sessionKey"] == session
                && v["payload"]["state"] == "final"
                && v["payload"]["runId"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("inject-"))
        })
        .expect("the delivery reached the chat live");
    assert_eq!(
        delivered["payload"]["message"]["content"][0]["text"],
        "Reminder: check the build!"
    );
    let msgs = history(&mut ws, session).await;
    assert_eq!(text_of(msgs.last().unwrap()), "Reminder: check the build!");
    // The run itself happened in its own cron session, not in the user's chat.
    let cron_req = gw.fake.model_requests().pop().unwrap();
    assert_eq!(
        last_user_text(&cron_req.body),
        "Remind the user to check the build."
    );
    let user_turns = msgs.iter().filter(|m| m["role"] == "user").count();
    assert_eq!(user_turns, 1, "only the user's own message: {msgs:#?}");
    // A one-shot that succeeded is deleted (deleteAfterRun defaults to true for `at`).
    let (got, _) = rpc(&mut ws, "g2", "cron.get", json!({"id": soon_id})).await;
    assert_eq!(got["ok"], false, "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_never_runs_a_job_twice_and_missed_runs_catch_up_once() {
    let fake = FakeLlm::start().await.unwrap();
    let mut gw = gateway(json!({}), fake).await;
    // A run that will still be in progress when the gateway dies.
    gw.fake.push(
        Reply::new()
            .text("slow answer that never finishes")
            .delay(Duration::from_secs(60)),
    );
    let mut ws = op(&gw, &[]).await;
    let slow = add(
        &mut ws,
        "a1",
        json!({"name": "slow", "schedule": {"kind": "at", "at": "1s"},
        "payload": {"kind": "agentTurn", "message": "take your time"}}),
    )
    .await;
    let slow_id = slow["id"].as_str().unwrap().to_string();
    let tick = add(
        &mut ws,
        "a2",
        json!({"name": "tick", "schedule": {"kind": "every", "everyMs": 1000},
        "wakeMode": "next-heartbeat", "payload": {"kind": "systemEvent", "text": "tick"}}),
    )
    .await;
    let tick_id = tick["id"].as_str().unwrap().to_string();
    until(&mut ws, |v| is_cron(v, &slow_id, "started")).await;
    assert!(
        gw.fake
            .wait_for(|c| c.requests >= 1, Duration::from_secs(10))
            .await
    );
    until(&mut ws, |v| is_cron(v, &tick_id, "finished")).await;
    drop(ws);
    // Killed mid-run: no graceful shutdown at all.
    gw.gw.child.kill().unwrap();
    gw.gw.child.wait().unwrap();
    let killed_at = now_ms();
    std::thread::sleep(Duration::from_millis(3500));
    let state = std::mem::replace(&mut gw.gw.state_dir, tempfile::tempdir().unwrap());
    // A killed gateway leaves its gateway.json behind; the new one writes its own.
    std::fs::remove_file(state.path().join("gateway.json")).unwrap();
    let requests_before = gw.fake.model_requests().len();
    let mut opts = SpawnOptions::default().arg("--token").arg(TOKEN);
    for key in [
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "OPENROUTER_API_KEY",
        "OLLAMA_API_KEY",
    ] {
        opts = opts.env(key, "");
    }
    let restarted_at = now_ms();
    gw.gw = GatewayProcess::spawn_in(bin(), state, opts);
    let mut ws = op(&gw, &[]).await;
    // The interrupted run is recorded as such and never repeated.
    let deadline = Instant::now() + Duration::from_secs(10);
    let slow_runs = loop {
        let r = runs(&mut ws, &slow_id).await;
        if r.first().is_some_and(|e| e["status"] == "interrupted") || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(slow_runs.len(), 1, "{slow_runs:#?}");
    assert_eq!(slow_runs[0]["status"], "interrupted");
    // The tick job missed three occurrences while down: one catch-up run, not three.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = runs(&mut ws, &tick_id).await;
        if r.iter()
            .any(|e| e["trigger"] == "catch-up" && e["status"] == "ok")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no catch-up run: {r:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let tick_runs = runs(&mut ws, &tick_id).await;
    let catch_up = tick_runs
        .iter()
        .filter(|e| e["trigger"] == "catch-up")
        .count();
    assert_eq!(catch_up, 1, "{tick_runs:#?}");
    let during_downtime = tick_runs
        .iter()
        .filter(|e| {
            let at = e["runAtMs"].as_i64().unwrap();
            at > killed_at && at < restarted_at
        })
        .count();
    assert_eq!(during_downtime, 0);
    // Regular runs continue afterwards.
    assert!(
        tick_runs
            .iter()
            .any(|e| e["trigger"] == "schedule" && e["runAtMs"].as_i64().unwrap() > restarted_at),
        "{tick_runs:#?}"
    );
    assert_eq!(
        gw.fake.model_requests().len(),
        requests_before,
        "the killed run was not repeated"
    );
    let slow_runs = runs(&mut ws, &slow_id).await;
    assert_eq!(slow_runs.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_agent_turns_wait_for_the_catch_up_delay() {
    let fake = FakeLlm::start().await.unwrap();
    let mut gw = gateway(json!({}), fake).await;
    let mut ws = op(&gw, &[]).await;
    let turn = add(
        &mut ws,
        "a1",
        json!({"name": "often", "schedule": {"kind": "every", "everyMs": 3000},
        "payload": {"kind": "agentTurn", "message": "hi"}, "enabled": true}),
    )
    .await;
    let id = turn["id"].as_str().unwrap().to_string();
    // Stop before it is due, stay down past its due time.
    gw.gw.sigterm();
    assert!(gw.gw.wait_exit(Duration::from_secs(10)).is_some());
    std::thread::sleep(Duration::from_millis(3500));
    let state = std::mem::replace(&mut gw.gw.state_dir, tempfile::tempdir().unwrap());
    let calls = gw.fake.model_requests().len();
    let opts = SpawnOptions::default().arg("--token").arg(TOKEN);
    gw.gw = GatewayProcess::spawn_in(bin(), state, opts);
    let start = now_ms();
    let mut ws = op(&gw, &[]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let job = loop {
        let (got, _) = rpc(
            &mut ws,
            &format!("g{}", now_ms()),
            "cron.get",
            json!({"id": id}),
        )
        .await;
        if got["ok"] == true && got["payload"]["state"]["startupCatchupAtMs"].is_i64() {
            break got["payload"].clone();
        }
        assert!(Instant::now() < deadline, "no catch-up decision: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Agent work after downtime waits two minutes, so a restart does not start a burst of runs.
    let at = job["nextRunAtMs"].as_i64().unwrap();
    assert!(
        (at - start - 120_000).abs() < 5_000,
        "catch-up at {at}, start {start}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        gw.fake.model_requests().len(),
        calls,
        "no agent run right after the start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivery_goes_through_the_ssrf_guard_with_the_webhook_token() {
    #[derive(Default)]
    struct Sink(Mutex<Vec<Request>>);
    impl Handler for Sink {
        fn handle(&self, request: Request) -> HttpReply {
            self.0.lock().unwrap().push(request);
            HttpReply::Now(Response::json(200, &json!({"ok": true})))
        }
    }
    let sink = Arc::new(Sink::default());
    let server = FakeHttpServer::start(sink.clone(), ServerOptions::default())
        .await
        .unwrap();
    let url = format!("{}/cron-done", server.url());
    let fake = FakeLlm::start_with(FakeLlmOptions {
        default_reply: Some(DefaultReply::Fixed {
            text: "Build is green.".into(),
            chunk_delay: Duration::ZERO,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    // Without an exception the loopback target is refused.
    let gw = gateway(json!({"cron": {"webhookToken": "wh-secret"}}), fake).await;
    let mut ws = op(&gw, &[]).await;
    let job = add(&mut ws, "a1", json!({"name": "hook", "schedule": {"kind": "every", "everyMs": 3600000},
        "payload": {"kind": "agentTurn", "message": "status?"}, "delivery": {"mode": "webhook", "to": url}})).await;
    let id = job["id"].as_str().unwrap().to_string();
    let (ran, _) = rpc(&mut ws, "r1", "cron.run", json!({"id": id})).await;
    assert_eq!(ran["payload"]["ok"], true, "{ran}");
    let frames = until(&mut ws, |v| is_cron(v, &id, "finished")).await;
    let fin = &frames.last().unwrap()["payload"];
    assert_eq!(fin["status"], "error", "{fin}");
    assert!(
        fin["error"].as_str().unwrap().contains("SSRF guard"),
        "{fin}"
    );
    assert!(sink.0.lock().unwrap().is_empty());
    drop(ws);
    drop(gw);

    // With the host allowed, the finished run is POSTed with the bearer token.
    let fake = FakeLlm::start_with(FakeLlmOptions {
        default_reply: Some(DefaultReply::Fixed {
            text: "Build is green.".into(),
            chunk_delay: Duration::ZERO,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = gateway(
        json!({"cron": {"webhookToken": "wh-secret", "webhookSsrfPolicy": {"allowedHostnames": ["127.0.0.1"]}}}),
        fake,
    )
    .await;
    let mut ws = op(&gw, &[]).await;
    let job = add(&mut ws, "a1", json!({"name": "hook", "schedule": {"kind": "every", "everyMs": 3600000},
        "payload": {"kind": "agentTurn", "message": "status?"}, "delivery": {"mode": "webhook", "to": url}})).await;
    let id = job["id"].as_str().unwrap().to_string();
    rpc(&mut ws, "r1", "cron.run", json!({"id": id})).await;
    let frames = until(&mut ws, |v| is_cron(v, &id, "finished")).await;
    assert_eq!(
        frames.last().unwrap()["payload"]["status"],
        "ok",
        "{:?}",
        frames.last()
    );
    let got = sink.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/cron-done");
    assert_eq!(got[0].header("authorization"), Some("Bearer wh-secret"));
    let body = got[0].json().unwrap();
    assert_eq!(body["jobId"], id.as_str());
    assert_eq!(body["status"], "ok");
    assert_eq!(body["summary"], "Build is green.");
}

/// The heartbeat job of the default agent (created at start).
async fn heartbeat_job(ws: &mut RawWs) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (list, _) = rpc(
            ws,
            &format!("l{}", now_ms()),
            "cron.list",
            json!({"includeDisabled": true}),
        )
        .await;
        if let Some(j) = list["payload"]["jobs"]
            .as_array()
            .and_then(|a| a.iter().find(|j| j["declarationKey"] == "heartbeat:main"))
        {
            return j.clone();
        }
        assert!(Instant::now() < deadline, "no heartbeat job: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_heartbeat(v: &Value) -> bool {
    v["event"] == "heartbeat"
}

/// Runs the heartbeat job now; returns the frames up to the run's `finished` event (the
/// `heartbeat` event comes before it). The `cron.run` answer comes before any event of the
/// run, however fast the run is (a disabled heartbeat finishes at once).
async fn run_heartbeat(ws: &mut RawWs, id: &str) -> Vec<Value> {
    let (ran, before) = rpc(
        ws,
        &format!("run{}", now_ms()),
        "cron.run",
        json!({"id": id}),
    )
    .await;
    assert_eq!(ran["payload"]["ok"], true, "{ran}");
    assert!(
        !before
            .iter()
            .any(|f| is_heartbeat(f) || (f["event"] == "cron" && f["payload"]["jobId"] == id)),
        "events of the run before the cron.run answer: {before:#?}"
    );
    let run = ran["payload"]["runId"].as_str().unwrap().to_string();
    let frames = until(ws, |v| {
        v["event"] == "cron"
            && v["payload"]["action"] == "finished"
            && v["payload"]["runId"] == run.as_str()
    })
    .await;
    let events: Vec<Value> = frames.iter().filter(|f| is_heartbeat(f)).cloned().collect();
    assert_eq!(events.len(), 1, "{frames:#?}");
    let mut out: Vec<Value> = frames.into_iter().filter(|f| !is_heartbeat(f)).collect();
    out.extend(events);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_no_reply_stays_silent_a_message_is_delivered_and_the_switch_turns_it_off() {
    let fake = FakeLlm::start().await.unwrap();
    let gw = gateway(
        json!({"agents": {"defaults": {"heartbeat": {"every": "1h"}}}}),
        fake,
    )
    .await;
    let mut ws = op(&gw, &[]).await;
    let (last, _) = rpc(&mut ws, "lh0", "last-heartbeat", json!({})).await;
    assert_eq!(last["payload"], Value::Null, "{last}");
    let job = heartbeat_job(&mut ws).await;
    assert_eq!(job["name"], "heartbeat-main");
    assert_eq!(job["schedule"]["everyMs"], 3_600_000);
    assert_eq!(job["payload"]["kind"], "heartbeat");
    let id = job["id"].as_str().unwrap().to_string();
    // A job the user may not change.
    let (upd, _) = rpc(
        &mut ws,
        "u1",
        "cron.update",
        json!({"id": id, "patch": {"name": "x"}}),
    )
    .await;
    assert_eq!(upd["ok"], false);

    // 1. NO_REPLY: nothing is delivered; the heartbeat event says ok-token.
    gw.fake.push(Reply::new().text("NO_REPLY"));
    let frames = run_heartbeat(&mut ws, &id).await;
    let ev = &frames.last().unwrap()["payload"];
    assert_eq!(ev["status"], "ok-token", "{ev}");
    assert_eq!(ev["indicatorType"], "ok");
    assert!(ev.get("preview").is_none());
    let finals: Vec<&Value> = frames
        .iter()
        .filter(|f| f["event"] == "chat" && f["payload"]["state"] == "final")
        .collect();
    assert!(
        finals.iter().all(|f| f["payload"].get("message").is_none()),
        "silent: {finals:#?}"
    );
    let req = gw.fake.model_requests().pop().unwrap();
    assert!(last_user_text(&req.body).starts_with("Follow the heartbeat monitor scratch context"));
    let (last, _) = rpc(&mut ws, "lh1", "last-heartbeat", json!({})).await;
    assert_eq!(last["payload"]["status"], "ok-token");

    // 2. An empty answer: ok-empty.
    gw.fake.push(Reply::new().text(""));
    let frames = run_heartbeat(&mut ws, &id).await;
    assert_eq!(frames.last().unwrap()["payload"]["status"], "ok-empty");

    // 3. Scratch and queued system events go into the prompt; a real message is delivered.
    let (set, _) = rpc(
        &mut ws,
        "sc",
        "cron.scratch.set",
        json!({"id": id, "content": "watch the nightly build"}),
    )
    .await;
    assert_eq!(set["payload"]["ok"], true, "{set}");
    let (ev_res, _) = rpc(
        &mut ws,
        "se",
        "system-event",
        json!({"text": "CI: nightly build failed"}),
    )
    .await;
    assert_eq!(ev_res["ok"], true);
    gw.fake
        .push(Reply::new().text("The nightly build failed; want me to look?"));
    let frames = run_heartbeat(&mut ws, &id).await;
    let ev = &frames.last().unwrap()["payload"];
    assert_eq!(ev["status"], "sent", "{ev}");
    assert_eq!(ev["indicatorType"], "alert");
    assert_eq!(ev["preview"], "The nightly build failed; want me to look?");
    let prompt = last_user_text(&gw.fake.model_requests().pop().unwrap().body);
    assert!(
        prompt.contains("Heartbeat monitor scratch:\nwatch the nightly build"),
        "{prompt}"
    );
    assert!(prompt.contains("- CI: nightly build failed"), "{prompt}");
    let shown = frames.iter().any(|f| {
        f["event"] == "chat"
            && f["payload"]["state"] == "final"
            && f["payload"]["message"]["content"][0]["text"]
                == "The nightly build failed; want me to look?"
    });
    assert!(shown, "{frames:#?}");
    let msgs = history(&mut ws, "main").await;
    assert_eq!(
        text_of(msgs.last().unwrap()),
        "The nightly build failed; want me to look?"
    );

    // 4. The off switch: runs are skipped without a model call.
    let (off, _) = rpc(&mut ws, "off", "set-heartbeats", json!({"enabled": false})).await;
    assert_eq!(off["payload"], json!({"ok": true, "enabled": false}));
    let calls = gw.fake.model_requests().len();
    let frames = run_heartbeat(&mut ws, &id).await;
    let ev = &frames.last().unwrap()["payload"];
    assert_eq!(
        (ev["status"].clone(), ev["reason"].clone()),
        (json!("skipped"), json!("disabled"))
    );
    assert_eq!(gw.fake.model_requests().len(), calls);
    let hist = runs(&mut ws, &id).await;
    assert_eq!(hist.last().unwrap()["status"], "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_cadence_and_wake_now_with_its_rate_limit() {
    let fake = FakeLlm::start_with(FakeLlmOptions {
        default_reply: Some(DefaultReply::Fixed {
            text: "NO_REPLY".into(),
            chunk_delay: Duration::ZERO,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    // Cadence: every 2 s, on its own.
    let gw = gateway(
        json!({"agents": {"defaults": {"heartbeat": {"every": "2s"}}}}),
        fake,
    )
    .await;
    let mut ws = op(&gw, &[]).await;
    let t0 = Instant::now();
    until(&mut ws, is_heartbeat).await;
    until(&mut ws, is_heartbeat).await;
    assert!(t0.elapsed() < Duration::from_secs(8));
    drop(ws);
    drop(gw);

    let fake = FakeLlm::start_with(FakeLlmOptions {
        default_reply: Some(DefaultReply::Fixed {
            text: "NO_REPLY".into(),
            chunk_delay: Duration::ZERO,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = gateway(
        json!({"agents": {"defaults": {"heartbeat": {"every": "1h"}}}}),
        fake,
    )
    .await;
    let mut ws = op(&gw, &[]).await;
    heartbeat_job(&mut ws).await;
    // wake now: the heartbeat runs at once with the text.
    let (w, _) = rpc(
        &mut ws,
        "w1",
        "wake",
        json!({"mode": "now", "text": "Deploy finished"}),
    )
    .await;
    assert_eq!(w["payload"], json!({"ok": true}));
    until(&mut ws, is_heartbeat).await;
    let prompt = last_user_text(&gw.fake.model_requests().pop().unwrap().body);
    assert!(
        prompt.ends_with("System events since the last heartbeat:\n- Deploy finished"),
        "{prompt}"
    );
    // A second wake within 30 s is deferred (rate limit), not run at once.
    let calls = gw.fake.model_requests().len();
    rpc(
        &mut ws,
        "w2",
        "wake",
        json!({"mode": "now", "text": "Another one"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gw.fake.model_requests().len(), calls, "rate limited");
    // next-heartbeat only queues.
    rpc(
        &mut ws,
        "w3",
        "wake",
        json!({"mode": "next-heartbeat", "text": "later"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gw.fake.model_requests().len(), calls);
}

fn cli(gw: &Gw, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("--url")
        .arg(&gw.gw.url)
        .arg(format!("--token={TOKEN}"))
        .arg("--no-device")
        .env("PINCER_STATE_DIR", gw.gw.state_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pincer_cron_add_list_edit_run_runs_rm() {
    let fake = FakeLlm::start().await.unwrap();
    let gw = gateway(json!({}), fake).await;
    let g = &gw;
    let (ok, out, err) = cli(
        g,
        &[
            "cron",
            "add",
            "--name",
            "stretch",
            "--every",
            "45m",
            "--system-event",
            "Stand up and stretch",
            "--json",
        ],
    );
    assert!(ok, "{out}{err}");
    let job: Value = serde_json::from_str(&out).unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["schedule"]["everyMs"], 2_700_000);
    assert_eq!(job["sessionTarget"], "main");

    let (ok, out, _) = cli(g, &["cron", "list"]);
    assert!(ok);
    assert!(
        out.contains("stretch") && out.contains("every 45m") && out.contains(&id[..8]),
        "{out}"
    );

    let (ok, out, err) = cli(
        g,
        &[
            "cron",
            "edit",
            &id[..8],
            "--cron",
            "0 9 * * 1-5",
            "--tz",
            "Europe/Berlin",
            "--exact",
            "--json",
        ],
    );
    assert!(ok, "{out}{err}");
    let edited: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        edited["schedule"],
        json!({"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Berlin", "staggerMs": 0})
    );

    let (ok, out, err) = cli(g, &["cron", "run", &id]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("started run"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out, _) = cli(g, &["cron", "runs", &id, "--json"]);
        assert!(ok);
        let runs: Value = serde_json::from_str(&out).unwrap();
        if runs["entries"].as_array().is_some_and(|e| {
            e.iter()
                .any(|r| r["status"] == "ok" && r["trigger"] == "manual")
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "{runs}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, out, _) = cli(g, &["cron", "runs", &id]);
    assert!(ok && out.contains("manual"), "{out}");

    let (ok, _, err) = cli(
        g,
        &[
            "cron",
            "add",
            "--name",
            "bad",
            "--cron",
            "0 8 * *",
            "--message",
            "x",
        ],
    );
    assert!(!ok);
    assert!(err.contains("cron expression"), "{err}");

    let (ok, out, _) = cli(g, &["cron", "rm", &id]);
    assert!(ok && out.contains("removed"), "{out}");
    let (ok, out, _) = cli(g, &["cron", "list", "--json"]);
    assert!(ok);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert!(list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["id"] != id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_asked_for_in_a_telegram_chat_is_sent_back_to_that_chat() {
    use crate::channels::{config, gateway as channel_gateway, Fake, Kind};
    let llm = FakeLlm::start().await.unwrap();
    let tg = Fake::start(Kind::Telegram).await;
    let soon = json!({"action": "add", "job": {"name": "build reminder",
        "schedule": {"kind": "at", "at": "2s"},
        "payload": {"kind": "agentTurn", "message": "Remind the user to check the build."}}});
    llm.push(Reply::new().tool_call("call_1", "automations", &soon.to_string()));
    llm.push(Reply::new().text("Sure, in two seconds."));
    llm.push(Reply::new().text("Reminder: check the build!"));
    let cfg = config(&llm, &tg, json!({"dmPolicy": "open", "allowFrom": ["*"]}));
    let gw = channel_gateway(cfg, llm).await;
    let chat = tg.dm_chat(1);
    tg.dm(1, "Remind me in 2 seconds to check the build");
    let first = tg.wait_sent(&chat, 1).await;
    assert_eq!(first[0], "Sure, in two seconds.");
    // The job belongs to that conversation…
    let mut ws = op(&gw, &[]).await;
    let (list, _) = rpc(&mut ws, "l", "cron.list", json!({})).await;
    let job = list["payload"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "build reminder")
        .cloned()
        .expect("the job");
    let key = job["sessionKey"].as_str().unwrap().to_string();
    assert!(key.starts_with("agent:main:telegram:"), "{job}");
    // …and its result is sent back to the chat, once, and kept in its history.
    let sent = tg.wait_sent(&chat, 2).await;
    assert_eq!(sent[1], "Reminder: check the build!");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tg.sent_to(&chat).len(), 2, "delivered once");
    let msgs = history(&mut ws, &key).await;
    assert_eq!(text_of(msgs.last().unwrap()), "Reminder: check the build!");
}

async fn wait_job(ws: &mut RawWs, id: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (got, _) = rpc(ws, &format!("g{}", now_ms()), "cron.get", json!({"id": id})).await;
        if want(&got["payload"]) {
            return got["payload"].clone();
        }
        assert!(Instant::now() < deadline, "{got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_edit_reconverges_the_heartbeat_job_and_0m_turns_the_cadence_off() {
    let fake = FakeLlm::start().await.unwrap();
    let gw = gateway(
        json!({"agents": {"defaults": {"heartbeat": {"every": "1h"}}}}),
        fake,
    )
    .await;
    let mut ws = op(&gw, &[]).await;
    let job = heartbeat_job(&mut ws).await;
    let id = job["id"].as_str().unwrap().to_string();
    let path = gw.gw.state_path().join("pincer.json");
    let edit = |every: &str| {
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["agents"]["defaults"]["heartbeat"]["every"] = json!(every);
        std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    };
    edit("45m");
    let job = wait_job(&mut ws, &id, |j| j["schedule"]["everyMs"] == 2_700_000).await;
    assert_eq!(job["id"], id.as_str(), "the same job, updated");
    assert_eq!(job["enabled"], true);
    edit("0m");
    let job = wait_job(&mut ws, &id, |j| j["enabled"] == false).await;
    assert_eq!(job["nextRunAtMs"], Value::Null);
    // The gateway survived the reloads.
    let (h, _) = rpc(&mut ws, "h", "health", json!({})).await;
    assert_eq!(h["ok"], true);
}
