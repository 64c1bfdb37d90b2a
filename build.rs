//! Generates `include/wsqueue.h` from `src/ffi` with cbindgen.
//!
//! The header is a reviewed, checked-in artifact: CI rebuilds it and fails if the
//! checked-in copy differs (see `.ci/run` and `make check-header`).

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src/ffi");
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
