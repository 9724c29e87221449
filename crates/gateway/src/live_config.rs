//! The configuration in force.
//!
//! Loaded once at start from `<state>/pincer.json` (`PINCER_CONFIG_PATH` /
//! `OPENCLAW_CONFIG_PATH`); a missing file means defaults, an invalid one refuses the start
//! with the library's error (file, line, key path, reason). Afterwards the last good
//! [`Loaded`] sits in an [`ArcSwap`]: handlers read it lock-free (`state.config.get()`), and
//! the one reload path ([`crate::reload`]) swaps it in when the file watcher or a
//! `config.set|patch|apply` produced a new valid document.
//!
//! Also here: what the core used to hard-code and now derives from the config
//! (`hello-ok.snapshot.sessionDefaults`, per-agent heartbeat facts for `health`, the model
//! defaults of session rows), and the start-time precedence of flags, environment and
//! config for port, bind and auth.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use parking_lot::Mutex;
use pincer_config::model::agents::HeartbeatConfig;
use pincer_config::model::gateway::{AuthMode, BindMode as ConfigBind, ReloadMode};
use pincer_config::reload::{classify, ReloadAction, ReloadPlan};
use pincer_config::{Config, ConfigError, LoadOptions, Loaded, WarningKind};
use pincer_protocol::hello::SessionDefaults;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::TrustedProxySettings;
use crate::config::{AuthModeFlag, AuthOverrides, AuthSetting, BindMode};
use crate::util;

/// Reload bookkeeping (cold path: only touched on a reload and by `health`).
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// The last rejected edit: message (file, line, key path, reason) and when.
    pub last_error: Option<(String, u64)>,
    /// Paths whose value differs from what the gateway started with and that only take
    /// effect after a restart.
    pub restart_required: Vec<String>,
    /// Applied reloads since start.
    pub reloads: u64,
    pub last_applied_at: Option<u64>,
}

/// What installing a new document did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Same document as the one in force.
    Unchanged,
    /// Swapped in; `plan` classifies the changed paths.
    Applied(ReloadPlan),
    /// `gateway.reload.mode` is `off`: validated but not applied (restart to apply).
    Deferred(ReloadPlan),
}

/// Changed leaf paths between two documents: like `pincer_config::reload::changed_paths`,
/// but a section that appears or disappears as a whole is expanded into its leaves, so
/// adding `gateway: {auth: {token}}` classifies as `gateway.auth.token` (hot), not as
/// `gateway` (restart).
pub fn changed_leaves(old: &Value, new: &Value) -> Vec<String> {
    fn walk(a: Option<&Value>, b: Option<&Value>, prefix: &str, out: &mut Vec<String>) {
        let join = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match (a, b) {
            (Some(x), Some(y)) if x == y => {}
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                for (k, v) in x {
                    walk(Some(v), y.get(k), &join(k), out);
                }
                for (k, v) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                    walk(None, Some(v), &join(k), out);
                }
            }
            (Some(Value::Object(x)), None) | (None, Some(Value::Object(x))) if !x.is_empty() => {
                for (k, v) in x {
                    let (a, b) = if a.is_some() {
                        (Some(v), None)
                    } else {
                        (None, Some(v))
                    };
                    walk(a, b, &join(k), out);
                }
            }
            _ => out.push(if prefix.is_empty() {
                "(root)".to_string()
            } else {
                prefix.to_string()
            }),
        }
    }
    let mut out = Vec::new();
    walk(Some(old), Some(new), "", &mut out);
    out
}

/// The reload plan over [`changed_leaves`].
pub fn plan_between(old: &Value, new: &Value) -> ReloadPlan {
    let mut plan = ReloadPlan::default();
    for p in changed_leaves(old, new) {
        match classify(&p) {
            ReloadAction::Hot => plan.hot.push(p),
            ReloadAction::Restart => plan.restart.push(p),
            ReloadAction::None => plan.ignored.push(p),
        }
    }
    plan
}

/// The live configuration.
pub struct LiveConfig {
    state_dir: PathBuf,
    opts: LoadOptions,
    startup: Arc<Loaded>,
    current: ArcSwap<Loaded>,
    status: Mutex<ReloadStatus>,
    watching: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("path", &self.startup.path)
            .finish_non_exhaustive()
    }
}

/// Key of the config content hash (`baseHash`): derived from the gateway's private identity
/// seed, so the published hash cannot be used to test guesses of secrets in the file offline,
/// and stable across restarts.
pub fn hash_key_from_seed(seed: &[u8; 32]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"pincer config hash v1\0");
    h.update(seed);
    h.finalize().to_vec()
}

