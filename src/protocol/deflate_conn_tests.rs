//! permessage-deflate through the whole connection (RFC 7692 §5-§7 on top of RFC 6455):
//! the negotiation in the 101, RSV1 rules, compressed and fragmented messages in, our
//! compressed messages out, limits, and broadcast sharing.

use flate2::{Compress, Compression, Decompress};

use super::deflate::tests::{client_compress, client_inflate};
use super::extensions::{DeflateMode, DeflatePolicy};
use super::reader::tests::raw_frame;
use super::server_connection::{
    BroadcastFrame, BroadcastFrames, ConnEvent, EncodedMessage, ServerConnection, Settings,
};
use super::{Limits, MessageKind, ProtocolError};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn upgrade(extensions: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
    )
    .into_bytes()
}

/// An open connection that negotiated `offer` under `mode`; returns it and the 101.
fn open_with(offer: &str, mode: DeflateMode, limits: Limits) -> (ServerConnection, String) {
    let settings = Settings {
        limits,
        deflate: DeflatePolicy {
            mode,
            window_bits: 15,
            min_size: 16,
            ..DeflatePolicy::DEFAULT
        },
        ..Settings::default()
    };
    let mut c = ServerConnection::new(settings);
    let mut ev = Vec::new();
    c.receive(&upgrade(offer), &mut ev);
    assert!(matches!(&ev[..], [ConnEvent::UpgradeRequest(_)]));
    c.accept(None, &[]).unwrap();
    let response = String::from_utf8(c.take_output().unwrap()).unwrap();
    (c, response)
}

fn open(mode: DeflateMode) -> ServerConnection {
    open_with(
        "permessage-deflate; client_max_window_bits",
        mode,
        Limits::DEFAULT,
    )
    .0
}

fn feed(c: &mut ServerConnection, bytes: &[u8]) -> Vec<ConnEvent> {
    let mut ev = Vec::new();
    c.receive(bytes, &mut ev);
    ev
}

fn client() -> Compress {
    Compress::new(Compression::default(), false)
}

fn message(kind: MessageKind, payload: &[u8]) -> ConnEvent {
    ConnEvent::Message {
        kind,
        payload: payload.to_vec(),
    }
}

fn json(n: usize) -> Vec<u8> {
    let unit = br#"{"user":"ada","text":"hello, world","ts":1712345678},"#;
    unit.iter().copied().cycle().take(n).collect()
}

/// The close code of the close frame the connection sends after a failure.
fn failure_code(c: &mut ServerConnection) -> u16 {
    c.release_barrier();
    let frame = c.take_close_frame().expect("a close frame");
    u16::from_be_bytes([frame[2], frame[3]])
}

#[test]
fn the_101_names_the_negotiated_extension() {
    // RFC 7692 §5: the response carries the accepted offer's parameters.
    let (c, r) = open_with(
        "permessage-deflate; client_max_window_bits",
        DeflateMode::Shared,
        Limits::DEFAULT,
    );
    assert!(r.contains("\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"), "{r}");
    assert!(c.deflate_negotiated());
    let (c, r) = open_with("permessage-deflate", DeflateMode::Off, Limits::DEFAULT);
    assert!(!r.contains("Sec-WebSocket-Extensions"), "{r}");
    assert!(!c.deflate_negotiated());
    let (_, r) = open_with(
        "permessage-deflate; foo",
        DeflateMode::Shared,
        Limits::DEFAULT,
    );
    assert!(
        !r.contains("Sec-WebSocket-Extensions"),
        "declined, not refused: {r}"
    );
}

#[test]
fn compressed_text_and_binary_messages_are_inflated() {
    // RFC 7692 §6.1 and §7.2.2.
    for mode in [DeflateMode::Shared, DeflateMode::Dedicated] {
        let mut c = open(mode);
        // A fresh client context per message: valid whether or not it was agreed.
        let mut wire = raw_frame(
            true,
            0b100,
            1,
            Some(KEY),
            &client_compress(&mut client(), b"Hello"),
        );
        wire.extend(raw_frame(
            true,
            0b100,
            2,
            Some(KEY),
            &client_compress(&mut client(), &json(5000)),
        ));
        // §6: an uncompressed message (RSV1 clear) is still allowed.
        wire.extend(raw_frame(true, 0, 1, Some(KEY), b"plain"));
        assert_eq!(
            feed(&mut c, &wire),
            vec![
                message(MessageKind::Text, b"Hello"),
                message(MessageKind::Binary, &json(5000)),
                message(MessageKind::Text, b"plain"),
            ]
        );
    }
}

