//! Micro-benchmarks of the protocol layer's hot paths, each next to a baseline measured
//! in the same run:
//! - unmasking 1 MiB (`apply_mask`) vs copying 1 MiB (`copy_from_slice`, i.e. memcpy);
//! - incremental UTF-8 validation vs `std::str::from_utf8` on the same ~1 MiB (mixed
//!   ASCII/multibyte text, and pure ASCII);
//! - decoding 10,000 small masked client frames with `Reader::feed` (frames/s);
//! - permessage-deflate on realistic JSON text (1 KiB and 64 KiB): compressing a
//!   message (shared per-thread context vs the connection's own with context
//!   takeover), and inflating it, next to a plain copy of the same bytes.
//!
//! Run: `cargo bench -- --warm-up-time 1 --measurement-time 3` (see bench/RESULTS.md).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wsqueue::protocol::deflate::{MessageDeflater, MessageInflater};
use wsqueue::protocol::extensions::DeflateAgreement;
use wsqueue::protocol::mask::{apply_mask, extend_unmasked};
use wsqueue::protocol::utf8::Utf8Validator;
use wsqueue::protocol::{Incoming, Limits, Reader};

const MIB: usize = 1024 * 1024;
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn masking(c: &mut Criterion) {
    let src = pseudo_random_bytes(MIB);
    let mut buf = src.clone();
    let mut dst = vec![0u8; MIB];
    let mut vec_dst: Vec<u8> = Vec::with_capacity(MIB);

    let mut g = c.benchmark_group("mask_1MiB");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("memcpy (copy_from_slice)", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)))
    });
    g.bench_function("apply_mask", |b| {
        b.iter(|| apply_mask(black_box(&mut buf), KEY, 0))
    });
    // The payload rarely starts on an 8-byte boundary or at key phase 0.
    g.bench_function("apply_mask (unaligned, offset 3)", |b| {
        b.iter(|| apply_mask(black_box(&mut buf[1..]), KEY, 3))
    });
    // What the reader actually does: copy into the message buffer and unmask.
    g.bench_function("extend_unmasked (copy + unmask)", |b| {
        b.iter(|| {
            vec_dst.clear();
            extend_unmasked(&mut vec_dst, black_box(&src), KEY, 0);
        })
    });
    g.finish();
}

/// ~1 MiB of text: mostly ASCII with Latin-1, Greek, CJK, emoji mixed in.
fn mixed_text() -> Vec<u8> {
    let paragraph = "The quick brown fox jumps over the lazy dog. Ünïcödé façade, naïve \
                     café. Ελληνικά κείμενα εδώ. 日本語のテキストもあります。中文文本。 \
                     Emoji: 😀🚀🎉 and math: ∀x∈ℝ, x²≥0. Plain ASCII again to finish.\n";
    let mut s = String::with_capacity(MIB + paragraph.len());
    while s.len() < MIB {
        s.push_str(paragraph);
    }
    s.into_bytes()
}

fn ascii_text() -> Vec<u8> {
    let line = b"The quick brown fox jumps over the lazy dog; 0123456789 {}[]()<>.\n";
    line.iter().copied().cycle().take(MIB).collect()
}

fn utf8(c: &mut Criterion) {
    for (name, text) in [
        ("utf8_mixed_1MiB", mixed_text()),
        ("utf8_ascii_1MiB", ascii_text()),
    ] {
        assert!(std::str::from_utf8(&text).is_ok());
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function("std::str::from_utf8", |b| {
            b.iter(|| std::str::from_utf8(black_box(&text)).is_ok())
        });
        g.bench_function("Utf8Validator::feed", |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                let ok = v.feed(black_box(&text)).is_ok();
                ok && v.finish().is_ok()
            })
        });
        // As the reader sees it: 16 KiB socket reads, code points cut at the edges.
        g.bench_function("Utf8Validator::feed (16 KiB pieces)", |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                let mut ok = true;
                for piece in black_box(&text).chunks(16 * 1024) {
                    ok &= v.feed(piece).is_ok();
                }
                ok && v.finish().is_ok()
            })
        });
        g.finish();
    }
}

const FRAMES: usize = 10_000;
const FRAME_PAYLOAD: usize = 32;

