//! State shared by the reactors and the application-facing `Engine`: configuration,
//! the connection registry, the event queue, counters, and the reactors' mailboxes.
//! It imports nothing from the files that use it.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::config::{Config, SlowConsumerPolicy};
use super::conn::{ConnShared, ConnState};
use super::error::Error;
use super::event::{ConnId, SendStatus};
use super::event_queue::EventQueue;
use super::registry::Registry;
use super::stats::{Counters, Tally};
use super::sys::EventFd;
use crate::protocol::server_connection::Settings;

/// Connection ids are unique across every server in the process, for its lifetime.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Work handed to a reactor by other threads.
pub enum Command {
    Adopt {
        shared: Arc<ConnShared>,
        stream: TcpStream,
        initial: Vec<u8>,
    },
    /// The app accepted; the subprotocol the 101 named, for the Open event.
    Accepted(ConnId, Option<String>),
    Rejected(ConnId),
    /// Re-examine a connection after an application call changed it (close, abort).
    Kick(ConnId),
    /// The application has handled the events before this connection's barrier.
    ReleaseBarrier(ConnId),
    /// The event queue has room again: read paused connections.
    Resume,
    Shutdown {
        deadline: Instant,
    },
}

pub struct ReactorHandle {
    pub wake: EventFd,
    pub commands: Mutex<Vec<Command>>,
    /// What the reactor counts on every read (see `Tally`).
    pub tally: Tally,
}

pub struct EngineShared {
    pub config: Config,
    /// Every connection shares these (one allocation per server, not per connection).
    pub settings: Arc<Settings>,
    pub registry: Registry,
    pub events: EventQueue,
    pub stats: Counters,
    pub reactors: Vec<ReactorHandle>,
    pub stopping: AtomicBool,
    pub next_reactor: AtomicUsize,
    pub epoch: Instant,
    /// The listening sockets until the stop begins; each reactor holds its own clone
    /// until it has processed the stop, so the ports close as soon as that is done.
    pub listeners: Mutex<Option<Arc<Vec<TcpListener>>>>,
    /// For each listener (same index): the TLS configuration of a `wss://` listener.
    pub listener_tls: Vec<Option<Arc<rustls::ServerConfig>>>,
}

/// Why `admit` refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over the hard limit or the server budget: try again after `Drain`.
    Full,
    /// The slow-consumer policy is closing this connection: nothing more is taken.
    Condemned,
}

impl Refusal {
    pub fn error(self) -> Error {
        Error::QueueFull
    }
}

impl EngineShared {
    pub fn next_conn_id(&self) -> ConnId {
        ConnId(NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// Milliseconds since start.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn command(&self, reactor: usize, command: Command) {
        let handle = &self.reactors[reactor];
        handle.commands.lock().push(command);
        handle.wake.signal();
    }

    pub fn new_conn(&self, reactor: usize) -> Arc<ConnShared> {
        ConnShared::new(self.next_conn_id(), reactor, self.settings.clone())
    }

    /// Refuses a frame of `frame_len` bytes that would take the connection over its
    /// hard limit or the server over its buffer budget. An empty queue always takes
    /// one frame, so a message larger than the limits can still be sent. At the hard
    /// limit, the `Close` slow-consumer policy condemns the connection: the caller
    /// must then `Kick` its reactor, which closes it with 1008.
    pub fn admit(&self, st: &mut ConnState, frame_len: usize) -> Result<(), Refusal> {
        if st.abort_requested {
            return Err(Refusal::Condemned);
        }
        let queued = st.queue.bytes();
        if queued == 0 {
            return Ok(());
        }
        if queued + frame_len > self.config.send_queue_hard_limit {
            Counters::add(&self.stats.queue_full, 1);
            st.drain_wanted = true;
            if self.config.slow_consumer == SlowConsumerPolicy::Close {
                st.abort_requested = true;
                return Err(Refusal::Condemned);
            }
            return Err(Refusal::Full);
        }
        // With this connection's replies not yet counted (`ConnState::cork_message`).
        let total = self.stats.send_queue_bytes.load(Ordering::Relaxed) as usize + st.unpublished();
        if total + frame_len > self.config.max_buffered_bytes {
            Counters::add(&self.stats.budget_refusals, 1);
            st.drain_wanted = true;
            return Err(Refusal::Full);
        }
        Ok(())
    }

    /// After a frame was accepted: over the soft limit, report backpressure and ask for
    /// a `Drain` event at the low-water mark.
    pub fn status_after_send(&self, st: &mut ConnState) -> SendStatus {
        if st.queue.bytes() > self.config.send_queue_soft_limit {
            Counters::add(&self.stats.backpressure_reports, 1);
            st.drain_wanted = true;
            SendStatus::Backpressure
        } else {
            SendStatus::Accepted
        }
    }
}
