//! The server a thread is handling events of (handler mode), so that `wsq_send` from
//! inside the C handler reaches the engine through the hand-over's [`Replies`]
//! instead of through the handle's lock: two atomic operations fewer per reply, about
//! a twentieth of a small echo's server time on the machines we measure.
//!
//! The scope is the thread's for the length of one hand-over (the events of one read,
//! handed to the handler one after another with the same `Replies`): set at its first
//! event, and cleared by the `Replies` themselves when the engine drops them at the
//! hand-over's end, so a pointer found here is always one whose referent is alive on
//! this thread's stack. Setting it once per hand-over rather than around every event
//! saves two thread-local looks per message (each a call, in a shared library).

use std::cell::Cell;
use std::ptr;

use super::handle::{is_freed, wsq_server_t};
use crate::server::Replies;

/// The handle being handled and the hand-over's replies (type-erased: a `Replies<'a>`
/// for an `'a` that outlives the scope that set it).
#[derive(Clone, Copy)]
struct Scope {
    server: *const wsq_server_t,
    replies: *const (),
}

const NONE: Scope = Scope {
    server: ptr::null(),
    replies: ptr::null(),
};

thread_local! {
    static HANDLING: Cell<Scope> = const { Cell::new(NONE) };
}

/// Makes `server`'s sends from this thread go to `replies` until their hand-over ends.
/// Called for every event; only the first of a hand-over sets the scope (later ones
/// find the hook it left on `replies`).
/// Hand-overs do not nest on a thread: a reactor's handler never runs inside another.
pub fn enter(server: *const wsq_server_t, replies: &Replies<'_>) {
    if replies.has_end_hook() {
        return;
    }
    let scope = Scope {
        server,
        replies: replies as *const Replies<'_> as *const (),
    };
    if HANDLING.try_with(|h| h.set(scope)).is_ok() {
        replies.at_end(leave);
    }
}

/// The hand-over ended (its `Replies` are being dropped).
fn leave() {
    let _ = HANDLING.try_with(|h| h.set(NONE));
}

/// Runs `f` with the replies of the hand-over this thread is in, if it is handling
/// `server`'s events; None otherwise (go through the handle).
pub fn with_replies<R>(
    server: *const wsq_server_t,
    f: impl FnOnce(&Replies<'_>) -> R,
) -> Option<R> {
    let scope = HANDLING.try_with(|h| h.get()).ok()?;
    // A freed handle goes the handle's way, which refuses it (WSQ_ERR_BAD_HANDLE),
    // also in a hand-over that began after the free (the stop's close events).
    // SAFETY: `server` equals the scope's, which came from a live handle, and handles
    // are never deallocated.
    if scope.server.is_null() || scope.server != server || unsafe { is_freed(server) } {
        return None;
    }
    // SAFETY: set by `enter` from a live `&Replies`, and cleared by that `Replies`'s
    // drop (the hook `enter` left on it; the engine drops every `Replies` it makes,
    // at the end of the hand-over, on this thread): while it is set, the referent is
    // alive.
    let replies = unsafe { &*(scope.replies as *const Replies<'_>) };
    Some(f(replies))
}
