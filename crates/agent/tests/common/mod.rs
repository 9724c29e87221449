//! Test harness: a real store in a temp dir, the scripted fake LLM, a runtime wired to both.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pincer_agent::*;
use pincer_fakes::llm::{DefaultReply, FakeLlm, FakeLlmOptions};
use pincer_providers::{Backoff, ProviderClient, RetryPolicy};
use pincer_sessions::SessionKey;
use pincer_store::{EntryFilter, HistoryQuery, Store, StoreOptions};
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct Harness {
    pub fake: FakeLlm,
    pub rt: AgentRuntime,
    pub events: mpsc::Receiver<RunEvent>,
    pub store: Store,
    pub dir: tempfile::TempDir,
}

pub struct Opts {
    pub echo: bool,
    pub window: u64,
    pub reasoning: bool,
    pub fallbacks: Vec<String>,
    pub extra_config: Value,
    pub options: AgentOptions,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            echo: false,
            window: 32_000,
            reasoning: false,
            fallbacks: Vec::new(),
            extra_config: json!({}),
            options: fast_options(),
        }
    }
}

/// Short backoffs so retry tests take milliseconds, not seconds.
pub fn fast_options() -> AgentOptions {
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
    AgentOptions {
        retry: Some((
            RetryPolicy::new(backoff, 3).with_max_retry_after(Duration::from_secs(5)),
            RetryPolicy::new(backoff, 2),
        )),
        ..AgentOptions::default()
    }
}

fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

pub async fn harness(opts: Opts) -> Harness {
    let fake = FakeLlm::start_with(FakeLlmOptions {
        default_reply: opts.echo.then_some(DefaultReply::Echo {
            chunk_delay: Duration::ZERO,
        }),
        ..FakeLlmOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = json!({
        "models": {"providers": {"mock": {
            "baseUrl": fake.openai_base_url(), "api": "openai-completions", "apiKey": "sk-test",
            "models": [
                {"id": "mock-model", "name": "Mock Model", "contextWindow": opts.window, "reasoning": opts.reasoning},
                {"id": "backup-model", "contextWindow": opts.window}
            ]
        }}},
        "agents": {"defaults": {"model": {"primary": "mock/mock-model", "fallbacks": opts.fallbacks}}}
    });
    merge(&mut config, &opts.extra_config);
    let config: pincer_config::Config = serde_json::from_value(config).unwrap();
    let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    let settings = Settings::new(Arc::new(config), dir.path(), &|_| None);
    let (tx, events) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
    let rt = AgentRuntime::new(AgentDeps {
        store: store.clone(),
        client: ProviderClient::new().unwrap(),
        tools: Arc::new(pincer_tools::builtin::builtin_registry(Default::default())),
        settings,
        events: tx,
        options: opts.options,
    });
    Harness {
        fake,
        rt,
        events,
        store,
        dir,
    }
}

pub fn key(k: &str) -> SessionKey {
    SessionKey::canonicalize(k, "main").unwrap()
}

pub fn chat(run_id: &str, session: &str, message: &str) -> RunRequest {
    RunRequest::new(run_id, key(session), message, RunSource::Chat)
}

impl Harness {
    pub async fn run(&self, req: RunRequest) -> Arc<RunOutcome> {
        let mut s = self.rt.submit(req).await.unwrap();
        tokio::time::timeout(DEADLINE, s.handle.outcome())
            .await
            .expect("run finished in time")
    }

    /// Events of `run_id` until its End (other runs' events are kept for later calls).
    pub async fn events_of(&mut self, run_id: &str) -> Vec<RunEvent> {
        let mut out = Vec::new();
        loop {
            let ev = tokio::time::timeout(DEADLINE, self.events.recv())
                .await
                .expect("event in time")
                .expect("channel open");
            if &*ev.run_id == run_id {
                let end = ev.is_terminal();
                out.push(ev);
                if end {
                    return out;
                }
            }
        }
    }

    /// The session's row.
    pub async fn entry(&self, session: &str) -> pincer_sessions::SessionEntry {
        self.store
            .get_session(&key(session))
            .await
            .unwrap()
            .expect("the session exists")
            .entry
    }

    /// Every transcript entry of the session's current sessionId.
    pub async fn transcript(&self, session: &str) -> Vec<Value> {
        let page = self
            .store
            .history(
                &key(session),
                HistoryQuery {
                    limit: 1000,
                    cursor: None,
                    filter: EntryFilter::All,
                },
            )
            .await
            .unwrap()
            .unwrap();
        page.entries.iter().map(|e| e.value().unwrap()).collect()
    }

    pub async fn messages(&self, session: &str) -> Vec<Value> {
        self.transcript(session)
            .await
            .into_iter()
            .filter(|e| e["type"] == "message")
            .map(|e| e["message"].clone())
            .collect()
    }

    /// The JSON bodies of the model requests so far.
    pub fn requests(&self) -> Vec<Value> {
        self.fake
            .model_requests()
            .into_iter()
            .map(|r| r.body)
            .collect()
    }
}

/// The text of every user/tool message of a Chat Completions request.
pub fn request_texts(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        })
        .collect()
}

/// Labels of a run's events, without the stored-message announcements (see [`stored`]).
pub fn kinds(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| !matches!(e.kind, RunEventKind::Message(_)))
        .map(|e| match &e.kind {
            RunEventKind::Status { phase, .. } => format!("status:{}", phase.as_str()),
            RunEventKind::Start { .. } => "start".into(),
            RunEventKind::Model { model, .. } => format!("model:{model}"),
            RunEventKind::FallbackStep { .. } => "fallback".into(),
            RunEventKind::AssistantDelta { .. } => "delta".into(),
            RunEventKind::ThinkingDelta { .. } => "thinking".into(),
            RunEventKind::ToolStart { name, .. } => format!("tool_start:{name}"),
            RunEventKind::ToolResult { name, .. } => format!("tool_result:{name}"),
            RunEventKind::Usage { .. } => "usage".into(),
            RunEventKind::Compaction { phase, .. } => format!("compaction:{phase:?}"),
            RunEventKind::Finishing { .. } => "finishing".into(),
            RunEventKind::ModelReleased => "released".into(),
            RunEventKind::End(_) => "end".into(),
            RunEventKind::Message(_) => "message".into(),
        })
        .collect()
}

/// `(role, messageSeq)` of the messages a run announced as stored, in order.
pub fn stored(events: &[RunEvent]) -> Vec<(String, i64)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::Message(m) => Some((
                m.message["role"].as_str().unwrap_or("").to_owned(),
                m.message_seq,
            )),
            _ => None,
        })
        .collect()
}

pub fn deltas(events: &[RunEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::AssistantDelta { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}
