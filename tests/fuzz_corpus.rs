//! A large randomized corpus run over the protocol layer, from fixed seeds: the CI
//! companion of the cargo-fuzz targets in `fuzz/` (which need nightly and run open-ended).
//!
//! Inputs are structured mutations of valid handshakes and of valid client frame
//! streams, delivered in random pieces, plus the checked-in fuzz seeds
//! (`fuzz/seeds/<target>/`). The parser and the reader must never panic and must always
//! end in a defined outcome:
//! - handshake: "incomplete" only while no `\r\n\r\n` has arrived (and never holding more
//!   than the head limit), otherwise a head (validated into an accept or a rejection) or
//!   an `HttpError`, every status one of 400/403/405/426/431;
//! - reader: events that follow the protocol, each `Incoming::Error(e)` with
//!   `e.close_code()` in {1002, 1007, 1009}, nothing after a Close or an Error, never more
//!   than an incomplete frame header kept back, and the same events however the stream
//!   was cut.
//!
//! - inflate (permessage-deflate): the inflater never produces more than the limit, and
//!   a compressed message through the reader gets exactly the inflater's outcome.
//!
//! Valid inputs are also checked for the exact expected result, so a parser that
//! rejected everything could not pass. Each randomized test also asserts that its
//! generator reached every outcome it is meant to reach.
//!
//! Deterministic: every test uses fixed seeds; a failure message carries the case index
//! and the input (hex) to reproduce it. Sized for ~10 s in debug mode on 2 cores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wsqueue::protocol::deflate::MessageInflater;
use wsqueue::protocol::extensions::DeflateAgreement;
use wsqueue::protocol::handshake::{
    accept_key, is_upgrade_request, render_accept, render_rejection, validate, HandshakePolicy,
};
use wsqueue::protocol::http::{HeadLimits, RequestParser};
use wsqueue::protocol::server_connection::Settings;
use wsqueue::protocol::utf8::Utf8Validator;
use wsqueue::protocol::{Incoming, Limits, MessageKind, Reader, ServerConnection};

const HANDSHAKE_CASES: usize = 30_000;
const VALID_STREAM_CASES: usize = 4_000;
const MUTATED_STREAM_CASES: usize = 30_000;
const UTF8_CASES: usize = 30_000;

/// Statuses a refused handshake may carry (parser or validator).
const HTTP_ERROR_STATUSES: [u16; 5] = [400, 403, 405, 426, 431];
/// Close codes a protocol error may map to (§7.4.1).
const PROTOCOL_ERROR_CODES: [u16; 3] = [1002, 1007, 1009];
/// Longest frame header (2 + 8 + 4): the most the reader may leave unconsumed.
const MAX_HEADER_LEN: usize = 14;

// ---------------------------------------------------------------------------------------
// Randomness and chunking

/// xorshift64*: tiny, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi_inclusive: usize) -> usize {
        lo + self.below(hi_inclusive - lo + 1)
    }
    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Cuts `data` into random pieces: byte by byte, small, large, or a mix.
fn random_chunks<'a>(rng: &mut Rng, data: &'a [u8]) -> Vec<&'a [u8]> {
    let style = if data.len() > 4096 {
        1 + rng.below(3)
    } else {
        rng.below(4)
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let n = match style {
            0 => 1,
            1 => rng.range(1, 16),
            2 => rng.range(1, 2048),
            _ => {
                if rng.chance(50) {
                    rng.range(1, 3)
                } else {
                    rng.range(1, 1500)
                }
            }
        };
        let end = (pos + n).min(data.len());
        out.push(&data[pos..end]);
        pos = end;
    }
    if out.is_empty() {
        out.push(data);
    }
    out
}

/// A copy of `fuzz/fuzz_targets/chunking.rs`, to replay the fuzz seeds the same way:
/// `data[0] & 7` size bytes follow (each `b + 1`, used in turn); the rest is the stream.
#[path = "../fuzz/fuzz_targets/drive.rs"]
mod drive;
#[path = "../fuzz/fuzz_targets/inflate_check.rs"]
mod inflate_check;

mod chunking {
    pub fn split(data: &[u8]) -> (Vec<usize>, &[u8]) {
        let Some((&first, rest)) = data.split_first() else {
            return (Vec::new(), &[]);
        };
        let n = usize::from(first & 7).min(rest.len());
        let sizes = rest[..n].iter().map(|&b| usize::from(b) + 1).collect();
        (sizes, &rest[n..])
    }

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
}

