//! The second pairing layer: command-surface approval (spec §4.6 "Node capability approval").
//!
//! Device pairing (role `node`, [`crate::pairing`]) decides whether a device may connect as a
//! node. Then, at every node connect, the declared caps/commands/permissions — filtered by the
//! platform allowlist ([`super::policy`]) — are compared with the approved surface in SQLite:
//! a new node, or one that declares more than was approved, gets a pending surface request
//! (`node.pair.requested`, scope `operator.pairing`); until `node.pair.approve` only the
//! approved part is in effect (nothing for a new node). Approval needs the scopes the request
//! names (`requiredApproveScopes`: `operator.admin` for shell-class commands).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use pincer_protocol::connect::ConnectParams;
use pincer_protocol::errors::{ErrorCode, ErrorShape};
use pincer_store::{NodeMeta, NodePairingRequest, NodePermissions, NodeSurface, StoreError};
use serde_json::{json, Map, Value};

use super::policy::{self, CommandConfig, NodeFacts};
use super::{Effective, NodeConnect, NodeSession};
use crate::events::PublishOpts;
use crate::pairing::CallerAuthz;
use crate::state::GatewayState;
use crate::util;

fn store_error(e: StoreError) -> ErrorShape {
    tracing::warn!(error = %e, "node pairing store error");
    ErrorShape::unavailable(format!("node pairing store unavailable: {e}"))
}

/// `gateway.nodes.commands` of the config in force (owned, for use across awaits).
pub fn command_config(state: &GatewayState) -> (Vec<String>, Vec<String>) {
    let loaded = state.config.get();
    let cmds = &loaded.config.gateway.nodes.commands;
    (
        cmds.as_ref()
            .and_then(|c| c.allow.clone())
            .unwrap_or_default(),
        cmds.as_ref()
            .and_then(|c| c.deny.clone())
            .unwrap_or_default(),
    )
}

/// Permission toggles with an empty map meaning "none declared".
fn normalize_permissions(p: Option<&NodePermissions>) -> Option<NodePermissions> {
    p.filter(|m| !m.is_empty()).map(|m| {
        m.iter()
            .filter(|(k, _)| !k.trim().is_empty())
            .map(|(k, v)| (k.trim().to_string(), *v))
            .collect()
    })
}

/// Permissions in effect: those declared true that were approved true.
pub fn intersect_permissions(
    approved: &Option<NodePermissions>,
    declared: &Option<NodePermissions>,
) -> Option<NodePermissions> {
    let (a, d) = (approved.as_ref()?, declared.as_ref()?);
    let out: NodePermissions = d
        .iter()
        .map(|(k, v)| (k.clone(), *v && a.get(k).copied().unwrap_or(false)))
        .collect();
    (!out.is_empty()).then_some(out)
}

fn permission_upgrade(
    approved: &Option<NodePermissions>,
    declared: &Option<NodePermissions>,
) -> bool {
    declared.as_ref().is_some_and(|d| {
        d.iter().any(|(k, v)| {
            *v && !approved
                .as_ref()
                .and_then(|a| a.get(k))
                .copied()
                .unwrap_or(false)
        })
    })
}

fn set_eq(a: &[String], b: &[String]) -> bool {
    a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
}

fn sorted(v: &[String]) -> Vec<String> {
    v.iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Remote address worth reporting (the reference reports none for local connections).
fn reportable_ip(ip: IpAddr) -> Option<String> {
    (!ip.is_loopback()).then(|| ip.to_string())
}

/// What the handshake passes for a node connect (after device proof and device pairing).
#[derive(Debug)]
pub struct ConnectInput<'a> {
    pub node_id: &'a str,
    pub params: &'a ConnectParams,
    /// Pinned/normalised platform and family.
    pub platform: &'a str,
    pub device_family: Option<&'a str>,
    pub remote_ip: IpAddr,
}

