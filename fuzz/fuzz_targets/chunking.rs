//! How every target turns one fuzz input into a stream delivered in pieces.
//!
//! `data[0] & 7` is `n`; the next `n` bytes are chunk sizes (`byte + 1`, so 1..=256),
//! used in turn, cyclically; the rest of the input is the stream. `n == 0` delivers the
//! stream in one piece. The printable first bytes make seed files readable: `@` (0x40)
//! means "all at once", `A` followed by one size byte means "pieces of that size".
//!
//! `tests/fuzz_corpus.rs` replays the checked-in seeds with a copy of this function;
//! keep the two in step.

pub fn split(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return (Vec::new(), &[]);
    };
    let n = usize::from(first & 7).min(rest.len());
    let sizes = rest[..n].iter().map(|&b| usize::from(b) + 1).collect();
    (sizes, &rest[n..])
}

/// The stream cut into pieces as `sizes` says (the whole stream when `sizes` is empty).
pub fn chunks<'a>(sizes: &[usize], stream: &'a [u8]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![stream];
    }
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let end = (pos + sizes[i % sizes.len()]).min(stream.len());
        out.push(&stream[pos..end]);
        pos = end;
        i += 1;
    }
    out
}
