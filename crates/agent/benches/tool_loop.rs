//! Tool dispatch overhead through the agent loop: from the moment the model's answer with a
//! tool call is on the wire (the fake LLM received the request and answers at once, zero
//! latency) to the moment the tool starts running. Covers the HTTP response and SSE parse, the
//! turn collector, the run events, the durable append of the assistant message (the run's
//! invariant: every step is in the transcript before the next one), and the dispatch itself
//! (policy, schema validation, context). Target ≤ 0.2 ms.
//!
//! Run: `cargo bench -p pincer-agent --bench tool_loop`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};
use parking_lot::Mutex;
use pincer_agent::{AgentDeps, AgentOptions, AgentRuntime, RunRequest, RunSource, Settings};
use pincer_fakes::llm::{FakeLlm, FakeLlmOptions, Reply};
use pincer_providers::ProviderClient;
use pincer_sessions::SessionKey;
use pincer_store::{Durability, Store, StoreOptions};
use pincer_tools::{Tool, ToolContext, ToolError, ToolOutput, ToolSpec};
use serde_json::{json, Value};

/// Records when it starts.
struct Probe {
    spec: ToolSpec,
    started: Arc<Mutex<Option<Instant>>>,
}

#[async_trait]
impl Tool for Probe {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    async fn invoke(&self, _args: Value, _ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        *self.started.lock() = Some(Instant::now());
        Ok(ToolOutput::text("probed"))
    }
}

struct Bench {
    rt: AgentRuntime,
    fake: FakeLlm,
    started: Arc<Mutex<Option<Instant>>>,
    _dir: tempfile::TempDir,
    runs: usize,
}

async fn setup(durability: Durability) -> Bench {
    let fake = FakeLlm::start_with(FakeLlmOptions {
        zero_latency: true,
        ..FakeLlmOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config: pincer_config::Config = serde_json::from_value(json!({
        "models": {"providers": {"mock": {
            "baseUrl": fake.openai_base_url(), "api": "openai-completions", "apiKey": "sk-bench",
            "models": [{"id": "mock-model", "contextWindow": 200000}]
        }}},
        "agents": {"defaults": {"model": {"primary": "mock/mock-model"}}}
    }))
    .unwrap();
    let store = Store::open_in_state_dir(
        dir.path(),
        StoreOptions {
            durability,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let started = Arc::new(Mutex::new(None));
    let mut tools = pincer_tools::builtin::builtin_registry(Default::default());
    tools.register(Arc::new(Probe {
        spec: ToolSpec::new(
            "bench_probe",
            "Records when it starts.",
            json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
        ),
        started: started.clone(),
    }));
    let (tx, mut events) = tokio::sync::mpsc::channel(pincer_agent::EVENT_CHANNEL_CAPACITY);
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let rt = AgentRuntime::new(AgentDeps {
        store,
        client: ProviderClient::new().unwrap(),
        tools: Arc::new(tools),
        settings: Settings::new(Arc::new(config), dir.path(), &|_| None),
        events: tx,
        options: AgentOptions::default(),
    });
    Bench {
        rt,
        fake,
        started,
        _dir: dir,
        runs: 0,
    }
}

impl Bench {
    /// One run (tool call, then a text answer); returns request-received → tool-start.
    async fn one(&mut self) -> Duration {
        self.runs += 1;
        self.fake
            .push(Reply::new().tool_call("call_probe", "bench_probe", r#"{"n":1}"#));
        self.fake.push(Reply::new().text("ok"));
        let before = self.fake.model_requests().len();
        *self.started.lock() = None;
        let key = SessionKey::canonicalize(&format!("agent:main:bench-{}", self.runs % 8), "main")
            .unwrap();
        let req = RunRequest::new(format!("run-{}", self.runs), key, "go", RunSource::Agent);
        let mut s = self.rt.submit(req).await.unwrap();
        let outcome = s.handle.outcome().await;
        assert!(
            outcome.tool_names.iter().any(|t| t == "bench_probe"),
            "{outcome:?}"
        );
        let requests = self.fake.model_requests();
        let asked = requests[before].received_at;
        let started = self.started.lock().expect("the probe ran");
        started.duration_since(asked)
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("tool_loop");
    group.sample_size(60);
    group.measurement_time(Duration::from_secs(8));
    for (name, durability) in [
        (
            "model_call_to_tool_start/synchronous_full",
            Durability::Full,
        ),
        (
            "model_call_to_tool_start/synchronous_normal",
            Durability::Normal,
        ),
    ] {
        let mut b = rt.block_on(setup(durability));
        // Warm the workspace, the prompt cache and the connection pool.
        rt.block_on(b.one());
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(b.one());
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
