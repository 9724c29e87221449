//! Heartbeat: a periodic agent turn in the main session, implemented as one system-owned
//! automation per heartbeat agent (declaration key `heartbeat:<agentId>`).
//!
//! This module holds the pieces that are policy, not plumbing: the effective settings from
//! configuration (defaults, per-agent scoping), the system job specs the scheduler
//! converges, active hours, the reply classification (`NO_REPLY` / `HEARTBEAT_OK` send
//! nothing), the wire `heartbeat` event, and [`HeartbeatControl`] — the state behind
//! `set-heartbeats`, `last-heartbeat` and `wake` (queued system events with coalescing, the
//! event-wake rate limits).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::duration::{parse_duration_ms, DurationUnit};
use crate::job::{Payload, SessionTarget, WakeMode, HEARTBEAT_DECLARATION_PREFIX};
use crate::schedule::Schedule;
use crate::scheduler::SystemJobSpec;

/// The default prompt, sent verbatim as the heartbeat's user message.
pub const DEFAULT_HEARTBEAT_PROMPT: &str = "Follow the heartbeat monitor scratch context when provided. Recurring tasks are automations; create or change their schedules with the automations tool, not heartbeat scratch. Do not infer or repeat old tasks from prior chats. If nothing needs attention, reply NO_REPLY.";
/// Default cadence.
pub const DEFAULT_HEARTBEAT_EVERY: &str = "30m";
/// A legacy `HEARTBEAT_OK` reply is dropped when what remains is at most this long.
pub const ACK_MAX_CHARS: usize = 300;
/// The silent token.
pub const NO_REPLY: &str = "NO_REPLY";
/// The legacy acknowledgement token.
pub const HEARTBEAT_OK: &str = "HEARTBEAT_OK";
/// Event-driven heartbeat turns are at least this far apart per agent.
pub const WAKE_MIN_SPACING_MS: i64 = 30_000;
/// Flood guard: at most this many event-driven starts ...
pub const WAKE_FLOOD_MAX: usize = 5;
/// ... within this window.
pub const WAKE_FLOOD_WINDOW_MS: i64 = 60_000;
/// Pending system events kept per session (oldest dropped beyond).
pub const MAX_QUEUED_EVENTS: usize = 20;

/// Where heartbeat alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HeartbeatTarget {
    /// `owner` (default): the first concrete owner DM.
    Owner,
    /// `last`: the last external conversation.
    Last,
    /// `none`: internal only.
    None,
    /// A channel id (with `to` / `accountId`).
    Channel(String),
}

impl HeartbeatTarget {
    pub fn parse(text: Option<&str>) -> HeartbeatTarget {
        match text.map(str::trim) {
            None | Some("") | Some("owner") => HeartbeatTarget::Owner,
            Some("last") => HeartbeatTarget::Last,
            Some("none") => HeartbeatTarget::None,
            Some(channel) => HeartbeatTarget::Channel(channel.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            HeartbeatTarget::Owner => "owner",
            HeartbeatTarget::Last => "last",
            HeartbeatTarget::None => "none",
            HeartbeatTarget::Channel(c) => c,
        }
    }
}

/// A daily window (`activeHours`): `start` inclusive, `end` exclusive, minutes of the day in
/// `tz`; `end` may be 24:00; equal bounds = never active; `start > end` wraps midnight.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveHours {
    pub start_minute: u32,
    pub end_minute: u32,
    pub tz: TimeZone,
}

fn parse_hhmm(text: &str, allow_24: bool) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    if m >= 60 || (h == 24 && (m != 0 || !allow_24)) || h > 24 {
        return None;
    }
    Some(h * 60 + m)
}

