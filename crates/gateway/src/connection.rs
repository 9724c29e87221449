//! One WebSocket connection = one task. The task owns the socket and a tungstenite
//! `WebSocketContext` driven over non-blocking `try_read`/`try_write`, and selects over:
//! socket readable, socket writable (only while a flush is pending), its outbox (events and
//! async replies), the shutdown signal, and one deadline (handshake, auth delay or close grace).
//! Writes are batched: a read burst or an outbox drain feeds many frames, then flushes once.
//!
//! Memory per idle connection is kept small on purpose (10k connections must fit in a few
//! tens of MiB): tungstenite only parses incoming frames (small read buffer) and writes the
//! rare control frames; data frames are framed straight into the task's own outbound buffer,
//! which is released as soon as it has been written out. Socket reads go through a per-thread
//! scratch buffer, so one syscall still fetches a whole burst of requests.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pincer_protocol::close;
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::frames::{parse_request, response_err, EventEnvelope, FrameError};
use pincer_protocol::hello::ChallengePayload;
use pincer_protocol::limits;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame, Role as WsRole, WebSocketConfig, WebSocketContext,
};
use tokio_tungstenite::tungstenite::Message;

use crate::dispatch::{dispatch, DispatchState, Dispatched};
use crate::handshake::{process_connect, Accepted, Rejection, SocketFacts};
use crate::registry::{CloseRequest, ConnHandle};
use crate::state::{GatewayState, PreauthSlot};
use crate::transport::Sock;
use crate::util;

/// tungstenite's own read buffer per socket (it grows to the largest frame seen). Small keeps
/// idle connections cheap; bursts are read through [`SCRATCH`] in one syscall anyway.
const READ_BUFFER: usize = 512;
/// Bytes fetched per read syscall (into the per-thread scratch buffer).
const SCRATCH_BYTES: usize = 16 * 1024;
/// Frames are written to the socket once this much is buffered (or on flush).
const WRITE_BUFFER: usize = 64 * 1024;
/// Outbound bytes the task may hold unsent before the peer counts as a slow consumer.
const MAX_UNSENT: usize = limits::MAX_BUFFERED_BYTES + WRITE_BUFFER + 1024 * 1024;
/// Max bytes taken from the outbox per flush.
const DRAIN_BATCH: usize = 256 * 1024;
/// Messages processed per readable wake-up before giving writes a turn.
const READ_BURST: usize = 64;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_BYTES]);
}

fn ws_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // tungstenite writes only control frames (ping, pong, close), straight into `Outbound`.
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_UNSENT)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Bytes read from the socket but not yet handed to tungstenite (released when drained).
#[derive(Default)]
struct Spill {
    data: Vec<u8>,
    pos: usize,
}

/// Bytes framed for the socket and not yet written (released when fully written).
#[derive(Default)]
struct Outbound {
    data: Vec<u8>,
    pos: usize,
}

impl Outbound {
    fn unsent(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Append one unmasked server frame (RFC 6455 §5.2).
    fn push_frame(&mut self, opcode: u8, payload: &[u8]) {
        if self.data.capacity() == 0 {
            self.data.reserve((payload.len() + 10).max(4096));
        }
        self.data.push(0x80 | opcode);
        let len = payload.len();
        if len < 126 {
            self.data.push(len as u8);
        } else if len <= usize::from(u16::MAX) {
            self.data.push(126);
            self.data.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.data.push(127);
            self.data.extend_from_slice(&(len as u64).to_be_bytes());
        }
        self.data.extend_from_slice(payload);
    }
}

/// Non-blocking std IO over a tokio socket (tungstenite's sync API on top of readiness).
/// Writes never block: they append to the task's outbound buffer, which the task flushes.
struct SockIo<'a> {
    tcp: &'a Sock,
    spill: &'a mut Spill,
    out: &'a mut Outbound,
}

impl Read for SockIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let spill = &mut *self.spill;
        if spill.pos < spill.data.len() {
            let n = buf.len().min(spill.data.len() - spill.pos);
            buf[..n].copy_from_slice(&spill.data[spill.pos..spill.pos + n]);
            spill.pos += n;
            if spill.pos == spill.data.len() {
                *spill = Spill::default();
            }
            return Ok(n);
        }
        if buf.len() >= SCRATCH_BYTES {
            return self.tcp.try_read(buf);
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = self.tcp.try_read(&mut scratch[..])?;
            let k = n.min(buf.len());
            buf[..k].copy_from_slice(&scratch[..k]);
            if n > k {
                spill.data.extend_from_slice(&scratch[k..n]);
            }
            Ok(k)
        })
    }
}

