//! The C ABI (`include/wsqueue.h`, generated from this module by cbindgen).
//!
//! Every exported function: runs inside the panic boundary ([`panic::guard`]), checks
//! every pointer and length before use, and maps engine errors to `wsq_result_t` once
//! ([`error::from_engine`]). This is the only module with `unsafe` for C's sake.

// The exported functions are called from C, where an `unsafe fn` marker means nothing;
// their pointer contracts are documented in the header and checked at run time.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod error;
mod event;
pub mod handle;
mod handler_scope;
mod panic;
pub mod types;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use error::wsq_result_t::{self, *};
use error::{from_engine, invalid, set_last_error};
use handle::{new_handle, server_of, take_server, with_server, wsq_server_t};
use panic::{guard, guard_or, guard_void};
use types::*;

use crate::protocol::MessageKind;
use crate::server::Server;
use crate::server::{
    Config, ConnId, DeflateMode, Error, Event, EventHandler, Pem, Replies, SendStatus,
    SlowConsumerPolicy, TlsListen,
};

/// The library version, e.g. "0.1.0". Static; never NULL; do not free.
#[no_mangle]
pub extern "C" fn wsq_version() -> *const c_char {
    guard_or(c"".as_ptr(), || {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
    })
}

// ---- argument checking ----------------------------------------------------------------

/// A borrowed byte slice from C: NULL is allowed only with length 0.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], wsq_result_t> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(invalid("data is NULL but len is not 0"));
    }
    if len > isize::MAX as usize {
        return Err(invalid("len is too large"));
    }
    // SAFETY: the caller promises `ptr` points to `len` readable bytes (documented on
    // every function that takes a buffer).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A borrowed NUL-terminated UTF-8 string from C; NULL gives None.
unsafe fn opt_str<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>, wsq_result_t> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller promises a NUL-terminated string.
    match unsafe { CStr::from_ptr(ptr) }.to_str() {
        Ok(s) => Ok(Some(s)),
        Err(_) => Err(invalid(&format!("{what} is not valid UTF-8"))),
    }
}

fn list(s: Option<&str>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn message_kind(kind: u32) -> Result<MessageKind, wsq_result_t> {
    match kind {
        WSQ_MESSAGE_TEXT => Ok(MessageKind::Text),
        WSQ_MESSAGE_BINARY => Ok(MessageKind::Binary),
        _ => Err(invalid(
            "kind must be WSQ_MESSAGE_TEXT or WSQ_MESSAGE_BINARY",
        )),
    }
}

/// Text messages must be UTF-8 (§5.6): refuse to put an invalid one on the wire.
fn check_text(kind: MessageKind, data: &[u8]) -> Result<(), wsq_result_t> {
    if kind == MessageKind::Text && std::str::from_utf8(data).is_err() {
        return Err(invalid("a text message must be valid UTF-8"));
    }
    Ok(())
}

/// Writes an out-parameter, refusing NULL.
fn write_out<T>(ptr: *mut T, value: T, what: &str) -> Result<(), wsq_result_t> {
    if ptr.is_null() {
        return Err(invalid(&format!("{what} is NULL")));
    }
    // SAFETY: non-null, and every out-parameter is documented to point at a T.
    unsafe { ptr.write(value) };
    Ok(())
}

unsafe fn live(server: *const wsq_server_t) -> Result<std::sync::Arc<Server>, wsq_result_t> {
    if server.is_null() {
        return Err(invalid("server is NULL"));
    }
    // SAFETY: non-null pointers are documented to come from wsq_server_start.
    unsafe { server_of(server) }.ok_or_else(|| {
        set_last_error("the server handle was freed");
        WSQ_ERR_BAD_HANDLE
    })
}

/// Runs `body` in the panic boundary with `?` available for early error returns.
fn call(body: impl FnOnce() -> Result<(), wsq_result_t>) -> wsq_result_t {
    guard(|| match body() {
        Ok(()) => WSQ_OK,
        Err(code) => code,
    })
}

fn send_status(status: SendStatus) -> wsq_result_t {
    match status {
        SendStatus::Accepted => WSQ_OK,
        SendStatus::Backpressure => WSQ_BACKPRESSURE,
    }
}

// ---- configuration and lifecycle --------------------------------------------------------

/// Fills `config` with the defaults (see each field). `config` is written, not read.
/// Returns WSQ_ERR_INVALID_ARGUMENT if `config` is NULL.
#[no_mangle]
pub extern "C" fn wsq_config_init(config: *mut wsq_config_t) -> wsq_result_t {
    call(|| {
        if config.is_null() {
            return Err(invalid("config is NULL"));
        }
        let d = Config::default();
        let c = wsq_config_t {
            listen: c"127.0.0.1:9001".as_ptr(),
            reactor_threads: d.reactor_threads as u32,
            max_connections: d.max_connections as u32,
            max_head_bytes: d.max_head_bytes as u32,
            max_headers: d.max_headers as u32,
            max_frame_size: d.max_frame_size,
            max_message_size: d.max_message_size,
            send_queue_soft_limit: d.send_queue_soft_limit as u64,
            send_queue_hard_limit: d.send_queue_hard_limit as u64,
            send_queue_low_water: d.send_queue_low_water as u64,
            slow_consumer: WSQ_SLOW_CONSUMER_REJECT,
            max_buffered_bytes: d.max_buffered_bytes as u64,
            event_queue_capacity: d.event_queue_capacity as u32,
            handshake_timeout_ms: d.handshake_timeout.map_or(0, |t| t.as_millis() as u32),
            idle_timeout_ms: d.idle_timeout.map_or(0, |t| t.as_millis() as u32),
            ping_interval_ms: d.ping_interval.map_or(0, |t| t.as_millis() as u32),
            pong_timeout_ms: d.pong_timeout.as_millis() as u32,
            close_timeout_ms: d.close_timeout.as_millis() as u32,
            failure_grace_ms: d.failure_grace.as_millis() as u32,
            manual_accept: d.manual_accept,
            deliver_ping_pong: d.deliver_ping_pong,
            subprotocols: std::ptr::null(),
            allowed_origins: std::ptr::null(),
            static_dir: std::ptr::null(),
            deflate: deflate_mode_to_c(d.deflate),
            deflate_window_bits: d.deflate_window_bits as u32,
            deflate_min_size: d.deflate_min_size as u64,
            deflate_level: d.deflate_level,
            tls_listen: std::ptr::null(),
            tls_cert_chain_file: std::ptr::null(),
            tls_private_key_file: std::ptr::null(),
            tls_cert_chain_pem: std::ptr::null(),
            tls_cert_chain_pem_len: 0,
            tls_private_key_pem: std::ptr::null(),
            tls_private_key_pem_len: 0,
            on_event: None,
            on_event_user: std::ptr::null_mut(),
        };
        // SAFETY: non-null, and the caller promises it points to a wsq_config_t.
        unsafe { config.write(c) };
        Ok(())
    })
}

fn millis(ms: u32) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms as u64))
}

