//! The inbound journal: "never lose a message". Every inbound message is recorded in the
//! store (one group commit per platform batch) before the platform is acknowledged (the
//! Telegram offset advanced and persisted, a Slack envelope acked), and marked handled once
//! the pipeline settled it (refused, pairing, history, …) or the agent took the run (the
//! gateway's sink marks it when the run's user message is durable). On the next start the
//! manager replays what is still pending through the pipeline before connecting, so a crash
//! between acknowledging and handling answers the message late instead of never.
//!
//! Marks are batched (one commit per ~100 ms): a crash inside that window replays a message
//! that was already answered (at-least-once delivery, never zero).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pincer_store::Store;
use tokio::sync::Notify;

use crate::message::ChannelMessage;
use crate::status::now_ms;

/// How long handled records are kept (and how old a pending message may be and still be
/// replayed).
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Marks are written at most this long after they were made.
const MARK_FLUSH: Duration = Duration::from_millis(100);

type Mark = (String, String, String);

struct Inner {
    store: Store,
    marks: Mutex<Vec<Mark>>,
    notify: Notify,
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The journal (cheap to clone).
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

impl Journal {
    pub fn new(store: Store) -> Self {
        Journal {
            inner: Arc::new(Inner {
                store,
                marks: Mutex::new(Vec::new()),
                notify: Notify::new(),
                flusher: Mutex::new(None),
            }),
        }
    }

    /// Records messages as pending; resolves after the commit. A store error is logged (the
    /// messages still flow: availability wins over the journal).
    pub async fn record(&self, channel: &str, account_id: &str, messages: &[ChannelMessage]) {
        if messages.is_empty() {
            return;
        }
        let rows = Self::rows(messages);
        if let Err(e) = self
            .inner
            .store
            .channel_inbound_record(channel, account_id, rows, now_ms())
            .await
        {
            tracing::error!(%channel, account = %account_id, error = %e, "inbound journal: cannot record messages");
        }
    }

    /// Records messages as pending and sets the account's acknowledgement cursor `(key,
    /// value)` (Telegram's next update offset) in the same commit: the saved position never
    /// runs ahead of the record, and one fsync covers both. Returns whether the commit
    /// succeeded (if not, the error is logged and the caller may save the cursor alone).
    pub async fn record_with_cursor(
        &self,
        channel: &str,
        account_id: &str,
        messages: &[ChannelMessage],
        cursor: (&str, &str),
    ) -> bool {
        let rows = Self::rows(messages);
        let (ch, account) = (channel.to_owned(), account_id.to_owned());
        let (key, value) = (cursor.0.to_owned(), cursor.1.to_owned());
        let now = now_ms();
        let written = self
            .inner
            .store
            .channels_write(move |tx| {
                if !rows.is_empty() {
                    tx.inbound_record(&ch, &account, &rows, now)?;
                }
                tx.set_cursor(&ch, &account, &key, &value, now)
            })
            .await;
        if let Err(e) = &written {
            tracing::error!(%channel, account = %account_id, error = %e, "inbound journal: cannot record messages and cursor");
        }
        written.is_ok()
    }

    fn rows(messages: &[ChannelMessage]) -> Vec<(String, String)> {
        messages
            .iter()
            .filter_map(|m| {
                serde_json::to_string(m)
                    .ok()
                    .map(|p| (m.message_id.clone(), p))
            })
            .collect()
    }

    /// Marks messages handled (written within ~100 ms).
    pub fn handled<I>(&self, channel: &str, account_id: &str, message_ids: I)
    where
        I: IntoIterator<Item = String>,
    {
        {
            let mut marks = self.inner.marks.lock();
            for id in message_ids {
                marks.push((channel.to_string(), account_id.to_string(), id));
            }
        }
        self.ensure_flusher();
        self.inner.notify.notify_one();
    }

    fn ensure_flusher(&self) {
        let mut guard = self.inner.flusher.lock();
        if guard.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let journal = self.clone();
        *guard = Some(rt.spawn(async move {
            // `notify_one` keeps a permit when nobody waits, so no mark is missed.
            loop {
                journal.inner.notify.notified().await;
                tokio::time::sleep(MARK_FLUSH).await;
                journal.flush().await;
            }
        }));
    }

    /// Writes pending marks now.
    pub async fn flush(&self) {
        let marks = std::mem::take(&mut *self.inner.marks.lock());
        if marks.is_empty() {
            return;
        }
        let mut grouped: Vec<(String, String, Vec<String>)> = Vec::new();
        for (channel, account, id) in marks {
            match grouped
                .iter_mut()
                .find(|(c, a, _)| *c == channel && *a == account)
            {
                Some((_, _, ids)) => ids.push(id),
                None => grouped.push((channel, account, vec![id])),
            }
        }
        if let Err(e) = self
            .inner
            .store
            .channel_inbound_handled(grouped, now_ms())
            .await
        {
            tracing::error!(error = %e, "inbound journal: cannot mark messages handled");
        }
    }

    /// Messages recorded but never handled (oldest first), after dropping records older
    /// than [`RETENTION`].
    pub async fn pending(&self, channel: &str, account_id: &str) -> Vec<ChannelMessage> {
        let cutoff = now_ms() - i64::try_from(RETENTION.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = self.inner.store.channel_inbound_prune(cutoff, cutoff).await {
            tracing::warn!(error = %e, "inbound journal: prune failed");
        }
        match self
            .inner
            .store
            .channel_inbound_pending(channel, account_id)
            .await
        {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|(id, payload)| match serde_json::from_str(&payload) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::warn!(%channel, message_id = %id, error = %e, "inbound journal: unreadable record skipped");
                        None
                    }
                })
                .collect(),
            Err(e) => {
                tracing::error!(%channel, error = %e, "inbound journal: cannot read pending messages");
                Vec::new()
            }
        }
    }
}
