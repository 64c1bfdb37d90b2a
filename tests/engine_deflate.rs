//! permessage-deflate (RFC 7692) over real sockets: negotiation in the 101, compressed
//! messages both ways in both memory modes, broadcasts to mixed recipients, and the
//! decompression bomb closed with 1009.

mod support;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use support::*;
use wsqueue::{Config, DeflateMode, MessageKind};

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// What a client's compressor does (RFC 7692 §7.2.1): sync flush, tail removed.
fn compress(c: &mut Compress, data: &[u8]) -> Vec<u8> {
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
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// What a client's inflater does (RFC 7692 §7.2.2): the tail appended back.
fn inflate(d: &mut Decompress, data: &[u8]) -> Vec<u8> {
    let input = [data, &[0, 0, 0xff, 0xff]].concat();
    let mut out = Vec::with_capacity(data.len() * 8 + 1024);
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

fn json(n: usize) -> Vec<u8> {
    let unit = br#"{"id":42,"user":"grace","text":"compress me, please","tags":["a","b"]},"#;
    unit.iter().copied().cycle().take(n).collect()
}

fn server(mode: DeflateMode) -> wsqueue::Server {
    start_server(Config {
        deflate: mode,
        ..Config::default()
    })
}

fn compressed_frame(opcode: u8, body: &[u8]) -> Vec<u8> {
    frame_bytes(true, 0b100, opcode, Some([1, 2, 3, 4]), body)
}

#[test]
fn shared_mode_negotiates_and_compresses_both_ways() {
    let server = server(DeflateMode::Shared);
    let mut c = WsClient::connect_to(addr(&server), "/", OFFER);
    assert!(
        c.response_head.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        ),
        "{}",
        c.response_head
    );
    let (conn, _) = expect_open(&server);
    // In: a compressed text message (a fresh context per message, as agreed).
    let payload = json(10_000);
    let body = compress(&mut Compress::new(Compression::default(), false), &payload);
    c.send_raw(&compressed_frame(OP_TEXT, &body));
    assert_eq!(
        expect_message(&server, conn),
        (MessageKind::Text, payload.clone())
    );
    // Out: compressed above the minimum size, plain below it.
    server.send(conn, MessageKind::Text, &payload).unwrap();
    let f = c.read_frame();
    assert_eq!((f.fin, f.rsv, f.opcode), (true, 0b100, OP_TEXT));
    assert!(f.payload.len() < payload.len() / 10);
    assert_eq!(inflate(&mut Decompress::new(false), &f.payload), payload);
    server.send(conn, MessageKind::Binary, b"tiny").unwrap();
    let f = c.read_frame();
    assert_eq!(
        (f.rsv, f.opcode, &f.payload[..]),
        (0, OP_BINARY, &b"tiny"[..])
    );
}

#[test]
fn dedicated_mode_keeps_context_across_many_messages() {
    // RFC 7692 §7.1.1: context takeover in both directions.
    let server = server(DeflateMode::Dedicated);
    let mut c = WsClient::connect_to(addr(&server), "/", OFFER);
    assert!(c
        .response_head
        .contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"));
    let (conn, _) = expect_open(&server);
    let (mut z, mut d) = (
        Compress::new(Compression::default(), false),
        Decompress::new(false),
    );
    let mut sizes = Vec::new();
    for i in 0..60 {
        let payload = json(500 + i * 13);
        c.send_raw(&compressed_frame(OP_BINARY, &compress(&mut z, &payload)));
        assert_eq!(
            expect_message(&server, conn),
            (MessageKind::Binary, payload.clone())
        );
        server.send(conn, MessageKind::Binary, &payload).unwrap();
        let f = c.read_frame();
        assert_eq!(f.rsv, 0b100);
        assert_eq!(inflate(&mut d, &f.payload), payload, "message {i}");
        sizes.push(f.payload.len());
    }
    // Later messages refer back into earlier ones: far smaller than the first.
    assert!(sizes[59] * 3 < sizes[0], "{sizes:?}");
}

#[test]
fn broadcast_reaches_compressed_and_plain_recipients() {
    let server = server(DeflateMode::Shared);
    let mut with = Vec::new();
    for _ in 0..3 {
        with.push(WsClient::connect_to(addr(&server), "/", OFFER));
        expect_open(&server);
    }
    let mut plain = WsClient::connect(addr(&server));
    expect_open(&server);
    let payload = json(64 * 1024);
    assert_eq!(
        server.broadcast(MessageKind::Text, &payload, None).unwrap(),
        4
    );
    for c in &mut with {
        let f = c.read_frame();
        assert_eq!(f.rsv, 0b100);
        assert_eq!(inflate(&mut Decompress::new(false), &f.payload), payload);
    }
    let (op, data) = plain.read_message();
    assert_eq!((op, data), (OP_TEXT, payload));
}

#[test]
fn a_decompression_bomb_is_closed_with_1009() {
    // 16 MiB of zeros in about 16 KiB, against a 1 MiB message limit.
    let server = start_server(Config {
        max_message_size: 1 << 20,
        ..Config::default()
    });
    let mut c = WsClient::connect_to(addr(&server), "/", OFFER);
    let (conn, _) = expect_open(&server);
    let bomb = compress(
        &mut Compress::new(Compression::best(), false),
        &vec![0u8; 16 << 20],
    );
    assert!(bomb.len() < 64 * 1024);
    c.send_raw(&compressed_frame(OP_BINARY, &bomb));
    assert_eq!(c.read_close().0, 1009);
    assert_eq!(expect_close(&server, conn).code, 1009);
    assert_eq!(server.stats().too_big, 1);
}

#[test]
fn off_declines_and_rsv1_then_fails_with_1002() {
    let server = server(DeflateMode::Off);
    let mut c = WsClient::connect_to(addr(&server), "/", OFFER);
    assert!(!c.response_head.contains("Sec-WebSocket-Extensions"));
    let (conn, _) = expect_open(&server);
    let body = compress(&mut Compress::new(Compression::default(), false), b"hi");
    c.send_raw(&compressed_frame(OP_TEXT, &body));
    assert_eq!(c.read_close().0, 1002);
    assert_eq!(expect_close(&server, conn).code, 1002);
}

/// Handler mode takes whole small plain frames straight from the read (the direct
/// lane) on a connection that negotiated compression too: the compressed messages
/// between them still go the general way, in order, and the lane leaves both
/// compression contexts (context takeover, both ways) as they were.
#[test]
fn handler_mode_takes_small_plain_frames_straight_and_keeps_the_compression_contexts() {
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        deflate: DeflateMode::Dedicated,
        ..Config::default()
    };
    let server = wsqueue::Server::start_with_handler(config, |server, event| {
        if let wsqueue::EventKind::Message { kind, data } = &event.kind {
            server.send(event.conn, *kind, data).expect("echo accepted");
        }
    })
    .expect("server starts");
    let mut c = WsClient::connect_to(server.local_addrs()[0], "/", OFFER);
    assert!(
        c.response_head.contains("permessage-deflate"),
        "{}",
        c.response_head
    );
    let mut ours = Compress::new(Compression::default(), false);
    let mut theirs = Decompress::new(false);
    let big = json(2_000);
    let mut expected: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut bytes = Vec::new();
    for (op, payload, compressed) in [
        (OP_TEXT, b"small one".to_vec(), false),
        (OP_TEXT, big.clone(), true),
        (OP_BINARY, b"small two".to_vec(), false),
    ] {
        if compressed {
            let body = compress(&mut ours, &payload);
            assert!(
                body.len() <= 125,
                "a small compressed frame: {}",
                body.len()
            );
            bytes.extend(compressed_frame(op, &body));
        } else {
            bytes.extend(masked(true, op, &payload));
        }
        expected.push((op, payload));
    }
    c.send_raw(&bytes);
    // A second read: a small plain frame first (the lane's), then a compressed one
    // that needs the context of the first.
    let mut bytes = masked(true, OP_BINARY, b"small three");
    expected.push((OP_BINARY, b"small three".to_vec()));
    bytes.extend(compressed_frame(OP_TEXT, &compress(&mut ours, &big)));
    expected.push((OP_TEXT, big.clone()));
    c.send_raw(&bytes);
    for (op, payload) in &expected {
        let f = c.read_frame();
        let got = if f.rsv == 0b100 {
            inflate(&mut theirs, &f.payload)
        } else {
            f.payload
        };
        assert_eq!((f.opcode, &got), (*op, payload));
    }
    server.stop(std::time::Duration::from_secs(1));
}
