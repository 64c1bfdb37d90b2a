//! Counters, updated with relaxed atomics from any thread and read as a snapshot, and
//! each reactor's [`Tally`] of what only it counts.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters shared by the reactors and application threads.
        #[derive(Debug, Default)]
        pub struct Counters { $(pub $name: AtomicU64,)* }

        /// A point-in-time copy of the server's counters.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Stats {
            $($(#[$doc])* pub $name: u64,)*
            /// Events waiting in the event queue.
            pub event_queue_depth: u64,
        }

        impl Counters {
            pub fn snapshot(&self, event_queue_depth: u64) -> Stats {
                Stats { $($name: self.$name.load(Ordering::Relaxed),)* event_queue_depth }
            }
        }
    };
}

counters! {
    /// Open WebSocket connections (including those awaiting `accept`).
    connections,
    /// TCP connections accepted or adopted since start.
    tcp_accepted,
    /// Handshakes completed (connections opened) since start.
    handshakes,
    /// Data messages received.
    messages_in,
    bytes_in,
    /// Data messages accepted by send (one per connection a broadcast reached).
    messages_out,
    bytes_out,
    /// Bytes currently queued for writing, over all connections.
    send_queue_bytes,
    /// Requests refused with 400/403/405/426/431 during the handshake.
    rejected_bad_handshake,
    /// Upgrades refused with 503 because `max_connections` was reached.
    rejected_over_capacity,
    /// Upgrades refused by the application in manual-accept mode.
    rejected_by_app,
    /// Connections dropped because the handshake did not complete in time.
    handshake_timeouts,
    /// Plain HTTP requests answered by the fallback (static files or 404).
    http_requests,
    /// Connections failed for a protocol violation (close 1002/1007).
    protocol_errors,
    /// Connections failed because a frame or message was over the limit (close 1009).
    too_big,
    /// Sends refused at a connection's hard limit.
    queue_full,
    /// Connections closed under the `Close` slow-consumer policy.
    slow_consumer_closes,
    /// Connections closed for idleness.
    idle_timeouts,
    /// Connections dropped because no pong came back in time.
    ping_timeouts,
    /// Messages accepted by `send` but never written (connection lost first).
    unsent_messages,
    /// Times a reactor stopped reading because the event queue was full.
    read_pauses,
    /// accept() failures (e.g. out of file descriptors).
    accept_errors,
    /// Sends accepted that left their connection over the soft limit.
    backpressure_reports,
    /// Sends refused because the server-wide `max_buffered_bytes` was reached.
    budget_refusals,
    /// Pings answered by an already-pending pong (§5.5.3 allows answering only the
    /// most recent ping).
    pongs_coalesced,
    /// `wss://` connections closed because TLS failed: plain HTTP or garbage on a TLS
    /// port, a handshake the server cannot agree to, a bad record. An alert was sent
    /// (when the socket took it) and the connection closed.
    tls_errors,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}

/// What a reactor counts for the server's [`Stats`] on every read: bytes and messages
/// in, and the handler's replies. Written only by the thread running that reactor's
/// turn (which holds the reactor, so one at a time, each after the previous one's
/// writes), and read by [`Tally::add_to`]. An add is then a load and a store, not a
/// locked instruction: the locked add of `bytes_in` right after the read's system
/// call waited for the kernel's stores to drain, and took half of the samples of
/// the reactor's read function (`perf record`, 32 B echo, 1 in flight). Aligned to
/// its own cache line, away from the commands other threads push.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Tally {
    bytes_in: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
}

impl Tally {
    /// Only from the thread running this reactor's turn.
    #[inline(always)]
    fn add(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    pub fn add_bytes_in(&self, n: u64) {
        Self::add(&self.bytes_in, n);
    }
    pub fn add_messages_in(&self, n: u64) {
        Self::add(&self.messages_in, n);
    }
    pub fn add_messages_out(&self, n: u64) {
        Self::add(&self.messages_out, n);
    }
    /// Adds this tally to a snapshot of the shared counters.
    pub fn add_to(&self, stats: &mut Stats) {
        stats.bytes_in += self.bytes_in.load(Ordering::Relaxed);
        stats.messages_in += self.messages_in.load(Ordering::Relaxed);
        stats.messages_out += self.messages_out.load(Ordering::Relaxed);
    }
}