impl ActiveHours {
    /// From config; an unknown zone (or `user` / `local` / none) falls back to `user_tz`.
    pub fn from_config(
        c: &pincer_config::model::agents::ActiveHours,
        user_tz: &TimeZone,
    ) -> Result<ActiveHours, String> {
        let start = c.start.as_deref().unwrap_or("00:00");
        let end = c.end.as_deref().unwrap_or("24:00");
        let start_minute = parse_hhmm(start, false)
            .ok_or_else(|| format!("heartbeat.activeHours.start {start:?} is not HH:MM"))?;
        let end_minute = parse_hhmm(end, true).ok_or_else(|| {
            format!("heartbeat.activeHours.end {end:?} is not HH:MM (24:00 allowed)")
        })?;
        let tz = match c.timezone.as_deref().map(str::trim) {
            None | Some("") | Some("user") => user_tz.clone(),
            Some("local") => TimeZone::system(),
            Some(name) => TimeZone::get(name).unwrap_or_else(|_| user_tz.clone()),
        };
        Ok(ActiveHours {
            start_minute,
            end_minute,
            tz,
        })
    }

    /// Whether `now_ms` falls inside the window.
    pub fn contains(&self, now_ms: i64) -> bool {
        let Ok(ts) = Timestamp::from_millisecond(now_ms) else {
            return false;
        };
        let local = ts.to_zoned(self.tz.clone());
        let minute =
            u32::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
        match self.start_minute.cmp(&self.end_minute) {
            std::cmp::Ordering::Equal => false,
            std::cmp::Ordering::Less => minute >= self.start_minute && minute < self.end_minute,
            std::cmp::Ordering::Greater => minute >= self.start_minute || minute < self.end_minute,
        }
    }
}

/// The effective heartbeat settings of one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatSettings {
    pub agent_id: String,
    /// The configured `every` text (`30m` by default).
    pub every: String,
    /// `None` when the cadence is off (`0m`).
    pub every_ms: Option<u64>,
    pub prompt: String,
    pub target: HeartbeatTarget,
    pub to: Option<String>,
    pub account_id: Option<String>,
    pub model: Option<String>,
    /// Session key override (default: the agent's main session).
    pub session: Option<String>,
    pub light_context: bool,
    pub isolated_session: bool,
    pub timeout_seconds: Option<u64>,
    pub active_hours: Option<ActiveHours>,
    pub ack_max_chars: usize,
}

impl HeartbeatSettings {
    /// Declaration key of this agent's monitor job.
    pub fn declaration_key(&self) -> String {
        format!("{HEARTBEAT_DECLARATION_PREFIX}{}", self.agent_id)
    }

    /// The system job the scheduler should hold for this agent.
    pub fn job_spec(&self) -> SystemJobSpec {
        SystemJobSpec {
            declaration_key: self.declaration_key(),
            name: format!("heartbeat-{}", self.agent_id),
            display_name: Some(format!("Heartbeat ({})", self.agent_id)),
            agent_id: Some(self.agent_id.clone()),
            schedule: self.every_ms.map(|every_ms| Schedule::Every {
                every_ms,
                anchor_ms: None,
            }),
            payload: Payload::Heartbeat {},
            session_target: SessionTarget::Main,
            wake_mode: WakeMode::NextHeartbeat,
        }
    }

    /// The `status.heartbeat.agents[].heartbeat` object.
    pub fn status_json(&self, enabled: bool) -> serde_json::Value {
        let mut v = serde_json::json!({
            "enabled": enabled && self.every_ms.is_some(),
            "every": self.every,
            "everyMs": self.every_ms,
            "prompt": self.prompt,
            "target": self.target.as_str(),
            "ackMaxChars": self.ack_max_chars,
        });
        if let (Some(model), serde_json::Value::Object(m)) = (&self.model, &mut v) {
            m.insert("model".into(), model.clone().into());
        }
        if let (Some(session), serde_json::Value::Object(m)) = (&self.session, &mut v) {
            m.insert("session".into(), session.clone().into());
        }
        v
    }
}