/// The public shape of a pending surface request (`node.pair.list`, `node.pair.requested`).
pub fn request_json(r: &NodePairingRequest) -> Value {
    let mut m = Map::new();
    m.insert("requestId".into(), json!(r.request_id));
    m.insert("nodeId".into(), json!(r.node_id));
    let meta = &r.meta;
    let mut opt = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    };
    opt("clientId", &meta.client_id);
    opt("clientMode", &meta.client_mode);
    opt("displayName", &meta.display_name);
    opt("platform", &meta.platform);
    opt("version", &meta.version);
    opt("deviceFamily", &meta.device_family);
    opt("modelIdentifier", &meta.model_identifier);
    m.insert("caps".into(), json!(r.caps));
    m.insert("commands".into(), json!(r.commands));
    m.insert(
        "requiredApproveScopes".into(),
        json!(policy::required_approve_scopes(&r.commands)),
    );
    if let Some(p) = &r.permissions {
        m.insert("permissions".into(), json!(p));
    }
    if let Some(ip) = &meta.remote_ip {
        m.insert("remoteIp".into(), json!(ip));
    }
    m.insert("silent".into(), json!(r.silent));
    m.insert("ts".into(), json!(r.created_at_ms));
    Value::Object(m)
}

/// The public shape of an approved node (`node.pair.list` paired, `node.pair.approve`).
pub fn paired_json(s: &NodeSurface) -> Value {
    let mut m = Map::new();
    m.insert("nodeId".into(), json!(s.node_id));
    let meta = &s.meta;
    let mut opt = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    };
    opt("clientId", &meta.client_id);
    opt("clientMode", &meta.client_mode);
    opt("displayName", &meta.display_name);
    opt("platform", &meta.platform);
    opt("version", &meta.version);
    opt("deviceFamily", &meta.device_family);
    opt("modelIdentifier", &meta.model_identifier);
    m.insert("caps".into(), json!(s.caps));
    m.insert("commands".into(), json!(s.commands));
    if let Some(p) = &s.permissions {
        m.insert("permissions".into(), json!(p));
    }
    if let Some(ip) = &meta.remote_ip {
        m.insert("remoteIp".into(), json!(ip));
    }
    m.insert("createdAtMs".into(), json!(s.created_at_ms));
    m.insert("approvedAtMs".into(), json!(s.approved_at_ms));
    let mut opt_i = |k: &str, v: Option<i64>| {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    };
    opt_i("lastConnectedAtMs", s.last_connected_at_ms);
    opt_i("lastDisconnectedAtMs", s.last_disconnected_at_ms);
    opt_i("lastSeenAtMs", s.last_seen_at_ms);
    if let Some(r) = &s.last_seen_reason {
        m.insert("lastSeenReason".into(), json!(r));
    }
    Value::Object(m)
}

