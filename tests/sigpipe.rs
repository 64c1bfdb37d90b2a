//! Sending to a peer that reset the connection must be an error, never SIGPIPE: an
//! embedding program may keep SIGPIPE's default action (terminate). This binary
//! restores that default for its whole process (Rust's runtime ignores SIGPIPE), which
//! is why it holds this one test and nothing else.

mod support;

use std::os::fd::AsRawFd;
use std::time::Duration;

use support::*;
use wsqueue::{Config, Error, MessageKind};

#[test]
fn sending_to_a_reset_peer_returns_an_error_instead_of_killing_the_process() {
    // SAFETY: installs the default disposition; no handler code runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let server = start_server(Config::default());
    let c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    // SO_LINGER 0: close() sends a reset instead of a FIN.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            c.stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(c);
    let payload = vec![0u8; 64 << 10];
    let mut outcome = None;
    for _ in 0..10_000 {
        match server.send(id, MessageKind::Binary, &payload) {
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => {
                outcome = Some(e);
                break;
            }
        }
    }
    // Still alive, and told why.
    assert!(
        matches!(outcome, Some(Error::Closed | Error::NotFound)),
        "{outcome:?}"
    );
    let info = expect_close(&server, id);
    assert_eq!(info.code, 1006, "{info:?}");
}
