//! Hot reload: which changed paths can be applied live, and a debounced watcher that
//! re-validates the file on change, keeping the last good config when the new one is bad.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde_json::Value;

use crate::{load, ConfigError, LoadOptions, Loaded};

/// How a changed path takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadAction {
    /// Applied live.
    Hot,
    /// Needs a gateway restart.
    Restart,
    /// Nothing to do (metadata).
    None,
}

/// Prefix rules (runtime spec §1.3); the longest matching prefix wins, unmatched paths
/// need a restart.
const RULES: &[(&str, ReloadAction)] = &[
    ("gateway.port", ReloadAction::Restart),
    ("gateway.bind", ReloadAction::Restart),
    ("gateway.customBindHost", ReloadAction::Restart),
    ("gateway.mode", ReloadAction::Restart),
    ("gateway.auth.mode", ReloadAction::Restart),
    ("gateway.auth.token", ReloadAction::Hot),
    ("gateway.auth.password", ReloadAction::Hot),
    ("gateway.auth.rateLimit", ReloadAction::Hot),
    // Access policy: hot in the reference (clients reconnect with the current authority).
    ("gateway.auth.trustedProxy", ReloadAction::Hot),
    ("gateway.trustedProxies", ReloadAction::Hot),
    ("gateway.allowRealIpFallback", ReloadAction::Hot),
    ("gateway.tailscale", ReloadAction::Restart),
    ("gateway.tls", ReloadAction::Restart),
    ("gateway.controlUi", ReloadAction::Hot),
    ("gateway.controlUi.basePath", ReloadAction::Restart),
    ("gateway.controlUi.root", ReloadAction::Restart),
    ("gateway.controlUi.enabled", ReloadAction::Restart),
    ("gateway.reload", ReloadAction::Hot),
    ("gateway.remote", ReloadAction::Hot),
    ("gateway.http.endpoints", ReloadAction::Hot),
    ("gateway.tools", ReloadAction::Hot),
    ("gateway.nodes", ReloadAction::Hot),
    ("discovery", ReloadAction::Restart),
    ("browser", ReloadAction::Restart),
    ("secrets.egressProxy", ReloadAction::Restart),
    ("agents", ReloadAction::Hot),
    ("agents.defaults.heartbeat", ReloadAction::Hot),
    ("agents.defaults.mediaMaxMb", ReloadAction::Restart),
    ("models", ReloadAction::Hot),
    ("auth", ReloadAction::Hot),
    ("bindings", ReloadAction::Hot),
    ("session", ReloadAction::Hot),
    ("messages", ReloadAction::Hot),
    ("tools", ReloadAction::Hot),
    ("skills", ReloadAction::Hot),
    ("hooks", ReloadAction::Hot),
    ("cron", ReloadAction::Hot),
    ("plugins", ReloadAction::Hot),
    ("channels", ReloadAction::Hot),
    ("commands", ReloadAction::Hot),
    ("meta", ReloadAction::None),
    ("wizard", ReloadAction::None),
    ("$schema", ReloadAction::None),
];

/// Classifies one dotted path by the longest matching prefix (segment-wise).
pub fn classify(path: &str) -> ReloadAction {
    let segs: Vec<&str> = path.split(['.', '[']).collect();
    let mut best: Option<(usize, ReloadAction)> = None;
    for (prefix, action) in RULES {
        let p: Vec<&str> = prefix.split('.').collect();
        if p.len() <= segs.len()
            && segs[..p.len()] == p[..]
            && best.is_none_or(|(len, _)| p.len() > len)
        {
            best = Some((p.len(), *action));
        }
    }
    best.map_or(ReloadAction::Restart, |(_, a)| a)
}

/// Dotted paths that differ between two documents (objects recurse; arrays and scalars
/// compare whole).
pub fn changed_paths(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(old, new, "", &mut out);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn diff(old: &Value, new: &Value, prefix: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => diff(va, vb, &join(prefix, k), out),
                    None => out.push(join(prefix, k)),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(join(prefix, k));
            }
        }
        (a, b) if a != b => out.push(if prefix.is_empty() {
            "(root)".to_string()
        } else {
            prefix.to_string()
        }),
        _ => {}
    }
}

