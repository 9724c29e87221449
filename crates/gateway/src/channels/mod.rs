//! The gateway's chat channels (issue 9, phase B): the accounts configured under
//! `channels.telegram|discord|slack` run as `pincer-channels` adapters + inbound pipelines in
//! one [`ChannelManager`]; the pipelines end in [`sink::GatewaySink`], which starts or queues
//! agent runs and streams the answers back through the platform ([`delivery`]).
//!
//! - Start: [`ChannelsHub::start`] (after the listener is up; never blocks the gateway start).
//!   `PINCER_SKIP_CHANNELS=1` / `OPENCLAW_SKIP_CHANNELS=1` registers the accounts without
//!   connecting them (`channels.start` still works).
//! - Hot reload: [`ChannelsHub::apply_config`] from the one reload path
//!   (`GatewayState::apply_config`): accounts whose adapter settings changed are restarted,
//!   removed ones stopped, the others get their pipeline settings and router swapped in place.
//!   An account an operator stopped (`channels.stop` / `channels.logout`) stays stopped.
//! - Outbound: [`ChannelsHub::send`] is the one send path (the `send` method, the agent's
//!   `message` tool, cron announce delivery).

pub mod delivery;
pub mod messaging;
pub mod settings;
pub mod sink;
pub mod status;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use pincer_channels::{
    ChannelAdapter, ChannelError, ChannelManager, InboundPipeline, Journal, Pairing,
};
use pincer_config::Config;
use pincer_store::Store;

use crate::state::GatewayState;
use settings::AccountSpec;
#[cfg(any(feature = "telegram", feature = "discord", feature = "slack"))]
use settings::AdapterSpec;

pub use messaging::{OutboundRequest, SendError};

/// Filled once the gateway state exists (the hub is built before it).
#[derive(Clone, Default)]
pub struct StateCell(Arc<OnceLock<Weak<GatewayState>>>);

impl StateCell {
    pub fn set(&self, state: &Arc<GatewayState>) {
        let _ = self.0.set(Arc::downgrade(state));
    }

    pub fn get(&self) -> Option<Arc<GatewayState>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

/// What the hub knows about one configured account beyond the manager's view.
pub struct Slot {
    pub spec: AccountSpec,
    /// The adapter, when the account's settings are valid.
    pub adapter: Option<Arc<dyn ChannelAdapter>>,
    #[cfg(feature = "telegram")]
    pub telegram: Option<Arc<pincer_channels::telegram::TelegramAdapter>>,
    /// `channels.stop` / `channels.logout`: stays down across config reloads.
    pub manual_stop: bool,
    pub logged_out: bool,
    pub last_start_at: Option<i64>,
    pub last_stop_at: Option<i64>,
}

type Key = (String, String);

/// The channels of the gateway.
pub struct ChannelsHub {
    pub(crate) cell: StateCell,
    pub(crate) manager: Arc<ChannelManager>,
    pub(crate) slots: Mutex<BTreeMap<Key, Slot>>,
    pub(crate) default_accounts: Mutex<BTreeMap<String, String>>,
    /// Serialises start / reload / start-stop so two config versions never interleave.
    apply_lock: tokio::sync::Mutex<()>,
    http: Mutex<Option<pincer_channels::http::HttpClient>>,
    store: Store,
    pub(crate) skip: bool,
    pub(crate) sink: Arc<sink::GatewaySink>,
    pub(crate) journal: Journal,
}

impl std::fmt::Debug for ChannelsHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelsHub").finish_non_exhaustive()
    }
}

fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        !v.is_empty() && v != "0" && v != "false" && v != "no"
    })
}

/// `PINCER_SKIP_CHANNELS` / `OPENCLAW_SKIP_CHANNELS`.
pub fn skip_from_env() -> bool {
    truthy(std::env::var("PINCER_SKIP_CHANNELS").ok())
        || truthy(std::env::var("OPENCLAW_SKIP_CHANNELS").ok())
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(crate::util::now_ms()).unwrap_or(i64::MAX)
}

