//! Payload masking (§5.3), done eight bytes at a time.
//!
//! The key is rotated to the payload offset, widened to a u64, and XORed into 8-byte
//! words; the compiler turns the word loop into SIMD. Only a tail of < 8 bytes is
//! done byte by byte.

/// The key as it applies starting `offset` bytes into the payload.
fn rotated(key: [u8; 4], offset: usize) -> [u8; 4] {
    let r = offset % 4;
    [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]]
}

/// XORs `buf` with `key` as if `buf` started `offset` bytes into the masked payload, so
/// a payload that arrives in pieces can be unmasked piece by piece.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let k = rotated(key, offset);
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes((&*chunk).try_into().unwrap()) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    // The word loop consumed a multiple of 8 (and so of 4) bytes: the key phase of the
    // tail is unchanged.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i % 4];
    }
}

/// Appends `src` unmasked to `dst`, `src` starting `offset` bytes into the masked
/// payload. Two passes (copy, then XOR in place) kept in safe code; measured at about
/// half the speed of a plain copy (bench/RESULTS.md).
pub fn extend_unmasked(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) {
    let start = dst.len();
    dst.extend_from_slice(src);
    // The XOR pass hits the cache lines the copy just wrote.
    apply_mask(&mut dst[start..], key, offset);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_the_bytewise_definition_for_every_offset_and_length() {
        // §5.3: octet i of the payload is XORed with key octet i MOD 4.
        let key = [0x12, 0x34, 0x56, 0x78];
        for offset in 0..8 {
            for len in 0..100 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask(&mut fast, key, offset);
                naive(&mut slow, key, offset);
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn large_buffer_matches_and_masking_twice_restores_it() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let mut fast = data.clone();
        let mut slow = data.clone();
        apply_mask(&mut fast, key, 3);
        naive(&mut slow, key, 3);
        assert_eq!(fast, slow);
        apply_mask(&mut fast, key, 3);
        assert_eq!(fast, data);
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_at_once() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = Vec::new();
        let mut off = 0;
        for len in [1, 2, 3, 5, 8, 13, 21, 947] {
            extend_unmasked(&mut pieces, &data[off..off + len], key, off);
            off += len;
        }
        assert_eq!(pieces, whole);
    }
}
