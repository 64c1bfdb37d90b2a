//! One server connection, sans-I/O, from the first request byte to closed.
//!
//! Bytes go in ([`ServerConnection::receive`], [`ServerConnection::receive_eof`]);
//! events come out into the caller's vector, and bytes to write come out through three
//! slots the I/O layer drains: [`take_output`](ServerConnection::take_output) (HTTP
//! responses, pings), [`take_pong`](ServerConnection::take_pong) (the pending pongs,
//! at most [`MAX_PENDING_PONGS`], coalesced beyond) and [`take_close_frame`](ServerConnection::take_close_frame) (our close
//! frame, whose write the I/O layer reports back with
//! [`on_close_written`](ServerConnection::on_close_written)). The connection also says
//! when to half-close ([`wants_half_close`](ServerConnection::wants_half_close)) and
//! which deadline it is waiting on ([`timer`](ServerConnection::timer)).
//!
//! Every protocol decision is made here, once: what answers a ping, when a close is
//! complete, which code fails a connection, and that messages completed before a
//! failure or a close reach the application (and its replies the wire) before our
//! close frame does (see [`ConnEvent::Barrier`]).

use std::collections::VecDeque;
use std::sync::Arc;

use super::close::{encode_close_payload, CloseCode, MAX_CLOSE_REASON};
use super::deflate::{Compressed, MessageDeflater, MessageInflater};
use super::error::{ProtocolError, SendError};
use super::extensions::{negotiate_deflate, DeflatePolicy};
use super::frame::{
    encode_frame, server_header, server_header_len, OpCode, MAX_CONTROL_PAYLOAD,
    MAX_SERVER_HEADER_LEN,
};
use super::handshake::{self, HandshakePolicy, UpgradeRequest};
use super::http::{HeadLimits, RequestHead, RequestParser};
use super::reader::{Allocate, Incoming, IncomingSink, MessageBuffers, Reader};
use super::{Limits, MessageKind};

/// Where the reader puts what it completes during [`ServerConnection::receive`]:
/// messages go straight to the caller's events (what [`ServerConnection::on_incoming`]
/// would do with them: the state cannot change while only messages come), and from
/// the first other item on, everything waits in `rest` for `on_incoming`, in order.
/// The common batch of messages then needs no vector of its own.
struct EventSink<'a> {
    events: &'a mut Vec<ConnEvent>,
    /// The state is `Open` (read once: only the items in `rest` can change it).
    open: bool,
    rest: Vec<Incoming>,
}

impl IncomingSink for EventSink<'_> {
    #[inline(always)]
    fn push_incoming(&mut self, item: Incoming) {
        match item {
            Incoming::Message { kind, payload } if self.rest.is_empty() => {
                // §5.5.1: after our close, data from the peer is read but not acted
                // upon (the same as `on_incoming`).
                if self.open {
                    self.events.push(ConnEvent::Message { kind, payload });
                }
            }
            other => self.rest.push(other),
        }
    }
}

/// Pongs owed but not written yet. Every ping is answered while the socket takes
/// writes (some clients check that ten pings get ten pongs); a peer that pings and
/// does not read gets only its most recent pings answered (§5.5.3 allows answering
/// just the latest), so a ping flood costs at most this many small frames.
pub(crate) const MAX_PENDING_PONGS: usize = 16;

/// Bytes the peer may still send after the connection is finished (both close frames
/// exchanged, or failed) before we stop waiting for its EOF: enough for frames already
/// in flight, not enough to make us read a flood.
pub(crate) const DISCARD_AFTER_FINISH: usize = 64 * 1024;

/// What a connection needs to know from the server's configuration.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub head_limits: HeadLimits,
    pub limits: Limits,
    pub policy: HandshakePolicy,
    /// permessage-deflate (RFC 7692): negotiated in [`ServerConnection::accept`].
    pub deflate: DeflatePolicy,
}

/// Something the I/O layer must act on or report.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// A request without `Upgrade: websocket`: answer it with
    /// [`ServerConnection::respond`] (one request per connection).
    HttpRequest(RequestHead),
    /// A valid upgrade request: answer it with [`ServerConnection::accept`] or
    /// [`ServerConnection::reject`].
    UpgradeRequest(Box<(RequestHead, UpgradeRequest)>),
    /// The request head was malformed or refused (status sent, connection finishing).
    BadRequest {
        status: u16,
    },
    /// A complete message (text is valid UTF-8).
    Message {
        kind: MessageKind,
        payload: Vec<u8>,
    },
    /// A ping, already answered (its pong waits in the pong slot).
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The peer broke the protocol (already reflected in the close that will follow).
    ProtocolError(ProtocolError),
    /// Our close frame waits until the application has handled every event before this
    /// one (§7.1.7 fails the connection, but the messages completed before the failure
    /// or the peer's close are delivered, and replies to them go out first). Release it
    /// with [`ServerConnection::release_barrier`].
    Barrier,
}

/// How the connection ended, as far as the protocol knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub code: u16,
    pub reason: String,
    /// The closing handshake completed (§7.1.4).
    pub clean: bool,
}

impl Outcome {
    /// Lost without a closing handshake (§7.1.5: reported as 1006).
    pub fn lost(reason: &str) -> Outcome {
        Outcome {
            code: CloseCode::ABNORMAL.0,
            reason: reason.to_string(),
            clean: false,
        }
    }
}

/// The deadline a connection is waiting on; the I/O layer owns the clock and the
/// durations, and calls [`ServerConnection::on_timer`] when it passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The request head, or the application's accept/reject, is not there yet.
    Handshake,
    /// Open: the keepalive ping and the idle timeout, measured from the last input.
    Keepalive,
    /// Open: a keepalive ping is out; the peer must send something.
    PongDue,
    /// Our close frame waits for the application (see [`ConnEvent::Barrier`]).
    FailureGrace,
    /// Our close frame is queued but not yet written (the peer reads slowly).
    CloseFlush,
    /// Our close frame is written; the peer must answer it.
    CloseAck,
    /// Finished and half-closed: the peer must close TCP.
    PeerEof,
}

/// What the I/O layer does after [`ServerConnection::on_timer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimerAction {
    /// Nothing more: drain the output slots as usual.
    Continue,
    /// Drop the connection now, after writing what the output slots hold if the socket
    /// takes it, and report this outcome.
    Drop(Outcome),
}

/// Which keepalive deadline passed (the I/O layer computes both from the last input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keepalive {
    Ping,
    Idle,
}

