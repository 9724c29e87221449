//! Authenticated connections: their identity, their byte-bounded outbound queue, and the
//! sharded registry the event bus fans out over.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use pincer_protocol::close;
use pincer_protocol::connect::{ClientId, ClientMode, Role};
use pincer_protocol::frames::EventEnvelope;
use pincer_protocol::scopes::ScopeSet;
use tokio::sync::Notify;

use crate::subscriptions::Subscriptions;

/// Who is on the other end of a connection (fixed at hello).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Process-unique numeric id (registry key).
    pub id: u64,
    /// `hello-ok.server.connId`.
    pub conn_id: String,
    pub role: Role,
    pub scopes: ScopeSet,
    pub client_id: ClientId,
    pub client_mode: ClientMode,
    pub device_id: Option<String>,
    pub instance_id: Option<String>,
    pub ip: IpAddr,
    /// Client capabilities (`connect.params.caps`).
    pub caps: Vec<String>,
    /// How the connect authenticated (`hello-ok.auth.method`).
    pub auth_method: crate::pairing::AuthMethod,
    /// Generation of the shared auth it authenticated against (see `auth::AuthCell`).
    pub auth_generation: u64,
}

/// One queued outbound frame.
#[derive(Debug)]
pub enum Outgoing {
    /// A ready frame (responses, direct events).
    Text(String),
    /// A broadcast event framed with this connection's seq when written (`None` on node
    /// sockets, which get events without seq).
    Event(Arc<EventEnvelope>, Option<u64>),
}

impl Outgoing {
    pub fn render(self) -> String {
        match self {
            Outgoing::Text(s) => s,
            Outgoing::Event(env, seq) => env.frame(seq),
        }
    }
}

/// Why a connection must close, as requested by another task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseRequest {
    /// Send a close frame with this code/reason.
    Close(u16, String),
    /// Drop the socket without a close frame (missed pong).
    Terminate,
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<(Outgoing, usize)>,
    bytes: usize,
    seq: u64,
    close: Option<CloseRequest>,
}

/// Result of offering an event to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// Over the buffer limit and droppable: skipped, but its seq was consumed.
    DroppedSlow,
    /// Over the buffer limit and not droppable: the connection is being closed (1008 slow consumer).
    ClosedSlow,
    /// The connection is already closing.
    Closed,
}

/// The shared half of a connection: the connection task owns the socket, everyone else talks
/// to it through this handle.
pub struct ConnHandle {
    pub info: ConnInfo,
    outbox: Mutex<Outbox>,
    notify: Notify,
    max_buffered: usize,
    /// Set by the global ping timer; cleared by a pong.
    pub pong_pending: AtomicBool,
    /// Asks the connection task to write a ping.
    pub ping_requested: AtomicBool,
    /// `sessions.subscribe` / `sessions.messages.subscribe` state (see [`crate::subscriptions`]).
    pub subscriptions: Subscriptions,
}

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnHandle")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl ConnHandle {
    pub fn new(info: ConnInfo, max_buffered: usize) -> ConnHandle {
        ConnHandle {
            info,
            outbox: Mutex::new(Outbox::default()),
            notify: Notify::new(),
            max_buffered,
            pong_pending: AtomicBool::new(false),
            ping_requested: AtomicBool::new(false),
            subscriptions: Subscriptions::default(),
        }
    }

    /// Wakes when something was queued or a close was requested.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Queue an event with the next seq of this connection (seq is consumed even when dropped).
    /// Node sockets get events without `seq` (spec invariant 6).
    pub fn offer_event(&self, envelope: &Arc<EventEnvelope>, drop_if_slow: bool) -> Delivery {
        let len = envelope.frame_len();
        let mut ob = self.outbox.lock();
        if ob.close.is_some() {
            return Delivery::Closed;
        }
        let seq = if self.info.role == Role::Node {
            None
        } else {
            ob.seq += 1;
            Some(ob.seq)
        };
        if ob.bytes + len > self.max_buffered {
            if drop_if_slow {
                return Delivery::DroppedSlow;
            }
            ob.close = Some(CloseRequest::Close(
                close::POLICY_VIOLATION,
                close::REASON_SLOW_CONSUMER.into(),
            ));
            drop(ob);
            self.notify.notify_one();
            return Delivery::ClosedSlow;
        }
        ob.bytes += len;
        ob.queue
            .push_back((Outgoing::Event(Arc::clone(envelope), seq), len));
        drop(ob);
        self.notify.notify_one();
        Delivery::Queued
    }

    /// Queue a ready frame (a response from a handler task, or a direct event).
    pub fn send_text(&self, frame: String) -> Delivery {
        let len = frame.len();
        let mut ob = self.outbox.lock();
        if ob.close.is_some() {
            return Delivery::Closed;
        }
        if ob.bytes + len > self.max_buffered {
            ob.close = Some(CloseRequest::Close(
                close::POLICY_VIOLATION,
                close::REASON_SLOW_CONSUMER.into(),
            ));
            drop(ob);
            self.notify.notify_one();
            return Delivery::ClosedSlow;
        }
        ob.bytes += len;
        ob.queue.push_back((Outgoing::Text(frame), len));
        drop(ob);
        self.notify.notify_one();
        Delivery::Queued
    }

    /// Ask the connection to close (first request wins).
    pub fn request_close(&self, request: CloseRequest) {
        let mut ob = self.outbox.lock();
        if ob.close.is_none() {
            ob.close = Some(request);
        }
        drop(ob);
        self.notify.notify_one();
    }

    /// Take up to `max_bytes` of queued frames (at least one) for writing.
    pub fn drain(&self, out: &mut Vec<Outgoing>, max_bytes: usize) -> usize {
        let mut ob = self.outbox.lock();
        let mut taken = 0;
        while let Some((_, len)) = ob.queue.front() {
            if taken > 0 && taken + *len > max_bytes {
                break;
            }
            let len = *len;
            if let Some((item, _)) = ob.queue.pop_front() {
                out.push(item);
            }
            taken += len;
            ob.bytes -= len;
        }
        taken
    }

    pub fn pending_close(&self) -> Option<CloseRequest> {
        self.outbox.lock().close.clone()
    }

    pub fn has_queued(&self) -> bool {
        !self.outbox.lock().queue.is_empty()
    }

    /// Bytes queued and not yet handed to the socket.
    pub fn buffered_bytes(&self) -> usize {
        self.outbox.lock().bytes
    }

    /// The last seq assigned on this connection.
    pub fn last_seq(&self) -> u64 {
        self.outbox.lock().seq
    }
}