fn hex(bytes: &[u8]) -> String {
    const MAX: usize = 2048;
    let mut s: String = bytes.iter().take(MAX).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > MAX {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where the first blank line ends: an empty line terminated by CRLF or by a bare LF
/// (RFC 7230 §3.5), i.e. the earliest end of `\n\n` or `\n\r\n`.
fn head_end(bytes: &[u8]) -> Option<usize> {
    (2..=bytes.len())
        .find(|&e| bytes[..e].ends_with(b"\n\n") || (e >= 3 && bytes[..e].ends_with(b"\n\r\n")))
}

/// Tallies which outcomes a randomized run reached.
#[derive(Default)]
struct Outcomes(BTreeMap<String, usize>);

impl Outcomes {
    fn add(&mut self, what: impl Into<String>) {
        *self.0.entry(what.into()).or_default() += 1;
    }
    fn assert_reached(&self, expected: &[&str]) {
        eprintln!("outcomes: {:?}", self.0);
        for what in expected {
            assert!(
                self.0.contains_key(*what),
                "the generator never reached outcome {what:?}; reached: {:?}",
                self.0
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Handshake

const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn policy() -> HandshakePolicy {
    HandshakePolicy {
        allowed_origins: vec!["https://example.com".into(), "http://localhost:8080".into()],
        subprotocols: vec!["chat".into(), "superchat".into(), "v2.json".into()],
    }
}

/// A request as parts, so mutations can work on headers as well as bytes.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} {}\r\n", self.method, self.target, self.version);
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    }
}

/// Valid upgrade requests that `policy()` accepts.
fn valid_requests() -> Vec<Request> {
    let common = |extra: &[(&str, &str)]| {
        let mut h: Vec<(String, String)> = [
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", RFC_KEY),
            ("Sec-WebSocket-Version", "13"),
            ("Origin", "https://example.com"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        h.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        h
    };
    vec![
        Request {
            method: "GET".into(),
            target: "/chat".into(),
            version: "HTTP/1.1".into(),
            headers: common(&[]),
        },
        Request {
            method: "GET".into(),
            target: "/chat?room=1&x=%20".into(),
            version: "HTTP/1.1".into(),
            headers: common(&[
                ("Sec-WebSocket-Protocol", "soap, chat"),
                ("User-Agent", "corpus/1.0"),
            ]),
        },
        Request {
            method: "GET".into(),
            target: "/".into(),
            version: "HTTP/1.1".into(),
            headers: common(&[
                (
                    "Sec-WebSocket-Extensions",
                    "permessage-deflate; client_max_window_bits",
                ),
                ("Sec-WebSocket-Extensions", "x-foo; a=\"b\\c\", x-bar"),
                ("Cookie", "a=b; c=d"),
            ]),
        },
        Request {
            method: "GET".into(),
            target: "/ws".into(),
            version: "HTTP/1.1".into(),
            headers: {
                let mut h = common(&[("Sec-WebSocket-Protocol", "v2.json")]);
                h[1].1 = "WebSocket".into();
                h[2].1 = "keep-alive, upgrade".into();
                h[3].1 = "AQIDBAUGBwgJCgsMDQ4PEA==".into();
                h[5].1 = "HTTP://LOCALHOST:8080".into();
                h
            },
        },
    ]
}

const HEADER_NAMES: [&str; 10] = [
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Origin",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "X-Filler",
    "Content-Length",
];

/// Values worth trying in any header: edge cases of every rule the validator applies.
const HEADER_VALUES: [&str; 18] = [
    "",
    "websocket",
    "Upgrade",
    "keep-alive",
    "13",
    "8",
    "13, 8",
    "dGhlIHNhbXBsZSBub25jZQ==",
    "c2hvcnQ=",
    "!!!!notbase64!!!!!!!!!!!",
    "https://evil.example",
    "https://example.com",
    "chat, superchat",
    ",,,",
    "permessage-deflate; ; x",
    "x; a=\"unterminated",
    "\t  padded  \t",
    "\u{e9}t\u{e9}",
];

/// Applies 1 to 3 structured mutations, then maybe byte-level ones.
fn mutate_request(rng: &mut Rng, mut req: Request) -> Vec<u8> {
    for _ in 0..rng.range(1, 3) {
        let n = req.headers.len();
        match rng.below(14) {
            0 if n > 0 => {
                req.headers.remove(rng.below(n));
            }
            1 if n > 0 => {
                let h = req.headers[rng.below(n)].clone();
                req.headers.insert(rng.below(n + 1), h);
            }
            2 if n > 0 => {
                let i = rng.below(n);
                req.headers[i].1 = rng.pick(&HEADER_VALUES).to_string();
            }
            3 => {
                let name = rng.pick(&HEADER_NAMES).to_string();
                let value = rng.pick(&HEADER_VALUES).to_string();
                req.headers.insert(rng.below(n + 1), (name, value));
            }
            4 => {
                // A huge header line: around and over the 8 KiB head limit.
                let len = *rng.pick(&[1000, 4000, 8000, 8200, 12_000]);
                let value: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
                req.headers
                    .insert(rng.below(n + 1), ("X-Huge".into(), value));
            }
            5 => {
                // Many headers: around and over the 64-field limit.
                for i in 0..rng.range(20, 80) {
                    req.headers.push((format!("X-Many-{i}"), "v".into()));
                }
            }
            6 => {
                req.method = rng
                    .pick(&["POST", "get", "HEAD", "GET GET", "", "G\u{e9}T", "CONNECT"])
                    .to_string()
            }
            7 => {
                req.version = rng
                    .pick(&["HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "HTTP/1", "http/1.1", ""])
                    .to_string()
            }
            8 => {
                req.target = rng
                    .pick(&[
                        "",
                        "*",
                        "http://example.com/x",
                        "/a b",
                        "/%00",
                        "/?",
                        "/??q",
                    ])
                    .to_string()
            }
            9 if n > 0 => {
                // Names in another case: look-ups must ignore it.
                let i = rng.below(n);
                req.headers[i].0 = if rng.chance(50) {
                    req.headers[i].0.to_ascii_lowercase()
                } else {
                    req.headers[i].0.to_ascii_uppercase()
                };
            }
            10 if n > 0 => {
                // Obsolete line folding, or a header with no colon.
                let i = rng.below(n);
                if rng.chance(50) {
                    req.headers[i].1.push_str("\r\n folded");
                } else {
                    req.headers[i].0.push_str(" nocolon");
                }
            }
            11 if n > 0 => {
                let i = rng.below(n);
                let extra = *rng.pick(&["\0", "\u{7f}", "\u{fffd}", "\t"]);
                req.headers[i].1.push_str(extra);
            }
            12 => req.headers.clear(),
            _ => {}
        }
    }
    let mut bytes = req.to_bytes();
    if rng.chance(40) {
        for _ in 0..rng.range(1, 4) {
            if bytes.is_empty() {
                break;
            }
            let i = rng.below(bytes.len());
            match rng.below(6) {
                0 => bytes[i] ^= 1 << rng.below(8),
                1 => bytes[i] = rng.byte(),
                2 => {
                    bytes.remove(i);
                }
                3 => bytes.insert(i, *rng.pick(&[b'\r', b'\n', b' ', b':', 0, 0xff])),
                4 => bytes.truncate(i),
                _ => {
                    // An early blank line: the head ends where the client says it does.
                    bytes.splice(i..i, b"\r\n\r\n".iter().copied());
                }
            }
        }
    }
    if rng.chance(15) {
        // Frames sent eagerly after the head: they must come back as `rest`.
        let extra = {
            let n = rng.range(1, 40);
            rng.bytes(n)
        };
        bytes.extend_from_slice(&extra);
    }
    bytes
}

/// Feeds `chunks` to a parser and checks every step and the final outcome; returns the
/// outcome's name (for the tally).
fn check_handshake(input: &[u8], chunks: &[&[u8]], limits: HeadLimits, context: &str) -> String {
    let fail = |what: String| -> ! {
        panic!(
            "{context}: {what}\ninput ({} bytes): {}",
            input.len(),
            hex(input)
        )
    };
    let mut parser = RequestParser::new(limits);
    let mut fed = 0;
    for chunk in chunks {
        fed += chunk.len();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.feed(chunk)))
            .unwrap_or_else(|_| fail(format!("RequestParser::feed panicked after {fed} bytes")));
        match result {
            Ok(None) => {
                if parser.buffered() > limits.max_head_bytes {
                    fail(format!(
                        "incomplete head holds {} bytes, over the {}-byte limit",
                        parser.buffered(),
                        limits.max_head_bytes
                    ));
                }
            }
            Err(e) => {
                if !HTTP_ERROR_STATUSES.contains(&e.status) {
                    fail(format!(
                        "parser refused with status {} ({})",
                        e.status, e.message
                    ));
                }
                return format!("parser {}", e.status);
            }
            Ok(Some((head, rest))) => {
                let end = match head_end(&input[..fed]) {
                    Some(e) => e,
                    None => fail("a head completed without a blank line".into()),
                };
                if rest != input[end..fed] {
                    fail(format!(
                        "rest is {} bytes, expected the {} bytes after the head",
                        rest.len(),
                        fed - end
                    ));
                }
                return check_head(&head, input, context);
            }
        }
    }
    if find(input, b"\r\n\r\n").is_some() {
        fail("still incomplete although the blank line that ends the head arrived".into());
    }
    "incomplete".into()
}

fn check_head(head: &wsqueue::protocol::http::RequestHead, input: &[u8], context: &str) -> String {
    let fail =
        |what: String| -> ! { panic!("{context}: {what}\nhead: {head:?}\ninput: {}", hex(input)) };
    match head.query() {
        Some(q) if format!("{}?{}", head.path(), q) != head.target => {
            fail("path + query != target".into())
        }
        None if head.path() != head.target => fail("path != target without a query".into()),
        _ => {}
    }
    let upgrade = is_upgrade_request(head);
    match validate(head, &policy()) {
        Ok(up) => {
            if !upgrade {
                fail("validate accepted a request that is_upgrade_request denies".into());
            }
            if up.accept != accept_key(&up.key) {
                fail("accept does not match the key".into());
            }
            if let Some(p) = &up.subprotocol {
                if !policy().subprotocols.contains(p) || !up.offered_subprotocols.contains(p) {
                    fail(format!("negotiated {p:?}, not offered or not supported"));
                }
            }
            let response = render_accept(&up.accept, up.subprotocol.as_deref(), None, &[]);
            if !response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n")
                || !response.ends_with(b"\r\n\r\n")
            {
                fail(format!(
                    "bad 101 response: {}",
                    String::from_utf8_lossy(&response)
                ));
            }
            "accepted".into()
        }
        Err(rejection) => {
            if !HTTP_ERROR_STATUSES.contains(&rejection.status) {
                fail(format!("rejected with status {}", rejection.status));
            }
            if rejection.status == 426
                && !rejection
                    .headers
                    .iter()
                    .any(|(n, v)| n.eq_ignore_ascii_case("Sec-WebSocket-Version") && v == "13")
            {
                fail("426 without Sec-WebSocket-Version: 13 (§4.4)".into());
            }
            let response = render_rejection(&rejection);
            let status_line = format!("HTTP/1.1 {} ", rejection.status);
            if !response.starts_with(status_line.as_bytes())
                || !response.ends_with(rejection.body.as_bytes())
            {
                fail(format!(
                    "bad rejection: {}",
                    String::from_utf8_lossy(&response)
                ));
            }
            format!("rejected {}", rejection.status)
        }
    }
}

#[test]
fn valid_handshakes_are_accepted_however_they_are_cut() {
    let mut rng = Rng::new(1);
    for (i, req) in valid_requests().iter().enumerate() {
        let bytes = req.to_bytes();
        let byte_by_byte: Vec<&[u8]> = bytes.chunks(1).collect();
        let mut cuts = vec![vec![&bytes[..]], byte_by_byte];
        for _ in 0..20 {
            cuts.push(random_chunks(&mut rng, &bytes));
        }
        for chunks in cuts {
            let outcome =
                check_handshake(&bytes, &chunks, HeadLimits::DEFAULT, &format!("valid #{i}"));
            assert_eq!(outcome, "accepted", "valid request #{i}: {req:?}");
        }
    }
    // §1.3's worked example, end to end.
    let (head, _) = RequestParser::new(HeadLimits::DEFAULT)
        .feed(&valid_requests()[0].to_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(validate(&head, &policy()).unwrap().accept, RFC_ACCEPT);
}

#[test]
fn mutated_handshakes_end_in_a_head_or_an_http_error_never_a_panic() {
    let mut rng = Rng::new(0x5EED_0001);
    let bases = valid_requests();
    let small = HeadLimits {
        max_head_bytes: 512,
        max_headers: 8,
    };
    let mut outcomes = Outcomes::default();
    for case in 0..HANDSHAKE_CASES {
        let base = rng.pick(&bases).clone();
        let input = mutate_request(&mut rng, base);
        let limits = if rng.chance(20) {
            small
        } else {
            HeadLimits::DEFAULT
        };
        let chunks = random_chunks(&mut rng, &input);
        outcomes.add(check_handshake(
            &input,
            &chunks,
            limits,
            &format!("handshake case {case}"),
        ));
    }
    outcomes.assert_reached(&[
        "accepted",
        "incomplete",
        "parser 400",
        "parser 431",
        "rejected 400",
        "rejected 403",
        "rejected 405",
        "rejected 426",
    ]);
}

// ---------------------------------------------------------------------------------------
// Frame streams

/// A client frame as parts, so mutations can break any field.
#[derive(Clone, Debug)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
    /// Length field override (lies about the payload); None: the true length.
    declared_len: Option<u64>,
    /// 0: minimal, 1: always 16-bit, 2: always 64-bit length encoding.
    len_encoding: u8,
}

impl Frame {
    fn new(fin: bool, opcode: u8, payload: Vec<u8>, key: [u8; 4]) -> Self {
        Frame {
            fin,
            rsv: 0,
            opcode,
            mask: Some(key),
            payload,
            declared_len: None,
            len_encoding: 0,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.fin) << 7 | (self.rsv & 7) << 4 | (self.opcode & 0xF));
        let m = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.declared_len.unwrap_or(self.payload.len() as u64);
        match (self.len_encoding, len) {
            (0, n) if n <= 125 => out.push(m | n as u8),
            (0 | 1, n) if n <= 0xFFFF => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            (_, n) => {
                out.push(m | 127);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
    }
}

fn encode_all(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        f.encode(&mut out);
    }
    out
}

const TEXT_PIECES: [&str; 8] = [
    "hello",
    " ",
    "\u{e9}",
    "\u{20ac}",
    "\u{1d11e}",
    "\u{65e5}\u{672c}",
    "0123456789",
    "\n",
];

fn random_text(rng: &mut Rng, max_len: usize) -> Vec<u8> {
    let target = rng.range(0, max_len);
    let mut s = String::new();
    while s.len() < target {
        let piece = *rng.pick(&TEXT_PIECES);
        s.push_str(piece);
    }
    s.into_bytes()
}

/// Cuts `payload` at random byte positions (code points may straddle fragments, which
/// §5.4/§8.1 allow) into `n` fragments.
fn fragment(rng: &mut Rng, payload: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = (1..n).map(|_| rng.range(0, payload.len())).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts.into_iter().chain([payload.len()]) {
        out.push(payload[start..c].to_vec());
        start = c;
    }
    out
}

/// A valid client stream and the events it must produce, within `limits`.
fn valid_stream(rng: &mut Rng, limits: Limits) -> (Vec<Frame>, Vec<Incoming>) {
    let max_payload = (limits.max_message_size.min(limits.max_frame_size) as usize).min(3000);
    let mut frames = Vec::new();
    let mut events = Vec::new();
    for _ in 0..rng.range(1, 8) {
        let key = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
        match rng.below(10) {
            0 => {
                let p = {
                    let n = rng.range(0, 125);
                    rng.bytes(n)
                };
                frames.push(Frame::new(true, 0x9, p.clone(), key));
                events.push(Incoming::Ping(p));
            }
            1 => {
                let p = {
                    let n = rng.range(0, 20);
                    rng.bytes(n)
                };
                frames.push(Frame::new(true, 0xA, p.clone(), key));
                events.push(Incoming::Pong(p));
            }
            _ => {
                let text = rng.chance(50);
                let payload = if text {
                    random_text(rng, max_payload)
                } else {
                    {
                        let n = rng.range(0, max_payload);
                        rng.bytes(n)
                    }
                };
                let payload = if text && payload.len() > max_payload {
                    // Too long after the last piece: fall back to ASCII of the right size.
                    vec![b'a'; max_payload]
                } else {
                    payload
                };
                let n = if rng.chance(60) { 1 } else { rng.range(2, 6) };
                let parts = fragment(rng, &payload, n);
                let last = parts.len() - 1;
                for (i, part) in parts.into_iter().enumerate() {
                    let opcode = if i > 0 {
                        0x0
                    } else if text {
                        0x1
                    } else {
                        0x2
                    };
                    let key = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
                    frames.push(Frame::new(i == last, opcode, part, key));
                    if i < last && rng.chance(30) {
                        // §5.4: control frames may be injected between fragments.
                        let p = {
                            let n = rng.range(0, 10);
                            rng.bytes(n)
                        };
                        frames.push(Frame::new(true, 0x9, p.clone(), key));
                        events.push(Incoming::Ping(p));
                    }
                }
                let kind = if text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                events.push(Incoming::Message { kind, payload });
            }
        }
    }
    if rng.chance(40) {
        let key = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
        if rng.chance(25) {
            frames.push(Frame::new(true, 0x8, Vec::new(), key));
            events.push(Incoming::Close {
                code: None,
                reason: String::new(),
            });
        } else {
            let code = *rng.pick(&[1000u16, 1001, 1003, 1007, 1011, 3000, 4999]);
            let reason = String::from_utf8(random_text(rng, 20)).unwrap();
            let mut p = code.to_be_bytes().to_vec();
            p.extend_from_slice(reason.as_bytes());
            if p.len() <= 125 {
                frames.push(Frame::new(true, 0x8, p, key));
                events.push(Incoming::Close {
                    code: Some(wsqueue::protocol::CloseCode(code)),
                    reason,
                });
            }
        }
    }
    (frames, events)
}

/// Breaks 1 to 3 things in a valid frame list, then maybe some bytes of the encoding.
fn mutated_stream(rng: &mut Rng, limits: Limits) -> Vec<u8> {
    let (mut frames, _) = valid_stream(rng, limits);
    for _ in 0..rng.range(1, 3) {
        let i = rng.below(frames.len());
        let f = &mut frames[i];
        match rng.below(16) {
            0 => f.opcode = rng.below(16) as u8,
            1 => f.rsv = rng.range(1, 7) as u8,
            2 => f.mask = None,
            3 => f.fin = !f.fin,
            4 => f.len_encoding = rng.range(1, 2) as u8,
            5 => {
                // A length that lies: the stream ends (or the next frame starts) early.
                f.declared_len = Some(f.payload.len() as u64 + rng.range(1, 300) as u64)
            }
            6 => {
                // Over the limits (1009), or with the 64-bit top bit set (1002).
                f.declared_len = Some(*rng.pick(&[
                    limits.max_frame_size + 1,
                    limits.max_message_size + 1,
                    u64::MAX,
                    1 << 63,
                    (1 << 63) - 1,
                ]));
            }
            7 => {
                // A control frame that is too long or fragmented (§5.5).
                f.opcode = *rng.pick(&[0x8, 0x9, 0xA]);
                if rng.chance(50) {
                    f.payload = {
                        let n = rng.range(126, 300);
                        rng.bytes(n)
                    };
                } else {
                    f.fin = false;
                }
            }
            8 => {
                // Close payloads: one byte, reserved codes, bad UTF-8 reasons (§5.5.1, §7.4).
                f.opcode = 0x8;
                f.fin = true;
                let code = *rng.pick(&[0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]);
                f.payload = match rng.below(3) {
                    0 => vec![rng.byte()],
                    1 => code.to_be_bytes().to_vec(),
                    _ => [&1000u16.to_be_bytes()[..], b"\xc3\x28"].concat(),
                };
            }
            9 => {
                // Invalid UTF-8 in a text frame: early, late, or cut at the end.
                f.opcode = 0x1;
                let bad = *rng.pick::<&[u8]>(&[
                    &b"\xed\xa0\x80"[..],
                    b"\xc0\xaf",
                    b"\xf4\x90\x80\x80",
                    b"\xff",
                    b"\xe2\x82",
                ]);
                let at = rng.range(0, f.payload.len());
                f.payload.splice(at..at, bad.iter().copied());
            }
            10 => {
                // Frames out of sequence (§5.4).
                f.opcode = if f.opcode == 0 { 0x1 } else { 0x0 };
            }
            11 => {
                let j = rng.below(frames.len());
                frames.swap(i, j);
            }
            12 => {
                let f = frames[i].clone();
                frames.insert(i, f);
            }
            13 => {
                frames.remove(i);
                if frames.is_empty() {
                    frames.push(Frame::new(true, 0x2, Vec::new(), [0; 4]));
                }
            }
            14 => {
                // A payload over the limits that really arrives.
                f.payload = vec![b'x'; limits.max_frame_size as usize + 1];
            }
            _ => f.payload.extend({
                let n = rng.range(1, 50);
                rng.bytes(n)
            }),
        }
    }
    let mut bytes = encode_all(&frames);
    if rng.chance(30) {
        for _ in 0..rng.range(1, 4) {
            if bytes.is_empty() {
                break;
            }
            let i = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[i] ^= 1 << rng.below(8),
                1 => bytes[i] = rng.byte(),
                2 => bytes.truncate(i),
                _ => {
                    bytes.remove(i);
                }
            }
        }
    }
    bytes
}

/// What a stream did: its events, the server's frames, and how it ended.
struct StreamRun {
    events: Vec<Incoming>,
    /// (opcode, payload) of every frame the connection wrote.
    written: Vec<(u8, Vec<u8>)>,
}

/// Delivers `chunks` to the `ServerConnection` the engine runs (past its handshake),
/// acting as the engine does after every chunk (taking what it writes, passing its
/// barriers at once), and checks every step; then checks the events and the written
/// frames against the rules.
fn run_stream(input: &[u8], chunks: &[&[u8]], limits: Limits, context: &str) -> StreamRun {
    let fail = |what: String| -> ! {
        panic!(
            "{context}: {what}\nlimits: {limits:?}\ninput ({} bytes): {}",
            input.len(),
            hex(input)
        )
    };
    let mut conn = ServerConnection::new_open(Settings {
        limits,
        ..Settings::default()
    });
    let mut events = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        let before = events.len();
        let was_finished = finished(&events);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drive::drive(&mut conn, chunk, &mut events, &mut out)
        }))
        .unwrap_or_else(|_| fail("ServerConnection::receive panicked".into()));
        if was_finished && events.len() != before {
            fail("events after Close/Error".into());
        }
        if !finished(&events) && conn.buffered_input() >= MAX_HEADER_LEN {
            fail(format!(
                "kept back {} bytes: more than an incomplete header",
                conn.buffered_input()
            ));
        }
    }
    for (i, event) in events.iter().enumerate() {
        let last = i + 1 == events.len();
        match event {
            Incoming::Error(e) if !PROTOCOL_ERROR_CODES.contains(&e.close_code()) => {
                fail(format!("{e:?} maps to close code {}", e.close_code()))
            }
            Incoming::Error(_) | Incoming::Close { .. } if !last => {
                fail(format!("events after {event:?}: {:?}", &events[i + 1..]))
            }
            Incoming::Message {
                kind: MessageKind::Text,
                payload,
            } if std::str::from_utf8(payload).is_err() => {
                fail("a text message that is not UTF-8".into())
            }
            Incoming::Message { payload, .. } if payload.len() as u64 > limits.max_message_size => {
                fail(format!("a {}-byte message over the limit", payload.len()))
            }
            Incoming::Close { code: Some(c), .. } if !c.is_valid_on_wire() => {
                fail(format!("accepted close code {}", c.0))
            }
            _ => {}
        }
    }
    if finished(&events) && !conn.wants_half_close() {
        fail("Close/Error seen but the connection does not want to half-close".into());
    }
    // The same bytes in one piece: cutting must not change what the peer said.
    let mut whole = Vec::new();
    Reader::new(limits).feed(input, &mut whole);
    if whole != events {
        fail(format!(
            "events depend on the cut:\n pieces: {events:?}\n whole:  {whole:?}"
        ));
    }
    let written = decode_server_frames(&out).unwrap_or_else(|e| fail(e));
    StreamRun { events, written }
}

fn finished(events: &[Incoming]) -> bool {
    matches!(
        events.last(),
        Some(Incoming::Close { .. } | Incoming::Error(_))
    )
}

/// An independent decoder for what the server writes: unmasked, RSV-free frames (§5.1).
fn decode_server_frames(mut bytes: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 2 {
            return Err("truncated server frame".into());
        }
        if bytes[0] & 0x70 != 0 || bytes[1] & 0x80 != 0 {
            return Err(format!(
                "server frame with RSV or mask bits: {:02x} {:02x}",
                bytes[0], bytes[1]
            ));
        }
        let (len, header) = match bytes[1] & 0x7F {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        if bytes.len() < header + len {
            return Err("truncated server frame payload".into());
        }
        frames.push((bytes[0] & 0x0F, bytes[header..header + len].to_vec()));
        bytes = &bytes[header + len..];
    }
    Ok(frames)
}

fn random_limits(rng: &mut Rng) -> Limits {
    *rng.pick(&[
        Limits {
            max_frame_size: 64 * 1024,
            max_message_size: 64 * 1024,
        },
        Limits {
            max_frame_size: 1024,
            max_message_size: 4096,
        },
        Limits {
            max_frame_size: 125,
            max_message_size: 256,
        },
    ])
}

#[test]
fn valid_client_streams_give_exactly_the_expected_events_however_they_are_cut() {
    let mut rng = Rng::new(0x5EED_0002);
    for case in 0..VALID_STREAM_CASES {
        let limits = random_limits(&mut rng);
        let (frames, expected) = valid_stream(&mut rng, limits);
        let input = encode_all(&frames);
        let chunks = random_chunks(&mut rng, &input);
        let run = run_stream(
            &input,
            &chunks,
            limits,
            &format!("valid stream case {case}"),
        );
        assert_eq!(
            run.events,
            expected,
            "valid stream case {case}: {}",
            hex(&input)
        );
        // §5.5.2 with §5.5.3: pongs carry ping payloads, in order, at most one per
        // ping (pings answered before their pong was written are coalesced), and the
        // last ping is always answered.
        let pings: Vec<&Vec<u8>> = expected
            .iter()
            .filter_map(|e| match e {
                Incoming::Ping(p) => Some(p),
                _ => None,
            })
            .collect();
        let pongs: Vec<&Vec<u8>> = run
            .written
            .iter()
            .filter(|(op, _)| *op == 0xA)
            .map(|(_, p)| p)
            .collect();
        let mut rest = pings.iter();
        for pong in &pongs {
            assert!(
                rest.any(|p| p == pong),
                "valid stream case {case}: pong {pong:?} answers no later ping: {pings:?}"
            );
        }
        assert_eq!(
            pongs.last(),
            pings.last(),
            "valid stream case {case}: the last ping is answered"
        );
        let closes = run.written.iter().filter(|(op, _)| *op == 0x8).count();
        assert_eq!(
            closes,
            usize::from(finished(&expected)),
            "valid stream case {case}: close replies"
        );
    }
}

#[test]
fn mutated_client_streams_end_in_events_or_a_1002_1007_1009_error_never_a_panic() {
    let mut rng = Rng::new(0x5EED_0003);
    let mut outcomes = Outcomes::default();
    for case in 0..MUTATED_STREAM_CASES {
        let limits = random_limits(&mut rng);
        let input = mutated_stream(&mut rng, limits);
        let chunks = random_chunks(&mut rng, &input);
        let run = run_stream(
            &input,
            &chunks,
            limits,
            &format!("mutated stream case {case}"),
        );
        match run.events.last() {
            Some(Incoming::Error(e)) => {
                outcomes.add(format!("error {}", e.close_code()));
                // §7.1.7: failing the connection sends a close with the error's code.
                let close = run.written.iter().find(|(op, _)| *op == 0x8);
                let code = close
                    .and_then(|(_, p)| p.get(..2))
                    .map(|c| u16::from_be_bytes([c[0], c[1]]));
                assert_eq!(
                    code,
                    Some(e.close_code()),
                    "mutated stream case {case}: close sent for {e:?}"
                );
            }
            Some(Incoming::Close { .. }) => outcomes.add("close"),
            _ => outcomes.add("open"),
        }
    }
    outcomes.assert_reached(&["error 1002", "error 1007", "error 1009", "close", "open"]);
}

// ---------------------------------------------------------------------------------------
// UTF-8

/// The validator's contract (§8.1 fail fast): after each piece, `feed` succeeds exactly
/// when everything so far is a prefix of valid UTF-8; `finish` exactly when it is valid.
fn check_utf8(input: &[u8], chunks: &[&[u8]], context: &str) {
    let is_valid_prefix = |b: &[u8]| match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    let mut v = Utf8Validator::new();
    let mut fed = 0;
    for chunk in chunks {
        fed += chunk.len();
        let ok = v.feed(chunk).is_ok();
        assert_eq!(
            ok,
            is_valid_prefix(&input[..fed]),
            "{context}: feed after {fed} bytes disagrees with std\ninput: {}",
            hex(input)
        );
        if !ok {
            return;
        }
    }
    assert_eq!(
        v.finish().is_ok(),
        std::str::from_utf8(input).is_ok(),
        "{context}: finish disagrees with std\ninput: {}",
        hex(input)
    );
}

#[test]
fn utf8_validator_agrees_with_std_on_random_mutations_cut_anywhere() {
    let mut rng = Rng::new(0x5EED_0004);
    for case in 0..UTF8_CASES {
        let mut input = random_text(&mut rng, 300);
        for _ in 0..rng.below(3) {
            if input.is_empty() {
                break;
            }
            let i = rng.below(input.len());
            match rng.below(4) {
                0 => input[i] ^= 1 << rng.below(8),
                1 => {
                    input[i] =
                        *rng.pick(&[0x80, 0xBF, 0xC0, 0xC1, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF])
                }
                2 => input.truncate(i),
                _ => {
                    input.remove(i);
                }
            }
        }
        let chunks = random_chunks(&mut rng, &input);
        check_utf8(&input, &chunks, &format!("utf8 case {case}"));
    }
}

// ---------------------------------------------------------------------------------------
// The checked-in fuzz seeds

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 5,
        "expected at least 5 seeds in {}",
        dir.display()
    );
    out
}

