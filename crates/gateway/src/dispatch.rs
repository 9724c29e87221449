//! The dispatcher: method registry and the per-request pipeline after hello
//! (`connect` guard → authorization → unknown method → params schema → handler).
//!
//! Handlers come in two kinds. `Sync` handlers run inline on the connection task and must not
//! block (they read in-memory state); the answer is written in the same batch as the request
//! was read, with no task spawn. `Async` handlers run on their own task and may answer more
//! than once on one request id through [`OwnedCall::respond`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pincer_protocol::authz::{authorize_method, AuthzError};
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::frames::{response_err, response_err_with_payload, response_ok_raw, Request};
use pincer_protocol::limits::UNAUTHORIZED_FLOOD_LIMIT;
use pincer_protocol::methods;
use pincer_protocol::schema::{self, Schema};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::registry::ConnHandle;
use crate::state::GatewayState;

/// A handler's answer.
#[derive(Debug)]
pub enum Reply {
    /// Serialised payload JSON.
    Json(String),
    /// A cached, pre-serialised payload.
    Raw(Arc<RawValue>),
    Error(ErrorShape),
    /// `ok:false` that still carries a payload (replayed run outcomes).
    ErrorWithPayload(String, ErrorShape),
    /// Already answered through [`OwnedCall::respond`]: nothing more to send (used when the
    /// answer must go out before a follow-up action, e.g. closing the caller's own socket).
    Sent,
}

impl Reply {
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Reply {
        match serde_json::to_string(value) {
            Ok(s) => Reply::Json(s),
            Err(e) => Reply::Error(ErrorShape::unavailable(format!(
                "failed to encode result: {e}"
            ))),
        }
    }

    /// The `res` frame for request `id`.
    pub fn into_frame(self, id: &str) -> String {
        match self {
            Reply::Json(p) => response_ok_raw(id, &p),
            Reply::Raw(p) => response_ok_raw(id, p.get()),
            Reply::Error(e) => response_err(id, &e),
            Reply::ErrorWithPayload(p, e) => response_err_with_payload(id, Some(&p), &e),
            Reply::Sent => String::new(),
        }
    }
}

/// Borrowed call context for sync handlers.
pub struct CallCtx<'a> {
    pub state: &'a Arc<GatewayState>,
    pub conn: &'a Arc<ConnHandle>,
    pub id: &'a str,
    /// Params text, already validated against the method's schema.
    pub params: Option<&'a str>,
}

impl CallCtx<'_> {
    /// Deserialize the (validated) params; absent params read as `{}`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ErrorShape> {
        parse_params(self.params)
    }
}

/// Owned call context for async handlers.
pub struct OwnedCall {
    pub state: Arc<GatewayState>,
    pub conn: Arc<ConnHandle>,
    pub id: String,
    pub method: &'static str,
    pub params: Option<Box<RawValue>>,
}

impl OwnedCall {
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ErrorShape> {
        parse_params(self.params.as_deref().map(RawValue::get))
    }

    /// Send an extra `res` on this request id before the final one (e.g. `agent` accepted).
    pub fn respond(&self, reply: Reply) {
        self.conn.send_text(reply.into_frame(&self.id));
    }
}

fn parse_params<T: serde::de::DeserializeOwned>(params: Option<&str>) -> Result<T, ErrorShape> {
    serde_json::from_str(params.unwrap_or("{}"))
        .map_err(|e| ErrorShape::invalid_request(format!("invalid params: {e}")))
}

