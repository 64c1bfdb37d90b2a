//! A sans-I/O server connection after the handshake: bytes in, events and bytes out.

use super::close::{encode_close_payload, CloseCode, CloseReply, ClosingHandshake};
use super::error::SendError;
use super::frame::{encode_frame, OpCode};
use super::reader::{Incoming, Reader};
use super::{Limits, MessageKind};

/// Feed it received bytes in chunks of any size; it reports what the peer said and
/// produces the bytes to write (pongs, close replies, the close that fails a connection).
#[derive(Debug)]
pub struct Connection {
    reader: Reader,
    closing: ClosingHandshake,
    failed: bool,
}

impl Connection {
    pub fn new(limits: Limits) -> Self {
        Connection {
            reader: Reader::new(limits),
            closing: ClosingHandshake::new(),
            failed: false,
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
        let first = events.len();
        let consumed = self.reader.feed(input, events);
        for event in &events[first..] {
            match event {
                Incoming::Ping(payload) if self.closing.can_send_data() => {
                    encode_frame(OpCode::Pong, true, payload, out);
                }
                Incoming::Close { code, .. } => {
                    if let CloseReply::Reply(echo) = self.closing.on_receive_close(*code) {
                        let mut payload = Vec::new();
                        if let Some(c) = echo {
                            encode_close_payload(c, "", &mut payload);
                        }
                        encode_frame(OpCode::Close, true, &payload, out);
                    }
                }
                Incoming::Error(e) => {
                    self.failed = true;
                    if self.closing.on_send_close().is_ok() {
                        let mut payload = Vec::new();
                        encode_close_payload(
                            CloseCode(e.close_code()),
                            &e.to_string(),
                            &mut payload,
                        );
                        encode_frame(OpCode::Close, true, &payload, out);
                    }
                }
                _ => {}
            }
        }
        consumed
    }

    /// Appends a complete data frame to `out`.
    pub fn send(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if !self.closing.can_send_data() {
            return Err(SendError::Closing);
        }
        let opcode = match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        encode_frame(opcode, true, payload, out);
        Ok(())
    }

    pub fn ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.control(OpCode::Ping, payload, out)
    }

    pub fn pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.control(OpCode::Pong, payload, out)
    }

    fn control(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if payload.len() > 125 {
            return Err(SendError::ControlFrameTooLong);
        }
        if !self.closing.can_send_data() {
            return Err(SendError::Closing);
        }
        encode_frame(opcode, true, payload, out);
        Ok(())
    }

    /// Starts the closing handshake (§7.1.2).
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if !code.is_valid_on_wire() {
            return Err(SendError::InvalidCloseCode);
        }
        self.closing.on_send_close()?;
        let mut payload = Vec::new();
        encode_close_payload(code, reason, &mut payload);
        encode_frame(OpCode::Close, true, &payload, out);
        Ok(())
    }

    /// The server should now close TCP: the closing handshake completed, or the
    /// connection failed (§7.1.1: the server closes the TCP connection first).
    pub fn should_close_tcp(&self) -> bool {
        self.closing.is_complete() || self.failed
    }

    pub fn closing(&self) -> &ClosingHandshake {
        &self.closing
    }
}

#[cfg(test)]
mod tests {
    use super::super::error::ProtocolError;
    use super::super::reader::tests::client_frame;
    use super::*;

    fn conn() -> Connection {
        Connection::new(Limits::DEFAULT)
    }

