//! Engine features over real sockets: listeners, events, timers, limits, backpressure,
//! the HTTP fallback and graceful shutdown.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::*;
use wsqueue::{Config, ConnId, EventKind, MessageKind, Server};

#[test]
fn listens_on_ipv6_and_ipv4_with_port_zero() {
    let server = Server::start(Config {
        listen: vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()],
        ..Config::default()
    })
    .unwrap();
    let addrs = server.local_addrs().to_vec();
    assert!(addrs.iter().all(|a| a.port() != 0));
    assert!(addrs[1].is_ipv6());
    for a in addrs {
        let _c = Client::connect(a, "/");
        let e = expect_open(&server);
        let EventKind::Open(info) = e.kind else {
            unreachable!()
        };
        assert_eq!(info.remote.unwrap().is_ipv6(), a.is_ipv6());
    }
}

#[test]
fn open_event_reports_request_and_tags_follow_the_connection() {
    let server = start(Config {
        subprotocols: vec!["b".into(), "a".into()],
        ..Config::default()
    });
    let mut c = Client::connect_with(
        addr(&server),
        "/p/q?x=1",
        "Sec-WebSocket-Protocol: a, b\r\nX-Id: 9\r\n",
    );
    let e = expect_open(&server);
    let EventKind::Open(info) = &e.kind else {
        unreachable!()
    };
    assert_eq!((info.path(), info.query()), ("/p/q", Some("x=1")));
    assert_eq!(
        info.subprotocol.as_deref(),
        Some("b"),
        "server preference order"
    );
    assert_eq!(info.header("x-id"), Some("9"));
    server.set_tag(e.conn, 77).unwrap();
    assert_eq!(server.tag(e.conn).unwrap(), 77);
    c.send_frame(true, 2, b"tagged");
    let m = expect_event(&server, |x| {
        x.conn == e.conn && matches!(x.kind, EventKind::Message { .. })
    });
    assert_eq!(m.tag, 77);
    let s = server.stats();
    assert_eq!((s.connections, s.handshakes, s.messages_in), (1, 1, 1));
}

#[test]
fn echo_of_every_length_class() {
    let server = start(Config::default());
    let mut c = Client::connect(addr(&server), "/");
    let id = expect_open(&server).conn;
    for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        c.send_frame(true, 2, &payload);
        let e = expect_event(&server, |e| matches!(e.kind, EventKind::Message { .. }));
        let EventKind::Message { data, .. } = e.kind else {
            unreachable!()
        };
        assert_eq!(data.len(), len);
        server.send(id, MessageKind::Binary, &data).unwrap();
        let (fin, op, back) = c.read_frame().unwrap();
        assert!(fin && op == 2 && back == payload, "len {len}");
    }
}

#[test]
fn manual_accept_can_override_the_subprotocol_and_times_out_unanswered() {
    let server = start(Config {
        manual_accept: true,
        subprotocols: vec!["x".into()],
        handshake_timeout: Some(Duration::from_millis(500)),
        ..Config::default()
    });
    let mut s = tcp(addr(&server));
    s.write_all(upgrade_request("/", "Sec-WebSocket-Protocol: x, y\r\n").as_bytes())
        .unwrap();
    let e = expect_event(&server, |e| matches!(e.kind, EventKind::UpgradeRequest(_)));
    assert!(
        server.accept(e.conn, Some("z"), &[]).is_err(),
        "z was not offered"
    );
    server
        .accept(e.conn, Some("y"), &[("X-A".into(), "1".into())])
        .unwrap();
    let (status, head) = read_head(&mut s);
    assert_eq!(status, 101);
    assert!(head.contains("Sec-WebSocket-Protocol: y\r\n") && head.contains("X-A: 1\r\n"));
    expect_event(&server, |x| {
        x.conn == e.conn && matches!(x.kind, EventKind::Open(_))
    });
    // Never answered: the handshake deadline applies while awaiting accept.
    let mut s2 = tcp(addr(&server));
    s2.write_all(upgrade_request("/", "").as_bytes()).unwrap();
    let e2 = expect_event(&server, |e| matches!(e.kind, EventKind::UpgradeRequest(_)));
    let info = expect_close(&server, e2.conn);
    assert!(!info.clean);
    assert!(server.stats().handshake_timeouts >= 1);
}

#[test]
fn connections_over_the_limit_get_503() {
    let server = start(Config {
        max_connections: 2,
        ..Config::default()
    });
    let _a = Client::connect(addr(&server), "/");
    let _b = Client::connect(addr(&server), "/");
    let (status, _) = raw_http(addr(&server), upgrade_request("/", "").as_bytes());
    assert_eq!(status, 503);
    assert_eq!(server.stats().rejected_over_capacity, 1);
}

#[test]
fn idle_connections_are_closed_with_1001() {
    let server = start(Config {
        idle_timeout: Some(Duration::from_millis(500)),
        ..Config::default()
    });
    let mut c = Client::connect(addr(&server), "/");
    let id = expect_open(&server).conn;
    assert_eq!(c.read_close_code(), Some(1001));
    c.send_frame(true, 8, &1001u16.to_be_bytes());
    let info = expect_close(&server, id);
    assert_eq!(info.code, 1001);
    assert_eq!(server.stats().idle_timeouts, 1);
}

#[test]
fn keepalive_pings_keep_live_peers_and_drop_dead_ones() {
    let server = start(Config {
        ping_interval: Some(Duration::from_millis(300)),
        pong_timeout: Duration::from_millis(300),
        ..Config::default()
    });
    // A live peer answers each ping with a pong.
    let mut live = Client::connect(addr(&server), "/live");
    let live_id = expect_open(&server).conn;
    let dead = Client::connect(addr(&server), "/dead");
    let dead_id = expect_open(&server).conn;
    for _ in 0..4 {
        let (_, op, payload) = live.read_frame().unwrap();
        assert_eq!(op, 9, "a ping");
        live.send_frame(true, 10, &payload);
    }
    let info = expect_close(&server, dead_id);
    assert_eq!((info.code, info.clean), (1006, false));
    assert!(server.stats().ping_timeouts >= 1);
    assert!(server
        .send(live_id, MessageKind::Text, b"still here")
        .is_ok());
    drop(dead);
}

