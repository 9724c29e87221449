//! One run: prepare (workspace, session, user message, context, prompt, model, tools), then
//! the model loop (stream → tool calls → results → again), then record and report.
//!
//! Everything the run produces is appended to the transcript before the next step reads it
//! (the store acknowledges after COMMIT), so a crash mid-run loses at most the step in flight.

use std::sync::Arc;

use futures_util::{FutureExt, StreamExt};
use pincer_providers::{
    AssistantMessage, CallOptions, CompletionRequest, ContentBlock, ErrorKind, Message,
    ProviderError, ProviderEvent, ResolvedModel, StopReason, ThinkingLevel, ToolResultMessage,
    TurnCollector, Usage, NO_PROVIDER_HELP,
};
use pincer_sessions::{Touch, TranscriptEntry};
use pincer_store::{AppendAck, AppendOptions, EnsureSession, StoreError};
use pincer_tools::ToolContext;
use serde_json::{json, Map, Value};

use crate::commands;
use crate::compaction;
use crate::context::{self, Context};
use crate::events::{
    Attempt, CompactionPhase, Disposition, RetryInfo, RunError, RunEvent, RunEventKind, RunOutcome,
    RunSource, RunStatus, StatusPhase, StoredMessage,
};
use crate::messages;
use crate::prompt::{build_system_prompt, PromptInput, PromptTool};
use crate::request::RunRequest;
use crate::runtime::{Inner, RunControl};
use crate::settings::Settings;
use crate::util::{now_i64, now_ms};
use crate::workspace::{ensure_workspace, load_bootstrap, BootstrapCaps};

/// Model calls per run unless configured otherwise.
const DEFAULT_MAX_MODEL_CALLS: u32 = 64;
/// Result text of tool calls skipped because a steering message arrived.
pub const SKIPPED_FOR_STEER: &str = "Skipped to process an incoming message.";

/// Assigns per-run `seq` and delivers events to the global channel and the run's observer.
pub(crate) struct Emitter {
    run_id: Arc<str>,
    session_key: Arc<str>,
    agent_id: Arc<str>,
    session_id: Option<Arc<str>>,
    source: RunSource,
    seq: u64,
    global: tokio::sync::mpsc::Sender<RunEvent>,
    observer: Option<tokio::sync::mpsc::Sender<RunEvent>>,
}

impl Emitter {
    pub fn new(inner: &Inner, req: &RunRequest, agent_id: &str) -> Emitter {
        Emitter {
            run_id: Arc::from(req.run_id.as_str()),
            session_key: Arc::from(req.session_key.to_string()),
            agent_id: Arc::from(agent_id),
            session_id: None,
            source: req.source.clone(),
            seq: 0,
            global: inner.events.clone(),
            observer: req.observer.clone(),
        }
    }

    pub fn set_session_id(&mut self, id: &str) {
        self.session_id = Some(Arc::from(id));
    }

    pub async fn emit(&mut self, kind: RunEventKind) {
        self.seq += 1;
        let event = RunEvent {
            run_id: self.run_id.clone(),
            session_key: self.session_key.clone(),
            session_id: self.session_id.clone(),
            agent_id: self.agent_id.clone(),
            source: self.source.clone(),
            seq: self.seq,
            ts: now_ms(),
            kind,
        };
        if let Some(observer) = &self.observer {
            let _ = observer.send(event.clone()).await;
        }
        // A closed receiver (no gateway attached) is fine: outcomes still reach waiters.
        let _ = self.global.send(event).await;
    }

    pub async fn status(&mut self, phase: StatusPhase, retry: Option<RetryInfo>) {
        if self.source.reports_status() {
            self.emit(RunEventKind::Status { phase, retry }).await;
        }
    }

    /// Announces a message the store acknowledged (a one-message append).
    pub async fn stored(&mut self, ack: &AppendAck, written: Written) {
        self.emit(RunEventKind::Message(Arc::new(StoredMessage {
            entry_id: written.id,
            seq: ack.last_seq,
            message_seq: ack.message_count,
            created_at: ack.created_at,
            message: written.message,
        })))
        .await;
    }
}

/// A message on its way into the transcript, announced once its append is acknowledged.
pub(crate) struct Written {
    id: Option<String>,
    message: Value,
}

impl Written {
    /// The transcript entry for `message` and what to announce once it is stored.
    fn entry(message: Value) -> (TranscriptEntry, Written) {
        let entry = TranscriptEntry::message(None, now_i64(), message.clone());
        let written = Written {
            id: entry.id().map(str::to_owned),
            message,
        };
        (entry, written)
    }
}

/// Why the model loop stopped.
enum LoopEnd {
    Done,
    Aborted,
    Failed(RunError),
}