#[derive(Debug)]
enum State {
    // Boxed so that an open connection does not carry the parser's size.
    Handshake(Box<RequestParser>),
    AwaitingAccept(Box<UpgradeRequest>),
    Open,
    /// The peer closed or failed; our close frame (and the outcome) wait for the
    /// application to pass the barrier.
    Deferred(Box<DeferredClose>),
    /// Our close frame is queued; the peer's is awaited. Its data is discarded.
    CloseSent,
    /// Nothing more to say: flush, half-close, wait for EOF.
    Finished(Option<Box<Outcome>>),
}

/// What `State::Deferred` holds (boxed: the state of every idle connection is only as
/// large as its largest variant).
#[derive(Debug)]
struct DeferredClose {
    close: Vec<u8>,
    outcome: Outcome,
}

/// The sans-I/O server side of one WebSocket connection.
#[derive(Debug)]
pub struct ServerConnection {
    /// Shared by every connection of a server (one allocation, not one per connection).
    settings: Arc<Settings>,
    state: State,
    reader: Reader,
    /// Input not consumed yet: an incomplete frame header, or the bytes after the
    /// request head while the upgrade awaits an answer.
    input: Vec<u8>,
    /// What waits to be written; allocated only while something does.
    outbox: Option<Box<Outbox>>,
    /// Pongs coalesced since the I/O layer last took the count.
    pongs_coalesced: u32,
    close_written: bool,
    half_closed: bool,
    awaiting_pong: bool,
    discarded: usize,
    /// Set when permessage-deflate was negotiated: compresses outgoing messages.
    /// (Boxed: a connection without compression carries a pointer, not the state.)
    deflater: Option<Box<MessageDeflater>>,
}

/// Bytes the connection wants written, held only while there are some: an idle
/// connection carries one empty pointer instead of three empty buffers.
#[derive(Debug, Default)]
struct Outbox {
    /// Engine-made bytes (HTTP responses, pings), in order.
    output: Vec<u8>,
    /// Payloads of the pings still owed a pong (at most [`MAX_PENDING_PONGS`]).
    pongs: VecDeque<Vec<u8>>,
    /// Our close frame, once it is to be written.
    close_frame: Option<Vec<u8>>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.output.is_empty() && self.pongs.is_empty() && self.close_frame.is_none()
    }
}

/// Whole small messages taken straight from the input (see
/// [`ServerConnection::small_messages`]).
pub struct SmallMessages<'c> {
    reader: &'c Reader,
}

impl SmallMessages<'_> {
    /// When `input` starts with a whole small data message (see
    /// [`Reader::next_small_message`]), unmasks its payload into `into` and returns its
    /// kind and frame length. `None`, with nothing consumed, for anything else.
    #[inline]
    pub fn next(&self, input: &[u8], into: &mut Vec<u8>) -> Option<(MessageKind, usize)> {
        self.reader.next_small_message(input, into)
    }
}

impl ServerConnection {
    /// A connection whose first bytes will be the HTTP request head.
    pub fn new(settings: impl Into<Arc<Settings>>) -> Self {
        let settings = settings.into();
        let parser = Box::new(RequestParser::new(settings.head_limits));
        Self::with_state(settings, State::Handshake(parser))
    }

    /// A connection past its handshake (for tests and fuzzing of the frame path).
    pub fn new_open(settings: impl Into<Arc<Settings>>) -> Self {
        Self::with_state(settings.into(), State::Open)
    }

    fn with_state(settings: Arc<Settings>, state: State) -> Self {
        ServerConnection {
            reader: Reader::new(settings.limits),
            settings,
            state,
            input: Vec::new(),
            outbox: None,
            pongs_coalesced: 0,
            close_written: false,
            half_closed: false,
            awaiting_pong: false,
            discarded: 0,
            deflater: None,
        }
    }

    // ---- input ---------------------------------------------------------------------

    /// Whether the I/O layer should read the socket: not while an upgrade awaits the
    /// application's answer, nor once a finished connection's peer has sent more than
    /// [`DISCARD_AFTER_FINISH`] bytes.
    pub fn wants_input(&self) -> bool {
        match self.state {
            State::AwaitingAccept(_) => false,
            State::Finished(_) => self.discarded <= DISCARD_AFTER_FINISH,
            _ => true,
        }
    }

    /// Processes received bytes (any chunking), appending what they complete to
    /// `events`. An empty `data` processes input held back earlier (after `accept`).
    pub fn receive(&mut self, data: &[u8], events: &mut Vec<ConnEvent>) {
        self.receive_with(data, events, &mut Allocate);
    }

    /// [`receive`](Self::receive), with new message buffers taken from `buffers`.
    pub fn receive_with(
        &mut self,
        data: &[u8],
        events: &mut Vec<ConnEvent>,
        buffers: &mut dyn MessageBuffers,
    ) {
        if !data.is_empty() {
            self.awaiting_pong = false;
        }
        match &mut self.state {
            State::Handshake(parser) => match parser.feed(data) {
                Ok(None) => {}
                Ok(Some((head, rest))) => self.on_request_head(head, rest, events),
                Err(err) => {
                    let body = format!("{}\n", err.message);
                    self.finish_with_response(handshake::text_response(
                        err.status,
                        body.as_bytes(),
                    ));
                    events.push(ConnEvent::BadRequest { status: err.status });
                }
            },
            State::AwaitingAccept(_) => self.input.extend_from_slice(data),
            State::Finished(_) => self.discarded += data.len(),
            State::Deferred(_) => {} // the reader is finished: nothing after the error
            State::Open | State::CloseSent => self.receive_frames(data, events, buffers),
        }
    }

