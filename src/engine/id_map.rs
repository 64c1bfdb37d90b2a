//! Maps keyed by connection id. The ids are sequential numbers the engine issues
//! itself, so these maps need no defence against keys chosen by an attacker (the reason
//! for std's SipHash, which cost about a tenth of the server's own instructions per
//! echoed message, profiled with callgrind). One multiplication by an odd constant
//! spreads consecutive ids over the table's buckets and its tag bits.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// 2^64 divided by the golden ratio: consecutive ids land far apart (Fibonacci hashing).
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by u64 keys; kept correct for any key all the same.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(SPREAD);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(SPREAD);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` from connection id to `V`.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn consecutive_ids_get_distinct_bucket_and_tag_bits() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let mut low = std::collections::HashSet::new();
        let mut high = std::collections::HashSet::new();
        for id in 1..=128u64 {
            let h = build.hash_one(id);
            low.insert(h & 127);
            high.insert(h >> 57);
        }
        // hashbrown picks the bucket from the low bits and the tag from the top 7.
        assert!(low.len() > 100, "low bits spread: {}", low.len());
        assert!(high.len() > 60, "tag bits spread: {}", high.len());
    }

    #[test]
    fn a_map_keyed_by_ids_finds_what_it_holds() {
        let mut m: IdMap<u64> = IdMap::default();
        for id in 0..10_000u64 {
            m.insert(id * 64 + 3, id);
        }
        assert!((0..10_000u64).all(|id| m.get(&(id * 64 + 3)) == Some(&id)));
        assert_eq!(m.get(&5), None);
    }
}
