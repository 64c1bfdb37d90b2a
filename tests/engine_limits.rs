//! Every limit holds for every kind of frame and in every phase: floods of pings,
//! floods during and after the close, the server-wide buffer budget, the event queue's
//! bound with the smallest capacity, concurrent stops, and the strict order of replies
//! before a failing close. Each test was written against a reproduced attack; run on
//! the engine that preceded the `ServerConnection` rewrite (commit 9af7b7c), eight of
//! them fail. The other two guard what the rewrite must keep: the server-wide budget
//! (added with the ABI change just before) and a pong owed before the peer's close.

mod support;

use std::io::Write;
use std::time::Duration;

use support::*;
use wsqueue::{Config, Error, EventKind, MessageKind, SendStatus};

/// Writes `bytes` until done or until the server stops reading for `stall` (its
/// kernel buffers full): returns how many bytes went out.
fn write_until_stalled(client: &mut WsClient, bytes: &[u8], stall: Duration) -> usize {
    client.stream.set_write_timeout(Some(stall)).unwrap();
    let mut sent = 0;
    while sent < bytes.len() {
        match client.stream.write(&bytes[sent..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    sent
}

#[test]
fn ping_flood_from_a_client_that_never_reads_keeps_buffers_bounded() {
    let server = start_server(Config {
        send_queue_soft_limit: 64 << 10,
        send_queue_low_water: 16 << 10,
        ..Config::default()
    });
    let mut bystander = Bystander::join(&server);
    let mut c = WsClient::connect(addr(&server));
    let _ = expect_open(&server);
    // 2 million empty pings (12 MB) and never a read: each would cost a pong.
    let flood: Vec<u8> = (0..2_000_000)
        .flat_map(|_| masked(true, OP_PING, b""))
        .collect();
    let sent = write_until_stalled(&mut c, &flood, Duration::from_secs(2));
    let s = server.stats();
    assert!(
        s.pongs_coalesced > 0,
        "pings answered by one pending pong: {s:?}"
    );
    assert!(
        s.send_queue_bytes <= 64 << 10,
        "pongs obey the soft limit; {sent} bytes of pings sent: {s:?}"
    );
    bystander.assert_still_served(&server);
}

#[test]
fn data_sent_after_the_servers_close_makes_no_events_even_during_stop() {
    let server = std::sync::Arc::new(start_server(Config::default()));
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    let stopper = {
        let server = server.clone();
        std::thread::spawn(move || server.stop(Duration::from_secs(5)))
    };
    assert_eq!(c.read_close().0, 1001, "the stop sends 1001");
    // A client that ignores the close and keeps talking.
    for i in 0..2000u32 {
        c.send_binary(&i.to_be_bytes());
    }
    c.send_close(1000, "");
    stopper.join().unwrap();
    let events = drain_events(&server);
    let messages = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Message { .. }))
        .count();
    assert_eq!(
        messages, 0,
        "§5.5.1: data after our close is discarded: {events:?}"
    );
    let close = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Close(info) if e.conn == id => Some(info.clone()),
            _ => None,
        })
        .expect("a close event");
    assert!(
        close.clean,
        "the peer's close completed the handshake: {close:?}"
    );
    assert_eq!(server.stats().messages_in, 0);
}

#[test]
fn a_peer_that_keeps_sending_after_the_close_handshake_is_not_read_for_long() {
    let server = start_server(Config {
        close_timeout: Duration::from_secs(30),
        ..Config::default()
    });
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    c.send_close(1000, "bye");
    assert_eq!(c.read_close().0, 1000);
    let before = server.stats().bytes_in;
    // 64 MB of junk after the closing handshake, instead of closing TCP.
    let junk = vec![0u8; 64 << 20];
    let sent = write_until_stalled(&mut c, &junk, Duration::from_secs(2));
    let info = expect_close(&server, id);
    assert!(info.clean, "{info:?}");
    let read = server.stats().bytes_in - before;
    assert!(
        read < 1 << 20,
        "read {read} of {sent} bytes sent after the close; at most a small bound"
    );
}

#[test]
fn the_server_wide_budget_refuses_sends_past_it() {
    let server = start_server(Config {
        send_queue_soft_limit: 256 << 10,
        send_queue_low_water: 64 << 10,
        send_queue_hard_limit: 64 << 20,
        max_buffered_bytes: 2 << 20,
        ..Config::default()
    });
    let _a = WsClient::connect(addr(&server));
    let (a, _) = expect_open(&server);
    let _b = WsClient::connect(addr(&server));
    let (b, _) = expect_open(&server);
    let chunk = vec![1u8; 128 << 10];
    let mut refused = None;
    for i in 0..2000 {
        let id = if i % 2 == 0 { a } else { b };
        if let Err(e) = server.send(id, MessageKind::Binary, &chunk) {
            refused = Some(e);
            break;
        }
    }
    assert!(matches!(refused, Some(Error::QueueFull)), "{refused:?}");
    let s = server.stats();
    assert!(s.budget_refusals >= 1, "{s:?}");
    assert!(
        s.send_queue_bytes <= (2 << 20) + (128 << 10),
        "the budget holds: {s:?}"
    );
}

