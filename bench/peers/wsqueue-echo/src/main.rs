//! Echo server on `wsqueue::Server` directly (no C ABI), for bench/run.sh.
//!   wsqueue-echo [PORT=0] [REACTOR_THREADS=1]   prints "listening on 127.0.0.1:PORT"
//! The same loop as examples/c/echo_server.c: poll batches of 64 on this thread, send
//! each message back, corked (one write per connection per batch, as wsq_poll does). Config otherwise default, as the C example's where it matters
//! for 32-byte messages. Runs until killed.
use std::net::SocketAddr;

use wsqueue::{Config, Error, EventKind, Server};

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map(|p| p.parse().expect("port")).unwrap_or(0);
    let reactor_threads: usize = args
        .next()
        .map(|t| t.parse().expect("threads"))
        .unwrap_or(1);
    let config = Config {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        reactor_threads,
        ..Config::default()
    };
    let server = Server::start(config).expect("server start");
    println!("listening on 127.0.0.1:{}", server.port());
    let mut events = Vec::with_capacity(64);
    loop {
        events.clear();
        server.poll_into(&mut events, 64, None);
        // The next poll_into writes what this batch corked.
        server.cork();
        for ev in &events {
            if let EventKind::Message { kind, data } = &ev.kind {
                match server.send(ev.conn, *kind, data) {
                    // A closing peer: its Close event follows.
                    Ok(_) | Err(Error::Closed) | Err(Error::NotFound) => {}
                    // A client that does not read its echoes; the load generator reads them all,
                    // so this would be a finding worth seeing, not something to hide.
                    Err(e) => eprintln!("wsqueue-echo: send to {:?}: {e}", ev.conn),
                }
            }
        }
    }
}
