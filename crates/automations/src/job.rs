//! The job model (the spec's `CronJob`), creation input, patches, and validation.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{AutomationError, Result};
use crate::schedule::{format_iso, parse_at, CompiledSchedule, Schedule};

/// Longest job name / display name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest system-event text or agent message (characters).
pub const MAX_TEXT_CHARS: usize = 100_000;
/// An `at` this far in the past is refused at creation (a little slack for slow clients).
pub const AT_PAST_SLACK_MS: i64 = 60_000;

/// A job id: a UUID, written hyphenated and lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub Uuid);

impl JobId {
    pub fn new_random() -> JobId {
        JobId(Uuid::new_v4())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for JobId {
    type Err = AutomationError;
    fn from_str(s: &str) -> Result<JobId> {
        Uuid::parse_str(s.trim())
            .map(JobId)
            .map_err(|_| AutomationError::NotFound(s.to_string()))
    }
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<JobId, D::Error> {
        let s = String::deserialize(d)?;
        Uuid::parse_str(&s)
            .map(JobId)
            .map_err(|_| serde::de::Error::custom(format!("job id {s:?} is not a UUID")))
    }
}

/// Where a job's run happens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionTarget {
    /// The agent's main session (system events).
    Main,
    /// A fresh `cron:<jobId>` session per run.
    Isolated,
    /// The conversation the job was created from (`sessionKey` of the job).
    Current,
    /// A named session: `session:<key>`.
    Session(String),
}

impl SessionTarget {
    pub fn as_wire(&self) -> String {
        match self {
            SessionTarget::Main => "main".into(),
            SessionTarget::Isolated => "isolated".into(),
            SessionTarget::Current => "current".into(),
            SessionTarget::Session(k) => format!("session:{k}"),
        }
    }

    pub fn parse(text: &str) -> Result<SessionTarget> {
        match text {
            "main" => Ok(SessionTarget::Main),
            "isolated" => Ok(SessionTarget::Isolated),
            "current" => Ok(SessionTarget::Current),
            other => match other.strip_prefix("session:") {
                Some(key) if valid_session_id(key) => Ok(SessionTarget::Session(key.to_string())),
                Some(_) => Err(AutomationError::invalid(format!(
                    "invalid cron sessionTarget session id {other:?}: expected session:<key> with 1-256 characters and no whitespace"
                ))),
                None => Err(AutomationError::invalid(format!(
                    "sessionTarget must be \"main\", \"isolated\", \"current\" or \"session:<key>\" (got {other:?})"
                ))),
            },
        }
    }
}

fn valid_session_id(key: &str) -> bool {
    !key.is_empty() && key.chars().count() <= 256 && !key.chars().any(char::is_whitespace)
}

impl Serialize for SessionTarget {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_wire())
    }
}

impl<'de> Deserialize<'de> for SessionTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SessionTarget::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether a job's completion wakes the heartbeat at once or waits for its next tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum WakeMode {
    #[default]
    #[serde(rename = "now")]
    Now,
    #[serde(rename = "next-heartbeat")]
    NextHeartbeat,
}

impl WakeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            WakeMode::Now => "now",
            WakeMode::NextHeartbeat => "next-heartbeat",
        }
    }
}

/// Thinking levels accepted in an agent-turn payload.
pub const THINKING_LEVELS: &[&str] = &[
    "off", "minimal", "low", "medium", "high", "xhigh", "adaptive", "max", "ultra",
];

/// What a job does when it fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Payload {
    /// Text enqueued into the main session as a system event (no model call by itself).
    #[serde(rename = "systemEvent")]
    SystemEvent { text: String },
    /// A model-backed agent turn.
    #[serde(rename = "agentTurn", rename_all = "camelCase")]
    AgentTurn {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallbacks: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thinking: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        light_context: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tools_allow: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<u64>,
    },
    /// The system-owned heartbeat monitor (created by the gateway, never by users).
    #[serde(rename = "heartbeat")]
    Heartbeat {},
}

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::SystemEvent { .. } => "systemEvent",
            Payload::AgentTurn { .. } => "agentTurn",
            Payload::Heartbeat {} => "heartbeat",
        }
    }
}

/// Delivery mode of a job's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// Deliver the final text to a channel/session (`channel: "last"` = the last route).
    Announce,
    /// POST the result to `to` (bearer `cron.webhookToken`).
    Webhook,
    None,
}

