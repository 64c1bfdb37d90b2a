//! A connection's byte stream: plain TCP, or TLS over it (rustls, `--tls CA.pem`), with
//! the same non-blocking read/write contract, so the driver does not care which.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

pub struct TlsStream {
    tcp: TcpStream,
    conn: ClientConnection,
}

/// A client configuration trusting only the CA in `ca_pem_file`, offering ALPN
/// `http/1.1` (what a browser offers for `wss://`), TLS 1.2 and 1.3.
pub fn client_config(ca_pem_file: &str) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca_pem_file).map_err(|e| format!("{ca_pem_file}: {e}"))?
    {
        let cert = cert.map_err(|e| format!("{ca_pem_file}: {e}"))?;
        roots.add(cert).map_err(|e| format!("{ca_pem_file}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Stream {
    /// `tcp` wrapped in TLS for `localhost` (the name the test certificates carry).
    pub fn tls(tcp: TcpStream, config: &Arc<ClientConfig>) -> Stream {
        let name = ServerName::try_from("localhost").expect("a valid name");
        let conn = ClientConnection::new(config.clone(), name).expect("a client connection");
        Stream::Tls(Box::new(TlsStream { tcp, conn }))
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.tcp,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.tcp().shutdown(how)
    }

    /// Plaintext read: Ok(0) at the end of the stream; would-block when nothing is
    /// there. TLS: reads until a record yields plaintext or the socket is drained.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let t = match self {
            Stream::Plain(s) => return s.read(buf),
            Stream::Tls(t) => t,
        };
        loop {
            match t.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP ended without close_notify: an end all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            t.conn.read_tls(&mut t.tcp)?;
            t.conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // The handshake's next flight (or a key update) goes out at once.
            match t.flush_pending() {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
    }

    /// Plaintext write: how much was taken; would-block when nothing could be.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let t = match self {
            Stream::Plain(s) => return s.write(buf),
            Stream::Tls(t) => t,
        };
        t.flush_pending()?;
        let n = t.conn.writer().write(buf)?;
        match t.flush_pending() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// TLS: writes records already encrypted (would-block if the socket is full).
    pub fn flush_pending(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(t) => t.flush_pending(),
        }
    }
}

impl TlsStream {
    fn flush_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.tcp)?;
        }
        Ok(())
    }
}