pub type SyncHandler = fn(&CallCtx<'_>) -> Reply;
pub type AsyncHandler = fn(OwnedCall) -> Pin<Box<dyn Future<Output = Reply> + Send>>;

#[derive(Clone, Copy)]
pub enum Handler {
    Sync(SyncHandler),
    Async(AsyncHandler),
}

#[derive(Clone, Copy)]
pub struct MethodDef {
    pub name: &'static str,
    pub handler: Handler,
    pub params: &'static Schema,
}

/// Registered methods. `features.methods` lists exactly these (minus hidden ones).
#[derive(Default)]
pub struct MethodRegistry {
    map: HashMap<&'static str, MethodDef>,
    order: Vec<&'static str>,
}

impl MethodRegistry {
    pub fn register(&mut self, def: MethodDef) {
        if self.map.insert(def.name, def).is_none() {
            self.order.push(def.name);
        }
    }

    pub fn sync(&mut self, name: &'static str, params: &'static Schema, f: SyncHandler) {
        self.register(MethodDef {
            name,
            handler: Handler::Sync(f),
            params,
        });
    }

    pub fn asynchronous(&mut self, name: &'static str, params: &'static Schema, f: AsyncHandler) {
        self.register(MethodDef {
            name,
            handler: Handler::Async(f),
            params,
        });
    }

    pub fn get(&self, name: &str) -> Option<&MethodDef> {
        self.map.get(name)
    }

    /// Registered, non-hidden methods in registration order.
    pub fn advertised(&self) -> Vec<&'static str> {
        self.order
            .iter()
            .copied()
            .filter(|m| !methods::lookup(m).is_some_and(|s| s.hidden))
            .collect()
    }

    pub fn names(&self) -> &[&'static str] {
        &self.order
    }
}

/// What the connection task does with a request's outcome.
#[derive(Debug)]
pub enum Dispatched {
    /// Write this frame now.
    Frame(String),
    /// An async handler owns the answer.
    Spawned,
    /// Write this frame, then close (repeated unauthorized calls).
    FrameThenClose(String, u16, &'static str),
}

/// Per-connection dispatcher state.
#[derive(Debug, Default)]
pub struct DispatchState {
    unauthorized_role_streak: u32,
}

fn validate_params(def: &MethodDef, params: Option<&str>) -> Result<(), String> {
    match params {
        None => schema::validate(def.params, &Value::Object(Default::default())),
        Some("{}") => schema::validate(def.params, &Value::Object(Default::default())),
        Some(text) => {
            let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            schema::validate(def.params, &value)
        }
    }
}

/// Handle one request after hello.
pub fn dispatch(
    state: &Arc<GatewayState>,
    conn: &Arc<ConnHandle>,
    ds: &mut DispatchState,
    req: Request<'_>,
) -> Dispatched {
    let id = req.id.as_ref();
    let method = req.method.as_ref();
    if method == "connect" {
        ds.unauthorized_role_streak = 0;
        return Dispatched::Frame(response_err(
            id,
            &ErrorShape::invalid_request("connect is only valid as the first request"),
        ));
    }
    let params = req.params_str();
    if let Err(err) = authorize_method(conn.info.role, &conn.info.scopes, method, params) {
        let frame = response_err(id, &err.to_error_shape());
        if matches!(err, AuthzError::UnauthorizedRole(_)) {
            ds.unauthorized_role_streak += 1;
            if ds.unauthorized_role_streak > UNAUTHORIZED_FLOOD_LIMIT {
                return Dispatched::FrameThenClose(
                    frame,
                    pincer_protocol::close::POLICY_VIOLATION,
                    pincer_protocol::close::REASON_REPEATED_UNAUTHORIZED,
                );
            }
        } else {
            ds.unauthorized_role_streak = 0;
        }
        return Dispatched::Frame(frame);
    }
    ds.unauthorized_role_streak = 0;
    let Some(def) = state.methods.get(method).copied() else {
        return Dispatched::Frame(response_err(id, &ErrorShape::unknown_method(method)));
    };
    if let Err(msg) = validate_params(&def, params) {
        return Dispatched::Frame(response_err(id, &ErrorShape::invalid_params(method, &msg)));
    }
    match def.handler {
        Handler::Sync(f) => {
            let ctx = CallCtx {
                state,
                conn,
                id,
                params,
            };
            Dispatched::Frame(f(&ctx).into_frame(id))
        }
        Handler::Async(f) => {
            let call = OwnedCall {
                state: Arc::clone(state),
                conn: Arc::clone(conn),
                id: id.to_string(),
                method: def.name,
                params: req.params.map(|p| p.into_owned()),
            };
            let conn = Arc::clone(conn);
            let id = call.id.clone();
            tokio::spawn(async move {
                let reply = f(call).await;
                if !matches!(reply, Reply::Sent) {
                    conn.send_text(reply.into_frame(&id));
                }
            });
            Dispatched::Spawned
        }
    }
}
