//! Property tests of the sans-I/O protocol layer: the reader against a client-side
//! encoder written here, header coding, and the incremental UTF-8 validator against std.

use proptest::prelude::*;
use wsqueue::protocol::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use wsqueue::protocol::mask::apply_mask;
use wsqueue::protocol::reader::MessageBuffers;
use wsqueue::protocol::utf8::Utf8Validator;
use wsqueue::protocol::{Incoming, Limits, MessageKind, Reader};

/// A control frame the client injects after a fragment (§5.4 allows it mid-message).
#[derive(Clone, Debug)]
struct Control {
    ping: bool,
    payload: Vec<u8>,
    key: [u8; 4],
}

/// A message as the client sends it.
#[derive(Clone, Debug)]
struct Sent {
    kind: MessageKind,
    payload: Vec<u8>,
    /// Cut points inside the payload where a new fragment starts (a text message may be
    /// cut inside a code point: §8.1 validates the whole message, not each fragment).
    cuts: Vec<usize>,
    /// A fresh masking key per fragment (§5.3: the key is per frame).
    keys: Vec<[u8; 4]>,
    /// `controls[i]`: a control frame sent right after fragment `i`.
    controls: Vec<Option<Control>>,
}

const MAX_FRAGMENTS: usize = 5;

/// Client-side frame encoder (§5.2, §5.3): header, then the payload masked with `key`.
fn client_frame(fin: bool, opcode: OpCode, key: [u8; 4], payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut h = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut h);
    out.extend_from_slice(&h[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
}

/// The payload pieces sent as fragments (one empty piece for an empty message).
fn pieces(m: &Sent) -> Vec<&[u8]> {
    let mut bounds = vec![0];
    bounds.extend(
        m.cuts
            .iter()
            .copied()
            .filter(|&c| c > 0 && c < m.payload.len()),
    );
    bounds.push(m.payload.len());
    bounds.dedup();
    if m.payload.is_empty() {
        vec![&[]]
    } else {
        bounds.windows(2).map(|w| &m.payload[w[0]..w[1]]).collect()
    }
}

fn encode(messages: &[Sent]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        let pieces = pieces(m);
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = match (i, m.kind) {
                (0, MessageKind::Text) => OpCode::Text,
                (0, MessageKind::Binary) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            client_frame(i + 1 == pieces.len(), opcode, m.keys[i], piece, &mut out);
            if let Some(c) = &m.controls[i] {
                let op = if c.ping { OpCode::Ping } else { OpCode::Pong };
                client_frame(true, op, c.key, &c.payload, &mut out);
            }
        }
    }
    out
}

/// What the reader must report for `messages`, in order.
fn expected(messages: &[Sent]) -> Vec<Incoming> {
    let mut out = Vec::new();
    for m in messages {
        let n = pieces(m).len();
        for (i, control) in m.controls.iter().take(n).enumerate() {
            if i + 1 == n {
                out.push(Incoming::Message {
                    kind: m.kind,
                    payload: m.payload.clone(),
                });
            }
            if let Some(c) = control {
                out.push(if c.ping {
                    Incoming::Ping(c.payload.clone())
                } else {
                    Incoming::Pong(c.payload.clone())
                });
            }
        }
    }
    out
}

/// Feeds `stream` split at `splits`, honouring the contract that unconsumed bytes are
/// presented again. Checks that only an incomplete header is ever kept back.
fn feed_split(stream: &[u8], splits: &[usize]) -> Vec<Incoming> {
    let mut reader = Reader::new(Limits::DEFAULT);
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
        assert!(n <= pending.len());
        pending.drain(..n);
        if reader.is_finished() {
            break;
        }
        assert!(
            pending.len() < MAX_HEADER_LEN,
            "only an incomplete header is kept back"
        );
    }
    events
}

/// What the engine's recycling does, less kindly: a new message gets the buffer of an
/// earlier one with its old bytes (scribbled over, so a leak shows) not even cleared.
#[derive(Default)]
struct Recycler {
    spares: Vec<Vec<u8>>,
}

impl MessageBuffers for Recycler {
    fn message_buffer(&mut self, len: usize) -> Vec<u8> {
        let mut buf = self.spares.pop().unwrap_or_else(|| vec![0xEE; 3]);
        buf.reserve(len);
        buf
    }
}

