//! Thin, checked wrappers over the Linux calls the engine needs (epoll, eventfd, readv/
//! writev, shutdown). Every `unsafe` block in the engine lives here.

use std::io;
use std::io::IoSlice;
use std::os::fd::RawFd;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// An epoll instance, closed on drop.
pub struct Epoll {
    fd: RawFd,
}

pub const EV_IN: u32 = libc::EPOLLIN as u32;
pub const EV_OUT: u32 = libc::EPOLLOUT as u32;
pub const EV_ERR: u32 = libc::EPOLLERR as u32;
pub const EV_HUP: u32 = libc::EPOLLHUP as u32;
pub const EV_RDHUP: u32 = libc::EPOLLRDHUP as u32;
pub const EV_ET: u32 = libc::EPOLLET as u32;
pub const EV_EXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;

pub type EpollEvent = libc::epoll_event;

pub fn empty_events(n: usize) -> Vec<EpollEvent> {
    vec![libc::epoll_event { events: 0, u64: 0 }; n]
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall, no pointers.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll { fd })
    }

    pub fn raw(&self) -> RawFd {
        self.fd
    }

    pub fn add(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as above; the event argument is ignored for DEL but must be non-null
        // on old kernels.
        cvt(unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_DEL, fd, &mut ev) })?;
        Ok(())
    }

    /// Waits up to `timeout_ms` (-1: forever). EINTR counts as zero events.
    pub fn wait(&self, events: &mut [EpollEvent], timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: the buffer is valid for `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.fd,
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                timeout_ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(n as usize)
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        close(self.fd);
    }
}

/// A non-blocking eventfd used as a level-style "something is waiting" flag.
pub struct EventFd {
    fd: RawFd,
}

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain syscall.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(EventFd { fd })
    }
    pub fn fd(&self) -> RawFd {
        self.fd
    }
    /// Makes the fd readable (idempotent until `clear`).
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64. A full counter (EAGAIN) is still
        // readable, which is all a signal needs, so the result is ignored.
        unsafe { libc::write(self.fd, &one as *const u64 as *const libc::c_void, 8) };
    }
    /// Makes the fd unreadable again.
    pub fn clear(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; EAGAIN (already clear) is fine.
        unsafe { libc::read(self.fd, &mut value as *mut u64 as *mut libc::c_void, 8) };
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        close(self.fd);
    }
}

/// Reads a socket. `recvfrom` rather than `read`: it goes straight to the socket
/// layer, skipping the file layer's checks (`bench/RESULTS.md`, handler mode). Made
/// with `syscall` rather than libc's `recv`, which is a thread cancellation point and
/// switches cancellation on and off around every call; nothing here uses cancellation.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // Every argument as a `long`: `syscall` reads them so.
    // SAFETY: the buffer is valid for `buf.len()` bytes; no address is asked for.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd as libc::c_long,
            buf.as_mut_ptr(),
            buf.len(),
            0 as libc::c_long,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    cvt_size(n as isize)
}

/// A vectored write that never raises SIGPIPE: a peer that reset the connection must
/// give an error code, not kill the embedding program (which may not ignore SIGPIPE).
pub fn writev(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    if let [only] = bufs {
        // One buffer (a corked batch is gathered into one): `send` skips copying in
        // the message header and the iovec array (`bench/RESULTS.md`, handler mode).
        // `sendto` through `syscall`, not libc's `send` (a cancellation point: see
        // `read`). SAFETY: the slice is valid for its length during the call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_sendto,
                fd as libc::c_long,
                only.as_ptr(),
                only.len(),
                libc::MSG_NOSIGNAL as libc::c_long,
                std::ptr::null::<libc::sockaddr>(),
                0 as libc::c_long,
            )
        };
        return cvt_size(n as isize);
    }
    let count = bufs.len().min(libc::UIO_MAXIOV as usize);
    // SAFETY: zeroed msghdr is valid (no name, no control data); IoSlice is
    // ABI-compatible with iovec on Unix, and every slice stays valid during the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = count as _;
    // SAFETY: `msg` points at valid iovecs for the duration of the call.
    cvt_size(unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) })
}

/// Half-closes: our side is done writing (the peer sees EOF after our close frame).
/// The address of the socket's peer (None once it is disconnected).
pub fn peer_addr(fd: RawFd) -> Option<std::net::SocketAddr> {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller's socket is only borrowed: ManuallyDrop never closes `fd`.
    let stream = std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
    stream.peer_addr().ok()
}

pub fn shutdown_write(fd: RawFd) {
    // SAFETY: plain syscall; failure (peer already gone) needs no handling.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe { libc::close(fd) };
}

/// True for errors that mean "try again later" on a non-blocking socket.
pub fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}