#[test]
fn context_takeover_across_many_messages() {
    // RFC 7692 §7.1.1 / §7.2.3.1: with client context takeover (dedicated mode, not
    // refused), each message may refer back into earlier ones.
    let mut c = open(DeflateMode::Dedicated);
    let mut z = client();
    for i in 0..200 {
        let payload = json(100 + i * 37);
        let f = raw_frame(
            true,
            0b100,
            1,
            Some(KEY),
            &client_compress(&mut z, &payload),
        );
        assert_eq!(
            feed(&mut c, &f),
            vec![message(MessageKind::Text, &payload)],
            "{i}"
        );
    }
}

#[test]
fn fragmented_compressed_message_has_rsv1_on_the_first_frame_only() {
    // RFC 7692 §6.1: RSV1 on the first frame; the compressed bytes are split anyhow;
    // control frames in between are not compressed.
    for mode in [DeflateMode::Shared, DeflateMode::Dedicated] {
        let mut c = open(mode);
        let payload = json(20_000);
        let z = client_compress(&mut client(), &payload);
        let third = z.len() / 3;
        let mut wire = raw_frame(false, 0b100, 1, Some(KEY), &z[..third]);
        wire.extend(raw_frame(true, 0, 9, Some(KEY), b"ping"));
        wire.extend(raw_frame(false, 0, 0, Some(KEY), &z[third..2 * third]));
        wire.extend(raw_frame(true, 0, 0, Some(KEY), &z[2 * third..]));
        // Fed byte by byte, as a slow network would.
        let mut ev = Vec::new();
        for b in &wire {
            ev.extend(feed(&mut c, std::slice::from_ref(b)));
        }
        assert_eq!(
            ev,
            vec![
                ConnEvent::Ping(b"ping".to_vec()),
                message(MessageKind::Text, &payload)
            ]
        );
    }
}

#[test]
fn rsv1_on_a_continuation_or_control_frame_fails_with_1002() {
    // RFC 7692 §6.1: only the first frame of a data message may carry RSV1.
    let mut c = open(DeflateMode::Shared);
    let mut wire = raw_frame(
        false,
        0b100,
        1,
        Some(KEY),
        &client_compress(&mut client(), b"ab"),
    );
    wire.extend(raw_frame(true, 0b100, 0, Some(KEY), b""));
    let ev = feed(&mut c, &wire);
    assert!(ev.contains(&ConnEvent::ProtocolError(ProtocolError::ReservedBitsSet)));
    assert_eq!(failure_code(&mut c), 1002);
    for op in [8, 9, 0xA] {
        let mut c = open(DeflateMode::Shared);
        let ev = feed(&mut c, &raw_frame(true, 0b100, op, Some(KEY), b""));
        assert!(
            ev.contains(&ConnEvent::ProtocolError(ProtocolError::ReservedBitsSet)),
            "{op}"
        );
        assert_eq!(failure_code(&mut c), 1002);
    }
    // RSV2 and RSV3 stay reserved.
    let mut c = open(DeflateMode::Shared);
    let ev = feed(&mut c, &raw_frame(true, 0b010, 1, Some(KEY), b"x"));
    assert!(ev.contains(&ConnEvent::ProtocolError(ProtocolError::ReservedBitsSet)));
}

#[test]
fn rsv1_without_negotiation_fails_with_1002() {
    let (mut c, _) = open_with("x-other", DeflateMode::Shared, Limits::DEFAULT);
    let ev = feed(
        &mut c,
        &raw_frame(
            true,
            0b100,
            1,
            Some(KEY),
            &client_compress(&mut client(), b"hi"),
        ),
    );
    assert!(ev.contains(&ConnEvent::ProtocolError(ProtocolError::ReservedBitsSet)));
    assert_eq!(failure_code(&mut c), 1002);
}