/// [`feed_split`] with message buffers from a [`Recycler`]: every delivered message's
/// payload is copied out, scribbled over and handed back for the next messages.
fn feed_split_recycling(stream: &[u8], splits: &[usize]) -> Vec<Incoming> {
    let mut reader = Reader::new(Limits::DEFAULT);
    let mut recycler = Recycler::default();
    let mut out = Vec::new();
    let mut pending = Vec::new();
    let mut last = 0;
    let mut points: Vec<usize> = splits.iter().map(|&s| s.min(stream.len())).collect();
    points.sort_unstable();
    points.push(stream.len());
    for p in points {
        pending.extend_from_slice(&stream[last..p]);
        last = p;
        let mut events = Vec::new();
        let n = reader.feed_with(&pending, &mut events, &mut recycler);
        pending.drain(..n);
        for event in events {
            if let Incoming::Message { kind, mut payload } = event {
                out.push(Incoming::Message {
                    kind,
                    payload: payload.clone(),
                });
                payload.fill(0xA5);
                recycler.spares.push(payload);
            } else {
                out.push(event);
            }
        }
        if reader.is_finished() {
            break;
        }
    }
    out
}

fn control_strategy() -> impl Strategy<Value = Option<Control>> {
    prop::option::weighted(
        0.3,
        (
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..=125),
            any::<[u8; 4]>(),
        )
            .prop_map(|(ping, payload, key)| Control { ping, payload, key }),
    )
}

/// Messages up to `max_binary` bytes (text up to 300 scalar values).
fn sent_strategy(max_binary: usize) -> impl Strategy<Value = Sent> {
    (
        prop_oneof![
            // Any Unicode scalar values: 1- to 4-byte sequences.
            "(?s).{0,300}".prop_map(|s| (MessageKind::Text, s.into_bytes())),
            prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| (MessageKind::Binary, b)),
            prop::collection::vec(any::<u8>(), 0..max_binary)
                .prop_map(|b| (MessageKind::Binary, b)),
        ],
        prop::collection::vec(any::<prop::sample::Index>(), 0..MAX_FRAGMENTS),
        prop::collection::vec(any::<[u8; 4]>(), MAX_FRAGMENTS),
        prop::collection::vec(control_strategy(), MAX_FRAGMENTS),
    )
        .prop_map(|((kind, payload), cuts, keys, controls)| {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
            cuts.sort_unstable();
            Sent {
                kind,
                payload,
                cuts,
                keys,
                controls,
            }
        })
}

/// A byte index of `bytes` and the byte to put there.
fn corruption() -> impl Strategy<Value = (prop::sample::Index, u8)> {
    (any::<prop::sample::Index>(), any::<u8>())
}

