//! HTTP hooks (`POST <hooks.path>/wake`, `/agent`, `/<mapping>`) as framework-independent
//! request validation: the gateway hands in method, path, query, headers and body and gets
//! back either the actions to dispatch or the HTTP error to answer.
//!
//! Order of checks (each failure is a clear 4xx with `{ok:false, error}`): path under
//! `hooks.path` (else not ours: fall through) → `POST` only (405, `Allow: POST`) → no
//! `token` in the query (400) → token from `Authorization: Bearer` (a non-empty bearer wins)
//! or `x-openclaw-token`, compared in constant time (401) → body ≤ 256 KiB (413) → JSON
//! object (400) → endpoint payload rules (400) → mapping match (404 when none, 204 when a
//! mapping yields no action).
//!
//! Replays: an agent action carries a [`AgentAction::replay_key`] derived from the
//! `Idempotency-Key` / `X-OpenClaw-Idempotency-Key` header or the payload's
//! `idempotencyKey` (trimmed, 1–256 chars), scoped by token, path and the resolved dispatch
//! fields. The gateway keeps replay outcomes in its one dedupe cache (in-flight entries
//! never evicted, finished ones for 5 minutes, at most 1,000), so a redelivery returns the
//! same `runId` instead of dispatching again. Failed-auth throttling (20 per 60 s ⇒ 429) is
//! the gateway's auth rate limiter's job.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::heartbeat::WakeRequestMode;
use crate::job::WakeMode;

/// Body cap of hook requests (256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Longest accepted idempotency key.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 256;
/// `forEach` processes at most this many items.
pub const MAX_FOR_EACH_ITEMS: usize = 200;
/// Header names the gateway should read (lowercase).
pub const TOKEN_HEADER: &str = "x-openclaw-token";

/// A hook HTTP error: status and message (`{ok:false, error}` body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookError {
    pub status: u16,
    pub error: String,
}

impl HookError {
    fn new(status: u16, error: impl Into<String>) -> HookError {
        HookError {
            status,
            error: error.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        serde_json::json!({"ok": false, "error": self.error})
    }

    /// Extra headers the response needs (`Allow` for 405).
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        if self.status == 405 {
            vec![("allow", "POST")]
        } else {
            Vec::new()
        }
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.error)
    }
}

/// `isolated` (fresh run session) or `persistent` (reuse the resolved session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    #[default]
    Isolated,
    Persistent,
}

/// One resolved mapping (custom or preset).
#[derive(Debug, Clone, PartialEq)]
pub struct HookMapping {
    pub id: String,
    pub match_path: Option<String>,
    pub match_source: Option<String>,
    pub action: MappingAction,
    pub wake_mode: WakeRequestMode,
    pub name: Option<String>,
    pub agent_id: Option<String>,
    pub session_key: Option<String>,
    pub session_mode: SessionMode,
    pub message_template: Option<String>,
    pub text_template: Option<String>,
    pub for_each: Option<String>,
    pub deliver: bool,
    pub allow_unsafe_external_content: bool,
    pub channel: Option<String>,
    pub to: Option<String>,
    pub model: Option<String>,
    pub thinking: Option<String>,
    pub timeout_seconds: Option<u64>,
}

/// What a mapping produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingAction {
    Wake,
    Agent,
}

/// The Gmail preset (`hooks.presets: ["gmail"]`).
pub fn gmail_preset() -> HookMapping {
    HookMapping {
        id: "gmail".into(),
        match_path: Some("gmail".into()),
        match_source: None,
        action: MappingAction::Agent,
        wake_mode: WakeRequestMode::Now,
        name: Some("Gmail".into()),
        agent_id: None,
        session_key: Some("hook:gmail:{{messages[0].id}}".into()),
        session_mode: SessionMode::Isolated,
        message_template: Some(
            "New email from {{messages[0].from}}\nSubject: {{messages[0].subject}}\n{{messages[0].snippet}}\n{{messages[0].body}}".into(),
        ),
        text_template: None,
        for_each: Some("messages".into()),
        deliver: true,
        allow_unsafe_external_content: false,
        channel: None,
        to: None,
        model: None,
        thinking: None,
        timeout_seconds: None,
    }
}

/// Effective `hooks.*` settings.
#[derive(Clone, PartialEq)]
pub struct HooksSettings {
    token: String,
    /// Normalised base path (`/hooks`).
    pub base_path: String,
    pub default_session_key: Option<String>,
    pub allow_request_session_key: bool,
    /// Lowercased, blanks dropped; empty = no restriction.
    pub allowed_session_key_prefixes: Vec<String>,
    /// `None` = any agent (omitted or containing `*`).
    pub allowed_agent_ids: Option<Vec<String>>,
    /// Configured agents; the default agent first.
    pub known_agents: Vec<String>,
    /// Custom mappings, then presets.
    pub mappings: Vec<HookMapping>,
}

impl fmt::Debug for HooksSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HooksSettings")
            .field("token", &"<redacted>")
            .field("base_path", &self.base_path)
            .field("mappings", &self.mappings.len())
            .finish_non_exhaustive()
    }
}

