//! Where a connection's outgoing bytes go: straight to the socket, or through TLS
//! (`tls::TlsSink`). The send queue and the direct write are generic over it, so the
//! plain path compiles to the same `writev` it always was.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

use super::sys;

/// A gathered write that takes what it can: Ok(n) bytes taken (from the front of
/// `iov`), or a would-block error when it takes nothing now.
pub trait Writev {
    fn writev(&mut self, iov: &[IoSlice<'_>]) -> io::Result<usize>;
}

/// A plain (`ws://`) connection's socket.
pub struct PlainSocket(pub RawFd);

impl Writev for PlainSocket {
    #[inline]
    fn writev(&mut self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        sys::writev(self.0, iov)
    }
}
