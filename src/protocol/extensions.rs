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
}
