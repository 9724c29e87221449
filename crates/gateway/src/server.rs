//! Start-up, the accept loop (HTTP + WebSocket upgrade on one port), the global timers, and
//! graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::auth::GatewayAuth;
use crate::config::{AuthSetting, GatewayConfig};
use crate::connection::{self, UpgradeFacts};
use crate::events::PublishOpts;
use crate::health::LoopSample;
use crate::http::{self as http_routes, PeerAddr};
use crate::identity::GatewayIdentity;
use crate::live_config::{self, hash_key_from_seed, Effective, LiveConfig};
use crate::logging;
use crate::pairing::PairingService;
use crate::ratelimit::AuthRateLimiter;
use crate::security::{SecuritySettings, SecurityState};
use crate::sessions_hub;
use crate::state::{GatewayState, StateParts};
use crate::state_dir::{self, GatewayInfo, StateDirError, StateLock};
use crate::transport::{Sock, TlsSock};
use crate::util;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    #[error(
        "refusing to bind {addr} without authentication: a non-loopback bind needs --auth token or --auth password (or use --bind loopback)"
    )]
    InsecureBind { addr: String },
    #[error("{0}")]
    InvalidAuth(String),
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The config file is invalid (names file, line, key path and reason).
    #[error(transparent)]
    Config(#[from] pincer_config::ConfigError),
    /// Flags/environment/config cannot be combined into a runnable setting.
    #[error("{0}")]
    Settings(String),
    #[error("cannot open the state database")]
    Store(#[from] pincer_store::StoreError),
}

fn resolve_auth(
    config: &GatewayConfig,
    effective: &Effective,
    trusted_proxies: &[crate::auth::IpRange],
) -> Result<(GatewayAuth, Option<std::path::PathBuf>), StartError> {
    match &effective.auth {
        AuthSetting::TrustedProxy(settings) => {
            if settings.user_header.trim().is_empty() {
                return Err(StartError::InvalidAuth(
                    "gateway auth mode is trusted-proxy, but trustedProxy.userHeader is empty"
                        .into(),
                ));
            }
            if trusted_proxies.is_empty() {
                return Err(StartError::InvalidAuth(
                    "gateway auth mode is trusted-proxy, but no trusted proxies are configured (--trusted-proxy / gateway.trustedProxies)".into(),
                ));
            }
            Ok((GatewayAuth::TrustedProxy(settings.clone()), None))
        }
        AuthSetting::None => {
            if !effective.bind.is_loopback() {
                return Err(StartError::InsecureBind {
                    addr: format!("{}:{}", effective.bind.ip(), effective.port),
                });
            }
            Ok((GatewayAuth::None, None))
        }
        AuthSetting::Token(Some(t)) if t.trim().is_empty() => {
            Err(StartError::InvalidAuth("the gateway token is empty".into()))
        }
        AuthSetting::Token(Some(t)) => Ok((GatewayAuth::Token(t.trim().to_string()), None)),
        AuthSetting::Token(None) => {
            let (token, _) = state_dir::load_or_create_token(&config.state_dir)?;
            Ok((
                GatewayAuth::Token(token),
                Some(config.state_dir.join("gateway.token")),
            ))
        }
        AuthSetting::Password(p) if p.is_empty() => Err(StartError::InvalidAuth(
            "the gateway password is empty".into(),
        )),
        AuthSetting::Password(p) => Ok((GatewayAuth::Password(p.clone()), None)),
    }
}

/// A started gateway (used by `run`; tests may drive it directly).
pub struct RunningGateway {
    pub state: Arc<GatewayState>,
    pub addr: SocketAddr,
    _lock: StateLock,
    token_file: Option<std::path::PathBuf>,
}

/// Everything up to and including `gateway.json`; returns once the port is bound.
pub async fn start(config: &GatewayConfig) -> Result<RunningGateway, StartError> {
    state_dir::ensure_private_dir(&config.state_dir)?;
    let logs = logging::init(
        config.log_format,
        config.verbose,
        Some(config.state_dir.join("logs").join("pincer.log")),
    );
    let lock = StateLock::acquire(&config.state_dir)?;
    // The database opens (on a first start: is built) on the store's writer thread while the
    // rest of the start-up runs; everything that uses it waits for it (and connections are
    // accepted only once it is open, below).
    let store = pincer_store::Store::open_in_background(
        pincer_store::db_path(&config.state_dir),
        pincer_store::StoreOptions::default(),
    )?;
    // The scheduler's settings (`automations::start`, below) ask for the host's time zone, for
    // which jiff first indexes the zoneinfo directory: the largest CPU item of a start. Done on
    // a blocking thread meanwhile, it is cached by then.
    tokio::task::spawn_blocking(|| drop(jiff::tz::TimeZone::system()));
    let identity = GatewayIdentity::load_or_create(&config.state_dir, util::now_ms())?;
    // Config first: an invalid file refuses the start with its file:line — path: reason.
    let live = LiveConfig::load(
        &config.state_dir,
        hash_key_from_seed(&identity.keypair.seed()),
    )?;
    let effective = live_config::effective(
        config.port,
        config.bind.as_ref(),
        &config.auth,
        &live.current(),
    )
    .map_err(StartError::Settings)?;
    let security = SecuritySettings::resolve(&live.get().config, live.path(), &config.security)
        .map_err(StartError::Settings)?;
    let (auth, token_file) = resolve_auth(config, &effective, &security.trusted_proxies)?;
    if live.get().config.gateway.tls.ca_path.is_some() {
        tracing::warn!(
            target: "config",
            "{}: gateway.tls.caPath is ignored: Pincer does not verify client certificates",
            live.path().display()
        );
    }
    let tls = if security.tls.enabled {
        let tls_settings = security.tls.clone();
        let dir = config.state_dir.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::tls::load(&tls_settings, &dir))
            .await
            .map_err(|e| StartError::Settings(format!("tls task failed: {e}")))?;
        Some(match loaded {
            Ok(identity) => identity,
            // Settings from the config file: say which file.
            Err(e) if config.security.tls.is_none() => {
                return Err(StartError::Settings(format!(
                    "{}: {e}",
                    live.path().display()
                )))
            }
            Err(e) => return Err(e.into()),
        })
    } else {
        None
    };
    let pairing = PairingService::new(store.clone(), security.auto_approve_local);
    pairing.set_auto_approve_cidrs(security.auto_approve_cidrs.clone());
    let state = GatewayState::new(StateParts {
        state_dir: config.state_dir.clone(),
        auth,
        timers: config.timers,
        logs,
        identity,
        pairing,
        rate_limiter: AuthRateLimiter::new(security.rate_limit),
        security: SecurityState::new(
            config.security.clone(),
            security.trusted_proxies.clone(),
            tls.as_ref(),
        )
        .with_real_ip_fallback(security.allow_real_ip_fallback),
        config: Arc::new(live),
        store,
        // Read below, once the store is open and before the first connection is served.
        sessions: sessions_hub::SessionsSummary::default(),
        auth_overrides: config.auth.clone(),
    });
    state.start_config_watcher();
    crate::agent_hub::AgentHub::start(&state);
    crate::automations::start(&state);
    let bind_addr = SocketAddr::new(effective.bind.ip(), effective.port);
    let listener = TcpListener::bind(bind_addr).await.map_err(|source| {
        let hint = if source.kind() == std::io::ErrorKind::AddrInUse {
            " (another gateway or program already uses this port; pick another with --port)"
        } else {
            ""
        };
        StartError::Bind {
            addr: bind_addr,
            source,
            hint,
        }
    })?;
    let addr = listener.local_addr().unwrap_or(bind_addr);
    // Bound: clients' connections complete and wait in the listen backlog. They are accepted
    // once the store is open and the session summary read, so the first hello snapshot and
    // `health` already show the stored sessions; a database that cannot be opened still
    // refuses the start.
    state.store.ready().await?;
    let agents = state.config.get().config.agent_ids();
    let summary = sessions_hub::compute_summary(&state.store, &agents).await?;
    state.sessions.set_summary(summary);
    state.refresh_health(None);
    tokio::spawn(accept_loop(Arc::clone(&state), listener));
    spawn_timers(&state);
    crate::channels::ChannelsHub::start(&state);
    let url_host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let scheme = if state.security.tls_config.is_some() {
        "wss"
    } else {
        "ws"
    };
    let info = GatewayInfo {
        pid: std::process::id(),
        port: addr.port(),
        url: format!("{scheme}://{url_host}:{}", addr.port()),
        tls_fingerprint: state.security.tls_fingerprint.clone(),
        boot_id: state.boot_id.clone(),
        started_at_ms: state.started_at_ms,
        auth_mode: state.auth.mode_str().to_string(),
    };
    state_dir::write_gateway_json(&config.state_dir, &info)?;
    let t = &state.timers;
    tracing::info!(
        url = %info.url,
        auth = info.auth_mode,
        pid = info.pid,
        tick_interval_ms = t.tick_interval.as_millis() as u64,
        handshake_timeout_ms = t.handshake_timeout.as_millis() as u64,
        health_refresh_ms = t.health_refresh.as_millis() as u64,
        ws_ping_interval_ms = t.ws_ping_interval.as_millis() as u64,
        "gateway listening"
    );
    Ok(RunningGateway {
        state,
        addr,
        _lock: lock,
        token_file,
    })
}

