//! The incremental UTF-8 validator (§8.1) against `std::str::from_utf8`, with the input
//! cut into arbitrary pieces.
//!
//! The oracle: after each piece, `feed` must succeed exactly when everything fed so far
//! is a prefix of some valid UTF-8 string (std says: valid, or an error with
//! `error_len() == None`, i.e. "incomplete at the end"). So the validator never rejects
//! valid text and fails no later than the piece holding std's error; `finish` succeeds
//! exactly when the whole input is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsqueue::protocol::utf8::Utf8Validator;

#[path = "chunking.rs"]
mod chunking;

fn is_valid_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

fuzz_target!(|data: &[u8]| {
    let (sizes, stream) = chunking::split(data);
    let std_result = std::str::from_utf8(stream);

    let mut validator = Utf8Validator::new();
    let mut fed = 0;
    for chunk in chunking::chunks(&sizes, stream) {
        fed += chunk.len();
        let got = validator.feed(chunk);
        let valid_prefix = is_valid_prefix(&stream[..fed]);
        if let Err(e) = std_result {
            if let Some(len) = e.error_len() {
                // std's invalid sequence ends at valid_up_to + len; one byte more may be
                // needed to see it (e.g. F0 90 then 'A').
                let bound = (e.valid_up_to() + len + 1).min(stream.len());
                if fed >= bound {
                    assert!(
                        got.is_err(),
                        "validator accepted {fed} bytes, std fails at {} (len {len})",
                        e.valid_up_to()
                    );
                }
            }
        }
        assert_eq!(
            got.is_ok(),
            valid_prefix,
            "after {fed} bytes: validator {got:?}, valid prefix: {valid_prefix}"
        );
        if got.is_err() {
            return;
        }
    }
    assert_eq!(
        validator.finish().is_ok(),
        std_result.is_ok(),
        "finish disagrees with std"
    );

    // finish() resets: the validator is reusable for the next message.
    assert!(validator.feed("ok é".as_bytes()).is_ok());
    assert!(validator.finish().is_ok());
});