fn parse_addrs(text: &str, what: &str) -> Result<Vec<SocketAddr>, wsq_result_t> {
    list(Some(text))
        .into_iter()
        .map(|item| match item.parse() {
            Ok(a) => Ok(a),
            Err(_) => item
                .to_socket_addrs()
                .ok()
                .and_then(|mut it| it.next())
                .ok_or_else(|| invalid(&format!("{what}: cannot parse address {item:?}"))),
        })
        .collect()
}

/// One PEM source of a wss:// listener: the in-memory bytes when given, else the file.
///
/// # Safety
/// `bytes` is NULL or points to `len` readable bytes; `file` is NULL or NUL-terminated.
unsafe fn pem_from_c(
    bytes: *const u8,
    len: usize,
    file: *const c_char,
    what: &str,
) -> Result<Pem, wsq_result_t> {
    if !bytes.is_null() {
        // SAFETY: the caller promises `len` readable bytes at `bytes`.
        return Ok(Pem::Memory(
            unsafe { std::slice::from_raw_parts(bytes, len) }.to_vec(),
        ));
    }
    // SAFETY: as documented on the field.
    match unsafe { opt_str(file, what)? } {
        Some(path) => Ok(Pem::File(PathBuf::from(path))),
        None => Err(invalid(&format!(
            "tls_listen is set but neither {what} nor its _pem bytes are"
        ))),
    }
}

unsafe fn tls_listen_from_c(c: &wsq_config_t) -> Result<Vec<TlsListen>, wsq_result_t> {
    // SAFETY: string fields are documented as NULL or NUL-terminated.
    let Some(text) = (unsafe { opt_str(c.tls_listen, "tls_listen")? }) else {
        return Ok(Vec::new());
    };
    let addrs = parse_addrs(text, "tls_listen")?;
    if addrs.is_empty() {
        return Ok(Vec::new());
    }
    // SAFETY: pointer fields as documented on wsq_config_t.
    let cert_chain = unsafe {
        pem_from_c(
            c.tls_cert_chain_pem,
            c.tls_cert_chain_pem_len,
            c.tls_cert_chain_file,
            "tls_cert_chain_file",
        )?
    };
    // SAFETY: as above.
    let private_key = unsafe {
        pem_from_c(
            c.tls_private_key_pem,
            c.tls_private_key_pem_len,
            c.tls_private_key_file,
            "tls_private_key_file",
        )?
    };
    Ok(addrs
        .into_iter()
        .map(|addr| TlsListen {
            addr,
            cert_chain: cert_chain.clone(),
            private_key: private_key.clone(),
        })
        .collect())
}

