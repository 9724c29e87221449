//! The golden-replay engine: start the real `pincer` binary, play the client side of a capture
//! (`c2s` rows) against it over real sockets, and compare everything the server sends with what
//! the reference sent, under the volatile-field masks ([`crate::masks`]) and the caller's
//! documented allowlist ([`Replay::allow`]).
//!
//! How the client side is played:
//! * Connections open at their first row, in capture order; rows run in capture order. A `c2s`
//!   row is sent once every earlier expected server frame has arrived (not after the captured
//!   delay), so timer knobs make long captures fast.
//! * `<GATEWAY_TOKEN>` becomes the gateway's known token; `<DEVICE_TOKEN>` the device token of
//!   the latest `hello-ok`, if any.
//! * A `connect` with a device proof gets a fresh proof against the live challenge, carrying
//!   the captured proof's defect ([`crate::device`]), signed by a fresh key per captured device
//!   (a device that reconnects in the capture keeps its key).
//! * Request ids are sent unchanged, so response ids compare exactly.
//!
//! How server frames are matched: a `res` by id, an event by name, a `closed` row by the next
//! close frame. Responses may arrive in another order than captured. Events the gateway sends
//! on its own timers ([`Replay::unsolicited`]; `health`, `tick`, `presence`, `cron` by default) are
//! tolerated when the capture has none at that point; any other frame the capture does not
//! have is a difference. Every connection's event `seq` must run 1, 2, 3, ….

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::compare::{render, short, Diff, DiffKind, FrameCtx, Origin, Rule, RuleSet};
use crate::device::{classify, fresh_keypair, resign};
use crate::golden::{
    capture_token, frame_label, Dir, Golden, Row, DEVICE_TOKEN_PLACEHOLDER,
    GATEWAY_TOKEN_PLACEHOLDER,
};
use crate::masks;
use crate::{recv, ws_connect, GatewayProcess, RawWs, Received, SpawnOptions};
use pincer_protocol::device_auth::DeviceKeypair;

/// The token replayed gateways run with.
pub const REPLAY_TOKEN: &str = "pincer-conformance-token";

/// Events a gateway broadcasts on its own schedule (timers, other clients), tolerated when the
/// capture shows none at that point: the reference itself sends `health` after some connects
/// and not others (compare `connect_token_no_device.jsonl` with `health.jsonl`). `cron`: the
/// scheduler starts after the listener and converges the heartbeat's system job in the
/// background, so on a loaded machine its `cron` updates can reach a client that connected first.
pub const DEFAULT_UNSOLICITED: &[&str] = &["health", "tick", "presence", "cron"];

/// A scenario to replay: a capture plus the knobs and the documented differences.
pub struct Replay {
    golden: Golden,
    env: Vec<(String, String)>,
    rules: Vec<Rule>,
    missing_events: Vec<(&'static str, &'static str)>,
    unimplemented: Vec<(&'static str, &'static str)>,
    unsolicited: Vec<&'static str>,
    sigterm_before_event: Option<&'static str>,
    frame_timeout: Duration,
    sent_substitutions: Vec<(&'static str, &'static str)>,
    expected_substitutions: Vec<(&'static str, &'static str)>,
    map_generated_ids: bool,
    config: Option<Value>,
}

/// What a replay found. The gateway process stays available for further checks.
pub struct ReplayReport {
    pub scenario: String,
    pub diffs: Vec<Diff>,
    /// A readable log of what was sent and received.
    pub transcript: Vec<String>,
    /// Every frame the server sent, per connection, in arrival order.
    pub received: HashMap<String, Vec<Value>>,
    pub gateway: GatewayProcess,
}

impl ReplayReport {
    /// Panic with a readable diff (and the transcript) if anything differed, the gateway
    /// panicked, or it died.
    pub fn assert_conforms(&mut self) {
        let mut diffs = self.diffs.clone();
        let stderr = self.gateway.stderr();
        if stderr.contains("panicked at") {
            diffs.push(Diff {
                line: 0,
                conn: "-".into(),
                label: "process".into(),
                path: String::new(),
                kind: DiffKind::Sequence(format!("the gateway panicked:\n{stderr}")),
            });
        }
        if diffs.is_empty() {
            return;
        }
        panic!(
            "{}\ntranscript:\n  {}\n",
            render(
                &format!("golden {} replayed against pincer", self.scenario),
                &diffs
            ),
            self.transcript.join("\n  ")
        );
    }