/// Index of the byte at which `bytes` stops being a prefix of valid UTF-8, if it does.
/// std reports `error_len() == None` only for a valid but cut-off prefix (the unit tests
/// of `utf8.rs` cross-check this against the UTF-8 table).
fn first_invalid_byte(bytes: &[u8]) -> Option<usize> {
    let e = std::str::from_utf8(bytes).err()?;
    e.error_len()?;
    (e.valid_up_to()..bytes.len()).find(|&i| {
        std::str::from_utf8(&bytes[..=i])
            .err()
            .is_some_and(|e| e.error_len().is_some())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn any_message_sequence_round_trips_whole_or_split_anywhere(
        messages in prop::collection::vec(sent_strategy(70_000), 1..6),
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        // §5.4 (fragments, interleaved control frames), §5.3 (masks), §8.1 (UTF-8).
        let stream = encode(&messages);
        let whole = feed_split(&stream, &[]);
        prop_assert_eq!(&whole, &expected(&messages));
        let cut_points: Vec<usize> = splits.iter().map(|i| i.index(stream.len() + 1)).collect();
        prop_assert_eq!(feed_split(&stream, &cut_points), whole);
    }

    #[test]
    fn recycled_message_buffers_show_no_old_bytes_whole_or_split_anywhere(
        messages in prop::collection::vec(sent_strategy(70_000), 1..6),
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        // Each message is assembled in the (scribbled) buffer of an earlier, larger or
        // smaller one: it must still be exactly its own bytes.
        let stream = encode(&messages);
        prop_assert_eq!(feed_split_recycling(&stream, &[]), expected(&messages));
        let cut_points: Vec<usize> = splits.iter().map(|i| i.index(stream.len() + 1)).collect();
        prop_assert_eq!(feed_split_recycling(&stream, &cut_points), expected(&messages));
    }

    #[test]
    fn byte_at_a_time_gives_the_same_events(messages in prop::collection::vec(sent_strategy(300), 1..4)) {
        let stream = encode(&messages);
        let every: Vec<usize> = (1..stream.len()).collect();
        prop_assert_eq!(feed_split(&stream, &every), expected(&messages));
    }

    #[test]
    fn a_corrupted_stream_gives_the_same_events_whole_or_split(
        messages in prop::collection::vec(sent_strategy(70_000), 1..4),
        corruptions in prop::collection::vec(corruption(), 1..3),
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        // Errors (and what precedes them) do not depend on how the bytes arrive.
        let mut stream = encode(&messages);
        for (at, byte) in corruptions {
            let i = at.index(stream.len());
            stream[i] = byte;
        }
        let whole = feed_split(&stream, &[]);
        let cut_points: Vec<usize> = splits.iter().map(|i| i.index(stream.len() + 1)).collect();
        prop_assert_eq!(feed_split(&stream, &cut_points), whole);
    }

    #[test]
    fn frame_headers_round_trip(
        fin in any::<bool>(), rsv in 0u8..8,
        op in prop::sample::select(vec![0u8, 1, 2, 8, 9, 0xA]),
        mask in prop::option::of(any::<[u8; 4]>()),
        len in prop_oneof![0u64..126, 126u64..65_536, 65_536u64..(1 << 63)],
    ) {
        // §5.2. Control frames only exist with FIN set and ≤ 125 bytes (§5.5).
        let opcode = OpCode::from_u8(op).unwrap();
        let (fin, len) = if opcode.is_control() { (true, len % 126) } else { (fin, len) };
        let h = FrameHeader { fin, rsv, opcode, mask, payload_len: len };
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut buf);
        prop_assert_eq!(n, h.encoded_len());
        prop_assert_eq!(FrameHeader::decode(&buf[..n]), Ok(Some((h, n))));
        for short in 0..n {
            prop_assert_eq!(FrameHeader::decode(&buf[..short]), Ok(None));
        }
    }

    #[test]
    fn incremental_utf8_agrees_with_std_split_anywhere(
        bytes in prop_oneof![
            "(?s).{0,64}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..64),
            // Long enough for simdutf8's SIMD blocks, with one byte replaced.
            ("(?s).{0,400}", corruption()).prop_map(|(s, (at, byte))| {
                let mut b = s.into_bytes();
                if !b.is_empty() {
                    let i = at.index(b.len());
                    b[i] = byte;
                }
                b
            }),
        ],
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        // §8.1: valid iff std says valid, and an error surfaces on exactly the chunk
        // holding the byte from which no continuation can make the input valid.
        let mut cuts: Vec<usize> = splits.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        let mut v = Utf8Validator::new();
        let mut last = 0;
        let mut failed_chunk = None;
        for c in cuts {
            if v.feed(&bytes[last..c]).is_err() {
                failed_chunk = Some(last..c);
                break;
            }
            last = c;
        }
        let ok = failed_chunk.is_none() && v.finish().is_ok();
        prop_assert_eq!(ok, std::str::from_utf8(&bytes).is_ok());
        match first_invalid_byte(&bytes) {
            Some(i) => prop_assert!(
                failed_chunk.as_ref().is_some_and(|r| r.contains(&i)),
                "byte {} is bad, failed on {:?}", i, failed_chunk
            ),
            // Valid, or valid but cut off: only `finish` may fail.
            None => prop_assert!(failed_chunk.is_none()),
        }
        // One byte per chunk: every code point is carried over, and the failing byte is
        // exactly the first one no continuation can rescue.
        let mut v = Utf8Validator::new();
        let failing_byte = (0..bytes.len()).find(|&i| v.feed(&bytes[i..=i]).is_err());
        prop_assert_eq!(failing_byte, first_invalid_byte(&bytes));
    }
}