/// 10,000 masked binary client frames with 32-byte payloads (38 bytes each on the wire).
fn client_stream() -> Vec<u8> {
    let payload = pseudo_random_bytes(FRAME_PAYLOAD);
    let mut out = Vec::with_capacity(FRAMES * (6 + FRAME_PAYLOAD));
    for i in 0..FRAMES {
        let key = [i as u8, (i >> 8) as u8, 0x5a, 0xc3];
        out.push(0x82); // FIN + binary
        out.push(0x80 | FRAME_PAYLOAD as u8);
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(j, b)| b ^ key[j % 4]));
    }
    out
}

fn reader(c: &mut Criterion) {
    let stream = client_stream();
    let mut events: Vec<Incoming> = Vec::with_capacity(FRAMES);
    let mut g = c.benchmark_group("reader_10k_frames_32B");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("Reader::feed (whole stream)", |b| {
        b.iter(|| {
            events.clear();
            let mut r = Reader::new(Limits::DEFAULT);
            let n = r.feed(black_box(&stream), &mut events);
            assert_eq!((n, events.len()), (stream.len(), FRAMES));
        })
    });
    // As the engine sees it: 16 KiB reads, an incomplete header carried to the next read.
    g.bench_function("Reader::feed (16 KiB reads)", |b| {
        let mut pending: Vec<u8> = Vec::with_capacity(32 * 1024);
        b.iter(|| {
            events.clear();
            let mut r = Reader::new(Limits::DEFAULT);
            pending.clear();
            for read in black_box(&stream).chunks(16 * 1024) {
                pending.extend_from_slice(read);
                let n = r.feed(&pending, &mut events);
                pending.drain(..n);
            }
            assert_eq!(events.len(), FRAMES);
        })
    });
    g.finish();
}

/// Chat-like JSON: objects with ids, names, short texts and flags, varied enough that
/// deflate has work to do (about 4-6x smaller, as chat traffic is).
fn json_text(len: usize) -> Vec<u8> {
    let names = ["ada", "grace", "linus", "barbara", "ken", "margaret", "dennis"];
    let words = [
        "hello", "deploy", "fixed", "the", "build", "is", "green", "again", "lunch?",
        "reviewing", "your", "patch", "now", "thanks", "merged", "flaky", "test",
    ];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut out = String::from("[");
    let mut id = 1000;
    while out.len() < len {
        let text: Vec<&str> = (0..3 + next(8)).map(|_| words[next(words.len())]).collect();
        out.push_str(&format!(
            r#"{{"id":{id},"user":"{}","ts":{},"text":"{}","read":{}}},"#,
            names[next(names.len())],
            1_733_300_000 + next(100_000),
            text.join(" "),
            next(2) == 1
        ));
        id += 1 + next(3);
    }
    out.truncate(len);
    out.into_bytes()
}

fn agreement(context_takeover: bool) -> DeflateAgreement {
    DeflateAgreement {
        server_no_context_takeover: !context_takeover,
        client_no_context_takeover: !context_takeover,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
        min_size: 0,
        level: 6,
        response: String::new(),
    }
}

fn deflate(c: &mut Criterion) {
    for len in [1024, 64 * 1024] {
        let msg = json_text(len);
        let mut out = Vec::with_capacity(len + 64);
        let mut g = c.benchmark_group(format!("deflate_json_{}KiB", len / 1024));
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function("copy (baseline)", |b| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(&msg));
            })
        });
        let mut shared = MessageDeflater::new(&agreement(false));
        g.bench_function("compress, shared context (no takeover)", |b| {
            b.iter(|| {
                out.clear();
                shared.compress(black_box(&msg), &mut out)
            })
        });
        let mut own = MessageDeflater::new(&agreement(true));
        g.bench_function("compress, own context (takeover)", |b| {
            b.iter(|| {
                out.clear();
                own.compress(black_box(&msg), &mut out)
            })
        });
        let mut compressed = Vec::new();
        MessageDeflater::new(&agreement(false)).compress(&msg, &mut compressed);
        println!(
            "json {} bytes -> {} compressed (no takeover)",
            msg.len(),
            compressed.len()
        );
        let mut inflater = MessageInflater::new(&agreement(false));
        g.bench_function("inflate, shared context", |b| {
            b.iter(|| inflater.inflate(black_box(&compressed), 16 << 20).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, masking, utf8, reader, deflate);
criterion_main!(benches);
