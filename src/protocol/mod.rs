//! Sans-I/O RFC 6455: pure functions and state machines over byte slices.
//!
//! Nothing in this module touches a socket, a thread or a clock, so every rule can be
//! unit-tested, property-tested and fuzzed in isolation. Each rule lives in exactly one
//! file and cites the RFC section it comes from.

pub mod close;
pub mod deflate;
pub mod error;
pub mod extensions;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod mask;
pub mod reader;
pub mod server_connection;
pub mod utf8;

#[cfg(test)]
mod deflate_conn_tests;

pub use close::CloseCode;
pub use error::ProtocolError;
pub use frame::{FrameHeader, OpCode};
pub use reader::{Incoming, Reader};
pub use server_connection::{ConnEvent, ServerConnection};

/// Size limits the inbound side enforces (§10.4: "implementations SHOULD impose
/// implementation-specific limits on frame sizes and the total message size").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of a single frame; over it the connection fails with 1009.
    pub max_frame_size: u64,
    /// Largest reassembled message; over it the connection fails with 1009.
    pub max_message_size: u64,
}

impl Limits {
    /// Default: 16 MiB per frame and per message.
    pub const DEFAULT: Limits = Limits {
        max_frame_size: 16 * 1024 * 1024,
        max_message_size: 16 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The two kinds of data message (§5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Text,
    Binary,
}