/// The consequences of a config change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadPlan {
    pub hot: Vec<String>,
    pub restart: Vec<String>,
    pub ignored: Vec<String>,
}

impl ReloadPlan {
    pub fn between(old: &Value, new: &Value) -> Self {
        let mut plan = ReloadPlan::default();
        for p in changed_paths(old, new) {
            match classify(&p) {
                ReloadAction::Hot => plan.hot.push(p),
                ReloadAction::Restart => plan.restart.push(p),
                ReloadAction::None => plan.ignored.push(p),
            }
        }
        plan
    }

    pub fn needs_restart(&self) -> bool {
        !self.restart.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.hot.is_empty() && self.restart.is_empty() && self.ignored.is_empty()
    }
}

/// What the watcher reports.
#[derive(Debug)]
pub enum ReloadEvent {
    /// The file changed and validated; `plan` says what to apply and what needs a restart.
    Applied {
        loaded: Arc<Loaded>,
        plan: ReloadPlan,
    },
    /// The file changed but is invalid; the last good config stays in force.
    Rejected { error: Arc<ConfigError> },
}

/// Quiet period after the last file event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// A running watcher; dropping it stops the watch thread.
pub struct ConfigWatcher {
    _watcher: notify::RecommendedWatcher,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigWatcher")
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Signal {
    Fs(PathBuf),
    Stop,
}

impl ConfigWatcher {
    /// Watches the config file (and its directory, to see atomic renames) and every
    /// included file; calls `on_event` from the watcher thread after each debounced change
    /// whose content differs from the last good config.
    pub fn spawn(
        current: Arc<Loaded>,
        opts: LoadOptions,
        on_event: impl Fn(ReloadEvent) + Send + 'static,
    ) -> Result<ConfigWatcher, ConfigError> {
        let path = current.path.clone();
        let (tx, rx) = mpsc::channel::<Signal>();
        let fs_tx = tx.clone();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Reads (a CLI loading the config) are not changes; counting them would let
            // frequent readers postpone the debounce forever.
            let Ok(ev) = res else { return };
            if !matches!(ev.kind, notify::EventKind::Access(_)) {
                for p in ev.paths {
                    let _ = fs_tx.send(Signal::Fs(p));
                }
            }
        })
        .map_err(|e| watch_error(&path, e))?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| watch_error(&dir, e))?;
        for inc in &current.included_paths {
            if let Some(d) = inc.parent() {
                if d != dir {
                    let _ = watcher.watch(d, RecursiveMode::NonRecursive);
                }
            }
        }
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let stop_signal = tx;
        // Forward the stop channel's closure into the signal channel.
        let stopper = std::thread::spawn(move || {
            let _ = stop_rx.recv();
            let _ = stop_signal.send(Signal::Stop);
        });
        let thread = std::thread::Builder::new()
            .name("pincer-config-watch".into())
            .spawn(move || {
                watch_loop(current, opts, rx, on_event);
                let _ = stopper.join();
            })
            .map_err(|e| ConfigError::Io {
                path: dir.clone(),
                source: e,
            })?;
        Ok(ConfigWatcher {
            _watcher: watcher,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

fn watch_error(path: &Path, e: notify::Error) -> ConfigError {
    ConfigError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn relevant(p: &Path, good: &Loaded) -> bool {
    let name = good.path.file_name();
    (p.file_name().is_some() && p.file_name() == name && p.parent() == good.path.parent())
        || p == good.path
        || good
            .included_paths
            .iter()
            .any(|i| i == p || (i.file_name() == p.file_name() && i.parent() == p.parent()))
}

fn watch_loop(
    mut good: Arc<Loaded>,
    opts: LoadOptions,
    rx: mpsc::Receiver<Signal>,
    on_event: impl Fn(ReloadEvent),
) {
    loop {
        // Wait for a relevant change.
        match rx.recv() {
            Ok(Signal::Fs(p)) if relevant(&p, &good) => {}
            Ok(Signal::Fs(_)) => continue,
            Ok(Signal::Stop) | Err(_) => return,
        }
        // Debounce: wait until the file has been quiet for DEBOUNCE.
        loop {
            match rx.recv_timeout(DEBOUNCE) {
                Ok(Signal::Fs(_)) => continue,
                Ok(Signal::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
        match load(&good.path, &opts) {
            Ok(next) => {
                let same_text = next.raw == good.raw
                    && next.included_paths.is_empty()
                    && good.included_paths.is_empty();
                if same_text || next.source == good.source {
                    continue;
                }
                let plan = ReloadPlan::between(&good.source, &next.source);
                good = Arc::new(next);
                on_event(ReloadEvent::Applied {
                    loaded: good.clone(),
                    plan,
                });
            }
            Err(e) => on_event(ReloadEvent::Rejected { error: Arc::new(e) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classification_table() {
        let cases = [
            ("gateway.port", ReloadAction::Restart),
            ("gateway.bind", ReloadAction::Restart),
            ("gateway.auth.mode", ReloadAction::Restart),
            ("gateway.auth.token", ReloadAction::Hot),
            ("gateway.tls.certPath", ReloadAction::Restart),
            ("gateway.controlUi.allowedOrigins", ReloadAction::Hot),
            ("gateway.controlUi.basePath", ReloadAction::Restart),
            ("gateway.nodes.pairing.autoApproveLocal", ReloadAction::Hot),
            ("gateway.trustedProxies", ReloadAction::Hot),
            ("gateway.allowRealIpFallback", ReloadAction::Hot),
            ("gateway.auth.trustedProxy.allowUsers", ReloadAction::Hot),
            ("gateway.auth.rateLimit.maxAttempts", ReloadAction::Hot),
            ("gateway.tls.enabled", ReloadAction::Restart),
            ("gateway.nodes.pairing.autoApproveCidrs", ReloadAction::Hot),
            ("agents.defaults.model.primary", ReloadAction::Hot),
            ("agents.defaults.mediaMaxMb", ReloadAction::Restart),
            ("agents.defaults.heartbeat.every", ReloadAction::Hot),
            ("agents.entries.main.workspace", ReloadAction::Hot),
            ("channels.telegram.botToken", ReloadAction::Hot),
            ("session.reset.mode", ReloadAction::Hot),
            ("bindings", ReloadAction::Hot),
            ("models.providers.mock.baseUrl", ReloadAction::Hot),
            ("meta.lastTouchedVersion", ReloadAction::None),
            ("logging.level", ReloadAction::Restart),
            ("gatewayX", ReloadAction::Restart),
            ("unknownRoot.x", ReloadAction::Restart),
        ];
        for (path, want) in cases {
            assert_eq!(classify(path), want, "{path}");
        }
    }

    #[test]
    fn diff_and_plan() {
        let old = json!({"gateway": {"port": 1, "auth": {"token": "a"}}, "session": {"dmScope": "main"}, "bindings": [1]});
        let new = json!({"gateway": {"port": 2, "auth": {"token": "b"}}, "session": {}, "bindings": [1, 2], "meta": {"x": 1}});
        let mut changed = changed_paths(&old, &new);
        changed.sort();
        assert_eq!(
            changed,
            vec![
                "bindings",
                "gateway.auth.token",
                "gateway.port",
                "meta",
                "session.dmScope"
            ]
        );
        let plan = ReloadPlan::between(&old, &new);
        assert_eq!(plan.restart, vec!["gateway.port"]);
        assert!(plan.needs_restart());
        assert_eq!(plan.ignored, vec!["meta"]);
        assert_eq!(plan.hot.len(), 3);
        assert!(ReloadPlan::between(&old, &old).is_empty());
    }
}
