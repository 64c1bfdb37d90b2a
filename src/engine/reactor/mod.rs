//! A reactor thread: owns a set of sockets, reads them with epoll (edge-triggered),
//! feeds the bytes to each connection's protocol state machine, delivers what comes
//! out (events to the queue, bytes to the socket), and runs the connections' timers.
//! It makes no protocol decision of its own.
//!
//! - `mod.rs` (this file): the epoll loop, commands from other threads, accepting.
//! - `input.rs`: reading sockets and delivering what the protocol says.
//! - `finish.rs`: after writes (drain, half-close, aborts), teardown, shutdown.
//! - `deadlines.rs`: arming and firing the connection timers.
//! - `hand_over.rs`: handler mode, events handed to the application's function.

mod deadlines;
mod direct;
mod finish;
mod hand_over;
mod input;

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::ConnShared;
use super::event::{Event, RequestInfo};
use super::event_queue::Entry;
use super::id_map::IdMap;
use super::recycle::ReactorSpares;
use super::shared::{Command, EngineShared};
use super::stats::{Counters, Tally};
use super::sys::{self, Epoll};
use super::timers::{Armed, TimerHeap};
use super::tls::TlsSession;
use crate::protocol::server_connection::{ConnEvent, Timer};

/// epoll token of the reactor's wake-up eventfd; listeners count down from below it;
/// connection ids (which start at 1) are their own tokens.
const WAKE_TOKEN: u64 = u64::MAX;
const LISTENER_TOKEN_BASE: u64 = u64::MAX - 1;
/// One shared read buffer per reactor: idle connections hold no read buffer at all.
const SCRATCH_SIZE: usize = 64 * 1024;
/// Reads per connection per wake-up before other connections get a turn.
const READS_PER_TURN: usize = 16;
/// The longest the loop sleeps with nothing due (it has no periodic work).
const MAX_WAIT: Duration = Duration::from_secs(1);
/// How long to stop accepting after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const CONN_EVENTS: u32 = sys::EV_IN | sys::EV_OUT | sys::EV_RDHUP | sys::EV_ET;

/// The reactor-owned half of a connection.
struct Local {
    shared: Arc<ConnShared>,
    /// A copy of the socket's descriptor for reading; the socket itself is owned by
    /// the shared state and only this reactor closes it.
    fd: RawFd,
    /// Kept from the upgrade request until the Open event (manual accept).
    info: Option<Box<RequestInfo>>,
    last_input_ms: u64,
    /// When queued bytes last went out: a close waiting behind data is given time as
    /// long as the data keeps moving.
    last_write_ms: u64,
    /// The timer the protocol waits on, and since when (two fields rather than an
    /// `Option` of a pair: 8 bytes less for every connection).
    timer: Option<Timer>,
    timer_since: u64,
    armed: Armed,
    /// The app has seen this id (Open or UpgradeRequest), so it gets a Close event.
    announced: bool,
    /// Counted in `stats.connections`.
    counted: bool,
    /// Not read while its buffered amount is over the soft limit.
    paused_for_output: bool,
}

pub struct Reactor {
    index: usize,
    engine: Arc<EngineShared>,
    epoll: Epoll,
    listeners: Option<Arc<Vec<TcpListener>>>,
    listeners_paused_until: Option<Instant>,
    /// Boxed: the map's slots (a third of them empty at any size) hold a pointer, not
    /// the whole connection half.
    conns: IdMap<Box<Local>>,
    scratch: Vec<u8>,
    /// Connections with unread input left after their turn.
    ready: Vec<u64>,
    /// Connections that stopped reading because the event queue was full.
    paused: Vec<u64>,
    /// Entries produced this turn, published to the event queue with one lock.
    entries: Vec<Entry>,
    /// Handler mode: barriers taken from `entries`, released after the replies.
    handed_barriers: Vec<u64>,
    /// Handler mode: small message buffers, back from the handler for the next read.
    spares: ReactorSpares,
    /// Handler mode: the direct lane's message events (`direct.rs`), reused read
    /// after read.
    direct: Vec<Event>,
    /// Handler mode: the buffer the direct lane's replies gather into, lent to each of
    /// its hand-overs and back once written (`SendQueue::flush`).
    gather: Option<Vec<u8>>,
    conn_events: Vec<ConnEvent>,
    timers: TimerHeap,
    due: Vec<(u64, u64)>,
    shutdown_deadline: Option<Instant>,
    ready_events: Vec<sys::EpollEvent>,
    /// The engine's clock, read once per turn after the wait: connections' input and
    /// timer times need millisecond precision, not a clock read per connection.
    now_ms: u64,
}

