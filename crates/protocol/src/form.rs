//! Raw request bodies and query strings → (name, value) byte pairs, before any charset decoding.
//!
//! Percent-escapes are decoded to bytes first (§1.4) so that the bytes can then be decoded in the
//! request charset. A `%` not followed by two hex digits is an error, as in Java's `URLDecoder`:
//! guessing what a client meant would make signature checks ambiguous.

use std::borrow::Cow;

use crate::charset::is_multipart;
use crate::error::ProtocolError;

/// One parameter as it arrived: name and value bytes, percent-escapes already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawParam {
    /// Decoded name bytes.
    pub name: Vec<u8>,
    /// Decoded value bytes.
    pub value: Vec<u8>,
}

/// Splits `a=1&b=2` form data into decoded pairs. Empty segments (`&&`) are skipped; a segment
/// without `=` is a name with an empty value.
pub fn parse_urlencoded(data: &[u8]) -> Result<Vec<RawParam>, ProtocolError> {
    data.split(|&b| b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (name, value) = match segment.iter().position(|&b| b == b'=') {
                Some(i) => (&segment[..i], &segment[i + 1..]),
                None => (segment, &b""[..]),
            };
            let name = percent_decode(name).ok_or_else(malformed)?;
            let value = percent_decode(value).ok_or_else(malformed)?;
            Ok(RawParam { name, value })
        })
        .collect()
}

fn malformed() -> ProtocolError {
    ProtocolError::MalformedEncoding {
        detail: "a parameter has a '%' that is not followed by two hex digits; percent-encode the values"
            .into(),
    }
}

