//! A sans-I/O server connection after the handshake: bytes in, events and bytes out.

use super::close::{CloseCode, ClosingHandshake};
use super::error::SendError;
use super::reader::{Incoming, Reader};
use super::{Limits, MessageKind};

/// Feed it received bytes in chunks of any size; it reports what the peer said and
/// produces the bytes to write (pongs, close replies, the close that fails a connection).
#[derive(Debug)]
pub struct Connection {
    reader: Reader,
    closing: ClosingHandshake,
}

impl Connection {
    pub fn new(limits: Limits) -> Self {
        Connection {
            reader: Reader::new(limits),
            closing: ClosingHandshake::new(),
        }
    }

    /// Consumes received bytes (see [`Reader::feed`] for what is kept back), appends
    /// events to `events` and the automatic answers (pong for ping §5.5.2, close reply
    /// §5.5.1, close with the error's code on a protocol error §7.1.7) to `out`.
    pub fn receive(
        &mut self,
        input: &[u8],
        events: &mut Vec<Incoming>,
        out: &mut Vec<u8>,
    ) -> usize {
        let _ = (input, events, out, &self.reader);
        todo!()
    }

    /// Appends a complete data frame to `out`.
    pub fn send(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        let _ = (kind, payload, out);
        todo!()
    }

    pub fn ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        let _ = (payload, out);
        todo!()
    }

    pub fn pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        let _ = (payload, out);
        todo!()
    }

    /// Starts the closing handshake (§7.1.2).
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        let _ = (code, reason, out);
        todo!()
    }

    /// The server should now close TCP: the closing handshake completed, or the
    /// connection failed (§7.1.1: the server closes the TCP connection first).
    pub fn should_close_tcp(&self) -> bool {
        todo!()
    }

    pub fn closing(&self) -> &ClosingHandshake {
        &self.closing
    }
}
