//! One load-generator thread: drives its share of the connections with non-blocking
//! sockets on one epoll instance (mio, edge-triggered).
//!
//! Writes are batched per connection: whatever a connection has to send after handling
//! one readiness event (the next messages of its window, pongs) goes out in one `write`,
//! so W messages in flight cost one system call per batch, not W. Each connection runs
//! on its own: no lock-step rounds across connections.
//!
//! Loads: a window (W messages in flight, the next one sent as an echo comes back), a
//! fixed rate (open loop: messages go out on schedule whether or not echoes came back,
//! in send passes at most `tick` apart: see pace.rs), or a hold (idle connections; the server's pings answered, ours sent if asked).
//! In raw mode the same frame bytes go to a raw TCP echo, with no handshake, and must
//! come back byte for byte.

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;

use crate::pace::{self, Epoll, Passes};
use crate::payload::Payloads;
use crate::stream::Stream;
use crate::wire::{self, Rng, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT};

#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// `n` messages in flight per connection; the next goes out as an echo comes back.
    Window(usize),
    /// `per_conn` messages per second on each connection, sent on schedule; a connection
    /// with `max_in_flight` unanswered messages skips its sends (counted as `behind`).
    Rate { per_conn: f64, max_in_flight: usize },
    /// No messages. The server's pings are answered; with `ping_every`, each connection
    /// also pings the server that often and expects its pong.
    Hold { ping_every: Option<Duration> },
}

pub struct Plan {
    pub addr: SocketAddr,
    /// Global ids of this thread's connections (payloads are distinct across the run).
    pub conn_ids: Vec<u64>,
    /// All connections of the run, to spread the rate schedule and pings over time.
    pub conns_total: usize,
    /// Raw TCP: no handshake, frames echoed as sent.
    pub raw: bool,
    pub size: usize,
    pub load: Load,
    pub warmup: Duration,
    pub secs: Duration,
    /// How long after the measured period the in-flight echoes (and pongs) may take.
    pub drain_timeout: Duration,
    pub connect_timeout: Duration,
    /// At most this many connections of this thread connecting or handshaking at once,
    /// so that thousands of connections do not overflow the server's listen backlog.
    pub connect_burst: usize,
    /// `wss://`: TLS with this client configuration (the ws mode's bytes inside it).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Rate and hold modes: send passes at least this far apart (pace.rs).
    pub tick: Duration,
}

/// What one thread saw. Messages, bytes and latencies cover only the measured period.
pub struct Report {
    pub opened: usize,
    pub messages: u64,
    pub bytes: u64,
    /// Round-trip times in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// Every echo received and verified, warm-up and drain included.
    pub verified: u64,
    /// Messages sent whose echo never came (connection failed or drain timed out).
    pub lost: u64,
    pub clean_closes: usize,
    /// The longest time, within the measured period, that this thread's connections
    /// together went without a single echo while messages were in flight.
    pub max_gap: Duration,
    /// Rate mode: sends skipped because a connection had too many echoes outstanding.
    pub behind: u64,
    /// Rate mode: how late each message of the measured period went out (sent minus
    /// due), in nanoseconds. Large against the latency: the schedule was not kept.
    pub send_lag_ns: Histogram<u64>,
    /// Within the measured period: send passes that wrote something, and epoll waits.
    pub passes: u64,
    pub waits: u64,
    pub server_pings_answered: u64,
    pub pings_sent: u64,
    pub pongs_received: u64,
    pub errors: Vec<String>,
}

impl Default for Report {
    fn default() -> Report {
        Report {
            opened: 0,
            messages: 0,
            bytes: 0,
            // 1 ns to 100 s, 3 significant digits.
            latency_ns: Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram"),
            verified: 0,
            lost: 0,
            clean_closes: 0,
            max_gap: Duration::ZERO,
            behind: 0,
            send_lag_ns: Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram"),
            passes: 0,
            waits: 0,
            server_pings_answered: 0,
            pings_sent: 0,
            pongs_received: 0,
            errors: Vec::new(),
        }
    }
}

