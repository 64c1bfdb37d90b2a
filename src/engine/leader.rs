//! Leader/follower: who runs a reactor's turns.
//!
//! Every reactor has its own thread, but an application thread that would otherwise
//! sleep in a poll until a reactor hands it events runs the reactors' turns itself: it
//! leads. It waits in epoll, reads, and gets the events it made, so a request and its
//! answer cost no hand-over between threads, no wake-up and no context switch. On two
//! cores shared with a load generator, that hand-over was most of the server's cost
//! per message (bench/RESULTS.md).
//!
//! Meanwhile the reactor threads stand by, and take their turns back when the leader
//! has been away from its poll for longer than `STANDBY_AWAY` (an application busy with
//! a long batch, or one that stopped polling), so reading, pongs, timers and flushes
//! never wait on the application for long. One poller leads at a time; the others wait
//! on the event queue as before. A poll that does not wait (timeout 0) never leads,
//! since an application that polls only when the event descriptor is readable needs
//! the reactors to run on their own.
//!
//! The hand-over of a reactor is a lock: whoever holds `ReactorSlot::reactor` runs the
//! turn. A poller that wants a reactor whose thread is waiting in epoll sets `wanted`,
//! wakes it through its eventfd, and takes the lock when the thread's turn ends; the
//! thread sees `led` and stands by.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use super::reactor::{Reactor, TurnEnd};
use super::shared::EngineShared;
use super::sys::{self, Epoll, EpollEvent};

/// How long the leader may be away from its poll before the reactor threads take
/// their turns back.
const STANDBY_AWAY: Duration = Duration::from_millis(5);
/// How often a standing-by thread looks while the leader sits in its poll (its look
/// costs a wake-up; the leader's return from the poll is not signalled).
const STANDBY_IN_POLL: Duration = Duration::from_millis(20);

struct ReactorSlot {
    index: usize,
    reactor: Mutex<Reactor>,
    /// A poller runs this reactor's turns; its thread stands by.
    led: AtomicBool,
    /// A poller waits for the lock: the thread must not take it again meanwhile.
    wanted: AtomicBool,
    /// The stop is complete.
    finished: AtomicBool,
}

impl ReactorSlot {
    /// Takes the reactor for a poller: at once when its thread stands by or is between
    /// turns, else after waking the thread out of its epoll wait.
    fn acquire(&self, engine: &EngineShared) -> MutexGuard<'_, Reactor> {
        let guard = match self.reactor.try_lock() {
            Some(guard) => guard,
            None => {
                self.wanted.store(true, Ordering::Release);
                engine.reactors[self.index].wake.signal();
                let guard = self.reactor.lock();
                self.wanted.store(false, Ordering::Release);
                guard
            }
        };
        self.led.store(true, Ordering::Release);
        guard
    }

    /// Runs one turn and records the end of a stop.
    fn turn(&self, reactor: &mut Reactor, cap_ms: Option<i32>, led: bool) {
        if reactor.turn(cap_ms, led) == TurnEnd::Finished {
            self.finished.store(true, Ordering::Release);
        }
    }
}

/// Whether the leader is in its poll now, and when it last left it.
#[derive(Default)]
struct Presence {
    in_poll: AtomicBool,
    away_since_ms: AtomicU64,
}

/// The reactors' slots and the seat of the one poller that leads them.
pub(crate) struct Leadership {
    engine: Arc<EngineShared>,
    slots: Vec<Arc<ReactorSlot>>,
    presence: Arc<Presence>,
    seat: Mutex<Seat>,
}

/// The leader's wait over several reactors: their epoll descriptors in one more epoll
/// (level-triggered; a token is a reactor's index). None with a single reactor, whose
/// own epoll the leader waits in.
struct Seat {
    outer: Option<Epoll>,
    events: Vec<EpollEvent>,
}

