//! The connect pipeline (spec §2.3), in the reference's order so errors take the same
//! precedence:
//! params schema → worker claim → protocol range → role → origin → shared auth →
//! missing-device policy → device proof → auth decision (device token) → pairing (step 9,
//! [`crate::pairing`]) → `hello-ok`. The failed-auth limiter ([`crate::ratelimit`]) is
//! consulted before any credential is compared; only wrong credentials are counted.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_protocol::close;
use pincer_protocol::connect::{ClientId, ClientMode, ConnectParams, Role};
use pincer_protocol::device_auth::{self, DeviceProofContext};
use pincer_protocol::errors::{
    AuthClientKind, AuthFailureReason, ConnectDetailCode, ErrorCode, ErrorShape,
};
use pincer_protocol::frames::{response_err, response_ok};
use pincer_protocol::hello::{HelloAuth, HelloOk, PresenceEntry, ServerInfo, Snapshot, Suspension};
use pincer_protocol::scopes::ScopeSet;
use pincer_protocol::{MIN_NODE_PROTOCOL_VERSION, MIN_PROBE_PROTOCOL_VERSION, PROTOCOL_VERSION};
use serde_json::{json, Value};

use crate::auth::{GatewayAuth, ProxyIdentity, RecoveryMaterial, SharedAuth};
use crate::pairing::{
    pairing_required_error, AuthMethod, Locality, PairingDecision, PairingRequest,
};
use crate::ratelimit::{Check, Scope as RlScope};
use crate::registry::ConnInfo;
use crate::state::GatewayState;
use crate::util;

/// Request-level facts found at upgrade time (headers, TLS, proxy identity).
#[derive(Debug, Clone, Default)]
pub struct PeerFacts {
    /// Any `Forwarded` / `X-Forwarded-*` / `X-Real-IP` header was present.
    pub forwarded: bool,
    /// The client address a trusted proxy reported (`X-Forwarded-For`), if any.
    pub forwarded_for: Option<IpAddr>,
    /// Trusted-proxy auth mode: who the proxy vouched for (or why not).
    pub proxy_identity: Option<ProxyIdentity>,
}

/// Facts about the socket the connect arrived on.
#[derive(Debug, Clone)]
pub struct SocketFacts {
    pub peer: SocketAddr,
    /// Loopback peer and no forwarding headers.
    pub direct_local: bool,
    pub origin: Option<String>,
    pub host: Option<String>,
    pub challenge_nonce: String,
    pub extra: PeerFacts,
}

impl SocketFacts {
    /// The address failures are counted against and pairing requests report.
    pub fn client_ip(&self) -> IpAddr {
        self.extra.forwarded_for.unwrap_or_else(|| self.peer.ip())
    }

    /// The client address as far as it can be believed for network-based approval: the peer
    /// when nothing was forwarded, the forwarded client when a non-loopback trusted proxy
    /// named it (a same-host proxy path could be spoofed by any local process).
    pub fn network_ip(&self) -> Option<IpAddr> {
        match (self.extra.forwarded, self.extra.forwarded_for) {
            (false, _) => Some(self.peer.ip()),
            (true, Some(ip)) if !self.peer.ip().is_loopback() => Some(ip),
            (true, _) => None,
        }
    }
}

/// A connect that passed every check.
#[derive(Debug)]
pub struct Accepted {
    pub info: ConnInfo,
    /// The complete `res` frame carrying `hello-ok`.
    pub hello_frame: String,
    /// Presence entry (key, entry) when this client is tracked.
    pub presence: Option<(String, PresenceEntry)>,
    /// For `role: "node"`: the reconciled node surface, registered after `hello-ok`.
    pub node: Option<crate::nodes::NodeConnect>,
}

/// A refused connect: optional `res`, then a close.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub frame: Option<String>,
    pub close_code: u16,
    pub close_reason: String,
    /// Answer only after this delay (wrong credentials).
    pub delay: Duration,
}

impl Rejection {
    fn with_error(id: &str, error: ErrorShape, close_code: u16) -> Rejection {
        let reason = close::truncate_reason(&error.message).to_string();
        Rejection {
            frame: Some(response_err(id, &error)),
            close_code,
            close_reason: reason,
            delay: Duration::ZERO,
        }
    }

    fn policy(id: &str, error: ErrorShape) -> Rejection {
        Self::with_error(id, error, close::POLICY_VIOLATION)
    }
}