impl Report {
    pub fn merge(&mut self, r: Report) {
        self.opened += r.opened;
        self.messages += r.messages;
        self.bytes += r.bytes;
        self.latency_ns
            .add(&r.latency_ns)
            .expect("same histogram bounds");
        self.verified += r.verified;
        self.lost += r.lost;
        self.clean_closes += r.clean_closes;
        self.max_gap = self.max_gap.max(r.max_gap);
        self.behind += r.behind;
        self.send_lag_ns
            .add(&r.send_lag_ns)
            .expect("same histogram bounds");
        self.passes += r.passes;
        self.waits += r.waits;
        self.server_pings_answered += r.server_pings_answered;
        self.pings_sent += r.pings_sent;
        self.pongs_received += r.pongs_received;
        self.errors.extend(r.errors);
    }
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum State {
    Connecting,
    Handshaking,
    Open,
    /// We sent our close frame (or, raw, shut down our side); waiting for the end.
    Closing,
    Done,
}

struct Conn {
    id: u64,
    stream: Stream,
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
    /// Rate mode: when the next message is due. Hold mode: when the next ping is.
    next_due: Instant,
    pings_out: u32,
    /// Opcode and bytes of a fragmented message being reassembled.
    frag: Option<(u8, Vec<u8>)>,
    got_close: Option<u16>,
}

impl Conn {
    fn connecting(&self) -> bool {
        matches!(self.state, State::Connecting | State::Handshaking)
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Connect,
    Run,
    Drain,
    Close,
}

struct Ctx {
    raw: bool,
    load: Load,
    rng: Rng,
    payloads: Payloads,
    phase: Phase,
    measure_from: Instant,
    measure_to: Instant,
    report: Report,
    last_echo: Instant,
    /// Connections in `Connecting` or `Handshaking`.
    connecting: usize,
}

/// A read buffer big enough for a window of small messages in one read; large messages
/// grow it to their size. Holds need little: idle connections get pings only.
fn read_buffer_size(plan: &Plan, frame_len: usize) -> usize {
    match plan.load {
        Load::Hold { .. } => 4 * 1024,
        Load::Window(w) => (frame_len * w * 2).clamp(16 * 1024, 256 * 1024),
        Load::Rate { .. } => (frame_len * 8).clamp(16 * 1024, 256 * 1024),
    }
}

pub fn run(plan: Plan, barrier: Arc<Barrier>) -> Report {
    pace::set_timer_slack(1_000);
    let mut poll = Epoll::new(1024).expect("epoll");
    let now = Instant::now();
    let mut rng = Rng::new(plan.conn_ids.first().copied().unwrap_or(0) ^ 0x5EED);
    let payloads = Payloads::new(plan.size, &mut rng);
    let rbuf_size = read_buffer_size(&plan, payloads.frame_len());
    let mut ctx = Ctx {
        raw: plan.raw,
        load: plan.load,
        rng,
        payloads,
        phase: Phase::Connect,
        measure_from: now,
        measure_to: now,
        report: Report::default(),
        last_echo: now,
        connecting: 0,
    };
    let mut conns: Vec<Conn> = Vec::with_capacity(plan.conn_ids.len());
    let host = plan.addr.to_string();

    // Connect phase: every connection upgraded (or failed) before the clock starts, at
    // most `connect_burst` at a time.
    let deadline = Instant::now() + plan.connect_timeout;
    let mut to_open = plan.conn_ids.iter().copied();
    let mut all_started = false;
    loop {
        while !all_started && ctx.connecting < plan.connect_burst.max(1) {
            let Some(id) = to_open.next() else {
                all_started = true;
                break;
            };
            let token = conns.len();
            match TcpStream::connect(plan.addr) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    poll.register(&stream, token).expect("register");
                    let stream = match &plan.tls {
                        Some(config) => Stream::tls(stream, config),
                        None => Stream::Plain(stream),
                    };
                    let (wbuf, accept) = if plan.raw {
                        (Vec::new(), String::new())
                    } else {
                        let (key, accept) = wire::handshake_key(&mut ctx.rng);
                        (wire::upgrade_request(&host, &key), accept)
                    };
                    ctx.connecting += 1;
                    conns.push(Conn {
                        id,
                        stream,
                        state: State::Connecting,
                        accept,
                        rbuf: vec![0; rbuf_size],
                        rstart: 0,
                        rend: 0,
                        wbuf,
                        wpos: 0,
                        next_send: 0,
                        next_recv: 0,
                        sent_at: VecDeque::new(),
                        next_due: now,
                        pings_out: 0,
                        frag: None,
                        got_close: None,
                    });
                }
                Err(e) => ctx.report.errors.push(format!("conn {id}: connect: {e}")),
            }
        }
        if all_started && ctx.connecting == 0 {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            let left = plan.conn_ids.len() - conns.len();
            if left > 0 {
                ctx.report.errors.push(format!(
                    "{left} connections not even started within {:?}",
                    plan.connect_timeout
                ));
            }
            for c in conns.iter_mut().filter(|c| c.connecting()) {
                let why = format!(
                    "no upgrade within {:?} (state {:?})",
                    plan.connect_timeout, c.state
                );
                fail(&mut ctx, c, why);
            }
            break;
        }
        poll_once(
            &mut poll,
            &mut conns,
            &mut ctx,
            (deadline - now).min(Duration::from_millis(100)),
        );
    }
    ctx.report.opened = conns.iter().filter(|c| c.state == State::Open).count();