fn opt(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl HooksSettings {
    /// From configuration. `Ok(None)` when hooks are disabled (the routes fall through);
    /// an error names the key when an enabled configuration is unusable.
    pub fn from_config(cfg: &pincer_config::Config) -> Result<Option<HooksSettings>, String> {
        let Some(hooks) = cfg.hooks.as_ref().filter(|h| h.enabled == Some(true)) else {
            return Ok(None);
        };
        let token =
            opt(&hooks.token).ok_or("hooks.token is required when hooks.enabled is true")?;
        let raw_path = hooks.path.clone().unwrap_or_else(|| "/hooks".into());
        let trimmed = raw_path.trim().trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(format!(
                "hooks.path {raw_path:?} is not allowed: use a dedicated sub-path such as /hooks"
            ));
        }
        let base_path = if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        let allowed_agent_ids = match &hooks.allowed_agent_ids {
            None => None,
            Some(list) if list.iter().any(|a| a.trim() == "*") => None,
            Some(list) => Some(
                list.iter()
                    .map(|a| pincer_sessions::normalize_agent_id(a))
                    .collect(),
            ),
        };
        let allowed_session_key_prefixes: Vec<String> = hooks
            .allowed_session_key_prefixes
            .iter()
            .flatten()
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        let mut mappings = Vec::new();
        for (i, m) in hooks.mappings.iter().flatten().enumerate() {
            mappings.push(resolve_mapping(m, i)?);
        }
        for preset in hooks.presets.iter().flatten() {
            if preset == "gmail" {
                mappings.push(gmail_preset());
            }
        }
        let settings = HooksSettings {
            token,
            base_path,
            default_session_key: opt(&hooks.default_session_key),
            allow_request_session_key: hooks.allow_request_session_key.unwrap_or(false),
            allowed_session_key_prefixes,
            allowed_agent_ids,
            known_agents: cfg.agent_ids(),
            mappings,
        };
        if let Some(key) = &settings.default_session_key {
            if !settings.prefix_allowed(key) {
                return Err(format!(
                    "hooks.defaultSessionKey {key:?} does not match hooks.allowedSessionKeyPrefixes"
                ));
            }
        }
        for m in &settings.mappings {
            if m.session_key.as_deref().is_some_and(|k| k.contains("{{"))
                && settings.allowed_session_key_prefixes.is_empty()
            {
                return Err(format!(
                    "hooks mapping {:?} uses a templated sessionKey; set hooks.allowedSessionKeyPrefixes",
                    m.id
                ));
            }
        }
        Ok(Some(settings))
    }

    /// Settings for tests and embedding: a token, the default path, no mappings.
    pub fn new(token: &str, known_agents: Vec<String>) -> HooksSettings {
        HooksSettings {
            token: token.to_string(),
            base_path: "/hooks".into(),
            default_session_key: None,
            allow_request_session_key: false,
            allowed_session_key_prefixes: Vec::new(),
            allowed_agent_ids: None,
            known_agents,
            mappings: Vec::new(),
        }
    }

    fn prefix_allowed(&self, key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        self.allowed_session_key_prefixes.is_empty()
            || self
                .allowed_session_key_prefixes
                .iter()
                .any(|p| lower.starts_with(p.as_str()))
    }

    fn default_agent(&self) -> &str {
        self.known_agents
            .first()
            .map_or(pincer_sessions::DEFAULT_AGENT_ID, String::as_str)
    }

    fn agent_allowed(&self, agent: &str) -> bool {
        self.allowed_agent_ids
            .as_ref()
            .is_none_or(|list| list.iter().any(|a| a == agent))
    }

    /// The sub-path of `path` under the hooks base, or `None` when the request is not a
    /// hook request (the gateway's other routes handle it).
    pub fn subpath<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.base_path.as_str())?;
        if rest.is_empty() {
            return Some("");
        }
        rest.strip_prefix('/').map(|r| r.trim_end_matches('/'))
    }

    /// Validates a request and resolves it into actions.
    pub fn handle(&self, req: &HookRequest<'_>, now_ms: i64) -> HookOutcome {
        let Some(sub) = self.subpath(req.path) else {
            return HookOutcome::NotHook;
        };
        match self.check(req, sub, now_ms) {
            Ok(actions) if actions.is_empty() => HookOutcome::NoContent,
            Ok(actions) => HookOutcome::Actions(actions),
            Err(e) => HookOutcome::Error(e),
        }
    }

    fn check(
        &self,
        req: &HookRequest<'_>,
        sub: &str,
        now_ms: i64,
    ) -> Result<Vec<HookAction>, HookError> {
        if !req.method.eq_ignore_ascii_case("POST") {
            return Err(HookError::new(405, "Method Not Allowed"));
        }
        if query_has_token(req.query) {
            return Err(HookError::new(
                400,
                "hook token must be sent in the Authorization or x-openclaw-token header, not the query string",
            ));
        }
        if !self.authorized(req) {
            return Err(HookError::new(401, "Unauthorized"));
        }
        if let Some(len) = req
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            if len > MAX_BODY_BYTES as u64 {
                return Err(too_large());
            }
        }
        if req.body.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        if sub.is_empty() {
            return Err(HookError::new(404, "no hook action at this path"));
        }
        let payload: Value = serde_json::from_slice(req.body)
            .map_err(|e| HookError::new(400, format!("invalid JSON body: {e}")))?;
        let Value::Object(payload) = payload else {
            return Err(HookError::new(400, "the JSON body must be an object"));
        };
        match sub {
            "wake" => Ok(vec![HookAction::Wake(self.direct_wake(&payload)?)]),
            "agent" => Ok(vec![HookAction::Agent(Box::new(
                self.direct_agent(req, sub, &payload)?,
            ))]),
            _ => self.mapped(req, sub, payload, now_ms),
        }
    }

    fn authorized(&self, req: &HookRequest<'_>) -> bool {
        let bearer = req
            .header("authorization")
            .and_then(|v| {
                let v = v.trim();
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty());
        let presented = bearer.or_else(|| {
            req.header(TOKEN_HEADER)
                .map(str::trim)
                .filter(|t| !t.is_empty())
        });
        match presented {
            Some(token) => bool::from(token.as_bytes().ct_eq(self.token.as_bytes())),
            None => false,
        }
    }

    fn resolve_agent(&self, requested: Option<&str>) -> Result<String, HookError> {
        let agent = match requested.map(str::trim).filter(|a| !a.is_empty()) {
            Some(a) => {
                let id = pincer_sessions::normalize_agent_id(a);
                if !self.known_agents.contains(&id) {
                    return Err(HookError::new(
                        400,
                        format!("agentId {a:?} is not a configured agent"),
                    ));
                }
                id
            }
            None => self.default_agent().to_string(),
        };
        if !self.agent_allowed(&agent) {
            return Err(HookError::new(
                400,
                format!("agent {agent:?} is not allowed by hooks.allowedAgentIds"),
            ));
        }
        Ok(agent)
    }

    fn request_session_key(&self, key: &str) -> Result<String, HookError> {
        if !self.allow_request_session_key {
            return Err(HookError::new(
                400,
                "sessionKey is not accepted from requests (hooks.allowRequestSessionKey is false)",
            ));
        }
        self.check_prefix(key)
    }

    fn check_prefix(&self, key: &str) -> Result<String, HookError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(HookError::new(400, "sessionKey must not be empty"));
        }
        if !self.prefix_allowed(key) {
            return Err(HookError::new(
                400,
                format!("sessionKey {key:?} is not allowed by hooks.allowedSessionKeyPrefixes"),
            ));
        }
        Ok(key.to_string())
    }

    fn direct_wake(&self, p: &Map<String, Value>) -> Result<WakeAction, HookError> {
        let body: WakeBody = from_object(p)?;
        let text = body.text.trim();
        if text.is_empty() {
            return Err(HookError::new(400, "text is required"));
        }
        let mode = body.mode.unwrap_or_default();
        let agent_id = self.resolve_agent(body.agent_id.as_deref())?;
        let session_key = match body.session_key.as_deref() {
            Some(key) => {
                if mode != WakeRequestMode::Now {
                    return Err(HookError::new(400, "sessionKey requires mode \"now\""));
                }
                Some(self.request_session_key(key)?)
            }
            None => None,
        };
        Ok(WakeAction {
            text: text.to_string(),
            mode,
            agent_id,
            session_key,
        })
    }

    fn direct_agent(
        &self,
        req: &HookRequest<'_>,
        sub: &str,
        p: &Map<String, Value>,
    ) -> Result<AgentAction, HookError> {
        let body: AgentBody = from_object(p)?;
        let message = body.message.trim();
        if message.is_empty() {
            return Err(HookError::new(400, "message is required"));
        }
        let agent_id = self.resolve_agent(body.agent_id.as_deref())?;
        let session_mode = body.session_mode.unwrap_or_default();
        let session_key = match body.session_key.as_deref() {
            Some(k) => Some(self.request_session_key(k)?),
            None => None,
        };
        if session_mode == SessionMode::Persistent
            && (session_key.is_none() || self.allowed_session_key_prefixes.is_empty())
        {
            return Err(HookError::new(
                400,
                "sessionMode \"persistent\" needs an explicit sessionKey, hooks.allowRequestSessionKey and hooks.allowedSessionKeyPrefixes",
            ));
        }
        let session_key = self.finish_session_key(session_key)?;
        let deliver = body.deliver.unwrap_or(true);
        let (channel, to, account_id) = if deliver {
            let channel = opt(&body.channel);
            let to = opt(&body.to);
            let account_id = opt(&body.account_id);
            if channel.as_deref() == Some("last") {
                return Err(HookError::new(
                    400,
                    "channel \"last\" is not accepted by /agent; name a channel and recipient",
                ));
            }
            if channel.is_some() != to.is_some() {
                return Err(HookError::new(
                    400,
                    "direct delivery needs both channel and to",
                ));
            }
            if account_id.is_some() && channel.is_none() {
                return Err(HookError::new(400, "accountId requires channel and to"));
            }
            (channel, to, account_id)
        } else {
            (None, None, None)
        };
        let timeout_seconds = body
            .timeout_seconds
            .filter(|t| t.is_finite() && *t >= 1.0)
            .map(|t| t.floor() as u64);
        let mut action = AgentAction {
            message: message.to_string(),
            name: opt(&body.name).unwrap_or_else(|| "Hook".into()),
            agent_id,
            session_key,
            session_mode,
            wake_mode: body.wake_mode.unwrap_or(WakeMode::Now),
            deliver,
            channel,
            to,
            account_id,
            model: opt(&body.model),
            thinking: opt(&body.thinking),
            timeout_seconds,
            wait_for_completion: body.wait_for_completion.unwrap_or(false),
            allow_unsafe_external_content: false,
            source: "agent".into(),
            replay_key: None,
        };
        let explicit = idempotency_key(req).or_else(|| {
            opt(&body.idempotency_key).filter(|k| k.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS)
        });
        action.replay_key = explicit.map(|k| self.replay_key(sub, &k, &action));
        Ok(action)
    }

    /// Request key (already checked) → `hooks.defaultSessionKey` → a fresh `hook:<uuid>`,
    /// each subject to the prefix allowlist.
    fn finish_session_key(&self, key: Option<String>) -> Result<String, HookError> {
        match key.or_else(|| self.default_session_key.clone()) {
            Some(k) => self.check_prefix(&k),
            None => {
                let generated = format!("hook:{}", uuid::Uuid::new_v4());
                if !self.prefix_allowed(&generated) {
                    return Err(HookError::new(
                        400,
                        "generated hook: session keys are not allowed by hooks.allowedSessionKeyPrefixes; set hooks.defaultSessionKey",
                    ));
                }
                Ok(generated)
            }
        }
    }

    fn replay_key(&self, sub: &str, key: &str, action: &AgentAction) -> String {
        let mut h = Sha256::new();
        h.update(Sha256::digest(self.token.as_bytes()));
        for part in [
            sub,
            key,
            &action.message,
            &action.agent_id,
            match action.session_mode {
                SessionMode::Isolated => "isolated",
                SessionMode::Persistent => "persistent",
            },
            action.channel.as_deref().unwrap_or(""),
            action.to.as_deref().unwrap_or(""),
            action.model.as_deref().unwrap_or(""),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let digest = h.finalize();
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("hook:{hex}")
    }

    fn mapped(
        &self,
        req: &HookRequest<'_>,
        sub: &str,
        payload: Map<String, Value>,
        now_ms: i64,
    ) -> Result<Vec<HookAction>, HookError> {
        let source = payload.get("source").and_then(Value::as_str);
        let Some(mapping) = self.mappings.iter().find(|m| {
            m.match_path
                .as_deref()
                .is_none_or(|p| p.trim_matches('/') == sub)
                && m.match_source.as_deref().is_none_or(|s| Some(s) == source)
        }) else {
            return Err(HookError::new(
                404,
                format!("no hook mapping matches {sub:?}"),
            ));
        };
        let items: Vec<Map<String, Value>> = match &mapping.for_each {
            None => vec![payload],
            Some(key) => {
                if key.contains(['.', '[']) || key == "__proto__" {
                    return Err(HookError::new(
                        500,
                        "hook mapping failed: forEach must name a top-level array",
                    ));
                }
                match payload.get(key) {
                    Some(Value::Array(list)) => list
                        .iter()
                        .take(MAX_FOR_EACH_ITEMS)
                        .map(|item| {
                            let mut p = payload.clone();
                            p.insert(key.clone(), Value::Array(vec![item.clone()]));
                            p
                        })
                        .collect(),
                    _ => Vec::new(),
                }
            }
        };
        let mut actions = Vec::new();
        for item in items {
            let ctx = TemplateContext {
                payload: &item,
                headers: &req.headers,
                query: req.query,
                path: sub,
                now_ms,
            };
            let agent_id = self.resolve_mapping_agent(mapping.agent_id.as_deref())?;
            match mapping.action {
                MappingAction::Wake => {
                    let text = render(mapping.text_template.as_deref().unwrap_or(""), &ctx);
                    if text.trim().is_empty() {
                        return Err(HookError::new(
                            400,
                            format!("hook mapping {:?} rendered an empty wake text", mapping.id),
                        ));
                    }
                    actions.push(HookAction::Wake(WakeAction {
                        text: text.trim().to_string(),
                        mode: mapping.wake_mode,
                        agent_id,
                        session_key: None,
                    }));
                }
                MappingAction::Agent => {
                    let message = render(mapping.message_template.as_deref().unwrap_or(""), &ctx);
                    if message.trim().is_empty() {
                        return Err(HookError::new(
                            400,
                            format!("hook mapping {:?} rendered an empty message", mapping.id),
                        ));
                    }
                    let session_key = match mapping.session_key.as_deref() {
                        Some(t) if t.contains("{{") => {
                            let key = render(t, &ctx);
                            if key.trim().is_empty() {
                                return Err(HookError::new(
                                    400,
                                    format!(
                                        "hook mapping {:?} rendered an empty sessionKey",
                                        mapping.id
                                    ),
                                ));
                            }
                            Some(self.request_session_key(&key)?)
                        }
                        Some(fixed) => Some(self.check_prefix(fixed)?),
                        None => None,
                    };
                    if mapping.session_mode == SessionMode::Persistent
                        && session_key.is_none()
                        && self.default_session_key.is_none()
                    {
                        return Err(HookError::new(
                            400,
                            format!(
                                "hook mapping {:?} is persistent but has no sessionKey",
                                mapping.id
                            ),
                        ));
                    }
                    let session_key = self.finish_session_key(session_key)?;
                    let mut action = AgentAction {
                        message: message.trim().to_string(),
                        name: mapping
                            .name
                            .as_deref()
                            .map(|n| render(n, &ctx))
                            .filter(|n| !n.trim().is_empty())
                            .unwrap_or_else(|| "Hook".into()),
                        agent_id,
                        session_key,
                        session_mode: mapping.session_mode,
                        wake_mode: match mapping.wake_mode {
                            WakeRequestMode::Now => WakeMode::Now,
                            WakeRequestMode::NextHeartbeat => WakeMode::NextHeartbeat,
                        },
                        deliver: mapping.deliver,
                        channel: mapping.channel.clone().or_else(|| Some("last".into())),
                        to: mapping
                            .to
                            .as_deref()
                            .map(|t| render(t, &ctx))
                            .filter(|t| !t.is_empty()),
                        account_id: None,
                        model: mapping
                            .model
                            .as_deref()
                            .map(|m| render(m, &ctx))
                            .filter(|m| !m.is_empty()),
                        thinking: mapping
                            .thinking
                            .as_deref()
                            .map(|m| render(m, &ctx))
                            .filter(|m| !m.is_empty()),
                        timeout_seconds: mapping.timeout_seconds.filter(|t| *t > 0),
                        wait_for_completion: false,
                        allow_unsafe_external_content: mapping.allow_unsafe_external_content,
                        source: mapping.id.clone(),
                        replay_key: None,
                    };
                    // Fan-out items replay by their rendered content even without a key.
                    let key = idempotency_key(req).unwrap_or_default();
                    action.replay_key = Some(self.replay_key(sub, &key, &action));
                    actions.push(HookAction::Agent(Box::new(action)));
                }
            }
        }
        Ok(actions)
    }

    fn resolve_mapping_agent(&self, id: Option<&str>) -> Result<String, HookError> {
        // Unknown mapping agent ids fall back to the default agent (as the reference).
        let agent = id
            .map(pincer_sessions::normalize_agent_id)
            .filter(|a| self.known_agents.contains(a))
            .unwrap_or_else(|| self.default_agent().to_string());
        if !self.agent_allowed(&agent) {
            return Err(HookError::new(
                400,
                format!("agent {agent:?} is not allowed by hooks.allowedAgentIds"),
            ));
        }
        Ok(agent)
    }
}

