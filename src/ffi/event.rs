//! Turning engine events into `wsq_event_t`s whose pointers stay valid until
//! `wsq_events_release`.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use super::types::*;
use crate::protocol::MessageKind;
use crate::server::{Event, EventKind, RequestInfo, Server};

/// Owns everything an event's pointers point into.
#[derive(Default)]
struct Storage {
    data: Vec<u8>,
    reason: Vec<u8>,
    path: Vec<u8>,
    remote: Vec<u8>,
    subprotocol: Option<Vec<u8>>,
    header_strings: Vec<(Vec<u8>, Vec<u8>)>,
    headers: Vec<wsq_header_t>,
    /// Something besides `data` was filled (a request or close event).
    rich: bool,
}

/// Released storages kept per thread for the next events, so that an event costs no
/// allocation of its own (a thread polls and releases in turn).
const POOLED_STORAGES: usize = 256;

thread_local! {
    // The boxes themselves are what is reused: an event's `internal` is a Box.
    #[allow(clippy::vec_box)]
    static STORAGES: RefCell<Vec<Box<Storage>>> = const { RefCell::new(Vec::new()) };
}

fn new_storage() -> Box<Storage> {
    STORAGES
        .try_with(|p| p.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Empties a storage (its message buffer goes back to the engine for reuse) and keeps
/// it for a later event.
fn retire_storage(mut storage: Box<Storage>) {
    Server::recycle(std::mem::take(&mut storage.data));
    // Request and close events' strings are freed, not pooled. A message event has
    // none, and skips resetting them (most events are messages).
    if storage.rich {
        *storage = Storage::default();
    }
    let _ = STORAGES.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOLED_STORAGES {
            p.push(storage);
        }
    });
}

