//! Makes a throwaway certificate authority and a server certificate it signed, for
//! trying `wss://` on this machine: the demo (`make demo TLS=1`), the interop suites
//! and the benchmarks. Never for a real deployment (the keys sit unencrypted in DIR).
//!
//!   cargo run --example make_certs -- DIR
//!
//! Writes DIR/ca.pem (trust this one in the client), DIR/server.pem (the chain the
//! server presents: its certificate, for `localhost` and `127.0.0.1`) and
//! DIR/server.key (its ECDSA P-256 private key, PKCS#8). Both certificates carry
//! rcgen's default validity (1975 to 4096): fine for a CA trusted only locally.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: make_certs DIR");
        std::process::exit(2);
    };
    if let Err(e) = make(&dir) {
        eprintln!("make_certs: {e}");
        std::process::exit(1);
    }
}

fn make(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "wsqueue local test CA");
    ca.distinguished_name = dn;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    server.distinguished_name = dn;
    let cert = server.signed_by(&key, &issuer)?;

    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("server.pem"), cert.pem())?;
    std::fs::write(dir.join("server.key"), key.serialize_pem())?;
    println!(
        "wrote {0}/ca.pem {0}/server.pem {0}/server.key",
        dir.display()
    );
    Ok(())
}
