//! The life of a connection over real sockets: listening, opening, messages both ways,
//! closing from either side, ids, tags, broadcast, counters, the event fd, and a
//! graceful stop.

mod support;

use std::time::Duration;

use support::*;
use wsqueue::{Config, ConnId, Error, EventKind, MessageKind, Server};

#[test]
fn starts_on_ipv4_and_ipv6_port_zero_and_reports_the_bound_ports() {
    let server = Server::start(Config {
        listen: vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()],
        reactor_threads: 2,
        ..Config::default()
    })
    .expect("binds both loopbacks");
    let addrs = server.local_addrs().to_vec();
    assert_eq!(
        addrs.len(),
        2,
        "one bound address per listen entry, in order"
    );
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6());
    assert!(
        addrs.iter().all(|a| a.port() != 0),
        "port 0 resolved: {addrs:?}"
    );
    assert_eq!(server.port(), addrs[0].port());
    for a in addrs {
        let mut c = WsClient::connect(a);
        let (id, info) = expect_open(&server);
        assert_eq!(info.remote, Some(c.local_addr()), "listener {a}");
        echo_once(&server, &mut c, id, a.to_string().as_bytes());
    }
}

#[test]
fn open_event_carries_target_remote_headers_and_the_servers_preferred_subprotocol() {
    let server = start_server(Config {
        subprotocols: vec!["chat.v2".into(), "chat.v1".into()],
        ..Config::default()
    });
    // The client prefers v1, the server v2: §4.2.2 lets the server pick, and this
    // server picks by its own order.
    let c = WsClient::connect_to(
        addr(&server),
        "/rooms/7?user=ann&x=1",
        "Sec-WebSocket-Protocol: chat.v1, chat.v2, other\r\nX-Trace-Id: abc123\r\n",
    );
    let (_, info) = expect_open(&server);
    assert_eq!(info.target, "/rooms/7?user=ann&x=1");
    assert_eq!(info.path(), "/rooms/7");
    assert_eq!(info.query(), Some("user=ann&x=1"));
    assert_eq!(info.remote, Some(c.local_addr()));
    assert_eq!(
        info.header("x-trace-id"),
        Some("abc123"),
        "case-insensitive lookup"
    );
    assert_eq!(info.header("Host"), Some("127.0.0.1"));
    assert_eq!(info.offered_subprotocols, ["chat.v1", "chat.v2", "other"]);
    assert_eq!(info.subprotocol.as_deref(), Some("chat.v2"));
    assert!(
        c.response_head
            .contains("\r\nSec-WebSocket-Protocol: chat.v2\r\n"),
        "§4.2.2: the chosen subprotocol is echoed: {}",
        c.response_head
    );
}

#[test]
fn no_subprotocol_header_when_nothing_offered_is_supported() {
    let server = start_server(Config {
        subprotocols: vec!["chat.v2".into()],
        ..Config::default()
    });
    let c = WsClient::connect_to(addr(&server), "/", "Sec-WebSocket-Protocol: other\r\n");
    let (_, info) = expect_open(&server);
    assert_eq!(info.subprotocol, None);
    // §4.1: a client must fail a handshake naming a subprotocol it did not offer, so the
    // header must be absent rather than empty or guessed.
    assert!(
        !c.response_head
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol"),
        "{}",
        c.response_head
    );
}

