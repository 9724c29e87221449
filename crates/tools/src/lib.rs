//! Built-in agent tools for Pincer and the machinery that keeps them safe.
//!
//! * [`Tool`], [`ToolRegistry`], [`ToolContext`], [`ToolOutput`], [`ToolError`]: the tool API the
//!   agent loop dispatches through (arguments are validated against the tool's JSON schema before
//!   a tool runs).
//! * [`host`]: traits for what only the gateway can do (approvals, sessions, channel messaging,
//!   nodes, memory index).
//! * [`policy`]: profiles, groups and allow/deny layers → the effective tool set and catalog.
//! * [`confine`]: workspace path confinement used by every file tool and by exec's cwd.
//! * [`exec`]: `exec`/`process`, exec security/ask decisions and approvals, bubblewrap sandbox.
//! * [`web`]: `web_fetch` with an SSRF guard.
//! * [`fs`], [`sessions`], [`memory`], [`message`], [`nodes`], [`automations`]: the remaining
//!   built-in tools (`automations` is registered by the gateway, which hosts the scheduler).
//!
//! Typical use by the agent loop:
//!
//! ```ignore
//! // once per agent (or gateway): registry, process registry, sandbox runtime
//! let registry = pincer_tools::builtin::builtin_registry(web_fetch_config);
//! let processes = Arc::new(ProcessRegistry::default());
//! // once per run: the effective tool set decides what the model is offered
//! let policy = Arc::new(resolve_effective_tools(registry.names(), &global, agent, &request));
//! let base = ToolContext::builder(workspace).agent_id(id).session_key(key).run_id(run)
//!     .policy(policy).processes(processes).hosts(hosts).config(cfg).cancel(run_token).build();
//! let tools = registry.specs_for(&base);              // → provider request
//! // per tool call emitted by the model
//! let out = registry.dispatch(&name, args, &base.for_call(Some(&call_id))).await;
//! // out.to_result_json() → `tool` event `result` / transcript `toolResult`; out.is_error
//! ```

pub mod automations;
pub mod builtin;
pub mod confine;
pub mod context;
pub mod error;
pub mod exec;
pub mod fs;
pub mod host;
pub mod memory;
pub mod message;
pub mod nodes;
pub mod output;
pub mod policy;
pub mod registry;
pub mod schema;
pub mod sessions;
pub mod web;

mod util;

pub use context::{SandboxMode, ToolContext, ToolContextBuilder};
pub use error::ToolError;
pub use output::{ContentBlock, ToolOutput};
pub use registry::{Tool, ToolRegistry, ToolSpec};
pub use tokio_util::sync::CancellationToken;
