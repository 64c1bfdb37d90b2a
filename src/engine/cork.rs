//! Corked sends (the uWebSockets cork): while a thread has a server corked, the small
//! messages it sends are queued instead of written, and each connection it sent to is
//! written once, with one vectored write of everything queued, when the thread uncorks.
//! Sixteen pipelined echoes then cost one system call instead of sixteen.
//!
//! The cork belongs to a thread, not to a connection: a send from any other thread
//! still writes at once (after whatever a corking thread queued for the same
//! connection, which it writes first, so order holds). The C ABI corks a thread
//! from its `wsq_poll` until it releases the batch or polls again; the Rust API corks
//! only when asked (`Server::cork`). In handler mode a reactor corks while it hands
//! one connection's events to the handler, and names that connection: a reply to it
//! then needs no registry lookup (see [`sending`]).

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};

use super::conn::ConnShared;
use super::event::ConnId;
use super::shared::{Command, EngineShared};
use super::stats::Counters;

/// A message larger than this is written at once even while corked: copying it into
/// the queue would cost more than the system call it saves.
pub(crate) const CORK_MAX_MESSAGE: usize = 16 * 1024;

/// A server this thread has corked (or had: entries are kept with their allocation,
/// since a reactor in handler mode corks and uncorks for every connection it reads).
struct Corked {
    engine: Weak<EngineShared>,
    active: bool,
    conns: Vec<Arc<ConnShared>>,
    /// The connection whose events the thread is answering (handler mode): a send to
    /// it needs no registry lookup.
    answering: Option<Arc<ConnShared>>,
    /// The thread is inside this server's event handler (handler mode). Kept here so
    /// that a hand-over costs one thread-local look (a call, in a shared library)
    /// rather than three; an uncork called by the handler leaves it set.
    handling: bool,
    /// Messages sent to the answering connection and not yet added to the server's
    /// `messages_out`: added once at the uncork instead of with one atomic operation
    /// per message.
    answered: Cell<u64>,
}

/// Where a send goes, as the calling thread's cork sees it (see [`sending`]).
pub enum Sending<'a> {
    /// To the connection the thread is answering in a hand-over: no registry lookup,
    /// and nothing to remember (the hand-over's end writes it). Count the message in
    /// the `Cell` (published at the uncork).
    Answering(&'a ConnShared, &'a Cell<u64>),
    /// Corked, to another connection: remember it ([`remember`]) if the send corked it.
    Corked,
    /// Not corked: write at once.
    Uncorked,
}

thread_local! {
    static CORKED: RefCell<Vec<Corked>> = const { RefCell::new(Vec::new()) };
}

fn is(k: &Corked, engine: &Arc<EngineShared>) -> bool {
    k.engine.as_ptr() == Arc::as_ptr(engine)
}

/// Corks `engine` for the calling thread (a no-op when it already is).
pub fn cork(engine: &Arc<EngineShared>) {
    cork_with(engine, None, false);
}

/// Starts a hand-over of events to `engine`'s handler on the calling thread: corks it,
/// marks the thread as inside the handler ([`handling`]), and names `conn`, the
/// connection whose events these are: until the uncork, [`sending`] hands it out for
/// its id. [`end_hand_over`] ends it.
pub fn begin_hand_over(engine: &Arc<EngineShared>, conn: Option<Arc<ConnShared>>) {
    cork_with(engine, conn, true);
}

/// Ends a hand-over: the thread is no longer inside the handler, and what it corked
/// is written. `answering`: the connection named at its start, written here even if
/// the handler uncorked meanwhile (replies through the hand-over's `Replies` are
/// corked without a look at the thread's cork); `answered`: the messages those
/// replies sent to it, for `messages_out`.
pub fn end_hand_over(engine: &Arc<EngineShared>, answering: Option<&ConnShared>, answered: u64) {
    uncork_with(Some(engine), true);
    if answered > 0 {
        Counters::add(&engine.stats.messages_out, answered);
    }
    if let Some(conn) = answering {
        write_corked(engine, conn);
    }
}

/// Whether the calling thread is inside `engine`'s handler.
pub fn handling(engine: &Arc<EngineShared>) -> bool {
    CORKED
        .try_with(|c| c.borrow().iter().any(|k| k.handling && is(k, engine)))
        .unwrap_or(false)
}

