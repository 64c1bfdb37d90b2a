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
//! events to the handler; a reply to the connection they came from goes through the
//! hand-over's `Replies`, which corks it without a look at the thread's state, and
//! the hand-over writes that connection when it ends.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use super::conn::ConnShared;
use super::shared::{Command, EngineShared};

/// A message larger than this is written at once even while corked: copying it into
/// the queue would cost more than the system call it saves.
pub(crate) const CORK_MAX_MESSAGE: usize = 16 * 1024;

/// A server this thread has corked (or had: entries are kept with their allocation,
/// since a reactor in handler mode corks and uncorks for every connection it reads).
struct Corked {
    engine: Weak<EngineShared>,
    active: bool,
    conns: Vec<Arc<ConnShared>>,
    /// The thread is inside this server's event handler (handler mode). Kept here so
    /// that a hand-over costs one thread-local look (a call, in a shared library)
    /// at each end; an uncork called by the handler leaves it set.
    handling: bool,
}

thread_local! {
    static CORKED: RefCell<Vec<Corked>> = const { RefCell::new(Vec::new()) };
}

fn is(k: &Corked, engine: &Arc<EngineShared>) -> bool {
    k.engine.as_ptr() == Arc::as_ptr(engine)
}

/// Corks `engine` for the calling thread (a no-op when it already is).
pub fn cork(engine: &Arc<EngineShared>) {
    cork_with(engine, false);
}

/// Starts a hand-over of events to `engine`'s handler on the calling thread: corks it
/// and marks the thread as inside the handler ([`handling`]). [`end_hand_over`] ends
/// it.
pub fn begin_hand_over(engine: &Arc<EngineShared>) {
    cork_with(engine, true);
}

/// Ends a hand-over: the thread is no longer inside the handler, and what it corked
/// is written. `answering`: the connection the hand-over's `Replies` answered, written
/// here even if the handler uncorked meanwhile (those replies are corked without a
/// look at the thread's cork).
pub fn end_hand_over(engine: &Arc<EngineShared>, answering: Option<&ConnShared>) {
    uncork_with(Some(engine), true);
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

fn cork_with(engine: &Arc<EngineShared>, handling: bool) {
    let _ = CORKED.try_with(|c| {
        let mut c = c.borrow_mut();
        match c.iter_mut().find(|k| is(k, engine)) {
            Some(k) => {
                k.active = true;
                k.handling |= handling;
            }
            None => {
                // A new server: entries of servers that are gone are dropped first, so
                // a thread that polls many servers over time keeps a short list.
                c.retain(|k| k.active || k.handling || k.engine.strong_count() > 0);
                c.push(Corked {
                    engine: Arc::downgrade(engine),
                    active: true,
                    conns: Vec::new(),
                    handling,
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
        match engine {
            // One server (a hand-over's end, `Server::uncork`): its entry is found
            // and kept, with no pass over the others.
            Some(engine) => {
                if let Some(k) = c.iter_mut().find(|k| is(k, engine)) {
                    if end_handling {
                        k.handling = false;
                    }
                    write_entry(k, engine);
                }
            }
            // Every server (a poller's batch is done): entries of servers that are
            // gone are forgotten.
            None => c.retain_mut(|k| {
                if !k.active {
                    return true;
                }
                match k.engine.upgrade() {
                    Some(engine) => {
                        write_entry(k, &engine);
                        true
                    }
                    None => false,
                }
            }),
        }
    });
}

/// Ends an entry's cork (if on) and writes the connections it corked.
#[inline(always)]
fn write_entry(k: &mut Corked, engine: &Arc<EngineShared>) {
    if !std::mem::replace(&mut k.active, false) {
        return;
    }
    for conn in k.conns.drain(..) {
        write_corked(engine, &conn);
    }
}

/// Writes what a connection holds corked. The reactor is told only when the write
/// changed something it watches: a broken socket, a queue that drained below the
/// mark where it reports `Drain` or resumes reading, a finished connection to
/// half-close. The common echo needs no wake-up.
fn write_corked(engine: &EngineShared, conn: &ConnShared) {
    let mut st = conn.state.lock();
    let Some(before) = st.write_corked(&engine.stats, None) else {
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
