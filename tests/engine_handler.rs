//! Handler mode (`Config::event_handler`, `Server::start_with_handler`): events handed
//! to the application's function on the reactor threads instead of queued for a
//! poller. These tests pin down its contract: every event arrives, in order per
//! connection; replies go out; a close held back by a protocol error follows the
//! replies to the messages before it; a stop can be called from inside the handler;
//! a panicking handler does not take the server down; polling gets nothing.

mod support;

use std::collections::HashMap;
use std::io::Read;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use support::*;
use wsqueue::{
    Config, ConnId, Error, Event, EventHandler, EventKind, MessageKind, Replies, Server,
};

/// What a test handler saw of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Open,
    Message(Vec<u8>),
    Close(u16),
    Other,
}

fn seen(event: &Event) -> Seen {
    match &event.kind {
        EventKind::Open(_) => Seen::Open,
        EventKind::Message { data, .. } => Seen::Message(data.clone()),
        EventKind::Close(info) => Seen::Close(info.code),
        _ => Seen::Other,
    }
}

fn config() -> Config {
    Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        reactor_threads: 2,
        ..Config::default()
    }
}

/// What the handler saw, per connection id, in order.
type Log = Arc<Mutex<HashMap<u64, Vec<Seen>>>>;

/// An echo server whose handler also records, per connection, what it saw and sends
/// each event on `tx` (so the test can wait for it). The message "pause" holds the
/// handler for 300 ms before its echo (what a client sends meanwhile piles up).
fn echo_server(tx: mpsc::Sender<(ConnId, Seen)>) -> (Arc<Server>, Log) {
    let log: Log = Arc::default();
    let record = log.clone();
    let tx = Mutex::new(tx);
    let server = Server::start_with_handler(config(), move |server, event| {
        if let EventKind::Message { kind, data } = &event.kind {
            if data == b"pause" {
                std::thread::sleep(Duration::from_millis(300));
            }
            server.send(event.conn, *kind, data).expect("echo accepted");
        }
        let s = seen(event);
        record
            .lock()
            .unwrap()
            .entry(event.conn.0)
            .or_default()
            .push(s.clone());
        let _ = tx.lock().unwrap().send((event.conn, s));
    })
    .expect("server starts");
    (server, log)
}

fn wait_for(rx: &mpsc::Receiver<(ConnId, Seen)>, what: &Seen) -> ConnId {
    loop {
        let (conn, s) = rx.recv_timeout(GUARD).expect("the handler saw it");
        if &s == what {
            return conn;
        }
    }
}

/// An echo server (`echo_server`) with one client connected and its open event seen:
/// the server, its log, the handler's reports, the client and its connection id.
fn connected_echo() -> (
    Arc<Server>,
    Log,
    mpsc::Receiver<(ConnId, Seen)>,
    WsClient,
    ConnId,
) {
    let (tx, rx) = mpsc::channel();
    let (server, log) = echo_server(tx);
    let client = WsClient::connect(server.local_addrs()[0]);
    let conn = wait_for(&rx, &Seen::Open);
    (server, log, rx, client, conn)
}

