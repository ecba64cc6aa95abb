//! The `; name=value` parameters of header values (`Content-Type`, `Content-Disposition`),
//! leniently: blanks around names and values ignored, double quotes around values removed,
//! names compared ASCII case-insensitively.

/// The parameters after the first `;` of a header value, as `(name, value)`.
pub(crate) fn params(value: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    value.split(|&b| b == b';').skip(1).filter_map(|param| {
        let eq = param.iter().position(|&b| b == b'=')?;
        let value = param[eq + 1..].trim_ascii();
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        Some((param[..eq].trim_ascii(), value))
    })
}

/// The value of parameter `name`, if present.
pub(crate) fn param<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    params(value).find_map(|(n, v)| n.eq_ignore_ascii_case(name).then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_found_leniently() {
        let ct = b"multipart/form-data; Boundary=\"x y\" ;charset = GBK;bad";
        assert_eq!(param(ct, b"boundary"), Some(&b"x y"[..]));
        assert_eq!(param(ct, b"CHARSET"), Some(&b"GBK"[..]));
        assert_eq!(param(ct, b"bad"), None);
        assert_eq!(param(b"text/plain", b"charset"), None);
    }
}
