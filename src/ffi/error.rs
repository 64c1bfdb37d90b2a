//! Result codes with stable numbers, their texts, and the per-thread detail message.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::server::Error;

/// The result of every wsq_ function: a uint32_t holding one of these values. The
/// numbers are stable across versions. WSQ_OK and WSQ_BACKPRESSURE are successes;
/// every WSQ_ERR_* is a failure that did nothing (unless its text says otherwise).
#[allow(non_camel_case_types)]
#[repr(u32)]
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
    /// Refused: the message would take the connection over send_queue_hard_limit, or
    /// the server over max_buffered_bytes; wait for WSQ_EVENT_DRAIN.
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
    /// wsq_server_start: a wss:// listener's certificate chain or private key could
    /// not be read (missing or unreadable file) or used (not PEM, no certificate, no
    /// key, or a key that does not match the certificate); wsq_last_error says which.
    WSQ_ERR_TLS = 10,
    /// Not an error: the message was accepted, and the connection's buffered amount is
    /// now over send_queue_soft_limit. Send no more to it until WSQ_EVENT_DRAIN.
    WSQ_BACKPRESSURE = 100,
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
        Error::Tls(_) => WSQ_ERR_TLS,
    }
}

/// Records `message` and returns `WSQ_ERR_INVALID_ARGUMENT`.
pub fn invalid(message: &str) -> wsq_result_t {
    set_last_error(message);
    WSQ_ERR_INVALID_ARGUMENT
}

/// The code with this number, if there is one. Values that come from C are integers,
/// never trusted to be a valid enum (an invalid enum value is undefined behaviour).
pub fn result_from_u32(code: u32) -> Option<wsq_result_t> {
    const ALL: [wsq_result_t; 12] = [
        WSQ_OK,
        WSQ_ERR_INVALID_ARGUMENT,
        WSQ_ERR_NOT_FOUND,
        WSQ_ERR_CLOSED,
        WSQ_ERR_QUEUE_FULL,
        WSQ_ERR_STOPPED,
        WSQ_ERR_INVALID_STATE,
        WSQ_ERR_IO,
        WSQ_ERR_BAD_HANDLE,
        WSQ_ERR_PANIC,
        WSQ_ERR_TLS,
        WSQ_BACKPRESSURE,
    ];
    ALL.into_iter().find(|c| *c as u32 == code)
}

/// A static, NUL-terminated description of any result number (an unknown number
/// gives "unknown result code"). Never NULL; the string lives for the whole program
/// and must not be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn wsq_strerror(code: u32) -> *const c_char {
    super::panic::guard_or(c"internal error".as_ptr(), || strerror(code))
}

fn strerror(code: u32) -> *const c_char {
    let Some(code) = result_from_u32(code) else {
        return c"unknown result code".as_ptr();
    };
    let text: &'static [u8] = match code {
        WSQ_OK => b"success\0",
        WSQ_BACKPRESSURE => b"accepted; the connection is over its soft send limit\0",
        WSQ_ERR_INVALID_ARGUMENT => b"invalid argument\0",
        WSQ_ERR_NOT_FOUND => b"no such connection\0",
        WSQ_ERR_CLOSED => b"connection is closing or closed\0",
        WSQ_ERR_QUEUE_FULL => b"send queue is full (hard limit or server budget)\0",
        WSQ_ERR_STOPPED => b"server is stopped\0",
        WSQ_ERR_INVALID_STATE => b"invalid state for this call\0",
        WSQ_ERR_IO => b"operating system error\0",
        WSQ_ERR_BAD_HANDLE => b"server handle was freed\0",
        WSQ_ERR_PANIC => b"internal error (panic caught at the C boundary)\0",
        WSQ_ERR_TLS => b"TLS certificate or key cannot be read or used\0",
    };
    text.as_ptr() as *const c_char
}

/// The detail message of the last failed wsq_ call on the calling thread ("" if none).
/// Never NULL. The string is owned by the library and stays valid until the next wsq_
/// call on the same thread; copy it if you need it longer.
#[no_mangle]
pub extern "C" fn wsq_last_error() -> *const c_char {
    super::panic::guard_or(c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|e| e.borrow().as_ptr())
            .unwrap_or(c"".as_ptr())
    })
}
