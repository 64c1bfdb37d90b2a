//! Property tests of permessage-deflate (RFC 7692) in the sans-I/O layer: any messages,
//! compressed by a client (flate2) under any agreed parameters and fragmented anyhow,
//! come out of the reader whole however the bytes are cut; our compressor's output
//! inflates back at a client; corrupted compressed streams end in a defined error.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use proptest::prelude::*;
use wsqueue::protocol::deflate::{Compressed, MessageDeflater, MessageInflater};
use wsqueue::protocol::extensions::DeflateAgreement;
use wsqueue::protocol::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use wsqueue::protocol::mask::apply_mask;
use wsqueue::protocol::{Incoming, Limits, MessageKind, ProtocolError, Reader};

fn agreement(server_nct: bool, client_nct: bool, sbits: u8, cbits: u8) -> DeflateAgreement {
    DeflateAgreement {
        server_no_context_takeover: server_nct,
        client_no_context_takeover: client_nct,
        server_max_window_bits: sbits,
        client_max_window_bits: cbits,
        min_size: 0,
        level: 6,
        response: String::new(),
    }
}

/// A client's compressor (RFC 7692 §7.2.1): sync flush, the 4-byte tail removed.
fn client_compress(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let start = c.total_in();
    loop {
        let done = (c.total_in() - start) as usize;
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync)
            .unwrap();
        if (c.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    out.truncate(out.len() - 4);
    out
}

/// A client's inflater (RFC 7692 §7.2.2).
fn client_inflate(d: &mut Decompress, data: &[u8]) -> Vec<u8> {
    let input = [data, &[0, 0, 0xff, 0xff]].concat();
    let mut out = Vec::with_capacity(data.len() * 4 + 256);
    let start = d.total_in();
    loop {
        let done = (d.total_in() - start) as usize;
        d.decompress_vec(&input[done..], &mut out, FlushDecompress::Sync)
            .unwrap();
        if (d.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

fn frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    let key = [0x5a, 0x17, 0xc3, 0x08];
    let h = FrameHeader {
        fin,
        rsv,
        opcode,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut buf = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut buf);
    out.extend_from_slice(&buf[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
}

#[derive(Clone, Debug)]
struct Sent {
    kind: MessageKind,
    payload: Vec<u8>,
    compressed: bool,
    /// Cut points in the compressed bytes: one fragment per piece.
    cuts: Vec<prop::sample::Index>,
}

fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Compressible text: words from a small vocabulary.
        prop::collection::vec(
            prop::sample::select(vec![
                "{\"id\":",
                "1",
                "42",
                ",\"ok\":true}",
                " héllo ",
                "€",
                "\n"
            ]),
            0..3000
        )
        .prop_map(|words| words.concat().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..5000),
    ]
}

fn sent_strategy() -> impl Strategy<Value = Sent> {
    (
        any::<bool>(),
        payload_strategy(),
        prop::bool::weighted(0.8),
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    )
        .prop_map(|(text, payload, compressed, cuts)| {
            // Text only when the bytes are UTF-8, so every message is valid.
            let kind = if text && std::str::from_utf8(&payload).is_ok() {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            Sent {
                kind,
                payload,
                compressed,
                cuts,
            }
        })
}

/// The client's byte stream for `messages` under the agreed client parameters.
fn encode(messages: &[Sent], client_nct: bool, client_bits: u8) -> Vec<u8> {
    let bits = client_bits.max(9);
    let mut z = Compress::new_with_window_bits(Compression::default(), false, bits);
    let mut out = Vec::new();
    for m in messages {
        let body = if m.compressed {
            if client_nct {
                z = Compress::new_with_window_bits(Compression::default(), false, bits);
            }
            client_compress(&mut z, &m.payload)
        } else {
            m.payload.clone()
        };
        let mut bounds: Vec<usize> = m.cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        bounds.push(0);
        bounds.push(body.len());
        bounds.sort_unstable();
        bounds.dedup();
        let pieces: Vec<&[u8]> = if body.is_empty() {
            vec![&[]]
        } else {
            bounds.windows(2).map(|w| &body[w[0]..w[1]]).collect()
        };
        for (i, piece) in pieces.iter().enumerate() {
            let (op, rsv) = match (i, m.kind) {
                (0, MessageKind::Text) => (OpCode::Text, if m.compressed { 4 } else { 0 }),
                (0, MessageKind::Binary) => (OpCode::Binary, if m.compressed { 4 } else { 0 }),
                _ => (OpCode::Continuation, 0),
            };
            frame(i + 1 == pieces.len(), rsv, op, piece, &mut out);
        }
    }
    out
}

fn feed_split(
    stream: &[u8],
    splits: &[usize],
    a: &DeflateAgreement,
    limits: Limits,
) -> Vec<Incoming> {
    let mut reader = Reader::new(limits);
    reader.enable_inflate(MessageInflater::new(a));
    let mut events = Vec::new();
    let mut pending = Vec::new();
    let mut last = 0;
    let mut points: Vec<usize> = splits.iter().map(|&s| s.min(stream.len())).collect();
    points.sort_unstable();
    points.push(stream.len());
    for p in points {
        pending.extend_from_slice(&stream[last..p]);
        last = p;
        let n = reader.feed(&pending, &mut events);
        pending.drain(..n);
        if reader.is_finished() {
            break;
        }
        assert!(pending.len() < MAX_HEADER_LEN);
    }
    events
}

fn window() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![8u8, 9, 10, 12, 15])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn compressed_messages_round_trip_through_the_reader_however_cut(
        messages in prop::collection::vec(sent_strategy(), 1..6),
        client_nct in any::<bool>(),
        client_bits in window(),
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        // RFC 7692 §6.1 (RSV1 on the first fragment), §7.1.1.2 / §7.1.2.2 (the
        // client's context and window as agreed), §7.2.2 (inflate).
        let a = agreement(true, client_nct, 15, client_bits);
        let stream = encode(&messages, client_nct, client_bits);
        let expected: Vec<Incoming> = messages
            .iter()
            .map(|m| Incoming::Message { kind: m.kind, payload: m.payload.clone() })
            .collect();
        let cut_points: Vec<usize> = splits.iter().map(|i| i.index(stream.len() + 1)).collect();
        prop_assert_eq!(feed_split(&stream, &[], &a, Limits::DEFAULT), expected.clone());
        prop_assert_eq!(feed_split(&stream, &cut_points, &a, Limits::DEFAULT), expected);
    }

    #[test]
    fn the_inflated_size_is_held_to_the_message_limit(
        messages in prop::collection::vec(sent_strategy(), 1..4),
        limit in 0u64..6000,
    ) {
        // RFC 6455 §10.4 on the inflated size: a message over the limit closes 1009, and
        // none delivered is over it.
        let a = agreement(true, true, 15, 15);
        let limits = Limits { max_frame_size: 1 << 20, max_message_size: limit };
        let stream = encode(&messages, true, 15);
        let events = feed_split(&stream, &[], &a, limits);
        for (e, m) in events.iter().zip(&messages) {
            match e {
                Incoming::Message { payload, .. } => {
                    prop_assert!(payload.len() as u64 <= limit);
                    prop_assert_eq!(payload, &m.payload);
                }
                Incoming::Error(err) => {
                    prop_assert_eq!(err, &ProtocolError::MessageTooLarge);
                    // Over the limit inflated, or already on the wire.
                    let wire = if m.compressed {
                        client_compress(&mut Compress::new(Compression::default(), false), &m.payload).len()
                    } else {
                        m.payload.len()
                    };
                    prop_assert!(m.payload.len() as u64 > limit || wire as u64 > limit);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    #[test]
    fn corrupted_compressed_streams_end_in_a_defined_error(
        payload in payload_strategy(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        client_nct in any::<bool>(),
    ) {
        // RFC 7692 §7.2.2: whatever the bytes, a message, or 1007/1009/1002, never a panic.
        let a = agreement(true, client_nct, 15, 15);
        let m = Sent { kind: MessageKind::Binary, payload, compressed: true, cuts: vec![] };
        let mut z = client_compress(&mut Compress::new(Compression::default(), false), &m.payload);
        if !z.is_empty() {
            let i = at.index(z.len());
            z[i] ^= byte | 1;
        }
        let mut stream = Vec::new();
        frame(true, 4, OpCode::Binary, &z, &mut stream);
        let limits = Limits { max_frame_size: 1 << 20, max_message_size: 1 << 16 };
        let events = feed_split(&stream, &[], &a, limits);
        prop_assert_eq!(events.len(), 1);
        match &events[0] {
            Incoming::Message { payload, .. } => prop_assert!(payload.len() <= 1 << 16),
            Incoming::Error(e) => prop_assert!(
                matches!(e, ProtocolError::InvalidCompressedData | ProtocolError::MessageTooLarge),
                "{:?}", e
            ),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn our_compressed_messages_inflate_at_a_client_with_the_agreed_window(
        payloads in prop::collection::vec(payload_strategy(), 1..8),
        server_nct in any::<bool>(),
        server_bits in window(),
    ) {
        // RFC 7692 §7.1.2.1: the client inflates with a window of the agreed size.
        let mut d = MessageDeflater::new(&agreement(server_nct, true, server_bits, 15));
        let mut peer = Decompress::new_with_window_bits(false, server_bits.max(9));
        for p in &payloads {
            let mut out = Vec::new();
            match d.compress(p, &mut out) {
                Compressed::Yes => {
                    if server_nct {
                        peer = Decompress::new_with_window_bits(false, server_bits.max(9));
                    }
                    prop_assert_eq!(&client_inflate(&mut peer, &out), p);
                }
                Compressed::No => prop_assert!(out.is_empty()),
            }
        }
    }
}