    /// The common messages taken on their own, for a caller that hands each on at
    /// once (handler mode's direct lane): when the connection is open, nothing is held
    /// back and no message is in progress, a [`SmallMessages`] that takes the whole
    /// small data messages `input` starts with, one at a time. Each is consumed exactly
    /// as [`receive_with`](Self::receive_with) would consume it, which would emit it as
    /// a `ConnEvent::Message`. `None` otherwise: give the input to `receive_with`. The
    /// caller has input from the peer (so no ping of ours is still unanswered).
    #[inline]
    pub fn small_messages(&mut self) -> Option<SmallMessages<'_>> {
        if !matches!(self.state, State::Open)
            || !self.input.is_empty()
            || !self.reader.is_between_messages()
        {
            return None;
        }
        self.awaiting_pong = false;
        Some(SmallMessages {
            reader: &self.reader,
        })
    }

    fn on_request_head(&mut self, head: RequestHead, rest: Vec<u8>, events: &mut Vec<ConnEvent>) {
        if !handshake::is_upgrade_request(&head) {
            // Served by the I/O layer's HTTP fallback; `respond` finishes the connection.
            self.state = State::Finished(None);
            events.push(ConnEvent::HttpRequest(head));
            return;
        }
        match handshake::validate(&head, &self.settings.policy) {
            Ok(upgrade) => {
                self.input = rest;
                self.state = State::AwaitingAccept(Box::new(upgrade.clone()));
                events.push(ConnEvent::UpgradeRequest(Box::new((head, upgrade))));
            }
            Err(rejection) => {
                self.finish_with_response(handshake::render_rejection(&rejection));
                events.push(ConnEvent::BadRequest {
                    status: rejection.status,
                });
            }
        }
    }

    fn receive_frames(
        &mut self,
        data: &[u8],
        events: &mut Vec<ConnEvent>,
        buffers: &mut dyn MessageBuffers,
    ) {
        let mut sink = EventSink {
            open: matches!(self.state, State::Open),
            events,
            rest: Vec::new(),
        };
        if self.input.is_empty() {
            let consumed = self.reader.feed_with(data, &mut sink, buffers);
            self.input.extend_from_slice(&data[consumed..]);
        } else {
            let mut buf = std::mem::take(&mut self.input);
            buf.extend_from_slice(data);
            let consumed = self.reader.feed_with(&buf, &mut sink, buffers);
            buf.drain(..consumed);
            self.input = buf;
        }
        if self.reader.is_finished() {
            self.input = Vec::new();
        }
        let EventSink { events, rest, .. } = sink;
        for item in rest {
            self.on_incoming(item, events);
        }
    }

    fn on_incoming(&mut self, item: Incoming, events: &mut Vec<ConnEvent>) {
        let open = matches!(self.state, State::Open);
        match item {
            // §5.5.1: after our close, data from the peer is read but not acted upon.
            Incoming::Message { kind, payload } if open => {
                events.push(ConnEvent::Message { kind, payload })
            }
            Incoming::Message { .. } => {}
            Incoming::Ping(payload) => {
                if open {
                    // §5.5.3: answering only the most recent pings is allowed, so a
                    // peer that pings and never reads costs a few pongs of memory.
                    let outbox = self.outbox.get_or_insert_with(Box::default);
                    if outbox.pongs.len() == MAX_PENDING_PONGS {
                        outbox.pongs.pop_front();
                        self.pongs_coalesced = self.pongs_coalesced.saturating_add(1);
                    }
                    outbox.pongs.push_back(payload.clone());
                }
                events.push(ConnEvent::Ping(payload));
            }
            Incoming::Pong(payload) => events.push(ConnEvent::Pong(payload)),
            Incoming::Close { code, reason } => {
                let outcome = Outcome {
                    code: code.map_or(CloseCode::NO_STATUS.0, |c| c.0),
                    reason,
                    clean: true,
                };
                if open {
                    // §5.5.1: echo the code received (an empty close gets an empty one).
                    let mut payload = Vec::new();
                    if let Some(c) = code {
                        encode_close_payload(c, "", &mut payload);
                    }
                    self.defer_close(payload, outcome, events);
                } else {
                    // Our close was sent first: the closing handshake is complete.
                    self.state = State::Finished(Some(Box::new(outcome)));
                }
            }
            Incoming::Error(error) => {
                events.push(ConnEvent::ProtocolError(error.clone()));
                let reason = error.to_string();
                let outcome = Outcome {
                    code: error.close_code(),
                    reason: reason.clone(),
                    clean: false,
                };
                if open {
                    // §7.1.7: fail the connection, with the error's code.
                    let mut payload = Vec::new();
                    encode_close_payload(CloseCode(outcome.code), &reason, &mut payload);
                    self.defer_close(payload, outcome, events);
                } else {
                    // One close frame per side: ours is out already.
                    self.state = State::Finished(Some(Box::new(outcome)));
                }
            }
        }
    }

    fn defer_close(&mut self, payload: Vec<u8>, outcome: Outcome, events: &mut Vec<ConnEvent>) {
        let mut close = Vec::with_capacity(payload.len() + 2);
        encode_frame(OpCode::Close, true, &payload, &mut close);
        self.state = State::Deferred(Box::new(DeferredClose { close, outcome }));
        events.push(ConnEvent::Barrier);
    }

    /// The application has handled every event before the barrier (or the grace
    /// period is over): our close frame goes out now, after what it sent meanwhile.
    pub fn release_barrier(&mut self) {
        if !self.is_deferred() {
            return;
        }
        self.flush_pong_before_close();
        let placeholder = State::Finished(None);
        if let State::Deferred(deferred) = std::mem::replace(&mut self.state, placeholder) {
            let DeferredClose { close, outcome } = *deferred;
            self.outbox().close_frame = Some(close);
            self.state = State::Finished(Some(Box::new(outcome)));
        }
    }

    /// True while our close frame waits for [`release_barrier`](Self::release_barrier).
    pub fn is_deferred(&self) -> bool {
        matches!(self.state, State::Deferred(_))
    }

    /// The peer closed TCP (or it failed): how the connection ended.
    pub fn receive_eof(&mut self, fallback: &str) -> Outcome {
        match std::mem::replace(&mut self.state, State::Finished(None)) {
            State::Finished(Some(o)) => *o,
            State::Deferred(d) => d.outcome,
            _ => Outcome::lost(fallback),
        }
    }

    /// How the connection ends if it is dropped now for `reason`: a completed closing
    /// handshake keeps its clean report; anything else is `lost(reason)` (or `code`).
    pub fn outcome_if_dropped(&self, code: CloseCode, reason: &str) -> Outcome {
        match &self.state {
            State::Finished(Some(o)) => Outcome::clone(o),
            _ => Outcome {
                code: code.0,
                reason: reason.to_string(),
                clean: false,
            },
        }
    }

    // ---- handshake answers ---------------------------------------------------------

    /// Completes an upgrade: the 101 goes to the output. `subprotocol` overrides the
    /// server's choice and must be one the client offered; `headers` are added to the
    /// response. Returns the subprotocol the 101 names. Input that followed the head
    /// is processed by the next [`receive`](Self::receive) call (an empty one will do).
    pub fn accept(
        &mut self,
        subprotocol: Option<&str>,
        headers: &[(String, String)],
    ) -> Result<Option<String>, HandshakeAnswerError> {
        let State::AwaitingAccept(upgrade) = &self.state else {
            return Err(HandshakeAnswerError::NotAwaitingAnswer);
        };
        let chosen = match subprotocol {
            None => upgrade.subprotocol.clone(),
            Some(p) if upgrade.offered_subprotocols.iter().any(|o| o == p) => Some(p.to_string()),
            Some(_) => return Err(HandshakeAnswerError::SubprotocolNotOffered),
        };
        let deflate = negotiate_deflate(&upgrade.extensions, &self.settings.deflate);
        let response = handshake::render_accept(
            &upgrade.accept,
            chosen.as_deref(),
            deflate.as_ref().map(|d| d.response.as_str()),
            headers,
        );
        if let Some(agreement) = &deflate {
            self.reader.enable_inflate(MessageInflater::new(agreement));
            self.deflater = Some(Box::new(MessageDeflater::new(agreement)));
        }
        self.outbox().output.extend_from_slice(&response);
        self.state = State::Open;
        Ok(chosen)
    }

    /// Refuses an upgrade (or answers a plain HTTP request) with a complete response.
    pub fn reject(&mut self, status: u16, body: &[u8]) -> Result<(), HandshakeAnswerError> {
        if !matches!(self.state, State::AwaitingAccept(_)) {
            return Err(HandshakeAnswerError::NotAwaitingAnswer);
        }
        self.input = Vec::new();
        self.finish_with_response(handshake::text_response(status, body));
        self.state = State::Finished(Some(Box::new(Outcome::lost("upgrade rejected"))));
        Ok(())
    }

    /// Answers the request of a [`ConnEvent::HttpRequest`] with `response` (a complete
    /// HTTP response), then finishes.
    pub fn respond(&mut self, response: &[u8]) {
        self.outbox().output.extend_from_slice(response);
        self.state = State::Finished(None);
    }

    fn finish_with_response(&mut self, response: Vec<u8>) {
        self.outbox().output.extend_from_slice(&response);
        self.state = State::Finished(None);
    }

    // ---- application output ---------------------------------------------------------

    /// Whether data frames may be sent now (open, or open with our close deferred).
    #[inline]
    pub fn can_send(&self) -> bool {
        matches!(self.state, State::Open | State::Deferred(_))
    }

    /// Input held back: an incomplete frame header, or what followed the request head
    /// while an upgrade awaits its answer.
    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

    /// Whether the handshake has completed.
    #[inline]
    pub fn is_open_or_later(&self) -> bool {
        !matches!(self.state, State::Handshake(_) | State::AwaitingAccept(_))
    }

    /// The header of a data frame carrying a whole message of `len` bytes, if one may
    /// be sent now (§5.5.1: not after our close frame).
    pub fn message_header(
        &self,
        kind: MessageKind,
        len: usize,
    ) -> Result<([u8; MAX_SERVER_HEADER_LEN], usize), SendError> {
        if !self.can_send() {
            return Err(SendError::Closing);
        }
        Ok(server_header(kind_opcode(kind), true, len as u64))
    }

    /// The two-byte header of a message of at most 125 bytes, when this connection
    /// sends it as it is (no permessage-deflate) and may send now (§5.5.1): what
    /// [`encode_message`](Self::encode_message) would make of it, for the common small
    /// reply without the general encoding. None otherwise: encode it the general way.
    #[inline]
    pub fn small_plain_header(&self, kind: MessageKind, len: usize) -> Option<[u8; 2]> {
        if len > 125 || self.deflater.is_some() || !self.can_send() {
            return None;
        }
        Some([0x80 | kind_opcode(kind) as u8, len as u8])
    }

    /// Whether permessage-deflate was negotiated (RFC 7692).
    pub fn deflate_negotiated(&self) -> bool {
        self.deflater.is_some()
    }

    /// The wire length of an uncompressed message of `len` bytes (the bound a send is
    /// admitted against), or why nothing may be sent.
    #[inline]
    pub fn message_wire_len(&self, len: usize) -> Result<usize, SendError> {
        if !self.can_send() {
            return Err(SendError::Closing);
        }
        Ok(server_header_len(len as u64) + len)
    }

    /// Encodes one whole message as a frame, compressed if permessage-deflate was
    /// negotiated and the message is big enough (the one place outgoing data frames
    /// are made). Call it only once the message will be written: with context
    /// takeover the compressor remembers it.
    #[inline(always)]
    pub fn encode_message(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
    ) -> Result<EncodedMessage, SendError> {
        if !self.can_send() {
            return Err(SendError::Closing);
        }
        Ok(encode_with(self.deflater.as_deref_mut(), kind, payload))
    }

    /// The key under which a broadcast can share this connection's frame: connections
    /// with the same key get the same bytes for the same message.
    pub fn frame_sharing(&self) -> FrameSharing {
        match &self.deflater {
            None => FrameSharing::Plain,
            Some(d) => match d.stateless_window() {
                Some((window_bits, level)) => FrameSharing::Stateless {
                    window_bits,
                    level,
                    min_size: d.min_size(),
                },
                None => FrameSharing::PerConnection,
            },
        }
    }

    /// Queues a ping (payload at most 125 bytes, §5.5) to the output.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlFrameTooLong);
        }
        if !self.can_send() {
            return Err(SendError::Closing);
        }
        encode_frame(OpCode::Ping, true, payload, &mut self.outbox().output);
        Ok(())
    }

    /// Starts the closing handshake (§7.1.2) with a code valid on the wire and a reason
    /// of at most 123 bytes. With our close deferred, that close goes out instead.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if !code.is_valid_on_wire() {
            return Err(SendError::InvalidCloseCode);
        }
        match self.state {
            State::Open => {}
            State::Deferred(_) => {
                self.release_barrier();
                return Ok(());
            }
            _ => return Err(SendError::Closing),
        }
        let mut payload = Vec::with_capacity(2 + reason.len().min(MAX_CLOSE_REASON));
        encode_close_payload(code, reason, &mut payload);
        let mut frame = Vec::with_capacity(payload.len() + 2);
        encode_frame(OpCode::Close, true, &payload, &mut frame);
        self.flush_pong_before_close();
        self.outbox().close_frame = Some(frame);
        self.state = State::CloseSent;
        Ok(())
    }

    /// A pong still owed goes out before our close frame; none may follow it (§5.5.1).
    fn flush_pong_before_close(&mut self) {
        if let Some(outbox) = self.outbox.as_deref_mut() {
            for payload in outbox.pongs.drain(..) {
                encode_frame(OpCode::Pong, true, &payload, &mut outbox.output);
            }
        }
    }

    fn outbox(&mut self) -> &mut Outbox {
        self.outbox.get_or_insert_with(Box::default)
    }

    /// Frees the outbox once everything in it was taken.
    fn tidy_outbox(&mut self) {
        if self.outbox.as_ref().is_some_and(|o| o.is_empty()) {
            self.outbox = None;
        }
    }

    // ---- output slots ---------------------------------------------------------------

    /// Engine-made bytes to write (HTTP responses, pings), in order.
    pub fn take_output(&mut self) -> Option<Vec<u8>> {
        let outbox = self.outbox.as_deref_mut()?;
        let output = (!outbox.output.is_empty()).then(|| std::mem::take(&mut outbox.output));
        self.tidy_outbox();
        output
    }

    /// Whether any slot holds bytes to write.
    pub fn has_output(&self) -> bool {
        self.outbox.as_ref().is_some_and(|o| !o.is_empty())
    }

    /// The pending pong frames, if any, in one buffer. Take them only when they can be
    /// written now: while they wait, later pings replace the oldest instead of
    /// queueing more pongs.
    pub fn take_pong(&mut self) -> Option<Vec<u8>> {
        let can_send = self.can_send();
        let outbox = self.outbox.as_deref_mut()?;
        let mut frames = None;
        if can_send && !outbox.pongs.is_empty() {
            let mut bytes = Vec::new();
            for payload in outbox.pongs.drain(..) {
                encode_frame(OpCode::Pong, true, &payload, &mut bytes);
            }
            frames = Some(bytes);
        }
        outbox.pongs.clear();
        self.tidy_outbox();
        frames
    }

    /// Pings left unanswered because more recent ones were pending, since the last
    /// call (the count restarts at 0: the caller adds it to its own total).
    pub fn take_pongs_coalesced(&mut self) -> u32 {
        std::mem::take(&mut self.pongs_coalesced)
    }

    /// Our close frame, once it is to be written (after everything queued before it).
    pub fn take_close_frame(&mut self) -> Option<Vec<u8>> {
        let frame = self.outbox.as_deref_mut()?.close_frame.take();
        self.tidy_outbox();
        frame
    }

    /// The I/O layer wrote our close frame completely: the close timeout starts now.
    pub fn on_close_written(&mut self) {
        self.close_written = true;
    }

    /// Time to half-close (§7.1.1: the server closes TCP first): nothing more will be
    /// written. The I/O layer does it once its queue is empty, then calls
    /// [`on_half_closed`](Self::on_half_closed).
    pub fn wants_half_close(&self) -> bool {
        matches!(self.state, State::Finished(_))
            && !self.half_closed
            && !self
                .outbox
                .as_ref()
                .is_some_and(|o| !o.output.is_empty() || o.close_frame.is_some())
    }

    pub fn on_half_closed(&mut self) {
        self.half_closed = true;
    }

    // ---- timers ---------------------------------------------------------------------

    /// The deadline the connection waits on now, if any.
    pub fn timer(&self) -> Option<Timer> {
        match &self.state {
            State::Handshake(_) | State::AwaitingAccept(_) => Some(Timer::Handshake),
            State::Open if self.awaiting_pong => Some(Timer::PongDue),
            State::Open => Some(Timer::Keepalive),
            State::Deferred(_) => Some(Timer::FailureGrace),
            State::CloseSent if self.close_written => Some(Timer::CloseAck),
            State::CloseSent => Some(Timer::CloseFlush),
            State::Finished(_) if self.half_closed => Some(Timer::PeerEof),
            // Finished, still writing its last bytes: as slow as a close being flushed.
            State::Finished(_) => Some(Timer::CloseFlush),
        }
    }

    /// A deadline passed. `keepalive` says which one when `timer` is `Keepalive`.
    pub fn on_timer(&mut self, timer: Timer, keepalive: Keepalive) -> TimerAction {
        if self.timer() != Some(timer) {
            return TimerAction::Continue; // the state moved on since it was armed
        }
        match timer {
            Timer::Handshake => {
                if matches!(self.state, State::Handshake(_)) {
                    self.outbox()
                        .output
                        .extend_from_slice(&handshake::text_response(
                            408,
                            b"handshake timed out\n",
                        ));
                }
                TimerAction::Drop(Outcome::lost("handshake timed out"))
            }
            Timer::Keepalive => match keepalive {
                Keepalive::Ping => {
                    let _ = self.ping(b"");
                    self.awaiting_pong = true;
                    TimerAction::Continue
                }
                Keepalive::Idle => {
                    let _ = self.close(CloseCode::GOING_AWAY, "idle timeout");
                    TimerAction::Continue
                }
            },
            Timer::PongDue => TimerAction::Drop(Outcome::lost("no pong within the pong timeout")),
            Timer::FailureGrace => {
                self.release_barrier();
                TimerAction::Continue
            }
            Timer::CloseFlush | Timer::CloseAck => TimerAction::Drop(
                self.outcome_if_dropped(CloseCode::ABNORMAL, "peer did not answer the close"),
            ),
            Timer::PeerEof => TimerAction::Drop(
                self.outcome_if_dropped(CloseCode::ABNORMAL, "peer did not close"),
            ),
        }
    }
}

