//! The signed response body (§3): `{"<node>":<object>,"sign":"<base64>"}`, compact, node first,
//! `sign` right after it, raw non-ASCII, no `\/`, bytes in the request charset. The signature
//! covers exactly the node bytes that are sent.

use serde::Serialize;

use crate::aes::{AesError, ContentKey, EncryptType};
use crate::charset::Charset;
use crate::crypto::{KeyError, PrivateKey, SignType};
use crate::error::{GatewayCode, WireError};

#[derive(Serialize)]
struct SuccessNode<'a, T> {
    code: &'static str,
    msg: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct ErrorNode<'a> {
    code: &'static str,
    msg: &'static str,
    sub_code: &'static str,
    sub_msg: &'a str,
}

/// The node object of a success: `code` 10000, `msg` Success, then `body`'s fields in order.
/// `body` must serialize as a struct or map.
pub fn success_node<T: Serialize>(body: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(&SuccessNode {
        code: GatewayCode::Success.code(),
        msg: GatewayCode::Success.msg(),
        body,
    })
}

/// The node object of a failure: `code`, `msg`, `sub_code`, `sub_msg`.
pub fn error_node(error: &WireError) -> String {
    let node = ErrorNode {
        code: error.code.code(),
        msg: error.code.msg(),
        sub_code: error.sub_code,
        sub_msg: &error.sub_msg,
    };
    // Serializing four strings into a String cannot fail.
    serde_json::to_string(&node).unwrap_or_default()
}

/// Who signs a response, and how.
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    /// The platform private key.
    pub key: &'a PrivateKey,
    /// The request's sign type (RSA2 when the request's was missing or invalid).
    pub sign_type: SignType,
}

/// Encodes `node_json` in `charset`, signs those bytes, and wraps them. Without `signing` the
/// body has no `sign` member (only when the app could not be known).
pub fn render(
    node_name: &str,
    node_json: &str,
    charset: Charset,
    signing: Option<Signing<'_>>,
) -> Result<Vec<u8>, KeyError> {
    let node = charset.encode(node_json);
    let sign = signing
        .map(|s| s.key.sign(s.sign_type, &node))
        .transpose()?;
    Ok(wrap(node_name, &node, None, sign.as_deref()))
}

/// The node of an encrypted answer (§6): the node's bytes (in the response charset) encrypted
/// with the app's key, as a JSON string — `"<base64>"`, the exact bytes to sign and send.
pub fn seal(key: &ContentKey, encrypt_type: EncryptType, node: &[u8]) -> Result<Vec<u8>, AesError> {
    let sealed = key.encrypt(encrypt_type, node)?;
    let mut out = Vec::with_capacity(sealed.len() + 2);
    out.push(b'"');
    out.extend_from_slice(sealed.as_bytes());
    out.push(b'"');
    Ok(out)
}

/// Wraps node bytes (already in the response charset) and their signature, if any, into the
/// body. In certificate mode `cert_sn` (the SN of the platform certificate whose key signed) goes
/// between the node and `sign` (§3.5: the one layout every cert-mode client reads).
pub fn wrap(node_name: &str, node: &[u8], cert_sn: Option<&str>, sign: Option<&str>) -> Vec<u8> {
    let mut body = Vec::with_capacity(node_name.len() + node.len() + 450);
    body.extend_from_slice(b"{\"");
    body.extend_from_slice(node_name.as_bytes());
    body.extend_from_slice(b"\":");
    body.extend_from_slice(node);
    if let Some(sn) = cert_sn {
        body.extend_from_slice(b",\"alipay_cert_sn\":\"");
        body.extend_from_slice(sn.as_bytes());
        body.push(b'"');
    }
    if let Some(sign) = sign {
        body.extend_from_slice(b",\"sign\":\"");
        body.extend_from_slice(sign.as_bytes());
        body.push(b'"');
    }
    body.push(b'}');
    body
}

/// The response `Content-Type`, naming the charset the body is encoded in.
pub fn content_type(charset: Charset) -> String {
    format!("application/json;charset={}", charset.label())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Body {
        items: Vec<&'static str>,
    }

    #[test]
    fn success_node_has_no_sub_code_and_keeps_field_order() {
        let node = success_node(&Body {
            items: vec!["a/b", "用户"],
        })
        .unwrap();
        assert_eq!(
            node,
            r#"{"code":"10000","msg":"Success","items":["a/b","用户"]}"#
        );
    }

    #[test]
    fn error_node_escapes_only_what_json_requires() {
        let node = error_node(&WireError::business("X", "a \"quoted\" / 用户\n"));
        assert_eq!(
            node,
            r#"{"code":"40004","msg":"Business Failed","sub_code":"X","sub_msg":"a \"quoted\" / 用户\n"}"#
        );
    }

    #[test]
    fn a_sealed_node_is_a_quoted_base64_string_that_opens_to_the_node() {
        let key = ContentKey::parse("AAECAwQFBgcICQoLDA0ODw==").unwrap();
        let node = br#"{"code":"10000","msg":"Success"}"#;
        for encrypt_type in [EncryptType::Aes, EncryptType::AesV2] {
            let sealed = seal(&key, encrypt_type, node).unwrap();
            let text = std::str::from_utf8(&sealed).unwrap();
            let inner = text.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
            assert_eq!(key.decrypt(encrypt_type, inner).unwrap(), node);
            let body = wrap("n", &sealed, None, Some("S"));
            assert_eq!(
                body,
                format!("{{\"n\":{text},\"sign\":\"S\"}}").into_bytes()
            );
        }
    }

    #[test]
    fn the_cert_sn_goes_between_the_node_and_the_sign() {
        assert_eq!(
            wrap("n", b"{}", Some("abc"), Some("S")),
            br#"{"n":{},"alipay_cert_sn":"abc","sign":"S"}"#
        );
    }

    #[test]
    fn unsigned_render_has_no_sign_member() {
        let body = render("error_response", "{}", Charset::Utf8, None).unwrap();
        assert_eq!(body, br#"{"error_response":{}}"#);
    }
}