#[test]
fn static_directory_is_served_on_the_websocket_port() {
    let dir = std::env::temp_dir().join(format!("wsq-itest-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<p>page</p>").unwrap();
    std::fs::write(dir.join("app.js"), "1;").unwrap();
    let server = start(Config {
        static_dir: Some(dir.clone()),
        ..Config::default()
    });
    let get = |path: &str, method: &str| {
        let mut s = tcp(addr(&server));
        s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        all
    };
    let index = get("/", "GET");
    assert!(
        index.starts_with("HTTP/1.1 200")
            && index.contains("text/html")
            && index.ends_with("<p>page</p>")
    );
    assert!(get("/app.js", "GET").contains("text/javascript"));
    let head = get("/index.html", "HEAD");
    assert!(head.contains("Content-Length: 11") && head.ends_with("\r\n\r\n"));
    let escape = get("/../../etc/passwd", "GET");
    assert!(escape.starts_with("HTTP/1.1 400") || escape.starts_with("HTTP/1.1 404"));
    let _ws = Client::connect(addr(&server), "/");
    expect_open(&server);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn full_event_queue_pauses_reading_and_loses_nothing() {
    let server = start(Config {
        event_queue_capacity: 16,
        ..Config::default()
    });
    let mut c = Client::connect(addr(&server), "/");
    let id = expect_open(&server).conn;
    const N: u32 = 10_000;
    let writer = std::thread::spawn(move || {
        let mut all = Vec::new();
        for i in 0..N {
            all.extend(frame(true, 0, 2, true, &i.to_be_bytes()));
        }
        c.send_raw(&all);
        c
    });
    std::thread::sleep(Duration::from_millis(500)); // the app is "busy": nothing polled
    let mut next = 0u32;
    while next < N {
        let e = server.poll(Some(GUARD)).expect("messages keep coming");
        if let EventKind::Message { data, .. } = e.kind {
            assert_eq!(e.conn, id);
            assert_eq!(
                u32::from_be_bytes(data[..4].try_into().unwrap()),
                next,
                "in order, none lost"
            );
            next += 1;
        }
    }
    let stats = server.stats();
    assert!(
        stats.read_pauses > 0,
        "reading paused while the queue was full: {stats:?}"
    );
    drop(writer.join().unwrap());
}

#[test]
fn graceful_stop_flushes_queued_messages_before_1001() {
    let server = start(Config {
        close_timeout: Duration::from_millis(300),
        ..Config::default()
    });
    let mut reader = Client::connect(addr(&server), "/");
    let id = expect_open(&server).conn;
    let _silent = Client::connect(addr(&server), "/"); // never answers the close
    expect_open(&server);
    for i in 0..100u32 {
        server
            .send(id, MessageKind::Binary, &i.to_be_bytes())
            .unwrap();
    }
    let handle = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let (_, op, p) = reader.read_frame().unwrap();
            if op == 8 {
                reader.send_frame(true, 8, &p);
                return (got, u16::from_be_bytes([p[0], p[1]]));
            }
            got.push(u32::from_be_bytes(p[..4].try_into().unwrap()));
        }
    });
    server.stop(Duration::from_secs(5));
    let (got, code) = handle.join().unwrap();
    assert_eq!(
        got,
        (0..100).collect::<Vec<_>>(),
        "every message sent before stop arrives first"
    );
    assert_eq!(code, 1001);
    assert!(matches!(
        server.send(id, MessageKind::Text, b"late"),
        Err(wsqueue::Error::Stopped)
    ));
    assert_eq!(
        server.stats().connections,
        0,
        "the silent client was dropped within the timeout"
    );
    let mut closes = 0;
    while let Some(e) = server.poll(Some(Duration::ZERO)) {
        closes += matches!(e.kind, EventKind::Close(_)) as usize;
    }
    assert_eq!(closes, 2);
}

#[test]
fn adopted_stream_completes_the_handshake() {
    let server = start(Config::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = tcp(listener.local_addr().unwrap());
    client
        .write_all(upgrade_request("/adopted", "").as_bytes())
        .unwrap();
    let (mut accepted, _) = listener.accept().unwrap();
    let (_, head) = read_head(&mut accepted);
    let id: ConnId = server.adopt(accepted, head.as_bytes()).unwrap();
    assert_eq!(read_head(&mut client).0, 101);
    let e = expect_event(&server, |e| {
        e.conn == id && matches!(e.kind, EventKind::Open(_))
    });
    let EventKind::Open(info) = e.kind else {
        unreachable!()
    };
    assert_eq!(info.path(), "/adopted");
}

#[test]
fn broadcast_reaches_every_open_connection_once() {
    let server = start(Config::default());
    let mut clients: Vec<Client> = (0..5)
        .map(|_| Client::connect(addr(&server), "/"))
        .collect();
    let ids: Vec<ConnId> = (0..5).map(|_| expect_open(&server).conn).collect();
    assert_eq!(
        server.broadcast(MessageKind::Text, b"all", None).unwrap(),
        5
    );
    assert_eq!(
        server
            .broadcast(MessageKind::Text, b"some", Some(&ids[..2]))
            .unwrap(),
        2
    );
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.read_frame().unwrap().2, b"all");
        if i < 2 {
            assert_eq!(c.read_frame().unwrap().2, b"some");
        }
    }
}
