//! Chat commands (runtime.md §10): a message that is exactly a command is answered by the
//! gateway instead of the model. Replies are gateway-injected assistant messages (stored in
//! the transcript, shown to people, never replayed to the model).
//!
//! `/stop`, `/status`, `/help`, `/model`, `/think` and `/verbose` are answered at once, even
//! while a run is active. `/new`, `/reset` and `/compact` change the conversation, so they
//! wait for the session's lane like any turn.

use std::sync::Arc;

use pincer_providers::{AssistantMessage, ThinkingLevel};
use pincer_sessions::{
    parse_reset_command, ResetCommand, ResetReason, SessionKey, TranscriptEntry,
};
use pincer_store::{AppendOptions, EnsureSession};

use crate::compaction::{self, CompactError, CompactReport};
use crate::context;
use crate::events::{RunEventKind, RunOutcome, RunStatus};
use crate::messages;
use crate::request::RunRequest;
use crate::run::{Emitter, Run};
use crate::runtime::{Inner, RunControl};
use crate::settings::{session_model_override, Settings};
use crate::util::{now_i64, now_ms};

/// Reply to `/reset`.
pub const RESET_REPLY: &str = "✅ Session reset.";
/// Reply to `/new`.
pub const NEW_REPLY: &str = "✅ New session started.";
/// Reply to `/stop` when a run was aborted.
pub const STOP_REPLY: &str = "⚙️ Agent was aborted.";
/// Reply to `/stop` when nothing was running.
pub const STOP_IDLE_REPLY: &str = "⚙️ Nothing is running.";

/// Standalone phrases that stop the active run (no slash needed).
const STOP_PHRASES: &[&str] = &[
    "stop",
    "stop run",
    "stop agent",
    "stop the agent",
    "stop current run",
    "please stop",
    "stop please",
    "abort",
    "esc",
    "interrupt",
    "halt",
];

pub const HELP_TEXT: &str = "Commands (send them as the whole message):
/new [model] — start a fresh session (optionally on another model)
/reset — clear the conversation and start over in this session
/stop — abort the current run
/status — model, tokens, context use and queue of this session
/model [provider/model | default | list] — show or pin the model for this session
/think <off|minimal|low|medium|high|xhigh|adaptive|max|ultra|default> — reasoning effort
/verbose <on|off|full> — tool progress detail
/compact [focus] — summarise older messages to free context
/help — this list";

/// A recognised command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    New { model: Option<String> },
    Reset { tail: Option<String> },
    Stop,
    Status,
    Help,
    Model { arg: Option<String> },
    Think { level: Option<String> },
    Verbose { level: Option<String> },
    Compact { instructions: Option<String> },
}

impl Command {
    /// The command word (`new`, `reset`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Command::New { .. } => "new",
            Command::Reset { .. } => "reset",
            Command::Stop => "stop",
            Command::Status => "status",
            Command::Help => "help",
            Command::Model { .. } => "model",
            Command::Think { .. } => "think",
            Command::Verbose { .. } => "verbose",
            Command::Compact { .. } => "compact",
        }
    }

    /// Answered at once, outside the session's lane.
    pub fn is_immediate(&self) -> bool {
        !matches!(
            self,
            Command::New { .. } | Command::Reset { .. } | Command::Compact { .. }
        )
    }
}

/// Recognises a whole-message command (and the configured reset triggers and stop phrases).
pub fn parse(text: &str, reset_triggers: &[String]) -> Option<Command> {
    let trimmed = text.trim();
    if let Some(reset) = parse_reset_command(trimmed, reset_triggers) {
        return Some(match reset {
            ResetCommand::New { model } => Command::New { model },
            ResetCommand::Reset { tail } | ResetCommand::ResetSoft { tail } => {
                Command::Reset { tail }
            }
        });
    }
    if !trimmed.starts_with('/') {
        let phrase = trimmed.trim_end_matches(['.', '!']).to_ascii_lowercase();
        return STOP_PHRASES
            .contains(&phrase.as_str())
            .then_some(Command::Stop);
    }
    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((w, r)) => (w, Some(r.trim()).filter(|r| !r.is_empty())),
        None => (trimmed, None),
    };
    let arg = rest.map(str::to_owned);
    Some(match word.to_ascii_lowercase().as_str() {
        "/stop" if rest.is_none() => Command::Stop,
        "/status" => Command::Status,
        "/help" | "/commands" => Command::Help,
        "/model" => Command::Model { arg },
        "/models" => Command::Model {
            arg: Some("list".into()),
        },
        "/think" | "/thinking" | "/t" => Command::Think { level: arg },
        "/verbose" | "/v" => Command::Verbose { level: arg },
        "/compact" => Command::Compact { instructions: arg },
        _ => return None,
    })
}

