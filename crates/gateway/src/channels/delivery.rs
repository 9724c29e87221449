//! Answering one channel run on its platform: a typing indicator while the model works
//! (refreshed before the platform lets it expire), a streaming preview edited in place where
//! the platform edits messages (`channels.<ch>.streaming.mode` partial/progress), and the
//! final reply through the account's `Responder` — chunked at the platform limit without
//! breaking code fences, threaded/quoted per `replyToMode`, `NO_REPLY` kept silent, errors
//! told to the user. The inbound messages of the run are marked handled in the journal once
//! the agent stored the user message (first model call) or the run ended.

use std::sync::Weak;
use std::time::Duration;

use pincer_agent::{AbortReason, Admission, RunEventKind, RunOutcome, RunStatus, Submitted};
use pincer_channels::outbound::{is_silent, PreviewStream};
use pincer_channels::{Conversation, Journal, Responder};
use pincer_sessions::SessionKey;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::state::GatewayState;

/// Platforms expire typing after ~5 s (Telegram) to 10 s (Discord).
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// At most one preview edit per this interval (Telegram allows about one edit per second).
const PREVIEW_EVERY: Duration = Duration::from_millis(1000);
/// A preview appears once the answer has this many characters (short answers go out whole,
/// and a silent `NO_REPLY` never flashes).
const PREVIEW_MIN_CHARS: usize = 40;

/// Where a run came from (recorded on its session).
#[derive(Debug, Clone)]
pub struct Origin {
    pub conversation: Conversation,
    pub display_name: String,
}

/// Everything the delivery task of one run needs.
pub struct Delivery {
    pub state: Weak<GatewayState>,
    pub responder: Responder,
    pub preview: bool,
    pub journal: Journal,
    pub message_ids: Vec<String>,
    pub session_key: SessionKey,
    pub origin: Origin,
}

impl Delivery {
    fn mark_handled(&self) {
        let c = &self.origin.conversation;
        self.journal
            .handled(&c.channel, &c.account_id, self.message_ids.iter().cloned());
    }

    async fn record_origin(&self) {
        if let Some(state) = self.state.upgrade() {
            super::sink::record_origin(&state, &self.session_key, &self.origin).await;
        }
    }
}

async fn typing_loop(responder: Responder, stop: CancellationToken) {
    loop {
        if let Err(e) = responder.typing().await {
            tracing::debug!(target: "channels", error = %e, "typing indicator failed");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(TYPING_EVERY) => {}
        }
    }
}

async fn preview_loop(
    mut stream: PreviewStream,
    mut text: watch::Receiver<String>,
    stop: CancellationToken,
) -> PreviewStream {
    let mut failed = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return stream,
            changed = text.changed() => if changed.is_err() { return stream },
        }
        let current = text.borrow_and_update().clone();
        let eligible = !failed
            && current.chars().count() >= PREVIEW_MIN_CHARS
            && !current
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("NO_REPLY");
        if eligible {
            if let Err(e) = stream.update(&current).await {
                tracing::debug!(target: "channels", error = %e, "preview edit failed; the final reply is sent whole");
                failed = true;
            }
        }
        tokio::select! {
            () = stop.cancelled() => return stream,
            () = tokio::time::sleep(PREVIEW_EVERY) => {}
        }
    }
}

/// The user-visible text of an outcome (`None`: say nothing).
fn final_text(outcome: &RunOutcome) -> Option<String> {
    if outcome.merged_into.is_some() {
        // Folded into the run that was going: that run answers.
        return None;
    }
    match outcome.status {
        RunStatus::Ok => Some(outcome.text.clone()).filter(|t| !t.trim().is_empty()),
        RunStatus::Error => {
            let msg = outcome
                .error
                .as_ref()
                .map(|e| e.error_message.clone())
                .unwrap_or_else(|| "the run failed".into());
            Some(format!("⚠️ {msg}"))
        }
        RunStatus::Timeout => Some(if outcome.text.trim().is_empty() {
            "⚠️ The reply took too long and was stopped.".into()
        } else {
            format!("{}\n\n⚠️ (stopped: took too long)", outcome.text)
        }),
        // `/stop` answers by itself; an interrupted run is superseded by the next one.
        RunStatus::Aborted => None,
    }
}

/// The delivery task of one submitted run.
pub async fn run(
    d: Delivery,
    mut events: mpsc::Receiver<pincer_agent::RunEvent>,
    submitted: Submitted,
) {
    let mut handle = submitted.handle;
    let is_command = matches!(submitted.admission, Admission::Command { .. });
    let steered = matches!(submitted.admission, Admission::Steered { .. });
    let stop = CancellationToken::new();
    let typing = (!is_command && !steered)
        .then(|| tokio::spawn(typing_loop(d.responder.clone(), stop.clone())));
    let (text_tx, text_rx) = watch::channel(String::new());
    let preview = (d.preview && !is_command && !steered).then(|| {
        tokio::spawn(preview_loop(
            d.responder.preview(Duration::ZERO),
            text_rx,
            stop.clone(),
        ))
    });
    let mut marked = false;
    let mut item: Option<std::sync::Arc<str>> = None;
    let mut text = String::new();
    let outcome = loop {
        match events.recv().await {
            Some(ev) => match ev.kind {
                RunEventKind::Model { .. } if !marked => {
                    // The user message is durable (and the origin with it, see
                    // `RunRequest::session_update`): the journal can let go.
                    marked = true;
                    d.mark_handled();
                }
                RunEventKind::AssistantDelta { item_id, delta } => {
                    if item.as_ref() != Some(&item_id) {
                        item = Some(item_id);
                        text.clear();
                    }
                    text.push_str(&delta);
                    text_tx.send_replace(text.clone());
                }
                RunEventKind::End(outcome) => break outcome,
                _ => {}
            },
            // Steered into another run (its observer gets the events), or queued and dropped.
            None => break handle.outcome().await,
        }
    };
    stop.cancel();
    if let Some(t) = typing {
        let _ = t.await;
    }
    let stream = match preview {
        Some(p) => p.await.ok(),
        None => None,
    };
    // A run cut by the gateway's shutdown before it stored the message stays pending: the
    // next start replays it. A message that never started a run of its own (a command,
    // steered into or folded with another run, or a run that failed before storing it)
    // records its origin here.
    let cut_by_shutdown = outcome.abort_reason == Some(AbortReason::Shutdown);
    if !marked && !cut_by_shutdown {
        d.mark_handled();
        d.record_origin().await;
    }
    let reply = final_text(&outcome);
    let delivered = match (stream, reply) {
        (Some(stream), Some(reply)) if stream.message().is_some() => stream.finish(&reply).await,
        (_, Some(reply)) if !is_silent(&reply) => d.responder.deliver(&reply, &[]).await,
        _ => Ok(Vec::new()),
    };
    if let Err(e) = delivered {
        let c = &d.origin.conversation;
        tracing::warn!(target: "channels", channel = %c.channel, account = %c.account_id, chat = %c.chat_id, error = %e, "reply not delivered");
    }
}
