//! I/O: listeners, epoll reactor threads, per-connection buffers and send queues,
//! the event queue and timers. The only module that touches file descriptors.
//!
//! Data flow: reactors own the sockets and push events to the shared [`EventQueue`];
//! any application thread sends by locking the target connection's write state and
//! writing directly (when nothing is queued) or appending to its send queue, which the
//! owning reactor flushes when the socket becomes writable.

pub mod config;
mod conn;
pub mod error;
pub mod event;
mod event_queue;
mod reactor;
mod registry;
mod send_queue;
pub mod static_files;
pub mod stats;
mod sys;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use config::{Config, SlowConsumerPolicy};
pub use error::Error;
pub use event::{CloseInfo, ConnId, Event, EventKind, RequestInfo, SendStatus};
pub use stats::Stats;

use conn::{ConnShared, Phase};
use event_queue::EventQueue;
use registry::Registry;
use stats::Counters;
use sys::EventFd;

use crate::protocol::close::{CloseCode, MAX_CLOSE_REASON};
use crate::protocol::frame::{server_header, OpCode};
use crate::protocol::handshake::{self, HandshakePolicy};
use crate::protocol::http::HeadLimits;
use crate::protocol::{Limits, MessageKind};

/// Connection ids are unique across every server in the process, for its lifetime.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Work handed to a reactor by other threads.
pub(crate) enum Command {
    Adopt {
        shared: Arc<ConnShared>,
        stream: TcpStream,
        initial: Vec<u8>,
    },
    /// The app accepted; the subprotocol it chose, for the Open event.
    Accepted(ConnId, Option<String>),
    Rejected(ConnId),
    /// Re-examine a connection's write state (abort requested, etc.).
    Kick(ConnId),
    /// The event queue has room again: read paused connections.
    Resume,
    Shutdown {
        deadline: Instant,
    },
}

pub(crate) struct ReactorHandle {
    wake: EventFd,
    commands: Mutex<Vec<Command>>,
}

pub(crate) struct EngineShared {
    config: Config,
    policy: HandshakePolicy,
    head_limits: HeadLimits,
    limits: Limits,
    registry: Registry,
    events: EventQueue,
    stats: Counters,
    reactors: Vec<ReactorHandle>,
    stopping: AtomicBool,
    next_reactor: AtomicUsize,
    epoch: Instant,
}

