//! permessage-deflate's inflater (RFC 7692 §7.2.2) on untrusted compressed bytes: once
//! directly, and once as the payload of a compressed message cut into fragments through
//! the reader. The checks are in `inflate_check.rs`, shared with the corpus test.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "chunking.rs"]
mod chunking;
#[path = "inflate_check.rs"]
mod inflate_check;

fuzz_target!(|data: &[u8]| inflate_check::check(data, "fuzz input"));