#[test]
fn a_bomb_is_closed_with_1009_within_the_limit() {
    // RFC 7692 §8.1 / RFC 6455 §10.4: the inflated size counts against the limit.
    let limits = Limits {
        max_frame_size: 1 << 20,
        max_message_size: 1 << 20,
    };
    let bomb = client_compress(&mut client(), &vec![0u8; 8 << 20]);
    assert!(bomb.len() < 64 * 1024, "8 MiB of zeros is a small frame");
    for mode in [DeflateMode::Shared, DeflateMode::Dedicated] {
        let (mut c, _) = open_with("permessage-deflate", mode, limits);
        let ev = feed(&mut c, &raw_frame(true, 0b100, 2, Some(KEY), &bomb));
        assert_eq!(
            ev[0],
            ConnEvent::ProtocolError(ProtocolError::MessageTooLarge)
        );
        assert_eq!(failure_code(&mut c), 1009);
    }
    // Exactly the limit inflated is accepted.
    let (mut c, _) = open_with("permessage-deflate", DeflateMode::Shared, limits);
    let exact = client_compress(&mut client(), &vec![7u8; 1 << 20]);
    let ev = feed(&mut c, &raw_frame(true, 0b100, 2, Some(KEY), &exact));
    assert_eq!(ev, vec![message(MessageKind::Binary, &vec![7u8; 1 << 20])]);
}

#[test]
fn corrupt_data_fails_with_1007_and_invalid_utf8_after_inflating_too() {
    // RFC 7692 §7.2.2; RFC 6455 §8.1 on the inflated text.
    let mut c = open(DeflateMode::Shared);
    let ev = feed(
        &mut c,
        &raw_frame(true, 0b100, 2, Some(KEY), &[0xff, 0xff, 0xff]),
    );
    assert!(ev.contains(&ConnEvent::ProtocolError(
        ProtocolError::InvalidCompressedData
    )));
    assert_eq!(failure_code(&mut c), 1007);
    let mut c = open(DeflateMode::Dedicated);
    let z = client_compress(&mut client(), b"caf\xc3 broken \xff utf-8");
    let ev = feed(&mut c, &raw_frame(true, 0b100, 1, Some(KEY), &z));
    assert!(ev.contains(&ConnEvent::ProtocolError(ProtocolError::InvalidUtf8)));
    assert_eq!(failure_code(&mut c), 1007);
}

fn frame_bytes(e: &EncodedMessage, payload: &[u8]) -> Vec<u8> {
    let (h, b) = e.parts(payload);
    [h, b].concat()
}

