//! Registration of the built-in tools.

use std::sync::Arc;

use crate::registry::ToolRegistry;
use crate::web::{WebFetchConfig, WebFetchTool};

/// A registry with every built-in tool of this crate (and the `bash` alias for `exec`), in the
/// reference's order of importance for the model.
pub fn builtin_registry(web_fetch: WebFetchConfig) -> ToolRegistry {
    let mut r = ToolRegistry::new();
    r.register(Arc::new(crate::fs::ReadTool::default()));
    r.register(Arc::new(crate::fs::WriteTool::default()));
    r.register(Arc::new(crate::fs::EditTool::default()));
    r.register(Arc::new(crate::fs::ApplyPatchTool::default()));
    r.register(Arc::new(crate::exec::ExecTool::default()));
    r.register(Arc::new(crate::exec::process::ProcessTool::default()));
    r.register(Arc::new(WebFetchTool::new(web_fetch)));
    r.register(Arc::new(crate::sessions::SessionStatusTool::default()));
    r.register(Arc::new(crate::sessions::SessionsListTool::default()));
    r.register(Arc::new(crate::sessions::SessionsHistoryTool::default()));
    r.register(Arc::new(crate::sessions::SessionsSendTool::default()));
    r.register(Arc::new(crate::sessions::SessionsSpawnTool::default()));
    r.register(Arc::new(crate::message::MessageTool::default()));
    r.register(Arc::new(crate::memory::MemorySearchTool::default()));
    r.register(Arc::new(crate::memory::MemoryGetTool::default()));
    r.register(Arc::new(crate::nodes::NodesTool::default()));
    r.alias("bash", "exec");
    r
}
