//! I/O: listeners, epoll reactor threads, per-connection buffers and send queues,
//! the event queue and timers. The only module that touches file descriptors.
//!
//! Data flow: reactors own the sockets, run each connection's protocol state machine
//! (`protocol::server_connection`) and push events to the shared event queue; any
//! application thread sends by locking the target connection's state and writing
//! directly (when nothing is queued) or appending to its send queue, which the owning
//! reactor flushes when the socket becomes writable.

pub mod config;
mod conn;
mod cork;
pub mod error;
pub mod event;
mod event_queue;
mod handler;
mod id_map;
mod large_spares;
mod leader;
mod reactor;
mod recycle;
mod registry;
mod send;
mod send_queue;
mod shared;
pub mod static_files;
pub mod stats;
mod sys;
mod timers;
pub mod tls;
mod transport;

use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use config::{Config, DeflateMode, SlowConsumerPolicy};
pub use error::Error;
pub use event::{CloseInfo, ConnId, Event, EventKind, RequestInfo, SendStatus};
pub use handler::{EventHandler, Replies};
pub use recycle::give_back as recycle_buffer;
pub use stats::Stats;

use conn::ConnShared;
use event_queue::EventQueue;
use leader::Leadership;
use registry::Registry;
use shared::{Command, EngineShared, ReactorHandle, Refusal};
use stats::{Counters, Tally};
use sys::EventFd;

use crate::protocol::close::{CloseCode, MAX_CLOSE_REASON};
use crate::protocol::error::SendError;
use crate::protocol::extensions::DeflatePolicy;
use crate::protocol::handshake::HandshakePolicy;
use crate::protocol::http::HeadLimits;
use crate::protocol::server_connection::{
    BroadcastFrame, BroadcastFrames, HandshakeAnswerError, Settings,
};
use crate::protocol::{Limits, MessageKind};

thread_local! {
    /// Barriers this thread took with its last poll batch: released when it polls
    /// again (or, through the C ABI, releases the batch), that is, once it has handled
    /// the events before them.
    static HELD_BARRIERS: RefCell<Vec<(Weak<EngineShared>, ConnId, usize)>> =
        const { RefCell::new(Vec::new()) };
}

/// The calling thread has handled its last batch: writes what it corked (every
/// server), then releases the barriers it holds.
pub fn end_batch() {
    cork::uncork(None);
    release_held_barriers();
}

/// Releases the barriers the calling thread holds (see `HELD_BARRIERS`).
fn release_held_barriers() {
    let held = HELD_BARRIERS
        .try_with(|h| std::mem::take(&mut *h.borrow_mut()))
        .unwrap_or_default();
    for (engine, conn, reactor) in held {
        if let Some(engine) = engine.upgrade() {
            engine.command(reactor, Command::ReleaseBarrier(conn));
        }
    }
}

/// A running engine: listeners, reactor threads, and the event queue.
pub struct Engine {
    shared: Arc<EngineShared>,
    /// Held while a stop joins the reactors, so concurrent stops all return when done.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Lets a waiting poller run the reactors' turns (see `leader.rs`).
    leadership: Leadership,
    local_addrs: Vec<SocketAddr>,
}

