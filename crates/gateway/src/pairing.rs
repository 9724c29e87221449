//! Step 9 of the connect pipeline and the `device.*` state: device pairing per role, pending
//! requests, silent local approval, and device tokens (spec §4.5, §4.6).
//!
//! Records live in SQLite (`pincer-store`, migration 0002); every security-relevant change is
//! acknowledged only after `COMMIT`. Read-modify-write steps (request, approve, rotate, …) run
//! as one transaction on the store's writer thread, so two approvals or a connect racing an
//! approval cannot interleave.
//!
//! **Device tokens are stored only as SHA-256 hashes.** The gateway therefore cannot re-send a
//! token it issued earlier. `hello-ok.auth.deviceToken` is filled when the gateway knows the
//! plaintext: the client presented it (device-token reconnect: echoed, as the reference does),
//! or the gateway issues one now (first approval of the role, after a revoke, or when the
//! existing token does not cover the requested scopes, which rotates it). A device that has a
//! valid token but authenticated another way (shared secret) gets no `deviceToken` and keeps
//! the one it stored. A device that presents no credential at all (auth mode `none`) gets a
//! fresh token that replaces the stored one: the reference would echo the token there, and
//! without it a client that dropped its first token (the official CLI's read-only
//! `gateway call`) could never obtain one again. See ARCHITECTURE.md "Device tokens" for why.

use std::sync::atomic::{AtomicBool, Ordering};

use pincer_protocol::connect::{ClientId, ClientMode, Role};
use pincer_protocol::device_auth::{encode_base64url, runtime_platform_identity, VerifiedDevice};
use pincer_protocol::errors::{AuthFailureReason, ConnectDetailCode, ErrorCode, ErrorShape};
use pincer_protocol::scopes::{missing_requested_scope, normalize_scope_list, role_scopes_allow};
use pincer_store::{DeviceTokenRecord, PairedDevice, PendingPairing, Store, StoreError};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::IpRange;
use crate::events::{EventBus, PublishOpts};
use crate::util;

/// Pending requests expire after 5 minutes.
pub const PENDING_TTL_MS: u64 = 5 * 60 * 1000;
/// `lastSeenAtMs` / `lastUsedAtMs` are written at most this often per device.
const LAST_SEEN_DEBOUNCE_MS: i64 = 60_000;

/// Where a connection comes from, as far as pairing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locality {
    /// Loopback socket without forwarding headers.
    DirectLocal,
    Remote,
}

/// How a connect authenticated (`hello-ok.auth.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    None,
    Token,
    Password,
    DeviceToken,
    TrustedProxy,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Token => "token",
            AuthMethod::Password => "password",
            AuthMethod::DeviceToken => "device-token",
            AuthMethod::TrustedProxy => "trusted-proxy",
        }
    }

    /// Authenticated with the gateway's shared secret (token/password) or a trusted proxy:
    /// such sessions are closed when that auth changes.
    pub fn is_shared(self) -> bool {
        matches!(
            self,
            AuthMethod::Token | AuthMethod::Password | AuthMethod::TrustedProxy
        )
    }
}

/// Why pairing is required (`details.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingReason {
    NotPaired,
    RoleUpgrade,
    ScopeUpgrade,
    MetadataUpgrade,
}

impl PairingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "not-paired",
            PairingReason::RoleUpgrade => "role-upgrade",
            PairingReason::ScopeUpgrade => "scope-upgrade",
            PairingReason::MetadataUpgrade => "metadata-upgrade",
        }
    }

    fn requirement(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "device is not approved yet",
            PairingReason::RoleUpgrade => {
                "device is asking for a higher role than currently approved"
            }
            PairingReason::ScopeUpgrade => {
                "device is asking for more scopes than currently approved"
            }
            PairingReason::MetadataUpgrade => "device identity changed and must be re-approved",
        }
    }

    fn remediation(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "Approve this device from the pending pairing requests.",
            PairingReason::RoleUpgrade => {
                "Review the requested role upgrade, then approve the pending request."
            }
            PairingReason::ScopeUpgrade => {
                "Review the requested scopes, then approve the pending upgrade."
            }
            PairingReason::MetadataUpgrade => {
                "Review the refreshed device details, then approve the pending request."
            }
        }
    }
}

/// Everything step 9 looks at.
#[derive(Debug, Clone)]
pub struct PairingRequest {
    pub device: VerifiedDevice,
    pub role: Role,
    /// `connect.params.scopes` as sent.
    pub requested_scopes: Vec<String>,
    pub client_id: ClientId,
    pub client_mode: ClientMode,
    pub display_name: Option<String>,
    /// After node metadata normalisation.
    pub platform: String,
    pub device_family: Option<String>,
    pub locality: Locality,
    pub has_browser_origin: bool,
    pub auth_method: AuthMethod,
    pub remote_ip: String,
    /// The address `gateway.nodes.pairing.autoApproveCidrs` is matched against: the socket's
    /// peer without forwarding headers, or the client a non-loopback trusted proxy named;
    /// `None` when neither can be believed.
    pub network_ip: Option<std::net::IpAddr>,
    /// The device token this connect authenticated with (already verified).
    pub presented_token: Option<String>,
}

/// A device token to hand out in `hello-ok.auth`.
#[derive(Debug, Clone)]
pub struct IssuedDeviceToken {
    pub token: String,
    pub issued_at_ms: u64,
}

/// The outcome of step 9.
#[derive(Debug, Clone)]
pub enum PairingDecision {
    Approved {
        scopes: Vec<String>,
        device_token: Option<IssuedDeviceToken>,
        /// Pinned metadata to report for this connection.
        platform: String,
        device_family: Option<String>,
    },
    Required {
        reason: PairingReason,
        request_id: Option<String>,
        approved_roles: Vec<String>,
        approved_scopes: Vec<String>,
    },
}

/// Build the `NOT_PAIRED` error and the close reason for a pairing-required connect.
pub fn pairing_required_error(
    reason: PairingReason,
    request_id: Option<&str>,
    req: &PairingRequest,
    approved_roles: &[String],
    approved_scopes: &[String],
) -> (ErrorShape, String) {
    let message = format!("pairing required: {}", reason.requirement());
    let mut d = Map::new();
    d.insert(
        "code".into(),
        json!(ConnectDetailCode::PairingRequired.as_str()),
    );
    d.insert("reason".into(), json!(reason.as_str()));
    if let Some(id) = request_id {
        d.insert("requestId".into(), json!(id));
    }
    d.insert("remediationHint".into(), json!(reason.remediation()));
    d.insert("deviceId".into(), json!(req.device.device_id));
    d.insert("requestedRole".into(), json!(req.role.as_str()));
    let requested = normalize_list_keep_order(&req.requested_scopes);
    if !requested.is_empty() {
        d.insert("requestedScopes".into(), json!(requested));
    }
    if !approved_roles.is_empty() {
        d.insert("approvedRoles".into(), json!(approved_roles));
    }
    if !approved_scopes.is_empty() {
        d.insert("approvedScopes".into(), json!(approved_scopes));
    }
    let close_reason = match request_id {
        Some(id) => format!("{message} (requestId: {id})"),
        None => message.clone(),
    };
    (
        ErrorShape::new(ErrorCode::NotPaired, message).with_details(Value::Object(d)),
        close_reason,
    )
}