#[test]
fn every_event_reaches_the_handler_in_order_and_replies_go_out() {
    let (tx, rx) = mpsc::channel();
    let (server, log) = echo_server(tx);
    let addr = server.local_addrs()[0];
    let mut clients: Vec<WsClient> = (0..6).map(|_| WsClient::connect(addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        // Several messages in one write: they are read together and their echoes
        // corked together.
        let mut burst = Vec::new();
        for n in 0..20 {
            burst.extend(masked(true, OP_BINARY, format!("{i}:{n}").as_bytes()));
        }
        client.send_raw(&burst);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        for n in 0..20 {
            let (op, data) = client.read_message();
            assert_eq!((op, data), (OP_BINARY, format!("{i}:{n}").into_bytes()));
        }
        client.send_close(1000, "bye");
        assert_eq!(client.read_close().0, 1000);
        client.expect_eof(); // the server closes TCP first (§7.1.1)
    }
    drop(clients); // our FIN: the server's teardown (and Close event) need not wait
    for _ in 0..6 {
        wait_for(&rx, &Seen::Close(1000));
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 6);
    for events in log.values() {
        assert_eq!(events.first(), Some(&Seen::Open));
        assert_eq!(events.last(), Some(&Seen::Close(1000)));
        assert_eq!(events.len(), 22, "open, 20 messages, close: {events:?}");
        let prefix = match &events[1] {
            Seen::Message(m) => String::from_utf8(m.clone()).unwrap(),
            other => panic!("expected a message, got {other:?}"),
        };
        let i = prefix.split(':').next().unwrap().to_string();
        for (n, e) in events[1..21].iter().enumerate() {
            assert_eq!(e, &Seen::Message(format!("{i}:{n}").into_bytes()));
        }
    }
    drop(log);
    server.stop(Duration::from_secs(1));
}

/// Messages followed by a protocol error in the same read: their echoes go out, then
/// the close frame (1002), not the other way round.
#[test]
fn replies_to_messages_before_a_protocol_error_precede_the_close() {
    let (server, _log, rx, mut client, _) = connected_echo();
    let mut bytes = Vec::new();
    for n in 0..3 {
        bytes.extend(masked(true, OP_TEXT, format!("m{n}").as_bytes()));
    }
    bytes.extend(masked(true, 0x3, b"reserved opcode")); // §5.2: fail the connection
    client.send_raw(&bytes);
    for n in 0..3 {
        assert_eq!(
            client.read_message(),
            (OP_TEXT, format!("m{n}").into_bytes())
        );
    }
    assert_eq!(client.read_close().0, 1002);
    client.send_close(1002, "");
    client.expect_eof();
    drop(client);
    wait_for(&rx, &Seen::Close(1002));
    server.stop(Duration::from_secs(1));
}

/// A poll in handler mode returns nothing: the events went to the handler.
#[test]
fn poll_gets_nothing_in_handler_mode() {
    let (tx, rx) = mpsc::channel();
    let (server, _log) = echo_server(tx);
    let mut client = WsClient::connect(server.local_addrs()[0]);
    client.send_text("hello");
    assert_eq!(client.read_message(), (OP_TEXT, b"hello".to_vec()));
    wait_for(&rx, &Seen::Message(b"hello".to_vec()));
    assert!(server.poll(Some(Duration::from_millis(50))).is_none());
    server.stop(Duration::from_secs(1));
}

/// `stop` from inside the handler begins the stop and returns (it cannot wait for its
/// own thread): the clients get 1001, and a later stop from outside completes.
#[test]
fn a_stop_called_inside_the_handler_does_not_wait_for_itself() {
    stop_inside_the_handler(false);
}

/// The same after the handler uncorked by itself: the uncork writes what it corked,
/// but the thread is still inside the handler, and the stop must know it.
#[test]
fn a_stop_after_an_uncork_inside_the_handler_does_not_wait_for_itself() {
    stop_inside_the_handler(true);
}

fn stop_inside_the_handler(uncork_first: bool) {
    let (tx, rx) = mpsc::channel();
    let server = Server::start_with_handler(config(), move |server, event| {
        if let EventKind::Message { data, .. } = &event.kind {
            if data == b"stop" {
                if uncork_first {
                    server.uncork();
                }
                server.stop(Duration::from_secs(1));
                let _ = tx.send("stop returned");
            }
        }
    })
    .unwrap();
    let mut client = WsClient::connect(server.local_addrs()[0]);
    client.send_text("stop");
    assert_eq!(rx.recv_timeout(GUARD).unwrap(), "stop returned");
    assert_eq!(client.read_close().0, 1001);
    client.send_close(1001, "");
    server.stop(Duration::from_secs(1));
}

/// A handler that panics loses that event; the reactor goes on serving.
#[test]
fn a_panicking_handler_does_not_take_the_server_down() {
    let server = Server::start_with_handler(config(), |server, event| {
        if let EventKind::Message { kind, data } = &event.kind {
            if data == b"boom" {
                panic!("the application's bug");
            }
            let _ = server.send(event.conn, *kind, data);
        }
    })
    .unwrap();
    let mut client = WsClient::connect(server.local_addrs()[0]);
    client.send_text("boom");
    client.send_text("still there?");
    assert_eq!(client.read_message(), (OP_TEXT, b"still there?".to_vec()));
    let mut other = WsClient::connect(server.local_addrs()[0]);
    other.send_text("and you?");
    assert_eq!(other.read_message(), (OP_TEXT, b"and you?".to_vec()));
    server.stop(Duration::from_secs(1));
}

/// A stop from outside delivers the close events of the connections it closes to the
/// handler before it returns.
#[test]
fn a_stop_delivers_the_close_events_before_it_returns() {
    let (tx, rx) = mpsc::channel();
    let (server, log) = echo_server(tx);
    let addr = server.local_addrs()[0];
    let mut clients: Vec<WsClient> = (0..4).map(|_| WsClient::connect(addr)).collect();
    for _ in 0..4 {
        wait_for(&rx, &Seen::Open);
    }
    let answering = std::thread::spawn(move || {
        for client in &mut clients {
            assert_eq!(client.read_close().0, 1001);
            client.send_close(1001, "");
        }
    });
    server.stop(Duration::from_secs(5));
    answering.join().unwrap();
    let log = log.lock().unwrap();
    let closes = log
        .values()
        .filter(|events| matches!(events.last(), Some(Seen::Close(_))))
        .count();
    assert_eq!(closes, 4, "{log:?}");
}

/// A handler that answers one connection's message by sending to others as well (a
/// chat): each send reaches the connection it names, whichever connection's events the
/// handler is answering, and from inside or outside a hand-over.
#[test]
fn sends_from_the_handler_reach_the_connection_they_name() {
    let (tx, rx) = mpsc::channel();
    let peers: Arc<Mutex<Vec<ConnId>>> = Arc::default();
    let known = peers.clone();
    let tx = Mutex::new(tx);
    let server = Server::start_with_handler(config(), move |server, event| match &event.kind {
        EventKind::Open(_) => {
            known.lock().unwrap().push(event.conn);
            let _ = tx.lock().unwrap().send(event.conn);
        }
        EventKind::Message { kind, data } => {
            // To every connection, the sender last, each told who sent it.
            let everyone: Vec<ConnId> = known.lock().unwrap().clone();
            for to in everyone.iter().filter(|&&c| c != event.conn) {
                let text = format!("{}>{}:", event.conn.0, to.0).into_bytes();
                server
                    .send(*to, *kind, &[text, data.clone()].concat())
                    .unwrap();
            }
            let text = format!("{}>{}:", event.conn.0, event.conn.0).into_bytes();
            server
                .send(event.conn, *kind, &[text, data.clone()].concat())
                .unwrap();
        }
        _ => {}
    })
    .expect("server starts");
    let addr = server.local_addrs()[0];
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        clients.push(WsClient::connect(addr));
        ids.push(rx.recv_timeout(GUARD).expect("open"));
    }
    for (i, sender) in [0usize, 2, 1].into_iter().enumerate() {
        clients[sender].send_binary(format!("m{i}").as_bytes());
        for (c, client) in clients.iter_mut().enumerate() {
            let (op, data) = client.read_message();
            let expected = format!("{}>{}:m{i}", ids[sender].0, ids[c].0);
            assert_eq!(
                (op, String::from_utf8(data).unwrap()),
                (OP_BINARY, expected)
            );
        }
    }
    server.stop(Duration::from_secs(1));
}