impl Engine {
    pub fn start(config: Config) -> Result<Engine, Error> {
        validate_config(&config)?;
        // Certificates are checked before any port is bound: a bad one fails the start.
        let mut listener_tls = vec![None; config.listen.len()];
        for t in &config.tls_listen {
            listener_tls.push(Some(tls::server_config(t)?));
        }
        let mut listeners = Vec::new();
        let tls_addrs = config.tls_listen.iter().map(|t| &t.addr);
        for addr in config.listen.iter().chain(tls_addrs) {
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
                tally: Tally::default(),
            });
        }
        let listeners = Arc::new(listeners);
        let shared = Arc::new(EngineShared {
            settings: Arc::new(Settings {
                head_limits: HeadLimits {
                    max_head_bytes: config.max_head_bytes,
                    max_headers: config.max_headers,
                },
                limits: Limits {
                    max_frame_size: config.max_frame_size,
                    max_message_size: config.max_message_size,
                },
                policy: HandshakePolicy {
                    allowed_origins: config.allowed_origins.clone(),
                    subprotocols: config.subprotocols.clone(),
                },
                deflate: DeflatePolicy {
                    mode: config.deflate,
                    window_bits: config.deflate_window_bits,
                    min_size: config.deflate_min_size,
                    level: config.deflate_level,
                },
            }),
            events: EventQueue::new(config.event_queue_capacity)?,
            registry: Registry::new(),
            stats: Counters::default(),
            reactors,
            stopping: AtomicBool::new(false),
            next_reactor: AtomicUsize::new(0),
            epoch: Instant::now(),
            listeners: Mutex::new(Some(listeners.clone())),
            listener_tls,
            config,
        });
        let reactors = (0..threads)
            .map(|index| reactor::Reactor::new(index, shared.clone(), listeners.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (leadership, handles) = Leadership::start(shared.clone(), reactors)?;
        Ok(Engine {
            shared,
            threads: Mutex::new(handles),
            leadership,
            local_addrs,
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
    ///
    /// Calling it again means the caller has handled the previous batch: barriers
    /// taken with that batch are released first (see `ConnEvent::Barrier`).
    pub fn poll_batch(&self, out: &mut Vec<Event>, max: usize, timeout: Option<Duration>) -> usize {
        // The previous batch is handled: what it corked goes out before its barriers
        // release any close frame.
        end_batch();
        if self.shared.config.event_handler.is_some() {
            return 0; // events go to the handler; nothing is ever queued
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut barriers = Vec::new();
        let mut may_lead = timeout != Some(Duration::ZERO);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // A poller that may lead looks without waiting: if nothing is queued, it
            // runs the reactors' turns itself instead of sleeping (see `leader.rs`).
            let wait = if may_lead { Some(Duration::ZERO) } else { left };
            let popped = self.shared.events.pop_batch(out, &mut barriers, max, wait);
            if popped.resume_readers {
                for i in 0..self.shared.reactors.len() {
                    self.shared.command(i, Command::Resume);
                }
            }
            if popped.count == 0 && !barriers.is_empty() {
                // Only barriers: everything before them was handled in earlier batches.
                for (conn, reactor) in barriers.drain(..) {
                    self.shared.command(reactor, Command::ReleaseBarrier(conn));
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return 0;
                }
                continue;
            }
            if popped.count == 0 && may_lead {
                if left == Some(Duration::ZERO) {
                    return 0;
                }
                // Another poller leads, or the server stops: wait on the queue.
                may_lead = self.leadership.lead(left);
                continue;
            }
            if !barriers.is_empty() {
                let weak = Arc::downgrade(&self.shared);
                let _ = HELD_BARRIERS.try_with(|h| {
                    h.borrow_mut()
                        .extend(barriers.drain(..).map(|(c, r)| (weak.clone(), c, r)))
                });
            }
            return popped.count;
        }
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
        send::send(&self.shared, id, kind, payload)
    }

    /// Corks the calling thread's sends to this server until [`Engine::uncork`] (or
    /// its next poll): small messages are queued, and each connection is written once
    /// at the uncork (see `cork.rs`).
    pub fn cork(&self) {
        cork::cork(&self.shared);
    }

    /// Writes what the calling thread corked for this server and ends its cork.
    pub fn uncork(&self) {
        cork::uncork(Some(&self.shared));
    }

    /// Bytes accepted for `id` and not yet written to its socket.
    pub fn buffered_amount(&self, id: ConnId) -> Result<usize, Error> {
        let conn = self.conn(id)?;
        let st = conn.state.lock();
        Ok(st.queue.bytes())
    }

    pub fn ping(&self, id: ConnId, payload: &[u8]) -> Result<(), Error> {
        self.check_running()?;
        let conn = self.conn(id)?;
        let mut st = conn.state.lock();
        if !st.ws.is_open_or_later() {
            return Err(Error::InvalidState("the connection is not open yet"));
        }
        st.ws.ping(payload).map_err(|e| match e {
            SendError::ControlFrameTooLong => {
                Error::InvalidArgument("a ping payload is at most 125 bytes (RFC 6455 §5.5)")
            }
            _ => Error::Closed,
        })?;
        st.pump(&self.shared.stats);
        Ok(())
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
            let mut st = conn.state.lock();
            if !st.ws.is_open_or_later() {
                return Err(Error::InvalidState(
                    "use reject for a connection awaiting accept",
                ));
            }
            st.ws
                .close(CloseCode(code), reason)
                .map_err(|_| Error::Closed)?;
            st.pump(&self.shared.stats);
        }
        self.shared.command(conn.reactor, Command::Kick(id));
        Ok(())
    }

    /// Sends one message to every open connection (`targets == None`) or to the given
    /// ones, encoding the frame once. Returns how many connections accepted it;
    /// connections that are closing, gone or over their hard limit are skipped.
    pub fn broadcast(
        &self,
        kind: MessageKind,
        payload: &[u8],
        targets: Option<&[ConnId]>,
    ) -> Result<usize, Error> {
        self.check_running()?;
        // Encoded once per kind of recipient (plain, or compressed without context
        // takeover), per recipient only with context takeover.
        let mut frames = BroadcastFrames::new(kind, payload);
        let conns: Vec<Arc<ConnShared>> = match targets {
            None => self.shared.registry.all(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.shared.registry.get(*id))
                .collect(),
        };
        let corking = cork::is_corked(&self.shared);
        let mut delivered = 0;
        for conn in conns {
            let mut st = conn.state.lock();
            if !st.ws.is_open_or_later() || !st.ws.can_send() {
                continue;
            }
            if let Err(refusal) = self.shared.admit(&mut st, frames.max_wire_len()) {
                if refusal == Refusal::Condemned {
                    drop(st);
                    self.shared.command(conn.reactor, Command::Kick(conn.id));
                }
                continue;
            }
            let written = match frames.frame_for(&mut st.ws) {
                BroadcastFrame::Shared(frame) => {
                    st.write_shared(&frame, corking, &self.shared.stats)
                }
                BroadcastFrame::Own(frame) => {
                    let (head, body) = frame.parts(payload);
                    st.send_message(head, body, corking, false, &mut None, &self.shared.stats)
                }
            };
            if let Ok(newly_corked) = written {
                delivered += 1;
                let _ = self.shared.status_after_send(&mut st);
                if newly_corked {
                    drop(st);
                    cork::remember(&self.shared, conn.clone());
                }
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
        let chosen = {
            let mut st = conn.state.lock();
            let chosen = st.ws.accept(subprotocol, headers).map_err(answer_error)?;
            st.pump(&self.shared.stats);
            chosen
        };
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
        {
            let mut st = conn.state.lock();
            st.ws
                .reject(status, body.as_bytes())
                .map_err(answer_error)?;
            st.pump(&self.shared.stats);
        }
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
        let reactor =
            self.shared.next_reactor.fetch_add(1, Ordering::Relaxed) % self.shared.reactors.len();
        let conn = self.shared.new_conn(reactor);
        let id = conn.id;
        self.shared.command(
            reactor,
            Command::Adopt {
                shared: conn,
                stream,
                initial: initial.to_vec(),
            },
        );
        Ok(id)
    }

    pub fn stats(&self) -> Stats {
        let mut stats = self.shared.stats.snapshot(self.shared.events.len() as u64);
        for reactor in &self.shared.reactors {
            reactor.tally.add_to(&mut stats);
        }
        stats
    }

    /// Graceful shutdown: close the listeners, send close 1001 to every connection
    /// after its queued messages, wait up to `timeout` for them to close, then drop the
    /// rest (their `Close` events report unsent messages). Events stay pollable
    /// afterwards. Every caller, concurrent ones included, returns once it is done.
    pub fn stop(&self, timeout: Duration) {
        let mut threads = self.threads.lock();
        let first = !self.shared.stopping.swap(true, Ordering::AcqRel);
        if first {
            let deadline = Instant::now() + timeout;
            // The reactors let go of their copies as they process this.
            self.shared.listeners.lock().take();
            for i in 0..self.shared.reactors.len() {
                self.shared.command(i, Command::Shutdown { deadline });
            }
        }
        if handler::in_handler_of(&self.shared) {
            // Called from the event handler, on a reactor thread: waiting here would
            // wait for this very thread. The reactors finish the stop by themselves.
            return;
        }
        for h in threads.drain(..) {
            // A thread standing by for a leader looks at once, sees the stop and
            // finishes it.
            h.thread().unpark();
            let _ = h.join();
        }
        drop(threads);
        self.shared.events.close();
        // The large message buffers kept for reuse are not held after a stop.
        recycle::release_large_spares();
    }
}

fn answer_error(e: HandshakeAnswerError) -> Error {
    match e {
        HandshakeAnswerError::NotAwaitingAnswer => {
            Error::InvalidState("the connection is not awaiting accept")
        }
        HandshakeAnswerError::SubprotocolNotOffered => {
            Error::InvalidArgument("subprotocol was not offered by the client")
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

fn validate_config(c: &Config) -> Result<(), Error> {
    if c.listen.is_empty() && c.tls_listen.is_empty() {
        return Err(Error::InvalidArgument(
            "listen / tls_listen: at least one address is required",
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
    if !(9..=15).contains(&c.deflate_window_bits) {
        return Err(Error::InvalidArgument(
            "deflate_window_bits must be 9..=15 (RFC 7692 §7.1.2)",
        ));
    }
    if c.deflate_level > 9 {
        return Err(Error::InvalidArgument("deflate_level must be 0..=9"));
    }
    if c.reactor_threads > 1024 {
        return Err(Error::InvalidArgument(
            "reactor_threads must be at most 1024",
        ));
    }
    Ok(())
}
