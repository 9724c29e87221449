//! Per-call context handed to every tool. Cheap to build (a handful of `Arc` clones) so the
//! agent loop can make one per call.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::confine::Workspace;
use crate::exec::approvals::ApprovalsStore;
use crate::exec::process::ProcessRegistry;
use crate::exec::sandbox::Sandbox;
use crate::exec::ExecConfig;
use crate::host::{
    ApprovalHost, AutomationsHost, MemoryIndex, MessagingHost, NodesHost, Requester, SessionsHost,
};
use crate::policy::EffectiveTools;

/// `agents.defaults.sandbox.mode` (defined once, in `pincer-config`).
pub use pincer_config::model::agents::SandboxMode;

/// The host services available to tools; any may be absent (the tool then answers with a clear
/// "not available" error).
#[derive(Clone, Default)]
pub struct Hosts {
    pub approvals: Option<Arc<dyn ApprovalHost>>,
    pub sessions: Option<Arc<dyn SessionsHost>>,
    pub messaging: Option<Arc<dyn MessagingHost>>,
    pub nodes: Option<Arc<dyn NodesHost>>,
    pub memory: Option<Arc<dyn MemoryIndex>>,
    /// The gateway scheduler (`automations` / `cron` tool).
    pub automations: Option<Arc<dyn AutomationsHost>>,
}

/// Long-lived per-agent tool settings (from config).
#[derive(Debug, Clone, Default)]
pub struct ToolsConfig {
    pub exec: ExecConfig,
}

#[derive(Clone)]
pub struct ToolContext {
    pub agent_id: Arc<str>,
    pub session_key: Arc<str>,
    pub run_id: Option<Arc<str>>,
    pub tool_call_id: Option<Arc<str>>,
    /// Confinement roots for file tools and exec cwd.
    pub workspace: Arc<Workspace>,
    /// Configured mode (for reporting); `sandbox` is `Some` when this session is sandboxed.
    pub sandbox_mode: SandboxMode,
    pub sandbox: Option<Arc<Sandbox>>,
    /// The session must be sandboxed but the sandbox cannot run (bubblewrap missing or no
    /// namespaces): the tools that would touch the host fail closed with this reason.
    pub sandbox_unavailable: Option<Arc<str>>,
    pub cancel: CancellationToken,
    /// Effective tool set (policy view); `None` = every registered tool is allowed.
    pub policy: Option<Arc<EffectiveTools>>,
    pub hosts: Hosts,
    pub config: Arc<ToolsConfig>,
    /// Background exec jobs (shared by the agent's sessions; `process` sees only its agent's).
    pub processes: Arc<ProcessRegistry>,
    /// Persistent exec approvals document (allowlists, allow-always grants).
    pub approvals_store: Option<Arc<dyn ApprovalsStore>>,
    /// The call came from a channel message (per-call `ask` cannot raise a host `ask=off`).
    pub channel_origin: bool,
}

impl ToolContext {
    pub fn builder(workspace: Arc<Workspace>) -> ToolContextBuilder {
        ToolContextBuilder::new(workspace)
    }

    pub fn tool_allowed(&self, name: &str) -> bool {
        self.policy.as_ref().is_none_or(|p| p.allows(name))
    }

    pub fn is_sandboxed(&self) -> bool {
        self.sandbox.is_some()
    }

    pub fn requester(&self) -> Requester {
        Requester {
            agent_id: self.agent_id.to_string(),
            session_key: self.session_key.to_string(),
            sandboxed: self.is_sandboxed(),
        }
    }

    /// A copy for another call of the same run (new call id, same everything else).
    pub fn for_call(&self, tool_call_id: Option<&str>) -> Self {
        let mut ctx = self.clone();
        ctx.tool_call_id = tool_call_id.map(Arc::from);
        ctx
    }
}

pub struct ToolContextBuilder {
    ctx: ToolContext,
}

impl ToolContextBuilder {
    pub fn new(workspace: Arc<Workspace>) -> Self {
        Self {
            ctx: ToolContext {
                agent_id: Arc::from("main"),
                session_key: Arc::from("agent:main:main"),
                run_id: None,
                tool_call_id: None,
                workspace,
                sandbox_mode: SandboxMode::Off,
                sandbox: None,
                sandbox_unavailable: None,
                cancel: CancellationToken::new(),
                policy: None,
                hosts: Hosts::default(),
                config: Arc::new(ToolsConfig::default()),
                processes: Arc::new(ProcessRegistry::default()),
                approvals_store: None,
                channel_origin: false,
            },
        }
    }

    pub fn agent_id(mut self, id: &str) -> Self {
        self.ctx.agent_id = Arc::from(id);
        self
    }
    pub fn session_key(mut self, key: &str) -> Self {
        self.ctx.session_key = Arc::from(key);
        self
    }
    pub fn run_id(mut self, id: &str) -> Self {
        self.ctx.run_id = Some(Arc::from(id));
        self
    }
    pub fn tool_call_id(mut self, id: &str) -> Self {
        self.ctx.tool_call_id = Some(Arc::from(id));
        self
    }
    /// Sandbox mode plus the runtime used when it applies to this session.
    pub fn sandbox(mut self, mode: SandboxMode, sandbox: Option<Arc<Sandbox>>) -> Self {
        self.ctx.sandbox_mode = mode;
        self.ctx.sandbox = sandbox;
        self
    }
    /// Fail closed: the session needs the sandbox but it cannot run (see
    /// [`ToolContext::sandbox_unavailable`]).
    pub fn sandbox_unavailable(mut self, reason: &str) -> Self {
        self.ctx.sandbox_unavailable = Some(Arc::from(reason));
        self
    }
    pub fn cancel(mut self, token: CancellationToken) -> Self {
        self.ctx.cancel = token;
        self
    }
    pub fn policy(mut self, policy: Arc<EffectiveTools>) -> Self {
        self.ctx.policy = Some(policy);
        self
    }
    pub fn hosts(mut self, hosts: Hosts) -> Self {
        self.ctx.hosts = hosts;
        self
    }
    pub fn config(mut self, config: Arc<ToolsConfig>) -> Self {
        self.ctx.config = config;
        self
    }
    pub fn processes(mut self, processes: Arc<ProcessRegistry>) -> Self {
        self.ctx.processes = processes;
        self
    }
    pub fn approvals_store(mut self, store: Arc<dyn ApprovalsStore>) -> Self {
        self.ctx.approvals_store = Some(store);
        self
    }
    pub fn channel_origin(mut self, yes: bool) -> Self {
        self.ctx.channel_origin = yes;
        self
    }
    pub fn build(self) -> ToolContext {
        self.ctx
    }
}
