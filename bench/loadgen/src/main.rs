//! WebSocket echo load generator. N connections on a few threads (epoll), each keeping W
//! binary messages of M bytes in flight (or sending at a fixed rate, or holding the
//! connection idle), for a fixed time after a warm-up. Every echo is verified (payload,
//! order, opcode), the closing handshake too. Prints one JSON line per run: echoes per
//! second, round-trip latency percentiles (HDR histogram), and the CPU used during the
//! measured period by the load generator itself, by the server (given its pid) and by
//! the whole machine (the excess is other programs: interference).
//!
//!   wsq-loadgen HOST:PORT [--mode ws|raw|hold] [--conns 100] [--size 32] [--window 1]
//!       [--rate MSGS_PER_SEC] [--tick-us auto] [--max-in-flight 1000] [--ping-every SECS]
//!       [--secs 10] [--warmup 2] [--threads 1] [--label NAME] [--server-pid PID]
//!       [--drain-timeout 5] [--connect-timeout 10] [--connect-burst 256] [--tls CA.pem]
//!
//! Modes:
//!   ws    WebSocket echo (the default).
//!   raw   the same frame bytes to a raw TCP echo (bench/peers/raw-tcp-echo), no
//!         handshake, expected back byte for byte: the ceiling for the same traffic.
//!   hold  idle WebSocket connections for --secs after --warmup (the settle time):
//!         the server's pings answered, ours sent every --ping-every seconds if given.
//!         With --server-pid, reports the server's RSS growth per connection.
//! --tls CA.pem (ws and hold): wss://, TLS (rustls) trusting only that CA, for the
//! server name `localhost`, ALPN http/1.1.
//! --rate (ws and raw): messages per second over all connections, sent on schedule
//! (open loop) instead of a window; latency percentiles are then the point. Each send
//! pass sends everything due on every connection (a connection's in one write); passes
//! are at least --tick-us microseconds apart (0: whenever something is due), timed to
//! the nanosecond (epoll_pwait2), so a message goes out at most about a tick late. The
//! default, auto, is 0 up to 100,000 msg/s, else CONNS/100,000 s (1 ms for 100
//! connections): at most about 100,000 writes a second, which one core affords. The
//! send lag (sent minus due) is reported: `send_lag_p99_us` near the tick means the
//! schedule was kept; far above it, the load generator was the saturated party.
//!
//! Exit status 0 when every message sent was echoed intact and every connection closed
//! cleanly; 1 otherwise (the JSON line is printed either way, with the errors).

mod driver;
mod pace;
mod payload;
mod stream;
mod sysstat;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use driver::Load;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ws,
    Raw,
    Hold,
}

struct Args {
    addr: SocketAddr,
    mode: Mode,
    conns: usize,
    size: usize,
    window: usize,
    rate: f64,
    /// None: `pace::auto_tick`.
    tick_us: Option<f64>,
    max_in_flight: usize,
    ping_every: f64,
    secs: f64,
    warmup: f64,
    threads: usize,
    label: String,
    server_pid: Option<u32>,
    drain_timeout: f64,
    connect_timeout: f64,
    connect_burst: usize,
    /// `--tls CA.pem`: wss:// (TLS trusting that CA, server name `localhost`).
    tls_ca: Option<String>,
}

