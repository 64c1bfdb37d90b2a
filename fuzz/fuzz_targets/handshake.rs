//! The opening handshake from untrusted bytes: HTTP head parsing in arbitrary pieces,
//! upgrade validation and negotiation, and the response bytes (RFC 6455 §4.2).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsqueue::protocol::extensions::parse_extensions;
use wsqueue::protocol::handshake::{
    accept_key, is_upgrade_request, render_accept, render_rejection, validate, HandshakePolicy,
};
use wsqueue::protocol::http::{HeadLimits, RequestParser};

#[path = "chunking.rs"]
mod chunking;

/// Small enough that the fuzzer's inputs (4 KiB by default) reach the 431 paths.
const LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 1024,
    max_headers: 16,
};

/// Statuses the parser and the validator may answer with.
const HTTP_ERROR_STATUSES: [u16; 5] = [400, 403, 405, 426, 431];

fn policy() -> HandshakePolicy {
    HandshakePolicy {
        allowed_origins: vec!["https://example.com".into(), "http://localhost:8080".into()],
        subprotocols: vec!["chat".into(), "superchat".into(), "v2.json".into()],
    }
}

fuzz_target!(|data: &[u8]| {
    let (sizes, stream) = chunking::split(data);

    if let Ok(text) = std::str::from_utf8(stream) {
        if let Ok(offers) = parse_extensions(text.split("\r\n")) {
            for offer in &offers {
                assert!(
                    !offer.name.is_empty(),
                    "extension with an empty name: {offers:?}"
                );
            }
        }
    }

    let mut parser = RequestParser::new(LIMITS);
    let mut fed = 0;
    for chunk in chunking::chunks(&sizes, stream) {
        fed += chunk.len();
        match parser.feed(chunk) {
            Ok(None) => {
                assert!(
                    parser.buffered() <= LIMITS.max_head_bytes,
                    "incomplete head buffered past the limit: {} bytes",
                    parser.buffered()
                );
            }
            Err(e) => {
                assert!(
                    HTTP_ERROR_STATUSES.contains(&e.status),
                    "parser status {e:?}"
                );
                return;
            }
            Ok(Some((head, rest))) => {
                assert!(rest.len() < fed, "rest {} of {fed} fed bytes", rest.len());
                assert!(
                    stream[..fed].ends_with(&rest),
                    "rest is not what followed the head"
                );
                check_head(&head);
                return;
            }
        }
    }
});

fn check_head(head: &wsqueue::protocol::http::RequestHead) {
    // Accessors agree with the raw target.
    match head.query() {
        Some(q) => assert_eq!(format!("{}?{}", head.path(), q), head.target),
        None => assert_eq!(head.path(), head.target),
    }
    let _ = head.header("sec-websocket-key");
    let _ = head.has_token("Connection", "upgrade");

    let _ = is_upgrade_request(head);
    let policy = policy();
    match validate(head, &policy) {
        Ok(up) => {
            assert_eq!(up.accept, accept_key(&up.key));
            // §4.2.1 item 5: the key is base64 of 16 bytes, i.e. 24 characters.
            assert_eq!(up.key.len(), 24, "accepted key {:?}", up.key);
            if let Some(chosen) = &up.subprotocol {
                assert!(policy.subprotocols.contains(chosen), "chose {chosen:?}");
                assert!(
                    up.offered_subprotocols.contains(chosen),
                    "chose unoffered {chosen:?}"
                );
            }
            if let Some(origin) = &up.origin {
                assert!(
                    policy
                        .allowed_origins
                        .iter()
                        .any(|o| o.eq_ignore_ascii_case(origin)),
                    "accepted origin {origin:?}"
                );
            }
            let response = render_accept(&up.accept, up.subprotocol.as_deref(), None, &[]);
            assert!(response.starts_with(b"HTTP/1.1 101 "));
            assert!(response.ends_with(b"\r\n\r\n"));
        }
        Err(rejection) => {
            assert!(
                HTTP_ERROR_STATUSES.contains(&rejection.status),
                "rejection status {}",
                rejection.status
            );
            if rejection.status == 426 {
                assert!(
                    rejection.headers.iter().any(|(n, v)| {
                        n.eq_ignore_ascii_case("Sec-WebSocket-Version") && v.trim() == "13"
                    }),
                    "426 without Sec-WebSocket-Version: 13 (§4.4)"
                );
            }
            let response = render_rejection(&rejection);
            let status_line = format!("HTTP/1.1 {} ", rejection.status);
            assert!(response.starts_with(status_line.as_bytes()));
            assert!(response.ends_with(rejection.body.as_bytes()));
        }
    }
}