#[test]
fn echoes_text_and_binary_at_every_length_encoding_boundary() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    // §5.2: 7-bit lengths up to 125, 16-bit from 126 to 65535, 64-bit beyond.
    for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
        let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let binary: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        for (opcode, kind, payload) in [
            (OP_TEXT, MessageKind::Text, text.as_bytes()),
            (OP_BINARY, MessageKind::Binary, binary.as_slice()),
        ] {
            c.send_frame(true, opcode, payload);
            let (got_kind, data) = expect_message(&server, id);
            assert_eq!(got_kind, kind, "len {len}");
            assert!(data == payload, "len {len}: payload arrives intact");
            server.send(id, kind, &data).unwrap();
            let f = c.read_frame();
            let want_field = match len {
                0..=125 => len as u8,
                126..=65535 => 126,
                _ => 127,
            };
            assert!(
                f.fin && f.rsv == 0 && f.opcode == opcode,
                "len {len}: {:?}",
                (f.fin, f.rsv, f.opcode)
            );
            assert_eq!(f.len_field, want_field, "len {len}: minimal length form");
            assert!(f.payload == payload, "len {len}: echo arrives intact");
        }
    }
    assert_eq!(server.stats().messages_in, 12);
}

#[test]
fn fragmented_message_is_reassembled_with_a_ping_between_fragments() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    c.send_frame(false, OP_TEXT, b"Hel");
    c.send_frame(false, OP_CONT, b"");
    // §5.4: control frames may be injected in the middle of a fragmented message.
    c.send_frame(true, OP_PING, b"mid");
    c.send_frame(false, OP_CONT, b"lo, ");
    c.send_frame(true, OP_CONT, "wörld".as_bytes());
    let pong = c.read_frame();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"mid"[..]),
        "§5.5.3"
    );
    assert_eq!(
        expect_message(&server, id),
        (MessageKind::Text, "Hello, wörld".as_bytes().to_vec())
    );
    let chunks: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + i as usize]).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { OP_BINARY } else { OP_CONT };
        c.send_frame(i == chunks.len() - 1, opcode, chunk);
    }
    assert_eq!(
        expect_message(&server, id),
        (MessageKind::Binary, chunks.concat())
    );
    assert_eq!(
        server.stats().messages_in,
        2,
        "one message per message, not per fragment"
    );
}

#[test]
fn client_initiated_close_is_echoed_and_reported_clean_with_code_and_reason() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    c.send_close(4001, "bye now");
    // §5.5.1: the answer echoes the status code.
    let (code, _) = c.read_close();
    assert_eq!(code, 4001);
    // §7.1.1: the server closes TCP first, without waiting for us.
    assert!(c.expect_eof().is_empty(), "nothing after the close frame");
    drop(c);
    let info = expect_close(&server, id);
    assert_eq!(
        (info.code, info.reason.as_str(), info.clean),
        (4001, "bye now", true)
    );
    assert_eq!(info.unsent_messages, 0);
    assert_eq!(server.stats().connections, 0);
}

#[test]
fn close_without_a_code_is_reported_as_1005() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    c.send_frame(true, OP_CLOSE, b"");
    // §5.5.1/§7.4.1: an empty close may be answered empty; 1005 stands for "no code".
    let (code, _) = c.read_close();
    assert!(
        code == 1005 || code == 1000,
        "answer to an empty close: {code}"
    );
    c.expect_eof();
    drop(c);
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (1005, true));
}

#[test]
fn server_initiated_close_sends_the_code_then_closes_tcp_first() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    server.close(id, 4002, "maintenance").unwrap();
    // §5.5.1: after sending a close frame, no more data frames.
    assert!(matches!(
        server.send(id, MessageKind::Text, b"late"),
        Err(Error::Closed)
    ));
    assert!(
        matches!(server.close(id, 1000, ""), Err(Error::Closed)),
        "one close frame only"
    );
    assert_eq!(c.read_close(), (4002, "maintenance".to_string()));
    c.send_close(4002, "");
    // §7.1.1: our side is still open, yet TCP ends: the server closed first.
    assert!(c.expect_eof().is_empty());
    drop(c);
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (4002, true));
    assert_eq!(server.stats().connections, 0);
}