unsafe fn config_from_c(c: &wsq_config_t) -> Result<Config, wsq_result_t> {
    // SAFETY: string fields are documented as NULL or NUL-terminated.
    let listen_text = unsafe { opt_str(c.listen, "listen")? }.unwrap_or("127.0.0.1:9001");
    let listen = parse_addrs(listen_text, "listen")?;
    // SAFETY: as above.
    let tls_listen = unsafe { tls_listen_from_c(c)? };
    let slow_consumer = match c.slow_consumer {
        WSQ_SLOW_CONSUMER_REJECT => SlowConsumerPolicy::Reject,
        WSQ_SLOW_CONSUMER_CLOSE => SlowConsumerPolicy::Close,
        _ => {
            return Err(invalid(
                "slow_consumer must be WSQ_SLOW_CONSUMER_REJECT or _CLOSE",
            ))
        }
    };
    let deflate = match c.deflate {
        WSQ_DEFLATE_OFF => DeflateMode::Off,
        WSQ_DEFLATE_SHARED => DeflateMode::Shared,
        WSQ_DEFLATE_DEDICATED => DeflateMode::Dedicated,
        _ => {
            return Err(invalid(
                "deflate must be WSQ_DEFLATE_OFF, _SHARED or _DEDICATED",
            ))
        }
    };
    let defaults = Config::default();
    Ok(Config {
        listen,
        tls_listen,
        reactor_threads: c.reactor_threads as usize,
        max_connections: c.max_connections as usize,
        max_head_bytes: c.max_head_bytes as usize,
        max_headers: c.max_headers as usize,
        max_frame_size: c.max_frame_size,
        max_message_size: c.max_message_size,
        send_queue_soft_limit: usize::try_from(c.send_queue_soft_limit).unwrap_or(usize::MAX),
        send_queue_hard_limit: usize::try_from(c.send_queue_hard_limit).unwrap_or(usize::MAX),
        send_queue_low_water: usize::try_from(c.send_queue_low_water).unwrap_or(usize::MAX),
        slow_consumer,
        max_buffered_bytes: usize::try_from(c.max_buffered_bytes).unwrap_or(usize::MAX),
        event_queue_capacity: c.event_queue_capacity as usize,
        handshake_timeout: millis(c.handshake_timeout_ms),
        idle_timeout: millis(c.idle_timeout_ms),
        ping_interval: millis(c.ping_interval_ms),
        pong_timeout: millis(c.pong_timeout_ms).unwrap_or(defaults.pong_timeout),
        close_timeout: millis(c.close_timeout_ms).unwrap_or(defaults.close_timeout),
        failure_grace: Duration::from_millis(c.failure_grace_ms as u64),
        manual_accept: c.manual_accept,
        deliver_ping_pong: c.deliver_ping_pong,
        // SAFETY: as above.
        subprotocols: list(unsafe { opt_str(c.subprotocols, "subprotocols")? }),
        allowed_origins: list(unsafe { opt_str(c.allowed_origins, "allowed_origins")? }),
        static_dir: unsafe { opt_str(c.static_dir, "static_dir")? }.map(PathBuf::from),
        deflate,
        // Out-of-range values are refused by the engine's validation.
        deflate_window_bits: u8::try_from(c.deflate_window_bits).unwrap_or(u8::MAX),
        deflate_min_size: usize::try_from(c.deflate_min_size).unwrap_or(usize::MAX),
        deflate_level: c.deflate_level,
        // Set by wsq_server_start, which knows the handle the function is given.
        event_handler: None,
    })
}

fn deflate_mode_to_c(mode: DeflateMode) -> u32 {
    match mode {
        DeflateMode::Off => WSQ_DEFLATE_OFF,
        DeflateMode::Shared => WSQ_DEFLATE_SHARED,
        DeflateMode::Dedicated => WSQ_DEFLATE_DEDICATED,
    }
}

