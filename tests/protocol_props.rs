//! Property tests of the sans-I/O protocol layer.

use proptest::prelude::*;
use wsqueue::protocol::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use wsqueue::protocol::mask::apply_mask;
use wsqueue::protocol::utf8::Utf8Validator;
use wsqueue::protocol::{Incoming, Limits, MessageKind, Reader};

/// A message as the client sends it: kind, payload, fragment sizes, masks.
#[derive(Clone, Debug)]
struct Sent {
    kind: MessageKind,
    payload: Vec<u8>,
    /// Cut points inside the payload (sorted) where a new fragment starts.
    cuts: Vec<usize>,
    key: [u8; 4],
    /// A ping injected after the first fragment (§5.4 allows it).
    ping: Option<Vec<u8>>,
}

fn client_frame(fin: bool, opcode: u8, key: [u8; 4], payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader {
        fin,
        rsv: 0,
        opcode: OpCode::from_u8(opcode).unwrap(),
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

/// The payload pieces sent as fragments.
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
            let opcode = if i > 0 {
                0
            } else if m.kind == MessageKind::Text {
                1
            } else {
                2
            };
            client_frame(i + 1 == pieces.len(), opcode, m.key, piece, &mut out);
            if i == 0 {
                if let Some(p) = &m.ping {
                    client_frame(true, 9, m.key, p, &mut out);
                }
            }
        }
    }
    out
}

/// Feeds `stream` split at `splits`, honouring the contract that unconsumed bytes are
/// presented again.
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
        pending.drain(..n);
        assert!(
            pending.len() < MAX_HEADER_LEN,
            "only an incomplete header is kept back"
        );
    }
    assert!(pending.is_empty());
    events
}

fn sent_strategy() -> impl Strategy<Value = Sent> {
    (
        any::<bool>(),
        prop_oneof![
            ".{0,300}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..70_000),
        ],
        prop::collection::vec(0usize..70_000, 0..4),
        any::<[u8; 4]>(),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..125)),
    )
        .prop_map(|(text, payload, mut cuts, key, ping)| {
            cuts.sort_unstable();
            let kind = if text && std::str::from_utf8(&payload).is_ok() {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            Sent {
                kind,
                payload,
                cuts,
                key,
                ping,
            }
        })
}

fn expected(messages: &[Sent]) -> Vec<Incoming> {
    let mut out = Vec::new();
    for m in messages {
        // The ping follows the first fragment: before the message if it has more.
        let message = Incoming::Message {
            kind: m.kind,
            payload: m.payload.clone(),
        };
        match &m.ping {
            Some(p) if pieces(m).len() > 1 => out.extend([Incoming::Ping(p.clone()), message]),
            Some(p) => out.extend([message, Incoming::Ping(p.clone())]),
            None => out.push(message),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn any_message_sequence_round_trips_whole_or_split_anywhere(
        messages in prop::collection::vec(sent_strategy(), 1..5),
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let stream = encode(&messages);
        let whole = feed_split(&stream, &[]);
        prop_assert_eq!(&whole, &expected(&messages));
        let cut_points: Vec<usize> = splits.iter().map(|i| i.index(stream.len() + 1)).collect();
        prop_assert_eq!(feed_split(&stream, &cut_points), whole);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_events(messages in prop::collection::vec(sent_strategy(), 1..3)) {
        let stream = encode(&messages);
        prop_assume!(stream.len() < 5_000);
        let every: Vec<usize> = (1..stream.len()).collect();
        prop_assert_eq!(feed_split(&stream, &every), expected(&messages));
    }

    #[test]
    fn frame_headers_round_trip(
        fin in any::<bool>(), rsv in 0u8..8, op in prop::sample::select(vec![0u8, 1, 2]),
        mask in prop::option::of(any::<[u8; 4]>()), len in prop_oneof![0u64..126, 126u64..65_536, 65_536u64..(1 << 63)],
    ) {
        let h = FrameHeader { fin, rsv, opcode: OpCode::from_u8(op).unwrap(), mask, payload_len: len };
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
            ".{0,64}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..64),
            ".{0,32}".prop_map(|s| { let mut b = s.into_bytes(); if !b.is_empty() { let i = b.len() / 2; b[i] ^= 0x80; } b }),
        ],
        splits in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let std_result = std::str::from_utf8(&bytes);
        let mut cuts: Vec<usize> = splits.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        let mut v = Utf8Validator::new();
        let mut last = 0;
        let mut failed_at = None;
        for c in cuts {
            if v.feed(&bytes[last..c]).is_err() {
                failed_at = Some(c);
                break;
            }
            last = c;
        }
        let ok = failed_at.is_none() && v.finish().is_ok();
        prop_assert_eq!(ok, std_result.is_ok());
        if let (Err(e), Some(end)) = (std_result, failed_at) {
            // Fail fast: no later than the chunk containing the first bad byte.
            prop_assert!(end >= e.valid_up_to());
            if let Some(len) = e.error_len() {
                prop_assert!(end > e.valid_up_to() && last <= e.valid_up_to() + len);
            }
        }
        if let Err(e) = std_result {
            if e.error_len().is_some() {
                prop_assert!(failed_at.is_some(), "an invalid sequence fails during feed, not at finish");
            }
        }
    }
}