/// Runs one admitted request to its end. Never panics on bad input; every failure becomes
/// an error outcome (and an `End` event).
pub(crate) async fn execute(inner: Arc<Inner>, req: RunRequest, control: RunControl) -> RunOutcome {
    let settings = inner.settings();
    let agent_id = settings.agent_of(&req.session_key);
    let mut em = Emitter::new(&inner, &req, &agent_id);
    let budget = req.timeout.or_else(|| settings.run_timeout());
    let watchdog = budget.map(|budget| {
        let control = control.clone();
        tokio::spawn(async move {
            tokio::time::sleep(budget).await;
            control.abort(crate::events::AbortReason::Timeout);
        })
    });
    let _permit = tokio::select! {
        permit = inner.global.clone().acquire_owned() => permit.ok(),
        () = control.cancel.cancelled() => None,
    };
    let outcome = if control.cancel.is_cancelled() {
        let mut o = RunOutcome::bare(
            &req.run_id,
            &req.session_key.to_string(),
            &agent_id,
            RunStatus::Aborted,
            now_ms(),
        );
        o.abort_reason = control.reason();
        o.stop_reason = control.reason().map(|r| r.as_str().to_owned());
        if control.reason() == Some(crate::events::AbortReason::Timeout) {
            o.status = RunStatus::Timeout;
        }
        em.emit(RunEventKind::End(Arc::new(o.clone()))).await;
        o
    } else {
        let command = if req.interpret_commands {
            commands::parse(&req.message, &settings.reset_triggers())
        } else {
            None
        };
        match command {
            Some(cmd) => {
                commands::run_lane_command(&inner, &settings, req, cmd, &control, &mut em).await
            }
            None => {
                let mut run = Run::new(inner.clone(), settings.clone(), req, control, agent_id);
                run.execute(&mut em).await
            }
        }
    };
    if let Some(w) = watchdog {
        w.abort();
    }
    outcome
}

/// The state of one model run.
pub(crate) struct Run {
    pub inner: Arc<Inner>,
    pub settings: Arc<Settings>,
    pub req: RunRequest,
    pub control: RunControl,
    pub agent_id: String,
    pub outcome: RunOutcome,
    session_id: String,
    context: Context,
    /// The final assistant message, stored in [`Run::finish`].
    pending_final: Option<AssistantMessage>,
}

impl Run {
    pub fn new(
        inner: Arc<Inner>,
        settings: Arc<Settings>,
        req: RunRequest,
        control: RunControl,
        agent_id: String,
    ) -> Run {
        let outcome = RunOutcome::bare(
            &req.run_id,
            &req.session_key.to_string(),
            &agent_id,
            RunStatus::Ok,
            now_ms(),
        );
        Run {
            inner,
            settings,
            req,
            control,
            agent_id,
            outcome,
            session_id: String::new(),
            context: Context::default(),
            pending_final: None,
        }
    }

    pub async fn execute(&mut self, em: &mut Emitter) -> RunOutcome {
        let started_at = self.outcome.started_at;
        let result = self.run(em, started_at).await;
        match result {
            Ok(LoopEnd::Done) => {}
            Ok(LoopEnd::Aborted) => self.mark_aborted(),
            Ok(LoopEnd::Failed(error)) => self.mark_failed(error),
            Err(store) => self.mark_failed(RunError {
                error_kind: "unknown".into(),
                error_message: format!("the session store failed: {store}"),
                error_detail: None,
            }),
        }
        self.finish(em).await
    }

    fn mark_aborted(&mut self) {
        let reason = self.control.reason();
        self.outcome.abort_reason = reason;
        if reason == Some(crate::events::AbortReason::Timeout) {
            self.outcome.status = RunStatus::Timeout;
            self.outcome.stop_reason = Some("timeout".into());
        } else {
            self.outcome.status = RunStatus::Aborted;
            self.outcome.stop_reason = Some(reason.map_or("aborted", |r| r.as_str()).to_owned());
        }
    }

    fn mark_failed(&mut self, error: RunError) {
        self.outcome.status = RunStatus::Error;
        self.outcome.stop_reason = Some("error".into());
        self.outcome.error = Some(error);
    }

    fn append_options(&self, touch: Touch) -> AppendOptions {
        AppendOptions {
            chain: true,
            touch: Some(touch),
            now_ms: now_i64(),
            expected_session_id: Some(self.session_id.clone()),
        }
    }

    async fn append(
        &mut self,
        em: &mut Emitter,
        entry: TranscriptEntry,
        written: Written,
    ) -> Result<(), StoreError> {
        let opts = self.append_options(Touch::AgentActivity);
        let ack = self
            .inner
            .store
            .append(&self.req.session_key, vec![entry], opts)
            .await?;
        em.stored(&ack, written).await;
        Ok(())
    }

    /// Appends an assistant or tool message and adds it to the context.
    async fn append_message(
        &mut self,
        em: &mut Emitter,
        message: Message,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_value(&message).unwrap_or(Value::Null);
        let (entry, written) = Written::entry(value);
        let id = entry.id().unwrap_or_default().to_owned();
        self.append(em, entry, written).await?;
        if let Message::Assistant(a) = &message {
            if matches!(a.stop_reason, Some(StopReason::Error | StopReason::Aborted)) {
                return Ok(());
            }
        }
        self.context.push(id, message);
        Ok(())
    }

