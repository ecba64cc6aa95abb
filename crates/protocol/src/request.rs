//! The gateway checks of §2.5, as steps the server runs in order around its own lookups:
//! [`method`] → [`required`] → (app lookup) → [`sign_type`] → (key lookup) → [`verify`] →
//! [`check_signed`] → (token, permission) → [`biz_content`].

use crate::crypto::{PublicKey, SignType};
use crate::error::ProtocolError;
use crate::method::Method;
use crate::params::Params;
use crate::sign_content::{self, Empties};
use crate::timestamp;

/// Longest accepted `app_id` (the public parameter table).
pub const MAX_APP_ID: usize = 32;
/// Longest accepted `sign`: a 4096-bit signature in base64 is 684 characters.
pub const MAX_SIGN: usize = 1024;
/// Longest accepted `app_auth_token` (the public parameter table).
pub const MAX_APP_AUTH_TOKEN: usize = 40;

/// Step 1: the method. Missing or unknown methods are answered in `error_response`.
pub fn method(params: &Params) -> Result<Method, ProtocolError> {
    let name = params
        .non_empty("method")
        .ok_or(ProtocolError::MissingMethod)?;
    Method::parse(name).ok_or(ProtocolError::InvalidMethod)
}

/// The public parameters every request must carry, checked for presence and shape.
#[derive(Debug, Clone, Copy)]
pub struct Required<'a> {
    /// `app_id`: digits, at most [`MAX_APP_ID`].
    pub app_id: &'a str,
    /// `sign_type` as sent (validated by [`sign_type`] once the app is known).
    pub sign_type: &'a str,
    /// `sign` as sent.
    pub sign: &'a str,
}

/// Step 2: required parameters present (`40001`), in the order app_id, sign_type, sign,
/// timestamp, version; `app_id` well-formed.
pub fn required(params: &Params) -> Result<Required<'_>, ProtocolError> {
    let app_id = params
        .non_empty("app_id")
        .ok_or(ProtocolError::MissingAppId)?;
    if app_id.len() > MAX_APP_ID || !app_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtocolError::InvalidAppId {
            detail: "app_id must be at most 32 digits",
        });
    }
    let sign_type = params
        .non_empty("sign_type")
        .ok_or(ProtocolError::MissingSignType)?;
    let sign = params.non_empty("sign").ok_or(ProtocolError::MissingSign)?;
    params
        .non_empty("timestamp")
        .ok_or(ProtocolError::MissingTimestamp)?;
    params
        .non_empty("version")
        .ok_or(ProtocolError::MissingVersion)?;
    Ok(Required {
        app_id,
        sign_type,
        sign,
    })
}

/// Step 3 (after the app is known): the sign type.
pub fn sign_type(required: &Required<'_>) -> Result<SignType, ProtocolError> {
    SignType::parse(required.sign_type).ok_or(ProtocolError::InvalidSignType)
}

/// Step 4: the signature over the rebuilt string-to-sign, with empty values dropped, then (only
/// if the request carried any) kept — exactly the two client behaviours of §2.2.
pub fn verify(params: &Params, key: &PublicKey, sign_type: SignType) -> Result<(), ProtocolError> {
    let sign = params.get("sign").unwrap_or_default();
    if sign.len() > MAX_SIGN {
        return Err(ProtocolError::InvalidSignature);
    }
    let verified = key.verify(
        sign_type,
        &sign_content::request(params, Empties::Drop),
        sign,
    ) || (params.has_empty_values()
        && key.verify(
            sign_type,
            &sign_content::request(params, Empties::Keep),
            sign,
        ));
    if verified {
        Ok(())
    } else {
        Err(ProtocolError::InvalidSignature)
    }
}

/// Step 5 (on signed content): `format` (optional, JSON in any case), `version` (`1.0`),
/// `timestamp` within the window, `encrypt_type` (no app has an AES key yet), and the length
/// of `app_auth_token`.
pub fn check_signed(
    params: &Params,
    now: i64,
    window_secs: Option<u64>,
) -> Result<(), ProtocolError> {
    if let Some(format) = params.non_empty("format")
        && !format.eq_ignore_ascii_case("json")
    {
        return Err(ProtocolError::InvalidFormat);
    }
    if params.get("version") != Some("1.0") {
        return Err(ProtocolError::InvalidVersion);
    }
    timestamp::check(
        params.get("timestamp").unwrap_or_default(),
        now,
        window_secs,
    )?;
    if let Some(encrypt_type) = params.non_empty("encrypt_type") {
        return Err(if encrypt_type == "AES" {
            ProtocolError::EncryptionKeyMissing
        } else {
            ProtocolError::InvalidEncryptType
        });
    }
    if params
        .non_empty("app_auth_token")
        .is_some_and(|t| t.len() > MAX_APP_AUTH_TOKEN)
    {
        return Err(ProtocolError::InvalidAppAuthToken);
    }
    Ok(())
}