/// Step 9 for nodes: reconcile the declared surface with the approved one, open or refresh a
/// pending request when the node declares more than was approved, and return what is in effect.
pub async fn reconcile_on_connect(
    state: &GatewayState,
    input: ConnectInput<'_>,
) -> Result<NodeConnect, ErrorShape> {
    let (allow, deny) = command_config(state);
    let cfg = CommandConfig {
        allow: &allow,
        deny: &deny,
    };
    let params = input.params;
    let platform_id = policy::platform_id(Some(input.platform), input.device_family);
    let declared = policy::declared_surface(
        params.caps.as_deref().unwrap_or(&[]),
        params.commands.as_deref().unwrap_or(&[]),
        platform_id,
        input.device_family,
        &cfg,
    );
    if !declared.withheld.is_empty() {
        tracing::warn!(
            node = %input.node_id,
            platform = platform_id,
            commands = %declared.withheld.join(","),
            "node command surface withheld: not in the platform allowlist"
        );
    }
    let permissions = normalize_permissions(params.permissions.as_ref());
    let meta = NodeMeta {
        display_name: params.client.display_name.clone(),
        platform: Some(input.platform.to_string()),
        version: Some(params.client.version.clone()),
        device_family: input.device_family.map(str::to_string),
        model_identifier: params.client.model_identifier.clone(),
        client_id: Some(params.client.id.as_str().to_string()),
        client_mode: Some(params.client.mode.as_str().to_string()),
        remote_ip: reportable_ip(input.remote_ip),
    };
    // The first surface of a device that was approved without a prompt is a silent request.
    let silent = state
        .pairing
        .store()
        .get_device(input.node_id)
        .await
        .map_err(store_error)?
        .is_some_and(|d| d.approved_via == "silent");
    // Approved commands are re-checked against today's pairing allowlist.
    let pairing_allow = policy::allowlist(
        &NodeFacts {
            platform_id,
            device_family: input.device_family,
            caps: &declared.caps,
            approved: &declared.commands,
        },
        &cfg,
        true,
    );
    let node_id = input.node_id.to_string();
    let now = util::now_ms() as i64;
    let (d, perms, m) = (declared.clone(), permissions.clone(), meta.clone());
    let outcome = state
        .pairing
        .store()
        .nodes_write(move |tx| {
            let surface = tx.surface(&node_id)?;
            let existing = tx.request_for_node(&node_id)?;
            let upgrade = match &surface {
                None => true,
                Some(s) => {
                    let approved: Vec<&String> = s
                        .commands
                        .iter()
                        .filter(|c| pairing_allow.contains(c))
                        .collect();
                    d.commands.iter().any(|c| !approved.contains(&c))
                        || d.caps.iter().any(|c| !s.caps.contains(c))
                        || permission_upgrade(&s.permissions, &perms)
                }
            };
            let mut announce = None;
            if upgrade {
                let same = existing.as_ref().is_some_and(|r| {
                    set_eq(&r.caps, &d.caps)
                        && set_eq(&r.commands, &d.commands)
                        && r.permissions == perms
                        && r.meta == m
                });
                if !same {
                    let request = NodePairingRequest {
                        request_id: existing
                            .as_ref()
                            .map(|r| r.request_id.clone())
                            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                        node_id: node_id.clone(),
                        meta: m.clone(),
                        caps: d.caps.clone(),
                        commands: d.commands.clone(),
                        permissions: perms.clone(),
                        silent: surface.is_none() && silent,
                        created_at_ms: now,
                    };
                    tx.put_request(&request)?;
                    announce = Some(request);
                }
            } else if existing.is_some() {
                // Declares no more than approved now: an older upgrade request is moot.
                tx.delete_requests_for_node(&node_id)?;
            }
            if let Some(mut s) = surface.clone() {
                s.last_connected_at_ms = Some(now);
                s.last_seen_at_ms = Some(now);
                s.last_seen_reason = Some("connect".into());
                tx.put_surface(&s)?;
            }
            Ok((surface, announce))
        })
        .await
        .map_err(store_error)?;
    let (surface, announce) = outcome;
    if let Some(request) = &announce {
        tracing::info!(
            node = %request.node_id,
            request = %request.request_id,
            commands = %request.commands.join(","),
            "node command surface awaiting approval (pincer nodes approve)"
        );
        state.bus.publish(
            "node.pair.requested",
            &request_json(request),
            PublishOpts::droppable(),
        );
    }
    let effective = match &surface {
        None => Effective::default(),
        Some(s) => Effective {
            caps: declared
                .caps
                .iter()
                .filter(|c| s.caps.contains(c))
                .cloned()
                .collect(),
            commands: declared
                .commands
                .iter()
                .filter(|c| s.commands.contains(c))
                .cloned()
                .collect(),
            permissions: intersect_permissions(&s.permissions, &permissions),
            approved: true,
        },
    };
    Ok(NodeConnect {
        node_id: input.node_id.to_string(),
        meta,
        platform_id,
        path_env: params.path_env.clone().filter(|p| !p.is_empty()),
        declared,
        declared_permissions: permissions,
        effective,
    })
}

/// Non-admin device-token callers may only manage their own node.
fn denies_cross_node(caller: &CallerAuthz, node_id: &str) -> bool {
    !caller.is_admin
        && caller
            .device_token_device
            .as_deref()
            .is_some_and(|d| d != node_id.trim())
}

