use std::sync::Arc;

use pincer_tools::builtin::builtin_registry;
use pincer_tools::confine::Workspace;
use pincer_tools::web::WebFetchConfig;
use pincer_tools::{ToolContext, ToolContextBuilder, ToolOutput, ToolRegistry};
use serde_json::Value;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub registry: ToolRegistry,
}

impl Env {
    pub fn new() -> Self {
        Self::with_web(WebFetchConfig::default())
    }

    pub fn with_web(web: WebFetchConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ws")).unwrap();
        Self {
            dir,
            registry: builtin_registry(web),
        }
    }

    pub fn ws_path(&self) -> std::path::PathBuf {
        std::fs::canonicalize(self.dir.path().join("ws")).unwrap()
    }

    pub fn outside_path(&self) -> std::path::PathBuf {
        std::fs::canonicalize(self.dir.path()).unwrap()
    }

    pub fn workspace(&self) -> Arc<Workspace> {
        Arc::new(Workspace::new(self.ws_path()).unwrap())
    }

    pub fn ctx(&self) -> ToolContextBuilder {
        ToolContext::builder(self.workspace())
    }

    pub async fn call(&self, ctx: &ToolContext, tool: &str, args: Value) -> ToolOutput {
        self.registry.dispatch(tool, args, ctx).await
    }
}

/// Text of an output, asserting it is not an error.
pub fn ok_text(out: &ToolOutput) -> String {
    assert!(!out.is_error, "unexpected error: {}", out.text_content());
    out.text_content()
}

/// Text of an output, asserting it is an error.
pub fn err_text(out: &ToolOutput) -> String {
    assert!(
        out.is_error,
        "expected an error, got: {}",
        out.text_content()
    );
    out.text_content()
}

pub fn error_kind(out: &ToolOutput) -> String {
    out.details
        .as_ref()
        .and_then(|d| d.get("errorKind"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Processes whose command line contains `token` (leak checks).
pub fn procs_with(token: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(token))
        .count()
}

/// Wait (bounded) until no process carries `token`; returns the remaining count.
pub async fn wait_gone(token: &str) -> usize {
    for _ in 0..50 {
        if procs_with(token) == 0 {
            return 0;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    procs_with(token)
}
