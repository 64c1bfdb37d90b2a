//! Payload masking (§5.3), done a machine word (or more) at a time.

/// XORs `buf` with `key` as if `buf` started `offset` bytes into the masked payload, so
/// a payload that arrives in pieces can be unmasked piece by piece.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let _ = (buf, key, offset);
    todo!()
}

/// Appends `src` unmasked to `dst` in one pass (copy and XOR together), `src` starting
/// `offset` bytes into the masked payload.
pub fn extend_unmasked(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) {
    let _ = (dst, src, key, offset);
    todo!()
}