fn merge_heartbeat(
    base: &pincer_config::model::agents::HeartbeatConfig,
    over: Option<&pincer_config::model::agents::HeartbeatConfig>,
) -> pincer_config::model::agents::HeartbeatConfig {
    let mut out = base.clone();
    if let Some(o) = over {
        macro_rules! take {
            ($($f:ident),*) => { $( if o.$f.is_some() { out.$f.clone_from(&o.$f); } )* };
        }
        take!(
            every,
            model,
            session,
            target,
            to,
            account_id,
            prompt,
            timeout_seconds,
            light_context,
            isolated_session,
            agent_id,
            active_hours
        );
    }
    out
}

/// The heartbeat agents and their effective settings.
///
/// Scoping (spec §9.2): when any `agents.entries.<id>.heartbeat` block exists, only those
/// agents run heartbeats (each merged over `agents.defaults.heartbeat`); otherwise the
/// default agent (or `agents.defaults.heartbeat.agentId`) does, with the defaults.
pub fn resolve_heartbeats(cfg: &pincer_config::Config) -> Result<Vec<HeartbeatSettings>, String> {
    let defaults = cfg.agents.defaults.heartbeat.clone().unwrap_or_default();
    let user_tz = cfg
        .agents
        .defaults
        .user_timezone
        .as_deref()
        .and_then(|n| TimeZone::get(n).ok())
        .unwrap_or_else(TimeZone::system);
    let scoped: Vec<(String, pincer_config::model::agents::HeartbeatConfig)> = cfg
        .agents
        .entries
        .iter()
        .filter_map(|(id, e)| {
            e.heartbeat.as_ref().map(|hb| {
                (
                    pincer_sessions::normalize_agent_id(id),
                    merge_heartbeat(&defaults, Some(hb)),
                )
            })
        })
        .collect();
    let agents = if scoped.is_empty() {
        let owner = defaults
            .agent_id
            .as_deref()
            .map(pincer_sessions::normalize_agent_id)
            .unwrap_or_else(|| cfg.default_agent_id());
        vec![(owner, defaults.clone())]
    } else {
        scoped
    };
    agents
        .into_iter()
        .map(|(agent_id, hb)| {
            let every = hb
                .every
                .clone()
                .unwrap_or_else(|| DEFAULT_HEARTBEAT_EVERY.into());
            let every_ms = parse_duration_ms(&every, DurationUnit::Minutes)
                .map_err(|e| format!("agents heartbeat.every for {agent_id}: {e}"))?;
            let active_hours = hb
                .active_hours
                .as_ref()
                .map(|a| ActiveHours::from_config(a, &user_tz))
                .transpose()?;
            Ok(HeartbeatSettings {
                agent_id,
                every,
                every_ms: (every_ms > 0).then_some(every_ms.max(crate::schedule::MIN_EVERY_MS)),
                prompt: hb
                    .prompt
                    .clone()
                    .filter(|p| !p.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_HEARTBEAT_PROMPT.into()),
                target: HeartbeatTarget::parse(hb.target.as_deref()),
                to: hb.to.clone(),
                account_id: hb.account_id.clone(),
                model: hb.model.clone(),
                session: hb.session.clone().filter(|s| s != "main"),
                light_context: hb.light_context.unwrap_or(false),
                isolated_session: hb.isolated_session.unwrap_or(false),
                timeout_seconds: hb.timeout_seconds,
                active_hours,
                ack_max_chars: ACK_MAX_CHARS,
            })
        })
        .collect()
}

/// The `heartbeat_respond` tool's answer, when the model used it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRespond {
    pub notify: bool,
    #[serde(default)]
    pub notification_text: Option<String>,
}

/// What to do with a heartbeat reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatReply {
    /// Nothing was said: send nothing (`ok-empty`).
    Empty,
    /// `NO_REPLY` (or `heartbeat_respond{notify:false}`): send nothing (`ok-token`).
    Silent,
    /// Legacy `HEARTBEAT_OK` at the start or end with a short remainder: send nothing
    /// (`ok-token`).
    Ack,
    /// Something needs attention: deliver `text` (`sent`).
    Alert { text: String },
}