/// Starts a server: binds every listen address (`listen`, then `tls_listen`) and
/// starts the reactor threads. `config` (NULL: all defaults) and everything it points
/// to (strings, PEM bytes) are only read during the call; certificate files are read
/// during it too. On WSQ_OK, `*out` receives a handle the caller owns and must release
/// with wsq_server_free; on failure `*out` is set to NULL. Typical failures:
/// WSQ_ERR_IO (address in use), WSQ_ERR_INVALID_ARGUMENT (bad setting),
/// WSQ_ERR_TLS (a certificate chain or key that cannot be read or used); see
/// wsq_last_error for which.
#[no_mangle]
pub extern "C" fn wsq_server_start(
    config: *const wsq_config_t,
    out: *mut *mut wsq_server_t,
) -> wsq_result_t {
    call(|| {
        if out.is_null() {
            return Err(invalid("out is NULL"));
        }
        // SAFETY: non-null out pointer provided by the caller.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: non-null config provided by the caller, read for this call only.
        let handler =
            unsafe { config.as_ref() }.and_then(|c| c.on_event.map(|f| (f, c.on_event_user)));
        let config = if config.is_null() {
            Config::default()
        } else {
            // SAFETY: non-null config provided by the caller, read for this call only.
            unsafe { config_from_c(&*config)? }
        };
        let handle = match handler {
            None => new_handle(Server::start(config).map_err(from_engine)?),
            Some((function, user)) => start_with_handler(config, function, user)?,
        };
        // SAFETY: as above.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// The C function and user pointer of handler mode, as the engine calls them.
#[derive(Clone, Copy)]
struct CHandler {
    function: unsafe extern "C" fn(*mut c_void, *const wsq_server_t, *const wsq_event_t),
    user: *mut c_void,
    server: &'static wsq_server_t,
}

impl CHandler {
    fn call(&self, event: &wsq_event_t) {
        // SAFETY: a function pointer the caller set in its config, called with its own
        // user pointer, the live handle and an event valid for the call.
        unsafe { (self.function)(self.user, self.server, event) }
    }
}

// SAFETY: the function and `user` are called on the I/O threads, which the header
// tells the caller (wsq_config_t.on_event_user); the handle is 'static and Sync.
unsafe impl Send for CHandler {}
// SAFETY: as above.
unsafe impl Sync for CHandler {}

/// Starts a server in handler mode: the C function gets the server's handle, which
/// exists (and blocks calls made through it) before the engine starts.
fn start_with_handler(
    mut config: Config,
    function: unsafe extern "C" fn(*mut c_void, *const wsq_server_t, *const wsq_event_t),
    user: *mut c_void,
) -> Result<*mut wsq_server_t, wsq_result_t> {
    handle::new_handle_with(|server| {
        let c = CHandler {
            function,
            user,
            server,
        };
        let each = move |ev: &Event, replies: &Replies<'_>| {
            handler_scope::enter(c.server, replies);
            event::lend(ev, |e| c.call(e))
        };
        // A run of one connection's messages: one scope and one event struct for all.
        let runs = move |events: &[Event], replies: &Replies<'_>| {
            handler_scope::enter(c.server, replies);
            event::lend_messages(events, |e| c.call(e))
        };
        config.event_handler = Some(EventHandler::with_runs(Arc::new(each), Arc::new(runs)));
        Server::start(config).map_err(from_engine)
    })
}

/// Graceful shutdown: stops accepting, sends close 1001 to every connection after its
/// queued messages, waits up to `timeout_ms` for the connections to close, then drops
/// the rest (their WSQ_EVENT_CLOSE reports unsent_messages). Returns when done.
/// Remaining events can still be polled; afterwards wsq_poll never blocks. Idempotent.
#[no_mangle]
pub extern "C" fn wsq_server_stop(server: *mut wsq_server_t, timeout_ms: u32) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        s.stop(Duration::from_millis(timeout_ms as u64));
        Ok(())
    })
}

/// Stops the server at once (if still running) and releases it. The handle must not
/// be used again; if it is, calls return WSQ_ERR_BAD_HANDLE (never undefined
/// behaviour). Events already polled stay valid until wsq_events_release. NULL is
/// ignored. Safe while other threads are blocked in wsq_poll (they return 0 events).
#[no_mangle]
pub extern "C" fn wsq_server_free(server: *mut wsq_server_t) {
    guard_void(|| {
        if server.is_null() {
            return;
        }
        // SAFETY: non-null pointers come from wsq_server_start.
        if let Some(s) = unsafe { take_server(server) } {
            s.stop(Duration::ZERO);
        }
    })
}

/// Writes the port of the first listen address to `*port` (the first of `listen`, or
/// of `tls_listen` when `listen` is empty).
#[no_mangle]
pub extern "C" fn wsq_server_port(server: *const wsq_server_t, port: *mut u16) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        write_out(port, s.port(), "port")
    })
}

/// Writes listen address number `index` (in config order: those of `listen`, then those
/// of `tls_listen`) as "ip:port" (IPv6:
/// "[ip]:port"), NUL-terminated, into `buf` of `buf_len` bytes (64 is always enough).
/// WSQ_ERR_INVALID_ARGUMENT if `index` is out of range or `buf` is too small.
#[no_mangle]
pub extern "C" fn wsq_server_local_addr(
    server: *const wsq_server_t,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        let Some(addr) = s.local_addrs().get(index) else {
            return Err(invalid("index is out of range"));
        };
        let text = addr.to_string();
        if buf.is_null() || buf_len < text.len() + 1 {
            return Err(invalid("buf is NULL or too small"));
        }
        // SAFETY: `buf` holds at least text.len() + 1 bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, text.len());
            buf.add(text.len()).write(0);
        }
        Ok(())
    })
}

