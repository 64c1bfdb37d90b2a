//! What a `wss://` listener is configured with (a certificate chain and its private
//! key, from PEM files or PEM bytes in memory), and turning that into the rustls
//! server configuration every connection of the listener shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::version::{TLS12, TLS13};
use rustls::ServerConfig;

use crate::engine::error::Error;

/// PEM text, read from a file when the server starts or given as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Memory(Vec<u8>),
}

/// One `wss://` listen address and the identity it presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListen {
    /// Address to listen on (port 0 picks a free port).
    pub addr: SocketAddr,
    /// The server's certificate followed by the intermediates (leaf first), PEM.
    pub cert_chain: Pem,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub private_key: Pem,
}

/// The only application protocol a WebSocket upgrade runs over (RFC 6455 §4.1 is an
/// HTTP/1.1 request); a client offering only h2 gets a `no_application_protocol`
/// alert instead of a connection that would fail later.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

fn read_pem(what: &str, pem: &Pem) -> Result<Vec<u8>, Error> {
    match pem {
        Pem::Memory(bytes) => Ok(bytes.clone()),
        Pem::File(path) => std::fs::read(path)
            .map_err(|e| Error::Tls(format!("{what}: cannot read {}: {e}", path.display()))),
    }
}

/// Builds the shared rustls configuration for `listen`, or says what is wrong with
/// its certificate or key (unreadable, not PEM, no certificate, key not matching).
pub fn server_config(listen: &TlsListen) -> Result<Arc<ServerConfig>, Error> {
    let chain_pem = read_pem("tls cert_chain", &listen.cert_chain)?;
    let key_pem = read_pem("tls private_key", &listen.private_key)?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("tls cert_chain: invalid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Tls(
            "tls cert_chain: no CERTIFICATE in the PEM".to_string(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| Error::Tls(format!("tls private_key: no usable private key: {e}")))?;
    // The provider is named rather than taken from the process default, so an
    // application that links another rustls provider cannot change (or break) ours.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13, &TLS12])
        .map_err(|e| Error::Tls(format!("tls: {e}")))?
        .with_no_client_auth()
        // Checks that the key is one the provider can use and that it belongs to the
        // leaf certificate, so a mismatch fails at start, not at every handshake.
        .with_single_cert(chain, key)
        .map_err(|e| Error::Tls(format!("tls: certificate and key rejected: {e}")))?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}
