//! The server's opening handshake (§4.2): validation, negotiation and response bytes.

use super::extensions::{parse_extensions, ExtensionOffer};
use super::http::RequestHead;

/// §1.3: the GUID appended to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client key (§4.2.2 step 5.4).
pub fn accept_key(client_key: &str) -> String {
    use base64::Engine as _;
    use sha1::{Digest, Sha1};
    let mut sha = Sha1::new();
    sha.update(client_key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// What the server allows, from its configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandshakePolicy {
    /// Allowed `Origin` values (exact, case-insensitive match). Empty: any origin, or none.
    pub allowed_origins: Vec<String>,
    /// Supported subprotocols in the server's order of preference.
    pub subprotocols: Vec<String>,
}

/// A valid upgrade request, with what was negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The client's `Sec-WebSocket-Key`, as sent.
    pub key: String,
    /// The value of `Sec-WebSocket-Accept` to send.
    pub accept: String,
    pub origin: Option<String>,
    /// Subprotocols the client offered, in its order.
    pub offered_subprotocols: Vec<String>,
    /// The server's choice: the first of its own list that the client offered (§4.2.2).
    pub subprotocol: Option<String>,
    pub extensions: Vec<ExtensionOffer>,
}

/// A refused request: the status, extra headers and a short body to send back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

fn reject(status: u16, body: &str) -> Rejection {
    Rejection {
        status,
        headers: Vec::new(),
        body: format!("{body}\n"),
    }
}

/// True when the request asks for a WebSocket upgrade at all (`Upgrade: websocket`);
/// a request that does not is plain HTTP, for the server's HTTP fallback.
pub fn is_upgrade_request(head: &RequestHead) -> bool {
    head.has_token("Upgrade", "websocket")
}

/// Validates an upgrade request (§4.2.1) against `policy` and negotiates (§4.2.2).
/// A wrong `Sec-WebSocket-Version` gets 426 with `Sec-WebSocket-Version: 13` (§4.4);
/// a refused origin 403; a method other than GET 405 (the resource exists, the method
/// does not apply, and 405 says so more precisely than 400); anything else malformed 400.
pub fn validate(head: &RequestHead, policy: &HandshakePolicy) -> Result<UpgradeRequest, Rejection> {
    use base64::Engine as _;
    // §4.2.1 item 1: an HTTP/1.1 or higher GET request.
    if head.method != "GET" {
        let mut r = reject(405, "a WebSocket upgrade must use GET");
        r.headers.push(("Allow".into(), "GET".into()));
        return Err(r);
    }
    if head.version_minor < 1 {
        return Err(reject(400, "a WebSocket upgrade needs HTTP/1.1 or later"));
    }
    // §4.2.1 item 2: a Host header field.
    if head.header("Host").map_or(true, |h| h.is_empty()) {
        return Err(reject(400, "missing Host header"));
    }
    // §4.2.1 items 3-4.
    if !head.has_token("Upgrade", "websocket") {
        return Err(reject(400, "Upgrade header must contain websocket"));
    }
    if !head.has_token("Connection", "Upgrade") {
        return Err(reject(400, "Connection header must contain Upgrade"));
    }
    // §4.2.1 item 6, §4.4: anything but version 13 gets 426 naming the one we speak.
    let versions: Vec<&str> = head.header_values("Sec-WebSocket-Version").collect();
    if versions.len() != 1 || versions[0].trim() != "13" {
        let mut r = reject(426, "unsupported WebSocket version; this server speaks 13");
        r.headers
            .push(("Sec-WebSocket-Version".into(), "13".into()));
        return Err(r);
    }
    // §4.2.1 item 5: a base64 nonce that decodes to exactly 16 bytes.
    let keys: Vec<&str> = head.header_values("Sec-WebSocket-Key").collect();
    if keys.len() != 1 {
        return Err(reject(
            400,
            "exactly one Sec-WebSocket-Key header is required",
        ));
    }
    let key = keys[0].trim();
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err(reject(400, "Sec-WebSocket-Key must be 16 bytes in base64")),
    }
    // §4.2.2 / §10.2: the server decides which origins it serves. With an allow-list,
    // a request without Origin is refused too: non-browser clients can send one.
    // More than one Origin would let a checker and a logger disagree about which
    // counts; refuse it like a duplicate key.
    let origins: Vec<&str> = head.header_values("Origin").collect();
    if origins.len() > 1 {
        return Err(reject(400, "more than one Origin header"));
    }
    let origin = origins.first().map(|o| o.to_string());
    if !policy.allowed_origins.is_empty() {
        let allowed = origin.as_deref().is_some_and(|o| {
            policy
                .allowed_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(o))
        });
        if !allowed {
            return Err(reject(403, "origin not allowed"));
        }
    }
    // §4.2.2 step 4 /subprotocol/: the first of the server's list the client offered.
    let offered: Vec<String> = head
        .header_values("Sec-WebSocket-Protocol")
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let subprotocol = policy
        .subprotocols
        .iter()
        .find(|s| offered.iter().any(|o| o == *s))
        .cloned();
    let extensions = parse_extensions(head.header_values("Sec-WebSocket-Extensions"))
        .map_err(|_| reject(400, "malformed Sec-WebSocket-Extensions"))?;
    Ok(UpgradeRequest {
        key: key.to_string(),
        accept: accept_key(key),
        origin,
        offered_subprotocols: offered,
        subprotocol,
        extensions,
    })
}