impl LiveConfig {
    /// Loads the config of `state_dir` (refusing on error) and logs its warnings once.
    pub fn load(state_dir: &Path, hash_key: Vec<u8>) -> Result<LiveConfig, ConfigError> {
        let mut opts = LoadOptions::from_process_env();
        opts.hash_key = hash_key;
        let path = pincer_config::config_path(state_dir, &|k| std::env::var(k).ok());
        let loaded = pincer_config::load(&path, &opts)?;
        log_warnings(&loaded);
        Ok(LiveConfig::from_loaded(state_dir, opts, loaded))
    }

    /// Wraps an already loaded document (tests, tools).
    pub fn from_loaded(state_dir: &Path, opts: LoadOptions, loaded: Loaded) -> LiveConfig {
        let loaded = Arc::new(loaded);
        LiveConfig {
            state_dir: state_dir.to_path_buf(),
            opts,
            current: ArcSwap::new(Arc::clone(&loaded)),
            startup: loaded,
            status: Mutex::new(ReloadStatus::default()),
            watching: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The document in force (cheap, lock-free; hold it only briefly).
    pub fn get(&self) -> Guard<Arc<Loaded>> {
        self.current.load()
    }

    /// The document in force, owned.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// The document the gateway started with.
    pub fn startup(&self) -> &Arc<Loaded> {
        &self.startup
    }

    pub fn path(&self) -> &Path {
        &self.startup.path
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn options(&self) -> &LoadOptions {
        &self.opts
    }

    pub fn reload_mode(&self) -> ReloadMode {
        self.get().config.gateway.reload.mode.unwrap_or_default()
    }

    pub(crate) fn set_watching(&self, on: bool) {
        self.watching
            .store(on, std::sync::atomic::Ordering::Release);
    }

    /// `health.configReload.hotReloadStatus`: `active` (watching, hybrid), `off`
    /// (`gateway.reload.mode: off`: validate only) or `unavailable` (no watcher).
    pub fn hot_reload_status(&self) -> &'static str {
        if !self.watching.load(std::sync::atomic::Ordering::Acquire) {
            "unavailable"
        } else if self.reload_mode() == ReloadMode::Off {
            "off"
        } else {
            "active"
        }
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().clone()
    }

    /// Installs `next` unless it equals the document in force. Only the reload path calls it.
    pub(crate) fn install(&self, next: Arc<Loaded>) -> Installed {
        let cur = self.current();
        if cur.source == next.source && cur.raw == next.raw {
            return Installed::Unchanged;
        }
        let plan = plan_between(&cur.source, &next.source);
        let cur_off = cur.config.gateway.reload.mode == Some(ReloadMode::Off);
        let next_off = next.config.gateway.reload.mode == Some(ReloadMode::Off);
        let mut status = self.status.lock();
        status.last_error = None;
        if cur_off && next_off {
            status.restart_required = plan_between(&self.startup.source, &next.source)
                .hot
                .into_iter()
                .chain(plan_between(&self.startup.source, &next.source).restart)
                .collect();
            return Installed::Deferred(plan);
        }
        status.restart_required = plan_between(&self.startup.source, &next.source).restart;
        status.reloads += 1;
        status.last_applied_at = Some(util::now_ms());
        drop(status);
        log_warnings(&next);
        self.current.store(next);
        Installed::Applied(plan)
    }

    /// Records a rejected edit (the last good document stays in force).
    pub(crate) fn reject(&self, error: &ConfigError) {
        self.status.lock().last_error = Some((error.to_string(), util::now_ms()));
    }

    /// `hello-ok.snapshot.sessionDefaults` from the config in force.
    pub fn session_defaults(&self) -> SessionDefaults {
        session_defaults(&self.get().config)
    }

    /// `health.configReload`: the reference's `hotReloadStatus` plus, when there is
    /// something to report, `lastError` / `restartRequired` (Pincer extensions).
    pub fn reload_health(&self) -> Value {
        let status = self.status();
        let mut v = json!({"hotReloadStatus": self.hot_reload_status()});
        if let Some((message, at)) = status.last_error {
            v["lastError"] = json!({"message": message, "at": at});
        }
        if !status.restart_required.is_empty() {
            v["restartRequired"] = json!(status.restart_required);
        }
        v
    }
}

fn log_warnings(loaded: &Loaded) {
    for w in &loaded.warnings {
        match w.kind {
            WarningKind::Unimplemented => tracing::warn!(target: "config", "{}", w.message),
            WarningKind::MissingEnv | WarningKind::Legacy => {
                tracing::warn!(target: "config", "{}", w.message)
            }
        }
    }
}

/// `sessionDefaults` for a config.
pub fn session_defaults(cfg: &Config) -> SessionDefaults {
    let default_agent = cfg.default_agent_id();
    let global = cfg.session.scope_mode() == pincer_sessions::SessionScopeMode::Global;
    let agents = cfg.agent_ids().len();
    let explicit = cfg.agents.ownership.is_some();
    SessionDefaults {
        main_session_key: if global {
            "global".to_string()
        } else {
            format!("agent:{default_agent}:main")
        },
        default_agent_id: default_agent.clone(),
        model_configured: Some(
            cfg.agent_model(&default_agent)
                .and_then(|m| m.primary())
                .is_some(),
        ),
        ownership: Some(ownership(cfg).to_string()),
        selection_required: Some(explicit && agents > 1),
        main_key: "main".to_string(),
        scope: Some(if global { "global" } else { "per-sender" }.to_string()),
    }
}

/// `agents.list.ownership` / `sessionDefaults.ownership`.
pub fn ownership(cfg: &Config) -> &'static str {
    if cfg.agents.ownership.is_some() {
        "explicit"
    } else if cfg.agent_ids().len() > 1 {
        "legacy"
    } else {
        "sole"
    }
}

/// `provider/model` of an agent (its entry's model, else `agents.defaults.model`).
pub fn agent_model_ref(cfg: &Config, agent_id: &str) -> Option<(String, String)> {
    let primary = cfg.agent_model(agent_id)?.primary()?;
    match primary.split_once('/') {
        Some((p, m)) => Some((p.to_string(), m.to_string())),
        None => Some((String::new(), primary.to_string())),
    }
}

/// Context window of a configured model (`models.providers.<p>.models[id].contextWindow`).
pub fn model_context_tokens(cfg: &Config, provider: &str, model: &str) -> Option<u64> {
    let def = cfg
        .models
        .providers
        .as_ref()?
        .get(provider)?
        .models
        .as_ref()?
        .iter()
        .find(|m| m.id == model)?;
    def.context_tokens.or(def.context_window)
}

/// Whether a configured model reasons (thinking levels beyond `off`).
pub fn model_reasons(cfg: &Config, provider: &str, model: &str) -> bool {
    cfg.models
        .providers
        .as_ref()
        .and_then(|p| p.get(provider))
        .and_then(|p| p.models.as_ref())
        .and_then(|ms| ms.iter().find(|m| m.id == model))
        .and_then(|m| m.reasoning)
        .unwrap_or(false)
}

/// Default heartbeat interval when none is configured.
pub const DEFAULT_HEARTBEAT_EVERY: &str = "30m";
/// Default heartbeat prompt (Pincer's wording).
pub const DEFAULT_HEARTBEAT_PROMPT: &str = "Heartbeat: check the monitor context if there is one. Scheduled work belongs to automations, not to this check. Do not revive old tasks from earlier chats. If nothing needs attention, reply NO_REPLY.";
/// Default heartbeat acknowledgement limit.
pub const DEFAULT_HEARTBEAT_ACK_MAX_CHARS: u64 = 300;

/// Effective heartbeat settings of an agent (entry over defaults over built-ins).
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatFacts {
    pub every: String,
    pub every_ms: u64,
    pub enabled: bool,
    pub prompt: String,
    pub target: String,
    pub model: Option<String>,
    pub session: Option<String>,
    pub ack_max_chars: u64,
}

pub fn heartbeat_facts(cfg: &Config, agent_id: &str) -> HeartbeatFacts {
    let entry = cfg
        .agents
        .entries
        .iter()
        .find(|(id, _)| pincer_sessions::normalize_agent_id(id) == agent_id)
        .and_then(|(_, e)| e.heartbeat.as_ref());
    let defaults = cfg.agents.defaults.heartbeat.as_ref();
    let pick = |f: fn(&HeartbeatConfig) -> Option<&String>| {
        entry.and_then(f).or_else(|| defaults.and_then(f)).cloned()
    };
    let every = pick(|h| h.every.as_ref()).unwrap_or_else(|| DEFAULT_HEARTBEAT_EVERY.into());
    let every_ms = parse_duration_ms(&every).unwrap_or(0);
    HeartbeatFacts {
        enabled: every_ms > 0,
        every_ms,
        every,
        prompt: pick(|h| h.prompt.as_ref()).unwrap_or_else(|| DEFAULT_HEARTBEAT_PROMPT.into()),
        target: pick(|h| h.target.as_ref()).unwrap_or_else(|| "owner".into()),
        model: pick(|h| h.model.as_ref()),
        session: pick(|h| h.session.as_ref()),
        ack_max_chars: DEFAULT_HEARTBEAT_ACK_MAX_CHARS,
    }
}

/// `30m`, `1h`, `45s`, `1h30m`, `500ms`, a bare number of minutes; `0` disables.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    if let Ok(minutes) = t.parse::<u64>() {
        return Some(minutes * 60_000);
    }
    let mut total = 0u64;
    let mut num = String::new();
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            i += 1;
            continue;
        }
        let mut unit = String::new();
        while i < chars.len() && chars[i].is_ascii_alphabetic() {
            unit.push(chars[i]);
            i += 1;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        let factor = match unit.as_str() {
            "ms" => 1.0,
            "s" | "sec" | "secs" => 1000.0,
            "m" | "min" | "mins" => 60_000.0,
            "h" | "hr" | "hrs" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return None,
        };
        total += (n * factor) as u64;
    }
    if !num.is_empty() {
        return None;
    }
    Some(total)
}