#[test]
fn close_refuses_codes_and_reasons_not_allowed_on_the_wire() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    // §7.4.1: 1005/1006/1015 are never sent; §7.4.2: below 1000 is unused.
    for code in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        assert!(
            matches!(server.close(id, code, ""), Err(Error::InvalidArgument(_))),
            "code {code}"
        );
    }
    // §5.5: a control payload is at most 125 bytes, so a reason at most 123.
    assert!(matches!(
        server.close(id, 1000, &"r".repeat(124)),
        Err(Error::InvalidArgument(_))
    ));
    // Nothing was sent: the connection is still open and working.
    echo_once(&server, &mut c, id, b"open");
    server.close(id, 1000, &"r".repeat(123)).unwrap();
    assert_eq!(c.read_close(), (1000, "r".repeat(123)));
}

#[test]
fn connection_ids_are_never_reused_and_stale_ids_are_refused() {
    let server = start_server(Config::default());
    let mut seen: Vec<ConnId> = Vec::new();
    for round in 0..5 {
        let mut c = WsClient::connect(addr(&server));
        let (id, _) = expect_open(&server);
        assert!(!seen.contains(&id), "round {round}: id {id:?} reused");
        seen.push(id);
        c.send_close(1000, "");
        c.read_close();
        drop(c);
        expect_close(&server, id);
        // Gone: every call on the old id reports it, never reaches another connection.
        let stale = |r: Result<(), Error>| matches!(r, Err(Error::NotFound | Error::Closed));
        assert!(
            stale(server.send(id, MessageKind::Text, b"x").map(|_| ())),
            "send"
        );
        assert!(stale(server.ping(id, b"")), "ping");
        assert!(stale(server.close(id, 1000, "")), "close");
        assert!(
            matches!(server.set_tag(id, 1), Err(Error::NotFound)),
            "set_tag"
        );
        assert!(matches!(server.tag(id), Err(Error::NotFound)), "tag");
    }
    assert!(matches!(
        server.send(ConnId(u64::MAX), MessageKind::Text, b"x"),
        Err(Error::NotFound)
    ));
    // A second server in the same process does not restart the numbering.
    let other = start_server(Config::default());
    let _c = WsClient::connect(addr(&other));
    let (id, _) = expect_open(&other);
    assert!(!seen.contains(&id));
}

#[test]
fn user_tag_is_reported_on_every_later_event() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let e = expect_event(&server, |e| matches!(e.kind, EventKind::Open(_)), GUARD);
    assert_eq!(e.tag, 0, "tags start at 0");
    let id = e.conn;
    server.set_tag(id, 0xDEAD_BEEF).unwrap();
    assert_eq!(server.tag(id).unwrap(), 0xDEAD_BEEF);
    c.send_text("tagged");
    let m = expect_event(
        &server,
        |e| matches!(e.kind, EventKind::Message { .. }),
        GUARD,
    );
    assert_eq!((m.conn, m.tag), (id, 0xDEAD_BEEF));
    server.set_tag(id, 42).unwrap();
    c.send_close(1000, "");
    c.read_close();
    drop(c);
    let close = expect_event(&server, |e| matches!(e.kind, EventKind::Close(_)), GUARD);
    assert_eq!(
        (close.conn, close.tag),
        (id, 42),
        "the close event carries the latest tag"
    );
}

#[test]
fn broadcast_reaches_all_or_only_the_listed_connections() {
    let server = start_server(Config::default());
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        clients.push(WsClient::connect(addr(&server)));
        ids.push(expect_open(&server).0);
    }
    assert_eq!(
        server.broadcast(MessageKind::Text, b"all", None).unwrap(),
        5
    );
    // A stale id in the list is skipped, not an error.
    let subset = [ids[1], ids[3], ConnId(u64::MAX)];
    assert_eq!(
        server
            .broadcast(MessageKind::Binary, b"some", Some(&subset))
            .unwrap(),
        2
    );
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.read_message(), (OP_TEXT, b"all".to_vec()), "client {i}");
        if i == 1 || i == 3 {
            assert_eq!(
                c.read_message(),
                (OP_BINARY, b"some".to_vec()),
                "client {i}"
            );
        }
    }
    // The others got nothing more: the next thing they see is our own marker.
    for (i, c) in clients.iter_mut().enumerate() {
        server.send(ids[i], MessageKind::Text, b"end").unwrap();
        assert_eq!(c.read_message(), (OP_TEXT, b"end".to_vec()), "client {i}");
    }
}

