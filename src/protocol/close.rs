//! Close codes and close frame payloads (§5.5.1, §7.4). The closing handshake itself is
//! a part of `ServerConnection`'s state.

use super::error::ProtocolError;

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
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// Longest close reason in bytes: 125-byte control payload minus the 2-byte code (§5.5).
pub const MAX_CLOSE_REASON: usize = 123;

/// Parses a received close payload: empty (no code), or a 2-byte code plus a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, ProtocolError> {
    match payload.len() {
        0 => Ok(None),
        // §5.5.1: if there is a body, its first two bytes are the status code.
        1 => Err(ProtocolError::InvalidClosePayload),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = std::str::from_utf8(&payload[2..])
                .map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Appends a close payload (code + reason truncated to [`MAX_CLOSE_REASON`] bytes on a
/// char boundary) to `out`.
pub fn encode_close_payload(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_and_private_codes_are_valid_on_the_wire() {
        // §7.4.1, §7.4.2
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
        ] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn empty_close_payload_has_no_code() {
        // §5.5.1
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn one_byte_close_payload_is_a_protocol_error() {
        // §5.5.1
        assert_eq!(
            parse_close_payload(&[3]),
            Err(ProtocolError::InvalidClosePayload)
        );
    }

    #[test]
    fn close_code_and_reason_are_parsed() {
        let mut p = vec![0x03, 0xE8];
        p.extend_from_slice("bye ✓".as_bytes());
        assert_eq!(
            parse_close_payload(&p),
            Ok(Some((CloseCode::NORMAL, "bye ✓")))
        );
    }

    #[test]
    fn reserved_close_codes_are_rejected() {
        // §7.4.1: 1005 and 1006 must not be set in a close frame.
        assert_eq!(
            parse_close_payload(&1005u16.to_be_bytes()),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            parse_close_payload(&999u16.to_be_bytes()),
            Err(ProtocolError::InvalidCloseCode(999))
        );
    }

    #[test]
    fn close_reason_must_be_utf8() {
        // §5.5.1
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8, 0xFF]),
            Err(ProtocolError::InvalidCloseReason)
        );
    }

    #[test]
    fn encoded_reason_is_truncated_on_a_char_boundary() {
        let mut out = Vec::new();
        encode_close_payload(CloseCode::NORMAL, &"é".repeat(100), &mut out);
        assert!(out.len() <= 125);
        assert!(std::str::from_utf8(&out[2..]).is_ok());
        assert_eq!(&out[..2], &[0x03, 0xE8]);
    }
}