impl RunningGateway {
    /// The start-up banner: URL, where the token is, what to configure next.
    pub fn banner(&self) -> String {
        let s = &self.state;
        let scheme = if s.security.tls_config.is_some() {
            "wss"
        } else {
            "ws"
        };
        let url = format!(
            "{scheme}://{}:{}",
            if self.addr.ip().is_unspecified() {
                "127.0.0.1".into()
            } else {
                self.addr.ip().to_string()
            },
            self.addr.port()
        );
        let auth = s.auth.get();
        let auth_line = match (&*auth, &self.token_file) {
            (GatewayAuth::Token(_), Some(path)) => {
                format!("token auth; the token is in {}", path.display())
            }
            (GatewayAuth::Token(_), None) => {
                "token auth (token from --token / PINCER_GATEWAY_TOKEN)".to_string()
            }
            (GatewayAuth::Password(_), _) => {
                "password auth (from --password / PINCER_GATEWAY_PASSWORD)".to_string()
            }
            (GatewayAuth::None, _) => "no auth (loopback only)".to_string(),
            (GatewayAuth::TrustedProxy(t), _) => format!(
                "trusted-proxy auth (user from the {} header of a trusted proxy)",
                t.user_header
            ),
        };
        let tls_line = match &s.security.tls_fingerprint {
            Some(fp) => format!(
                "  TLS on (wss:// and https://); certificate SHA-256 fingerprint: {fp}\n    pin it with: pincer status --url {url} --tls-fingerprint {fp}\n"
            ),
            None => String::new(),
        };
        let config_path = s.config.path().to_path_buf();
        format!(
            "Pincer gateway {} listening on {url} (HTTP on the same port)\n  {auth_line}\n{tls_line}  state: {}  logs: {}\n  next: configure a model provider in {} (models.providers + agents.defaults.model.primary, OpenClaw schema), then check with `pincer status`\n",
            s.version,
            s.state_dir.display(),
            s.logs.path().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into()),
            config_path.display(),
        )
    }

    /// SIGHUP: re-read `<state>/gateway.token` (when the token came from that file) and, if it
    /// changed, switch to it: sessions that used the old token are closed with 4001
    /// `gateway auth changed`.
    pub fn reload_token_file(&self) {
        let Some(path) = &self.token_file else {
            tracing::info!(
                "SIGHUP: the gateway token does not come from a file; nothing to reload"
            );
            return;
        };
        match std::fs::read_to_string(path).map(|t| t.trim().to_string()) {
            Ok(token) if !token.is_empty() => {
                let closed = self.state.replace_shared_auth(GatewayAuth::Token(token));
                tracing::info!(
                    closed,
                    "SIGHUP: gateway token reloaded from {}",
                    path.display()
                );
            }
            Ok(_) => tracing::warn!(
                "SIGHUP: {} is empty; keeping the current token",
                path.display()
            ),
            Err(e) => tracing::warn!("SIGHUP: cannot read {}: {e}", path.display()),
        }
    }

    /// Broadcast `shutdown`, close every socket with 1012, remove `gateway.json`.
    pub async fn shutdown(self, reason: &str) {
        let state = &self.state;
        state.stop_config_watcher();
        state.bus.publish(
            "shutdown",
            &serde_json::json!({"reason": reason}),
            PublishOpts::default(),
        );
        state.shutdown_tx.send_replace(true);
        state.channels.shutdown().await;
        crate::automations::shutdown(state).await;
        state.agent.runtime.shutdown();
        let drained = async {
            while state.open_sockets.load(Ordering::Acquire) > 0 {
                let notified = state.sockets_drained.notified();
                if state.open_sockets.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(150), drained).await;
        let _ = std::fs::remove_file(state_dir::gateway_json_path(&state.state_dir));
        tracing::info!("gateway stopped");
    }
}

