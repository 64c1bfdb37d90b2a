//! Incremental parsing of the HTTP/1.1 request head (RFC 7230 §3, RFC 6455 §4.1).

/// Bounds on the request head (§10.4 applies to headers as much as to frames).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Request line plus headers plus the blank line; over it: 431.
    pub max_head_bytes: usize,
    /// Number of header fields; over it: 431.
    pub max_headers: usize,
}

impl HeadLimits {
    pub const DEFAULT: HeadLimits = HeadLimits {
        max_head_bytes: 8 * 1024,
        max_headers: 64,
    };
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A request the server refuses at the HTTP level, with the status to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    /// Short human-readable text for the response body and logs.
    pub message: &'static str,
}

/// A parsed request head. Header names keep their case; look-ups ignore it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request-target as sent (path and query).
    pub target: String,
    /// HTTP/1.x minor version.
    pub version_minor: u8,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let _ = name;
        todo!()
    }
    /// Every value of header `name`, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Whether any value of header `name`, read as a comma-separated list, contains
    /// `token` (case-insensitive), e.g. `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        let _ = (name, token);
        todo!()
    }
    /// The path part of the target (before `?`).
    pub fn path(&self) -> &str {
        todo!()
    }
    /// The query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        todo!()
    }
}

/// Accumulates bytes until a full request head has arrived. Remembers how far it has
/// scanned, so a head trickling in one byte at a time costs linear, not quadratic, time.
#[derive(Debug)]
pub struct RequestParser {
    limits: HeadLimits,
    buf: Vec<u8>,
}

impl RequestParser {
    pub fn new(limits: HeadLimits) -> Self {
        RequestParser {
            limits,
            buf: Vec::new(),
        }
    }
    /// Adds `chunk`. `Ok(None)`: the head is incomplete. `Ok(Some((head, rest)))`: the
    /// head is complete and `rest` holds the bytes that followed it (frames sent eagerly
    /// by the client). `Err`: the request is refused with that status (400, 431, ...).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<(RequestHead, Vec<u8>)>, HttpError> {
        let _ = (chunk, self.limits, &self.buf);
        todo!()
    }
    /// Bytes buffered so far.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}
