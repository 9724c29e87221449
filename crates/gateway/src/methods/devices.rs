//! `device.pair.list|approve|reject|remove|rename`, `device.token.rotate|revoke` (spec §4.5,
//! §4.6, §5.2). Authorization by scope comes from the method table (`operator.pairing`); the
//! extra approval-time checks of §3.3 live in [`crate::pairing::PairingService`]. Credential
//! changes close the device's live sockets with 4001 `device removed` right after the answer.

use pincer_protocol::params::{
    DEVICE_PAIR_REMOVE_PARAMS, DEVICE_PAIR_RENAME_PARAMS, DEVICE_PAIR_REQUEST_PARAMS,
    DEVICE_TOKEN_REVOKE_PARAMS, DEVICE_TOKEN_ROTATE_PARAMS, EMPTY_PARAMS,
};
use serde::Deserialize;

use crate::dispatch::{MethodRegistry, OwnedCall, Reply};
use crate::pairing::{AuthMethod, CallerAuthz};

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("device.pair.list", &EMPTY_PARAMS, |c| Box::pin(list(c)));
    reg.asynchronous("device.pair.approve", &DEVICE_PAIR_REQUEST_PARAMS, |c| {
        Box::pin(approve(c))
    });
    reg.asynchronous("device.pair.reject", &DEVICE_PAIR_REQUEST_PARAMS, |c| {
        Box::pin(reject(c))
    });
    reg.asynchronous("device.pair.remove", &DEVICE_PAIR_REMOVE_PARAMS, |c| {
        Box::pin(remove(c))
    });
    reg.asynchronous("device.pair.rename", &DEVICE_PAIR_RENAME_PARAMS, |c| {
        Box::pin(rename(c))
    });
    reg.asynchronous("device.token.rotate", &DEVICE_TOKEN_ROTATE_PARAMS, |c| {
        Box::pin(rotate(c))
    });
    reg.asynchronous("device.token.revoke", &DEVICE_TOKEN_REVOKE_PARAMS, |c| {
        Box::pin(revoke(c))
    });
}

pub(crate) fn caller(call: &OwnedCall) -> CallerAuthz {
    let info = &call.conn.info;
    CallerAuthz {
        scopes: info.scopes.as_slice().to_vec(),
        is_admin: info.scopes.is_admin(),
        device_token_device: info
            .device_id
            .clone()
            .filter(|_| info.auth_method == AuthMethod::DeviceToken),
        verified_device: info.device_id.clone(),
    }
}

fn reply(result: Result<serde_json::Value, pincer_protocol::errors::ErrorShape>) -> Reply {
    match result {
        Ok(v) => Reply::json(&v),
        Err(e) => Reply::Error(e),
    }
}

/// Answer first, then close the device's sockets (the caller may be one of them).
fn answer_then_close(
    call: &OwnedCall,
    value: &serde_json::Value,
    device_id: &str,
    role: Option<&str>,
) -> Reply {
    call.respond(Reply::json(value));
    let closed = call.state.close_device_sockets(device_id, role);
    tracing::debug!(
        device = device_id,
        closed,
        "closed device sockets after a credential change"
    );
    Reply::Sent
}

async fn list(call: OwnedCall) -> Reply {
    let state = call.state.clone();
    reply(
        state
            .pairing
            .list(&caller(&call), |id| state.device_connected(id))
            .await,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestParams {
    request_id: String,
}

async fn approve(call: OwnedCall) -> Reply {
    let p: RequestParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    reply(
        call.state
            .pairing
            .approve(&call.state.bus, &caller(&call), &p.request_id)
            .await,
    )
}

async fn reject(call: OwnedCall) -> Reply {
    let p: RequestParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    reply(
        call.state
            .pairing
            .reject(&call.state.bus, &caller(&call), &p.request_id)
            .await,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceParams {
    device_id: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

async fn remove(call: OwnedCall) -> Reply {
    let p: DeviceParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    match call
        .state
        .pairing
        .remove(&caller(&call), &p.device_id)
        .await
    {
        Ok(v) => answer_then_close(&call, &v, p.device_id.trim(), None),
        Err(e) => Reply::Error(e),
    }
}

async fn rename(call: OwnedCall) -> Reply {
    let p: DeviceParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let label = p.label.unwrap_or_default();
    reply(
        call.state
            .pairing
            .rename(&call.state.bus, &caller(&call), &p.device_id, &label)
            .await,
    )
}

async fn rotate(call: OwnedCall) -> Reply {
    let p: DeviceParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let role = p.role.unwrap_or_default();
    match call
        .state
        .pairing
        .rotate(&caller(&call), &p.device_id, &role, p.scopes)
        .await
    {
        Ok((v, role)) => answer_then_close(&call, &v, p.device_id.trim(), Some(&role)),
        Err(e) => Reply::Error(e),
    }
}

async fn revoke(call: OwnedCall) -> Reply {
    let p: DeviceParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let role = p.role.unwrap_or_default();
    match call
        .state
        .pairing
        .revoke(&caller(&call), &p.device_id, &role)
        .await
    {
        Ok((v, role)) => answer_then_close(&call, &v, p.device_id.trim(), Some(&role)),
        Err(e) => Reply::Error(e),
    }
}
