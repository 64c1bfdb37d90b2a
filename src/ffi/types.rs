//! `#[repr(C)]` types of the ABI and the constants that go with them.

use std::ffi::{c_char, c_void};

use super::handle::wsq_server_t;

/// wsq_send / wsq_broadcast: a text message (must be valid UTF-8).
pub const WSQ_MESSAGE_TEXT: u32 = 1;
/// wsq_send / wsq_broadcast: a binary message.
pub const WSQ_MESSAGE_BINARY: u32 = 2;

/// wsq_event_t.event_type: the handshake completed; path, remote_addr, subprotocol and
/// headers are set.
pub const WSQ_EVENT_OPEN: u32 = 1;
/// wsq_event_t.event_type: a complete message in data/len; message_kind says text or binary.
pub const WSQ_EVENT_MESSAGE: u32 = 2;
/// wsq_event_t.event_type: the connection is gone (always its last event); close_code,
/// reason, clean and unsent_messages are set.
pub const WSQ_EVENT_CLOSE: u32 = 3;
/// wsq_event_t.event_type: the connection's buffered amount fell to
/// send_queue_low_water after a send returned WSQ_BACKPRESSURE or WSQ_ERR_QUEUE_FULL.
pub const WSQ_EVENT_DRAIN: u32 = 4;
/// wsq_event_t.event_type: manual-accept mode: answer with wsq_accept or wsq_reject. Same
/// fields as WSQ_EVENT_OPEN (subprotocol is the server's would-be choice).
pub const WSQ_EVENT_UPGRADE_REQUEST: u32 = 5;
/// wsq_event_t.event_type: a ping arrived (already answered); payload in data/len.
pub const WSQ_EVENT_PING: u32 = 6;
/// wsq_event_t.event_type: a pong arrived; payload in data/len.
pub const WSQ_EVENT_PONG: u32 = 7;

/// wsq_config_t.slow_consumer: a send over the hard limit fails with WSQ_ERR_QUEUE_FULL.
pub const WSQ_SLOW_CONSUMER_REJECT: u32 = 0;
/// wsq_config_t.slow_consumer: ...and the connection is closed (code 1008); nothing
/// more is accepted for it. A broadcast reaching its hard limit does the same.
pub const WSQ_SLOW_CONSUMER_CLOSE: u32 = 1;

/// wsq_config_t.deflate: decline permessage-deflate (no compression).
pub const WSQ_DEFLATE_OFF: u32 = 0;
/// wsq_config_t.deflate: permessage-deflate without context takeover, one compressor
/// and inflater per thread shared by every connection (no zlib memory per
/// connection). The default.
pub const WSQ_DEFLATE_SHARED: u32 = 1;
/// wsq_config_t.deflate: permessage-deflate with context takeover where the client
/// allows it: a compressor and an inflater per connection (created on first use),
/// with deflate_window_bits windows. Better ratios, more memory per connection.
pub const WSQ_DEFLATE_DEDICATED: u32 = 2;