/// Why `accept` / `reject` could not be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeAnswerError {
    NotAwaitingAnswer,
    SubprotocolNotOffered,
}

/// A whole message encoded as one frame (see [`ServerConnection::encode_message`]).
#[derive(Debug)]
pub enum EncodedMessage {
    /// The header; the payload goes out unchanged after it.
    Plain([u8; MAX_SERVER_HEADER_LEN], usize),
    /// The complete frame (RSV1 set, compressed payload) is `bytes[start..]`.
    Compressed { bytes: Vec<u8>, start: usize },
}

impl EncodedMessage {
    /// The frame's two parts to write, in order: header, then body.
    #[inline(always)]
    pub fn parts<'a>(&'a self, payload: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        match self {
            EncodedMessage::Plain(h, n) => (&h[..*n], payload),
            EncodedMessage::Compressed { bytes, start } => (&bytes[*start..], &[]),
        }
    }

    /// The frame's length on the wire.
    pub fn wire_len(&self, payload: &[u8]) -> usize {
        let (h, b) = self.parts(payload);
        h.len() + b.len()
    }
}

/// Frames `payload`, compressing it with `deflater` when it takes it (RFC 7692 §6:
/// RSV1 on the single frame of a compressed message).
#[inline(always)]
fn encode_with(
    deflater: Option<&mut MessageDeflater>,
    kind: MessageKind,
    payload: &[u8],
) -> EncodedMessage {
    if let Some(d) = deflater {
        if let Some(compressed) = encode_compressed(d, kind, payload) {
            return compressed;
        }
    }
    let (h, n) = server_header(kind_opcode(kind), true, payload.len() as u64);
    EncodedMessage::Plain(h, n)
}

