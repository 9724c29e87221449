//! Wall-clock time for the scheduler, injectable so tests can drive a day in milliseconds.
//!
//! The scheduler asks for *now* and for a future that resolves at a wall-clock deadline;
//! it never polls. [`SystemClock`] sleeps on the runtime timer; [`TestClock`] only moves when
//! a test moves it and wakes exactly the sleepers whose deadline has passed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A future that resolves at a deadline.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Wall-clock time in epoch milliseconds, and sleeping until an instant of it.
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Resolves once `now_ms() >= deadline_ms` (immediately when it already is).
    fn sleep_until(&self, deadline_ms: i64) -> Sleep;
}

/// The real clock: `SystemTime` for now, the tokio timer for sleeping.
///
/// The tokio timer runs on the monotonic clock, which does not advance while the machine
/// is suspended and ignores wall-clock steps (NTP, an operator setting the date). To stay
/// correct anyway, a long sleep is cut into slices of at most `max_slice` and the wall
/// clock is re-read after each slice. That is the only extra wake-up — one per slice
/// (default 15 minutes) while something is scheduled, none when nothing is — and it does no
/// scheduling work.
#[derive(Debug, Clone)]
pub struct SystemClock {
    max_slice: Duration,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            max_slice: Duration::from_secs(15 * 60),
        }
    }
}

impl SystemClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock that re-reads the wall clock at least every `max_slice` while sleeping.
    pub fn with_max_slice(max_slice: Duration) -> Self {
        SystemClock {
            max_slice: max_slice.max(Duration::from_millis(10)),
        }
    }
}

/// Milliseconds since the Unix epoch from the system clock (0 before 1970).
pub fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        system_now_ms()
    }

    fn sleep_until(&self, deadline_ms: i64) -> Sleep {
        let max_slice = self.max_slice;
        Box::pin(async move {
            loop {
                let now = system_now_ms();
                if now >= deadline_ms {
                    return;
                }
                let remaining =
                    Duration::from_millis(u64::try_from(deadline_ms - now).unwrap_or(0));
                tokio::time::sleep(remaining.min(max_slice)).await;
            }
        })
    }
}

struct Sleeper {
    id: u64,
    deadline_ms: i64,
    waker: Waker,
}

#[derive(Default)]
struct TestInner {
    now_ms: AtomicI64,
    next_id: AtomicU64,
    sleepers: Mutex<Vec<Sleeper>>,
    /// Sleeps that resolved after having waited (not the ones that were due at once).
    fired: AtomicU64,
    registered: tokio::sync::Notify,
}

impl TestInner {
    fn sleepers(&self) -> std::sync::MutexGuard<'_, Vec<Sleeper>> {
        self.sleepers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A clock that stands still until the test moves it.
#[derive(Clone, Default)]
pub struct TestClock {
    inner: Arc<TestInner>,
}

impl std::fmt::Debug for TestClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClock")
            .field("now_ms", &self.now_ms())
            .finish()
    }
}

impl TestClock {
    pub fn new(start_ms: i64) -> Self {
        let clock = TestClock::default();
        clock.inner.now_ms.store(start_ms, Ordering::SeqCst);
        clock
    }

    /// Moves time to `ms` (never backwards) and wakes every sleeper now due.
    pub fn set(&self, ms: i64) {
        self.inner.now_ms.fetch_max(ms, Ordering::SeqCst);
        let now = self.inner.now_ms.load(Ordering::SeqCst);
        let due: Vec<Waker> = {
            let sleepers = self.inner.sleepers();
            sleepers
                .iter()
                .filter(|s| s.deadline_ms <= now)
                .map(|s| s.waker.clone())
                .collect()
        };
        for w in due {
            w.wake();
        }
    }

    /// Moves time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.set(self.now_ms().saturating_add(ms.max(0)));
    }

    /// The earliest deadline anyone is sleeping on.
    pub fn next_deadline(&self) -> Option<i64> {
        self.inner.sleepers().iter().map(|s| s.deadline_ms).min()
    }

    /// Moves time to the earliest pending deadline; returns it (`None` when nobody sleeps).
    pub fn advance_to_next_deadline(&self) -> Option<i64> {
        let next = self.next_deadline()?;
        self.set(next);
        Some(next)
    }

    /// Waits until someone sleeps on a deadline (bounded by `timeout` of real time).
    pub async fn wait_for_sleeper(&self, timeout: Duration) -> Option<i64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.registered.notified();
            if let Some(next) = self.next_deadline() {
                return Some(next);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.next_deadline();
            }
        }
    }

    /// How many sleeps resolved after waiting (i.e. timer wake-ups).
    pub fn fired(&self) -> u64 {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// How many sleepers are registered right now.
    pub fn sleeper_count(&self) -> usize {
        self.inner.sleepers().len()
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline_ms: i64) -> Sleep {
        Box::pin(TestSleep {
            inner: self.inner.clone(),
            deadline_ms,
            id: None,
        })
    }
}

struct TestSleep {
    inner: Arc<TestInner>,
    deadline_ms: i64,
    id: Option<u64>,
}

impl Future for TestSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = self.inner.now_ms.load(Ordering::SeqCst);
        if now >= self.deadline_ms {
            if let Some(id) = self.id.take() {
                self.inner.sleepers().retain(|s| s.id != id);
                self.inner.fired.fetch_add(1, Ordering::SeqCst);
            }
            return Poll::Ready(());
        }
        let inner = self.inner.clone();
        match self.id {
            Some(id) => {
                let mut sleepers = inner.sleepers();
                if let Some(s) = sleepers.iter_mut().find(|s| s.id == id) {
                    s.waker.clone_from(cx.waker());
                }
            }
            None => {
                let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
                inner.sleepers().push(Sleeper {
                    id,
                    deadline_ms: self.deadline_ms,
                    waker: cx.waker().clone(),
                });
                self.id = Some(id);
                inner.registered.notify_waiters();
            }
        }
        // Time may have moved between the check and the registration.
        if inner.now_ms.load(Ordering::SeqCst) >= self.deadline_ms {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Drop for TestSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.inner.sleepers().retain(|s| s.id != id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn test_clock_wakes_only_due_sleepers() {
        let clock = TestClock::new(1_000);
        let early = tokio::spawn(clock.sleep_until(2_000));
        let late = tokio::spawn(clock.sleep_until(5_000));
        assert_eq!(
            clock.wait_for_sleeper(Duration::from_secs(5)).await,
            Some(2_000)
        );
        while clock.sleeper_count() < 2 {
            tokio::task::yield_now().await;
        }
        clock.advance(500);
        tokio::task::yield_now().await;
        assert!(!early.is_finished());
        clock.set(2_000);
        early.await.unwrap();
        assert!(!late.is_finished());
        assert_eq!(clock.advance_to_next_deadline(), Some(5_000));
        late.await.unwrap();
        assert_eq!(clock.fired(), 2);
        assert_eq!(clock.sleeper_count(), 0);
        // A deadline already passed resolves at once and is not a wake-up.
        clock.sleep_until(10).await;
        assert_eq!(clock.fired(), 2);
    }

    #[tokio::test]
    async fn system_clock_sleeps_to_a_wall_clock_deadline() {
        let clock = SystemClock::with_max_slice(Duration::from_millis(20));
        let start = clock.now_ms();
        clock.sleep_until(start + 60).await;
        assert!(clock.now_ms() >= start + 60);
    }
}
