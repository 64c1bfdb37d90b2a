//! What the engine reports to the application, through the event queue.

use std::net::SocketAddr;

use crate::protocol::MessageKind;

/// An opaque connection handle. Ids are never reused within a process, so a stale id
/// can only ever yield `NotFound`/`Closed`, never another connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What an accepted send reports (uWebSockets' `SendStatus`): the message is queued
/// either way; `Backpressure` says the connection's buffered amount is now over the
/// soft limit, so the sender should wait for the connection's `Drain` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendStatus {
    Accepted,
    Backpressure,
}

/// One event, with the connection's user tag at the time it was queued.
#[derive(Debug)]
pub struct Event {
    pub conn: ConnId,
    pub tag: u64,
    pub kind: EventKind,
}

#[derive(Debug)]
pub enum EventKind {
    /// The handshake completed: the connection is open.
    Open(Box<RequestInfo>),
    /// Manual-accept mode: a valid upgrade request awaits `accept` or `reject`.
    UpgradeRequest(Box<RequestInfo>),
    /// A complete message (text is valid UTF-8).
    Message { kind: MessageKind, data: Vec<u8> },
    /// The connection is gone; always the last event of a connection that had an
    /// `Open` or `UpgradeRequest` event.
    Close(CloseInfo),
    /// The buffered amount fell to the low-water mark after a send reported
    /// backpressure (or was refused).
    Drain,
    /// A ping arrived (already answered); only with `deliver_ping_pong`.
    Ping(Vec<u8>),
    /// A pong arrived; only with `deliver_ping_pong`.
    Pong(Vec<u8>),
}

/// The upgrade request behind a connection.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    /// Request target: path and query, as sent.
    pub target: String,
    pub remote: Option<SocketAddr>,
    /// The negotiated subprotocol (for `UpgradeRequest`: the one the server would pick).
    pub subprotocol: Option<String>,
    /// The subprotocols the client offered, in its order.
    pub offered_subprotocols: Vec<String>,
    /// Every request header, names as sent.
    pub headers: Vec<(String, String)>,
}

impl RequestInfo {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::protocol::http::find_header(&self.headers, name)
    }
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code: the peer's (1005 if its close frame had none), the one we sent
    /// on a protocol error or limit, or 1006 when TCP ended without a closing handshake.
    pub code: u16,
    pub reason: String,
    /// True when the closing handshake completed (§7.1.4: "closed cleanly").
    pub clean: bool,
    /// Messages accepted by `send` that were never written to the socket.
    pub unsent_messages: u64,
}
