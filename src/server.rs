//! The safe Rust API: the same engine the C ABI exposes, without the C layer.
//!
//! ```no_run
//! use wsqueue::{Config, EventKind, Server};
//! let server = Server::start(Config::default()).unwrap();
//! loop {
//!     let batch = server.poll_batch(64, None);
//!     server.cork(); // the replies go out at the next poll, one write per connection
//!     for event in batch {
//!         if let EventKind::Message { kind, data } = &event.kind {
//!             let _ = server.send(event.conn, *kind, data); // echo
//!         }
//!     }
//! }
//! ```

use std::net::{SocketAddr, TcpStream};
use std::os::fd::RawFd;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;

pub use crate::engine::tls::{Pem, TlsListen};
use crate::engine::Engine;
pub use crate::engine::{
    CloseInfo, Config, ConnId, DeflateMode, Error, Event, EventHandler, EventKind, Replies,
    RequestInfo, SendStatus, SlowConsumerPolicy, Stats,
};
pub use crate::protocol::MessageKind;

/// A running WebSocket server. All methods take `&self` and are safe to call from any
/// number of threads at once (share it in an `Arc`). Dropping it stops it at once
/// (`stop(Duration::ZERO)`); call [`Server::stop`] first for a graceful shutdown.
pub struct Server {
    engine: Engine,
}

impl Server {
    /// Binds the listeners and starts the reactor threads.
    pub fn start(config: Config) -> Result<Server, Error> {
        Ok(Server {
            engine: Engine::start(config)?,
        })
    }