/// Appends the command message and its reply when the session exists (`create` makes it).
async fn record(inner: &Inner, req: &RunRequest, reply: &AssistantMessage, create: bool) {
    let key = &req.session_key;
    let exists = match inner.store.get_session(key).await {
        Ok(Some(_)) => true,
        Ok(None) if create => inner
            .store
            .ensure_session(key, EnsureSession::at(now_i64()))
            .await
            .is_ok(),
        _ => false,
    };
    if !exists {
        return;
    }
    let user = messages::user_message(
        &req.message,
        &req.run_id,
        now_ms(),
        req.sender_is_owner,
        req.metadata.as_ref(),
        true,
    );
    let reply_value = messages::assistant_value(reply);
    let now = now_i64();
    let result = inner
        .store
        .append(
            key,
            vec![
                TranscriptEntry::message(None, now, user),
                TranscriptEntry::message(None, now, reply_value),
            ],
            AppendOptions {
                chain: true,
                touch: None,
                now_ms: now,
                expected_session_id: None,
            },
        )
        .await;
    if let Err(e) = result {
        tracing::warn!(session = %key, error = %e, "could not record a command reply");
    }
}

fn reply_outcome(
    req: &RunRequest,
    agent_id: &str,
    name: &str,
    text: &str,
    started_at: u64,
) -> RunOutcome {
    let mut outcome = RunOutcome::bare(
        &req.run_id,
        &req.session_key.to_string(),
        agent_id,
        RunStatus::Ok,
        started_at,
    );
    let message = messages::injected_assistant(text, now_ms(), None);
    outcome.text = text.to_owned();
    outcome.disposition = crate::events::Disposition::Visible;
    outcome.stop_reason = Some("stop".into());
    outcome.message = Some(message);
    outcome.command = Some(name.to_owned());
    outcome.ended_at = now_ms();
    outcome
}

/// Answers an immediate command (its own events: `Start`, then `End`).
pub(crate) async fn run_immediate(inner: &Arc<Inner>, req: RunRequest, cmd: Command) -> RunOutcome {
    let settings = inner.settings();
    let agent_id = settings.agent_of(&req.session_key);
    let mut em = Emitter::new(inner, &req, &agent_id);
    let started_at = now_ms();
    em.emit(RunEventKind::Start { started_at }).await;
    let key = req.session_key.clone();
    let (text, persist) = match &cmd {
        Command::Stop => {
            let stopped = inner.stop_session(&key.to_string(), &req.run_id);
            (
                if stopped.is_empty() {
                    STOP_IDLE_REPLY.to_owned()
                } else {
                    STOP_REPLY.to_owned()
                },
                false,
            )
        }
        Command::Status => (crate::status::card(inner, &key).await, false),
        Command::Help => (HELP_TEXT.to_owned(), false),
        Command::Think { level } => (
            think(inner, &settings, &key, &agent_id, level.as_deref()).await,
            true,
        ),
        Command::Verbose { level } => (verbose(inner, &key, level.as_deref()).await, true),
        Command::Model { arg } => (
            model(inner, &settings, &key, &agent_id, arg.as_deref()).await,
            true,
        ),
        Command::New { .. } | Command::Reset { .. } | Command::Compact { .. } => (
            "This command runs in the session's turn order.".to_owned(),
            false,
        ),
    };
    let outcome = reply_outcome(&req, &agent_id, cmd.name(), &text, started_at);
    if let Some(message) = &outcome.message {
        record(inner, &req, message, persist).await;
    }
    em.emit(RunEventKind::End(Arc::new(outcome.clone()))).await;
    outcome
}