fn too_large() -> HookError {
    HookError::new(413, format!("request body exceeds {MAX_BODY_BYTES} bytes"))
}

fn from_object<T: serde::de::DeserializeOwned>(p: &Map<String, Value>) -> Result<T, HookError> {
    serde_json::from_value(Value::Object(p.clone()))
        .map_err(|e| HookError::new(400, format!("invalid payload: {e}")))
}

fn query_has_token(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("token"))
        })
    })
}

fn idempotency_key(req: &HookRequest<'_>) -> Option<String> {
    ["idempotency-key", "x-openclaw-idempotency-key"]
        .iter()
        .filter_map(|h| req.header(h))
        .map(str::trim)
        .find(|k| !k.is_empty() && k.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS)
        .map(str::to_string)
}

/// One of `choices` by name; absent or blank = the first (the default).
fn choose<T: Copy>(
    value: Option<&str>,
    index: usize,
    field: &str,
    choices: &[(&str, T)],
) -> Result<T, String> {
    let wanted = value.map(str::trim).filter(|v| !v.is_empty());
    match wanted {
        None => choices
            .first()
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("hooks.mappings[{index}].{field} has no default")),
        Some(w) => choices
            .iter()
            .find(|(name, _)| *name == w)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
                format!(
                    "hooks.mappings[{index}].{field} {w:?} must be one of {}",
                    names.join(", ")
                )
            }),
    }
}

