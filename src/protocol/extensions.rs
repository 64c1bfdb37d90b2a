//! `Sec-WebSocket-Extensions` offers (§9.1), parsed into a structured form, and the
//! negotiation of permessage-deflate (RFC 7692 §5, §7.1) over them.

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

use super::http::is_token;

/// Splits on `sep` outside quoted strings.
fn split_outside_quotes(s: &str, sep: char) -> Result<Vec<&str>, ExtensionSyntaxError> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    if quoted {
        return Err(ExtensionSyntaxError);
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn unquote(v: &str) -> Result<String, ExtensionSyntaxError> {
    if let Some(inner) = v.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or(ExtensionSyntaxError)?;
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            out.push(if c == '\\' {
                chars.next().ok_or(ExtensionSyntaxError)?
            } else {
                c
            });
        }
        // §9.1: a quoted value must still be a token once unquoted.
        if !is_token(&out) {
            return Err(ExtensionSyntaxError);
        }
        Ok(out)
    } else if is_token(v) {
        Ok(v.to_string())
    } else {
        Err(ExtensionSyntaxError)
    }
}

/// Parses every `Sec-WebSocket-Extensions` value, in order, into offers.
pub fn parse_extensions<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<ExtensionOffer>, ExtensionSyntaxError> {
    let mut offers = Vec::new();
    for value in values {
        for element in split_outside_quotes(value, ',')? {
            // RFC 7230 §7: empty list elements are tolerated.
            if element.trim().is_empty() {
                continue;
            }
            let mut parts = split_outside_quotes(element, ';')?.into_iter();
            let name = parts.next().unwrap_or("").trim();
            if !is_token(name) {
                return Err(ExtensionSyntaxError);
            }
            let mut params = Vec::new();
            for p in parts {
                let (k, v) = match p.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(unquote(v.trim())?)),
                    None => (p.trim(), None),
                };
                if !is_token(k) {
                    return Err(ExtensionSyntaxError);
                }
                params.push((k.to_string(), v));
            }
            offers.push(ExtensionOffer {
                name: name.to_string(),
                params,
            });
        }
    }
    Ok(offers)
}

/// The extension token of RFC 7692 §7.
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// How a server runs permessage-deflate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeflateMode {
    /// Decline every offer: no compression.
    Off,
    /// No context takeover in either direction (RFC 7692 §7.1.1): every message is
    /// compressed and inflated on its own, with one compressor and one inflater per
    /// thread shared by all its connections, so a connection costs no zlib memory.
    Shared,
    /// Context takeover where the client allows it: each connection gets its own
    /// compressor and inflater (created on first use) with `window_bits` windows,
    /// for better ratios on streams of similar messages, at a cost per connection.
    Dedicated,
}

/// The server's permessage-deflate policy (from the engine's configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflatePolicy {
    pub mode: DeflateMode,
    /// Base-2 logarithm of our compressor's LZ77 window (9..=15); in `Dedicated` mode
    /// also the window asked of clients that let the server choose theirs.
    pub window_bits: u8,
    /// Messages shorter than this go out uncompressed (RSV1 clear, §6).
    pub min_size: usize,
    /// zlib compression level of our compressor, 0 (stored) to 9 (smallest).
    pub level: u32,
}

impl DeflatePolicy {
    pub const DEFAULT: DeflatePolicy = DeflatePolicy {
        mode: DeflateMode::Shared,
        window_bits: 15,
        min_size: 64,
        level: super::deflate::DEFAULT_LEVEL,
    };
}

impl Default for DeflatePolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one connection agreed to (RFC 7692 §7.1), and the response that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateAgreement {
    /// §7.1.1.1: our compressor starts every message with an empty window.
    pub server_no_context_takeover: bool,
    /// §7.1.1.2: the client's does, so our inflater needs no state between messages.
    pub client_no_context_takeover: bool,
    /// §7.1.2.1: the LZ77 window our compressor uses (8..=15).
    pub server_max_window_bits: u8,
    /// §7.1.2.2: the largest window the client's compressor may use (8..=15).
    pub client_max_window_bits: u8,
    pub min_size: usize,
    /// zlib level of our compressor (the policy's).
    pub level: u32,
    /// The `Sec-WebSocket-Extensions` value of the 101 response.
    pub response: String,
}

/// Parameters of one permessage-deflate offer, validated (§7.1).
#[derive(Default)]
struct DeflateOffer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// Present without a value: `Some(None)` (the server may pick the client's window).
    client_max_window_bits: Option<Option<u8>>,
}

