//! The one reload path. A file edit (seen by the config watcher) and a `config.set|patch|
//! apply` RPC (after its validated atomic write) both end in [`GatewayState::apply_config`]:
//! compare with the config in force, swap it in (or defer it when `gateway.reload.mode` is
//! `off`), log a `config.changed` line naming the hot paths and the paths that need a
//! restart, broadcast `config.changed`, refresh `health` and the session summary. A rejected
//! edit keeps the last good config and is reported in the log and in `health.configReload`.

use std::sync::{Arc, Weak};

use pincer_config::reload::{ConfigWatcher, ReloadEvent};
use pincer_config::{ConfigError, Loaded};
use serde_json::json;

use crate::events::PublishOpts;
use crate::live_config::Installed;
use crate::state::GatewayState;
use crate::util;

/// Who produced a new config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The file changed on disk.
    File,
    /// `config.set` / `config.patch` / `config.apply`.
    Rpc,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Rpc => "rpc",
        }
    }
}

impl GatewayState {
    /// Installs a validated config (see the module doc). Safe to call from any thread.
    pub fn apply_config(self: &Arc<Self>, next: Arc<Loaded>, origin: Origin) -> Installed {
        let hash = next.hash.clone();
        let outcome = self.config.install(Arc::clone(&next));
        match &outcome {
            Installed::Unchanged => return outcome,
            Installed::Deferred(plan) => {
                let mut paths = plan.hot.clone();
                paths.extend(plan.restart.iter().cloned());
                tracing::warn!(
                    target: "config",
                    origin = origin.as_str(),
                    %hash,
                    "config.changed: gateway.reload.mode is off, not applied (restart to apply): {}",
                    paths.join(", ")
                );
            }
            Installed::Applied(plan) => {
                self.agent
                    .update_config(Arc::new(next.config.clone()), &self.state_dir);
                crate::automations::config_changed(self);
                crate::channels::ChannelsHub::apply_config(self, Arc::new(next.config.clone()));
                tracing::info!(
                    target: "config",
                    origin = origin.as_str(),
                    %hash,
                    hot = %plan.hot.join(", "),
                    restart = %plan.restart.join(", "),
                    "config.changed: applied {} change(s) live{}",
                    plan.hot.len() + plan.ignored.len(),
                    if plan.restart.is_empty() { String::new() } else {
                        format!("; restart required for: {}", plan.restart.join(", "))
                    }
                );
                if plan.hot.iter().any(|p| {
                    p.starts_with("gateway.auth.token") || p.starts_with("gateway.auth.password")
                }) {
                    self.on_shared_secret_config_changed(&next);
                }
                self.apply_security_config(&next);
            }
        }
        self.bus.publish(
            "config.changed",
            &json!({"path": self.config.path().display().to_string(), "hash": hash, "ts": util::now_ms()}),
            PublishOpts::default(),
        );
        self.refresh_health(None);
        self.request_sessions_refresh();
        outcome
    }

    /// A rejected edit: the last good config stays in force.
    pub fn reject_config(&self, error: &ConfigError, origin: Origin) {
        tracing::error!(
            target: "config",
            origin = origin.as_str(),
            "config reload skipped (invalid config; keeping the last good one): {error}"
        );
        self.config.reject(error);
        self.refresh_health(None);
    }

    /// `gateway.auth.token` / `.password` changed in the file. The secret in force is
    /// recomputed with the start-time precedence (flags and environment still win); a new
    /// secret of the same mode replaces the old one.
    fn on_shared_secret_config_changed(self: &Arc<Self>, next: &Loaded) {
        match crate::live_config::effective_auth(&self.auth_overrides, next) {
            Ok(setting) => self.rotate_shared_secret(setting),
            Err(e) => tracing::error!(target: "config", "cannot apply the new gateway auth: {e}"),
        }
    }

