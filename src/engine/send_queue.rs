//! A connection's outbound queue: whole frames waiting to be written, flushed with
//! vectored writes. Shared chunks let a broadcast encode its frame once. Each chunk
//! knows what it is, so the queue can say how many application messages it dropped
//! and when our close frame has been written.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;

use super::recycle;
use super::sys;
use super::transport::Writev;
use crate::protocol::frame::FrameHeader;

/// How many queued chunks one `writev` gathers.
const MAX_IOVECS: usize = 64;
/// Queues this short (the common case) are written with a vector of this many entries.
const FEW_IOVECS: usize = 4;

/// What a queued chunk carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// (The rest of) a message the application sent: counted as unsent if dropped
    /// before its first byte was written.
    Message,
    /// Engine-made bytes: HTTP responses, pings, pongs.
    Control,
    /// Our close frame: its completion starts the close timeout.
    Close,
}

/// A gathering buffer starts this large (sixteen 32-byte echoes fit) ...
const GATHER_INITIAL: usize = 1024;
/// ... and takes no more messages past this size, so one buffer stays one `writev`
/// entry of a reasonable size.
const GATHER_MAX: usize = 64 * 1024;

enum Bytes {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
    /// Several small application messages in one buffer (corked sends: one allocation
    /// per batch, not per message), each a whole frame, and how many. Where each one
    /// starts is read back from the frame headers in the rare case that asks (a queue
    /// dropped part-way through the buffer): a list of offsets kept per message cost
    /// an allocation per batch and about 10 instructions per message.
    Gathered {
        buf: Vec<u8>,
        messages: usize,
    },
}

struct Chunk {
    bytes: Bytes,
    kind: ChunkKind,
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Owned(v) => v,
            Bytes::Shared(a) => a,
            Bytes::Gathered { buf, .. } => buf,
        }
    }

    /// Application messages in this chunk none of whose bytes are among the first
    /// `written` (a message cut short mid-frame reached the peer in part).
    fn unstarted_messages(&self, written: usize) -> usize {
        match (&self.bytes, self.kind) {
            (Bytes::Gathered { messages, .. }, _) if written == 0 => *messages,
            (Bytes::Gathered { buf, .. }, _) => frame_starts(buf).filter(|&s| s >= written).count(),
            (_, ChunkKind::Message) => usize::from(written == 0),
            _ => 0,
        }
    }

    /// Frames this chunk holds.
    fn frames(&self) -> usize {
        match &self.bytes {
            Bytes::Gathered { messages, .. } => *messages,
            _ => 1,
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
    /// Our close frame was completed by this flush.
    pub close_written: bool,
}

/// Where each frame of a gathered buffer (whole frames, back to back) starts.
fn frame_starts(buf: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let start = pos;
        let (header, header_len) = FrameHeader::decode(buf.get(start..)?).ok()??;
        pos = start + header_len + header.payload_len as usize;
        Some(start)
    })
}

