//! permessage-deflate's compression and decompression of whole messages (RFC 7692 §7.2).
//!
//! Two memory modes, chosen per direction by the negotiation (see
//! [`negotiate_deflate`](super::extensions::negotiate_deflate)):
//! - no context takeover: every message starts from an empty window, so one zlib
//!   context per thread serves every connection that thread touches; a connection
//!   holds none (the thread-local contexts below are scratch space, reset before
//!   each message, so which thread runs a message never changes its bytes);
//! - context takeover: the window carries over between messages, so the connection
//!   owns its context, created on first use (an idle connection still costs nothing).
//!
//! Inflation is bounded: it stops as soon as the output passes the message size
//! limit, so a small "bomb" costs at most the limit's worth of work and memory.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::extensions::DeflateAgreement;

/// §7.2.1: what a sync flush ends with, and what the sender strips from each message.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib's default trade-off between speed and ratio (what `ws` and Python
/// `websockets` use); the server's `deflate_level` overrides it.
pub const DEFAULT_LEVEL: u32 = 6;

/// zlib's raw deflate does not support an 8-bit window; a compressor limited to 8
/// bits (a client's `server_max_window_bits=8`) emits stored blocks instead, which
/// reference no history and so honour any window.
const MIN_ZLIB_WINDOW_BITS: u8 = 9;

/// Why an inflated message is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message is over the limit (close 1009).
    TooLarge,
    /// Not a valid deflate stream (close 1007).
    Corrupt,
}

fn new_compressor(window_bits: u8, level: u32) -> Compress {
    if window_bits < MIN_ZLIB_WINDOW_BITS {
        Compress::new_with_window_bits(Compression::none(), false, MIN_ZLIB_WINDOW_BITS)
    } else {
        Compress::new_with_window_bits(Compression::new(level.min(9)), false, window_bits)
    }
}

fn new_inflater(window_bits: u8) -> Decompress {
    // A larger window than the sender's is always safe for the receiver.
    Decompress::new_with_window_bits(false, window_bits.max(MIN_ZLIB_WINDOW_BITS))
}

/// One compressor per (window size, level) in use and one inflater, per thread (a
/// server uses one level, and clients rarely ask for more than one or two windows).
#[derive(Default)]
struct ThreadContexts {
    compressors: Vec<((u8, u32), Compress)>,
    inflater: Option<Decompress>,
}

thread_local! {
    static CONTEXTS: RefCell<ThreadContexts> = RefCell::new(ThreadContexts::default());
}

/// Runs `f` with this thread's compressor for `window_bits`, reset to an empty window;
/// a fresh one while the thread is being torn down.
fn with_shared_compressor<R>(window_bits: u8, level: u32, f: impl FnOnce(&mut Compress) -> R) -> R {
    let mut f = Some(f);
    let key = (window_bits, level);
    let shared = CONTEXTS.try_with(|ctx| {
        let mut ctx = ctx.borrow_mut();
        let index = match ctx.compressors.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                ctx.compressors
                    .push((key, new_compressor(window_bits, level)));
                ctx.compressors.len() - 1
            }
        };
        let c = &mut ctx.compressors[index].1;
        c.reset();
        (f.take().expect("called once"))(c)
    });
    match shared {
        Ok(r) => r,
        Err(_) => (f.take().expect("called once"))(&mut new_compressor(window_bits, level)),
    }
}

fn with_shared_inflater<R>(f: impl FnOnce(&mut Decompress) -> R) -> R {
    let mut f = Some(f);
    let shared = CONTEXTS.try_with(|ctx| {
        let mut ctx = ctx.borrow_mut();
        // 15 bits inflates whatever window the client used.
        let d = ctx.inflater.get_or_insert_with(|| new_inflater(15));
        d.reset(false);
        (f.take().expect("called once"))(d)
    });
    match shared {
        Ok(r) => r,
        Err(_) => (f.take().expect("called once"))(&mut new_inflater(15)),
    }
}

/// Compresses one message into `out` after what it holds (§7.2.1): deflate, sync
/// flush, the trailing 0x00 0x00 0xff 0xff removed.
fn compress_into(c: &mut Compress, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    let start_in = c.total_in();
    out.reserve(payload.len() / 2 + 64);
    loop {
        let consumed = (c.total_in() - start_in) as usize;
        c.compress_vec(&payload[consumed..], out, FlushCompress::Sync)
            .map_err(|_| ())?;
        let all_in = (c.total_in() - start_in) as usize == payload.len();
        // zlib's contract: the flush is complete once it returns with room to spare.
        if all_in && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(4096));
    }
    if !out.ends_with(&SYNC_TAIL) {
        return Err(());
    }
    out.truncate(out.len() - SYNC_TAIL.len());
    Ok(())
}

