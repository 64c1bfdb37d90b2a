//! The `inflate` target's checks, in one place: the fuzz target runs them on generated
//! inputs and `tests/fuzz_corpus.rs` on the stored seeds. Both crates have a sibling
//! module `chunking` (split and chunks, as in `chunking.rs`).
//!
//! `data[0]`: bits 0-2 as in `chunking.rs`; bit 3 picks a 256-byte message limit
//! instead of 64 KiB (so small inputs reach 1009); bit 4 agrees client context takeover
//! (a per-connection inflater) instead of the shared one.

use wsqueue::protocol::deflate::{InflateError, MessageInflater};
use wsqueue::protocol::extensions::DeflateAgreement;
use wsqueue::protocol::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use wsqueue::protocol::{Incoming, Limits, MessageKind, ProtocolError, Reader};

use super::chunking;

fn frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    // Key 0: the payload goes out as it is (masking is not what is fuzzed here).
    let h = FrameHeader {
        fin,
        rsv,
        opcode,
        mask: Some([0; 4]),
        payload_len: payload.len() as u64,
    };
    let mut buf = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut buf);
    out.extend_from_slice(&buf[..n]);
    out.extend_from_slice(payload);
}

/// Inflates `data`'s stream once directly and once as the payload of a compressed
/// message cut into fragments (RSV1 on the first frame, §6.1) through the reader, and
/// checks both are bounded by the limit and agree. `context` names the input in
/// failures.
pub fn check(data: &[u8], context: &str) {
    let Some(&first) = data.first() else { return };
    let limit: usize = if first & 8 != 0 { 256 } else { 64 * 1024 };
    let agreement = DeflateAgreement {
        server_no_context_takeover: true,
        client_no_context_takeover: first & 16 == 0,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
        min_size: 0,
        level: 6,
        response: String::new(),
    };
    let (sizes, stream) = chunking::split(data);

    // Directly: bounded by the limit, and the same twice (the shared inflater is reset;
    // a dedicated one is fresh each time here).
    let direct = MessageInflater::new(&agreement).inflate(stream, limit);
    if let Ok(out) = &direct {
        assert!(
            out.len() <= limit,
            "{context}: inflated {} bytes over a {limit} limit",
            out.len()
        );
    }
    assert_eq!(
        direct,
        MessageInflater::new(&agreement).inflate(stream, limit),
        "{context}"
    );

    // Through the reader, as one compressed binary message in fragments.
    let mut pieces = chunking::chunks(&sizes, stream);
    if pieces.is_empty() {
        pieces.push(&[]); // an empty message is still one frame
    }
    let mut wire = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let (op, rsv) = if i == 0 {
            (OpCode::Binary, 4)
        } else {
            (OpCode::Continuation, 0)
        };
        frame(i + 1 == pieces.len(), rsv, op, piece, &mut wire);
    }
    let mut reader = Reader::new(Limits {
        max_frame_size: 1 << 20,
        max_message_size: limit as u64,
    });
    reader.enable_inflate(MessageInflater::new(&agreement));
    let mut events = Vec::new();
    reader.feed(&wire, &mut events);
    if stream.len() > limit {
        // The compressed bytes alone are over the limit: refused from the headers.
        assert!(
            matches!(
                events.last(),
                Some(Incoming::Error(ProtocolError::MessageTooLarge))
            ),
            "{context}"
        );
        return;
    }
    let expected = match direct {
        Ok(payload) => Incoming::Message {
            kind: MessageKind::Binary,
            payload,
        },
        Err(InflateError::TooLarge) => Incoming::Error(ProtocolError::MessageTooLarge),
        Err(InflateError::Corrupt) => Incoming::Error(ProtocolError::InvalidCompressedData),
    };
    assert_eq!(
        events,
        vec![expected],
        "{context}: the reader and the inflater disagree"
    );
}