/// Runs a lane command (`/new`, `/reset`, `/compact`) as the session's active turn.
pub(crate) async fn run_lane_command(
    inner: &Arc<Inner>,
    settings: &Arc<Settings>,
    req: RunRequest,
    cmd: Command,
    control: &RunControl,
    em: &mut Emitter,
) -> RunOutcome {
    let agent_id = settings.agent_of(&req.session_key);
    let started_at = now_ms();
    let key = req.session_key.clone();
    let workspace = settings.workspace(&agent_id).to_string_lossy().into_owned();
    match cmd {
        Command::New { model: wanted } => {
            em.emit(RunEventKind::Start { started_at }).await;
            let mut text = NEW_REPLY.to_owned();
            match inner
                .store
                .reset_session(&key, ResetReason::New, now_i64(), Some(workspace), None)
                .await
            {
                Ok(_) => {
                    if let Some(m) = wanted {
                        text.push(' ');
                        text.push_str(&set_model(inner, settings, &key, &agent_id, &m).await);
                    }
                }
                Err(e) => text = format!("Could not start a new session: {e}"),
            }
            let outcome = reply_outcome(&req, &agent_id, "new", &text, started_at);
            if let Some(message) = &outcome.message {
                record(inner, &req, message, true).await;
            }
            em.emit(RunEventKind::End(Arc::new(outcome.clone()))).await;
            outcome
        }
        Command::Reset { tail } => {
            let mut ensure = EnsureSession::at(now_i64());
            ensure.cwd = Some(workspace);
            let reset = async {
                inner.store.ensure_session(&key, ensure).await?;
                let now = now_i64();
                let user = messages::user_message(
                    &req.message,
                    &req.run_id,
                    now_ms(),
                    req.sender_is_owner,
                    req.metadata.as_ref(),
                    true,
                );
                let reply = messages::injected_assistant(RESET_REPLY, now_ms(), None);
                inner
                    .store
                    .append(
                        &key,
                        vec![
                            TranscriptEntry::message(None, now, user),
                            TranscriptEntry::reset(None, now, ResetReason::Reset.as_str()),
                            TranscriptEntry::message(None, now, messages::assistant_value(&reply)),
                        ],
                        AppendOptions {
                            chain: true,
                            touch: None,
                            now_ms: now,
                            expected_session_id: None,
                        },
                    )
                    .await
            };
            let text = match reset.await {
                Ok(_) => RESET_REPLY.to_owned(),
                Err(e) => format!("Could not reset the session: {e}"),
            };
            match tail {
                Some(tail) if text == RESET_REPLY => {
                    // The follow-up text runs as a normal turn in the fresh context.
                    let mut turn = req.clone();
                    turn.message = tail;
                    turn.interpret_commands = false;
                    let mut run = Run::new(
                        inner.clone(),
                        settings.clone(),
                        turn,
                        control.clone(),
                        agent_id,
                    );
                    let mut outcome = run.execute(em).await;
                    outcome.command = Some("reset".into());
                    outcome
                }
                _ => {
                    em.emit(RunEventKind::Start { started_at }).await;
                    let outcome = reply_outcome(&req, &agent_id, "reset", &text, started_at);
                    em.emit(RunEventKind::End(Arc::new(outcome.clone()))).await;
                    outcome
                }
            }
        }
        Command::Compact { instructions } => {
            em.emit(RunEventKind::Start { started_at }).await;
            let report = compact_session(
                inner,
                settings,
                &key,
                &agent_id,
                instructions.as_deref(),
                control,
            )
            .await;
            let text = match &report {
                Ok(r) if r.compacted => format!(
                    "🧹 Compacted the conversation: about {} → {} tokens.",
                    r.tokens_before, r.tokens_after
                ),
                Ok(r) => format!(
                    "Nothing to compact yet ({}).",
                    r.reason.as_deref().unwrap_or("the conversation is short")
                ),
                Err(e) => format!("Compaction failed: {e}"),
            };
            let mut outcome = reply_outcome(&req, &agent_id, "compact", &text, started_at);
            match report {
                Ok(r) => outcome.compaction = Some(r),
                Err(e) => {
                    outcome.status = RunStatus::Error;
                    outcome.error = Some(crate::run::plain_error(e.to_string()));
                }
            }
            if let Some(message) = &outcome.message {
                record(inner, &req, message, false).await;
            }
            em.emit(RunEventKind::End(Arc::new(outcome.clone()))).await;
            outcome
        }
        other => {
            // Immediate commands never reach a lane; answer them anyway.
            run_immediate(inner, req, other).await
        }
    }
}