/// A handler's replies to the connection it answers join the server-wide byte count
/// at the flush rather than one by one (`ConnState::cork_message`: up to 64 KiB, 8 of
/// these replies, held back at a time). The budget still refuses at its limit, the
/// count falls short by at most 64 KiB inside the handler, it equals what is queued
/// after a hand-over whose socket was blocked, and it returns to 0 when the client
/// has read everything.
#[test]
fn replies_corked_in_the_handler_keep_the_budget_and_the_byte_count() {
    const REPLY: usize = 8 << 10; // corked: under the 16 KiB cork limit
    const FRAME: usize = REPLY + 4; // a 2-byte header and a 16-bit length
                                    // Half-way between two publications of 8 replies, where the lag is largest; more
                                    // than the loopback buffers take.
    const BUDGET: usize = (8 * 255 + 4) * FRAME;
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let config = Config {
        max_buffered_bytes: BUDGET,
        send_queue_soft_limit: 64 << 20,
        send_queue_hard_limit: 64 << 20,
        ..config()
    };
    let server = Server::start_with_handler(config, move |server, event| {
        if let EventKind::Message { data, .. } = &event.kind {
            // "fill": replies until one is refused; "more": three; "sync": none (its
            // report means the hand-over before it has ended).
            let reply = vec![7u8; REPLY];
            let most = match data.as_slice() {
                b"more" => 3,
                b"sync" => 0,
                _ => usize::MAX,
            };
            let mut accepted = 0usize;
            let mut refused = None;
            while accepted < most {
                match server.send(event.conn, MessageKind::Binary, &reply) {
                    Ok(_) => accepted += 1,
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            let counted = server.stats().send_queue_bytes as usize;
            let _ = tx
                .lock()
                .unwrap()
                .send((event.conn, accepted, refused, counted));
        }
    })
    .expect("server starts");
    let mut client = WsClient::connect(server.local_addrs()[0]);
    client.send_binary(b"fill");
    let (conn, filled, refused, counted) = rx.recv_timeout(GUARD).expect("handled");
    assert!(matches!(refused, Some(Error::QueueFull)), "{refused:?}");
    let queued = filled * FRAME;
    assert!(
        queued <= BUDGET && queued + FRAME > BUDGET,
        "refused at the budget: {filled} replies of {FRAME} bytes, budget {BUDGET}"
    );
    assert!(
        counted <= queued && counted + (64 << 10) >= queued,
        "inside the handler the count lags by at most 64 KiB: {counted} of {queued}"
    );

    // A second hand-over while the client reads nothing: its socket is blocked, so
    // its replies stay queued, and the count must include them once it is over.
    client.send_binary(b"more");
    let (_, more, refused, _) = rx.recv_timeout(GUARD).expect("handled");
    assert!(
        more == 3 && refused.is_none(),
        "{more} accepted, {refused:?}"
    );
    // That report was sent from inside the handler, before the hand-over ended and
    // published its held-back bytes; the next message's report comes after it.
    client.send_binary(b"sync");
    let (_, none, refused, _) = rx.recv_timeout(GUARD).expect("handled");
    assert!(
        none == 0 && refused.is_none(),
        "{none} accepted, {refused:?}"
    );
    let mut stable = None;
    for _ in 0..1000 {
        let before = server.buffered_amount(conn).unwrap();
        let counted = server.stats().send_queue_bytes as usize;
        if server.buffered_amount(conn).unwrap() == before {
            stable = Some((before, counted));
            break;
        }
    }
    let (buffered, counted) = stable.expect("the queue stops moving while the client waits");
    assert!(
        buffered > 3 * FRAME,
        "the write blocked: {buffered} bytes queued"
    );
    assert_eq!(counted, buffered, "the count is what is queued");

    for _ in 0..filled + more {
        let (op, data) = client.read_message();
        assert_eq!((op, data.len()), (OP_BINARY, REPLY));
    }
    let deadline = std::time::Instant::now() + GUARD;
    while server.stats().send_queue_bytes != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        server.stats().send_queue_bytes,
        0,
        "all written, none counted"
    );
    server.stop(Duration::from_secs(1));
}

/// Replies through the hand-over's `Replies` (the C ABI's path) go out and are counted
/// even when the handler uncorked its thread before sending them: those replies are
/// corked without a look at the thread's cork, and the hand-over writes the connection
/// it answers when it ends, whatever that cork says by then.
#[test]
fn replies_after_an_uncork_in_the_handler_go_out_and_are_counted() {
    let slot: Arc<OnceLock<Weak<Server>>> = Arc::default();
    let server_in_handler = slot.clone();
    let config = Config {
        event_handler: Some(EventHandler::from(
            move |event: &Event, replies: &Replies<'_>| {
                if let EventKind::Message { kind, data } = &event.kind {
                    if let Some(server) = server_in_handler.get().and_then(Weak::upgrade) {
                        server.uncork();
                    }
                    for _ in 0..2 {
                        replies.send(event.conn, *kind, data).expect("accepted");
                    }
                }
            },
        )),
        ..config()
    };
    let server = Arc::new(Server::start(config).expect("server starts"));
    slot.set(Arc::downgrade(&server)).expect("set once");
    let mut client = WsClient::connect(server.local_addrs()[0]);
    for word in [&b"one"[..], b"two"] {
        client.send_binary(word);
        for _ in 0..2 {
            assert_eq!(client.read_message(), (OP_BINARY, word.to_vec()));
        }
    }
    assert_eq!(server.stats().messages_out, 4, "every reply counted");
    server.stop(Duration::from_secs(1));
}