fn client_kind(params: &ConnectParams, direct_local: bool) -> AuthClientKind {
    let is_cli = params.client.mode == ClientMode::Cli || params.client.id == ClientId::Cli;
    let is_ui = matches!(
        params.client.id,
        ClientId::ControlUi | ClientId::WebchatUi | ClientId::Webchat
    ) || params.client.mode == ClientMode::Webchat;
    match (is_cli, is_ui, direct_local) {
        (true, _, true) => AuthClientKind::CliLocal,
        (true, _, false) => AuthClientKind::CliRemote,
        (false, true, _) => AuthClientKind::Ui,
        _ => AuthClientKind::Other,
    }
}

fn protocol_ok(params: &ConnectParams, role: Option<Role>) -> bool {
    let (min, max) = (params.min_protocol, params.max_protocol);
    let v = PROTOCOL_VERSION as u64;
    if min <= v && max >= v {
        return true;
    }
    let legacy_ok = |floor: u32| min <= v && max >= floor as u64 && min <= max;
    let is_node = role == Some(Role::Node) && params.client.mode == ClientMode::Node;
    (is_node && legacy_ok(MIN_NODE_PROTOCOL_VERSION))
        || (params.client.mode == ClientMode::Probe && legacy_ok(MIN_PROBE_PROTOCOL_VERSION))
}

fn origin_host(origin: &str) -> Option<&str> {
    let rest = origin.split_once("://").map(|(_, r)| r)?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// `Origin` is allowed when it names the host the request was sent to, or is listed in
/// `gateway.controlUi.allowedOrigins` (exact, case-insensitive; `"*"` allows any).
fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .map(|a| a.trim().trim_end_matches('/'))
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    host.is_some_and(|host| origin_host(origin).is_some_and(|h| h.eq_ignore_ascii_case(host)))
}

/// Browser origin check (step 4): same host or an allowed origin.
fn origin_error(
    facts: &SocketFacts,
    params: &ConnectParams,
    allowed: &[String],
) -> Option<ErrorShape> {
    let needs_origin = params.client.id == ClientId::ControlUi;
    let reason = match &facts.origin {
        None if needs_origin => "origin missing or invalid",
        None => return None,
        Some(origin) if origin_allowed(origin, facts.host.as_deref(), allowed) => return None,
        Some(_) => "origin not allowed",
    };
    Some(
        ErrorShape::invalid_request(
            "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)",
        )
        .with_details(json!({"code": ConnectDetailCode::ControlUiOriginNotAllowed.as_str(), "reason": reason})),
    )
}

/// Step 10: a same-origin Control UI must come from this build (`client.buildId` equal to
/// `server.buildId`, or `"dev"`); a page loaded from an older gateway is told to reload.
fn control_ui_build_error(facts: &SocketFacts, params: &ConnectParams) -> Option<ErrorShape> {
    if params.client.id != ClientId::ControlUi || facts.origin.is_none() {
        return None;
    }
    let client = params.client.build_id.as_deref()?.trim();
    if client == crate::state::BUILD_ID || client == "dev" {
        return None;
    }
    Some(
        ErrorShape::new(
            ErrorCode::Unavailable,
            "protocol mismatch: Control UI updated; reload this page to continue",
        )
        .with_details(json!({
            "code": ConnectDetailCode::ProtocolMismatch.as_str(),
            "reloadRequired": true,
            "clientBuildId": client,
            "serverBuildId": crate::state::BUILD_ID,
        })),
    )
}

fn device_identity_required() -> ErrorShape {
    ErrorShape::new(ErrorCode::NotPaired, "device identity required")
        .with_details(json!({"code": ConnectDetailCode::DeviceIdentityRequired.as_str()}))
}

fn auth_failure(
    id: &str,
    reason: &AuthFailureReason,
    can_retry: bool,
    kind: AuthClientKind,
    delay: Duration,
) -> Rejection {
    let mut r = Rejection::policy(id, reason.to_error_shape(can_retry, kind));
    r.delay = delay;
    r
}

fn rate_limited(id: &str, retry_after: Duration, kind: AuthClientKind) -> Rejection {
    let ms = retry_after.as_millis().max(1) as u64;
    Rejection::policy(id, AuthFailureReason::rate_limited_shape(ms, kind))
}

/// How the shared auth of this gateway authenticated a connect.
fn shared_method(auth: &GatewayAuth) -> AuthMethod {
    match auth {
        GatewayAuth::None => AuthMethod::None,
        GatewayAuth::Token(_) => AuthMethod::Token,
        GatewayAuth::Password(_) => AuthMethod::Password,
        GatewayAuth::TrustedProxy(_) => AuthMethod::TrustedProxy,
    }
}

