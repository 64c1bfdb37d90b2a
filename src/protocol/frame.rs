//! Frame header coding (§5.2).

use super::error::ProtocolError;

/// Frame opcodes (§5.2, §11.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    /// Reserved opcodes are a protocol error (§5.2).
    pub fn from_u8(bits: u8) -> Result<OpCode, ProtocolError> {
        let _ = bits;
        todo!()
    }
    /// Control frames have the high bit of the opcode set (§5.5).
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Longest possible frame header: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER_LEN: usize = 14;
/// Longest header of an unmasked (server-to-client) frame.
pub const MAX_SERVER_HEADER_LEN: usize = 10;

/// A decoded frame header (§5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits.
    pub rsv: u8,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`. `Ok(None)`: more bytes are needed.
    /// `Ok(Some((header, header_len)))` otherwise. Rejects what makes a header invalid for
    /// any role: reserved opcodes, a 64-bit length with its top bit set, fragmented or
    /// over-125-byte control frames. Role rules (masking, RSV) are the reader's job.
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let _ = buf;
        todo!()
    }

    /// Number of bytes [`FrameHeader::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        todo!()
    }

    /// Writes the header (minimal length encoding) into `out`, which must hold at least
    /// [`FrameHeader::encoded_len`] bytes. Returns the number of bytes written.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let _ = out;
        todo!()
    }
}

/// The header of an unmasked server frame, for vectored writes: (bytes, length).
pub fn server_header(
    opcode: OpCode,
    fin: bool,
    payload_len: u64,
) -> ([u8; MAX_SERVER_HEADER_LEN], usize) {
    let _ = (opcode, fin, payload_len);
    todo!()
}

/// Appends a complete unmasked server frame (header then payload) to `out`.
pub fn encode_frame(opcode: OpCode, fin: bool, payload: &[u8], out: &mut Vec<u8>) {
    let _ = (opcode, fin, payload, out);
    todo!()
}
