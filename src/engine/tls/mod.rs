//! `wss://`: TLS under the WebSocket protocol, through rustls (with the `ring`
//! provider; docs/ARCHITECTURE.md says why). The protocol stays sans-I/O and never
//! sees TLS: the reactor feeds ciphertext to a connection's [`TlsSession`] and the
//! plaintext to its `ServerConnection`; writes go through the session's sink.
//!
//! - `config.rs`: a listener's certificate and key, and the rustls configuration.
//! - `session.rs`: one connection's TLS state, reading and writing.

mod config;
mod session;

pub use config::{server_config, Pem, TlsListen};
pub use session::{Received, TlsFailure, TlsSession};