    /// The hot part of the security settings (`gateway.auth.rateLimit`,
    /// `gateway.trustedProxies`, `gateway.auth.trustedProxy`, `gateway.nodes.pairing.*`),
    /// re-resolved under the start-time flags. TLS and the auth mode need a restart (the
    /// reload plan reports them). In trusted-proxy mode a changed proxy policy closes the
    /// sessions it admitted (4001), so clients reconnect under the current policy.
    fn apply_security_config(self: &Arc<Self>, next: &Loaded) {
        let settings = match crate::security::SecuritySettings::resolve(
            &next.config,
            &next.path,
            &self.security.overrides,
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(target: "config", "cannot apply the new security settings: {e}");
                return;
            }
        };
        if self.rate_limiter.settings() != settings.rate_limit {
            self.rate_limiter.update_settings(settings.rate_limit);
            tracing::info!(target: "config", "config.changed: failed-auth rate limit updated");
        }
        self.pairing
            .set_auto_approve_local(settings.auto_approve_local);
        self.pairing
            .set_auto_approve_cidrs(settings.auto_approve_cidrs.clone());
        if self
            .security
            .set_allow_real_ip_fallback(settings.allow_real_ip_fallback)
        {
            tracing::info!(
                target: "config",
                allow = settings.allow_real_ip_fallback,
                "config.changed: gateway.allowRealIpFallback updated"
            );
        }
        let proxies_changed = self
            .security
            .set_trusted_proxies(settings.trusted_proxies.clone());
        if !matches!(*self.auth.get(), crate::auth::GatewayAuth::TrustedProxy(_)) {
            return;
        }
        let next_auth = match crate::live_config::effective_auth(&self.auth_overrides, next) {
            Ok(crate::config::AuthSetting::TrustedProxy(tp)) => tp,
            // Another mode: a restart applies it (reported by the reload plan).
            Ok(_) => return,
            Err(e) => {
                tracing::error!(target: "config", "cannot apply the new trusted-proxy settings: {e}");
                return;
            }
        };
        let auth = crate::auth::GatewayAuth::TrustedProxy(next_auth);
        let closed = if *self.auth.get() != auth {
            self.replace_shared_auth(auth)
        } else if proxies_changed {
            self.revoke_shared_auth_sessions()
        } else {
            return;
        };
        tracing::info!(target: "config", closed, "config.changed: trusted-proxy policy replaced");
    }

    /// Starts the file watcher (also in `gateway.reload.mode: off`, where edits are only
    /// validated and reported).
    pub fn start_config_watcher(self: &Arc<Self>) {
        let weak: Weak<GatewayState> = Arc::downgrade(self);
        // The watcher calls back on its own thread; subscribers may spawn tasks.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let spawned = ConfigWatcher::spawn(
            self.config.current(),
            self.config.options().clone(),
            move |event| {
                let _in_runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
                let Some(state) = weak.upgrade() else { return };
                match event {
                    ReloadEvent::Applied { loaded, .. } => {
                        state.apply_config(loaded, Origin::File);
                    }
                    ReloadEvent::Rejected { error } => state.reject_config(&error, Origin::File),
                }
            },
        );
        match spawned {
            Ok(w) => {
                *self.watcher.lock() = Some(w);
                self.config.set_watching(true);
                self.refresh_health(None);
            }
            Err(e) => tracing::warn!(target: "config", "config hot reload unavailable: {e}"),
        }
    }

    /// Stops the watcher (shutdown).
    pub fn stop_config_watcher(&self) {
        let w = self.watcher.lock().take();
        drop(w);
        self.config.set_watching(false);
    }
}

impl GatewayState {
    /// Installs a new shared secret from the config (same mode only; a mode change needs a
    /// restart and is reported as such by the reload plan). Shared-auth connections of the old
    /// secret are closed with 4001 `gateway auth changed` by the auth cell.
    pub fn rotate_shared_secret(self: &Arc<Self>, setting: crate::config::AuthSetting) {
        use crate::auth::GatewayAuth;
        use crate::config::AuthSetting;
        let next = match setting {
            AuthSetting::Token(Some(t)) if !t.trim().is_empty() => {
                GatewayAuth::Token(t.trim().to_string())
            }
            AuthSetting::Token(_) => {
                // Back to the generated token file.
                match crate::state_dir::load_or_create_token(&self.state_dir) {
                    Ok((t, _)) => GatewayAuth::Token(t),
                    Err(e) => {
                        tracing::error!(target: "config", "cannot read the gateway token file: {e}");
                        return;
                    }
                }
            }
            AuthSetting::Password(p) if !p.is_empty() => GatewayAuth::Password(p),
            AuthSetting::Password(_) | AuthSetting::None | AuthSetting::TrustedProxy(_) => return,
        };
        if next.mode_str() != self.auth.mode_str() {
            tracing::warn!(target: "config", "config.changed: the gateway auth mode changed; restart the gateway to apply it");
            return;
        }
        let closed = self.replace_shared_auth(next);
        tracing::info!(target: "config", closed, "config.changed: gateway shared secret replaced");
    }
}