async fn compact_session(
    inner: &Arc<Inner>,
    settings: &Arc<Settings>,
    key: &SessionKey,
    agent_id: &str,
    instructions: Option<&str>,
    control: &RunControl,
) -> Result<CompactReport, CompactError> {
    let Some(record) = inner.store.get_session(key).await? else {
        return Ok(CompactReport {
            compacted: false,
            reason: Some("no session".into()),
            tokens_before: 0,
            tokens_after: 0,
        });
    };
    let session_id = record.entry.session_id.clone();
    let mut ctx = context::load_context(&inner.store, &session_id).await?;
    let choice = settings
        .model_for_run(agent_id, Some(&record.entry), None)
        .ok_or_else(|| CompactError::NoModel(pincer_providers::NO_PROVIDER_HELP.to_owned()))?;
    let chain = settings
        .registry
        .resolve_chain(&choice.primary, &choice.fallbacks)
        .map_err(|e| CompactError::NoModel(e.to_string()))?;
    let window = chain.first().map_or(0, |m| m.context_window);
    let before = ctx.tokens();
    match compaction::compact_context(
        inner,
        key,
        &session_id,
        &mut ctx,
        &chain,
        window,
        before,
        instructions,
        &control.cancel,
        true,
    )
    .await
    {
        Ok(()) => Ok(CompactReport {
            compacted: true,
            reason: None,
            tokens_before: before,
            tokens_after: ctx.tokens(),
        }),
        Err(CompactError::NothingToCompact) => Ok(CompactReport {
            compacted: false,
            reason: Some("the conversation is short".into()),
            tokens_before: before,
            tokens_after: before,
        }),
        Err(e) => Err(e),
    }
}

async fn think(
    inner: &Inner,
    settings: &Settings,
    key: &SessionKey,
    agent_id: &str,
    level: Option<&str>,
) -> String {
    let options = ThinkingLevel::ALL
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let entry = inner
        .store
        .get_session(key)
        .await
        .ok()
        .flatten()
        .map(|r| r.entry);
    let Some(level) = level else {
        let current = entry
            .as_ref()
            .and_then(|e| e.thinking_level.clone())
            .unwrap_or_else(|| settings.thinking_default(agent_id).as_str().to_owned());
        return format!("Current thinking level: {current}. Options: {options}, default.");
    };
    if level.eq_ignore_ascii_case("default") {
        if let Err(e) = ensure_and_update(inner, key, |e| e.thinking_level = None).await {
            return format!("Could not change the thinking level: {e}");
        }
        return format!(
            "Thinking level reset to the default ({}).",
            settings.thinking_default(agent_id)
        );
    }
    let Some(parsed) = ThinkingLevel::parse(level) else {
        return format!("Unknown thinking level \"{level}\". Use one of: {options}, default.");
    };
    if parsed != ThinkingLevel::Off {
        if let Some(choice) = settings.model_for_run(agent_id, entry.as_ref(), None) {
            if let Ok(model) = settings.registry.resolve(&choice.primary) {
                if !model.reasoning {
                    return format!(
                        "Thinking level \"{}\" is not supported for {}. Use one of: off.",
                        parsed,
                        model.model_ref()
                    );
                }
            }
        }
    }
    let value = parsed.as_str().to_owned();
    let stored = value.clone();
    if let Err(e) = ensure_and_update(inner, key, move |e| e.thinking_level = Some(stored)).await {
        return format!("Could not change the thinking level: {e}");
    }
    let now = now_i64();
    let _ = inner
        .store
        .append(
            key,
            vec![TranscriptEntry::thinking_level_change(None, now, &value)],
            AppendOptions {
                chain: true,
                now_ms: now,
                ..AppendOptions::default()
            },
        )
        .await;
    format!("Thinking level set to {value}.")
}

async fn verbose(inner: &Inner, key: &SessionKey, level: Option<&str>) -> String {
    let Some(level) = level.map(str::to_ascii_lowercase) else {
        let current = inner
            .store
            .get_session(key)
            .await
            .ok()
            .flatten()
            .and_then(|r| r.entry.verbose_level)
            .unwrap_or_else(|| "off".into());
        return format!("Verbose is {current}. Use /verbose on, off or full.");
    };
    if !pincer_sessions::entry::VERBOSE_LEVELS.contains(&level.as_str()) {
        return format!("Unknown verbose level \"{level}\". Use on, off or full.");
    }
    let stored = level.clone();
    if let Err(e) = ensure_and_update(inner, key, move |e| e.verbose_level = Some(stored)).await {
        return format!("Could not change verbose: {e}");
    }
    match level.as_str() {
        "on" => "Verbose logging enabled.".into(),
        "off" => "Verbose logging disabled.".into(),
        _ => "Verbose logging set to full.".into(),
    }
}

