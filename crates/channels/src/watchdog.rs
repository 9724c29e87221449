//! The reconnect watchdog shared by every adapter: runs a connection session, detects a
//! stalled one (no activity for `stall_timeout`), and reconnects with the one backoff
//! (`pincer-backoff`), honouring a platform's retry-after. Fatal errors (invalid token,
//! disallowed intents) stop the account with a clear status error instead of looping.
//!
//! Sessions report liveness through [`Liveness::beat`] on every frame/response; a session
//! that blocks forever (half-open TCP, a server that stopped answering) is cancelled by the
//! watchdog, not by the platform. Messages are never lost across a reconnect because each
//! adapter resumes from its platform cursor (Telegram offset, Discord `seq`, Slack unacked
//! envelopes are redelivered) and the pipeline's dedupe drops what is delivered twice.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pincer_backoff::Backoff;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::ChannelError;
use crate::status::StatusHandle;

/// Activity clock of one connection session.
#[derive(Debug)]
pub struct Liveness {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Liveness {
    pub fn new() -> Arc<Self> {
        Arc::new(Liveness {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Something arrived (a frame, a response, a heartbeat ACK).
    pub fn beat(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat (or since creation).
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// How a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The platform asked for a reconnect (Discord op 7, Slack `disconnect`): reconnect now.
    Reconnect,
    /// Stop requested.
    Shutdown,
}

/// Watchdog and backoff parameters.
#[derive(Debug, Clone, Copy)]
pub struct WatchdogConfig {
    /// No activity for this long ⇒ the session is torn down and reconnected.
    pub stall_timeout: Duration,
    /// Delay curve between failed connection attempts.
    pub backoff: Backoff,
    /// A session that lasted this long resets the backoff.
    pub healthy_after: Duration,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            stall_timeout: Duration::from_secs(120),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// Runs `session` until `cancel` fires or it fails fatally. Each call gets a fresh
/// [`Liveness`] and the number of consecutive failures so far.
pub async fn supervise<F, Fut>(
    channel: &'static str,
    status: StatusHandle,
    config: WatchdogConfig,
    cancel: CancellationToken,
    mut session: F,
) where
    F: FnMut(Arc<Liveness>, u32) -> Fut,
    Fut: Future<Output = Result<SessionEnd, ChannelError>>,
{
    let mut failures: u32 = 0;
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let live = Liveness::new();
        let started = Instant::now();
        let outcome = tokio::select! {
            r = session(live.clone(), failures) => r,
            idle = stalled(&live, config.stall_timeout) => Err(ChannelError::Stalled { channel, idle }),
            _ = cancel.cancelled() => Ok(SessionEnd::Shutdown),
        };
        let retry_after = match outcome {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Reconnect) => {
                tracing::info!(channel, "platform asked for a reconnect");
                status.reconnecting("platform requested a reconnect");
                failures = 0;
                continue;
            }
            Err(e) if e.is_fatal() => {
                tracing::error!(channel, error = %e, "channel stopped");
                status.failed(&e.to_string());
                break;
            }
            Err(e) => {
                tracing::warn!(channel, error = %e, "channel connection lost; reconnecting");
                status.reconnecting(&e.to_string());
                match e {
                    ChannelError::RateLimited { retry_after, .. } => Some(retry_after),
                    _ => None,
                }
            }
        };
        if started.elapsed() >= config.healthy_after {
            failures = 0;
        }
        let backoff = config.backoff.delay(failures);
        let delay = pincer_backoff::retry_delay(
            backoff,
            retry_after,
            config.backoff.max.max(Duration::from_secs(600)),
        );
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => break,
        }
    }
    status.stopped();
}

/// The supervised connection task of one adapter: started with a session factory, stopped
/// (cancelled and awaited) on `stop` or before a restart.
#[derive(Default)]
pub struct SupervisedTask {
    run: parking_lot::Mutex<Option<(CancellationToken, tokio::task::JoinHandle<()>)>>,
}

impl SupervisedTask {
    /// (Re)starts: stops a running task, then spawns [`supervise`] with `session`.
    pub async fn start<F, Fut>(
        &self,
        channel: &'static str,
        status: StatusHandle,
        config: WatchdogConfig,
        session: F,
    ) where
        F: FnMut(Arc<Liveness>, u32) -> Fut + Send + 'static,
        Fut: Future<Output = Result<SessionEnd, ChannelError>> + Send + 'static,
    {
        self.stop().await;
        let cancel = CancellationToken::new();
        status.starting();
        let task = tokio::spawn(supervise(channel, status, config, cancel.clone(), session));
        *self.run.lock() = Some((cancel, task));
    }

    /// Cancels the task and waits for it to end.
    pub async fn stop(&self) {
        let run = self.run.lock().take();
        if let Some((cancel, task)) = run {
            cancel.cancel();
            let _ = task.await;
        }
    }
}

/// Resolves once `live` has been idle for `timeout`, with the idle time.
async fn stalled(live: &Liveness, timeout: Duration) -> Duration {
    loop {
        let idle = live.idle();
        if idle >= timeout {
            return idle;
        }
        tokio::time::sleep(timeout - idle).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    fn config() -> WatchdogConfig {
        WatchdogConfig {
            stall_timeout: Duration::from_secs(5),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
                .with_jitter(0.0),
            healthy_after: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_sessions_are_replaced_with_backoff() {
        let status = StatusHandle::new("test", "default");
        let cancel = CancellationToken::new();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let s2 = starts.clone();
        let c2 = cancel.clone();
        let t0 = Instant::now();
        supervise(
            "test",
            status.clone(),
            config(),
            cancel.clone(),
            move |live, failures| {
                let starts = s2.clone();
                let cancel = c2.clone();
                async move {
                    starts.lock().unwrap().push((t0.elapsed(), failures));
                    if failures == 3 {
                        cancel.cancel();
                    }
                    live.beat();
                    // Never beats again: the watchdog must notice.
                    std::future::pending::<()>().await;
                    Ok(SessionEnd::Shutdown)
                }
            },
        )
        .await;
        let starts = starts.lock().unwrap().clone();
        assert_eq!(starts.len(), 4);
        // 5 s stall, then 100 ms, 200 ms, 400 ms backoff on top of each stall.
        let secs: Vec<u64> = starts.iter().map(|(d, _)| d.as_millis() as u64).collect();
        assert_eq!(secs, vec![0, 5_100, 10_300, 15_700]);
        let snap = status.snapshot();
        assert_eq!(snap.reconnects, 3);
        assert!(snap.last_error.unwrap().contains("stalled"));
        assert_eq!(snap.state, crate::status::ConnectionState::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_stop_and_retry_after_is_honoured() {
        let status = StatusHandle::new("test", "default");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c2 = calls.clone();
        let t0 = Instant::now();
        supervise(
            "test",
            status.clone(),
            config(),
            CancellationToken::new(),
            move |_live, _failures| {
                let calls = c2.clone();
                async move {
                    let n = {
                        let mut calls = calls.lock().unwrap();
                        calls.push(t0.elapsed());
                        calls.len() - 1
                    };
                    match n {
                        0 => Err(ChannelError::RateLimited {
                            channel: "test",
                            retry_after: Duration::from_secs(3),
                        }),
                        1 => Ok(SessionEnd::Reconnect),
                        _ => Err(ChannelError::InvalidToken {
                            channel: "test",
                            detail: "401 Unauthorized".into(),
                        }),
                    }
                }
            },
        )
        .await;
        let calls = calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![
                Duration::ZERO,
                Duration::from_secs(3),
                Duration::from_secs(3)
            ]
        );
        let snap = status.snapshot();
        assert_eq!(snap.state, crate::status::ConnectionState::Error);
        assert!(snap.last_error.unwrap().contains("rejected the token"));
    }
}
