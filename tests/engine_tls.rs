//! `wss://`: the engine with TLS listeners, against a rustls client that trusts a CA
//! made at test time. Echo over TLS 1.3 and 1.2, `ws://` and `wss://` on one server,
//! certificates that cannot be used, bad input on a TLS port (plain HTTP, garbage, a
//! trickled handshake, a peer leaving mid-handshake), 16 MiB messages both ways, and
//! backpressure with TLS in the way.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use support::tls::{TestPki, TlsWsClient};
use support::*;
use wsqueue::{Config, Error, EventKind, MessageKind, Pem, SendStatus, Server, TlsListen};

/// A server with one `ws://` listener (`local_addrs()[0]`) and one `wss://` listener
/// (`[1]`).
fn start_both(pki: &TestPki, config: Config) -> Server {
    start_server(Config {
        tls_listen: vec![pki.listen()],
        ..config
    })
}

fn wss_addr(server: &Server) -> SocketAddr {
    server.local_addrs()[1]
}

/// The client's first flight (its ClientHello), as bytes.
fn client_hello(pki: &TestPki) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn =
        ClientConnection::new(pki.client_config(rustls::DEFAULT_VERSIONS), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

/// Echoes through the application until the client sees its payload again.
fn tls_echo(server: &Server, client: &mut TlsWsClient, id: wsqueue::ConnId, payload: &[u8]) {
    client.send_frame(true, OP_BINARY, payload);
    let (kind, data) = expect_message(server, id);
    assert_eq!((kind, data.len()), (MessageKind::Binary, payload.len()));
    assert!(data == payload, "the payload arrived changed");
    server.send(id, MessageKind::Binary, &data).unwrap();
    let (op, back) = client.read_message();
    assert_eq!(op, OP_BINARY);
    assert!(back == payload, "the echo came back changed");
}

#[test]
fn wss_echo_over_tls13_negotiates_http11_and_closes_cleanly() {
    let pki = TestPki::new();
    let server = start_both(&pki, Config::default());
    let mut client = TlsWsClient::connect(&pki, wss_addr(&server));
    let (id, _) = expect_open(&server);
    assert_eq!(
        client.stream.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(client.stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls_echo(&server, &mut client, id, b"hello over TLS");
    client.send_frame(true, OP_TEXT, "text too".as_bytes());
    assert_eq!(
        expect_message(&server, id),
        (MessageKind::Text, b"text too".to_vec())
    );
    // The closing handshake, then close_notify and EOF (§7.1.1: the server ends TCP).
    client.send_frame(true, OP_CLOSE, &close_payload(1000, "bye"));
    assert_eq!(client.read_close_code(), 1000);
    assert!(
        client.read_to_end_clean(),
        "the server ends TLS with close_notify"
    );
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (1000, true));
    assert_eq!(server.stats().tls_errors, 0);
}

#[test]
fn wss_echo_over_tls12() {
    let pki = TestPki::new();
    let server = start_both(&pki, Config::default());
    let config = pki.client_config(&[&rustls::version::TLS12]);
    let mut client = TlsWsClient::over(pki.connect_with(wss_addr(&server), config));
    let (id, _) = expect_open(&server);
    assert_eq!(
        client.stream.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    tls_echo(&server, &mut client, id, b"hello over TLS 1.2");
}

#[test]
fn one_server_serves_ws_and_wss_side_by_side() {
    let pki = TestPki::new();
    let server = start_both(&pki, Config::default());
    let mut plain = WsClient::connect(addr(&server));
    let (plain_id, _) = expect_open(&server);
    let mut secure = TlsWsClient::connect(&pki, wss_addr(&server));
    let (secure_id, _) = expect_open(&server);
    echo_once(&server, &mut plain, plain_id, b"plain");
    tls_echo(&server, &mut secure, secure_id, b"secure");
    // A broadcast reaches both: one frame, written plain to one and encrypted to the other.
    server
        .broadcast(MessageKind::Text, b"to all", Some(&[plain_id, secure_id]))
        .unwrap();
    assert_eq!(plain.read_message(), (OP_TEXT, b"to all".to_vec()));
    assert_eq!(secure.read_message(), (OP_TEXT, b"to all".to_vec()));
    // A TLS client on the plain port fails its handshake: the server takes the hello
    // for a bad HTTP request (answered 400), which is no TLS record.
    let mut wrong = pki.connect(addr(&server));
    let mut failed = false;
    while !failed && wrong.conn.is_handshaking() {
        failed = wrong.conn.complete_io(&mut wrong.sock).is_err();
    }
    assert!(failed, "a TLS handshake on the ws:// port must fail");
}

fn start_error(listen: TlsListen) -> Error {
    match Server::start(Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls_listen: vec![listen],
        ..Config::default()
    }) {
        Ok(_) => panic!("a server with an unusable certificate must not start"),
        Err(e) => e,
    }
}

#[test]
fn unusable_certificates_fail_the_start_with_a_tls_error() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let dir = std::env::temp_dir().join(format!("wsq-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let chain_file = dir.join("chain.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&chain_file, &pki.chain_pem).unwrap();
    std::fs::write(&key_file, &pki.key_pem).unwrap();
    let files = TlsListen {
        addr: "127.0.0.1:0".parse().unwrap(),
        cert_chain: Pem::File(chain_file.clone()),
        private_key: Pem::File(key_file.clone()),
    };
    // The same identity from files works.
    let ok = Server::start(Config {
        listen: Vec::new(),
        tls_listen: vec![files.clone()],
        ..Config::default()
    })
    .expect("PEM files load");
    let mut client = TlsWsClient::connect(&pki, ok.local_addrs()[0]);
    let (id, _) = expect_open(&ok);
    tls_echo(&ok, &mut client, id, b"from files");

    let cases: Vec<(&str, TlsListen, &str)> = vec![
        (
            "missing file",
            TlsListen {
                cert_chain: Pem::File(dir.join("absent.pem")),
                ..files.clone()
            },
            "cannot read",
        ),
        (
            "not PEM",
            TlsListen {
                cert_chain: Pem::Memory(b"this is not a certificate".to_vec()),
                ..files.clone()
            },
            "no CERTIFICATE",
        ),
        (
            "key given as the chain",
            TlsListen {
                cert_chain: Pem::Memory(pki.key_pem.clone().into_bytes()),
                ..files.clone()
            },
            "no CERTIFICATE",
        ),
        (
            "no key",
            TlsListen {
                private_key: Pem::Memory(pki.chain_pem.clone().into_bytes()),
                ..files.clone()
            },
            "private_key",
        ),
        (
            "key of another certificate",
            TlsListen {
                private_key: Pem::Memory(other.key_pem.clone().into_bytes()),
                ..files.clone()
            },
            "rejected",
        ),
    ];
    for (what, listen, says) in cases {
        match start_error(listen) {
            Error::Tls(text) => assert!(text.contains(says), "{what}: {text}"),
            e => panic!("{what}: expected Error::Tls, got {e:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `bytes` to the TLS port and reads what comes back until the server closes.
fn answer_to(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = tcp(addr);
    s.write_all(bytes).unwrap();
    read_to_eof(&mut s)
}

/// A TLS alert record (content type 21, RFC 8446 §5.1 / RFC 5246 §6.2.1), fatal.
fn assert_fatal_alert(answer: &[u8]) {
    assert!(answer.len() >= 7, "an alert record, got {answer:?}");
    assert_eq!(answer[0], 21, "content type alert: {answer:?}");
    assert_eq!(answer[5], 2, "alert level fatal: {answer:?}");
}

#[test]
fn plain_http_on_the_tls_port_gets_an_alert_and_a_close_and_is_counted() {
    let pki = TestPki::new();
    let server = start_both(&pki, Config::default());
    let mut bystander = TlsWsClient::connect(&pki, wss_addr(&server));
    let (bystander_id, _) = expect_open(&server);
    let answer = answer_to(wss_addr(&server), upgrade_request("/", "").as_bytes());
    assert_fatal_alert(&answer);
    let answer = answer_to(wss_addr(&server), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_fatal_alert(&answer);
    let stats = server.stats();
    assert_eq!(stats.tls_errors, 2);
    assert_eq!(stats.connections, 1, "only the bystander is open");
    assert_eq!(stats.http_requests, 0, "nothing reached the HTTP layer");
    tls_echo(&server, &mut bystander, bystander_id, b"still served");
}

#[test]
fn garbage_on_the_tls_port_gets_an_alert_and_a_close() {
    let pki = TestPki::new();
    let server = start_both(&pki, Config::default());
    // Random bytes, and a record header that claims a handshake of absurd length.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert_fatal_alert(&answer_to(wss_addr(&server), &garbage));
    assert_fatal_alert(&answer_to(
        wss_addr(&server),
        &[22, 3, 1, 0xff, 0xff, 1, 0xff, 0xff, 0xff],
    ));
    assert_eq!(server.stats().tls_errors, 2);
    let mut client = TlsWsClient::connect(&pki, wss_addr(&server));
    let (id, _) = expect_open(&server);
    tls_echo(&server, &mut client, id, b"after the garbage");
}

#[test]
fn a_trickled_tls_handshake_is_closed_at_the_handshake_timeout() {
    let pki = TestPki::new();
    let server = start_both(
        &pki,
        Config {
            handshake_timeout: Some(Duration::from_millis(300)),
            ..Config::default()
        },
    );
    let hello = client_hello(&pki);
    let mut s = tcp(wss_addr(&server));
    // One byte at a time, slower than the timeout allows: the server must give up
    // before the hello is complete, and say so by closing the socket.
    let mut closed = false;
    for b in &hello {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if fd_readable(s.as_raw_fd(), Duration::ZERO) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the whole hello went in without the server closing");
    assert!(read_to_eof(&mut s).is_empty(), "no handshake answer");
    assert_eq!(server.stats().handshake_timeouts, 1);
    assert_eq!(server.stats().handshakes, 0);
}

#[test]
fn a_peer_leaving_mid_handshake_costs_nothing() {
    let pki = TestPki::new();
    let server = start_both(&pki, Config::default());
    let hello = client_hello(&pki);
    for cut in [1, 5, hello.len() / 2, hello.len()] {
        let mut s = tcp(wss_addr(&server));
        s.write_all(&hello[..cut]).unwrap();
        drop(s);
    }
    // A client that finishes TLS but leaves before the upgrade request.
    let mut tls = pki.connect(wss_addr(&server));
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    drop(tls);
    let mut client = TlsWsClient::connect(&pki, wss_addr(&server));
    let (id, _) = expect_open(&server);
    tls_echo(&server, &mut client, id, b"after the quitters");
    let stats = server.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.handshakes, 1);
    assert_eq!(stats.tcp_accepted, 6);
    // Leaving is not a TLS failure.
    assert_eq!(stats.tls_errors, 0);
}

#[test]
fn sixteen_mib_messages_cross_tls_both_ways() {
    let pki = TestPki::new();
    let server = start_both(&pki, Config::default());
    let mut client = TlsWsClient::connect(&pki, wss_addr(&server));
    let (id, _) = expect_open(&server);
    let big: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    tls_echo(&server, &mut client, id, &big);
}

#[test]
fn backpressure_and_drain_work_over_tls_and_nothing_is_lost() {
    let pki = TestPki::new();
    let server = start_both(
        &pki,
        Config {
            send_queue_soft_limit: 256 * 1024,
            send_queue_low_water: 64 * 1024,
            ..Config::default()
        },
    );
    let mut client = TlsWsClient::connect(&pki, wss_addr(&server));
    let (id, _) = expect_open(&server);
    // The client reads nothing: sends fill the socket, then rustls's bounded buffer,
    // then the send queue, which reports backpressure.
    let chunk = 16 * 1024;
    let mut sent = 0u32;
    loop {
        let mut msg = sent.to_be_bytes().to_vec();
        msg.resize(chunk, sent as u8);
        let status = server.send(id, MessageKind::Binary, &msg).unwrap();
        sent += 1;
        if status == SendStatus::Backpressure {
            break;
        }
        assert!(sent < 100_000, "backpressure never reported");
    }
    assert!(server.buffered_amount(id).unwrap() > 256 * 1024);
    for n in 0..sent {
        let (op, data) = client.read_message();
        assert_eq!((op, data.len()), (OP_BINARY, chunk));
        assert_eq!(
            u32::from_be_bytes(data[..4].try_into().unwrap()),
            n,
            "order"
        );
    }
    let drain = expect_event(
        &server,
        |e| e.conn == id && matches!(e.kind, EventKind::Drain),
        GUARD,
    );
    assert_eq!(drain.conn, id);
    assert_eq!(server.buffered_amount(id).unwrap(), 0);
    tls_echo(&server, &mut client, id, b"after the drain");
}

#[test]
fn alpn_picks_http11_refuses_h2_only_and_serves_clients_without_alpn() {
    let pki = TestPki::new();
    let server = start_both(&pki, Config::default());
    let mut config = (*pki.client_config(rustls::DEFAULT_VERSIONS)).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let mut h2_only = pki.connect_with(wss_addr(&server), std::sync::Arc::new(config));
    let mut failed = None;
    while failed.is_none() && h2_only.conn.is_handshaking() {
        failed = h2_only.conn.complete_io(&mut h2_only.sock).err();
    }
    let failed = failed.expect("a client offering only h2 must be refused");
    assert!(
        failed.to_string().contains("NoApplicationProtocol"),
        "refused with {failed}"
    );
    let mut config = (*pki.client_config(rustls::DEFAULT_VERSIONS)).clone();
    config.alpn_protocols = Vec::new();
    let mut client =
        TlsWsClient::over(pki.connect_with(wss_addr(&server), std::sync::Arc::new(config)));
    let (id, _) = expect_open(&server);
    assert_eq!(client.stream.conn.alpn_protocol(), None);
    tls_echo(&server, &mut client, id, b"no ALPN offered");
    assert_eq!(server.stats().tls_errors, 1);
}

#[test]
fn a_forged_record_on_an_open_connection_closes_it_with_1006_and_is_counted() {
    let pki = TestPki::new();
    let server = start_both(&pki, Config::default());
    let mut client = TlsWsClient::connect(&pki, wss_addr(&server));
    let (id, _) = expect_open(&server);
    tls_echo(&server, &mut client, id, b"before the forgery");
    // An application-data record whose authentication tag cannot verify, written
    // under the TLS layer straight into the socket.
    let mut forged = vec![23, 3, 3, 0, 40];
    forged.extend((0..40u8).map(|i| i.wrapping_mul(37)));
    client.stream.sock.write_all(&forged).unwrap();
    let info = expect_close(&server, id);
    assert_eq!((info.code, info.clean), (1006, false));
    assert!(info.reason.starts_with("TLS"), "reason {:?}", info.reason);
    assert_eq!(server.stats().tls_errors, 1);
    assert_eq!(server.stats().connections, 0);
    // The client sees a fatal alert (bad_record_mac), then the end.
    let mut buf = [0u8; 64];
    assert!(std::io::Read::read(&mut client.stream, &mut buf).is_err());
}
