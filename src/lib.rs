//! wsqueue: a WebSocket (RFC 6455) server engine with threaded read/write queues,
//! shipped as a C-ABI library.
//!
//! Layers (dependencies point downwards only, see `docs/ARCHITECTURE.md`):
//! - [`ffi`]: the C ABI (`include/wsqueue.h`), the only place with `unsafe` for C's sake.
//! - [`server`]: the safe Rust API.
//! - [`engine`]: sockets, epoll reactors, queues and timers.
//! - [`protocol`]: sans-I/O RFC 6455 (handshake, framing, messages, closing).

pub(crate) mod engine;
pub mod ffi;
pub mod protocol;
pub mod server;

pub use server::{
    CloseInfo, Config, ConnId, DeflateMode, Error, Event, EventHandler, EventKind, MessageKind,
    Replies, RequestInfo, SendStatus, Server, SlowConsumerPolicy, Stats,
};
pub use server::{Pem, TlsListen};
