//! Optional engine features over real sockets: manual accept, connection limits,
//! timers (idle, keepalive), ping/pong events, the static-file fallback, adopting a
//! socket, send-queue drain and event-queue backpressure.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;
use wsqueue::{Config, ConnId, Error, EventKind, MessageKind, SendStatus};

// ---- manual accept -----------------------------------------------------------------------

fn manual() -> Config {
    Config {
        manual_accept: true,
        subprotocols: vec!["v1".into()],
        ..Config::default()
    }
}

/// Sends an upgrade request and waits for its `UpgradeRequest` event.
fn request_upgrade(server: &wsqueue::Server, extra: &str) -> (std::net::TcpStream, ConnId) {
    let mut s = tcp(addr(server));
    s.write_all(upgrade_request("/lobby?room=1", extra).as_bytes())
        .unwrap();
    let e = expect_event(
        server,
        |e| matches!(e.kind, EventKind::UpgradeRequest(_)),
        GUARD,
    );
    let EventKind::UpgradeRequest(info) = &e.kind else {
        unreachable!()
    };
    assert_eq!(info.path(), "/lobby");
    (s, e.conn)
}

#[test]
fn manual_accept_sends_101_with_extra_headers_and_the_apps_subprotocol() {
    let server = start_server(manual());
    let (stream, id) = request_upgrade(&server, "Sec-WebSocket-Protocol: v1, v2\r\n");
    assert!(
        matches!(
            server.send(id, MessageKind::Text, b"early"),
            Err(Error::InvalidState(_))
        ),
        "nothing may be sent before the 101"
    );
    assert!(
        matches!(
            server.accept(id, Some("v3"), &[]),
            Err(Error::InvalidArgument(_))
        ),
        "§4.2.2: only an offered subprotocol may be chosen"
    );
    server
        .accept(id, Some("v2"), &[("X-Session".into(), "s-42".into())])
        .unwrap();
    assert!(
        matches!(server.accept(id, None, &[]), Err(Error::InvalidState(_))),
        "accepted once"
    );
    let mut c = WsClient::finish_handshake(stream);
    assert!(
        c.response_head.contains("\r\nX-Session: s-42\r\n"),
        "{}",
        c.response_head
    );
    assert!(
        c.response_head
            .contains("\r\nSec-WebSocket-Protocol: v2\r\n"),
        "the app's choice overrides the server's preference: {}",
        c.response_head
    );
    let e = expect_event(
        &server,
        |e| e.conn == id && !matches!(e.kind, EventKind::Message { .. }),
        GUARD,
    );
    let EventKind::Open(info) = e.kind else {
        panic!("Open follows the accept: {e:?}")
    };
    assert_eq!(info.subprotocol.as_deref(), Some("v2"));
    echo_once(&server, &mut c, id, b"accepted");
    c.send_close(1000, "");
    c.read_close();
    drop(c);
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (1000, true));
}

#[test]
fn manual_reject_sends_the_status_and_body_then_a_close_event() {
    let server = start_server(manual());
    let (mut stream, id) = request_upgrade(&server, "");
    assert!(matches!(
        server.reject(id, 200, "no"),
        Err(Error::InvalidArgument(_))
    ));
    server.reject(id, 403, "members only").unwrap();
    let (status, head) = read_head(&mut stream);
    assert_eq!(status, 403, "{head}");
    let body = read_to_eof(&mut stream);
    assert_eq!(String::from_utf8_lossy(&body).trim_end(), "members only");
    drop(stream);
    // Close is always the last event of a connection the app has seen.
    let info = expect_close(&server, id);
    assert!(!info.clean, "{info:?}");
    let s = server.stats();
    assert_eq!((s.rejected_by_app, s.handshakes, s.connections), (1, 0, 0));
}

#[test]
fn handshake_timeout_applies_while_awaiting_accept() {
    let server = start_server(Config {
        handshake_timeout: Some(Duration::from_secs(1)),
        ..manual()
    });
    let (mut stream, id) = request_upgrade(&server, "");
    // The app never answers.
    let info = expect_close(&server, id);
    assert!(!info.clean, "{info:?}");
    let (status, head) = read_head(&mut stream);
    assert!(status == 408 || status == 0, "408 or EOF: {head}");
    assert_eq!(server.stats().handshake_timeouts, 1);
    assert_eq!(server.stats().connections, 0);
    assert!(
        matches!(server.accept(id, None, &[]), Err(Error::NotFound)),
        "too late"
    );
}

// ---- limits and timers ----------------------------------------------------------------------