/// Headers `render_accept` writes itself, or that a 101 must not carry. A caller's copy
/// is dropped: a second `Sec-WebSocket-Accept` or `-Protocol` makes the client fail the
/// connection (§4.1, its checks of the response), `Sec-WebSocket-Extensions` would announce an extension the
/// engine did not negotiate (§9.1: only the engine's own answer, passed to
/// `render_accept`, matches what its reader and writer do), and a
/// 1xx response has no content, so no framing headers (RFC 9110 §8.6, RFC 9112 §6.1).
const RESERVED_IN_ACCEPT: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
];

/// Headers `render_head` writes itself. A caller's second `Content-Length` or a
/// `Transfer-Encoding` would let a proxy in front of us frame the body differently from
/// the client: response splitting by another door (RFC 9112 §6.3).
const RESERVED_IN_RESPONSE: &[&str] = &[
    "Content-Type",
    "Content-Length",
    "Connection",
    "Transfer-Encoding",
];

/// A header that can be written safely: a token name (RFC 9110 §5.1) and a value of
/// visible characters, spaces and tabs only (§5.5). CR, LF or NUL could split the
/// response; other controls are invalid and some intermediaries mangle them.
fn is_safe_header(name: &str, value: &str) -> bool {
    super::http::is_token(name)
        && value
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Writes the headers that are safe and not `reserved`; drops the others rather than
/// failing, because a response must still go out (documented on the callers).
fn push_headers(out: &mut Vec<u8>, headers: &[(String, String)], reserved: &[&str]) {
    for (name, value) in headers {
        if is_safe_header(name, value) && !reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The `101 Switching Protocols` response (§4.2.2 step 5). `extra_headers` are appended
/// except those that are unsafe (a name that is not a token, or a value with CR, LF, NUL
/// or another control character) or reserved (`Upgrade`, `Connection`,
/// `Sec-WebSocket-Accept`, `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`,
/// `Content-Length`, `Transfer-Encoding`): those are dropped, not rejected, so that a
/// bad header from an application cannot break the handshake or split the response.
pub fn render_accept(
    accept: &str,
    subprotocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(String, String)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = subprotocol {
        // §4.2.2 step 5.5: only when one was selected; none selected means no header.
        push_headers(
            &mut out,
            &[("Sec-WebSocket-Protocol".to_string(), p.to_string())],
            &[],
        );
    }
    if let Some(e) = extensions {
        // §9.1: the extensions the server accepted, as negotiated.
        push_headers(
            &mut out,
            &[("Sec-WebSocket-Extensions".to_string(), e.to_string())],
            &[],
        );
    }
    push_headers(&mut out, extra_headers, RESERVED_IN_ACCEPT);
    out.extend_from_slice(b"\r\n");
    out
}

/// The head of a complete HTTP/1.1 response whose content is `content_length` bytes:
/// status line, `headers`, `Content-Type`, `Content-Length`, `Connection: close` and the
/// blank line. For a response to HEAD (RFC 9110 §9.3.2), which carries the length of
/// the content it does not send. Unsafe or reserved (`Content-Type`, `Content-Length`,
/// `Connection`, `Transfer-Encoding`) entries of `headers` are dropped.
pub fn render_head(
    status: u16,
    headers: &[(String, String)],
    content_type: &str,
    content_length: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    push_headers(&mut out, headers, RESERVED_IN_RESPONSE);
    push_headers(
        &mut out,
        &[("Content-Type".to_string(), content_type.to_string())],
        &[],
    );
    // Connection: close because the engine serves one request per connection.
    out.extend_from_slice(
        format!("Content-Length: {content_length}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    out
}

/// A complete HTTP/1.1 response: `render_head` for `body`, then `body`.
pub fn render_response(
    status: u16,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = render_head(status, headers, content_type, body.len() as u64);
    out.extend_from_slice(body);
    out
}

/// The content type of every response the server writes itself.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// A complete plain-text response: the one shape of every error the server writes.
pub fn text_response(status: u16, body: &[u8]) -> Vec<u8> {
    render_response(status, &[], TEXT_PLAIN, body)
}

/// The response for a rejection (text/plain body).
pub fn render_rejection(rejection: &Rejection) -> Vec<u8> {
    render_response(
        rejection.status,
        &rejection.headers,
        TEXT_PLAIN,
        rejection.body.as_bytes(),
    )
}

/// The standard reason phrase for the statuses this server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::{HeadLimits, RequestParser};

    fn head(extra: &str) -> RequestHead {
        head_with("GET", "HTTP/1.1", extra)
    }

    fn head_with(method: &str, version: &str, extra: &str) -> RequestHead {
        let text = format!(
            "{method} /chat {version}\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        parse_raw(&text)
    }

    fn parse_raw(text: &str) -> RequestHead {
        RequestParser::new(HeadLimits::DEFAULT)
            .feed(text.as_bytes())
            .unwrap()
            .unwrap()
            .0
    }

    fn status(h: &RequestHead, policy: &HandshakePolicy) -> u16 {
        validate(h, policy).unwrap_err().status
    }

    #[test]
    fn rfc_sample_key_gives_the_rfc_accept() {
        // §1.3 / §4.2.2
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let up = validate(&head(""), &HandshakePolicy::default()).unwrap();
        assert_eq!(up.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn rejects_non_get_with_405() {
        // §4.2.1 item 1
        let h = head_with("POST", "HTTP/1.1", "");
        let r = validate(&h, &HandshakePolicy::default()).unwrap_err();
        assert_eq!(r.status, 405);
        assert!(r.headers.contains(&("Allow".into(), "GET".into())));
    }

    #[test]
    fn rejects_http_1_0_with_400() {
        // §4.2.1 item 1
        assert_eq!(
            status(
                &head_with("GET", "HTTP/1.0", ""),
                &HandshakePolicy::default()
            ),
            400
        );
    }

    #[test]
    fn rejects_missing_host_with_400() {
        // §4.2.1 item 2
        let h = parse_raw("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        assert_eq!(status(&h, &HandshakePolicy::default()), 400);
    }

    #[test]
    fn requires_upgrade_and_connection_tokens() {
        // §4.2.1 items 3-4
        let h = parse_raw("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        assert_eq!(status(&h, &HandshakePolicy::default()), 400);
        let h = parse_raw("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive\r\nConnection: UPGRADE\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        assert!(
            validate(&h, &HandshakePolicy::default()).is_ok(),
            "tokens across lines, any case"
        );
    }

    #[test]
    fn rejects_keys_that_are_not_16_bytes() {
        // §4.2.1 item 5
        for key in [
            "",
            "dGhlIHNhbXBsZQ==",
            "not base64!!",
            "dGhlIHNhbXBsZSBub25jZSE=",
        ] {
            let h = parse_raw(&format!("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"));
            assert_eq!(status(&h, &HandshakePolicy::default()), 400, "{key}");
        }
    }

    #[test]
    fn rejects_version_other_than_13_with_426() {
        // §4.4
        let h = parse_raw("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n");
        let r = validate(&h, &HandshakePolicy::default()).unwrap_err();
        assert_eq!(r.status, 426);
        assert!(r
            .headers
            .contains(&("Sec-WebSocket-Version".into(), "13".into())));
        let text = String::from_utf8(render_rejection(&r)).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn origin_allow_list_refuses_others_with_403() {
        // §10.2
        let policy = HandshakePolicy {
            allowed_origins: vec!["https://good.example".into()],
            subprotocols: vec![],
        };
        assert!(validate(&head("Origin: https://GOOD.example\r\n"), &policy).is_ok());
        assert_eq!(
            status(&head("Origin: https://evil.example\r\n"), &policy),
            403
        );
        assert_eq!(
            status(&head(""), &policy),
            403,
            "missing Origin with an allow-list"
        );
        assert!(validate(
            &head("Origin: https://any\r\n"),
            &HandshakePolicy::default()
        )
        .is_ok());
    }

    #[test]
    fn subprotocol_is_chosen_by_server_preference() {
        // §4.2.2: the server selects one of the client's values.
        let policy = HandshakePolicy {
            allowed_origins: vec![],
            subprotocols: vec!["v2".into(), "v1".into()],
        };
        let up = validate(&head("Sec-WebSocket-Protocol: v1, v2\r\n"), &policy).unwrap();
        assert_eq!(up.subprotocol.as_deref(), Some("v2"));
        assert_eq!(up.offered_subprotocols, vec!["v1", "v2"]);
        let up = validate(
            &head("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: v1\r\n"),
            &policy,
        )
        .unwrap();
        assert_eq!(up.subprotocol.as_deref(), Some("v1"));
        let up = validate(&head("Sec-WebSocket-Protocol: other\r\n"), &policy).unwrap();
        assert_eq!(up.subprotocol, None);
    }

    #[test]
    fn extension_offers_are_parsed_and_bad_ones_refused() {
        // §9.1 grammar; a header that does not follow it is a bad request.
        let up = validate(
            &head("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
            &HandshakePolicy::default(),
        )
        .unwrap();
        assert_eq!(up.extensions[0].name, "permessage-deflate");
        assert_eq!(
            status(
                &head("Sec-WebSocket-Extensions: bad ext\r\n"),
                &HandshakePolicy::default()
            ),
            400
        );
    }

    #[test]
    fn accept_response_has_the_required_headers_and_no_injection() {
        // §4.2.2 step 5; RFC 9112 §4: a CRLF in a value would start a new header.
        let r = String::from_utf8(render_accept(
            "abc=",
            Some("chat"),
            None,
            &[
                ("X-Ok".into(), "1".into()),
                ("X-Bad".into(), "a\r\nSet-Cookie: x".into()),
            ],
        ))
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(r.contains(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc=\r\n"
        ));
        assert!(r.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(r.contains("X-Ok: 1\r\n"));
        assert!(!r.contains("Set-Cookie"));
        assert!(r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn plain_requests_are_not_upgrades() {
        // §4.2.1 item 3: without `Upgrade: websocket` it is plain HTTP for the fallback.
        let h = parse_raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(!is_upgrade_request(&h));
        assert!(is_upgrade_request(&head("")));
    }

    #[test]
    fn error_responses_carry_length_and_close() {
        // §4.2.1 (last paragraph): a refusal is an ordinary HTTP error response.
        let r = String::from_utf8(render_response(404, &[], "text/plain", b"nope")).unwrap();
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(r.contains("Content-Length: 4\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\nnope"));
    }

    fn with_headers(lines: &str) -> RequestHead {
        parse_raw(&format!("GET /chat HTTP/1.1\r\n{lines}\r\n"))
    }

    const HOST: &str = "Host: x\r\n";
    const UPGRADE: &str = "Upgrade: websocket\r\n";
    const CONNECTION: &str = "Connection: Upgrade\r\n";
    const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    const VERSION: &str = "Sec-WebSocket-Version: 13\r\n";

    #[test]
    fn rejects_missing_upgrade_websocket_token_with_400() {
        // §4.2.1 item 3
        for upgrade in ["", "Upgrade: h2c\r\n", "Upgrade: websocket2\r\n"] {
            let h = with_headers(&format!("{HOST}{upgrade}{CONNECTION}{KEY}{VERSION}"));
            assert_eq!(status(&h, &HandshakePolicy::default()), 400, "{upgrade:?}");
        }
    }

    #[test]
    fn rejects_missing_connection_upgrade_token_with_400() {
        // §4.2.1 item 4
        for connection in ["", "Connection: close\r\n", "Connection: upgraded\r\n"] {
            let h = with_headers(&format!("{HOST}{UPGRADE}{connection}{KEY}{VERSION}"));
            assert_eq!(
                status(&h, &HandshakePolicy::default()),
                400,
                "{connection:?}"
            );
        }
    }

    #[test]
    fn connection_and_upgrade_are_token_lists_in_any_case() {
        // §4.2.1 items 3-4, RFC 9110 §7.6.1: comma-separated, case-insensitive tokens.
        for (upgrade, connection) in [
            (
                "Upgrade: websocket\r\n",
                "Connection: keep-alive, Upgrade\r\n",
            ),
            (
                "Upgrade: WebSocket\r\n",
                "Connection: keep-alive,upgrade\r\n",
            ),
            (
                "Upgrade: foo, WEBSOCKET\r\n",
                "Connection: UPGRADE , keep-alive\r\n",
            ),
        ] {
            let h = with_headers(&format!("{HOST}{upgrade}{connection}{KEY}{VERSION}"));
            assert!(
                validate(&h, &HandshakePolicy::default()).is_ok(),
                "{upgrade:?} {connection:?}"
            );
        }
    }

    #[test]
    fn rejects_empty_host_with_400() {
        // §4.2.1 item 2
        let h = with_headers(&format!("Host:\r\n{UPGRADE}{CONNECTION}{KEY}{VERSION}"));
        assert_eq!(status(&h, &HandshakePolicy::default()), 400);
    }

    #[test]
    fn rejects_missing_or_duplicate_key_with_400() {
        // §4.2.1 item 5: exactly one nonce.
        let h = with_headers(&format!("{HOST}{UPGRADE}{CONNECTION}{VERSION}"));
        assert_eq!(status(&h, &HandshakePolicy::default()), 400);
        let h = with_headers(&format!("{HOST}{UPGRADE}{CONNECTION}{KEY}{KEY}{VERSION}"));
        assert_eq!(status(&h, &HandshakePolicy::default()), 400);
    }

    #[test]
    fn rejects_missing_or_repeated_version_with_426_naming_13() {
        // §4.2.1 item 6, §4.4: the 426 lists the versions the server speaks.
        for version in [
            "",
            "Sec-WebSocket-Version: 14\r\n",
            "Sec-WebSocket-Version: 13, 8\r\n",
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n",
        ] {
            let h = with_headers(&format!("{HOST}{UPGRADE}{CONNECTION}{KEY}{version}"));
            let r = validate(&h, &HandshakePolicy::default()).unwrap_err();
            assert_eq!(r.status, 426, "{version:?}");
            let text = String::from_utf8(render_rejection(&r)).unwrap();
            assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
        }
    }

    #[test]
    fn rejects_duplicate_origin_with_400() {
        // §4.2.1 item 7, RFC 6454 §7.3 (one Origin), §10.2: two let checks disagree.
        let h = head("Origin: https://a.example\r\nOrigin: https://b.example\r\n");
        assert_eq!(status(&h, &HandshakePolicy::default()), 400);
    }

    #[test]
    fn no_subprotocol_header_when_none_is_selected() {
        // §4.2.2 step 4 /subprotocol/ and step 5.5: one of the client's values, or none.
        let policy = HandshakePolicy {
            allowed_origins: vec![],
            subprotocols: vec!["chat".into()],
        };
        let up = validate(&head(""), &policy).unwrap();
        assert_eq!(up.subprotocol, None);
        let text = String::from_utf8(render_accept(&up.accept, None, None, &[])).unwrap();
        assert!(!text.contains("Sec-WebSocket-Protocol"), "{text}");
    }

    #[test]
    fn rendered_accept_matches_the_rfc_example_exactly() {
        // §1.3: the server's handshake for the sample key.
        let up = validate(&head(""), &HandshakePolicy::default()).unwrap();
        assert_eq!(
            render_accept(&up.accept, None, None, &[]),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn extra_headers_cannot_override_the_handshake_or_framing() {
        // §4.1: a client fails on a second Accept/Protocol; RFC 9112 §6.3 framing.
        let extras: Vec<(String, String)> = [
            ("Sec-WebSocket-Accept", "forged"),
            ("sec-websocket-protocol", "other"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Connection", "close"),
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked"),
            ("X-Control", "a\u{1}b"),
            ("X-Nul", "a\0b"),
            ("Bad Name", "v"),
            ("X-Kept", "a\tb"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let text = String::from_utf8(render_accept("abc=", Some("chat"), None, &extras)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc=\r\nSec-WebSocket-Protocol: chat\r\nX-Kept: a\tb\r\n\r\n"
        );
        let text = String::from_utf8(render_response(200, &extras, "text/plain", b"hi")).unwrap();
        assert_eq!(text.matches("Content-Length").count(), 1, "{text}");
        assert_eq!(text.matches("Connection").count(), 1, "{text}");
        assert!(!text.contains("Transfer-Encoding") && !text.contains("X-Nul"));
        assert!(text.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\nhi"));
    }

    #[test]
    fn head_rendering_carries_the_length_without_the_body() {
        // RFC 9110 §9.3.2: a HEAD response has GET's header fields and no content.
        let body = b"<h1>hello</h1>";
        let full = render_response(200, &[], "text/html", body);
        let head = render_head(200, &[], "text/html", body.len() as u64);
        assert_eq!(&full[..full.len() - body.len()], &head[..]);
    }

    #[test]
    fn every_status_the_server_sends_has_its_reason_phrase() {
        // RFC 9110 §15: the reason phrase is advisory but clients and logs show it.
        for status in [
            101, 200, 204, 206, 301, 304, 400, 401, 403, 404, 405, 408, 413, 414, 426, 429, 431,
            500, 501, 503,
        ] {
            assert_ne!(reason_phrase(status), "Unknown", "{status}");
        }
        assert_eq!(reason_phrase(426), "Upgrade Required");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
    }
}
