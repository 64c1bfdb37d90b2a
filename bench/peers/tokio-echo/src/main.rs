//! Echo server on tokio-tungstenite, a peer for bench/compare and bench/run.sh.
//!   tokio-echo [PORT=0] [THREADS=1] [--tls CERT.pem KEY.pem]
//! prints "listening on 127.0.0.1:PORT". THREADS = 1 runs tokio's current-thread
//! runtime (one thread does all the I/O, like one reactor); more runs the multi-thread
//! runtime with that many workers. --tls serves wss:// through tokio-rustls (TLS 1.2
//! and 1.3, ALPN http/1.1, the ring provider: the same TLS stack as wsqueue's).
//!
//! Written the way the crate's own example (examples/echo-server.rs) writes it: the
//! stream split in two and `read.forward(write)`, which feeds every message to the sink
//! and flushes only when the read side has nothing ready, so a window of pipelined
//! messages goes out in one write. Pings are answered and closes acknowledged inside
//! tungstenite.
use std::io::Write;
use std::sync::Arc;

use futures_util::{future, StreamExt, TryStreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    // Errors end the connection, as in the example: a benchmark peer has no one to tell.
    let _ = read
        .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
        .forward(write)
        .await;
}

fn tls_acceptor(cert: &str, key: &str) -> TlsAcceptor {
    let chain = CertificateDer::pem_file_iter(cert)
        .expect("certificate file")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_file(key).expect("private key PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (tls, rest): (Option<TlsAcceptor>, Vec<&String>) =
        match args.iter().position(|a| a == "--tls") {
            Some(i) => (
                Some(tls_acceptor(&args[i + 1], &args[i + 2])),
                args[..i].iter().chain(&args[i + 3..]).collect(),
            ),
            None => (None, args.iter().collect()),
        };
    let port: u16 = rest.first().map(|p| p.parse().expect("port")).unwrap_or(0);
    let threads: usize = rest.get(1).map(|t| t.parse().expect("threads")).unwrap_or(1);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        println!("listening on {}", listener.local_addr().unwrap());
        std::io::stdout().flush().ok();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            match &tls {
                None => {
                    tokio::spawn(echo(stream));
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            echo(stream).await;
                        }
                    });
                }
            }
        }
    });
}