    /// The `res` with `id` the server sent on `conn`.
    pub fn response(&self, conn: &str, id: &str) -> Option<&Value> {
        self.received
            .get(conn)?
            .iter()
            .find(|f| f["type"] == "res" && f["id"] == id)
    }

    /// The `hello-ok` payload received on `conn`.
    pub fn hello(&self, conn: &str) -> Option<&Value> {
        self.received
            .get(conn)?
            .iter()
            .find(|f| f["payload"]["type"] == "hello-ok")
            .map(|f| &f["payload"])
    }
}

#[derive(Default)]
struct ConnState {
    ws: Option<RawWs>,
    /// Frames received but not yet matched to a capture row.
    pending: VecDeque<Value>,
    /// The close the server sent (or `Ended`), once the socket is finished.
    finished: Option<Received>,
    live_challenge: Option<Value>,
    last_seq: u64,
}

struct Run<'a> {
    replay: &'a Replay,
    rules: RuleSet,
    conns: HashMap<String, ConnState>,
    order: Vec<String>,
    diffs: Vec<Diff>,
    transcript: Vec<String>,
    received: HashMap<String, Vec<Value>>,
    url: String,
    device_token: Option<String>,
    capture_token: String,
    /// One fresh key per captured device id: a device that reconnects keeps its key.
    keys: HashMap<String, DeviceKeypair>,
    /// Captured value → live value ([`Replay::map_generated_ids`]).
    learned: Vec<(String, String)>,
}

impl Replay {
    /// Replay `testdata/golden/<name>`.
    pub fn new(name: &str) -> Replay {
        Replay {
            golden: Golden::load(name),
            env: Vec::new(),
            rules: Vec::new(),
            missing_events: Vec::new(),
            unimplemented: Vec::new(),
            unsolicited: DEFAULT_UNSOLICITED.to_vec(),
            sigterm_before_event: None,
            frame_timeout: Duration::from_secs(5),
            sent_substitutions: Vec::new(),
            expected_substitutions: Vec::new(),
            map_generated_ids: false,
            config: None,
        }
    }

    /// Start the gateway with this config file (`<state>/pincer.json`), e.g. the config the
    /// reference ran with while capturing.
    pub fn config(mut self, config: Value) -> Replay {
        self.config = Some(config);
        self
    }

    /// Replace `from` by `to` in every string the client sends (e.g. a method name, to replay a
    /// capture's failure class against a method Pincer has).
    pub fn substitute_sent(mut self, from: &'static str, to: &'static str) -> Replay {
        self.sent_substitutions.push((from, to));
        self
    }

    /// Replace `from` by `to` in the reference's `error` objects before comparing (the
    /// counterpart of [`Replay::substitute_sent`] in messages that name the method or a field).
    pub fn substitute_expected(mut self, from: &'static str, to: &'static str) -> Replay {
        self.expected_substitutions.push((from, to));
        self
    }

    /// Follow ids the server generates through the rest of the capture: the fresh device ids
    /// and keys that replace captured ones, and uuids the server sent in place of the captured
    /// ones (a pairing `requestId`, an invoke `id`). Later client frames send the live value
    /// where the capture echoes the captured one, and expected frames name the live value (so a
    /// `nodeId` that is a device id compares exactly).
    pub fn map_generated_ids(mut self) -> Replay {
        self.map_generated_ids = true;
        self
    }

