//! The shared half of a connection: the protocol state machine, the socket, and the
//! send queue, behind one lock, so that any application thread can send while the
//! owning reactor reads. The reactor-owned half (timers, request info) lives in
//! `reactor/`.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::cork::CORK_MAX_MESSAGE;
use super::error::Error;
use super::event::ConnId;
use super::recycle;
use super::send_queue::{ChunkKind, SendQueue};
use super::stats::Counters;
use super::sys;
use super::tls::{Received, TlsFailure, TlsSession};
use super::transport::{PlainSocket, Writev};
use crate::protocol::reader::MessageBuffers;
use crate::protocol::server_connection::{ConnEvent, ServerConnection, Settings, SmallMessages};

pub struct ConnState {
    /// Every protocol decision about this connection is made by this object.
    pub ws: ServerConnection,
    /// The socket. Only the owning reactor closes it (by dropping it, under this
    /// lock), so a sending thread never writes to a closed or reused descriptor.
    socket: Option<OwnedFd>,
    /// `wss://`: the TLS layer between the socket and `ws` (boxed: a plain connection
    /// pays one pointer for it).
    tls: Option<Box<TlsSession>>,
    pub queue: SendQueue,
    /// The last write hit EAGAIN: wait for the reactor's writability event.
    pub blocked: bool,
    /// A send reported backpressure or was refused: report `Drain` at the low-water mark.
    pub drain_wanted: bool,
    /// A write failed: the peer is gone; the reactor tears the connection down.
    pub broken: bool,
    /// The slow-consumer policy asked for this connection to be dropped.
    pub abort_requested: bool,
    /// A corking thread holds frames for this connection in its queue (see `cork.rs`)
    /// and will write them when it uncorks.
    pub corked: bool,
    /// Queued bytes not yet added to the server's `send_queue_bytes` (replies a
    /// handler corked for the connection it answers: see `cork_message`), at most
    /// `UNPUBLISHED_MAX`. Added, net of what was written, at the next flush.
    unpublished: u32,
}

/// A connection's replies held out of the server-wide count at once, at most: the
/// budget (`max_buffered_bytes`) may be passed by this much per reactor thread (one
/// answering connection each), never more.
const UNPUBLISHED_MAX: usize = 64 * 1024;

pub struct ConnShared {
    pub id: ConnId,
    pub reactor: usize,
    pub tag: AtomicU64,
    pub state: Mutex<ConnState>,
}

impl ConnShared {
    pub fn new(id: ConnId, reactor: usize, settings: Arc<Settings>) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            id,
            reactor,
            tag: AtomicU64::new(0),
            state: Mutex::new(ConnState {
                ws: ServerConnection::new(settings),
                socket: None,
                tls: None,
                queue: SendQueue::new(),
                blocked: false,
                drain_wanted: false,
                broken: false,
                abort_requested: false,
                corked: false,
                unpublished: 0,
            }),
        })
    }

    pub fn tag(&self) -> u64 {
        self.tag.load(Ordering::Relaxed)
    }
}

impl ConnState {
    pub fn attach(&mut self, socket: OwnedFd) {
        self.socket = Some(socket);
    }

    /// Makes this a `wss://` connection: everything read and written from now on goes
    /// through `session`.
    pub fn start_tls(&mut self, session: Box<TlsSession>) {
        self.tls = Some(session);
    }

    /// Runs bytes read from the socket through TLS (if any) and the protocol. A TLS
    /// failure leaves its alert written (if the socket took it) and is returned: the
    /// connection cannot go on.
    #[inline]
    pub fn receive(
        &mut self,
        data: &[u8],
        events: &mut Vec<ConnEvent>,
        buffers: &mut dyn MessageBuffers,
    ) -> Result<Received, TlsFailure> {
        let Some(tls) = self.tls.as_deref_mut() else {
            self.ws.receive_with(data, events, buffers);
            return Ok(Received::More);
        };
        if data.is_empty() {
            // Plaintext the protocol held back (e.g. awaiting accept).
            self.ws.receive_with(data, events, buffers);
            return Ok(Received::More);
        }
        let ws = &mut self.ws;
        let received = tls.receive(data, |plain| ws.receive_with(plain, events, buffers));
        // Handshake messages, session tickets or the alert of a failure go out now.
        self.flush_tls();
        received
    }