/// SHA-256 of a device token (what the store keeps).
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// 32 random bytes, unpadded base64url (43 chars), as the reference's `generatePairingToken`.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    encode_base64url(&bytes)
}

fn normalize_list_keep_order(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in list {
        let t = s.trim();
        if !t.is_empty() && !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// Union keeping first-seen order (existing first): how approved scope baselines merge.
fn merge_keep_order(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = normalize_list_keep_order(a);
    for s in normalize_list_keep_order(b) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Scopes owned by a device-token role: operator tokens carry `operator.*`, others the rest.
fn role_token_scopes(role: &str, scopes: &[String]) -> Vec<String> {
    normalize_scope_list(scopes)
        .into_iter()
        .filter(|s| (role == "operator") == s.starts_with("operator."))
        .collect()
}

fn metadata(value: Option<&str>) -> String {
    value
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Compares claimed metadata with the pinned record: `(platform mismatch, family mismatch)`.
fn metadata_mismatch(req: &PairingRequest, paired: &PairedDevice) -> (bool, bool) {
    let claimed_platform = metadata(Some(&req.platform));
    let pinned_platform = metadata(paired.platform.as_deref());
    let node_host = req.client_id == ClientId::NodeHost && req.client_mode == ClientMode::Node;
    let platform_mismatch = !pinned_platform.is_empty()
        && claimed_platform != pinned_platform
        && !(node_host
            && runtime_platform_identity(&claimed_platform)
                == runtime_platform_identity(&pinned_platform));
    let pinned_family = metadata(paired.device_family.as_deref());
    let family_mismatch =
        !pinned_family.is_empty() && metadata(req.device_family.as_deref()) != pinned_family;
    (platform_mismatch, family_mismatch)
}

fn is_native_app_ui(req: &PairingRequest) -> bool {
    req.client_mode == ClientMode::Ui
        && matches!(
            req.client_id,
            ClientId::Macos | ClientId::Linux | ClientId::Ios | ClientId::Android
        )
}

fn is_browser_ui(req: &PairingRequest) -> bool {
    matches!(
        req.client_id,
        ClientId::ControlUi | ClientId::WebchatUi | ClientId::Webchat
    ) || req.client_mode == ClientMode::Webchat
}

/// `shouldAllowSilentLocalPairing`.
/// A paired device that connected with no credential at all (auth mode `none`, no device
/// token) cannot be holding a token the gateway could echo, so `hello-ok` carries a new one.
fn reissue_without_credential(req: &PairingRequest) -> bool {
    req.presented_token.is_none() && req.auth_method == AuthMethod::None
}

fn silent_local_allowed(req: &PairingRequest, reason: PairingReason, auto_approve: bool) -> bool {
    if req.locality == Locality::Remote {
        return false;
    }
    if req.has_browser_origin && !is_browser_ui(req) {
        return false;
    }
    if reason == PairingReason::MetadataUpgrade {
        // Only native apps on the gateway host may refresh their pinned metadata silently.
        return !req.has_browser_origin && !is_browser_ui(req) && is_native_app_ui(req);
    }
    if !auto_approve {
        return false;
    }
    if reason == PairingReason::ScopeUpgrade {
        return matches!(
            req.auth_method,
            AuthMethod::None | AuthMethod::Token | AuthMethod::Password
        );
    }
    true
}

/// `gateway.nodes.pairing.autoApproveCidrs`: only a first-time `node` pairing that asks for no
/// scopes, from a listed address, by a non-browser client (the reference's eligibility floor).
/// Upgrades of any kind stay manual.
fn trusted_cidr_allowed(
    req: &PairingRequest,
    reason: PairingReason,
    existing: Option<&PairedDevice>,
    cidrs: &[IpRange],
) -> bool {
    req.role == Role::Node
        && reason == PairingReason::NotPaired
        && existing.is_none()
        && req.requested_scopes.is_empty()
        && !req.has_browser_origin
        && !is_browser_ui(req)
        && req
            .network_ip
            .is_some_and(|ip| cidrs.iter().any(|r| r.contains(ip)))
}

/// Who is calling a `device.*` method (for the approval-time checks of spec §3.3).
#[derive(Debug, Clone)]
pub struct CallerAuthz {
    pub scopes: Vec<String>,
    pub is_admin: bool,
    /// Set for device-token sessions: non-admin callers are limited to their own device.
    pub device_token_device: Option<String>,
    /// The caller's verified device (any auth method); rotated tokens are delivered in band only
    /// to the device itself.
    pub verified_device: Option<String>,
}

impl CallerAuthz {
    fn denies_cross_device(&self, target: &str) -> bool {
        self.device_token_device
            .as_deref()
            .is_some_and(|d| d != target.trim())
            && !self.is_admin
    }
}

/// A `device.*` failure: the error to return.
pub type MethodResult<T> = Result<T, ErrorShape>;

fn store_error(e: StoreError) -> ErrorShape {
    tracing::warn!(error = %e, "device pairing store error");
    ErrorShape::unavailable(format!("device pairing store unavailable: {e}"))
}

/// The public shape of a pending request (`device.pair.list`, `device.pair.requested`).
pub fn pending_json(p: &PendingPairing) -> Value {
    let mut m = Map::new();
    m.insert("requestId".into(), json!(p.request_id));
    m.insert("deviceId".into(), json!(p.device_id));
    m.insert("publicKey".into(), json!(p.public_key));
    let mut opt = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    };
    opt("displayName", &p.display_name);
    opt("platform", &p.platform);
    opt("deviceFamily", &p.device_family);
    opt("clientId", &p.client_id);
    opt("clientMode", &p.client_mode);
    opt("browserOrigin", &p.browser_origin);
    opt("role", &p.role);
    if !p.roles.is_empty() {
        m.insert("roles".into(), json!(p.roles));
    }
    if !p.scopes.is_empty() {
        m.insert("scopes".into(), json!(p.scopes));
    }
    if let Some(ip) = &p.remote_ip {
        m.insert("remoteIp".into(), json!(ip));
    }
    m.insert("silent".into(), json!(p.silent));
    if p.is_repair {
        m.insert("isRepair".into(), json!(true));
    }
    m.insert("ts".into(), json!(p.created_at_ms));
    Value::Object(m)
}

/// The redacted public shape of a paired device (never any token material).
pub fn paired_json(d: &PairedDevice, connected: Option<bool>) -> Value {
    let mut m = Map::new();
    m.insert("deviceId".into(), json!(d.device_id));
    m.insert("publicKey".into(), json!(d.public_key));
    let mut opt = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    };
    opt("displayName", &d.display_name);
    opt("platform", &d.platform);
    opt("deviceFamily", &d.device_family);
    opt("clientId", &d.client_id);
    opt("clientMode", &d.client_mode);
    opt("browserOrigin", &d.browser_origin);
    opt("role", &d.role);
    m.insert("roles".into(), json!(d.roles));
    m.insert("scopes".into(), json!(d.scopes));
    if let Some(ip) = &d.remote_ip {
        m.insert("remoteIp".into(), json!(ip));
    }
    m.insert("approvedVia".into(), json!(d.approved_via));
    if let Some(l) = &d.label {
        m.insert("operatorLabel".into(), json!(l));
    }
    m.insert("createdAtMs".into(), json!(d.created_at_ms));
    m.insert("approvedAtMs".into(), json!(d.approved_at_ms));
    if let Some(t) = d.last_seen_at_ms {
        m.insert("lastSeenAtMs".into(), json!(t));
    }
    if let Some(r) = &d.last_seen_reason {
        m.insert("lastSeenReason".into(), json!(r));
    }
    if let Some(c) = connected {
        m.insert("connected".into(), json!(c));
    }
    if !d.tokens.is_empty() {
        let tokens: Vec<Value> = d
            .tokens
            .iter()
            .map(|t| {
                let mut tm = Map::new();
                tm.insert("role".into(), json!(t.role));
                tm.insert("scopes".into(), json!(t.scopes));
                tm.insert("createdAtMs".into(), json!(t.created_at_ms));
                if let Some(v) = t.rotated_at_ms {
                    tm.insert("rotatedAtMs".into(), json!(v));
                }
                if let Some(v) = t.revoked_at_ms {
                    tm.insert("revokedAtMs".into(), json!(v));
                }
                if let Some(v) = t.last_used_at_ms {
                    tm.insert("lastUsedAtMs".into(), json!(v));
                }
                Value::Object(tm)
            })
            .collect();
        m.insert("tokens".into(), json!(tokens));
    }
    Value::Object(m)
}

/// Result of creating or refreshing a pending request.
struct Requested {
    request: PendingPairing,
    created: bool,
    superseded: Vec<(String, String)>,
}

/// A successful approval.
pub struct Approval {
    pub device: PairedDevice,
}

/// Why an approval was refused (`device.pair.approve` answers with its message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproveRefusal {
    UnknownRequest,
    MissingScope(String),
    ScopeOutsideRoles(String),
}

impl ApproveRefusal {
    pub fn message(&self) -> String {
        match self {
            ApproveRefusal::UnknownRequest => "unknown requestId".into(),
            ApproveRefusal::MissingScope(s) => format!("missing scope: {s}"),
            ApproveRefusal::ScopeOutsideRoles(s) => {
                format!("invalid scope for requested roles: {s}")
            }
        }
    }
}

/// Outcome of checking a presented device token.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub issued_at_ms: u64,
}

