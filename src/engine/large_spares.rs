//! Spare large message buffers, by power-of-two size class, bounded in count and in
//! bytes. The container only; `recycle.rs` holds the process's one instance and says
//! why large buffers are kept.

/// The smallest class holds buffers of 1 KiB to 2 KiB - 1 (and serves requests of up to
/// 1 KiB: anything above the small buffers' 512 B).
const MIN_CLASS: u32 = 10;
/// The largest class holds buffers of 64 KiB to 128 KiB - 1: below glibc's default
/// `mmap` threshold (128 KiB), where a buffer freed on another thread gets the heap
/// trimmed and faulted back in. Larger buffers are left to the allocator, which
/// adapts by itself (its threshold rises once such a block is freed, and later ones
/// come from the heap); kept here, each would stay its own `mmap`, and the kernel's
/// copies into and out of one measured slower (bench/RESULTS.md: 1 MiB echoes cost
/// 512 instead of 398 us of server CPU). Nor must a spare list hold a 16 MiB
/// message's buffer for the life of the process.
pub(crate) const MAX_CLASS: u32 = 16;
const CLASSES: usize = (MAX_CLASS - MIN_CLASS + 1) as usize;
/// All classes together hold at most this many bytes of capacity: enough for 64
/// messages of 64 KiB in flight.
pub(crate) const MAX_BYTES: usize = 4 * 1024 * 1024;
/// A class holds at most this many buffers (the bytes bound is the one that matters
/// for the large classes; this one keeps the small classes' lists short).
pub(crate) const MAX_PER_CLASS: usize = 64;

/// Class `k` holds buffers of capacity `2^k` to `2^(k+1) - 1`, so any of them serves a
/// request of up to `2^k` bytes.
pub struct LargeSpares {
    classes: [Vec<Vec<u8>>; CLASSES],
    /// Capacity of every buffer held, in bytes (at most [`MAX_BYTES`]).
    bytes: usize,
}

impl LargeSpares {
    pub const fn new() -> Self {
        LargeSpares {
            classes: [const { Vec::new() }; CLASSES],
            bytes: 0,
        }
    }

    /// The class a buffer of `capacity` bytes is kept in (floor of log2), if any.
    fn class_of_capacity(capacity: usize) -> Option<usize> {
        let k = capacity.checked_ilog2()?;
        (MIN_CLASS..=MAX_CLASS)
            .contains(&k)
            .then(|| (k - MIN_CLASS) as usize)
    }

    /// The class whose every buffer holds `len` bytes (ceiling of log2), if any.
    fn class_for_request(len: usize) -> Option<usize> {
        let k = len.checked_next_power_of_two()?.ilog2().max(MIN_CLASS);
        (k <= MAX_CLASS).then(|| (k - MIN_CLASS) as usize)
    }

    /// The capacity a new buffer for a request of `len` bytes should have so that it
    /// serves the same requests when it comes back: its class's size. None: a
    /// request this large is not served from spares.
    pub fn class_size(len: usize) -> Option<usize> {
        Self::class_for_request(len).map(|c| 1 << (c as u32 + MIN_CLASS))
    }