async fn model(
    inner: &Inner,
    settings: &Settings,
    key: &SessionKey,
    agent_id: &str,
    arg: Option<&str>,
) -> String {
    let entry = inner
        .store
        .get_session(key)
        .await
        .ok()
        .flatten()
        .map(|r| r.entry);
    let available: Vec<String> = settings
        .registry
        .models()
        .iter()
        .map(|m| format!("{}/{}", m.provider, m.id))
        .collect();
    match arg.map(str::trim) {
        None | Some("status") => {
            let pinned = entry.as_ref().and_then(session_model_override);
            let current = settings
                .model_for_run(agent_id, entry.as_ref(), None)
                .map(|c| c.primary);
            let mut text = match (current, pinned.is_some()) {
                (Some(m), true) => format!("Current model: {m} (pinned for this session)."),
                (Some(m), false) => format!("Current model: {m} (default)."),
                (None, _) => pincer_providers::NO_PROVIDER_HELP.to_owned(),
            };
            if !available.is_empty() {
                text.push_str(&format!("\nConfigured models: {}.", available.join(", ")));
            }
            text.push_str("\nUse /model <provider/model> to switch, /model default to go back.");
            text
        }
        Some("list") => {
            if available.is_empty() {
                let providers = settings.registry.provider_ids().join(", ");
                if providers.is_empty() {
                    pincer_providers::NO_PROVIDER_HELP.to_owned()
                } else {
                    format!("No models are listed in the config. Available providers: {providers}. Use /model <provider/model>.")
                }
            } else {
                format!(
                    "Models:\n{}",
                    available
                        .iter()
                        .map(|m| format!("- {m}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            }
        }
        Some("default") => {
            if let Err(e) = ensure_and_update(inner, key, |e| {
                e.provider_override = None;
                e.model_override = None;
                e.model_override_source = None;
            })
            .await
            {
                return format!("Could not change the model: {e}");
            }
            match settings.configured_model(agent_id) {
                Some(c) => format!("Model reset to the default: {}.", c.primary),
                None => "Model reset to the default.".into(),
            }
        }
        Some(wanted) => set_model(inner, settings, key, agent_id, wanted).await,
    }
}

/// `session_status model=…`: the same rules as `/model`.
pub(crate) async fn model_for_tool(inner: &Inner, key: &SessionKey, arg: &str) -> String {
    let settings = inner.settings();
    let agent_id = settings.agent_of(key);
    model(inner, &settings, key, &agent_id, Some(arg)).await
}

/// Pins `wanted` for the session after checking it resolves.
async fn set_model(
    inner: &Inner,
    settings: &Settings,
    key: &SessionKey,
    agent_id: &str,
    wanted: &str,
) -> String {
    let wanted = resolve_alias(settings, agent_id, wanted);
    let model = match settings.registry.resolve(&wanted) {
        Ok(m) => m,
        Err(e) => return format!("Cannot use {wanted}: {e}"),
    };
    let (provider, id) = (model.provider.clone(), model.model.clone());
    let (p, m) = (provider.clone(), id.clone());
    if let Err(e) = ensure_and_update(inner, key, move |e| {
        e.provider_override = Some(p);
        e.model_override = Some(m);
        e.model_override_source = Some("user".into());
    })
    .await
    {
        return format!("Could not change the model: {e}");
    }
    let now = now_i64();
    let _ = inner
        .store
        .append(
            key,
            vec![TranscriptEntry::model_change(None, now, &provider, &id)],
            AppendOptions {
                chain: true,
                now_ms: now,
                ..AppendOptions::default()
            },
        )
        .await;
    format!("Model set to {provider}/{id}.")
}

/// `agents.*.models["provider/model"].alias` → the ref; a bare id gets the current provider.
fn resolve_alias(settings: &Settings, agent_id: &str, wanted: &str) -> String {
    if let Some(models) = settings.config.agents.defaults.models.as_ref() {
        if let Some((r, _)) = models.iter().find(|(_, m)| {
            m.alias
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(wanted))
        }) {
            return r.clone();
        }
    }
    if wanted.contains('/') {
        return wanted.to_owned();
    }
    match settings.configured_model(agent_id) {
        Some(c) => match c.primary.split_once('/') {
            Some((provider, _)) => format!("{provider}/{wanted}"),
            None => wanted.to_owned(),
        },
        None => wanted.to_owned(),
    }
}

async fn ensure_and_update(
    inner: &Inner,
    key: &SessionKey,
    f: impl FnOnce(&mut pincer_sessions::SessionEntry) + Send + 'static,
) -> Result<(), pincer_store::StoreError> {
    inner
        .store
        .ensure_session(key, EnsureSession::at(now_i64()))
        .await?;
    inner
        .store
        .update_session(key, now_i64(), move |e| {
            f(e);
            Ok(())
        })
        .await?;
    Ok(())
}

/// The result of `chat.inject`.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    /// Transcript entry id of the note (`messageId`).
    pub message_id: String,
    pub session_id: String,
    pub message: AssistantMessage,
}

/// Why `chat.inject` failed.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("session not found")]
    SessionNotFound,
    #[error("message must not be empty")]
    Empty,
    #[error("the session store failed: {0}")]
    Store(#[from] pincer_store::StoreError),
}

pub(crate) async fn inject(
    inner: &Inner,
    key: &SessionKey,
    text: &str,
    label: Option<&str>,
) -> Result<Injected, InjectError> {
    if text.trim().is_empty() {
        return Err(InjectError::Empty);
    }
    let Some(record) = inner.store.get_session(key).await? else {
        return Err(InjectError::SessionNotFound);
    };
    let now = now_i64();
    let message = messages::injected_assistant(text, now_ms(), label);
    let entry = TranscriptEntry::message(None, now, messages::assistant_value(&message));
    let message_id = entry.id().unwrap_or_default().to_owned();
    let ack = inner
        .store
        .append(
            key,
            vec![entry],
            AppendOptions {
                chain: true,
                touch: Some(pincer_sessions::Touch::AgentActivity),
                now_ms: now,
                expected_session_id: None,
            },
        )
        .await?;
    let _ = record;
    Ok(Injected {
        message_id,
        session_id: ack.session_id,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_leaves_other_text_alone() {
        let t: Vec<String> = vec!["new chat".into()];
        assert_eq!(parse("/status", &t), Some(Command::Status));
        assert_eq!(parse("  /STOP ", &t), Some(Command::Stop));
        assert_eq!(parse("stop!", &t), Some(Command::Stop));
        assert_eq!(parse("/stop the presses", &t), None);
        assert_eq!(
            parse("/new openai/gpt-5", &t),
            Some(Command::New {
                model: Some("openai/gpt-5".into())
            })
        );
        assert_eq!(parse("/reset", &t), Some(Command::Reset { tail: None }));
        assert_eq!(
            parse("/reset then say hi", &t),
            Some(Command::Reset {
                tail: Some("then say hi".into())
            })
        );
        assert_eq!(
            parse("new chat please", &t),
            Some(Command::Reset {
                tail: Some("please".into())
            })
        );
        assert_eq!(
            parse("/think high", &t),
            Some(Command::Think {
                level: Some("high".into())
            })
        );
        assert_eq!(parse("/t", &t), Some(Command::Think { level: None }));
        assert_eq!(
            parse("/v on", &t),
            Some(Command::Verbose {
                level: Some("on".into())
            })
        );
        assert_eq!(parse("/model", &t), Some(Command::Model { arg: None }));
        assert_eq!(
            parse("/models", &t),
            Some(Command::Model {
                arg: Some("list".into())
            })
        );
        assert_eq!(
            parse("/compact keep the API details", &t),
            Some(Command::Compact {
                instructions: Some("keep the API details".into())
            })
        );
        assert_eq!(parse("/help", &t), Some(Command::Help));
        assert_eq!(parse("/unknown", &t), None);
        assert_eq!(parse("please don't stop", &t), None);
        assert_eq!(parse("hello /status", &t), None);
        assert!(Command::Status.is_immediate());
        assert!(!Command::Reset { tail: None }.is_immediate());
    }
}