fn resolve_mapping(
    m: &pincer_config::model::automation::HookMapping,
    index: usize,
) -> Result<HookMapping, String> {
    let id = opt(&m.id).unwrap_or_else(|| format!("mapping-{index}"));
    if m.transform.is_some() {
        return Err(format!(
            "hooks.mappings[{index}].transform: JavaScript transform modules are not supported by Pincer; use messageTemplate/textTemplate"
        ));
    }
    let action = choose(
        m.action.as_deref(),
        index,
        "action",
        &[
            ("agent", MappingAction::Agent),
            ("wake", MappingAction::Wake),
        ],
    )?;
    let wake_mode = choose(
        m.wake_mode.as_deref(),
        index,
        "wakeMode",
        &[
            ("now", WakeRequestMode::Now),
            ("next-heartbeat", WakeRequestMode::NextHeartbeat),
        ],
    )?;
    let session_mode = choose(
        m.session_mode.as_deref(),
        index,
        "sessionMode",
        &[
            ("isolated", SessionMode::Isolated),
            ("persistent", SessionMode::Persistent),
        ],
    )?;
    if let Some(key) = opt(&m.for_each) {
        if key.contains(['.', '[']) || key == "__proto__" || key == "constructor" {
            return Err(format!(
                "hooks.mappings[{index}].forEach {key:?} must name a top-level array"
            ));
        }
    }
    let matcher = m.matcher.clone().unwrap_or_default();
    Ok(HookMapping {
        id,
        match_path: opt(&matcher.path).map(|p| p.trim_matches('/').to_string()),
        match_source: opt(&matcher.source),
        action,
        wake_mode,
        name: opt(&m.name),
        agent_id: opt(&m.agent_id),
        session_key: opt(&m.session_key),
        session_mode,
        message_template: m.message_template.clone(),
        text_template: m.text_template.clone(),
        for_each: opt(&m.for_each),
        deliver: m.deliver.unwrap_or(true),
        allow_unsafe_external_content: m.allow_unsafe_external_content.unwrap_or(false),
        channel: opt(&m.channel),
        to: opt(&m.to),
        model: opt(&m.model),
        thinking: opt(&m.thinking),
        timeout_seconds: m.timeout_seconds,
    })
}