impl Write for SockIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.data.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<Accepted, Rejection>> + Send>>;

enum Phase {
    /// Waiting for the first frame.
    AwaitConnect,
    /// `connect` is being evaluated; further frames queue (at most 15).
    Connecting { pending: VecDeque<String> },
    /// Refused; the answer goes out when the delay has passed.
    Delaying {
        rejection: Rejection,
        pending: usize,
    },
    Open {
        handle: Arc<ConnHandle>,
        ds: DispatchState,
        presence_key: Option<String>,
    },
    /// Close frame sent; waiting briefly for the peer's.
    Closing,
}

struct Conn {
    state: Arc<GatewayState>,
    tcp: Sock,
    ws: WebSocketContext,
    spill: Spill,
    out: Outbound,
    /// A flush hit `WouldBlock`: wait for writability, stop reading (backpressure).
    write_blocked: bool,
    /// The socket is finished (error, EOF, close handshake done).
    done: bool,
    phase: Phase,
    deadline: Option<Instant>,
    connect_fut: Option<ConnectFuture>,
    facts: SocketFacts,
    uid: u64,
    preauth_slot: Option<PreauthSlot>,
}

/// The IO adapter over a connection's socket and buffers (disjoint borrows of `Conn`).
macro_rules! sock_io {
    ($conn:expr) => {
        &mut SockIo {
            tcp: &$conn.tcp,
            spill: &mut $conn.spill,
            out: &mut $conn.out,
        }
    };
}

impl Conn {
    /// A control frame through tungstenite (it lands in `out`).
    fn write(&mut self, msg: Message) {
        if self.done {
            return;
        }
        match self.ws.write(sock_io!(self), msg) {
            Ok(()) => {}
            Err(WsError::WriteBufferFull(_)) => {
                self.begin_close(close::POLICY_VIOLATION, close::REASON_SLOW_CONSUMER);
            }
            Err(_) => self.done = true,
        }
    }

    /// A text data frame, framed directly into the outbound buffer.
    fn write_text(&mut self, text: String) {
        if self.done {
            return;
        }
        if !self.ws.can_write() {
            // tungstenite refuses data after a close frame; so do we (same outcome as before).
            self.done = true;
            return;
        }
        if self.out.unsent() + text.len() + 10 > MAX_UNSENT {
            self.begin_close(close::POLICY_VIOLATION, close::REASON_SLOW_CONSUMER);
            return;
        }
        self.out.push_frame(0x1, text.as_bytes());
        if self.out.unsent() > WRITE_BUFFER {
            self.write_out();
        }
    }