    /// [`ServerConnection::small_messages`] for bytes read from the socket: only for a
    /// plain connection (TLS input is ciphertext).
    #[inline]
    pub fn small_messages(&mut self) -> Option<SmallMessages<'_>> {
        if self.tls.is_some() {
            return None;
        }
        self.ws.small_messages()
    }

    /// Writes what rustls has encrypted; notes a socket that would block.
    fn flush_tls(&mut self) {
        let (Some(fd), Some(tls)) = (self.fd(), self.tls.as_deref_mut()) else {
            return;
        };
        match tls.flush(fd) {
            Ok(true) => {}
            Ok(false) => self.blocked = true,
            Err(_) => self.broken = true,
        }
    }

    /// Encrypted bytes are still waiting for the socket.
    fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.has_pending_output())
    }

    pub fn fd(&self) -> Option<RawFd> {
        self.socket.as_ref().map(|s| s.as_raw_fd())
    }

    /// Closes the socket (the only place a connection's descriptor is closed).
    pub fn close_socket(&mut self) {
        self.socket = None;
    }

    /// Writes one application message (its header and payload as one frame).
    pub fn write_message(
        &mut self,
        header: &[u8],
        payload: &[u8],
        stats: &Counters,
    ) -> Result<(), Error> {
        self.write(header, payload, ChunkKind::Message, stats)
    }

    /// Sends one application message frame (`header` + `payload`): queued for the
    /// uncork when the sending thread is `corking` and the frame is small (see
    /// `cork.rs`), written at once otherwise. `answering`: a handler's reply to the
    /// connection it answers, whose queued bytes may join the server-wide count at the
    /// flush (one atomic operation per flush instead of one per message). Returns true
    /// when the connection was not yet corked (the caller remembers it for the uncork).
    #[inline]
    pub fn send_message(
        &mut self,
        header: &[u8],
        payload: &[u8],
        corking: bool,
        answering: bool,
        spare: &mut Option<Vec<u8>>,
        stats: &Counters,
    ) -> Result<bool, Error> {
        if corking && header.len() + payload.len() <= CORK_MAX_MESSAGE {
            self.cork_message(header, payload, answering, spare, stats)
        } else {
            self.write_message(header, payload, stats).map(|()| false)
        }
    }

    /// Queues one application message without writing it: the corking thread writes
    /// the connection's queue when it uncorks. `spare`: a buffer for a new gathered
    /// chunk, if the caller has one. Returns true when the connection was not yet
    /// corked (the caller remembers it for the uncork). Inlined into the handler's
    /// reply, the one caller on the echo path.
    #[inline(always)]
    pub fn cork_message(
        &mut self,
        header: &[u8],
        payload: &[u8],
        answering: bool,
        spare: &mut Option<Vec<u8>>,
        stats: &Counters,
    ) -> Result<bool, Error> {
        if self.socket.is_none() || self.broken {
            return Err(Error::Closed);
        }
        let len = header.len() + payload.len();
        let held = self.unpublished as usize + len;
        if answering && held <= UNPUBLISHED_MAX {
            self.unpublished = held as u32;
        } else {
            Counters::add(&stats.send_queue_bytes, held as u64);
            self.unpublished = 0;
        }
        self.queue.push_message(header, payload, spare);
        Ok(!std::mem::replace(&mut self.corked, true))
    }

    /// Queued bytes the server-wide count does not have yet (see `cork_message`).
    pub fn unpublished(&self) -> usize {
        self.unpublished as usize
    }

    /// Writes what corking threads queued here (unless the socket is blocked: its
    /// writability edge writes it then) and publishes the queue's size. Returns the
    /// bytes queued before, or None when nothing was corked. `keep`: where a written
    /// gathered buffer goes (see `SendQueue::flush`).
    pub fn write_corked(
        &mut self,
        stats: &Counters,
        keep: Option<&mut Option<Vec<u8>>>,
    ) -> Option<usize> {
        if !std::mem::replace(&mut self.corked, false) {
            return None;
        }
        let before = self.queue.bytes();
        if !self.blocked {
            self.flush_queue(stats, keep);
            if !self.blocked && self.ws.has_output() {
                self.pump(stats);
            }
        }
        self.publish_queued(stats);
        Some(before)
    }

    /// Adds what `cork_message` held back to the server-wide count: at the uncork,
    /// for a socket that could not be flushed, so that only the connections being
    /// answered hold any back.
    pub fn publish_queued(&mut self, stats: &Counters) {
        let unpublished = std::mem::take(&mut self.unpublished);
        if unpublished > 0 {
            Counters::add(&stats.send_queue_bytes, u64::from(unpublished));
        }
    }

    /// Queues a pre-encoded message frame shared with other connections (broadcast).
    /// `corking`: the sending thread has the server corked, so the frame waits in the
    /// queue for the uncork; returns true when the connection was not yet corked.
    pub fn write_shared(
        &mut self,
        frame: &Arc<[u8]>,
        corking: bool,
        stats: &Counters,
    ) -> Result<bool, Error> {
        if self.socket.is_none() || self.broken {
            return Err(Error::Closed);
        }
        if !corking {
            self.flush_queue_unless_blocked(stats);
            if self.queue.is_empty() && !self.blocked {
                // Same direct path as a single send: usually the whole frame goes out now.
                self.write(frame, &[], ChunkKind::Message, stats)?;
                return Ok(false);
            }
        }
        Counters::add(&stats.send_queue_bytes, frame.len() as u64);
        self.queue.push_shared(frame.clone(), ChunkKind::Message);
        Ok(corking && !std::mem::replace(&mut self.corked, true))
    }

    /// Frames a corking thread queued are written before anything sent outside the
    /// cork, so that order holds; a blocked socket waits for the reactor instead.
    fn flush_queue_unless_blocked(&mut self, stats: &Counters) {
        if !self.blocked && !self.queue.is_empty() {
            self.flush_queue(stats, None);
        }
    }

    /// Writes `header` + `payload` directly when nothing is queued and the socket is
    /// writable, otherwise (or for what the socket did not take) queues a copy. Frames
    /// of different writes never interleave: a partial direct write queues the rest
    /// before the lock is released.
    fn write(
        &mut self,
        header: &[u8],
        payload: &[u8],
        kind: ChunkKind,
        stats: &Counters,
    ) -> Result<(), Error> {
        let Some(fd) = self.fd() else {
            return Err(Error::Closed);
        };
        if self.broken {
            return Err(Error::Closed);
        }
        self.flush_queue_unless_blocked(stats);
        let total = header.len() + payload.len();
        let mut written = 0;
        if self.queue.is_empty() && !self.blocked {
            let res = match self.tls.as_deref_mut() {
                None => write_all_or_block(&mut PlainSocket(fd), header, payload),
                Some(tls) => write_all_or_block(&mut tls.sink(fd), header, payload),
            };
            match res {
                Ok(n) => written = n,
                Err(_) => {
                    self.broken = true;
                    return Err(Error::Closed);
                }
            }
            Counters::add(&stats.bytes_out, written as u64);
            if self.tls_pending() {
                // Taken by TLS but not all written: wait for writability.
                self.blocked = true;
            }
            if written == total {
                if kind == ChunkKind::Close {
                    self.ws.on_close_written();
                }
                return Ok(());
            }
            self.blocked = true;
        }
        // A large rest takes a recycled buffer (given back when written: `send_queue.rs`).
        let mut rest = recycle::take(total - written);
        if written < header.len() {
            rest.extend_from_slice(&header[written..]);
            rest.extend_from_slice(payload);
        } else {
            rest.extend_from_slice(&payload[written - header.len()..]);
        }
        Counters::add(&stats.send_queue_bytes, rest.len() as u64);
        self.queue.push_owned(rest, kind);
        Ok(())
    }

    /// Moves what the protocol wants written (responses and pings, the pending pong,
    /// our close frame, in that order) to the socket or the queue. The pong is taken
    /// only while the socket takes writes, so a ping flood against a peer that does not
    /// read keeps replacing one pending pong instead of queueing more.
    pub fn pump(&mut self, stats: &Counters) {
        if let Some(bytes) = self.ws.take_output() {
            let _ = self.write(&bytes, &[], ChunkKind::Control, stats);
        }
        if !self.blocked {
            if let Some(pong) = self.ws.take_pong() {
                let _ = self.write(&pong, &[], ChunkKind::Control, stats);
            }
        }
        let coalesced = self.ws.take_pongs_coalesced();
        if coalesced > 0 {
            Counters::add(&stats.pongs_coalesced, u64::from(coalesced));
        }
        if let Some(close) = self.ws.take_close_frame() {
            let _ = self.write(&close, &[], ChunkKind::Close, stats);
        }
    }

    /// Writes queued frames until the queue is empty or the socket blocks, then what
    /// the protocol has waiting. Returns the bytes written from the queue.
    pub fn flush(&mut self, stats: &Counters) -> usize {
        let written = self.flush_queue(stats, None);
        if !self.blocked && self.ws.has_output() {
            self.pump(stats);
        }
        written
    }

    /// Writes queued frames until the queue is empty or the socket blocks; returns the
    /// bytes written. `keep`: see `SendQueue::flush`.
    fn flush_queue(&mut self, stats: &Counters, keep: Option<&mut Option<Vec<u8>>>) -> usize {
        let Some(fd) = self.fd() else {
            return 0;
        };
        let mut written = 0;
        let flushed = match self.tls.as_deref_mut() {
            None => self.queue.flush(&mut PlainSocket(fd), keep),
            Some(tls) => match tls.flush(fd) {
                // Earlier ciphertext first: the queue's bytes come after it.
                Ok(true) => self.queue.flush(&mut tls.sink(fd), keep),
                Ok(false) => {
                    self.blocked = true;
                    return 0;
                }
                Err(e) => Err(e),
            },
        };
        match flushed {
            Ok(f) => {
                written = f.bytes;
                self.blocked = f.blocked || self.tls_pending();
                Counters::add(&stats.bytes_out, f.bytes as u64);
                // What left the queue, net of what the count never had.
                let unpublished = std::mem::take(&mut self.unpublished) as usize;
                match unpublished.cmp(&f.bytes) {
                    std::cmp::Ordering::Less => {
                        Counters::sub(&stats.send_queue_bytes, (f.bytes - unpublished) as u64)
                    }
                    std::cmp::Ordering::Greater => {
                        Counters::add(&stats.send_queue_bytes, (unpublished - f.bytes) as u64)
                    }
                    std::cmp::Ordering::Equal => {}
                }
                if f.close_written {
                    self.ws.on_close_written();
                }
            }
            Err(_) => self.broken = true,
        }
        written
    }

    /// Half-closes once everything is written and the protocol is finished (§7.1.1:
    /// the server closes TCP first; the peer still reads what we sent). Returns true
    /// when it did.
    #[inline]
    /// Nothing the reactor's after-write step would act on: no abort, no failed
    /// write, no `Drain` owed, no half-close due.
    pub fn is_settled(&self) -> bool {
        let half_close_due = self.queue.is_empty() && self.ws.wants_half_close();
        !(self.abort_requested || self.broken || self.drain_wanted || half_close_due)
    }

    pub fn half_close_if_done(&mut self) -> bool {
        if !self.queue.is_empty() || !self.ws.wants_half_close() {
            return false;
        }
        self.half_close()
    }

    /// Out of line: it runs once per connection, and `half_close_if_done` runs after
    /// every write.
    #[cold]
    #[inline(never)]
    fn half_close(&mut self) -> bool {
        if self.tls_pending() {
            return false; // our last records first: the writability edge comes back here
        }
        if let Some(fd) = self.fd() {
            if let Some(tls) = self.tls.as_deref_mut() {
                tls.close_notify(fd);
            }
            sys::shutdown_write(fd);
        }
        self.ws.on_half_closed();
        true
    }

    /// Forgets queued frames (the connection is going away); returns how many
    /// application messages were never written.
    pub fn discard_queue(&mut self, stats: &Counters) -> usize {
        let counted = self.queue.bytes() - std::mem::take(&mut self.unpublished) as usize;
        Counters::sub(&stats.send_queue_bytes, counted as u64);
        self.queue.clear()
    }
}

/// One `writev` of header + payload, retried on EINTR; returns bytes written (less
/// than the total when the socket would block).
fn write_all_or_block(sink: &mut impl Writev, header: &[u8], payload: &[u8]) -> io::Result<usize> {
    let total = header.len() + payload.len();
    let mut written = 0;
    while written < total {
        let res = if written < header.len() {
            sink.writev(&[IoSlice::new(&header[written..]), IoSlice::new(payload)])
        } else {
            sink.writev(&[IoSlice::new(&payload[written - header.len()..])])
        };
        match res {
            Ok(n) => written += n,
            Err(e) if sys::would_block(&e) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