/// Server settings. Always fill with wsq_config_init() first, then change fields.
/// String fields are borrowed only for the duration of wsq_server_start (which
/// copies them); NULL means "none" (for listen: the default).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wsq_config_t {
    /// Comma-separated listen addresses, e.g. "127.0.0.1:9001" or "0.0.0.0:0,[::]:0".
    /// Port 0 picks a free port (read it back with wsq_server_port). Default
    /// "127.0.0.1:9001".
    pub listen: *const c_char,
    /// Reactor (I/O) threads; 0 = one per core. Default 0.
    pub reactor_threads: u32,
    /// Open WebSocket connections; more upgrades get HTTP 503. Default 10000.
    pub max_connections: u32,
    /// Request head bytes; over it HTTP 431. Default 8192.
    pub max_head_bytes: u32,
    /// Request header fields; over it HTTP 431. Default 64.
    pub max_headers: u32,
    /// Largest frame payload; over it close 1009. Default 16 MiB.
    pub max_frame_size: u64,
    /// Largest message; over it close 1009. Default 16 MiB.
    pub max_message_size: u64,
    /// Buffered bytes per connection over which an accepted send returns
    /// WSQ_BACKPRESSURE (and the connection is not read until WSQ_EVENT_DRAIN).
    /// Default 1 MiB.
    pub send_queue_soft_limit: u64,
    /// Buffered bytes per connection over which a send is refused with
    /// WSQ_ERR_QUEUE_FULL (one message larger than this still goes into an empty
    /// queue). At least send_queue_soft_limit. Default 64 MiB.
    pub send_queue_hard_limit: u64,
    /// WSQ_EVENT_DRAIN fires when a connection that reported backpressure gets its
    /// buffered amount down to this. At most send_queue_soft_limit. Default 256 KiB.
    pub send_queue_low_water: u64,
    /// What a send refused at the hard limit also does: WSQ_SLOW_CONSUMER_REJECT
    /// (default: nothing more) or WSQ_SLOW_CONSUMER_CLOSE (close with 1008).
    pub slow_consumer: u32,
    /// Buffered bytes over all connections over which sends are refused with
    /// WSQ_ERR_QUEUE_FULL (counted in budget_refusals). Default 1 GiB.
    pub max_buffered_bytes: u64,
    /// Queued events beyond which reactors stop reading sockets. Default 65536.
    pub event_queue_capacity: u32,
    /// Milliseconds from accept to a complete handshake; 0 = off. Default 10000.
    pub handshake_timeout_ms: u32,
    /// Close (1001) after this many ms without inbound traffic; 0 = off (default).
    pub idle_timeout_ms: u32,
    /// Ping after this many ms without inbound traffic; 0 = off (default).
    pub ping_interval_ms: u32,
    /// A pinged peer silent this long is dropped (close event 1006). Default 10000.
    pub pong_timeout_ms: u32,
    /// How long to wait for the peer to finish the closing handshake, counted from
    /// when our close frame was written. Default 5000.
    pub close_timeout_ms: u32,
    /// When a peer's protocol error or close comes after complete messages, those
    /// messages are delivered first and our close frame waits until the application
    /// has polled past them (its replies go out first), or at most this long.
    /// Default 250; 0 = do not wait.
    pub failure_grace_ms: u32,
    /// Emit WSQ_EVENT_UPGRADE_REQUEST and wait for wsq_accept/wsq_reject. Default false.
    pub manual_accept: bool,
    /// Also emit WSQ_EVENT_PING / WSQ_EVENT_PONG. Default false.
    pub deliver_ping_pong: bool,
    /// Comma-separated subprotocols in order of preference; NULL = none.
    pub subprotocols: *const c_char,
    /// Comma-separated allowed Origin values; NULL = any origin.
    pub allowed_origins: *const c_char,
    /// Directory served to plain HTTP GET/HEAD requests; NULL = answer 404.
    pub static_dir: *const c_char,
    /// permessage-deflate (RFC 7692) with clients that offer it: WSQ_DEFLATE_SHARED
    /// (default), WSQ_DEFLATE_DEDICATED or WSQ_DEFLATE_OFF.
    pub deflate: u32,
    /// Base-2 logarithm of the compressor's window, 9-15 (WSQ_DEFLATE_DEDICATED also
    /// asks it of clients that let the server choose theirs). Default 15.
    pub deflate_window_bits: u32,
    /// Messages shorter than this many bytes are sent uncompressed. Default 64.
    pub deflate_min_size: u64,
    /// zlib compression level, 0-9 (1 is several times faster than 6 on JSON, for
    /// about 1.5x the bytes). Default 6.
    pub deflate_level: u32,
    /// Comma-separated wss:// listen addresses (TLS 1.2 and 1.3, ALPN http/1.1), bound
    /// after those of `listen` (wsq_server_addr numbers them in that order); NULL =
    /// none. Every one presents the certificate chain and key below. To serve only
    /// wss://, set `listen` to "". Default NULL.
    pub tls_listen: *const c_char,
    /// Path of a PEM file with the certificate chain, leaf first (read once, by
    /// wsq_server_start). Ignored when tls_cert_chain_pem is set. Default NULL.
    pub tls_cert_chain_file: *const c_char,
    /// Path of a PEM file with the private key (PKCS#8, PKCS#1 or SEC1). Ignored when
    /// tls_private_key_pem is set. Default NULL.
    pub tls_private_key_file: *const c_char,
    /// The certificate chain as PEM bytes in memory (not NUL-terminated; borrowed for
    /// the duration of wsq_server_start, which copies it); NULL = use the file.
    pub tls_cert_chain_pem: *const u8,
    pub tls_cert_chain_pem_len: usize,
    /// The private key as PEM bytes in memory (borrowed like tls_cert_chain_pem; the
    /// library keeps its copy until the server is freed); NULL = use the file.
    pub tls_private_key_pem: *const u8,
    pub tls_private_key_pem_len: usize,
    /// Handler mode: when set, events are not queued for wsq_poll (which then fails
    /// with WSQ_ERR_INVALID_STATE) but handed to this function, on the library's I/O
    /// threads, as they happen: no queue, no copy, no hand-over between threads (the
    /// fastest way to serve many small messages). See wsq_event_handler_t. Default
    /// NULL (poll).
    pub on_event: wsq_event_handler_t,
    /// Passed as is to every on_event call (the library never reads it); whatever it
    /// points to must stay valid, and be usable from the I/O threads, until
    /// wsq_server_stop or wsq_server_free returns. Default NULL.
    pub on_event_user: *mut c_void,
}