impl EngineShared {
    fn next_conn_id(&self) -> ConnId {
        ConnId(NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// Milliseconds since start, never 0 (0 means "not set" in atomics).
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn command(&self, reactor: usize, command: Command) {
        let handle = &self.reactors[reactor];
        handle.commands.lock().push(command);
        handle.wake.signal();
    }

    /// Refuses a frame of `frame_len` bytes that would take the connection over its
    /// hard limit or the server over its buffer budget. An empty queue always takes
    /// one frame, so a message larger than the limits can still be sent.
    fn admit(&self, st: &mut conn::WriteState, frame_len: usize) -> Result<(), Error> {
        let queued = st.queue.bytes();
        if queued == 0 {
            return Ok(());
        }
        if queued + frame_len > self.config.send_queue_hard_limit {
            Counters::add(&self.stats.queue_full, 1);
            st.drain_wanted = true;
            return Err(Error::QueueFull);
        }
        let total = self.stats.send_queue_bytes.load(Ordering::Relaxed) as usize;
        if total + frame_len > self.config.max_buffered_bytes {
            Counters::add(&self.stats.budget_refusals, 1);
            st.drain_wanted = true;
            return Err(Error::QueueFull);
        }
        Ok(())
    }

    /// After a frame was accepted: over the soft limit, report backpressure and ask for
    /// a `Drain` event at the low-water mark.
    fn status_after_send(&self, st: &mut conn::WriteState) -> SendStatus {
        if st.queue.bytes() > self.config.send_queue_soft_limit {
            Counters::add(&self.stats.backpressure_reports, 1);
            st.drain_wanted = true;
            SendStatus::Backpressure
        } else {
            SendStatus::Accepted
        }
    }

    /// Queues our close frame on an open connection unless one was already sent.
    fn close_locked(&self, conn: &ConnShared, code: CloseCode, reason: &str) -> bool {
        let mut st = conn.state.lock();
        if st.phase != Phase::Open || st.closing.on_send_close().is_err() {
            return false;
        }
        let _ = st.write_close(Some(code), reason, &self.stats);
        conn.close_sent_at_ms
            .store(self.now_ms(), Ordering::Relaxed);
        true
    }
}

/// A running engine: listeners, reactor threads, and the event queue.
pub struct Engine {
    shared: Arc<EngineShared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    local_addrs: Vec<SocketAddr>,
    /// Kept open until the reactors have exited, so no reactor ever accepts on a
    /// descriptor number that was closed and reused.
    _listeners: Arc<Vec<TcpListener>>,
}

impl Engine {
    pub fn start(config: Config) -> Result<Engine, Error> {
        validate_config(&config)?;
        let mut listeners = Vec::new();
        for addr in &config.listen {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            listeners.push(l);
        }
        let local_addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<Vec<_>, _>>()?;
        let threads = match config.reactor_threads {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        };
        let mut reactors = Vec::with_capacity(threads);
        for _ in 0..threads {
            reactors.push(ReactorHandle {
                wake: EventFd::new()?,
                commands: Mutex::new(Vec::new()),
            });
        }
        let shared = Arc::new(EngineShared {
            policy: HandshakePolicy {
                allowed_origins: config.allowed_origins.clone(),
                subprotocols: config.subprotocols.clone(),
            },
            head_limits: HeadLimits {
                max_head_bytes: config.max_head_bytes,
                max_headers: config.max_headers,
            },
            limits: Limits {
                max_frame_size: config.max_frame_size,
                max_message_size: config.max_message_size,
            },
            events: EventQueue::new(config.event_queue_capacity)?,
            registry: Registry::new(),
            stats: Counters::default(),
            reactors,
            stopping: AtomicBool::new(false),
            next_reactor: AtomicUsize::new(0),
            epoch: Instant::now(),
            config,
        });
        let listeners = Arc::new(listeners);
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let reactor = reactor::Reactor::new(index, shared.clone(), listeners.clone())?;
            let handle = std::thread::Builder::new()
                .name(format!("wsq-reactor-{index}"))
                .spawn(move || reactor.run())?;
            handles.push(handle);
        }
        Ok(Engine {
            shared,
            threads: Mutex::new(handles),
            local_addrs,
            _listeners: listeners,
        })
    }

    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    pub fn event_fd(&self) -> std::os::fd::RawFd {
        self.shared.events.event_fd()
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Moves up to `max` events into `out`; waits up to `timeout` (None: until one
    /// arrives or the server stops) for the first. Returns how many were added.
    pub fn poll_batch(&self, out: &mut Vec<Event>, max: usize, timeout: Option<Duration>) -> usize {
        let popped = self.shared.events.pop_batch(out, max, timeout);
        if popped.resume_readers {
            for i in 0..self.shared.reactors.len() {
                self.shared.command(i, Command::Resume);
            }
        }
        popped.count
    }

    fn conn(&self, id: ConnId) -> Result<Arc<ConnShared>, Error> {
        self.shared.registry.get(id).ok_or(Error::NotFound)
    }

    fn check_running(&self) -> Result<(), Error> {
        if self.shared.stopping.load(Ordering::Acquire) {
            Err(Error::Stopped)
        } else {
            Ok(())
        }
    }

    /// Sends one message. Safe from any thread; frames of different sends never
    /// interleave. Accepted messages report whether the connection is now over its
    /// soft limit; only the hard limit (or the server-wide budget) refuses.
    pub fn send(&self, id: ConnId, kind: MessageKind, payload: &[u8]) -> Result<SendStatus, Error> {
        self.check_running()?;
        let conn = self.conn(id)?;
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let (h, n) = server_header(opcode, true, payload.len() as u64);
        let mut st = conn.state.lock();
        match st.phase {
            Phase::Open => {}
            Phase::Closed => return Err(Error::Closed),
            Phase::Handshaking | Phase::AwaitingAccept => {
                return Err(Error::InvalidState("the connection is not open yet"))
            }
        }
        if !st.closing.can_send_data() {
            return Err(Error::Closed);
        }
        if let Err(e) = self.shared.admit(&mut st, n + payload.len()) {
            if self.shared.config.slow_consumer == SlowConsumerPolicy::Close
                && matches!(e, Error::QueueFull)
                && !st.abort_requested
            {
                st.abort_requested = true;
                drop(st);
                self.shared.command(conn.reactor, Command::Kick(id));
            }
            return Err(e);
        }
        st.write_frame(&h[..n], payload, &self.shared.stats)?;
        Counters::add(&self.shared.stats.messages_out, 1);
        Ok(self.shared.status_after_send(&mut st))
    }

    /// Bytes accepted for `id` and not yet written to its socket.
    pub fn buffered_amount(&self, id: ConnId) -> Result<usize, Error> {
        let conn = self.conn(id)?;
        let st = conn.state.lock();
        Ok(st.queue.bytes())
    }

    pub fn ping(&self, id: ConnId, payload: &[u8]) -> Result<(), Error> {
        self.check_running()?;
        if payload.len() > 125 {
            return Err(Error::InvalidArgument(
                "a ping payload is at most 125 bytes (RFC 6455 §5.5)",
            ));
        }
        let conn = self.conn(id)?;
        let mut st = conn.state.lock();
        if st.phase != Phase::Open {
            return Err(if st.phase == Phase::Closed {
                Error::Closed
            } else {
                Error::InvalidState("the connection is not open yet")
            });
        }
        if !st.closing.can_send_data() {
            return Err(Error::Closed);
        }
        let (h, n) = server_header(OpCode::Ping, true, payload.len() as u64);
        st.write_frame(&h[..n], payload, &self.shared.stats)
    }

    /// Starts the closing handshake with `code` (valid on the wire: 1000-1003,
    /// 1007-1014, 3000-4999) and a reason of at most 123 bytes.
    pub fn close(&self, id: ConnId, code: u16, reason: &str) -> Result<(), Error> {
        if !CloseCode(code).is_valid_on_wire() {
            return Err(Error::InvalidArgument(
                "close code not allowed on the wire (RFC 6455 §7.4)",
            ));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(Error::InvalidArgument(
                "close reason longer than 123 bytes (RFC 6455 §5.5)",
            ));
        }
        let conn = self.conn(id)?;
        {
            let st = conn.state.lock();
            match st.phase {
                Phase::Open => {}
                Phase::Closed => return Err(Error::Closed),
                _ => {
                    return Err(Error::InvalidState(
                        "use reject for a connection awaiting accept",
                    ))
                }
            }
        }
        if self.shared.close_locked(&conn, CloseCode(code), reason) {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    /// Sends one message to every open connection (`targets == None`) or to the given
    /// ones, encoding the frame once. Returns how many connections accepted it;
    /// connections that are closing, gone or over their queue limit are skipped.
    pub fn broadcast(
        &self,
        kind: MessageKind,
        payload: &[u8],
        targets: Option<&[ConnId]>,
    ) -> Result<usize, Error> {
        self.check_running()?;
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        let (h, n) = server_header(opcode, true, payload.len() as u64);
        let mut frame = Vec::with_capacity(n + payload.len());
        frame.extend_from_slice(&h[..n]);
        frame.extend_from_slice(payload);
        let frame: Arc<[u8]> = Arc::from(frame);
        let conns: Vec<Arc<ConnShared>> = match targets {
            None => self.shared.registry.all(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.shared.registry.get(*id))
                .collect(),
        };
        let mut delivered = 0;
        for conn in conns {
            let mut st = conn.state.lock();
            if st.phase != Phase::Open || !st.closing.can_send_data() {
                continue;
            }
            if self.shared.admit(&mut st, frame.len()).is_err() {
                continue;
            }
            if st.write_shared(&frame, &self.shared.stats).is_ok() {
                delivered += 1;
                let _ = self.shared.status_after_send(&mut st);
            }
        }
        Counters::add(&self.shared.stats.messages_out, delivered as u64);
        Ok(delivered)
    }

    pub fn set_tag(&self, id: ConnId, tag: u64) -> Result<(), Error> {
        self.conn(id)?.tag.store(tag, Ordering::Relaxed);
        Ok(())
    }

    pub fn tag(&self, id: ConnId) -> Result<u64, Error> {
        Ok(self.conn(id)?.tag())
    }

    /// Manual-accept mode: completes the handshake of a connection that produced an
    /// `UpgradeRequest` event. `subprotocol` overrides the server's choice (it must be
    /// one the client offered); `headers` are added to the 101 response.
    pub fn accept(
        &self,
        id: ConnId,
        subprotocol: Option<&str>,
        headers: &[(String, String)],
    ) -> Result<(), Error> {
        self.check_running()?;
        let conn = self.conn(id)?;
        let mut st = conn.state.lock();
        if st.phase != Phase::AwaitingAccept {
            return Err(Error::InvalidState("the connection is not awaiting accept"));
        }
        let pending = st
            .pending_upgrade
            .as_ref()
            .expect("awaiting accept has a pending upgrade");
        let chosen = match subprotocol {
            None => pending.subprotocol.clone(),
            Some(p) if pending.offered_subprotocols.iter().any(|o| o == p) => Some(p.to_string()),
            Some(_) => {
                return Err(Error::InvalidArgument(
                    "subprotocol was not offered by the client",
                ))
            }
        };
        let response = handshake::render_accept(&pending.accept, chosen.as_deref(), headers);
        st.pending_upgrade = None;
        st.write_frame(&response, &[], &self.shared.stats)?;
        st.phase = Phase::Open;
        drop(st);
        self.shared
            .command(conn.reactor, Command::Accepted(id, chosen));
        Ok(())
    }

    /// Manual-accept mode: refuses an upgrade with an HTTP status (400-599) and body.
    pub fn reject(&self, id: ConnId, status: u16, body: &str) -> Result<(), Error> {
        if !(400..=599).contains(&status) {
            return Err(Error::InvalidArgument("reject status must be 400-599"));
        }
        let conn = self.conn(id)?;
        let mut st = conn.state.lock();
        if st.phase != Phase::AwaitingAccept {
            return Err(Error::InvalidState("the connection is not awaiting accept"));
        }
        st.pending_upgrade = None;
        let response =
            handshake::render_response(status, &[], "text/plain; charset=utf-8", body.as_bytes());
        let _ = st.write_frame(&response, &[], &self.shared.stats);
        st.phase = Phase::Closed;
        st.finish_after_flush = true;
        drop(st);
        Counters::add(&self.shared.stats.rejected_by_app, 1);
        self.shared.command(conn.reactor, Command::Rejected(id));
        Ok(())
    }

    /// Takes over an accepted TCP connection, with any bytes already read from it
    /// (e.g. a request head read by another HTTP server). The engine then runs the
    /// handshake and the connection as if it had accepted it.
    pub fn adopt(&self, stream: TcpStream, initial: &[u8]) -> Result<ConnId, Error> {
        self.check_running()?;
        Counters::add(&self.shared.stats.tcp_accepted, 1);
        let id = self.shared.next_conn_id();
        let reactor =
            self.shared.next_reactor.fetch_add(1, Ordering::Relaxed) % self.shared.reactors.len();
        let shared = ConnShared::new(id, reactor, -1);
        self.shared.command(
            reactor,
            Command::Adopt {
                shared,
                stream,
                initial: initial.to_vec(),
            },
        );
        Ok(id)
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot(self.shared.events.len() as u64)
    }

    /// Graceful shutdown: stop accepting, send close 1001 to every connection after
    /// its queued messages, wait up to `timeout` for them to close, then drop the rest
    /// (their `Close` events report unsent messages). Events stay pollable afterwards.
    pub fn stop(&self, timeout: Duration) {
        let first = !self.shared.stopping.swap(true, Ordering::AcqRel);
        if first {
            let deadline = Instant::now() + timeout;
            for i in 0..self.shared.reactors.len() {
                self.shared.command(i, Command::Shutdown { deadline });
            }
        }
        let handles = std::mem::take(&mut *self.threads.lock());
        for h in handles {
            let _ = h.join();
        }
        self.shared.events.close();
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

fn validate_config(c: &Config) -> Result<(), Error> {
    if c.listen.is_empty() {
        return Err(Error::InvalidArgument(
            "listen: at least one address is required",
        ));
    }
    if c.max_head_bytes < 64 {
        return Err(Error::InvalidArgument("max_head_bytes must be at least 64"));
    }
    if c.max_headers == 0 {
        return Err(Error::InvalidArgument("max_headers must be at least 1"));
    }
    if c.max_frame_size == 0 || c.max_message_size == 0 {
        return Err(Error::InvalidArgument(
            "max_frame_size and max_message_size must be positive",
        ));
    }
    if c.send_queue_soft_limit == 0 || c.event_queue_capacity == 0 {
        return Err(Error::InvalidArgument(
            "send_queue_soft_limit and event_queue_capacity must be positive",
        ));
    }
    if c.send_queue_hard_limit < c.send_queue_soft_limit {
        return Err(Error::InvalidArgument(
            "send_queue_hard_limit must be at least send_queue_soft_limit",
        ));
    }
    if c.send_queue_low_water > c.send_queue_soft_limit {
        return Err(Error::InvalidArgument(
            "send_queue_low_water must be at most send_queue_soft_limit",
        ));
    }
    if c.max_buffered_bytes == 0 {
        return Err(Error::InvalidArgument(
            "max_buffered_bytes must be positive",
        ));
    }
    if c.reactor_threads > 1024 {
        return Err(Error::InvalidArgument(
            "reactor_threads must be at most 1024",
        ));
    }
    Ok(())
}
