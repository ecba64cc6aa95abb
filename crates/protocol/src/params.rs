//! The request's parameter set: query ∪ body, decoded in the request charset (§1.2, §1.4).

use crate::charset::{self, Charset};
use crate::error::ProtocolError;
use crate::form::{self, RawParam};

/// Most parameters a request may carry; every SDK sends fewer than 20.
pub const MAX_PARAMS: usize = 64;

/// The decoded, merged parameters of one request, in arrival order, each name once.
///
/// The received bytes are kept beside the text: the signature was made over those bytes, so
/// the string-to-sign is rebuilt from them, never from re-encoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    charset: Charset,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    value: String,
    raw: RawParam,
}

impl Params {
    /// Decodes a request: resolves the charset, splits and percent-decodes query and body, decodes
    /// the bytes in the charset, and merges. A name that appears twice keeps its first value
    /// (query before body), the value a servlet `getParameter` returns.
    pub fn decode(
        query: &[u8],
        content_type: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Self, ProtocolError> {
        let charset = charset::resolve(query, content_type, body)?;
        let mut raw = form::parse_urlencoded(query)?;
        raw.extend(form::parse_body(content_type, body)?);
        Self::from_raw(charset, raw)
    }

    /// Decodes already-split parameters in `charset` and merges duplicates.
    pub fn from_raw(charset: Charset, raw: Vec<RawParam>) -> Result<Self, ProtocolError> {
        let mut entries: Vec<Entry> = Vec::with_capacity(raw.len().min(MAX_PARAMS));
        for raw in raw {
            let name = charset.decode(&raw.name)?;
            if entries.iter().any(|e| e.name == name) {
                continue;
            }
            if entries.len() == MAX_PARAMS {
                return Err(ProtocolError::InvalidParameter {
                    detail: format!("more than {MAX_PARAMS} parameters"),
                });
            }
            let name = name.into_owned();
            let value = charset.decode(&raw.value)?.into_owned();
            entries.push(Entry { name, value, raw });
        }
        Ok(Self { charset, entries })
    }

    /// Parameters given as text, as a client builds them: names and values encoded in `charset`,
    /// so that the string-to-sign is made of the bytes the wire will carry.
    pub fn from_pairs(charset: Charset, pairs: &[(&str, &str)]) -> Result<Self, ProtocolError> {
        let raw = pairs
            .iter()
            .map(|(name, value)| RawParam {
                name: name.as_bytes().to_vec(),
                value: charset.encode(value).into_owned(),
            })
            .collect();
        Self::from_raw(charset, raw)
    }

    /// The charset the request was decoded with (and its response must be encoded in).
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// The value of `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.value.as_str())
    }

    /// The value of `name` if sent and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// All parameters, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
    }

    /// All parameters as received bytes (percent-decoded, not charset-decoded), in arrival order.
    pub fn iter_raw(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|e| (e.raw.name.as_slice(), e.raw.value.as_slice()))
    }

    /// Whether any parameter was sent with an empty value (see [`crate::sign_content`]).
    pub fn has_empty_values(&self) -> bool {
        self.entries.iter().any(|e| e.value.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_body_merge_and_duplicates_keep_the_query_value() {
        let p = Params::decode(
            b"a=1&charset=utf-8",
            Some(b"application/x-www-form-urlencoded"),
            b"b=2&a=3&charset=utf-8",
        )
        .unwrap();
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            vec![("a", "1"), ("charset", "utf-8"), ("b", "2")]
        );
    }

    #[test]
    fn gbk_values_decode_after_percent_decoding() {
        let p = Params::decode(b"charset=GBK", None, b"x=%D3%C3%BB%A7").unwrap();
        assert_eq!(p.get("x"), Some("用户"));
        assert_eq!(p.charset(), Charset::Gbk);
    }

    #[test]
    fn undecodable_bytes_are_a_charset_error() {
        let err = Params::decode(b"charset=utf-8&x=%FF", None, b"").unwrap_err();
        assert!(matches!(err, ProtocolError::InvalidCharset { .. }));
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let query: String = (0..=MAX_PARAMS).map(|i| format!("p{i}=1&")).collect();
        assert!(matches!(
            Params::decode(query.as_bytes(), None, b""),
            Err(ProtocolError::InvalidParameter { .. })
        ));
    }
}
