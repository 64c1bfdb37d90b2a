//! The rate mode's clock: an epoll wait with a nanosecond timeout, and the schedule
//! that decides when a pass over the connections sends what is due.
//!
//! Why `epoll_pwait2` and not a timerfd in the epoll set: `epoll_wait` (and mio's
//! `Poll::poll` on it) takes milliseconds and rounds a 100 us timeout up to 1 ms, so an
//! open-loop schedule woke at most once a millisecond unless an echo woke it first.
//! `epoll_pwait2` (Linux 5.11) takes a `timespec`: the same one system call per wait as
//! before, where a timerfd costs a `timerfd_settime` each time the deadline moves (once
//! per pass) and one more descriptor in the set. Its hrtimer gets the thread's timer
//! slack (50 us by default for a normal thread), so `set_timer_slack` narrows that to
//! 1 us for the load generator's threads.
//!
//! Why a pass interval (`--tick`): with the connections' schedules spread over one
//! period, something is due every 1/rate seconds (1 us at 1M msg/s). Waking for each
//! would cost a wake-up and a `write` per message, more than one core can do at the
//! rates the servers take, and a saturated client measures its own queue. So a pass
//! sends everything due on every connection (each connection's in one `write`), and
//! passes are at least `tick` apart; a message waits at most about `tick` past its due
//! time. The send lag (sent minus due) is reported, so a run shows whether the schedule
//! was kept.
//!
//! The default tick (`auto_tick`) keeps the writes to about 100,000 a second: none at
//! all when the rate is below that (every message may go out on its own, on time to
//! the timer slack), else one pass per `conns / 100,000` seconds (1 ms for 100
//! connections). Measured (bench/RESULTS.md, "Rate mode at sub-millisecond
//! resolution"): at 600k and 1M msg/s over 100 connections a 100 us tick has the load
//! generator's core full (a write per message or two), 1 ms leaves it at 0.6.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// One epoll instance, edge-triggered, waited on with nanosecond timeouts.
pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
    len: usize,
}

/// What one ready descriptor reported (the subset the driver looks at).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub token: usize,
    pub readable: bool,
    /// The peer shut down its side, or the connection hung up.
    pub read_closed: bool,
    pub error: bool,
}

