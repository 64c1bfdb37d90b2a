//! The application-facing half of a connection: everything a sending thread needs
//! (socket for direct writes, send queue, closing state), behind one lock. The
//! reactor-owned half (read state, timers) lives in `reactor.rs`.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::error::Error;
use super::event::ConnId;
use super::send_queue::{Flushed, SendQueue};
use super::stats::Counters;
use super::sys;
use crate::protocol::close::{encode_close_payload, CloseCode, ClosingHandshake};
use crate::protocol::frame::{server_header, OpCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the HTTP request head.
    Handshaking,
    /// Manual-accept mode: waiting for the application's `accept` or `reject`.
    AwaitingAccept,
    /// The handshake completed; frames flow.
    Open,
    /// The socket is closed (or closing without further sends).
    Closed,
}

/// A manual-accept upgrade's negotiated parts, kept until the app answers.
#[derive(Clone, Debug)]
pub struct PendingUpgrade {
    pub accept: String,
    pub subprotocol: Option<String>,
    pub offered_subprotocols: Vec<String>,
}

pub struct WriteState {
    /// The socket, owned by the reactor; -1 once closed. Closing happens under this
    /// lock, so a sending thread never writes to a closed (or reused) descriptor.
    pub fd: RawFd,
    pub phase: Phase,
    pub closing: ClosingHandshake,
    pub queue: SendQueue,
    /// The last write hit EAGAIN: wait for the reactor's writability event.
    pub blocked: bool,
    /// A send was refused for a full queue: report `Drain` at the low-water mark.
    pub drain_wanted: bool,
    /// Half-close TCP once the queue is written (after our close frame or an HTTP
    /// error response).
    pub finish_after_flush: bool,
    /// A write failed: the peer is gone; the reactor tears the connection down.
    pub broken: bool,
    /// The slow-consumer policy asked for this connection to be dropped.
    pub abort_requested: bool,
    pub pending_upgrade: Option<PendingUpgrade>,
}

pub struct ConnShared {
    pub id: ConnId,
    pub reactor: usize,
    pub tag: AtomicU64,
    /// Milliseconds since engine start at which our close frame was queued (0: not).
    pub close_sent_at_ms: AtomicU64,
    pub state: Mutex<WriteState>,
}

impl ConnShared {
    pub fn new(id: ConnId, reactor: usize, fd: RawFd) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            id,
            reactor,
            tag: AtomicU64::new(0),
            close_sent_at_ms: AtomicU64::new(0),
            state: Mutex::new(WriteState {
                fd,
                phase: Phase::Handshaking,
                closing: ClosingHandshake::new(),
                queue: SendQueue::new(),
                blocked: false,
                drain_wanted: false,
                finish_after_flush: false,
                broken: false,
                abort_requested: false,
                pending_upgrade: None,
            }),
        })
    }

    pub fn tag(&self) -> u64 {
        self.tag.load(Ordering::Relaxed)
    }
}

impl WriteState {
    /// Writes `header` + `payload` as one frame (or any pre-rendered bytes), directly
    /// when nothing is queued and the socket is writable, otherwise by queueing a copy.
    /// Frames of different sends never interleave: a partial direct write queues the
    /// rest before the lock is released.
    pub fn write_frame(
        &mut self,
        header: &[u8],
        payload: &[u8],
        stats: &Counters,
    ) -> Result<(), Error> {
        if self.fd < 0 || self.broken {
            return Err(Error::Closed);
        }
        let total = header.len() + payload.len();
        let mut written = 0;
        if self.queue.is_empty() && !self.blocked {
            match write_all_or_block(self.fd, header, payload) {
                Ok(n) => written = n,
                Err(_) => {
                    self.broken = true;
                    return Err(Error::Closed);
                }
            }
            Counters::add(&stats.bytes_out, written as u64);
            if written == total {
                return Ok(());
            }
            self.blocked = true;
        }
        let mut rest = Vec::with_capacity(total - written);
        if written < header.len() {
            rest.extend_from_slice(&header[written..]);
            rest.extend_from_slice(payload);
        } else {
            rest.extend_from_slice(&payload[written - header.len()..]);
        }
        Counters::add(&stats.send_queue_bytes, rest.len() as u64);
        self.queue.push_owned(rest);
        Ok(())
    }

    /// Writes a close frame carrying `code` (None: empty payload) and `reason`.
    pub fn write_close(
        &mut self,
        code: Option<CloseCode>,
        reason: &str,
        stats: &Counters,
    ) -> Result<(), Error> {
        let mut payload = Vec::with_capacity(2 + reason.len());
        if let Some(c) = code {
            encode_close_payload(c, reason, &mut payload);
        }
        let (h, n) = server_header(OpCode::Close, true, payload.len() as u64);
        self.write_frame(&h[..n], &payload, stats)
    }

    /// Queues a pre-encoded frame shared with other connections (broadcast).
    pub fn write_shared(&mut self, frame: &Arc<[u8]>, stats: &Counters) -> Result<(), Error> {
        if self.fd < 0 || self.broken {
            return Err(Error::Closed);
        }
        if self.queue.is_empty() && !self.blocked {
            // Same direct path as a single send: usually the whole frame goes out now.
            return self.write_frame(frame, &[], stats);
        }
        Counters::add(&stats.send_queue_bytes, frame.len() as u64);
        self.queue.push_shared(frame.clone());
        Ok(())
    }

    /// Writes queued frames until the queue is empty or the socket blocks.
    pub fn flush(&mut self, stats: &Counters) -> io::Result<Flushed> {
        if self.fd < 0 {
            return Ok(Flushed {
                bytes: 0,
                frames: 0,
                blocked: false,
            });
        }
        let result = self.queue.flush(self.fd);
        match &result {
            Ok(f) => {
                self.blocked = f.blocked;
                Counters::add(&stats.bytes_out, f.bytes as u64);
                Counters::sub(&stats.send_queue_bytes, f.bytes as u64);
            }
            Err(_) => self.broken = true,
        }
        result
    }

    /// Forgets queued frames (the connection is going away); returns how many.
    pub fn discard_queue(&mut self, stats: &Counters) -> usize {
        Counters::sub(&stats.send_queue_bytes, self.queue.bytes() as u64);
        self.queue.clear()
    }
}

/// One `writev` of header + payload, retried on EINTR; returns bytes written (0 when
/// the socket would block).
fn write_all_or_block(fd: RawFd, header: &[u8], payload: &[u8]) -> io::Result<usize> {
    let total = header.len() + payload.len();
    let mut written = 0;
    while written < total {
        let res = if written < header.len() {
            sys::writev(
                fd,
                &[IoSlice::new(&header[written..]), IoSlice::new(payload)],
            )
        } else {
            sys::writev(fd, &[IoSlice::new(&payload[written - header.len()..])])
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
