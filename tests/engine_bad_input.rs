//! Bad input over real sockets: each case gets its defined outcome, and a healthy
//! client is served afterwards.

mod support;

use std::io::Write;
use std::time::Duration;

use support::*;
use wsqueue::{Config, EventKind, MessageKind, Server, SlowConsumerPolicy};

/// The server still opens and echoes for a well-behaved client.
fn still_serves(server: &Server) {
    let mut c = Client::connect(addr(server), "/healthy");
    let id = expect_open(server).conn;
    c.send_frame(true, 1, b"ping?");
    let e = expect_event(server, |e| {
        e.conn == id && matches!(e.kind, EventKind::Message { .. })
    });
    if let EventKind::Message { data, .. } = e.kind {
        server.send(id, MessageKind::Text, &data).unwrap();
    }
    assert_eq!(c.read_frame().unwrap().2, b"ping?");
}

#[test]
fn malformed_handshakes_get_their_http_status() {
    let server = start(Config::default());
    let a = addr(&server);
    let v = "Sec-WebSocket-Version: 13\r\n";
    let cases: Vec<(String, u16)> = vec![
        ("NOT HTTP AT ALL\r\n\r\n".into(), 400),
        (format!("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n{v}\r\n"), 400),
        (format!("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\n{v}\r\n"), 400),
        (format!("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{v}\r\n"), 400),
        (format!("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 8\r\n\r\n"), 426),
        (format!("POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n{v}\r\n"), 405),
        ("GET /page HTTP/1.1\r\nHost: x\r\n\r\n".into(), 404),
        (format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(9000)), 431),
        (format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-H: v\r\n".repeat(100)), 431),
    ];
    for (request, want) in cases {
        let (status, head) = raw_http(a, request.as_bytes());
        assert_eq!(
            status,
            want,
            "request {:?} got {head}",
            &request[..request.len().min(60)]
        );
        if want == 426 {
            assert!(
                head.contains("Sec-WebSocket-Version: 13\r\n"),
                "§4.4: {head}"
            );
        }
    }
    let stats = server.stats();
    assert_eq!(stats.rejected_bad_handshake, 8);
    assert_eq!(stats.http_requests, 1);
    still_serves(&server);
}

#[test]
fn disallowed_origin_is_refused_with_403() {
    let server = start(Config {
        allowed_origins: vec!["https://good.example".into()],
        ..Config::default()
    });
    let req = upgrade_request("/", "Origin: https://evil.example\r\n");
    assert_eq!(raw_http(addr(&server), req.as_bytes()).0, 403);
    let _ok = Client::connect_with(addr(&server), "/", "Origin: https://good.example\r\n");
    expect_open(&server);
}

/// Sends `bytes` on an open connection and returns (close code seen by the client,
/// close code in the server's event).
fn close_codes_for(server: &Server, bytes: &[u8]) -> (u16, u16) {
    let mut c = Client::connect(addr(server), "/");
    let id = expect_open(server).conn;
    c.send_raw(bytes);
    let client_code = c.read_close_code().expect("a close frame");
    assert!(
        c.at_eof(),
        "the server closes TCP after failing the connection"
    );
    drop(c); // the client hangs up too, ending the server's wait for its EOF
    let info = expect_close(server, id);
    assert!(!info.clean);
    (client_code, info.code)
}

#[test]
fn frame_level_violations_close_with_1002() {
    let server = start(Config::default());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked frame §5.1", frame(true, 0, 1, false, b"hi")),
        (
            "RSV1 without extension §5.2",
            frame(true, 4, 1, true, b"hi"),
        ),
        ("reserved opcode 3 §5.2", frame(true, 0, 3, true, b"")),
        (
            "reserved control opcode 0xB §5.2",
            frame(true, 0, 0xB, true, b""),
        ),
        (
            "ping over 125 bytes §5.5",
            frame(true, 0, 9, true, &[0; 126]),
        ),
        ("fragmented ping §5.5", frame(false, 0, 9, true, b"x")),
        (
            "continuation without start §5.4",
            frame(true, 0, 0, true, b"x"),
        ),
        ("1-byte close payload §5.5.1", frame(true, 0, 8, true, &[3])),
        (
            "close code 1005 on the wire §7.4.1",
            frame(true, 0, 8, true, &1005u16.to_be_bytes()),
        ),
        (
            "new message inside fragments §5.4",
            [
                frame(false, 0, 1, true, b"a"),
                frame(true, 0, 2, true, b"b"),
            ]
            .concat(),
        ),
    ];
    for (what, bytes) in cases {
        assert_eq!(close_codes_for(&server, &bytes), (1002, 1002), "{what}");
    }
    assert_eq!(server.stats().protocol_errors, 10);
    still_serves(&server);
}