fn cork_with(engine: &Arc<EngineShared>, conn: Option<Arc<ConnShared>>, handling: bool) {
    let _ = CORKED.try_with(|c| {
        let mut c = c.borrow_mut();
        match c.iter_mut().find(|k| is(k, engine)) {
            Some(k) => {
                k.active = true;
                k.handling |= handling;
                if conn.is_some() {
                    k.answering = conn;
                }
            }
            None => {
                // A new server: entries of servers that are gone are dropped first, so
                // a thread that polls many servers over time keeps a short list.
                c.retain(|k| k.active || k.handling || k.engine.strong_count() > 0);
                c.push(Corked {
                    engine: Arc::downgrade(engine),
                    active: true,
                    conns: Vec::new(),
                    answering: conn,
                    handling,
                    answered: Cell::new(0),
                })
            }
        }
    });
}

/// Whether the calling thread has `engine` corked.
pub fn is_corked(engine: &Arc<EngineShared>) -> bool {
    CORKED
        .try_with(|c| c.borrow().iter().any(|k| k.active && is(k, engine)))
        .unwrap_or(false)
}

/// Runs `f` with where a send to `id` goes ([`Sending`]), in one look at the calling
/// thread's state; None when the thread is exiting (its state is gone: nothing is
/// corked). `f` runs with that state borrowed (it borrows the answering connection
/// from it, which costs no reference count): it must not cork, uncork or
/// [`remember`]; return what to do and do it after.
#[inline]
pub fn sending<R>(
    engine: &Arc<EngineShared>,
    id: ConnId,
    f: impl FnOnce(Sending<'_>) -> R,
) -> Option<R> {
    CORKED
        .try_with(|c| {
            let c = c.borrow();
            match c.iter().find(|k| k.active && is(k, engine)) {
                Some(k) => match k.answering.as_deref().filter(|a| a.id == id) {
                    Some(conn) => f(Sending::Answering(conn, &k.answered)),
                    None => f(Sending::Corked),
                },
                None => f(Sending::Uncorked),
            }
        })
        .ok()
}

/// Remembers that `conn` holds frames this thread corked (the caller marks the
/// connection so that it is remembered once per cork).
pub fn remember(engine: &Arc<EngineShared>, conn: Arc<ConnShared>) {
    let _ = CORKED.try_with(|c| {
        if let Some(k) = c
            .borrow_mut()
            .iter_mut()
            .find(|k| k.active && is(k, engine))
        {
            k.conns.push(conn);
        }
    });
}

/// Uncorks `engine` (None: every server) for the calling thread and writes what it
/// queued, one connection at a time. The thread's cork list stays borrowed meanwhile:
/// writing a connection never corks, sends or uncorks.
pub fn uncork(engine: Option<&Arc<EngineShared>>) {
    uncork_with(engine, false);
}

fn uncork_with(engine: Option<&Arc<EngineShared>>, end_handling: bool) {
    let _ = CORKED.try_with(|c| {
        let mut c = c.borrow_mut();
        c.retain_mut(|k| {
            if engine.is_some_and(|e| !is(k, e)) {
                return true;
            }
            if end_handling {
                k.handling = false;
            }
            if !k.active {
                return true;
            }
            k.active = false;
            let answering = k.answering.take();
            let answered = k.answered.take();
            // The caller's reference when it names this server (a hand-over's end):
            // upgrading the weak one costs two atomic operations.
            let upgraded;
            let engine = match engine {
                Some(e) => e,
                None => match k.engine.upgrade() {
                    Some(e) => {
                        upgraded = e;
                        &upgraded
                    }
                    None => return false, // that server is gone: forget it
                },
            };
            if answered > 0 {
                Counters::add(&engine.stats.messages_out, answered);
            }
            // Not remembered when sent to (see `sending`): written here if corked, or
            // by `end_hand_over` when a hand-over ends.
            if let Some(conn) = answering.filter(|_| !end_handling) {
                write_corked(engine, &conn);
            }
            for conn in k.conns.drain(..) {
                write_corked(engine, &conn);
            }
            true
        });
    });
}

/// Writes what a connection holds corked. The reactor is told only when the write
/// changed something it watches: a broken socket, a queue that drained below the
/// mark where it reports `Drain` or resumes reading, a finished connection to
/// half-close. The common echo needs no wake-up.
fn write_corked(engine: &EngineShared, conn: &ConnShared) {
    let mut st = conn.state.lock();
    let Some(before) = st.write_corked(&engine.stats) else {
        return; // nothing corked (the answering connection when nothing was sent)
    };
    let kick = st.broken
        || st.abort_requested
        || st.drain_wanted
        || before > engine.config.send_queue_low_water
        || st.ws.wants_half_close();
    drop(st);
    if kick {
        engine.command(conn.reactor, Command::Kick(conn.id));
    }
}
