//! The gateway side of the agent's `nodes` tool ([`pincer_tools::host::NodesHost`]): the same
//! catalog as `node.list`/`node.describe`, the same pairing calls, and invokes through the same
//! engine as `node.invoke` ([`super::invoke`]). The agent acts with the owner's authority
//! (operator.admin), as the reference's agent does through its gateway client.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use pincer_protocol::errors::ErrorShape;
use pincer_tools::host::{HostError, NodesHost};
use serde_json::{json, Value};

use super::invoke::{self, Cached, InvokeRequest};
use super::surface;
use crate::pairing::CallerAuthz;
use crate::state::GatewayState;

/// Filled once the gateway state exists (the agent runtime is built before it).
#[derive(Clone, Default)]
pub struct StateCell(Arc<OnceLock<Weak<GatewayState>>>);

impl StateCell {
    pub fn set(&self, state: &Arc<GatewayState>) {
        let _ = self.0.set(Arc::downgrade(state));
    }

    fn get(&self) -> Result<Arc<GatewayState>, HostError> {
        self.0
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| HostError::Unavailable("the gateway is shutting down".into()))
    }
}

/// The `nodes` tool host.
#[derive(Clone, Default)]
pub struct GatewayNodesHost {
    cell: StateCell,
}

impl GatewayNodesHost {
    pub fn new(cell: StateCell) -> Self {
        GatewayNodesHost { cell }
    }
}

fn owner() -> CallerAuthz {
    CallerAuthz {
        scopes: pincer_protocol::scopes::CLI_DEFAULT_OPERATOR_SCOPES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        is_admin: true,
        device_token_device: None,
        verified_device: None,
    }
}

fn host_error(e: ErrorShape) -> HostError {
    match e.code {
        pincer_protocol::errors::ErrorCode::Forbidden => HostError::Rejected(e.message),
        _ if e.message.starts_with("unknown ") => HostError::NotFound(e.message),
        _ if e.message.starts_with("node command not allowed") => HostError::Rejected(e.message),
        _ => HostError::Failed(e.message),
    }
}

/// Resolve what the model called a node: id, unique id prefix, display name or IP address.
/// Connected nodes win over offline ones with the same name.
pub fn resolve_node(nodes: &[Value], query: &str) -> Result<String, HostError> {
    let q = query.trim();
    if q.is_empty() {
        return Err(HostError::NotFound("node required".into()));
    }
    let id_of = |n: &Value| n["nodeId"].as_str().unwrap_or_default().to_string();
    if let Some(n) = nodes.iter().find(|n| n["nodeId"] == q) {
        return Ok(id_of(n));
    }
    let lower = q.to_lowercase();
    let by = |pred: &dyn Fn(&Value) -> bool| -> Vec<&Value> {
        let all: Vec<&Value> = nodes.iter().filter(|n| pred(n)).collect();
        let live: Vec<&Value> = all
            .iter()
            .copied()
            .filter(|n| n["connected"] == true)
            .collect();
        if live.len() == 1 {
            live
        } else {
            all
        }
    };
    let candidates = [
        by(&|n| {
            n["displayName"]
                .as_str()
                .is_some_and(|d| d.to_lowercase() == lower)
        }),
        by(&|n| n["remoteIp"] == q),
        by(&|n| q.len() >= 6 && n["nodeId"].as_str().is_some_and(|id| id.starts_with(q))),
    ];
    for c in candidates {
        match c.len() {
            0 => continue,
            1 => return Ok(id_of(c[0])),
            _ => {
                let names: Vec<String> = c
                    .iter()
                    .map(|n| {
                        format!(
                            "{} ({})",
                            n["nodeId"].as_str().unwrap_or_default(),
                            n["displayName"].as_str().unwrap_or("unnamed")
                        )
                    })
                    .collect();
                return Err(HostError::Rejected(format!(
                    "node {q:?} is ambiguous: {}; use the node id",
                    names.join(", ")
                )));
            }
        }
    }
    let known: Vec<String> = nodes
        .iter()
        .map(|n| {
            n["displayName"]
                .as_str()
                .unwrap_or_else(|| n["nodeId"].as_str().unwrap_or("?"))
                .to_string()
        })
        .collect();
    Err(HostError::NotFound(if known.is_empty() {
        format!("unknown node {q:?}: no nodes are paired (run `pincer node run` on the machine, then approve it)")
    } else {
        format!("unknown node {q:?}; known nodes: {}", known.join(", "))
    }))
}