/// The device-pairing authority of a gateway.
pub struct PairingService {
    store: Store,
    auto_approve_local: AtomicBool,
    auto_approve_cidrs: parking_lot::RwLock<Vec<IpRange>>,
}

impl std::fmt::Debug for PairingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairingService").finish_non_exhaustive()
    }
}

impl PairingService {
    pub fn new(store: Store, auto_approve_local: bool) -> PairingService {
        PairingService {
            store,
            auto_approve_local: AtomicBool::new(auto_approve_local),
            auto_approve_cidrs: parking_lot::RwLock::new(Vec::new()),
        }
    }

    /// `gateway.nodes.pairing.autoApproveCidrs` (hot-reloadable).
    pub fn set_auto_approve_cidrs(&self, cidrs: Vec<IpRange>) {
        *self.auto_approve_cidrs.write() = cidrs;
    }

    /// `gateway.nodes.pairing.autoApproveLocal` (hot-reloadable).
    pub fn set_auto_approve_local(&self, on: bool) {
        self.auto_approve_local.store(on, Ordering::Release);
    }

    pub fn auto_approve_local(&self) -> bool {
        self.auto_approve_local.load(Ordering::Acquire)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Check `auth.deviceToken` (or the `auth.token` fallback) for (device, role) and the
    /// requested scopes.
    pub async fn verify_device_token(
        &self,
        device_id: &str,
        role: Role,
        token: &str,
        requested_scopes: &[String],
    ) -> Result<VerifiedToken, AuthFailureReason> {
        let device = match self.store.get_device(device_id).await {
            Ok(Some(d)) => d,
            Ok(None) => return Err(AuthFailureReason::DeviceTokenMismatch),
            Err(e) => {
                tracing::warn!(error = %e, "device token check failed");
                return Err(AuthFailureReason::DeviceTokenMismatch);
            }
        };
        let role = role.as_str();
        let Some(record) = device.token(role).filter(|t| t.is_active()) else {
            return Err(AuthFailureReason::DeviceTokenMismatch);
        };
        let presented = token_hash(token);
        let equal: bool =
            subtle::ConstantTimeEq::ct_eq(&presented[..], &record.token_sha256[..]).into();
        if !equal || !device.has_role(role) {
            return Err(AuthFailureReason::DeviceTokenMismatch);
        }
        if !role_scopes_allow(role, &record.scopes, &device.scopes)
            || !role_scopes_allow(role, requested_scopes, &record.scopes)
        {
            return Err(AuthFailureReason::ScopeMismatch);
        }
        let now = util::now_ms() as i64;
        if record
            .last_used_at_ms
            .is_none_or(|t| now - t > LAST_SEEN_DEBOUNCE_MS)
        {
            let (id, role) = (device_id.to_string(), role.to_string());
            let store = self.store.clone();
            // Bookkeeping only: not awaited by the handshake.
            tokio::spawn(async move {
                let _ = store
                    .devices_write(move |tx| {
                        if let Some(d) = tx.device(&id)? {
                            if let Some(t) = d.token(&role) {
                                let mut t = t.clone();
                                t.last_used_at_ms = Some(now);
                                tx.put_token(&t)?;
                            }
                        }
                        Ok(())
                    })
                    .await;
            });
        }
        Ok(VerifiedToken {
            issued_at_ms: record.issued_at_ms() as u64,
        })
    }

    /// Step 9 for a verified device.
    pub async fn authorize(
        &self,
        bus: &EventBus,
        req: &PairingRequest,
    ) -> Result<PairingDecision, ErrorShape> {
        let paired = self
            .store
            .get_device(&req.device.device_id)
            .await
            .map_err(store_error)?;
        let is_paired = paired
            .as_ref()
            .is_some_and(|p| p.public_key == req.device.public_key);
        let role = req.role.as_str();
        let backend_local = req.client_id == ClientId::GatewayClient
            && req.client_mode == ClientMode::Backend
            && req.locality == Locality::DirectLocal
            && !req.has_browser_origin;
        let ui_auth_none = req.client_id == ClientId::ControlUi
            && req.role == Role::Operator
            && req.auth_method == AuthMethod::None;
        let mut platform = req.platform.clone();
        let mut device_family = req.device_family.clone();

        if backend_local || ui_auth_none {
            // Local backends and the Control UI without auth skip pairing altogether.
            if is_paired {
                self.touch(req, false).await;
            }
        } else if !is_paired {
            if let Some(required) = self
                .require_pairing(bus, req, PairingReason::NotPaired, paired.as_ref())
                .await?
            {
                return Ok(required);
            }
        } else if let Some(p) = paired.as_ref() {
            let (platform_mismatch, family_mismatch) = metadata_mismatch(req, p);
            if platform_mismatch || family_mismatch {
                tracing::warn!(
                    device = %req.device.device_id,
                    claimed_platform = %req.platform,
                    pinned_platform = p.platform.as_deref().unwrap_or("<none>"),
                    "security audit: device metadata upgrade requested"
                );
                if let Some(required) = self
                    .require_pairing(bus, req, PairingReason::MetadataUpgrade, Some(p))
                    .await?
                {
                    return Ok(required);
                }
            } else {
                if let Some(pinned) = &p.platform {
                    platform = pinned.clone();
                }
                if p.device_family.is_some() {
                    device_family = p.device_family.clone();
                }
            }
            if !p.has_role(role) {
                tracing::warn!(device = %req.device.device_id, role, "security audit: device role upgrade requested");
                if let Some(required) = self
                    .require_pairing(bus, req, PairingReason::RoleUpgrade, Some(p))
                    .await?
                {
                    return Ok(required);
                }
            }
            let requested = normalize_list_keep_order(&req.requested_scopes);
            if !requested.is_empty()
                && (p.scopes.is_empty() || !role_scopes_allow(role, &requested, &p.scopes))
            {
                tracing::warn!(device = %req.device.device_id, scopes = ?requested, "security audit: device scope upgrade requested");
                if let Some(required) = self
                    .require_pairing(bus, req, PairingReason::ScopeUpgrade, Some(p))
                    .await?
                {
                    return Ok(required);
                }
            }
            self.touch(req, true).await;
        }

        let device_token = self.ensure_token(req).await?;
        Ok(PairingDecision::Approved {
            scopes: req.requested_scopes.clone(),
            device_token,
            platform,
            device_family,
        })
    }

    /// Record `lastSeen*` and the client's reported metadata (debounced, not awaited).
    async fn touch(&self, req: &PairingRequest, _paired: bool) {
        let id = req.device.device_id.clone();
        let display_name = req.display_name.clone();
        let remote_ip = req.remote_ip.clone();
        let now = util::now_ms() as i64;
        let store = self.store.clone();
        tokio::spawn(async move {
            let _ = store
                .devices_write(move |tx| {
                    let Some(mut d) = tx.device(&id)? else {
                        return Ok(());
                    };
                    let stale = d
                        .last_seen_at_ms
                        .is_none_or(|t| now - t > LAST_SEEN_DEBOUNCE_MS);
                    let changed = d.remote_ip.as_deref() != Some(remote_ip.as_str())
                        || (display_name.is_some() && d.display_name != display_name);
                    if stale || changed {
                        d.last_seen_at_ms = Some(now);
                        d.last_seen_reason = Some("connect".into());
                        d.remote_ip = Some(remote_ip);
                        if display_name.is_some() {
                            d.display_name = display_name;
                        }
                        tx.put_device(&d)?;
                    }
                    Ok(())
                })
                .await;
        });
    }

    /// The token for `hello-ok`: echo a presented one, issue one when needed, else none.
    async fn ensure_token(
        &self,
        req: &PairingRequest,
    ) -> Result<Option<IssuedDeviceToken>, ErrorShape> {
        let role = req.role.as_str().to_string();
        let id = req.device.device_id.clone();
        let requested = role_token_scopes(&role, &req.requested_scopes);
        let reissue = reissue_without_credential(req);
        if let Some(token) = &req.presented_token {
            let device = self.store.get_device(&id).await.map_err(store_error)?;
            if let Some(t) = device.as_ref().and_then(|d| d.token(&role)) {
                if t.is_active() && t.token_sha256 == token_hash(token) {
                    return Ok(Some(IssuedDeviceToken {
                        token: token.clone(),
                        issued_at_ms: t.issued_at_ms() as u64,
                    }));
                }
            }
        }
        let fresh = generate_token();
        let hash = token_hash(&fresh);
        let now = util::now_ms() as i64;
        let issued = self
            .store
            .devices_write(move |tx| {
                let Some(device) = tx.device(&id)? else {
                    return Ok(None);
                };
                if !device.has_role(&role) || !role_scopes_allow(&role, &requested, &device.scopes)
                {
                    return Ok(None);
                }
                let existing = device.token(&role).cloned();
                if let Some(t) = existing.as_ref().filter(|_| !reissue) {
                    if t.is_active()
                        && role_scopes_allow(&role, &t.scopes, &device.scopes)
                        && role_scopes_allow(&role, &requested, &t.scopes)
                    {
                        // Valid and sufficient: the client already holds it (hash-only store).
                        return Ok(None);
                    }
                }
                let record = DeviceTokenRecord {
                    device_id: id.clone(),
                    role: role.clone(),
                    token_sha256: hash,
                    scopes: requested.clone(),
                    created_at_ms: existing.as_ref().map_or(now, |t| t.created_at_ms),
                    rotated_at_ms: existing.as_ref().map(|_| now),
                    revoked_at_ms: None,
                    last_used_at_ms: existing.as_ref().and_then(|t| t.last_used_at_ms),
                };
                tx.put_token(&record)?;
                Ok(Some(record.issued_at_ms()))
            })
            .await
            .map_err(store_error)?;
        Ok(issued.map(|at| IssuedDeviceToken {
            token: fresh,
            issued_at_ms: at as u64,
        }))
    }

    /// Create/refresh the pending request; approve it inline when silent approval applies.
    /// Returns `Some(Required)` when the connect must fail.
    async fn require_pairing(
        &self,
        bus: &EventBus,
        req: &PairingRequest,
        reason: PairingReason,
        existing: Option<&PairedDevice>,
    ) -> Result<Option<PairingDecision>, ErrorShape> {
        let role = req.role.as_str();
        let local = !(existing.is_some() && req.role != Role::Operator)
            && silent_local_allowed(req, reason, self.auto_approve_local());
        let by_cidr =
            !local && trusted_cidr_allowed(req, reason, existing, &self.auto_approve_cidrs.read());
        let silent = local || by_cidr;
        let via = if by_cidr { "trusted-cidr" } else { "silent" };
        let now = util::now_ms() as i64;
        let incoming = PendingPairing {
            request_id: uuid::Uuid::new_v4().to_string(),
            device_id: req.device.device_id.clone(),
            public_key: req.device.public_key.clone(),
            display_name: req.display_name.clone(),
            platform: Some(req.platform.clone()),
            device_family: req.device_family.clone(),
            client_id: Some(req.client_id.as_str().to_string()),
            client_mode: Some(req.client_mode.as_str().to_string()),
            browser_origin: None,
            role: Some(role.to_string()),
            roles: vec![role.to_string()],
            scopes: normalize_list_keep_order(&req.requested_scopes),
            remote_ip: Some(req.remote_ip.clone()),
            silent,
            is_repair: false,
            reason: Some(reason.as_str().to_string()),
            created_at_ms: now,
            refreshed_at_ms: None,
            expires_at_ms: now + PENDING_TTL_MS as i64,
        };
        let requested = self
            .store
            .devices_write(move |tx| request_in_tx(tx, incoming, now))
            .await
            .map_err(store_error)?;
        let ts = util::now_ms();
        for (request_id, device_id) in &requested.superseded {
            bus.publish(
                "device.pair.resolved",
                &json!({"requestId": request_id, "deviceId": device_id, "decision": "rejected", "ts": ts}),
                PublishOpts::droppable(),
            );
        }
        let request_id = requested.request.request_id.clone();
        if silent {
            let mut caller_scopes = normalize_list_keep_order(&req.requested_scopes);
            if let Some(e) = existing {
                caller_scopes = merge_keep_order(&caller_scopes, &e.scopes);
            }
            let id = request_id.clone();
            let meta = (req.remote_ip.clone(), req.display_name.clone());
            let approved = self
                .store
                .devices_write(move |tx| {
                    approve_in_tx(tx, &id, Some(&caller_scopes), via, Some(meta), now)
                })
                .await
                .map_err(store_error)?;
            match approved {
                Ok(a) => {
                    tracing::info!(device = %a.device.device_id, role, via, "device pairing auto-approved");
                    bus.publish(
                        "device.pair.resolved",
                        &json!({"requestId": request_id, "deviceId": a.device.device_id, "decision": "approved", "ts": util::now_ms()}),
                        PublishOpts::droppable(),
                    );
                    return Ok(None);
                }
                Err(refusal) => {
                    tracing::info!(device = %req.device.device_id, reason = %refusal.message(), "silent pairing not possible");
                    bus.publish(
                        "device.pair.requested",
                        &pending_json(&requested.request),
                        PublishOpts::droppable(),
                    );
                }
            }
        } else if requested.created {
            bus.publish(
                "device.pair.requested",
                &pending_json(&requested.request),
                PublishOpts::droppable(),
            );
        }
        let expose = existing.filter(|e| e.public_key == req.device.public_key);
        Ok(Some(PairingDecision::Required {
            reason,
            request_id: Some(request_id),
            approved_roles: expose.map(|e| e.roles.clone()).unwrap_or_default(),
            approved_scopes: expose
                .map(|e| normalize_scope_list(&e.scopes))
                .unwrap_or_default(),
        }))
    }

    // ---- device.* methods ------------------------------------------------------------

    /// `device.pair.list`: pending (unexpired) and paired devices, redacted; `connected` says
    /// whether a device currently has a socket.
    pub async fn list(
        &self,
        caller: &CallerAuthz,
        connected: impl Fn(&str) -> bool,
    ) -> MethodResult<Value> {
        let now = util::now_ms() as i64;
        let pending = self
            .store
            .list_pending_pairings(now)
            .await
            .map_err(store_error)?;
        let paired = self.store.list_devices().await.map_err(store_error)?;
        let only = caller
            .device_token_device
            .as_deref()
            .filter(|_| !caller.is_admin);
        let pending: Vec<Value> = pending
            .iter()
            .filter(|p| only.is_none_or(|d| p.device_id == d))
            .map(pending_json)
            .collect();
        let paired: Vec<Value> = paired
            .iter()
            .filter(|d| only.is_none_or(|o| d.device_id == o))
            .map(|d| paired_json(d, Some(connected(&d.device_id))))
            .collect();
        Ok(json!({"pending": pending, "paired": paired}))
    }

    /// `device.pair.approve`.
    pub async fn approve(
        &self,
        bus: &EventBus,
        caller: &CallerAuthz,
        request_id: &str,
    ) -> MethodResult<Value> {
        const DENIED: &str = "device pairing approval denied";
        let request_id = request_id.trim().to_string();
        let now = util::now_ms() as i64;
        if !caller.is_admin {
            let pending = self
                .store
                .get_pending_pairing(&request_id, now)
                .await
                .map_err(store_error)?;
            let Some(pending) = pending else {
                return Err(ErrorShape::invalid_request(DENIED));
            };
            if caller.denies_cross_device(&pending.device_id) {
                tracing::warn!(request = %request_id, "device pairing approval denied: device-ownership-mismatch");
                return Err(ErrorShape::invalid_request(DENIED));
            }
            let non_operator = pending.roles.iter().any(|r| r != "operator")
                || pending.role.as_deref().is_some_and(|r| r != "operator");
            if non_operator {
                tracing::warn!(request = %request_id, "device pairing approval denied: role-management-requires-admin");
                return Err(ErrorShape::invalid_request(DENIED));
            }
        }
        let scopes = caller.scopes.clone();
        let id = request_id.clone();
        let approved = self
            .store
            .devices_write(move |tx| approve_in_tx(tx, &id, Some(&scopes), "owner", None, now))
            .await
            .map_err(store_error)?;
        match approved {
            Ok(a) => {
                tracing::info!(device = %a.device.device_id, "device pairing approved");
                bus.publish(
                    "device.pair.resolved",
                    &json!({"requestId": request_id, "deviceId": a.device.device_id, "decision": "approved", "ts": util::now_ms()}),
                    PublishOpts::droppable(),
                );
                Ok(json!({"requestId": request_id, "device": paired_json(&a.device, None)}))
            }
            Err(refusal) => Err(ErrorShape::invalid_request(refusal.message())),
        }
    }

    /// `device.pair.reject`.
    pub async fn reject(
        &self,
        bus: &EventBus,
        caller: &CallerAuthz,
        request_id: &str,
    ) -> MethodResult<Value> {
        const DENIED: &str = "device pairing rejection denied";
        let request_id = request_id.trim().to_string();
        let now = util::now_ms() as i64;
        if caller.device_token_device.is_some() && !caller.is_admin {
            let pending = self
                .store
                .get_pending_pairing(&request_id, now)
                .await
                .map_err(store_error)?;
            match pending {
                Some(p) if !caller.denies_cross_device(&p.device_id) => {}
                _ => return Err(ErrorShape::invalid_request(DENIED)),
            }
        }
        let id = request_id.clone();
        let rejected = self
            .store
            .devices_write(move |tx| {
                let Some(p) = tx.pending_request(&id, now)? else {
                    return Ok(None);
                };
                tx.delete_pending(&id)?;
                Ok(Some(p.device_id))
            })
            .await
            .map_err(store_error)?;
        let Some(device_id) = rejected else {
            return Err(ErrorShape::invalid_request("unknown requestId"));
        };
        bus.publish(
            "device.pair.resolved",
            &json!({"requestId": request_id, "deviceId": device_id, "decision": "rejected", "ts": util::now_ms()}),
            PublishOpts::droppable(),
        );
        Ok(json!({"requestId": request_id, "deviceId": device_id}))
    }

    fn management_denied(
        &self,
        caller: &CallerAuthz,
        target: &str,
        paired: Option<&PairedDevice>,
    ) -> bool {
        if caller.denies_cross_device(target) {
            return true;
        }
        caller.device_token_device.is_some()
            && !caller.is_admin
            && paired.is_some_and(|p| {
                p.roles.iter().any(|r| r != "operator")
                    || p.tokens.iter().any(|t| t.role != "operator")
            })
    }

    /// `device.pair.remove`: the device, its tokens and its pending requests go; the caller
    /// closes its sockets.
    pub async fn remove(&self, caller: &CallerAuthz, device_id: &str) -> MethodResult<Value> {
        const DENIED: &str = "device pairing removal denied";
        let id = device_id.trim().to_string();
        let paired = self.store.get_device(&id).await.map_err(store_error)?;
        if self.management_denied(caller, &id, paired.as_ref()) {
            return Err(ErrorShape::invalid_request(DENIED));
        }
        let key = id.clone();
        let removed = self
            .store
            .devices_write(move |tx| tx.delete_device(&key))
            .await
            .map_err(store_error)?;
        if !removed {
            return Err(ErrorShape::invalid_request("unknown deviceId"));
        }
        tracing::info!(device = %id, "device pairing removed");
        Ok(json!({"deviceId": id}))
    }

    /// `device.pair.rename`.
    pub async fn rename(
        &self,
        bus: &EventBus,
        caller: &CallerAuthz,
        device_id: &str,
        label: &str,
    ) -> MethodResult<Value> {
        const DENIED: &str = "device pairing rename denied";
        let label = label.trim().to_string();
        if label.is_empty() {
            return Err(ErrorShape::invalid_request("label required"));
        }
        let id = device_id.trim().to_string();
        let paired = self.store.get_device(&id).await.map_err(store_error)?;
        if self.management_denied(caller, &id, paired.as_ref()) {
            return Err(ErrorShape::invalid_request(DENIED));
        }
        let (key, l) = (id.clone(), label.clone());
        let renamed = self
            .store
            .devices_write(move |tx| {
                let Some(mut d) = tx.device(&key)? else {
                    return Ok(false);
                };
                d.label = Some(l);
                tx.put_device(&d)?;
                Ok(true)
            })
            .await
            .map_err(store_error)?;
        if !renamed {
            return Err(ErrorShape::invalid_request("unknown deviceId"));
        }
        bus.publish("device.pair.changed", &json!({}), PublishOpts::droppable());
        Ok(json!({"deviceId": device_id, "label": label}))
    }

    /// `device.token.rotate`: a new token for (device, role) within the approved baseline; the
    /// old one stops working. Returns `(result, role)`; the caller closes the device's sockets.
    pub async fn rotate(
        &self,
        caller: &CallerAuthz,
        device_id: &str,
        role: &str,
        scopes: Option<Vec<String>>,
    ) -> MethodResult<(Value, String)> {
        const DENIED: &str = "device token rotation denied";
        let id = device_id.trim().to_string();
        let role = role.trim().to_string();
        if caller.denies_cross_device(&id) || (!caller.is_admin && role != "operator") {
            tracing::warn!(device = %id, role, "device token rotation denied");
            return Err(ErrorShape::invalid_request(DENIED));
        }
        let caller_scopes = (role == "operator").then(|| caller.scopes.clone());
        let fresh = generate_token();
        let hash = token_hash(&fresh);
        let now = util::now_ms() as i64;
        let (key, r) = (id.clone(), role.clone());
        let rotated = self
            .store
            .devices_write(move |tx| {
                let Some(device) = tx.device(&key)? else {
                    return Ok(Err("unknown-device-or-role".to_string()));
                };
                if !device.has_role(&r) {
                    return Ok(Err("unknown-device-or-role".to_string()));
                }
                let existing = device.token(&r).cloned();
                let requested = normalize_scope_list(
                    &scopes
                        .or_else(|| existing.as_ref().map(|t| t.scopes.clone()))
                        .unwrap_or_else(|| role_token_scopes(&r, &device.scopes)),
                );
                if !role_scopes_allow(&r, &requested, &device.scopes) {
                    return Ok(Err("scope-outside-approved-baseline".to_string()));
                }
                if let Some(cs) = &caller_scopes {
                    if let Some(missing) = missing_requested_scope(&r, &requested, cs) {
                        return Ok(Err(format!("caller-missing-scope {missing}")));
                    }
                }
                let record = DeviceTokenRecord {
                    device_id: key.clone(),
                    role: r.clone(),
                    token_sha256: hash,
                    scopes: requested,
                    created_at_ms: existing.as_ref().map_or(now, |t| t.created_at_ms),
                    rotated_at_ms: Some(now),
                    revoked_at_ms: None,
                    last_used_at_ms: existing.as_ref().and_then(|t| t.last_used_at_ms),
                };
                tx.put_token(&record)?;
                Ok(Ok(record))
            })
            .await
            .map_err(store_error)?;
        let record = rotated.map_err(|why| {
            tracing::warn!(device = %id, role, reason = %why, "device token rotation denied");
            ErrorShape::invalid_request(DENIED)
        })?;
        tracing::info!(device = %id, role, "device token rotated");
        let in_band = caller.verified_device.as_deref() == Some(id.as_str());
        let mut out = Map::new();
        out.insert("deviceId".into(), json!(device_id));
        out.insert("role".into(), json!(record.role));
        if in_band {
            out.insert("token".into(), json!(fresh));
        }
        out.insert("scopes".into(), json!(record.scopes));
        out.insert("rotatedAtMs".into(), json!(record.issued_at_ms()));
        out.insert(
            "tokenDelivery".into(),
            json!(if in_band {
                "in-band"
            } else {
                "withheld-cross-device"
            }),
        );
        Ok((Value::Object(out), record.role))
    }

    /// `device.token.revoke`: the token of (device, role) stops working (kept as revoked).
    pub async fn revoke(
        &self,
        caller: &CallerAuthz,
        device_id: &str,
        role: &str,
    ) -> MethodResult<(Value, String)> {
        const DENIED: &str = "device token revocation denied";
        let id = device_id.trim().to_string();
        let role = role.trim().to_string();
        if caller.denies_cross_device(&id) || (!caller.is_admin && role != "operator") {
            return Err(ErrorShape::invalid_request(DENIED));
        }
        let caller_scopes = (role == "operator").then(|| caller.scopes.clone());
        let now = util::now_ms() as i64;
        let (key, r) = (id.clone(), role.clone());
        let revoked = self
            .store
            .devices_write(move |tx| {
                let Some(device) = tx.device(&key)? else {
                    return Ok(Err("unknown-device-or-role".to_string()));
                };
                let Some(mut t) = device.token(&r).cloned().filter(|_| device.has_role(&r)) else {
                    return Ok(Err("unknown-device-or-role".to_string()));
                };
                if let Some(cs) = &caller_scopes {
                    if let Some(missing) = missing_requested_scope(&r, &t.scopes, cs) {
                        return Ok(Err(format!("caller-missing-scope {missing}")));
                    }
                }
                t.revoked_at_ms = Some(now);
                tx.put_token(&t)?;
                Ok(Ok(t))
            })
            .await
            .map_err(store_error)?;
        let t = revoked.map_err(|why| {
            tracing::warn!(device = %id, role, reason = %why, "device token revocation denied");
            ErrorShape::invalid_request(DENIED)
        })?;
        tracing::info!(device = %id, role, "device token revoked");
        Ok((
            json!({"deviceId": id, "role": t.role, "revokedAtMs": t.revoked_at_ms.unwrap_or(now)}),
            t.role,
        ))
    }
}

/// `requestDevicePairing` inside one transaction: refresh the device's single pending request
/// when it already covers this one, else replace every pending request of the device with one
/// merged request (the replaced ones are reported as superseded).
fn request_in_tx(
    tx: &mut pincer_store::DevicesTx<'_>,
    incoming: PendingPairing,
    now: i64,
) -> pincer_store::Result<Requested> {
    tx.prune_expired(now)?;
    let is_repair = tx.device(&incoming.device_id)?.is_some();
    let mut existing: Vec<PendingPairing> = tx
        .pending(now)?
        .into_iter()
        .filter(|p| p.device_id == incoming.device_id)
        .collect();
    existing.sort_by_key(|p| std::cmp::Reverse(p.created_at_ms));
    if existing.len() == 1 {
        let e = &existing[0];
        let role = incoming.role.clone().unwrap_or_default();
        let covered = e.public_key == incoming.public_key
            && e.role == incoming.role
            && incoming.roles.iter().all(|r| e.roles.contains(r))
            && incoming.scopes.iter().all(|s| {
                incoming
                    .roles
                    .iter()
                    .chain(std::iter::once(&role))
                    .any(|r| role_scopes_allow(r, std::slice::from_ref(s), &e.scopes))
            });
        if covered {
            let mut refreshed = e.clone();
            refreshed.display_name = incoming.display_name.or(refreshed.display_name);
            refreshed.platform = incoming.platform.or(refreshed.platform);
            refreshed.device_family = incoming.device_family.or(refreshed.device_family);
            refreshed.client_id = incoming.client_id.or(refreshed.client_id);
            refreshed.client_mode = incoming.client_mode.or(refreshed.client_mode);
            refreshed.remote_ip = incoming.remote_ip.or(refreshed.remote_ip);
            refreshed.silent = refreshed.silent && incoming.silent;
            refreshed.is_repair = refreshed.is_repair || is_repair;
            refreshed.refreshed_at_ms = Some(now);
            refreshed.expires_at_ms = now + PENDING_TTL_MS as i64;
            tx.put_pending(&refreshed)?;
            return Ok(Requested {
                request: refreshed,
                created: false,
                superseded: Vec::new(),
            });
        }
    }
    let mut request = incoming;
    for e in &existing {
        request.roles = merge_keep_order(&e.roles, &request.roles);
        request.scopes = merge_keep_order(&e.scopes, &request.scopes);
        tx.delete_pending(&e.request_id)?;
    }
    if !existing.is_empty() {
        request.silent = request.silent && existing.iter().all(|e| e.silent);
    }
    request.is_repair = is_repair;
    tx.put_pending(&request)?;
    Ok(Requested {
        superseded: existing
            .into_iter()
            .map(|e| (e.request_id, e.device_id))
            .collect(),
        request,
        created: true,
    })
}

/// `approveDevicePairing` inside one transaction. Tokens are not minted here (the store keeps
/// only hashes, so a token minted now could never be delivered): the device receives one on
/// its next connect. An existing token's grant follows the newly approved scopes.
fn approve_in_tx(
    tx: &mut pincer_store::DevicesTx<'_>,
    request_id: &str,
    caller_scopes: Option<&[String]>,
    approved_via: &str,
    access: Option<(String, Option<String>)>,
    now: i64,
) -> pincer_store::Result<Result<Approval, ApproveRefusal>> {
    let Some(pending) = tx.pending_request(request_id, now)? else {
        return Ok(Err(ApproveRefusal::UnknownRequest));
    };
    let existing = tx.device(&pending.device_id)?;
    let mut requested_roles = normalize_list_keep_order(&pending.roles);
    if let Some(r) = &pending.role {
        if !requested_roles.contains(r) {
            requested_roles.push(r.clone());
        }
    }
    let requested_scopes = normalize_scope_list(&pending.scopes);
    if let Some(bad) = requested_scopes.iter().find(|s| {
        !requested_roles
            .iter()
            .any(|r| s.starts_with(&format!("{r}.")))
    }) {
        return Ok(Err(ApproveRefusal::ScopeOutsideRoles(bad.clone())));
    }
    let existing_roles = existing
        .as_ref()
        .map(|e| e.roles.clone())
        .unwrap_or_default();
    let roles = merge_keep_order(&existing_roles, &requested_roles);
    let existing_scopes = existing
        .as_ref()
        .map(|e| e.scopes.clone())
        .unwrap_or_default();
    let approved_scopes = merge_keep_order(&existing_scopes, &pending.scopes);
    let mut token_updates = Vec::new();
    for role in &requested_roles {
        let existing_token = existing.as_ref().and_then(|e| e.token(role)).cloned();
        let pending_role_scopes = role_token_scopes(role, &pending.scopes);
        let next = if !pending_role_scopes.is_empty() {
            match &existing_token {
                Some(t) => normalize_scope_list(&merge_keep_order(&t.scopes, &pending_role_scopes)),
                None => pending_role_scopes.clone(),
            }
        } else {
            existing_token
                .as_ref()
                .map(|t| t.scopes.clone())
                .unwrap_or_else(|| role_token_scopes(role, &approved_scopes))
        };
        if role == "operator" && !next.is_empty() {
            let needed = normalize_scope_list(&merge_keep_order(&pending_role_scopes, &next));
            let Some(caller) = caller_scopes else {
                return Ok(Err(ApproveRefusal::MissingScope(
                    needed.first().cloned().unwrap_or_default(),
                )));
            };
            if let Some(missing) = missing_requested_scope("operator", &needed, caller) {
                return Ok(Err(ApproveRefusal::MissingScope(missing.to_string())));
            }
        }
        if let Some(mut t) = existing_token {
            t.scopes = next;
            token_updates.push(t);
        }
    }
    let (remote_ip, display_name) = match access {
        Some((ip, name)) => (Some(ip), name.or(pending.display_name.clone())),
        None => (pending.remote_ip.clone(), pending.display_name.clone()),
    };
    let approved_via = match existing.as_ref().map(|e| e.approved_via.as_str()) {
        Some("owner") | Some("bootstrap") if approved_via != "owner" => existing
            .as_ref()
            .map(|e| e.approved_via.clone())
            .unwrap_or_default(),
        _ => approved_via.to_string(),
    };
    let device = PairedDevice {
        device_id: pending.device_id.clone(),
        public_key: pending.public_key.clone(),
        display_name,
        label: existing.as_ref().and_then(|e| e.label.clone()),
        platform: pending.platform.clone(),
        device_family: pending.device_family.clone(),
        client_id: pending.client_id.clone(),
        client_mode: pending.client_mode.clone(),
        browser_origin: pending.browser_origin.clone(),
        remote_ip,
        role: pending.role.clone(),
        roles,
        scopes: approved_scopes,
        approved_via,
        created_at_ms: existing.as_ref().map_or(now, |e| e.created_at_ms),
        approved_at_ms: now,
        last_seen_at_ms: Some(now),
        last_seen_reason: existing.as_ref().and_then(|e| e.last_seen_reason.clone()),
        tokens: Vec::new(),
    };
    // A new key under the same id (cannot happen with honest ids) invalidates old tokens.
    let key_changed = existing
        .as_ref()
        .is_some_and(|e| e.public_key != device.public_key);
    if key_changed {
        tx.delete_device(&device.device_id)?;
        token_updates.clear();
    }
    tx.put_device(&device)?;
    for t in &token_updates {
        tx.put_token(t)?;
    }
    tx.delete_pending(request_id)?;
    let device = tx.device(&device.device_id)?.unwrap_or(device);
    Ok(Ok(Approval { device }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use pincer_protocol::device_auth::SignatureVersion;

    fn request(locality: Locality) -> PairingRequest {
        PairingRequest {
            device: VerifiedDevice {
                device_id: "d".into(),
                public_key: "k".into(),
                signature_version: SignatureVersion::V3,
            },
            role: Role::Operator,
            requested_scopes: vec!["operator.read".into()],
            client_id: ClientId::Cli,
            client_mode: ClientMode::Cli,
            display_name: None,
            platform: "linux".into(),
            device_family: None,
            locality,
            has_browser_origin: false,
            auth_method: AuthMethod::Token,
            remote_ip: "127.0.0.1".into(),
            network_ip: None,
            presented_token: None,
        }
    }

    #[test]
    fn trusted_cidr_approves_only_first_time_scopeless_nodes_from_listed_addresses() {
        let cidrs = vec![IpRange::parse("192.168.1.0/24").unwrap_or(IpRange {
            addr: std::net::IpAddr::from([255, 255, 255, 255]),
            prefix: 32,
        })];
        let mut node = request(Locality::Remote);
        node.role = Role::Node;
        node.requested_scopes.clear();
        node.client_id = ClientId::NodeHost;
        node.client_mode = ClientMode::Node;
        node.network_ip = "192.168.1.40".parse().ok();
        let ok = |r: &PairingRequest, reason| trusted_cidr_allowed(r, reason, None, &cidrs);
        assert!(ok(&node, PairingReason::NotPaired));
        assert!(!ok(&node, PairingReason::RoleUpgrade));
        assert!(!trusted_cidr_allowed(
            &node,
            PairingReason::NotPaired,
            None,
            &[]
        ));
        let mut outside = node.clone();
        outside.network_ip = "192.168.2.40".parse().ok();
        assert!(!ok(&outside, PairingReason::NotPaired));
        let mut unknown = node.clone();
        unknown.network_ip = None;
        assert!(!ok(&unknown, PairingReason::NotPaired));
        let mut operator = node.clone();
        operator.role = Role::Operator;
        assert!(!ok(&operator, PairingReason::NotPaired));
        let mut scoped = node.clone();
        scoped.requested_scopes = vec!["operator.read".into()];
        assert!(!ok(&scoped, PairingReason::NotPaired));
        let mut browser = node.clone();
        browser.has_browser_origin = true;
        assert!(!ok(&browser, PairingReason::NotPaired));
    }

    #[test]
    fn pairing_required_error_matches_the_reference_shape() {
        let remote = request(Locality::Remote);
        let (err, close) =
            pairing_required_error(PairingReason::NotPaired, Some("r1"), &remote, &[], &[]);
        assert_eq!(err.code, ErrorCode::NotPaired);
        assert_eq!(err.message, "pairing required: device is not approved yet");
        assert_eq!(
            close,
            "pairing required: device is not approved yet (requestId: r1)"
        );
        let d = err.details.unwrap_or_default();
        let mut keys: Vec<&str> = d
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        assert_eq!(
            keys,
            vec![
                "code",
                "deviceId",
                "reason",
                "remediationHint",
                "requestId",
                "requestedRole",
                "requestedScopes"
            ]
        );
        assert_eq!(d["code"], "PAIRING_REQUIRED");
    }

    #[test]
    fn silent_local_pairing_rules() {
        let local = request(Locality::DirectLocal);
        assert!(silent_local_allowed(&local, PairingReason::NotPaired, true));
        assert!(!silent_local_allowed(
            &local,
            PairingReason::NotPaired,
            false
        ));
        assert!(!silent_local_allowed(
            &request(Locality::Remote),
            PairingReason::NotPaired,
            true
        ));
        let mut browser = local.clone();
        browser.has_browser_origin = true;
        assert!(!silent_local_allowed(
            &browser,
            PairingReason::NotPaired,
            true
        ));
        browser.client_id = ClientId::ControlUi;
        assert!(silent_local_allowed(
            &browser,
            PairingReason::NotPaired,
            true
        ));
        // Scope upgrades with a device token are never silent; metadata upgrades of the CLI neither.
        let mut dt = local.clone();
        dt.auth_method = AuthMethod::DeviceToken;
        assert!(!silent_local_allowed(
            &dt,
            PairingReason::ScopeUpgrade,
            true
        ));
        assert!(silent_local_allowed(
            &local,
            PairingReason::ScopeUpgrade,
            true
        ));
        assert!(!silent_local_allowed(
            &local,
            PairingReason::MetadataUpgrade,
            true
        ));
    }

    fn issued(decision: PairingDecision) -> Option<String> {
        match decision {
            PairingDecision::Approved { device_token, .. } => device_token.map(|t| t.token),
            PairingDecision::Required { reason, .. } => panic!("pairing required: {reason:?}"),
        }
    }

    /// Hash-only storage cannot echo a token, so a device that shows no credential at all gets
    /// a replacement; one that used the shared secret keeps its stored token; one that
    /// presents its token has it echoed.
    #[tokio::test]
    async fn a_paired_device_without_any_credential_gets_a_replacement_token() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open_in_state_dir(dir.path(), pincer_store::StoreOptions::default()).unwrap();
        let service = PairingService::new(store, true);
        let bus = EventBus::new(std::sync::Arc::new(crate::registry::Registry::default()));
        let mut req = request(Locality::DirectLocal);
        req.auth_method = AuthMethod::None;

        // First contact: paired silently, first token.
        let first = issued(service.authorize(&bus, &req).await.unwrap()).unwrap();
        // No credential again: the first token is replaced.
        let second = issued(service.authorize(&bus, &req).await.unwrap()).unwrap();
        assert_ne!(first, second);
        let read = ["operator.read".to_string()];
        assert!(service
            .verify_device_token("d", Role::Operator, &first, &read)
            .await
            .is_err());
        assert!(service
            .verify_device_token("d", Role::Operator, &second, &read)
            .await
            .is_ok());
        // Presenting it: echoed, not rotated.
        req.presented_token = Some(second.clone());
        assert_eq!(
            issued(service.authorize(&bus, &req).await.unwrap()).as_deref(),
            Some(second.as_str())
        );
        // The shared secret: nothing handed out, the stored token stays valid.
        req.presented_token = None;
        req.auth_method = AuthMethod::Token;
        assert_eq!(issued(service.authorize(&bus, &req).await.unwrap()), None);
        assert!(service
            .verify_device_token("d", Role::Operator, &second, &read)
            .await
            .is_ok());
    }

    #[test]
    fn tokens_are_random_base64url_and_hashed() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&format!(" {a} ")));
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn scope_helpers() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            merge_keep_order(
                &s(&["operator.read", "operator.admin"]),
                &s(&["operator.write", "operator.read"])
            ),
            s(&["operator.read", "operator.admin", "operator.write"])
        );
        assert_eq!(
            role_token_scopes(
                "operator",
                &s(&["operator.write", "node.x", "operator.admin"])
            ),
            s(&["operator.admin", "operator.write"])
        );
        assert_eq!(
            role_token_scopes("node", &s(&["operator.write", "node.x"])),
            s(&["node.x"])
        );
    }
}
