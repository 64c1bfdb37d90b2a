//! Bad input over real sockets. Each case asserts its defined outcome (an HTTP status,
//! a close code, an error) and then that a bystander connected beforehand is still
//! served, and that a newcomer can still connect.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::*;
use wsqueue::{Config, Error, MessageKind, Server, SlowConsumerPolicy};

// ---- opening handshake (§4.2.1, §4.4) --------------------------------------------------

/// Sends `request` on a fresh connection next to a bystander; returns the response.
fn handshake_refused(server: &Server, request: &[u8], want: u16) -> HttpResponse {
    let mut bystander = Bystander::join(server);
    let r = raw_http(addr(server), request);
    assert_eq!(r.status, want, "{}", r.head);
    bystander.assert_still_served(server);
    r
}

fn upgrade_without(header: &str) -> String {
    upgrade_request("/", "")
        .split_inclusive("\r\n")
        .filter(|line| !line.starts_with(header))
        .collect()
}

#[test]
fn malformed_request_line_gets_400() {
    let server = start_server(Config::default());
    handshake_refused(&server, b"NOT HTTP AT ALL\r\n\r\n", 400);
    handshake_refused(&server, b"GET /\r\nHost: x\r\n\r\n", 400);
    assert_eq!(server.stats().rejected_bad_handshake, 2);
}

#[test]
fn missing_host_gets_400() {
    let server = start_server(Config::default());
    // §4.2.1 item 2.
    handshake_refused(&server, upgrade_without("Host:").as_bytes(), 400);
}

#[test]
fn missing_or_invalid_key_gets_400() {
    let server = start_server(Config::default());
    // §4.2.1 item 5: base64 of exactly 16 bytes.
    handshake_refused(
        &server,
        upgrade_without("Sec-WebSocket-Key:").as_bytes(),
        400,
    );
    for bad in [
        "c2hvcnQ=",
        "AAAAAAAAAAAAAAAAAAAAAAAA",
        "not base64 at all!!!",
        "",
    ] {
        let req = upgrade_request("/", "").replace(KEY, bad);
        handshake_refused(&server, req.as_bytes(), 400);
    }
    assert_eq!(
        server.stats().handshakes,
        2 * 5,
        "only bystanders and newcomers opened"
    );
}

#[test]
fn version_8_gets_426_naming_version_13() {
    let server = start_server(Config::default());
    let req =
        upgrade_request("/", "").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let r = handshake_refused(&server, req.as_bytes(), 426);
    // §4.4: the response names the version(s) the server speaks.
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"), "{}", r.head);
}

#[test]
fn disallowed_origin_gets_403_and_an_allowed_one_opens() {
    let server = start_server(Config {
        allowed_origins: vec!["https://good.example".into()],
        ..Config::default()
    });
    // The bystander itself must pass the origin check.
    let mut bystander = {
        let client = WsClient::connect_to(addr(&server), "/", "Origin: https://good.example\r\n");
        let (id, _) = expect_open(&server);
        (client, id)
    };
    // §4.2.2 / §10.2: the server decides which origins it serves.
    let r = raw_http(
        addr(&server),
        upgrade_request("/", "Origin: https://evil.example\r\n").as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.head);
    let r = raw_http(addr(&server), upgrade_request("/", "").as_bytes());
    assert_eq!(
        r.status, 403,
        "no Origin at all is refused too when a list is set"
    );
    echo_once(&server, &mut bystander.0, bystander.1, b"still here");
    let mut fresh = WsClient::connect_to(addr(&server), "/", "Origin: https://GOOD.example\r\n");
    let (id, _) = expect_open(&server);
    echo_once(&server, &mut fresh, id, b"case-insensitive origin");
}

#[test]
fn oversize_head_gets_431() {
    let server = start_server(Config::default()); // max_head_bytes 8 KiB
    let big = upgrade_request("/", &format!("X-Big: {}\r\n", "a".repeat(9000)));
    handshake_refused(&server, big.as_bytes(), 431);
}

#[test]
fn too_many_headers_gets_431() {
    let server = start_server(Config::default()); // max_headers 64
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    handshake_refused(&server, upgrade_request("/", &many).as_bytes(), 431);
}

