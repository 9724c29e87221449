//! The channel manager: every configured account (adapter + pipeline), started, stopped and
//! reported together; the pairing API; idempotent `send`. The gateway holds one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::adapter::{ChannelAdapter, InboundSender};
use crate::chunk::ChunkMode;
use crate::error::{ChannelError, Result};
use crate::journal::Journal;
use crate::message::{ChatType, Conversation, OutboundMedia};
use crate::outbound::{deliver, Idempotent, ReplyToMode, Responder};
use crate::pairing::Pairing;
use crate::pipeline::{InboundPipeline, ReplyTarget};
use crate::status::AccountStatus;

/// Inbound queue per account (backpressure to the connection beyond this).
const INBOUND_QUEUE: usize = 1024;

/// How long a replay waits for the adapter to learn the bot's identity (mention stripping and
/// own-message detection need it) before it goes ahead without.
const REPLAY_IDENTITY_WAIT: Duration = Duration::from_secs(15);

/// Replays what a previous run recorded but never handed over, before anything new (new
/// platform messages wait in the inbound queue; the pipeline's dedupe then drops platform
/// redeliveries of the replayed ones).
async fn replay(journal: &Journal, adapter: &dyn ChannelAdapter, pipeline: &InboundPipeline) {
    let pending = journal
        .pending(adapter.channel(), adapter.account_id())
        .await;
    if pending.is_empty() {
        return;
    }
    let status = adapter.status();
    status
        .wait_for(
            |s| s.bot_id.is_some() || s.state == crate::status::ConnectionState::Error,
            REPLAY_IDENTITY_WAIT,
        )
        .await;
    tracing::info!(
        channel = adapter.channel(),
        account = adapter.account_id(),
        count = pending.len(),
        "replaying inbound messages recorded before the last stop"
    );
    for msg in pending {
        pipeline.process(msg).await;
    }
}

/// An outbound `send` (protocol `send` method, the agent's `message` tool, automations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    pub channel: String,
    /// `None`: the channel's default account.
    pub account_id: Option<String>,
    /// Chat id to send into. Discord: `user:<id>` for a DM, `channel:<id>` or a bare id.
    pub to: String,
    pub thread_id: Option<String>,
    pub reply_to: Option<String>,
    pub text: String,
    pub media: Vec<OutboundMedia>,
    pub idempotency_key: String,
}

/// The outcome of a `send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendResult {
    pub channel: String,
    pub account_id: String,
    pub chat_id: String,
    /// The first platform message id (protocol `messageId`).
    pub message_id: String,
    /// Every message sent (chunks, attachments).
    pub message_ids: Vec<String>,
}

struct Account {
    adapter: Arc<dyn ChannelAdapter>,
    pipeline: InboundPipeline,
    reply_mode: ReplyToMode,
    chunk_mode: ChunkMode,
    pump: Mutex<Option<JoinHandle<()>>>,
    /// Cancelled by `stop` (ends a replay that is still waiting for the connection).
    stopping: Mutex<tokio_util::sync::CancellationToken>,
}

type Key = (String, String);

/// All channel accounts of the gateway.
pub struct ChannelManager {
    accounts: RwLock<BTreeMap<Key, Arc<Account>>>,
    default_accounts: RwLock<BTreeMap<String, String>>,
    pairing: Pairing,
    sends: Idempotent<SendResult>,
    journal: Option<Journal>,
}

impl ChannelManager {
    pub fn new(pairing: Pairing) -> Self {
        ChannelManager {
            accounts: RwLock::new(BTreeMap::new()),
            default_accounts: RwLock::new(BTreeMap::new()),
            pairing,
            sends: Idempotent::new(Duration::from_secs(300), 1000),
            journal: None,
        }
    }

    /// Records inbound messages durably before the platform is acknowledged and replays the
    /// unhandled ones at start (see [`crate::journal`]). Pipelines added afterwards mark what
    /// they settle; the run sink marks what it hands to the agent.
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The inbound journal, if any.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    pub fn pairing(&self) -> &Pairing {
        &self.pairing
    }

