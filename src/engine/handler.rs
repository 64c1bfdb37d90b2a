//! Handler mode: events handed to an application function on the reactor thread that
//! produced them, instead of queued for a poller (uWebSockets' model). A message then
//! costs no queue entry, no wake-up and no hand-over between threads; its payload is
//! lent to the handler and its buffer reused at once.
//!
//! The reactor collects a turn's events as in poll mode and hands them over where it
//! holds no lock (after each connection's input, and at the end of the turn), with the
//! thread corked: the handler's replies are written once per connection when the
//! hand-over ends, before any close frame that a barrier held back (so replies to the
//! messages before a protocol error still go out first).

use std::cell::Cell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::conn::ConnShared;
use super::cork;
use super::error::Error;
use super::event::{ConnId, Event};
use super::send;
use super::shared::EngineShared;
use super::SendStatus;
use crate::protocol::MessageKind;

/// The application's event function (see `Config::event_handler`). It runs on a
/// reactor thread, for events of the connections that reactor owns (one connection's
/// events in order, never two at once for one connection; different reactors call it
/// concurrently). While it runs, that reactor reads and writes nothing else, so it
/// must return quickly: hand slow work to another thread. It may call every server
/// method; `stop` from a handler begins the stop and returns without waiting for it.
/// A panic in it is caught (the reactor goes on; that event is lost). Besides the
/// event it gets the [`Replies`] of the hand-over. Made from a closure with
/// `EventHandler::from` (or `Server::start_with_handler`).
#[derive(Clone)]
pub struct EventHandler {
    each: Arc<HandlerFn>,
    /// A binding's way to take a run of one connection's messages in one call (the
    /// direct lane's batch, `reactor/direct.rs`): set-up it would repeat per message
    /// (a C event struct, a scope) is then done once per run.
    runs: Option<Arc<RunFn>>,
}

/// The function behind an [`EventHandler`].
pub type HandlerFn = dyn Fn(&Event, &Replies<'_>) + Send + Sync;

/// A run of message events of one connection, in order (see [`EventHandler`]'s
/// `runs`). It must handle each as [`HandlerFn`] would, and catch a panic per event.
pub(crate) type RunFn = dyn Fn(&[Event], &Replies<'_>) + Send + Sync;

impl EventHandler {
    /// A handler that also takes runs of messages through `runs`.
    pub(crate) fn with_runs(each: Arc<HandlerFn>, runs: Arc<RunFn>) -> Self {
        EventHandler {
            each,
            runs: Some(runs),
        }
    }
}

/// What a handler can answer through while it runs: the sends of the server whose
/// events it handles, without a way to that server. One `Replies` serves a whole
/// hand-over (the events of one read, usually one connection's), and knows the
/// connection they came from: a reply to it goes straight to that connection, with no
/// registry lookup and no look at the thread's state. A binding that reaches the
/// server through a locked handle (the C ABI's) also saves that lock per reply. It
/// sends as `Server::send` does, with one difference: a reply to the answering
/// connection is corked until the hand-over ends even if the handler uncorked its
/// thread (`Server::send` would then write it at once). A `Replies` belongs to the
/// thread of its hand-over: it is not `Sync` (it counts replies in a `Cell`).
pub struct Replies<'a> {
    engine: &'a Arc<EngineShared>,
    /// The connection whose events are handed over (None when they are not one
    /// connection's).
    answering: Option<&'a ConnShared>,
    /// Messages sent to `answering` through these replies, added to the server's
    /// `messages_out` once, when the hand-over ends.
    answered: Cell<u64>,
    /// Run when the hand-over ends (the replies are dropped): a binding that keeps a
    /// pointer to them for the length of the hand-over forgets it there.
    at_end: Cell<Option<fn()>>,
    /// A buffer lent by the reactor for the first reply to `answering` to gather into
    /// (instead of one from the thread's pool: a thread-local look each way).
    gather: Cell<Option<Vec<u8>>>,
}

impl<'a> Replies<'a> {
    pub(crate) fn new(engine: &'a Arc<EngineShared>, answering: Option<&'a ConnShared>) -> Self {
        Replies {
            engine,
            answering,
            answered: Cell::new(0),
            at_end: Cell::new(None),
            gather: Cell::new(None),
        }
    }

    /// `Server::send`, on the server whose events are being handled.
    pub fn send(&self, id: ConnId, kind: MessageKind, payload: &[u8]) -> Result<SendStatus, Error> {
        match self.answering {
            Some(conn) if conn.id == id => send::send_answering(
                self.engine,
                conn,
                &self.answered,
                &self.gather,
                kind,
                payload,
            ),
            _ => send::send(self.engine, id, kind, payload),
        }
    }

    /// How many messages went to the answering connection through these replies.
    pub(crate) fn answered(&self) -> u64 {
        self.answered.get()
    }

    /// Whether [`Replies::at_end`] was called on these replies.
    pub(crate) fn has_end_hook(&self) -> bool {
        // Cell<Option<fn()>> is Copy: get() reads it without taking it.
        self.at_end.get().is_some()
    }

    /// Runs `hook` on this thread when the hand-over ends (replacing an earlier one).
    pub(crate) fn at_end(&self, hook: fn()) {
        self.at_end.set(Some(hook));
    }
}

impl Drop for Replies<'_> {
    fn drop(&mut self) {
        if let Some(hook) = self.at_end.take() {
            hook();
        }
    }
}