/// Where a job's result goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delivery {
    pub mode: DeliveryMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_effort: Option<bool>,
}

/// Outcome of a finished run, as recorded on the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Ok,
    Error,
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Error => "error",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// Runtime state of a job (`state` of the CronJob).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_errors: u32,
    /// Set while a run is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_run_id: Option<String>,
    /// Set when the next run is a startup catch-up of a missed occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_catchup_at_ms: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The definition of a job: everything but its runtime state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDefinition {
    pub id: JobId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declaration_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub schedule: Schedule,
    pub session_target: SessionTarget,
    /// The bound conversation of a `current` job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    pub wake_mode: WakeMode,
    pub payload: Payload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_run: Option<bool>,
}

/// A job: definition, runtime state and the definition's revision hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJob {
    #[serde(flatten)]
    pub def: JobDefinition,
    pub state: JobState,
    /// `sha256:<base64url>` of the definition (without `updatedAtMs`); changes when the
    /// definition does. `cron.update` may require it (`expectedConfigRevision`).
    pub config_revision: String,
}

impl std::ops::Deref for CronJob {
    type Target = JobDefinition;
    fn deref(&self) -> &JobDefinition {
        &self.def
    }
}

impl CronJob {
    pub fn new(def: JobDefinition, state: JobState) -> CronJob {
        let config_revision = config_revision(&def);
        CronJob {
            def,
            state,
            config_revision,
        }
    }

    /// The agent the job runs as (`agentId`, else the default agent).
    pub fn effective_agent_id<'a>(&'a self, default_agent: &'a str) -> &'a str {
        self.def.agent_id.as_deref().unwrap_or(default_agent)
    }

    /// Whether the job is system-owned (a heartbeat monitor).
    pub fn is_system(&self) -> bool {
        matches!(self.def.payload, Payload::Heartbeat {})
            || self
                .def
                .declaration_key
                .as_deref()
                .is_some_and(|k| k.starts_with(HEARTBEAT_DECLARATION_PREFIX))
    }

    /// The `cron.list` / `cron.get` wire object: the job plus top-level `nextRunAtMs` and
    /// `effectiveAgentId`.
    pub fn to_wire(&self, default_agent: &str) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert(
                "nextRunAtMs".into(),
                self.state.next_run_at_ms.map_or(Value::Null, Value::from),
            );
            map.insert(
                "effectiveAgentId".into(),
                Value::from(self.effective_agent_id(default_agent)),
            );
        }
        v
    }
}

/// Declaration-key prefix of the system-owned heartbeat monitors.
pub const HEARTBEAT_DECLARATION_PREFIX: &str = "heartbeat:";

/// `sha256:<base64url>` of the definition with `updatedAtMs` zeroed (keys sorted).
pub fn config_revision(def: &JobDefinition) -> String {
    let mut v = serde_json::to_value(def).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("updatedAtMs".into(), Value::from(0));
    }
    let stable = stable_json(&v);
    format!(
        "sha256:{}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(stable.as_bytes()))
    )
}

/// JSON text with object keys sorted at every level (independent of map ordering features).
fn stable_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), stable_json(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(stable_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// Who is creating or changing a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An operator, the CLI or the agent's `automations` tool.
    User,
    /// The gateway itself (heartbeat monitors).
    System,
}

/// What validation needs to know about the gateway.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub default_agent_id: String,
    /// Configured agent ids (`None`: do not check).
    pub known_agents: Option<Vec<String>>,
    /// Zone of cron schedules without `tz`.
    pub default_tz: TimeZone,
}

impl Default for JobContext {
    fn default() -> Self {
        JobContext {
            default_agent_id: pincer_sessions::DEFAULT_AGENT_ID.to_string(),
            known_agents: None,
            default_tz: TimeZone::system(),
        }
    }
}

/// `cron.add` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewJob {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub declaration_key: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    pub schedule: Schedule,
    #[serde(default)]
    pub session_target: Option<SessionTarget>,
    #[serde(default)]
    pub session_key: Option<String>,
    #[serde(default)]
    pub wake_mode: Option<WakeMode>,
    pub payload: Payload,
    #[serde(default)]
    pub delivery: Option<Delivery>,
    #[serde(default)]
    pub delete_after_run: Option<bool>,
}