#[test]
fn fuzz_seeds_replay_without_panics_and_with_defined_outcomes() {
    let mut rng = Rng::new(0x5EED_0005);
    for (path, data) in seeds("handshake") {
        let (sizes, stream) = chunking::split(&data);
        let context = path.display().to_string();
        check_handshake(
            stream,
            &chunking::chunks(&sizes, stream),
            HeadLimits::DEFAULT,
            &context,
        );
        for _ in 0..20 {
            check_handshake(
                stream,
                &random_chunks(&mut rng, stream),
                HeadLimits::DEFAULT,
                &context,
            );
        }
    }
    for (path, data) in seeds("reader") {
        // As the fuzz target: bit 3 of the first byte selects the tiny limits.
        let limits = if data.first().is_some_and(|b| b & 8 != 0) {
            Limits {
                max_frame_size: 125,
                max_message_size: 256,
            }
        } else {
            Limits {
                max_frame_size: 64 * 1024,
                max_message_size: 64 * 1024,
            }
        };
        let (sizes, stream) = chunking::split(&data);
        let context = path.display().to_string();
        run_stream(stream, &chunking::chunks(&sizes, stream), limits, &context);
        for _ in 0..20 {
            run_stream(stream, &random_chunks(&mut rng, stream), limits, &context);
        }
    }
    for (path, data) in seeds("inflate") {
        inflate_check::check(&data, &path.display().to_string());
    }
    for (path, data) in seeds("utf8") {
        let (sizes, stream) = chunking::split(&data);
        let context = path.display().to_string();
        check_utf8(stream, &chunking::chunks(&sizes, stream), &context);
        for _ in 0..20 {
            check_utf8(stream, &random_chunks(&mut rng, stream), &context);
        }
    }
}

