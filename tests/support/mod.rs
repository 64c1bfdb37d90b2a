//! Shared helpers for the engine integration tests: a server on port 0 and a minimal
//! blocking WebSocket client over std::net::TcpStream.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use wsqueue::{Config, Event, EventKind, Server};

/// Generous hang guard: never a timed assertion.
pub const GUARD: Duration = Duration::from_secs(10);

pub fn start(config: Config) -> Server {
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

/// Polls until `pred` matches an event (others are dropped); panics after GUARD.
pub fn expect_event(server: &Server, mut pred: impl FnMut(&Event) -> bool) -> Event {
    let deadline = Instant::now() + GUARD;
    while Instant::now() < deadline {
        if let Some(e) = server.poll(Some(Duration::from_millis(50))) {
            if pred(&e) {
                return e;
            }
        }
    }
    panic!("expected event did not arrive");
}

pub fn expect_open(server: &Server) -> Event {
    expect_event(server, |e| matches!(e.kind, EventKind::Open(_)))
}

pub fn expect_close(server: &Server, conn: wsqueue::ConnId) -> wsqueue::CloseInfo {
    match expect_event(server, |e| {
        e.conn == conn && matches!(e.kind, EventKind::Close(_))
    })
    .kind
    {
        EventKind::Close(info) => info,
        _ => unreachable!(),
    }
}

pub struct Client {
    pub stream: TcpStream,
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(GUARD)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends raw bytes and reads the HTTP response head: (status, head text).
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = tcp(addr);
    s.write_all(request).unwrap();
    read_head(&mut s)
}

pub fn read_head(s: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).unwrap_or(0) == 0 {
            break;
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

impl Client {
    pub fn connect(addr: SocketAddr, path: &str) -> Client {
        Self::connect_with(addr, path, "")
    }

    pub fn connect_with(addr: SocketAddr, path: &str, extra: &str) -> Client {
        let mut stream = tcp(addr);
        stream
            .write_all(upgrade_request(path, extra).as_bytes())
            .unwrap();
        let (status, head) = read_head(&mut stream);
        assert_eq!(status, 101, "{head}");
        Client { stream }
    }

    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.stream
            .write_all(&frame(fin, 0, opcode, true, payload))
            .unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one server frame: (fin, opcode, payload).
    pub fn read_frame(&mut self) -> Option<(bool, u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        self.stream.read_exact(&mut h).ok()?;
        let mut len = (h[1] & 0x7F) as u64;
        if len == 126 {
            let mut e = [0u8; 2];
            self.stream.read_exact(&mut e).ok()?;
            len = u16::from_be_bytes(e) as u64;
        } else if len == 127 {
            let mut e = [0u8; 8];
            self.stream.read_exact(&mut e).ok()?;
            len = u64::from_be_bytes(e);
        }
        let mut payload = vec![0; len as usize];
        self.stream.read_exact(&mut payload).ok()?;
        Some((h[0] & 0x80 != 0, h[0] & 0x0F, payload))
    }

    /// Reads frames until a close frame; returns its code.
    pub fn read_close_code(&mut self) -> Option<u16> {
        loop {
            let (_, op, p) = self.read_frame()?;
            if op == 8 {
                return Some(if p.len() >= 2 {
                    u16::from_be_bytes([p[0], p[1]])
                } else {
                    1005
                });
            }
        }
    }

    /// True once the server has closed TCP (EOF).
    pub fn at_eof(&mut self) -> bool {
        let mut b = [0u8; 1024];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Encodes a frame; `masked` as a client must (§5.3).
pub fn frame(fin: bool, rsv: u8, opcode: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode];
    let m = if masked { 0x80 } else { 0 };
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
    if masked {
        let key = [0xA1, 0xB2, 0xC3, 0xD4];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