/// How a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnEnd {
    Running,
    /// The stop is complete: every connection is gone.
    Finished,
}

impl Reactor {
    /// This reactor's own counters (see `Tally`): only its turn writes them.
    fn tally(&self) -> &Tally {
        &self.engine.reactors[self.index].tally
    }

    pub fn new(
        index: usize,
        engine: Arc<EngineShared>,
        listeners: Arc<Vec<TcpListener>>,
    ) -> std::io::Result<Reactor> {
        let epoll = Epoll::new()?;
        epoll.add(engine.reactors[index].wake.fd(), WAKE_TOKEN, sys::EV_IN)?;
        let engine_now = engine.now_ms();
        let reactor = Reactor {
            index,
            engine,
            epoll,
            listeners: Some(listeners),
            listeners_paused_until: None,
            conns: IdMap::default(),
            scratch: vec![0; SCRATCH_SIZE],
            ready: Vec::new(),
            paused: Vec::new(),
            entries: Vec::new(),
            handed_barriers: Vec::new(),
            spares: ReactorSpares::default(),
            direct: Vec::new(),
            gather: None,
            conn_events: Vec::new(),
            timers: TimerHeap::new(),
            due: Vec::new(),
            shutdown_deadline: None,
            ready_events: sys::empty_events(256),
            now_ms: engine_now,
        };
        reactor.watch_listeners(true);
        Ok(reactor)
    }