    /// Registers an account (not started). Replaces an existing one with the same ids.
    pub fn add(
        &self,
        pipeline: InboundPipeline,
        adapter: Arc<dyn ChannelAdapter>,
        reply_mode: ReplyToMode,
        chunk_mode: ChunkMode,
    ) {
        let key = (
            adapter.channel().to_string(),
            adapter.account_id().to_string(),
        );
        self.default_accounts
            .write()
            .entry(key.0.clone())
            .or_insert_with(|| key.1.clone());
        if let Some(journal) = &self.journal {
            pipeline.set_journal(journal.clone());
        }
        self.accounts.write().insert(
            key,
            Arc::new(Account {
                adapter,
                pipeline,
                reply_mode,
                chunk_mode,
                pump: Mutex::new(None),
                stopping: Mutex::new(tokio_util::sync::CancellationToken::new()),
            }),
        );
    }

    /// Stops and forgets an account (config hot reload removed or replaced it).
    pub async fn remove(&self, channel: &str, account_id: &str) {
        if self.account(channel, Some(account_id)).is_err() {
            return;
        }
        let _ = self.stop(channel, Some(account_id)).await;
        self.accounts
            .write()
            .remove(&(channel.to_string(), account_id.to_string()));
        let mut defaults = self.default_accounts.write();
        if defaults.get(channel).is_some_and(|a| a == account_id) {
            let next = self
                .accounts
                .read()
                .keys()
                .find(|(c, _)| c == channel)
                .map(|(_, a)| a.clone());
            match next {
                Some(a) => {
                    defaults.insert(channel.to_string(), a);
                }
                None => {
                    defaults.remove(channel);
                }
            }
        }
    }

    /// Whether the account's inbound pump is running (started and not stopped).
    pub fn is_running(&self, channel: &str, account_id: &str) -> bool {
        self.account(channel, Some(account_id))
            .is_ok_and(|a| a.pump.lock().as_ref().is_some_and(|p| !p.is_finished()))
    }

    /// The default account of a channel (`defaultAccount`, else the first registered).
    pub fn default_account(&self, channel: &str) -> Option<String> {
        self.default_accounts.read().get(channel).cloned()
    }

    /// `channels.<channel>.defaultAccount`.
    pub fn set_default_account(&self, channel: &str, account_id: &str) {
        self.default_accounts
            .write()
            .insert(channel.to_string(), account_id.to_string());
    }

    fn account(&self, channel: &str, account_id: Option<&str>) -> Result<Arc<Account>> {
        let account_id = match account_id {
            Some(a) => a.to_string(),
            None => self
                .default_accounts
                .read()
                .get(channel)
                .cloned()
                .unwrap_or_else(|| pincer_sessions::DEFAULT_ACCOUNT_ID.to_string()),
        };
        self.accounts
            .read()
            .get(&(channel.to_string(), account_id.clone()))
            .cloned()
            .ok_or(ChannelError::UnknownAccount {
                channel: channel.to_string(),
                account_id,
            })
    }

    /// The pipeline of an account (activation overrides, settings reloads).
    pub fn pipeline(&self, channel: &str, account_id: Option<&str>) -> Result<InboundPipeline> {
        Ok(self.account(channel, account_id)?.pipeline.clone())
    }

    /// The adapter of an account.
    pub fn adapter(
        &self,
        channel: &str,
        account_id: Option<&str>,
    ) -> Result<Arc<dyn ChannelAdapter>> {
        Ok(self.account(channel, account_id)?.adapter.clone())
    }

    /// `channels.start`: connects the account and pumps its inbound messages through its
    /// pipeline (in order).
    pub async fn start(&self, channel: &str, account_id: Option<&str>) -> Result<()> {
        let account = self.account(channel, account_id)?;
        if account
            .pump
            .lock()
            .as_ref()
            .is_some_and(|p| !p.is_finished())
        {
            return Ok(());
        }
        let (tx, mut rx) = mpsc::channel(INBOUND_QUEUE);
        let mut sender = InboundSender::new(tx);
        let journal = self.journal.clone();
        if let Some(journal) = &journal {
            sender = sender.with_journal(
                journal.clone(),
                account.adapter.channel(),
                account.adapter.account_id(),
            );
        }
        account.adapter.start(sender).await?;
        let pipeline = account.pipeline.clone();
        let adapter = account.adapter.clone();
        let stopping = tokio_util::sync::CancellationToken::new();
        *account.stopping.lock() = stopping.clone();
        let pump = tokio::spawn(async move {
            if let Some(journal) = journal {
                tokio::select! {
                    () = replay(&journal, adapter.as_ref(), &pipeline) => {}
                    // Still pending in the journal: replayed at the next start.
                    () = stopping.cancelled() => {}
                }
            }
            while let Some(msg) = rx.recv().await {
                pipeline.process(msg).await;
            }
            pipeline.flush().await;
        });
        *account.pump.lock() = Some(pump);
        Ok(())
    }