/// The compressed frame of [`encode_with`], or None when `deflater` leaves the message
/// uncompressed (kept out of line: the plain frame is the common case).
fn encode_compressed(
    d: &mut MessageDeflater,
    kind: MessageKind,
    payload: &[u8],
) -> Option<EncodedMessage> {
    // Room for the longest header in front, so the frame is built in place.
    let mut bytes = vec![0u8; MAX_SERVER_HEADER_LEN];
    if d.compress(payload, &mut bytes) != Compressed::Yes {
        return None;
    }
    let body = (bytes.len() - MAX_SERVER_HEADER_LEN) as u64;
    let (mut h, n) = server_header(kind_opcode(kind), true, body);
    h[0] |= RSV1;
    let start = MAX_SERVER_HEADER_LEN - n;
    bytes[start..MAX_SERVER_HEADER_LEN].copy_from_slice(&h[..n]);
    Some(EncodedMessage::Compressed { bytes, start })
}

/// RFC 7692 §6: the "Per-Message Compressed" bit is RSV1, the first byte's 0x40.
const RSV1: u8 = 0x40;

/// Which connections can share one encoded frame of a broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameSharing {
    /// No compression: everyone gets the plain frame.
    Plain,
    /// Compression without context takeover: the frame depends only on these.
    Stateless {
        window_bits: u8,
        level: u32,
        min_size: usize,
    },
    /// Context takeover: the frame depends on the connection's history.
    PerConnection,
}