impl HeartbeatReply {
    /// Whether anything is delivered.
    pub fn delivers(&self) -> bool {
        matches!(self, HeartbeatReply::Alert { .. })
    }

    /// The `heartbeat` event status for this reply once handled.
    pub fn status(&self) -> HeartbeatStatus {
        match self {
            HeartbeatReply::Empty => HeartbeatStatus::OkEmpty,
            HeartbeatReply::Silent | HeartbeatReply::Ack => HeartbeatStatus::OkToken,
            HeartbeatReply::Alert { .. } => HeartbeatStatus::Sent,
        }
    }
}

/// Classifies a heartbeat turn's final text (pure). A `heartbeat_respond` call takes
/// precedence over the text. `NO_REPLY` counts only as the whole reply (case-insensitive);
/// `HEARTBEAT_OK` counts at the start or end when at most `ack_max_chars` remain — in the
/// middle it is ordinary text.
pub fn classify_reply(
    tool: Option<&HeartbeatRespond>,
    text: &str,
    ack_max_chars: usize,
) -> HeartbeatReply {
    if let Some(t) = tool {
        return match (t.notify, t.notification_text.as_deref().map(str::trim)) {
            (true, Some(n)) if !n.is_empty() => HeartbeatReply::Alert {
                text: n.to_string(),
            },
            (true, _) => classify_reply(None, text, ack_max_chars),
            (false, _) => HeartbeatReply::Silent,
        };
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return HeartbeatReply::Empty;
    }
    if trimmed.eq_ignore_ascii_case(NO_REPLY) {
        return HeartbeatReply::Silent;
    }
    let decoration =
        |c: char| c.is_whitespace() || matches!(c, '*' | '_' | '`' | '.' | '!' | ':' | '-');
    let stripped = if let Some(rest) = strip_token_prefix(trimmed) {
        Some(rest)
    } else {
        strip_token_suffix(trimmed)
    };
    if let Some(rest) = stripped {
        let rest = rest.trim_matches(decoration);
        if rest.chars().count() <= ack_max_chars {
            return HeartbeatReply::Ack;
        }
        return HeartbeatReply::Alert {
            text: rest.to_string(),
        };
    }
    HeartbeatReply::Alert {
        text: trimmed.to_string(),
    }
}

