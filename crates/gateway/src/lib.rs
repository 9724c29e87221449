//! The Pincer gateway server: transport, handshake and auth, dispatcher, event bus, connection
//! registry, HTTP probes and the method handlers (one module per namespace under `methods/`).
//!
//! Entry point: [`server::run`] with a [`config::GatewayConfig`].

pub mod agent_hub;
pub mod approvals;
pub mod auth;
pub mod automations;
pub mod channels;
pub mod config;
pub mod connection;
pub mod control_ui;
pub mod dedupe;
pub mod dispatch;
pub mod events;
pub mod handshake;
pub mod health;
pub mod http;
pub mod http_api;
pub mod identity;
pub mod live_config;
pub mod logging;
pub mod methods;
pub mod nodes;
pub mod pairing;
pub mod presence;
pub mod projection;
pub mod ratelimit;
pub mod registry;
pub mod reload;
pub mod security;
pub mod server;
pub mod session_rows;
pub mod sessions_hub;
pub mod state;
pub mod state_dir;
pub mod subscriptions;
pub mod tls;
pub mod transport;
pub mod util;

pub use config::GatewayConfig;
pub use server::run;