/// The reactor hands whole small messages to the handler straight from the read (the
/// direct lane) and everything else the general way. Mixed in one write, and with a
/// frame split across two writes, every message still reaches the handler once, in
/// order, each echo goes out in order, the ping is answered, and `messages_in` counts
/// each message once.
#[test]
fn messages_taken_straight_from_the_read_keep_their_order_among_the_others() {
    let (server, log, rx, mut client, conn) = connected_echo();
    let long = vec![b'l'; 300]; // a 16-bit length: not the lane's
    let mut expected: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut bytes = Vec::new();
    let message = |bytes: &mut Vec<u8>, expected: &mut Vec<(u8, Vec<u8>)>, op, payload: &[u8]| {
        bytes.extend(masked(true, op, payload));
        expected.push((op, payload.to_vec()));
    };
    message(&mut bytes, &mut expected, OP_BINARY, b"a");
    message(&mut bytes, &mut expected, OP_TEXT, "b\u{e9}".as_bytes());
    bytes.extend(masked(true, OP_PING, b"p"));
    message(&mut bytes, &mut expected, OP_BINARY, b"c");
    // A fragmented message: its frames are small, but it is not whole in one frame.
    bytes.extend(masked(false, OP_TEXT, b"d1"));
    bytes.extend(masked(true, OP_CONT, b"d2"));
    expected.push((OP_TEXT, b"d1d2".to_vec()));
    message(&mut bytes, &mut expected, OP_BINARY, &long);
    message(&mut bytes, &mut expected, OP_BINARY, b"");
    message(&mut bytes, &mut expected, OP_BINARY, b"e");
    // The next message is cut after its first three bytes: the read ends inside it.
    let split = masked(true, OP_BINARY, b"split");
    bytes.extend_from_slice(&split[..3]);
    client.send_raw(&bytes);
    // Wait until the handler has seen "e", so the rest arrives in a later read.
    wait_for(&rx, &Seen::Message(b"e".to_vec()));
    let mut rest = split[3..].to_vec();
    expected.push((OP_BINARY, b"split".to_vec()));
    rest.extend(masked(true, OP_TEXT, b"f"));
    expected.push((OP_TEXT, b"f".to_vec()));
    client.send_raw(&rest);

    let mut pong = false;
    for want in &expected {
        loop {
            let f = client.read_frame();
            if f.opcode == OP_PONG {
                assert_eq!(f.payload, b"p");
                pong = true;
                continue;
            }
            // Echoes are sent whole, never fragmented.
            assert!(f.fin, "{f:?}");
            assert_eq!(&(f.opcode, f.payload), want);
            break;
        }
    }
    assert!(pong, "the ping was answered");
    wait_for(&rx, &Seen::Message(b"f".to_vec()));
    let messages: Vec<Vec<u8>> = expected.iter().map(|(_, p)| p.clone()).collect();
    let handled: Vec<Vec<u8>> = log.lock().unwrap()[&conn.0]
        .iter()
        .filter_map(|s| match s {
            Seen::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(handled, messages);
    let stats = server.stats();
    assert_eq!(stats.messages_in, messages.len() as u64);
    assert_eq!(stats.messages_out, messages.len() as u64);
    server.stop(Duration::from_secs(1));
}

/// Text that is not UTF-8 among small messages: the lane leaves it to the general
/// way, which fails the connection with 1007 after the echoes of the messages before
/// it; the message after it is not handed over.
#[test]
fn invalid_text_among_small_messages_fails_the_connection_after_the_earlier_echoes() {
    let (server, log, rx, mut client, conn) = connected_echo();
    let mut bytes = Vec::new();
    bytes.extend(masked(true, OP_TEXT, b"one"));
    bytes.extend(masked(true, OP_BINARY, b"two"));
    bytes.extend(masked(true, OP_TEXT, &[b'x', 0xC3, 0x28])); // §8.1: not UTF-8
    bytes.extend(masked(true, OP_TEXT, b"never"));
    client.send_raw(&bytes);
    assert_eq!(client.read_message(), (OP_TEXT, b"one".to_vec()));
    assert_eq!(client.read_message(), (OP_BINARY, b"two".to_vec()));
    assert_eq!(client.read_close().0, 1007);
    client.send_close(1007, "");
    client.expect_eof();
    drop(client);
    wait_for(&rx, &Seen::Close(1007));
    let events = log.lock().unwrap()[&conn.0].clone();
    assert_eq!(
        events,
        vec![
            Seen::Open,
            Seen::Message(b"one".to_vec()),
            Seen::Message(b"two".to_vec()),
            Seen::Close(1007),
        ]
    );
    assert_eq!(server.stats().messages_in, 2);
    server.stop(Duration::from_secs(1));
}

/// Reads that end inside a frame: the rest, in the next read, is not a frame of its
/// own even when its bytes look like one (cut inside the header, and inside the
/// payload). The direct lane must leave both to the general way.
#[test]
fn a_frame_cut_by_the_reads_is_not_taken_for_the_frame_its_rest_looks_like() {
    let (server, _log, _rx, mut client, _) = connected_echo();
    let unmask = |wire: &[u8], key: [u8; 4]| -> Vec<u8> {
        wire.iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect()
    };

    // Cut after the first byte: the rest starts 0x82 0x81, a masked 1-byte binary frame.
    let key = [0x81, 0x10, 0x20, 0x30];
    let payload = unmask(&[0x41, 0x42], key);
    let frame = frame_bytes(true, 0, OP_BINARY, Some(key), &payload);
    assert_eq!(&frame[..3], &[0x82, 0x82, 0x81]);
    client.send_raw(&frame[..1]);
    std::thread::sleep(Duration::from_millis(100)); // so that it is read on its own
    client.send_raw(&frame[1..]);
    assert_eq!(client.read_message(), (OP_BINARY, payload));

    // Cut inside the payload, where the rest of the payload is a whole small frame.
    let evil = masked(true, OP_BINARY, b"evil");
    let mut wire = vec![0x11, 0x22, 0x33];
    wire.extend_from_slice(&evil);
    let key = [0x05, 0x06, 0x07, 0x08];
    let payload = unmask(&wire, key);
    let frame = frame_bytes(true, 0, OP_BINARY, Some(key), &payload);
    let cut = frame.len() - evil.len();
    client.send_raw(&frame[..cut]);
    std::thread::sleep(Duration::from_millis(100));
    client.send_raw(&frame[cut..]);
    assert_eq!(client.read_message(), (OP_BINARY, payload));

    // Cut inside a ping's payload (no message is in progress), the same way.
    let key = [0x0A, 0x0B, 0x0C, 0x0D];
    let ping_payload = unmask(&wire, key);
    let frame = frame_bytes(true, 0, OP_PING, Some(key), &ping_payload);
    client.send_raw(&frame[..cut]);
    std::thread::sleep(Duration::from_millis(100));
    client.send_raw(&frame[cut..]);
    let pong = client.read_frame();
    assert_eq!((pong.opcode, pong.payload), (OP_PONG, ping_payload));

    client.send_binary(b"after");
    assert_eq!(client.read_message(), (OP_BINARY, b"after".to_vec()));
    assert_eq!(server.stats().messages_in, 3);
    server.stop(Duration::from_secs(1));
}

/// A read that fills the reactor's 64 KiB buffer ends on a frame boundary with the
/// messages it read the general way not yet handed over; the small messages of the
/// next read must wait for them, not overtake them through the direct lane.
#[test]
fn small_messages_of_a_second_read_do_not_overtake_the_first_reads_events() {
    let (server, _log, _rx, mut client, _) = connected_echo();
    // The burst below is then all in the socket when the reactor reads.
    client.send_binary(b"pause");
    // 65,536 bytes: one small frame (the lane's), then frames with a 16-bit length
    // (the general way's), then small frames that arrive in the next read.
    let mut expected = Vec::new();
    let mut burst = Vec::new();
    let first = vec![b'f'; 118];
    burst.extend(masked(true, OP_BINARY, &first));
    expected.push(first);
    for n in 0..474u32 {
        let mut payload = vec![b'g'; 130];
        payload[..4].copy_from_slice(&n.to_be_bytes());
        burst.extend(masked(true, OP_BINARY, &payload));
        expected.push(payload);
    }
    assert_eq!(burst.len(), 64 * 1024);
    for n in 0..10 {
        let payload = format!("s{n}").into_bytes();
        burst.extend(masked(true, OP_BINARY, &payload));
        expected.push(payload);
    }
    client.send_raw(&burst);
    assert_eq!(client.read_message(), (OP_BINARY, b"pause".to_vec()));
    for (i, want) in expected.iter().enumerate() {
        let (op, data) = client.read_message();
        assert_eq!((op, &data), (OP_BINARY, want), "echo {i}");
    }
    server.stop(Duration::from_secs(1));
}

/// A connection whose socket blocked gets its queue written when the socket reports
/// writability together with new input (one epoll event with both: the reactor writes
/// the queue under the lock its read takes first). Here the reactor is held in a
/// handler while the client drains what the kernel holds and sends one more message,
/// so that both are ready when it looks again; every echo must then arrive, in order.
#[test]
fn a_blocked_queue_is_written_when_writability_comes_with_new_input() {
    const MESSAGES: usize = 256;
    const SIZE: usize = 64 * 1024;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let tx = Mutex::new(tx);
    let config = Config {
        reactor_threads: 1, // the pause below holds the blocked connection's reactor
        send_queue_soft_limit: 64 * 1024 * 1024, // keep reading while the queue grows
        ..config()
    };
    let server = Server::start_with_handler(config, move |server, event| {
        if let EventKind::Message { kind, data } = &event.kind {
            if data == b"pause" {
                std::thread::sleep(Duration::from_secs(1));
                return;
            }
            server.send(event.conn, *kind, data).expect("echo accepted");
            let _ = tx.lock().unwrap().send(data.clone());
        }
    })
    .expect("server starts");
    let addr = server.local_addrs()[0];
    let mut client = WsClient::connect(addr);
    let mut expected = Vec::new();
    for n in 0..MESSAGES {
        let mut payload = vec![b'm'; SIZE];
        payload[..4].copy_from_slice(&(n as u32).to_be_bytes());
        client.send_binary(&payload);
        expected.push(payload);
    }
    for _ in 0..MESSAGES {
        rx.recv_timeout(GUARD).expect("the handler echoed it");
    }
    assert!(
        server.stats().send_queue_bytes > 0,
        "16 MiB unread by the client must block the socket and queue the rest"
    );
    let mut other = WsClient::connect(addr);
    other.send_binary(b"pause");
    std::thread::sleep(Duration::from_millis(100)); // the reactor is in the pause now
                                                    // Drain what the kernel holds (nothing more comes while the reactor is held), then
                                                    // send more input: the socket is writable and readable when the reactor looks.
    let mut received = Vec::new();
    let mut chunk = vec![0; 1 << 20];
    client
        .stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while let Ok(n) = client.stream.read(&mut chunk) {
        assert!(n > 0, "the server closed the connection");
        received.extend_from_slice(&chunk[..n]);
    }
    client.send_binary(b"after");
    expected.push(b"after".to_vec());
    client.stream.set_read_timeout(Some(GUARD)).unwrap();
    let mut stream = std::io::Cursor::new(received).chain(&client.stream);
    for (i, want) in expected.iter().enumerate() {
        let frame = read_server_frame(&mut stream).expect("every echo arrives");
        assert_eq!(
            (frame.opcode, &frame.payload),
            (OP_BINARY, want),
            "echo {i}"
        );
    }
    server.stop(Duration::from_secs(1));
}
