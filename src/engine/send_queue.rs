//! A connection's outbound queue: whole frames waiting to be written, flushed with
//! vectored writes. Shared chunks let a broadcast encode its frame once.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::sync::Arc;

use super::sys;

/// How many queued chunks one `writev` gathers.
const MAX_IOVECS: usize = 64;

enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(a) => a,
        }
    }
}

/// Outcome of a flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flushed {
    pub bytes: usize,
    /// Whole frames (messages) completed by this flush.
    pub frames: usize,
    /// The socket would block: wait for writability before writing again.
    pub blocked: bool,
}

#[derive(Default)]
pub struct SendQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    head_written: usize,
    bytes: usize,
}

impl SendQueue {
    pub fn new() -> Self {
        Self::default()
    }
    /// Bytes waiting to be written.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
    pub fn push_owned(&mut self, frame: Vec<u8>) {
        if frame.is_empty() {
            return;
        }
        self.bytes += frame.len();
        self.chunks.push_back(Chunk::Owned(frame));
    }
    pub fn push_shared(&mut self, frame: Arc<[u8]>) {
        if frame.is_empty() {
            return;
        }
        self.bytes += frame.len();
        self.chunks.push_back(Chunk::Shared(frame));
    }
    /// Drops everything queued; returns how many frames were dropped. When the queue
    /// is empty, its buffer is released, so an idle connection holds no queue memory.
    pub fn clear(&mut self) -> usize {
        let frames = self.chunks.len();
        self.chunks = VecDeque::new();
        self.head_written = 0;
        self.bytes = 0;
        frames
    }

    /// Writes as much as the socket takes, gathering up to [`MAX_IOVECS`] frames per
    /// `writev`. Stops at EAGAIN (`blocked`) or when empty.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<Flushed> {
        let mut out = Flushed {
            bytes: 0,
            frames: 0,
            blocked: false,
        };
        while !self.chunks.is_empty() {
            let written = {
                let mut iov: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
                let mut n = 0;
                for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                    let bytes = chunk.bytes();
                    iov[i] = IoSlice::new(if i == 0 {
                        &bytes[self.head_written..]
                    } else {
                        bytes
                    });
                    n += 1;
                }
                match sys::writev(fd, &iov[..n]) {
                    Ok(w) => w,
                    Err(e) if sys::would_block(&e) => {
                        out.blocked = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            out.bytes += written;
            out.frames += self.consume(written);
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 16 {
            self.chunks = VecDeque::new();
        }
        Ok(out)
    }

    /// Advances past `written` bytes; returns how many frames were completed.
    fn consume(&mut self, mut written: usize) -> usize {
        self.bytes -= written;
        let mut frames = 0;
        while written > 0 {
            let front_left = self.chunks[0].bytes().len() - self.head_written;
            if written >= front_left {
                written -= front_left;
                self.chunks.pop_front();
                self.head_written = 0;
                frames += 1;
            } else {
                self.head_written += written;
                written = 0;
            }
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn flush_writes_frames_in_order_and_counts_them() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut q = SendQueue::new();
        q.push_owned(b"hello ".to_vec());
        q.push_shared(Arc::from(&b"shared "[..]));
        q.push_owned(b"world".to_vec());
        assert_eq!(q.bytes(), 18);
        let f = q.flush(a.as_raw_fd()).unwrap();
        assert_eq!((f.bytes, f.frames, f.blocked), (18, 3, false));
        assert!(q.is_empty());
        drop(a);
        let mut got = String::new();
        b.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello shared world");
    }

    #[test]
    fn flush_stops_when_the_socket_would_block_and_resumes_mid_frame() {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut q = SendQueue::new();
        let big: Vec<u8> = (0..4_000_000u32).map(|i| i as u8).collect();
        q.push_owned(big.clone());
        let first = q.flush(a.as_raw_fd()).unwrap();
        assert!(
            first.blocked,
            "a 4 MB frame must not fit in a socket buffer"
        );
        assert_eq!(first.frames, 0);
        assert_eq!(q.bytes(), big.len() - first.bytes);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            got
        });
        let mut total = first.bytes;
        while !q.is_empty() {
            let f = q.flush(a.as_raw_fd()).unwrap();
            total += f.bytes;
            if f.blocked {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        drop(a);
        assert_eq!(total, big.len());
        assert_eq!(reader.join().unwrap(), big);
    }

    #[test]
    fn writing_to_a_reset_peer_is_an_error_not_sigpipe() {
        // Programs embedding the library may keep SIGPIPE's default action (terminate);
        // restore it here (Rust's runtime ignores it) so a raised SIGPIPE kills the test.
        // SAFETY: installs the default disposition; no handler code runs.
        let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let mut q = SendQueue::new();
        q.push_owned(vec![1; 1024]);
        let result = q.flush(a.as_raw_fd());
        // SAFETY: puts back the disposition saved above.
        unsafe { libc::signal(libc::SIGPIPE, previous) };
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EPIPE));
    }

    #[test]
    fn clear_reports_dropped_frames() {
        let mut q = SendQueue::new();
        q.push_owned(vec![1, 2, 3]);
        q.push_owned(vec![4]);
        assert_eq!(q.clear(), 2);
        assert_eq!(q.bytes(), 0);
    }
}