fn strip_token_prefix(text: &str) -> Option<&str> {
    let t = text.trim_start_matches(['*', '_', '`']);
    t.get(..HEARTBEAT_OK.len())
        .filter(|head| head.eq_ignore_ascii_case(HEARTBEAT_OK))
        .map(|_| &t[HEARTBEAT_OK.len()..])
        .filter(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

fn strip_token_suffix(text: &str) -> Option<&str> {
    let t = text.trim_end_matches(['*', '_', '`', '.', '!']);
    let cut = t.len().checked_sub(HEARTBEAT_OK.len())?;
    if !t.is_char_boundary(cut) {
        return None;
    }
    let (before, tail) = t.split_at(cut);
    (tail.eq_ignore_ascii_case(HEARTBEAT_OK)
        && !before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
    .then_some(before)
}

/// `heartbeat` event status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeartbeatStatus {
    Sent,
    OkEmpty,
    OkToken,
    Skipped,
    Failed,
}

/// UI indicator of a heartbeat event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorType {
    Ok,
    Alert,
    Error,
}

/// The wire `heartbeat` event (also the `last-heartbeat` result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatEvent {
    pub ts: i64,
    pub status: HeartbeatStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_media: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indicator_type: Option<IndicatorType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The agent (not in the reference payload's core set; harmless extra).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// Longest `preview` in a heartbeat event.
pub const PREVIEW_CHARS: usize = 200;

impl HeartbeatEvent {
    pub fn skipped(ts: i64, reason: &str) -> HeartbeatEvent {
        HeartbeatEvent {
            ts,
            status: HeartbeatStatus::Skipped,
            reason: Some(reason.into()),
            duration_ms: None,
            to: None,
            preview: None,
            channel: None,
            account_id: None,
            has_media: None,
            indicator_type: None,
            message: None,
            agent_id: None,
        }
    }

    /// The event for a classified reply.
    pub fn from_reply(ts: i64, duration_ms: i64, reply: &HeartbeatReply) -> HeartbeatEvent {
        let mut ev = HeartbeatEvent::skipped(ts, "");
        ev.reason = None;
        ev.status = reply.status();
        ev.duration_ms = Some(duration_ms);
        ev.indicator_type = Some(match reply {
            HeartbeatReply::Alert { .. } => IndicatorType::Alert,
            _ => IndicatorType::Ok,
        });
        if let HeartbeatReply::Alert { text } = reply {
            ev.preview = Some(text.chars().take(PREVIEW_CHARS).collect());
        }
        ev
    }

    pub fn failed(ts: i64, duration_ms: i64, message: &str) -> HeartbeatEvent {
        let mut ev = HeartbeatEvent::skipped(ts, "");
        ev.reason = None;
        ev.status = HeartbeatStatus::Failed;
        ev.duration_ms = Some(duration_ms);
        ev.indicator_type = Some(IndicatorType::Error);
        ev.message = Some(message.chars().take(PREVIEW_CHARS).collect());
        ev
    }
}

/// `wake` / `/hooks/wake` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum WakeRequestMode {
    #[default]
    #[serde(rename = "now")]
    Now,
    #[serde(rename = "next-heartbeat")]
    NextHeartbeat,
}

/// Whether a wake's text joined the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventOutcome {
    Queued,
    /// Same text as the most recent pending event: not queued twice.
    Coalesced,
}

/// When the heartbeat runs because of a wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeRun {
    /// Run the heartbeat now.
    Now,
    /// Rate limited: run it at this instant (`reason`: `min-spacing` or `flood`).
    At { at_ms: i64, reason: &'static str },
    /// Leave the text for the next scheduled tick.
    NextHeartbeat,
}

/// The answer to a wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WakeDecision {
    pub mode: WakeRequestMode,
    pub event_outcome: EventOutcome,
    pub run: WakeRun,
}

#[derive(Default)]
struct ControlState {
    enabled: bool,
    last: Option<HeartbeatEvent>,
    /// Pending system-event texts per session key.
    queues: HashMap<String, VecDeque<String>>,
    /// Event-driven run starts per agent (recent ones).
    starts: HashMap<String, VecDeque<i64>>,
    /// A deferred wake already scheduled per agent.
    deferred: HashMap<String, i64>,
}

/// Shared heartbeat state: the on/off switch, the last event, pending system events and
/// the event-wake rate limits. One per gateway.
pub struct HeartbeatControl {
    state: Mutex<ControlState>,
    events: broadcast::Sender<HeartbeatEvent>,
}

impl std::fmt::Debug for HeartbeatControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatControl").finish_non_exhaustive()
    }
}

impl Default for HeartbeatControl {
    fn default() -> Self {
        HeartbeatControl::new()
    }
}

/// `set-heartbeats` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SetHeartbeatsResult {
    pub ok: bool,
    pub enabled: bool,
}