#[test]
fn upgrade_over_max_connections_gets_503_until_one_closes() {
    let server = start_server(Config {
        max_connections: 2,
        ..Config::default()
    });
    let mut a = WsClient::connect(addr(&server));
    let (ida, _) = expect_open(&server);
    let mut b = WsClient::connect(addr(&server));
    let (idb, _) = expect_open(&server);
    let r = raw_http(addr(&server), upgrade_request("/", "").as_bytes());
    assert_eq!(r.status, 503, "{}", r.head);
    assert_eq!(server.stats().rejected_over_capacity, 1);
    echo_once(&server, &mut b, idb, b"unaffected");
    a.send_close(1000, "");
    a.read_close();
    drop(a);
    expect_close(&server, ida);
    let mut c = WsClient::connect(addr(&server));
    let (idc, _) = expect_open(&server);
    echo_once(&server, &mut c, idc, b"room again");
}

#[test]
fn idle_connection_is_closed_with_1001() {
    let server = start_server(Config {
        idle_timeout: Some(Duration::from_secs(1)),
        ..Config::default()
    });
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    // §7.4.1: 1001 "going away".
    assert_eq!(c.read_close().0, 1001);
    c.send_close(1001, "");
    c.expect_eof();
    drop(c);
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (1001, true));
    assert_eq!(server.stats().idle_timeouts, 1);
}

#[test]
fn keepalive_keeps_a_peer_that_answers_pings_and_drops_one_that_does_not() {
    let server = start_server(Config {
        ping_interval: Some(Duration::from_millis(500)),
        pong_timeout: Duration::from_millis(500),
        ..Config::default()
    });
    let mut live = WsClient::connect(addr(&server));
    let (live_id, _) = expect_open(&server);
    let _silent = WsClient::connect(addr(&server)); // never reads, never answers
    let (silent_id, _) = expect_open(&server);
    let mut answered = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if fd_readable(live.raw_fd(), Duration::from_millis(50)) {
            let f = live.read_frame();
            assert_eq!(f.opcode, OP_PING, "{f:?}");
            // §5.5.3: the pong carries the ping's application data.
            live.send_frame(true, OP_PONG, &f.payload);
            answered += 1;
        }
    }
    assert!(answered >= 2, "pings kept coming: {answered}");
    // §7.1.5: dropped without a closing handshake.
    let info = expect_close(&server, silent_id);
    assert_eq!((info.code, info.clean), (1006, false), "{info:?}");
    assert!(server.stats().ping_timeouts >= 1);
    let live_closed = drain_events(&server)
        .iter()
        .any(|e| e.conn == live_id && matches!(e.kind, EventKind::Close(_)));
    assert!(!live_closed, "the answering peer stays connected");
    echo_once(&server, &mut live, live_id, b"alive");
}

#[test]
fn ping_and_pong_events_are_delivered_when_asked_for() {
    let server = start_server(Config {
        deliver_ping_pong: true,
        ..Config::default()
    });
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    c.send_frame(true, OP_PING, b"hello");
    // §5.5.2: answered automatically, with the same payload.
    let pong = c.read_frame();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"hello"[..])
    );
    let e = expect_event(
        &server,
        |e| e.conn == id && !matches!(e.kind, EventKind::Message { .. }),
        GUARD,
    );
    assert!(
        matches!(&e.kind, EventKind::Ping(p) if p == b"hello"),
        "{e:?}"
    );
    server.ping(id, b"srv").unwrap();
    let ping = c.read_frame();
    assert_eq!(
        (ping.opcode, ping.payload.as_slice()),
        (OP_PING, &b"srv"[..])
    );
    c.send_frame(true, OP_PONG, &ping.payload);
    let e = expect_event(&server, |e| e.conn == id, GUARD);
    assert!(
        matches!(&e.kind, EventKind::Pong(p) if p == b"srv"),
        "{e:?}"
    );
    // §5.5.3: an unsolicited pong is legal and needs no answer.
    c.send_frame(true, OP_PONG, b"unsolicited");
    let e = expect_event(&server, |e| e.conn == id, GUARD);
    assert!(
        matches!(&e.kind, EventKind::Pong(p) if p == b"unsolicited"),
        "{e:?}"
    );
    assert!(
        matches!(server.ping(id, &[0; 126]), Err(Error::InvalidArgument(_))),
        "§5.5"
    );
    echo_once(&server, &mut c, id, b"after pings");
}

#[test]
fn ping_and_pong_events_are_not_delivered_by_default() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    c.send_frame(true, OP_PING, b"p");
    c.send_frame(true, OP_PONG, b"q");
    c.send_text("after");
    assert_eq!(c.read_frame().opcode, OP_PONG, "pings are still answered");
    let e = expect_event(&server, |e| e.conn == id, GUARD);
    assert!(
        matches!(&e.kind, EventKind::Message { data, .. } if data == b"after"),
        "the message is the next event: {e:?}"
    );
}