// ---- start-time precedence: flags > environment > config > built-in defaults -----------

/// Port, bind and auth after applying the precedence rules.
#[derive(Debug, Clone)]
pub struct Effective {
    pub port: u16,
    pub bind: BindMode,
    pub auth: AuthSetting,
}

/// Resolves a SecretRef-or-string config credential.
fn resolve_secret(
    input: &pincer_config::model::SecretInput,
    field: &str,
    config_dir: &Path,
) -> Result<String, String> {
    let env = |k: &str| std::env::var(k).ok();
    let ctx = pincer_config::secrets::SecretContext {
        env: &env,
        config_dir,
        store: None,
        exec_timeout: std::time::Duration::from_secs(10),
    };
    pincer_config::secrets::resolve(input, field, &ctx).map_err(|e| e.to_string())
}

/// `--port` > `PINCER_GATEWAY_PORT`/`OPENCLAW_GATEWAY_PORT` (both folded into
/// `flags.port` by the CLI) > `gateway.port` > 18789; the same idea for bind and auth.
pub fn effective(
    port: Option<u16>,
    bind: Option<&BindMode>,
    auth: &AuthOverrides,
    loaded: &Loaded,
) -> Result<Effective, String> {
    let cfg = &loaded.config;
    let port = port.unwrap_or_else(|| cfg.gateway.port());
    let bind = match bind {
        Some(b) => b.clone(),
        None => match cfg.gateway.bind() {
            ConfigBind::Loopback => BindMode::Loopback,
            ConfigBind::Lan => BindMode::Lan,
            ConfigBind::Auto => BindMode::Auto,
            ConfigBind::Custom => {
                let host = cfg.gateway.custom_bind_host.as_deref().ok_or_else(|| {
                    format!(
                        "{}: gateway.bind is \"custom\" but gateway.customBindHost is not set",
                        loaded.path.display()
                    )
                })?;
                BindMode::Custom(host.trim().parse().map_err(|_| {
                    format!(
                        "{}: gateway.customBindHost {host:?} is not an IP address",
                        loaded.path.display()
                    )
                })?)
            }
            ConfigBind::Tailnet => {
                return Err(format!(
                    "{}: gateway.bind \"tailnet\" is not supported by Pincer yet; use loopback, lan, auto or custom",
                    loaded.path.display()
                ))
            }
        },
    };
    let auth = effective_auth(auth, loaded)?;
    Ok(Effective { port, bind, auth })
}

