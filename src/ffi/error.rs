//! Result codes with stable numbers, their texts, and the per-thread detail message.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::engine::Error;

/// The result of every wsq_ function. The numbers are stable across versions.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum wsq_result_t {
    /// Success.
    WSQ_OK = 0,
    /// A NULL pointer, bad length, bad enum value or out-of-range setting.
    WSQ_ERR_INVALID_ARGUMENT = 1,
    /// No such connection: the id never existed or the connection is gone.
    WSQ_ERR_NOT_FOUND = 2,
    /// The connection is closing or closed: nothing more can be sent.
    WSQ_ERR_CLOSED = 3,
    /// The connection's send queue is over its limit; wait for WSQ_EVENT_DRAIN.
    WSQ_ERR_QUEUE_FULL = 4,
    /// The server is stopping or stopped.
    WSQ_ERR_STOPPED = 5,
    /// The call does not fit the connection's state (e.g. send before open).
    WSQ_ERR_INVALID_STATE = 6,
    /// An operating-system error (see wsq_last_error for errno text).
    WSQ_ERR_IO = 7,
    /// The server handle was already freed.
    WSQ_ERR_BAD_HANDLE = 8,
    /// An internal bug was caught at the boundary (a Rust panic); the call did nothing
    /// or did part of its work. Please report it with wsq_last_error's text.
    WSQ_ERR_PANIC = 9,
}

use wsq_result_t::*;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the detail message for the calling thread.
pub fn set_last_error(message: &str) {
    let clean: Vec<u8> = message.bytes().filter(|&b| b != 0).collect();
    let text = CString::new(clean).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Maps an engine error to its code, recording the detail.
pub fn from_engine(err: Error) -> wsq_result_t {
    set_last_error(&err.to_string());
    match err {
        Error::InvalidArgument(_) => WSQ_ERR_INVALID_ARGUMENT,
        Error::NotFound => WSQ_ERR_NOT_FOUND,
        Error::Closed => WSQ_ERR_CLOSED,
        Error::QueueFull => WSQ_ERR_QUEUE_FULL,
        Error::Stopped => WSQ_ERR_STOPPED,
        Error::InvalidState(_) => WSQ_ERR_INVALID_STATE,
        Error::Io(_) => WSQ_ERR_IO,
    }
}

/// Records `message` and returns `WSQ_ERR_INVALID_ARGUMENT`.
pub fn invalid(message: &str) -> wsq_result_t {
    set_last_error(message);
    WSQ_ERR_INVALID_ARGUMENT
}

/// A static, NUL-terminated description of a result code. Never NULL; the string
/// lives for the whole program and must not be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn wsq_strerror(code: wsq_result_t) -> *const c_char {
    let text: &'static [u8] = match code {
        WSQ_OK => b"success\0",
        WSQ_ERR_INVALID_ARGUMENT => b"invalid argument\0",
        WSQ_ERR_NOT_FOUND => b"no such connection\0",
        WSQ_ERR_CLOSED => b"connection is closing or closed\0",
        WSQ_ERR_QUEUE_FULL => b"send queue is full\0",
        WSQ_ERR_STOPPED => b"server is stopped\0",
        WSQ_ERR_INVALID_STATE => b"invalid state for this call\0",
        WSQ_ERR_IO => b"operating system error\0",
        WSQ_ERR_BAD_HANDLE => b"server handle was freed\0",
        WSQ_ERR_PANIC => b"internal error (panic caught at the C boundary)\0",
    };
    text.as_ptr() as *const c_char
}

/// The detail message of the last failed wsq_ call on the calling thread ("" if none).
/// Never NULL. The string is owned by the library and stays valid until the next wsq_
/// call on the same thread; copy it if you need it longer.
#[no_mangle]
pub extern "C" fn wsq_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}