    /// Starts a server in handler mode (`Config::event_handler`, which this sets):
    /// `handler` gets every event as it happens, on the reactor threads, with the
    /// server to answer through (`poll` then returns nothing). Its sends are corked
    /// and written once per connection after the events read together; see
    /// [`EventHandler`] for the rules. No event is handled before this returns.
    pub fn start_with_handler(
        mut config: Config,
        handler: impl Fn(&Server, &Event) + Send + Sync + 'static,
    ) -> Result<Arc<Server>, Error> {
        // The handler holds the server weakly (the server owns the handler), through
        // a slot that is write-locked until the server exists.
        let slot: Arc<RwLock<Weak<Server>>> = Arc::new(RwLock::new(Weak::new()));
        let mut filled = slot.write();
        let reader = slot.clone();
        config.event_handler = Some(EventHandler::from(move |event: &Event, _: &Replies<'_>| {
            let server = reader.read().upgrade();
            if let Some(server) = server {
                handler(&server, event);
            }
        }));
        let server = Arc::new(Server::start(config)?);
        *filled = Arc::downgrade(&server);
        drop(filled);
        Ok(server)
    }

    /// The bound addresses: those of `Config::listen`, then those of
    /// `Config::tls_listen`, each in its order (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.engine.local_addrs()
    }

    /// The port of the first listener.
    pub fn port(&self) -> u16 {
        self.engine.local_addrs()[0].port()
    }

    /// A descriptor that is readable exactly while events wait to be polled, for
    /// plugging the server into another event loop. Owned by the server.
    pub fn event_fd(&self) -> RawFd {
        self.engine.event_fd()
    }

    pub fn config(&self) -> &Config {
        self.engine.config()
    }

    /// Waits up to `timeout` (None: until an event arrives or the server stops) for
    /// one event.
    ///
    /// A poll that waits and finds nothing queued reads the sockets itself in place of
    /// the reactor threads (leader/follower; one such poller at a time), which take over
    /// again when no poll has waited for a few milliseconds. In handler mode it
    /// returns None at once: events go to the handler.
    pub fn poll(&self, timeout: Option<Duration>) -> Option<Event> {
        let mut out = Vec::with_capacity(1);
        self.engine.poll_batch(&mut out, 1, timeout);
        out.pop()
    }

    /// Waits up to `timeout` for events, then returns up to `max` of them.
    pub fn poll_batch(&self, max: usize, timeout: Option<Duration>) -> Vec<Event> {
        let mut out = Vec::new();
        self.engine.poll_batch(&mut out, max, timeout);
        out
    }

    /// Like [`Server::poll_batch`], appending into a reused vector; returns the count.
    pub fn poll_into(&self, out: &mut Vec<Event>, max: usize, timeout: Option<Duration>) -> usize {
        self.engine.poll_batch(out, max, timeout)
    }

    /// Sends one message. `Ok(SendStatus::Backpressure)` means it was accepted but the
    /// connection is now over `Config::send_queue_soft_limit`: wait for its `Drain`
    /// event before sending more. Refused (`QueueFull`) only past the hard limit.
    pub fn send(&self, conn: ConnId, kind: MessageKind, data: &[u8]) -> Result<SendStatus, Error> {
        self.engine.send(conn, kind, data)
    }

    pub fn send_text(&self, conn: ConnId, text: &str) -> Result<SendStatus, Error> {
        self.engine.send(conn, MessageKind::Text, text.as_bytes())
    }

    pub fn send_binary(&self, conn: ConnId, data: &[u8]) -> Result<SendStatus, Error> {
        self.engine.send(conn, MessageKind::Binary, data)
    }

    /// Bytes accepted for `conn` and not yet written to its socket.
    pub fn buffered_amount(&self, conn: ConnId) -> Result<usize, Error> {
        self.engine.buffered_amount(conn)
    }

    /// Sends a ping (payload ≤ 125 bytes); pongs are reported only with
    /// `Config::deliver_ping_pong`.
    pub fn ping(&self, conn: ConnId, payload: &[u8]) -> Result<(), Error> {
        self.engine.ping(conn, payload)
    }

    /// Starts the closing handshake; the `Close` event follows when it completes.
    pub fn close(&self, conn: ConnId, code: u16, reason: &str) -> Result<(), Error> {
        self.engine.close(conn, code, reason)
    }

    /// Sends to every open connection (`None`) or to the listed ones, encoding the
    /// frame once; returns how many connections took it.
    pub fn broadcast(
        &self,
        kind: MessageKind,
        data: &[u8],
        targets: Option<&[ConnId]>,
    ) -> Result<usize, Error> {
        self.engine.broadcast(kind, data, targets)
    }

    /// Sets the connection's user tag, reported on each event queued after this call.
    pub fn set_tag(&self, conn: ConnId, tag: u64) -> Result<(), Error> {
        self.engine.set_tag(conn, tag)
    }

    pub fn tag(&self, conn: ConnId) -> Result<u64, Error> {
        self.engine.tag(conn)
    }

    /// Manual-accept mode: completes the handshake (see `Config::manual_accept`).
    pub fn accept(
        &self,
        conn: ConnId,
        subprotocol: Option<&str>,
        headers: &[(String, String)],
    ) -> Result<(), Error> {
        self.engine.accept(conn, subprotocol, headers)
    }

    /// Manual-accept mode: refuses the upgrade with an HTTP status and body.
    pub fn reject(&self, conn: ConnId, status: u16, body: &str) -> Result<(), Error> {
        self.engine.reject(conn, status, body)
    }

    /// Hands the engine an accepted TCP connection plus any bytes already read from it.
    pub fn adopt(&self, stream: TcpStream, initial: &[u8]) -> Result<ConnId, Error> {
        self.engine.adopt(stream, initial)
    }

    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Tells the engine that the calling thread has handled the events of its last
    /// `poll*` call (polling again says the same). Only needed by callers that hand
    /// events to other threads: a failing connection's close frame waits for it (at
    /// most `Config::failure_grace`), so that replies to its last messages go first.
    ///
    /// It also ends the calling thread's cork on every server (see [`Server::cork`]).
    pub fn batch_done() {
        crate::engine::end_batch();
    }

    /// Corks the calling thread's sends to this server: messages of up to 16 KiB
    /// (`send`, `broadcast`) are queued instead of written, and each connection gets
    /// one vectored write of everything queued for it at [`Server::uncork`],
    /// [`Server::batch_done`] or this thread's next `poll*`. Sends from other threads
    /// are not delayed. Cork around the handling of a poll batch, so that many replies
    /// to one connection cost one system call.
    pub fn cork(&self) {
        self.engine.cork()
    }

    /// Writes what the calling thread corked for this server and ends its cork.
    pub fn uncork(&self) {
        self.engine.uncork()
    }

    /// Hands back the buffer of a message event the caller is done with (its `data`),
    /// so that the engine can carry a later message in it. Optional: dropping it is
    /// fine. Returning buffers from the thread that polls keeps small messages free of
    /// cross-thread allocator traffic, and large ones (up to 128 KiB, a bounded
    /// number) free of page faults.
    pub fn recycle(data: Vec<u8>) {
        crate::engine::recycle_buffer(data)
    }

    /// Graceful shutdown (see `Engine::stop`); idempotent. Events remain pollable.
    pub fn stop(&self, timeout: Duration) {
        self.engine.stop(timeout)
    }
}
