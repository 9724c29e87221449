//! Tool dispatch overhead: from the model's raw argument string to the tool starting
//! (parse → per-call context → policy check → schema validation → invoke).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};
use pincer_tools::builtin::builtin_registry;
use pincer_tools::confine::Workspace;
use pincer_tools::policy::{
    resolve_effective_tools, PolicyRequest, ToolProfile, ToolsPolicyConfig,
};
use pincer_tools::schema::builtin_spec;
use pincer_tools::web::WebFetchConfig;
use pincer_tools::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSpec};
use serde_json::Value;

/// A tool with a real built-in schema whose body does nothing: what remains is dispatch cost.
struct Noop(ToolSpec);

#[async_trait]
impl Tool for Noop {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    async fn invoke(&self, args: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        black_box(&args);
        Ok(ToolOutput::default())
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.txt"), "hello\nworld\n").unwrap();
    let ws = Arc::new(Workspace::new(dir.path()).unwrap());

    let mut noop = ToolRegistry::new();
    for name in ["read", "exec", "sessions_spawn"] {
        noop.register(Arc::new(Noop(builtin_spec(name).unwrap())));
    }
    let policy = Arc::new(resolve_effective_tools(
        ["read", "exec", "sessions_spawn"],
        &ToolsPolicyConfig {
            profile: Some(ToolProfile::Coding),
            ..ToolsPolicyConfig::default()
        },
        None,
        &PolicyRequest::default(),
    ));
    let base = ToolContext::builder(Arc::clone(&ws)).policy(policy).build();

    let cases = [
        ("read", r#"{"path":"src/main.rs","offset":10,"limit":50}"#),
        (
            "exec",
            r#"{"command":"cargo test -p foo -- --nocapture","workdir":"crates/foo","timeoutSeconds":120,"env":{"RUST_LOG":"debug"},"yieldMs":5000}"#,
        ),
        (
            "sessions_spawn",
            r#"{"task":"Review the diff and report problems","label":"review","cleanup":"delete","context":"isolated","runTimeoutSeconds":600,"placement":{"kind":"local"},"attachments":[]}"#,
        ),
    ];
    let mut group = c.benchmark_group("dispatch_overhead");
    for (tool, raw) in cases {
        group.bench_function(tool, |b| {
            b.to_async(&rt).iter(|| async {
                let args: Value = serde_json::from_str(black_box(raw)).unwrap();
                let ctx = base.for_call(Some("call_abc123"));
                black_box(noop.dispatch(tool, args, &ctx).await)
            });
        });
    }
    group.finish();

    // For scale: a real `read` of a tiny file (includes the blocking-pool hop and openat2).
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let real = builtin_registry(WebFetchConfig::default());
    let ctx = ToolContext::builder(ws).build();
    c.bench_function("read_small_file_end_to_end", |b| {
        b.to_async(&mt).iter(|| async {
            let args: Value = serde_json::from_str(r#"{"path":"small.txt"}"#).unwrap();
            black_box(real.dispatch("read", args, &ctx).await)
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