    /// Appends user messages (the run's own, or steered ones) and adds them to the context.
    async fn append_user(&mut self, em: &mut Emitter, req: &RunRequest) -> Result<(), StoreError> {
        let value = messages::user_message(
            &req.message,
            &req.run_id,
            now_ms(),
            req.sender_is_owner,
            req.metadata.as_ref(),
            false,
        );
        let (entry, written) = Written::entry(value.clone());
        let id = entry.id().unwrap_or_default().to_owned();
        let opts = self.append_options(Touch::UserMessage);
        let ack = self
            .inner
            .store
            .append(&self.req.session_key, vec![entry], opts)
            .await?;
        em.stored(&ack, written).await;
        if let Some((_, message)) =
            context::entry_to_message(&json!({"type":"message","id":id,"message":value}))
        {
            self.context.push(id, message);
        }
        Ok(())
    }

    async fn run(&mut self, em: &mut Emitter, started_at: u64) -> Result<LoopEnd, StoreError> {
        let settings = self.settings.clone();
        let key = self.req.session_key.clone();
        em.status(StatusPhase::PreparingWorkspace, None).await;
        let workspace = settings.workspace(&self.agent_id);
        let seed = settings.seed_workspace();
        let ws = workspace.clone();
        // Seeding and reading the bootstrap files share one trip to the blocking pool.
        let (file_max, total_max) = settings.bootstrap_caps(&self.agent_id);
        let caps = BootstrapCaps {
            file_max_chars: file_max,
            total_max_chars: total_max,
            include_memory: key.is_main(),
        };
        let seeded = tokio::task::spawn_blocking(move || {
            ensure_workspace(&ws, seed).map(|written| (written, load_bootstrap(&ws, caps)))
        })
        .await;
        let files = match seeded {
            Ok(Ok((written, files))) => {
                if !written.is_empty() {
                    tracing::info!(workspace = %workspace.display(), files = ?written, "seeded a new agent workspace");
                }
                files
            }
            Ok(Err(e)) => {
                return Ok(LoopEnd::Failed(plain_error(format!(
                    "cannot prepare the workspace {}: {e}",
                    workspace.display()
                ))))
            }
            Err(e) => {
                return Ok(LoopEnd::Failed(plain_error(format!(
                    "workspace task failed: {e}"
                ))))
            }
        };

        em.status(StatusPhase::PreparingContext, None).await;
        let mut ensure = EnsureSession::at(now_i64());
        ensure.policy = settings.reset_policy(&key);
        ensure.cwd = Some(workspace.to_string_lossy().into_owned());
        ensure.touch = Some(Touch::UserMessage);
        // One group commit: the session (created or rotated as needed), the user message and
        // the run's status are queued together, so the writer commits them with one fsync.
        let user = messages::user_message(
            &self.req.message,
            &self.req.run_id,
            now_ms(),
            self.req.sender_is_owner,
            self.req.metadata.as_ref(),
            false,
        );
        let run_id = self.req.run_id.clone();
        let session_update = self.req.session_update.clone();
        let store = &self.inner.store;
        let (user_entry, user_written) = Written::entry(user);
        let (ensured, appended, status) = tokio::join!(
            store.ensure_session(&key, ensure),
            store.append(
                &key,
                vec![user_entry],
                AppendOptions {
                    chain: true,
                    touch: None,
                    now_ms: now_i64(),
                    expected_session_id: None,
                },
            ),
            store.update_session(&key, now_i64(), move |e| {
                e.status = Some("running".into());
                e.started_at = Some(i64::try_from(started_at).unwrap_or(0));
                e.ended_at = None;
                e.last_run_id = Some(run_id);
                if let Some(update) = &session_update {
                    update.apply(e);
                }
                Ok(())
            }),
        );
        let ensured = ensured?;
        let appended = appended?;
        status?;
        self.outcome.session_started = ensured.created || ensured.rotated.is_some();
        self.session_id = ensured.record.entry.session_id.clone();
        self.outcome.session_id = Some(self.session_id.clone());
        em.set_session_id(&self.session_id);
        em.stored(&appended, user_written).await;
        let entry = ensured.record.entry;
        // What the model will see (the user message included).
        self.context = context::load_context(&self.inner.store, &self.session_id).await?;

        let choice =
            settings.model_for_run(&self.agent_id, Some(&entry), self.req.model.as_deref());
        let Some(choice) = choice else {
            return self.no_provider(em, NO_PROVIDER_HELP.to_owned()).await;
        };
        let chain = match settings
            .registry
            .resolve_chain(&choice.primary, &choice.fallbacks)
        {
            Ok(chain) => chain,
            Err(e) => return self.no_provider(em, e.to_string()).await,
        };
        let Some(head) = chain.first().cloned() else {
            return self.no_provider(em, NO_PROVIDER_HELP.to_owned()).await;
        };
        self.outcome.requested = Some((head.provider.clone(), head.model.clone()));
        self.outcome.context_window = head.context_window;
        let thinking = self
            .req
            .thinking
            .or_else(|| {
                entry
                    .thinking_level
                    .as_deref()
                    .and_then(ThinkingLevel::parse)
            })
            .unwrap_or_else(|| settings.thinking_default(&self.agent_id));
        let thinking = if head.reasoning {
            thinking
        } else {
            ThinkingLevel::Off
        };

        // Tools: the effective set under the policy, offered to the model and enforced.
        let facts = crate::tooling::session_facts(&settings, &self.agent_id, &key).await;
        let offered = self
            .inner
            .offered_tools(&settings, &self.agent_id, &head, &facts);
        let tool_ctx = match self.tool_context(&settings, &facts, &offered) {
            Ok(ctx) => ctx,
            Err(message) => return Ok(LoopEnd::Failed(plain_error(message))),
        };
        if tool_ctx.tool_allowed("memory_search") {
            crate::memory_index::sync_in_background(&tool_ctx);
        }
        let specs: &[pincer_providers::ToolSpec] = &offered.specs;

        // The system prompt.
        let prompt_tools: Vec<PromptTool> = specs
            .iter()
            .map(|s| PromptTool {
                name: s.name.clone(),
                description: s.description.clone(),
            })
            .collect();
        let identity = settings.identity(&self.agent_id);
        let model_ref = head.model_ref();
        let default_ref = settings
            .configured_model(&self.agent_id)
            .map_or_else(|| model_ref.clone(), |c| c.primary);
        let system_prompt = build_system_prompt(&PromptInput {
            agent_id: &self.agent_id,
            agent_name: identity.name.as_deref(),
            session_key: &key.to_string(),
            session_id: &self.session_id,
            workspace: &workspace,
            model_ref: &model_ref,
            default_model_ref: &default_ref,
            thinking,
            tools: &prompt_tools,
            files: &files,
            now_ms: now_ms(),
            extra: self.req.extra_system_prompt.as_deref(),
            mode: self.req.prompt_mode,
            file_max_chars: file_max,
            total_max_chars: total_max,
        })
        .map(|p| p.text);
        let fixed_tokens =
            system_prompt.as_deref().map_or(0, context::estimate_text) + offered.tokens;

        // Preflight compaction: the projected prompt must leave the reserve free.
        let window = head.context_window;
        let limit = window.saturating_sub(context::reserve_tokens(window));
        if fixed_tokens + self.context.tokens() >= limit {
            self.compact(em, &chain, fixed_tokens, None, false).await?;
        }

        em.emit(RunEventKind::Start { started_at }).await;
        em.status(StatusPhase::StartingModel, None).await;

        let max_calls = self
            .inner
            .options
            .max_model_calls
            .unwrap_or(DEFAULT_MAX_MODEL_CALLS)
            .max(1);
        let turn_id = uuid::Uuid::new_v4().to_string();
        let mut options = CallOptions {
            cancel: self.control.cancel.child_token(),
            idle_timeout: self.inner.options.idle_timeout,
            ..CallOptions::default()
        };
        if let Some((rate, transient)) = self.inner.options.retry {
            options.rate_limit_retry = rate;
            options.transient_retry = transient;
        }
        let mut calls = 0u32;
        let mut overflow_retried = false;
        loop {
            if self.control.cancel.is_cancelled() {
                self.append_aborted(em, AssistantMessage::default()).await?;
                return Ok(LoopEnd::Aborted);
            }
            if calls > 0 {
                for steered in self.control.take_steered() {
                    self.append_user(em, &steered).await?;
                }
            }
            calls += 1;
            if calls > max_calls {
                return Ok(LoopEnd::Failed(plain_error(format!(
                    "the run stopped after {max_calls} model calls without finishing"
                ))));
            }
            let request = Arc::new(CompletionRequest {
                system_prompt: system_prompt.clone(),
                messages: self.context.messages(),
                tools: offered.specs.clone(),
                max_tokens: None,
                thinking,
                temperature: None,
            });
            self.outcome.prompt_tokens_estimate = fixed_tokens + self.context.tokens();
            let item_id: Arc<str> = Arc::from(format!("{turn_id}:{calls}"));
            let (mut message, error) = self
                .stream_call(em, &chain, request, &options, &item_id)
                .await;
            message.timestamp = Some(now_ms());
            messages::tag_run(&mut message.extra, &self.req.run_id);
            let usage = message.usage.unwrap_or_default();
            add_usage(&mut self.outcome.usage, &usage);
            self.outcome.last_call_usage = Some(usage);

            if self.control.cancel.is_cancelled()
                || error
                    .as_ref()
                    .is_some_and(|e| e.kind == ErrorKind::Cancelled)
            {
                self.append_aborted(em, message).await?;
                return Ok(LoopEnd::Aborted);
            }
            if let Some(error) = error {
                if error.kind == ErrorKind::ContextLength
                    && !overflow_retried
                    && !message_has_output(&message)
                {
                    overflow_retried = true;
                    calls -= 1;
                    if self.compact(em, &chain, fixed_tokens, None, true).await? {
                        continue;
                    }
                }
                message.stop_reason = Some(StopReason::Error);
                if message.error_message.is_none() {
                    message.error_message = Some(error.message.clone());
                }
                self.append_message(em, Message::Assistant(message.clone()))
                    .await?;
                self.outcome.message = Some(message);
                return Ok(LoopEnd::Failed(provider_error(&error)));
            }
            self.outcome.assistant_turns += 1;
            em.emit(RunEventKind::Usage {
                call: usage,
                run: self.outcome.usage,
            })
            .await;
            let calls_made: Vec<(String, String, Value)> = message
                .tool_calls()
                .map(|(id, name, args)| (id.to_owned(), name.to_owned(), args.clone()))
                .collect();
            self.outcome.message = Some(message.clone());
            if calls_made.is_empty() && !self.control.has_steered() {
                // The final answer is written together with the session's run record
                // (one group commit) before the terminal events.
                self.pending_final = Some(message);
                return Ok(LoopEnd::Done);
            }
            // The call is durable before its tools start (every step is in the transcript
            // before the next): a crash never leaves a side effect without its call.
            self.append_message(em, Message::Assistant(message)).await?;
            if calls_made.is_empty() {
                continue;
            }
            if self.run_tools(em, &tool_ctx, calls_made).await? {
                return Ok(LoopEnd::Aborted);
            }
        }
    }

