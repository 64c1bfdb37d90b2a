//! The bounded, multi-producer multi-consumer event queue between reactors and the
//! application, with an eventfd that is readable exactly while events wait.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::event::{ConnId, Event};
use super::sys::EventFd;

/// What a reactor queues: an event for the application, or a barrier marker (see
/// `ConnEvent::Barrier`): once a poller has taken it, every event queued before it for
/// that connection has been taken too, since the queue is first in, first out.
pub enum Entry {
    Event(Event),
    Barrier { conn: ConnId, reactor: usize },
}

pub struct EventQueue {
    events: Mutex<VecDeque<Entry>>,
    ready: Condvar,
    /// Mirror of the queue length, so reactors can check for room without the lock.
    len: AtomicUsize,
    capacity: usize,
    efd: EventFd,
    /// Set when a reactor stopped reading for lack of room; cleared (and reported to
    /// the poller, who wakes the reactors) once the queue has drained to half.
    readers_paused: AtomicBool,
    /// Set at shutdown so blocked pollers return instead of waiting out their timeout.
    closed: AtomicBool,
    /// Someone asked for the eventfd: from then on it mirrors the queue. Until then
    /// it is left alone, saving a write and a read system call per batch for the
    /// applications that just poll.
    fd_in_use: AtomicBool,
}

/// What a poll got, and whether the reactors should be told to read again.
pub struct Popped {
    pub count: usize,
    pub resume_readers: bool,
}

impl EventQueue {
    pub fn new(capacity: usize) -> std::io::Result<EventQueue> {
        Ok(EventQueue {
            events: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            efd: EventFd::new()?,
            readers_paused: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            fd_in_use: AtomicBool::new(false),
        })
    }