/// Writes the server's event descriptor to `*fd`: it is readable exactly while events
/// wait to be polled (level-style), for select/poll/epoll/asyncio/netpoll integration.
/// Owned by the server: do not close or read it; valid until wsq_server_free.
#[no_mangle]
pub extern "C" fn wsq_server_event_fd(server: *const wsq_server_t, fd: *mut c_int) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        write_out(fd, s.event_fd(), "fd")
    })
}

/// Copies the server's counters into `*out`.
#[no_mangle]
pub extern "C" fn wsq_stats(server: *const wsq_server_t, out: *mut wsq_stats_t) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        let st = s.stats();
        let c = wsq_stats_t {
            connections: st.connections,
            tcp_accepted: st.tcp_accepted,
            handshakes: st.handshakes,
            messages_in: st.messages_in,
            bytes_in: st.bytes_in,
            messages_out: st.messages_out,
            bytes_out: st.bytes_out,
            send_queue_bytes: st.send_queue_bytes,
            event_queue_depth: st.event_queue_depth,
            rejected_bad_handshake: st.rejected_bad_handshake,
            rejected_over_capacity: st.rejected_over_capacity,
            rejected_by_app: st.rejected_by_app,
            handshake_timeouts: st.handshake_timeouts,
            http_requests: st.http_requests,
            protocol_errors: st.protocol_errors,
            too_big: st.too_big,
            queue_full: st.queue_full,
            slow_consumer_closes: st.slow_consumer_closes,
            idle_timeouts: st.idle_timeouts,
            ping_timeouts: st.ping_timeouts,
            unsent_messages: st.unsent_messages,
            read_pauses: st.read_pauses,
            accept_errors: st.accept_errors,
            backpressure_reports: st.backpressure_reports,
            budget_refusals: st.budget_refusals,
            pongs_coalesced: st.pongs_coalesced,
            tls_errors: st.tls_errors,
        };
        write_out(out, c, "out")
    })
}

// ---- events ------------------------------------------------------------------------------

/// Waits up to `timeout_ms` (negative: forever; 0: don't wait) for events and moves up
/// to `capacity` of them into `events[0..*count]`. Returns WSQ_OK with `*count == 0`
/// on timeout, or at once after the server was stopped and drained.
/// Each returned event owns library memory: pass it to wsq_events_release when done
/// (pointers inside stay valid until then, on any thread). Any number of threads may
/// poll the same server at once; each event goes to exactly one of them.
/// Corking: when events are returned, the calling thread's sends to this server are
/// corked (see wsq_cork) until it calls wsq_events_release or wsq_poll again, so that
/// the replies to a batch go out with one system call per connection. Release each
/// batch once it is handled: until then, small messages the thread sent wait. The cork
/// belongs to the calling OS thread: a runtime that moves tasks between threads (Go's
/// goroutines) must keep the polling task on its thread from wsq_poll to
/// wsq_events_release, or another task's sends on that thread wait for its next poll.
/// Threads: a poll that waits (timeout_ms not 0) and finds nothing queued reads the
/// sockets itself in place of the library's I/O threads (one such poller at a time),
/// so a request and its reply need no hand-over between threads. The I/O threads
/// take over again while no poll is waiting for a few milliseconds, so nothing
/// (pings, timeouts, writes) waits on a thread that is busy with its batch.
#[no_mangle]
pub extern "C" fn wsq_poll(
    server: *const wsq_server_t,
    events: *mut wsq_event_t,
    capacity: usize,
    timeout_ms: c_int,
    count: *mut usize,
) -> wsq_result_t {
    call(|| {
        if count.is_null() {
            return Err(invalid("count is NULL"));
        }
        // SAFETY: non-null.
        unsafe { count.write(0) };
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        if events.is_null() || capacity == 0 {
            return Err(invalid("events is NULL or capacity is 0"));
        }
        if s.config().event_handler.is_some() {
            return Err(from_engine(Error::InvalidState(
                "events go to the config's on_event function, not to wsq_poll",
            )));
        }
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        let mut batch = Vec::with_capacity(capacity.min(1024));
        s.poll_into(&mut batch, capacity, timeout);
        let n = batch.len();
        if n > 0 {
            s.cork();
        }
        for (i, ev) in batch.into_iter().enumerate() {
            // SAFETY: i < n <= capacity, and `events` holds `capacity` entries.
            unsafe { events.add(i).write(event::to_c(ev)) };
        }
        // SAFETY: non-null.
        unsafe { count.write(n) };
        Ok(())
    })
}