/// A NUL-terminated copy (the length before the NUL is the string's own).
fn c_bytes(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

fn empty_event() -> wsq_event_t {
    wsq_event_t {
        event_type: 0,
        message_kind: 0,
        conn: 0,
        tag: 0,
        data: ptr::null(),
        len: 0,
        close_code: 0,
        clean: false,
        reason: ptr::null(),
        reason_len: 0,
        unsent_messages: 0,
        path: ptr::null(),
        remote_addr: ptr::null(),
        subprotocol: ptr::null(),
        headers: ptr::null(),
        header_count: 0,
        internal: ptr::null_mut(),
    }
}

fn fill_request(out: &mut wsq_event_t, storage: &mut Storage, info: &RequestInfo) {
    storage.rich = true;
    storage.path = c_bytes(&info.target);
    storage.remote = c_bytes(&info.remote.map(|a| a.to_string()).unwrap_or_default());
    storage.subprotocol = info.subprotocol.as_deref().map(c_bytes);
    storage.header_strings = info
        .headers
        .iter()
        .map(|(n, v)| (c_bytes(n), c_bytes(v)))
        .collect();
    storage.headers = storage
        .header_strings
        .iter()
        .map(|(n, v)| wsq_header_t {
            name: n.as_ptr() as *const c_char,
            value: v.as_ptr() as *const c_char,
        })
        .collect();
    out.path = storage.path.as_ptr() as *const c_char;
    out.remote_addr = storage.remote.as_ptr() as *const c_char;
    out.subprotocol = storage
        .subprotocol
        .as_ref()
        .map_or(ptr::null(), |s| s.as_ptr() as *const c_char);
    out.headers = storage.headers.as_ptr();
    out.header_count = storage.headers.len();
}

/// Converts an event; the returned struct owns a heap `Storage` through `internal`.
pub fn to_c(event: Event) -> wsq_event_t {
    let mut out = empty_event();
    out.conn = event.conn.0;
    out.tag = event.tag;
    let mut storage = new_storage();
    match event.kind {
        EventKind::Open(info) => {
            out.event_type = WSQ_EVENT_OPEN;
            fill_request(&mut out, &mut storage, &info);
        }
        EventKind::UpgradeRequest(info) => {
            out.event_type = WSQ_EVENT_UPGRADE_REQUEST;
            fill_request(&mut out, &mut storage, &info);
        }
        EventKind::Message { kind, data } => {
            out.event_type = WSQ_EVENT_MESSAGE;
            out.message_kind = message_kind_to_c(kind);
            storage.data = data;
        }
        EventKind::Close(info) => {
            out.event_type = WSQ_EVENT_CLOSE;
            out.close_code = info.code;
            out.clean = info.clean;
            out.unsent_messages = info.unsent_messages;
            out.reason_len = info.reason.len();
            storage.rich = true;
            storage.reason = c_bytes(&info.reason);
            out.reason = storage.reason.as_ptr() as *const c_char;
        }
        EventKind::Drain => out.event_type = WSQ_EVENT_DRAIN,
        EventKind::Ping(data) => {
            out.event_type = WSQ_EVENT_PING;
            storage.data = data;
        }
        EventKind::Pong(data) => {
            out.event_type = WSQ_EVENT_PONG;
            storage.data = data;
        }
    }
    set_payload(&mut out, &storage.data);
    out.internal = Box::into_raw(storage) as *mut core::ffi::c_void;
    out
}

/// Points `out` at a payload: NULL and 0 for an empty one.
fn set_payload(out: &mut wsq_event_t, data: &[u8]) {
    (out.data, out.len) = if data.is_empty() {
        (ptr::null(), 0)
    } else {
        (data.as_ptr(), data.len())
    };
}

/// Handler mode: shows `event` to `f` as a `wsq_event_t` for the call only. A message
/// (the common event) points into the engine's buffer and needs nothing else; the
/// strings of request and close events are NUL-terminated copies, freed afterwards.
pub fn lend(event: &Event, f: impl FnOnce(&wsq_event_t)) {
    let mut out = empty_event();
    out.conn = event.conn.0;
    out.tag = event.tag;
    let data: &[u8] = match &event.kind {
        EventKind::Message { kind, data } => {
            out.event_type = WSQ_EVENT_MESSAGE;
            out.message_kind = message_kind_to_c(*kind);
            data
        }
        EventKind::Ping(data) => {
            out.event_type = WSQ_EVENT_PING;
            data
        }
        EventKind::Pong(data) => {
            out.event_type = WSQ_EVENT_PONG;
            data
        }
        EventKind::Drain => {
            out.event_type = WSQ_EVENT_DRAIN;
            &[]
        }
        EventKind::Open(_) | EventKind::UpgradeRequest(_) | EventKind::Close(_) => {
            // Rare: the owning conversion, with its storage freed after the call.
            let mut owned = to_c(clone_rare(event));
            f(&owned);
            release(&mut owned);
            return;
        }
    };
    set_payload(&mut out, data);
    f(&out)
}

/// Handler mode: shows a run of one connection's message events to `f`, one at a time
/// and in order, as [`lend`] would; the struct is filled once and only each message's
/// own fields change (a panic in `f` loses that event only). Anything but a message
/// is lent on its own.
pub fn lend_messages(events: &[Event], mut f: impl FnMut(&wsq_event_t)) {
    let Some(first) = events.first() else {
        return;
    };
    let mut out = empty_event();
    out.event_type = WSQ_EVENT_MESSAGE;
    out.conn = first.conn.0;
    out.tag = first.tag;
    for event in events {
        let EventKind::Message { kind, data } = &event.kind else {
            lend(event, &mut f);
            continue;
        };
        out.message_kind = message_kind_to_c(*kind);
        set_payload(&mut out, data);
        let _ = catch_unwind(AssertUnwindSafe(|| f(&out)));
    }
}

/// A copy of a request or close event (what `to_c` consumes).
fn clone_rare(event: &Event) -> Event {
    let kind = match &event.kind {
        EventKind::Open(info) => EventKind::Open(info.clone()),
        EventKind::UpgradeRequest(info) => EventKind::UpgradeRequest(info.clone()),
        EventKind::Close(info) => EventKind::Close(info.clone()),
        _ => EventKind::Drain,
    };
    Event {
        conn: event.conn,
        tag: event.tag,
        kind,
    }
}

fn message_kind_to_c(kind: MessageKind) -> u32 {
    match kind {
        MessageKind::Text => WSQ_MESSAGE_TEXT,
        MessageKind::Binary => WSQ_MESSAGE_BINARY,
    }
}

/// Frees an event's storage and clears its pointers, so a second release is harmless.
pub fn release(event: &mut wsq_event_t) {
    if !event.internal.is_null() {
        // SAFETY: `internal` is only ever set by `to_c` from `Box::into_raw(Box<Storage>)`
        // and is nulled here, so it is taken back exactly once.
        retire_storage(unsafe { Box::from_raw(event.internal as *mut Storage) });
    }
    *event = empty_event();
}