/// One broadcast message, encoded at most once per [`FrameSharing`] class: a
/// broadcast to many connections in the shared-compressor mode compresses once.
pub struct BroadcastFrames<'a> {
    kind: MessageKind,
    payload: &'a [u8],
    frames: Vec<(FrameSharing, std::sync::Arc<[u8]>)>,
}

/// A broadcast frame for one connection.
pub enum BroadcastFrame {
    Shared(std::sync::Arc<[u8]>),
    Own(EncodedMessage),
}

impl<'a> BroadcastFrames<'a> {
    pub fn new(kind: MessageKind, payload: &'a [u8]) -> Self {
        BroadcastFrames {
            kind,
            payload,
            frames: Vec::new(),
        }
    }

    /// The bytes a frame for this message takes at most on `conn`'s wire (for the
    /// send-queue limits, checked before anything is compressed).
    pub fn max_wire_len(&self) -> usize {
        server_header(kind_opcode(self.kind), true, self.payload.len() as u64).1
            + self.payload.len()
    }

    /// The frame for `conn` (which must be able to send: see
    /// [`ServerConnection::can_send`]).
    pub fn frame_for(&mut self, conn: &mut ServerConnection) -> BroadcastFrame {
        let sharing = conn.frame_sharing();
        if sharing == FrameSharing::PerConnection {
            return BroadcastFrame::Own(encode_with(
                conn.deflater.as_deref_mut(),
                self.kind,
                self.payload,
            ));
        }
        if let Some((_, f)) = self.frames.iter().find(|(s, _)| *s == sharing) {
            return BroadcastFrame::Shared(f.clone());
        }
        let encoded = encode_with(conn.deflater.as_deref_mut(), self.kind, self.payload);
        let (h, b) = encoded.parts(self.payload);
        let frame: std::sync::Arc<[u8]> = [h, b].concat().into();
        self.frames.push((sharing, frame.clone()));
        BroadcastFrame::Shared(frame)
    }
}

/// The opcode of a data message's frame (§5.6).
#[inline]
pub fn kind_opcode(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::Text,
        MessageKind::Binary => OpCode::Binary,
    }
}

#[cfg(test)]
mod tests {
    use super::super::reader::tests::client_frame;
    use super::*;

