//! Small message buffers, recycled. A message's buffer is filled on a reactor thread
//! and freed on the application's thread when it is done with the event. Freed there,
//! every buffer is a cross-thread free, which defeats the allocator's per-thread caches
//! on both sides: malloc and free took about a quarter of the server's own
//! instructions per echoed 32-byte message (callgrind). So buffers released through
//! `give_back` return, in batches, to a shared spare list, and the reader reads each
//! small message straight into a spare taken from it (`take`, through
//! [`Spares`]), in batches: one lock per batch, no allocation and no copy per message.
//! With the leader/follower reactors the thread that reads is usually the one that
//! releases, and the spares never leave it.
//!
//! Large buffers (up to 128 KiB) are kept too, for another reason: glibc
//! gives a freed 64 KiB block at the top of the reactor's heap back to the kernel
//! (`madvise`), and the next message faults it in again, page by page; a run was
//! either 1.25 or 2.1 GB/s depending on where the heap's top landed. They are kept
//! in power-of-two size classes, bounded in count and bytes (`large_spares.rs`),
//! taken and given back one at a time (a lock per message of 1 KiB or more is cheap),
//! and freed when an engine stops ([`release_large_spares`]).

use std::cell::RefCell;

use parking_lot::Mutex;

use super::large_spares::LargeSpares;
use crate::protocol::reader::MessageBuffers;

/// Buffers at most this large are small spares (per thread, then shared); larger ones
/// go to the size classes of `large_spares.rs`.
pub(crate) const RECYCLED_MAX: usize = 512;
/// Buffers move between a thread and the shared list this many at a time.
const BATCH: usize = 64;
/// The shared list holds at most this many (4096 x 512 B = 2 MiB at worst).
const MAX_SPARES: usize = 4096;

static SPARES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's spares: returned ones on an application thread, ones to fill on
    /// a reactor.
    static LOCAL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// The process's large spares (see [`LargeSpares`] for the bounds).
static LARGE: Mutex<LargeSpares> = Mutex::new(LargeSpares::new());

/// An empty buffer of at least `len` bytes of capacity, for a message of about that
/// size: a large spare when one is at hand. A new large buffer gets its size class's
/// capacity, so that it serves the same requests when it comes back.
pub fn take(len: usize) -> Vec<u8> {
    if len <= RECYCLED_MAX {
        return take_small(len);
    }
    let Some(size) = LargeSpares::class_size(len) else {
        return Vec::with_capacity(len);
    };
    if let Some(buf) = LARGE.lock().take(len) {
        return buf;
    }
    Vec::with_capacity(size)
}

/// Keeps a large buffer for [`take`] if the spares' bounds allow, else frees it here.
pub fn give_back_large(buf: Vec<u8>) {
    if buf.capacity() <= RECYCLED_MAX {
        return;
    }
    let refused = LARGE.lock().keep(buf);
    drop(refused); // outside the lock
}

/// The reactors' source of message buffers: large messages get a large spare.
pub struct Spares;

impl MessageBuffers for Spares {
    fn message_buffer(&mut self, len: usize) -> Vec<u8> {
        take(len)
    }
}

/// A reactor's own small spares, for handler mode: the handler is done with a
/// message's buffer before the reactor reads on, on the same thread, so the buffer
/// comes straight back here, with no thread-local lookup and no shared list.
#[derive(Default)]
pub struct ReactorSpares {
    free: Vec<Vec<u8>>,
}

impl ReactorSpares {
    /// Keeps a handled message's buffer for the next message (up to a batch; more,
    /// and large ones, go where `give_back` puts them).
    pub fn give_back(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0 || cap > RECYCLED_MAX || self.free.len() >= 2 * BATCH {
            give_back(buf);
            return;
        }
        buf.clear();
        self.free.push(buf);
    }
}

impl MessageBuffers for ReactorSpares {
    fn message_buffer(&mut self, len: usize) -> Vec<u8> {
        if len <= RECYCLED_MAX {
            if let Some(mut buf) = self.free.pop() {
                buf.reserve(len);
                return buf;
            }
        }
        take(len)
    }
}

/// Frees every large spare (an engine stopped: what it kept is not held for ever).
/// Another engine still running only loses its spares, which it makes again.
pub fn release_large_spares() {
    let spares = LARGE.lock().take_all();
    drop(spares); // outside the lock
}

/// Takes back a message buffer the application is done with.
pub fn give_back(mut buf: Vec<u8>) {
    if buf.capacity() > RECYCLED_MAX {
        give_back_large(buf);
        return;
    }
    if buf.capacity() == 0 {
        return;
    }
    buf.clear();
    let _ = LOCAL.try_with(|local| {
        let mut local = local.borrow_mut();
        local.push(buf);
        if local.len() >= 2 * BATCH {
            let mut spares = SPARES.lock();
            let room = MAX_SPARES.saturating_sub(spares.len()).min(BATCH);
            let from = local.len() - room;
            spares.extend(local.drain(from..));
            // Past the shared bound the rest is freed here, keeping one batch.
            local.truncate(BATCH);
        }
    });
}