/// The auth setting of `loaded` under the start-time flags (also used on reload to see
/// whether the shared secret changed).
pub fn effective_auth(flags: &AuthOverrides, loaded: &Loaded) -> Result<AuthSetting, String> {
    let cfg = &loaded.config;
    let dir = loaded
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let token = match &flags.token {
        Some(t) => Some(t.clone()),
        None => cfg
            .gateway
            .auth
            .token
            .as_ref()
            .map(|t| resolve_secret(t, "gateway.auth.token", &dir))
            .transpose()?,
    };
    let password = match &flags.password {
        Some(p) => Some(p.clone()),
        None => cfg
            .gateway
            .auth
            .password
            .as_ref()
            .map(|p| resolve_secret(p, "gateway.auth.password", &dir))
            .transpose()?,
    };
    if let Some(settings) = &flags.trusted_proxy {
        return Ok(AuthSetting::TrustedProxy(settings.clone()));
    }
    let mode = match flags.mode {
        Some(m) => m,
        None => match cfg.gateway.auth.mode {
            Some(AuthMode::None) => AuthModeFlag::None,
            Some(AuthMode::Token) => AuthModeFlag::Token,
            Some(AuthMode::Password) => AuthModeFlag::Password,
            Some(AuthMode::TrustedProxy) => {
                return trusted_proxy_from_config(loaded).map(AuthSetting::TrustedProxy)
            }
            None => match (&token, &password) {
                (None, Some(_)) => AuthModeFlag::Password,
                _ => AuthModeFlag::Token,
            },
        },
    };
    Ok(match mode {
        AuthModeFlag::None => AuthSetting::None,
        AuthModeFlag::Token => AuthSetting::Token(token),
        AuthModeFlag::Password => match password {
            Some(p) => AuthSetting::Password(p),
            None => {
                return Err(
                    "auth mode is password but no password is set (--password, PINCER_GATEWAY_PASSWORD or gateway.auth.password)"
                        .to_string(),
                )
            }
        },
    })
}