    /// Streams one model call through the chain, emitting events; returns the collected
    /// message and the error it ended with, if any.
    async fn stream_call(
        &mut self,
        em: &mut Emitter,
        chain: &[ResolvedModel],
        request: Arc<CompletionRequest>,
        options: &CallOptions,
        item_id: &Arc<str>,
    ) -> (AssistantMessage, Option<ProviderError>) {
        self.inner.client.ready().await;
        let mut stream = self
            .inner
            .client
            .stream_chain_shared(chain, request, options);
        let mut collector = TurnCollector::new();
        // Text that arrived in one burst (one network read) goes out as one delta event.
        let mut burst = String::new();
        loop {
            let next = if burst.is_empty() {
                stream.next().await
            } else {
                match stream.next().now_or_never() {
                    Some(next) => next,
                    None => {
                        em.emit(RunEventKind::AssistantDelta {
                            item_id: item_id.clone(),
                            delta: std::mem::take(&mut burst),
                        })
                        .await;
                        stream.next().await
                    }
                }
            };
            let Some(event) = next else { break };
            if let ProviderEvent::TextDelta { text } = &event {
                burst.push_str(text);
                collector.push(&event);
                continue;
            }
            if !burst.is_empty() {
                em.emit(RunEventKind::AssistantDelta {
                    item_id: item_id.clone(),
                    delta: std::mem::take(&mut burst),
                })
                .await;
            }
            match &event {
                ProviderEvent::ModelStart {
                    provider,
                    model,
                    fallback_from,
                    ..
                } => {
                    if let Some(from) = fallback_from {
                        if let Some(last) = self.outcome.attempts.last_mut() {
                            last.result = from.kind.as_str().to_owned();
                        }
                        em.emit(RunEventKind::FallbackStep {
                            from_provider: from.provider.clone(),
                            from_model: from.model.clone(),
                            to_provider: provider.clone(),
                            to_model: model.clone(),
                            reason: from.kind.as_str().to_owned(),
                            message: from.message.clone(),
                        })
                        .await;
                    }
                    self.outcome.attempts.push(Attempt {
                        provider: provider.clone(),
                        model: model.clone(),
                        result: "pending".into(),
                    });
                    self.outcome.effective = Some((provider.clone(), model.clone()));
                    em.emit(RunEventKind::Model {
                        provider: provider.clone(),
                        model: model.clone(),
                    })
                    .await;
                }
                ProviderEvent::Retrying {
                    attempt,
                    max_attempts,
                    delay,
                    error,
                } => {
                    tracing::info!(run = %self.req.run_id, provider = %error.provider, kind = %error.kind,
                        attempt, delay_ms = delay.as_millis() as u64, "model call will be retried");
                    em.status(
                        StatusPhase::Retrying,
                        Some(RetryInfo {
                            attempt: *attempt,
                            max_attempts: *max_attempts,
                            reason: error.kind.as_str().to_owned(),
                            delay_ms: delay.as_millis() as u64,
                        }),
                    )
                    .await;
                }
                ProviderEvent::ThinkingDelta { text } if !text.is_empty() => {
                    em.emit(RunEventKind::ThinkingDelta {
                        item_id: item_id.clone(),
                        delta: text.clone(),
                    })
                    .await;
                }
                ProviderEvent::Done { .. } => {
                    if let Some(last) = self.outcome.attempts.last_mut() {
                        last.result = "success".into();
                    }
                }
                ProviderEvent::Error(e) => {
                    if let Some(last) = self.outcome.attempts.last_mut() {
                        last.result = e.kind.as_str().to_owned();
                    }
                }
                _ => {}
            }
            collector.push(&event);
        }
        if !burst.is_empty() {
            em.emit(RunEventKind::AssistantDelta {
                item_id: item_id.clone(),
                delta: burst,
            })
            .await;
        }
        let error = collector.error().cloned();
        let finished = collector.is_finished();
        let message = collector.into_message();
        if !finished && error.is_none() {
            // The stream ended without a terminal event (should not happen): treat as cut.
            let e = ProviderError::new(
                ErrorKind::Network,
                message.provider.as_deref().unwrap_or(""),
                message.model.as_deref().unwrap_or(""),
                "the model stream ended unexpectedly",
            );
            return (message, Some(e));
        }
        (message, error)
    }

