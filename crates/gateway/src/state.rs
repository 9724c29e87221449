//! `GatewayState`: everything shared by connections, timers and handlers.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use pincer_protocol::hello::{AttachmentPolicy, Policy, PresenceEntry, SessionDefaults};
use pincer_protocol::limits;
use pincer_store::Store;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::{watch, Notify};

use crate::auth::{AuthCell, GatewayAuth};
use crate::config::{AuthOverrides, Timers};
use crate::dedupe::DedupeCache;
use crate::dispatch::MethodRegistry;
use crate::events::{EventBus, PublishOpts};
use crate::health::HealthCache;
use crate::identity::GatewayIdentity;
use crate::live_config::LiveConfig;
use crate::logging::LogStore;
use crate::pairing::PairingService;
use crate::presence::{PresenceTracker, StateVersions};
use crate::ratelimit::AuthRateLimiter;
use crate::registry::CloseRequest;
use crate::registry::Registry;
use crate::security::SecurityState;
use crate::sessions_hub::{SessionsHub, SessionsSummary};
use crate::util;

/// Events Pincer emits today (`hello-ok.features.events`); later issues add theirs here.
pub const EMITTED_EVENTS: &[&str] = &[
    "connect.challenge",
    "presence",
    "tick",
    "shutdown",
    "health",
    "agent",
    "chat",
    "session.tool",
    "session.message",
    "chat.metadata.changed",
    "device.pair.changed",
    "device.pair.requested",
    "device.pair.resolved",
    "sessions.changed",
    "node.pair.requested",
    "node.pair.resolved",
    "node.presence",
    "node.hostStats",
    "node.invoke.request",
    "node.invoke.cancel",
    "exec.approval.requested",
    "exec.approval.resolved",
    "cron",
    "heartbeat",
];

/// `hello-ok.server.buildId`: identifies this build (the Control UI embedded in the same
/// binary compares its own against it). Release builds set `PINCER_BUILD_ID` at compile time.
pub const BUILD_ID: &str = match option_env!("PINCER_BUILD_ID") {
    Some(id) => id,
    None => concat!("pincer-", env!("CARGO_PKG_VERSION"), "-dev"),
};

/// A queued system event (`system-event`), consumed by the heartbeat in a later issue.
#[derive(Debug, Clone)]
pub struct SystemEvent {
    pub text: String,
    pub session_key: Option<String>,
    pub ts: u64,
}

/// Max queued system events kept in memory.
pub const MAX_SYSTEM_EVENTS: usize = 100;