fn holds(caller: &CallerAuthz, scope: &str) -> bool {
    caller.is_admin || pincer_protocol::scopes::operator_scope_satisfied(scope, &caller.scopes)
}

/// Publish `node.pair.resolved` to operators and straight to the node's own socket.
fn announce_resolved(state: &GatewayState, session: Option<&Arc<NodeSession>>, payload: &Value) {
    if let Some(s) = session {
        state
            .bus
            .send_direct(s.conn_uid(), "node.pair.resolved", payload);
    }
    state
        .bus
        .publish("node.pair.resolved", payload, PublishOpts::droppable());
}

/// `node.pair.approve`.
pub async fn approve(
    state: &GatewayState,
    caller: &CallerAuthz,
    request_id: &str,
) -> Result<Value, ErrorShape> {
    let request_id = request_id.trim().to_string();
    let store = state.pairing.store();
    let pending = store
        .get_node_pairing_request(&request_id)
        .await
        .map_err(store_error)?;
    let Some(pending) = pending else {
        return Err(ErrorShape::invalid_request("unknown requestId"));
    };
    if denies_cross_node(caller, &pending.node_id) {
        return Err(ErrorShape::invalid_request("node pairing approval denied"));
    }
    let required = policy::required_approve_scopes(&pending.commands);
    if let Some(missing) = required.iter().find(|s| !holds(caller, s)) {
        return Err(
            ErrorShape::new(ErrorCode::Forbidden, format!("missing scope: {missing}")).with_details(
                json!({"code": "MISSING_SCOPE", "missingScope": missing, "requiredScopes": required}),
            ),
        );
    }
    let now = util::now_ms() as i64;
    let id = request_id.clone();
    let approved = store
        .nodes_write(move |tx| {
            let Some(r) = tx.request(&id)? else {
                return Ok(None);
            };
            let old = tx.surface(&r.node_id)?;
            let mut meta = r.meta.clone();
            // A name the owner gave (`node.rename`) survives re-approval.
            if let Some(name) = old.as_ref().and_then(|o| o.meta.display_name.clone()) {
                meta.display_name = Some(name);
            }
            let s = NodeSurface {
                node_id: r.node_id.clone(),
                meta,
                caps: r.caps.clone(),
                commands: r.commands.clone(),
                permissions: r.permissions.clone(),
                created_at_ms: old.as_ref().map_or(now, |o| o.created_at_ms),
                approved_at_ms: now,
                last_connected_at_ms: old.as_ref().and_then(|o| o.last_connected_at_ms),
                last_disconnected_at_ms: old.as_ref().and_then(|o| o.last_disconnected_at_ms),
                last_seen_at_ms: old.as_ref().and_then(|o| o.last_seen_at_ms),
                last_seen_reason: old.as_ref().and_then(|o| o.last_seen_reason.clone()),
            };
            tx.put_surface(&s)?;
            tx.delete_request(&id)?;
            Ok(Some(s))
        })
        .await
        .map_err(store_error)?;
    let Some(mut surface) = approved else {
        return Err(ErrorShape::invalid_request("unknown requestId"));
    };
    // lastSeen comes from the device record when the surface has none yet.
    if surface.last_seen_at_ms.is_none() {
        if let Ok(Some(d)) = store.get_device(&surface.node_id).await {
            surface.last_seen_at_ms = d.last_seen_at_ms.or(Some(d.approved_at_ms));
            // A device seen only at its (silent) pairing was seen at its connect.
            surface.last_seen_reason = d.last_seen_reason.or(Some("connect".into()));
        }
    }
    let session = state.nodes.get(&surface.node_id);
    if let Some(s) = &session {
        s.apply_approved(&surface.caps, &surface.commands, &surface.permissions);
    }
    tracing::info!(node = %surface.node_id, request = %request_id, commands = %surface.commands.join(","), "node command surface approved");
    let resolved = json!({"requestId": request_id, "nodeId": surface.node_id, "decision": "approved", "ts": util::now_ms()});
    announce_resolved(state, session.as_ref(), &resolved);
    Ok(json!({"requestId": request_id, "node": paired_json(&surface)}))
}

