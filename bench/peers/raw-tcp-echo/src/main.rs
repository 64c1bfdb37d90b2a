//! Raw TCP echo: every byte read is written back, unchanged, on one epoll thread.
//!   raw-tcp-echo [PORT=0]   prints "listening on 127.0.0.1:PORT"
//!
//! The load generator's raw mode sends this server the very bytes it sends a WebSocket
//! server (masked frames) and expects them back byte for byte, so this is what moving
//! the same bytes through the same loopback costs with no protocol at all: the ceiling
//! no WebSocket server can pass.
//!
//! Backpressure: bytes that cannot be written yet stay in the connection's buffer and
//! the server stops reading that connection until they are gone, so a client that does
//! not read cannot make it grow without bound (at most one read chunk is ever pending).
use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// One read's worth: also the most a connection ever holds unsent.
const CHUNK: usize = 256 * 1024;

struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet written back: `buf[pos..len]`.
    buf: Vec<u8>,
    pos: usize,
    len: usize,
}

enum Step {
    /// The socket would block: wait for the next event.
    Wait,
    /// EOF or an error: drop the connection.
    Gone,
}

impl Conn {
    /// Writes what is pending; true when nothing is left.
    fn flush(&mut self) -> Result<bool, ()> {
        while self.pos < self.len {
            match self.stream.write(&self.buf[self.pos..self.len]) {
                Ok(0) => return Err(()),
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        self.pos = 0;
        self.len = 0;
        Ok(true)
    }

    /// Echoes until the socket is drained (edge-triggered epoll). A read shorter than
    /// the buffer emptied the socket: any byte arriving later raises a new edge, so
    /// there is no need to pay a second read just to see it would block. Unless the
    /// event said the peer closed (`closed`): its EOF, already there, raises no new
    /// edge, so then reading goes on until EOF.
    fn pump(&mut self, closed: bool) -> Step {
        let mut drained = false;
        loop {
            match self.flush() {
                Ok(true) if drained => return Step::Wait,
                Ok(true) => {}
                Ok(false) => return Step::Wait, // the writable event resumes us
                Err(()) => return Step::Gone,
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) => return Step::Gone,
                Ok(n) => {
                    self.len = n;
                    drained = n < self.buf.len() && !closed;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Gone,
            }
        }
    }
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse().expect("port"))
        .unwrap_or(0);
    let mut poll = Poll::new().expect("epoll");
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into()).expect("bind 127.0.0.1");
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("register listener");
    println!(
        "listening on {}",
        listener.local_addr().expect("local addr")
    );
    // Scripts wait for that line, and stdout is a pipe.
    io::stdout().flush().ok();

    // Slab of connections: the token is the index; freed slots are reused.
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            panic!("epoll_wait: {e}");
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let slot = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry()
                                .register(
                                    &mut stream,
                                    Token(slot),
                                    Interest::READABLE | Interest::WRITABLE,
                                )
                                .expect("register");
                            conns[slot] = Some(Conn {
                                stream,
                                buf: vec![0; CHUNK],
                                pos: 0,
                                len: 0,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // Out of descriptors and the like: try again on the next event.
                        Err(_) => break,
                    }
                }
                continue;
            }
            let slot = ev.token().0;
            let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if let Step::Gone = conn.pump(ev.is_read_closed() || ev.is_error()) {
                let mut conn = conns[slot].take().unwrap();
                let _ = poll.registry().deregister(&mut conn.stream);
                free.push(slot);
            }
        }
    }
}
