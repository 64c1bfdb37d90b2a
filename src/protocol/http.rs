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

/// RFC 7230 §3.2.6: a token is one or more tchars.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Every value of header `name` (names compare case-insensitively, RFC 7230 §3.2), in
/// order. The one header lookup, for request heads and the request info built from them.
pub fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The first value of header `name` (case-insensitive).
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl RequestHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
    /// Every value of header `name`, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        header_values(&self.headers, name)
    }
    /// Whether any value of header `name`, read as a comma-separated list, contains
    /// `token` (case-insensitive), e.g. `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        header_values(&self.headers, name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
    /// The path part of the target (before `?`).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// The query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// Accumulates bytes until a full request head has arrived. Remembers how far it has
/// scanned, so a head trickling in one byte at a time costs linear, not quadratic, time.
#[derive(Debug)]
pub struct RequestParser {
    limits: HeadLimits,
    buf: Vec<u8>,
    /// Bytes already searched for the blank line that ends the head.
    scanned: usize,
    done: bool,
}

impl RequestParser {
    pub fn new(limits: HeadLimits) -> Self {
        RequestParser {
            limits,
            buf: Vec::new(),
            scanned: 0,
            done: false,
        }
    }
    /// Adds `chunk`. `Ok(None)`: the head is incomplete. `Ok(Some((head, rest)))`: the
    /// head is complete and `rest` holds the bytes that followed it (frames sent eagerly
    /// by the client). `Err`: the request is refused with that status (400, 431, ...).
    ///
    /// After a complete head (or an error) the parser is done: further calls return
    /// `400`, because one connection carries one upgrade request.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<(RequestHead, Vec<u8>)>, HttpError> {
        if self.done {
            return Err(HttpError {
                status: 400,
                message: "request already parsed",
            });
        }
        self.buf.extend_from_slice(chunk);
        // Resume the search 3 bytes back: the terminator may straddle two chunks.
        let from = self.scanned.saturating_sub(3);
        let end = match find_head_end(&self.buf[from..]) {
            Some(i) => from + i,
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() > self.limits.max_head_bytes {
                    return self.fail(431, "request head too large");
                }
                return Ok(None);
            }
        };
        if end > self.limits.max_head_bytes {
            return self.fail(431, "request head too large");
        }
        self.done = true;
        let head = parse_head(&self.buf[..end], self.limits.max_headers)?;
        let rest = self.buf[end..].to_vec();
        self.buf = Vec::new();
        Ok(Some((head, rest)))
    }

    fn fail<T>(&mut self, status: u16, message: &'static str) -> Result<T, HttpError> {
        self.done = true;
        self.buf = Vec::new();
        Err(HttpError { status, message })
    }
    /// Bytes buffered so far.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// The index just past the blank line that ends a head: `\r\n\r\n`, or bare-LF
/// endings (`\n\n`, `\n\r\n`), which RFC 7230 §3.5 lets a recipient accept.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

fn bad(message: &'static str) -> HttpError {
    HttpError {
        status: 400,
        message,
    }
}

