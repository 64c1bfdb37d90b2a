//! A reactor thread: owns a set of sockets, reads them with epoll (edge-triggered),
//! runs the protocol state machines, queues events, flushes send queues on
//! writability, and runs the connection timers.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{ConnShared, PendingUpgrade, Phase};
use super::event::{CloseInfo, ConnId, Event, EventKind, RequestInfo};
use super::stats::Counters;
use super::sys::{self, Epoll};
use super::{static_files, Command, EngineShared};
use crate::protocol::close::{CloseCode, CloseReply};
use crate::protocol::frame::{server_header, OpCode};
use crate::protocol::handshake;
use crate::protocol::http::{RequestHead, RequestParser};
use crate::protocol::reader::{Incoming, Reader};

/// epoll token of the reactor's wake-up eventfd; listeners count down from below it;
/// connection ids (which start at 1) are their own tokens.
const WAKE_TOKEN: u64 = u64::MAX;
const LISTENER_TOKEN_BASE: u64 = u64::MAX - 1;
/// One shared read buffer per reactor: idle connections hold no read buffer at all.
const SCRATCH_SIZE: usize = 64 * 1024;
/// Reads per connection per wake-up before other connections get a turn.
const READS_PER_TURN: usize = 16;
/// How often timers are checked.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// How long to stop accepting after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const CONN_EVENTS: u32 = sys::EV_IN | sys::EV_OUT | sys::EV_RDHUP | sys::EV_ET;

enum ReadPhase {
    Handshake(RequestParser),
    /// Manual accept: the socket is not read until the app answers.
    AwaitingAccept,
    Open(Reader),
    /// Nothing more is processed: input is read and dropped until EOF.
    Discard,
}

/// The reactor-owned half of a connection.
struct Local {
    shared: Arc<ConnShared>,
    fd: RawFd,
    read: ReadPhase,
    /// An incomplete frame header (or request bytes held back while awaiting accept).
    pending_in: Vec<u8>,
    remote: Option<SocketAddr>,
    info: Option<Box<RequestInfo>>,
    accepted_at: Instant,
    last_read: Instant,
    ping_sent_at: Option<Instant>,
    /// Our side was half-closed at this time; the peer has `close_timeout` to hang up.
    finished_at: Option<Instant>,
    /// The app has seen this id (Open or UpgradeRequest), so it gets a Close event.
    announced: bool,
    /// Counted in `stats.connections`.
    counted: bool,
    close_info: Option<CloseInfo>,
}

pub struct Reactor {
    index: usize,
    engine: Arc<EngineShared>,
    epoll: Epoll,
    listeners: Arc<Vec<TcpListener>>,
    listeners_paused_until: Option<Instant>,
    conns: HashMap<u64, Local>,
    scratch: Vec<u8>,
    /// Connections with unread input left after their turn.
    ready: Vec<u64>,
    /// Connections that stopped reading because the event queue was full.
    paused: Vec<u64>,
    events: Vec<Event>,
    incoming: Vec<Incoming>,
    shutdown_deadline: Option<Instant>,
    next_sweep: Instant,
}

