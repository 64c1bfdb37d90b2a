//! The engine's error type: what an application call can fail with.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// A bad argument (empty listen list, oversize control payload, invalid close code...).
    InvalidArgument(&'static str),
    /// No such connection (never existed, or gone long enough to be forgotten).
    NotFound,
    /// The connection is closing or closed: nothing more can be sent.
    Closed,
    /// The connection's send queue is over its limit (see `SlowConsumerPolicy`).
    QueueFull,
    /// The server is stopping or stopped.
    Stopped,
    /// The call does not fit the connection's state (e.g. `accept` on an open connection,
    /// `send` before the handshake completed).
    InvalidState(&'static str),
    /// An operating-system error (bind, epoll, ...).
    Io(io::Error),
    /// A `wss://` listener's certificate or key cannot be read or used (at start).
    Tls(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::NotFound => write!(f, "no such connection"),
            Error::Closed => write!(f, "connection is closing or closed"),
            Error::QueueFull => write!(f, "send queue is full"),
            Error::Stopped => write!(f, "server is stopped"),
            Error::InvalidState(what) => write!(f, "invalid state: {what}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Tls(what) => write!(f, "TLS configuration: {what}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