/// Handler mode's event function (wsq_config_t.on_event). Called on one of the
/// library's I/O threads with the `user` pointer of the config, the server (as
/// wsq_server_start returned it; calls made with it during wsq_server_start wait
/// until it has returned) and one event. The event and everything it points to are
/// lent for the call only: copy what must outlive it; never pass it to
/// wsq_events_release.
/// Order and threads: one connection's events arrive in order, on one thread, never
/// two at once; different connections' events may arrive on different I/O threads at
/// the same time (one per reactor_threads), so shared state needs a lock.
/// While the function runs, its I/O thread serves nothing else: return quickly, and
/// hand slow work to a thread of your own (which may call wsq_send at any time).
/// Every wsq_* call is allowed inside except wsq_poll and wsq_events_release; messages
/// sent inside are corked and written once per connection after the function has
/// handled the events read together (as after a wsq_poll batch), and a close that
/// followed those messages is sent after the replies. wsq_server_stop called inside
/// begins the stop and returns at once; wsq_server_free called inside frees the handle
/// and lets the I/O threads finish the stop on their own. Close events of the
/// connections a stop closes are still delivered, before wsq_server_stop (called
/// outside) returns; none after. The function must not unwind (C++ exceptions,
/// longjmp) into the library.
#[allow(non_camel_case_types)]
pub type wsq_event_handler_t = Option<
    unsafe extern "C" fn(user: *mut c_void, server: *const wsq_server_t, event: *const wsq_event_t),
>;

/// One HTTP header: NUL-terminated name and value.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wsq_header_t {
    pub name: *const c_char,
    pub value: *const c_char,
}

