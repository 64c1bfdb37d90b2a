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
        Ok(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::UnknownOpcode(other)),
        })
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

/// §5.5: "All control frames MUST have a payload length of 125 bytes or less."
pub(crate) const MAX_CONTROL_PAYLOAD: usize = 125;

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
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = OpCode::from_u8(b0 & 0x0F)?;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            // §5.5: control frames are never fragmented and carry at most 125 bytes;
            // checked before the extended length so a bad frame fails at once.
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if len7 > 125 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        // Non-minimal length encodings are accepted: §5.2's "minimal number of bytes"
        // binds senders, and rejecting them protects nothing (the length is bounded by
        // the configured limits either way).
        let (payload_len, mut pos) = match len7 {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let len = u64::from_be_bytes(buf[2..10].try_into().unwrap());
                // §5.2: the most significant bit MUST be 0.
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        let mask = if masked {
            if buf.len() < pos + 4 {
                return Ok(None);
            }
            let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
            pos += 4;
            Some(key)
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// Number of bytes [`FrameHeader::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header (minimal length encoding) into `out`, which must hold at least
    /// [`FrameHeader::encoded_len`] bytes. Returns the number of bytes written.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        out[0] = (if self.fin { 0x80 } else { 0 }) | ((self.rsv & 0x7) << 4) | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match self.payload_len {
            n @ 0..=125 => {
                out[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        pos
    }
}

/// The header of an unmasked server frame, for vectored writes: (bytes, length).
///
/// What [`FrameHeader::encode`] writes for RSV 0 and no mask, made directly: this is
/// on every send, and a small message's header is two bytes.
#[inline]
pub fn server_header(
    opcode: OpCode,
    fin: bool,
    payload_len: u64,
) -> ([u8; MAX_SERVER_HEADER_LEN], usize) {
    let mut out = [0u8; MAX_SERVER_HEADER_LEN];
    out[0] = (u8::from(fin) << 7) | opcode as u8;
    // §5.2: the minimal length encoding.
    let n = match payload_len {
        0..=125 => {
            out[1] = payload_len as u8;
            2
        }
        126..=0xFFFF => {
            out[1] = 126;
            out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = 127;
            out[2..10].copy_from_slice(&payload_len.to_be_bytes());
            10
        }
    };
    (out, n)
}

/// The length of the header [`server_header`] makes for `payload_len` (the minimal
/// length encoding of §5.2), without making it.
pub fn server_header_len(payload_len: u64) -> usize {
    match payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Appends a complete unmasked server frame (header then payload) to `out`.
pub fn encode_frame(opcode: OpCode, fin: bool, payload: &[u8], out: &mut Vec<u8>) {
    let (header, n) = server_header(opcode, fin, payload.len() as u64);
    out.reserve(n + payload.len());
    out.extend_from_slice(&header[..n]);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        FrameHeader::decode(bytes)
    }

    #[test]
    fn seven_bit_length_header_decodes() {
        // §5.2: payload len 0-125 in the second byte.
        let (h, n) = decode(&[0x81, 0x85, 1, 2, 3, 4]).unwrap().unwrap();
        assert_eq!(n, 6);
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.mask, Some([1, 2, 3, 4]));
    }

    #[test]
    fn sixteen_bit_length_header_decodes() {
        // §5.2: 126 means a 16-bit length follows.
        let (h, n) = decode(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, n, h.mask), (256, 4, None));
    }

    #[test]
    fn sixty_four_bit_length_header_decodes() {
        // §5.2: 127 means a 64-bit length follows.
        let mut b = vec![0x82, 0xFF];
        b.extend_from_slice(&(1u64 << 32).to_be_bytes());
        b.extend_from_slice(&[9, 9, 9, 9]);
        let (h, n) = decode(&b).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (1 << 32, 14));
    }

    #[test]
    fn sixty_four_bit_length_with_top_bit_set_is_rejected() {
        // §5.2: the most significant bit MUST be 0.
        let mut b = vec![0x82, 0x7F];
        b.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(decode(&b), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn incomplete_headers_need_more_bytes() {
        assert_eq!(decode(&[]), Ok(None));
        assert_eq!(decode(&[0x81]), Ok(None));
        assert_eq!(decode(&[0x81, 0xFE, 0]), Ok(None));
        assert_eq!(decode(&[0x81, 0xFF, 0, 0, 0]), Ok(None));
        assert_eq!(decode(&[0x81, 0x80, 1, 2]), Ok(None));
    }

    #[test]
    fn every_reserved_opcode_is_rejected() {
        // §5.2: 0x3-0x7 and 0xB-0xF are reserved.
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                decode(&[0x80 | op, 0x80, 0, 0, 0, 0]),
                Err(ProtocolError::UnknownOpcode(op))
            );
        }
    }

    #[test]
    fn fragmented_control_frames_are_rejected() {
        // §5.5: control frames MUST NOT be fragmented.
        assert_eq!(
            decode(&[0x09, 0x80]),
            Err(ProtocolError::FragmentedControlFrame)
        );
    }

    #[test]
    fn control_frames_over_125_bytes_are_rejected() {
        // §5.5: control payloads are at most 125 bytes.
        assert_eq!(
            decode(&[0x89, 0xFE, 0, 126]),
            Err(ProtocolError::ControlFrameTooLong)
        );
    }

    #[test]
    fn rsv_bits_are_reported_for_the_reader_to_judge() {
        let (h, _) = decode(&[0xC1, 0x80, 0, 0, 0, 0]).unwrap().unwrap();
        assert_eq!(h.rsv, 0b100);
    }

    #[test]
    fn server_header_is_what_the_general_encoder_writes() {
        // The direct server header against FrameHeader::encode (RSV 0, unmasked).
        let ops = [
            OpCode::Continuation,
            OpCode::Text,
            OpCode::Binary,
            OpCode::Close,
            OpCode::Ping,
            OpCode::Pong,
        ];
        let lens = (0..=300u64).chain(65_530..=65_540).chain([
            1 << 20,
            u32::MAX as u64 + 1,
            (1 << 63) - 1,
        ]);
        for len in lens {
            for opcode in ops {
                for fin in [false, true] {
                    let header = FrameHeader {
                        fin,
                        rsv: 0,
                        opcode,
                        mask: None,
                        payload_len: len,
                    };
                    let mut expected = [0u8; MAX_HEADER_LEN];
                    let n = header.encode(&mut expected);
                    let (got, m) = server_header(opcode, fin, len);
                    assert_eq!(&got[..m], &expected[..n], "{opcode:?} fin {fin} len {len}");
                    assert_eq!(m, server_header_len(len));
                }
            }
        }
    }

    #[test]
    fn server_headers_use_minimal_lengths() {
        assert_eq!(server_header(OpCode::Text, true, 5).1, 2);
        assert_eq!(server_header(OpCode::Text, true, 125).1, 2);
        assert_eq!(server_header(OpCode::Text, true, 126).1, 4);
        assert_eq!(server_header(OpCode::Text, true, 65535).1, 4);
        assert_eq!(server_header(OpCode::Text, true, 65536).1, 10);
        let (h, _) = server_header(OpCode::Binary, false, 3);
        assert_eq!(&h[..2], &[0x02, 0x03]);
        for len in [0, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            assert_eq!(
                server_header_len(len),
                server_header(OpCode::Text, true, len).1
            );
        }
    }

    #[test]
    fn encode_then_decode_round_trips() {
        for len in [0u64, 1, 125, 126, 65535, 65536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = FrameHeader {
                    fin: len % 2 == 0,
                    rsv: 0,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                };
                let mut buf = [0u8; MAX_HEADER_LEN];
                let n = h.encode(&mut buf);
                assert_eq!(n, h.encoded_len());
                assert_eq!(FrameHeader::decode(&buf[..n]), Ok(Some((h, n))));
            }
        }
    }

    #[test]
    fn encode_frame_appends_header_and_payload() {
        let mut out = Vec::new();
        encode_frame(OpCode::Text, true, b"hi", &mut out);
        assert_eq!(out, vec![0x81, 2, b'h', b'i']);
    }

    #[test]
    fn non_minimal_length_encodings_are_accepted() {
        // §5.2's "minimal number of bytes" binds the sender; see `decode`.
        let (h, n) = decode(&[0x82, 0x7E, 0, 5]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (5, 4));
        let mut b = vec![0x82, 0x7F];
        b.extend_from_slice(&5u64.to_be_bytes());
        let (h, n) = decode(&b).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (5, 10));
    }

    #[test]
    fn control_frame_rules_fail_from_the_first_two_bytes() {
        // §5.5: no need to wait for the extended length or the mask.
        assert_eq!(
            decode(&[0x88, 0xFF]),
            Err(ProtocolError::ControlFrameTooLong)
        );
        assert_eq!(
            decode(&[0x0A, 0x85]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        let (h, n) = decode(&[0x8A, 0xFD, 1, 2, 3, 4]).unwrap().unwrap();
        assert_eq!((h.opcode, h.payload_len, n), (OpCode::Pong, 125, 6));
    }
}
