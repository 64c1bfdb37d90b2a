//! One load-generator thread: drives its share of the connections with non-blocking
//! sockets on one epoll instance (mio, edge-triggered). Each connection keeps `window`
//! messages in flight and sends the next one as soon as an echo comes back, so the
//! connections run independently of each other (no lock-step rounds).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::wire::{self, Rng, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT};

pub struct Plan {
    pub addr: SocketAddr,
    pub conn_ids: Vec<u64>,
    pub size: usize,
    pub window: usize,
    pub warmup: Duration,
    pub secs: Duration,
    /// How long after the measured period the in-flight echoes may take to arrive.
    pub drain_timeout: Duration,
    pub connect_timeout: Duration,
}

/// What one thread saw. Messages and latencies cover only the measured period.
#[derive(Default)]
pub struct Report {
    pub opened: usize,
    pub messages: u64,
    pub bytes: u64,
    pub latencies_ns: Vec<u32>,
    /// Every echo received and verified, warm-up and drain included.
    pub verified: u64,
    /// Messages sent whose echo never came (connection failed or drain timed out).
    pub lost: u64,
    pub clean_closes: usize,
    /// The longest time, within the measured period, that this thread's connections
    /// together went without a single echo while messages were in flight.
    pub max_gap: Duration,
    pub errors: Vec<String>,
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum State {
    Connecting,
    Handshaking,
    Open,
    /// We sent our close frame; waiting for the server's and for EOF.
    Closing,
    Done,
}

struct Conn {
    id: u64,
    stream: TcpStream,
    state: State,
    accept: String,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    next_send: u64,
    next_recv: u64,
    /// Send time of each message in flight, oldest first.
    sent_at: VecDeque<Instant>,
    /// Opcode and bytes of a fragmented message being reassembled.
    frag: Option<(u8, Vec<u8>)>,
    got_close: Option<u16>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Connect,
    Run,
    Drain,
    Close,
}

struct Ctx {
    rng: Rng,
    expected: Vec<u8>,
    payload: Vec<u8>,
    phase: Phase,
    measure_from: Instant,
    measure_to: Instant,
    report: Report,
    last_echo: Instant,
}

const READ_CHUNK: usize = 64 * 1024;

pub fn run(plan: Plan, barrier: Arc<Barrier>) -> Report {
    let mut poll = Poll::new().expect("epoll");
    let mut events = Events::with_capacity(1024);
    let now = Instant::now();
    let mut ctx = Ctx {
        rng: Rng::new(plan.conn_ids.first().copied().unwrap_or(0) ^ 0x5EED),
        expected: vec![0; plan.size],
        payload: vec![0; plan.size],
        phase: Phase::Connect,
        measure_from: now,
        measure_to: now,
        report: Report::default(),
        last_echo: now,
    };
    let mut conns: Vec<Conn> = Vec::with_capacity(plan.conn_ids.len());
    for (i, &id) in plan.conn_ids.iter().enumerate() {
        match TcpStream::connect(plan.addr) {
            Ok(mut stream) => {
                let _ = stream.set_nodelay(true);
                poll.registry()
                    .register(
                        &mut stream,
                        Token(i),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .expect("register");
                let (key, accept) = wire::handshake_key(&mut ctx.rng);
                let host = plan.addr.to_string();
                conns.push(Conn {
                    id,
                    stream,
                    state: State::Connecting,
                    accept,
                    rbuf: vec![0; READ_CHUNK],
                    rstart: 0,
                    rend: 0,
                    wbuf: wire::upgrade_request(&host, &key),
                    wpos: 0,
                    next_send: 0,
                    next_recv: 0,
                    sent_at: VecDeque::with_capacity(plan.window),
                    frag: None,
                    got_close: None,
                });
            }
            Err(e) => ctx.report.errors.push(format!("conn {id}: connect: {e}")),
        }
    }

    // Connect phase: every connection upgraded (or failed) before the clock starts.
    let deadline = Instant::now() + plan.connect_timeout;
    while conns
        .iter()
        .any(|c| matches!(c.state, State::Connecting | State::Handshaking))
    {
        let now = Instant::now();
        if now >= deadline {
            for c in conns
                .iter_mut()
                .filter(|c| c.state != State::Open && c.state != State::Done)
            {
                fail(
                    &mut ctx,
                    c,
                    format!(
                        "no upgrade within {:?} (state {:?})",
                        plan.connect_timeout, c.state
                    ),
                );
            }
            break;
        }
        poll_once(&mut poll, &mut events, &mut conns, &mut ctx, deadline - now);
    }
    ctx.report.opened = conns.iter().filter(|c| c.state == State::Open).count();

    // All threads start loading together, after the main thread joins the barrier too.
    barrier.wait();
    let start = Instant::now();
    ctx.measure_from = start + plan.warmup;
    ctx.measure_to = ctx.measure_from + plan.secs;
    ctx.phase = Phase::Run;
    ctx.last_echo = start;
    for c in conns.iter_mut().filter(|c| c.state == State::Open) {
        for _ in 0..plan.window {
            queue_message(&mut ctx, c, start);
        }
        flush(&mut ctx, c);
    }

    let mut drain_deadline = None;
    let mut close_deadline = None;
    loop {
        let now = Instant::now();
        if ctx.phase == Phase::Run && now >= ctx.measure_to {
            ctx.phase = Phase::Drain;
            drain_deadline = Some(now + plan.drain_timeout);
        }
        if ctx.phase == Phase::Drain {
            let in_flight = conns
                .iter()
                .filter(|c| c.state == State::Open)
                .any(|c| !c.sent_at.is_empty());
            if !in_flight || now >= drain_deadline.unwrap() {
                for c in conns.iter_mut().filter(|c| c.state == State::Open) {
                    if !c.sent_at.is_empty() {
                        let n = c.sent_at.len();
                        fail(
                            &mut ctx,
                            c,
                            format!(
                            "{n} echoes still missing {:?} after the run (next expected seq {})",
                            plan.drain_timeout, c.next_recv),
                        );
                        continue;
                    }
                    // A normal closure, RFC 6455 §7.1.2; the server must answer in kind.
                    let key = mask_key(&mut ctx.rng);
                    wire::push_frame(&mut c.wbuf, OP_CLOSE, &1000u16.to_be_bytes(), key);
                    c.state = State::Closing;
                    flush(&mut ctx, c);
                }
                ctx.phase = Phase::Close;
                close_deadline = Some(now + plan.drain_timeout);
            }
        }
        if ctx.phase == Phase::Close {
            if !conns.iter().any(|c| c.state == State::Closing) {
                break;
            }
            if now >= close_deadline.unwrap() {
                for c in conns.iter_mut().filter(|c| c.state == State::Closing) {
                    let what = match c.got_close {
                        Some(_) => "server answered our close but did not close TCP",
                        None => "server did not answer our close frame",
                    };
                    fail(
                        &mut ctx,
                        c,
                        format!("{what} within {:?}", plan.drain_timeout),
                    );
                }
                break;
            }
        }
        if ctx.phase == Phase::Run && now >= ctx.measure_from {
            let in_flight = conns
                .iter()
                .any(|c| c.state == State::Open && !c.sent_at.is_empty());
            if in_flight {
                let gap = now.duration_since(ctx.last_echo.max(ctx.measure_from));
                ctx.report.max_gap = ctx.report.max_gap.max(gap);
            }
        }
        let next = match ctx.phase {
            Phase::Run => ctx.measure_to,
            Phase::Drain => drain_deadline.unwrap(),
            _ => close_deadline.unwrap(),
        };
        // Wake at least every 10 ms so that gaps between echoes are seen while they last.
        let timeout = next
            .saturating_duration_since(now)
            .min(Duration::from_millis(10));
        poll_once(&mut poll, &mut events, &mut conns, &mut ctx, timeout);
    }
    ctx.report
}

fn poll_once(
    poll: &mut Poll,
    events: &mut Events,
    conns: &mut [Conn],
    ctx: &mut Ctx,
    timeout: Duration,
) {
    if let Err(e) = poll.poll(events, Some(timeout)) {
        if e.kind() != io::ErrorKind::Interrupted {
            panic!("epoll_wait: {e}");
        }
        return;
    }
    for ev in events.iter() {
        let c = &mut conns[ev.token().0];
        if c.state == State::Done {
            continue;
        }
        if c.state == State::Connecting {
            match c.stream.take_error() {
                Ok(Some(e)) | Err(e) => {
                    fail(ctx, c, format!("connect: {e}"));
                    continue;
                }
                Ok(None) => {}
            }
            match c.stream.peer_addr() {
                Ok(_) => c.state = State::Handshaking,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                Err(e) => {
                    fail(ctx, c, format!("connect: {e}"));
                    continue;
                }
            }
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            read_all(ctx, c);
        }
        if c.state != State::Done {
            flush(ctx, c);
        }
    }
}

fn mask_key(rng: &mut Rng) -> [u8; 4] {
    (rng.next_u64() as u32).to_ne_bytes()
}

fn queue_message(ctx: &mut Ctx, c: &mut Conn, now: Instant) {
    wire::fill_payload(c.id, c.next_send, &mut ctx.payload);
    let key = mask_key(&mut ctx.rng);
    wire::push_frame(&mut c.wbuf, OP_BINARY, &ctx.payload, key);
    c.next_send += 1;
    c.sent_at.push_back(now);
}

fn fail(ctx: &mut Ctx, c: &mut Conn, why: String) {
    ctx.report.lost += c.sent_at.len() as u64;
    c.sent_at.clear();
    ctx.report.errors.push(format!("conn {}: {why}", c.id));
    c.state = State::Done;
}

fn flush(ctx: &mut Ctx, c: &mut Conn) {
    while c.wpos < c.wbuf.len() {
        match c.stream.write(&c.wbuf[c.wpos..]) {
            Ok(0) => {
                fail(ctx, c, "write returned 0".into());
                return;
            }
            Ok(n) => c.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            // Not connected yet: the writable event after connect() completes retries.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                fail(ctx, c, format!("write: {e}"));
                return;
            }
        }
    }
    c.wbuf.clear();
    c.wpos = 0;
}

/// Reads until the socket would block (edge-triggered), handling every complete frame.
fn read_all(ctx: &mut Ctx, c: &mut Conn) {
    loop {
        if c.rstart == c.rend {
            c.rstart = 0;
            c.rend = 0;
        } else if c.rend == c.rbuf.len() {
            // Out of room: move the partial frame to the front, grow if it fills all.
            c.rbuf.copy_within(c.rstart..c.rend, 0);
            c.rend -= c.rstart;
            c.rstart = 0;
            if c.rend == c.rbuf.len() {
                c.rbuf.resize(c.rbuf.len() * 2, 0);
            }
        }
        let end = c.rend;
        match c.stream.read(&mut c.rbuf[end..]) {
            Ok(0) => {
                on_eof(ctx, c);
                return;
            }
            Ok(n) => {
                c.rend += n;
                let now = Instant::now();
                if let Err(why) = process(ctx, c, now) {
                    fail(ctx, c, why);
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if c.state == State::Closing && c.got_close.is_some() {
                    // A reset after the close handshake still ends it.
                    ctx.report.clean_closes += 1;
                    c.state = State::Done;
                } else {
                    fail(ctx, c, format!("read: {e}"));
                }
                return;
            }
        }
    }
}

fn on_eof(ctx: &mut Ctx, c: &mut Conn) {
    match (c.state, c.got_close) {
        (State::Closing, Some(1000)) => {
            ctx.report.clean_closes += 1;
            c.state = State::Done;
        }
        (State::Closing, Some(code)) => fail(
            ctx,
            c,
            format!("server answered our close 1000 with {code}"),
        ),
        (state, _) => fail(
            ctx,
            c,
            format!("server closed TCP unexpectedly (state {state:?})"),
        ),
    }
}

/// Handles every complete unit in the read buffer: the handshake answer, then frames.
fn process(ctx: &mut Ctx, c: &mut Conn, now: Instant) -> Result<(), String> {
    if c.state == State::Handshaking {
        let data = &c.rbuf[c.rstart..c.rend];
        let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            if data.len() > 16 * 1024 {
                return Err("handshake answer head over 16 KiB".into());
            }
            return Ok(());
        };
        wire::check_upgrade_response(&data[..pos + 4], &c.accept)?;
        c.rstart += pos + 4;
        c.state = State::Open;
    }
    loop {
        let data = &c.rbuf[c.rstart..c.rend];
        let Some(h) = wire::decode_head(data)? else {
            break;
        };
        let total = h.header_len + h.payload_len;
        if data.len() < total {
            if total > c.rbuf.len() {
                // Make room for this frame in one piece on the next read.
                c.rbuf.resize(total.next_power_of_two(), 0);
            }
            break;
        }
        let (start, end) = (c.rstart + h.header_len, c.rstart + total);
        c.rstart += total;
        match h.opcode {
            OP_PING => {
                let payload = c.rbuf[start..end].to_vec();
                let key = mask_key(&mut ctx.rng);
                wire::push_frame(&mut c.wbuf, OP_PONG, &payload, key);
            }
            OP_PONG => {}
            OP_CLOSE => {
                let body = &c.rbuf[start..end];
                let code = if body.len() >= 2 {
                    u16::from_be_bytes([body[0], body[1]])
                } else {
                    1005
                };
                if c.state != State::Closing {
                    let reason = String::from_utf8_lossy(body.get(2..).unwrap_or(&[])).into_owned();
                    return Err(format!(
                        "server closed the connection: code {code} {reason:?}"
                    ));
                }
                c.got_close = Some(code);
            }
            OP_TEXT | OP_BINARY => {
                if c.frag.is_some() {
                    return Err("new data frame inside a fragmented message".into());
                }
                if h.fin {
                    on_message(ctx, c, h.opcode, start, end, now)?;
                } else {
                    c.frag = Some((h.opcode, c.rbuf[start..end].to_vec()));
                }
            }
            OP_CONT => {
                let Some((op, mut bytes)) = c.frag.take() else {
                    return Err("continuation frame without a message to continue".into());
                };
                bytes.extend_from_slice(&c.rbuf[start..end]);
                if h.fin {
                    // Reassembled messages are rare here; verify them from their own buffer.
                    let saved = std::mem::replace(&mut c.rbuf, bytes);
                    let len = c.rbuf.len();
                    let r = on_message(ctx, c, op, 0, len, now);
                    c.rbuf = saved;
                    r?;
                } else {
                    c.frag = Some((op, bytes));
                }
            }
            _ => unreachable!("decode_head rejects other opcodes"),
        }
    }
    Ok(())
}

/// One complete echo in `c.rbuf[start..end]`: verify it, time it, send the next one.
fn on_message(
    ctx: &mut Ctx,
    c: &mut Conn,
    opcode: u8,
    start: usize,
    end: usize,
    now: Instant,
) -> Result<(), String> {
    let Some(sent) = c.sent_at.pop_front() else {
        return Err(format!(
            "unsolicited message of {} bytes (nothing in flight)",
            end - start
        ));
    };
    if opcode != OP_BINARY {
        return Err(format!(
            "echo of seq {} came back with opcode {opcode:#x}, sent binary",
            c.next_recv
        ));
    }
    let got = &c.rbuf[start..end];
    wire::fill_payload(c.id, c.next_recv, &mut ctx.expected);
    if got != ctx.expected.as_slice() {
        let head = got.len().min(8);
        let mut seq = [0u8; 8];
        seq[..head].copy_from_slice(&got[..head]);
        return Err(format!(
            "echo mismatch: expected seq {} ({} bytes), got {} bytes starting with seq {}",
            c.next_recv,
            ctx.expected.len(),
            got.len(),
            u64::from_le_bytes(seq)
        ));
    }
    c.next_recv += 1;
    ctx.report.verified += 1;
    ctx.last_echo = now;
    if now >= ctx.measure_from && now < ctx.measure_to {
        ctx.report.messages += 1;
        ctx.report.bytes += got.len() as u64;
        let ns = now.duration_since(sent).as_nanos();
        ctx.report
            .latencies_ns
            .push(ns.min(u32::MAX as u128) as u32);
    }
    if ctx.phase == Phase::Run {
        queue_message(ctx, c, now);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The load generator against a tiny blocking echo server that can be told to
    //! misbehave: every kind of fault must be reported, none may pass as a clean run.
    use super::*;
    use crate::wire::{decode_head, OP_CLOSE};
    use base64::Engine as _;
    use sha1::{Digest, Sha1};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream as StdStream};

    #[derive(Clone, Copy, PartialEq)]
    enum Fault {
        None,
        FlipByteOfMessage(u64),
        DropMessage(u64),
        CloseAfter(u64),
    }

    fn serve_one(mut s: StdStream, fault: Fault) {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let text = String::from_utf8(head).unwrap();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim()
            .to_string();
        let mut sha = Sha1::new();
        sha.update(key.as_bytes());
        sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
        write!(s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut n_msg = 0u64;
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                // Client frames are masked, which decode_head (a client's check) refuses.
                if buf.len() < 2 {
                    break;
                }
                let mut unmasked = buf.clone();
                unmasked[1] &= 0x7F;
                let Some(h) = decode_head(&unmasked).unwrap() else {
                    break;
                };
                let total = h.header_len + 4 + h.payload_len;
                if buf.len() < total {
                    break;
                }
                let key: [u8; 4] = buf[h.header_len..h.header_len + 4].try_into().unwrap();
                let mut payload: Vec<u8> = buf[h.header_len + 4..total]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[i & 3])
                    .collect();
                buf.drain(..total);
                if h.opcode == OP_CLOSE {
                    let mut out = vec![0x88, payload.len() as u8];
                    out.extend_from_slice(&payload);
                    let _ = s.write_all(&out);
                    return; // dropping the socket closes TCP after the close frame
                }
                let this = n_msg;
                n_msg += 1;
                match fault {
                    Fault::DropMessage(k) if k == this => continue,
                    Fault::CloseAfter(k) if k == this => {
                        let _ = s.write_all(&[0x88, 0x02, 0x03, 0xE9]); // 1001
                        return;
                    }
                    Fault::FlipByteOfMessage(k) if k == this => {
                        let last = payload.len() - 1;
                        payload[last] ^= 0x01;
                    }
                    _ => {}
                }
                let mut out = vec![0x80 | h.opcode, payload.len() as u8];
                out.extend_from_slice(&payload);
                s.write_all(&out).unwrap();
            }
        }
    }

    fn run_against(fault: Fault, conns: u64) -> Report {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let handles: Vec<_> = (0..conns)
                .map(|_| {
                    let (s, _) = listener.accept().unwrap();
                    std::thread::spawn(move || serve_one(s, fault))
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
        let plan = Plan {
            addr,
            conn_ids: (0..conns).collect(),
            size: 32,
            window: 4,
            warmup: Duration::from_millis(50),
            secs: Duration::from_millis(200),
            drain_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(5),
        };
        let report = run(plan, Arc::new(Barrier::new(1)));
        server.join().unwrap();
        report
    }

    #[test]
    fn faithful_echo_server_gives_a_clean_run() {
        let r = run_against(Fault::None, 3);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!((r.opened, r.clean_closes, r.lost), (3, 3, 0));
        assert!(r.messages > 0 && r.verified >= r.messages);
        assert_eq!(r.latencies_ns.len() as u64, r.messages);
    }

    #[test]
    fn altered_byte_is_reported_as_mismatch() {
        let r = run_against(Fault::FlipByteOfMessage(10), 1);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(
            r.errors[0].contains("echo mismatch: expected seq 10"),
            "{:?}",
            r.errors
        );
        assert_eq!(r.clean_closes, 0);
    }

    #[test]
    fn dropped_echo_is_reported() {
        // The next echo then carries the wrong sequence, which is caught at once.
        let r = run_against(Fault::DropMessage(10), 1);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(r.errors[0].contains("expected seq 10"), "{:?}", r.errors);
    }

    #[test]
    fn server_closing_mid_run_is_reported_with_its_code() {
        let r = run_against(Fault::CloseAfter(5), 1);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(
            r.errors[0].contains("server closed the connection: code 1001"),
            "{:?}",
            r.errors
        );
        assert!(r.lost > 0);
    }
}