/// Frees the memory behind `count` events filled by wsq_poll and zeroes them; their
/// pointers become invalid. It also tells the library that the calling thread has
/// handled them (as does its next wsq_poll): what the thread's sends corked is written
/// (wsq_uncork on every server), and a connection that failed or closed right
/// after its last messages sends its close frame only then (or after
/// failure_grace_ms), so that replies to those messages go out first. Releasing an already released (zeroed) event is harmless.
/// NULL is ignored. Pass only events that wsq_poll filled.
#[no_mangle]
pub extern "C" fn wsq_events_release(events: *mut wsq_event_t, count: usize) {
    guard_void(|| {
        // Releasing a batch means it was handled: barriers taken with it pass.
        Server::batch_done();
        if events.is_null() {
            return;
        }
        for i in 0..count {
            // SAFETY: the caller passes an array of `count` events from wsq_poll.
            event::release(unsafe { &mut *events.add(i) });
        }
    })
}

// ---- sending -------------------------------------------------------------------------------

/// Sends one message (`kind` WSQ_MESSAGE_TEXT, which must be valid UTF-8, or
/// WSQ_MESSAGE_BINARY) to `conn`. `data` (NULL allowed when len is 0) is borrowed for
/// the call only: it is written or copied before the call returns. Thread-safe;
/// messages to one connection go out in call order and never interleave.
/// Accepted: WSQ_OK, or WSQ_BACKPRESSURE when the connection's buffered amount is now
/// over send_queue_soft_limit (stop sending to it until WSQ_EVENT_DRAIN). Refused:
/// WSQ_ERR_QUEUE_FULL (over send_queue_hard_limit or max_buffered_bytes; see
/// wsq_config_t.slow_consumer), WSQ_ERR_NOT_FOUND, WSQ_ERR_CLOSED,
/// WSQ_ERR_INVALID_STATE (before open), WSQ_ERR_STOPPED, WSQ_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn wsq_send(
    server: *const wsq_server_t,
    conn: u64,
    kind: u32,
    data: *const c_void,
    len: usize,
) -> wsq_result_t {
    guard(|| {
        if server.is_null() {
            return invalid("server is NULL");
        }
        // From inside this server's handler: through the hand-over's replies, without
        // the handle's lock (the common reply).
        if let Some(rc) = handler_scope::with_replies(server, |r| {
            send_one(&Sender::Replies(r), conn, kind, data, len)
        }) {
            return rc;
        }
        // SAFETY: non-null handles come from wsq_server_start; buffer per the
        // documented contract. A send never blocks, so it may hold the handle's lock.
        unsafe {
            with_server(server, |s| {
                send_one(&Sender::Server(s), conn, kind, data, len)
            })
        }
        .unwrap_or_else(|| {
            set_last_error("the server handle was freed");
            WSQ_ERR_BAD_HANDLE
        })
    })
}

/// How a send reaches the engine: through the hand-over's replies when called from the
/// server's own handler (no handle lock), through the server otherwise.
enum Sender<'a> {
    Replies(&'a Replies<'a>),
    Server(&'a Server),
}

impl Sender<'_> {
    fn send(&self, conn: ConnId, kind: MessageKind, data: &[u8]) -> Result<SendStatus, Error> {
        match self {
            Sender::Replies(r) => r.send(conn, kind, data),
            Sender::Server(s) => s.send(conn, kind, data),
        }
    }
}

fn send_one(s: &Sender<'_>, conn: u64, kind: u32, data: *const c_void, len: usize) -> wsq_result_t {
    let result = (|| {
        let kind = message_kind(kind)?;
        // SAFETY: buffer per the documented contract.
        let data = unsafe { bytes(data as *const u8, len)? };
        check_text(kind, data)?;
        s.send(ConnId(conn), kind, data).map_err(from_engine)
    })();
    match result {
        Ok(status) => send_status(status),
        Err(code) => code,
    }
}

/// Sends `count` messages, each as wsq_send would, in array order, in one call (one
/// crossing of the boundary for many messages: for bindings whose per-call cost is
/// high). Each item's `result` receives that message's outcome. Returns WSQ_OK when
/// every item was attempted (look at each `result`), WSQ_ERR_INVALID_ARGUMENT if
/// `items` is NULL with a non-zero count, WSQ_ERR_BAD_HANDLE for a freed server.
#[no_mangle]
pub extern "C" fn wsq_send_batch(
    server: *const wsq_server_t,
    items: *mut wsq_send_item_t,
    count: usize,
) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        if count == 0 {
            return Ok(());
        }
        if items.is_null() {
            return Err(invalid("items is NULL but count is not 0"));
        }
        if count > isize::MAX as usize / std::mem::size_of::<wsq_send_item_t>() {
            return Err(invalid("count is too large"));
        }
        // SAFETY: the caller passes an array of `count` items.
        let items = unsafe { std::slice::from_raw_parts_mut(items, count) };
        for item in items {
            item.result = send_one(
                &Sender::Server(&s),
                item.conn,
                item.kind,
                item.data,
                item.len,
            ) as u32;
        }
        Ok(())
    })
}