/// Decodes `+` to a space and `%XX` to a byte; `None` on a truncated or non-hex escape.
pub fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(*input.get(i + 1)?)?;
                let lo = hex(*input.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The decoded value of the first `name` in form data, tolerating malformed neighbours.
/// Used before the charset is known (charset itself, and best-effort context for error replies).
pub fn find_raw(data: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    data.split(|&b| b == b'&').find_map(|segment| {
        let i = segment.iter().position(|&b| b == b'=')?;
        (percent_decode(&segment[..i])? == name).then(|| percent_decode(&segment[i + 1..]))?
    })
}

/// Parses a request body by its Content-Type: form-urlencoded (also the default when there is
/// no Content-Type) or multipart, whose text parts are parameters and whose file parts are not
/// (files are not signed, §1.2).
pub fn parse_body(
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<Vec<RawParam>, ProtocolError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if is_multipart(content_type) {
        let boundary =
            content_type
                .and_then(boundary)
                .ok_or_else(|| ProtocolError::MalformedEncoding {
                    detail: "multipart/form-data without a valid boundary (1 to 70 characters)"
                        .into(),
                })?;
        return parse_multipart(body, &boundary);
    }
    parse_urlencoded(body)
}

/// The multipart boundary: 1 to 70 characters (RFC 2046 §5.1.1). A longer one is refused, which
/// also keeps the boundary search linear in the body size.
fn boundary(content_type: &[u8]) -> Option<Cow<'_, [u8]>> {
    crate::header::param(content_type, b"boundary").filter(|b| (1..=70).contains(&b.len()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_multipart(body: &[u8], boundary: &[u8]) -> Result<Vec<RawParam>, ProtocolError> {
    let bad = |what: &str| ProtocolError::MalformedEncoding {
        detail: format!("multipart body: {what}"),
    };
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let start = find(body, &delimiter).ok_or_else(|| bad("no boundary line"))?;
    let mut rest = &body[start + delimiter.len()..];
    let mut close = b"\r\n".to_vec();
    close.extend_from_slice(&delimiter);
    let mut params = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(params);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or_else(|| bad("boundary line not followed by CRLF"))?;
        let head_end = find(rest, b"\r\n\r\n").ok_or_else(|| bad("part headers never end"))?;
        let headers = &rest[..head_end];
        rest = &rest[head_end + 4..];
        let end = find(rest, &close).ok_or_else(|| bad("part never ends (truncated body?)"))?;
        let content = &rest[..end];
        rest = &rest[end + close.len()..];
        let (name, is_file) =
            disposition(headers).ok_or_else(|| bad("part without Content-Disposition name"))?;
        if !is_file {
            params.push(RawParam {
                name,
                value: content.to_vec(),
            });
        }
    }
}

/// `(name, has filename)` from a part's `Content-Disposition: form-data; name="x"` header,
/// lenient about whitespace (the Java SDK writes `Content-Disposition:form-data;name="x"`).
fn disposition(headers: &[u8]) -> Option<(Vec<u8>, bool)> {
    let line = headers.split(|&b| b == b'\n').find(|line| {
        let line = line.trim_ascii_start();
        line.len() > 20 && line[..20].eq_ignore_ascii_case(b"content-disposition:")
    })?;
    // Header lines end in CRLF; a trailing CR is not part of the value.
    let value = line.trim_ascii();
    let name = crate::header::param(value, b"name")?.into_owned();
    let is_file = crate::header::param(value, b"filename").is_some();
    Some((name, is_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(params: &[RawParam]) -> Vec<(&[u8], &[u8])> {
        params.iter().map(|p| (&p.name[..], &p.value[..])).collect()
    }

    #[test]
    fn urlencoded_decodes_plus_and_escapes_to_bytes() {
        let params = parse_urlencoded(b"a=x+y%2B%E7%94%A8&b&&c=").unwrap();
        assert_eq!(
            pairs(&params),
            vec![
                (&b"a"[..], "x y+用".as_bytes()),
                (&b"b"[..], &b""[..]),
                (&b"c"[..], &b""[..])
            ]
        );
    }

    #[test]
    fn truncated_or_non_hex_escapes_are_errors() {
        for bad in [&b"a=%"[..], b"a=%E", b"a=%zz", b"a%2=1"] {
            assert!(
                matches!(
                    parse_urlencoded(bad),
                    Err(ProtocolError::MalformedEncoding { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn find_raw_skips_malformed_neighbours() {
        assert_eq!(
            find_raw(b"x=%&charset=GBK", b"charset"),
            Some(b"GBK".to_vec())
        );
        assert_eq!(find_raw(b"x=1", b"charset"), None);
    }

    #[test]
    fn multipart_text_parts_are_params_and_files_are_not() {
        let body = b"\r\n--XyZ\r\nContent-Disposition:form-data;name=\"app_id\"\r\nContent-Type:text/plain;charset=utf-8\r\n\r\n2021\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n\x89PNG\r\n--XyZ\r\nContent-Disposition: form-data; name=\"biz_content\"\r\n\r\n{\"a\":\"b\"}\r\n--XyZ--\r\n";
        let params = parse_body(
            Some(b"multipart/form-data;boundary=XyZ;charset=utf-8"),
            body,
        )
        .unwrap();
        assert_eq!(
            pairs(&params),
            vec![
                (&b"app_id"[..], &b"2021"[..]),
                (&b"biz_content"[..], &b"{\"a\":\"b\"}"[..])
            ]
        );
    }

    #[test]
    fn multipart_names_and_boundaries_are_quoted_strings() {
        let body = b"--a;b\r\nContent-Disposition: form-data; name=\"x;y\"\r\n\r\n1\r\n--a;b\r\ncontent-disposition: form-data; name=\"say \\\"hi\\\"\"; filename=\"f;g\"\r\n\r\nfile\r\n--a;b--\r\n";
        let params = parse_body(Some(b"Multipart/Form-Data; boundary=\"a;b\""), body).unwrap();
        assert_eq!(pairs(&params), vec![(&b"x;y"[..], &b"1"[..])]);
    }

    #[test]
    fn truncated_multipart_is_an_error() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue";
        assert!(parse_body(Some(b"multipart/form-data; boundary=XyZ"), body).is_err());
        assert!(parse_body(Some(b"multipart/form-data"), body).is_err());
        let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
        assert!(parse_body(Some(long.as_bytes()), body).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_urlencoded(&data);
            let _ = parse_body(Some(b"multipart/form-data; boundary=b"), &data);
            let _ = find_raw(&data, b"charset");
        }

        #[test]
        fn percent_encoding_round_trips(value in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let encoded: String = value.iter().map(|b| format!("%{b:02X}")).collect();
            proptest::prop_assert_eq!(percent_decode(encoded.as_bytes()), Some(value));
        }
    }
}