impl fmt::Debug for EventHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventHandler")
    }
}

impl<F: Fn(&Event, &Replies<'_>) + Send + Sync + 'static> From<F> for EventHandler {
    fn from(f: F) -> Self {
        EventHandler {
            each: Arc::new(f),
            runs: None,
        }
    }
}

/// Whether the calling thread is inside `engine`'s handler (a stop called there must
/// not wait for its own thread). The mark is the thread's cork entry's (`cork.rs`),
/// set and cleared with the hand-over's cork.
pub fn in_handler_of(engine: &Arc<EngineShared>) -> bool {
    cork::handling(engine)
}

/// Runs `f` as one hand-over: the thread corked and marked as inside the handler,
/// naming `answering` (the connection whose events these are, if one) for sends that
/// do not come through the [`Replies`] (`Server::send` from a handler). When `f`
/// returns, the replies are dropped (their end hook runs), what the thread corked is
/// written, and the replies to the answering connection are counted in the tally of
/// `reactor` (the reactor whose turn this thread runs). The answering connection is
/// written too (even if the handler uncorked), unless `write_answering` is false: the
/// caller then writes it itself, under a lock it takes anyway
/// (`ConnState::write_corked`; the direct lane does, with the rest of the read).
/// `gather`: a spare buffer lent to the replies (see `Replies`); what they did not
/// use is put back.
pub(crate) fn hand_over<R>(
    engine: &Arc<EngineShared>,
    reactor: usize,
    answering: Option<&ConnShared>,
    write_answering: bool,
    gather: &mut Option<Vec<u8>>,
    f: impl FnOnce(&Replies<'_>) -> R,
) -> R {
    cork::begin_hand_over(engine);
    let replies = Replies::new(engine, answering);
    replies.gather.set(gather.take());
    let result = f(&replies);
    *gather = replies.gather.take();
    let answered = replies.answered();
    drop(replies);
    cork::end_hand_over(engine, answering.filter(|_| write_answering));
    if answered > 0 {
        engine.reactors[reactor].tally.add_messages_out(answered);
    }
    result
}

/// Runs the handler on one event, inside a [`hand_over`];
/// returns false if it panicked.
pub fn call(handler: &EventHandler, event: &Event, replies: &Replies<'_>) -> bool {
    catch_unwind(AssertUnwindSafe(|| (handler.each)(event, replies))).is_ok()
}

/// Runs the handler on a run of one connection's message events, in order, inside a
/// hand-over: in one call when it takes runs, else one event at a time.
pub fn call_run(handler: &EventHandler, events: &[Event], replies: &Replies<'_>) {
    match &handler.runs {
        Some(runs) => {
            // The run function catches each event's panic itself; this one is for
            // a panic of its own.
            let _ = catch_unwind(AssertUnwindSafe(|| runs(events, replies)));
        }
        None => {
            for event in events {
                call(handler, event, replies);
            }
        }
    }
}