    /// An environment variable for the gateway (timer knobs).
    pub fn env(mut self, k: &str, v: &str) -> Replay {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Documented intentional differences ([`crate::compare`] rules).
    pub fn allow(mut self, rules: &[Rule]) -> Replay {
        self.rules.extend_from_slice(rules);
        self
    }

    /// The reference sends event `name` here and Pincer does not (yet): skip that row.
    pub fn missing_event(mut self, name: &'static str, why: &'static str) -> Replay {
        self.missing_events.push((name, why));
        self
    }

    /// Pincer does not implement `method` yet: instead of the captured answer, require the
    /// `unknown method` error (so this fails, and gets updated, once the method lands).
    pub fn unimplemented(mut self, method: &'static str, why: &'static str) -> Replay {
        self.unimplemented.push((method, why));
        self
    }

    /// Replace the tolerated unsolicited events.
    pub fn unsolicited(mut self, events: &[&'static str]) -> Replay {
        self.unsolicited = events.to_vec();
        self
    }

    /// Send SIGTERM to the gateway right before waiting for event `name`.
    pub fn sigterm_before(mut self, name: &'static str) -> Replay {
        self.sigterm_before_event = Some(name);
        self
    }

    /// How long to wait for each expected frame (a hang detector, not a timing goal).
    pub fn frame_timeout(mut self, t: Duration) -> Replay {
        self.frame_timeout = t;
        self
    }

    /// Start the gateway and replay; never panics on differences (see
    /// [`ReplayReport::assert_conforms`]).
    pub async fn run(self, bin: &Path) -> ReplayReport {
        let mut opts = SpawnOptions::default().arg("--token").arg(REPLAY_TOKEN);
        for (k, v) in &self.env {
            opts = opts.env(k.clone(), v.clone());
        }
        let state_dir = tempfile::tempdir().expect("temp state dir");
        if let Some(config) = &self.config {
            let text = serde_json::to_string_pretty(config).unwrap_or_default();
            std::fs::write(state_dir.path().join("pincer.json"), text).expect("write pincer.json");
        }
        let gateway = GatewayProcess::spawn_in(bin, state_dir, opts);
        let mut rules = RuleSet::new();
        match masks::for_timing_sensitive(&self.golden.timing_sensitive()) {
            Ok(r) => rules.add(&r, Origin::Volatile),
            Err(unknown) => panic!(
                "{}: timing_sensitive entries without masking rules (add them to pincer_testkit::masks): {unknown:?}",
                self.golden.name
            ),
        }
        rules.add(masks::ENVIRONMENT, Origin::Volatile);
        rules.add(&self.rules, Origin::Allowlist);
        let mut run = Run {
            replay: &self,
            rules,
            conns: HashMap::new(),
            order: Vec::new(),
            diffs: Vec::new(),
            transcript: Vec::new(),
            received: HashMap::new(),
            url: gateway.url.clone(),
            device_token: None,
            capture_token: capture_token(),
            keys: HashMap::new(),
            learned: Vec::new(),
        };
        for row in &self.golden.rows {
            run.play(row, &gateway).await;
        }
        run.finish();
        let stale = run.rules.stale();
        run.diffs.extend(stale);
        ReplayReport {
            scenario: self.golden.name.clone(),
            diffs: run.diffs,
            transcript: run.transcript,
            received: run.received,
            gateway,
        }
    }
}

/// A value the server generated: a uuid or a 64-hex id.
fn looks_generated(s: &str) -> bool {
    let uuid = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    uuid || (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Pairs (captured, live) of generated strings at the same place in two frames.
fn learn_ids(expected: &Value, got: &Value, out: &mut Vec<(String, String)>) {
    match (expected, got) {
        (Value::String(e), Value::String(g))
            if e != g && looks_generated(e) && !out.iter().any(|(c, _)| c == e) =>
        {
            out.push((e.clone(), g.clone()));
        }
        (Value::Object(e), Value::Object(g)) => {
            for (k, ev) in e {
                if let Some(gv) = g.get(k) {
                    learn_ids(ev, gv, out);
                }
            }
        }
        (Value::Array(e), Value::Array(g)) => {
            for (ev, gv) in e.iter().zip(g) {
                learn_ids(ev, gv, out);
            }
        }
        _ => {}
    }
}

/// Replace `from` by `to` inside every string of `v`.
fn replace_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_strings(x, from, to)),
        Value::Object(o) => o.values_mut().for_each(|x| replace_strings(x, from, to)),
        _ => {}
    }
}

fn substitute(v: &mut Value, token: &str, device_token: Option<&str>) {
    match v {
        Value::String(s) => {
            if s.contains(GATEWAY_TOKEN_PLACEHOLDER) {
                *s = s.replace(GATEWAY_TOKEN_PLACEHOLDER, token);
            }
            if let Some(dt) = device_token {
                if s.contains(DEVICE_TOKEN_PLACEHOLDER) {
                    *s = s.replace(DEVICE_TOKEN_PLACEHOLDER, dt);
                }
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| substitute(x, token, device_token)),
        Value::Object(o) => o
            .values_mut()
            .for_each(|x| substitute(x, token, device_token)),
        _ => {}
    }
}

/// Does a received frame answer the captured one?
fn same_frame(expected: &Value, got: &Value) -> bool {
    match expected["type"].as_str() {
        Some("res") => got["type"] == "res" && got["id"] == expected["id"],
        Some("event") => got["type"] == "event" && got["event"] == expected["event"],
        _ => got == expected,
    }
}

fn close_value(code: u16, reason: &str) -> Value {
    serde_json::json!({"code": code, "reason": reason})
}

impl Run<'_> {
    fn label(&self, conn: &str, frame: &Value) -> String {
        frame_label(frame, |id| {
            self.replay.golden.method_of(conn, id).map(str::to_string)
        })
    }

    fn sequence(&mut self, row: &Row, label: &str, text: String) {
        self.diffs.push(Diff {
            line: row.line,
            conn: row.conn.clone(),
            label: label.to_string(),
            path: String::new(),
            kind: DiffKind::Sequence(text),
        });
    }

    async fn ensure_open(&mut self, conn: &str) {
        if self
            .conns
            .get(conn)
            .is_some_and(|c| c.ws.is_some() || c.finished.is_some())
        {
            return;
        }
        let ws = ws_connect(&self.url).await;
        self.transcript.push(format!("{conn}: connected"));
        self.order.push(conn.to_string());
        self.conns.entry(conn.to_string()).or_default().ws = Some(ws);
    }

    /// Record a received frame: transcript, per-connection log, seq check.
    fn note_received(&mut self, conn: &str, frame: &Value) {
        self.transcript.push(format!("{conn} << {}", short(frame)));
        self.received
            .entry(conn.to_string())
            .or_default()
            .push(frame.clone());
        if frame["type"] == "event" {
            if let Some(seq) = frame["seq"].as_u64() {
                let state = self.conns.entry(conn.to_string()).or_default();
                let want = state.last_seq + 1;
                state.last_seq = seq;
                if seq != want {
                    let label = self.label(conn, frame);
                    self.diffs.push(Diff {
                        line: 0,
                        conn: conn.to_string(),
                        label,
                        path: "seq".into(),
                        kind: DiffKind::Sequence(format!(
                            "event seq {seq}, expected {want} (per-connection seq must count 1, 2, 3, …)"
                        )),
                    });
                }
            }
        }
    }

    /// Next item from the socket (frames are logged on arrival).
    async fn next_item(&mut self, conn: &str) -> Received {
        let timeout = self.replay.frame_timeout;
        let Some(state) = self.conns.get_mut(conn) else {
            return Received::Ended;
        };
        if let Some(done) = &state.finished {
            return done.clone();
        }
        let Some(ws) = state.ws.as_mut() else {
            return Received::Ended;
        };
        let item = recv(ws, timeout).await;
        match &item {
            Received::Json(v) => {
                let v = v.clone();
                self.note_received(conn, &v);
            }
            Received::Text(t) => self.transcript.push(format!("{conn} << (not JSON) {t}")),
            Received::Close(code, reason) => {
                self.transcript
                    .push(format!("{conn} << close {code} {reason:?}"));
                self.finish_conn(conn, item.clone());
            }
            Received::Ended => {
                self.transcript.push(format!("{conn} << (socket ended)"));
                self.finish_conn(conn, item.clone());
            }
            Received::Timeout => {}
        }
        item
    }

    fn finish_conn(&mut self, conn: &str, how: Received) {
        if let Some(state) = self.conns.get_mut(conn) {
            state.finished = Some(how);
            state.ws = None;
        }
    }

    fn is_unsolicited(&self, frame: &Value) -> bool {
        frame["type"] == "event"
            && frame["event"]
                .as_str()
                .is_some_and(|e| self.replay.unsolicited.contains(&e))
    }

    /// Wait for the server frame that answers `expected`.
    async fn expect_frame(&mut self, row: &Row, expected: &Value, label: &str) -> Option<Value> {
        let conn = row.conn.as_str();
        if let Some(state) = self.conns.get_mut(conn) {
            if let Some(i) = state.pending.iter().position(|f| same_frame(expected, f)) {
                return state.pending.remove(i);
            }
        }
        loop {
            match self.next_item(conn).await {
                Received::Json(v) if same_frame(expected, &v) => return Some(v),
                Received::Json(v) => {
                    self.conns
                        .entry(conn.to_string())
                        .or_default()
                        .pending
                        .push_back(v);
                }
                Received::Text(t) => {
                    self.sequence(row, label, format!("server sent a non-JSON frame: {t}"));
                }
                Received::Timeout => {
                    let secs = self.replay.frame_timeout.as_secs_f32();
                    self.sequence(
                        row,
                        label,
                        format!("no {label} within {secs}s (reference: {})", short(expected)),
                    );
                    return None;
                }
                Received::Close(code, reason) => {
                    self.sequence(
                        row,
                        label,
                        format!(
                            "connection closed {code} {reason:?} while waiting for {label} (reference: {})",
                            short(expected)
                        ),
                    );
                    return None;
                }
                Received::Ended => {
                    self.sequence(
                        row,
                        label,
                        format!(
                            "socket ended while waiting for {label} (reference: {})",
                            short(expected)
                        ),
                    );
                    return None;
                }
            }
        }
    }

    async fn expect_close(&mut self, row: &Row, expected: &Value) {
        let conn = row.conn.as_str();
        loop {
            match self.next_item(conn).await {
                Received::Json(v) => {
                    self.conns
                        .entry(conn.to_string())
                        .or_default()
                        .pending
                        .push_back(v);
                }
                Received::Text(t) => {
                    self.sequence(row, "close", format!("server sent a non-JSON frame: {t}"));
                }
                Received::Close(code, reason) => {
                    let ctx = FrameCtx {
                        line: row.line,
                        conn,
                        label: "close",
                    };
                    let mut out = Vec::new();
                    self.rules
                        .compare(&ctx, expected, &close_value(code, &reason), &mut out);
                    self.diffs.extend(out);
                    return;
                }
                Received::Ended => {
                    self.sequence(
                        row,
                        "close",
                        format!(
                            "socket ended without a close frame (reference: close {})",
                            short(expected)
                        ),
                    );
                    return;
                }
                Received::Timeout => {
                    let secs = self.replay.frame_timeout.as_secs_f32();
                    self.sequence(
                        row,
                        "close",
                        format!(
                            "no close within {secs}s (reference: close {})",
                            short(expected)
                        ),
                    );
                    return;
                }
            }
        }
    }

    async fn play(&mut self, row: &Row, gateway: &GatewayProcess) {
        match row.dir {
            Dir::Open => self.ensure_open(&row.conn).await,
            Dir::S2c => {
                self.ensure_open(&row.conn).await;
                let Some(expected) = row.frame.as_ref() else {
                    return;
                };
                let label = self.label(&row.conn, expected);
                if let Some(event) = expected["event"].as_str() {
                    if let Some((_, why)) =
                        self.replay.missing_events.iter().find(|(e, _)| *e == event)
                    {
                        self.transcript
                            .push(format!("{} (skipped {label}: {why})", row.conn));
                        return;
                    }
                    if self.replay.sigterm_before_event == Some(event) {
                        self.transcript.push("-- SIGTERM to the gateway".into());
                        gateway.sigterm();
                    }
                }
                let Some(got) = self.expect_frame(row, expected, &label).await else {
                    return;
                };
                if got["event"] == "connect.challenge" {
                    if let Some(state) = self.conns.get_mut(&row.conn) {
                        state.live_challenge = Some(got["payload"].clone());
                    }
                }
                if let Some(token) = got["payload"]["auth"]["deviceToken"].as_str() {
                    self.device_token = Some(token.to_string());
                }
                if let Some(method) = label.strip_prefix("res:") {
                    if let Some((_, why)) =
                        self.replay.unimplemented.iter().find(|(m, _)| *m == method)
                    {
                        let want = serde_json::json!({
                            "type": "res", "id": expected["id"], "ok": false,
                            "error": {"code": "INVALID_REQUEST", "message": format!("unknown method: {method}")}
                        });
                        if got != want {
                            self.sequence(
                                row,
                                &label,
                                format!(
                                    "{method} is allowlisted as not implemented ({why}) but Pincer answered {}: compare it with the reference and drop the allowance",
                                    short(&got)
                                ),
                            );
                        }
                        return;
                    }
                }
                let ctx = FrameCtx {
                    line: row.line,
                    conn: &row.conn,
                    label: &label,
                };
                let mut expected = expected.clone();
                if self.replay.map_generated_ids {
                    for (from, to) in &self.learned {
                        replace_strings(&mut expected, from, to);
                    }
                    let mut learned = std::mem::take(&mut self.learned);
                    learn_ids(&expected, &got, &mut learned);
                    self.learned = learned;
                }
                if let Some(error) = expected.get_mut("error") {
                    for (from, to) in &self.replay.expected_substitutions {
                        replace_strings(error, from, to);
                    }
                }
                let mut out = Vec::new();
                self.rules.compare(&ctx, &expected, &got, &mut out);
                self.diffs.extend(out);
            }
            Dir::C2s => {
                self.ensure_open(&row.conn).await;
                let text = match (&row.raw, &row.frame) {
                    (Some(raw), _) => raw.clone(),
                    (None, Some(frame)) => self.client_frame(row, frame).to_string(),
                    (None, None) => return,
                };
                self.transcript
                    .push(format!("{} >> {}", row.conn, cut(&text)));
                let ok = match self.conns.get_mut(&row.conn).and_then(|c| c.ws.as_mut()) {
                    Some(ws) => ws.send(Message::Text(text.into())).await.is_ok(),
                    None => false,
                };
                if !ok {
                    self.sequence(row, "send", "could not send: the socket is closed".into());
                }
            }
            Dir::C2sClose => {
                let code = row
                    .frame
                    .as_ref()
                    .and_then(|f| f["code"].as_u64())
                    .unwrap_or(1000) as u16;
                let reason = row
                    .frame
                    .as_ref()
                    .and_then(|f| f["reason"].as_str())
                    .unwrap_or("")
                    .to_string();
                self.transcript
                    .push(format!("{} >> close {code} {reason:?}", row.conn));
                if let Some(ws) = self.conns.get_mut(&row.conn).and_then(|c| c.ws.as_mut()) {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = ws.close(Some(frame)).await;
                }
            }
            Dir::Closed => {
                let expected = row.frame.clone().unwrap_or_default();
                self.expect_close(row, &expected).await;
            }
        }
    }

    /// The frame to send for a captured client frame: live credentials, fresh device proof.
    fn client_frame(&mut self, row: &Row, frame: &Value) -> Value {
        let mut frame = frame.clone();
        substitute(&mut frame, REPLAY_TOKEN, self.device_token.as_deref());
        for (from, to) in &self.replay.sent_substitutions {
            replace_strings(&mut frame, from, to);
        }
        if self.replay.map_generated_ids && frame["method"] != "connect" {
            for (from, to) in &self.learned {
                replace_strings(&mut frame, from, to);
            }
        }
        if frame["method"] == "connect" && frame["params"].get("device").is_some() {
            let captured_params = row.frame.as_ref().map(|f| &f["params"]);
            let captured_challenge = self.replay.golden.challenge_for(&row.conn);
            let live = self
                .conns
                .get(&row.conn)
                .and_then(|c| c.live_challenge.clone());
            if let (Some(params), Some(challenge), Some(live)) =
                (captured_params, captured_challenge, live)
            {
                if let Some(intent) = classify(params, challenge, &self.capture_token) {
                    let captured_id = params["device"]["id"].as_str().unwrap_or("").to_string();
                    let captured_key = params["device"]["publicKey"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let kp = self
                        .keys
                        .entry(captured_id.clone())
                        .or_insert_with(fresh_keypair);
                    if self.replay.map_generated_ids {
                        for (c, l) in [
                            (captured_id, kp.device_id()),
                            (captured_key, kp.public_key()),
                        ] {
                            if !c.is_empty() && !self.learned.iter().any(|(x, _)| *x == c) {
                                self.learned.push((c, l));
                            }
                        }
                    }
                    resign(&mut frame["params"], &intent, &live, kp);
                }
            }
        }
        frame
    }

    /// Frames that arrived but match no capture row are differences.
    fn finish(&mut self) {
        let order = self.order.clone();
        for conn in order {
            let pending: Vec<Value> = self
                .conns
                .get_mut(&conn)
                .map(|c| c.pending.drain(..).collect())
                .unwrap_or_default();
            for frame in pending {
                if self.is_unsolicited(&frame) {
                    continue;
                }
                let label = self.label(&conn, &frame);
                self.diffs.push(Diff {
                    line: 0,
                    conn: conn.clone(),
                    label,
                    path: String::new(),
                    kind: DiffKind::Sequence(format!(
                        "frame the reference does not send: {}",
                        short(&frame)
                    )),
                });
            }
        }
    }
}

fn cut(text: &str) -> String {
    if text.chars().count() > 300 {
        let s: String = text.chars().take(297).collect();
        format!("{s}…")
    } else {
        text.to_string()
    }
}