    #[test]
    fn ping_is_answered_with_a_pong_carrying_the_same_payload() {
        // §5.5.2
        let mut c = conn();
        let (mut ev, mut out) = (Vec::new(), Vec::new());
        c.receive(&client_frame(true, 9, b"abc"), &mut ev, &mut out);
        assert_eq!(ev, vec![Incoming::Ping(b"abc".to_vec())]);
        assert_eq!(out, vec![0x8A, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn unsolicited_pong_is_accepted_without_answer() {
        // §5.5.3
        let mut c = conn();
        let (mut ev, mut out) = (Vec::new(), Vec::new());
        c.receive(&client_frame(true, 0xA, b"x"), &mut ev, &mut out);
        assert_eq!(ev, vec![Incoming::Pong(b"x".to_vec())]);
        assert!(out.is_empty());
        assert!(!c.should_close_tcp());
    }

    #[test]
    fn received_close_is_echoed_and_then_tcp_closes() {
        // §5.5.1, §7.1.1
        let mut c = conn();
        let (mut ev, mut out) = (Vec::new(), Vec::new());
        c.receive(
            &client_frame(true, 8, &4001u16.to_be_bytes()),
            &mut ev,
            &mut out,
        );
        assert_eq!(out, vec![0x88, 2, 0x0F, 0xA1]);
        assert!(c.should_close_tcp());
        assert_eq!(
            c.send(MessageKind::Text, b"late", &mut out),
            Err(SendError::Closing)
        );
    }

    #[test]
    fn empty_close_is_answered_with_an_empty_close() {
        let mut c = conn();
        let (mut ev, mut out) = (Vec::new(), Vec::new());
        c.receive(&client_frame(true, 8, b""), &mut ev, &mut out);
        assert_eq!(out, vec![0x88, 0]);
    }

    #[test]
    fn protocol_error_sends_a_close_with_its_code() {
        // §7.1.7: fail the connection, with 1002 here.
        let mut c = conn();
        let (mut ev, mut out) = (Vec::new(), Vec::new());
        c.receive(&[0x81, 0x02, b'h', b'i'], &mut ev, &mut out);
        assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xEA]);
        assert!(c.should_close_tcp());
    }

    #[test]
    fn no_data_after_our_close_and_the_peer_close_completes() {
        let mut c = conn();
        let mut out = Vec::new();
        c.close(CloseCode::NORMAL, "done", &mut out).unwrap();
        assert_eq!(
            c.send(MessageKind::Binary, b"x", &mut out),
            Err(SendError::Closing)
        );
        assert_eq!(
            c.close(CloseCode::NORMAL, "", &mut out),
            Err(SendError::Closing)
        );
        assert!(!c.should_close_tcp());
        let (mut ev, mut out2) = (Vec::new(), Vec::new());
        c.receive(
            &client_frame(true, 8, &1000u16.to_be_bytes()),
            &mut ev,
            &mut out2,
        );
        assert!(out2.is_empty(), "no second close frame");
        assert!(c.should_close_tcp());
    }

    #[test]
    fn app_cannot_send_reserved_close_codes_or_long_pings() {
        let mut c = conn();
        let mut out = Vec::new();
        assert_eq!(
            c.close(CloseCode::NO_STATUS, "", &mut out),
            Err(SendError::InvalidCloseCode)
        );
        assert_eq!(
            c.ping(&[0; 126], &mut out),
            Err(SendError::ControlFrameTooLong)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn no_pong_after_our_close() {
        // §5.5.1: nothing but the closing handshake after our close frame.
        let mut c = conn();
        let mut out = Vec::new();
        c.close(CloseCode::GOING_AWAY, "", &mut out).unwrap();
        let (mut ev, mut out2) = (Vec::new(), Vec::new());
        c.receive(&client_frame(true, 9, b"late"), &mut ev, &mut out2);
        assert_eq!(ev, vec![Incoming::Ping(b"late".to_vec())]);
        assert!(out2.is_empty());
        assert_eq!(c.ping(b"", &mut out2), Err(SendError::Closing));
    }

    #[test]
    fn protocol_error_after_our_close_sends_no_second_close_but_closes_tcp() {
        // §7.1.7 with §5.5.1: one close frame per side.
        let mut c = conn();
        let mut out = Vec::new();
        c.close(CloseCode::NORMAL, "", &mut out).unwrap();
        let (mut ev, mut out2) = (Vec::new(), Vec::new());
        c.receive(&[0x82, 0x00], &mut ev, &mut out2);
        assert_eq!(ev, vec![Incoming::Error(ProtocolError::UnmaskedFrame)]);
        assert!(out2.is_empty());
        assert!(c.should_close_tcp());
    }

    #[test]
    fn invalid_utf8_fails_with_1007_and_oversize_with_1009() {
        // §7.4.1
        let mut c = conn();
        let (mut ev, mut out) = (Vec::new(), Vec::new());
        c.receive(&client_frame(false, 1, b"\xFF"), &mut ev, &mut out);
        assert_eq!(&out[2..4], &1007u16.to_be_bytes());
        let mut c = Connection::new(Limits {
            max_frame_size: 4,
            max_message_size: 4,
        });
        let (mut ev, mut out) = (Vec::new(), Vec::new());
        c.receive(&client_frame(true, 2, b"12345"), &mut ev, &mut out);
        assert_eq!(&out[2..4], &1009u16.to_be_bytes());
        assert!(c.should_close_tcp());
    }

    #[test]
    fn invalid_close_code_from_the_peer_is_answered_with_1002() {
        // §7.4.1: 1005 must not be sent; receiving it is a protocol error.
        let mut c = conn();
        let (mut ev, mut out) = (Vec::new(), Vec::new());
        c.receive(
            &client_frame(true, 8, &1005u16.to_be_bytes()),
            &mut ev,
            &mut out,
        );
        assert_eq!((out[0], &out[2..4]), (0x88, &1002u16.to_be_bytes()[..]));
        assert!(c.should_close_tcp());
    }

    #[test]
    fn app_frames_are_unmasked_server_frames() {
        // §5.1: a server MUST NOT mask frames it sends.
        let mut c = conn();
        let mut out = Vec::new();
        c.send(MessageKind::Text, b"hi", &mut out).unwrap();
        c.send(MessageKind::Binary, &[7; 200], &mut out).unwrap();
        c.pong(b"p", &mut out).unwrap();
        assert_eq!(&out[..4], &[0x81, 2, b'h', b'i']);
        assert_eq!(&out[4..8], &[0x82, 126, 0, 200]);
        assert_eq!(&out[208..], &[0x8A, 1, b'p']);
    }

    #[test]
    fn close_reason_is_truncated_to_fit_a_control_frame() {
        // §5.5: 125-byte control payload, 2 of them the code.
        let mut c = conn();
        let mut out = Vec::new();
        c.close(CloseCode(4000), &"x".repeat(300), &mut out)
            .unwrap();
        assert_eq!(out[..2], [0x88, 125]);
        assert_eq!(out.len(), 127);
    }
}
