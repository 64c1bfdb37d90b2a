//! One server connection, sans-I/O, from the first request byte to closed.
//!
//! Bytes go in ([`ServerConnection::receive`], [`ServerConnection::receive_eof`]);
//! events come out into the caller's vector, and bytes to write come out through three
//! slots the I/O layer drains: [`take_output`](ServerConnection::take_output) (HTTP
//! responses, pings), [`take_pong`](ServerConnection::take_pong) (one pending pong,
//! coalesced) and [`take_close_frame`](ServerConnection::take_close_frame) (our close
//! frame, whose write the I/O layer reports back with
//! [`on_close_written`](ServerConnection::on_close_written)). The connection also says
//! when to half-close ([`wants_half_close`](ServerConnection::wants_half_close)) and
//! which deadline it is waiting on ([`timer`](ServerConnection::timer)).
//!
//! Every protocol decision is made here, once: what answers a ping, when a close is
//! complete, which code fails a connection, and that messages completed before a
//! failure or a close reach the application (and its replies the wire) before our
//! close frame does (see [`ConnEvent::Barrier`]).

use super::close::{encode_close_payload, CloseCode, MAX_CLOSE_REASON};
use super::error::{ProtocolError, SendError};
use super::frame::{encode_frame, server_header, OpCode, MAX_SERVER_HEADER_LEN};
use super::handshake::{self, HandshakePolicy, UpgradeRequest};
use super::http::{HeadLimits, RequestHead, RequestParser};
use super::reader::{Incoming, Reader};
use super::{Limits, MessageKind};

/// Bytes the peer may still send after the connection is finished (both close frames
/// exchanged, or failed) before we stop waiting for its EOF: enough for frames already
/// in flight, not enough to make us read a flood.
pub const DISCARD_AFTER_FINISH: usize = 64 * 1024;

/// What a connection needs to know from the server's configuration.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub head_limits: HeadLimits,
    pub limits: Limits,
    pub policy: HandshakePolicy,
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
    Handshake(RequestParser),
    AwaitingAccept(Box<UpgradeRequest>),
    Open,
    /// The peer closed or failed; our close frame (and the outcome) wait for the
    /// application to pass the barrier.
    Deferred {
        close: Vec<u8>,
        outcome: Outcome,
    },
    /// Our close frame is queued; the peer's is awaited. Its data is discarded.
    CloseSent,
    /// Nothing more to say: flush, half-close, wait for EOF.
    Finished(Option<Outcome>),
}

/// The sans-I/O server side of one WebSocket connection.
#[derive(Debug)]
pub struct ServerConnection {
    settings: Settings,
    state: State,
    reader: Reader,
    /// Input not consumed yet: an incomplete frame header, or the bytes after the
    /// request head while the upgrade awaits an answer.
    input: Vec<u8>,
    output: Vec<u8>,
    pong: Option<Vec<u8>>,
    pongs_coalesced: u64,
    close_frame: Option<Vec<u8>>,
    close_written: bool,
    half_closed: bool,
    awaiting_pong: bool,
    discarded: usize,
}

impl ServerConnection {
    /// A connection whose first bytes will be the HTTP request head.
    pub fn new(settings: Settings) -> Self {
        let parser = RequestParser::new(settings.head_limits);
        Self::with_state(settings, State::Handshake(parser))
    }

    /// A connection past its handshake (for tests and fuzzing of the frame path).
    pub fn new_open(settings: Settings) -> Self {
        Self::with_state(settings, State::Open)
    }

    fn with_state(settings: Settings, state: State) -> Self {
        ServerConnection {
            reader: Reader::new(settings.limits),
            settings,
            state,
            input: Vec::new(),
            output: Vec::new(),
            pong: None,
            pongs_coalesced: 0,
            close_frame: None,
            close_written: false,
            half_closed: false,
            awaiting_pong: false,
            discarded: 0,
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
        if !data.is_empty() {
            self.awaiting_pong = false;
        }
        match &mut self.state {
            State::Handshake(parser) => match parser.feed(data) {
                Ok(None) => {}
                Ok(Some((head, rest))) => self.on_request_head(head, rest, events),
                Err(err) => {
                    let body = format!("{}\n", err.message);
                    self.finish_with_response(handshake::render_response(
                        err.status,
                        &[],
                        "text/plain; charset=utf-8",
                        body.as_bytes(),
                    ));
                    events.push(ConnEvent::BadRequest { status: err.status });
                }
            },
            State::AwaitingAccept(_) => self.input.extend_from_slice(data),
            State::Finished(_) => self.discarded += data.len(),
            State::Deferred { .. } => {} // the reader is finished: nothing after the error
            State::Open | State::CloseSent => self.receive_frames(data, events),
        }
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

    fn receive_frames(&mut self, data: &[u8], events: &mut Vec<ConnEvent>) {
        let mut incoming = Vec::new();
        if self.input.is_empty() {
            let consumed = self.reader.feed(data, &mut incoming);
            self.input.extend_from_slice(&data[consumed..]);
        } else {
            let mut buf = std::mem::take(&mut self.input);
            buf.extend_from_slice(data);
            let consumed = self.reader.feed(&buf, &mut incoming);
            buf.drain(..consumed);
            self.input = buf;
        }
        if self.reader.is_finished() {
            self.input = Vec::new();
        }
        for item in incoming {
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
                    // §5.5.3: answering only the most recent ping is allowed, so a
                    // peer that pings and never reads costs one pong's worth of memory.
                    if self.pong.replace(payload.clone()).is_some() {
                        self.pongs_coalesced += 1;
                    }
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
                    self.state = State::Finished(Some(outcome));
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
                    self.state = State::Finished(Some(outcome));
                }
            }
        }
    }

