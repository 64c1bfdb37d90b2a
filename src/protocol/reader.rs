//! The inbound side of a server connection: frames to messages (§5.2-§5.6, §8.1).
//!
//! Bytes are consumed as they come: a frame's payload is unmasked straight into the
//! message buffer, so the caller only ever keeps back an incomplete frame header
//! (fewer than [`MAX_HEADER_LEN`](super::frame::MAX_HEADER_LEN) bytes). A new
//! message's buffer comes from [`MessageBuffers`], so the I/O layer can hand out
//! recycled buffers without the reader knowing where they come from.

use super::close::{parse_close_payload, CloseCode};
use super::deflate::{InflateError, MessageInflater};
use super::error::ProtocolError;
use super::frame::{FrameHeader, OpCode};
use super::mask::extend_unmasked;
use super::utf8::Utf8Validator;
use super::{Limits, MessageKind};

/// Something the peer said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete message, reassembled from its fragments (§5.4). A text payload has been
    /// validated as UTF-8.
    Message { kind: MessageKind, payload: Vec<u8> },
    /// A ping (§5.5.2): it must be answered with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong (§5.5.3), solicited or not.
    Pong(Vec<u8>),
    /// A valid close frame (§5.5.1): `code` is None when the payload was empty.
    Close {
        code: Option<CloseCode>,
        reason: String,
    },
    /// The peer broke the protocol: fail the connection with `error.close_code()`.
    Error(ProtocolError),
}

/// Where the reader's events go: a `Vec<Incoming>`, or a caller's own queue (the
/// connection turns messages into its events as they complete, with no vector in
/// between).
pub trait IncomingSink {
    fn push_incoming(&mut self, item: Incoming);
}

impl IncomingSink for Vec<Incoming> {
    #[inline]
    fn push_incoming(&mut self, item: Incoming) {
        self.push(item);
    }
}

/// Where a new message's buffer comes from. The protocol keeps no pool of its own; the
/// I/O layer may hand out recycled buffers.
pub trait MessageBuffers {
    /// A buffer with room for at least `len` bytes (the reader empties it first).
    fn message_buffer(&mut self, len: usize) -> Vec<u8>;
}

/// Fresh allocations: the default source.
pub struct Allocate;

impl MessageBuffers for Allocate {
    fn message_buffer(&mut self, len: usize) -> Vec<u8> {
        Vec::with_capacity(len)
    }
}

/// Up-front reservation for a message buffer: the frame's length, capped so that a
/// header announcing a huge frame cannot make us allocate before the bytes arrive.
const MAX_UPFRONT_RESERVE: u64 = 1024 * 1024;

/// A small frame's header: two bytes and the mask key.
const SMALL_HEADER_LEN: usize = 6;

/// Unmasks a whole message's `payload` into `into` (emptied first: whatever its source
/// left in it is not this message's); false for text that is not UTF-8 (§8.1: the
/// whole message is here, so one check of all of it).
#[inline]
fn unmask_whole(kind: MessageKind, key: [u8; 4], payload: &[u8], into: &mut Vec<u8>) -> bool {
    into.clear();
    extend_unmasked(into, payload, key, 0);
    kind != MessageKind::Text || simdutf8::basic::from_utf8(into).is_ok()
}

/// The frame whose payload is being consumed.
#[derive(Debug)]
struct PayloadState {
    opcode: OpCode,
    fin: bool,
    key: [u8; 4],
    remaining: u64,
    /// Payload bytes consumed so far (the masking phase).
    offset: usize,
}

/// Server-side frame decoder and message assembler.
#[derive(Debug)]
pub struct Reader {
    limits: Limits,
    /// Set when permessage-deflate was negotiated (RFC 7692): RSV1 then marks a
    /// compressed message.
    inflater: Option<Box<MessageInflater>>,
    frame: Option<PayloadState>,
    /// The kind of the (possibly fragmented) message in progress.
    message: Option<MessageKind>,
    /// The message in progress is compressed: its frames are collected as they are and
    /// inflated (and UTF-8 checked) once the last one is in.
    compressed: bool,
    buffer: Vec<u8>,
    utf8: Utf8Validator,
    /// A control frame's payload (at most 125 bytes, §5.5), allocated only while one
    /// is in progress and handed on whole: an idle connection holds none.
    control: Vec<u8>,
    finished: bool,
}

impl Reader {
    pub fn new(limits: Limits) -> Self {
        Reader {
            limits,
            inflater: None,
            frame: None,
            message: None,
            compressed: false,
            buffer: Vec::new(),
            utf8: Utf8Validator::new(),
            control: Vec::new(),
            finished: false,
        }
    }

    /// Accepts compressed messages from now on (permessage-deflate was negotiated).
    pub fn enable_inflate(&mut self, inflater: MessageInflater) {
        self.inflater = Some(Box::new(inflater));
    }