/// Compresses one message with no context takeover: the output depends only on the
/// payload, the window and the level, so a broadcast compresses once per such pair.
/// Appends to `out`; `false` when compression failed (send the message plain).
pub fn compress_stateless(window_bits: u8, level: u32, payload: &[u8], out: &mut Vec<u8>) -> bool {
    let mark = out.len();
    let ok = with_shared_compressor(window_bits, level, |c| compress_into(c, payload, out)).is_ok();
    if !ok {
        out.truncate(mark);
    }
    ok
}

/// The sending half of permessage-deflate on one connection.
#[derive(Debug)]
pub struct MessageDeflater {
    window_bits: u8,
    level: u32,
    context_takeover: bool,
    min_size: usize,
    /// With context takeover: this connection's compressor, created on first use.
    own: Option<Box<Compress>>,
}

/// How a message goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compressed {
    /// Not compressed (under the minimum size, or not smaller): RSV1 clear.
    No,
    /// The compressed payload was appended: RSV1 set.
    Yes,
}

impl MessageDeflater {
    pub fn new(agreement: &DeflateAgreement) -> Self {
        MessageDeflater {
            window_bits: agreement.server_max_window_bits,
            level: agreement.level,
            context_takeover: !agreement.server_no_context_takeover,
            min_size: agreement.min_size,
            own: None,
        }
    }

    /// With no context takeover, the window size and level that alone determine the
    /// output (the key under which a broadcast shares one compressed frame).
    pub fn stateless_window(&self) -> Option<(u8, u32)> {
        (!self.context_takeover).then_some((self.window_bits, self.level))
    }

    pub fn min_size(&self) -> usize {
        self.min_size
    }

    /// Whether a message of `len` bytes is compressed at all.
    pub fn wants(&self, len: usize) -> bool {
        len >= self.min_size
    }

    /// Appends the compressed `payload` to `out` when it should go out compressed.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Compressed {
        if !self.wants(payload.len()) {
            return Compressed::No;
        }
        let mark = out.len();
        if !self.context_takeover {
            // §6: a message may go out uncompressed; without shared history it costs
            // nothing to send the raw bytes when deflate did not make them smaller.
            if compress_stateless(self.window_bits, self.level, payload, out)
                && out.len() - mark < payload.len()
            {
                return Compressed::Yes;
            }
            out.truncate(mark);
            return Compressed::No;
        }
        let (bits, level) = (self.window_bits, self.level);
        let c = self
            .own
            .get_or_insert_with(|| Box::new(new_compressor(bits, level)));
        // With context takeover the peer's window must see every byte we compressed,
        // so the compressed form is sent even when it is not smaller.
        if compress_into(c, payload, out).is_ok() {
            return Compressed::Yes;
        }
        // Starting over is always safe for the peer: we just stop referring to
        // history it has anyway.
        out.truncate(mark);
        c.reset();
        Compressed::No
    }
}

/// The receiving half of permessage-deflate on one connection.
#[derive(Debug)]
pub struct MessageInflater {
    window_bits: u8,
    context_takeover: bool,
    /// With context takeover: this connection's inflater, created on first use.
    own: Option<Box<Decompress>>,
}

impl MessageInflater {
    pub fn new(agreement: &DeflateAgreement) -> Self {
        MessageInflater {
            window_bits: agreement.client_max_window_bits,
            context_takeover: !agreement.client_no_context_takeover,
            own: None,
        }
    }

    /// Inflates one message's payload (§7.2.2: the sender stripped the sync tail; it
    /// is appended back here). Fails with `TooLarge` as soon as the output would pass
    /// `limit` bytes, having produced and allocated at most that much.
    pub fn inflate(&mut self, compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        if !self.context_takeover {
            return with_shared_inflater(|d| inflate_bounded(d, compressed, limit));
        }
        let bits = self.window_bits;
        let d = self.own.get_or_insert_with(|| Box::new(new_inflater(bits)));
        let result = inflate_bounded(d, compressed, limit);
        if result.is_err() {
            // The connection is failing; leave no half-used state behind.
            d.reset(false);
        }
        result
    }
}

