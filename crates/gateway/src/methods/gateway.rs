//! `gateway.identity.get`: the gateway's own device identity (public parts only).

use pincer_protocol::params::EMPTY_PARAMS;

use crate::dispatch::{CallCtx, MethodRegistry, Reply};

pub fn register(reg: &mut MethodRegistry) {
    reg.sync("gateway.identity.get", &EMPTY_PARAMS, identity_get);
}

fn identity_get(ctx: &CallCtx<'_>) -> Reply {
    Reply::json(&ctx.state.identity.public_json())
}
