//! Leader/follower (`src/engine/leader.rs`): an application thread waiting in a poll
//! runs the reactors' turns itself, and the reactor threads take over whenever it is
//! away. These tests pin down what must hold either way: nothing waits on the
//! application while it is away, several pollers share the work, every reactor is
//! served, and a stop completes whoever is polling.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use wsqueue::{Config, EventKind, MessageKind, Server};

/// The application leads once (a poll with a timeout), then stays away from its poll:
/// the engine still answers pings and completes new handshakes, because the reactor
/// threads take their turns back. (Without the take-back, the pong and the 101 would
/// wait for the application's next poll, which comes only after both arrived.)
#[test]
fn pings_and_handshakes_are_served_while_the_leader_is_away() {
    let server = start_server(Config::default());
    let mut client = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server); // polls with a timeout: this thread leads
    echo_once(&server, &mut client, id, b"led");

    // Away from the poll from here on.
    client.send_frame(true, OP_PING, b"are you there?");
    let pong = client.read_frame();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"are you there?"[..])
    );
    let mut second = WsClient::connect(addr(&server));
    second.send_binary(b"queued while away");

    // Back in the poll: what arrived meanwhile is there, in order.
    let (id2, _) = expect_open(&server);
    let (_, data) = expect_message(&server, id2);
    assert_eq!(data, b"queued while away");
    echo_once(&server, &mut client, id, b"led again");
    server.stop(Duration::from_secs(1));
}

/// More reactors than the default: the leader waits over all of them, and connections
/// spread across them all echo.
#[test]
fn a_leader_serves_every_reactor() {
    let server = Server::start(Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        reactor_threads: 3,
        ..Config::default()
    })
    .unwrap();
    let mut clients: Vec<_> = (0..12)
        .map(|_| {
            let client = WsClient::connect(addr(&server));
            let (id, _) = expect_open(&server);
            (client, id)
        })
        .collect();
    for round in 0..3 {
        for (i, (client, id)) in clients.iter_mut().enumerate() {
            echo_once(&server, client, *id, format!("{round}/{i}").as_bytes());
        }
    }
    server.stop(Duration::from_secs(1));
}

/// Two threads poll with timeouts at once (one leads, the other waits on the queue):
/// every message is delivered exactly once, and each connection's messages in order.
#[test]
fn two_pollers_share_the_events_exactly_once() {
    const CLIENTS: usize = 4;
    const MESSAGES: usize = 200;
    let server = Arc::new(start_server(Config::default()));
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let client = WsClient::connect(addr(&server));
            let (id, _) = expect_open(&server);
            (client, id)
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicUsize::new(0));
    let pollers: Vec<_> = (0..2)
        .map(|_| {
            let (server, done, received) = (server.clone(), done.clone(), received.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !done.load(Ordering::Acquire) {
                    for event in server.poll_batch(16, Some(Duration::from_millis(20))) {
                        if let EventKind::Message { data, .. } = event.kind {
                            seen.push((event.conn, data));
                            received.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                }
                seen
            })
        })
        .collect();
    for n in 0..MESSAGES {
        for (client, _) in clients.iter_mut() {
            client.send_binary(&(n as u32).to_be_bytes());
        }
    }
    // Bounded by the suite's guard: a lost message fails here, not by hanging.
    let start = std::time::Instant::now();
    while received.load(Ordering::Acquire) < CLIENTS * MESSAGES && start.elapsed() < GUARD {
        std::thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::Release);
    let seen: Vec<_> = pollers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    assert_eq!(seen.len(), CLIENTS * MESSAGES, "each message exactly once");
    for (_, id) in &clients {
        let mut numbers: Vec<u32> = seen
            .iter()
            .filter(|(conn, _)| conn == id)
            .map(|(_, data)| u32::from_be_bytes(data[..4].try_into().unwrap()))
            .collect();
        assert_eq!(numbers.len(), MESSAGES);
        numbers.sort_unstable();
        assert_eq!(numbers, (0..MESSAGES as u32).collect::<Vec<_>>());
    }
    server.stop(Duration::from_secs(1));
}

/// A thread blocked in a poll without a timeout (the leader) while another stops the
/// server: the client gets its 1001, the stop returns, and so does the poll.
#[test]
fn a_stop_completes_while_a_leader_polls_without_timeout() {
    let server = Arc::new(start_server(Config::default()));
    let mut client = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    echo_once(&server, &mut client, id, b"before the stop");
    let poller = {
        let server = server.clone();
        std::thread::spawn(move || {
            let mut events = Vec::new();
            loop {
                let batch = server.poll_batch(16, None);
                if batch.is_empty() {
                    return events; // stopped and drained
                }
                events.extend(batch);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50)); // let it sit in its poll
    let stopper = {
        let server = server.clone();
        std::thread::spawn(move || server.stop(Duration::from_secs(2)))
    };
    assert_eq!(client.read_close().0, 1001);
    client.send_close(1001, "");
    client.expect_eof();
    stopper.join().unwrap();
    let events = poller.join().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.conn == id && matches!(e.kind, EventKind::Close(_))),
        "the poller got the close: {:?}",
        events.iter().map(|e| &e.kind).collect::<Vec<_>>()
    );
    assert!(matches!(
        server.send(id, MessageKind::Text, b"after"),
        Err(wsqueue::Error::Stopped)
    ));
}