impl HeartbeatControl {
    pub fn new() -> HeartbeatControl {
        HeartbeatControl {
            state: Mutex::new(ControlState {
                enabled: true,
                ..ControlState::default()
            }),
            events: broadcast::channel(64).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `set-heartbeats {enabled}`.
    pub fn set_enabled(&self, enabled: bool) -> SetHeartbeatsResult {
        self.lock().enabled = enabled;
        SetHeartbeatsResult { ok: true, enabled }
    }

    pub fn enabled(&self) -> bool {
        self.lock().enabled
    }

    /// `last-heartbeat`: the last event, or `None` (`null` on the wire).
    pub fn last(&self) -> Option<HeartbeatEvent> {
        self.lock().last.clone()
    }

    /// Records and broadcasts a heartbeat event.
    pub fn record(&self, event: HeartbeatEvent) {
        self.lock().last = Some(event.clone());
        let _ = self.events.send(event);
    }

    /// The `heartbeat` event stream.
    pub fn subscribe(&self) -> broadcast::Receiver<HeartbeatEvent> {
        self.events.subscribe()
    }

    /// Decides whether a heartbeat may run now: switched off → `disabled`, outside
    /// `activeHours` → `quiet-hours`. (Manual and event wakes still honour the switch.)
    pub fn preflight(&self, settings: &HeartbeatSettings, now_ms: i64) -> Result<(), &'static str> {
        if !self.enabled() {
            return Err("disabled");
        }
        if let Some(hours) = &settings.active_hours {
            if !hours.contains(now_ms) {
                return Err("quiet-hours");
            }
        }
        Ok(())
    }

    /// Queues a wake's text for `session_key` and decides when the agent's heartbeat runs.
    /// `mode: now` is rate limited per agent: event-driven turns at least 30 s apart and at
    /// most 5 within 60 s; a limited wake is deferred (once) until the limit allows it.
    pub fn request_wake(
        &self,
        agent_id: &str,
        session_key: &str,
        text: &str,
        mode: WakeRequestMode,
        now_ms: i64,
    ) -> WakeDecision {
        let mut st = self.lock();
        let queue = st.queues.entry(session_key.to_string()).or_default();
        let event_outcome = if queue.back().is_some_and(|last| last == text) {
            EventOutcome::Coalesced
        } else {
            queue.push_back(text.to_string());
            while queue.len() > MAX_QUEUED_EVENTS {
                queue.pop_front();
            }
            EventOutcome::Queued
        };
        let run = match mode {
            WakeRequestMode::NextHeartbeat => WakeRun::NextHeartbeat,
            WakeRequestMode::Now => {
                let starts = st.starts.entry(agent_id.to_string()).or_default();
                while starts
                    .front()
                    .is_some_and(|t| *t <= now_ms - WAKE_FLOOD_WINDOW_MS)
                {
                    starts.pop_front();
                }
                let spacing_at = starts.back().map(|t| t + WAKE_MIN_SPACING_MS);
                let flood_at = (starts.len() >= WAKE_FLOOD_MAX)
                    .then(|| starts.front().map(|t| t + WAKE_FLOOD_WINDOW_MS))
                    .flatten();
                let decision = match (spacing_at.filter(|t| *t > now_ms), flood_at) {
                    (_, Some(at)) => WakeRun::At {
                        at_ms: at.max(spacing_at.unwrap_or(at)),
                        reason: "flood",
                    },
                    (Some(at), None) => WakeRun::At {
                        at_ms: at,
                        reason: "min-spacing",
                    },
                    (None, None) => WakeRun::Now,
                };
                match decision {
                    WakeRun::Now => {
                        starts.push_back(now_ms);
                        st.deferred.remove(agent_id);
                        WakeRun::Now
                    }
                    WakeRun::At { at_ms, reason } => {
                        // One deferred run covers every wake that arrives meanwhile.
                        let at = *st.deferred.entry(agent_id.to_string()).or_insert(at_ms);
                        WakeRun::At { at_ms: at, reason }
                    }
                    other => other,
                }
            }
        };
        WakeDecision {
            mode,
            event_outcome,
            run,
        }
    }

    /// Notes that a deferred wake's run started (counts toward the rate limits).
    pub fn wake_started(&self, agent_id: &str, now_ms: i64) {
        let mut st = self.lock();
        st.deferred.remove(agent_id);
        st.starts
            .entry(agent_id.to_string())
            .or_default()
            .push_back(now_ms);
    }

    /// Takes the pending system events of a session (the heartbeat turn includes them).
    pub fn drain_events(&self, session_key: &str) -> Vec<String> {
        self.lock()
            .queues
            .remove(session_key)
            .map(Vec::from)
            .unwrap_or_default()
    }

    /// Pending system events of a session, oldest first (not removed).
    pub fn pending_events(&self, session_key: &str) -> Vec<String> {
        self.lock()
            .queues
            .get(session_key)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn no_reply_and_heartbeat_ok_send_nothing() {
        let c = |t: &str| classify_reply(None, t, ACK_MAX_CHARS);
        assert_eq!(c("NO_REPLY"), HeartbeatReply::Silent);
        assert_eq!(c("  no_reply \n"), HeartbeatReply::Silent);
        assert_eq!(c(""), HeartbeatReply::Empty);
        assert_eq!(c("   "), HeartbeatReply::Empty);
        assert_eq!(c("HEARTBEAT_OK"), HeartbeatReply::Ack);
        assert_eq!(c("**HEARTBEAT_OK**"), HeartbeatReply::Ack);
        assert_eq!(
            c("HEARTBEAT_OK. All quiet, nothing to report."),
            HeartbeatReply::Ack
        );
        assert_eq!(
            c("Checked the inbox, nothing new. HEARTBEAT_OK"),
            HeartbeatReply::Ack
        );
        assert!(!c("NO_REPLY").delivers());
    }

    #[test]
    fn real_messages_are_delivered() {
        let c = |t: &str| classify_reply(None, t, ACK_MAX_CHARS);
        assert_eq!(
            c("The build on main is failing since 07:12."),
            HeartbeatReply::Alert {
                text: "The build on main is failing since 07:12.".into()
            }
        );
        // NO_REPLY only counts as the whole payload.
        assert!(c("NO_REPLY because the build failed").delivers());
        // HEARTBEAT_OK in the middle is ordinary text.
        assert!(c("Status: HEARTBEAT_OK but the disk is 98% full").delivers());
        // A token-like word is not the token.
        assert!(c("HEARTBEAT_OKAY").delivers());
        // A long remainder is delivered without the token.
        let long = format!("HEARTBEAT_OK {}", "x".repeat(301));
        assert_eq!(
            c(&long),
            HeartbeatReply::Alert {
                text: "x".repeat(301)
            }
        );
        let exactly = format!("HEARTBEAT_OK {}", "x".repeat(300));
        assert_eq!(c(&exactly), HeartbeatReply::Ack);
        assert_eq!(c("Disk full").status(), HeartbeatStatus::Sent);
    }

    #[test]
    fn the_respond_tool_wins_over_text() {
        let quiet = HeartbeatRespond {
            notify: false,
            notification_text: None,
        };
        assert_eq!(
            classify_reply(Some(&quiet), "Something long", 300),
            HeartbeatReply::Silent
        );
        let loud = HeartbeatRespond {
            notify: true,
            notification_text: Some("Deploy failed".into()),
        };
        assert_eq!(
            classify_reply(Some(&loud), "NO_REPLY", 300),
            HeartbeatReply::Alert {
                text: "Deploy failed".into()
            }
        );
    }

    #[test]
    fn active_hours_in_a_zone_with_wraparound_and_24h_end() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let cfg = |s: &str, e: &str| pincer_config::model::agents::ActiveHours {
            start: Some(s.into()),
            end: Some(e.into()),
            timezone: Some("America/New_York".into()),
        };
        let day = ActiveHours::from_config(&cfg("09:00", "22:00"), &TimeZone::UTC).unwrap();
        let at = |iso: &str| iso.parse::<Timestamp>().unwrap().as_millisecond();
        assert!(day.contains(at("2026-07-01T13:00:00Z"))); // 09:00 EDT
        assert!(!day.contains(at("2026-07-01T12:59:00Z"))); // 08:59 EDT
        assert!(!day.contains(at("2026-07-02T02:00:00Z"))); // 22:00 EDT (end exclusive)
        let night = ActiveHours::from_config(&cfg("22:00", "06:00"), &ny).unwrap();
        assert!(night.contains(at("2026-07-02T03:00:00Z"))); // 23:00 EDT
        assert!(!night.contains(at("2026-07-01T16:00:00Z"))); // 12:00 EDT
        let all = ActiveHours::from_config(&cfg("00:00", "24:00"), &ny).unwrap();
        assert!(all.contains(at("2026-07-01T03:59:00Z")));
        let never = ActiveHours::from_config(&cfg("08:00", "08:00"), &ny).unwrap();
        assert!(!never.contains(at("2026-07-01T12:00:00Z")));
        assert!(ActiveHours::from_config(&cfg("25:00", "08:00"), &ny).is_err());
        assert!(ActiveHours::from_config(&cfg("08:00", "24:30"), &ny).is_err());
    }

    #[test]
    fn wakes_coalesce_and_are_rate_limited() {
        let hb = HeartbeatControl::new();
        let s = "agent:main:main";
        let d = hb.request_wake("main", s, "build done", WakeRequestMode::Now, 0);
        assert_eq!(
            (d.event_outcome, d.run),
            (EventOutcome::Queued, WakeRun::Now)
        );
        let d = hb.request_wake("main", s, "build done", WakeRequestMode::Now, 1_000);
        assert_eq!(d.event_outcome, EventOutcome::Coalesced);
        assert_eq!(
            d.run,
            WakeRun::At {
                at_ms: 30_000,
                reason: "min-spacing"
            }
        );
        // A second limited wake shares the same deferred run.
        let d = hb.request_wake("main", s, "tests done", WakeRequestMode::Now, 2_000);
        assert_eq!(
            (d.event_outcome, d.run),
            (
                EventOutcome::Queued,
                WakeRun::At {
                    at_ms: 30_000,
                    reason: "min-spacing"
                }
            )
        );
        assert_eq!(hb.pending_events(s), ["build done", "tests done"]);
        let d = hb.request_wake("main", s, "later", WakeRequestMode::NextHeartbeat, 3_000);
        assert_eq!(d.run, WakeRun::NextHeartbeat);
        assert_eq!(hb.drain_events(s).len(), 3);
        assert!(hb.drain_events(s).is_empty());
        // Flood guard: 5 starts within 60 s (deferred runs count too), then the next wake
        // waits until the oldest start leaves the window.
        let hb = HeartbeatControl::new();
        for t in [0, 31_000, 32_000, 33_000, 34_000] {
            hb.wake_started("ops", t);
        }
        let d = hb.request_wake("ops", s, "again", WakeRequestMode::Now, 40_000);
        assert_eq!(
            d.run,
            WakeRun::At {
                at_ms: 64_000,
                reason: "flood"
            }
        );
        let d = hb.request_wake("ops", s, "once more", WakeRequestMode::Now, 70_000);
        assert_eq!(d.run, WakeRun::Now);
    }

    #[test]
    fn switch_and_last_event() {
        let hb = HeartbeatControl::new();
        assert!(hb.last().is_none());
        let mut rx = hb.subscribe();
        hb.record(HeartbeatEvent::skipped(5, "quiet-hours"));
        assert_eq!(
            rx.try_recv().unwrap().reason.as_deref(),
            Some("quiet-hours")
        );
        assert_eq!(
            hb.set_enabled(false),
            SetHeartbeatsResult {
                ok: true,
                enabled: false
            }
        );
        let settings = resolve_heartbeats(&pincer_config::Config::default())
            .unwrap()
            .remove(0);
        assert_eq!(hb.preflight(&settings, 0), Err("disabled"));
        hb.set_enabled(true);
        assert_eq!(hb.preflight(&settings, 0), Ok(()));
        let json =
            serde_json::to_value(HeartbeatEvent::from_reply(9, 120, &HeartbeatReply::Ack)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"ts": 9, "status": "ok-token", "durationMs": 120, "indicatorType": "ok"})
        );
    }
}