fn non_empty(s: Option<&String>) -> Option<&str> {
    s.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// Run the pipeline for one `connect` request.
pub async fn process_connect(
    state: &Arc<GatewayState>,
    facts: &SocketFacts,
    conn_uid: u64,
    req_id: &str,
    params: Option<&str>,
) -> Result<Accepted, Rejection> {
    let value: Value = match params {
        Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        None => Value::Null,
    };
    let params = ConnectParams::from_value(&value).map_err(|msg| {
        Rejection::policy(
            req_id,
            ErrorShape::invalid_request(format!("invalid connect params: {msg}")),
        )
    })?;

    if params.claims_worker() {
        return Err(Rejection {
            frame: None,
            close_code: close::POLICY_VIOLATION,
            close_reason: close::REASON_INVALID_HANDSHAKE.into(),
            delay: Duration::ZERO,
        });
    }

    let role = Role::parse(params.role_str());
    if !protocol_ok(&params, role) {
        let err =
            ErrorShape::invalid_request(close::REASON_PROTOCOL_MISMATCH).with_details(json!({
                "code": ConnectDetailCode::ProtocolMismatch.as_str(),
                "clientMinProtocol": params.min_protocol,
                "clientMaxProtocol": params.max_protocol,
                "expectedProtocol": PROTOCOL_VERSION,
                "minimumProbeProtocol": MIN_PROBE_PROTOCOL_VERSION,
            }));
        return Err(Rejection::with_error(req_id, err, close::PROTOCOL_ERROR));
    }
    let Some(role) = role else {
        return Err(Rejection::policy(
            req_id,
            ErrorShape::invalid_request(close::REASON_INVALID_ROLE),
        ));
    };

    let allowed_origins = state
        .config
        .get()
        .config
        .gateway
        .control_ui
        .allowed_origins
        .clone()
        .unwrap_or_default();
    if let Some(err) = origin_error(facts, &params, &allowed_origins) {
        return Err(Rejection::policy(req_id, err));
    }

    // Step 5: shared auth, with the failed-auth limiter consulted first.
    let kind = client_kind(&params, facts.direct_local);
    let (gateway_auth, auth_generation) = state.auth.snapshot();
    let client_ip = facts.client_ip();
    let limiter = &state.rate_limiter;
    let now = Instant::now();
    let connect_auth = params.auth.as_ref();
    let shared_secret_given = connect_auth.is_some_and(|a| {
        non_empty(a.token.as_ref()).is_some() || non_empty(a.password.as_ref()).is_some()
    });
    if gateway_auth.uses_secret() && shared_secret_given {
        if let Check::Locked { retry_after } = limiter.check(RlScope::SharedSecret, client_ip, now)
        {
            return Err(rate_limited(req_id, retry_after, kind));
        }
    }
    let shared = gateway_auth.evaluate(connect_auth, facts.extra.proxy_identity.as_ref());
    let explicit_device_token = connect_auth.and_then(|a| non_empty(a.device_token.as_ref()));
    let shared_token = connect_auth.and_then(|a| non_empty(a.token.as_ref()));
    let requested: Vec<String> = params.scopes_slice().to_vec();
    let is_control_ui = matches!(params.client.id, ClientId::ControlUi | ClientId::Tui);

    let (granted, auth_method, device_id, device_token, pinned) = match &params.device {
        None => {
            // Step 6: missing device identity.
            let proxy_ui = is_control_ui
                && role == Role::Operator
                && matches!(*gateway_auth, GatewayAuth::TrustedProxy(_))
                && shared.is_ok();
            if is_control_ui && !proxy_ui {
                let err = ErrorShape::invalid_request(
                    "control ui requires device identity (use HTTPS or localhost secure context)",
                )
                .with_details(
                    json!({"code": ConnectDetailCode::ControlUiDeviceIdentityRequired.as_str()}),
                );
                return Err(Rejection::policy(req_id, err));
            }
            match &shared {
                SharedAuth::Failed(reason) => {
                    let delay = if reason.is_mismatch() {
                        limiter.record_failure(RlScope::SharedSecret, client_ip, now)
                    } else {
                        Duration::ZERO
                    };
                    return Err(auth_failure(req_id, reason, false, kind, delay));
                }
                SharedAuth::Missing(_) => {
                    return Err(Rejection::policy(req_id, device_identity_required()))
                }
                SharedAuth::Ok | SharedAuth::NotRequired => {}
            }
            if role == Role::Node {
                return Err(Rejection::policy(req_id, device_identity_required()));
            }
            if gateway_auth.uses_secret() {
                limiter.reset(RlScope::SharedSecret, client_ip);
            }
            let method = shared_method(&gateway_auth);
            let local_exception = facts.direct_local
                && matches!(
                    (params.client.id, params.client.mode),
                    (ClientId::Cli, ClientMode::Cli)
                        | (ClientId::GatewayClient, ClientMode::Backend)
                );
            let scopes = if local_exception || proxy_ui {
                requested.clone()
            } else {
                Vec::new()
            };
            (scopes, method, None, None, None)
        }
        Some(device) => {
            // Step 7: device proof.
            let empty_auth = Default::default();
            let auth = params.auth.as_ref().unwrap_or(&empty_auth);
            let ctx = DeviceProofContext {
                client_id: params.client.id.as_str(),
                client_mode: params.client.mode.as_str(),
                role: role.as_str(),
                scopes: &requested,
                token: auth.signature_token(),
                platform: Some(params.client.platform.as_str()),
                device_family: params.client.device_family.as_deref(),
                challenge_nonce: &facts.challenge_nonce,
                now_ms: util::now_ms(),
            };
            let verified = device_auth::verify_device_proof(device, &ctx)
                .map_err(|e| Rejection::policy(req_id, e.to_error_shape()))?;
            // Node metadata normalisation happens after verification (§9.28).
            let (platform, device_family) = match device_auth::normalize_node_host_metadata(
                params.client.id.as_str(),
                params.client.mode.as_str(),
                &params.client.platform,
                params.client.device_family.as_deref(),
            ) {
                Some((p, f)) => (p, Some(f)),
                None => (
                    params.client.platform.clone(),
                    params.client.device_family.clone(),
                ),
            };
            // Step 8: auth decision (shared auth, else the device token).
            let mut method = shared_method(&gateway_auth);
            let mut presented_token: Option<String> = None;
            let shared_mismatch = matches!(&shared, SharedAuth::Failed(r) if r.is_mismatch());
            let credential = explicit_device_token.or(shared_token);
            if shared.is_ok() {
                if gateway_auth.uses_secret() {
                    limiter.reset(RlScope::SharedSecret, client_ip);
                }
                // A device token sent alongside (auth mode none) is echoed when it is valid.
                if let Some(token) = explicit_device_token {
                    if state
                        .pairing
                        .verify_device_token(&verified.device_id, role, token, &requested)
                        .await
                        .is_ok()
                    {
                        presented_token = Some(token.to_string());
                    }
                }
            } else if let Some(token) = credential {
                if let Check::Locked { retry_after } =
                    limiter.check(RlScope::DeviceToken, client_ip, now)
                {
                    return Err(rate_limited(req_id, retry_after, kind));
                }
                match state
                    .pairing
                    .verify_device_token(&verified.device_id, role, token, &requested)
                    .await
                {
                    Ok(_) => {
                        limiter.reset(RlScope::DeviceToken, client_ip);
                        method = AuthMethod::DeviceToken;
                        presented_token = Some(token.to_string());
                    }
                    Err(token_reason) => {
                        let mut delay =
                            limiter.record_failure(RlScope::DeviceToken, client_ip, now);
                        if shared_mismatch {
                            delay = delay.max(limiter.record_failure(
                                RlScope::SharedSecret,
                                client_ip,
                                now,
                            ));
                        }
                        let reason = if explicit_device_token.is_some()
                            || token_reason == AuthFailureReason::ScopeMismatch
                        {
                            token_reason
                        } else {
                            match &shared {
                                SharedAuth::Failed(r) | SharedAuth::Missing(r) => r.clone(),
                                _ => token_reason,
                            }
                        };
                        let can_retry = shared_token.is_some()
                            && explicit_device_token.is_none()
                            && auth.password.is_none();
                        return Err(auth_failure(req_id, &reason, can_retry, kind, delay));
                    }
                }
            } else {
                match &shared {
                    SharedAuth::Failed(reason) => {
                        let delay = if reason.is_mismatch() {
                            limiter.record_failure(RlScope::SharedSecret, client_ip, now)
                        } else {
                            Duration::ZERO
                        };
                        return Err(auth_failure(req_id, reason, false, kind, delay));
                    }
                    SharedAuth::Missing(reason) => {
                        return Err(auth_failure(req_id, reason, false, kind, Duration::ZERO))
                    }
                    SharedAuth::Ok | SharedAuth::NotRequired => {}
                }
            }
            // Step 9: pairing.
            let locality = if facts.direct_local {
                Locality::DirectLocal
            } else {
                Locality::Remote
            };
            let request = PairingRequest {
                device: verified.clone(),
                role,
                requested_scopes: requested.clone(),
                client_id: params.client.id,
                client_mode: params.client.mode,
                display_name: params.client.display_name.clone(),
                platform,
                device_family,
                locality,
                has_browser_origin: facts.origin.is_some(),
                auth_method: method,
                remote_ip: client_ip.to_string(),
                network_ip: facts.network_ip(),
                presented_token,
            };
            let decision = state
                .pairing
                .authorize(&state.bus, &request)
                .await
                .map_err(|e| Rejection::policy(req_id, e))?;
            match decision {
                PairingDecision::Approved {
                    scopes,
                    device_token,
                    platform,
                    device_family,
                } => (
                    scopes,
                    method,
                    Some(verified.device_id),
                    device_token,
                    Some((platform, device_family)),
                ),
                PairingDecision::Required {
                    reason,
                    request_id,
                    approved_roles,
                    approved_scopes,
                } => {
                    let (err, close_reason) = pairing_required_error(
                        reason,
                        request_id.as_deref(),
                        &request,
                        &approved_roles,
                        &approved_scopes,
                    );
                    let mut r = Rejection::policy(req_id, err);
                    r.close_reason = close::truncate_reason(&close_reason).to_string();
                    return Err(r);
                }
            }
        }
    };

    // Shared auth changed while this connect was being evaluated.
    if auth_method.is_shared() && state.auth.generation() != auth_generation {
        return Err(Rejection {
            frame: None,
            close_code: close::CREDENTIALS_REVOKED,
            close_reason: close::REASON_GATEWAY_AUTH_CHANGED.into(),
            delay: Duration::ZERO,
        });
    }
    if let Some(err) = control_ui_build_error(facts, &params) {
        return Err(Rejection::policy(req_id, err));
    }
    // Node command-surface reconciliation (§4.6, second pairing layer).
    let node = match (role, device_id.as_deref(), pinned.as_ref()) {
        (Role::Node, Some(id), Some((platform, family))) => Some(
            crate::nodes::surface::reconcile_on_connect(
                state,
                crate::nodes::surface::ConnectInput {
                    node_id: id,
                    params: &params,
                    platform,
                    device_family: family.as_deref(),
                    remote_ip: client_ip,
                },
            )
            .await
            .map_err(|e| Rejection::policy(req_id, e))?,
        ),
        _ => None,
    };
    let (reported_platform, reported_family) = pinned.unwrap_or_else(|| {
        (
            params.client.platform.clone(),
            params.client.device_family.clone(),
        )
    });

    // Step 11: hello-ok.
    let scopes = if role == Role::Node {
        Vec::new()
    } else {
        granted
    };
    let conn_id = uuid::Uuid::new_v4().to_string();
    let is_admin = ScopeSet::new(scopes.iter()).is_admin();
    let info = ConnInfo {
        id: conn_uid,
        conn_id: conn_id.clone(),
        role,
        scopes: ScopeSet::new(scopes.iter()),
        client_id: params.client.id,
        client_mode: params.client.mode,
        device_id: device_id.clone(),
        instance_id: params.client.instance_id.clone(),
        ip: client_ip,
        caps: params.caps.clone().unwrap_or_default(),
        auth_method,
        auth_generation,
    };
    let server = ServerInfo {
        version: state.version.to_string(),
        build_id: Some(crate::state::BUILD_ID.to_string()),
        boot_id: Some(state.boot_id.clone()),
        conn_id,
    };
    let principal = match (&facts.extra.proxy_identity, auth_method) {
        (Some(Ok(user)), AuthMethod::TrustedProxy) => Some(user.as_str()),
        _ => None,
    };
    let (recovery_scope, recovery_migration_allowed) = if role == Role::Operator {
        let generation = auth_method
            .is_shared()
            .then(|| gateway_auth.shared_generation())
            .flatten();
        let material = match (principal, &device_token, &generation, device_id.as_deref()) {
            (Some(p), _, _, d) => Some(RecoveryMaterial::Principal(p, d)),
            (None, Some(t), _, _) => Some(RecoveryMaterial::DeviceToken(&t.token)),
            (None, None, Some(g), d) => Some(RecoveryMaterial::SharedAuth(g, d)),
            (None, None, None, Some(d)) => Some(RecoveryMaterial::Device(d)),
            (None, None, None, None) => None,
        };
        (
            material.map(|m| m.scope()),
            (principal.is_none() && device_token.is_some()).then_some(true),
        )
    } else {
        (None, None)
    };
    let auth = HelloAuth {
        method: Some(auth_method.as_str().to_string()),
        role: role.as_str().to_string(),
        scopes: scopes.clone(),
        recovery_scope,
        recovery_migration_allowed,
        device_token: device_token.as_ref().map(|t| t.token.clone()),
        issued_at_ms: device_token.as_ref().map(|t| t.issued_at_ms),
    };
    // Nodes hold no operator.read: their snapshot carries no presence list (as the reference).
    let presence_json = if role == Role::Node {
        std::sync::Arc::from(serde_json::value::to_raw_value(&[0u8; 0]).unwrap_or_default())
    } else {
        state.presence.json()
    };
    let health_json = state.health.json();
    let state_dir = state.state_dir.display().to_string();
    let config_path = state.config.path().display().to_string();
    let session_defaults = state.session_defaults();
    let hello = HelloOk {
        kind: "hello-ok",
        protocol: PROTOCOL_VERSION,
        server: &server,
        features: &state.features_json,
        snapshot: Snapshot {
            suspension: Some(Suspension {
                phase: if state.is_shutting_down() {
                    "draining"
                } else {
                    "accepting"
                },
            }),
            presence: &presence_json,
            health: &health_json,
            state_version: state.versions.current(),
            uptime_ms: state.uptime_ms(),
            config_path: is_admin.then_some(config_path.as_str()),
            state_dir: is_admin.then_some(state_dir.as_str()),
            session_defaults: Some(&session_defaults),
            // Like configPath/stateDir, the reference shows the auth mode to admins only.
            auth_mode: is_admin.then(|| state.auth.mode_str()),
        },
        auth: &auth,
        policy: &state.policy,
    };
    let hello_frame = response_ok(req_id, &hello);
    let presence = (!params.client.mode.is_ephemeral()).then(|| {
        let key = device_id
            .clone()
            .or_else(|| params.client.instance_id.clone())
            .unwrap_or_else(|| format!("conn:{conn_uid}"));
        let is_node = role == Role::Node;
        let entry = PresenceEntry {
            text: is_node.then(|| {
                format!(
                    "Node: {} · mode {}",
                    params
                        .client
                        .display_name
                        .as_deref()
                        .or(device_id.as_deref())
                        .unwrap_or("node"),
                    params.client.mode.as_str()
                )
            }),
            host: params.client.display_name.clone(),
            client_id: Some(params.client.id.as_str().to_string()),
            ip: (!is_node || !client_ip.is_loopback()).then(|| client_ip.to_string()),
            version: Some(params.client.version.clone()),
            platform: Some(reported_platform.clone()),
            device_family: reported_family.clone(),
            model_identifier: params.client.model_identifier.clone(),
            time_zone: params.client.time_zone.clone(),
            mode: Some(params.client.mode.as_str().to_string()),
            reason: Some("connect".to_string()),
            ts: util::now_ms(),
            online_since: (!is_node).then(util::now_ms),
            device_id: device_id.clone(),
            roles: Some(vec![role.as_str().to_string()]),
            scopes: (!is_node).then(|| scopes.clone()),
            instance_id: params
                .client
                .instance_id
                .clone()
                .or_else(|| device_id.clone().filter(|_| is_node)),
            ..Default::default()
        };
        (key, entry)
    });
    Ok(Accepted {
        info,
        hello_frame,
        presence,
        node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_hosts() {
        assert_eq!(
            origin_host("http://127.0.0.1:18789"),
            Some("127.0.0.1:18789")
        );
        assert_eq!(origin_host("https://a.example/x"), Some("a.example"));
        assert_eq!(origin_host("null"), None);
    }

    #[test]
    fn origins_same_host_or_allowed() {
        let host = Some("127.0.0.1:18789");
        assert!(origin_allowed("http://127.0.0.1:18789", host, &[]));
        assert!(!origin_allowed("http://evil.example", host, &[]));
        assert!(!origin_allowed("http://127.0.0.1:1", host, &[]));
        let allowed = vec!["https://UI.example/".to_string()];
        assert!(origin_allowed("https://ui.example", host, &allowed));
        assert!(!origin_allowed("https://ui.example.evil", host, &allowed));
        assert!(origin_allowed("http://x", None, &["*".to_string()]));
        assert!(!origin_allowed("http://x", None, &[]));
    }
}