    /// The eventfd that is readable exactly while events wait. The first call makes
    /// it follow the queue (under the queue's lock, so no push or pop is missed).
    pub fn event_fd(&self) -> RawFd {
        if !self.fd_in_use.load(Ordering::Acquire) {
            let q = self.events.lock();
            if !self.fd_in_use.swap(true, Ordering::AcqRel) && !q.is_empty() {
                self.efd.signal();
            }
        }
        self.efd.fd()
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// How many more events fit, counting `pending` events the caller has produced but
    /// not pushed yet; at 0 the caller should stop reading sockets.
    pub fn room(&self, pending: usize) -> usize {
        self.capacity.saturating_sub(self.len() + pending)
    }

    /// Records that a reactor has stopped reading because the queue was full.
    pub fn note_readers_paused(&self) {
        self.readers_paused.store(true, Ordering::Release);
    }

    /// Appends every entry in `batch` (leaving it empty) with one lock. Never refuses:
    /// the capacity is enforced by reactors not reading while `is_full`.
    pub fn push_all(&self, batch: &mut Vec<Entry>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        let mut q = self.events.lock();
        let was_empty = q.is_empty();
        q.extend(batch.drain(..));
        self.len.store(q.len(), Ordering::Relaxed);
        if was_empty && self.fd_in_use.load(Ordering::Acquire) {
            self.efd.signal();
        }
        drop(q);
        if n == 1 {
            self.ready.notify_one();
        } else {
            self.ready.notify_all();
        }
    }

    #[cfg(test)]
    pub fn push(&self, event: Event) {
        let mut q = self.events.lock();
        if q.is_empty() && self.fd_in_use.load(Ordering::Acquire) {
            self.efd.signal();
        }
        q.push_back(Entry::Event(event));
        self.len.store(q.len(), Ordering::Relaxed);
        drop(q);
        self.ready.notify_one();
    }

    /// Moves up to `max` events into `out` (and the barriers met on the way into
    /// `barriers`), waiting up to `timeout` (None: forever) for the first entry.
    /// Returns early with nothing once the queue is closed and empty.
    pub fn pop_batch(
        &self,
        out: &mut Vec<Event>,
        barriers: &mut Vec<(ConnId, usize)>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Popped {
        let mut q = self.events.lock();
        // A look without waiting reads no clock (the leader's polls look this way).
        let deadline = match timeout {
            Some(t) if t.is_zero() => Some(None),
            Some(t) => Some(Some(Instant::now() + t)),
            None => None,
        };
        while q.is_empty() && !self.closed.load(Ordering::Acquire) {
            match deadline {
                Some(None) => break,
                Some(Some(d)) => {
                    if self.ready.wait_until(&mut q, d).timed_out() {
                        break;
                    }
                }
                None => self.ready.wait(&mut q),
            }
        }
        let mut count = 0;
        let queued_before = q.len();
        while count < max {
            match q.pop_front() {
                Some(Entry::Event(e)) => {
                    out.push(e);
                    count += 1;
                }
                Some(Entry::Barrier { conn, reactor }) => barriers.push((conn, reactor)),
                None => break,
            }
        }
        self.len.store(q.len(), Ordering::Relaxed);
        if q.is_empty() && queued_before > 0 && self.fd_in_use.load(Ordering::Acquire) {
            self.efd.clear();
        }
        let has_room = q.len() <= self.capacity / 2;
        drop(q);
        let resume_readers = has_room && self.readers_paused.swap(false, Ordering::AcqRel);
        Popped {
            count,
            resume_readers,
        }
    }

    /// Wakes every blocked poller; later polls on an empty queue return at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = self.events.lock();
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{ConnId, EventKind};

    fn drain_event(id: u64) -> Event {
        Event {
            conn: ConnId(id),
            tag: 0,
            kind: EventKind::Drain,
        }
    }

    fn fd_readable(fd: RawFd) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: test-only poll on a valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
    }

    #[test]
    fn event_fd_is_readable_exactly_while_events_wait() {
        let q = EventQueue::new(8).unwrap();
        assert!(!fd_readable(q.event_fd()));
        q.push(drain_event(1));
        q.push(drain_event(2));
        assert!(fd_readable(q.event_fd()));
        let mut out = Vec::new();
        q.pop_batch(&mut out, &mut Vec::new(), 1, Some(Duration::ZERO));
        assert!(fd_readable(q.event_fd()), "one event still waits");
        q.pop_batch(&mut out, &mut Vec::new(), 10, Some(Duration::ZERO));
        assert!(!fd_readable(q.event_fd()));
        assert_eq!(out.iter().map(|e| e.conn.0).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn event_fd_asked_for_late_reports_events_already_waiting() {
        let q = EventQueue::new(8).unwrap();
        q.push(drain_event(1));
        let fd = q.event_fd();
        assert!(
            fd_readable(fd),
            "an event waited before the fd was asked for"
        );
        q.pop_batch(&mut Vec::new(), &mut Vec::new(), 10, Some(Duration::ZERO));
        assert!(!fd_readable(fd));
        q.push(drain_event(2));
        assert!(fd_readable(fd));
    }

    #[test]
    fn paused_readers_are_resumed_once_the_queue_drains_to_half() {
        let q = EventQueue::new(4).unwrap();
        let mut batch: Vec<Entry> = (0..4).map(|i| Entry::Event(drain_event(i))).collect();
        q.push_all(&mut batch);
        assert_eq!(q.room(0), 0);
        assert_eq!(EventQueue::new(4).unwrap().room(3), 1);
        assert_eq!(
            EventQueue::new(4).unwrap().room(4),
            0,
            "unpublished events count"
        );
        q.note_readers_paused();
        let mut out = Vec::new();
        assert!(
            !q.pop_batch(&mut out, &mut Vec::new(), 1, None)
                .resume_readers,
            "3 left > half"
        );
        assert!(
            q.pop_batch(&mut out, &mut Vec::new(), 1, None)
                .resume_readers,
            "2 left = half"
        );
        assert!(
            !q.pop_batch(&mut out, &mut Vec::new(), 1, None)
                .resume_readers,
            "reported once"
        );
    }

    #[test]
    fn barriers_come_out_beside_the_events_before_them_and_do_not_count() {
        let q = EventQueue::new(8).unwrap();
        let mut batch = vec![
            Entry::Event(drain_event(1)),
            Entry::Barrier {
                conn: ConnId(1),
                reactor: 0,
            },
            Entry::Event(drain_event(2)),
        ];
        q.push_all(&mut batch);
        let (mut out, mut barriers) = (Vec::new(), Vec::new());
        assert_eq!(q.pop_batch(&mut out, &mut barriers, 1, None).count, 1);
        assert!(barriers.is_empty(), "the barrier is after the first event");
        assert_eq!(q.pop_batch(&mut out, &mut barriers, 1, None).count, 1);
        assert_eq!(barriers, vec![(ConnId(1), 0)]);
        assert_eq!(out.iter().map(|e| e.conn.0).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn poll_times_out_empty_and_close_wakes_a_blocked_poller() {
        let q = std::sync::Arc::new(EventQueue::new(4).unwrap());
        let mut out = Vec::new();
        assert_eq!(
            q.pop_batch(
                &mut out,
                &mut Vec::new(),
                4,
                Some(Duration::from_millis(10))
            )
            .count,
            0
        );
        let q2 = q.clone();
        let waiter = std::thread::spawn(move || {
            q2.pop_batch(&mut Vec::new(), &mut Vec::new(), 4, None)
                .count
        });
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert_eq!(waiter.join().unwrap(), 0);
    }
}
