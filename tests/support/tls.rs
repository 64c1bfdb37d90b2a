//! `wss://` test helpers: a certificate authority and a server certificate made at test
//! time (rcgen), a rustls client that trusts only that authority, and a minimal
//! blocking WebSocket client over it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{
    masked, read_server_frame, tcp, upgrade_request, Frame, ACCEPT, OP_CLOSE, OP_PING, OP_PONG,
};
use wsqueue::{Pem, TlsListen};

/// A CA and one server certificate it signed for `localhost` and `127.0.0.1`.
pub struct TestPki {
    pub ca_pem: String,
    /// The server's chain, leaf first (here just the leaf: the CA is the trust anchor).
    pub chain_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "wsqueue test CA");
        ca_params.distinguished_name = dn;
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A `wss://` listener on an ephemeral loopback port with this identity (in memory).
    pub fn listen(&self) -> TlsListen {
        TlsListen {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert_chain: Pem::Memory(self.chain_pem.clone().into_bytes()),
            private_key: Pem::Memory(self.key_pem.clone().into_bytes()),
        }
    }

    /// A client configuration that trusts only this CA and offers ALPN `http/1.1`;
    /// `versions` restricts the TLS versions it offers.
    pub fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A TLS connection to `addr` (handshake not yet driven: the first read or write
    /// does it).
    pub fn connect(&self, addr: SocketAddr) -> StreamOwned<ClientConnection, TcpStream> {
        self.connect_with(addr, self.client_config(rustls::DEFAULT_VERSIONS))
    }

    pub fn connect_with(
        &self,
        addr: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> StreamOwned<ClientConnection, TcpStream> {
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(config, name).unwrap();
        StreamOwned::new(conn, tcp(addr))
    }
}

/// A minimal blocking WebSocket client over TLS.
pub struct TlsWsClient {
    pub stream: StreamOwned<ClientConnection, TcpStream>,
}

impl TlsWsClient {
    pub fn connect(pki: &TestPki, addr: SocketAddr) -> TlsWsClient {
        Self::over(pki.connect(addr))
    }

    /// Runs the opening handshake over an established (or establishing) TLS stream.
    pub fn over(mut stream: StreamOwned<ClientConnection, TcpStream>) -> TlsWsClient {
        stream
            .write_all(upgrade_request("/", "").as_bytes())
            .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut b).expect("a response head");
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "upgrade refused: {head}");
        assert!(head.contains(ACCEPT), "§4.2.2: {head}");
        TlsWsClient { stream }
    }

    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.stream
            .write_all(&masked(fin, opcode, payload))
            .unwrap();
    }

    /// Reads one frame; None on EOF (clean or not).
    pub fn try_read_frame(&mut self) -> Option<Frame> {
        read_server_frame(&mut self.stream)
    }

    /// The next data message (unfragmented, as the server sends them), answering pings.
    pub fn read_message(&mut self) -> (u8, Vec<u8>) {
        loop {
            let f = self.try_read_frame().expect("a frame, not EOF");
            match f.opcode {
                OP_PING => self.send_frame(true, OP_PONG, &f.payload),
                OP_PONG => {}
                OP_CLOSE => panic!("close while a message was expected: {f:?}"),
                op => {
                    assert!(f.fin, "the server sends whole messages");
                    return (op, f.payload);
                }
            }
        }
    }

    /// Reads until the server's close frame: its code.
    pub fn read_close_code(&mut self) -> u16 {
        loop {
            let f = self.try_read_frame().expect("a close frame before the end");
            if f.opcode == OP_CLOSE {
                return u16::from_be_bytes([f.payload[0], f.payload[1]]);
            }
        }
    }

    /// Reads to the end of the stream; true when the server ended TLS with
    /// `close_notify` (rustls reports an EOF without it as an error).
    pub fn read_to_end_clean(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return false,
                Err(e) => panic!("reading to the end: {e}"),
            }
        }
    }
}