#[test]
fn an_event_queue_of_one_loses_no_wakeup_and_no_message() {
    let server = start_server(Config {
        event_queue_capacity: 1,
        ..Config::default()
    });
    // Each Open fills the queue: poll it before the next client connects.
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..4 {
        clients.push(WsClient::connect(addr(&server)));
        ids.push(expect_open(&server).0);
    }
    const N: u32 = 2000;
    let writers: Vec<_> = clients
        .drain(..)
        .map(|mut c| {
            std::thread::spawn(move || {
                let all: Vec<u8> = (0..N)
                    .flat_map(|i| masked(true, OP_BINARY, &i.to_be_bytes()))
                    .collect();
                c.send_raw(&all);
                c
            })
        })
        .collect();
    let mut next = [0u32; 4];
    let mut total = 0;
    while total < 4 * N {
        // A lost wake-up leaves a paused reactor and this poll times out.
        let e = server.poll(Some(GUARD)).expect("messages keep coming");
        let s = server.stats();
        assert!(s.event_queue_depth <= 2, "two reactors, capacity 1: {s:?}");
        let EventKind::Message { data, .. } = e.kind else {
            panic!("only messages expected: {e:?}")
        };
        let k = ids.iter().position(|id| *id == e.conn).unwrap();
        assert_eq!(u32::from_be_bytes(data[..4].try_into().unwrap()), next[k]);
        next[k] += 1;
        total += 1;
    }
    for w in writers {
        w.join().unwrap();
    }
}

#[test]
fn concurrent_stops_all_return_once_the_stop_is_done() {
    let server = std::sync::Arc::new(start_server(Config {
        close_timeout: Duration::from_secs(30),
        ..Config::default()
    }));
    // A client that never answers our close: the stop runs to its deadline.
    let _silent = WsClient::connect(addr(&server));
    let _ = expect_open(&server);
    let stoppers: Vec<_> = (0..3)
        .map(|_| {
            let server = server.clone();
            std::thread::spawn(move || {
                server.stop(Duration::from_millis(500));
                server.stats().connections
            })
        })
        .collect();
    for s in stoppers {
        assert_eq!(
            s.join().unwrap(),
            0,
            "every stop returned after the teardown"
        );
    }
}

#[test]
fn the_listener_is_closed_when_the_stop_begins() {
    let server = start_server(Config::default());
    let address = addr(&server);
    server.stop(Duration::ZERO);
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "a new client is refused, not left in a backlog nobody accepts"
    );
    let again = wsqueue::Server::start(Config {
        listen: vec![address],
        ..Config::default()
    });
    assert!(
        again.is_ok(),
        "the port can be bound again before the server is dropped"
    );
}

#[test]
fn data_sent_before_close_reaches_a_slow_reader_in_full_before_the_close() {
    let server = start_server(Config {
        close_timeout: Duration::from_secs(1),
        ..Config::default()
    });
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    // More than kernel buffers hold, so the close frame waits in the queue.
    let chunk = vec![9u8; 1 << 20];
    for _ in 0..32 {
        let _ = server.send(id, MessageKind::Binary, &chunk).unwrap();
    }
    server.close(id, 1000, "after the data").unwrap();
    // A live reader that is slow at first (1.5 s for the first 10 MiB, longer than the
    // close timeout), then fast: the data keeps moving, and the close timeout counts
    // from when the close frame itself is written.
    for i in 0..32 {
        if i < 10 {
            std::thread::sleep(Duration::from_millis(150));
        }
        assert_eq!(c.read_message(), (OP_BINARY, chunk.clone()), "message {i}");
    }
    assert_eq!(c.read_close().0, 1000);
    c.send_close(1000, "");
    let info = expect_close(&server, id);
    assert!(info.clean, "{info:?}");
    assert_eq!(info.unsent_messages, 0);
}

#[test]
fn the_reply_to_a_message_before_a_protocol_error_precedes_the_failing_close() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    // One write: a valid message, then a frame with a reserved bit set, then a ping.
    let mut bytes = masked(true, OP_TEXT, b"Hello");
    let mut bad = masked(true, OP_TEXT, b"x");
    bad[0] |= 0x20;
    bytes.extend(bad);
    bytes.extend(masked(true, OP_PING, b"never answered"));
    c.send_raw(&bytes);
    let (kind, data) = expect_message(&server, id);
    assert_eq!(
        server.send(id, kind, &data).unwrap(),
        SendStatus::Accepted,
        "the connection still takes the reply"
    );
    // The next poll tells the engine the reply has been sent.
    let _ = server.poll(Some(Duration::from_millis(50)));
    assert_eq!(c.read_message(), (OP_TEXT, b"Hello".to_vec()));
    assert_eq!(c.read_close().0, 1002, "§7.1.7, after the reply");
    c.expect_eof();
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (1002, false));
}

#[test]
fn a_pong_for_a_ping_before_the_peers_close_is_sent_before_our_close_reply() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    let mut bytes = masked(true, OP_PING, b"p");
    bytes.extend(masked(true, OP_CLOSE, &close_payload(1000, "")));
    c.send_raw(&bytes);
    let pong = c.read_frame();
    assert_eq!((pong.opcode, pong.payload), (OP_PONG, b"p".to_vec()));
    assert_eq!(c.read_close().0, 1000);
    assert!(expect_close(&server, id).clean);
}