    fn watch_listeners(&self, on: bool) {
        let Some(listeners) = &self.listeners else {
            return;
        };
        for (i, l) in listeners.iter().enumerate() {
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

    fn listener_count(&self) -> u64 {
        self.listeners.as_ref().map_or(0, |l| l.len() as u64)
    }

    /// Milliseconds until the loop must look at timers again.
    fn wait_timeout(&self, now_ms: u64) -> i32 {
        if !self.ready.is_empty() {
            return 0;
        }
        let mut wait = MAX_WAIT.as_millis() as u64;
        if let Some(at) = self.timers.next_deadline() {
            wait = wait.min(at.saturating_sub(now_ms));
        }
        if let Some(until) = self.listeners_paused_until {
            let left = until.saturating_duration_since(Instant::now()).as_millis() as u64;
            wait = wait.min(left);
        }
        if let Some(deadline) = self.shutdown_deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
            wait = wait.min(left);
        }
        wait as i32
    }

    /// The epoll instance's descriptor, for a leader's wait over several reactors.
    pub fn epoll_fd(&self) -> RawFd {
        self.epoll.raw()
    }

    /// Milliseconds this reactor may sleep before its next turn is due.
    pub fn idle_timeout(&self) -> i32 {
        self.wait_timeout(self.engine.now_ms())
    }

    /// One turn of the loop: waits for I/O (at most `cap_ms`, and never past a timer),
    /// handles it, fires due timers and publishes the events. `led`: the caller is an
    /// application thread running the turn in place of this reactor's thread (see
    /// `engine/leader.rs`). Returns `Finished` once a stop is complete.
    pub fn turn(&mut self, cap_ms: Option<i32>, led: bool) -> TurnEnd {
        let mut timeout = self.wait_timeout(self.engine.now_ms());
        if let Some(cap) = cap_ms {
            timeout = timeout.min(cap.max(0));
        }
        let mut ready_events = std::mem::take(&mut self.ready_events);
        let n = self.epoll.wait(&mut ready_events, timeout).unwrap_or(0);
        self.now_ms = self.engine.now_ms();
        for ev in &ready_events[..n] {
            let (token, flags) = (ev.u64, ev.events);
            if token == WAKE_TOKEN {
                self.engine.reactors[self.index].wake.clear();
                self.run_commands();
            } else if token > LISTENER_TOKEN_BASE - self.listener_count() {
                self.accept((LISTENER_TOKEN_BASE - token) as usize);
            } else {
                self.on_io(token, flags);
                // Handler mode: this connection's events now, while its bytes are in
                // cache, and its replies in one write.
                if self.engine.config.event_handler.is_some() {
                    self.hand_over();
                }
            }
        }
        self.ready_events = ready_events;
        let again = std::mem::take(&mut self.ready);
        for id in again {
            self.read_turn(id, false, false);
        }
        self.fire_due_timers();
        self.resume_listeners();
        let mut end = TurnEnd::Running;
        if let Some(deadline) = self.shutdown_deadline {
            if self.conns.is_empty() {
                end = TurnEnd::Finished;
            } else if Instant::now() >= deadline {
                self.drop_all_at_deadline();
                end = TurnEnd::Finished;
            }
        }
        self.publish(!led);
        end
    }

    /// Publishes this turn's events, then yields the CPU: when the application's polling
    /// thread shares this reactor's core, it runs now instead of when the scheduler's
    /// slice ends (measured on one core: p99 at half of peak 13 ms -> 3.7 ms, 1 in
    /// flight +10%; with a core to itself the yield returns at once).
    /// A led turn does not yield: the events are its own thread's to handle next.
    /// In handler mode the events are handled here instead (no queue, no yield).
    fn publish(&mut self, yield_after: bool) {
        if self.entries.is_empty() {
            return;
        }
        if self.engine.config.event_handler.is_some() {
            self.hand_over();
            return;
        }
        self.engine.events.push_all(&mut self.entries);
        if yield_after {
            std::thread::yield_now();
        }
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
                    // Answered: its input (the peer's EOF) may be read again.
                    if let Some(local) = self.conns.get_mut(&id.0) {
                        local.info = None;
                    }
                    self.after_app_call(id.0)
                }
                Command::Kick(id) => self.after_app_call(id.0),
                Command::ReleaseBarrier(id) => self.release_barrier(id.0),
                Command::Resume => self.ready.append(&mut self.paused),
                Command::Shutdown { deadline } => self.begin_shutdown(deadline),
            }
        }
    }

    // ---- accepting -------------------------------------------------------------

    fn accept(&mut self, listener: usize) {
        let Some(listeners) = self.listeners.clone() else {
            return;
        };
        let engine = self.engine.clone();
        for _ in 0..64 {
            match listeners[listener].accept() {
                Ok((stream, _)) => {
                    Counters::add(&engine.stats.tcp_accepted, 1);
                    let shared = engine.new_conn(self.index);
                    if let Some(tls) = &engine.listener_tls[listener] {
                        match TlsSession::new(tls) {
                            Ok(session) => shared.state.lock().start_tls(session),
                            Err(_) => {
                                Counters::add(&engine.stats.tls_errors, 1);
                                continue; // `stream` is dropped, and so closed
                            }
                        }
                    }
                    self.register(shared, stream, Vec::new());
                }
                Err(e) if sys::would_block(&e) => break,
                Err(e) => {
                    Counters::add(&engine.stats.accept_errors, 1);
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

    fn resume_listeners(&mut self) {
        if let Some(until) = self.listeners_paused_until {
            if Instant::now() >= until {
                self.listeners_paused_until = None;
                if self.shutdown_deadline.is_none() {
                    self.watch_listeners(true);
                }
            }
        }
    }

    fn adopt(&mut self, shared: Arc<ConnShared>, stream: TcpStream, initial: Vec<u8>) {
        if self.shutdown_deadline.is_some() {
            return; // dropped (closed): the server is stopping
        }
        let id = shared.id.0;
        self.register(shared, stream, initial);
        // Edge-triggered: bytes already in the socket must be read now.
        if self.conns.contains_key(&id) {
            self.read_turn(id, false, false);
        }
    }

    fn register(&mut self, shared: Arc<ConnShared>, stream: TcpStream, initial: Vec<u8>) {
        let _ = stream.set_nodelay(true);
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let socket = OwnedFd::from(stream);
        let fd = socket.as_raw_fd();
        let id = shared.id.0;
        if self.epoll.add(fd, id, CONN_EVENTS).is_err() {
            return; // `socket` is dropped, and so closed, here
        }
        shared.state.lock().attach(socket);
        self.engine.registry.insert(shared.clone());
        let now = self.now_ms;
        self.conns.insert(
            id,
            Box::new(Local {
                shared,
                fd,
                info: None,
                last_input_ms: now,
                last_write_ms: now,
                timer: None,
                timer_since: 0,
                armed: Armed::default(),
                announced: false,
                counted: false,
                paused_for_output: false,
            }),
        );
        self.process(id, &initial);
    }
}