/// The inflation loop behind [`MessageInflater::inflate`]: the output grows by
/// doubling but never past `limit`; once it is full, a small scratch buffer tells
/// whether the stream holds more.
fn inflate_bounded(
    d: &mut Decompress,
    compressed: &[u8],
    limit: usize,
) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::with_capacity(limit.min(compressed.len().saturating_mul(4).max(256)));
    for input in [compressed, &SYNC_TAIL[..]] {
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() && out.len() < limit {
                let grow = out.capacity().max(4096).min(limit - out.len());
                out.reserve_exact(grow);
            }
            let (in_before, out_before) = (d.total_in(), d.total_out());
            let status = if out.len() < out.capacity() {
                d.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
            } else {
                // Full at the limit: one more byte of output means too large.
                let mut probe = [0u8; 64];
                let status = d.decompress(&input[pos..], &mut probe, FlushDecompress::Sync);
                if d.total_out() > out_before {
                    return Err(InflateError::TooLarge);
                }
                status
            }
            .map_err(|_| InflateError::Corrupt)?;
            pos += (d.total_in() - in_before) as usize;
            if status == Status::StreamEnd {
                // The sender ended the stream with a BFINAL block (RFC 7692 §7.2.3.4
                // shows one): what follows is not part of the message, and the next
                // message starts a new stream.
                d.reset(false);
                return Ok(out);
            }
            if d.total_in() == in_before && d.total_out() == out_before {
                break; // nothing more comes out of this input
            }
            if pos == input.len() && out.len() < out.capacity() {
                break; // all consumed, and the flush left room: nothing pending
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn agreement(server_nct: bool, client_nct: bool, sbits: u8, cbits: u8) -> DeflateAgreement {
        DeflateAgreement {
            server_no_context_takeover: server_nct,
            client_no_context_takeover: client_nct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
            min_size: 0,
            level: DEFAULT_LEVEL,
            response: String::new(),
        }
    }

    /// What a client's compressor does (§7.2.1), with its own context.
    pub fn client_compress(c: &mut Compress, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        compress_into(c, payload, &mut out).unwrap();
        out
    }

    /// What a client's inflater does (§7.2.2), for checking our output.
    pub fn client_inflate(d: &mut Decompress, compressed: &[u8]) -> Vec<u8> {
        inflate_bounded(d, compressed, usize::MAX / 2).unwrap()
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"{\"id\":17,\"name\":\"wsqueue\",\"ok\":true}"[i % 36])
            .collect()
    }

    #[test]
    fn compressed_message_drops_the_sync_tail_and_inflates_back() {
        // §7.2.1 / §7.2.2, with the RFC's own example: "Hello" in one block.
        let mut d = MessageInflater::new(&agreement(true, true, 15, 15));
        let rfc = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(d.inflate(&rfc, 100).unwrap(), b"Hello");
        let mut c = MessageDeflater::new(&agreement(true, true, 15, 15));
        let mut out = Vec::new();
        assert_eq!(c.compress(&text(1000), &mut out), Compressed::Yes);
        assert!(!out.ends_with(&SYNC_TAIL));
        assert!(out.len() < 200, "repetitive JSON compresses");
        assert_eq!(d.inflate(&out, 1000).unwrap(), text(1000));
    }

    #[test]
    fn rfc_7692_section_7_2_3_2_uncompressed_block_inflates() {
        // §7.2.3.2: "Hello" in a stored (BTYPE=00) block.
        let mut d = MessageInflater::new(&agreement(true, true, 15, 15));
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(d.inflate(&stored, 100).unwrap(), b"Hello");
    }

    #[test]
    fn rfc_7692_section_7_2_3_1_shared_window_across_messages() {
        // §7.2.3.1: the second "Hello" refers back into the first message.
        let mut d = MessageInflater::new(&agreement(false, false, 15, 15));
        assert_eq!(
            d.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100)
                .unwrap(),
            b"Hello"
        );
        assert_eq!(
            d.inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], 100).unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn bfinal_block_ends_the_message_and_is_accepted() {
        // §7.2.3.4: BFINAL=1 is allowed; "Hello" in a final fixed-Huffman block.
        let mut d = MessageInflater::new(&agreement(true, false, 15, 15));
        assert_eq!(
            d.inflate(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], 100)
                .unwrap(),
            b"Hello"
        );
        // The next message starts a new stream.
        assert_eq!(
            d.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100)
                .unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn context_takeover_makes_repeated_messages_smaller() {
        // §7.1.1: with context takeover the second copy refers to the first.
        let mut c = MessageDeflater::new(&agreement(false, false, 15, 15));
        let msg: Vec<u8> = (0..2000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        c.compress(&msg, &mut a);
        c.compress(&msg, &mut b);
        assert!(b.len() * 10 < a.len(), "{} vs {}", b.len(), a.len());
        let mut peer = new_inflater(15);
        assert_eq!(client_inflate(&mut peer, &a), msg);
        assert_eq!(client_inflate(&mut peer, &b), msg);
        // Without it both copies are the same size, and each inflates on its own.
        let mut c = MessageDeflater::new(&agreement(true, false, 15, 15));
        let (mut a2, mut b2) = (Vec::new(), Vec::new());
        c.compress(&msg, &mut a2);
        c.compress(&msg, &mut b2);
        assert_eq!(a2, b2);
        assert_eq!(client_inflate(&mut new_inflater(15), &b2), msg);
    }

    #[test]
    fn every_window_size_round_trips_through_a_peer_with_that_window() {
        // §7.1.2: our output must inflate with a window of the negotiated size.
        for bits in 8..=15u8 {
            let msg: Vec<u8> = (0..70_000u32).map(|i| (i % 1000 / 7) as u8).collect();
            let mut c = MessageDeflater::new(&agreement(false, false, bits, 15));
            let mut peer = Decompress::new_with_window_bits(false, bits.max(9));
            for _ in 0..3 {
                let mut out = Vec::new();
                c.compress(&msg, &mut out);
                assert_eq!(client_inflate(&mut peer, &out), msg, "window {bits}");
            }
        }
    }

    #[test]
    fn the_level_trades_size_for_speed_and_every_level_inflates() {
        let msg = text(64 * 1024);
        let mut sizes = Vec::new();
        for level in [0, 1, 6, 9] {
            let mut a = agreement(true, true, 15, 15);
            a.level = level;
            let mut out = Vec::new();
            let mut c = MessageDeflater::new(&a);
            // Level 0 (stored blocks) does not shrink: sent plain without takeover.
            let expected = if level == 0 {
                Compressed::No
            } else {
                Compressed::Yes
            };
            assert_eq!(c.compress(&msg, &mut out), expected, "level {level}");
            if level > 0 {
                assert_eq!(client_inflate(&mut new_inflater(15), &out), msg);
            }
            sizes.push(out.len());
        }
        assert!(sizes[1] >= sizes[2] && sizes[2] >= sizes[3], "{sizes:?}");
    }

    #[test]
    fn messages_under_the_minimum_size_are_not_compressed() {
        let mut a = agreement(true, true, 15, 15);
        a.min_size = 100;
        let mut c = MessageDeflater::new(&a);
        let mut out = Vec::new();
        assert_eq!(c.compress(&text(99), &mut out), Compressed::No);
        assert!(out.is_empty());
        assert_eq!(c.compress(&text(100), &mut out), Compressed::Yes);
    }

    #[test]
    fn incompressible_messages_go_out_plain_without_context_takeover() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                // xorshift64: bytes deflate cannot shrink.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        let mut out = Vec::new();
        let mut c = MessageDeflater::new(&agreement(true, true, 15, 15));
        assert_eq!(c.compress(&noise, &mut out), Compressed::No);
        assert!(out.is_empty());
        let mut c = MessageDeflater::new(&agreement(false, true, 15, 15));
        assert_eq!(c.compress(&noise, &mut out), Compressed::Yes);
        assert_eq!(client_inflate(&mut new_inflater(15), &out), noise);
    }

    #[test]
    fn bomb_stops_at_the_limit() {
        // 16 MiB of zeros compress to about 16 KiB; a 1 MiB limit stops it there.
        let mut c = new_compressor(15, DEFAULT_LEVEL);
        let zeros = vec![0u8; 16 << 20];
        let bomb = client_compress(&mut c, &zeros);
        assert!(bomb.len() < 100_000);
        for mode in [true, false] {
            let mut d = MessageInflater::new(&agreement(true, mode, 15, 15));
            assert_eq!(d.inflate(&bomb, 1 << 20), Err(InflateError::TooLarge));
        }
        let mut d = MessageInflater::new(&agreement(true, true, 15, 15));
        let small = client_compress(&mut new_compressor(15, DEFAULT_LEVEL), &zeros[..1000]);
        assert_eq!(
            d.inflate(&small, 1000).unwrap().len(),
            1000,
            "exactly the limit"
        );
        let small = client_compress(&mut new_compressor(15, DEFAULT_LEVEL), &zeros[..1001]);
        assert_eq!(d.inflate(&small, 1000), Err(InflateError::TooLarge));
    }

    #[test]
    fn corrupt_data_is_an_error_not_a_panic() {
        let mut d = MessageInflater::new(&agreement(true, true, 15, 15));
        // BTYPE=11 is reserved (RFC 1951 §3.2.3).
        assert_eq!(
            d.inflate(&[0xff, 0xff, 0xff], 100),
            Err(InflateError::Corrupt)
        );
        // A stored block whose NLEN is not the complement of LEN.
        assert_eq!(
            d.inflate(&[0x00, 0x05, 0x00, 0x00, 0x00], 100),
            Err(InflateError::Corrupt)
        );
        // The shared inflater is reset for the next message.
        assert_eq!(
            d.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100)
                .unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn truncated_streams_inflate_what_they_hold() {
        // A message cut inside a block is the sender's bug; it must not hang or panic.
        let mut c = new_compressor(15, DEFAULT_LEVEL);
        let full = client_compress(&mut c, &text(5000));
        let mut d = MessageInflater::new(&agreement(true, true, 15, 15));
        for cut in [1, full.len() / 2, full.len() - 1] {
            let _ = d.inflate(&full[..cut], 10_000);
        }
    }
}
