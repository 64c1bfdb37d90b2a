//! One connection's TLS layer: ciphertext read from the socket goes in, plaintext for
//! the WebSocket protocol comes out; plaintext to send is encrypted and written to the
//! socket with the same would-block rules as a plain socket.
//!
//! rustls keeps the records it has encrypted but not yet written (`sendable_tls`).
//! That buffer is capped at [`CIPHERTEXT_LIMIT`]: the writer takes plaintext only while
//! there is room, so what the socket does not take stays in the connection's send
//! queue, where the soft and hard limits see it, and not hidden inside rustls.

use std::io::{self, IoSlice, Write};
use std::os::fd::RawFd;
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};
use std::io::BufRead;

use crate::engine::sys;
use crate::engine::transport::Writev;

/// Encrypted bytes rustls may hold for one connection: enough for a few full records
/// per flush, small next to the send queue's limits.
const CIPHERTEXT_LIMIT: usize = 64 * 1024;

/// Why a TLS connection cannot go on. rustls has queued an alert for the peer when
/// the failure was a protocol one; `TlsSession::flush` sends it.
#[derive(Debug)]
pub struct TlsFailure(pub String);

pub struct TlsSession {
    conn: ServerConnection,
}

/// What [`TlsSession::receive`] found besides plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    More,
    /// The peer sent `close_notify`: no more input will come (as an EOF).
    PeerClosed,
}

impl TlsSession {
    pub fn new(config: &Arc<ServerConfig>) -> Result<Box<TlsSession>, TlsFailure> {
        let mut conn =
            ServerConnection::new(config.clone()).map_err(|e| TlsFailure(e.to_string()))?;
        conn.set_buffer_limit(Some(CIPHERTEXT_LIMIT));
        Ok(Box::new(TlsSession { conn }))
    }

    /// Feeds `ciphertext` to rustls and hands every piece of plaintext it yields to
    /// `deliver`, in order. Handshake answers wait in rustls for [`flush`](Self::flush).
    /// The plaintext is never more than the ciphertext, so a caller that bounds what it
    /// reads from the socket bounds what it delivers.
    pub fn receive(
        &mut self,
        mut ciphertext: &[u8],
        mut deliver: impl FnMut(&[u8]),
    ) -> Result<Received, TlsFailure> {
        let mut received = Received::More;
        while !ciphertext.is_empty() {
            match self.conn.read_tls(&mut ciphertext) {
                Ok(0) => break, // after close_notify rustls reads nothing more
                Ok(_) => {}
                Err(e) => return Err(TlsFailure(e.to_string())),
            }
            let state = self
                .conn
                .process_new_packets()
                .map_err(|e| TlsFailure(e.to_string()))?;
            let mut reader = self.conn.reader();
            // `fill_buf` lends rustls's own buffer: no copy on the way to the protocol.
            while let Ok(plain) = reader.fill_buf() {
                if plain.is_empty() {
                    break;
                }
                let n = plain.len();
                deliver(plain);
                reader.consume(n);
            }
            if state.peer_has_closed() {
                received = Received::PeerClosed;
            }
        }
        Ok(received)
    }

    /// Encrypted bytes wait for the socket.
    pub fn has_pending_output(&self) -> bool {
        self.conn.wants_write()
    }

    /// Writes encrypted bytes until none are left (true) or the socket would block
    /// (false).
    pub fn flush(&mut self, fd: RawFd) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut SocketWriter(fd)) {
                Ok(_) => {}
                Err(e) if sys::would_block(&e) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Queues `close_notify` and writes it if the socket takes it now. Best effort: the
    /// TCP half-close follows either way, and WebSocket has its own close handshake.
    pub fn close_notify(&mut self, fd: RawFd) {
        self.conn.send_close_notify();
        let _ = self.flush(fd);
    }

    /// The plaintext side of this connection, writing through to `fd`.
    pub fn sink(&mut self, fd: RawFd) -> TlsSink<'_> {
        TlsSink { session: self, fd }
    }
}

/// Plaintext in, ciphertext out to the socket: the TLS counterpart of
/// [`PlainSocket`](crate::engine::transport::PlainSocket).
pub struct TlsSink<'a> {
    session: &'a mut TlsSession,
    fd: RawFd,
}

impl Writev for TlsSink<'_> {
    /// Takes as much of `iov` as rustls has room to encrypt, after writing out what was
    /// encrypted before; returns the plaintext bytes taken. Would-block when the old
    /// ciphertext does not all go out: new plaintext then waits in the send queue.
    fn writev(&mut self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        if !self.session.flush(self.fd)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = self.session.conn.writer().write_vectored(iov)?;
        // What the socket does not take now stays in rustls (`has_pending_output`),
        // and the caller waits for writability before writing more.
        self.session.flush(self.fd)?;
        if taken == 0 && iov.iter().any(|s| !s.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }
}

/// `io::Write` over a non-blocking socket, for rustls's `write_tls` (which gathers
/// its records into one `writev`).
struct SocketWriter(RawFd);

impl Write for SocketWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::writev(self.0, &[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        sys::writev(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