// ---- static files ---------------------------------------------------------------------------

/// A temporary directory removed when dropped (also when the test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wsq-itest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn static_dir_serves_files_with_content_types_and_refuses_traversal() {
    let base = TempDir::new("static");
    let www = base.path().join("www");
    std::fs::create_dir_all(www.join("js")).unwrap();
    std::fs::write(www.join("index.html"), "<p>page</p>").unwrap();
    std::fs::write(www.join("js/app.js"), "console.log(1);").unwrap();
    std::fs::write(base.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let server = start_server(Config {
        static_dir: Some(www.clone()),
        ..Config::default()
    });
    let a = addr(&server);
    let get = |method: &str, target: &str| {
        raw_http(
            a,
            format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
    };
    let index = get("GET", "/");
    assert_eq!(index.status, 200, "{}", index.head);
    assert!(
        index
            .header("Content-Type")
            .unwrap()
            .starts_with("text/html"),
        "{}",
        index.head
    );
    assert_eq!(index.body, b"<p>page</p>");
    let js = get("GET", "/js/app.js");
    assert_eq!(js.status, 200, "{}", js.head);
    assert!(
        js.header("Content-Type")
            .unwrap()
            .starts_with("text/javascript"),
        "{}",
        js.head
    );
    assert_eq!(js.body, b"console.log(1);");
    // HEAD: the same headers, no body (RFC 9110 §9.3.2).
    let head = get("HEAD", "/index.html");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some("11"));
    assert!(head.body.is_empty(), "HEAD has no body: {:?}", head.body);
    assert_eq!(get("GET", "/missing.html").status, 404);
    for escape in [
        "/../secret.txt",
        "/js/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/js/%2E%2E/%2E%2E/secret.txt",
    ] {
        let r = get("GET", escape);
        assert!(r.status == 400 || r.status == 404, "{escape}: {}", r.head);
        assert!(
            !String::from_utf8_lossy(&r.body).contains("TOP-SECRET"),
            "{escape}"
        );
    }
    // The same port still upgrades.
    let mut c = WsClient::connect(a);
    let (id, _) = expect_open(&server);
    echo_once(&server, &mut c, id, b"ws beside http");
}

// ---- adopt --------------------------------------------------------------------------------

#[test]
fn adopted_stream_with_its_head_already_read_completes_the_handshake() {
    let server = start_server(Config::default());
    // Another HTTP server accepted this connection and read the request head.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = tcp(listener.local_addr().unwrap());
    client
        .write_all(upgrade_request("/adopted?by=test", "").as_bytes())
        .unwrap();
    let (mut accepted, peer) = listener.accept().unwrap();
    accepted.set_read_timeout(Some(GUARD)).unwrap();
    let (_, head) = read_head(&mut accepted);
    let id = server.adopt(accepted, head.as_bytes()).unwrap();
    let mut c = WsClient::finish_handshake(client);
    let (open_id, info) = expect_open(&server);
    assert_eq!(open_id, id);
    assert_eq!(info.target, "/adopted?by=test");
    assert_eq!(info.remote, Some(peer));
    echo_once(&server, &mut c, id, b"adopted echo");
    assert_eq!(server.stats().tcp_accepted, 1);
}

// ---- backpressure -----------------------------------------------------------------------------

#[test]
fn drain_event_follows_a_refused_send_once_the_peer_reads() {
    let server = start_server(Config {
        send_queue_hard_limit: 1 << 20,
        send_queue_low_water: 64 << 10,
        ..Config::default()
    });
    let c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    let chunk = vec![1u8; 256 << 10];
    let mut accepted = 0usize;
    while server.send(id, MessageKind::Binary, &chunk).is_ok() {
        accepted += 1;
        assert!(accepted < 4000, "the queue never filled");
    }
    let reader = std::thread::spawn(move || {
        let mut c = c;
        for _ in 0..accepted {
            assert_eq!(c.read_message().1.len(), 256 << 10);
        }
        c
    });
    let e = expect_event(&server, |e| e.conn == id, GUARD);
    assert!(matches!(e.kind, EventKind::Drain), "{e:?}");
    let mut c = reader.join().unwrap();
    server.send(id, MessageKind::Text, b"room again").unwrap();
    assert_eq!(c.read_message(), (OP_TEXT, b"room again".to_vec()));
}

