//! The panic boundary: no Rust panic may unwind into C (that is undefined behaviour).
//! Every exported function runs its body through [`guard`].

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::error::{set_last_error, wsq_result_t};

/// Runs `body`, turning a panic into `WSQ_ERR_PANIC` with the panic message recorded
/// as the thread's last error.
#[inline(always)]
pub fn guard(body: impl FnOnce() -> wsq_result_t) -> wsq_result_t {
    guard_or(wsq_result_t::WSQ_ERR_PANIC, body)
}

/// Runs `body`, returning `on_panic` (after recording the panic as the thread's last
/// error) if it panics. For functions that return a pointer or a value, not a code.
/// Inlined into each exported function (the panic's report is out of line): called,
/// the boundary passed the body's arguments and result through memory, about 20
/// instructions per `wsq_send` (callgrind, bench/RESULTS.md).
#[inline(always)]
pub fn guard_or<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            record_panic(payload);
            on_panic
        }
    }
}

#[cold]
#[inline(never)]
fn record_panic(payload: Box<dyn Any + Send>) {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    set_last_error(&format!("internal error: {message}"));
}

/// For functions that return nothing: a panic is swallowed (after recording it).
pub fn guard_void(body: impl FnOnce()) {
    let _ = guard(|| {
        body();
        wsq_result_t::WSQ_OK
    });
}
