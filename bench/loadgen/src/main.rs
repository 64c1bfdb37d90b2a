//! WebSocket echo load generator: N connections, each sending M-byte binary messages
//! with W in flight, for a fixed time; verifies every echo and reports messages/s and
//! round-trip latency percentiles as one JSON line.
//!
//!   wsq-loadgen HOST:PORT [--conns 100] [--size 32] [--window 1] [--secs 10]
//!               [--warmup 2] [--threads 2]
//!
//! Each thread drives its share of the connections with blocking sockets in rounds:
//! write W messages on every connection, then read the W echoes from every one, so
//! the server sees all its connections busy at once (no per-connection threads).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

struct Args {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    window: usize,
    secs: f64,
    warmup: f64,
    threads: usize,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let addr = it.next().expect("HOST:PORT").parse().expect("address");
    let mut a = Args { addr, conns: 100, size: 32, window: 1, secs: 10.0, warmup: 2.0, threads: 2 };
    while let Some(flag) = it.next() {
        let v = it.next().expect("flag value");
        match flag.as_str() {
            "--conns" => a.conns = v.parse().unwrap(),
            "--size" => a.size = v.parse().unwrap(),
            "--window" => a.window = v.parse().unwrap(),
            "--secs" => a.secs = v.parse().unwrap(),
            "--warmup" => a.warmup = v.parse().unwrap(),
            "--threads" => a.threads = v.parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn connect(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("handshake response");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "handshake refused");
    s
}

/// A masked binary frame whose payload starts with a sequence number.
fn frame(seq: u64, size: usize) -> Vec<u8> {
    let mut payload = vec![0xAB; size.max(8)];
    payload[..8].copy_from_slice(&seq.to_be_bytes());
    let key = [1u8, 2, 3, 4];
    let mut out = vec![0x82];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

fn read_echo(s: &mut TcpStream, buf: &mut Vec<u8>) -> u64 {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).expect("echo header");
    assert_eq!(h[0], 0x82, "a final binary frame");
    let mut len = (h[1] & 0x7F) as usize;
    if len == 126 {
        let mut e = [0u8; 2];
        s.read_exact(&mut e).unwrap();
        len = u16::from_be_bytes(e) as usize;
    }
    buf.resize(len, 0);
    s.read_exact(buf).expect("echo payload");
    assert!(buf[8..].iter().all(|&b| b == 0xAB), "echo payload corrupted");
    u64::from_be_bytes(buf[..8].try_into().unwrap())
}

struct Tally {
    messages: u64,
    latencies_us: Vec<u32>,
}

fn drive(args: &Args, count: usize, start: Instant) -> Tally {
    let mut conns: Vec<TcpStream> = (0..count).map(|_| connect(args.addr)).collect();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.secs);
    let mut tally = Tally { messages: 0, latencies_us: Vec::new() };
    let mut seq = 0u64;
    let mut buf = Vec::new();
    let mut batch = Vec::new();
    while Instant::now() < end {
        let sent_at = Instant::now();
        let first = seq;
        for c in conns.iter_mut() {
            batch.clear();
            for _ in 0..args.window {
                batch.extend(frame(seq, args.size));
                seq += 1;
            }
            c.write_all(&batch).expect("send");
        }
        let mut expect = first;
        for c in conns.iter_mut() {
            for _ in 0..args.window {
                let got = read_echo(c, &mut buf);
                assert_eq!(got, expect, "echoes in order, none lost");
                expect += 1;
            }
        }
        let now = Instant::now();
        if now >= measure_from {
            tally.messages += (count * args.window) as u64;
            tally.latencies_us.push(now.duration_since(sent_at).as_micros() as u32);
        }
    }
    tally
}

fn main() {
    let args = parse_args();
    let start = Instant::now();
    let per = args.conns / args.threads;
    let handles: Vec<_> = (0..args.threads)
        .map(|t| {
            let count = if t + 1 == args.threads { args.conns - per * t } else { per };
            let a = Args { ..parse_args() };
            std::thread::spawn(move || drive(&a, count, start))
        })
        .collect();
    let mut messages = 0;
    let mut lat = Vec::new();
    for h in handles {
        let t = h.join().expect("driver thread");
        messages += t.messages;
        lat.extend(t.latencies_us);
    }
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
    println!(
        "{{\"conns\":{},\"size\":{},\"window\":{},\"secs\":{},\"messages\":{},\"msgs_per_sec\":{:.0},\"round_p50_us\":{},\"round_p99_us\":{}}}",
        args.conns, args.size, args.window, args.secs, messages,
        messages as f64 / args.secs, pct(0.5), pct(0.99)
    );
}