/// One event from wsq_poll. Every pointer in it points into storage owned by the
/// library, valid until the event is passed to wsq_events_release (and not after).
/// Pointers not meaningful for the event's type are NULL (lengths 0).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wsq_event_t {
    /// One of WSQ_EVENT_*.
    pub event_type: u32,
    /// WSQ_EVENT_MESSAGE: WSQ_MESSAGE_TEXT or WSQ_MESSAGE_BINARY; otherwise 0.
    pub message_kind: u32,
    /// The connection id.
    pub conn: u64,
    /// The connection's user tag (wsq_set_tag) when the event was queued.
    pub tag: u64,
    /// Message, ping or pong payload (not NUL-terminated; text is valid UTF-8).
    pub data: *const u8,
    pub len: usize,
    /// WSQ_EVENT_CLOSE: the close code (1005: none given; 1006: lost without a close).
    pub close_code: u16,
    /// WSQ_EVENT_CLOSE: true when the closing handshake completed.
    pub clean: bool,
    /// WSQ_EVENT_CLOSE: UTF-8 reason, NUL-terminated, reason_len bytes before the NUL.
    pub reason: *const c_char,
    pub reason_len: usize,
    /// WSQ_EVENT_CLOSE: messages accepted by wsq_send that were never written.
    pub unsent_messages: u64,
    /// OPEN / UPGRADE_REQUEST: request target (path and query), NUL-terminated.
    pub path: *const c_char,
    /// OPEN / UPGRADE_REQUEST: peer address as "ip:port" (IPv6 as "[ip]:port"); "" if unknown.
    pub remote_addr: *const c_char,
    /// OPEN / UPGRADE_REQUEST: negotiated subprotocol, or NULL.
    pub subprotocol: *const c_char,
    /// OPEN / UPGRADE_REQUEST: every request header, in order.
    pub headers: *const wsq_header_t,
    pub header_count: usize,
    /// Library-owned storage behind the pointers above; do not touch.
    pub internal: *mut core::ffi::c_void,
}

/// A snapshot of the server's counters (see wsq_stats).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct wsq_stats_t {
    /// Open WebSocket connections (including those awaiting accept).
    pub connections: u64,
    /// TCP connections accepted or adopted since start.
    pub tcp_accepted: u64,
    /// Handshakes completed since start.
    pub handshakes: u64,
    pub messages_in: u64,
    pub bytes_in: u64,
    /// Data messages accepted by wsq_send (one per connection a broadcast reached).
    pub messages_out: u64,
    pub bytes_out: u64,
    /// Bytes queued for writing over all connections.
    pub send_queue_bytes: u64,
    /// Events waiting to be polled.
    pub event_queue_depth: u64,
    /// Handshakes refused with 400/403/405/426/431.
    pub rejected_bad_handshake: u64,
    /// Upgrades refused with 503 at max_connections.
    pub rejected_over_capacity: u64,
    /// Upgrades refused by wsq_reject.
    pub rejected_by_app: u64,
    pub handshake_timeouts: u64,
    /// Plain HTTP requests answered (static files or 404).
    pub http_requests: u64,
    /// Connections failed with 1002/1007.
    pub protocol_errors: u64,
    /// Connections failed with 1009.
    pub too_big: u64,
    /// Sends refused at a connection's hard limit (WSQ_ERR_QUEUE_FULL).
    pub queue_full: u64,
    pub slow_consumer_closes: u64,
    pub idle_timeouts: u64,
    pub ping_timeouts: u64,
    /// Messages accepted by send but never written.
    pub unsent_messages: u64,
    /// Times reading paused because the event queue was full.
    pub read_pauses: u64,
    pub accept_errors: u64,
    /// Sends that returned WSQ_BACKPRESSURE.
    pub backpressure_reports: u64,
    /// Sends refused because the server-wide max_buffered_bytes was reached.
    pub budget_refusals: u64,
    /// Pings answered by a pong that was already pending (only the latest ping is
    /// answered, RFC 6455 §5.5.3).
    pub pongs_coalesced: u64,
    /// wss:// connections closed because TLS failed (plain HTTP or garbage on a TLS
    /// port, a handshake that cannot be agreed, a bad record); an alert was sent.
    pub tls_errors: u64,
}

/// One message of wsq_send_batch: filled by the caller, except `result`, which the
/// call writes (what wsq_send would have returned for this message).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct wsq_send_item_t {
    pub conn: u64,
    /// WSQ_MESSAGE_TEXT or WSQ_MESSAGE_BINARY.
    pub kind: u32,
    /// Written by wsq_send_batch: WSQ_OK, WSQ_BACKPRESSURE or an error code.
    pub result: u32,
    /// The payload, borrowed for the duration of the call (NULL allowed when len is 0).
    pub data: *const core::ffi::c_void,
    pub len: usize,
}