/// Unauthenticated sockets per IP.
#[derive(Default)]
pub struct PreauthBudget {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// Releases one pre-auth slot on drop.
pub struct PreauthSlot {
    budget: Arc<GatewayState>,
    ip: IpAddr,
}

impl Drop for PreauthSlot {
    fn drop(&mut self) {
        let mut counts = self.budget.preauth.counts.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

pub struct GatewayState {
    pub version: &'static str,
    pub boot_id: String,
    pub started: Instant,
    pub started_at_ms: u64,
    pub state_dir: PathBuf,
    /// The shared auth in force (replaceable: see [`GatewayState::replace_shared_auth`]).
    pub auth: AuthCell,
    pub timers: Timers,
    pub registry: Arc<Registry>,
    pub bus: EventBus,
    pub presence: PresenceTracker,
    pub versions: StateVersions,
    pub health: HealthCache,
    pub methods: MethodRegistry,
    /// `hello-ok.features`, identical for every connection.
    pub features_json: Box<RawValue>,
    /// Stored outcomes of side-effecting calls, as `res` payload JSON.
    pub dedupe: DedupeCache<String>,
    pub logs: Arc<LogStore>,
    pub identity: GatewayIdentity,
    pub system_events: Mutex<VecDeque<SystemEvent>>,
    pub preauth: PreauthBudget,
    /// Device pairing and device tokens (step 9, `device.*`).
    pub pairing: PairingService,
    /// Failed-auth limiter (per client address).
    pub rate_limiter: AuthRateLimiter,
    /// Trusted proxies and the TLS fingerprint.
    pub security: SecurityState,
    pub policy: Policy,
    /// The config in force (lock-free reads; swapped by the one reload path, `crate::reload`).
    pub config: Arc<LiveConfig>,
    /// The SQLite store (sessions, transcripts, devices). Cheap to clone.
    pub store: Store,
    /// Session summary for `health`/`status`, `sessions.changed` (see `crate::sessions_hub`).
    pub sessions: SessionsHub,
    /// Auth given by flags/environment (wins over the file, also on reload).
    pub auth_overrides: AuthOverrides,
    /// The running config watcher (dropped at shutdown).
    pub watcher: Mutex<Option<pincer_config::reload::ConfigWatcher>>,
    /// The agent runtime and its projection onto `agent`/`chat` events.
    pub agent: crate::agent_hub::AgentHub,
    /// Connected device nodes and their in-flight invokes (see [`crate::nodes`]).
    pub nodes: crate::nodes::NodeRegistry,
    /// Chat channels: accounts, inbound pipelines, the send path (see [`crate::channels`]).
    pub channels: crate::channels::ChannelsHub,
    /// Exec approvals: pending requests, decisions, the approvals document (see
    /// [`crate::approvals`]).
    pub approvals: Arc<crate::approvals::ApprovalService>,
    /// The scheduler, heartbeat control and hooks settings (see [`crate::automations`]).
    pub automations: crate::automations::Automations,
    pub shutdown_tx: watch::Sender<bool>,
    /// Open WebSocket connections (pre- and post-auth), for the shutdown drain.
    pub open_sockets: AtomicUsize,
    pub sockets_drained: Notify,
}

/// Inputs to build the state.
pub struct StateParts {
    pub state_dir: PathBuf,
    pub auth: GatewayAuth,
    pub timers: Timers,
    pub logs: Arc<LogStore>,
    pub identity: GatewayIdentity,
    pub pairing: PairingService,
    pub rate_limiter: AuthRateLimiter,
    pub security: SecurityState,
    pub config: Arc<LiveConfig>,
    pub store: Store,
    /// Session summary read at start (so the first `health` is already right).
    pub sessions: SessionsSummary,
    pub auth_overrides: AuthOverrides,
}

impl GatewayState {
    pub fn new(parts: StateParts) -> Arc<GatewayState> {
        let version = env!("CARGO_PKG_VERSION");
        let boot_id = uuid::Uuid::new_v4().to_string();
        let registry = Arc::new(Registry::default());
        let methods = crate::methods::registry();
        let features = json!({
            "methods": methods.advertised(),
            "events": EMITTED_EVENTS,
        });
        let features_json = serde_json::value::to_raw_value(&features).unwrap_or_default();
        let (shutdown_tx, _) = watch::channel(false);
        let presence = PresenceTracker::new(PresenceTracker::self_entry(version, &boot_id));
        let versions = StateVersions::default();
        versions.presence.store(1, Ordering::Release);
        versions.health.store(1, Ordering::Release);
        // The agent's `nodes` tool reaches nodes through this gateway (set once the state exists).
        let nodes_cell = crate::nodes::host::StateCell::default();
        // The agent's `message` tool sends through the channels (set once the state exists).
        let channels = crate::channels::ChannelsHub::new(parts.store.clone());
        // The agent's exec tool asks for approvals and keeps allow-always grants here.
        let approvals =
            crate::approvals::ApprovalService::new(parts.store.clone(), Arc::clone(&registry));
        let approval_host = crate::approvals::GatewayApprovalHost::shared(&approvals);
        let automations = crate::automations::Automations::new();
        let hosts = pincer_tools::context::Hosts {
            approvals: Some(approval_host.clone()),
            automations: Some(automations.tool_host()),
            messaging: Some(crate::channels::messaging::host(channels.cell.clone())),
            nodes: Some(Arc::new(crate::nodes::host::GatewayNodesHost::new(
                nodes_cell.clone(),
            ))),
            ..Default::default()
        };
        let agent = crate::agent_hub::AgentHub::with_hosts(
            parts.store.clone(),
            Arc::new(parts.config.current().config.clone()),
            &parts.state_dir,
            hosts,
            Some(approval_host),
        );
        let state = Arc::new(GatewayState {
            version,
            started: Instant::now(),
            started_at_ms: util::now_ms(),
            health: HealthCache::new(parts.store.path().display().to_string()),
            state_dir: parts.state_dir,
            auth: AuthCell::new(parts.auth),
            timers: parts.timers,
            bus: EventBus::new(Arc::clone(&registry)),
            registry,
            presence,
            versions,
            methods,
            features_json,
            dedupe: DedupeCache::with_defaults(),
            logs: parts.logs,
            identity: parts.identity,
            system_events: Mutex::new(VecDeque::new()),
            preauth: PreauthBudget::default(),
            pairing: parts.pairing,
            rate_limiter: parts.rate_limiter,
            security: parts.security,
            policy: Policy {
                max_payload: limits::MAX_PAYLOAD_BYTES as u64,
                max_buffered_bytes: limits::MAX_BUFFERED_BYTES as u64,
                tick_interval_ms: parts.timers.tick_interval.as_millis() as u64,
                attachments: Some(AttachmentPolicy::for_media_max_mb(
                    limits::DEFAULT_MEDIA_MAX_MB,
                )),
                has_multiple_session_sharing_identities: Some(false),
            },
            shutdown_tx,
            boot_id,
            open_sockets: AtomicUsize::new(0),
            sockets_drained: Notify::new(),
            config: parts.config,
            store: parts.store,
            sessions: SessionsHub::new(parts.sessions),
            auth_overrides: parts.auth_overrides,
            watcher: Mutex::new(None),
            agent,
            nodes: crate::nodes::NodeRegistry::default(),
            channels,
            approvals,
            automations,
        });
        nodes_cell.set(&state);
        state.channels.cell.set(&state);
        state.refresh_health(None);
        state
    }

    /// `hello-ok.snapshot.sessionDefaults`, from the config in force.
    pub fn session_defaults(&self) -> SessionDefaults {
        self.config.session_defaults()
    }

    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown_tx.borrow()
    }

    /// Take a pre-auth slot for `ip`, or `None` when the per-IP budget is used up.
    pub fn try_preauth_slot(self: &Arc<Self>, ip: IpAddr) -> Option<PreauthSlot> {
        let mut counts = self.preauth.counts.lock();
        let n = counts.entry(ip).or_insert(0);
        if *n >= limits::MAX_PREAUTH_CONNECTIONS_PER_IP {
            return None;
        }
        *n += 1;
        Some(PreauthSlot {
            budget: Arc::clone(self),
            ip,
        })
    }

    /// Add or replace a presence entry and broadcast the change.
    pub fn presence_upsert(&self, key: String, entry: PresenceEntry) {
        self.presence.upsert(key, entry);
        self.publish_presence();
    }

    /// Remove a presence entry and broadcast the change if it existed.
    pub fn presence_remove(&self, key: &str) {
        if self.presence.remove(key) {
            self.publish_presence();
        }
    }

    fn publish_presence(&self) {
        self.versions.presence.fetch_add(1, Ordering::AcqRel);
        let list = self.presence.json();
        let payload = format!(r#"{{"presence":{}}}"#, list.get());
        let opts = PublishOpts::droppable().with_state_version(self.versions.current());
        self.bus.publish_raw("presence", Some(&payload), opts);
    }

    /// Recompute health; on a real change bump the version and broadcast `health`.
    pub fn refresh_health(&self, sample: Option<crate::health::LoopSample>) -> bool {
        let changed = {
            let loaded = self.config.get();
            let summary = self.sessions.summary();
            let facts = crate::health::HealthFacts {
                config: &loaded.config,
                sessions: &summary,
                config_reload: self.config.reload_health(),
                channels: Some(self.channels.health_json()),
            };
            self.health.refresh(sample, &facts)
        };
        if changed {
            self.versions.health.fetch_add(1, Ordering::AcqRel);
            let opts = PublishOpts {
                state_version: Some(self.versions.current()),
                ..Default::default()
            };
            self.bus
                .publish_raw("health", Some(self.health.json().get()), opts);
        }
        changed
    }

    /// Send the current health to one connection (right after its hello).
    pub fn send_health_to(&self, conn: u64) {
        let opts = PublishOpts {
            state_version: Some(self.versions.current()),
            ..PublishOpts::to_conn(conn)
        };
        self.bus
            .publish_raw("health", Some(self.health.json().get()), opts);
    }

    pub fn socket_opened(&self) {
        self.open_sockets.fetch_add(1, Ordering::AcqRel);
    }

    /// Close (4001 `device removed`) every socket of `device_id`, or only those with `role`.
    /// Returns how many were asked to close.
    pub fn close_device_sockets(&self, device_id: &str, role: Option<&str>) -> usize {
        let mut n = 0;
        self.registry.for_each(|h| {
            let info = &h.info;
            if info.device_id.as_deref() == Some(device_id)
                && role.is_none_or(|r| r == info.role.as_str())
            {
                h.request_close(CloseRequest::Close(
                    pincer_protocol::close::CREDENTIALS_REVOKED,
                    pincer_protocol::close::REASON_DEVICE_REMOVED.into(),
                ));
                n += 1;
            }
        });
        n
    }

    /// Whether `device_id` has an authenticated socket.
    pub fn device_connected(&self, device_id: &str) -> bool {
        let mut found = false;
        self.registry.for_each(|h| {
            found |= h.info.device_id.as_deref() == Some(device_id);
        });
        found
    }

    /// Install new shared auth (token, password, mode). When it differs from the current one,
    /// every session that authenticated with the old shared auth is closed with 4001
    /// `gateway auth changed` (device-token sessions stay). Returns how many were closed.
    /// The config hot-reload path and SIGHUP call this.
    pub fn replace_shared_auth(&self, auth: GatewayAuth) -> usize {
        let Some(generation) = self.auth.replace(auth) else {
            return 0;
        };
        tracing::info!(mode = self.auth.mode_str(), "gateway auth changed");
        self.close_shared_sessions_before(generation)
    }

    /// Closes (4001 `gateway auth changed`) the shared-auth sessions of the current auth,
    /// which stays (its policy inputs changed). Returns how many were closed.
    pub fn revoke_shared_auth_sessions(&self) -> usize {
        let generation = self.auth.bump();
        self.close_shared_sessions_before(generation)
    }

    fn close_shared_sessions_before(&self, generation: u64) -> usize {
        let mut n = 0;
        self.registry.for_each(|h| {
            if h.info.auth_method.is_shared() && h.info.auth_generation < generation {
                h.request_close(CloseRequest::Close(
                    pincer_protocol::close::CREDENTIALS_REVOKED,
                    pincer_protocol::close::REASON_GATEWAY_AUTH_CHANGED.into(),
                ));
                n += 1;
            }
        });
        n
    }

    /// A connection that just registered: is its shared auth still current? (Closes the race
    /// between a connect in flight and [`GatewayState::replace_shared_auth`].)
    pub fn auth_still_current(&self, info: &crate::registry::ConnInfo) -> bool {
        !(info.auth_method.is_shared() && info.auth_generation < self.auth.generation())
    }

    pub fn socket_closed(&self) {
        if self.open_sockets.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.sockets_drained.notify_waiters();
        }
    }
}
