//! `node.list`, `node.describe`, `node.rename`, `node.pair.list|approve|reject|remove` (spec
//! §5.2 "Nodes"). Scopes come from the method table (`operator.read` / `operator.pairing`);
//! approval additionally needs the request's `requiredApproveScopes` ([`crate::nodes::surface`]).

use pincer_protocol::params::{
    EMPTY_PARAMS, NODE_ID_PARAMS, NODE_PAIR_REQUEST_PARAMS, NODE_RENAME_PARAMS,
};
use serde::Deserialize;
use serde_json::json;

use crate::dispatch::{MethodRegistry, OwnedCall, Reply};
use crate::methods::devices::caller;
use crate::nodes::surface;

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("node.list", &EMPTY_PARAMS, |c| Box::pin(list(c)));
    reg.asynchronous("node.describe", &NODE_ID_PARAMS, |c| Box::pin(describe(c)));
    reg.asynchronous("node.rename", &NODE_RENAME_PARAMS, |c| Box::pin(rename(c)));
    reg.asynchronous("node.pair.list", &EMPTY_PARAMS, |c| Box::pin(pair_list(c)));
    reg.asynchronous("node.pair.approve", &NODE_PAIR_REQUEST_PARAMS, |c| {
        Box::pin(approve(c))
    });
    reg.asynchronous("node.pair.reject", &NODE_PAIR_REQUEST_PARAMS, |c| {
        Box::pin(reject(c))
    });
    reg.asynchronous("node.pair.remove", &NODE_ID_PARAMS, |c| Box::pin(remove(c)));
}

fn reply(result: Result<serde_json::Value, pincer_protocol::errors::ErrorShape>) -> Reply {
    match result {
        Ok(v) => Reply::json(&v),
        Err(e) => Reply::Error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeParams {
    #[serde(default)]
    node_id: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    request_id: String,
}

async fn list(call: OwnedCall) -> Reply {
    match surface::catalog(&call.state, &caller(&call), None).await {
        Ok(nodes) => Reply::json(&json!({"ts": crate::util::now_ms(), "nodes": nodes})),
        Err(e) => Reply::Error(e),
    }
}

async fn describe(call: OwnedCall) -> Reply {
    let p: NodeParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let id = p.node_id.trim();
    if id.is_empty() {
        return Reply::Error(pincer_protocol::errors::ErrorShape::invalid_request(
            "nodeId required",
        ));
    }
    match surface::catalog(&call.state, &caller(&call), Some(id)).await {
        Ok(nodes) => match nodes.into_iter().next() {
            Some(serde_json::Value::Object(row)) => {
                let mut out = serde_json::Map::new();
                out.insert("ts".into(), json!(crate::util::now_ms()));
                out.extend(row);
                Reply::json(&out)
            }
            _ => Reply::Error(pincer_protocol::errors::ErrorShape::invalid_request(
                "unknown nodeId",
            )),
        },
        Err(e) => Reply::Error(e),
    }
}

async fn rename(call: OwnedCall) -> Reply {
    let p: NodeParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    reply(surface::rename(&call.state, &caller(&call), &p.node_id, &p.display_name).await)
}

async fn pair_list(call: OwnedCall) -> Reply {
    reply(surface::pair_list(&call.state, &caller(&call)).await)
}

async fn approve(call: OwnedCall) -> Reply {
    let p: NodeParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    reply(surface::approve(&call.state, &caller(&call), &p.request_id).await)
}

async fn reject(call: OwnedCall) -> Reply {
    let p: NodeParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    reply(surface::reject(&call.state, &caller(&call), &p.request_id).await)
}

/// Answer first, then close the node's sockets (4001 `device removed`): its node credential
/// is gone.
async fn remove(call: OwnedCall) -> Reply {
    let p: NodeParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    match surface::remove(&call.state, &caller(&call), &p.node_id).await {
        Ok(v) => {
            call.respond(Reply::json(&v));
            call.state
                .close_device_sockets(p.node_id.trim(), Some("node"));
            Reply::Sent
        }
        Err(e) => Reply::Error(e),
    }
}