impl Leadership {
    /// Starts a thread for each reactor; returns the leadership and the threads.
    pub fn start(
        engine: Arc<EngineShared>,
        reactors: Vec<Reactor>,
    ) -> std::io::Result<(Leadership, Vec<JoinHandle<()>>)> {
        let outer = if reactors.len() > 1 {
            let outer = Epoll::new()?;
            for (index, reactor) in reactors.iter().enumerate() {
                outer.add(reactor.epoll_fd(), index as u64, sys::EV_IN)?;
            }
            Some(outer)
        } else {
            None
        };
        let presence = Arc::new(Presence::default());
        let slots: Vec<Arc<ReactorSlot>> = reactors
            .into_iter()
            .enumerate()
            .map(|(index, reactor)| {
                Arc::new(ReactorSlot {
                    index,
                    reactor: Mutex::new(reactor),
                    led: AtomicBool::new(false),
                    wanted: AtomicBool::new(false),
                    finished: AtomicBool::new(false),
                })
            })
            .collect();
        let mut threads = Vec::with_capacity(slots.len());
        for slot in &slots {
            let (slot, presence, engine) = (slot.clone(), presence.clone(), engine.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("wsq-reactor-{}", slot.index))
                    .spawn(move || follow(&slot, &presence, &engine))?,
            );
        }
        let events = sys::empty_events(slots.len().max(1));
        Ok((
            Leadership {
                engine,
                slots,
                presence,
                seat: Mutex::new(Seat { outer, events }),
            },
            threads,
        ))
    }

    /// Runs the reactors' turns on the calling thread, waiting at most `cap` for I/O.
    /// Returns false, having done nothing, when another poller leads or the server is
    /// stopping (the reactor threads finish the stop); the caller then waits on the
    /// event queue instead.
    pub fn lead(&self, cap: Option<Duration>) -> bool {
        if self.engine.stopping.load(Ordering::Acquire) {
            return false;
        }
        let Some(mut seat) = self.seat.try_lock() else {
            return false;
        };
        self.presence.in_poll.store(true, Ordering::Release);
        let cap_ms = cap.map(ceil_ms);
        let seat = &mut *seat;
        match &seat.outer {
            None => {
                let slot = &self.slots[0];
                if !slot.finished.load(Ordering::Acquire) {
                    let mut reactor = slot.acquire(&self.engine);
                    slot.turn(&mut reactor, cap_ms, true);
                }
            }
            Some(outer) => self.lead_several(outer, &mut seat.events, cap_ms),
        }
        self.presence
            .away_since_ms
            .store(self.engine.now_ms(), Ordering::Release);
        self.presence.in_poll.store(false, Ordering::Release);
        true
    }

    /// Several reactors: one wait over all of them, then a turn for each that has I/O
    /// or a timer due.
    fn lead_several(&self, outer: &Epoll, events: &mut [EpollEvent], cap_ms: Option<i32>) {
        let mut wait = cap_ms.unwrap_or(i32::MAX);
        for slot in self.live_slots() {
            wait = wait.min(slot.acquire(&self.engine).idle_timeout());
        }
        let n = outer.wait(events, wait).unwrap_or(0);
        for slot in self.live_slots() {
            let ready = events[..n].iter().any(|ev| ev.u64 == slot.index as u64);
            let mut reactor = slot.acquire(&self.engine);
            if ready || reactor.idle_timeout() == 0 {
                slot.turn(&mut reactor, Some(0), true);
            }
        }
    }

    fn live_slots(&self) -> impl Iterator<Item = &Arc<ReactorSlot>> {
        self.slots
            .iter()
            .filter(|s| !s.finished.load(Ordering::Acquire))
    }
}

/// A reactor thread: runs turns while no poller leads, stands by while one does, and
/// takes the turns back when the leader is away too long or the server stops.
fn follow(slot: &ReactorSlot, presence: &Presence, engine: &EngineShared) {
    loop {
        if slot.finished.load(Ordering::Acquire) {
            return;
        }
        if slot.wanted.load(Ordering::Acquire) {
            std::thread::yield_now();
            continue;
        }
        if slot.led.load(Ordering::Acquire) {
            let in_poll = presence.in_poll.load(Ordering::Acquire);
            std::thread::park_timeout(if in_poll {
                STANDBY_IN_POLL
            } else {
                STANDBY_AWAY
            });
            take_back_if_left(slot, presence, engine);
            continue;
        }
        let mut reactor = slot.reactor.lock();
        if slot.led.load(Ordering::Acquire) || slot.wanted.load(Ordering::Acquire) {
            continue;
        }
        slot.turn(&mut reactor, None, false);
    }
}

fn take_back_if_left(slot: &ReactorSlot, presence: &Presence, engine: &EngineShared) {
    let stopping = engine.stopping.load(Ordering::Acquire);
    let away = !presence.in_poll.load(Ordering::Acquire)
        && engine
            .now_ms()
            .saturating_sub(presence.away_since_ms.load(Ordering::Acquire))
            >= STANDBY_AWAY.as_millis() as u64;
    if !(stopping || away) {
        return;
    }
    // Held by a leader in its turn: it is not away after all.
    if let Some(_reactor) = slot.reactor.try_lock() {
        slot.led.store(false, Ordering::Release);
    }
}

/// A poll's time left in whole milliseconds, rounded up (a wait of 0.4 ms must not
/// become a busy loop of zero-timeout waits).
fn ceil_ms(d: Duration) -> i32 {
    let ms = d.as_micros().div_ceil(1000);
    ms.min(i32::MAX as u128) as i32
}