/// Parses a complete head (ending with the blank line) with httparse.
fn parse_head(bytes: &[u8], max_headers: usize) -> Result<RequestHead, HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        // `bytes` ends at the first blank line, so httparse must end there too; if the
        // two ever disagreed, bytes would be dropped from or smuggled into `rest`.
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Ok(httparse::Status::Complete(_)) => return Err(bad("malformed request head")),
        Ok(httparse::Status::Partial) => return Err(bad("malformed request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError {
                status: 431,
                message: "too many header fields",
            })
        }
        Err(_) => return Err(bad("malformed request head")),
    }
    let method = req.method.ok_or(bad("missing method"))?.to_string();
    let target = req.path.ok_or(bad("missing request target"))?.to_string();
    let version_minor = req.version.ok_or(bad("missing HTTP version"))?;
    let mut fields = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| bad("header value is not UTF-8"))?;
        fields.push((h.name.to_string(), value.trim().to_string()));
    }
    Ok(RequestHead {
        method,
        target,
        version_minor,
        headers: fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";

    fn parse(bytes: &[u8]) -> Result<Option<(RequestHead, Vec<u8>)>, HttpError> {
        RequestParser::new(HeadLimits::DEFAULT).feed(bytes)
    }

    #[test]
    fn parses_a_complete_head_and_returns_the_bytes_after_it() {
        // RFC 6455 §4.1: a client may send frames right after its handshake.
        let mut input = REQ.to_vec();
        input.extend_from_slice(&[0x81, 0x80]);
        let (head, rest) = parse(&input).unwrap().unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.path(), "/chat");
        assert_eq!(head.query(), Some("room=1"));
        assert_eq!(head.version_minor, 1);
        assert_eq!(head.header("host"), Some("example.com"));
        assert_eq!(rest, vec![0x81, 0x80]);
    }

    #[test]
    fn token_lists_are_comma_separated_and_case_insensitive() {
        // §4.2.1: Connection must include the token "Upgrade".
        let (head, _) = parse(REQ).unwrap().unwrap();
        assert!(head.has_token("connection", "upgrade"));
        assert!(head.has_token("Upgrade", "WebSocket"));
        assert!(!head.has_token("connection", "close"));
    }

    #[test]
    fn head_fed_one_byte_at_a_time_equals_head_fed_whole() {
        // RFC 9112 §2.2: the head is a byte stream, however TCP cuts it.
        let mut p = RequestParser::new(HeadLimits::DEFAULT);
        let mut result = None;
        for (i, b) in REQ.iter().enumerate() {
            let r = p.feed(std::slice::from_ref(b)).unwrap();
            if i + 1 < REQ.len() {
                assert!(r.is_none());
            } else {
                result = r;
            }
        }
        assert_eq!(result, parse(REQ).unwrap());
    }

    #[test]
    fn oversize_head_is_refused_with_431_before_it_ends() {
        // RFC 6585 §5; RFC 6455 §10.4: bound what an unauthenticated peer can make us hold.
        let mut p = RequestParser::new(HeadLimits {
            max_head_bytes: 100,
            max_headers: 64,
        });
        assert_eq!(p.feed(b"GET / HTTP/1.1\r\nX: ").unwrap(), None);
        let err = p.feed(&[b'a'; 100]).unwrap_err();
        assert_eq!(err.status, 431);
    }

    #[test]
    fn too_many_headers_is_refused_with_431() {
        // RFC 6585 §5
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..10 {
            req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let mut p = RequestParser::new(HeadLimits {
            max_head_bytes: 8192,
            max_headers: 5,
        });
        assert_eq!(p.feed(&req).unwrap_err().status, 431);
    }

    #[test]
    fn garbage_is_refused_with_400() {
        // RFC 9112 §2.2: an invalid request line or field is answered with 400.
        assert_eq!(parse(b"\x00\x01garbage\r\n\r\n").unwrap_err().status, 400);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        // RFC 7230 §3.5: a recipient MAY recognize a single LF as a line terminator.
        let (head, rest) = parse(b"GET / HTTP/1.1\nHost: x\n\nrest").unwrap().unwrap();
        assert_eq!(head.header("host"), Some("x"));
        assert_eq!(rest, b"rest");
    }

    #[test]
    fn the_parser_accepts_one_request_only() {
        // RFC 6455 §4.1: one connection carries one upgrade request.
        let mut p = RequestParser::new(HeadLimits::DEFAULT);
        assert!(p.feed(REQ).unwrap().is_some());
        assert_eq!(p.feed(b"x").unwrap_err().status, 400);
    }

    #[test]
    fn http_1_0_is_reported_not_refused_by_the_parser() {
        // RFC 6455 §4.2.1 item 1 needs HTTP/1.1; handshake.rs enforces it, and a plain
        // HTTP/1.0 GET may still be served by the static fallback.
        let (head, _) = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.version_minor, 0);
    }

    #[test]
    fn head_cut_anywhere_gives_the_same_head_and_rest() {
        // RFC 9112 §2.2: a message arrives as a byte stream; TCP may split it anywhere,
        // including inside the CRLF CRLF that ends the head.
        let mut input = REQ.to_vec();
        input.extend_from_slice(b"\x81\x85abcdefghi");
        let whole = parse(&input).unwrap().unwrap();
        for cut in 1..input.len() {
            let mut p = RequestParser::new(HeadLimits::DEFAULT);
            let first = p.feed(&input[..cut]).unwrap();
            let got = match first {
                // The head ended within the first piece: the caller owns what follows.
                Some((head, mut rest)) => {
                    rest.extend_from_slice(&input[cut..]);
                    (head, rest)
                }
                None => p.feed(&input[cut..]).unwrap().unwrap(),
            };
            assert_eq!(got, whole, "cut at {cut}");
        }
        // One byte at a time, eager frame bytes included: the rest is what followed.
        let mut p = RequestParser::new(HeadLimits::DEFAULT);
        let mut got = None;
        for b in &input[..REQ.len()] {
            got = p.feed(std::slice::from_ref(b)).unwrap();
        }
        let (head, rest) = got.unwrap();
        assert_eq!(head, whole.0);
        assert!(rest.is_empty());
    }

    #[test]
    fn trickled_head_is_scanned_once() {
        // §10.4 / RFC 9112 §2.2: a slow client must not make the server rescan its
        // buffer on every byte (quadratic time); the scan resumes where it stopped.
        let mut p = RequestParser::new(HeadLimits {
            max_head_bytes: 64 * 1024,
            max_headers: 64,
        });
        let mut input = b"GET / HTTP/1.1\r\nX: ".to_vec();
        input.resize(32 * 1024, b'a');
        for b in &input {
            assert_eq!(p.feed(std::slice::from_ref(b)).unwrap(), None);
            assert_eq!(p.scanned, p.buffered());
        }
        let (head, rest) = p.feed(b"\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.header("x").map(str::len), Some(32 * 1024 - 19));
        assert!(rest.is_empty());
    }

    #[test]
    fn head_of_exactly_the_limit_is_accepted_and_one_more_byte_refused_with_431() {
        // RFC 6585 §5: 431 when the header fields are too large.
        let limits = |max| HeadLimits {
            max_head_bytes: max,
            max_headers: 64,
        };
        assert!(RequestParser::new(limits(REQ.len()))
            .feed(REQ)
            .unwrap()
            .is_some());
        let err = RequestParser::new(limits(REQ.len() - 1))
            .feed(REQ)
            .unwrap_err();
        assert_eq!(err.status, 431);
    }

    #[test]
    fn oversize_head_without_line_breaks_is_refused_with_431_while_trickling() {
        // RFC 6585 §5; §10.4: the bound holds before any terminator arrives.
        let mut p = RequestParser::new(HeadLimits {
            max_head_bytes: 64,
            max_headers: 64,
        });
        for _ in 0..64 {
            assert_eq!(p.feed(b"G").unwrap(), None);
        }
        assert_eq!(p.feed(b"G").unwrap_err().status, 431);
        assert_eq!(p.buffered(), 0, "the refused head is not kept");
    }

    #[test]
    fn obsolete_line_folding_is_refused_with_400() {
        // RFC 9112 §5.2: a server MUST reject obs-fold in a request (or replace it);
        // we reject, as folded headers are a classic smuggling vector.
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn unsupported_http_versions_are_refused_with_400() {
        // RFC 9112 §2.3: only HTTP/1.x heads have this syntax.
        for req in [
            &b"GET / HTTP/2.0\r\n\r\n"[..],
            b"GET / HTTP/1\r\n\r\n",
            b"GET /\r\n\r\n",
        ] {
            assert_eq!(parse(req).unwrap_err().status, 400, "{req:?}");
        }
    }
}