#[async_trait]
impl NodesHost for GatewayNodesHost {
    async fn list(&self) -> Result<Value, HostError> {
        let state = self.cell.get()?;
        let nodes = surface::catalog(&state, &owner(), None)
            .await
            .map_err(host_error)?;
        Ok(json!({"ts": crate::util::now_ms(), "nodes": nodes}))
    }

    async fn describe(&self, node: &str) -> Result<Value, HostError> {
        let state = self.cell.get()?;
        let all = surface::catalog(&state, &owner(), None)
            .await
            .map_err(host_error)?;
        let id = resolve_node(&all, node)?;
        let mut row = all
            .into_iter()
            .find(|n| n["nodeId"] == id.as_str())
            .unwrap_or_default();
        if let Some(m) = row.as_object_mut() {
            m.insert("ts".into(), json!(crate::util::now_ms()));
        }
        Ok(row)
    }

    async fn pending(&self) -> Result<Value, HostError> {
        let state = self.cell.get()?;
        surface::pair_list(&state, &owner())
            .await
            .map_err(host_error)
    }

    async fn resolve_pairing(&self, request_id: &str, approve: bool) -> Result<Value, HostError> {
        let state = self.cell.get()?;
        let caller = owner();
        if approve {
            surface::approve(&state, &caller, request_id).await
        } else {
            surface::reject(&state, &caller, request_id).await
        }
        .map_err(host_error)
    }

    async fn invoke(
        &self,
        node: &str,
        command: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, HostError> {
        let state = self.cell.get()?;
        let all = surface::catalog(&state, &owner(), None)
            .await
            .map_err(host_error)?;
        let node_id = resolve_node(&all, node)?;
        let req = InvokeRequest {
            node_id,
            command: command.to_string(),
            params: Some(params),
            timeout_ms: Some(timeout.as_millis().max(1) as u64),
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            session_key: None,
            caller: None,
            caller_is_admin: true,
        };
        match invoke::invoke(&state, req).await {
            Cached::Ok(payload) => serde_json::from_str(&payload)
                .map_err(|e| HostError::Failed(format!("bad node result: {e}"))),
            Cached::Err(e) => Err(host_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_by_id_name_ip_and_prefix() {
        let nodes = vec![
            json!({"nodeId": "aaaaaaaa11", "displayName": "Laptop", "connected": true}),
            json!({"nodeId": "bbbbbbbb22", "displayName": "Server", "remoteIp": "10.0.0.5", "connected": false}),
            json!({"nodeId": "cccccccc33", "displayName": "laptop", "connected": false}),
        ];
        assert_eq!(
            resolve_node(&nodes, "bbbbbbbb22").ok().as_deref(),
            Some("bbbbbbbb22")
        );
        // Two nodes named laptop: the connected one wins.
        assert_eq!(
            resolve_node(&nodes, "LAPTOP").ok().as_deref(),
            Some("aaaaaaaa11")
        );
        assert_eq!(
            resolve_node(&nodes, "10.0.0.5").ok().as_deref(),
            Some("bbbbbbbb22")
        );
        assert_eq!(
            resolve_node(&nodes, "cccccc").ok().as_deref(),
            Some("cccccccc33")
        );
        assert!(
            matches!(resolve_node(&nodes, "nope"), Err(HostError::NotFound(m)) if m.contains("Laptop"))
        );
        assert!(
            matches!(resolve_node(&[], "x"), Err(HostError::NotFound(m)) if m.contains("pincer node run"))
        );
    }
}
