//! Incremental UTF-8 validation for text messages (§8.1).
//!
//! Fails on the first chunk that cannot be the prefix of valid UTF-8, so a bad text
//! message is rejected on the fragment that contains the error, not at its end; code
//! points split across chunks (and fragments) are carried over.
//!
//! The bulk of each chunk goes through `simdutf8` (SIMD, faster than
//! `std::str::from_utf8`); its std-compatible error report tells an invalid sequence
//! (`error_len() == Some`) from one merely cut off by the end of the chunk (`None`).
//! The cut-off bytes (at most 3) are checked against the UTF-8 table here, so a
//! prefix that no continuation can make valid (`ED A0`: a surrogate) fails at once,
//! and so is the carried code point once the next chunk completes it.

/// The bytes fed so far cannot begin a valid UTF-8 string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8Error;

#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    /// The start of a code point cut off at the end of the last chunk.
    pending: [u8; 4],
    pending_len: u8,
}

/// Length of the sequence a lead byte starts (0 for bytes that cannot lead).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// Whether `seq` (at most one code point's bytes, lead first) is a complete code point or
/// the start of one, per the well-formed byte sequences of RFC 3629 §4 (Unicode Table
/// 3-7). The second byte's range excludes overlongs (E0, F0), surrogates (ED) and code
/// points above U+10FFFF (F4) as soon as it is seen.
fn is_valid_prefix(seq: &[u8]) -> bool {
    let Some((&lead, rest)) = seq.split_first() else {
        return true;
    };
    let len = sequence_len(lead);
    if len == 0 || seq.len() > len {
        return false;
    }
    let second = match lead {
        0xE0 => 0xA0..=0xBF,
        0xED => 0x80..=0x9F,
        0xF0 => 0x90..=0xBF,
        0xF4 => 0x80..=0x8F,
        _ => 0x80..=0xBF,
    };
    rest.iter().enumerate().all(|(i, b)| {
        if i == 0 {
            second.contains(b)
        } else {
            (0x80..=0xBF).contains(b)
        }
    })
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next chunk. Errors as soon as the input so far is not a valid prefix.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), Utf8Error> {
        if self.pending_len > 0 {
            // Complete the carried code point from the front of this chunk.
            let have = self.pending_len as usize;
            let want = sequence_len(self.pending[0]);
            let take = (want - have).min(chunk.len());
            let mut buf = self.pending;
            buf[have..have + take].copy_from_slice(&chunk[..take]);
            let filled = have + take;
            if !is_valid_prefix(&buf[..filled]) {
                return Err(Utf8Error);
            }
            if filled < want {
                // Still cut off (the chunk was tiny); every byte so far is valid.
                self.pending = buf;
                self.pending_len = filled as u8;
                return Ok(());
            }
            self.pending_len = 0;
            chunk = &chunk[take..];
        }
        match simdutf8::compat::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                // Cut off by the end of the chunk. simdutf8 (like std) only says so after
                // checking the partial bytes; the table check makes fail-fast independent
                // of that detail, and costs nothing (at most 3 bytes, once per chunk).
                let tail = &chunk[e.valid_up_to()..];
                if !is_valid_prefix(tail) {
                    return Err(Utf8Error);
                }
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// End of message: errors if a code point was left incomplete. Resets the validator.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.pending_len == 0;
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }

    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_split(bytes: &[u8], at: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &cut in at {
            v.feed(&bytes[start..cut])?;
            start = cut;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    #[test]
    fn code_point_split_across_chunks_is_valid() {
        // §8.1: validation applies to the whole message, not to each fragment.
        let text = "a€𝄞b".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(validate_split(text, &[i, j]), Ok(()), "cuts {i},{j}");
            }
        }
        // One byte at a time.
        let cuts: Vec<usize> = (1..text.len()).collect();
        assert_eq!(validate_split(text, &cuts), Ok(()));
    }

    #[test]
    fn invalid_prefix_fails_on_the_chunk_that_contains_it() {
        // §8.1 with fail-fast: a surrogate lead (ED A0) is invalid before its last byte.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ok \xED"), Ok(()));
        assert_eq!(v.feed(b"\xA0"), Err(Utf8Error));
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xF4\x90"), Err(Utf8Error), "beyond U+10FFFF");
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xE0\x80"), Err(Utf8Error), "overlong");
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xC0"), Err(Utf8Error), "never-valid byte");
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xF5"), Err(Utf8Error));
    }

    #[test]
    fn truncated_code_point_at_the_end_fails_on_finish() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"abc\xE2\x82"), Ok(()));
        assert_eq!(v.finish(), Err(Utf8Error));
        assert_eq!(v.feed(b"fresh"), Ok(()), "finish resets");
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn agrees_with_std_on_every_short_sequence() {
        // Exhaustive over 1- and 2-byte inputs, and all 3-byte inputs with lead >= 0xC0.
        for a in 0..=255u8 {
            let one = [a];
            assert_eq!(
                validate_split(&one, &[]).is_ok(),
                std::str::from_utf8(&one).is_ok()
            );
            for b in 0..=255u8 {
                let two = [a, b];
                let std_ok = std::str::from_utf8(&two).is_ok();
                assert_eq!(validate_split(&two, &[]).is_ok(), std_ok, "{two:x?}");
                assert_eq!(validate_split(&two, &[1]).is_ok(), std_ok, "{two:x?} split");
            }
        }
        for a in 0xE0..=0xF4u8 {
            for b in 0x70..=0xC0u8 {
                for c in [0x7F, 0x80, 0xBF, 0xC0] {
                    let three = [a, b, c, 0x80];
                    let std_ok = std::str::from_utf8(&three).is_ok();
                    assert_eq!(
                        validate_split(&three, &[1, 2]).is_ok(),
                        std_ok,
                        "{three:x?}"
                    );
                }
            }
        }
    }

    /// Independent of the table above: `p` can begin valid UTF-8 iff some completion
    /// makes std accept it. One choice of the next byte (at each range boundary of the
    /// second byte) followed by plain continuation bytes covers every case.
    fn std_says_valid_prefix(p: &[u8]) -> bool {
        let next = [0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF];
        std::str::from_utf8(p).is_ok()
            || next.iter().any(|&c| {
                (1..=3).any(|n| {
                    let mut q = p.to_vec();
                    q.push(c);
                    q.extend(std::iter::repeat(0x80).take(n - 1));
                    std::str::from_utf8(&q).is_ok()
                })
            })
    }

    /// Feeds `bytes` one at a time; the index of the byte whose feed failed, if any.
    fn first_failing_byte(bytes: &[u8]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        (0..bytes.len()).find(|&i| v.feed(&bytes[i..i + 1]).is_err())
    }

    #[test]
    fn feed_fails_exactly_when_the_bytes_stop_being_a_valid_prefix() {
        // §8.1 fail fast, cross-checked against std: whole chunk and byte by byte, over
        // every 1- and 2-byte input and 3-byte inputs at every range boundary.
        let edges = [
            0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED,
            0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
        ];
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for a in 0..=255u8 {
            inputs.push(vec![a]);
            for b in 0..=255u8 {
                inputs.push(vec![a, b]);
            }
            for b in edges {
                for c in edges {
                    inputs.push(vec![a, b, c]);
                }
            }
        }
        for p in &inputs {
            let expected = std_says_valid_prefix(p);
            assert_eq!(Utf8Validator::new().feed(p).is_ok(), expected, "{p:x?}");
            let first_bad = (1..=p.len()).find(|&n| !std_says_valid_prefix(&p[..n]));
            assert_eq!(first_failing_byte(p), first_bad.map(|n| n - 1), "{p:x?}");
        }
    }

    #[test]
    fn surrogate_prefix_cut_by_the_chunk_end_fails_on_that_chunk() {
        // §8.1: "ED A0" can only start U+D800..U+DFFF, which UTF-8 excludes (RFC 3629 §3).
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"abc\xED\xA0"), Err(Utf8Error));
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"abc\xED"), Ok(()));
        assert_eq!(v.feed(b"\xA0\x80"), Err(Utf8Error));
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[b'x'; 100][..]), Ok(()));
        assert_eq!(v.feed(b"\xF4"), Ok(()));
        assert_eq!(v.feed(b"\x8F"), Ok(()), "U+10FFFF is still reachable");
        assert_eq!(v.feed(b"\xBF\xBF"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }
}