const SHARDS: usize = 16;

/// All authenticated connections, sharded so fan-out and (de)registration never contend on
/// one lock.
pub struct Registry {
    shards: [RwLock<HashMap<u64, Arc<ConnHandle>>>; SHARDS],
    next_id: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            next_id: AtomicU64::new(1),
        }
    }
}

impl Registry {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn shard(&self, id: u64) -> &RwLock<HashMap<u64, Arc<ConnHandle>>> {
        &self.shards[(id as usize) % SHARDS]
    }

    pub fn insert(&self, handle: Arc<ConnHandle>) {
        self.shard(handle.info.id)
            .write()
            .insert(handle.info.id, handle);
    }

    pub fn remove(&self, id: u64) -> Option<Arc<ConnHandle>> {
        self.shard(id).write().remove(&id)
    }

    pub fn get(&self, id: u64) -> Option<Arc<ConnHandle>> {
        self.shard(id).read().get(&id).cloned()
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Visit every connection (each shard under its read lock; `f` must not block).
    pub fn for_each(&self, mut f: impl FnMut(&Arc<ConnHandle>)) {
        for shard in &self.shards {
            for handle in shard.read().values() {
                f(handle);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    pub(crate) fn info(id: u64, role: Role, scopes: &[&str]) -> ConnInfo {
        ConnInfo {
            id,
            conn_id: format!("conn-{id}"),
            role,
            scopes: ScopeSet::new(scopes.iter().copied()),
            client_id: ClientId::Cli,
            client_mode: ClientMode::Cli,
            device_id: None,
            instance_id: None,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            caps: vec![],
            auth_method: crate::pairing::AuthMethod::Token,
            auth_generation: 1,
        }
    }

    #[test]
    fn drain_respects_batch_size_but_takes_at_least_one() {
        let h = ConnHandle::new(info(1, Role::Operator, &[]), 1 << 20);
        h.send_text("x".repeat(100));
        h.send_text("y".repeat(100));
        let mut out = Vec::new();
        assert_eq!(h.drain(&mut out, 10), 100);
        assert_eq!(out.len(), 1);
        assert_eq!(h.buffered_bytes(), 100);
        out.clear();
        assert_eq!(h.drain(&mut out, 1000), 100);
        assert_eq!(h.buffered_bytes(), 0);
    }

    #[test]
    fn registry_insert_remove_iterate() {
        let r = Registry::default();
        for _ in 0..40 {
            let id = r.next_id();
            r.insert(Arc::new(ConnHandle::new(
                info(id, Role::Operator, &[]),
                1024,
            )));
        }
        assert_eq!(r.len(), 40);
        let mut n = 0;
        r.for_each(|_| n += 1);
        assert_eq!(n, 40);
        assert!(r.remove(1).is_some());
        assert!(r.get(1).is_none());
        assert_eq!(r.len(), 39);
    }
}