#[test]
fn stats_count_handshakes_messages_and_connections() {
    let server = start_server(Config::default());
    let before = server.stats();
    assert_eq!(
        (before.connections, before.handshakes, before.messages_in),
        (0, 0, 0)
    );
    let mut a = WsClient::connect(addr(&server));
    let (ida, _) = expect_open(&server);
    let mut b = WsClient::connect(addr(&server));
    let (idb, _) = expect_open(&server);
    a.send_text("1");
    a.send_text("2");
    b.send_binary(b"3");
    expect_message(&server, ida);
    expect_message(&server, ida);
    expect_message(&server, idb);
    server.send(ida, MessageKind::Text, b"out").unwrap();
    a.read_message();
    let mid = server.stats();
    assert_eq!(mid.connections, 2);
    assert_eq!(mid.handshakes, 2);
    assert_eq!(mid.tcp_accepted, 2);
    assert_eq!(mid.messages_in, 3);
    assert!(mid.bytes_in > 0 && mid.bytes_out > 0);
    for (mut c, id) in [(a, ida), (b, idb)] {
        c.send_close(1000, "");
        c.read_close();
        drop(c);
        expect_close(&server, id);
    }
    let after = server.stats();
    assert_eq!(after.connections, 0, "back to zero once both closed");
    assert_eq!(after.handshakes, 2, "a running total");
    assert_eq!(after.send_queue_bytes, 0);
    assert_eq!(after.event_queue_depth, 0);
}

#[test]
fn stats_messages_out_counts_data_messages_like_messages_in() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    c.send_frame(true, OP_PING, b"p");
    assert_eq!(c.read_frame().opcode, OP_PONG);
    c.send_text("in");
    expect_message(&server, id);
    server.send(id, MessageKind::Text, b"out 1").unwrap();
    server.send(id, MessageKind::Binary, b"out 2").unwrap();
    c.read_message();
    c.read_message();
    let s = server.stats();
    // messages_in counts data messages only (not the handshake, not the ping); its
    // outbound twin should count the same way: two messages were sent.
    assert_eq!(s.messages_in, 1);
    assert_eq!(
        s.messages_out, 2,
        "the 101 response and the pong are not messages: {s:?}"
    );
}

#[test]
fn event_fd_is_readable_exactly_while_events_wait() {
    let server = start_server(Config::default());
    let fd = server.event_fd();
    assert!(!fd_readable(fd, Duration::ZERO), "nothing has happened yet");
    let mut c = WsClient::connect(addr(&server));
    // An outside event loop would block here; the open event must wake it.
    assert!(
        fd_readable(fd, GUARD),
        "the open event makes the fd readable"
    );
    let events = drain_events(&server);
    assert!(
        matches!(events.as_slice(), [e] if matches!(e.kind, EventKind::Open(_))),
        "{events:?}"
    );
    assert!(!fd_readable(fd, Duration::ZERO), "drained: not readable");
    // Both frames in one write, and wait until both are queued, so the check below
    // does not race the reactor.
    c.send_raw(&[masked(true, OP_TEXT, b"a"), masked(true, OP_TEXT, b"b")].concat());
    assert!(fd_readable(fd, GUARD));
    let deadline = std::time::Instant::now() + GUARD;
    while server.stats().event_queue_depth < 2 {
        assert!(std::time::Instant::now() < deadline, "both messages queued");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.poll_batch(1, Some(Duration::ZERO)).len(), 1);
    assert!(fd_readable(fd, Duration::ZERO), "one event still waits");
    assert_eq!(server.poll_batch(8, Some(Duration::ZERO)).len(), 1);
    assert!(!fd_readable(fd, Duration::ZERO), "drained again");
}