    fn defer_close(&mut self, payload: Vec<u8>, outcome: Outcome, events: &mut Vec<ConnEvent>) {
        let mut close = Vec::with_capacity(payload.len() + 2);
        encode_frame(OpCode::Close, true, &payload, &mut close);
        self.state = State::Deferred { close, outcome };
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
        if let State::Deferred { close, outcome } = std::mem::replace(&mut self.state, placeholder)
        {
            self.close_frame = Some(close);
            self.state = State::Finished(Some(outcome));
        }
    }

    /// True while our close frame waits for [`release_barrier`](Self::release_barrier).
    pub fn is_deferred(&self) -> bool {
        matches!(self.state, State::Deferred { .. })
    }

    /// The peer closed TCP (or it failed): how the connection ended.
    pub fn receive_eof(&mut self, fallback: &str) -> Outcome {
        match std::mem::replace(&mut self.state, State::Finished(None)) {
            State::Finished(Some(o)) | State::Deferred { outcome: o, .. } => o,
            _ => Outcome::lost(fallback),
        }
    }

    /// How the connection ends if it is dropped now for `reason`: a completed closing
    /// handshake keeps its clean report; anything else is `lost(reason)` (or `code`).
    pub fn outcome_if_dropped(&self, code: CloseCode, reason: &str) -> Outcome {
        match &self.state {
            State::Finished(Some(o)) => o.clone(),
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
        let response = handshake::render_accept(&upgrade.accept, chosen.as_deref(), headers);
        self.output.extend_from_slice(&response);
        self.state = State::Open;
        Ok(chosen)
    }

    /// Refuses an upgrade (or answers a plain HTTP request) with a complete response.
    pub fn reject(&mut self, status: u16, body: &[u8]) -> Result<(), HandshakeAnswerError> {
        if !matches!(self.state, State::AwaitingAccept(_)) {
            return Err(HandshakeAnswerError::NotAwaitingAnswer);
        }
        self.input = Vec::new();
        self.finish_with_response(handshake::render_response(
            status,
            &[],
            "text/plain; charset=utf-8",
            body,
        ));
        self.state = State::Finished(Some(Outcome::lost("upgrade rejected")));
        Ok(())
    }

    /// Answers the request of a [`ConnEvent::HttpRequest`] with `response` (a complete
    /// HTTP response), then finishes.
    pub fn respond(&mut self, response: &[u8]) {
        self.output.extend_from_slice(response);
        self.state = State::Finished(None);
    }

    fn finish_with_response(&mut self, response: Vec<u8>) {
        self.output.extend_from_slice(&response);
        self.state = State::Finished(None);
    }

    // ---- application output ---------------------------------------------------------

    /// Whether data frames may be sent now (open, or open with our close deferred).
    pub fn can_send(&self) -> bool {
        matches!(self.state, State::Open | State::Deferred { .. })
    }

    /// Input held back: an incomplete frame header, or what followed the request head
    /// while an upgrade awaits its answer.
    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

    /// Whether the handshake has completed.
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

    /// Queues a ping (payload at most 125 bytes, §5.5) to the output.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > 125 {
            return Err(SendError::ControlFrameTooLong);
        }
        if !self.can_send() {
            return Err(SendError::Closing);
        }
        encode_frame(OpCode::Ping, true, payload, &mut self.output);
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
            State::Deferred { .. } => {
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
        self.close_frame = Some(frame);
        self.state = State::CloseSent;
        Ok(())
    }

    /// A pong still owed goes out before our close frame; none may follow it (§5.5.1).
    fn flush_pong_before_close(&mut self) {
        if let Some(payload) = self.pong.take() {
            encode_frame(OpCode::Pong, true, &payload, &mut self.output);
        }
    }

    // ---- output slots ---------------------------------------------------------------

    /// Engine-made bytes to write (HTTP responses, pings), in order.
    pub fn take_output(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    /// Whether any slot holds bytes to write.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty() || self.pong.is_some() || self.close_frame.is_some()
    }

    /// The pending pong frame, if any. Take it only when it can be written now: while
    /// it waits, later pings replace it instead of queueing more pongs.
    pub fn take_pong(&mut self) -> Option<Vec<u8>> {
        let payload = self.pong.take()?;
        if !self.can_send() {
            return None;
        }
        let mut frame = Vec::with_capacity(payload.len() + 2);
        encode_frame(OpCode::Pong, true, &payload, &mut frame);
        Some(frame)
    }

    /// Pings answered by replacing a pong that had not been written yet.
    pub fn pongs_coalesced(&self) -> u64 {
        self.pongs_coalesced
    }

    /// Our close frame, once it is to be written (after everything queued before it).
    pub fn take_close_frame(&mut self) -> Option<Vec<u8>> {
        self.close_frame.take()
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
            && self.output.is_empty()
            && self.close_frame.is_none()
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
            State::Deferred { .. } => Some(Timer::FailureGrace),
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
                    self.output.extend_from_slice(&handshake::render_response(
                        408,
                        &[],
                        "text/plain; charset=utf-8",
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

/// The opcode of a data message's frame (§5.6).
pub fn kind_opcode(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::Text,
        MessageKind::Binary => OpCode::Binary,
    }
}
