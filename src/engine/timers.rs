//! Connection deadlines in a min-heap: a reactor touches only the connections whose
//! deadline has come, never all of them.
//!
//! Entries are never removed early. A connection remembers the deadline of the entry
//! it trusts (`Armed`); an entry whose deadline is not that one is stale and skipped
//! when it surfaces. A deadline that moves later (more input arrived) needs no heap
//! operation at all: the earlier entry fires, finds the deadline not yet due, and is
//! pushed again once.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The deadline a connection's live heap entry carries, if any ([`Armed::NONE`]: none;
/// a sentinel rather than an `Option`, 8 bytes less for every connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Armed(u64);

impl Armed {
    const NONE: u64 = u64::MAX;

    /// Whether the connection has a live entry in the heap.
    pub fn is_set(&self) -> bool {
        self.0 != Self::NONE
    }
}

impl Default for Armed {
    fn default() -> Self {
        Armed(Armed::NONE)
    }
}

#[derive(Debug, Default)]
pub struct TimerHeap {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
}

impl TimerHeap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes sure connection `id` is looked at no later than `deadline` (ms).
    pub fn arm(&mut self, armed: &mut Armed, id: u64, deadline: u64) {
        // An entry that fires earlier will find this deadline and re-arm then.
        if armed.0 == Armed::NONE || armed.0 > deadline {
            armed.0 = deadline;
            self.heap.push(Reverse((deadline, id)));
        }
    }

    /// The earliest deadline in the heap (possibly stale: waking early is harmless).
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Pops the next entry due at `now`, as (deadline, connection id).
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, u64)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Whether a popped entry is the one `armed` trusts; if so it is consumed.
    pub fn claim(armed: &mut Armed, deadline: u64) -> bool {
        if armed.0 == deadline && deadline != Armed::NONE {
            armed.0 = Armed::NONE;
            true
        } else {
            false
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_pop_in_deadline_order_and_only_when_due() {
        let mut h = TimerHeap::new();
        let (mut a, mut b) = (Armed::default(), Armed::default());
        h.arm(&mut a, 1, 300);
        h.arm(&mut b, 2, 100);
        assert_eq!(h.next_deadline(), Some(100));
        assert_eq!(h.pop_due(99), None);
        assert_eq!(h.pop_due(100), Some((100, 2)));
        assert!(TimerHeap::claim(&mut b, 100));
        assert_eq!(h.pop_due(299), None);
        assert_eq!(h.pop_due(1000), Some((300, 1)));
    }

    #[test]
    fn a_later_deadline_costs_no_entry_and_an_earlier_one_makes_the_old_stale() {
        let mut h = TimerHeap::new();
        let mut a = Armed::default();
        h.arm(&mut a, 7, 100);
        h.arm(&mut a, 7, 500);
        assert_eq!(h.len(), 1, "moving later is lazy");
        h.arm(&mut a, 7, 50);
        assert_eq!(h.len(), 2);
        let (at, id) = h.pop_due(1000).unwrap();
        assert_eq!((at, id), (50, 7));
        assert!(TimerHeap::claim(&mut a, at));
        let (at, _) = h.pop_due(1000).unwrap();
        assert!(!TimerHeap::claim(&mut a, at), "the 100 ms entry is stale");
    }
}