/// A hook request as the HTTP layer saw it.
#[derive(Debug, Clone)]
pub struct HookRequest<'a> {
    pub method: &'a str,
    /// The path without the query string.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Header names and values (names compared case-insensitively).
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

impl HookRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// What to answer.
#[derive(Debug, Clone, PartialEq)]
pub enum HookOutcome {
    /// Not under `hooks.path`: let the other routes answer.
    NotHook,
    /// 204: a mapping matched but produced nothing.
    NoContent,
    /// Dispatch these (the gateway answers `{ok:true, mode, eventOutcome}` for a wake,
    /// `{ok:true, runId}` after admitting an agent run).
    Actions(Vec<HookAction>),
    Error(HookError),
}

/// A validated hook action.
#[derive(Debug, Clone, PartialEq)]
pub enum HookAction {
    Wake(WakeAction),
    Agent(Box<AgentAction>),
}

/// Enqueue `text` as a system event and wake the heartbeat (`mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeAction {
    pub text: String,
    pub mode: WakeRequestMode,
    pub agent_id: String,
    /// Only with `mode: now` and the caller-key policy; otherwise the main session.
    pub session_key: Option<String>,
}

/// Run an agent turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAction {
    /// The external content (the agent wraps it as untrusted unless allowed otherwise).
    pub message: String,
    pub name: String,
    pub agent_id: String,
    /// The logical key (`hook:<uuid>` when none was given).
    pub session_key: String,
    pub session_mode: SessionMode,
    pub wake_mode: WakeMode,
    pub deliver: bool,
    pub channel: Option<String>,
    pub to: Option<String>,
    pub account_id: Option<String>,
    pub model: Option<String>,
    pub thinking: Option<String>,
    pub timeout_seconds: Option<u64>,
    pub wait_for_completion: bool,
    pub allow_unsafe_external_content: bool,
    /// `agent` for `/agent`, else the mapping id.
    pub source: String,
    /// The dedupe key for redeliveries (`hook:<hex>`), when the request has one.
    pub replay_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WakeBody {
    text: String,
    #[serde(default)]
    mode: Option<WakeRequestMode>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    session_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AgentBody {
    message: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    session_key: Option<String>,
    #[serde(default)]
    session_mode: Option<SessionMode>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    wait_for_completion: Option<bool>,
    #[serde(default)]
    wake_mode: Option<WakeMode>,
    #[serde(default)]
    deliver: Option<bool>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    timeout_seconds: Option<f64>,
}

struct TemplateContext<'a> {
    payload: &'a Map<String, Value>,
    headers: &'a [(&'a str, &'a str)],
    query: Option<&'a str>,
    path: &'a str,
    now_ms: i64,
}

