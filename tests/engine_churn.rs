//! A thousand connections dropped without a closing handshake leave nothing behind.
//!
//! Alone in its own test binary on purpose: it counts the descriptors of the whole
//! process (/proc/self/fd), which other tests running in parallel threads would move.

mod support;

use support::*;
use wsqueue::{Config, EventKind};

const N: usize = 1000;

#[test]
fn a_thousand_abruptly_dropped_connections_give_1006_closes_and_leak_no_fds() {
    let server = start_server(Config::default());
    let mut bystander = Bystander::join(&server);
    bystander.assert_still_served(&server); // reactors, buffers and listener warmed up
    let fds_before = open_fds();
    let clients: Vec<WsClient> = (0..N).map(|_| WsClient::connect(addr(&server))).collect();
    let mut opened = Vec::with_capacity(N);
    while opened.len() < N {
        let e = expect_event(&server, |e| matches!(e.kind, EventKind::Open(_)), GUARD);
        opened.push(e.conn);
    }
    assert_eq!(server.stats().connections as usize, N + 1);
    let fds_open = open_fds();
    assert!(
        fds_open >= fds_before + 2 * N,
        "both ends of each connection are open: before {fds_before}, now {fds_open}"
    );
    drop(clients); // FIN without a close frame
    for id in &opened {
        let info = expect_close(&server, *id);
        // §7.1.5: no close frame was received.
        assert_eq!((info.code, info.clean), (1006, false), "{id:?}");
    }
    let s = server.stats();
    assert_eq!(s.connections, 1, "only the bystander remains: {s:?}");
    let fds_after = open_fds();
    assert!(
        fds_after <= fds_before + 2,
        "descriptors before {fds_before}, after {fds_after}"
    );
    bystander.assert_still_served(&server);
}
