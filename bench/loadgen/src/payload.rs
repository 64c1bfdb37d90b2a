//! The messages of a run, built once and stamped per message, so that producing and
//! checking a message costs a copy and a compare, not a pseudo-random byte per byte
//! (which would make the load generator the bottleneck at 64 KiB and 1 MiB).
//!
//! Message `seq` of connection `conn` is a run-wide random body whose first bytes (up
//! to 16) are replaced by a tag: `seq` then `conn`, little-endian. An echo that is
//! lost, duplicated, reordered or crossed with another connection's carries the wrong
//! tag; one altered anywhere else differs from the body.
//!
//! A few masked frames of the body (one per masking key) are prepared; a message is one
//! of them, copied, with its tag masked in place. Raw-TCP mode sends the same frame bytes
//! and expects them back unchanged.

use crate::wire::{Rng, OP_BINARY};

/// How many masking keys a run cycles through (message `seq` uses key `seq % KEYS`):
/// the server cannot assume one key, and the frames stay cheap to make.
const KEYS: usize = 8;
const TAG_MAX: usize = 16;

pub struct Payloads {
    /// The unmasked payload of every message, before its tag.
    body: Vec<u8>,
    /// `frames[k]`: a complete client frame of `body` masked with `keys[k]`.
    frames: Vec<Vec<u8>>,
    keys: Vec<[u8; 4]>,
    /// Where the payload starts in a frame (header and masking key before it).
    payload_at: usize,
    tag_len: usize,
}

impl Payloads {
    pub fn new(size: usize, rng: &mut Rng) -> Payloads {
        let mut body = vec![0u8; size];
        // The body is the same for every thread of a run: seeded by the size only.
        let mut body_rng = Rng::new(size as u64 ^ 0xB0D1);
        for chunk in body.chunks_mut(8) {
            let r = body_rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        let keys: Vec<[u8; 4]> = (0..KEYS)
            .map(|_| (rng.next_u64() as u32).to_ne_bytes())
            .collect();
        let frames: Vec<Vec<u8>> = keys
            .iter()
            .map(|&key| {
                let mut f = Vec::with_capacity(size + 14);
                crate::wire::push_frame(&mut f, OP_BINARY, &body, key);
                f
            })
            .collect();
        let payload_at = frames[0].len() - size;
        Payloads {
            body,
            frames,
            keys,
            payload_at,
            tag_len: size.min(TAG_MAX),
        }
    }

    /// Payload bytes of one message.
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// Bytes of one message on the wire, client to server (and back, in raw mode).
    pub fn frame_len(&self) -> usize {
        self.frames[0].len()
    }

    fn tag(&self, conn: u64, seq: u64) -> [u8; TAG_MAX] {
        let mut t = [0u8; TAG_MAX];
        t[..8].copy_from_slice(&seq.to_le_bytes());
        t[8..].copy_from_slice(&conn.to_le_bytes());
        t
    }

    /// Appends the masked frame of message `seq` of connection `conn`.
    pub fn push_frame(&self, out: &mut Vec<u8>, conn: u64, seq: u64) {
        let k = (seq % KEYS as u64) as usize;
        let start = out.len() + self.payload_at;
        out.extend_from_slice(&self.frames[k]);
        let (tag, key) = (self.tag(conn, seq), self.keys[k]);
        for (i, b) in out[start..start + self.tag_len].iter_mut().enumerate() {
            *b = tag[i] ^ key[i & 3];
        }
    }

    /// Checks an echoed payload (the server's unmasked frame) against message `seq`.
    pub fn check_payload(&self, got: &[u8], conn: u64, seq: u64) -> Result<(), String> {
        let tag = self.tag(conn, seq);
        let t = self.tag_len;
        if got.len() == self.body.len() && got[..t] == tag[..t] && got[t..] == self.body[t..] {
            return Ok(());
        }
        Err(self.mismatch(got.get(..t.min(got.len())).unwrap_or(&[]), got.len(), seq))
    }

    /// Checks an echoed raw frame (the very bytes sent) against message `seq`.
    pub fn check_frame(&self, got: &[u8], conn: u64, seq: u64) -> Result<(), String> {
        let k = (seq % KEYS as u64) as usize;
        let (frame, key, at, t) = (&self.frames[k], self.keys[k], self.payload_at, self.tag_len);
        let tag = self.tag(conn, seq);
        let tag_ok = got.len() == frame.len()
            && got[at..at + t]
                .iter()
                .enumerate()
                .all(|(i, b)| b ^ key[i & 3] == tag[i]);
        if tag_ok && got[..at] == frame[..at] && got[at + t..] == frame[at + t..] {
            return Ok(());
        }
        let unmasked: Vec<u8> = got
            .get(at..(at + t).min(got.len()))
            .unwrap_or(&[])
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i & 3])
            .collect();
        Err(self.mismatch(&unmasked, got.len(), seq))
    }

    fn mismatch(&self, got_tag: &[u8], got_len: usize, seq: u64) -> String {
        let mut s = [0u8; 8];
        let n = got_tag.len().min(8);
        s[..n].copy_from_slice(&got_tag[..n]);
        format!(
            "echo mismatch: expected seq {seq} ({} bytes), got {got_len} bytes starting with seq {}",
            self.body.len(),
            u64::from_le_bytes(s)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frame: &[u8], at: usize) -> Vec<u8> {
        let key: [u8; 4] = frame[at - 4..at].try_into().unwrap();
        frame[at..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i & 3])
            .collect()
    }

    #[test]
    fn a_frame_unmasks_to_the_payload_it_is_checked_against() {
        for size in [0usize, 5, 32, 126, 65_536] {
            let p = Payloads::new(size, &mut Rng::new(1));
            for seq in 0..10 {
                let mut f = Vec::new();
                p.push_frame(&mut f, 3, seq);
                assert_eq!(f.len(), p.frame_len());
                p.check_frame(&f, 3, seq).unwrap();
                p.check_payload(&unmask(&f, p.payload_at), 3, seq).unwrap();
            }
        }
    }

    #[test]
    fn wrong_seq_wrong_conn_or_an_altered_byte_is_a_mismatch() {
        let p = Payloads::new(64, &mut Rng::new(2));
        let mut f = Vec::new();
        p.push_frame(&mut f, 7, 4);
        let payload = unmask(&f, p.payload_at);
        assert!(p.check_payload(&payload, 7, 5).is_err());
        assert!(p.check_payload(&payload, 8, 4).is_err());
        assert!(p.check_frame(&f, 7, 5).is_err());
        let mut altered = payload.clone();
        altered[40] ^= 1;
        assert!(p.check_payload(&altered, 7, 4).is_err());
        let mut altered = f.clone();
        altered[50] ^= 1;
        assert!(p.check_frame(&altered, 7, 4).is_err());
        assert!(p.check_payload(&payload[..63], 7, 4).is_err());
    }
}
