//! The protocol layer's one error type, and its mapping to close codes (§7.4.1).

use std::fmt;

/// Why the peer's bytes violate RFC 6455. Each variant maps to exactly one close code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// §5.1: a client MUST mask every frame it sends.
    UnmaskedFrame,
    /// §5.2: RSV1-3 MUST be 0 unless an extension defining them was negotiated.
    ReservedBitsSet,
    /// §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
    UnknownOpcode(u8),
    /// §5.5: control frames MUST NOT be fragmented.
    FragmentedControlFrame,
    /// §5.5: control frames MUST have a payload of 125 bytes or less.
    ControlFrameTooLong,
    /// §5.2: the most significant bit of a 64-bit payload length MUST be 0.
    InvalidLength,
    /// §5.4: a continuation frame with no fragmented message in progress.
    UnexpectedContinuation,
    /// §5.4: a new text/binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// §10.4: a frame larger than the configured maximum.
    FrameTooLarge,
    /// §10.4: a message larger than the configured maximum.
    MessageTooLarge,
    /// §8.1: a text message (or part of one) that is not valid UTF-8.
    InvalidUtf8,
    /// RFC 7692 §7.2.2: a compressed message whose payload is not a deflate stream.
    InvalidCompressedData,
    /// §5.5.1: a close payload of exactly one byte.
    InvalidClosePayload,
    /// §7.4.1/§7.4.2: a close code that must not appear on the wire.
    InvalidCloseCode(u16),
    /// §5.5.1: a close reason that is not valid UTF-8.
    InvalidCloseReason,
}

impl ProtocolError {
    /// The close code the server sends when failing the connection for this error.
    pub fn close_code(&self) -> u16 {
        match self {
            // §7.4.1 1007: data inconsistent with the message type (non-UTF-8 text).
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::InvalidCompressedData => 1007,
            // §7.4.1 1009: a message too big to process.
            ProtocolError::FrameTooLarge | ProtocolError::MessageTooLarge => 1009,
            _ => 1002,
        }
    }
}

impl fmt::Display for ProtocolError {
    /// Short enough to be sent as the close reason (at most 123 bytes, §5.5.1).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ProtocolError::UnmaskedFrame => "client frame is not masked",
            ProtocolError::ReservedBitsSet => "reserved bits set without an extension",
            ProtocolError::UnknownOpcode(op) => return write!(f, "reserved opcode {op:#x}"),
            ProtocolError::FragmentedControlFrame => "fragmented control frame",
            ProtocolError::ControlFrameTooLong => "control frame payload over 125 bytes",
            ProtocolError::InvalidLength => "64-bit payload length with the top bit set",
            ProtocolError::UnexpectedContinuation => "continuation frame without a message",
            ProtocolError::ExpectedContinuation => "new message inside a fragmented message",
            ProtocolError::FrameTooLarge => "frame too large",
            ProtocolError::MessageTooLarge => "message too large",
            ProtocolError::InvalidUtf8 => "invalid UTF-8 in text message",
            ProtocolError::InvalidCompressedData => "compressed message does not inflate",
            ProtocolError::InvalidClosePayload => "close payload of one byte",
            ProtocolError::InvalidCloseCode(code) => {
                return write!(f, "close code {code} is not allowed on the wire")
            }
            ProtocolError::InvalidCloseReason => "close reason is not UTF-8",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ProtocolError {}

/// Why the local side may not send what it asked to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// §5.5.1: after sending a close frame, an endpoint MUST NOT send more data frames.
    Closing,
    /// §5.5: a control frame payload must be 125 bytes or less.
    ControlFrameTooLong,
    /// §7.4: the application may only send codes valid on the wire (1000-1003, 1007-1014, 3000-4999).
    InvalidCloseCode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_errors_close_with_1007_size_errors_with_1009_the_rest_with_1002() {
        // §7.4.1
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
        assert_eq!(ProtocolError::InvalidCloseReason.close_code(), 1007);
        assert_eq!(ProtocolError::MessageTooLarge.close_code(), 1009);
        assert_eq!(ProtocolError::FrameTooLarge.close_code(), 1009);
        assert_eq!(ProtocolError::UnmaskedFrame.close_code(), 1002);
        assert_eq!(ProtocolError::UnknownOpcode(3).close_code(), 1002);
        assert_eq!(ProtocolError::InvalidCloseCode(1005).close_code(), 1002);
    }

    #[test]
    fn display_names_the_offending_value_and_fits_a_close_reason() {
        assert_eq!(
            ProtocolError::UnknownOpcode(0xB).to_string(),
            "reserved opcode 0xb"
        );
        assert_eq!(
            ProtocolError::InvalidCloseCode(1005).to_string(),
            "close code 1005 is not allowed on the wire"
        );
        // §5.5.1: the text is sent as the reason of the failing close frame.
        for e in [
            ProtocolError::InvalidCloseCode(65535),
            ProtocolError::ExpectedContinuation,
        ] {
            assert!(e.to_string().len() <= 123);
        }
    }
}