fn usage(why: &str) -> ! {
    eprintln!("wsq-loadgen: {why}");
    eprintln!(
        "usage: wsq-loadgen HOST:PORT [--mode ws|raw|hold] [--conns N] [--size BYTES] \
         [--window W] [--rate MSGS_PER_SEC] [--tick-us US|auto] [--max-in-flight N] [--ping-every S] [--secs S] \
         [--warmup S] [--threads T] [--label NAME] [--server-pid PID] [--drain-timeout S] \
         [--connect-timeout S] [--connect-burst N] [--tls CA.pem]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let addr = it.next().unwrap_or_else(|| usage("missing HOST:PORT"));
    let addr = addr
        .parse()
        .unwrap_or_else(|_| usage("HOST:PORT must be an IP address and port"));
    let mut a = Args {
        addr,
        mode: Mode::Ws,
        conns: 100,
        size: 32,
        window: 1,
        rate: 0.0,
        tick_us: None,
        max_in_flight: 1000,
        ping_every: 0.0,
        secs: 10.0,
        warmup: 2.0,
        threads: 1,
        label: String::new(),
        server_pid: None,
        drain_timeout: 5.0,
        connect_timeout: 10.0,
        connect_burst: 256,
        tls_ca: None,
    };
    while let Some(flag) = it.next() {
        let v = it
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        fn num<T: std::str::FromStr>(flag: &str, v: &str) -> T {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("bad value for {flag}: {v}")))
        }
        match flag.as_str() {
            "--mode" => {
                a.mode = match v.as_str() {
                    "ws" => Mode::Ws,
                    "raw" => Mode::Raw,
                    "hold" => Mode::Hold,
                    _ => usage("--mode is ws, raw or hold"),
                }
            }
            "--conns" => a.conns = num(&flag, &v),
            "--size" => a.size = num(&flag, &v),
            "--window" => a.window = num(&flag, &v),
            "--rate" => a.rate = num(&flag, &v),
            "--tick-us" if v == "auto" => a.tick_us = None,
            "--tick-us" => a.tick_us = Some(num(&flag, &v)),
            "--max-in-flight" => a.max_in_flight = num(&flag, &v),
            "--ping-every" => a.ping_every = num(&flag, &v),
            "--secs" => a.secs = num(&flag, &v),
            "--warmup" => a.warmup = num(&flag, &v),
            "--threads" => a.threads = num(&flag, &v),
            "--label" => a.label = v,
            "--server-pid" => a.server_pid = Some(num(&flag, &v)),
            "--drain-timeout" => a.drain_timeout = num(&flag, &v),
            "--connect-timeout" => a.connect_timeout = num(&flag, &v),
            "--connect-burst" => a.connect_burst = num(&flag, &v),
            "--tls" => a.tls_ca = Some(v),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if a.conns == 0 || a.window == 0 || a.threads == 0 || a.secs <= 0.0 || a.warmup < 0.0 {
        usage("--conns, --window, --threads and --secs must be positive");
    }
    if a.rate < 0.0
        || a.tick_us.is_some_and(|t| t < 0.0)
        || a.ping_every < 0.0
        || a.max_in_flight == 0
        || a.connect_burst == 0
    {
        usage("--rate, --tick-us and --ping-every must not be negative, --max-in-flight and --connect-burst positive");
    }
    if a.tls_ca.is_some() && a.mode == Mode::Raw {
        usage("--tls is for the ws and hold modes");
    }
    a.threads = a.threads.min(a.conns);
    a
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

fn main() {
    let args = parse_args();
    sysstat::raise_fd_limit();
    let load = match (args.mode, args.rate > 0.0) {
        (Mode::Hold, _) => Load::Hold {
            ping_every: (args.ping_every > 0.0).then(|| Duration::from_secs_f64(args.ping_every)),
        },
        (_, true) => Load::Rate {
            per_conn: args.rate / args.conns as f64,
            max_in_flight: args.max_in_flight,
        },
        (_, false) => Load::Window(args.window),
    };
    // The server's memory before any of our connections exist (hold mode's baseline).
    let rss_before = args.server_pid.and_then(sysstat::proc_rss_kib);
    let tls = args
        .tls_ca
        .as_deref()
        .map(|ca| stream::client_config(ca).unwrap_or_else(|e| usage(&format!("--tls: {e}"))));
    let tick = match args.tick_us {
        Some(us) => Duration::from_secs_f64(us / 1e6),
        None => pace::auto_tick(args.conns, args.rate),
    };
    let barrier = Arc::new(Barrier::new(args.threads + 1));
    let handles: Vec<_> = (0..args.threads)
        .map(|t| {
            let plan = driver::Plan {
                addr: args.addr,
                // Connection ids are global so every payload in the run is distinct.
                conn_ids: (0..args.conns as u64)
                    .filter(|i| *i as usize % args.threads == t)
                    .collect(),
                conns_total: args.conns,
                raw: args.mode == Mode::Raw,
                size: args.size,
                load,
                warmup: Duration::from_secs_f64(args.warmup),
                secs: Duration::from_secs_f64(args.secs),
                drain_timeout: Duration::from_secs_f64(args.drain_timeout),
                connect_timeout: Duration::from_secs_f64(args.connect_timeout),
                connect_burst: args.connect_burst,
                tls: tls.clone(),
                tick,
            };
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn(move || driver::run(plan, barrier))
                .expect("spawn")
        })
        .collect();

    // The measured period is timed here too, for the CPU figures.
    barrier.wait();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let pid = args.server_pid;
    let (own0, srv0, all0) = (
        sysstat::own_cpu_secs(),
        pid.and_then(sysstat::proc_cpu_secs),
        sysstat::machine_busy_secs(),
    );
    let rss_settled = pid.and_then(sysstat::proc_rss_kib);
    let t0 = Instant::now();
    std::thread::sleep(
        (start + Duration::from_secs_f64(args.warmup + args.secs))
            .saturating_duration_since(Instant::now()),
    );
    let wall = t0.elapsed().as_secs_f64();
    let (own1, srv1, all1) = (
        sysstat::own_cpu_secs(),
        pid.and_then(sysstat::proc_cpu_secs),
        sysstat::machine_busy_secs(),
    );
    let rss_end = pid.and_then(sysstat::proc_rss_kib);

    let mut total = driver::Report::default();
    for h in handles {
        total.merge(h.join().expect("load generator thread panicked"));
    }
    let lat = &total.latency_ns;
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        lat.value_at_quantile(q) as f64 / 1000.0
    };
    let lag_pct = |q: f64| -> f64 {
        if total.send_lag_ns.is_empty() {
            return 0.0;
        }
        total.send_lag_ns.value_at_quantile(q) as f64 / 1000.0
    };
    let (lag_p50, lag_p99, lag_max) = (lag_pct(0.5), lag_pct(0.99), lag_pct(1.0));
    let per_sec = |a: f64, b: f64| (b - a) / wall;
    let loadgen_cpu = per_sec(own0, own1);
    let server_cpu = srv0.zip(srv1).map(|(a, b)| per_sec(a, b));
    let machine_cpu = all0.zip(all1).map(|(a, b)| per_sec(a, b));
    // Whatever else ran meanwhile (other people's builds and tests), in cores.
    let others_cpu = machine_cpu
        .zip(server_cpu)
        .map(|(m, s)| (m - s - loadgen_cpu).max(0.0));
    // RSS growth per held connection, in bytes: at the end of the hold (after pings).
    let rss_per_conn = match (args.mode, rss_before, rss_end) {
        (Mode::Hold, Some(b), Some(e)) if total.opened > 0 => Some(format!(
            "{:.1}",
            (e as f64 - b as f64) * 1024.0 / total.opened as f64
        )),
        _ => None,
    };
    let ok = total.errors.is_empty()
        && total.opened == args.conns
        && total.clean_closes == args.conns
        && total.behind == 0;
    if total.behind > 0 {
        total.errors.push(format!(
            "{} scheduled sends skipped: the server fell over {} echoes behind the rate",
            total.behind, args.max_in_flight
        ));
    }
    let errors: Vec<String> = total.errors.iter().take(10).map(|e| json_str(e)).collect();
    let mode = match args.mode {
        Mode::Ws => "ws",
        Mode::Raw => "raw",
        Mode::Hold => "hold",
    };
    let f2 = |v: Option<f64>| opt(v.map(|v| format!("{v:.3}")));
    println!(
        "{{\"label\":{},\"mode\":\"{mode}\",\"conns\":{},\"size\":{},\"window\":{},\"rate\":{},\"tick_us\":{},\"threads\":{},\
         \"warmup_s\":{},\"secs\":{},\"messages\":{},\"msgs_per_sec\":{:.0},\"mbytes_per_sec\":{:.2},\
         \"lat_p50_us\":{:.1},\"lat_p90_us\":{:.1},\"lat_p99_us\":{:.1},\"lat_p999_us\":{:.1},\"lat_max_us\":{:.1},\
         \"send_lag_p50_us\":{:.1},\"send_lag_p99_us\":{:.1},\"send_lag_max_us\":{:.1},\"passes_per_sec\":{:.0},\"waits_per_sec\":{:.0},\
         \"max_gap_ms\":{:.1},\"loadgen_cpu\":{:.3},\"server_cpu\":{},\"machine_cpu\":{},\"others_cpu\":{},\
         \"server_rss_before_kib\":{},\"server_rss_settled_kib\":{},\"server_rss_end_kib\":{},\"rss_per_conn_bytes\":{},\
         \"server_pings_answered\":{},\"pings_sent\":{},\"pongs_received\":{},\
         \"opened\":{},\"verified\":{},\"lost\":{},\"behind\":{},\"clean_closes\":{},\"ok\":{},\"error_count\":{},\"errors\":[{}]}}",
        json_str(&args.label),
        args.conns,
        args.size,
        args.window,
        args.rate,
        tick.as_secs_f64() * 1e6,
        args.threads,
        args.warmup,
        args.secs,
        total.messages,
        total.messages as f64 / wall,
        total.bytes as f64 / wall / 1e6,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0),
        lag_p50,
        lag_p99,
        lag_max,
        total.passes as f64 / wall,
        total.waits as f64 / wall,
        total.max_gap.as_secs_f64() * 1000.0,
        loadgen_cpu,
        f2(server_cpu),
        f2(machine_cpu),
        f2(others_cpu),
        opt(rss_before),
        opt(rss_settled),
        opt(rss_end),
        opt(rss_per_conn),
        total.server_pings_answered,
        total.pings_sent,
        total.pongs_received,
        total.opened,
        total.verified,
        total.lost,
        total.behind,
        total.clean_closes,
        ok,
        total.errors.len(),
        errors.join(","),
    );
    std::process::exit(if ok { 0 } else { 1 });
}