/// `node.pair.reject`.
pub async fn reject(
    state: &GatewayState,
    caller: &CallerAuthz,
    request_id: &str,
) -> Result<Value, ErrorShape> {
    let request_id = request_id.trim().to_string();
    let store = state.pairing.store();
    if caller.device_token_device.is_some() && !caller.is_admin {
        let pending = store
            .get_node_pairing_request(&request_id)
            .await
            .map_err(store_error)?;
        if pending.is_none_or(|p| denies_cross_node(caller, &p.node_id)) {
            return Err(ErrorShape::invalid_request("node pairing rejection denied"));
        }
    }
    let id = request_id.clone();
    let rejected = store
        .nodes_write(move |tx| {
            let Some(r) = tx.request(&id)? else {
                return Ok(None);
            };
            tx.delete_request(&id)?;
            Ok(Some(r.node_id))
        })
        .await
        .map_err(store_error)?;
    let Some(node_id) = rejected else {
        return Err(ErrorShape::invalid_request("unknown requestId"));
    };
    tracing::info!(node = %node_id, request = %request_id, "node command surface rejected");
    let session = state.nodes.get(&node_id);
    let resolved = json!({"requestId": request_id, "nodeId": node_id, "decision": "rejected", "ts": util::now_ms()});
    announce_resolved(state, session.as_ref(), &resolved);
    Ok(json!({"requestId": request_id, "nodeId": node_id}))
}

/// `node.pair.remove`: the device loses the node role (its node token is revoked, the device
/// record goes when no role is left), the approved surface and pending requests are deleted.
/// Returns the answer; the caller then closes the node's sockets.
pub async fn remove(
    state: &GatewayState,
    caller: &CallerAuthz,
    node_id: &str,
) -> Result<Value, ErrorShape> {
    let node_id = node_id.trim().to_string();
    if denies_cross_node(caller, &node_id) {
        return Err(ErrorShape::invalid_request("node pairing removal denied"));
    }
    let store = state.pairing.store();
    let now = util::now_ms() as i64;
    let id = node_id.clone();
    let had_role = store
        .devices_write(move |tx| {
            let Some(mut d) = tx.device(&id)? else {
                return Ok(false);
            };
            if !d.has_role("node") {
                return Ok(false);
            }
            if let Some(mut t) = d.token("node").cloned() {
                t.revoked_at_ms = Some(now);
                tx.put_token(&t)?;
            }
            d.roles.retain(|r| r != "node");
            if d.role.as_deref() == Some("node") {
                d.role = d.roles.last().cloned();
            }
            if d.roles.is_empty() {
                tx.delete_device(&id)?;
            } else {
                tx.put_device(&d)?;
            }
            Ok(true)
        })
        .await
        .map_err(store_error)?;
    let id = node_id.clone();
    let had_surface = store
        .nodes_write(move |tx| {
            let s = tx.delete_surface(&id)?;
            let r = tx.delete_requests_for_node(&id)?;
            Ok(s || r > 0)
        })
        .await
        .map_err(store_error)?;
    if !had_role && !had_surface {
        return Err(ErrorShape::invalid_request("unknown nodeId"));
    }
    if let Some(s) = state.nodes.get(&node_id) {
        s.clear_approved();
    }
    tracing::info!(node = %node_id, "node pairing removed");
    state.bus.publish(
        "node.pair.resolved",
        &json!({"requestId": "", "nodeId": node_id, "decision": "removed", "ts": util::now_ms()}),
        PublishOpts::droppable(),
    );
    Ok(json!({"nodeId": node_id}))
}