    /// An empty spare of at least `len` bytes of capacity, if one is held.
    pub fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        let buf = self.classes[Self::class_for_request(len)?].pop()?;
        self.bytes -= buf.capacity();
        Some(buf)
    }

    /// Keeps `buf` (emptied) as a spare; gives it back when its capacity is outside
    /// the classes, its class is full or the bytes bound would be passed (the caller
    /// frees it, outside any lock).
    pub fn keep(&mut self, mut buf: Vec<u8>) -> Result<(), Vec<u8>> {
        let Some(class) = Self::class_of_capacity(buf.capacity()) else {
            return Err(buf);
        };
        if self.classes[class].len() >= MAX_PER_CLASS || self.bytes + buf.capacity() > MAX_BYTES {
            return Err(buf);
        }
        // Only the capacity is reused: a new message sees none of the old bytes.
        buf.clear();
        self.bytes += buf.capacity();
        self.classes[class].push(buf);
        Ok(())
    }

    /// Hands over every spare (to be freed outside any lock).
    pub fn take_all(&mut self) -> Vec<Vec<u8>> {
        self.bytes = 0;
        self.classes.iter_mut().flat_map(std::mem::take).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(s: &LargeSpares) -> usize {
        s.classes.iter().map(|c| c.len()).sum()
    }

    #[test]
    fn a_buffer_outside_the_classes_is_not_kept() {
        let mut s = LargeSpares::new();
        for cap in [0, 1, 512, 1023, 2 << MAX_CLASS, 16 << 20] {
            assert!(s.keep(Vec::with_capacity(cap)).is_err(), "capacity {cap}");
        }
        assert_eq!((held(&s), s.bytes), (0, 0));
        assert_eq!(LargeSpares::class_size((1 << MAX_CLASS) + 1), None);
        assert_eq!(LargeSpares::class_size(16 << 20), None);
        assert!(s.take(16 << 20).is_none());
    }

    #[test]
    fn the_bytes_bound_is_never_passed() {
        // Buffers just under the largest class's upper end: the bytes bound, not the
        // count, is what stops them.
        let cap = (2 << MAX_CLASS) - 1024;
        let mut s = LargeSpares::new();
        let mut kept = 0;
        for _ in 0..3 * MAX_PER_CLASS {
            if s.keep(Vec::with_capacity(cap)).is_ok() {
                kept += 1;
            }
            assert!(s.bytes <= MAX_BYTES);
        }
        assert_eq!(kept, MAX_BYTES / cap);
        assert!(kept < MAX_PER_CLASS);
        assert!(s.bytes + cap > MAX_BYTES);
    }

    #[test]
    fn a_class_holds_at_most_its_count() {
        let mut s = LargeSpares::new();
        let kept = (0..MAX_PER_CLASS + 10)
            .filter(|_| s.keep(Vec::with_capacity(1024)).is_ok())
            .count();
        assert_eq!(kept, MAX_PER_CLASS);
        assert_eq!(s.bytes, MAX_PER_CLASS * 1024);
    }

    #[test]
    fn a_spare_is_empty_and_large_enough_for_every_request_it_serves() {
        let mut s = LargeSpares::new();
        for len in [513, 1000, 1024, 1025, 4096, 5000, 65535, 1 << MAX_CLASS] {
            let size = LargeSpares::class_size(len).expect("served");
            assert!(
                size >= len && size < 2 * len.max(1024),
                "len {len} size {size}"
            );
            // A buffer of the class size, full of old bytes, comes back for it.
            let mut old = vec![0xEE; size];
            old.truncate(size);
            s.keep(old).unwrap();
            let buf = s.take(len).expect("the spare just kept");
            assert!(buf.is_empty(), "no old bytes are visible");
            assert!(buf.capacity() >= len);
            assert_eq!(s.bytes, 0);
        }
    }

    #[test]
    fn a_buffer_between_sizes_serves_only_smaller_requests() {
        // 3000 bytes of capacity: class 2 KiB, so it serves 2 KiB but not 2049 bytes.
        let mut s = LargeSpares::new();
        s.keep(Vec::with_capacity(3000)).unwrap();
        assert!(s.take(2049).is_none());
        let buf = s.take(2048).expect("kept in the 2 KiB class");
        assert!(buf.capacity() >= 2048);
    }

    #[test]
    fn take_all_empties_every_class() {
        let mut s = LargeSpares::new();
        for cap in [1024, 4096, 65536, 1 << MAX_CLASS] {
            s.keep(Vec::with_capacity(cap)).unwrap();
        }
        assert_eq!(s.take_all().len(), 4);
        assert_eq!((held(&s), s.bytes), (0, 0));
        assert!(s.take(1024).is_none());
    }
}
