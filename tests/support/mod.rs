//! Shared helpers for the engine integration tests (`tests/engine_*.rs`): a server on an
//! ephemeral 127.0.0.1 port, a minimal blocking WebSocket client over
//! `std::net::TcpStream`, raw frame and HTTP byte builders, and event waiters.
//!
//! Every wait is bounded by [`GUARD`], which only keeps a broken build from hanging the
//! suite; no test asserts how long anything took.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use wsqueue::{CloseInfo, Config, ConnId, Event, EventKind, MessageKind, RequestInfo, Server};

pub mod tls;

/// Hang guard for every blocking wait.
pub const GUARD: Duration = Duration::from_secs(10);

/// The nonce of RFC 6455 §1.3 and the accept value the RFC derives from it (§4.2.2).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

// ---- server ---------------------------------------------------------------------------

/// Starts `config` on an ephemeral IPv4 loopback port with two reactors (the machine has
/// two cores, and two reactors exercise the cross-thread paths).
pub fn start_server(config: Config) -> Server {
    Server::start(Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        reactor_threads: 2,
        ..config
    })
    .expect("server starts")
}

pub fn addr(server: &Server) -> SocketAddr {
    server.local_addrs()[0]
}

thread_local! {
    /// Events polled while waiting for another one, per server (keyed by its event fd,
    /// unique among live servers), so that waiting for one connection's event never
    /// loses another's. Each test runs on its own thread, so nothing leaks between tests.
    static SET_ASIDE: RefCell<Vec<(RawFd, Event)>> = const { RefCell::new(Vec::new()) };
}

/// The first event matching `pred`, looking at events set aside by earlier waits before
/// polling; events that do not match are set aside for later waits. Panics after
/// `timeout`.
pub fn expect_event(
    server: &Server,
    mut pred: impl FnMut(&Event) -> bool,
    timeout: Duration,
) -> Event {
    let key = server.event_fd();
    let earlier = SET_ASIDE.with(|s| {
        let mut s = s.borrow_mut();
        let pos = s.iter().position(|(k, e)| *k == key && pred(e));
        pos.map(|i| s.remove(i).1)
    });
    if let Some(e) = earlier {
        return e;
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let waiting: Vec<String> = SET_ASIDE.with(|s| {
                s.borrow()
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, e)| format!("{e:?}"))
                    .collect()
            });
            panic!("expected event did not arrive; other events seen: {waiting:?}");
        }
        if let Some(e) = server.poll(Some(left.min(Duration::from_millis(100)))) {
            if pred(&e) {
                return e;
            }
            SET_ASIDE.with(|s| s.borrow_mut().push((key, e)));
        }
    }
}

/// Everything set aside or already queued, without waiting.
pub fn drain_events(server: &Server) -> Vec<Event> {
    let key = server.event_fd();
    let mut out: Vec<Event> = SET_ASIDE.with(|s| {
        let mut s = s.borrow_mut();
        let (mine, others): (Vec<_>, Vec<_>) = s.drain(..).partition(|(k, _)| *k == key);
        *s = others;
        mine.into_iter().map(|(_, e)| e).collect()
    });
    while let Some(e) = server.poll(Some(Duration::ZERO)) {
        out.push(e);
    }
    out
}

/// The next `Open` event: (connection, request).
pub fn expect_open(server: &Server) -> (ConnId, Box<RequestInfo>) {
    match expect_event(server, |e| matches!(e.kind, EventKind::Open(_)), GUARD) {
        Event {
            conn,
            kind: EventKind::Open(info),
            ..
        } => (conn, info),
        _ => unreachable!(),
    }
}

/// The next message of `conn`.
pub fn expect_message(server: &Server, conn: ConnId) -> (MessageKind, Vec<u8>) {
    let e = expect_event(
        server,
        |e| e.conn == conn && matches!(e.kind, EventKind::Message { .. }),
        GUARD,
    );
    match e.kind {
        EventKind::Message { kind, data } => (kind, data),
        _ => unreachable!(),
    }
}

/// The `Close` event of `conn`.
pub fn expect_close(server: &Server, conn: ConnId) -> CloseInfo {
    let e = expect_event(
        server,
        |e| e.conn == conn && matches!(e.kind, EventKind::Close(_)),
        GUARD,
    );
    match e.kind {
        EventKind::Close(info) => info,
        _ => unreachable!(),
    }
}

/// `poll(2)` on one descriptor for readability.
pub fn fd_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack, count 1.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

/// Open file descriptors of this whole process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// ---- raw bytes --------------------------------------------------------------------------

