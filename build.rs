//! Build steps of the C library: the shared library's SONAME, and (only when asked)
//! the C header.
//!
//! The header is a reviewed, checked-in artifact, so an ordinary build never writes
//! into the source tree: `make header` (which sets `WSQ_WRITE_HEADER=1`) regenerates
//! `include/wsqueue.h` with the cbindgen version pinned by Cargo.lock, and
//! `make check-header` (part of `make test`) fails when the checked-in copy differs.

use std::path::PathBuf;

fn main() {
    // libwsqueue.so.MAJOR: programs record this name, so an incompatible release
    // (a new MAJOR) can be installed beside the old one.
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libwsqueue.so.{major}");
    println!("cargo:rerun-if-env-changed=WSQ_WRITE_HEADER");
    if std::env::var("WSQ_WRITE_HEADER").as_deref() != Ok("1") {
        return;
    }
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    // cbindgen parses the whole crate (a pub item anywhere can reach the header), so
    // any source change regenerates it.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml must parse");
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(crate_dir.join("include/wsqueue.h"));
        }
        Err(err) => {
            // A parse error in src/ffi must fail loudly rather than leave a stale header.
            panic!("cbindgen failed to generate include/wsqueue.h: {err}");
        }
    }
}