impl ChannelsHub {
    pub fn new(store: Store) -> ChannelsHub {
        let cell = StateCell::default();
        let journal = Journal::new(store.clone());
        ChannelsHub {
            manager: Arc::new(
                ChannelManager::new(Pairing::new(store.clone())).with_journal(journal.clone()),
            ),
            slots: Mutex::new(BTreeMap::new()),
            default_accounts: Mutex::new(BTreeMap::new()),
            apply_lock: tokio::sync::Mutex::new(()),
            http: Mutex::new(None),
            skip: skip_from_env(),
            sink: Arc::new(sink::GatewaySink::new(cell.clone(), journal.clone())),
            journal,
            store,
            cell,
        }
    }

    pub fn manager(&self) -> &ChannelManager {
        &self.manager
    }

    pub fn pairing(&self) -> &Pairing {
        self.manager.pairing()
    }

    fn http(&self) -> Result<pincer_channels::http::HttpClient, ChannelError> {
        let mut guard = self.http.lock();
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let client = pincer_channels::http::build_client()?;
        *guard = Some(client.clone());
        Ok(client)
    }

    /// Builds the accounts of the config in force and connects them (in the background:
    /// the gateway serves at once). Called once, after the listener is bound.
    pub fn start(state: &Arc<GatewayState>) {
        state.channels.cell.set(state);
        let state = Arc::clone(state);
        tokio::spawn(async move {
            let config = Arc::new(state.config.get().config.clone());
            state.channels.apply(&state, config).await;
            state.channels.restore_group_activations().await;
        });
    }

    /// The hot-reload entry (from `GatewayState::apply_config`).
    pub fn apply_config(state: &Arc<GatewayState>, config: Arc<Config>) {
        let state = Arc::clone(state);
        tokio::spawn(async move {
            state.channels.apply(&state, config).await;
        });
    }

    /// Stops every account (gateway shutdown). Debounced bursts are flushed to the agent.
    pub async fn shutdown(&self) {
        let _guard = self.apply_lock.lock().await;
        self.manager.stop_all().await;
        self.journal.flush().await;
    }