    const UPGRADE: &[u8] = b"GET /chat?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn open() -> ServerConnection {
        ServerConnection::new_open(Settings::default())
    }

    fn feed(c: &mut ServerConnection, bytes: &[u8]) -> Vec<ConnEvent> {
        let mut ev = Vec::new();
        c.receive(bytes, &mut ev);
        ev
    }

    /// Everything the connection wants written, in the order the engine writes it.
    fn written(c: &mut ServerConnection) -> Vec<u8> {
        let mut out = c.take_output().unwrap_or_default();
        out.extend(c.take_pong().unwrap_or_default());
        out.extend(c.take_close_frame().unwrap_or_default());
        out
    }

    fn close_code_of(frame: &[u8]) -> u16 {
        assert_eq!(frame[0], 0x88, "a close frame");
        u16::from_be_bytes([frame[2], frame[3]])
    }

    #[test]
    fn upgrade_request_waits_for_an_answer_and_accept_writes_the_101() {
        // §4.2.2: the server answers a valid request with 101 and the accept key.
        let mut c = ServerConnection::new(Settings::default());
        let mut request = UPGRADE.to_vec();
        request.extend(client_frame(true, 1, b"early"));
        let ev = feed(&mut c, &request);
        assert!(matches!(&ev[..], [ConnEvent::UpgradeRequest(r)] if r.0.target == "/chat?x=1"));
        assert!(!c.wants_input(), "no reading until the application answers");
        assert_eq!(c.timer(), Some(Timer::Handshake));
        assert_eq!(c.accept(None, &[]), Ok(None));
        let out = written(&mut c);
        assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(out
            .windows(28)
            .any(|w| w == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        // The frame sent eagerly after the head is processed once the app accepted.
        let ev = feed(&mut c, &[]);
        assert_eq!(
            ev,
            vec![ConnEvent::Message {
                kind: MessageKind::Text,
                payload: b"early".to_vec()
            }]
        );
    }

    #[test]
    fn accept_refuses_a_subprotocol_the_client_did_not_offer() {
        let mut c = ServerConnection::new(Settings::default());
        feed(&mut c, UPGRADE);
        assert_eq!(
            c.accept(Some("chat"), &[]),
            Err(HandshakeAnswerError::SubprotocolNotOffered)
        );
        assert_eq!(c.reject(401, b"no"), Ok(()));
        assert!(written(&mut c).starts_with(b"HTTP/1.1 401 "));
        assert!(c.wants_half_close());
        assert_eq!(
            c.accept(None, &[]),
            Err(HandshakeAnswerError::NotAwaitingAnswer)
        );
    }

    #[test]
    fn malformed_request_gets_an_http_error_and_finishes() {
        // §4.2.1: a request that is not a valid upgrade is answered with an HTTP error.
        let mut c = ServerConnection::new(Settings::default());
        let ev = feed(
            &mut c,
            b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        assert_eq!(ev, vec![ConnEvent::BadRequest { status: 400 }]);
        assert!(written(&mut c).starts_with(b"HTTP/1.1 400 "));
        assert!(c.wants_half_close());
    }

    #[test]
    fn plain_http_request_is_handed_to_the_fallback() {
        let mut c = ServerConnection::new(Settings::default());
        let ev = feed(&mut c, b"GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(matches!(&ev[..], [ConnEvent::HttpRequest(h)] if h.target == "/index.html"));
        c.respond(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        assert!(written(&mut c).starts_with(b"HTTP/1.1 404"));
        assert!(c.wants_half_close());
        assert!(c.message_header(MessageKind::Text, 1).is_err());
    }

    #[test]
    fn events_keep_the_order_of_the_frames_around_control_frames_and_a_close() {
        // Messages go straight to the events until another item comes; from then on
        // everything (messages too) is handled in order, and nothing after the close.
        let mut c = open();
        let mut s = client_frame(true, 2, b"one");
        s.extend(client_frame(true, 1, b"two"));
        s.extend(client_frame(true, 9, b"p"));
        s.extend(client_frame(true, 2, b"three"));
        s.extend(client_frame(true, 0xA, b"q"));
        s.extend(client_frame(true, 1, b"four"));
        s.extend(client_frame(true, 8, &1000u16.to_be_bytes()));
        s.extend(client_frame(true, 2, b"after the close"));
        let msg = |kind, p: &[u8]| ConnEvent::Message {
            kind,
            payload: p.to_vec(),
        };
        assert_eq!(
            feed(&mut c, &s),
            vec![
                msg(MessageKind::Binary, b"one"),
                msg(MessageKind::Text, b"two"),
                ConnEvent::Ping(b"p".to_vec()),
                msg(MessageKind::Binary, b"three"),
                ConnEvent::Pong(b"q".to_vec()),
                msg(MessageKind::Text, b"four"),
                ConnEvent::Barrier,
            ]
        );
    }

    #[test]
    fn ping_is_answered_with_a_pong_carrying_the_same_payload() {
        // §5.5.2
        let mut c = open();
        let ev = feed(&mut c, &client_frame(true, 9, b"abc"));
        assert_eq!(ev, vec![ConnEvent::Ping(b"abc".to_vec())]);
        assert_eq!(written(&mut c), vec![0x8A, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn every_ping_is_answered_until_too_many_pongs_wait_then_only_the_latest() {
        // §5.5.3: "an endpoint MAY elect to send a Pong frame for only the most
        // recently processed Ping frame": a ping flood costs a few pending pongs.
        let mut c = open();
        let mut ten = Vec::new();
        for i in 0..10u32 {
            ten.extend(client_frame(true, 9, &i.to_be_bytes()));
        }
        feed(&mut c, &ten);
        let expected: Vec<u8> = (0..10u32)
            .flat_map(|i| [&[0x8A, 4][..], &i.to_be_bytes()].concat())
            .collect();
        assert_eq!(written(&mut c), expected, "ten pings, ten pongs");
        let mut flood = Vec::new();
        for i in 0..1000u32 {
            flood.extend(client_frame(true, 9, &i.to_be_bytes()));
        }
        feed(&mut c, &flood);
        assert_eq!(c.take_pongs_coalesced(), 1000 - MAX_PENDING_PONGS as u32);
        assert_eq!(c.take_pongs_coalesced(), 0, "taken once");
        let expected: Vec<u8> = (1000 - MAX_PENDING_PONGS as u32..1000)
            .flat_map(|i| [&[0x8A, 4][..], &i.to_be_bytes()].concat())
            .collect();
        assert_eq!(written(&mut c), expected, "the latest pings are answered");
        assert_eq!(c.take_pong(), None);
    }

    #[test]
    fn unsolicited_pong_is_reported_without_answer() {
        // §5.5.3
        let mut c = open();
        let ev = feed(&mut c, &client_frame(true, 0xA, b"x"));
        assert_eq!(ev, vec![ConnEvent::Pong(b"x".to_vec())]);
        assert!(written(&mut c).is_empty());
        assert!(c.can_send());
    }

    #[test]
    fn peer_close_is_echoed_after_the_barrier_and_then_tcp_closes() {
        // §5.5.1 (echo the code), §7.1.1 (the server closes TCP first).
        let mut c = open();
        let ev = feed(&mut c, &client_frame(true, 8, &4001u16.to_be_bytes()));
        assert_eq!(ev, vec![ConnEvent::Barrier]);
        assert!(c.can_send(), "replies to earlier messages may still go out");
        assert!(
            written(&mut c).is_empty(),
            "the close waits for the barrier"
        );
        c.release_barrier();
        assert_eq!(written(&mut c), vec![0x88, 2, 0x0F, 0xA1]);
        assert!(c.wants_half_close());
        assert_eq!(
            c.receive_eof(""),
            Outcome {
                code: 4001,
                reason: String::new(),
                clean: true
            }
        );
    }

    #[test]
    fn empty_close_is_answered_with_an_empty_close_and_reported_as_1005() {
        // §7.1.5: no status code received is reported as 1005.
        let mut c = open();
        feed(&mut c, &client_frame(true, 8, b""));
        c.release_barrier();
        assert_eq!(written(&mut c), vec![0x88, 0]);
        assert_eq!(c.receive_eof("").code, 1005);
    }

    #[test]
    fn messages_before_a_protocol_error_are_delivered_and_the_close_follows_them() {
        // §7.1.7 fails the connection; what was complete before the error is still
        // delivered, and the close waits for the application's replies.
        let mut c = open();
        let mut bytes = client_frame(true, 1, b"Hello");
        bytes.extend(super::super::reader::tests::raw_frame(
            true,
            2,
            1,
            Some([1, 2, 3, 4]),
            b"bad",
        ));
        bytes.extend(client_frame(true, 9, b"after the error"));
        let ev = feed(&mut c, &bytes);
        assert_eq!(
            ev,
            vec![
                ConnEvent::Message {
                    kind: MessageKind::Text,
                    payload: b"Hello".to_vec()
                },
                ConnEvent::ProtocolError(ProtocolError::ReservedBitsSet),
                ConnEvent::Barrier,
            ],
            "nothing after the error is processed"
        );
        // The application's echo goes out before the close.
        let (h, n) = c.message_header(MessageKind::Text, 5).unwrap();
        assert_eq!(&h[..n], &[0x81, 5]);
        assert_eq!(c.timer(), Some(Timer::FailureGrace));
        c.release_barrier();
        let out = written(&mut c);
        assert_eq!(close_code_of(&out), 1002);
        assert!(c.message_header(MessageKind::Text, 1).is_err());
        assert!(c.wants_half_close());
        let o = c.receive_eof("");
        assert_eq!((o.code, o.clean), (1002, false));
    }

    #[test]
    fn the_grace_timer_releases_a_barrier_the_application_never_passes() {
        let mut c = open();
        feed(&mut c, &[0x81, 0x00]); // unmasked: §5.1
        assert_eq!(c.timer(), Some(Timer::FailureGrace));
        assert_eq!(
            c.on_timer(Timer::FailureGrace, Keepalive::Ping),
            TimerAction::Continue
        );
        assert_eq!(close_code_of(&written(&mut c)), 1002);
    }

    #[test]
    fn invalid_utf8_fails_with_1007_and_oversize_with_1009() {
        // §7.4.1, §8.1, §10.4
        let mut c = open();
        feed(&mut c, &client_frame(false, 1, b"\xFF"));
        c.release_barrier();
        assert_eq!(close_code_of(&written(&mut c)), 1007);
        let mut c = ServerConnection::new_open(Settings {
            limits: Limits {
                max_frame_size: 4,
                max_message_size: 4,
            },
            ..Settings::default()
        });
        feed(&mut c, &client_frame(true, 2, b"12345"));
        c.release_barrier();
        assert_eq!(close_code_of(&written(&mut c)), 1009);
    }

    #[test]
    fn invalid_close_code_from_the_peer_is_answered_with_1002() {
        // §7.4.1: 1005 must not be sent; receiving it is a protocol error.
        let mut c = open();
        feed(&mut c, &client_frame(true, 8, &1005u16.to_be_bytes()));
        c.release_barrier();
        assert_eq!(close_code_of(&written(&mut c)), 1002);
    }

    #[test]
    fn after_our_close_data_is_discarded_no_pong_is_sent_and_the_peer_close_completes() {
        // §5.5.1: after sending a close, no more data frames; the peer's close ends it.
        let mut c = open();
        c.close(CloseCode::NORMAL, "done").unwrap();
        assert_eq!(close_code_of(&written(&mut c)), 1000);
        assert_eq!(c.close(CloseCode::NORMAL, ""), Err(SendError::Closing));
        assert_eq!(c.ping(b""), Err(SendError::Closing));
        assert!(c.message_header(MessageKind::Binary, 1).is_err());
        assert_eq!(c.timer(), Some(Timer::CloseFlush));
        c.on_close_written();
        assert_eq!(
            c.timer(),
            Some(Timer::CloseAck),
            "the close timeout starts now"
        );
        let mut late = client_frame(true, 2, b"late data");
        late.extend(client_frame(true, 9, b"late ping"));
        let ev = feed(&mut c, &late);
        assert_eq!(
            ev,
            vec![ConnEvent::Ping(b"late ping".to_vec())],
            "no message event"
        );
        assert!(written(&mut c).is_empty(), "no pong after our close");
        assert!(!c.wants_half_close());
        feed(&mut c, &client_frame(true, 8, &1000u16.to_be_bytes()));
        assert!(written(&mut c).is_empty(), "no second close frame");
        assert!(c.wants_half_close());
        assert!(c.receive_eof("").clean);
    }

    #[test]
    fn protocol_error_after_our_close_sends_no_second_close() {
        // §7.1.7 with §5.5.1: one close frame per side.
        let mut c = open();
        c.close(CloseCode::NORMAL, "").unwrap();
        written(&mut c);
        feed(&mut c, &[0x82, 0x00]);
        assert!(written(&mut c).is_empty());
        assert!(c.wants_half_close());
        assert_eq!(c.receive_eof("").code, 1002);
    }

    #[test]
    fn a_finished_connection_stops_wanting_input_after_a_bounded_amount() {
        let mut c = open();
        feed(&mut c, &client_frame(true, 8, b""));
        c.release_barrier();
        written(&mut c);
        c.on_half_closed();
        assert_eq!(c.timer(), Some(Timer::PeerEof));
        assert!(c.wants_input());
        feed(&mut c, &vec![0; DISCARD_AFTER_FINISH + 1]);
        assert!(
            !c.wants_input(),
            "a peer that floods after the close is not read"
        );
    }

    #[test]
    fn app_frames_are_unmasked_and_control_rules_hold_for_the_app() {
        // §5.1: a server MUST NOT mask; §5.5: control payloads ≤ 125; §7.4 codes.
        let mut c = open();
        let (h, n) = c.message_header(MessageKind::Binary, 200).unwrap();
        assert_eq!(&h[..n], &[0x82, 126, 0, 200]);
        assert_eq!(c.ping(&[0; 126]), Err(SendError::ControlFrameTooLong));
        assert_eq!(
            c.close(CloseCode::NO_STATUS, ""),
            Err(SendError::InvalidCloseCode)
        );
        c.close(CloseCode(4000), &"x".repeat(300)).unwrap();
        let out = written(&mut c);
        assert_eq!(out[..2], [0x88, 125], "the reason is cut to fit");
        assert_eq!(out.len(), 127);
    }

    #[test]
    fn keepalive_pings_and_expects_input_then_idles_out_with_1001() {
        let mut c = open();
        assert_eq!(c.timer(), Some(Timer::Keepalive));
        assert_eq!(
            c.on_timer(Timer::Keepalive, Keepalive::Ping),
            TimerAction::Continue
        );
        assert_eq!(written(&mut c), vec![0x89, 0]);
        assert_eq!(c.timer(), Some(Timer::PongDue));
        feed(&mut c, &client_frame(true, 0xA, b""));
        assert_eq!(
            c.timer(),
            Some(Timer::Keepalive),
            "any input answers the ping"
        );
        assert_eq!(
            c.on_timer(Timer::Keepalive, Keepalive::Idle),
            TimerAction::Continue
        );
        assert_eq!(close_code_of(&written(&mut c)), 1001);
        let mut c = open();
        c.on_timer(Timer::Keepalive, Keepalive::Ping);
        assert!(matches!(
            c.on_timer(Timer::PongDue, Keepalive::Ping),
            TimerAction::Drop(o) if o.code == 1006
        ));
    }

    #[test]
    fn a_timer_that_no_longer_applies_does_nothing() {
        let mut c = open();
        assert_eq!(
            c.on_timer(Timer::CloseAck, Keepalive::Ping),
            TimerAction::Continue
        );
        assert!(c.can_send());
    }

    #[test]
    fn handshake_timeout_answers_408_and_drops() {
        let mut c = ServerConnection::new(Settings::default());
        feed(&mut c, b"GET / HTTP/1.1\r\n");
        assert!(matches!(
            c.on_timer(Timer::Handshake, Keepalive::Ping),
            TimerAction::Drop(_)
        ));
        assert!(written(&mut c).starts_with(b"HTTP/1.1 408 "));
    }
}