impl NewJob {
    /// Parses `cron.add` params, naming the offending field on error.
    pub fn from_value(params: Value) -> Result<NewJob> {
        serde_json::from_value(params)
            .map_err(|e| AutomationError::invalid(format!("invalid cron job: {e}")))
    }

    /// Validates and normalises the input into a job definition with id `id`, created at
    /// `now_ms`.
    pub fn into_definition(
        self,
        id: JobId,
        now_ms: i64,
        origin: Origin,
        ctx: &JobContext,
    ) -> Result<JobDefinition> {
        let session_target = self.session_target.unwrap_or(match self.payload {
            Payload::AgentTurn { .. } => SessionTarget::Isolated,
            _ => SessionTarget::Main,
        });
        let delete_after_run = match (&self.schedule, self.delete_after_run) {
            (Schedule::At { .. }, None) => Some(true),
            (_, d) => d,
        };
        let schedule = normalize_new_schedule(self.schedule, now_ms, ctx)?;
        let def = JobDefinition {
            id,
            declaration_key: self.declaration_key,
            display_name: self.display_name,
            agent_id: self.agent_id,
            name: self.name,
            description: self.description,
            enabled: self.enabled.unwrap_or(true),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            schedule,
            session_target,
            session_key: self.session_key,
            wake_mode: self.wake_mode.unwrap_or_default(),
            payload: self.payload,
            delivery: self.delivery,
            delete_after_run,
        };
        validate_definition(def, origin, ctx)
    }
}

/// Resolves relative `at` values and fills the `every` anchor.
fn normalize_new_schedule(schedule: Schedule, now_ms: i64, ctx: &JobContext) -> Result<Schedule> {
    match schedule {
        Schedule::At { at } => {
            let ms =
                parse_at(&at, None, now_ms).map_err(|e| AutomationError::invalid(e.to_string()))?;
            if ms < now_ms - AT_PAST_SLACK_MS {
                return Err(AutomationError::invalid(format!(
                    "schedule.at {at:?} is in the past ({}); a one-shot job must be in the future",
                    format_iso(ms)
                )));
            }
            Ok(Schedule::At { at: format_iso(ms) })
        }
        Schedule::Every {
            every_ms,
            anchor_ms,
        } => Ok(Schedule::Every {
            every_ms,
            anchor_ms: Some(anchor_ms.unwrap_or(now_ms)),
        }),
        cron @ Schedule::Cron { .. } => {
            let _ = ctx;
            Ok(cron)
        }
    }
}

