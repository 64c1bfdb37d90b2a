//! Incremental UTF-8 validation for text messages (§8.1).
//!
//! Fails on the first chunk that cannot be the prefix of valid UTF-8, so a bad text
//! message is rejected on the fragment that contains the error, not at its end; code
//! points split across chunks (and fragments) are carried over.

/// The bytes fed so far cannot begin a valid UTF-8 string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8Error;

#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    /// The start of a code point cut off at the end of the last chunk.
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }
    /// Validates the next chunk. Errors as soon as the input so far is not a valid prefix.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Utf8Error> {
        let _ = chunk;
        let _ = (self.pending, self.pending_len);
        todo!()
    }
    /// End of message: errors if a code point was left incomplete. Resets the validator.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        todo!()
    }
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}