#[test]
fn invalid_utf8_closes_with_1007_even_in_the_first_fragment() {
    let server = start(Config::default());
    assert_eq!(
        close_codes_for(&server, &frame(true, 0, 1, true, b"bad \xff")),
        (1007, 1007)
    );
    // §8.1 fail fast: the final fragment is never sent, yet the close arrives.
    assert_eq!(
        close_codes_for(&server, &frame(false, 0, 1, true, b"\xed\xa0\x80")),
        (1007, 1007)
    );
    assert_eq!(
        close_codes_for(&server, &frame(true, 0, 8, true, b"\x03\xe8\xff")),
        (1007, 1007)
    );
    still_serves(&server);
}

#[test]
fn code_point_split_across_fragments_is_accepted() {
    let server = start(Config::default());
    let mut c = Client::connect(addr(&server), "/");
    let id = expect_open(&server).conn;
    c.send_frame(false, 1, b"\xe2\x82");
    c.send_frame(true, 0, b"\xac");
    let e = expect_event(&server, |e| {
        e.conn == id && matches!(e.kind, EventKind::Message { .. })
    });
    assert!(
        matches!(e.kind, EventKind::Message { kind: MessageKind::Text, ref data } if data == "€".as_bytes())
    );
}

#[test]
fn oversize_message_closes_with_1009() {
    let server = start(Config {
        max_message_size: 1024,
        ..Config::default()
    });
    assert_eq!(
        close_codes_for(&server, &frame(true, 0, 2, true, &[0; 2000])),
        (1009, 1009)
    );
    let two = [
        frame(false, 0, 2, true, &[0; 600]),
        frame(true, 0, 0, true, &[0; 600]),
    ]
    .concat();
    assert_eq!(close_codes_for(&server, &two), (1009, 1009));
    assert_eq!(server.stats().too_big, 2);
    still_serves(&server);
}

#[test]
fn half_a_frame_then_disconnect_is_an_abnormal_close() {
    let server = start(Config::default());
    let mut c = Client::connect(addr(&server), "/");
    let id = expect_open(&server).conn;
    let f = frame(true, 0, 2, true, &[7; 1000]);
    c.send_raw(&f[..500]);
    drop(c);
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (1006, false));
    still_serves(&server);
}

#[test]
fn slowloris_handshake_is_dropped_at_the_deadline() {
    let server = start(Config {
        handshake_timeout: Some(Duration::from_millis(600)),
        ..Config::default()
    });
    let mut s = tcp(addr(&server));
    let request = upgrade_request("/", "");
    let mut dropped = false;
    for b in request.as_bytes() {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if server.stats().handshake_timeouts > 0 {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "a byte every 100 ms never completes within 600 ms");
    let (status, _) = read_head(&mut s);
    assert!(status == 408 || status == 0, "408 or EOF, got {status}");
    assert_eq!(server.stats().handshake_timeouts, 1);
    still_serves(&server);
}

#[test]
fn client_that_never_reads_hits_the_send_queue_limit() {
    let server = start(Config {
        send_queue_limit: 4 << 20,
        ..Config::default()
    });
    let _c = Client::connect(addr(&server), "/");
    let id = expect_open(&server).conn;
    let mb = vec![0u8; 1 << 20];
    let mut sent = 0;
    let err = loop {
        match server.send(id, MessageKind::Binary, &mb) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 1000, "the queue must fill");
    };
    assert!(matches!(err, wsqueue::Error::QueueFull), "{err}");
    assert!(server.stats().queue_full >= 1);
    still_serves(&server);
}

#[test]
fn slow_consumer_policy_close_drops_the_connection_with_1008() {
    let server = start(Config {
        send_queue_limit: 1 << 20,
        slow_consumer: SlowConsumerPolicy::Close,
        ..Config::default()
    });
    let _c = Client::connect(addr(&server), "/");
    let id = expect_open(&server).conn;
    let chunk = vec![0u8; 256 << 10];
    while server.send(id, MessageKind::Binary, &chunk).is_ok() {}
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (1008, false));
    assert!(
        info.unsent_messages > 0,
        "queued messages are reported, not lost silently"
    );
    assert_eq!(server.stats().slow_consumer_closes, 1);
}

#[test]
fn a_thousand_connections_dropped_abruptly_leak_nothing() {
    let server = start(Config::default());
    still_serves(&server); // warm up threads and buffers
    let fds_before = open_fds();
    let mut clients = Vec::new();
    for _ in 0..1000 {
        clients.push(Client::connect(addr(&server), "/"));
    }
    let mut opened = 0;
    while opened < 1000 {
        if let Some(e) = server.poll(Some(GUARD)) {
            opened += matches!(e.kind, EventKind::Open(_)) as usize;
        } else {
            panic!("opens stopped at {opened}");
        }
    }
    assert_eq!(server.stats().connections, 1000);
    drop(clients); // no close frames
    let mut closed = 0;
    while closed < 1000 {
        let e = server.poll(Some(GUARD)).expect("close events keep coming");
        if let EventKind::Close(info) = e.kind {
            assert_eq!(info.code, 1006);
            closed += 1;
        }
    }
    assert_eq!(server.stats().connections, 0);
    assert!(
        open_fds() <= fds_before + 2,
        "fds before {fds_before}, after {}",
        open_fds()
    );
    still_serves(&server);
}