/// A masking key that differs per frame, so the server's unmasking offset logic is
/// exercised with more than one key (§5.3: keys must be unpredictable; any key is legal).
fn next_mask() -> [u8; 4] {
    static SEED: AtomicU32 = AtomicU32::new(0x9E37_79B9);
    let x = SEED.fetch_add(0x6D2B_79F5, Ordering::Relaxed);
    let x = (x ^ (x >> 15)).wrapping_mul(0x2C1B_3C6D);
    (x ^ (x >> 12)).to_be_bytes()
}

/// Encodes one frame (§5.2) with the minimal length form; `mask` None sends it unmasked.
pub fn frame_bytes(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push((if fin { 0x80 } else { 0 }) | (rsv & 7) << 4 | (opcode & 0x0F));
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame as a conforming client sends it: masked (§5.3), no RSV bits.
pub fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_bytes(fin, 0, opcode, Some(next_mask()), payload)
}

/// A close frame body: code then UTF-8 reason (§5.5.1).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// The opening handshake of a conforming client (§4.1) with extra header lines.
pub fn upgrade_request(path: &str, extra_headers: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    )
}

pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(GUARD)).unwrap();
    s.set_write_timeout(Some(GUARD)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// An HTTP response as the client saw it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Status line and header lines, CRLFs included.
    pub head: String,
    /// Bytes after the head until EOF (or until the read failed).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one response head byte by byte, so nothing after it is consumed. Returns
/// (status, head); status 0 if the connection ended first.
pub fn read_head(s: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Reads until EOF (or a reset, which ends the stream all the same).
pub fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no EOF within the guard; got {} bytes", all.len())
            }
            Err(_) => return all,
        }
    }
}

/// Sends raw request bytes on a fresh connection and reads the whole response; the
/// server closes after any non-101 answer. Write errors are ignored: a server may
/// answer and stop reading before a deliberately oversize request is fully sent.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut s = tcp(addr);
    let _ = s.write_all(request);
    let (status, head) = read_head(&mut s);
    let body = read_to_eof(&mut s);
    HttpResponse { status, head, body }
}

// ---- WebSocket client -----------------------------------------------------------------

/// One frame from the server, with its wire form where tests check it.
#[derive(Debug)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    /// The 7-bit length field as sent (≤125, 126 or 127).
    pub len_field: u8,
    pub payload: Vec<u8>,
}

/// Reads one frame the server sent over `stream` (plain or TLS); None on EOF or a
/// reset. Panics when the guard expires or the server breaks §5.1 (masked server
/// frame) or §5.2 (non-minimal length).
pub fn read_server_frame(stream: &mut impl Read) -> Option<Frame> {
    let mut h = [0u8; 2];
    if let Err(e) = stream.read_exact(&mut h) {
        assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "no frame within the guard"
        );
        return None;
    }
    assert_eq!(h[1] & 0x80, 0, "§5.1: a server must not mask its frames");
    let len_field = h[1] & 0x7F;
    let len = match len_field {
        126 => {
            let mut e = [0u8; 2];
            stream.read_exact(&mut e).ok()?;
            let n = u16::from_be_bytes(e) as u64;
            assert!(n >= 126, "§5.2: minimal length encoding");
            n
        }
        127 => {
            let mut e = [0u8; 8];
            stream.read_exact(&mut e).ok()?;
            let n = u64::from_be_bytes(e);
            assert!(n > 0xFFFF, "§5.2: minimal length encoding");
            n
        }
        n => n as u64,
    };
    let mut payload = vec![0; len as usize];
    stream.read_exact(&mut payload).ok()?;
    Some(Frame {
        fin: h[0] & 0x80 != 0,
        rsv: (h[0] >> 4) & 7,
        opcode: h[0] & 0x0F,
        len_field,
        payload,
    })
}

/// A minimal blocking WebSocket client: enough of RFC 6455 to drive the server, and
/// strict about what the server sends (unmasked frames, minimal lengths).
pub struct WsClient {
    pub stream: TcpStream,
    /// The 101 response head.
    pub response_head: String,
}

impl WsClient {
    pub fn connect(addr: SocketAddr) -> WsClient {
        Self::connect_to(addr, "/", "")
    }

    /// Connects and completes the opening handshake, checking the 101 (§4.2.2).
    pub fn connect_to(addr: SocketAddr, path: &str, extra_headers: &str) -> WsClient {
        let mut stream = tcp(addr);
        stream
            .write_all(upgrade_request(path, extra_headers).as_bytes())
            .unwrap();
        Self::finish_handshake(stream)
    }