#[test]
fn plain_get_without_static_dir_gets_404() {
    let server = start_server(Config::default());
    handshake_refused(&server, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", 404);
    assert_eq!(server.stats().http_requests, 1);
}

#[test]
fn post_upgrade_gets_405_with_allow_get() {
    let server = start_server(Config::default());
    let req = upgrade_request("/", "").replacen("GET", "POST", 1);
    // §4.2.1 item 1 demands GET. protocol/handshake.rs answers 405 (the method is the
    // problem, not the request's syntax), and RFC 9110 §15.5.6 then requires Allow.
    let r = handshake_refused(&server, req.as_bytes(), 405);
    assert_eq!(r.header("Allow"), Some("GET"), "{}", r.head);
}

// ---- framing (§5) ----------------------------------------------------------------------

/// Opens a connection next to a bystander, sends `bytes`, and checks the server fails
/// the connection (§7.1.7): the client gets a close frame with `code`, then TCP EOF;
/// the app gets a close event with `code` and clean == false.
fn fails_with(server: &Server, bytes: &[u8], code: u16) {
    let mut bystander = Bystander::join(server);
    let mut c = WsClient::connect(addr(server));
    let (id, _) = expect_open(server);
    c.send_raw(bytes);
    assert_eq!(c.read_close().0, code, "close frame code");
    c.expect_eof();
    drop(c);
    let info = expect_close(server, id);
    assert_eq!((info.code, info.clean), (code, false), "{info:?}");
    bystander.assert_still_served(server);
}

#[test]
fn unmasked_client_frame_closes_with_1002() {
    let server = start_server(Config::default());
    // §5.1: a server MUST close on an unmasked frame.
    fails_with(&server, &frame_bytes(true, 0, OP_TEXT, None, b"hi"), 1002);
    assert_eq!(server.stats().protocol_errors, 1);
}

#[test]
fn rsv_bits_without_an_extension_close_with_1002() {
    // §5.2: RSV1-3 MUST be 0 unless an extension defines them.
    for rsv in [4, 2, 1] {
        let server = start_server(Config::default());
        fails_with(
            &server,
            &frame_bytes(true, rsv, OP_TEXT, Some([1, 2, 3, 4]), b"hi"),
            1002,
        );
    }
}

#[test]
fn reserved_opcodes_close_with_1002() {
    // §5.2: 0x3-0x7 and 0xB-0xF are reserved.
    let server = start_server(Config::default());
    for opcode in [0x3, 0x7, 0xB, 0xF] {
        fails_with(&server, &masked(true, opcode, b""), 1002);
    }
    assert_eq!(server.stats().protocol_errors, 4);
}

#[test]
fn ping_with_126_byte_payload_closes_with_1002() {
    // §5.5: control frames carry at most 125 bytes.
    let server = start_server(Config::default());
    fails_with(&server, &masked(true, OP_PING, &[0; 126]), 1002);
}

#[test]
fn fragmented_ping_closes_with_1002() {
    // §5.5: control frames MUST NOT be fragmented.
    let server = start_server(Config::default());
    fails_with(&server, &masked(false, OP_PING, b"x"), 1002);
}

#[test]
fn continuation_without_a_start_closes_with_1002() {
    // §5.4: a continuation frame only continues a message in progress.
    let server = start_server(Config::default());
    fails_with(&server, &masked(true, OP_CONT, b"x"), 1002);
}

#[test]
fn new_data_frame_inside_a_fragmented_message_closes_with_1002() {
    // §5.4: fragments of one message are not interleaved with another message.
    let server = start_server(Config::default());
    let bytes = [masked(false, OP_TEXT, b"a"), masked(true, OP_BINARY, b"b")].concat();
    fails_with(&server, &bytes, 1002);
}

#[test]
fn close_frame_with_a_1_byte_payload_closes_with_1002() {
    // §5.5.1: a close body, if present, starts with a 2-byte code.
    let server = start_server(Config::default());
    fails_with(&server, &masked(true, OP_CLOSE, &[3]), 1002);
}

#[test]
fn close_code_1005_on_the_wire_closes_with_1002() {
    // §7.4.1: 1005 (like 1006 and 1015) MUST NOT be set in a close frame.
    let server = start_server(Config::default());
    fails_with(
        &server,
        &masked(true, OP_CLOSE, &1005u16.to_be_bytes()),
        1002,
    );
    fails_with(
        &server,
        &masked(true, OP_CLOSE, &1006u16.to_be_bytes()),
        1002,
    );
}

#[test]
fn invalid_utf8_in_a_text_message_closes_with_1007() {
    // §8.1: text must be valid UTF-8; §7.4.1: 1007 says the data did not fit its type.
    let server = start_server(Config::default());
    fails_with(&server, &masked(true, OP_TEXT, b"bad \xff"), 1007);
    fails_with(&server, &masked(true, OP_TEXT, b"\xed\xa0\x80"), 1007); // a surrogate
    fails_with(&server, &masked(true, OP_TEXT, b"truncated \xe2\x82"), 1007);
    // §5.5.1: a close reason is UTF-8 too.
    fails_with(&server, &masked(true, OP_CLOSE, b"\x03\xe8\xff"), 1007);
    assert_eq!(server.stats().protocol_errors, 4);
}

#[test]
fn invalid_utf8_in_the_first_fragment_closes_with_1007_before_the_last_is_sent() {
    // §8.1 lets an endpoint fail fast: the invalid byte is already in fragment one, so
    // the close must not wait for the final fragment (which is never sent here).
    let server = start_server(Config::default());
    fails_with(
        &server,
        &masked(false, OP_TEXT, b"ok so far \xc0\xaf"),
        1007,
    );
}

#[test]
fn code_point_split_across_fragments_is_accepted() {
    let server = start_server(Config::default());
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    // "€" is E2 82 AC: the split is inside one code point, which §5.4 allows.
    c.send_frame(false, OP_TEXT, b"price: \xe2");
    c.send_frame(false, OP_CONT, b"\x82");
    c.send_frame(true, OP_CONT, b"\xac!");
    assert_eq!(
        expect_message(&server, id),
        (MessageKind::Text, "price: €!".as_bytes().to_vec())
    );
    echo_once(&server, &mut c, id, b"still open");
}

#[test]
fn oversize_message_closes_with_1009() {
    let config = Config {
        max_message_size: 1024,
        ..Config::default()
    };
    let server = start_server(config.clone());
    fails_with(&server, &masked(true, OP_BINARY, &[0; 2000]), 1009);
    // The limit is on the reassembled message, not just each frame.
    let two = [
        masked(false, OP_BINARY, &[0; 600]),
        masked(true, OP_CONT, &[0; 600]),
    ]
    .concat();
    fails_with(&server, &two, 1009);
    assert_eq!(server.stats().too_big, 2);
    // Exactly at the limit is fine.
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    echo_once(&server, &mut c, id, &[7; 1024]);
}

#[test]
fn oversize_frame_header_closes_with_1009_before_its_payload_arrives() {
    // §10.4: limits are enforced from the header; a 1 GiB announcement alone must do.
    let server = start_server(Config::default());
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    fails_with(&server, &header, 1009);
}

#[test]
fn length_with_the_most_significant_bit_set_closes_with_1002() {
    // §5.2: the most significant bit of a 64-bit length MUST be 0.
    let server = start_server(Config::default());
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    fails_with(&server, &header, 1002);
}

#[test]
fn half_a_frame_then_disconnect_is_reported_as_1006() {
    let server = start_server(Config::default());
    let mut bystander = Bystander::join(&server);
    let mut c = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    let f = masked(true, OP_BINARY, &[7; 1000]);
    c.send_raw(&f[..500]);
    drop(c);
    // §7.1.5: no close frame was received, so the code is 1006.
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (1006, false));
    bystander.assert_still_served(&server);
}

