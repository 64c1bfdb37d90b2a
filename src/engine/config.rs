//! Every limit and default of the server, in one place (mirrored field for field by
//! `wsq_config_t` in the C ABI).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::handler::EventHandler;
use super::tls::TlsListen;
pub use crate::protocol::extensions::DeflateMode;

/// What a send does when the connection's send queue is over its hard limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowConsumerPolicy {
    /// The send fails with [`Error::QueueFull`](super::Error::QueueFull); the app may
    /// retry after the connection's `Drain` event.
    Reject,
    /// The send fails with `QueueFull` and the connection is closed with 1008 (policy
    /// violation), reported as a `Close` event with `clean == false`; from then on
    /// nothing more is accepted for it. A broadcast that reaches the hard limit of a
    /// connection applies the same policy. The server budget never closes anyone.
    Close,
}

/// Server configuration. `Config::default()` is safe for a public-facing server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Addresses to listen on (IPv4 and/or IPv6). Port 0 picks a free port; read the
    /// bound addresses back with `Server::local_addrs`. Default: `127.0.0.1:9001`.
    pub listen: Vec<SocketAddr>,
    /// `wss://` addresses, each with the certificate chain and key it presents (TLS
    /// 1.2 and 1.3, ALPN `http/1.1`). One server may listen on both `ws://` and
    /// `wss://`; bound after `listen`, in order (see `Server::local_addrs`). A
    /// certificate or key that cannot be read or used fails the start with
    /// `Error::Tls`. Default: none.
    pub tls_listen: Vec<TlsListen>,
    /// Reactor (I/O) threads; 0 means one per core. Default 0.
    pub reactor_threads: usize,
    /// Open WebSocket connections (including those awaiting `accept`); an upgrade
    /// beyond it is answered `503`. Default 10,000.
    pub max_connections: usize,
    /// Bytes of the HTTP request head; over it: `431`. Default 8 KiB.
    pub max_head_bytes: usize,
    /// Header fields in the request head; over it: `431`. Default 64.
    pub max_headers: usize,
    /// Largest frame payload accepted; over it the connection is closed with 1009.
    /// Default 16 MiB.
    pub max_frame_size: u64,
    /// Largest reassembled message accepted; over it: close 1009. Default 16 MiB.
    pub max_message_size: u64,
    /// Soft limit on the bytes buffered for one connection (its buffered amount). A
    /// send that leaves the connection over it is still accepted, but reports
    /// [`SendStatus::Backpressure`](super::SendStatus::Backpressure); a `Drain` event
    /// follows once the buffered amount is back at `send_queue_low_water`, and the
    /// connection is not read meanwhile (a peer that does not read cannot make the
    /// server buffer its replies). Default 1 MiB.
    pub send_queue_soft_limit: usize,
    /// Hard limit on one connection's buffered bytes: a send that would go over it is
    /// refused with `QueueFull` (and, by `slow_consumer`, the connection closed). A
    /// single message larger than the limit is still accepted into an empty queue, so
    /// large messages remain possible. Default 64 MiB.
    pub send_queue_hard_limit: usize,
    /// The buffered amount at which `Drain` fires after backpressure. Default 256 KiB.
    pub send_queue_low_water: usize,
    /// What a send refused at the hard limit also does. Default
    /// [`SlowConsumerPolicy::Reject`].
    pub slow_consumer: SlowConsumerPolicy,
    /// Server-wide budget for buffered outbound bytes (all connections together): a
    /// send that would go over it is refused with `QueueFull` and counted in
    /// `budget_refusals`. Default 1 GiB.
    pub max_buffered_bytes: usize,
    /// Events waiting to be polled beyond which reactors stop reading sockets (TCP
    /// then pushes back on clients). Lifecycle events (close, drain) are never dropped
    /// and may exceed it briefly. Default 65,536.
    pub event_queue_capacity: usize,
    /// Time allowed from TCP accept to a complete upgrade (and, in manual-accept mode,
    /// to the app's answer); `None` disables. Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// A connection with no inbound traffic for this long is closed with 1001.
    /// Default `None` (off).
    pub idle_timeout: Option<Duration>,
    /// Send a ping after this long without inbound traffic. Default `None` (off).
    pub ping_interval: Option<Duration>,
    /// With `ping_interval` set: a peer silent this long after a ping is dead; the
    /// connection is dropped and reported with 1006. Default 10 s.
    pub pong_timeout: Duration,
    /// How long to wait for the peer's answer to our close frame (and for it to close
    /// TCP) before dropping the connection, counted from when the close frame was
    /// written. Default 5 s.
    pub close_timeout: Duration,
    /// When a peer's protocol error or close follows complete messages, those messages
    /// are delivered first and the close frame waits until the application has polled
    /// past them (so its replies go out before the close), or at most this long.
    /// Default 250 ms.
    pub failure_grace: Duration,
    /// Emit `UpgradeRequest` events and wait for `accept`/`reject` instead of
    /// accepting every valid upgrade. Default false.
    pub manual_accept: bool,
    /// Subprotocols in order of preference. Default empty.
    pub subprotocols: Vec<String>,
    /// Allowed `Origin` values; empty allows any. Default empty.
    pub allowed_origins: Vec<String>,
    /// Directory served to plain HTTP GET/HEAD requests; `None` answers them `404`.
    pub static_dir: Option<PathBuf>,
    /// Also emit `Ping`/`Pong` events (pings are always answered automatically).
    /// Default false.
    pub deliver_ping_pong: bool,
    /// permessage-deflate (RFC 7692) with clients that offer it. `Shared` (default):
    /// no context takeover, one compressor and inflater per thread for all
    /// connections, so compression costs no memory per connection; `Dedicated`:
    /// context takeover where the client allows it, a compressor and an inflater of
    /// `deflate_window_bits` per connection (created on first use); `Off`: decline.
    pub deflate: DeflateMode,
    /// Base-2 logarithm of the compressor's window, 9..=15 (in `Dedicated` mode also
    /// the window asked of clients that let the server choose theirs); a smaller
    /// window costs less memory per connection and compresses less. Default 15.
    pub deflate_window_bits: u8,
    /// Messages shorter than this many bytes are sent uncompressed (deflate gains
    /// little on them and costs time). Default 64.
    pub deflate_min_size: usize,
    /// zlib compression level, 0-9: 1 compresses JSON several times faster than 6 for
    /// about 1.5x the bytes (see bench/RESULTS.md). Default 6 (zlib's default).
    pub deflate_level: u32,
    /// Events are handed to this function on the reactor threads, as they happen,
    /// instead of queued for `poll` (which then returns nothing): no queue, no copy,
    /// no hand-over between threads. See [`EventHandler`]. Default `None` (poll).
    pub event_handler: Option<EventHandler>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 9001))],
            tls_listen: Vec::new(),
            reactor_threads: 0,
            max_connections: 10_000,
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            max_frame_size: 16 * 1024 * 1024,
            max_message_size: 16 * 1024 * 1024,
            send_queue_soft_limit: 1024 * 1024,
            send_queue_hard_limit: 64 * 1024 * 1024,
            send_queue_low_water: 256 * 1024,
            slow_consumer: SlowConsumerPolicy::Reject,
            max_buffered_bytes: 1024 * 1024 * 1024,
            event_queue_capacity: 65_536,
            handshake_timeout: Some(Duration::from_secs(10)),
            idle_timeout: None,
            ping_interval: None,
            pong_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            failure_grace: Duration::from_millis(250),
            manual_accept: false,
            subprotocols: Vec::new(),
            allowed_origins: Vec::new(),
            static_dir: None,
            deliver_ping_pong: false,
            deflate: DeflateMode::Shared,
            deflate_window_bits: 15,
            deflate_min_size: 64,
            deflate_level: 6,
            event_handler: None,
        }
    }
}