    /// Write buffered bytes to the socket; the buffer is released once empty.
    fn write_out(&mut self) {
        while self.out.pos < self.out.data.len() {
            match self.tcp.try_write(&self.out.data[self.out.pos..]) {
                Ok(0) => {
                    self.done = true;
                    return;
                }
                Ok(n) => self.out.pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    return;
                }
                Err(_) => {
                    self.done = true;
                    return;
                }
            }
        }
        self.out = Outbound::default();
        // TLS keeps records the socket did not take; they need writability too.
        match self.tcp.flush() {
            Ok(()) => self.write_blocked = false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.write_blocked = true,
            Err(_) => self.done = true,
        }
    }

    fn flush(&mut self) {
        if self.done {
            return;
        }
        // Queued pongs/close replies go to `out`; errors here end the connection (e.g. the
        // close handshake has completed).
        match self.ws.flush(sock_io!(self)) {
            Ok(()) => {}
            Err(e) if would_block(&e) => {}
            Err(_) => {
                self.done = true;
                return;
            }
        }
        self.write_out();
    }

    /// Send a close frame and wait (bounded) for the peer's reply.
    fn begin_close(&mut self, code: u16, reason: &str) {
        if matches!(self.phase, Phase::Closing) || self.done {
            return;
        }
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: close::truncate_reason(reason).to_string().into(),
        };
        if self.ws.close(sock_io!(self), Some(frame)).is_err() {
            self.done = true;
        }
        self.flush();
        self.leave_open_phase();
        self.phase = Phase::Closing;
        self.deadline = Some(Instant::now() + Duration::from_millis(limits::CLOSE_GRACE_MS));
        self.connect_fut = None;
    }

    fn leave_open_phase(&mut self) {
        if let Phase::Open {
            handle,
            presence_key,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Closing)
        {
            self.state.registry.remove(handle.info.id);
            if let Some(node) = self.state.nodes.connection_closed(&handle.info) {
                crate::nodes::surface::record_disconnect(&self.state, &node.node_id);
            }
            if let Some(key) = presence_key {
                self.state.presence_remove(&key);
            }
        }
    }

    fn send_challenge(&mut self) {
        let payload = ChallengePayload {
            nonce: self.facts.challenge_nonce.clone(),
            ts: util::now_ms(),
            capabilities: vec![],
        };
        let json = serde_json::to_string(&payload).unwrap_or_default();
        self.write_text(EventEnvelope::new("connect.challenge", Some(&json), None).frame(None));
        self.flush();
    }

    fn on_text(&mut self, text: &str) {
        match &mut self.phase {
            Phase::AwaitConnect => match parse_request(text) {
                Err(FrameError::NotJson) => self.begin_close(close::NORMAL, ""),
                Err(FrameError::Invalid { .. }) => {
                    self.begin_close(close::POLICY_VIOLATION, close::REASON_INVALID_REQUEST_FRAME)
                }
                Ok(req) if req.method != "connect" => {
                    let err =
                        ErrorShape::invalid_request(close::REASON_FIRST_REQUEST_MUST_BE_CONNECT);
                    self.write_text(response_err(&req.id, &err));
                    self.begin_close(
                        close::POLICY_VIOLATION,
                        close::REASON_FIRST_REQUEST_MUST_BE_CONNECT,
                    );
                }
                Ok(req) => {
                    let state = Arc::clone(&self.state);
                    let facts = self.facts.clone();
                    let uid = self.uid;
                    let id = req.id.to_string();
                    let params = req.params_str().map(str::to_string);
                    self.connect_fut = Some(Box::pin(async move {
                        process_connect(&state, &facts, uid, &id, params.as_deref()).await
                    }));
                    self.phase = Phase::Connecting {
                        pending: VecDeque::new(),
                    };
                }
            },
            Phase::Connecting { pending, .. } => {
                pending.push_back(text.to_string());
                if pending.len() > limits::MAX_PENDING_HANDSHAKE_FRAMES {
                    self.begin_close(
                        close::POLICY_VIOLATION,
                        close::REASON_TOO_MANY_PENDING_FRAMES,
                    );
                }
            }
            Phase::Delaying { pending, .. } => {
                *pending += 1;
                if *pending > limits::MAX_PENDING_HANDSHAKE_FRAMES {
                    self.begin_close(
                        close::POLICY_VIOLATION,
                        close::REASON_TOO_MANY_PENDING_FRAMES,
                    );
                }
            }
            Phase::Open { .. } => self.on_request(text),
            Phase::Closing => {}
        }
    }

    fn on_request(&mut self, text: &str) {
        let Phase::Open { handle, ds, .. } = &mut self.phase else {
            return;
        };
        match parse_request(text) {
            Err(FrameError::NotJson) => {
                tracing::debug!(conn = handle.info.id, "ignoring non-JSON frame")
            }
            Err(FrameError::Invalid { id, message }) => {
                let id = id.unwrap_or_else(|| "invalid".to_string());
                let err = ErrorShape::invalid_request(format!("invalid request frame: {message}"));
                self.write_text(response_err(&id, &err));
            }
            Ok(req) => match dispatch(&self.state, handle, ds, req) {
                Dispatched::Frame(frame) => self.write_text(frame),
                Dispatched::Spawned => {}
                Dispatched::FrameThenClose(frame, code, reason) => {
                    self.write_text(frame);
                    self.begin_close(code, reason);
                }
            },
        }
    }

    fn on_connect_result(&mut self, result: Result<Accepted, Rejection>) {
        self.connect_fut = None;
        let pending = match std::mem::replace(&mut self.phase, Phase::AwaitConnect) {
            Phase::Connecting { pending, .. } => pending,
            other => {
                self.phase = other;
                return;
            }
        };
        match result {
            Err(rejection) if !rejection.delay.is_zero() => {
                self.deadline = Some(Instant::now() + rejection.delay);
                self.phase = Phase::Delaying {
                    pending: pending.len(),
                    rejection,
                };
            }
            Err(rejection) => self.reject(rejection),
            Ok(accepted) => self.accept(accepted, pending),
        }
    }

    fn reject(&mut self, rejection: Rejection) {
        tracing::debug!(peer = %self.facts.peer, code = rejection.close_code, reason = %rejection.close_reason, "connect refused");
        if let Some(frame) = rejection.frame {
            self.write_text(frame);
        }
        self.begin_close(rejection.close_code, &rejection.close_reason);
    }

    fn accept(&mut self, accepted: Accepted, pending: VecDeque<String>) {
        let Accepted {
            info,
            hello_frame,
            presence,
            node,
        } = accepted;
        self.ws.set_config(|c| {
            c.max_message_size = Some(limits::MAX_PAYLOAD_BYTES);
            c.max_frame_size = Some(limits::MAX_PAYLOAD_BYTES);
        });
        self.preauth_slot = None;
        self.deadline = None;
        let handle = Arc::new(ConnHandle::new(info, limits::MAX_BUFFERED_BYTES));
        tracing::debug!(
            conn = handle.info.id,
            role = handle.info.role.as_str(),
            client = handle.info.client_id.as_str(),
            "connected"
        );
        self.write_text(hello_frame);
        self.state.registry.insert(Arc::clone(&handle));
        if let Some(node) = node {
            self.state.nodes.register(Arc::clone(&handle), node);
        }
        if !self.state.auth_still_current(&handle.info) {
            // The shared secret changed while this connect was in flight.
            handle.request_close(CloseRequest::Close(
                close::CREDENTIALS_REVOKED,
                close::REASON_GATEWAY_AUTH_CHANGED.into(),
            ));
        }
        let presence_key = presence.map(|(key, entry)| {
            self.state.presence_upsert(key.clone(), entry);
            key
        });
        self.state.send_health_to(handle.info.id);
        self.phase = Phase::Open {
            handle,
            ds: DispatchState::default(),
            presence_key,
        };
        for text in pending {
            self.on_text(&text);
        }
    }

    /// Read what is available (bounded burst).
    fn read_burst(&mut self) {
        for _ in 0..READ_BURST {
            if self.done || self.write_blocked {
                return;
            }
            match self.ws.read(sock_io!(self)) {
                Ok(Message::Text(t)) => self.on_text(t.as_str()),
                Ok(Message::Binary(b)) => match std::str::from_utf8(&b) {
                    Ok(t) => self.on_text(t),
                    Err(_) => self.on_text(""),
                },
                Ok(Message::Pong(_)) => {
                    if let Phase::Open { handle, .. } = &self.phase {
                        handle
                            .pong_pending
                            .store(false, std::sync::atomic::Ordering::Release);
                    }
                }
                Ok(Message::Ping(_)) | Ok(Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {
                    // tungstenite queued the close reply; flushing completes the handshake.
                    self.leave_open_phase();
                    self.phase = Phase::Closing;
                    self.deadline =
                        Some(Instant::now() + Duration::from_millis(limits::CLOSE_GRACE_MS));
                }
                Err(e) if would_block(&e) => return,
                Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
                    self.begin_close(close::MESSAGE_TOO_BIG, "");
                    self.done = true;
                    return;
                }
                Err(WsError::Utf8(_)) => {
                    self.begin_close(1007, "");
                    self.done = true;
                    return;
                }
                Err(_) => {
                    self.done = true;
                    return;
                }
            }
        }
    }

    /// Move queued outbox frames into the socket; honour close/ping requests.
    fn drain_outbox(&mut self) {
        let Phase::Open { handle, .. } = &self.phase else {
            return;
        };
        let handle = Arc::clone(handle);
        match handle.pending_close() {
            Some(CloseRequest::Terminate) => {
                self.leave_open_phase();
                self.done = true;
                return;
            }
            Some(CloseRequest::Close(code, reason)) => {
                // Deliver what was queued before the close (e.g. the shutdown event).
                self.write_queued(&handle, usize::MAX);
                self.begin_close(code, &reason);
                return;
            }
            None => {}
        }
        if handle
            .ping_requested
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            self.write(Message::Ping(Default::default()));
        }
        if !self.write_blocked {
            self.write_queued(&handle, DRAIN_BATCH);
        }
    }

    fn write_queued(&mut self, handle: &Arc<ConnHandle>, max: usize) {
        let mut batch = Vec::new();
        handle.drain(&mut batch, max);
        for item in batch {
            self.write_text(item.render());
        }
        if !self.write_blocked && handle.has_queued() {
            // More is queued than one batch: come back after this flush.
            handle.wake();
        }
    }

    fn on_deadline(&mut self) {
        self.deadline = None;
        match std::mem::replace(&mut self.phase, Phase::Closing) {
            Phase::Delaying { rejection, .. } => {
                self.phase = Phase::AwaitConnect;
                self.reject(rejection);
            }
            Phase::Closing => self.done = true,
            Phase::AwaitConnect | Phase::Connecting { .. } => {
                self.phase = Phase::AwaitConnect;
                self.connect_fut = None;
                self.begin_close(close::NORMAL, "");
            }
            open @ Phase::Open { .. } => self.phase = open,
        }
    }

    fn on_shutdown(&mut self) {
        if matches!(self.phase, Phase::Open { .. }) {
            self.drain_outbox();
            if let Phase::Open { handle, .. } = &self.phase {
                let handle = Arc::clone(handle);
                self.write_queued(&handle, usize::MAX);
            }
        }
        self.begin_close(close::SERVICE_RESTART, close::REASON_SERVICE_RESTART);
    }
}

