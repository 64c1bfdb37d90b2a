//! Payload masking (§5.3), done many bytes at a time.
//!
//! The key is rotated to the payload offset and widened to a word (in place) or a
//! 64-byte block (copying); the compiler turns both loops into SIMD. Per-byte work is
//! limited to a tail of < 8 bytes in place. Measured in bench/RESULTS.md against memcpy.

/// The key as it applies starting `offset` bytes into the payload: a rotation of its
/// four bytes, done as one word rotation.
#[inline]
fn rotated(key: [u8; 4], offset: usize) -> [u8; 4] {
    // Little-endian: key[0] is the low byte, so rotating right by r bytes brings
    // key[r] to the front.
    u32::from_le_bytes(key)
        .rotate_right(8 * (offset & 3) as u32)
        .to_le_bytes()
}

/// XORs `buf` with `key` as if `buf` started `offset` bytes into the masked payload, so
/// a payload that arrives in pieces can be unmasked piece by piece.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    mask_words(buf, rotated(key, offset));
}

/// XORs `buf` with `k` starting at key phase 0: 8 bytes at a time, then one 4-byte
/// step and at most 3 single bytes, so no per-byte `%` is left.
#[inline]
fn mask_words(buf: &mut [u8], k: [u8; 4]) {
    // The key twice in a row: two equal halves, so the same in either byte order.
    let quad = u32::from_ne_bytes(k);
    let word = u64::from(quad) | u64::from(quad) << 32;
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes((&*chunk).try_into().unwrap()) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    // The word loop consumed a multiple of 8 (and so of 4) bytes: the key phase of the
    // tail is unchanged.
    let mut tail = chunks.into_remainder();
    if tail.len() >= 4 {
        let (head, rest) = tail.split_at_mut(4);
        let v = u32::from_ne_bytes((&*head).try_into().unwrap()) ^ quad;
        head.copy_from_slice(&v.to_ne_bytes());
        tail = rest;
    }
    for (b, m) in tail.iter_mut().zip(k) {
        *b ^= m;
    }
}

/// Bytes unmasked per step of [`extend_unmasked`]: a stack block the compiler keeps in
/// vector registers (four 16-byte SSE2 registers on baseline x86-64). 64 and 128 both
/// measured at ~0.9x memcpy for 1 MiB; 32 was ~0.65x.
const BLOCK: usize = 64;

/// Appends `src` unmasked to `dst`, `src` starting `offset` bytes into the masked
/// payload.
///
/// One pass in safe code: each 64-byte block is XORed in registers and appended, so
/// the payload is read once and written once. Copying first and XORing the destination
/// afterwards (two passes) measured at ~0.4x memcpy for 1 MiB, because the second pass
/// re-reads a buffer that no longer fits in L1/L2.
#[inline]
pub fn extend_unmasked(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) {
    let k = rotated(key, offset);
    if src.len() < BLOCK {
        // All of a small frame's payload (and a large one's last piece): one copy,
        // then XOR in place while it is still in L1. Kept small enough to inline into
        // the reader, without the block loop's set-up.
        let block_key = block_key(k);
        // One pass, no memcpy call: the zip of two slices has an exact length, so the
        // vector reserves once and the XOR loop writes straight into it.
        dst.extend(src.iter().zip(&block_key).map(|(b, m)| b ^ m));
        return;
    }
    extend_unmasked_blocks(dst, src, k);
}

/// `k` repeated over a block. BLOCK is a multiple of 4, so every block (and the
/// start of every payload piece) is at key phase 0 of `k`.
#[inline]
fn block_key(k: [u8; 4]) -> [u8; BLOCK] {
    let quad = u32::from_ne_bytes(k);
    let word = (u64::from(quad) | u64::from(quad) << 32).to_ne_bytes();
    let mut block = [0u8; BLOCK];
    for w in block.chunks_exact_mut(8) {
        w.copy_from_slice(&word);
    }
    block
}

/// [`extend_unmasked`] for payloads of at least one block, with the key already
/// rotated to the first byte.
fn extend_unmasked_blocks(dst: &mut Vec<u8>, src: &[u8], k: [u8; 4]) {
    dst.reserve(src.len());
    let block_key = block_key(k);
    let mut blocks = src.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut buf: [u8; BLOCK] = block.try_into().expect("chunks_exact yields BLOCK bytes");
        for (b, m) in buf.iter_mut().zip(&block_key) {
            *b ^= m;
        }
        dst.extend_from_slice(&buf);
    }
    // The tail (< 64 bytes) is still in cache: copy then XOR in place is cheapest here.
    let start = dst.len();
    dst.extend_from_slice(blocks.remainder());
    mask_words(&mut dst[start..], k);
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
    fn extend_unmasked_matches_the_bytewise_definition_for_every_offset_and_length() {
        // §5.3; lengths cover empty, tail-only, whole blocks and block + tail.
        let key = [0x9a, 0x01, 0xff, 0x5c];
        for offset in 0..8 {
            for len in 0..200 {
                let data: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
                let mut slow = data.clone();
                naive(&mut slow, key, offset);
                let mut dst = vec![0xAA; 3];
                extend_unmasked(&mut dst, &data, key, offset);
                assert_eq!(&dst[..3], &[0xAA; 3], "existing bytes untouched");
                assert_eq!(&dst[3..], &slow[..], "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn extend_unmasked_large_buffer_matches() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 253) as u8).collect();
        let mut slow = data.clone();
        naive(&mut slow, key, 7);
        let mut dst = Vec::new();
        extend_unmasked(&mut dst, &data, key, 7);
        assert_eq!(dst, slow);
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