/// Gather buffers (a corked batch's messages for one connection, `send_queue.rs`) at
/// most this large are kept for the thread's next batch...
pub(crate) const GATHER_KEPT_MAX: usize = 4096;
/// ...and at most this many per thread (1 MiB at worst).
const GATHER_KEPT: usize = 256;

thread_local! {
    static GATHER: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for `len` bytes to gather a corked batch into: one the
/// thread used for an earlier batch when it has one (a batch is gathered and written
/// on the same thread, so these never cross threads).
pub fn take_gather(len: usize) -> Vec<u8> {
    let kept = GATHER.try_with(|g| g.borrow_mut().pop()).ok().flatten();
    match kept {
        Some(mut buf) => {
            buf.reserve(len);
            buf
        }
        None => Vec::with_capacity(len),
    }
}

/// Keeps a written gather buffer for [`take_gather`] within the per-thread bounds.
pub fn give_back_gather(mut buf: Vec<u8>) {
    if buf.capacity() > GATHER_KEPT_MAX {
        return;
    }
    buf.clear();
    let _ = GATHER.try_with(|g| {
        let mut g = g.borrow_mut();
        if g.len() < GATHER_KEPT {
            g.push(buf);
        }
    });
}

/// A small buffer with room for `len` bytes: one of this thread's spares (refilled from
/// the shared list a batch at a time) when one is at hand, else a new one. A message
/// read into it travels to the application and comes back through [`give_back`].
fn take_small(len: usize) -> Vec<u8> {
    let spare = LOCAL
        .try_with(|local| {
            let mut local = local.borrow_mut();
            if local.is_empty() {
                let mut spares = SPARES.lock();
                let from = spares.len().saturating_sub(BATCH);
                local.extend(spares.drain(from..));
            }
            local.pop()
        })
        .ok()
        .flatten();
    match spare {
        Some(mut buf) => {
            buf.reserve(len);
            buf
        }
        None => Vec::with_capacity(len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_back_buffer_is_reused_with_the_new_contents_only() {
        // Runs on its own thread: the shared list may hold other tests' buffers, but
        // every spare is empty when handed out.
        std::thread::spawn(|| {
            for _ in 0..3 * BATCH {
                give_back(Vec::with_capacity(64));
            }
            let mut scribbled = Vec::with_capacity(64);
            scribbled.extend_from_slice(b"old contents");
            give_back(scribbled);
            let buf = take(5);
            assert!(buf.is_empty(), "a spare comes out empty");
            assert_eq!(buf.capacity(), 64, "and is one of the given-back buffers");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn gather_buffers_are_reused_empty_within_their_bounds() {
        std::thread::spawn(|| {
            let mut used = take_gather(1024);
            used.extend_from_slice(b"an earlier batch");
            let ptr = used.as_ptr();
            give_back_gather(used);
            let again = take_gather(100);
            assert!(again.is_empty());
            assert_eq!(again.as_ptr(), ptr, "the same buffer serves the next batch");
            give_back_gather(Vec::with_capacity(GATHER_KEPT_MAX + 1));
            GATHER.with(|g| assert!(g.borrow().is_empty(), "too large to keep"));
            for _ in 0..GATHER_KEPT + 10 {
                give_back_gather(Vec::with_capacity(16));
            }
            GATHER.with(|g| assert_eq!(g.borrow().len(), GATHER_KEPT));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn large_or_empty_buffers_are_not_kept_as_small_spares() {
        std::thread::spawn(|| {
            give_back(Vec::with_capacity(RECYCLED_MAX + 1));
            give_back(Vec::new());
            LOCAL.with(|l| assert!(l.borrow().is_empty()));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_large_buffer_given_back_is_handed_out_empty_and_large_enough() {
        // Other tests' engines may take or free spares meanwhile: whichever buffer
        // comes out, it is empty and large enough.
        for len in [600, 4096, 65536, 70_000, 1 << 20] {
            let mut old = take(len);
            old.resize(old.capacity(), 0xEE);
            give_back(old);
            let buf = take(len);
            assert!(buf.is_empty(), "len {len}");
            assert!(buf.capacity() >= len, "len {len}");
            give_back(buf);
        }
        let huge = take(16 << 20);
        assert!(huge.capacity() >= 16 << 20, "served, just not from spares");
    }

    #[test]
    fn the_shared_list_stays_bounded() {
        std::thread::spawn(|| {
            for _ in 0..(MAX_SPARES + 10 * BATCH) {
                give_back(Vec::with_capacity(16));
            }
            assert!(SPARES.lock().len() <= MAX_SPARES);
            LOCAL.with(|l| assert!(l.borrow().len() < 2 * BATCH));
        })
        .join()
        .unwrap();
    }
}