/// `pincer gateway run`: start, print the banner, serve until SIGINT/SIGTERM, shut down.
pub async fn run(config: GatewayConfig) -> Result<(), StartError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(StartError::Signals)?;
    let gw = start(&config).await?;
    print!("{}", gw.banner());
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => gw.reload_token_file(),
        }
    }
    gw.shutdown("gateway stopping").await;
    Ok(())
}

fn spawn_timers(state: &Arc<GatewayState>) {
    // One global tick for every connection.
    let s = Arc::clone(state);
    tokio::spawn(async move {
        let period = s.timers.tick_interval;
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if s.is_shutting_down() {
                return;
            }
            let payload = format!(r#"{{"ts":{}}}"#, util::now_ms());
            s.bus
                .publish_raw("tick", Some(&payload), PublishOpts::droppable());
        }
    });
    // One global WS ping; a ping still unanswered at the next round terminates the socket.
    let s = Arc::clone(state);
    tokio::spawn(async move {
        let period = s.timers.ws_ping_interval;
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if s.is_shutting_down() {
                return;
            }
            s.registry.for_each(|h| {
                if h.pong_pending.swap(true, Ordering::AcqRel) {
                    h.request_close(crate::registry::CloseRequest::Terminate);
                } else {
                    h.ping_requested.store(true, Ordering::Release);
                    h.wake();
                }
            });
        }
    });
    // Health refresh (+ event-loop sample) and dedupe sweep.
    let s = Arc::clone(state);
    tokio::spawn(async move {
        let period = s.timers.health_refresh;
        let mut next = tokio::time::Instant::now() + period;
        let mut last_cpu = util::cpu_ticks();
        let mut last_at = std::time::Instant::now();
        loop {
            tokio::time::sleep_until(next).await;
            if s.is_shutting_down() {
                return;
            }
            let lag = tokio::time::Instant::now().saturating_duration_since(next);
            let cpu = util::cpu_ticks();
            let wall = last_at.elapsed().as_secs_f64().max(0.001);
            let ratio = match (cpu, last_cpu) {
                (Some(now), Some(before)) => (now.saturating_sub(before)) as f64 / 100.0 / wall,
                _ => 0.0,
            };
            last_cpu = cpu;
            last_at = std::time::Instant::now();
            s.refresh_health(Some(LoopSample {
                interval: period,
                lag,
                cpu_core_ratio: ratio,
            }));
            s.dedupe.sweep(std::time::Instant::now());
            next += period;
            if next < tokio::time::Instant::now() {
                next = tokio::time::Instant::now() + period;
            }
        }
    });
}