#[test]
fn inflate_seeds_reach_a_message_1007_and_1009() {
    // The seeds are worth fuzzing from only if they reach every outcome.
    let mut outcomes = std::collections::BTreeSet::new();
    for (path, data) in seeds("inflate") {
        let (_, stream) = chunking::split(&data);
        let limit = if data[0] & 8 != 0 { 256 } else { 64 * 1024 };
        let agreement = DeflateAgreement {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            min_size: 0,
            level: 6,
            response: String::new(),
        };
        let r = MessageInflater::new(&agreement).inflate(stream, limit);
        outcomes.insert(format!("{:?}", r.as_ref().map(|_| ()).map_err(|e| *e)));
        if path.ends_with("rfc_hello") {
            assert_eq!(r.unwrap(), b"Hello");
        }
    }
    assert_eq!(
        outcomes.into_iter().collect::<Vec<_>>(),
        ["Err(Corrupt)", "Err(TooLarge)", "Ok(())"]
    );
}

#[test]
fn fuzz_seeds_meant_to_be_accepted_or_refused_get_that_outcome() {
    // Guards the seeds themselves: a corpus of only rejects would fuzz only rejects.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (name, expected) in [
        ("full_mixed_pieces", "accepted"),
        ("full_then_eager_frame", "accepted"),
        // No Origin while the policy has an allowlist: refused (§4.2.2, §10.2).
        ("rfc_sample_whole", "rejected 403"),
        ("rfc_sample_byte_by_byte", "rejected 403"),
        ("foreign_origin_gets_403", "rejected 403"),
        ("version_8_gets_426", "rejected 426"),
        ("post_gets_405", "rejected 405"),
        ("short_key_gets_400", "rejected 400"),
        ("plain_http_get", "rejected 400"),
    ] {
        let data = std::fs::read(dir.join("handshake").join(name)).unwrap();
        let (sizes, stream) = chunking::split(&data);
        let outcome = check_handshake(
            stream,
            &chunking::chunks(&sizes, stream),
            HeadLimits::DEFAULT,
            name,
        );
        assert_eq!(outcome, expected, "seed {name}");
    }
    let limits = Limits {
        max_frame_size: 64 * 1024,
        max_message_size: 64 * 1024,
    };
    for name in [
        "mixed_stream_byte_by_byte",
        "fragmented_utf8_with_ping",
        "close_3000_reason",
    ] {
        let data = std::fs::read(dir.join("reader").join(name)).unwrap();
        let (sizes, stream) = chunking::split(&data);
        let run = run_stream(stream, &chunking::chunks(&sizes, stream), limits, name);
        assert!(
            matches!(run.events.last(), Some(Incoming::Close { .. })),
            "seed {name} should end with a clean close: {:?}",
            run.events
        );
        assert!(
            !run.events.iter().any(|e| matches!(e, Incoming::Error(_))),
            "seed {name}"
        );
    }
    for (name, code) in [
        ("invalid_utf8_text", 1007),
        ("unmasked_frame", 1002),
        ("rsv1_set", 1002),
        ("close_code_1005", 1002),
    ] {
        let data = std::fs::read(dir.join("reader").join(name)).unwrap();
        let (sizes, stream) = chunking::split(&data);
        let run = run_stream(stream, &chunking::chunks(&sizes, stream), limits, name);
        match run.events.last() {
            Some(Incoming::Error(e)) => assert_eq!(e.close_code(), code, "seed {name}"),
            other => panic!("seed {name} should fail the connection with {code}: {other:?}"),
        }
    }
}
