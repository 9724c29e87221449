//! Per-sender debounce (`messages.inbound.debounceMs`): a burst of text messages from one
//! sender in one conversation is held until the sender pauses for the window, then handed
//! on as one batch. Bounded: a batch is released early at `max_batch` items, and when more
//! than `max_keys` senders are pending new ones are not held at all.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Releases a batch (called from a timer task or inline).
pub type FlushFn<T> = Arc<dyn Fn(Vec<T>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct Slot<T> {
    items: Vec<T>,
    deadline: Instant,
    generation: u64,
}

struct State<T> {
    slots: HashMap<String, Slot<T>>,
    next_generation: u64,
}

/// The debouncer. Cheap to clone.
pub struct Debouncer<T> {
    window: Duration,
    max_batch: usize,
    max_keys: usize,
    state: Arc<Mutex<State<T>>>,
    flush: FlushFn<T>,
}

impl<T> Clone for Debouncer<T> {
    fn clone(&self) -> Self {
        Debouncer {
            window: self.window,
            max_batch: self.max_batch,
            max_keys: self.max_keys,
            state: self.state.clone(),
            flush: self.flush.clone(),
        }
    }
}

impl<T: Send + 'static> Debouncer<T> {
    pub fn new(window: Duration, max_batch: usize, max_keys: usize, flush: FlushFn<T>) -> Self {
        Debouncer {
            window,
            max_batch: max_batch.max(1),
            max_keys: max_keys.max(1),
            state: Arc::new(Mutex::new(State {
                slots: HashMap::new(),
                next_generation: 0,
            })),
            flush,
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Senders with a batch pending.
    pub fn pending_keys(&self) -> usize {
        self.state.lock().slots.len()
    }

    /// Holds `item` under `key` (`None`). When it cannot be held (window 0, too many pending
    /// senders) it is returned, and the caller must handle it now (after [`Self::take`]-ing
    /// anything pending for the key).
    pub fn push(&self, key: &str, item: T) -> Option<T> {
        if self.window.is_zero() {
            return Some(item);
        }
        let now = Instant::now();
        let deadline = now + self.window;
        let mut state = self.state.lock();
        if let Some(slot) = state.slots.get_mut(key) {
            slot.items.push(item);
            slot.deadline = deadline;
            if slot.items.len() >= self.max_batch {
                if let Some(slot) = state.slots.remove(key) {
                    drop(state);
                    let fut = (self.flush)(slot.items);
                    tokio::spawn(fut);
                }
            }
            return None;
        }
        if state.slots.len() >= self.max_keys {
            return Some(item);
        }
        state.next_generation += 1;
        let generation = state.next_generation;
        state.slots.insert(
            key.to_string(),
            Slot {
                items: vec![item],
                deadline,
                generation,
            },
        );
        drop(state);
        let this = self.clone();
        let key = key.to_string();
        tokio::spawn(async move { this.timer(key, generation, deadline).await });
        None
    }

    async fn timer(self, key: String, generation: u64, mut deadline: Instant) {
        loop {
            tokio::time::sleep_until(deadline).await;
            let batch = {
                let mut state = self.state.lock();
                match state.slots.get(&key) {
                    Some(slot) if slot.generation == generation => {
                        if slot.deadline > Instant::now() {
                            deadline = slot.deadline;
                            None
                        } else {
                            state.slots.remove(&key).map(|s| s.items)
                        }
                    }
                    // Taken or replaced meanwhile.
                    _ => return,
                }
            };
            if let Some(items) = batch {
                (self.flush)(items).await;
                return;
            }
        }
    }

    /// Removes and returns what is pending for `key` (to release it before an item that must
    /// not wait, such as a command, keeping the sender's order).
    pub fn take(&self, key: &str) -> Vec<T> {
        self.state
            .lock()
            .slots
            .remove(key)
            .map(|s| s.items)
            .unwrap_or_default()
    }

    /// Releases every pending batch now (shutdown).
    pub async fn flush_all(&self) {
        let batches: Vec<Vec<T>> = {
            let mut state = self.state.lock();
            state.slots.drain().map(|(_, s)| s.items).collect()
        };
        for batch in batches {
            (self.flush)(batch).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::sync::mpsc;

    fn collecting(
        window_ms: u64,
        max_batch: usize,
    ) -> (Debouncer<u32>, mpsc::UnboundedReceiver<Vec<u32>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let flush: FlushFn<u32> = Arc::new(move |items| {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx.send(items);
            })
        });
        (
            Debouncer::new(Duration::from_millis(window_ms), max_batch, 100, flush),
            rx,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_released_once_after_the_sender_pauses() {
        let (d, mut rx) = collecting(300, 20);
        for i in 0..3 {
            assert_eq!(d.push("alice", i), None);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(rx.try_recv().is_err(), "still inside the window");
        assert!(d.push("bob", 10).is_none());
        tokio::time::sleep(Duration::from_millis(301)).await;
        let mut got = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        got.sort();
        assert_eq!(got, vec![vec![0, 1, 2], vec![10]]);
        assert_eq!(d.pending_keys(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_window_passes_through_and_max_batch_releases_early() {
        let (d, _rx) = collecting(0, 20);
        assert_eq!(d.push("a", 1), Some(1));
        let (d, mut rx) = collecting(1000, 3);
        for i in 0..3 {
            assert!(d.push("a", i).is_none());
        }
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await.unwrap(), vec![0, 1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn take_releases_pending_items_and_cancels_the_timer() {
        let (d, mut rx) = collecting(300, 20);
        assert!(d.push("a", 1).is_none() && d.push("a", 2).is_none());
        assert_eq!(d.take("a"), vec![1, 2]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(rx.try_recv().is_err(), "taken items are not released twice");
        assert!(d.push("a", 3).is_none());
        d.flush_all().await;
        assert_eq!(rx.recv().await.unwrap(), vec![3]);
    }

    #[tokio::test(start_paused = true)]
    async fn too_many_pending_senders_are_not_held() {
        let (tx, _rx) = mpsc::unbounded_channel::<Vec<u32>>();
        let flush: FlushFn<u32> = Arc::new(move |items| {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx.send(items);
            })
        });
        let d = Debouncer::new(Duration::from_secs(1), 10, 2, flush);
        assert!(d.push("a", 1).is_none() && d.push("b", 2).is_none());
        assert_eq!(d.push("c", 3), Some(3));
        assert_eq!(d.push("a", 4), None, "existing senders still batch");
    }
}