    /// Runs the model's tool calls in order. Returns `true` when the run was aborted.
    async fn run_tools(
        &mut self,
        em: &mut Emitter,
        base: &ToolContext,
        calls: Vec<(String, String, Value)>,
    ) -> Result<bool, StoreError> {
        let mut skip_rest = false;
        for (index, (id, name, args)) in calls.into_iter().enumerate() {
            if index > 0 && !skip_rest && self.control.has_steered() {
                skip_rest = true;
            }
            if skip_rest || self.control.cancel.is_cancelled() {
                let text = if skip_rest {
                    SKIPPED_FOR_STEER
                } else {
                    "Tool call cancelled."
                };
                let mut result = ToolResultMessage {
                    tool_call_id: id,
                    tool_name: name,
                    content: vec![ContentBlock::text(text)],
                    details: None,
                    is_error: !skip_rest,
                    timestamp: Some(now_ms()),
                    extra: Map::new(),
                };
                messages::tag_run(&mut result.extra, &self.req.run_id);
                self.append_message(em, Message::ToolResult(result)).await?;
                continue;
            }
            let meta = tool_meta(&name, &args);
            let title = tool_title(&name, meta.as_deref());
            let started_at = now_ms();
            em.emit(RunEventKind::ToolStart {
                tool_call_id: id.clone(),
                name: name.clone(),
                args: args.clone(),
                title: title.clone(),
                meta: meta.clone(),
                started_at,
            })
            .await;
            let output = self
                .inner
                .tools
                .dispatch(&name, args, &base.for_call(Some(&id)))
                .await;
            let ended_at = now_ms();
            let meta = output.meta.clone().or(meta);
            let result_json = output.to_result_json();
            em.emit(RunEventKind::ToolResult {
                tool_call_id: id.clone(),
                name: name.clone(),
                is_error: output.is_error,
                title,
                meta,
                result: result_json,
                started_at,
                ended_at,
            })
            .await;
            if !output.is_error && !self.outcome.tool_names.contains(&name) {
                self.outcome.tool_names.push(name.clone());
            }
            let content = output
                .content
                .iter()
                .map(|b| match b {
                    pincer_tools::ContentBlock::Text { text } => ContentBlock::text(text.clone()),
                    pincer_tools::ContentBlock::Image { data, mime_type } => ContentBlock::Image {
                        data: data.clone(),
                        mime_type: mime_type.clone(),
                    },
                })
                .collect();
            let mut result = ToolResultMessage {
                tool_call_id: id,
                tool_name: name,
                content,
                details: output.details.clone(),
                is_error: output.is_error,
                timestamp: Some(ended_at),
                extra: Map::new(),
            };
            messages::tag_run(&mut result.extra, &self.req.run_id);
            self.append_message(em, Message::ToolResult(result)).await?;
        }
        if self.control.cancel.is_cancelled() {
            self.append_aborted(em, AssistantMessage::default()).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Records the aborted turn: the partial assistant message with `stopReason: aborted`.
    async fn append_aborted(
        &mut self,
        em: &mut Emitter,
        mut message: AssistantMessage,
    ) -> Result<(), StoreError> {
        message.stop_reason = Some(StopReason::Aborted);
        message.timestamp.get_or_insert_with(now_ms);
        if message.usage.is_none() {
            message.usage = Some(Usage::default());
        }
        if message.error_message.is_none() {
            message.error_message = Some(format!(
                "aborted ({})",
                self.control.reason().map_or("aborted", |r| r.as_str())
            ));
        }
        if !message.extra.contains_key("__openclaw") {
            messages::tag_run(&mut message.extra, &self.req.run_id);
        }
        // Keep only the visible part; unfinished tool calls never ran.
        message
            .content
            .retain(|b| !matches!(b, ContentBlock::ToolCall { .. }));
        self.outcome.message = Some(message.clone());
        self.append_message(em, Message::Assistant(message)).await
    }

    /// No usable provider: records the help text as the failed turn.
    async fn no_provider(&mut self, em: &mut Emitter, text: String) -> Result<LoopEnd, StoreError> {
        let mut message = AssistantMessage {
            stop_reason: Some(StopReason::Error),
            error_message: Some(text.clone()),
            timestamp: Some(now_ms()),
            usage: Some(Usage::default()),
            ..AssistantMessage::default()
        };
        messages::tag_run(&mut message.extra, &self.req.run_id);
        self.append_message(em, Message::Assistant(message)).await?;
        Ok(LoopEnd::Failed(plain_error(text)))
    }

    /// Compacts the context; returns whether it did.
    async fn compact(
        &mut self,
        em: &mut Emitter,
        chain: &[ResolvedModel],
        fixed_tokens: u64,
        instructions: Option<&str>,
        force: bool,
    ) -> Result<bool, StoreError> {
        let tokens_before = fixed_tokens + self.context.tokens();
        let window = chain.first().map_or(0, |m| m.context_window);
        em.emit(RunEventKind::Compaction {
            phase: CompactionPhase::Start,
            tokens_before,
            tokens_after: None,
        })
        .await;
        let result = compaction::compact_context(
            &self.inner,
            &self.req.session_key,
            &self.session_id,
            &mut self.context,
            chain,
            window,
            tokens_before,
            instructions,
            &self.control.cancel,
            force,
        )
        .await;
        match result {
            Ok(()) => {
                em.emit(RunEventKind::Compaction {
                    phase: CompactionPhase::End,
                    tokens_before,
                    tokens_after: Some(fixed_tokens + self.context.tokens()),
                })
                .await;
                Ok(true)
            }
            Err(compaction::CompactError::Store(e)) => Err(e),
            Err(e) => {
                tracing::warn!(session = %self.req.session_key, error = %e, "compaction failed; continuing without it");
                em.emit(RunEventKind::Compaction {
                    phase: CompactionPhase::Failed,
                    tokens_before,
                    tokens_after: None,
                })
                .await;
                Ok(false)
            }
        }
    }

    fn tool_context(
        &self,
        settings: &Arc<Settings>,
        facts: &crate::tooling::SessionFacts,
        offered: &OfferedTools,
    ) -> Result<ToolContext, String> {
        let key = self.req.session_key.to_string();
        self.inner.tool_context_for(crate::tooling::ContextSpec {
            settings,
            facts,
            agent_id: &self.agent_id,
            session_key: &key,
            run_id: Some(&self.req.run_id),
            policy: offered.policy.clone(),
            cancel: self.control.cancel.child_token(),
            channel_origin: matches!(self.req.source, RunSource::Channel { .. }),
        })
    }

    /// Records the run in the session entry, reports `finishing`/`end`, returns the outcome.
    async fn finish(&mut self, em: &mut Emitter) -> RunOutcome {
        let ended_at = now_ms();
        self.outcome.ended_at = ended_at;
        let aborted = matches!(self.outcome.status, RunStatus::Aborted | RunStatus::Timeout);
        let stop_reason = self.outcome.stop_reason.clone().unwrap_or_else(|| {
            self.outcome
                .message
                .as_ref()
                .and_then(|m| m.stop_reason)
                .map_or("stop", StopReason::as_str)
                .to_owned()
        });
        self.outcome.stop_reason = Some(stop_reason.clone());
        let (text, disposition) =
            terminal_reply(self.outcome.message.as_ref(), self.outcome.status);
        self.outcome.text = text;
        self.outcome.disposition = disposition;
        em.emit(RunEventKind::Finishing {
            stop_reason,
            aborted,
            ended_at,
        })
        .await;
        if !self.session_id.is_empty() {
            let pending = self.pending_final.take().map(|m| {
                let value = serde_json::to_value(Message::Assistant(m)).unwrap_or(Value::Null);
                Written::entry(value)
            });
            let opts = self.append_options(Touch::AgentActivity);
            let (store, key) = (self.inner.store.clone(), self.req.session_key.clone());
            let append = async move {
                match pending {
                    Some((entry, written)) => {
                        let ack = store.append(&key, vec![entry], opts).await?;
                        Ok(Some((ack, written)))
                    }
                    None => Ok::<_, StoreError>(None),
                }
            };
            let (appended, ()) = tokio::join!(append, self.record_session(ended_at, aborted));
            match appended {
                Ok(Some((ack, written))) => em.stored(&ack, written).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(session = %self.req.session_key, error = %e, "could not store the final answer");
                    self.outcome.status = RunStatus::Error;
                    self.outcome.error =
                        Some(plain_error(format!("the session store failed: {e}")));
                }
            }
        }
        em.emit(RunEventKind::ModelReleased).await;
        let outcome = self.outcome.clone();
        em.emit(RunEventKind::End(Arc::new(outcome.clone()))).await;
        outcome
    }

    async fn record_session(&self, ended_at: u64, aborted: bool) {
        let key = &self.req.session_key;
        let usage = self.outcome.usage;
        let last = self.outcome.last_call_usage;
        let report = pincer_sessions::UsageReport {
            input: usage.input,
            output: usage.output,
            cache_read: usage.cache_read,
            cache_write: usage.cache_write,
            total_tokens: last.map(|l| l.input + l.cache_read + l.cache_write),
            cost_usd: usage.cost.total,
        };
        let status = match self.outcome.status {
            RunStatus::Ok => "done",
            RunStatus::Error => "failed",
            RunStatus::Aborted | RunStatus::Timeout => "aborted",
        };
        let started_at = i64::try_from(self.outcome.started_at).unwrap_or(0);
        let ended = i64::try_from(ended_at).unwrap_or(0);
        let effective = self
            .outcome
            .effective
            .clone()
            .or(self.outcome.requested.clone());
        let window = self.outcome.context_window;
        let estimate = self.outcome.prompt_tokens_estimate;
        let session_id = self.session_id.clone();
        let now = now_i64();
        let result = self
            .inner
            .store
            .update_session(key, now, move |e| {
                e.record_usage(&report, now);
                e.status = Some(status.into());
                e.started_at = Some(started_at);
                e.ended_at = Some(ended);
                e.runtime_ms = Some(ended - started_at);
                e.aborted_last_run = Some(aborted);
                e.system_sent = Some(true);
                if let Some((provider, model)) = effective {
                    e.model_provider = Some(provider.clone());
                    e.model = Some(model.clone());
                    if window > 0 {
                        e.context_tokens = Some(window);
                        let reserve = context::reserve_tokens(window);
                        e.extra.insert(
                            "contextBudgetStatus".into(),
                            json!({
                                "schemaVersion": 1,
                                "source": "pre-prompt-estimate",
                                "updatedAt": now,
                                "provider": provider,
                                "model": model,
                                "route": if estimate + reserve >= window { "compact" } else { "fits" },
                                "shouldCompact": estimate + reserve >= window,
                                "estimatedPromptTokens": estimate,
                                "contextTokenBudget": window,
                                "promptBudgetBeforeReserve": window - reserve,
                                "reserveTokens": reserve,
                                "effectiveReserveTokens": reserve,
                                "remainingPromptBudgetTokens": (window - reserve).saturating_sub(estimate),
                                "overflowTokens": (estimate + reserve).saturating_sub(window),
                                "sessionId": session_id,
                            }),
                        );
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(session = %key, error = %e, "could not record the run in the session entry");
        }
    }
}

fn add_usage(total: &mut Usage, call: &Usage) {
    total.input += call.input;
    total.output += call.output;
    total.cache_read += call.cache_read;
    total.cache_write += call.cache_write;
    total.total_tokens += call.total_tokens;
    total.cost.input += call.cost.input;
    total.cost.output += call.cost.output;
    total.cost.cache_read += call.cost.cache_read;
    total.cost.cache_write += call.cost.cache_write;
    total.cost.total += call.cost.total;
}

fn message_has_output(message: &AssistantMessage) -> bool {
    !message.content.is_empty()
}

/// The visible reply and its disposition (`NO_REPLY` is silent).
pub(crate) fn terminal_reply(
    message: Option<&AssistantMessage>,
    status: RunStatus,
) -> (String, Disposition) {
    let text = message.map(AssistantMessage::text).unwrap_or_default();
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("NO_REPLY") {
        return (String::new(), Disposition::Silent);
    }
    if trimmed.is_empty() || status == RunStatus::Error && message.is_none() {
        return (String::new(), Disposition::Empty);
    }
    (text, Disposition::Visible)
}

pub(crate) fn plain_error(message: String) -> RunError {
    RunError {
        error_kind: "unknown".into(),
        error_message: message,
        error_detail: None,
    }
}

fn provider_error(error: &ProviderError) -> RunError {
    RunError {
        error_kind: error.kind.wire_error_kind().to_owned(),
        error_message: error.to_string(),
        error_detail: Some(error.error_detail()),
    }
}

/// A short label of what a call touches (`from USER.md`, `ls -la`), for progress UIs.
fn tool_meta(name: &str, args: &Value) -> Option<String> {
    let s = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
    match name {
        "read" => s("path").map(|p| format!("from {p}")),
        "write" | "edit" => s("path").map(|p| format!("to {p}")),
        "exec" | "bash" => s("command").map(|c| crate::util::preview(&c, 80)),
        "web_fetch" => s("url"),
        "process" => s("action"),
        "session_status" => Some("status".into()),
        _ => None,
    }
}

/// `Read from USER.md`-style titles.
fn tool_title(name: &str, meta: Option<&str>) -> String {
    let mut label: String = name.replace('_', " ");
    if let Some(first) = label.get(..1) {
        label = first.to_ascii_uppercase() + &label[1..];
    }
    match meta {
        Some(m) => format!("{label} {m}"),
        None => label,
    }
}

/// The tools a run offers under the policy, with their schemas in the providers' shape and
/// their token estimate (computed once per config version, agent and model).
pub(crate) struct OfferedTools {
    pub policy: Arc<pincer_tools::policy::EffectiveTools>,
    pub specs: Arc<[pincer_providers::ToolSpec]>,
    pub tokens: u64,
}

impl Inner {
    pub(crate) fn offered_tools(
        &self,
        settings: &Arc<Settings>,
        agent_id: &str,
        head: &ResolvedModel,
        facts: &crate::tooling::SessionFacts,
    ) -> Arc<OfferedTools> {
        let key = (
            settings.generation as usize,
            agent_id.to_owned(),
            head.provider.clone(),
            head.model.clone(),
            facts.policy_bits(),
        );
        if let Some(hit) = self.tool_cache.lock().get(&key) {
            return hit.clone();
        }
        let policy = crate::tooling::resolve_policy(
            self.tools.names(),
            &settings.config,
            agent_id,
            Some((&head.provider, &head.model)),
            facts,
        );
        let specs: Arc<[pincer_providers::ToolSpec]> = self
            .tools
            .specs()
            .into_iter()
            .filter(|s| policy.allows(&s.name))
            .map(|s| pincer_providers::ToolSpec {
                name: s.name.clone(),
                description: s.description.clone(),
                parameters: s.parameters.clone(),
            })
            .collect();
        let tokens = specs
            .iter()
            .map(|s| {
                context::estimate_text(&s.parameters.to_string())
                    + context::estimate_text(&s.description)
            })
            .sum();
        let offered = Arc::new(OfferedTools {
            policy: Arc::new(policy),
            specs,
            tokens,
        });
        let mut cache = self.tool_cache.lock();
        if cache.len() >= 64 {
            // Old config versions and models: start over rather than track ages.
            cache.clear();
        }
        cache.insert(key, offered.clone());
        offered
    }
}