/// Splits a server frame (single, unmasked) into (first byte, payload).
fn split_frame(f: &[u8]) -> (u8, &[u8]) {
    let (n, start) = match f[1] {
        126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
        127 => (
            u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    assert_eq!(f.len(), start + n, "one whole frame");
    (f[0], &f[start..])
}

#[test]
fn outgoing_messages_are_compressed_with_rsv1_and_inflate_at_the_client() {
    // RFC 7692 §6 / §7.2.1, with and without context takeover, many messages.
    for mode in [DeflateMode::Shared, DeflateMode::Dedicated] {
        let mut c = open(mode);
        let mut peer = Decompress::new(false);
        for i in 0..100 {
            let payload = json(200 + i * 101);
            let e = c.encode_message(MessageKind::Text, &payload).unwrap();
            let bytes = frame_bytes(&e, &payload);
            let (b0, body) = split_frame(&bytes);
            assert_eq!(b0, 0x80 | 0x40 | 1, "FIN, RSV1, text");
            assert_eq!(client_inflate(&mut peer, body), payload, "{mode:?} {i}");
        }
    }
}

#[test]
fn small_messages_and_control_frames_go_out_uncompressed() {
    // The minimum size (16 here); RFC 7692 §6.1: control frames are never compressed.
    let mut c = open(DeflateMode::Shared);
    let e = c.encode_message(MessageKind::Binary, b"short").unwrap();
    assert_eq!(frame_bytes(&e, b"short"), b"\x82\x05short");
    c.ping(&json(100)).unwrap();
    assert_eq!(c.take_output().unwrap()[0], 0x89);
    c.close(
        super::close::CloseCode::NORMAL,
        &String::from_utf8(json(100)).unwrap(),
    )
    .unwrap();
    assert_eq!(c.take_close_frame().unwrap()[0], 0x88);
}

#[test]
fn a_broadcast_is_compressed_once_for_shared_mode_recipients() {
    let payload = json(4096);
    let mut a = open(DeflateMode::Shared);
    let mut b = open(DeflateMode::Shared);
    let mut d = open(DeflateMode::Dedicated);
    let (mut plain, _) = open_with("x-none", DeflateMode::Shared, Limits::DEFAULT);
    let mut frames = BroadcastFrames::new(MessageKind::Text, &payload);
    let shared = |f: BroadcastFrame| match f {
        BroadcastFrame::Shared(f) => f,
        BroadcastFrame::Own(_) => panic!("expected a shared frame"),
    };
    let fa = shared(frames.frame_for(&mut a));
    let fb = shared(frames.frame_for(&mut b));
    assert!(std::sync::Arc::ptr_eq(&fa, &fb), "compressed once");
    assert!(fa.len() < payload.len() / 4);
    let fp = shared(frames.frame_for(&mut plain));
    assert_eq!(split_frame(&fp), (0x81, &payload[..]));
    // With context takeover each connection gets its own compression.
    match frames.frame_for(&mut d) {
        BroadcastFrame::Own(e) => {
            let bytes = frame_bytes(&e, &payload);
            let (b0, body) = split_frame(&bytes);
            assert_eq!(b0, 0xC1);
            assert_eq!(client_inflate(&mut Decompress::new(false), body), payload);
        }
        BroadcastFrame::Shared(_) => panic!("context takeover needs its own frame"),
    }
    let (b0, body) = split_frame(&fa);
    assert_eq!(b0, 0xC1);
    assert_eq!(client_inflate(&mut Decompress::new(false), body), payload);
}

#[test]
fn server_window_of_8_bits_sends_stored_blocks() {
    // §7.1.2.1 with zlib's raw deflate lacking 8-bit windows: stored blocks honour it.
    let (mut c, r) = open_with(
        "permessage-deflate; server_max_window_bits=8",
        DeflateMode::Shared,
        Limits::DEFAULT,
    );
    assert!(r.contains("server_max_window_bits=8"), "{r}");
    let payload = json(3000);
    let e = c.encode_message(MessageKind::Text, &payload).unwrap();
    let bytes = frame_bytes(&e, &payload);
    // Stored blocks do not shrink the message: it goes out plain (allowed by §6).
    assert_eq!(split_frame(&bytes), (0x81, &payload[..]));
    let (mut c, _) = open_with(
        "permessage-deflate; server_max_window_bits=8",
        DeflateMode::Dedicated,
        Limits::DEFAULT,
    );
    let mut peer = Decompress::new_with_window_bits(false, 9);
    for _ in 0..3 {
        let e = c.encode_message(MessageKind::Text, &payload).unwrap();
        let bytes = frame_bytes(&e, &payload);
        let (b0, body) = split_frame(&bytes);
        assert_eq!(b0, 0xC1);
        assert_eq!(client_inflate(&mut peer, body), payload);
    }
}

#[test]
fn the_small_reply_header_is_what_the_general_encoding_makes_and_only_without_deflate() {
    // Without permessage-deflate: every length up to 125, both kinds, the same header
    // as encode_message; from 126 on, the general way.
    let mut plain = ServerConnection::new_open(Settings::default());
    for len in 0..=125usize {
        for kind in [MessageKind::Text, MessageKind::Binary] {
            let payload = vec![b'a'; len];
            let header = plain
                .small_plain_header(kind, len)
                .expect("small and plain");
            let encoded = plain.encode_message(kind, &payload).unwrap();
            assert_eq!(
                encoded.parts(&payload),
                (&header[..], &payload[..]),
                "len {len}"
            );
        }
    }
    assert_eq!(plain.small_plain_header(MessageKind::Text, 126), None);
    // With it negotiated, never (the general encoding decides what to compress).
    let deflating = open(DeflateMode::Shared);
    assert!(deflating.deflate_negotiated());
    assert_eq!(deflating.small_plain_header(MessageKind::Text, 1), None);
    // Nothing after our close (§5.5.1).
    plain.close(super::close::CloseCode(1000), "").unwrap();
    assert_eq!(plain.small_plain_header(MessageKind::Text, 1), None);
    assert!(plain.encode_message(MessageKind::Text, b"x").is_err());
}