/// `node.rename`.
pub async fn rename(
    state: &GatewayState,
    caller: &CallerAuthz,
    node_id: &str,
    display_name: &str,
) -> Result<Value, ErrorShape> {
    let node_id = node_id.trim().to_string();
    if denies_cross_node(caller, &node_id) {
        return Err(ErrorShape::invalid_request("node rename denied"));
    }
    let name = display_name.trim().to_string();
    if name.is_empty() {
        return Err(ErrorShape::invalid_request("displayName required"));
    }
    let (id, n) = (node_id.clone(), name.clone());
    let renamed = state
        .pairing
        .store()
        .nodes_write(move |tx| {
            let Some(mut s) = tx.surface(&id)? else {
                return Ok(false);
            };
            s.meta.display_name = Some(n);
            tx.put_surface(&s)?;
            Ok(true)
        })
        .await
        .map_err(store_error)?;
    if !renamed {
        return Err(ErrorShape::invalid_request("unknown nodeId"));
    }
    Ok(json!({"nodeId": node_id, "displayName": name}))
}

/// `node.pair.list`.
pub async fn pair_list(state: &GatewayState, caller: &CallerAuthz) -> Result<Value, ErrorShape> {
    let store = state.pairing.store();
    let pending = store
        .list_node_pairing_requests()
        .await
        .map_err(store_error)?;
    let paired = store.list_node_surfaces().await.map_err(store_error)?;
    let only = caller
        .device_token_device
        .as_deref()
        .filter(|_| !caller.is_admin);
    let pending: Vec<Value> = pending
        .iter()
        .filter(|r| only.is_none_or(|o| r.node_id == o))
        .map(request_json)
        .collect();
    let paired: Vec<Value> = paired
        .iter()
        .filter(|s| only.is_none_or(|o| s.node_id == o))
        .map(paired_json)
        .collect();
    Ok(json!({"pending": pending, "paired": paired}))
}

/// The catalog of known nodes (`node.list`, `node.describe`): paired devices with the node
/// role, approved surfaces, pending requests and live sessions, merged per node id. Connected
/// nodes first, then by name. Readers without `operator.pairing` do not see pending fields.
pub async fn catalog(
    state: &GatewayState,
    caller: &CallerAuthz,
    only: Option<&str>,
) -> Result<Vec<Value>, ErrorShape> {
    let store = state.pairing.store();
    let devices = store.list_devices().await.map_err(store_error)?;
    let surfaces = store.list_node_surfaces().await.map_err(store_error)?;
    let requests = store
        .list_node_pairing_requests()
        .await
        .map_err(store_error)?;
    let live = state.nodes.list();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    ids.extend(
        devices
            .iter()
            .filter(|d| d.has_role("node"))
            .map(|d| d.device_id.clone()),
    );
    ids.extend(surfaces.iter().map(|s| s.node_id.clone()));
    ids.extend(requests.iter().map(|r| r.node_id.clone()));
    ids.extend(live.iter().map(|s| s.node_id.clone()));
    if let Some(o) = only {
        ids.retain(|i| i == o);
    }
    let sees_pending = holds(caller, pincer_protocol::scopes::PAIRING);
    let own = caller.verified_device.as_deref();
    let mut rows: Vec<(bool, String, String, Value)> = Vec::new();
    for id in ids {
        let device = devices
            .iter()
            .find(|d| d.device_id == id && d.has_role("node"));
        let surface = surfaces.iter().find(|s| s.node_id == id);
        let request = requests.iter().find(|r| r.node_id == id);
        let session = live.iter().find(|s| s.node_id == id);
        if device.is_none() && surface.is_none() && session.is_none() {
            // Only a stale request of a node that is neither paired nor connected.
            continue;
        }
        let show_pending = sees_pending || own == Some(id.as_str());
        let row = node_row(
            &id,
            device,
            surface,
            request.filter(|_| show_pending),
            session,
        );
        let name = row["displayName"].as_str().unwrap_or(&id).to_lowercase();
        rows.push((session.is_none(), name, id, row));
    }
    rows.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    Ok(rows.into_iter().map(|r| r.3).collect())
}