async fn accept_loop(state: Arc<GatewayState>, listener: TcpListener) {
    let mut shutdown = state.shutdown_tx.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_socket(Arc::clone(&state), stream, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// A freshly accepted socket: TLS first when the port speaks TLS, then HTTP.
async fn serve_socket(state: Arc<GatewayState>, stream: TcpStream, peer: SocketAddr) {
    match state.security.tls_config.clone() {
        None => serve_http(state, stream, peer).await,
        Some(config) => {
            if let Some(tls) = crate::tls::accept(config, stream, peer).await {
                serve_http(state, tls, peer).await;
            }
        }
    }
}

async fn serve_http<I>(state: Arc<GatewayState>, stream: I, peer: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let router = http_routes::router(Arc::clone(&state));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let state = Arc::clone(&state);
        let router = router.clone();
        async move { Ok::<_, Infallible>(handle_request(state, router, peer, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, %peer, "http connection ended with an error");
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let connection = headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    upgrade.eq_ignore_ascii_case("websocket")
        && connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn handle_request(
    state: Arc<GatewayState>,
    router: axum::Router,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<Body> {
    if is_websocket_upgrade(req.headers()) {
        return upgrade(state, peer, &mut req);
    }
    if req.headers().contains_key(header::UPGRADE) {
        return plain(StatusCode::BAD_REQUEST, "unsupported upgrade");
    }
    let mut req = req.map(Body::new);
    req.extensions_mut().insert(PeerAddr(peer));
    let mut svc = router;
    match tower_service::Service::call(&mut svc, req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

fn upgrade(
    state: Arc<GatewayState>,
    peer: SocketAddr,
    req: &mut Request<Incoming>,
) -> Response<Body> {
    if req.uri().path().starts_with("/__openclaw__/worker") {
        return plain(StatusCode::NOT_FOUND, "worker ingress is not enabled");
    }
    let headers = req.headers();
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        let mut resp = plain(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported websocket version",
        );
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec())
    else {
        return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    if state.is_shutting_down() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "gateway is shutting down");
    }
    let Some(slot) = state.try_preauth_slot(peer.ip()) else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many unauthenticated sockets",
        );
    };
    let extra = state
        .security
        .peer_facts(&state.auth.get(), peer.ip(), headers);
    let facts = UpgradeFacts {
        peer,
        direct_local: peer.ip().is_loopback() && !extra.forwarded,
        origin: header_str(headers, header::ORIGIN),
        host: header_str(headers, header::HOST),
        extra,
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, %peer, "websocket upgrade failed");
                return;
            }
        };
        let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let tcp = parts.io.into_inner();
                // Copy and drop hyper's read buffer now: the `Bytes` pins its whole 8 KiB
                // allocation for as long as the connection lives.
                let already_read = parts.read_buf.to_vec();
                drop(parts.read_buf);
                connection::run(state, Sock::Plain(tcp), already_read, facts, slot).await;
                return;
            }
            Err(u) => u,
        };
        match upgraded.downcast::<TokioIo<tokio_rustls::server::TlsStream<TcpStream>>>() {
            Ok(parts) => {
                let (tcp, tls) = parts.io.into_inner().into_inner();
                let already_read = parts.read_buf.to_vec();
                drop(parts.read_buf);
                let sock = Sock::Tls(Box::new(TlsSock::new(tcp, tls)));
                connection::run(state, sock, already_read, facts, slot).await;
            }
            Err(_) => tracing::error!("websocket upgrade produced an unexpected stream type"),
        }
    });
    let accept = derive_accept_key(&key);
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}