    /// `channels.stop`.
    pub async fn stop(&self, channel: &str, account_id: Option<&str>) -> Result<()> {
        let account = self.account(channel, account_id)?;
        account.stopping.lock().cancel();
        account.adapter.stop().await;
        let pump = account.pump.lock().take();
        if let Some(pump) = pump {
            // The adapter dropped its sender: the pump drains what is queued and ends.
            let _ = pump.await;
        }
        Ok(())
    }

    /// Starts every account; returns the ones that failed to start.
    pub async fn start_all(&self) -> Vec<(String, String, ChannelError)> {
        let keys: Vec<Key> = self.accounts.read().keys().cloned().collect();
        let mut failed = Vec::new();
        for (channel, account) in keys {
            if let Err(e) = self.start(&channel, Some(&account)).await {
                failed.push((channel, account, e));
            }
        }
        failed
    }

    pub async fn stop_all(&self) {
        let keys: Vec<Key> = self.accounts.read().keys().cloned().collect();
        for (channel, account) in keys {
            let _ = self.stop(&channel, Some(&account)).await;
        }
    }

    /// `channels.status`: every account, ordered by channel then account.
    pub fn status(&self) -> Vec<AccountStatus> {
        self.accounts
            .read()
            .values()
            .map(|a| a.adapter.status().snapshot())
            .collect()
    }

    /// A responder for a run's reply target.
    pub fn responder(&self, target: &ReplyTarget) -> Result<Responder> {
        let c = &target.conversation;
        let account = self.account(&c.channel, Some(&c.account_id))?;
        Ok(Responder::new(account.adapter.clone(), target.clone())
            .with_modes(account.reply_mode, account.chunk_mode)
            .with_pipeline(account.pipeline.clone()))
    }

    /// Idempotent outbound send: the same `idempotency_key` within 5 minutes returns the first
    /// result without sending again (concurrent duplicates wait for the first).
    pub async fn send(&self, req: SendRequest) -> Result<SendResult> {
        if req.idempotency_key.trim().is_empty() {
            return Err(ChannelError::Invalid("idempotencyKey is required".into()));
        }
        if req.text.trim().is_empty() && req.media.is_empty() {
            return Err(ChannelError::Invalid(
                "nothing to send: message and media are empty".into(),
            ));
        }
        let account = self.account(&req.channel, req.account_id.as_deref())?;
        let key = format!("send:{}:{}", req.channel, req.idempotency_key);
        self.sends
            .run(&key, || async {
                let adapter = account.adapter.clone();
                let (chat_type, chat_id) = match req.to.split_once(':') {
                    // Adapters resolve `user:<id>` (Discord opens the DM channel).
                    Some(("user", id)) => (ChatType::Direct, format!("user:{id}")),
                    Some(("channel", id)) | Some(("group", id)) => {
                        (ChatType::Channel, id.to_string())
                    }
                    _ => (ChatType::Channel, req.to.clone()),
                };
                let conversation = Conversation {
                    channel: req.channel.clone(),
                    account_id: adapter.account_id().to_string(),
                    chat_type,
                    chat_id,
                    thread_id: req.thread_id.clone(),
                };
                let sent = deliver(
                    adapter.as_ref(),
                    &conversation,
                    &req.text,
                    &req.media,
                    req.reply_to.as_deref(),
                    account.reply_mode,
                    account.chunk_mode,
                )
                .await?;
                let first = sent
                    .first()
                    .cloned()
                    .ok_or_else(|| ChannelError::Invalid("nothing was sent".into()))?;
                Ok(SendResult {
                    channel: req.channel.clone(),
                    account_id: adapter.account_id().to_string(),
                    chat_id: first.chat_id.clone(),
                    message_id: first.message_id,
                    message_ids: sent.into_iter().map(|s| s.message_id).collect(),
                })
            })
            .await
    }
}