/// Last gateway step: `biz_content` must be present and a JSON object (`40002`). Unknown
/// fields are the business layer's to ignore.
pub fn biz_content(
    params: &Params,
) -> Result<serde_json::Map<String, serde_json::Value>, ProtocolError> {
    let text = params
        .non_empty("biz_content")
        .ok_or_else(|| ProtocolError::InvalidParameter {
            detail: "biz_content is required and must be a JSON object".into(),
        })?;
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(ProtocolError::InvalidParameter {
            detail: "biz_content must be a JSON object".into(),
        }),
        Err(e) => Err(ProtocolError::InvalidParameter {
            detail: format!("biz_content is not valid JSON ({e})"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charset::Charset;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(Charset::Utf8, pairs).unwrap()
    }

    const FULL: &[(&str, &str)] = &[
        ("method", "alipay.user.agreement.batch.query"),
        ("app_id", "2021000000000001"),
        ("sign_type", "RSA2"),
        ("sign", "c2ln"),
        ("timestamp", "2024-05-20 13:14:15"),
        ("version", "1.0"),
        ("biz_content", "{}"),
    ];

    fn without(name: &str) -> Params {
        params(
            &FULL
                .iter()
                .copied()
                .filter(|(n, _)| *n != name)
                .collect::<Vec<_>>(),
        )
    }

    fn with(name: &str, value: &str) -> Params {
        params(
            &FULL
                .iter()
                .map(|&(n, v)| if n == name { (n, value) } else { (n, v) })
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn missing_parameters_map_to_their_codes_in_order() {
        assert_eq!(
            method(&without("method")),
            Err(ProtocolError::MissingMethod)
        );
        assert_eq!(
            method(&with("method", "alipay.trade.pay")),
            Err(ProtocolError::InvalidMethod)
        );
        for (name, err) in [
            ("app_id", ProtocolError::MissingAppId),
            ("sign_type", ProtocolError::MissingSignType),
            ("sign", ProtocolError::MissingSign),
            ("timestamp", ProtocolError::MissingTimestamp),
            ("version", ProtocolError::MissingVersion),
        ] {
            assert_eq!(required(&without(name)).unwrap_err(), err, "{name}");
            assert_eq!(required(&with(name, "")).unwrap_err(), err, "{name} empty");
        }
        assert!(required(&params(FULL)).is_ok());
    }

    #[test]
    fn app_id_must_be_short_digits() {
        for bad in ["abc", "1234567890123456789012345678901234", "2021 1"] {
            assert!(
                matches!(
                    required(&with("app_id", bad)),
                    Err(ProtocolError::InvalidAppId { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn signed_checks_cover_format_version_timestamp_and_encryption() {
        let now = 1_716_182_055;
        assert!(check_signed(&params(FULL), now, Some(900)).is_ok());
        assert!(check_signed(&with("version", "1.0"), now, Some(900)).is_ok());
        let mut full = FULL.to_vec();
        full.push(("format", "JSON"));
        assert!(check_signed(&params(&full), now, Some(900)).is_ok());
        full.pop();
        full.push(("format", "xml"));
        assert_eq!(
            check_signed(&params(&full), now, Some(900)),
            Err(ProtocolError::InvalidFormat)
        );
        assert_eq!(
            check_signed(&with("version", "2.0"), now, Some(900)),
            Err(ProtocolError::InvalidVersion)
        );
        assert!(matches!(
            check_signed(&params(FULL), now + 3600, Some(900)),
            Err(ProtocolError::InvalidTimestamp { .. })
        ));
        full.pop();
        full.push(("encrypt_type", "AES"));
        assert_eq!(
            check_signed(&params(&full), now, Some(900)),
            Err(ProtocolError::EncryptionKeyMissing)
        );
        full.pop();
        full.push(("encrypt_type", "DES"));
        assert_eq!(
            check_signed(&params(&full), now, Some(900)),
            Err(ProtocolError::InvalidEncryptType)
        );
    }

    #[test]
    fn biz_content_must_be_a_json_object() {
        assert!(biz_content(&params(FULL)).is_ok());
        for bad in ["", "[]", "\"x\"", "{", "null", "1"] {
            assert!(
                matches!(
                    biz_content(&with("biz_content", bad)),
                    Err(ProtocolError::InvalidParameter { .. })
                ),
                "{bad}"
            );
        }
    }
}