fn check_label(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(AutomationError::invalid(format!(
            "cron {field} must not be blank"
        )));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(AutomationError::invalid(format!(
            "cron {field} must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

fn check_text(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(AutomationError::invalid(format!(
            "{field} must not be empty"
        )));
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(AutomationError::invalid(format!(
            "{field} must be at most {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(())
}

fn is_http_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !host.contains('@') && !host.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// Checks every rule of a definition (the same rules for `cron.add` and `cron.update`).
pub fn validate_definition(
    mut def: JobDefinition,
    origin: Origin,
    ctx: &JobContext,
) -> Result<JobDefinition> {
    def.name = def.name.trim().to_string();
    check_label("name", &def.name)?;
    if let Some(d) = &def.display_name {
        check_label("displayName", d)?;
    }
    if let Some(key) = &def.declaration_key {
        check_label("declarationKey", key)?;
        if origin == Origin::User && key.starts_with(HEARTBEAT_DECLARATION_PREFIX) {
            return Err(AutomationError::invalid(format!(
                "cron declarationKey {key:?} is reserved for system-owned heartbeat monitors"
            )));
        }
    }
    if let Some(agent) = &def.agent_id {
        let normalized = pincer_sessions::normalize_agent_id(agent);
        if !pincer_sessions::is_valid_agent_id(&normalized) {
            return Err(AutomationError::invalid(format!(
                "agentId {agent:?} is not a valid agent id"
            )));
        }
        if let Some(known) = &ctx.known_agents {
            if !known.contains(&normalized) {
                return Err(AutomationError::invalid(format!(
                    "agentId {agent:?} is not a configured agent (known: {})",
                    known.join(", ")
                )));
            }
        }
        def.agent_id = Some(normalized);
    }
    // Schedule: compiles and fires at least once more.
    let compiled = def
        .schedule
        .compile(&ctx.default_tz)
        .map_err(|e| AutomationError::invalid(e.to_string()))?;
    if let (Schedule::Cron { expr, .. }, CompiledSchedule::Cron { .. }) = (&def.schedule, &compiled)
    {
        if compiled
            .next_after(def.updated_at_ms, &def.id.to_string())
            .is_none()
        {
            return Err(AutomationError::invalid(format!(
                "cron expression {expr:?} has no upcoming run time and would never fire"
            )));
        }
    }
    // Payload.
    match &def.payload {
        Payload::SystemEvent { text } => check_text("payload.text", text)?,
        Payload::AgentTurn {
            message,
            thinking,
            timeout_seconds,
            model,
            ..
        } => {
            check_text("payload.message", message)?;
            if let Some(t) = thinking {
                if !THINKING_LEVELS.contains(&t.as_str()) {
                    return Err(AutomationError::invalid(format!(
                        "payload.thinking {t:?} is not one of {}",
                        THINKING_LEVELS.join(", ")
                    )));
                }
            }
            if *timeout_seconds == Some(0) {
                return Err(AutomationError::invalid(
                    "payload.timeoutSeconds must be positive",
                ));
            }
            if model.as_deref().is_some_and(|m| m.trim().is_empty()) {
                return Err(AutomationError::invalid("payload.model must not be blank"));
            }
        }
        Payload::Heartbeat {} => {
            if origin == Origin::User {
                return Err(AutomationError::invalid(
                    "payload.kind \"heartbeat\" is system-owned; configure agents.*.heartbeat instead",
                ));
            }
        }
    }
    // Session target ↔ payload.
    match (&def.session_target, &def.payload) {
        (SessionTarget::Main, Payload::SystemEvent { .. } | Payload::Heartbeat {}) => {
            let agent = def.agent_id.as_deref().unwrap_or(&ctx.default_agent_id);
            if agent != ctx.default_agent_id && !matches!(def.payload, Payload::Heartbeat {}) {
                return Err(AutomationError::invalid(format!(
                    "cron: sessionTarget \"main\" is only valid for the default agent. Use sessionTarget \"isolated\" with payload.kind \"agentTurn\" for non-default agents (agentId: {agent})"
                )));
            }
        }
        (SessionTarget::Main, _) => {
            return Err(AutomationError::invalid(
                "main cron jobs require payload.kind=\"systemEvent\"",
            ))
        }
        (_, Payload::AgentTurn { .. }) => {}
        (_, _) => {
            return Err(AutomationError::invalid(
                "isolated/current/session cron jobs require payload.kind=\"agentTurn\"",
            ))
        }
    }
    if def.session_target == SessionTarget::Current {
        match def.session_key.as_deref() {
            Some(k) if valid_session_id(k) => {}
            _ => {
                return Err(AutomationError::invalid(
                    "sessionTarget \"current\" needs the sessionKey of the conversation the job belongs to",
                ))
            }
        }
    }
    // Delivery.
    if let Some(d) = &def.delivery {
        if d.mode == DeliveryMode::Webhook && !d.to.as_deref().is_some_and(is_http_url) {
            return Err(AutomationError::invalid(
                "cron webhook delivery requires delivery.to to be a valid http(s) URL",
            ));
        }
        for (field, value) in [
            ("delivery.channel", &d.channel),
            ("delivery.to", &d.to),
            ("delivery.accountId", &d.account_id),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(AutomationError::invalid(format!(
                    "{field} must not be blank"
                )));
            }
        }
    }
    Ok(def)
}

/// Keys a patch may not touch.
const IMMUTABLE_KEYS: &[&str] = &[
    "id",
    "createdAtMs",
    "updatedAtMs",
    "state",
    "configRevision",
    "declarationKey",
];

/// Applies a `cron.update` patch (a JSON merge patch over the definition: objects merge,
/// `null` removes; `schedule` and `payload` objects with a different `kind` replace
/// wholesale) and validates the result.
pub fn apply_patch(
    current: &JobDefinition,
    patch: &Map<String, Value>,
    now_ms: i64,
    origin: Origin,
    ctx: &JobContext,
) -> Result<JobDefinition> {
    if origin == Origin::User
        && current
            .declaration_key
            .as_deref()
            .is_some_and(|k| k.starts_with(HEARTBEAT_DECLARATION_PREFIX))
    {
        return Err(AutomationError::SystemOwned(current.id.to_string()));
    }
    for key in patch.keys() {
        if IMMUTABLE_KEYS.contains(&key.as_str()) {
            return Err(AutomationError::invalid(format!(
                "cron.update cannot change {key}"
            )));
        }
    }
    let mut doc = serde_json::to_value(current)
        .map_err(|e| AutomationError::invalid(format!("cannot serialise job: {e}")))?;
    if let Value::Object(target) = &mut doc {
        merge(target, patch);
    }
    let mut def: JobDefinition = serde_json::from_value(doc)
        .map_err(|e| AutomationError::invalid(format!("invalid cron.update patch: {e}")))?;
    def.id = current.id;
    def.created_at_ms = current.created_at_ms;
    def.declaration_key.clone_from(&current.declaration_key);
    def.updated_at_ms = now_ms;
    if def.schedule != current.schedule {
        def.schedule = match def.schedule {
            // A new interval counts from now unless the patch names an anchor.
            Schedule::Every {
                every_ms,
                anchor_ms,
            } => Schedule::Every {
                every_ms,
                anchor_ms: if patch_names(patch, "schedule", "anchorMs") {
                    anchor_ms
                } else {
                    Some(now_ms)
                },
            },
            other => normalize_new_schedule(other, now_ms, ctx)?,
        };
    }
    validate_definition(def, origin, ctx)
}

fn patch_names(patch: &Map<String, Value>, object: &str, key: &str) -> bool {
    patch
        .get(object)
        .and_then(Value::as_object)
        .is_some_and(|o| o.contains_key(key))
}

fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(p) => match target.get_mut(key) {
                Some(Value::Object(t))
                    if p.get("kind").is_none_or(|k| Some(k) == t.get("kind")) =>
                {
                    merge(t, p);
                }
                _ => {
                    target.insert(key.clone(), value.clone());
                }
            },
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_795_236_345_836;

    fn ctx() -> JobContext {
        JobContext {
            default_agent_id: "main".into(),
            known_agents: Some(vec!["main".into(), "ops".into()]),
            default_tz: TimeZone::UTC,
        }
    }

    fn add(v: Value) -> Result<JobDefinition> {
        NewJob::from_value(v)?.into_definition(JobId::new_random(), NOW, Origin::User, &ctx())
    }

    #[test]
    fn the_spec_example_round_trips() {
        let def = add(json!({
            "name": "ev",
            "schedule": {"kind": "every", "everyMs": 7200000},
            "sessionTarget": "isolated",
            "wakeMode": "now",
            "payload": {"kind": "agentTurn", "message": "every test", "toolsAllow": ["*"]},
            "delivery": {"mode": "announce", "channel": "last"}
        }))
        .unwrap();
        assert_eq!(
            def.schedule,
            Schedule::Every {
                every_ms: 7_200_000,
                anchor_ms: Some(NOW)
            }
        );
        let job = CronJob::new(def, JobState::default());
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(
            v["schedule"],
            json!({"kind":"every","everyMs":7200000,"anchorMs":NOW})
        );
        assert_eq!(v["sessionTarget"], "isolated");
        assert_eq!(
            v["payload"],
            json!({"kind":"agentTurn","message":"every test","toolsAllow":["*"]})
        );
        assert_eq!(v["state"], json!({}));
        assert!(v["configRevision"].as_str().unwrap().starts_with("sha256:"));
        let back: CronJob = serde_json::from_value(v).unwrap();
        assert_eq!(back, job);
        let wire = job.to_wire("main");
        assert_eq!(wire["effectiveAgentId"], "main");
        assert_eq!(wire["nextRunAtMs"], Value::Null);
    }

    #[test]
    fn defaults_follow_the_payload() {
        let def = add(json!({"name": "r", "schedule": {"kind": "at", "at": "20m"},
            "payload": {"kind": "systemEvent", "text": "Reminder"}}))
        .unwrap();
        assert_eq!(def.session_target, SessionTarget::Main);
        assert_eq!(def.wake_mode, WakeMode::Now);
        assert_eq!(def.delete_after_run, Some(true));
        assert_eq!(
            def.schedule,
            Schedule::At {
                at: format_iso(NOW + 1_200_000)
            }
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let cases = [
            (
                json!({"name": " ", "schedule": {"kind": "every", "everyMs": 60000}, "payload": {"kind": "systemEvent", "text": "x"}}),
                "name must not be blank",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "cron", "expr": "0 8 * *"}, "payload": {"kind": "systemEvent", "text": "x"}}),
                "not a valid cron expression",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "cron", "expr": "0 8 * * *", "tz": "Nowhere/City"}, "payload": {"kind": "systemEvent", "text": "x"}}),
                "not a known IANA time zone",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "at", "at": "2001-01-01T00:00:00Z"}, "payload": {"kind": "systemEvent", "text": "x"}}),
                "is in the past",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "sessionTarget": "main", "payload": {"kind": "agentTurn", "message": "x"}}),
                "main cron jobs require payload.kind=\"systemEvent\"",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "sessionTarget": "isolated", "payload": {"kind": "systemEvent", "text": "x"}}),
                "require payload.kind=\"agentTurn\"",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "agentId": "ops", "payload": {"kind": "systemEvent", "text": "x"}}),
                "only valid for the default agent",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "agentId": "ghost", "payload": {"kind": "agentTurn", "message": "x"}}),
                "not a configured agent",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "payload": {"kind": "agentTurn", "message": "x"}, "delivery": {"mode": "webhook", "to": "ftp://x"}}),
                "valid http(s) URL",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "payload": {"kind": "agentTurn", "message": ""}}),
                "payload.message must not be empty",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "payload": {"kind": "agentTurn", "message": "x", "thinking": "hard"}}),
                "payload.thinking",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "sessionTarget": "current", "payload": {"kind": "agentTurn", "message": "x"}}),
                "sessionKey",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "sessionTarget": "session:", "payload": {"kind": "agentTurn", "message": "x"}}),
                "session id",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "payload": {"kind": "heartbeat"}}),
                "system-owned",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "every", "everyMs": 60000}, "payload": {"kind": "systemEvent", "text": "x"}, "pacing": {"min": "1m"}}),
                "unknown field `pacing`",
            ),
            (
                json!({"name": "a", "schedule": {"kind": "cron", "expr": "0 0 30 2 *"}, "payload": {"kind": "systemEvent", "text": "x"}}),
                "would never fire",
            ),
        ];
        for (input, expected) in cases {
            let err = add(input.clone()).expect_err(&format!("{input} should fail"));
            assert!(err.to_string().contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn patches_merge_replace_and_revalidate() {
        let def = add(json!({"name": "daily", "schedule": {"kind": "cron", "expr": "0 8 * * *", "tz": "Europe/Berlin"},
            "payload": {"kind": "agentTurn", "message": "hi", "model": "openai/gpt"}})).unwrap();
        let rev = config_revision(&def);
        let patch = json!({"payload": {"message": "hello", "model": null}, "schedule": {"expr": "30 9 * * *"}});
        let next = apply_patch(
            &def,
            patch.as_object().unwrap(),
            NOW + 5,
            Origin::User,
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            next.payload,
            Payload::AgentTurn {
                message: "hello".into(),
                model: None,
                fallbacks: None,
                thinking: None,
                light_context: None,
                tools_allow: None,
                timeout_seconds: None
            }
        );
        assert_eq!(
            next.schedule,
            Schedule::Cron {
                expr: "30 9 * * *".into(),
                tz: Some("Europe/Berlin".into()),
                stagger_ms: None
            }
        );
        assert_eq!(next.updated_at_ms, NOW + 5);
        assert_ne!(config_revision(&next), rev);
        // Same definition, different updatedAtMs: same revision.
        let mut touched = def.clone();
        touched.updated_at_ms += 1000;
        assert_eq!(config_revision(&touched), rev);
        // Kind change replaces the object; the rules still apply.
        let to_every = json!({"schedule": {"kind": "every", "everyMs": 600000}});
        let e = apply_patch(
            &def,
            to_every.as_object().unwrap(),
            NOW,
            Origin::User,
            &ctx(),
        )
        .unwrap();
        assert_eq!(
            e.schedule,
            Schedule::Every {
                every_ms: 600_000,
                anchor_ms: Some(NOW)
            }
        );
        let bad = json!({"sessionTarget": "main"});
        assert!(apply_patch(&def, bad.as_object().unwrap(), NOW, Origin::User, &ctx()).is_err());
        let immutable = json!({"id": "x"});
        assert!(apply_patch(
            &def,
            immutable.as_object().unwrap(),
            NOW,
            Origin::User,
            &ctx()
        )
        .unwrap_err()
        .to_string()
        .contains("cannot change id"));
    }
}