impl Event {
    pub fn from_flags(token: usize, flags: u32) -> Event {
        let has = |f: libc::c_int| flags & f as u32 != 0;
        Event {
            token,
            readable: has(libc::EPOLLIN),
            read_closed: has(libc::EPOLLHUP) || (has(libc::EPOLLIN) && has(libc::EPOLLRDHUP)),
            error: has(libc::EPOLLERR),
        }
    }
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: no pointers; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
            len: 0,
        })
    }

    /// Readable and writable, edge-triggered, with the peer's shutdown reported.
    pub fn register(&self, source: &impl AsRawFd, token: usize) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: token as u64,
        };
        // SAFETY: `ev` lives through the call; both descriptors are open.
        let r =
            unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, source.as_raw_fd(), &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` (to the nanosecond, give or take the timer slack) for
    /// events; they are then in `events()`.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        self.len = 0;
        let ts = timespec(timeout);
        // SAFETY: the buffer holds `events.len()` entries; `ts` lives through the call;
        // a null signal mask leaves the mask alone (epoll_pwait2(2)).
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                self.fd,
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                &ts as *const libc::timespec,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.len = n as usize;
        Ok(())
    }

    pub fn event(&self, i: usize) -> Event {
        let ev = self.events[i];
        let (flags, data) = (ev.events, ev.u64);
        Event::from_flags(data as usize, flags)
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(self.fd) };
    }
}

pub fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// The calling thread's timer slack, in nanoseconds (how late the kernel may fire its
/// timers to merge wake-ups). 0 would mean "back to the default", so at least 1.
pub fn set_timer_slack(ns: u64) {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and touches only this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns.max(1) as libc::c_ulong, 0, 0, 0) };
}

/// Writes a second the default tick allows (see the module's comment).
pub const WRITES_PER_SEC: f64 = 100_000.0;

/// The default pass interval for `rate` messages a second over `conns` connections.
pub fn auto_tick(conns: usize, rate: f64) -> Duration {
    if rate <= WRITES_PER_SEC {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(conns as f64 / WRITES_PER_SEC)
    }
}

/// How many sends of a connection are due at `now` (its next one due at `*next_due`,
/// one every `interval`); moves `*next_due` past them.
pub fn take_due(next_due: &mut Instant, interval: Duration, now: Instant) -> u64 {
    if *next_due > now {
        return 0;
    }
    let late = now.duration_since(*next_due).as_nanos();
    let step = interval.as_nanos().max(1);
    let n = late / step + 1;
    *next_due += Duration::from_nanos((n * step) as u64);
    n as u64
}

/// When send passes run: when something is due, and no two closer than `tick`.
#[derive(Clone, Copy, Debug)]
pub struct Passes {
    tick: Duration,
    /// The earliest time the next pass may run (the last pass plus `tick`).
    not_before: Option<Instant>,
}

impl Passes {
    pub fn new(tick: Duration) -> Passes {
        Passes {
            tick,
            not_before: None,
        }
    }

    /// Whether a pass should run at `now`, with the earliest send due at `earliest`.
    pub fn due(&self, now: Instant, earliest: Instant) -> bool {
        now >= earliest && self.not_before.is_none_or(|t| now >= t)
    }

    /// A pass ran at `now`.
    pub fn ran(&mut self, now: Instant) {
        self.not_before = Some(now + self.tick);
    }

    /// When the next pass is to run, with the earliest send due at `earliest`.
    pub fn next(&self, earliest: Instant) -> Instant {
        self.not_before.map_or(earliest, |t| t.max(earliest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn take_due_counts_every_send_due_and_moves_past_them() {
        let t0 = Instant::now();
        let mut next = t0;
        // Due at 0, 100, 200, 300 us: four at 350 us, the next at 400 us.
        assert_eq!(take_due(&mut next, 100 * US, t0 + 350 * US), 4);
        assert_eq!(next, t0 + 400 * US);
        assert_eq!(take_due(&mut next, 100 * US, t0 + 399 * US), 0);
        assert_eq!(next, t0 + 400 * US);
        // Exactly on time counts.
        assert_eq!(take_due(&mut next, 100 * US, t0 + 400 * US), 1);
        assert_eq!(next, t0 + 500 * US);
    }

    #[test]
    fn passes_are_a_tick_apart_but_wait_for_something_due() {
        let t0 = Instant::now();
        let mut p = Passes::new(100 * US);
        assert!(p.due(t0, t0));
        assert!(!p.due(t0, t0 + US), "nothing due yet");
        p.ran(t0);
        assert!(!p.due(t0 + 50 * US, t0), "due, but within the tick");
        assert_eq!(p.next(t0), t0 + 100 * US);
        assert!(p.due(t0 + 100 * US, t0));
        // Nothing due before 250 us: the next pass is then, not at the tick.
        assert_eq!(p.next(t0 + 250 * US), t0 + 250 * US);
        // No tick: passes whenever something is due.
        let mut q = Passes::new(Duration::ZERO);
        q.ran(t0);
        assert!(q.due(t0, t0));
    }

    #[test]
    fn the_default_tick_bounds_the_writes_per_second() {
        // Below the budget every message may have its own write.
        assert_eq!(auto_tick(100, 50_000.0), Duration::ZERO);
        // Above it, passes over all connections at most 100,000 writes a second apart.
        assert_eq!(auto_tick(100, 1_000_000.0), Duration::from_millis(1));
        assert_eq!(auto_tick(10, 600_000.0), Duration::from_micros(100));
    }

    #[test]
    fn timeouts_keep_their_nanoseconds() {
        let ts = timespec(Duration::new(2, 1_500));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (2, 1_500));
        let ts = timespec(Duration::from_nanos(999));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (0, 999));
    }

    #[test]
    fn event_flags_are_read_like_mio_reads_them() {
        let ev = Event::from_flags(7, (libc::EPOLLIN | libc::EPOLLRDHUP) as u32);
        assert_eq!(
            (ev.token, ev.readable, ev.read_closed, ev.error),
            (7, true, true, false)
        );
        let ev = Event::from_flags(1, libc::EPOLLOUT as u32);
        assert_eq!(
            (ev.readable, ev.read_closed, ev.error),
            (false, false, false)
        );
        let ev = Event::from_flags(1, (libc::EPOLLHUP | libc::EPOLLERR) as u32);
        assert_eq!((ev.readable, ev.read_closed, ev.error), (false, true, true));
    }

    #[test]
    fn a_short_timeout_returns_and_a_ready_socket_is_reported() {
        use std::io::Write;
        let mut ep = Epoll::new(8).unwrap();
        ep.wait(Duration::from_micros(200)).unwrap();
        assert_eq!(ep.len(), 0);
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        ep.register(&b, 42).unwrap();
        a.write_all(b"x").unwrap();
        ep.wait(Duration::from_secs(5)).unwrap();
        assert_eq!(ep.len(), 1);
        let ev = ep.event(0);
        assert_eq!((ev.token, ev.readable), (42, true));
    }
}