/// `gateway.auth.trustedProxy` of a config whose auth mode is `trusted-proxy`.
fn trusted_proxy_from_config(loaded: &Loaded) -> Result<TrustedProxySettings, String> {
    let tp = loaded
        .config
        .gateway
        .auth
        .trusted_proxy
        .clone()
        .unwrap_or_default();
    let user_header = tp
        .user_header
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            format!(
                "{}: gateway.auth.trustedProxy.userHeader: required when gateway.auth.mode is \"trusted-proxy\"",
                loaded.path.display()
            )
        })?;
    Ok(TrustedProxySettings {
        user_header: user_header.to_string(),
        required_headers: tp.required_headers.clone().unwrap_or_default(),
        allow_users: tp.allow_users.clone().unwrap_or_default(),
        allow_loopback: tp.allow_loopback.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn loaded(text: &str) -> Loaded {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pincer.json");
        pincer_config::parse_str(text, &path, &LoadOptions::with_vars([])).unwrap()
    }

    fn eff(l: &Loaded) -> Result<Effective, String> {
        effective(None, None, &AuthOverrides::default(), l)
    }

    #[test]
    fn leaves_expand_added_and_removed_sections() {
        let old = json!({"session": {"dmScope": "main"}});
        let new = json!({"gateway": {"auth": {"token": "x"}, "port": 1}, "session": {}});
        let mut leaves = changed_leaves(&old, &new);
        leaves.sort();
        assert_eq!(
            leaves,
            vec!["gateway.auth.token", "gateway.port", "session.dmScope"]
        );
        let plan = plan_between(&old, &new);
        assert_eq!(plan.restart, vec!["gateway.port"]);
        assert_eq!(plan.hot.len(), 2);
        assert!(plan_between(&new, &new).is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30m"), Some(1_800_000));
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("45s"), Some(45_000));
        assert_eq!(parse_duration_ms("0"), Some(0));
        assert_eq!(parse_duration_ms("15"), Some(900_000));
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(parse_duration_ms("5x"), None);
    }

    #[test]
    fn precedence_flags_over_config_over_defaults() {
        let l = loaded(
            "{ gateway: { port: 19001, bind: 'lan', auth: { mode: 'password', password: 'pw' } } }",
        );
        let e = eff(&l).unwrap();
        assert_eq!(e.port, 19001);
        assert_eq!(e.bind, BindMode::Lan);
        assert_eq!(e.auth, AuthSetting::Password("pw".into()));
        let flags = AuthOverrides {
            mode: Some(AuthModeFlag::Token),
            token: Some("flag-token".into()),
            password: None,
            trusted_proxy: None,
        };
        let e = effective(Some(0), Some(&BindMode::Loopback), &flags, &l).unwrap();
        assert_eq!((e.port, e.bind), (0, BindMode::Loopback));
        assert_eq!(e.auth, AuthSetting::Token(Some("flag-token".into())));
        let d = eff(&loaded("{}")).unwrap();
        assert_eq!((d.port, d.bind), (18789, BindMode::Loopback));
        assert_eq!(d.auth, AuthSetting::Token(None));
        let only_pw = eff(&loaded("{ gateway: { auth: { password: 'x' } } }"));
        assert_eq!(only_pw.unwrap().auth, AuthSetting::Password("x".into()));
        let bad = eff(&loaded("{ gateway: { bind: 'custom' } }")).unwrap_err();
        assert!(bad.ends_with("gateway.bind is \"custom\" but gateway.customBindHost is not set"));
    }

    #[test]
    fn trusted_proxy_mode_comes_from_the_config_and_the_flag_wins() {
        let l = loaded("{ gateway: { trustedProxies: ['10.0.0.1'], auth: { mode: 'trusted-proxy', trustedProxy: { userHeader: 'X-User', allowUsers: ['alice'] } } } }");
        match eff(&l).unwrap().auth {
            AuthSetting::TrustedProxy(tp) => {
                assert_eq!(tp.user_header, "X-User");
                assert_eq!(tp.allow_users, vec!["alice"]);
                assert!(!tp.allow_loopback);
            }
            other => panic!("{other:?}"),
        }
        let flags = AuthOverrides {
            mode: Some(AuthModeFlag::Token),
            token: Some("t".into()),
            ..Default::default()
        };
        let e = effective(None, None, &flags, &l).unwrap();
        assert_eq!(e.auth, AuthSetting::Token(Some("t".into())));
        let flags = AuthOverrides {
            trusted_proxy: Some(TrustedProxySettings {
                user_header: "x-flag".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        match effective(None, None, &flags, &loaded("{}")).unwrap().auth {
            AuthSetting::TrustedProxy(tp) => assert_eq!(tp.user_header, "x-flag"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn session_defaults_follow_config() {
        let d = session_defaults(&loaded("{}").config);
        assert_eq!(d.default_agent_id, "main");
        assert_eq!(d.main_session_key, "agent:main:main");
        assert_eq!(d.scope.as_deref(), Some("per-sender"));
        assert_eq!(d.ownership.as_deref(), Some("sole"));
        assert_eq!(d.model_configured, Some(false));
        let d = session_defaults(
            &loaded("{ agents: { defaults: { model: 'a/b' }, entries: { ops: {} } }, session: { scope: 'global' } }")
                .config,
        );
        assert_eq!(d.default_agent_id, "ops");
        assert_eq!(d.main_session_key, "global");
        assert_eq!(d.scope.as_deref(), Some("global"));
        assert_eq!(d.model_configured, Some(true));
    }

    #[test]
    fn heartbeat_facts_merge_entry_over_defaults() {
        let c = loaded("{ agents: { defaults: { heartbeat: { every: '1h', target: 'last' } }, entries: { main: { heartbeat: { every: '0' } }, ops: {} } } }").config;
        let main = heartbeat_facts(&c, "main");
        assert!(!main.enabled);
        assert_eq!(main.target, "last");
        let ops = heartbeat_facts(&c, "ops");
        assert_eq!(
            (ops.every.as_str(), ops.every_ms, ops.enabled),
            ("1h", 3_600_000, true)
        );
        let d = heartbeat_facts(&loaded("{}").config, "main");
        assert_eq!((d.every_ms, d.ack_max_chars), (1_800_000, 300));
    }

    #[test]
    fn install_applies_defers_and_dedupes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pincer.json");
        let opts = LoadOptions::with_vars([]);
        let l0 =
            pincer_config::parse_str("{ session: { dmScope: 'main' } }", &path, &opts).unwrap();
        let live = LiveConfig::from_loaded(dir.path(), opts.clone(), l0.clone());
        assert_eq!(live.install(Arc::new(l0)), Installed::Unchanged);
        let l1 = pincer_config::parse_str(
            "{ session: { dmScope: 'per-peer' }, gateway: { port: 1234 } }",
            &path,
            &opts,
        )
        .unwrap();
        match live.install(Arc::new(l1)) {
            Installed::Applied(plan) => {
                assert_eq!(plan.hot, vec!["session.dmScope"]);
                assert_eq!(plan.restart, vec!["gateway.port"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(live.status().restart_required, vec!["gateway.port"]);
        assert_eq!(live.get().config.gateway.port(), 1234);
        let off =
            pincer_config::parse_str("{ gateway: { reload: { mode: 'off' } } }", &path, &opts)
                .unwrap();
        assert!(matches!(live.install(Arc::new(off)), Installed::Applied(_)));
        let off2 = pincer_config::parse_str(
            "{ gateway: { reload: { mode: 'off' }, port: 9 } }",
            &path,
            &opts,
        )
        .unwrap();
        assert!(matches!(
            live.install(Arc::new(off2)),
            Installed::Deferred(_)
        ));
        assert_eq!(live.get().config.gateway.port(), 18789);
    }
}