/// Corks the calling thread's sends to `server` until wsq_uncork, wsq_events_release
/// or the thread's next wsq_poll: messages of up to 16 KiB (wsq_send, wsq_send_batch,
/// wsq_broadcast) are accepted and queued instead of written, and each connection is
/// written once, with one vectored write of everything queued for it, at the uncork.
/// Sends from other threads are not delayed (they write what a cork queued for the
/// same connection first, so order holds). wsq_poll corks by itself; call this around
/// sends made outside a poll batch (for example from an event loop's callback).
/// Returns WSQ_OK, or WSQ_ERR_BAD_HANDLE / WSQ_ERR_INVALID_ARGUMENT for a freed or NULL
/// server.
#[no_mangle]
pub extern "C" fn wsq_cork(server: *const wsq_server_t) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        s.cork();
        Ok(())
    })
}

/// Writes what the calling thread's sends to `server` corked (see wsq_cork) and ends
/// its cork. Harmless when nothing is corked. Returns WSQ_OK, or WSQ_ERR_BAD_HANDLE /
/// WSQ_ERR_INVALID_ARGUMENT for a freed or NULL server.
#[no_mangle]
pub extern "C" fn wsq_uncork(server: *const wsq_server_t) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        s.uncork();
        Ok(())
    })
}

/// Writes to `*bytes` how many bytes are accepted for `conn` and not yet written to
/// its socket (its buffered amount, compared with the send_queue_* limits).
#[no_mangle]
pub extern "C" fn wsq_buffered_amount(
    server: *const wsq_server_t,
    conn: u64,
    bytes: *mut u64,
) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        if bytes.is_null() {
            return Err(invalid("bytes is NULL"));
        }
        let n = s.buffered_amount(ConnId(conn)).map_err(from_engine)?;
        write_out(bytes, n as u64, "bytes")
    })
}

/// Sends a ping with `len` ≤ 125 bytes of payload (copied).
#[no_mangle]
pub extern "C" fn wsq_ping(
    server: *const wsq_server_t,
    conn: u64,
    data: *const c_void,
    len: usize,
) -> wsq_result_t {
    call(|| {
        // SAFETY: as for wsq_send.
        let s = unsafe { live(server)? };
        let data = unsafe { bytes(data as *const u8, len)? };
        s.ping(ConnId(conn), data).map_err(from_engine)
    })
}

/// Starts the closing handshake with `code` (1000-1003, 1007-1014 or 3000-4999) and a
/// UTF-8 `reason` of at most 123 bytes (NULL allowed when reason_len is 0). Messages
/// sent earlier go out first; WSQ_EVENT_CLOSE follows when the peer answers (or after
/// close_timeout_ms).
#[no_mangle]
pub extern "C" fn wsq_close(
    server: *const wsq_server_t,
    conn: u64,
    code: u16,
    reason: *const c_char,
    reason_len: usize,
) -> wsq_result_t {
    call(|| {
        // SAFETY: as for wsq_send.
        let s = unsafe { live(server)? };
        let reason = unsafe { bytes(reason as *const u8, reason_len)? };
        let reason =
            std::str::from_utf8(reason).map_err(|_| invalid("reason is not valid UTF-8"))?;
        s.close(ConnId(conn), code, reason).map_err(from_engine)
    })
}

/// Sends one message to every open connection (`conns` NULL) or to the `conn_count`
/// ids in `conns` (borrowed for the call), encoding the frame once. Connections that
/// are closing, gone, or would go over their hard limit (or the server's budget) are
/// skipped; one over its soft limit takes the message and gets WSQ_EVENT_DRAIN later.
/// `*delivered` (may be NULL) receives how many took it.
#[no_mangle]
pub extern "C" fn wsq_broadcast(
    server: *const wsq_server_t,
    kind: u32,
    data: *const c_void,
    len: usize,
    conns: *const u64,
    conn_count: usize,
    delivered: *mut usize,
) -> wsq_result_t {
    call(|| {
        // SAFETY: as for wsq_send; `conns` holds `conn_count` ids when non-null.
        let s = unsafe { live(server)? };
        let kind = message_kind(kind)?;
        let data = unsafe { bytes(data as *const u8, len)? };
        check_text(kind, data)?;
        let ids: Option<Vec<ConnId>> = if conns.is_null() {
            None
        } else {
            let raw = unsafe { bytes(conns as *const u8, conn_count.saturating_mul(8))? };
            Some(
                raw.chunks_exact(8)
                    .map(|c| ConnId(u64::from_ne_bytes(c.try_into().unwrap())))
                    .collect(),
            )
        };
        let n = s
            .broadcast(kind, data, ids.as_deref())
            .map_err(from_engine)?;
        if !delivered.is_null() {
            // SAFETY: non-null.
            unsafe { delivered.write(n) };
        }
        Ok(())
    })
}

/// Sets the connection's user tag, reported in `tag` of every event queued after this
/// call (events already waiting keep the old tag: to tag a connection before its
/// first message, use manual_accept and tag on WSQ_EVENT_UPGRADE_REQUEST).
#[no_mangle]
pub extern "C" fn wsq_set_tag(server: *const wsq_server_t, conn: u64, tag: u64) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        s.set_tag(ConnId(conn), tag).map_err(from_engine)
    })
}