async fn connect_or_pending(fut: &mut Option<ConnectFuture>) -> Result<Accepted, Rejection> {
    match fut {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn sleep_or_pending(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn outbox_or_pending(handle: Option<Arc<ConnHandle>>) {
    match handle {
        Some(h) => h.notified().await,
        None => std::future::pending().await,
    }
}

/// The request-level facts captured at upgrade time.
#[derive(Debug, Clone)]
pub struct UpgradeFacts {
    pub peer: SocketAddr,
    pub direct_local: bool,
    pub origin: Option<String>,
    pub host: Option<String>,
    /// Forwarding headers, trusted-proxy identity (see `security::SecurityState::peer_facts`).
    pub extra: crate::handshake::PeerFacts,
}

/// Drive one upgraded socket to completion.
pub async fn run(
    state: Arc<GatewayState>,
    tcp: Sock,
    already_read: Vec<u8>,
    up: UpgradeFacts,
    slot: PreauthSlot,
) {
    state.socket_opened();
    let mut shutdown: watch::Receiver<bool> = state.shutdown_tx.subscribe();
    let uid = state.registry.next_id();
    let facts = SocketFacts {
        peer: up.peer,
        direct_local: up.direct_local,
        origin: up.origin,
        host: up.host,
        challenge_nonce: uuid::Uuid::new_v4().to_string(),
        extra: up.extra,
    };
    let ws = WebSocketContext::from_partially_read(
        already_read,
        WsRole::Server,
        Some(ws_config(limits::MAX_PREAUTH_PAYLOAD_BYTES)),
    );
    let mut conn = Conn {
        deadline: Some(Instant::now() + state.timers.handshake_timeout),
        state: Arc::clone(&state),
        tcp,
        ws,
        spill: Spill::default(),
        out: Outbound::default(),
        write_blocked: false,
        done: false,
        phase: Phase::AwaitConnect,
        connect_fut: None,
        facts,
        uid,
        preauth_slot: Some(slot),
    };
    conn.send_challenge();
    if *shutdown.borrow() {
        conn.on_shutdown();
    }
    while !conn.done {
        let handle = match &conn.phase {
            Phase::Open { handle, .. } => Some(Arc::clone(handle)),
            _ => None,
        };
        let can_read = !conn.write_blocked;
        let want_write = conn.write_blocked;
        let watching_shutdown = !matches!(conn.phase, Phase::Closing);
        tokio::select! {
            biased;
            changed = shutdown.changed(), if watching_shutdown => {
                if changed.is_err() || *shutdown.borrow() {
                    conn.on_shutdown();
                }
            }
            r = conn.tcp.writable(), if want_write => {
                if r.is_err() {
                    conn.done = true;
                } else {
                    conn.flush();
                    if !conn.write_blocked {
                        // Queued frames waited for this flush.
                        conn.drain_outbox();
                    }
                }
            }
            result = connect_or_pending(&mut conn.connect_fut), if conn.connect_fut.is_some() => {
                conn.on_connect_result(result);
            }
            r = conn.tcp.readable(), if can_read => {
                if r.is_err() { conn.done = true; } else { conn.read_burst(); }
            }
            _ = outbox_or_pending(handle) => {
                conn.drain_outbox();
            }
            _ = sleep_or_pending(conn.deadline) => {
                conn.on_deadline();
            }
        }
        conn.flush();
    }
    // A completed close handshake ends the loop with tungstenite's close reply still in `out`
    // (the peer started the close): send it, best effort, so the peer sees its code echoed.
    conn.write_out();
    conn.leave_open_phase();
    drop(conn);
    state.socket_closed();
}