/// Starts the close deadline of a connection we are finishing (close frame or HTTP
/// error response queued), so a peer that never reads cannot hold it open forever.
fn mark_finishing(engine: &EngineShared, shared: &ConnShared) {
    let _ = shared.close_sent_at_ms.compare_exchange(
        0,
        engine.now_ms(),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
}

/// How a connection ended without a completed closing handshake.
fn unclean(code: CloseCode, reason: &str) -> CloseInfo {
    CloseInfo {
        code: code.0,
        reason: reason.to_string(),
        clean: false,
        unsent_messages: 0,
    }
}

/// Lost without any closing handshake (§7.1.5: reported as 1006).
fn lost(reason: &str) -> CloseInfo {
    unclean(CloseCode::ABNORMAL, reason)
}

impl Reactor {
    pub fn new(
        index: usize,
        engine: Arc<EngineShared>,
        listeners: Arc<Vec<TcpListener>>,
    ) -> std::io::Result<Reactor> {
        let epoll = Epoll::new()?;
        epoll.add(engine.reactors[index].wake.fd(), WAKE_TOKEN, sys::EV_IN)?;
        let reactor = Reactor {
            index,
            engine,
            epoll,
            listeners,
            listeners_paused_until: None,
            conns: HashMap::new(),
            scratch: vec![0; SCRATCH_SIZE],
            ready: Vec::new(),
            paused: Vec::new(),
            events: Vec::new(),
            incoming: Vec::new(),
            shutdown_deadline: None,
            next_sweep: Instant::now() + SWEEP_INTERVAL,
        };
        reactor.watch_listeners(true);
        Ok(reactor)
    }

    fn watch_listeners(&self, on: bool) {
        use std::os::fd::AsRawFd;
        for (i, l) in self.listeners.iter().enumerate() {
            if on {
                // EPOLLEXCLUSIVE: a new connection wakes one reactor, not all of them.
                let _ = self.epoll.add(
                    l.as_raw_fd(),
                    LISTENER_TOKEN_BASE - i as u64,
                    sys::EV_IN | sys::EV_EXCLUSIVE,
                );
            } else {
                let _ = self.epoll.delete(l.as_raw_fd());
            }
        }
    }

    pub fn run(mut self) {
        let mut ready_events = sys::empty_events(256);
        loop {
            let timeout = if self.ready.is_empty() {
                SWEEP_INTERVAL.as_millis() as i32
            } else {
                0
            };
            let n = self.epoll.wait(&mut ready_events, timeout).unwrap_or(0);
            for ev in &ready_events[..n] {
                let (token, flags) = (ev.u64, ev.events);
                if token == WAKE_TOKEN {
                    self.engine.reactors[self.index].wake.clear();
                    self.run_commands();
                } else if token > LISTENER_TOKEN_BASE - self.listeners.len() as u64 {
                    self.accept((LISTENER_TOKEN_BASE - token) as usize);
                } else {
                    self.on_io(token, flags);
                }
            }
            let again = std::mem::take(&mut self.ready);
            for id in again {
                self.on_readable(id);
            }
            self.publish_events();
            let now = Instant::now();
            if now >= self.next_sweep {
                self.sweep(now);
                self.next_sweep = now + SWEEP_INTERVAL;
                self.publish_events();
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() {
                    break;
                }
                if now >= deadline {
                    let ids: Vec<u64> = self.conns.keys().copied().collect();
                    for id in ids {
                        // A closing handshake that completed keeps its clean report.
                        self.teardown(id, |l| {
                            l.close_info
                                .take()
                                .unwrap_or_else(|| unclean(CloseCode::GOING_AWAY, "server stopped"))
                        });
                    }
                    break;
                }
            }
        }
        self.publish_events();
    }

    fn publish_events(&mut self) {
        self.engine.events.push_all(&mut self.events);
    }

    fn run_commands(&mut self) {
        let commands = std::mem::take(&mut *self.engine.reactors[self.index].commands.lock());
        for command in commands {
            match command {
                Command::Adopt {
                    shared,
                    stream,
                    initial,
                } => self.adopt(shared, stream, initial),
                Command::Accepted(id, subprotocol) => self.on_accepted(id.0, subprotocol),
                Command::Rejected(id) => {
                    if let Some(local) = self.conns.get_mut(&id.0) {
                        local.read = ReadPhase::Discard;
                        local.close_info = Some(lost("rejected by the application"));
                        mark_finishing(&self.engine, &local.shared);
                        self.after_write(id.0);
                    }
                }
                Command::Kick(id) => self.after_write(id.0),
                Command::Resume => self.ready.append(&mut self.paused),
                Command::Shutdown { deadline } => self.begin_shutdown(deadline),
            }
        }
    }

    // ---- accepting -------------------------------------------------------------

    fn accept(&mut self, listener: usize) {
        let engine = self.engine.clone();
        let stats = &engine.stats;
        for _ in 0..64 {
            match self.listeners[listener].accept() {
                Ok((stream, addr)) => {
                    Counters::add(&stats.tcp_accepted, 1);
                    if self.shutdown_deadline.is_some() {
                        continue; // dropped: we are stopping
                    }
                    let id = self.engine.next_conn_id();
                    let shared = ConnShared::new(id, self.index, -1);
                    self.register(shared, stream, Some(addr), Vec::new());
                }
                Err(e) if sys::would_block(&e) => break,
                Err(e) => {
                    Counters::add(&stats.accept_errors, 1);
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) {
                        // Out of descriptors: the pending connection stays in the
                        // backlog and would wake us in a busy loop; back off instead.
                        self.watch_listeners(false);
                        self.listeners_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                        break;
                    }
                }
            }
        }
    }

    fn adopt(&mut self, shared: Arc<ConnShared>, stream: TcpStream, initial: Vec<u8>) {
        let remote = stream.peer_addr().ok();
        let id = shared.id.0;
        self.register(shared, stream, remote, initial);
        // Edge-triggered: bytes already in the socket must be read now.
        if self.conns.contains_key(&id) {
            self.on_readable(id);
        }
    }

    fn register(
        &mut self,
        shared: Arc<ConnShared>,
        stream: TcpStream,
        remote: Option<SocketAddr>,
        initial: Vec<u8>,
    ) {
        let _ = stream.set_nodelay(true);
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let fd = stream.into_raw_fd();
        let id = shared.id.0;
        shared.state.lock().fd = fd;
        if self.epoll.add(fd, id, CONN_EVENTS).is_err() {
            shared.state.lock().fd = -1;
            sys::close(fd);
            return;
        }
        self.engine.registry.insert(shared.clone());
        let now = Instant::now();
        self.conns.insert(
            id,
            Local {
                shared,
                fd,
                read: ReadPhase::Handshake(RequestParser::new(self.engine.head_limits)),
                pending_in: Vec::new(),
                remote,
                info: None,
                accepted_at: now,
                last_read: now,
                ping_sent_at: None,
                finished_at: None,
                announced: false,
                counted: false,
                close_info: None,
            },
        );
        if !initial.is_empty() {
            self.process(id, &initial);
        }
    }

    // ---- I/O ---------------------------------------------------------------------

    fn on_io(&mut self, id: u64, flags: u32) {
        if flags & sys::EV_OUT != 0 {
            if let Some(local) = self.conns.get(&id) {
                let mut st = local.shared.state.lock();
                st.blocked = false;
                let _ = st.flush(&self.engine.stats);
            }
            self.after_write(id);
        }
        if flags & (sys::EV_IN | sys::EV_RDHUP | sys::EV_HUP | sys::EV_ERR) != 0 {
            let hangup = flags & (sys::EV_RDHUP | sys::EV_HUP | sys::EV_ERR) != 0;
            self.read_turn(id, !hangup);
        }
    }

    fn on_readable(&mut self, id: u64) {
        self.read_turn(id, false);
    }

    /// Reads a connection for one turn. `trust_short_read`: a read shorter than the
    /// buffer means the socket is drained and the next arrival re-arms the edge. That
    /// holds for data, but not when the peer's FIN came with this edge (no new edge will
    /// announce it), so the caller passes false when the event carried a hang-up.
    fn read_turn(&mut self, id: u64, trust_short_read: bool) {
        for _ in 0..READS_PER_TURN {
            let Some(local) = self.conns.get(&id) else {
                return;
            };
            let fd = local.fd;
            match local.read {
                ReadPhase::AwaitingAccept => return,
                ReadPhase::Discard => {}
                _ => {
                    if self.engine.events.is_full(self.events.len())
                        && self.shutdown_deadline.is_none()
                    {
                        // Backpressure: leave the bytes in the kernel; TCP pushes back.
                        self.engine.events.note_readers_paused();
                        Counters::add(&self.engine.stats.read_pauses, 1);
                        self.paused.push(id);
                        return;
                    }
                }
            }
            match sys::read(fd, &mut self.scratch) {
                Ok(0) => {
                    self.on_eof(id);
                    return;
                }
                Ok(n) => {
                    Counters::add(&self.engine.stats.bytes_in, n as u64);
                    let scratch = std::mem::take(&mut self.scratch);
                    self.process(id, &scratch[..n]);
                    self.scratch = scratch;
                    if n < SCRATCH_SIZE && trust_short_read {
                        return;
                    }
                }
                Err(e) if sys::would_block(&e) => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.teardown(id, |l| {
                        l.close_info
                            .take()
                            .unwrap_or_else(|| lost("connection reset"))
                    });
                    return;
                }
            }
        }
        self.ready.push(id);
    }

    fn on_eof(&mut self, id: u64) {
        self.teardown(id, |l| {
            l.close_info
                .take()
                .unwrap_or_else(|| lost("connection closed without a close frame"))
        });
    }

    /// Runs received bytes through the connection's current phase.
    fn process(&mut self, id: u64, data: &[u8]) {
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        local.last_read = Instant::now();
        local.ping_sent_at = None;
        match &mut local.read {
            ReadPhase::Discard => {}
            ReadPhase::AwaitingAccept => local.pending_in.extend_from_slice(data),
            ReadPhase::Handshake(parser) => match parser.feed(data) {
                Ok(None) => {}
                Ok(Some((head, rest))) => self.on_request(id, head, rest),
                Err(err) => {
                    Counters::add(&self.engine.stats.rejected_bad_handshake, 1);
                    let body = format!("{}\n", err.message);
                    let response = handshake::render_response(
                        err.status,
                        &[],
                        "text/plain; charset=utf-8",
                        body.as_bytes(),
                    );
                    self.respond_and_finish(id, &response);
                }
            },
            ReadPhase::Open(_) => self.process_frames(id, data),
        }
    }

    fn process_frames(&mut self, id: u64, data: &[u8]) {
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        let ReadPhase::Open(reader) = &mut local.read else {
            return;
        };
        let consumed;
        if local.pending_in.is_empty() {
            consumed = reader.feed(data, &mut self.incoming);
            local.pending_in.extend_from_slice(&data[consumed..]);
        } else {
            let mut buf = std::mem::take(&mut local.pending_in);
            buf.extend_from_slice(data);
            consumed = reader.feed(&buf, &mut self.incoming);
            buf.drain(..consumed);
            local.pending_in = buf;
        }
        if reader.is_finished() {
            local.pending_in = Vec::new();
        }
        let incoming = std::mem::take(&mut self.incoming);
        let mut incoming_iter = incoming.into_iter();
        for item in incoming_iter.by_ref() {
            self.on_incoming(id, item);
        }
        // Reuse the allocation for the next batch.
        self.incoming = incoming_iter.collect();
        self.incoming.clear();
        self.after_write(id);
    }

    fn on_incoming(&mut self, id: u64, item: Incoming) {
        let engine = &*self.engine;
        let stats = &engine.stats;
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        let tag = local.shared.tag();
        let conn = ConnId(id);
        match item {
            Incoming::Message { kind, payload } => {
                Counters::add(&stats.messages_in, 1);
                self.events.push(Event {
                    conn,
                    tag,
                    kind: EventKind::Message {
                        kind,
                        data: payload,
                    },
                });
            }
            Incoming::Ping(payload) => {
                {
                    let mut st = local.shared.state.lock();
                    if st.closing.can_send_data() {
                        let (h, n) = server_header(OpCode::Pong, true, payload.len() as u64);
                        let _ = st.write_frame(&h[..n], &payload, stats);
                    }
                }
                if engine.config.deliver_ping_pong {
                    self.events.push(Event {
                        conn,
                        tag,
                        kind: EventKind::Ping(payload),
                    });
                }
            }
            Incoming::Pong(payload) => {
                if engine.config.deliver_ping_pong {
                    self.events.push(Event {
                        conn,
                        tag,
                        kind: EventKind::Pong(payload),
                    });
                }
            }
            Incoming::Close { code, reason } => {
                let mut st = local.shared.state.lock();
                if let CloseReply::Reply(echo) = st.closing.on_receive_close(code) {
                    let _ = st.write_close(echo, "", stats);
                }
                st.finish_after_flush = true;
                drop(st);
                mark_finishing(engine, &local.shared);
                local.read = ReadPhase::Discard;
                local.close_info = Some(CloseInfo {
                    code: code.map(|c| c.0).unwrap_or(CloseCode::NO_STATUS.0),
                    reason,
                    clean: true,
                    unsent_messages: 0,
                });
            }
            Incoming::Error(err) => {
                let code = err.close_code();
                if code == CloseCode::MESSAGE_TOO_BIG.0 {
                    Counters::add(&stats.too_big, 1);
                } else {
                    Counters::add(&stats.protocol_errors, 1);
                }
                let reason = err.to_string();
                let mut st = local.shared.state.lock();
                if st.closing.on_send_close().is_ok() {
                    let _ = st.write_close(Some(CloseCode(code)), &reason, stats);
                }
                st.finish_after_flush = true;
                drop(st);
                mark_finishing(engine, &local.shared);
                local.read = ReadPhase::Discard;
                local.close_info = Some(CloseInfo {
                    code,
                    reason,
                    clean: false,
                    unsent_messages: 0,
                });
            }
        }
    }

    // ---- handshake -----------------------------------------------------------------

    fn on_request(&mut self, id: u64, head: RequestHead, rest: Vec<u8>) {
        let engine = self.engine.clone();
        let stats = &engine.stats;
        if !handshake::is_upgrade_request(&head) {
            Counters::add(&stats.http_requests, 1);
            let response = static_files::respond(engine.config.static_dir.as_deref(), &head);
            self.respond_and_finish(id, &response);
            return;
        }
        let upgrade = match handshake::validate(&head, &engine.policy) {
            Ok(u) => u,
            Err(rejection) => {
                Counters::add(&stats.rejected_bad_handshake, 1);
                self.respond_and_finish(id, &handshake::render_rejection(&rejection));
                return;
            }
        };
        if stats.connections.load(Ordering::Relaxed) as usize >= engine.config.max_connections {
            Counters::add(&stats.rejected_over_capacity, 1);
            let response = handshake::render_response(
                503,
                &[],
                "text/plain; charset=utf-8",
                b"server is at its connection limit\n",
            );
            self.respond_and_finish(id, &response);
            return;
        }
        Counters::add(&stats.connections, 1);
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        local.counted = true;
        local.announced = true;
        let info = Box::new(RequestInfo {
            target: head.target.clone(),
            remote: local.remote,
            subprotocol: upgrade.subprotocol.clone(),
            offered_subprotocols: upgrade.offered_subprotocols.clone(),
            headers: head.headers,
        });
        let tag = local.shared.tag();
        if engine.config.manual_accept {
            {
                let mut st = local.shared.state.lock();
                st.phase = Phase::AwaitingAccept;
                st.pending_upgrade = Some(PendingUpgrade {
                    accept: upgrade.accept,
                    subprotocol: upgrade.subprotocol,
                    offered_subprotocols: upgrade.offered_subprotocols,
                });
            }
            local.read = ReadPhase::AwaitingAccept;
            local.pending_in = rest;
            local.info = Some(info.clone());
            self.events.push(Event {
                conn: ConnId(id),
                tag,
                kind: EventKind::UpgradeRequest(info),
            });
            return;
        }
        let response =
            handshake::render_accept(&upgrade.accept, upgrade.subprotocol.as_deref(), &[]);
        {
            let mut st = local.shared.state.lock();
            let _ = st.write_frame(&response, &[], stats);
            st.phase = Phase::Open;
        }
        self.open(id, info, rest);
    }

    /// The 101 has been written: start framing and tell the app.
    fn open(&mut self, id: u64, info: Box<RequestInfo>, rest: Vec<u8>) {
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        Counters::add(&self.engine.stats.handshakes, 1);
        local.read = ReadPhase::Open(Reader::new(self.engine.limits));
        local.pending_in.clear();
        self.events.push(Event {
            conn: ConnId(id),
            tag: local.shared.tag(),
            kind: EventKind::Open(info),
        });
        if !rest.is_empty() {
            self.process_frames(id, &rest);
        }
    }

    fn on_accepted(&mut self, id: u64, subprotocol: Option<String>) {
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        if !matches!(local.read, ReadPhase::AwaitingAccept) {
            return;
        }
        let mut info = local.info.take().unwrap_or_default();
        // The Open event reports what the 101 said, which may be the app's choice.
        info.subprotocol = subprotocol;
        let rest = std::mem::take(&mut local.pending_in);
        self.open(id, info, rest);
        // Input that arrived while we were not reading is still in the kernel.
        self.ready.push(id);
    }

    /// Writes an HTTP response and closes once it is out.
    fn respond_and_finish(&mut self, id: u64, response: &[u8]) {
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        local.read = ReadPhase::Discard;
        {
            let mut st = local.shared.state.lock();
            let _ = st.write_frame(response, &[], &self.engine.stats);
            st.finish_after_flush = true;
        }
        mark_finishing(&self.engine, &local.shared);
        self.after_write(id);
    }

    // ---- after writes: finishing, drain, aborts ----------------------------------------

    /// Acts on the write side's state: tears down broken or aborted connections,
    /// half-closes finished ones, and reports `Drain`.
    fn after_write(&mut self, id: u64) {
        let Some(local) = self.conns.get_mut(&id) else {
            return;
        };
        let low_water = self.engine.config.send_queue_low_water;
        let mut st = local.shared.state.lock();
        if st.abort_requested {
            drop(st);
            Counters::add(&self.engine.stats.slow_consumer_closes, 1);
            self.teardown(id, |_| {
                unclean(
                    CloseCode::POLICY_VIOLATION,
                    "slow consumer: send queue full",
                )
            });
            return;
        }
        if st.broken {
            drop(st);
            self.teardown(id, |l| {
                l.close_info.take().unwrap_or_else(|| lost("write failed"))
            });
            return;
        }
        if st.drain_wanted && st.queue.bytes() <= low_water && st.phase == Phase::Open {
            st.drain_wanted = false;
            self.events.push(Event {
                conn: ConnId(id),
                tag: local.shared.tag(),
                kind: EventKind::Drain,
            });
        }
        if st.finish_after_flush && st.queue.is_empty() && local.finished_at.is_none() {
            // §7.1.1: the server closes the TCP connection first. Half-close, so the
            // peer reads everything we sent, then wait for its EOF.
            sys::shutdown_write(local.fd);
            local.finished_at = Some(Instant::now());
            local.read = ReadPhase::Discard;
        }
    }

    /// Closes the socket, forgets the connection and reports its `Close` event.
    fn teardown(&mut self, id: u64, info: impl FnOnce(&mut Local) -> CloseInfo) {
        let Some(mut local) = self.conns.remove(&id) else {
            return;
        };
        let stats = &self.engine.stats;
        let _ = self.epoll.delete(local.fd);
        let unsent = {
            let mut st = local.shared.state.lock();
            let unsent = st.discard_queue(stats);
            st.phase = Phase::Closed;
            st.fd = -1;
            sys::close(local.fd);
            unsent
        };
        self.engine.registry.remove(ConnId(id));
        if local.counted {
            Counters::sub(&stats.connections, 1);
        }
        Counters::add(&stats.unsent_messages, unsent as u64);
        let mut info = info(&mut local);
        info.unsent_messages = unsent as u64;
        if local.announced {
            self.events.push(Event {
                conn: ConnId(id),
                tag: local.shared.tag(),
                kind: EventKind::Close(info),
            });
        }
    }

    // ---- timers and shutdown ----------------------------------------------------------

    fn sweep(&mut self, now: Instant) {
        if let Some(until) = self.listeners_paused_until {
            if now >= until && self.shutdown_deadline.is_none() {
                self.listeners_paused_until = None;
                self.watch_listeners(true);
            }
        }
        let config = &self.engine.config;
        let (handshake_timeout, idle, ping, pong_timeout, close_timeout) = (
            config.handshake_timeout,
            config.idle_timeout,
            config.ping_interval,
            config.pong_timeout,
            config.close_timeout,
        );
        let now_ms = self.engine.now_ms();
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(local) = self.conns.get_mut(&id) else {
                continue;
            };
            if let Some(at) = local.finished_at {
                if now.duration_since(at) >= close_timeout {
                    self.teardown(id, |l| {
                        l.close_info
                            .take()
                            .unwrap_or_else(|| lost("peer did not close"))
                    });
                }
                continue;
            }
            match local.read {
                ReadPhase::Handshake(_) | ReadPhase::AwaitingAccept => {
                    if let Some(t) = handshake_timeout {
                        if now.duration_since(local.accepted_at) >= t {
                            Counters::add(&self.engine.stats.handshake_timeouts, 1);
                            let response = handshake::render_response(
                                408,
                                &[],
                                "text/plain; charset=utf-8",
                                b"handshake timed out\n",
                            );
                            let _ = local.shared.state.lock().write_frame(
                                &response,
                                &[],
                                &self.engine.stats,
                            );
                            self.teardown(id, |_| lost("handshake timed out"));
                        }
                    }
                    continue;
                }
                ReadPhase::Discard | ReadPhase::Open(_) => {}
            }
            let sent_at = local.shared.close_sent_at_ms.load(Ordering::Relaxed);
            if sent_at != 0 && now_ms.saturating_sub(sent_at) >= close_timeout.as_millis() as u64 {
                self.teardown(id, |l| {
                    l.close_info
                        .take()
                        .unwrap_or_else(|| lost("peer did not answer the close"))
                });
                continue;
            }
            if let Some(t) = ping {
                match local.ping_sent_at {
                    Some(at) if now.duration_since(at) >= pong_timeout => {
                        Counters::add(&self.engine.stats.ping_timeouts, 1);
                        self.teardown(id, |_| lost("no pong within the pong timeout"));
                        continue;
                    }
                    None if now.duration_since(local.last_read) >= t => {
                        let mut st = local.shared.state.lock();
                        if st.phase == Phase::Open && st.closing.can_send_data() {
                            let (h, n) = server_header(OpCode::Ping, true, 0);
                            let _ = st.write_frame(&h[..n], &[], &self.engine.stats);
                            local.ping_sent_at = Some(now);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(t) = idle {
                if now.duration_since(local.last_read) >= t && sent_at == 0 {
                    Counters::add(&self.engine.stats.idle_timeouts, 1);
                    self.engine
                        .close_locked(&local.shared, CloseCode::GOING_AWAY, "idle timeout");
                }
            }
            self.after_write(id);
        }
    }

    fn begin_shutdown(&mut self, deadline: Instant) {
        self.shutdown_deadline = Some(deadline);
        self.watch_listeners(false);
        self.listeners_paused_until = None;
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(local) = self.conns.get_mut(&id) else {
                continue;
            };
            match local.read {
                ReadPhase::Handshake(_) => self.teardown(id, |_| lost("server stopped")),
                ReadPhase::AwaitingAccept => {
                    local.close_info = Some(lost("server stopped before accept"));
                    let response = handshake::render_response(
                        503,
                        &[],
                        "text/plain; charset=utf-8",
                        b"server is shutting down\n",
                    );
                    self.respond_and_finish(id, &response);
                }
                ReadPhase::Open(_) | ReadPhase::Discard => {
                    // Queued messages go out first, then our close (§7.1.2).
                    self.engine.close_locked(
                        &local.shared,
                        CloseCode::GOING_AWAY,
                        "server shutting down",
                    );
                    self.after_write(id);
                }
            }
        }
    }
}