    // All threads start loading together, after the main thread joins the barrier too.
    barrier.wait();
    let start = Instant::now();
    ctx.measure_from = start + plan.warmup;
    ctx.measure_to = ctx.measure_from + plan.secs;
    ctx.phase = Phase::Run;
    ctx.last_echo = start;
    let total = plan.conns_total.max(1) as f64;
    for c in conns.iter_mut().filter(|c| c.state == State::Open) {
        // Spread each connection's schedule over one period so they do not all fire at once.
        let phase_share = (c.id as f64 % total) / total;
        match ctx.load {
            Load::Window(w) => {
                for _ in 0..w {
                    queue_message(&mut ctx, c, start);
                }
                flush(&mut ctx, c);
            }
            Load::Rate { per_conn, .. } => {
                c.next_due = start + Duration::from_secs_f64(phase_share / per_conn);
            }
            Load::Hold { ping_every } => {
                if let Some(every) = ping_every {
                    c.next_due = start + every.mul_f64(phase_share);
                }
            }
        }
    }

    let mut drain_deadline = None;
    let mut close_deadline = None;
    let mut passes = Passes::new(plan.tick);
    // The earliest send due (None: nothing scheduled, window mode or no pings).
    let mut earliest = Some(start);
    loop {
        let mut now = Instant::now();
        if ctx.phase == Phase::Run && now >= ctx.measure_to {
            ctx.phase = Phase::Drain;
            drain_deadline = Some(now + plan.drain_timeout);
        }
        if ctx.phase == Phase::Drain {
            let waiting =
                |c: &Conn| c.state == State::Open && (!c.sent_at.is_empty() || c.pings_out > 0);
            if !conns.iter().any(waiting) || now >= drain_deadline.unwrap() {
                start_closing(&mut ctx, &mut conns, plan.drain_timeout);
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
                    let what = match (ctx.raw, c.got_close) {
                        (true, _) => "server did not close TCP after we shut down ours",
                        (false, Some(_)) => "server answered our close but did not close TCP",
                        (false, None) => "server did not answer our close frame",
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
        let mut next = match ctx.phase {
            Phase::Run => ctx.measure_to,
            Phase::Drain => drain_deadline.unwrap(),
            _ => close_deadline.unwrap(),
        };
        if ctx.phase == Phase::Run {
            if let Some(due) = earliest {
                if passes.due(now, due) {
                    let wrote;
                    (earliest, wrote) = send_scheduled(&mut ctx, &mut conns, now);
                    passes.ran(now);
                    if wrote && now >= ctx.measure_from {
                        ctx.report.passes += 1;
                    }
                    now = Instant::now();
                }
            }
            if let Some(due) = earliest {
                next = next.min(passes.next(due));
            }
            if now >= ctx.measure_from && matches!(ctx.load, Load::Window(_) | Load::Rate { .. }) {
                let in_flight = conns
                    .iter()
                    .any(|c| c.state == State::Open && !c.sent_at.is_empty());
                if in_flight {
                    let gap = now.duration_since(ctx.last_echo.max(ctx.measure_from));
                    ctx.report.max_gap = ctx.report.max_gap.max(gap);
                }
            }
        }
        // Wake at least every 10 ms so that gaps between echoes are seen while they last.
        let timeout = next
            .saturating_duration_since(now)
            .min(Duration::from_millis(10));
        if ctx.phase == Phase::Run && now >= ctx.measure_from {
            ctx.report.waits += 1;
        }
        poll_once(&mut poll, &mut conns, &mut ctx, timeout);
    }
    ctx.report
}

/// Rate and hold modes, one send pass: sends what is due (each connection's in one
/// write). Returns when the next send is due (None: nothing to schedule, as in window
/// mode, which sends on echoes only) and whether anything was written.
fn send_scheduled(
    ctx: &mut Ctx,
    conns: &mut [Conn],
    pass_start: Instant,
) -> (Option<Instant>, bool) {
    let mut next: Option<Instant> = None;
    let mut wrote = false;
    match ctx.load {
        Load::Window(_) | Load::Hold { ping_every: None } => return (None, false),
        Load::Rate {
            per_conn,
            max_in_flight,
        } => {
            let interval = Duration::from_secs_f64(1.0 / per_conn);
            for c in conns.iter_mut().filter(|c| c.state == State::Open) {
                if c.next_due <= pass_start {
                    // Timed from just before this connection's write, not from the
                    // pass's start: the writes before it in the pass are the load
                    // generator's time, not the server's.
                    let now = Instant::now();
                    let first_due = c.next_due;
                    let n = pace::take_due(&mut c.next_due, interval, now);
                    let measured = now >= ctx.measure_from && now < ctx.measure_to;
                    let mut queued = false;
                    for k in 0..n {
                        if c.sent_at.len() >= max_in_flight {
                            ctx.report.behind += 1;
                            continue;
                        }
                        queue_message(ctx, c, now);
                        queued = true;
                        if measured {
                            let due = first_due + interval.mul_f64(k as f64);
                            let lag = now.saturating_duration_since(due).as_nanos() as u64;
                            ctx.report.send_lag_ns.saturating_record(lag.max(1));
                        }
                    }
                    if queued {
                        flush(ctx, c);
                        wrote = true;
                    }
                }
                next = Some(next.map_or(c.next_due, |n| n.min(c.next_due)));
            }
        }
        Load::Hold {
            ping_every: Some(every),
        } => {
            for c in conns.iter_mut().filter(|c| c.state == State::Open) {
                if c.next_due <= pass_start {
                    let key = mask_key(&mut ctx.rng);
                    wire::push_frame(&mut c.wbuf, OP_PING, &c.id.to_le_bytes(), key);
                    c.pings_out += 1;
                    ctx.report.pings_sent += 1;
                    c.next_due = pass_start + every;
                    flush(ctx, c);
                    wrote = true;
                }
                next = Some(next.map_or(c.next_due, |n| n.min(c.next_due)));
            }
        }
    }
    (next, wrote)
}

/// End of the run: a connection still waiting for echoes or pongs has lost them; the
/// others start a clean close (a close frame, or in raw mode our half of TCP).
fn start_closing(ctx: &mut Ctx, conns: &mut [Conn], waited: Duration) {
    for c in conns.iter_mut().filter(|c| c.state == State::Open) {
        if !c.sent_at.is_empty() || c.pings_out > 0 {
            let (n, p) = (c.sent_at.len(), c.pings_out);
            let why = format!(
                "{n} echoes and {p} pongs still missing {waited:?} after the run (next expected seq {})",
                c.next_recv
            );
            fail(ctx, c, why);
            continue;
        }
        c.state = State::Closing;
        if ctx.raw {
            if let Err(e) = c.stream.shutdown(Shutdown::Write) {
                fail(ctx, c, format!("shutdown: {e}"));
            }
        } else {
            // A normal closure, RFC 6455 §7.1.2; the server must answer in kind.
            let key = mask_key(&mut ctx.rng);
            wire::push_frame(&mut c.wbuf, OP_CLOSE, &1000u16.to_be_bytes(), key);
            flush(ctx, c);
        }
    }
}

fn poll_once(poll: &mut Epoll, conns: &mut [Conn], ctx: &mut Ctx, timeout: Duration) {
    if let Err(e) = poll.wait(timeout) {
        if e.kind() != io::ErrorKind::Interrupted {
            panic!("epoll_pwait2: {e}");
        }
        return;
    }
    for i in 0..poll.len() {
        let ev = poll.event(i);
        let c = &mut conns[ev.token];
        if c.state == State::Done {
            continue;
        }
        if c.state == State::Connecting {
            match c.stream.tcp().take_error() {
                Ok(Some(e)) | Err(e) => {
                    fail(ctx, c, format!("connect: {e}"));
                    continue;
                }
                Ok(None) => {}
            }
            match c.stream.tcp().peer_addr() {
                Ok(_) if ctx.raw => {
                    c.state = State::Open;
                    ctx.connecting -= 1;
                }
                Ok(_) => c.state = State::Handshaking,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                Err(e) => {
                    fail(ctx, c, format!("connect: {e}"));
                    continue;
                }
            }
        }
        if ev.readable || ev.read_closed || ev.error {
            read_all(ctx, c, ev.read_closed || ev.error);
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
    ctx.payloads.push_frame(&mut c.wbuf, c.id, c.next_send);
    c.next_send += 1;
    c.sent_at.push_back(now);
}

fn fail(ctx: &mut Ctx, c: &mut Conn, why: String) {
    if c.connecting() {
        ctx.connecting -= 1;
    }
    ctx.report.lost += c.sent_at.len() as u64;
    c.sent_at.clear();
    ctx.report.errors.push(format!("conn {}: {why}", c.id));
    c.state = State::Done;
    // Close the socket now: a hold of thousands should not keep dead ones open.
    c.stream.shutdown(Shutdown::Both).ok();
}

fn flush(ctx: &mut Ctx, c: &mut Conn) {
    // TLS: records encrypted earlier go first (and the handshake's flights).
    match c.stream.flush_pending() {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected
            ) =>
        {
            return
        }
        Err(e) => {
            fail(ctx, c, format!("write: {e}"));
            return;
        }
    }
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

/// Reads until the socket is drained (edge-triggered), handling every complete unit.
/// A read that does not fill the free space emptied the socket; later bytes raise a new
/// edge, so no extra read is spent just to hear that it would block. Unless the event
/// said the peer closed (`closed`): its EOF, already there, raises no new edge, so then
/// reading goes on until EOF or would-block.
fn read_all(ctx: &mut Ctx, c: &mut Conn, closed: bool) {
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
                // A short TLS read says nothing about the socket: read to would-block.
                let drained = !c.stream.is_tls() && n < c.rbuf.len() - end;
                c.rend += n;
                let now = Instant::now();
                let r = if ctx.raw {
                    process_raw(ctx, c, now)
                } else {
                    process(ctx, c, now)
                };
                if let Err(why) = r {
                    fail(ctx, c, why);
                    return;
                }
                if drained && !closed {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if c.state == State::Closing && (ctx.raw || c.got_close.is_some()) {
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
        (State::Closing, _) if ctx.raw => {
            ctx.report.clean_closes += 1;
            c.state = State::Done;
        }
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

/// Raw mode: the echo is the frames we sent, byte for byte.
fn process_raw(ctx: &mut Ctx, c: &mut Conn, now: Instant) -> Result<(), String> {
    let len = ctx.payloads.frame_len();
    if len == 0 {
        return Ok(());
    }
    while c.rend - c.rstart >= len {
        let (start, end) = (c.rstart, c.rstart + len);
        c.rstart = end;
        ctx.payloads
            .check_frame(&c.rbuf[start..end], c.id, c.next_recv)?;
        on_echo(ctx, c, ctx.payloads.size(), now)?;
    }
    if len > c.rbuf.len() {
        c.rbuf.resize(len.next_power_of_two(), 0);
    }
    Ok(())
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
        ctx.connecting -= 1;
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
                // RFC 6455 §5.5.2: answered with a pong carrying the same payload.
                let payload = c.rbuf[start..end].to_vec();
                let key = mask_key(&mut ctx.rng);
                wire::push_frame(&mut c.wbuf, OP_PONG, &payload, key);
                ctx.report.server_pings_answered += 1;
            }
            OP_PONG => {
                // Unsolicited pongs are allowed (§5.5.3); only ours are counted.
                if c.pings_out > 0 && c.rbuf[start..end] == c.id.to_le_bytes() {
                    c.pings_out -= 1;
                    ctx.report.pongs_received += 1;
                }
            }
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

/// One complete WebSocket echo in `c.rbuf[start..end]`: verify it, then account for it.
fn on_message(
    ctx: &mut Ctx,
    c: &mut Conn,
    opcode: u8,
    start: usize,
    end: usize,
    now: Instant,
) -> Result<(), String> {
    if c.sent_at.is_empty() {
        return Err(format!(
            "unsolicited message of {} bytes (nothing in flight)",
            end - start
        ));
    }
    if opcode != OP_BINARY {
        return Err(format!(
            "echo of seq {} came back with opcode {opcode:#x}, sent binary",
            c.next_recv
        ));
    }
    ctx.payloads
        .check_payload(&c.rbuf[start..end], c.id, c.next_recv)?;
    on_echo(ctx, c, end - start, now)
}

/// A verified echo of `len` bytes: time it and, in window mode, send the next message.
fn on_echo(ctx: &mut Ctx, c: &mut Conn, len: usize, now: Instant) -> Result<(), String> {
    let Some(sent) = c.sent_at.pop_front() else {
        return Err(format!(
            "unsolicited echo of {len} bytes (nothing in flight)"
        ));
    };
    c.next_recv += 1;
    ctx.report.verified += 1;
    ctx.last_echo = now;
    if now >= ctx.measure_from && now < ctx.measure_to {
        ctx.report.messages += 1;
        ctx.report.bytes += len as u64;
        let ns = now.duration_since(sent).as_nanos() as u64;
        ctx.report.latency_ns.saturating_record(ns.max(1));
    }
    if ctx.phase == Phase::Run && matches!(ctx.load, Load::Window(_)) {
        queue_message(ctx, c, now);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The load generator against a tiny blocking echo server that can be told to
    //! misbehave: every kind of fault must be reported, none may pass as a clean run.
    use super::*;
    use crate::wire::{decode_head, OP_CLOSE, OP_PING, OP_PONG};
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
                if h.opcode == OP_PING {
                    // §5.5.2: a pong with the ping's payload.
                    let mut out = vec![0x80 | OP_PONG, payload.len() as u8];
                    out.extend_from_slice(&payload);
                    s.write_all(&out).unwrap();
                    continue;
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
                // After a fault the client may have failed the connection already
                // (reset): the echoes still in flight then have nowhere to go.
                if s.write_all(&out).is_err() {
                    return;
                }
            }
        }
    }

    fn run_against(fault: Fault, conns: u64) -> Report {
        run_with(fault, conns, Load::Window(4))
    }

    fn plan(addr: SocketAddr, conns: u64, raw: bool, load: Load) -> Plan {
        Plan {
            addr,
            conn_ids: (0..conns).collect(),
            conns_total: conns as usize,
            raw,
            size: 32,
            load,
            warmup: Duration::from_millis(50),
            secs: Duration::from_millis(200),
            drain_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(5),
            connect_burst: 64,
            tls: None,
            tick: Duration::from_micros(100),
        }
    }

    fn run_with(fault: Fault, conns: u64, load: Load) -> Report {
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
        let report = run(plan(addr, conns, false, load), Arc::new(Barrier::new(1)));
        server.join().unwrap();
        report
    }

    #[test]
    fn faithful_echo_server_gives_a_clean_run() {
        let r = run_against(Fault::None, 3);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!((r.opened, r.clean_closes, r.lost), (3, 3, 0));
        assert!(r.messages > 0 && r.verified >= r.messages);
        assert_eq!(r.latency_ns.len(), r.messages);
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

    #[test]
    fn fixed_rate_gives_a_clean_run_with_every_echo_timed() {
        let r = run_with(
            Fault::None,
            2,
            Load::Rate {
                per_conn: 500.0,
                max_in_flight: 64,
            },
        );
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!((r.clean_closes, r.lost, r.behind), (2, 0, 0));
        // 2 connections x 500/s x 0.2 s, give or take the edges of the period.
        assert!((150..=250).contains(&r.messages), "{}", r.messages);
        assert_eq!(r.latency_ns.len(), r.messages);
    }

    #[test]
    fn send_passes_are_at_least_a_tick_apart_and_send_all_that_is_due() {
        // 2 connections x 2,000/s: a message due every 250 us, passes 5 ms apart.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (s, _) = listener.accept().unwrap();
                    std::thread::spawn(move || serve_one(s, Fault::None))
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
        let mut p = plan(
            addr,
            2,
            false,
            Load::Rate {
                per_conn: 2000.0,
                max_in_flight: 1000,
            },
        );
        p.tick = Duration::from_millis(5);
        let r = run(p, Arc::new(Barrier::new(1)));
        server.join().unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!((r.clean_closes, r.lost, r.behind), (2, 0, 0));
        // 200 ms measured: at most 41 passes, however fast the machine (a pass at every
        // wake-up, as before the tick, would make about 400).
        assert!(r.passes >= 1 && r.passes <= 41, "{} passes", r.passes);
        // Every send of the measured period is in the lag histogram, so the sends are
        // not fewer than the rate asks for (800 in 200 ms, less the edges), whatever
        // the number of passes.
        assert!(r.send_lag_ns.len() >= 600, "{} sends", r.send_lag_ns.len());
        assert_eq!(r.latency_ns.len(), r.messages);
    }

    #[test]
    fn hold_sends_pings_and_counts_the_pongs() {
        let r = run_with(
            Fault::None,
            2,
            Load::Hold {
                ping_every: Some(Duration::from_millis(50)),
            },
        );
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!((r.opened, r.clean_closes, r.messages), (2, 2, 0));
        assert!(r.pings_sent >= 4, "{}", r.pings_sent);
        assert_eq!(r.pongs_received, r.pings_sent);
    }

    /// A raw TCP echo that can flip one byte at a given offset of the stream.
    fn run_raw(flip_at: Option<usize>) -> Report {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut seen = 0usize;
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if let Some(at) = flip_at {
                    if (seen..seen + n).contains(&at) {
                        buf[at - seen] ^= 0x40;
                    }
                }
                seen += n;
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
        let r = run(
            plan(addr, 1, true, Load::Window(4)),
            Arc::new(Barrier::new(1)),
        );
        server.join().unwrap();
        r
    }

    #[test]
    fn raw_echo_of_the_same_bytes_gives_a_clean_run() {
        let r = run_raw(None);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!((r.opened, r.clean_closes, r.lost), (1, 1, 0));
        assert!(r.messages > 0);
        // Payload bytes are counted, as in WebSocket mode: 32 per message.
        assert_eq!(r.bytes, r.messages * 32);
    }

    #[test]
    fn raw_echo_with_an_altered_byte_is_a_mismatch() {
        // Byte 30 of message 5 (38-byte frames).
        let r = run_raw(Some(5 * 38 + 30));
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(
            r.errors[0].contains("echo mismatch: expected seq 5"),
            "{:?}",
            r.errors
        );
    }
}
