//! The `; name=value` parameters of header values (`Content-Type`, `Content-Disposition`): a
//! value is a token or a quoted string (RFC 9110 §5.6.4, §5.6.6), so `name="a;b"` is `a;b` and
//! `\"` inside quotes is `"`. Lenient: blanks around names and values are ignored, a parameter
//! without `=` is skipped, names are compared ASCII case-insensitively, and an unterminated
//! quoted string runs to the end of the header.

use std::borrow::Cow;

/// The parameters after the first `;` of a header value, as `(name, value)`.
pub(crate) fn params(value: &[u8]) -> Params<'_> {
    let rest = value
        .iter()
        .position(|&b| b == b';')
        .map_or(&[][..], |i| &value[i..]);
    Params { rest }
}

/// The value of parameter `name`, if present.
pub(crate) fn param<'a>(value: &'a [u8], name: &[u8]) -> Option<Cow<'a, [u8]>> {
    params(value).find_map(|(n, v)| n.eq_ignore_ascii_case(name).then_some(v))
}

/// Iterator over a header value's parameters; see [`params`].
pub(crate) struct Params<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a [u8], Cow<'a, [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.rest.trim_ascii_start();
            let rest = rest.strip_prefix(b";").unwrap_or(rest);
            if rest.is_empty() {
                self.rest = rest;
                return None;
            }
            let end = rest
                .iter()
                .position(|&b| b == b'=' || b == b';')
                .unwrap_or(rest.len());
            let name = rest[..end].trim_ascii();
            if rest.get(end) != Some(&b'=') {
                // `; bad` or a trailing name: no value.
                self.rest = &rest[end..];
                continue;
            }
            let after = rest[end + 1..].trim_ascii_start();
            let (value, rest) = match after.strip_prefix(b"\"") {
                Some(quoted) => quoted_string(quoted),
                None => {
                    let end = after.iter().position(|&b| b == b';').unwrap_or(after.len());
                    (Cow::Borrowed(after[..end].trim_ascii()), &after[end..])
                }
            };
            // Anything between a closing quote and the next `;` is ignored.
            let next = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
            self.rest = &rest[next..];
            return Some((name, value));
        }
    }
}

/// A quoted string's content (after its opening quote) and what follows its closing quote.
fn quoted_string(text: &[u8]) -> (Cow<'_, [u8]>, &[u8]) {
    let mut unescaped: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                let value = unescaped.map_or(Cow::Borrowed(&text[..i]), Cow::Owned);
                return (value, &text[i + 1..]);
            }
            b'\\' if i + 1 < text.len() => {
                unescaped
                    .get_or_insert_with(|| text[..i].to_vec())
                    .push(text[i + 1]);
                i += 2;
            }
            b => {
                if let Some(out) = &mut unescaped {
                    out.push(b);
                }
                i += 1;
            }
        }
    }
    (unescaped.map_or(Cow::Borrowed(text), Cow::Owned), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(value: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
        params(value).map(|(n, v)| (n, v.into_owned())).collect()
    }

    #[test]
    fn parameters_are_found_leniently() {
        let ct = b"multipart/form-data; Boundary=\"x y\" ;charset = GBK;bad";
        assert_eq!(param(ct, b"boundary").as_deref(), Some(&b"x y"[..]));
        assert_eq!(param(ct, b"CHARSET").as_deref(), Some(&b"GBK"[..]));
        assert_eq!(param(ct, b"bad"), None);
        assert_eq!(param(b"text/plain", b"charset"), None);
    }

    #[test]
    fn quoted_values_may_hold_separators_and_escapes() {
        assert_eq!(
            all(br#"form-data; name="a;b=c"; filename="x\"y\\z.txt""#),
            vec![
                (&b"name"[..], b"a;b=c".to_vec()),
                (&b"filename"[..], br#"x"y\z.txt"#.to_vec())
            ]
        );
        // The Java SDK writes no blanks.
        assert_eq!(
            all(br#"form-data;name="biz_content""#),
            vec![(&b"name"[..], b"biz_content".to_vec())]
        );
        // Junk after a closing quote is ignored; an unterminated quote runs to the end.
        assert_eq!(
            all(br#"x; a="1"junk; b="2;3"#),
            vec![(&b"a"[..], b"1".to_vec()), (&b"b"[..], b"2;3".to_vec())]
        );
        // A name without a value is skipped; an empty value is a value.
        assert_eq!(
            all(b"x; flag; a=; ;b=2"),
            vec![(&b"a"[..], Vec::new()), (&b"b"[..], b"2".to_vec())]
        );
        assert_eq!(all(b"x"), Vec::<(&[u8], Vec<u8>)>::new());
    }

    proptest::proptest! {
        /// Any name and value written as a quoted string (with `\` before `"` and `\`) is read
        /// back exactly, beside other parameters.
        #[test]
        fn quoted_strings_round_trip(name in "[a-z]{1,8}", value in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let mut header = b"form-data; a=1; ".to_vec();
            header.extend_from_slice(name.as_bytes());
            header.extend_from_slice(b"=\"");
            for &b in &value {
                if b == b'"' || b == b'\\' {
                    header.push(b'\\');
                }
                header.push(b);
            }
            header.extend_from_slice(b"\"; z=9");
            let found: Vec<(Vec<u8>, Vec<u8>)> =
                params(&header).map(|(n, v)| (n.to_vec(), v.into_owned())).collect();
            proptest::prop_assert_eq!(found.len(), 3);
            proptest::prop_assert_eq!(&found[1].1, &value);
            proptest::prop_assert_eq!(&found[2].1, &b"9".to_vec());
        }
    }
}