// ---- resource limits ---------------------------------------------------------------------

#[test]
fn slowloris_handshake_is_dropped_at_the_handshake_timeout() {
    let server = start_server(Config {
        handshake_timeout: Some(Duration::from_secs(1)),
        ..Config::default()
    });
    let mut bystander = Bystander::join(&server);
    let mut s = tcp(addr(&server));
    s.set_nonblocking(true).unwrap();
    let request = upgrade_request("/", "");
    // One byte every 200 ms would take ~30 s to finish the head.
    let mut dropped = false;
    let hang_guard = Instant::now() + GUARD;
    for b in request.as_bytes() {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            dropped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut peek = [0u8; 1];
        match s.peek(&mut peek) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => {
                dropped = true; // an answer (408), EOF or a reset
                break;
            }
        }
        assert!(Instant::now() < hang_guard, "never dropped");
    }
    assert!(
        dropped,
        "the head was never completed, so the server must drop it"
    );
    s.set_nonblocking(false).unwrap();
    let (status, head) = read_head(&mut s);
    assert!(status == 408 || status == 0, "408 or EOF, got {head}");
    assert_eq!(server.stats().handshake_timeouts, 1);
    bystander.assert_still_served(&server);
}

#[test]
fn client_that_never_reads_makes_send_report_queue_full() {
    let server = start_server(Config {
        send_queue_hard_limit: 4 << 20,
        ..Config::default()
    });
    let mut bystander = Bystander::join(&server);
    let _deaf = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    let mib = vec![0x5A; 1 << 20];
    let mut accepted = 0;
    let err = loop {
        match server.send(id, MessageKind::Binary, &mib) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        // Kernel buffers plus 4 MiB of queue hold far fewer than 1,000 MiB.
        assert!(accepted < 1000, "the queue never filled");
    };
    assert!(matches!(err, Error::QueueFull), "{err}");
    let s = server.stats();
    assert!(s.queue_full >= 1);
    assert!(s.send_queue_bytes <= 5 << 20, "the limit holds: {s:?}");
    // Reject policy: the connection itself stays open.
    assert!(matches!(server.ping(id, b""), Ok(())));
    bystander.assert_still_served(&server);
}

#[test]
fn slow_consumer_close_policy_closes_with_1008() {
    let server = start_server(Config {
        send_queue_hard_limit: 4 << 20,
        slow_consumer: SlowConsumerPolicy::Close,
        ..Config::default()
    });
    let mut bystander = Bystander::join(&server);
    let _deaf = WsClient::connect(addr(&server));
    let (id, _) = expect_open(&server);
    let mib = vec![0x5A; 1 << 20];
    let mut accepted = 0;
    let err = loop {
        match server.send(id, MessageKind::Binary, &mib) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 1000, "the queue never filled");
    };
    assert!(matches!(err, Error::QueueFull), "{err}");
    // §7.4.1: 1008 is the policy-violation code.
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (1008, false), "{info:?}");
    assert!(
        info.unsent_messages > 0,
        "queued messages are reported, not lost silently"
    );
    let s = server.stats();
    assert_eq!(s.slow_consumer_closes, 1);
    assert_eq!(s.connections, 1, "only the bystander remains");
    bystander.assert_still_served(&server);
}
