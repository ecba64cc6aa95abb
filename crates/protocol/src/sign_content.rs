//! The string-to-sign (§2.2 for requests, §8.7 for notifications).

use crate::params::Params;

/// Which parameters with empty values take part (§2.2 step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empties {
    /// Dropped, as the Java SDK and gopay do (tried first).
    Drop,
    /// Kept as `k=`, as the official Python SDK does (tried second, only when there are any).
    Keep,
}

/// Every parameter except `sign`, sorted by name in byte order, joined as `k=v&k=v` with the
/// values exactly as received (already in the request charset). `sign_type` is included.
pub fn request(params: &Params, empties: Empties) -> Vec<u8> {
    join(
        params.iter_raw().filter(|(name, _)| *name != b"sign"),
        empties,
    )
}

/// The notification string-to-sign (UTF-8): all parameters but `sign` and `sign_type`, empty
/// values dropped.
pub fn notification<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let bytes = join(
        params
            .into_iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .filter(|(name, _)| *name != b"sign" && *name != b"sign_type"),
        Empties::Drop,
    );
    // Joining UTF-8 pieces with ASCII separators is UTF-8.
    String::from_utf8_lossy(&bytes).into_owned()
}

fn join<'a>(params: impl Iterator<Item = (&'a [u8], &'a [u8])>, empties: Empties) -> Vec<u8> {
    let mut kept: Vec<(&[u8], &[u8])> = params
        .filter(|(_, value)| empties == Empties::Keep || !value.is_empty())
        .collect();
    kept.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(kept.iter().map(|(n, v)| n.len() + v.len() + 2).sum());
    for (i, (name, value)) in kept.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name);
        out.push(b'=');
        out.extend_from_slice(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charset::Charset;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(Charset::Utf8, pairs).unwrap()
    }

    #[test]
    fn request_string_sorts_drops_sign_and_keeps_sign_type() {
        let p = params(&[
            ("sign", "x"),
            ("b", "2 &=+%"),
            ("sign_type", "RSA2"),
            ("a", "1"),
            ("e", ""),
        ]);
        assert_eq!(request(&p, Empties::Drop), b"a=1&b=2 &=+%&sign_type=RSA2");
        assert_eq!(
            request(&p, Empties::Keep),
            b"a=1&b=2 &=+%&e=&sign_type=RSA2"
        );
    }

    #[test]
    fn notification_string_drops_sign_type_too() {
        assert_eq!(
            notification([("sign_type", "RSA2"), ("z", "1"), ("a", ""), ("sign", "s")]),
            "z=1"
        );
    }
}