    /// Reads the server's answer to an upgrade request already sent on `stream`.
    pub fn finish_handshake(mut stream: TcpStream) -> WsClient {
        let (status, head) = read_head(&mut stream);
        assert_eq!(status, 101, "upgrade refused: {head}");
        let accept = HttpResponse {
            status,
            head: head.clone(),
            body: Vec::new(),
        };
        assert_eq!(
            accept.header("Sec-WebSocket-Accept"),
            Some(ACCEPT),
            "§4.2.2: {head}"
        );
        WsClient {
            stream,
            response_head: head,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.stream
            .write_all(&masked(fin, opcode, payload))
            .unwrap();
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, OP_TEXT, text.as_bytes());
    }

    pub fn send_binary(&mut self, data: &[u8]) {
        self.send_frame(true, OP_BINARY, data);
    }

    pub fn send_close(&mut self, code: u16, reason: &str) {
        self.send_frame(true, OP_CLOSE, &close_payload(code, reason));
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one frame; None on EOF or a reset (see [`read_server_frame`]).
    pub fn try_read_frame(&mut self) -> Option<Frame> {
        read_server_frame(&mut self.stream)
    }

    pub fn read_frame(&mut self) -> Frame {
        self.try_read_frame().expect("a frame, not EOF")
    }

    /// Reads the next data message (reassembling fragments), answering pings on the way.
    pub fn read_message(&mut self) -> (u8, Vec<u8>) {
        let mut kind = None;
        let mut data = Vec::new();
        loop {
            let f = self.read_frame();
            match f.opcode {
                OP_PING => self.send_frame(true, OP_PONG, &f.payload),
                OP_PONG => {}
                OP_CLOSE => panic!("close while a message was expected: {f:?}"),
                op => {
                    if kind.is_none() {
                        assert_ne!(op, OP_CONT, "§5.4: continuation without a start");
                        kind = Some(op);
                    }
                    data.extend_from_slice(&f.payload);
                    if f.fin {
                        return (kind.unwrap(), data);
                    }
                }
            }
        }
    }

    /// Reads frames until a close frame: (code, reason); code 1005 for an empty body.
    /// Panics if the connection ends first.
    pub fn read_close(&mut self) -> (u16, String) {
        loop {
            let f = self
                .try_read_frame()
                .expect("a close frame before the connection ended");
            if f.opcode == OP_CLOSE {
                if f.payload.len() < 2 {
                    assert!(f.payload.is_empty(), "§5.5.1: a 1-byte close body");
                    return (1005, String::new());
                }
                let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                let reason =
                    String::from_utf8(f.payload[2..].to_vec()).expect("§5.5.1: UTF-8 reason");
                return (code, reason);
            }
        }
    }

    /// Reads until the server closes TCP, returning what came before EOF.
    pub fn expect_eof(&mut self) -> Vec<u8> {
        read_to_eof(&mut self.stream)
    }

    /// Half-closes our side, as a client does after the closing handshake.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    pub fn raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

// ---- "the server still serves others" ---------------------------------------------------

/// A well-behaved client opened before a misbehaving one, to show the misbehaviour
/// disturbed nobody else.
pub struct Bystander {
    pub client: WsClient,
    pub id: ConnId,
}

impl Bystander {
    pub fn join(server: &Server) -> Bystander {
        let client = WsClient::connect_to(addr(server), "/bystander", "");
        let (id, _) = expect_open(server);
        Bystander { client, id }
    }

    /// The existing connection still round-trips a message through the application,
    /// and a brand-new connection opens and round-trips too.
    pub fn assert_still_served(&mut self, server: &Server) {
        echo_once(server, &mut self.client, self.id, b"still there?");
        let mut fresh = WsClient::connect_to(addr(server), "/newcomer", "");
        let (id, _) = expect_open(server);
        echo_once(server, &mut fresh, id, b"newcomer");
        // Closed properly and waited for, so callers can count descriptors afterwards.
        fresh.send_close(1000, "");
        assert_eq!(fresh.read_close().0, 1000);
        fresh.expect_eof();
        drop(fresh);
        let info = expect_close(server, id);
        assert_eq!((info.code, info.clean), (1000, true));
    }
}

/// Client sends `payload` as binary, the application echoes it with `server.send`, the
/// client gets it back intact.
pub fn echo_once(server: &Server, client: &mut WsClient, id: ConnId, payload: &[u8]) {
    client.send_binary(payload);
    let (kind, data) = expect_message(server, id);
    assert_eq!((kind, data.as_slice()), (MessageKind::Binary, payload));
    server.send(id, MessageKind::Binary, &data).unwrap();
    assert_eq!(client.read_message(), (OP_BINARY, payload.to_vec()));
}
