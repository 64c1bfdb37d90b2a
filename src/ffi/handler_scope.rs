//! The server a thread is handling events of (handler mode), so that `wsq_send` from
//! inside the C handler reaches the engine through the hand-over's [`Replies`]
//! instead of through the handle's lock: two atomic operations fewer per reply, about
//! a twentieth of a small echo's server time on the machines we measure.
//!
//! The scope is the thread's for the length of one handler call: set before the C
//! function runs, restored after it returns (or unwinds), so a pointer found here is
//! always one whose referent is alive on this thread's stack.

use std::cell::Cell;
use std::ptr;

use super::handle::wsq_server_t;
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

/// Restores the previous scope when the handler call ends, even by a panic.
struct Restore(Scope);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = HANDLING.try_with(|h| h.set(self.0));
    }
}

/// Runs `call` (the C handler) with `server`'s sends going to `replies`.
pub fn handling<R>(
    server: *const wsq_server_t,
    replies: &Replies<'_>,
    call: impl FnOnce() -> R,
) -> R {
    let scope = Scope {
        server,
        replies: replies as *const Replies<'_> as *const (),
    };
    let previous = HANDLING.try_with(|h| h.replace(scope)).unwrap_or(NONE);
    let _restore = Restore(previous);
    call()
}

/// Runs `f` with the replies of the hand-over this thread is in, if it is handling
/// `server`'s events; None otherwise (go through the handle).
pub fn with_replies<R>(
    server: *const wsq_server_t,
    f: impl FnOnce(&Replies<'_>) -> R,
) -> Option<R> {
    let scope = HANDLING.try_with(|h| h.get()).ok()?;
    if scope.server.is_null() || scope.server != server {
        return None;
    }
    // SAFETY: set by `handling` from a live `&Replies` that outlives the call it wraps,
    // and restored when that call ends: while it is set, this thread is inside that
    // call, so the referent is alive.
    let replies = unsafe { &*(scope.replies as *const Replies<'_>) };
    Some(f(replies))
}

/// Forgets `server` for the rest of the handler call on this thread: once the handler
/// freed it, a send through it must find the handle empty (WSQ_ERR_BAD_HANDLE).
pub fn forget(server: *const wsq_server_t) {
    let _ = HANDLING.try_with(|h| {
        if h.get().server == server {
            h.set(NONE);
        }
    });
}
