//! `Sec-WebSocket-Extensions` offers (§9.1), parsed into a structured form so that an
//! extension such as permessage-deflate (RFC 7692) can be negotiated later.

/// One offered extension: its token and its parameters in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionOffer {
    pub name: String,
    /// `name` or `name=value` (quoted-string values are unquoted).
    pub params: Vec<(String, Option<String>)>,
}

/// A header value that does not follow the §9.1 grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionSyntaxError;

/// Parses every `Sec-WebSocket-Extensions` value, in order, into offers.
pub fn parse_extensions<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<ExtensionOffer>, ExtensionSyntaxError> {
    let _ = values.into_iter();
    todo!()
}
