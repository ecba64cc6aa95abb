//! Asynchronous notifications (§8.7): `application/x-www-form-urlencoded` POSTs signed by the
//! platform key over every parameter except `sign` and `sign_type`.

use crate::crypto::{KeyError, PrivateKey, SignType};
use crate::sign_content;

/// The Content-Type of a notification.
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The answer that tells the platform a notification was received.
pub const RECEIVED: &str = "success";

/// Signs `params` (without `sign` and `sign_type`, which are added here) and returns the form
/// body: every non-empty parameter, `sign_type` and `sign`, sorted by name, each name and value
/// percent-encoded as the SDKs' form encoders do (`application/x-www-form-urlencoded`, UTF-8,
/// space as `+`, only `A-Z a-z 0-9 - . _ ~` left as they are).
pub fn sign_form(
    params: &[(&str, &str)],
    key: &PrivateKey,
    sign_type: SignType,
) -> Result<String, KeyError> {
    let content = sign_content::notification(params.iter().copied());
    let sign = key.sign(sign_type, content.as_bytes())?;
    let mut fields: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(name, value)| !value.is_empty() && *name != "sign" && *name != "sign_type")
        .chain([("sign_type", sign_type.as_str()), ("sign", sign.as_str())])
        .collect();
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut body = String::with_capacity(content.len() * 2 + sign.len() * 2);
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            body.push('&');
        }
        encode_into(&mut body, name);
        body.push('=');
        encode_into(&mut body, value);
    }
    Ok(body)
}

fn encode_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_unreserved_bytes() {
        let mut out = String::new();
        encode_into(&mut out, "a b*~/|:中");
        assert_eq!(out, "a+b%2A~%2F%7C%3A%E4%B8%AD");
    }

    #[test]
    fn empty_values_and_caller_signatures_are_left_out() {
        let key = PrivateKey::generate(2048).unwrap();
        let body = sign_form(
            &[
                ("b", "2"),
                ("a", ""),
                ("sign", "forged"),
                ("sign_type", "RSA"),
            ],
            &key,
            SignType::Rsa2,
        )
        .unwrap();
        assert!(body.starts_with("b=2&sign="), "{body}");
        assert!(body.ends_with("&sign_type=RSA2"), "{body}");
        assert!(!body.contains("forged"));
        let sign = body
            .split('&')
            .find_map(|p| p.strip_prefix("sign="))
            .unwrap();
        let sign = crate::form::percent_decode(sign.as_bytes()).unwrap();
        assert!(key.public_key().unwrap().verify(
            SignType::Rsa2,
            b"b=2",
            std::str::from_utf8(&sign).unwrap()
        ));
    }
}