/// Appends a frame header. The common lengths (2 bytes up to 125 bytes of payload, 4
/// up to 64 KiB) are fixed-size copies the compiler writes as stores; a copy of a
/// length it does not know is a call to `memcpy`, about 12 instructions more per
/// message.
#[inline(always)]
fn extend_header(buf: &mut Vec<u8>, header: &[u8]) {
    match *header {
        [a, b] => buf.extend_from_slice(&[a, b]),
        [a, b, c, d] => buf.extend_from_slice(&[a, b, c, d]),
        _ => buf.extend_from_slice(header),
    }
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
    pub fn push_owned(&mut self, frame: Vec<u8>, kind: ChunkKind) {
        if frame.is_empty() {
            return;
        }
        self.bytes += frame.len();
        self.chunks.push_back(Chunk {
            bytes: Bytes::Owned(frame),
            kind,
        });
    }
    pub fn push_shared(&mut self, frame: Arc<[u8]>, kind: ChunkKind) {
        if frame.is_empty() {
            return;
        }
        self.bytes += frame.len();
        self.chunks.push_back(Chunk {
            bytes: Bytes::Shared(frame),
            kind,
        });
    }
    /// Appends one small application message (`header` + `payload`), into the same
    /// buffer as the message before it when that one was appended the same way.
    /// Inlined into a corked reply, its one caller. `spare`: the buffer for a new
    /// gathered chunk if it holds one (a reactor's own, lent for a hand-over: no look
    /// at the thread's pool).
    #[inline(always)]
    pub fn push_message(&mut self, header: &[u8], payload: &[u8], spare: &mut Option<Vec<u8>>) {
        let len = header.len() + payload.len();
        self.bytes += len;
        if let Some(Chunk {
            bytes: Bytes::Gathered { buf, messages },
            ..
        }) = self.chunks.back_mut()
        {
            if buf.len() + len <= GATHER_MAX {
                extend_header(buf, header);
                buf.extend_from_slice(payload);
                *messages += 1;
                return;
            }
        }
        let mut buf = match spare.take() {
            Some(mut buf) => {
                buf.reserve(len);
                buf
            }
            None => recycle::take_gather(len.max(GATHER_INITIAL)),
        };
        extend_header(&mut buf, header);
        buf.extend_from_slice(payload);
        self.chunks.push_back(Chunk {
            bytes: Bytes::Gathered { buf, messages: 1 },
            kind: ChunkKind::Message,
        });
    }

    /// Drops everything queued and releases the buffer; returns how many application
    /// messages were dropped before any of their bytes were written (a message cut
    /// short mid-frame reached the peer in part, and is not counted).
    pub fn clear(&mut self) -> usize {
        let unsent = self
            .chunks
            .iter()
            .enumerate()
            .map(|(i, c)| c.unstarted_messages(if i == 0 { self.head_written } else { 0 }))
            .sum();
        self.chunks = VecDeque::new();
        self.head_written = 0;
        self.bytes = 0;
        unsent
    }

    /// Writes as much as the socket takes, gathering up to [`MAX_IOVECS`] frames per
    /// `writev`. Stops at EAGAIN (`blocked`) or when empty. Inlined into its caller, as
    /// it was before TLS made it generic: out of line (with `push_message` and
    /// `consume`), a plain echo cost about 2% more instructions (callgrind, see
    /// bench/RESULTS.md). A gathered chunk's buffer, once written, goes to `keep` when
    /// it is given one that is empty (else back to the thread's pool).
    #[inline(always)]
    pub fn flush(
        &mut self,
        sink: &mut impl Writev,
        mut keep: Option<&mut Option<Vec<u8>>>,
    ) -> io::Result<Flushed> {
        let mut out = Flushed {
            bytes: 0,
            frames: 0,
            blocked: false,
            close_written: false,
        };
        while !self.chunks.is_empty() {
            // Usually one chunk (a corked batch gathers into one): a small vector then,
            // rather than 64 entries set up for one.
            let result = if self.chunks.len() <= FEW_IOVECS {
                self.writev_front::<FEW_IOVECS>(sink)
            } else {
                self.writev_front::<MAX_IOVECS>(sink)
            };
            let written = {
                match result {
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
            let (frames, close) = self.consume(written, keep.as_deref_mut());
            out.frames += frames;
            out.close_written |= close;
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 16 {
            self.chunks = VecDeque::new();
        }
        Ok(out)
    }

    /// One vectored write of up to `N` chunks from the front.
    #[inline(always)]
    fn writev_front<const N: usize>(&self, sink: &mut impl Writev) -> io::Result<usize> {
        let mut iov: [IoSlice<'_>; N] = [IoSlice::new(&[]); N];
        let mut n = 0;
        for (i, chunk) in self.chunks.iter().take(N).enumerate() {
            let bytes = chunk.bytes();
            iov[i] = IoSlice::new(if i == 0 {
                &bytes[self.head_written..]
            } else {
                bytes
            });
            n += 1;
        }
        sink.writev(&iov[..n])
    }

    /// Advances past `written` bytes; returns how many frames were completed, and
    /// whether one of them was our close frame.
    #[inline(always)]
    fn consume(
        &mut self,
        mut written: usize,
        mut keep: Option<&mut Option<Vec<u8>>>,
    ) -> (usize, bool) {
        self.bytes -= written;
        let mut frames = 0;
        let mut close = false;
        while written > 0 {
            let front_left = self.chunks[0].bytes().len() - self.head_written;
            if written >= front_left {
                written -= front_left;
                let done = self.chunks.pop_front().expect("a chunk is being written");
                close |= done.kind == ChunkKind::Close;
                self.head_written = 0;
                frames += done.frames();
                match done.bytes {
                    // A large message's rest came from the spares (`ConnState::write`).
                    Bytes::Owned(buf) => recycle::give_back_large(buf),
                    // A corked batch's buffer serves the thread's next batch.
                    Bytes::Gathered { mut buf, .. } => match keep.as_deref_mut() {
                        Some(slot @ None) if buf.capacity() <= recycle::GATHER_KEPT_MAX => {
                            buf.clear();
                            *slot = Some(buf);
                        }
                        _ => recycle::give_back_gather(buf),
                    },
                    Bytes::Shared(_) => {}
                }
            } else {
                self.head_written += written;
                written = 0;
            }
        }
        (frames, close)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::transport::PlainSocket;
    use crate::protocol::frame::{server_header, OpCode};
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn flush_writes_frames_in_order_and_counts_them() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut q = SendQueue::new();
        q.push_owned(b"hello ".to_vec(), ChunkKind::Message);
        q.push_shared(Arc::from(&b"shared "[..]), ChunkKind::Message);
        q.push_owned(b"world".to_vec(), ChunkKind::Close);
        assert_eq!(q.bytes(), 18);
        let f = q.flush(&mut PlainSocket(a.as_raw_fd()), None).unwrap();
        assert_eq!(
            (f.bytes, f.frames, f.blocked, f.close_written),
            (18, 3, false, true)
        );
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
        q.push_owned(big.clone(), ChunkKind::Message);
        let first = q.flush(&mut PlainSocket(a.as_raw_fd()), None).unwrap();
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
            let f = q.flush(&mut PlainSocket(a.as_raw_fd()), None).unwrap();
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
    fn clear_counts_only_application_messages_not_yet_started() {
        let mut q = SendQueue::new();
        q.push_owned(vec![1, 2, 3], ChunkKind::Message);
        q.push_owned(vec![9], ChunkKind::Control);
        q.push_owned(vec![4], ChunkKind::Message);
        q.push_owned(vec![8, 8], ChunkKind::Close);
        assert_eq!(q.clear(), 2);
        assert_eq!(q.bytes(), 0);
        // A message whose first bytes went out reached the peer in part.
        q.push_owned(vec![1, 2, 3], ChunkKind::Message);
        q.push_owned(vec![4], ChunkKind::Message);
        q.consume(1, None);
        assert_eq!(q.clear(), 1);
    }

    #[test]
    fn a_lent_spare_is_gathered_into_and_comes_back_empty_once_written() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut q = SendQueue::new();
        let spare = Vec::with_capacity(2048);
        let lent = spare.as_ptr();
        let mut slot = Some(spare);
        q.push_message(b"h1", b"one", &mut slot);
        q.push_message(b"h2", b"two", &mut slot);
        assert!(slot.is_none(), "the first message took the spare");
        let mut keep = None;
        let f = q
            .flush(&mut PlainSocket(a.as_raw_fd()), Some(&mut keep))
            .unwrap();
        assert_eq!((f.bytes, f.frames), (10, 2));
        let back = keep.expect("the written buffer comes back");
        assert_eq!(
            (back.as_ptr(), back.len()),
            (lent, 0),
            "the same buffer, emptied"
        );
        assert_eq!(back.capacity(), 2048);
        // A keeper that already holds one leaves the next buffer to the thread's pool.
        q.push_message(b"h3", b"three", &mut None);
        let mut full = Some(back);
        q.flush(&mut PlainSocket(a.as_raw_fd()), Some(&mut full))
            .unwrap();
        assert_eq!(full.map(|v| v.as_ptr()), Some(lent));
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"h1oneh2twoh3three");
    }

    #[test]
    fn gathered_messages_share_one_buffer_and_are_counted_one_by_one() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut q = SendQueue::new();
        q.push_message(b"h1", b"one", &mut None);
        q.push_message(b"h2", b"two", &mut None);
        q.push_message(b"h3", b"three", &mut None);
        assert_eq!(
            q.chunks.len(),
            1,
            "consecutive messages gather into one buffer"
        );
        assert_eq!(q.bytes(), 17);
        q.push_owned(b"pong".to_vec(), ChunkKind::Control);
        q.push_message(b"h4", b"four", &mut None);
        assert_eq!(q.chunks.len(), 3, "a frame in between starts a new buffer");
        let f = q.flush(&mut PlainSocket(a.as_raw_fd()), None).unwrap();
        assert_eq!((f.bytes, f.frames, f.blocked), (27, 5, false));
        drop(a);
        let mut got = String::new();
        b.read_to_string(&mut got).unwrap();
        assert_eq!(got, "h1oneh2twoh3threepongh4four");
    }

    /// Pushes one binary message frame of `len` bytes; returns the frame's length.
    fn push_frame(q: &mut SendQueue, len: usize) -> usize {
        let (header, n) = server_header(OpCode::Binary, true, len as u64);
        q.push_message(&header[..n], &vec![b'x'; len], &mut None);
        n + len
    }

    #[test]
    fn clear_counts_gathered_messages_not_yet_started() {
        // The starts are read back from the frame headers: 2-byte and 4-byte ones.
        let mut q = SendQueue::new();
        let a = push_frame(&mut q, 4);
        push_frame(&mut q, 300);
        push_frame(&mut q, 4);
        assert_eq!(q.chunks.len(), 1, "one gathered buffer");
        q.consume(a + 1, None); // all of a, one byte of b
        assert_eq!(q.clear(), 1, "only c had not started");
        let a = push_frame(&mut q, 130);
        push_frame(&mut q, 4);
        q.consume(a, None); // exactly a
        assert_eq!(q.clear(), 1, "b had not started");
        let a = push_frame(&mut q, 4);
        push_frame(&mut q, 4);
        push_frame(&mut q, 4);
        q.consume(a + 1, None); // into the second frame
        assert_eq!(q.clear(), 1);
        push_frame(&mut q, 4);
        push_frame(&mut q, 4);
        assert_eq!(q.clear(), 2);
    }

    #[test]
    fn a_single_gathered_message_counts_as_one_until_started() {
        let mut q = SendQueue::new();
        q.push_message(b"h", b"only", &mut None);
        assert_eq!(q.clear(), 1);
        q.push_message(b"h", b"only", &mut None);
        q.consume(1, None);
        assert_eq!(q.clear(), 0, "a started message reached the peer in part");
    }

    #[test]
    fn a_gathering_buffer_stops_taking_messages_at_its_maximum() {
        let mut q = SendQueue::new();
        let payload = vec![7u8; 1000];
        for _ in 0..100 {
            q.push_message(b"hh", &payload, &mut None);
        }
        assert!(q.chunks.len() >= 2);
        assert!(q.chunks.iter().all(|c| c.bytes().len() <= GATHER_MAX));
        assert_eq!(q.bytes(), 100 * 1002);
        assert_eq!(q.clear(), 100);
    }
}
