//! Request charsets (openapi-gateway.md §1.4): which one a request uses, and text ↔ bytes in it.

use std::borrow::Cow;

use encoding_rs::{Encoding, GBK, UTF_8};

use crate::error::ProtocolError;

/// A charset the gateway speaks. `gb2312` is read as GBK, its superset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `utf-8` (the default when a request names none).
    Utf8,
    /// `GBK`, `gbk` or `gb2312`.
    Gbk,
}

impl Charset {
    /// Parses a `charset` label, ASCII case-insensitively, surrounding blanks ignored.
    /// Accepts `utf-8`, `utf8`, `gbk`, `gb2312`.
    pub fn from_label(label: &[u8]) -> Result<Self, ProtocolError> {
        let label = label.trim_ascii();
        if label.eq_ignore_ascii_case(b"utf-8") || label.eq_ignore_ascii_case(b"utf8") {
            Ok(Self::Utf8)
        } else if label.eq_ignore_ascii_case(b"gbk") || label.eq_ignore_ascii_case(b"gb2312") {
            Ok(Self::Gbk)
        } else {
            Err(ProtocolError::InvalidCharset {
                detail: "unsupported charset".into(),
            })
        }
    }

    /// The label we put in `Content-Type: application/json;charset=…`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Gbk => "GBK",
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            Self::Utf8 => UTF_8,
            Self::Gbk => GBK,
        }
    }

    /// Decodes bytes strictly: malformed input is an error, never replaced.
    pub fn decode<'a>(self, bytes: &'a [u8]) -> Result<Cow<'a, str>, ProtocolError> {
        self.encoding()
            .decode_without_bom_handling_and_without_replacement(bytes)
            .ok_or_else(|| ProtocolError::InvalidCharset {
                detail: format!("bytes that are not valid {}", self.label()),
            })
    }

    /// Encodes text for the wire. Characters GBK cannot hold become `&#NNNN;` (the WHATWG
    /// encoder's rule); since we sign the encoded bytes, the signature still matches.
    pub fn encode(self, text: &str) -> Cow<'_, [u8]> {
        match self {
            Self::Utf8 => Cow::Borrowed(text.as_bytes()),
            Self::Gbk => GBK.encode(text).0,
        }
    }
}

/// Finds the request charset (§1.4): the request's own `charset` parameter — in the raw query
/// string, else a field of a form body — else the `charset=` of the Content-Type header, else
/// UTF-8. The parameter is signed and the header is not, so a header naming another charset
/// than the parameter is refused (`isv.invalid-charset`) instead of deciding how the signed
/// bytes are read. Values are looked at as percent-decoded ASCII; nothing else is decoded here.
pub fn resolve(
    query: &[u8],
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<Charset, ProtocolError> {
    let parameter = crate::form::find_raw(query, b"charset").or_else(|| {
        (!is_multipart(content_type))
            .then(|| crate::form::find_raw(body, b"charset"))
            .flatten()
    });
    let header = content_type.and_then(|ct| crate::header::param(ct, b"charset"));
    match (parameter, header) {
        (Some(parameter), Some(header)) => {
            let charset = Charset::from_label(&parameter)?;
            match Charset::from_label(&header) {
                Ok(named) if named == charset => Ok(charset),
                _ => Err(ProtocolError::InvalidCharset {
                    detail: "the Content-Type header's charset contradicts the charset parameter"
                        .into(),
                }),
            }
        }
        (Some(label), None) => Charset::from_label(&label),
        (None, Some(label)) => Charset::from_label(&label),
        (None, None) => Ok(Charset::Utf8),
    }
}

/// Whether a Content-Type names a multipart body (the one test, for decoding and for scanning
/// a broken request).
pub fn is_multipart(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|ct| {
        ct.trim_ascii_start().len() >= 19
            && ct.trim_ascii_start()[..19].eq_ignore_ascii_case(b"multipart/form-data")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_case_insensitive_and_gb2312_is_gbk() {
        assert_eq!(Charset::from_label(b"UTF-8").unwrap(), Charset::Utf8);
        assert_eq!(Charset::from_label(b"utf-8").unwrap(), Charset::Utf8);
        assert_eq!(Charset::from_label(b"gbk").unwrap(), Charset::Gbk);
        assert_eq!(Charset::from_label(b"GBK").unwrap(), Charset::Gbk);
        assert_eq!(Charset::from_label(b"gb2312").unwrap(), Charset::Gbk);
        assert!(matches!(
            Charset::from_label(b"latin1"),
            Err(ProtocolError::InvalidCharset { .. })
        ));
        assert!(matches!(
            Charset::from_label(b""),
            Err(ProtocolError::InvalidCharset { .. })
        ));
    }

    #[test]
    fn the_query_parameter_wins_over_the_body_field() {
        let cs = resolve(b"a=1&charset=GBK", None, b"charset=utf-8").unwrap();
        assert_eq!(cs, Charset::Gbk);
    }

    #[test]
    fn a_header_contradicting_the_parameter_is_refused() {
        let gbk = Some(&b"application/x-www-form-urlencoded; charset=\"gb2312\""[..]);
        let utf8 = Some(&b"application/x-www-form-urlencoded;charset=UTF-8"[..]);
        let refused = |query: &[u8], ct, body: &[u8]| {
            matches!(
                resolve(query, ct, body),
                Err(ProtocolError::InvalidCharset { detail }) if detail.contains("contradicts")
            )
        };
        assert!(refused(b"", gbk, b"charset=utf-8"));
        assert!(refused(b"charset=utf-8", gbk, b""));
        assert!(refused(b"charset=GBK", utf8, b""));
        assert!(refused(
            b"charset=utf-8",
            Some(b"application/x-www-form-urlencoded;charset=latin1"),
            b""
        ));
        // Agreeing spellings are one charset.
        assert_eq!(resolve(b"charset=GBK", gbk, b"").unwrap(), Charset::Gbk);
        assert_eq!(
            resolve(b"", utf8, b"x=1&charset=utf-8").unwrap(),
            Charset::Utf8
        );
        // A multipart body's fields are not scanned: the header decides.
        assert_eq!(
            resolve(
                b"",
                Some(b"multipart/form-data; boundary=b; charset=GBK"),
                b"charset=utf-8"
            )
            .unwrap(),
            Charset::Gbk
        );
    }

    #[test]
    fn header_without_parameter_and_body_over_default() {
        let ct = b"application/x-www-form-urlencoded; charset=\"gb2312\"";
        assert_eq!(resolve(b"", Some(ct), b"x=1").unwrap(), Charset::Gbk);
        assert_eq!(
            resolve(
                b"",
                Some(b"application/x-www-form-urlencoded"),
                b"x=1&charset=gbk"
            )
            .unwrap(),
            Charset::Gbk
        );
        assert_eq!(resolve(b"", None, b"").unwrap(), Charset::Utf8);
    }

    #[test]
    fn unknown_charset_is_an_error() {
        assert!(resolve(b"charset=big5", None, b"").is_err());
    }

    #[test]
    fn decoding_is_strict() {
        assert!(Charset::Utf8.decode(&[0xff, 0xfe]).is_err());
        assert!(Charset::Gbk.decode(&[0x81]).is_err());
        assert_eq!(
            Charset::Gbk.decode(&[0xd3, 0xc3, 0xbb, 0xa7]).unwrap(),
            "用户"
        );
    }

    #[test]
    fn gbk_encoding_round_trips_chinese() {
        assert_eq!(&*Charset::Gbk.encode("用户"), &[0xd3, 0xc3, 0xbb, 0xa7]);
    }
}
