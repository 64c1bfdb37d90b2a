//! Close codes, close frame payloads (§5.5.1, §7.4) and the closing handshake (§7).

use super::error::{ProtocolError, SendError};

/// A close status code (§7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Reserved: reported locally when a close frame had no code; never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Reserved: reported locally when TCP closed without a close frame; never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Whether this code may appear in a close frame on the wire (§7.4.1, §7.4.2):
    /// 1000-1003, 1007-1014 and 3000-4999. Everything else is a protocol error if received.
    pub fn is_valid_on_wire(self) -> bool {
        todo!()
    }
}

/// Longest close reason in bytes: 125-byte control payload minus the 2-byte code (§5.5).
pub const MAX_CLOSE_REASON: usize = 123;

/// Parses a received close payload: empty (no code), or a 2-byte code plus a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, ProtocolError> {
    let _ = payload;
    todo!()
}

/// Appends a close payload (code + reason truncated to [`MAX_CLOSE_REASON`] bytes on a
/// char boundary) to `out`.
pub fn encode_close_payload(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
    let _ = (code, reason, out);
    todo!()
}

/// The closing handshake state machine (§7.1). Tracks which close frames have been
/// sent and received; the server closes TCP once both have happened (§7.1.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClosingHandshake {
    sent: bool,
    received: bool,
}

/// What the local side must do after receiving a close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReply {
    /// Send a close frame echoing this code (None: an empty close payload), then close TCP.
    Reply(Option<CloseCode>),
    /// We had already sent our close: the handshake is complete, close TCP.
    Complete,
}

impl ClosingHandshake {
    pub fn new() -> Self {
        Self::default()
    }
    /// Data frames may only be sent before our close frame (§5.5.1).
    pub fn can_send_data(&self) -> bool {
        todo!()
    }
    /// Records that we are sending a close frame; fails if one was already sent.
    pub fn on_send_close(&mut self) -> Result<(), SendError> {
        todo!()
    }
    /// Records a received close frame carrying `code`, and says how to answer it.
    pub fn on_receive_close(&mut self, code: Option<CloseCode>) -> CloseReply {
        let _ = code;
        todo!()
    }
    pub fn close_sent(&self) -> bool {
        self.sent
    }
    pub fn close_received(&self) -> bool {
        self.received
    }
    /// Both close frames exchanged: the server now closes the TCP connection (§7.1.1).
    pub fn is_complete(&self) -> bool {
        self.sent && self.received
    }
}
