//! WebSocket echo load generator: N connections, each sending M-byte binary messages
//! with W in flight, for a fixed time after a warm-up. Every echo is verified (payload,
//! order, opcode), the closing handshake too. Prints one JSON line per run:
//! round trips per second, latency percentiles, and the CPU used during the measured
//! period by the load generator itself, by the server (given its pid) and by the whole
//! machine (the excess is other programs: interference).
//!
//!   wsq-loadgen HOST:PORT [--conns 100] [--size 32] [--window 1] [--secs 10]
//!       [--warmup 2] [--threads 1] [--label NAME] [--server-pid PID]
//!       [--drain-timeout 5] [--connect-timeout 10]
//!
//! Exit status 0 when every message sent was echoed intact and every connection closed
//! cleanly; 1 otherwise (the JSON line is printed either way, with the errors).

mod driver;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

struct Args {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    window: usize,
    secs: f64,
    warmup: f64,
    threads: usize,
    label: String,
    server_pid: Option<u32>,
    drain_timeout: f64,
    connect_timeout: f64,
}

fn usage(why: &str) -> ! {
    eprintln!("wsq-loadgen: {why}");
    eprintln!(
        "usage: wsq-loadgen HOST:PORT [--conns N] [--size BYTES] [--window W] [--secs S] \
         [--warmup S] [--threads T] [--label NAME] [--server-pid PID] [--drain-timeout S] \
         [--connect-timeout S]"
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
        conns: 100,
        size: 32,
        window: 1,
        secs: 10.0,
        warmup: 2.0,
        threads: 1,
        label: String::new(),
        server_pid: None,
        drain_timeout: 5.0,
        connect_timeout: 10.0,
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
            "--conns" => a.conns = num(&flag, &v),
            "--size" => a.size = num(&flag, &v),
            "--window" => a.window = num(&flag, &v),
            "--secs" => a.secs = num(&flag, &v),
            "--warmup" => a.warmup = num(&flag, &v),
            "--threads" => a.threads = num(&flag, &v),
            "--label" => a.label = v,
            "--server-pid" => a.server_pid = Some(num(&flag, &v)),
            "--drain-timeout" => a.drain_timeout = num(&flag, &v),
            "--connect-timeout" => a.connect_timeout = num(&flag, &v),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if a.conns == 0 || a.window == 0 || a.threads == 0 || a.secs <= 0.0 || a.warmup < 0.0 {
        usage("--conns, --window, --threads and --secs must be positive");
    }
    a.threads = a.threads.min(a.conns);
    a
}

/// CPU seconds (user + system) this process has used, all threads.
fn own_cpu_secs() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU seconds (user + system, all threads) used by another process, from /proc.
fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may itself hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let (utime, stime): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / hz)
}

/// CPU seconds the whole machine has spent busy (all CPUs, anything but idle and
/// iowait), from /proc/stat: with the two figures above it shows how much of the
/// machine other programs took during a run.
fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = cpu
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((total - idle) / hz)
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

fn main() {
    let args = parse_args();
    let barrier = Arc::new(Barrier::new(args.threads + 1));
    let handles: Vec<_> = (0..args.threads)
        .map(|t| {
            let plan = driver::Plan {
                addr: args.addr,
                // Connection ids are global so every payload in the run is distinct.
                conn_ids: (0..args.conns as u64)
                    .filter(|i| *i as usize % args.threads == t)
                    .collect(),
                size: args.size,
                window: args.window,
                warmup: Duration::from_secs_f64(args.warmup),
                secs: Duration::from_secs_f64(args.secs),
                drain_timeout: Duration::from_secs_f64(args.drain_timeout),
                connect_timeout: Duration::from_secs_f64(args.connect_timeout),
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
    let (own0, srv0, all0) = (
        own_cpu_secs(),
        args.server_pid.and_then(proc_cpu_secs),
        machine_busy_secs(),
    );
    let t0 = Instant::now();
    std::thread::sleep(
        (start + Duration::from_secs_f64(args.warmup + args.secs))
            .saturating_duration_since(Instant::now()),
    );
    let wall = t0.elapsed().as_secs_f64();
    let (own1, srv1, all1) = (
        own_cpu_secs(),
        args.server_pid.and_then(proc_cpu_secs),
        machine_busy_secs(),
    );

    let mut total = driver::Report::default();
    for h in handles {
        let r = h.join().expect("load generator thread panicked");
        total.opened += r.opened;
        total.messages += r.messages;
        total.bytes += r.bytes;
        total.latencies_ns.extend(r.latencies_ns);
        total.verified += r.verified;
        total.lost += r.lost;
        total.clean_closes += r.clean_closes;
        total.max_gap = total.max_gap.max(r.max_gap);
        total.errors.extend(r.errors);
    }
    let lat = &mut total.latencies_ns;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    let cpu = |a: f64, b: f64| (b - a) / wall;
    let server_cpu = match (srv0, srv1) {
        (Some(a), Some(b)) => format!("{:.2}", cpu(a, b)),
        _ => "null".into(),
    };
    let machine_cpu = match (all0, all1) {
        (Some(a), Some(b)) => format!("{:.2}", cpu(a, b)),
        _ => "null".into(),
    };
    let ok =
        total.errors.is_empty() && total.opened == args.conns && total.clean_closes == args.conns;
    let errors: Vec<String> = total.errors.iter().take(10).map(|e| json_str(e)).collect();
    println!(
        "{{\"label\":{},\"conns\":{},\"size\":{},\"window\":{},\"threads\":{},\"warmup_s\":{},\"secs\":{},\
         \"messages\":{},\"msgs_per_sec\":{:.0},\"mbytes_per_sec\":{:.2},\
         \"lat_p50_us\":{:.1},\"lat_p90_us\":{:.1},\"lat_p99_us\":{:.1},\"lat_p999_us\":{:.1},\"lat_max_us\":{:.1},\
         \"max_gap_ms\":{:.1},\"loadgen_cpu\":{:.2},\"server_cpu\":{},\"machine_cpu\":{},\
         \"opened\":{},\"verified\":{},\"lost\":{},\"clean_closes\":{},\"ok\":{},\"error_count\":{},\"errors\":[{}]}}",
        json_str(&args.label),
        args.conns,
        args.size,
        args.window,
        args.threads,
        args.warmup,
        args.secs,
        total.messages,
        total.messages as f64 / args.secs,
        total.bytes as f64 / args.secs / 1e6,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0),
        total.max_gap.as_secs_f64() * 1000.0,
        cpu(own0, own1),
        server_cpu,
        machine_cpu,
        total.opened,
        total.verified,
        total.lost,
        total.clean_closes,
        ok,
        total.errors.len(),
        errors.join(","),
    );
    std::process::exit(if ok { 0 } else { 1 });
}
