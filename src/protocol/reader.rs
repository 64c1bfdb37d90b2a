//! The inbound side of a server connection: frames to messages (§5.2-§5.6, §8.1).
//!
//! Bytes are consumed as they come: a frame's payload is unmasked straight into the
//! message buffer, so the caller only ever keeps back an incomplete frame header
//! (fewer than [`MAX_HEADER_LEN`](super::frame::MAX_HEADER_LEN) bytes).

use super::close::CloseCode;
use super::error::ProtocolError;
use super::{Limits, MessageKind};

/// Something the peer said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete message, reassembled from its fragments (§5.4). A text payload has been
    /// validated as UTF-8.
    Message { kind: MessageKind, payload: Vec<u8> },
    /// A ping (§5.5.2): it must be answered with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong (§5.5.3), solicited or not.
    Pong(Vec<u8>),
    /// A valid close frame (§5.5.1): `code` is None when the payload was empty.
    Close {
        code: Option<CloseCode>,
        reason: String,
    },
    /// The peer broke the protocol: fail the connection with `error.close_code()`.
    Error(ProtocolError),
}

/// Server-side frame decoder and message assembler.
#[derive(Debug)]
pub struct Reader {
    limits: Limits,
}

impl Reader {
    pub fn new(limits: Limits) -> Self {
        Reader { limits }
    }

    /// Consumes as much of `input` as possible and appends what it completes to `events`.
    /// Returns the number of bytes consumed; the rest (an incomplete frame header) must be
    /// presented again at the front of the next call. After a `Close` or `Error` event
    /// the reader is finished and consumes nothing more.
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<Incoming>) -> usize {
        let _ = (input, events, self.limits);
        todo!()
    }

    /// True once a close frame or a protocol error has been seen.
    pub fn is_finished(&self) -> bool {
        todo!()
    }
}