/// Renders `{{expr}}` placeholders: `payload.a.b`, `a.b` (payload implied), `list[0].x`,
/// `headers.<name>`, `query.<name>`, `path`, `now` (ISO). Missing and null values render
/// empty; objects and arrays render as JSON.
fn render(template: &str, ctx: &TemplateContext<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        out.push_str(&lookup(after[..end].trim(), ctx));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup(expr: &str, ctx: &TemplateContext<'_>) -> String {
    if expr == "path" {
        return ctx.path.to_string();
    }
    if expr == "now" {
        return crate::schedule::format_iso(ctx.now_ms);
    }
    if let Some(name) = expr.strip_prefix("headers.") {
        return ctx
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
    }
    if let Some(name) = expr.strip_prefix("query.") {
        return ctx
            .query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.replace('+', " "))
            .unwrap_or_default();
    }
    let path = expr.strip_prefix("payload.").unwrap_or(expr);
    let mut current: Option<&Value> = None;
    let mut first = true;
    for segment in path.split('.') {
        let (name, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if matches!(name, "__proto__" | "constructor" | "prototype") {
            return String::new();
        }
        current = if first {
            ctx.payload.get(name)
        } else if name.is_empty() {
            current
        } else {
            current.and_then(|v| v.get(name))
        };
        first = false;
        for idx in indexes.split('[').skip(1) {
            let Some(n) = idx.strip_suffix(']').and_then(|n| n.parse::<usize>().ok()) else {
                return String::new();
            };
            current = current.and_then(|v| v.get(n));
        }
    }
    match current {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    const TOKEN: &str = "s3cret-hook-token";

    fn settings() -> HooksSettings {
        HooksSettings::new(TOKEN, vec!["main".into(), "ops".into()])
    }

    fn post<'a>(
        path: &'a str,
        body: &'a [u8],
        headers: Vec<(&'a str, &'a str)>,
    ) -> HookRequest<'a> {
        HookRequest {
            method: "POST",
            path,
            query: None,
            headers,
            body,
        }
    }

    fn auth() -> Vec<(&'static str, &'static str)> {
        vec![("Authorization", "Bearer s3cret-hook-token")]
    }

    fn err(o: HookOutcome) -> HookError {
        match o {
            HookOutcome::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn actions(o: HookOutcome) -> Vec<HookAction> {
        match o {
            HookOutcome::Actions(a) => a,
            other => panic!("expected actions, got {other:?}"),
        }
    }

    #[test]
    fn paths_outside_the_base_fall_through() {
        let s = settings();
        assert_eq!(
            s.handle(&post("/hooksx/wake", b"{}", auth()), 0),
            HookOutcome::NotHook
        );
        assert_eq!(
            s.handle(&post("/other", b"{}", auth()), 0),
            HookOutcome::NotHook
        );
    }

    #[test]
    fn bad_tokens_methods_and_query_tokens_are_refused() {
        let s = settings();
        let body = br#"{"text":"hi"}"#;
        assert_eq!(
            err(s.handle(&post("/hooks/wake", body, vec![]), 0)).status,
            401
        );
        assert_eq!(
            err(s.handle(
                &post("/hooks/wake", body, vec![("authorization", "Bearer wrong")]),
                0
            ))
            .status,
            401
        );
        assert_eq!(
            err(s.handle(
                &post(
                    "/hooks/wake",
                    body,
                    vec![("authorization", "Bearer s3cret-hook-tokenX")]
                ),
                0
            ))
            .status,
            401
        );
        assert_eq!(
            err(s.handle(
                &post(
                    "/hooks/wake",
                    body,
                    vec![("authorization", "Basic s3cret-hook-token")]
                ),
                0
            ))
            .status,
            401
        );
        // A non-empty bearer wins over x-openclaw-token.
        assert_eq!(
            err(s.handle(
                &post(
                    "/hooks/wake",
                    body,
                    vec![
                        ("authorization", "Bearer nope"),
                        ("x-openclaw-token", TOKEN)
                    ]
                ),
                0
            ))
            .status,
            401
        );
        assert!(matches!(
            s.handle(
                &post("/hooks/wake", body, vec![("X-OpenClaw-Token", TOKEN)]),
                0
            ),
            HookOutcome::Actions(_)
        ));
        let mut get = post("/hooks/wake", body, auth());
        get.method = "GET";
        let e = err(s.handle(&get, 0));
        assert_eq!((e.status, e.headers()), (405, vec![("allow", "POST")]));
        let mut q = post("/hooks/wake", body, auth());
        q.query = Some("a=1&token=s3cret-hook-token");
        assert_eq!(err(s.handle(&q, 0)).status, 400);
    }

    #[test]
    fn oversized_and_malformed_bodies_get_clear_4xx() {
        let s = settings();
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            err(s.handle(&post("/hooks/wake", &big, auth()), 0)).status,
            413
        );
        let mut h = auth();
        h.push(("content-length", "999999999"));
        assert_eq!(err(s.handle(&post("/hooks/wake", b"{}", h), 0)).status, 413);
        let e = err(s.handle(&post("/hooks/wake", b"{\"text\":", auth()), 0));
        assert_eq!(e.status, 400);
        assert!(e.error.starts_with("invalid JSON body"), "{}", e.error);
        assert_eq!(e.body(), json!({"ok": false, "error": e.error}));
        assert_eq!(
            err(s.handle(&post("/hooks/wake", b"[1,2]", auth()), 0)).error,
            "the JSON body must be an object"
        );
        assert_eq!(
            err(s.handle(&post("/hooks/wake", br#"{"text":"  "}"#, auth()), 0)).error,
            "text is required"
        );
        assert!(err(s.handle(
            &post("/hooks/wake", br#"{"text":"x","mode":"later"}"#, auth()),
            0
        ))
        .error
        .contains("unknown variant"));
        assert!(err(s.handle(
            &post("/hooks/wake", br#"{"text":"x","extra":1}"#, auth()),
            0
        ))
        .error
        .contains("unknown field `extra`"));
        assert_eq!(
            err(s.handle(&post("/hooks/agent", br#"{"name":"x"}"#, auth()), 0)).status,
            400
        );
        assert_eq!(err(s.handle(&post("/hooks", b"{}", auth()), 0)).status, 404);
        assert_eq!(
            err(s.handle(&post("/hooks/unknown", b"{}", auth()), 0)).status,
            404
        );
    }

    #[test]
    fn wake_and_agent_payloads_resolve_with_policy() {
        let s = settings();
        let a = actions(s.handle(
            &post(
                "/hooks/wake",
                br#"{"text":"Import done","mode":"next-heartbeat"}"#,
                auth(),
            ),
            0,
        ));
        assert_eq!(
            a,
            vec![HookAction::Wake(WakeAction {
                text: "Import done".into(),
                mode: WakeRequestMode::NextHeartbeat,
                agent_id: "main".into(),
                session_key: None
            })]
        );
        assert!(err(s.handle(
            &post("/hooks/wake", br#"{"text":"x","agentId":"ghost"}"#, auth()),
            0
        ))
        .error
        .contains("not a configured agent"));
        assert!(err(s.handle(
            &post(
                "/hooks/wake",
                br#"{"text":"x","sessionKey":"hook:a"}"#,
                auth()
            ),
            0
        ))
        .error
        .contains("allowRequestSessionKey"));
        let a = actions(s.handle(
            &post(
                "/hooks/agent",
                br#"{"message":"Summarize","agentId":"ops","deliver":false,"timeoutSeconds":12.7}"#,
                auth(),
            ),
            0,
        ));
        let HookAction::Agent(agent) = &a[0] else {
            panic!()
        };
        assert_eq!(agent.agent_id, "ops");
        assert_eq!(agent.name, "Hook");
        assert!(agent.session_key.starts_with("hook:"));
        assert_eq!(agent.session_mode, SessionMode::Isolated);
        assert_eq!(agent.timeout_seconds, Some(12));
        assert!(!agent.deliver);
        assert!(agent.replay_key.is_none());
        for (body, needle) in [
            (
                &br#"{"message":"x","channel":"telegram"}"#[..],
                "both channel and to",
            ),
            (br#"{"message":"x","channel":"last","to":"1"}"#, "\"last\""),
            (br#"{"message":"x","accountId":"a"}"#, "accountId requires"),
            (
                br#"{"message":"x","sessionMode":"persistent"}"#,
                "persistent",
            ),
        ] {
            let e = err(s.handle(&post("/hooks/agent", body, auth()), 0));
            assert!(
                e.error.contains(needle),
                "{}: {}",
                String::from_utf8_lossy(body),
                e.error
            );
        }
        let mut restricted = settings();
        restricted.allowed_agent_ids = Some(vec!["ops".into()]);
        assert!(
            err(restricted.handle(&post("/hooks/agent", br#"{"message":"x"}"#, auth()), 0))
                .error
                .contains("allowedAgentIds")
        );
    }

    #[test]
    fn redelivery_with_the_same_key_maps_to_the_same_replay_key() {
        let s = settings();
        let body = br#"{"message":"Build 42 finished","deliver":false}"#;
        let key = |headers: Vec<(&'static str, &'static str)>, body: &[u8], s: &HooksSettings| {
            let a = actions(s.handle(&post("/hooks/agent", body, headers), 0));
            let HookAction::Agent(agent) = &a[0] else {
                panic!()
            };
            agent.replay_key.clone()
        };
        let with = |k: &'static str| {
            let mut h = auth();
            h.push(("Idempotency-Key", k));
            h
        };
        let first = key(with("delivery-1"), body, &s).unwrap();
        assert_eq!(key(with("delivery-1"), body, &s).unwrap(), first);
        assert_ne!(key(with("delivery-2"), body, &s).unwrap(), first);
        // Same key, different content: a different dispatch.
        assert_ne!(
            key(
                with("delivery-1"),
                br#"{"message":"Build 43 finished","deliver":false}"#,
                &s
            )
            .unwrap(),
            first
        );
        // The payload key counts when no header is sent; the header wins otherwise.
        let payload_key =
            br#"{"message":"Build 42 finished","deliver":false,"idempotencyKey":"delivery-1"}"#;
        assert_eq!(key(auth(), payload_key, &s).unwrap(), first);
        // Another token scopes keys apart.
        let other = HooksSettings::new("another-token", vec!["main".into()]);
        let mut h = vec![("authorization", "Bearer another-token")];
        h.push(("Idempotency-Key", "delivery-1"));
        assert_ne!(key(h, body, &other).unwrap(), first);
        // Oversized keys are ignored.
        let long: &'static str = Box::leak("k".repeat(300).into_boxed_str());
        assert!(key(with(long), body, &s).is_none());
    }

    #[test]
    fn mappings_with_templates_sources_for_each_and_presets() {
        let cfg = pincer_config::Config {
            hooks: Some(serde_json::from_value(json!({
            "enabled": true, "token": TOKEN, "path": "/hooks/",
            "allowRequestSessionKey": true, "allowedSessionKeyPrefixes": ["hook:"],
            "presets": ["gmail"],
            "mappings": [
                {"match": {"path": "ci", "source": "github"}, "action": "wake",
                 "textTemplate": "CI {{payload.status}} on {{repo.name}} ({{headers.x-event-type}}, {{query.kind}})"},
                {"id": "deploys", "match": {"path": "ci"}, "messageTemplate": "Deploy {{deploys[0].env}}: {{deploys[0]}}",
                 "forEach": "deploys", "name": "Deploy {{deploys[0].env}}", "sessionKey": "hook:deploy:{{deploys[0].id}}"}
            ]
            })).unwrap()),
            ..Default::default()
        };
        let s = HooksSettings::from_config(&cfg).unwrap().unwrap();
        assert_eq!(s.base_path, "/hooks");
        assert_eq!(s.mappings.len(), 3);
        let mut req = post(
            "/hooks/ci",
            br#"{"source":"github","status":"failed","repo":{"name":"pincer"}}"#,
            auth(),
        );
        req.headers.push(("X-Event-Type", "check_run"));
        req.query = Some("kind=push");
        let a = actions(s.handle(&req, 0));
        assert_eq!(
            a,
            vec![HookAction::Wake(WakeAction {
                text: "CI failed on pincer (check_run, push)".into(),
                mode: WakeRequestMode::Now,
                agent_id: "main".into(),
                session_key: None
            })]
        );
        let a = actions(s.handle(
            &post(
                "/hooks/ci",
                br#"{"deploys":[{"env":"prod","id":"D1"},{"env":"stage","id":"D2"}]}"#,
                auth(),
            ),
            0,
        ));
        assert_eq!(a.len(), 2);
        let HookAction::Agent(first) = &a[0] else {
            panic!()
        };
        assert_eq!(first.message, r#"Deploy prod: {"env":"prod","id":"D1"}"#);
        assert_eq!(first.name, "Deploy prod");
        assert_eq!(first.session_key, "hook:deploy:D1");
        assert_eq!(first.source, "deploys");
        assert_eq!(first.channel.as_deref(), Some("last"));
        let HookAction::Agent(second) = &a[1] else {
            panic!()
        };
        assert_ne!(first.replay_key, second.replay_key);
        assert_eq!(
            s.handle(&post("/hooks/ci", br#"{"deploys":[]}"#, auth()), 0),
            HookOutcome::NoContent
        );
        let gmail = actions(s.handle(&post("/hooks/gmail", br#"{"messages":[{"id":"m1","from":"a@b","subject":"Hi","snippet":"s","body":null}]}"#, auth()), 0));
        let HookAction::Agent(g) = &gmail[0] else {
            panic!()
        };
        assert_eq!(g.session_key, "hook:gmail:m1");
        assert_eq!(g.message, "New email from a@b\nSubject: Hi\ns");
        assert_eq!(g.name, "Gmail");
    }

    #[test]
    fn unusable_configs_are_reported() {
        let with = |v: Value| {
            let cfg = pincer_config::Config {
                hooks: Some(serde_json::from_value(v).unwrap()),
                ..Default::default()
            };
            HooksSettings::from_config(&cfg)
        };
        assert_eq!(with(json!({"enabled": false})).unwrap(), None);
        assert!(with(json!({"enabled": true}))
            .unwrap_err()
            .contains("hooks.token is required"));
        assert!(with(json!({"enabled": true, "token": "t", "path": "/"}))
            .unwrap_err()
            .contains("hooks.path"));
        assert!(with(
            json!({"enabled": true, "token": "t", "mappings": [{"transform": {"module": "x.js"}}]})
        )
        .unwrap_err()
        .contains("transform"));
        assert!(with(
            json!({"enabled": true, "token": "t", "mappings": [{"sessionKey": "hook:{{id}}"}]})
        )
        .unwrap_err()
        .contains("allowedSessionKeyPrefixes"));
        let s = with(json!({"enabled": true, "token": "t"}))
            .unwrap()
            .unwrap();
        assert!(!format!("{s:?}").contains("\"t\""));
    }
}