fn first(values: &[Option<&String>]) -> Option<String> {
    values
        .iter()
        .flatten()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

fn node_row(
    id: &str,
    device: Option<&pincer_store::PairedDevice>,
    surface: Option<&NodeSurface>,
    request: Option<&NodePairingRequest>,
    session: Option<&Arc<NodeSession>>,
) -> Value {
    // The device record's metadata, in the same shape as the others.
    let dm = device.map(|d| NodeMeta {
        display_name: d.display_name.clone(),
        platform: d.platform.clone(),
        client_id: d.client_id.clone(),
        client_mode: d.client_mode.clone(),
        ..Default::default()
    });
    let (sm, lm, dm, rm) = (
        surface.map(|s| &s.meta),
        session.map(|s| &s.meta),
        dm.as_ref(),
        request.map(|r| &r.meta),
    );
    let mut m = Map::new();
    m.insert("nodeId".into(), json!(id));
    // Each field from the first source (in the field's order of precedence) that has it.
    type Field = fn(&NodeMeta) -> &Option<String>;
    let fields: [(&str, Field, [Option<&NodeMeta>; 4]); 8] = [
        ("displayName", |m| &m.display_name, [sm, lm, dm, rm]),
        ("platform", |m| &m.platform, [lm, sm, dm, rm]),
        ("version", |m| &m.version, [lm, sm, rm, None]),
        ("clientId", |m| &m.client_id, [lm, dm, rm, None]),
        ("clientMode", |m| &m.client_mode, [lm, dm, rm, None]),
        ("deviceFamily", |m| &m.device_family, [lm, sm, rm, None]),
        (
            "modelIdentifier",
            |m| &m.model_identifier,
            [lm, sm, rm, None],
        ),
        ("remoteIp", |m| &m.remote_ip, [lm, sm, rm, None]),
    ];
    for (key, field, order) in fields {
        let values: Vec<Option<&String>> = order
            .iter()
            .map(|src| src.and_then(|x| field(x).as_ref()))
            .collect();
        if let Some(v) = first(&values) {
            m.insert(key.into(), json!(v));
        }
    }
    let effective = session.map(|s| s.effective());
    let (caps, commands) = match (&effective, surface) {
        (Some(e), _) => (sorted(&e.caps), sorted(&e.commands)),
        (None, Some(s)) => (sorted(&s.caps), sorted(&s.commands)),
        (None, None) => (Vec::new(), Vec::new()),
    };
    m.insert("caps".into(), json!(caps));
    m.insert("commands".into(), json!(commands));
    m.insert("sessionHost".into(), json!(false));
    if let Some(s) = session {
        if let Some(stats) = s.host_stats.lock().clone() {
            m.insert("hostStats".into(), stats);
        }
        m.insert("nodePluginTools".into(), json!([]));
        if let Some(p) = &s.path_env {
            m.insert("pathEnv".into(), json!(p));
        }
    }
    let permissions = match (&effective, surface) {
        (Some(e), _) => e.permissions.clone(),
        (None, Some(s)) => s.permissions.clone(),
        _ => None,
    };
    if let Some(p) = permissions {
        m.insert("permissions".into(), json!(p));
    }
    let state = match (request.is_some(), surface.is_some()) {
        (true, true) => "pending-reapproval",
        (true, false) => "pending-approval",
        (false, true) => "approved",
        (false, false) => "unapproved",
    };
    m.insert("approvalState".into(), json!(state));
    if let Some(r) = request {
        m.insert("pendingRequestId".into(), json!(r.request_id));
        m.insert("pendingDeclaredCaps".into(), json!(sorted(&r.caps)));
        m.insert("pendingDeclaredCommands".into(), json!(sorted(&r.commands)));
        if let Some(p) = &r.permissions {
            m.insert("pendingDeclaredPermissions".into(), json!(p));
        }
    }
    let connected_at = session.map(|s| s.connected_at_ms as i64);
    if let Some(c) = connected_at {
        m.insert("connectedAtMs".into(), json!(c));
    }
    let last_connected = [surface.and_then(|s| s.last_connected_at_ms), connected_at]
        .into_iter()
        .flatten()
        .max();
    if let Some(c) = last_connected {
        m.insert("lastConnectedAtMs".into(), json!(c));
    }
    if session.is_none() {
        if let Some(d) = surface.and_then(|s| s.last_disconnected_at_ms) {
            m.insert("lastDisconnectedAtMs".into(), json!(d));
        }
    }
    if let Some(a) = session.and_then(|s| *s.activity.lock()) {
        m.insert("lastActiveAtMs".into(), json!(a.last_active_at_ms));
        m.insert(
            "presenceUpdatedAtMs".into(),
            json!(a.presence_updated_at_ms),
        );
    }
    // lastSeen: the newest of live connect, surface and device records.
    let candidates = [
        connected_at.map(|t| (t, Some("connect".to_string()))),
        surface.and_then(|s| s.last_seen_at_ms.map(|t| (t, s.last_seen_reason.clone()))),
        surface.and_then(|s| {
            s.last_connected_at_ms
                .map(|t| (t, Some("connect".to_string())))
        }),
        device.and_then(|d| d.last_seen_at_ms.map(|t| (t, d.last_seen_reason.clone()))),
    ];
    if let Some((t, reason)) = candidates.into_iter().flatten().max_by_key(|(t, _)| *t) {
        m.insert("lastSeenAtMs".into(), json!(t));
        if let Some(r) = reason {
            m.insert("lastSeenReason".into(), json!(r));
        }
    }
    if let Some(a) = surface
        .map(|s| s.approved_at_ms)
        .or(device.map(|d| d.approved_at_ms))
    {
        m.insert("approvedAtMs".into(), json!(a));
    }
    m.insert(
        "paired".into(),
        json!(device.is_some() || surface.is_some()),
    );
    m.insert("connected".into(), json!(session.is_some()));
    Value::Object(m)
}

/// Record a node's disconnect on its approved surface (bookkeeping; not awaited by anyone).
pub fn record_disconnect(state: &GatewayState, node_id: &str) {
    let store = state.pairing.store().clone();
    let id = node_id.to_string();
    let now = util::now_ms() as i64;
    tokio::spawn(async move {
        let _ = store
            .nodes_write(move |tx| {
                if let Some(mut s) = tx.surface(&id)? {
                    s.last_disconnected_at_ms = Some(now);
                    s.last_seen_at_ms = Some(now);
                    s.last_seen_reason = Some("disconnect".into());
                    tx.put_surface(&s)?;
                }
                Ok(())
            })
            .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_in_effect_are_declared_and_approved() {
        let a: NodePermissions = [
            ("camera.capture".into(), true),
            ("screen.record".into(), false),
        ]
        .into_iter()
        .collect();
        let d: NodePermissions = [
            ("camera.capture".into(), true),
            ("screen.record".into(), true),
        ]
        .into_iter()
        .collect();
        let e = intersect_permissions(&Some(a.clone()), &Some(d.clone())).unwrap_or_default();
        assert_eq!(e.get("camera.capture"), Some(&true));
        assert_eq!(e.get("screen.record"), Some(&false));
        assert!(permission_upgrade(&Some(a), &Some(d)));
        assert!(!permission_upgrade(&None, &None));
        assert_eq!(normalize_permissions(Some(&NodePermissions::new())), None);
    }

    #[test]
    fn request_shape_matches_the_golden() {
        let r = NodePairingRequest {
            request_id: "r".into(),
            node_id: "n".into(),
            meta: NodeMeta {
                display_name: Some("anchor-node".into()),
                platform: Some("linux".into()),
                version: Some("anchor-0.1".into()),
                device_family: Some("Linux".into()),
                client_id: Some("node-host".into()),
                client_mode: Some("node".into()),
                ..Default::default()
            },
            caps: vec!["system".into()],
            commands: vec!["system.which".into(), "system.run".into()],
            permissions: None,
            silent: true,
            created_at_ms: 5,
        };
        assert_eq!(
            request_json(&r),
            json!({"requestId":"r","nodeId":"n","clientId":"node-host","clientMode":"node",
                "displayName":"anchor-node","platform":"linux","version":"anchor-0.1",
                "deviceFamily":"Linux","caps":["system"],"commands":["system.which","system.run"],
                "requiredApproveScopes":["operator.pairing","operator.admin"],"silent":true,"ts":5})
        );
    }
}