    /// Consumes as much of `input` as possible and appends what it completes to `events`.
    /// Returns the number of bytes consumed; the rest (an incomplete frame header) must be
    /// presented again at the front of the next call. After a `Close` or `Error` event
    /// the reader is finished and consumes nothing more.
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<Incoming>) -> usize {
        self.feed_with(input, events, &mut Allocate)
    }

    /// [`feed`](Self::feed), with new message buffers taken from `buffers`.
    pub fn feed_with<S: IncomingSink + ?Sized>(
        &mut self,
        input: &[u8],
        events: &mut S,
        buffers: &mut dyn MessageBuffers,
    ) -> usize {
        let mut pos = 0;
        while !self.finished {
            if self.frame.is_none() {
                if self.message.is_none() {
                    if let Some(len) = self.whole_small_message(&input[pos..], events, buffers) {
                        pos += len;
                        continue;
                    }
                }
                match FrameHeader::decode(&input[pos..]) {
                    Ok(None) => break,
                    Ok(Some((header, len))) => {
                        pos += len;
                        if let Err(e) = self.start_frame(&header, buffers) {
                            self.fail(e, events);
                            break;
                        }
                    }
                    Err(e) => {
                        self.fail(e, events);
                        break;
                    }
                }
            }
            let frame = self.frame.as_mut().expect("a frame is in progress");
            let take = (frame.remaining.min((input.len() - pos) as u64)) as usize;
            let piece = &input[pos..pos + take];
            if frame.opcode.is_control() {
                extend_unmasked(&mut self.control, piece, frame.key, frame.offset);
            } else {
                let start = self.buffer.len();
                extend_unmasked(&mut self.buffer, piece, frame.key, frame.offset);
                // §8.1 fail fast: validate each piece as it arrives.
                if self.message == Some(MessageKind::Text)
                    && !self.compressed
                    && self.utf8.feed(&self.buffer[start..]).is_err()
                {
                    pos += take;
                    self.fail(ProtocolError::InvalidUtf8, events);
                    break;
                }
            }
            pos += take;
            frame.remaining -= take as u64;
            frame.offset += take;
            if frame.remaining > 0 {
                break; // the rest of the payload has not arrived yet
            }
            let done = self.frame.take().expect("a frame is in progress");
            self.finish_frame(done, events);
        }
        pos
    }

    /// The common case, in one step: `input` starts with a whole small unfragmented
    /// data frame while no message is in progress ([`small_frame`](Self::small_frame)).
    /// Unmasks it into a new message buffer, validates text and emits it; returns the
    /// frame's length. `None` (nothing done) for anything else, which the general path
    /// handles.
    #[inline]
    fn whole_small_message<S: IncomingSink + ?Sized>(
        &mut self,
        input: &[u8],
        events: &mut S,
        buffers: &mut dyn MessageBuffers,
    ) -> Option<usize> {
        let (kind, key, payload) = self.small_frame(input)?;
        debug_assert!(self.buffer.is_empty() && !self.compressed);
        let mut buffer = buffers.message_buffer(payload.len());
        if !unmask_whole(kind, key, payload, &mut buffer) {
            self.fail(ProtocolError::InvalidUtf8, events);
        } else {
            events.push_incoming(Incoming::Message {
                kind,
                payload: buffer,
            });
        }
        Some(SMALL_HEADER_LEN + payload.len())
    }

    /// Whether no frame or message is in progress and the reader is not finished, so
    /// that a whole small frame is a whole message
    /// ([`next_small_message`](Self::next_small_message)). Taking one leaves it so.
    #[inline]
    pub fn is_between_messages(&self) -> bool {
        self.frame.is_none() && self.message.is_none() && !self.finished
    }

    /// [`whole_small_message`](Self::whole_small_message) for a caller that hands the
    /// message on at once and reuses its buffer, and has checked
    /// [`is_between_messages`](Self::is_between_messages) (once for a run of them):
    /// unmasks the payload into `into` and returns the message's kind and the frame's
    /// length. `None`, with nothing consumed, when `input` does not start with a whole
    /// small data frame, and for text that is not UTF-8 (the general path then fails
    /// the connection with its code).
    #[inline]
    pub fn next_small_message(
        &self,
        input: &[u8],
        into: &mut Vec<u8>,
    ) -> Option<(MessageKind, usize)> {
        debug_assert!(self.is_between_messages());
        let (kind, key, payload) = self.small_frame(input)?;
        if !unmask_whole(kind, key, payload, into) {
            return None;
        }
        Some((kind, SMALL_HEADER_LEN + payload.len()))
    }

    /// Whether `input` starts with a whole small unfragmented data frame (FIN, no RSV
    /// bits, masked, 7-bit length) within the limits: its kind, mask key and (masked)
    /// payload. The caller has checked that no message is in progress, so the frame is
    /// the whole message.
    ///
    /// What the general path checks and this one does not need to: the opcode (only
    /// 0x81 and 0x82 are taken, so it is a known non-control opcode with FIN set and
    /// RSV clear, §5.2, §5.5), fragmentation order (no message is in progress, §5.4),
    /// the 64-bit length rules (a 7-bit length), compression (RSV1 clear, RFC 7692).
    #[inline]
    fn small_frame<'i>(&self, input: &'i [u8]) -> Option<(MessageKind, [u8; 4], &'i [u8])> {
        let [b0, b1, k0, k1, k2, k3, rest @ ..] = input else {
            return None;
        };
        let kind = match *b0 {
            0x81 => MessageKind::Text,
            0x82 => MessageKind::Binary,
            _ => return None,
        };
        // §5.1: masked (the high bit); a length of at most 125 (the low 7 bits).
        if *b1 < 0x80 || *b1 > 0x80 + 125 {
            return None;
        }
        let len = (b1 & 0x7F) as usize;
        let payload = rest.get(..len)?;
        // §10.4: the frame is the whole message.
        if len as u64 > self.limits.max_frame_size || len as u64 > self.limits.max_message_size {
            return None; // the general path reports which limit
        }
        Some((kind, [*k0, *k1, *k2, *k3], payload))
    }

    /// True once a close frame or a protocol error has been seen.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Applies the server-side rules to a new frame header.
    fn start_frame(
        &mut self,
        h: &FrameHeader,
        buffers: &mut dyn MessageBuffers,
    ) -> Result<(), ProtocolError> {
        // §5.1: the server MUST fail the connection on an unmasked client frame.
        let key = h.mask.ok_or(ProtocolError::UnmaskedFrame)?;
        // §5.2: non-zero RSV bits without a negotiated meaning fail the connection.
        // RFC 7692 §6.1: RSV1 means "compressed" on the first frame of a data message
        // only; on a continuation or control frame it is still a reserved bit.
        let rsv1 = h.rsv & 0b100 != 0;
        let compressible = matches!(h.opcode, OpCode::Text | OpCode::Binary);
        if h.rsv & 0b011 != 0 || rsv1 && (self.inflater.is_none() || !compressible) {
            return Err(ProtocolError::ReservedBitsSet);
        }
        if h.opcode.is_control() {
            self.control.clear();
        } else {
            // §5.4: fragments of one message are not interleaved with another message.
            match (h.opcode, self.message) {
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Text | OpCode::Binary, Some(_)) => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                _ => {}
            }
            // §10.4: limits are enforced from the header, before the payload arrives.
            if h.payload_len > self.limits.max_frame_size {
                return Err(ProtocolError::FrameTooLarge);
            }
            if self.buffer.len() as u64 + h.payload_len > self.limits.max_message_size {
                return Err(ProtocolError::MessageTooLarge);
            }
            match h.opcode {
                OpCode::Text => self.message = Some(MessageKind::Text),
                OpCode::Binary => self.message = Some(MessageKind::Binary),
                _ => {}
            }
            if compressible {
                self.compressed = rsv1;
            }
            let upfront = h.payload_len.min(MAX_UPFRONT_RESERVE) as usize;
            if self.buffer.capacity() == 0 {
                // A new message (a finished or failed one leaves no buffer behind).
                self.buffer = buffers.message_buffer(upfront);
                // Whatever the source left in it is not this message's.
                self.buffer.clear();
            } else {
                self.buffer.reserve(upfront);
            }
        }
        self.frame = Some(PayloadState {
            opcode: h.opcode,
            fin: h.fin,
            key,
            remaining: h.payload_len,
            offset: 0,
        });
        Ok(())
    }

    fn finish_frame<S: IncomingSink + ?Sized>(&mut self, frame: PayloadState, events: &mut S) {
        let control = std::mem::take(&mut self.control);
        match frame.opcode {
            OpCode::Ping => events.push_incoming(Incoming::Ping(control)),
            OpCode::Pong => events.push_incoming(Incoming::Pong(control)),
            OpCode::Close => match parse_close_payload(&control) {
                Ok(parsed) => {
                    let (code, reason) = match parsed {
                        Some((c, r)) => (Some(c), r.to_string()),
                        None => (None, String::new()),
                    };
                    events.push_incoming(Incoming::Close { code, reason });
                    self.finished = true;
                }
                Err(e) => self.fail(e, events),
            },
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if !frame.fin {
                    return;
                }
                let kind = self
                    .message
                    .take()
                    .expect("a data frame belongs to a message");
                let mut payload = std::mem::take(&mut self.buffer);
                if std::mem::take(&mut self.compressed) {
                    match self.inflate(&payload, kind) {
                        Ok(inflated) => payload = inflated,
                        Err(e) => return self.fail(e, events),
                    }
                } else if kind == MessageKind::Text && self.utf8.finish().is_err() {
                    self.fail(ProtocolError::InvalidUtf8, events);
                    return;
                }
                events.push_incoming(Incoming::Message { kind, payload });
            }
        }
    }

    /// RFC 7692 §7.2.2: the inflated size counts against the message limit (§10.4),
    /// and a text message's UTF-8 is checked on the inflated bytes (§8.1).
    fn inflate(&mut self, compressed: &[u8], kind: MessageKind) -> Result<Vec<u8>, ProtocolError> {
        let limit = usize::try_from(self.limits.max_message_size).unwrap_or(usize::MAX);
        let inflater = self
            .inflater
            .as_mut()
            .expect("RSV1 is accepted only with an inflater");
        let inflated = inflater.inflate(compressed, limit).map_err(|e| match e {
            InflateError::TooLarge => ProtocolError::MessageTooLarge,
            InflateError::Corrupt => ProtocolError::InvalidCompressedData,
        })?;
        if kind == MessageKind::Text && simdutf8::basic::from_utf8(&inflated).is_err() {
            return Err(ProtocolError::InvalidUtf8);
        }
        Ok(inflated)
    }

    fn fail<S: IncomingSink + ?Sized>(&mut self, error: ProtocolError, events: &mut S) {
        events.push_incoming(Incoming::Error(error));
        self.finished = true;
        self.frame = None;
        self.buffer = Vec::new();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::mask::apply_mask;

    /// A masked client frame.
    pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        raw_frame(fin, 0, opcode, Some([0x37, 0xfa, 0x21, 0x3d]), payload)
    }

    pub fn raw_frame(
        fin: bool,
        rsv: u8,
        opcode: u8,
        mask: Option<[u8; 4]>,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = vec![(if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n <= 125 => out.push(m | n as u8),
            n if n <= 0xFFFF => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mut body = payload.to_vec();
        if let Some(key) = mask {
            out.extend_from_slice(&key);
            apply_mask(&mut body, key, 0);
        }
        out.extend_from_slice(&body);
        out
    }

    fn read_all(bytes: &[u8], limits: Limits) -> Vec<Incoming> {
        let mut r = Reader::new(limits);
        let mut events = Vec::new();
        let n = r.feed(bytes, &mut events);
        assert!(
            r.is_finished() || n == bytes.len(),
            "all complete frames consumed"
        );
        events
    }

    fn read(bytes: &[u8]) -> Vec<Incoming> {
        read_all(bytes, Limits::DEFAULT)
    }

    fn text(s: &str) -> Incoming {
        Incoming::Message {
            kind: MessageKind::Text,
            payload: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn masked_text_frame_becomes_a_message() {
        assert_eq!(read(&client_frame(true, 1, b"Hello")), vec![text("Hello")]);
    }

    #[test]
    fn rejects_unmasked_client_frame() {
        // §5.1
        let f = raw_frame(true, 0, 1, None, b"hi");
        assert_eq!(
            read(&f),
            vec![Incoming::Error(ProtocolError::UnmaskedFrame)]
        );
    }

    #[test]
    fn rejects_reserved_bits_without_extension() {
        // §5.2
        for rsv in 1..8 {
            let f = raw_frame(true, rsv, 1, Some([1, 2, 3, 4]), b"hi");
            assert_eq!(
                read(&f),
                vec![Incoming::Error(ProtocolError::ReservedBitsSet)]
            );
        }
    }

    #[test]
    fn rejects_reserved_opcodes() {
        // §5.2
        for op in [3, 7, 0xB, 0xF] {
            assert_eq!(
                read(&client_frame(true, op, b"")),
                vec![Incoming::Error(ProtocolError::UnknownOpcode(op))]
            );
        }
    }

    #[test]
    fn reassembles_fragments_with_control_frames_interleaved() {
        // §5.4: control frames MAY be injected in the middle of a fragmented message.
        let mut s = client_frame(false, 1, b"Hel");
        s.extend(client_frame(true, 9, b"p1"));
        s.extend(client_frame(false, 0, b"lo "));
        s.extend(client_frame(true, 0xA, b""));
        s.extend(client_frame(true, 0, b"world"));
        assert_eq!(
            read(&s),
            vec![
                Incoming::Ping(b"p1".to_vec()),
                Incoming::Pong(vec![]),
                text("Hello world")
            ]
        );
    }

    #[test]
    fn continuation_without_a_message_is_a_protocol_error() {
        // §5.4
        assert_eq!(
            read(&client_frame(true, 0, b"x")),
            vec![Incoming::Error(ProtocolError::UnexpectedContinuation)]
        );
    }

    #[test]
    fn new_data_frame_inside_a_fragmented_message_is_a_protocol_error() {
        // §5.4
        let mut s = client_frame(false, 1, b"a");
        s.extend(client_frame(true, 2, b"b"));
        assert_eq!(
            read(&s),
            vec![Incoming::Error(ProtocolError::ExpectedContinuation)]
        );
    }

    #[test]
    fn message_over_the_limit_fails_from_the_header_across_fragments() {
        // §10.4: the second fragment's header already shows the total is too big.
        let limits = Limits {
            max_frame_size: 100,
            max_message_size: 150,
        };
        let mut s = client_frame(false, 2, &[0; 100]);
        let second = client_frame(true, 0, &[0; 100]);
        s.extend_from_slice(&second[..8]); // header only: the payload never arrives
        assert_eq!(
            read_all(&s, limits),
            vec![Incoming::Error(ProtocolError::MessageTooLarge)]
        );
        assert_eq!(ProtocolError::MessageTooLarge.close_code(), 1009);
    }

    #[test]
    fn frame_over_the_limit_fails_from_the_header() {
        let limits = Limits {
            max_frame_size: 10,
            max_message_size: 1000,
        };
        let f = client_frame(true, 2, &[0; 11]);
        assert_eq!(
            read_all(&f[..6], limits),
            vec![Incoming::Error(ProtocolError::FrameTooLarge)]
        );
    }

    #[test]
    fn invalid_utf8_fails_on_the_first_bad_fragment() {
        // §8.1 fail fast: the final fragment has not been sent.
        let s = client_frame(false, 1, b"ok \xFF");
        assert_eq!(read(&s), vec![Incoming::Error(ProtocolError::InvalidUtf8)]);
    }

    #[test]
    fn invalid_utf8_fails_inside_a_partial_frame() {
        let f = client_frame(true, 1, b"abc\xC0defgh");
        let mut r = Reader::new(Limits::DEFAULT);
        let mut ev = Vec::new();
        r.feed(&f[..f.len() - 3], &mut ev);
        assert_eq!(ev, vec![Incoming::Error(ProtocolError::InvalidUtf8)]);
    }

    #[test]
    fn code_point_split_across_fragments_is_valid() {
        // §8.1: "€" = E2 82 AC split over two fragments.
        let mut s = client_frame(false, 1, b"\xE2\x82");
        s.extend(client_frame(true, 0, b"\xAC"));
        assert_eq!(read(&s), vec![text("€")]);
    }

    #[test]
    fn text_ending_in_a_truncated_code_point_is_invalid() {
        assert_eq!(
            read(&client_frame(true, 1, b"\xE2\x82")),
            vec![Incoming::Error(ProtocolError::InvalidUtf8)]
        );
    }

    #[test]
    fn close_frame_is_parsed_and_finishes_the_reader() {
        // §5.5.1
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let mut s = client_frame(true, 8, &payload);
        let tail = client_frame(true, 1, b"after close");
        s.extend_from_slice(&tail);
        let mut r = Reader::new(Limits::DEFAULT);
        let mut ev = Vec::new();
        let n = r.feed(&s, &mut ev);
        assert_eq!(
            ev,
            vec![Incoming::Close {
                code: Some(CloseCode::NORMAL),
                reason: "bye".into()
            }]
        );
        assert_eq!(
            n,
            s.len() - tail.len(),
            "nothing after the close is consumed"
        );
        assert!(r.is_finished());
    }

    #[test]
    fn close_inside_a_fragmented_message_is_answered_normally() {
        let mut s = client_frame(false, 1, b"part");
        s.extend(client_frame(true, 8, &1001u16.to_be_bytes()));
        assert_eq!(
            read(&s),
            vec![Incoming::Close {
                code: Some(CloseCode::GOING_AWAY),
                reason: String::new()
            }]
        );
    }

    #[test]
    fn invalid_close_payloads_are_protocol_errors() {
        assert_eq!(
            read(&client_frame(true, 8, &[1])),
            vec![Incoming::Error(ProtocolError::InvalidClosePayload)]
        );
        assert_eq!(
            read(&client_frame(true, 8, &1005u16.to_be_bytes())),
            vec![Incoming::Error(ProtocolError::InvalidCloseCode(1005))]
        );
        assert_eq!(
            read(&client_frame(true, 8, &[3, 0xE8, 0xFF])),
            vec![Incoming::Error(ProtocolError::InvalidCloseReason)]
        );
    }

    #[test]
    fn ping_over_125_bytes_is_a_protocol_error() {
        // §5.5
        assert_eq!(
            read(&client_frame(true, 9, &[0; 126])),
            vec![Incoming::Error(ProtocolError::ControlFrameTooLong)]
        );
    }

    #[test]
    fn only_an_incomplete_header_is_kept_back() {
        let f = client_frame(true, 2, &[7; 1000]);
        let mut r = Reader::new(Limits::DEFAULT);
        let mut ev = Vec::new();
        assert_eq!(
            r.feed(&f[..3], &mut ev),
            0,
            "a 3-byte prefix of an 8-byte header"
        );
        assert_eq!(
            r.feed(&f[..500], &mut ev),
            500,
            "partial payloads are consumed"
        );
        assert!(ev.is_empty());
        assert_eq!(r.feed(&f[500..], &mut ev), f.len() - 500);
        assert_eq!(
            ev,
            vec![Incoming::Message {
                kind: MessageKind::Binary,
                payload: vec![7; 1000]
            }]
        );
    }

    #[test]
    fn empty_messages_are_delivered() {
        assert_eq!(read(&client_frame(true, 1, b"")), vec![text("")]);
        assert_eq!(
            read(&client_frame(true, 2, b"")),
            vec![Incoming::Message {
                kind: MessageKind::Binary,
                payload: vec![]
            }]
        );
    }

    #[test]
    fn seven_sixteen_and_sixty_four_bit_lengths_are_read() {
        // §5.2: 0-125 inline, 126 + 16-bit, 127 + 64-bit.
        for len in [0usize, 125, 126, 65535, 65536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert_eq!(
                read(&client_frame(true, 2, &payload)),
                vec![Incoming::Message {
                    kind: MessageKind::Binary,
                    payload
                }],
                "{len}"
            );
        }
    }

    #[test]
    fn sixty_four_bit_length_with_top_bit_set_fails_with_1002() {
        // §5.2: the most significant bit MUST be 0.
        let mut f = vec![0x82, 0xFF];
        f.extend_from_slice(&(u64::MAX).to_be_bytes());
        f.extend_from_slice(&[1, 2, 3, 4]);
        let events = read(&f);
        assert_eq!(events, vec![Incoming::Error(ProtocolError::InvalidLength)]);
        assert_eq!(ProtocolError::InvalidLength.close_code(), 1002);
    }

    #[test]
    fn every_reserved_opcode_fails_the_connection() {
        // §5.2: 0x3-0x7 and 0xB-0xF.
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                read(&client_frame(true, op, b"x")),
                vec![Incoming::Error(ProtocolError::UnknownOpcode(op))]
            );
        }
    }

    #[test]
    fn fragmented_control_frame_is_a_protocol_error() {
        // §5.5: all control frames MUST NOT be fragmented.
        for op in [8, 9, 0xA] {
            assert_eq!(
                read(&client_frame(false, op, b"")),
                vec![Incoming::Error(ProtocolError::FragmentedControlFrame)]
            );
        }
    }

    #[test]
    fn message_of_exactly_the_limit_is_accepted() {
        // §10.4: the limit is inclusive.
        let limits = Limits {
            max_frame_size: 100,
            max_message_size: 150,
        };
        let mut s = client_frame(false, 2, &[1; 100]);
        s.extend(client_frame(true, 0, &[2; 50]));
        let mut expected = vec![1; 100];
        expected.extend_from_slice(&[2; 50]);
        assert_eq!(
            read_all(&s, limits),
            vec![Incoming::Message {
                kind: MessageKind::Binary,
                payload: expected
            }]
        );
    }

    #[test]
    fn invalid_utf8_in_a_middle_fragment_fails_before_the_final_one() {
        // §8.1 fail fast: the first fragment is valid, the second is not; no FIN yet.
        let mut s = client_frame(false, 1, "caf\u{e9} ".as_bytes());
        s.extend(client_frame(false, 0, b"\xED\xA0\x80"));
        assert_eq!(read(&s), vec![Incoming::Error(ProtocolError::InvalidUtf8)]);
    }

    #[test]
    fn code_point_split_across_feed_calls_is_valid() {
        // §8.1: "𝄞" (F0 9D 84 9E) cut at every point of the stream, one frame.
        let f = client_frame(true, 1, "a\u{1D11E}b".as_bytes());
        for cut in 0..=f.len() {
            let mut r = Reader::new(Limits::DEFAULT);
            let mut ev = Vec::new();
            let n = r.feed(&f[..cut], &mut ev);
            let rest = [&f[n..cut], &f[cut..]].concat();
            assert_eq!(r.feed(&rest, &mut ev), rest.len());
            assert_eq!(ev, vec![text("a\u{1D11E}b")], "cut {cut}");
        }
    }

    #[test]
    fn control_payload_split_across_feed_calls_is_reassembled() {
        // A control frame's partial payload is consumed into the reader's own buffer.
        let payload: Vec<u8> = (0..125).collect();
        let f = client_frame(true, 9, &payload);
        let mut r = Reader::new(Limits::DEFAULT);
        let mut ev = Vec::new();
        assert_eq!(r.feed(&f[..60], &mut ev), 60);
        assert!(ev.is_empty());
        assert_eq!(r.feed(&f[60..], &mut ev), f.len() - 60);
        assert_eq!(ev, vec![Incoming::Ping(payload)]);
    }

    #[test]
    fn nothing_is_consumed_after_a_protocol_error() {
        let mut s = client_frame(true, 1, b"ok");
        s.extend(raw_frame(true, 0, 1, None, b"unmasked"));
        let mut r = Reader::new(Limits::DEFAULT);
        let mut ev = Vec::new();
        r.feed(&s, &mut ev);
        assert_eq!(
            ev,
            vec![text("ok"), Incoming::Error(ProtocolError::UnmaskedFrame)]
        );
        assert!(r.is_finished());
        assert_eq!(r.feed(&client_frame(true, 1, b"more"), &mut ev), 0);
        assert_eq!(ev.len(), 2);
    }

    /// Feeds `bytes` one byte at a time (keeping back what is not consumed), so no
    /// frame is ever whole in the input: the general path only.
    fn read_bytewise(bytes: &[u8], limits: Limits) -> Vec<Incoming> {
        let mut r = Reader::new(limits);
        let mut ev = Vec::new();
        let mut pending = Vec::new();
        for &b in bytes {
            pending.push(b);
            let n = r.feed(&pending, &mut ev);
            pending.drain(..n);
        }
        ev
    }

    #[test]
    fn whole_small_frames_give_what_the_general_path_gives() {
        // The one-step path for a whole small frame against byte-at-a-time feeding, for
        // every length 0..=130 (both sides of 125), text and binary, valid and invalid
        // UTF-8, every key phase, with the stream also cut at every byte position.
        let limits = Limits {
            max_frame_size: 100,
            max_message_size: 90,
        };
        for (len, opcode, payload, key) in small_frame_cases(0..=130) {
            let mut stream = raw_frame(true, 0, opcode, Some(key), &payload);
            stream.extend(raw_frame(true, 0, 2, Some([9, 8, 7, 6]), b"next"));
            for lim in [Limits::DEFAULT, limits] {
                let slow = read_bytewise(&stream, lim);
                assert_eq!(read_all(&stream, lim), slow, "len {len} op {opcode}");
                for cut in 0..=stream.len() {
                    let mut r = Reader::new(lim);
                    let mut ev = Vec::new();
                    let n = r.feed(&stream[..cut], &mut ev);
                    let rest = [&stream[n..cut], &stream[cut..]].concat();
                    r.feed(&rest, &mut ev);
                    assert_eq!(ev, slow, "len {len} op {opcode} cut {cut}");
                }
            }
        }
    }

    /// Small data frames to try: each length in `lengths`, text and binary, valid and
    /// (but for the empty one) invalid UTF-8, each with its own key:
    /// (length, opcode, payload, key).
    fn small_frame_cases(
        lengths: impl IntoIterator<Item = usize>,
    ) -> Vec<(usize, u8, Vec<u8>, [u8; 4])> {
        let mut cases = Vec::new();
        for len in lengths {
            for opcode in [1u8, 2] {
                for bad_utf8 in [false, true] {
                    if bad_utf8 && len == 0 {
                        continue;
                    }
                    let mut payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    if bad_utf8 {
                        payload[len / 2] = 0xFF;
                    }
                    cases.push((len, opcode, payload, [len as u8, 0x5a, 0xc3, 0x81 ^ opcode]));
                }
            }
        }
        cases
    }

    /// What the direct lane asks of the reader for one frame: between messages, the
    /// next whole small message (as `ServerConnection::small_messages` does).
    fn take_small_message(
        r: &Reader,
        input: &[u8],
        into: &mut Vec<u8>,
    ) -> Option<(MessageKind, usize)> {
        if !r.is_between_messages() {
            return None;
        }
        r.next_small_message(input, into)
    }

    /// Reads `stream` as the direct lane does: `take_small_message` while it takes,
    /// `feed` for the rest (and then again from the top), cut at `cut` as two reads.
    fn read_with_lane(stream: &[u8], cut: usize, limits: Limits) -> Vec<Incoming> {
        let mut r = Reader::new(limits);
        let mut ev = Vec::new();
        let mut held = Vec::new();
        for read in [&stream[..cut], &stream[cut..]] {
            let mut input = [held.as_slice(), read].concat();
            loop {
                let mut pos = 0;
                let mut into = vec![0xEE; 3]; // the lane's reused buffer is not empty
                while held.is_empty() {
                    let Some((kind, len)) = take_small_message(&r, &input[pos..], &mut into) else {
                        break;
                    };
                    ev.push(Incoming::Message {
                        kind,
                        payload: into.clone(),
                    });
                    pos += len;
                }
                let n = r.feed(&input[pos..], &mut ev);
                input.drain(..pos + n);
                if n == 0 || input.is_empty() || r.is_finished() {
                    break;
                }
            }
            held = input;
        }
        ev
    }

    #[test]
    fn the_lane_takes_what_the_general_path_would_give_and_nothing_else() {
        // Whole small frames (every length around 125, both kinds, valid and invalid
        // UTF-8), a ping, a fragmented message and a 16-bit length, cut into two reads
        // at every byte: the lane and the general path together give exactly what the
        // general path alone gives.
        let limits = Limits {
            max_frame_size: 100,
            max_message_size: 90,
        };
        for (len, opcode, payload, key) in
            small_frame_cases([0, 1, 5, 89, 90, 91, 100, 101, 125, 126, 130])
        {
            let mut stream = raw_frame(true, 0, 2, Some([1, 2, 3, 4]), b"first");
            stream.extend(raw_frame(true, 0, 9, Some([4, 3, 2, 1]), b"\x82\x81ab"));
            stream.extend(raw_frame(false, 0, 1, Some([5, 5, 5, 5]), b"fr"));
            stream.extend(raw_frame(true, 0, 0, Some([6, 6, 6, 6]), b"ag"));
            stream.extend(raw_frame(true, 0, opcode, Some(key), &payload));
            stream.extend(raw_frame(true, 0, 2, Some([9, 8, 7, 6]), b"next"));
            for lim in [Limits::DEFAULT, limits] {
                let want = read_bytewise(&stream, lim);
                for cut in 0..=stream.len() {
                    assert_eq!(
                        read_with_lane(&stream, cut, lim),
                        want,
                        "len {len} op {opcode} cut {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_lane_takes_nothing_in_the_middle_of_a_message_or_after_the_end() {
        let next = raw_frame(true, 0, 2, Some([9, 8, 7, 6]), b"next");
        let mut into = Vec::new();
        // A fragmented message in progress.
        let mut r = Reader::new(Limits::DEFAULT);
        r.feed(
            &raw_frame(false, 0, 2, Some([1, 1, 1, 1]), b"a"),
            &mut Vec::new(),
        );
        assert_eq!(take_small_message(&r, &next, &mut into), None);
        // A control frame's payload in progress.
        let mut r = Reader::new(Limits::DEFAULT);
        let ping = raw_frame(true, 0, 9, Some([2, 2, 2, 2]), b"0123456789");
        assert_eq!(r.feed(&ping[..8], &mut Vec::new()), 8);
        assert_eq!(take_small_message(&r, &next, &mut into), None);
        // After a close.
        let mut r = Reader::new(Limits::DEFAULT);
        r.feed(
            &raw_frame(true, 0, 8, Some([3, 3, 3, 3]), &[3, 232]),
            &mut Vec::new(),
        );
        assert!(r.is_finished());
        assert_eq!(take_small_message(&r, &next, &mut into), None);
        // Between messages it takes the frame, and only it.
        let r = Reader::new(Limits::DEFAULT);
        let mut two = next.clone();
        two.extend_from_slice(&next);
        assert_eq!(
            take_small_message(&r, &two, &mut into),
            Some((MessageKind::Binary, next.len()))
        );
        assert_eq!(into, b"next");
    }

    #[test]
    fn frames_the_small_path_leaves_alone_are_still_checked() {
        // Near misses of the one-step path: each must get the general path's answer.
        let cases: Vec<(Vec<u8>, Incoming)> = vec![
            (
                raw_frame(true, 0, 1, None, b"hi"),
                Incoming::Error(ProtocolError::UnmaskedFrame),
            ),
            (
                raw_frame(true, 4, 2, Some([1, 2, 3, 4]), b"hi"),
                Incoming::Error(ProtocolError::ReservedBitsSet),
            ),
            (
                raw_frame(true, 0, 3, Some([1, 2, 3, 4]), b"hi"),
                Incoming::Error(ProtocolError::UnknownOpcode(3)),
            ),
            (
                client_frame(true, 0, b"hi"),
                Incoming::Error(ProtocolError::UnexpectedContinuation),
            ),
        ];
        for (frame, expected) in cases {
            assert_eq!(read(&frame), vec![expected]);
        }
        // A whole small frame inside a fragmented message is a new message: §5.4.
        let mut s = client_frame(false, 1, b"a");
        s.extend(client_frame(true, 2, b"b"));
        assert_eq!(
            read(&s),
            vec![Incoming::Error(ProtocolError::ExpectedContinuation)]
        );
        // Over the limits: the general path says which one (§10.4).
        let limits = Limits {
            max_frame_size: 10,
            max_message_size: 5,
        };
        assert_eq!(
            read_all(&client_frame(true, 2, &[0; 11]), limits),
            vec![Incoming::Error(ProtocolError::FrameTooLarge)]
        );
        assert_eq!(
            read_all(&client_frame(true, 2, &[0; 6]), limits),
            vec![Incoming::Error(ProtocolError::MessageTooLarge)]
        );
    }

    #[test]
    fn messages_do_not_share_buffers_or_validator_state() {
        // A truncated code point cannot leak into the next message: each is whole (§8.1).
        let mut s = client_frame(true, 1, b"abc");
        s.extend(client_frame(true, 2, &[0xE2, 0x82]));
        s.extend(client_frame(true, 1, b"\xE2\x82\xAC"));
        assert_eq!(
            read(&s),
            vec![
                text("abc"),
                Incoming::Message {
                    kind: MessageKind::Binary,
                    payload: vec![0xE2, 0x82]
                },
                text("\u{20AC}")
            ]
        );
    }
}