    async fn apply(&self, state: &Arc<GatewayState>, config: Arc<Config>) {
        let _guard = self.apply_lock.lock().await;
        let config_dir = state
            .config
            .path()
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| state.state_dir.clone());
        let cfg = Arc::clone(&config);
        let specs = tokio::task::spawn_blocking(move || {
            let env = |k: &str| std::env::var(k).ok();
            settings::build(
                &cfg,
                &settings::SpecInputs {
                    env: &env,
                    config_dir: &config_dir,
                },
            )
        })
        .await;
        let specs = match specs {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(target: "channels", error = %e, "cannot read the channel settings");
                return;
            }
        };
        let router = settings::router(&config, &specs.default_accounts);
        *self.default_accounts.lock() = specs.default_accounts.clone();
        for (channel, account) in &specs.default_accounts {
            self.manager.set_default_account(channel, account);
        }
        let wanted: BTreeMap<Key, AccountSpec> = specs
            .accounts
            .into_iter()
            .map(|s| ((s.channel.to_string(), s.account_id.clone()), s))
            .collect();
        // Removed accounts.
        let gone: Vec<Key> = self
            .slots
            .lock()
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for (channel, account) in gone {
            self.manager.remove(&channel, &account).await;
            self.slots
                .lock()
                .remove(&(channel.clone(), account.clone()));
            tracing::info!(target: "channels", %channel, %account, "channel account removed by a config change");
        }
        for (key, spec) in wanted {
            let same = self
                .slots
                .lock()
                .get(&key)
                .map(|s| {
                    s.spec.fingerprint == spec.fingerprint
                        && s.spec.adapter.is_ok() == spec.adapter.is_ok()
                        && s.spec.enabled == spec.enabled
                })
                .unwrap_or(false);
            if same {
                // Pipeline-only change (policies, mentions, keys, bindings): in place.
                if let Ok(p) = self.manager.pipeline(&key.0, Some(&key.1)) {
                    p.set_settings(spec.pipeline.clone());
                    p.set_router(router.clone());
                }
                if let Some(slot) = self.slots.lock().get_mut(&key) {
                    slot.spec = spec;
                }
                continue;
            }
            let previous = self.slots.lock().remove(&key);
            let (manual_stop, logged_out) = previous
                .as_ref()
                .map_or((false, false), |s| (s.manual_stop, s.logged_out));
            if previous.is_some_and(|s| s.adapter.is_some()) {
                self.manager.remove(&key.0, &key.1).await;
                tracing::info!(target: "channels", channel = %key.0, account = %key.1, "channel account settings changed: restarting it");
            }
            let slot = self.build_slot(spec, &router, manual_stop, logged_out);
            let start = slot.adapter.is_some()
                && slot.spec.enabled
                && !slot.manual_stop
                && !slot.logged_out
                && !self.skip;
            if let Err(e) = &slot.spec.adapter {
                tracing::warn!(target: "channels", channel = %key.0, account = %key.1, "channel account not started: {e}");
            }
            self.slots.lock().insert(key.clone(), slot);
            if start {
                let _ = self.start_account(&key.0, &key.1).await;
            }
        }
        state.refresh_health(None);
    }

    #[cfg_attr(
        not(any(feature = "telegram", feature = "discord", feature = "slack")),
        allow(unreachable_code, unused_variables)
    )]
    fn build_slot(
        &self,
        spec: AccountSpec,
        router: &pincer_channels::Router,
        manual_stop: bool,
        logged_out: bool,
    ) -> Slot {
        let mut slot = Slot {
            adapter: None,
            #[cfg(feature = "telegram")]
            telegram: None,
            manual_stop,
            logged_out,
            last_start_at: None,
            last_stop_at: None,
            spec,
        };
        let http = match self.http() {
            Ok(h) => h,
            Err(e) => {
                slot.spec.adapter = Err(e.to_string());
                return slot;
            }
        };
        let Ok(spec) = &slot.spec.adapter else {
            return slot;
        };
        let built: Result<Arc<dyn ChannelAdapter>, ChannelError> = match spec {
            #[cfg(feature = "telegram")]
            AdapterSpec::Telegram(s) => {
                let mut s = s.clone();
                s.store = Some(self.store.clone());
                let a = Arc::new(pincer_channels::telegram::TelegramAdapter::new(s, http));
                slot.telegram = Some(Arc::clone(&a));
                Ok(a as Arc<dyn ChannelAdapter>)
            }
            #[cfg(feature = "discord")]
            AdapterSpec::Discord(s) => {
                pincer_channels::discord::DiscordAdapter::new(s.clone(), http)
                    .map(|a| Arc::new(a) as Arc<dyn ChannelAdapter>)
            }
            #[cfg(feature = "slack")]
            AdapterSpec::Slack(s) => pincer_channels::slack::SlackAdapter::new(s.clone(), http)
                .map(|a| Arc::new(a) as Arc<dyn ChannelAdapter>),
            #[cfg(not(any(feature = "telegram", feature = "discord", feature = "slack")))]
            _ => return slot,
        };
        let adapter = match built {
            Ok(a) => a,
            Err(e) => {
                slot.spec.adapter = Err(e.to_string());
                return slot;
            }
        };
        let pipeline = InboundPipeline::new(
            Arc::clone(&adapter),
            slot.spec.pipeline.clone(),
            router.clone(),
            self.manager.pairing().clone(),
            Arc::clone(&self.sink) as Arc<dyn pincer_channels::RunSink>,
        );
        self.manager.add(
            pipeline,
            Arc::clone(&adapter),
            slot.spec.reply_mode,
            slot.spec.chunk_mode,
        );
        self.watch_status(&adapter);
        slot.adapter = Some(adapter);
        slot
    }

    /// Keeps `health` current: a connection state change of the account (connected,
    /// reconnecting, failed, stopped) refreshes it (bursts coalesced). Ends with the adapter.
    fn watch_status(&self, adapter: &Arc<dyn ChannelAdapter>) {
        let mut rx = adapter.status().subscribe();
        let cell = self.cell.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                rx.borrow_and_update();
                match cell.get() {
                    Some(state) => {
                        state.refresh_health(None);
                    }
                    None => return,
                }
            }
        });
    }

    /// Connects one account (the manager first replays inbound messages a previous run
    /// recorded but never handed to the agent).
    async fn start_account(&self, channel: &str, account: &str) -> Result<(), ChannelError> {
        let result = self.manager.start(channel, Some(account)).await;
        if let Some(slot) = self
            .slots
            .lock()
            .get_mut(&(channel.to_string(), account.to_string()))
        {
            slot.last_start_at = Some(now_ms());
        }
        match &result {
            Ok(()) => {
                tracing::info!(target: "channels", %channel, %account, "channel account started")
            }
            Err(e) => {
                tracing::warn!(target: "channels", %channel, %account, error = %e, "channel account failed to start")
            }
        }
        result
    }

    /// Resolves `accountId` (None → the channel's default account).
    pub fn resolve_account(&self, channel: &str, account: Option<&str>) -> Option<String> {
        let channel = channel.trim().to_ascii_lowercase();
        match account.map(str::trim).filter(|a| !a.is_empty()) {
            Some(a) => Some(a.to_ascii_lowercase()),
            None => self.default_accounts.lock().get(&channel).cloned(),
        }
    }

    /// `channels.start`: clears a manual stop and connects. Returns whether it runs.
    pub async fn start_manual(&self, channel: &str, account: &str) -> Result<bool, String> {
        let _guard = self.apply_lock.lock().await;
        let key = (channel.to_string(), account.to_string());
        {
            let mut slots = self.slots.lock();
            let Some(slot) = slots.get_mut(&key) else {
                return Err(format!(
                    "no channel account {channel}/{account} is configured"
                ));
            };
            if let Err(e) = &slot.spec.adapter {
                return Err(format!("{channel}/{account} cannot start: {e}"));
            }
            slot.manual_stop = false;
            slot.logged_out = false;
        }
        self.start_account(channel, account)
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.manager.is_running(channel, account))
    }

    /// `channels.stop` (and `channels.logout`): the account stays down until started again.
    pub async fn stop_manual(
        &self,
        channel: &str,
        account: &str,
        logout: bool,
    ) -> Result<(), String> {
        let _guard = self.apply_lock.lock().await;
        let key = (channel.to_string(), account.to_string());
        {
            let mut slots = self.slots.lock();
            let Some(slot) = slots.get_mut(&key) else {
                return Err(format!(
                    "no channel account {channel}/{account} is configured"
                ));
            };
            slot.manual_stop = true;
            slot.logged_out |= logout;
            slot.last_stop_at = Some(now_ms());
        }
        if self.manager.adapter(channel, Some(account)).is_ok() {
            self.manager
                .stop(channel, Some(account))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The Telegram adapter serving webhook `path` (webhook mode only).
    #[cfg(feature = "telegram")]
    pub fn telegram_webhook(
        &self,
        path: &str,
    ) -> Option<Arc<pincer_channels::telegram::TelegramAdapter>> {
        self.slots
            .lock()
            .values()
            .find(|s| s.spec.webhook_path.as_deref() == Some(path))
            .and_then(|s| s.telegram.clone())
    }

    /// Whether `path` is a configured webhook path (so the HTTP router answers it).
    pub fn is_webhook_path(&self, path: &str) -> bool {
        self.slots
            .lock()
            .values()
            .any(|s| s.spec.webhook_path.as_deref() == Some(path))
    }

    /// Re-applies persisted `groupActivation` overrides (`/activation`) to the pipelines.
    async fn restore_group_activations(&self) {
        let now = now_ms();
        let mut offset = 0;
        loop {
            let page = self
                .store
                .list_sessions(pincer_store::ListQuery {
                    agent_id: None,
                    label: None,
                    search: None,
                    active_minutes: None,
                    now_ms: now,
                    kinds: vec!["group".into()],
                    exclude_kinds: Vec::new(),
                    archived: None,
                    sort_by: Default::default(),
                    limit: Some(1000),
                    offset,
                    ..Default::default()
                })
                .await;
            let Ok(page) = page else { return };
            for record in &page.sessions {
                let Some(mode) = record.entry.group_activation.as_deref() else {
                    continue;
                };
                let Some(conv) = sink::delivery_conversation(&record.entry) else {
                    continue;
                };
                let mode = match mode {
                    "always" => pincer_channels::GroupActivation::Always,
                    _ => pincer_channels::GroupActivation::Mention,
                };
                if let Ok(p) = self.manager.pipeline(&conv.channel, Some(&conv.account_id)) {
                    p.set_group_activation(&conv, Some(mode));
                }
            }
            offset += page.sessions.len();
            if page.sessions.is_empty() || offset >= page.total_count {
                return;
            }
        }
    }
}