/// Reads the connection's user tag into `*tag`.
#[no_mangle]
pub extern "C" fn wsq_get_tag(
    server: *const wsq_server_t,
    conn: u64,
    tag: *mut u64,
) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked by `live`.
        let s = unsafe { live(server)? };
        if tag.is_null() {
            return Err(invalid("tag is NULL"));
        }
        let value = s.tag(ConnId(conn)).map_err(from_engine)?;
        write_out(tag, value, "tag")
    })
}

// ---- manual accept and adoption ---------------------------------------------------------

/// Manual-accept mode: completes the handshake of a connection that produced
/// WSQ_EVENT_UPGRADE_REQUEST. `subprotocol` (NULL: the server's choice) must be one the
/// client offered; `headers[0..header_count]` (NULL allowed when 0) are added to the
/// 101 response (entries whose name is not a token, whose value has a control
/// character, or that would repeat a header the handshake writes itself, such as
/// Upgrade or Sec-WebSocket-Accept, are dropped). All strings are copied.
/// WSQ_EVENT_OPEN follows.
#[no_mangle]
pub extern "C" fn wsq_accept(
    server: *const wsq_server_t,
    conn: u64,
    subprotocol: *const c_char,
    headers: *const wsq_header_t,
    header_count: usize,
) -> wsq_result_t {
    call(|| {
        // SAFETY: handle checked; strings and the header array per the contract.
        let s = unsafe { live(server)? };
        let subprotocol = unsafe { opt_str(subprotocol, "subprotocol")? };
        if headers.is_null() && header_count > 0 {
            return Err(invalid("headers is NULL but header_count is not 0"));
        }
        let mut extra = Vec::with_capacity(header_count);
        for i in 0..header_count {
            let h = unsafe { &*headers.add(i) };
            let name = unsafe { opt_str(h.name, "header name")? };
            let value = unsafe { opt_str(h.value, "header value")? };
            match (name, value) {
                (Some(n), Some(v)) => extra.push((n.to_string(), v.to_string())),
                _ => return Err(invalid("header name or value is NULL")),
            }
        }
        s.accept(ConnId(conn), subprotocol, &extra)
            .map_err(from_engine)
    })
}

/// Manual-accept mode: refuses the upgrade with HTTP `status` (400-599) and a body of
/// `body_len` bytes (copied; NULL allowed when 0, must be UTF-8). WSQ_EVENT_CLOSE follows.
#[no_mangle]
pub extern "C" fn wsq_reject(
    server: *const wsq_server_t,
    conn: u64,
    status: u16,
    body: *const c_char,
    body_len: usize,
) -> wsq_result_t {
    call(|| {
        // SAFETY: as for wsq_send.
        let s = unsafe { live(server)? };
        let body = unsafe { bytes(body as *const u8, body_len)? };
        let body = std::str::from_utf8(body).map_err(|_| invalid("body is not valid UTF-8"))?;
        s.reject(ConnId(conn), status, body).map_err(from_engine)
    })
}

/// Hands the server an already-accepted TCP socket `fd`, plus `initial_len` bytes
/// already read from it (e.g. a request head read by another HTTP server; copied).
/// The server then runs the handshake and the connection as if it had accepted it;
/// `*conn` (may be NULL) receives the new id. Ownership of `fd`: if the call returns
/// WSQ_ERR_INVALID_ARGUMENT or WSQ_ERR_BAD_HANDLE the caller still owns it; on any
/// other result the library owns it (and has closed it if the call failed).
#[no_mangle]
pub extern "C" fn wsq_adopt(
    server: *const wsq_server_t,
    fd: c_int,
    initial: *const c_void,
    initial_len: usize,
    conn: *mut u64,
) -> wsq_result_t {
    call(|| {
        // SAFETY: as for wsq_send.
        let s = unsafe { live(server)? };
        let initial = unsafe { bytes(initial as *const u8, initial_len)? };
        if !is_stream_socket(fd) {
            return Err(invalid("fd is not an open stream socket"));
        }
        // SAFETY: validated as an open stream socket; ownership passes to us per the
        // documented contract.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        let id = s.adopt(stream, initial).map_err(from_engine)?;
        if !conn.is_null() {
            // SAFETY: non-null.
            unsafe { conn.write(id.0) };
        }
        Ok(())
    })
}

fn is_stream_socket(fd: c_int) -> bool {
    if fd < 0 {
        return false;
    }
    let mut kind: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: valid out-pointers of the right size; a bad fd just fails.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            &mut kind as *mut c_int as *mut libc::c_void,
            &mut len,
        )
    };
    rc == 0 && kind == libc::SOCK_STREAM
}
