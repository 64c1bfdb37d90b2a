//! Server handles handed to C. A handle stays allocated for the life of the process
//! (a few dozen bytes per server ever started), so a call on a freed handle finds it
//! empty and returns WSQ_ERR_BAD_HANDLE instead of touching freed memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::server::Server;

/// Opaque server handle (`wsq_server_t *` in C).
#[allow(non_camel_case_types)]
pub struct wsq_server_t {
    server: RwLock<Option<Arc<Server>>>,
    /// Set by `wsq_server_free` before it empties `server`: read without the lock by
    /// the handler's fast path (`handler_scope`), which does not go through `server`.
    freed: AtomicBool,
}

/// Keeps every handle reachable (and so not reported as leaked by valgrind).
static HANDLES: Mutex<Vec<&'static wsq_server_t>> = Mutex::new(Vec::new());

pub fn new_handle(server: Server) -> *mut wsq_server_t {
    let handle: &'static wsq_server_t = Box::leak(Box::new(wsq_server_t {
        server: RwLock::new(Some(Arc::new(server))),
        freed: AtomicBool::new(false),
    }));
    HANDLES.lock().push(handle);
    handle as *const wsq_server_t as *mut wsq_server_t
}

/// A handle made before its server: `start` gets it (to give to callbacks), and calls
/// made through it wait until `start` has returned. If `start` fails, the handle stays
/// empty (and is never given out).
pub fn new_handle_with<E>(
    start: impl FnOnce(&'static wsq_server_t) -> Result<Server, E>,
) -> Result<*mut wsq_server_t, E> {
    let handle: &'static wsq_server_t = Box::leak(Box::new(wsq_server_t {
        server: RwLock::new(None),
        freed: AtomicBool::new(false),
    }));
    HANDLES.lock().push(handle);
    let mut slot = handle.server.write();
    *slot = Some(Arc::new(start(handle)?));
    drop(slot);
    Ok(handle as *const wsq_server_t as *mut wsq_server_t)
}

/// The live server behind a handle: None for NULL or a freed handle.
///
/// # Safety
/// `ptr` must be NULL or a pointer returned by `wsq_server_start` (freed or not).
pub unsafe fn server_of(ptr: *const wsq_server_t) -> Option<Arc<Server>> {
    // SAFETY: per the contract above, a non-null pointer refers to a leaked handle.
    let handle = unsafe { ptr.as_ref() }?;
    handle.server.read().clone()
}

/// Runs `f` on the live server behind a handle without taking a reference on it (for
/// calls that never block: a concurrent `wsq_server_free` waits for them to finish).
/// None for NULL or a freed handle.
///
/// # Safety
/// As for [`server_of`].
pub unsafe fn with_server<R>(ptr: *const wsq_server_t, f: impl FnOnce(&Server) -> R) -> Option<R> {
    // SAFETY: as above.
    let handle = unsafe { ptr.as_ref() }?;
    let guard = handle.server.read();
    guard.as_deref().map(f)
}

/// Empties a handle, returning the server it held (None if NULL or already freed).
///
/// # Safety
/// As for [`server_of`].
pub unsafe fn take_server(ptr: *const wsq_server_t) -> Option<Arc<Server>> {
    // SAFETY: as above.
    let handle = unsafe { ptr.as_ref() }?;
    handle.freed.store(true, Ordering::Release);
    handle.server.write().take()
}

/// Whether `wsq_server_free` was called on a handle (true for NULL).
///
/// # Safety
/// As for [`server_of`].
pub unsafe fn is_freed(ptr: *const wsq_server_t) -> bool {
    // SAFETY: as above.
    unsafe { ptr.as_ref() }.map_or(true, |handle| handle.freed.load(Ordering::Acquire))
}