#[test]
fn send_over_the_soft_limit_is_accepted_and_reports_backpressure_then_drain() {
    let server = start_server(Config {
        send_queue_soft_limit: 1 << 20,
        send_queue_hard_limit: 64 << 20,
        send_queue_low_water: 64 << 10,
        ..Config::default()
    });
    let c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    let chunk = vec![7u8; 256 << 10];
    let mut accepted = 0usize;
    // The client does not read: kernel buffers fill, then the queue passes 1 MiB.
    loop {
        let status = server.send(id, MessageKind::Binary, &chunk).unwrap();
        accepted += 1;
        if status == SendStatus::Backpressure {
            break;
        }
        assert!(accepted < 4000, "backpressure was never reported");
    }
    let buffered = server.buffered_amount(id).unwrap();
    assert!(buffered > 1 << 20, "over the soft limit: {buffered}");
    // Still accepted past the soft limit: the app decides when to stop.
    assert_eq!(
        server.send(id, MessageKind::Binary, &chunk).unwrap(),
        SendStatus::Backpressure
    );
    accepted += 1;
    assert!(server.stats().backpressure_reports >= 2);
    let reader = std::thread::spawn(move || {
        let mut c = c;
        for _ in 0..accepted {
            assert_eq!(c.read_message().1, vec![7u8; 256 << 10]);
        }
        c
    });
    let e = expect_event(&server, |e| e.conn == id, GUARD);
    assert!(matches!(e.kind, EventKind::Drain), "{e:?}");
    assert!(server.buffered_amount(id).unwrap() <= 64 << 10);
    let mut c = reader.join().unwrap();
    assert_eq!(
        server.send(id, MessageKind::Text, b"after drain").unwrap(),
        SendStatus::Accepted
    );
    assert_eq!(c.read_message(), (OP_TEXT, b"after drain".to_vec()));
}

#[test]
fn full_event_queue_pauses_reading_and_loses_nothing() {
    let server = start_server(Config {
        event_queue_capacity: 16,
        ..Config::default()
    });
    let c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    const N: u32 = 10_000;
    let writer = std::thread::spawn(move || {
        let mut c = c;
        let all: Vec<u8> = (0..N)
            .flat_map(|i| masked(true, OP_BINARY, &i.to_be_bytes()))
            .collect();
        c.send_raw(&all);
        c
    });
    // The application is busy for a second and polls nothing.
    std::thread::sleep(Duration::from_secs(1));
    let busy = server.stats();
    assert!(
        busy.read_pauses > 0,
        "reading paused while the queue was full: {busy:?}"
    );
    // One connection is read by one reactor, which reads no more than can complete
    // the events there is room for: the bound holds exactly.
    assert!(
        busy.event_queue_depth <= 16,
        "the rest waits in TCP, not in memory: {busy:?}"
    );
    let mut next = 0u32;
    while next < N {
        let e = server.poll(Some(GUARD)).expect("messages keep coming");
        let EventKind::Message { data, .. } = e.kind else {
            panic!("only messages expected: {e:?}")
        };
        assert_eq!(e.conn, id);
        let got = u32::from_be_bytes(data[..4].try_into().unwrap());
        assert_eq!(got, next, "in order, none lost");
        next += 1;
    }
    assert_eq!(server.stats().messages_in, N as u64);
    let mut c = writer.join().unwrap();
    echo_once(&server, &mut c, id, b"after the flood");
}

/// A client may send its first frame the moment it reads the 101. The app accepts on
/// its own thread, and the reactor may see that frame before it has handled the
/// accept: the frame must still come after the `Open` event, never before it (an app,
/// or a binding, that routes messages by open connection would lose it).
#[test]
fn manual_accept_a_frame_sent_right_after_the_101_follows_the_open_event() {
    let server = start_server(Config {
        reactor_threads: 1,
        ..manual()
    });
    let addr = addr(&server);
    const ROUNDS: usize = 300;
    let client = std::thread::spawn(move || {
        for i in 0..ROUNDS {
            let mut s = tcp(addr);
            s.write_all(upgrade_request("/", "").as_bytes()).unwrap();
            let mut c = WsClient::finish_handshake(s);
            c.send_text(&format!("first {i}"));
            assert_eq!(c.read_message().1, format!("first {i}").as_bytes());
        }
    });
    for i in 0..ROUNDS {
        let e = expect_event(
            &server,
            |e| matches!(e.kind, EventKind::UpgradeRequest(_)),
            GUARD,
        );
        server.accept(e.conn, None, &[]).unwrap();
        let next = expect_event(&server, |x| x.conn == e.conn, GUARD);
        assert!(
            matches!(next.kind, EventKind::Open(_)),
            "round {i}: the first event after the accept is {next:?}, not Open"
        );
        let (_, data) = expect_message(&server, e.conn);
        server.send(e.conn, MessageKind::Text, &data).unwrap();
    }
    client.join().unwrap();
}