#[test]
fn graceful_stop_delivers_queued_messages_before_1001_and_drops_silent_peers() {
    // The close timeout is longer than the stop timeout, so only `stop`'s own deadline
    // can be what drops the silent client.
    let server = start_server(Config {
        close_timeout: Duration::from_secs(30),
        ..Config::default()
    });
    let mut reader = WsClient::connect(addr(&server));
    let (reader_id, _) = expect_open(&server);
    let silent = WsClient::connect(addr(&server)); // never reads, never answers
    let (silent_id, _) = expect_open(&server);
    const N: u32 = 200;
    for i in 0..N {
        server
            .send(reader_id, MessageKind::Binary, &i.to_be_bytes())
            .unwrap();
    }
    let reading = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let f = reader.read_frame();
            if f.opcode == OP_CLOSE {
                let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                reader.send_close(code, "");
                let tail = reader.expect_eof();
                return (got, code, tail);
            }
            got.push(u32::from_be_bytes(f.payload[..4].try_into().unwrap()));
        }
    });
    server.stop(Duration::from_secs(2));
    assert!(matches!(
        server.send(reader_id, MessageKind::Text, b"late"),
        Err(Error::Stopped)
    ));
    assert!(matches!(
        server.broadcast(MessageKind::Text, b"late", None),
        Err(Error::Stopped)
    ));
    let (got, code, tail) = reading.join().unwrap();
    // §7.1.2/§7.4.1: everything sent before stop arrives, in order, then 1001.
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert_eq!(code, 1001);
    assert!(tail.is_empty());
    assert_eq!(
        server.stats().connections,
        0,
        "the silent client was dropped by the deadline"
    );
    let events = drain_events(&server);
    let close_of = |id: ConnId| {
        events.iter().find_map(|e| match &e.kind {
            EventKind::Close(info) if e.conn == id => Some(info.clone()),
            _ => None,
        })
    };
    let r = close_of(reader_id).expect("the reader's close event is still pollable");
    assert_eq!((r.code, r.clean), (1001, true));
    let s = close_of(silent_id).expect("the silent client's close event");
    assert!(!s.clean, "the closing handshake never completed: {s:?}");
    drop(silent);
}

#[test]
fn stop_refuses_new_connections_and_is_idempotent() {
    let server = start_server(Config::default());
    let a = addr(&server);
    server.stop(Duration::from_secs(1));
    server.stop(Duration::from_secs(1));
    // The listening socket may outlive the reactors (the kernel still completes TCP
    // handshakes into its backlog), but no upgrade may be answered with 101.
    if let Ok(mut s) = std::net::TcpStream::connect(a) {
        use std::io::Write;
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let _ = s.write_all(upgrade_request("/", "").as_bytes());
        let (status, head) = read_head(&mut s);
        assert_ne!(status, 101, "{head}");
    }
    assert!(matches!(server.ping(ConnId(1), b""), Err(Error::Stopped)));
    assert!(server.poll(Some(Duration::from_millis(100))).is_none());
}

#[test]
fn stop_reports_a_peer_that_answered_the_close_as_clean_even_if_it_keeps_tcp_open() {
    let server = start_server(Config {
        close_timeout: Duration::from_secs(30),
        ..Config::default()
    });
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    let answering = std::thread::spawn(move || {
        assert_eq!(c.read_close().0, 1001);
        c.send_close(1001, "ok, going");
        // Reads the server's EOF but keeps its own side open until stop's deadline.
        c.expect_eof();
        c
    });
    server.stop(Duration::from_millis(500));
    let c = answering.join().unwrap();
    // §7.1.4: both close frames were exchanged and the server then closed TCP; the
    // peer's code and reason are known, so the event should say so (as it does when
    // `close_timeout` rather than `stop` ends the wait).
    let info = expect_close(&server, id);
    assert_eq!(
        (info.code, info.reason.as_str(), info.clean),
        (1001, "ok, going", true)
    );
    drop(c);
}