/// §7.1.2.1/§7.1.2.2: a window size is 8..15 written without leading zeros.
fn parse_window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') {
        return None;
    }
    value.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

impl DeflateOffer {
    /// `None` when the offer must be declined (§7.1): an unknown parameter, a
    /// duplicate one, or a value that is missing, unexpected or out of range.
    fn parse(params: &[(String, Option<String>)]) -> Option<DeflateOffer> {
        let mut offer = DeflateOffer::default();
        let mut seen = [false; 4];
        for (name, value) in params {
            let index = match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                _ => return None,
            };
            if std::mem::replace(&mut seen[index], true) {
                return None;
            }
            match (index, value.as_deref()) {
                (0, None) => offer.server_no_context_takeover = true,
                (1, None) => offer.client_no_context_takeover = true,
                (2, Some(v)) => offer.server_max_window_bits = Some(parse_window_bits(v)?),
                (3, None) => offer.client_max_window_bits = Some(None),
                (3, Some(v)) => offer.client_max_window_bits = Some(Some(parse_window_bits(v)?)),
                _ => return None,
            }
        }
        Some(offer)
    }

    /// Our answer to an acceptable offer, under `policy`.
    fn agree(&self, policy: &DeflatePolicy) -> DeflateAgreement {
        let shared = policy.mode == DeflateMode::Shared;
        let our_bits = policy.window_bits.clamp(9, 15);
        // §7.1.1.1/§7.1.1.2: the server may impose no context takeover in either
        // direction even when the offer did not ask for it; `Shared` mode does.
        let server_nct = self.server_no_context_takeover || shared;
        let client_nct = self.client_no_context_takeover || shared;
        // §7.1.2.1: our window is at most what the client asked for.
        let server_bits = self
            .server_max_window_bits
            .map_or(our_bits, |b| b.min(our_bits));
        // §7.1.2.2: the client's window is what it announced, or, if it lets us choose,
        // ours in `Dedicated` mode (a smaller inflate window per connection); without
        // the parameter in the offer, we must not name one and it may use 15.
        let client_bits = match self.client_max_window_bits {
            None => 15,
            Some(None) if shared => 15,
            Some(None) => our_bits,
            Some(Some(b)) if shared => b,
            Some(Some(b)) => b.min(our_bits),
        };
        let mut response = PERMESSAGE_DEFLATE.to_string();
        if server_nct {
            response.push_str("; server_no_context_takeover");
        }
        if client_nct {
            response.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits.is_some() || server_bits < 15 {
            response.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if self.client_max_window_bits.is_some() && client_bits < 15 {
            response.push_str(&format!("; client_max_window_bits={client_bits}"));
        }
        DeflateAgreement {
            server_no_context_takeover: server_nct,
            client_no_context_takeover: client_nct,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            min_size: policy.min_size,
            level: policy.level,
            response,
        }
    }
}

/// Negotiates permessage-deflate: the first acceptable offer wins (RFC 7692 §5: the
/// client lists offers in order of preference); malformed ones are declined, not
/// fatal (§7.1). `None`: no compression on this connection.
pub fn negotiate_deflate(
    offers: &[ExtensionOffer],
    policy: &DeflatePolicy,
) -> Option<DeflateAgreement> {
    if policy.mode == DeflateMode::Off {
        return None;
    }
    offers
        .iter()
        .filter(|o| o.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        .find_map(|o| DeflateOffer::parse(&o.params))
        .map(|offer| offer.agree(policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offers_with_parameters_across_header_lines() {
        // §9.1, RFC 7692 §5 example shapes.
        let offers = parse_extensions([
            "permessage-deflate; client_max_window_bits, permessage-deflate; server_no_context_takeover",
            "x-test; level=\"10\" ; mode=fast",
        ])
        .unwrap();
        assert_eq!(offers.len(), 3);
        assert_eq!(offers[0].name, "permessage-deflate");
        assert_eq!(
            offers[0].params,
            vec![("client_max_window_bits".to_string(), None)]
        );
        assert_eq!(
            offers[1].params,
            vec![("server_no_context_takeover".to_string(), None)]
        );
        assert_eq!(
            offers[2].params,
            vec![
                ("level".to_string(), Some("10".to_string())),
                ("mode".to_string(), Some("fast".to_string()))
            ]
        );
    }

    #[test]
    fn empty_list_elements_are_tolerated() {
        // RFC 9110 §5.6.1 (was RFC 7230 §7): a recipient MUST accept empty elements.
        assert_eq!(parse_extensions([" , foo ,, "]).unwrap().len(), 1);
        assert!(parse_extensions([""]).unwrap().is_empty());
    }

    #[test]
    fn syntax_errors_are_reported() {
        // §9.1: names and parameter names are tokens; values tokens or quoted-strings.
        for bad in [
            "foo bar",
            "; x",
            "foo; =1",
            "foo; a=\"unterminated",
            "foo; a=b c",
            "fo\"o",
        ] {
            assert_eq!(parse_extensions([bad]), Err(ExtensionSyntaxError), "{bad}");
        }
    }

    fn p(name: &str, value: Option<&str>) -> (String, Option<String>) {
        (name.to_string(), value.map(str::to_string))
    }

    #[test]
    fn parses_the_rfc_7692_offer_list() {
        // §9.1, RFC 7692 §5: two offers of one extension, with and without values.
        let offers = parse_extensions([
            "permessage-deflate; client_max_window_bits, permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
        ])
        .unwrap();
        assert_eq!(
            offers,
            vec![
                ExtensionOffer {
                    name: "permessage-deflate".into(),
                    params: vec![p("client_max_window_bits", None)],
                },
                ExtensionOffer {
                    name: "permessage-deflate".into(),
                    params: vec![
                        p("server_no_context_takeover", None),
                        p("client_max_window_bits", Some("10")),
                    ],
                },
            ]
        );
    }

    #[test]
    fn several_header_lines_form_one_list() {
        // §9.1: "may be split into multiple headers"; RFC 9110 §5.3 combines them in order.
        let split = parse_extensions(["a; x=1", "b", "c; y"]).unwrap();
        let joined = parse_extensions(["a; x=1, b, c; y"]).unwrap();
        assert_eq!(split, joined);
        assert_eq!(
            split.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn optional_whitespace_around_separators_is_ignored() {
        // RFC 9110 §5.6.3: OWS (spaces and tabs) around "," and ";".
        let offers = parse_extensions(["\t foo \t;\tbar=1 ;baz\t,  qux ; n = \"v\" "]).unwrap();
        assert_eq!(offers.len(), 2);
        assert_eq!(offers[0].name, "foo");
        assert_eq!(offers[0].params, vec![p("bar", Some("1")), p("baz", None)]);
        assert_eq!(offers[1].params, vec![p("n", Some("v"))]);
    }

    #[test]
    fn quoted_values_are_unquoted_and_escapes_resolved() {
        // §9.1: a quoted-string value, once unescaped (RFC 9110 §5.6.4), is the token.
        let offers = parse_extensions([r#"x; a="10"; b="1\0"; c="x,y\;"; d=tok"#]);
        // `c` is not a token once unquoted (it holds "," and ";"): the list is refused,
        // but the separators inside the quotes did not split it.
        assert_eq!(offers, Err(ExtensionSyntaxError));
        let offers = parse_extensions([r#"x; a="10"; b="1\0"; d=tok"#]).unwrap();
        assert_eq!(
            offers[0].params,
            vec![p("a", Some("10")), p("b", Some("10")), p("d", Some("tok"))]
        );
        // An escaped quote does not end the string (else `, w` would be a second
        // offer and `z"` garbage), but unescaped it is not a tchar.
        let offers = parse_extensions([r#"x; a="y\"z", w"#]);
        assert_eq!(offers, Err(ExtensionSyntaxError), "\" is not a tchar");
    }

    #[test]
    fn malformed_quoting_and_empty_parts_are_errors() {
        // §9.1: every extension-param is a token, optionally "=" and a value.
        for bad in [
            "foo;",
            "foo;;bar",
            "foo; a=",
            "foo; a=\"\"",
            "foo; a=\"b\"c",
            "foo; a=\"b",
            "foo; a=\"b\\",
            "foo; a=b=c",
            "foo, bar baz",
            "f\u{e9}e",
            "foo; a=\u{1}",
        ] {
            assert_eq!(
                parse_extensions([bad]),
                Err(ExtensionSyntaxError),
                "{bad:?}"
            );
        }
    }

    fn negotiate(header: &str, policy: DeflatePolicy) -> Option<DeflateAgreement> {
        negotiate_deflate(&parse_extensions([header]).unwrap(), &policy)
    }

    fn response(header: &str, mode: DeflateMode, bits: u8) -> Option<String> {
        let policy = DeflatePolicy {
            mode,
            window_bits: bits,
            min_size: 0,
            ..DeflatePolicy::DEFAULT
        };
        negotiate(header, policy).map(|a| a.response)
    }

    const PMD: &str = "permessage-deflate";

    #[test]
    fn negotiation_table_in_shared_mode() {
        // RFC 7692 §7.1: (offer, response). Shared mode always asks no context
        // takeover of both sides (§7.1.1.1, §7.1.1.2 allow it without an offer).
        let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        let table: &[(&str, Option<String>)] = &[
            (PMD, Some(both.into())),
            (
                "permessage-deflate; client_max_window_bits",
                Some(both.into()),
            ),
            (
                "permessage-deflate; client_max_window_bits=10",
                Some(format!("{both}; client_max_window_bits=10")),
            ),
            (
                "permessage-deflate; server_max_window_bits=12",
                Some(format!("{both}; server_max_window_bits=12")),
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                Some(format!("{both}; server_max_window_bits=8")),
            ),
            (
                "permessage-deflate; server_no_context_takeover",
                Some(both.into()),
            ),
            (
                "PerMessage-Deflate; Client_No_Context_Takeover",
                Some(both.into()),
            ),
            ("x-webkit-deflate-frame", None),
            ("", None),
        ];
        for (offer, expected) in table {
            let got = if offer.is_empty() {
                negotiate_deflate(&[], &DeflatePolicy::DEFAULT).map(|a| a.response)
            } else {
                response(offer, DeflateMode::Shared, 15)
            };
            assert_eq!(&got, expected, "{offer}");
        }
    }

    #[test]
    fn negotiation_table_in_dedicated_mode() {
        let table: &[(&str, u8, &str)] = &[
            (PMD, 15, PMD),
            // §7.1.2.2: a bare client_max_window_bits lets the server pick it.
            ("permessage-deflate; client_max_window_bits", 15, PMD),
            (
                "permessage-deflate; client_max_window_bits",
                10,
                "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
            ),
            (
                "permessage-deflate; client_max_window_bits=9",
                12,
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=9",
            ),
            // §7.1.2.1: our window is at most the offer's, and the response names it.
            (
                "permessage-deflate; server_max_window_bits=11",
                15,
                "permessage-deflate; server_max_window_bits=11",
            ),
            (
                "permessage-deflate; server_max_window_bits=13",
                10,
                "permessage-deflate; server_max_window_bits=10",
            ),
            // §7.1.1: asked-for no context takeover is granted.
            (
                "permessage-deflate; server_no_context_takeover",
                15,
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                15,
                "permessage-deflate; client_no_context_takeover",
            ),
        ];
        for (offer, bits, expected) in table {
            assert_eq!(
                response(offer, DeflateMode::Dedicated, *bits).as_deref(),
                Some(*expected),
                "{offer} with {bits} bits"
            );
        }
        let a = negotiate(
            "permessage-deflate; client_max_window_bits=9; server_max_window_bits=10",
            DeflatePolicy {
                mode: DeflateMode::Dedicated,
                window_bits: 15,
                min_size: 7,
                level: 6,
            },
        )
        .unwrap();
        assert_eq!(
            (
                a.server_max_window_bits,
                a.client_max_window_bits,
                a.min_size
            ),
            (10, 9, 7)
        );
        assert!(!a.server_no_context_takeover && !a.client_no_context_takeover);
    }

    #[test]
    fn malformed_or_duplicate_parameters_decline_the_offer() {
        // RFC 7692 §7.1: an offer with an unknown, duplicated or invalid parameter is
        // declined; the handshake goes on without compression.
        for offer in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=1a",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=\"08\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; x_unknown",
            "permessage-deflate; mux",
        ] {
            for mode in [DeflateMode::Shared, DeflateMode::Dedicated] {
                assert_eq!(response(offer, mode, 15), None, "{offer}");
            }
        }
    }

    #[test]
    fn the_first_acceptable_offer_wins() {
        // RFC 7692 §5: offers are in the client's order of preference; declined ones
        // are skipped.
        let got = response(
            "permessage-deflate; bogus, permessage-deflate; server_max_window_bits=10, permessage-deflate",
            DeflateMode::Dedicated,
            15,
        );
        assert_eq!(
            got.as_deref(),
            Some("permessage-deflate; server_max_window_bits=10")
        );
        // A quoted value is the same value (§9.1).
        let got = response(
            "permessage-deflate; server_max_window_bits=\"9\"",
            DeflateMode::Dedicated,
            15,
        );
        assert_eq!(
            got.as_deref(),
            Some("permessage-deflate; server_max_window_bits=9")
        );
    }

    #[test]
    fn off_declines_every_offer() {
        assert_eq!(response(PMD, DeflateMode::Off, 15), None);
    }
}
