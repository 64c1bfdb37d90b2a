//! Small message buffers, recycled. A message's buffer is filled on a reactor thread
//! and freed on the application's thread when it is done with the event. Freed there,
//! every buffer is a cross-thread free, which defeats the allocator's per-thread caches
//! on both sides: malloc and free took about a quarter of the server's own
//! instructions per echoed 32-byte message (callgrind). So buffers released through
//! `give_back` return, in batches, to a shared spare list, and reactors copy small
//! payloads into spares taken from it in batches: one lock per batch, and the
//! reactor's own scratch allocations are freed on the thread that made them.
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

/// Buffers at most this large are recycled; larger messages keep their own buffer
/// (copying them would cost more than the allocation saved).
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
        return Vec::with_capacity(len);
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

/// A copy of `data` in a recycled buffer, or None when `data` is larger than
/// [`RECYCLED_MAX`] or no spare is at hand (the caller then keeps its own buffer).
pub fn copy_into_spare(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() > RECYCLED_MAX {
        return None;
    }
    LOCAL
        .try_with(|local| {
            let mut local = local.borrow_mut();
            if local.is_empty() {
                let mut spares = SPARES.lock();
                let from = spares.len().saturating_sub(BATCH);
                local.extend(spares.drain(from..));
            }
            let mut buf = local.pop()?;
            buf.extend_from_slice(data);
            Some(buf)
        })
        .ok()
        .flatten()
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
            let copy = copy_into_spare(b"hello").expect("a spare is at hand");
            assert_eq!(copy, b"hello");
            assert!(copy.capacity() >= 5);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn large_or_empty_buffers_are_not_kept_and_large_data_is_not_copied() {
        std::thread::spawn(|| {
            give_back(Vec::with_capacity(RECYCLED_MAX + 1));
            give_back(Vec::new());
            LOCAL.with(|l| assert!(l.borrow().is_empty()));
            assert!(copy_into_spare(&[0u8; RECYCLED_MAX + 1]).is_none());
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
