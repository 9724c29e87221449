//! OpenClaw Gateway protocol v4: the wire types and the pure rules around them.
//!
//! This crate is the single source of truth for frames, error/close codes, limits, the
//! `connect` handshake shapes, the operator scope model, the method authorization algorithm,
//! the core method and event tables, closed-object validation with the reference's error
//! text, and device-auth signature payloads with Ed25519 verification.
//!
//! No I/O, no async: everything here is a pure function or a plain data type.

pub mod authz;
pub mod close;
pub mod connect;
pub mod device_auth;
pub mod errors;
pub mod events;
pub mod frames;
pub mod hello;
pub mod limits;
pub mod method_table;
pub mod methods;
pub mod params;
pub mod schema;
pub mod scopes;

/// The protocol version this server speaks (`hello-ok.protocol`).
pub const PROTOCOL_VERSION: u32 = 4;
/// Lowest protocol an ordinary client may request.
pub const MIN_CLIENT_PROTOCOL_VERSION: u32 = 4;
/// Nodes (`role:"node"` + `client.mode:"node"`) may still speak v3.
pub const MIN_NODE_PROTOCOL_VERSION: u32 = 3;
/// Probes (`client.mode:"probe"`) may speak v3..v4.
pub const MIN_PROBE_PROTOCOL_VERSION: u32 = 3;
