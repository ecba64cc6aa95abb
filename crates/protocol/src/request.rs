//! The gateway checks of §2.5, in order: [`check`] runs them all, calling back into the server
//! (through [`Lookups`]) only at the step that needs what only the server knows — the app, found
//! before the checks start because it decides how even a failure is answered, and whom the
//! request acts for. Each step is also a function of its own: [`method`] → [`required`] → (app
//! known and online) → [`sign_type`] → (key) → [`verify`] → [`check_signed`] → (actor) →
//! (grant) → [`biz_content`] (decrypted first when the request is encrypted).

use std::future::Future;

use crate::aes::{AesError, ContentKey, EncryptType};
use crate::charset::{self, Charset};
use crate::crypto::{PublicKey, SignType};
use crate::error::ProtocolError;
use crate::form;
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
/// Most SNs accepted in `alipay_root_cert_sn` (the public root bundle has two RSA roots).
pub const MAX_ROOT_SNS: usize = 8;

/// Whether `value` has the shape of an `app_id`: 1 to [`MAX_APP_ID`] digits. The one rule,
/// used by the checks, by [`Head`] and by the domain's `AppId`.
pub fn is_app_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_APP_ID && value.bytes().all(|b| b.is_ascii_digit())
}

/// What decides how a request is answered, known even when the request is broken: the method
/// (its response node), the app (whether the answer is signed, with which key), the sign type
/// and the charset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method, if one we serve is named.
    pub method: Option<Method>,
    /// `app_id`, if it has an app id's shape.
    pub app_id: Option<String>,
    /// `sign_type`, RSA2 when missing or invalid.
    pub sign_type: SignType,
    /// The request charset (UTF-8 when it cannot be told).
    pub charset: Charset,
    /// Whether it is a certificate-mode request (it carries `app_cert_sn`): its answer then names
    /// the platform certificate that signed it.
    pub cert_mode: bool,
}

impl Head {
    /// The head of a decoded request.
    pub fn of(params: &Params) -> Self {
        Self::from_lookup(|name| params.get(name).map(str::to_owned), params.charset())
    }

    /// The head of a request that could not be decoded, from ASCII-safe scans of the query and
    /// (unless multipart) the form body.
    pub fn scan(query: &[u8], content_type: Option<&[u8]>, body: &[u8]) -> Self {
        let charset = charset::resolve(query, content_type, body).unwrap_or(Charset::Utf8);
        let form_body = !charset::is_multipart(content_type);
        let get = |name: &str| {
            form::find_raw(query, name.as_bytes())
                .or_else(|| form_body.then(|| form::find_raw(body, name.as_bytes()))?)
                .and_then(|v| String::from_utf8(v).ok())
        };
        Self::from_lookup(get, charset)
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>, charset: Charset) -> Self {
        Self {
            method: get("method").as_deref().and_then(Method::parse),
            app_id: get("app_id").filter(|id| is_app_id(id)),
            sign_type: get("sign_type")
                .as_deref()
                .and_then(SignType::parse)
                .unwrap_or(SignType::Rsa2),
            charset,
            cert_mode: get("app_cert_sn").is_some_and(|sn| !sn.is_empty()),
        }
    }
}

/// An app as the checks see it.
pub trait CallingApp {
    /// Whether it may call the gateway at all (online).
    fn is_online(&self) -> bool;
    /// Whether it has any request-verification key.
    fn has_keys(&self) -> bool;
    /// Its key for `sign_type`.
    fn key(&self, sign_type: SignType) -> Option<&PublicKey>;
    /// Its content-encryption key, if the operator set one.
    fn content_key(&self) -> Option<&ContentKey>;
    /// Its certificate whose SN is `sn`, if it has one.
    fn cert(&self, sn: &str) -> Option<&AppCertificate>;
    /// When its public keys stop verifying (it switched to certificate mode), if ever.
    fn keys_sunset(&self) -> Option<i64>;
    /// Whether it is granted `method`.
    fn may_call(&self, method: Method) -> bool;
}

/// An app certificate as the checks see it.
#[derive(Debug, Clone)]
pub struct AppCertificate {
    /// The key inside it, which verifies the app's requests.
    pub key: PublicKey,
    /// Validity start (epoch seconds).
    pub not_before: i64,
    /// Validity end (epoch seconds).
    pub not_after: i64,
    /// When a newer certificate's overlap ends, if it was replaced.
    pub retired_at: Option<i64>,
}

/// Whom a request acts for, as the checks see it.
pub trait Actor {
    /// Whether it may call (a disabled merchant may not).
    fn is_enabled(&self) -> bool;
}

/// Why [`check`] refused a request: a protocol answer, or a lookup that failed.
#[derive(Debug)]
pub enum Refusal<E> {
    /// The answer of the step that failed.
    Protocol(ProtocolError),
    /// The server could not look something up (its storage failed).
    Lookup(E),
}

impl<E> From<ProtocolError> for Refusal<E> {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

/// What only the server can look up, at the step that needs it.
pub trait Lookups {
    /// An app.
    type App: CallingApp;
    /// Whom a request acts for.
    type Actor: Actor;
    /// A failed lookup.
    type Error;

    /// The SNs of the platform's roots, `None` when certificate mode is not set up.
    fn root_cert_sns(&self) -> Option<&[String]>;

    /// v3: records `nonce` of `app_id` until `until_ms` and answers whether it is new (a
    /// replayed request's nonce is not); `now_ms` lets expired records go.
    fn first_use(&self, app_id: &str, nonce: &str, until_ms: i64, now_ms: i64) -> bool;

    /// Whether an authenticated request of `app_id` for `method` is within the app's rate
    /// (else `40005`). Asked only after the signature and the timestamp, so junk and replays
    /// spend nobody's rate.
    fn admit(&self, app_id: &str, method: Method) -> Result<(), ProtocolError>;

    /// Whom a request of `app` for `method` acts for at `now`: with an `app_auth_token`, the
    /// merchant that granted it (or the token's `20001` answer), else the app's owner.
    fn actor(
        &self,
        app: &Self::App,
        method: Method,
        app_auth_token: Option<&str>,
        now: i64,
    ) -> impl Future<Output = Result<Self::Actor, Refusal<Self::Error>>> + Send;
}

/// How a request's `biz_content` was encrypted, and so how its answer is: the type it named and
/// the app's key.
#[derive(Debug, Clone, Copy)]
pub struct Encryption<'a> {
    /// `encrypt_type` as sent.
    pub encrypt_type: EncryptType,
    /// The app's content key.
    pub key: &'a ContentKey,
}

/// A request that passed every check.
#[derive(Debug)]
pub struct Checked<'a, P, A> {
    /// The calling app.
    pub app: &'a P,
    /// The method.
    pub method: Method,
    /// The verified signature's algorithm.
    pub sign_type: SignType,
    /// Whom it acts for.
    pub actor: A,
    /// `biz_content`, a JSON object (decrypted).
    pub biz_content: serde_json::Map<String, serde_json::Value>,
    /// The request's encryption, which its answer uses too.
    pub encryption: Option<Encryption<'a>>,
}

/// Runs the checks of §2.5 on a decoded request, in order: method, required parameters, the app
/// (`app`, looked up by the server from the request's [`Head`]) known and online, sign type, the
/// app's key for it, the signature, then on signed content format, version, timestamp (within
/// `window_secs` of `now`), encryption and the token's length, whom the request acts for, the
/// app's grant for the method, that actor being enabled, and `biz_content` (decrypted with the
/// app's content key when `encrypt_type` says so).
pub async fn check<'a, L: Lookups>(
    params: &Params,
    app: Result<Option<&'a L::App>, L::Error>,
    lookups: &L,
    now: i64,
    window_secs: Option<u64>,
) -> Result<Checked<'a, L::App, L::Actor>, Refusal<L::Error>> {
    let method = method(params)?;
    let required = required(params)?;
    let app = known_app(app)?;
    let sign_type = sign_type(&required)?;
    let roots = lookups.root_cert_sns();
    let key = match params.non_empty("app_cert_sn") {
        Some(sn) => {
            params
                .non_empty("alipay_root_cert_sn")
                .ok_or(ProtocolError::MissingRootCertSn)?;
            certificate(app, sn, roots, now)?
        }
        None => public_key(app, sign_type, now)?,
    };
    verify(params, key, sign_type)?;
    let encryption = check_signed(params, now, window_secs, app.content_key())?;
    if params.non_empty("app_cert_sn").is_some() {
        root_cert_sn(
            params.get("alipay_root_cert_sn").unwrap_or_default(),
            roots.unwrap_or_default(),
        )?;
    }
    lookups.admit(required.app_id, method)?;
    let actor = lookups
        .actor(app, method, params.non_empty("app_auth_token"), now)
        .await?;
    if !app.may_call(method) {
        return Err(ProtocolError::InsufficientIsvPermissions.into());
    }
    if !actor.is_enabled() {
        return Err(ProtocolError::InvalidAppId {
            detail: "the calling merchant is disabled",
        }
        .into());
    }
    Ok(Checked {
        app,
        method,
        sign_type,
        actor,
        biz_content: biz_content(params, encryption, app.content_key())?,
        encryption,
    })
}

/// Step 3 (v2 and v3): the app the request names (looked up by the server) exists and is
/// online.
pub fn known_app<A: CallingApp, E>(app: Result<Option<&A>, E>) -> Result<&A, Refusal<E>> {
    let app = app
        .map_err(Refusal::Lookup)?
        .ok_or(ProtocolError::InvalidAppId {
            detail: "no such app",
        })?;
    if !app.is_online() {
        return Err(ProtocolError::InvalidAppId {
            detail: "the app is offline",
        }
        .into());
    }
    Ok(app)
}

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
    if !is_app_id(app_id) {
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

/// Step 3b, public-key mode: the app has keys, one for `sign_type`, and has not switched to
/// certificates for longer than the overlap.
pub fn public_key<A: CallingApp>(
    app: &A,
    sign_type: SignType,
    now: i64,
) -> Result<&PublicKey, ProtocolError> {
    if !app.has_keys() {
        return Err(ProtocolError::MissingSignatureKey);
    }
    let key = app
        .key(sign_type)
        .ok_or(ProtocolError::MissingSignatureConfig {
            sign_type: sign_type.as_str(),
        })?;
    if app.keys_sunset().is_some_and(|at| at <= now) {
        return Err(ProtocolError::KeyModeRetired);
    }
    Ok(key)
}

/// Step 3b, certificate mode (after `alipay_root_cert_sn` was found present): the platform set
/// up for certificates (`roots`), `sn` one of the app's certificates, in force at `now`.
pub fn certificate<'a, A: CallingApp>(
    app: &'a A,
    sn: &str,
    roots: Option<&[String]>,
    now: i64,
) -> Result<&'a PublicKey, ProtocolError> {
    if roots.is_none_or(<[String]>::is_empty) {
        return Err(ProtocolError::PlatformCertNotExist);
    }
    let cert = app.cert(sn).ok_or(ProtocolError::AppCertNotExist)?;
    let when = |at: i64| crate::timestamp::format_beijing(at);
    if now < cert.not_before {
        return Err(ProtocolError::AppCertExpired {
            detail: format!("valid from {} (Beijing time)", when(cert.not_before)),
        });
    }
    if now > cert.not_after {
        return Err(ProtocolError::AppCertExpired {
            detail: format!("expired at {} (Beijing time)", when(cert.not_after)),
        });
    }
    if let Some(retired) = cert.retired_at
        && retired <= now
    {
        return Err(ProtocolError::AppCertExpired {
            detail: format!(
                "replaced by a newer certificate; refused since {} (Beijing time)",
                when(retired)
            ),
        });
    }
    Ok(&cert.key)
}

/// After the signed checks, certificate mode: `alipay_root_cert_sn` (`listed`) lists at most
/// [`MAX_ROOT_SNS`] SNs joined by `_` (32 lower-case hex digits each, any order), one of them a
/// root of the platform's (`roots`) — a merchant's bundle may hold other roots too.
pub fn root_cert_sn(listed: &str, roots: &[String]) -> Result<(), ProtocolError> {
    let parts: Vec<&str> = listed.split('_').collect();
    let well_formed = parts.len() <= MAX_ROOT_SNS
        && parts
            .iter()
            .all(|p| p.len() == 32 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if well_formed && parts.iter().any(|p| roots.iter().any(|r| r == p)) {
        Ok(())
    } else {
        Err(ProtocolError::InvalidRootCertSn)
    }
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
/// `timestamp` within the window, `encrypt_type` (`AES` or `AES_V2`, and only for an app with a
/// content key: `key`), and the length of `app_auth_token`. Answers the request's encryption.
pub fn check_signed<'k>(
    params: &Params,
    now: i64,
    window_secs: Option<u64>,
    key: Option<&'k ContentKey>,
) -> Result<Option<Encryption<'k>>, ProtocolError> {
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
    let encryption = match params.non_empty("encrypt_type") {
        None => None,
        Some(name) => {
            let encrypt_type = EncryptType::parse(name).ok_or(ProtocolError::InvalidEncryptType)?;
            let key = key.ok_or(ProtocolError::EncryptionKeyMissing)?;
            Some(Encryption { encrypt_type, key })
        }
    };
    if params
        .non_empty("app_auth_token")
        .is_some_and(|t| t.len() > MAX_APP_AUTH_TOKEN)
    {
        return Err(ProtocolError::InvalidAppAuthToken);
    }
    Ok(encryption)
}

/// Last gateway step: `biz_content` must be present and a JSON object (`40002`). Unknown
/// fields are the business layer's to ignore. An encrypted one is decrypted first and its
/// plaintext read in the request charset; ciphertext for the app's `key` sent without
/// `encrypt_type` is named as such rather than as bad JSON.
pub fn biz_content(
    params: &Params,
    encryption: Option<Encryption<'_>>,
    key: Option<&ContentKey>,
) -> Result<serde_json::Map<String, serde_json::Value>, ProtocolError> {
    let text = params
        .non_empty("biz_content")
        .ok_or_else(|| ProtocolError::InvalidParameter {
            detail: "biz_content is required and must be a JSON object".into(),
        })?;
    let plaintext;
    let text = match encryption {
        None => text,
        Some(Encryption { encrypt_type, key }) => {
            let bytes =
                key.decrypt(encrypt_type, text)
                    .map_err(|e| ProtocolError::InvalidEncrypt {
                        detail: decryption_detail(e),
                    })?;
            plaintext = params
                .charset()
                .decode(&bytes)
                .map_err(|_| ProtocolError::InvalidEncrypt {
                    detail: "the decrypted content is not text in the request charset (wrong key or encrypt_type?)",
                })?
                .into_owned();
            &plaintext
        }
    };
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(ProtocolError::InvalidParameter {
            detail: "biz_content must be a JSON object".into(),
        }),
        Err(_) if encryption.is_none() && key.is_some_and(|k| k.opens(text)) => {
            Err(ProtocolError::MissingEncryptType)
        }
        Err(e) => Err(ProtocolError::InvalidParameter {
            detail: format!("biz_content is not valid JSON ({e})"),
        }),
    }
}

/// What a client is told about ciphertext that did not decrypt.
fn decryption_detail(error: AesError) -> &'static str {
    match error {
        AesError::BadBase64 => "biz_content is not base64",
        AesError::BadLength => {
            "the ciphertext is not a whole number of 16-byte AES blocks (AES_V2: after a 16-byte IV)"
        }
        AesError::BadPadding => {
            "the ciphertext does not decrypt with the app's AES key (wrong key, wrong encrypt_type, or damaged content)"
        }
        AesError::BadKey | AesError::Cipher => "the AES cipher failed",
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
        let key = ContentKey::parse("AAECAwQFBgcICQoLDA0ODw==").unwrap();
        let ok = |p: &Params| check_signed(p, now, Some(900), None).map(|e| e.is_none());
        assert_eq!(ok(&params(FULL)), Ok(true));
        assert_eq!(ok(&with("version", "1.0")), Ok(true));
        let mut full = FULL.to_vec();
        full.push(("format", "JSON"));
        assert_eq!(ok(&params(&full)), Ok(true));
        full.pop();
        full.push(("format", "xml"));
        assert_eq!(ok(&params(&full)), Err(ProtocolError::InvalidFormat));
        assert_eq!(
            ok(&with("version", "2.0")),
            Err(ProtocolError::InvalidVersion)
        );
        assert!(matches!(
            check_signed(&params(FULL), now + 3600, Some(900), Some(&key)),
            Err(ProtocolError::InvalidTimestamp { .. })
        ));
        full.pop();
        for name in ["AES", "AES_V2"] {
            full.push(("encrypt_type", name));
            assert_eq!(ok(&params(&full)), Err(ProtocolError::EncryptionKeyMissing));
            let encryption = check_signed(&params(&full), now, Some(900), Some(&key))
                .unwrap()
                .unwrap();
            assert_eq!(encryption.encrypt_type.as_str(), name);
            full.pop();
        }
        for bad in ["DES", "aes", "SM4"] {
            full.push(("encrypt_type", bad));
            assert_eq!(
                check_signed(&params(&full), now, Some(900), Some(&key)).map(|_| ()),
                Err(ProtocolError::InvalidEncryptType),
                "{bad}"
            );
            full.pop();
        }
    }

    #[test]
    fn encrypted_biz_content_is_decrypted_in_the_request_charset() {
        let key = ContentKey::parse("AAECAwQFBgcICQoLDA0ODw==").unwrap();
        let other = ContentKey::parse("DwAOAA0ADAALAAoACQAIAA==").unwrap();
        let plain = "{\"agreement_no\":\"用户\"}";
        for encrypt_type in [EncryptType::Aes, EncryptType::AesV2] {
            let encryption = Some(Encryption {
                encrypt_type,
                key: &key,
            });
            let sealed = key.encrypt(encrypt_type, plain.as_bytes()).unwrap();
            let map = biz_content(&with("biz_content", &sealed), encryption, Some(&key)).unwrap();
            assert_eq!(map["agreement_no"], "用户");
            // The same text in GBK, for a GBK request.
            let gbk = key
                .encrypt(encrypt_type, &Charset::Gbk.encode(plain))
                .unwrap();
            let mut pairs: Vec<(&str, &str)> = FULL.to_vec();
            pairs.retain(|(n, _)| *n != "biz_content");
            pairs.push(("biz_content", &gbk));
            let request = Params::from_pairs(Charset::Gbk, &pairs).unwrap();
            assert_eq!(
                biz_content(&request, encryption, Some(&key)).unwrap()["agreement_no"],
                "用户"
            );
            // Another key's ciphertext, broken base64, partial blocks.
            let foreign = other.encrypt(encrypt_type, plain.as_bytes()).unwrap();
            for (bad, detail) in [
                (foreign.as_str(), "does not decrypt"),
                ("%%%", "not base64"),
                ("AAAA", "16-byte"),
            ] {
                match biz_content(&with("biz_content", bad), encryption, Some(&key)) {
                    Err(ProtocolError::InvalidEncrypt { detail: d }) => {
                        assert!(d.contains(detail), "{bad}: {d}")
                    }
                    other => panic!("{bad}: {other:?}"),
                }
            }
            // Decrypted text that is not a JSON object is a bad biz_content.
            let not_json = key.encrypt(encrypt_type, b"[1]").unwrap();
            assert!(matches!(
                biz_content(&with("biz_content", &not_json), encryption, Some(&key)),
                Err(ProtocolError::InvalidParameter { .. })
            ));
            // Ciphertext without encrypt_type: named, for an app with a key only.
            assert_eq!(
                biz_content(&with("biz_content", &sealed), None, Some(&key)),
                Err(ProtocolError::MissingEncryptType)
            );
            assert!(matches!(
                biz_content(&with("biz_content", &sealed), None, None),
                Err(ProtocolError::InvalidParameter { .. })
            ));
        }
        // Plain JSON from an app with a key is still accepted.
        assert!(biz_content(&params(FULL), None, Some(&key)).is_ok());
    }

    #[test]
    fn biz_content_must_be_a_json_object() {
        assert!(biz_content(&params(FULL), None, None).is_ok());
        for bad in ["", "[]", "\"x\"", "{", "null", "1"] {
            assert!(
                matches!(
                    biz_content(&with("biz_content", bad), None, None),
                    Err(ProtocolError::InvalidParameter { .. })
                ),
                "{bad}"
            );
        }
    }

    /// The order of [`check`], step by step: a request that breaks one step and every later one
    /// gets the answer of the one step (the lookups it would need later never run).
    mod order {
        use std::cell::Cell;
        use std::sync::OnceLock;
        use std::task::{Context, Poll, Waker};

        use super::*;
        use crate::crypto::PrivateKey;

        const NOW: i64 = 1_716_182_055; // 2024-05-20 13:14:15 Beijing time

        fn key() -> &'static PrivateKey {
            static KEY: OnceLock<PrivateKey> = OnceLock::new();
            KEY.get_or_init(|| PrivateKey::generate(2048).unwrap())
        }

        #[derive(Debug)]
        struct App {
            online: bool,
            keys: Vec<(SignType, PublicKey)>,
            grants: Vec<Method>,
            content_key: Option<ContentKey>,
            certs: Vec<(String, AppCertificate)>,
            sunset: Option<i64>,
        }

        impl App {
            fn good() -> Self {
                Self {
                    online: true,
                    keys: vec![(SignType::Rsa2, key().public_key().unwrap())],
                    grants: vec![Method::AgreementQuery],
                    content_key: None,
                    certs: Vec::new(),
                    sunset: None,
                }
            }
        }

        impl CallingApp for App {
            fn is_online(&self) -> bool {
                self.online
            }
            fn has_keys(&self) -> bool {
                !self.keys.is_empty()
            }
            fn key(&self, sign_type: SignType) -> Option<&PublicKey> {
                self.keys
                    .iter()
                    .find(|(t, _)| *t == sign_type)
                    .map(|(_, k)| k)
            }
            fn may_call(&self, method: Method) -> bool {
                self.grants.contains(&method)
            }
            fn content_key(&self) -> Option<&ContentKey> {
                self.content_key.as_ref()
            }
            fn cert(&self, sn: &str) -> Option<&AppCertificate> {
                self.certs.iter().find(|(s, _)| s == sn).map(|(_, c)| c)
            }
            fn keys_sunset(&self) -> Option<i64> {
                self.sunset
            }
        }

        struct Merchant(bool);

        impl Actor for Merchant {
            fn is_enabled(&self) -> bool {
                self.0
            }
        }

        /// Answers whom a request acts for as told, and counts the calls.
        struct Fake {
            actor: Result<bool, ProtocolError>,
            calls: Cell<u32>,
            roots: Option<Vec<String>>,
            limited: Option<bool>,
        }

        impl Lookups for Fake {
            type App = App;
            type Actor = Merchant;
            type Error = &'static str;

            fn root_cert_sns(&self) -> Option<&[String]> {
                self.roots.as_deref()
            }

            fn first_use(&self, _: &str, _: &str, _: i64, _: i64) -> bool {
                true
            }

            fn admit(&self, _: &str, _: Method) -> Result<(), ProtocolError> {
                self.limited.map_or(Ok(()), |per_method| {
                    Err(ProtocolError::CallLimited { per_method })
                })
            }

            fn actor(
                &self,
                _app: &App,
                _method: Method,
                _token: Option<&str>,
                _now: i64,
            ) -> impl Future<Output = Result<Merchant, Refusal<&'static str>>> + Send {
                self.calls.set(self.calls.get() + 1);
                let answer = self.actor.clone().map(Merchant).map_err(Refusal::Protocol);
                async move { answer }
            }
        }

        fn signed(pairs: &[(&str, &str)]) -> Params {
            let unsigned = Params::from_pairs(Charset::Utf8, pairs).unwrap();
            let content = sign_content::request(&unsigned, Empties::Drop);
            let sign = key().sign(SignType::Rsa2, &content).unwrap();
            let mut all = pairs.to_vec();
            all.push(("sign", &sign));
            Params::from_pairs(Charset::Utf8, &all).unwrap()
        }

        const GOOD: &[(&str, &str)] = &[
            ("method", "alipay.user.agreement.query"),
            ("app_id", "2021000000000001"),
            ("sign_type", "RSA2"),
            ("timestamp", "2024-05-20 13:14:15"),
            ("version", "1.0"),
            ("biz_content", "{\"agreement_no\":\"1\"}"),
        ];

        fn replaced(name: &str, value: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
            let mut pairs: Vec<_> = GOOD.iter().copied().filter(|(n, _)| *n != name).collect();
            if let Some(value) = value {
                pairs.push((GOOD.iter().find(|(n, _)| *n == name).unwrap().0, value));
            }
            pairs
        }

        fn run<'a>(
            params: &Params,
            app: Result<Option<&'a App>, &'static str>,
            fake: &Fake,
        ) -> Result<Checked<'a, App, Merchant>, Refusal<&'static str>> {
            let mut future = std::pin::pin!(check(params, app, fake, NOW, Some(900)));
            match future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready(result) => result,
                Poll::Pending => panic!("the fake lookups never wait"),
            }
        }

        fn fake() -> Fake {
            Fake {
                actor: Ok(true),
                calls: Cell::new(0),
                roots: None,
                limited: None,
            }
        }

        fn refused(
            result: Result<Checked<'_, App, Merchant>, Refusal<&'static str>>,
        ) -> ProtocolError {
            match result {
                Err(Refusal::Protocol(e)) => e,
                Err(Refusal::Lookup(e)) => panic!("lookup failure {e}"),
                Ok(_) => panic!("accepted"),
            }
        }

        #[test]
        fn a_good_request_passes_every_step_and_looks_its_actor_up_once() {
            let app = App::good();
            let fake = fake();
            let checked = run(&signed(GOOD), Ok(Some(&app)), &fake).unwrap();
            assert_eq!(checked.method, Method::AgreementQuery);
            assert_eq!(checked.sign_type, SignType::Rsa2);
            assert_eq!(checked.biz_content["agreement_no"], "1");
            assert!(checked.encryption.is_none());
            assert_eq!(fake.calls.get(), 1);
        }

        #[test]
        fn each_step_answers_before_the_next_runs() {
            let app = App::good();
            let no_such_app: Result<Option<&App>, &str> = Ok(None);
            // Method first: even with no app and nothing signed.
            let f = fake();
            let missing_method =
                Params::from_pairs(Charset::Utf8, &replaced("method", None)).unwrap();
            assert_eq!(
                refused(run(&missing_method, no_such_app, &f)),
                ProtocolError::MissingMethod
            );
            let unknown =
                Params::from_pairs(Charset::Utf8, &replaced("method", Some("alipay.trade.pay")))
                    .unwrap();
            assert_eq!(
                refused(run(&unknown, no_such_app, &f)),
                ProtocolError::InvalidMethod
            );
            // Then the required parameters, before the app is looked at.
            let no_version = Params::from_pairs(Charset::Utf8, &replaced("version", None)).unwrap();
            assert_eq!(
                refused(run(&no_version, no_such_app, &f)),
                ProtocolError::MissingSign
            );
            assert_eq!(
                refused(run(&signed(&replaced("version", None)), no_such_app, &f)),
                ProtocolError::MissingVersion
            );
            assert_eq!(
                refused(run(&signed(GOOD), no_such_app, &f)),
                ProtocolError::InvalidAppId {
                    detail: "no such app"
                }
            );
            // A failed app lookup is a lookup failure at the app's step.
            assert!(matches!(
                run(&signed(GOOD), Err("down"), &f),
                Err(Refusal::Lookup("down"))
            ));
            // The app: offline, then the sign type, then its keys.
            let offline = App {
                online: false,
                ..App::good()
            };
            let bad_type = signed(&replaced("sign_type", Some("MD5")));
            assert_eq!(
                refused(run(&bad_type, Ok(Some(&offline)), &f)),
                ProtocolError::InvalidAppId {
                    detail: "the app is offline"
                }
            );
            let keyless = App {
                keys: Vec::new(),
                ..App::good()
            };
            assert_eq!(
                refused(run(&bad_type, Ok(Some(&keyless)), &f)),
                ProtocolError::InvalidSignType
            );
            assert_eq!(
                refused(run(&signed(GOOD), Ok(Some(&keyless)), &f)),
                ProtocolError::MissingSignatureKey
            );
            let rsa = signed(&replaced("sign_type", Some("RSA")));
            assert_eq!(
                refused(run(&rsa, Ok(Some(&app)), &f)),
                ProtocolError::MissingSignatureConfig { sign_type: "RSA" }
            );
            // The signature, before anything signed is looked at.
            let mut forged = GOOD.to_vec();
            forged.push(("sign", "AAAA"));
            forged.retain(|(n, _)| *n != "timestamp");
            forged.push(("timestamp", "1999-01-01 00:00:00"));
            let forged = Params::from_pairs(Charset::Utf8, &forged).unwrap();
            assert_eq!(
                refused(run(&forged, Ok(Some(&app)), &f)),
                ProtocolError::InvalidSignature
            );
            // Signed content: the timestamp, before the actor is looked up.
            let stale = signed(&replaced("timestamp", Some("1999-01-01 00:00:00")));
            assert!(matches!(
                refused(run(&stale, Ok(Some(&app)), &f)),
                ProtocolError::InvalidTimestamp { .. }
            ));
            // The app's rate, after the signed checks and before the actor is looked up.
            let limited = Fake {
                limited: Some(true),
                ..fake()
            };
            assert!(matches!(
                refused(run(&stale, Ok(Some(&app)), &limited)),
                ProtocolError::InvalidTimestamp { .. }
            ));
            assert_eq!(
                refused(run(&signed(GOOD), Ok(Some(&app)), &limited)),
                ProtocolError::CallLimited { per_method: true }
            );
            assert_eq!(limited.calls.get(), 0);
            // Then encryption: a type we speak, and a key to open it with.
            let mut aes = GOOD.to_vec();
            aes.push(("encrypt_type", "AES"));
            assert_eq!(
                refused(run(&signed(&aes), Ok(Some(&app)), &f)),
                ProtocolError::EncryptionKeyMissing
            );
            assert_eq!(
                f.calls.get(),
                0,
                "no step before the actor's looked the actor up"
            );
            // The actor (a token's answer), then the grant, then the actor being enabled, then
            // biz_content.
            let ungranted = App {
                grants: Vec::new(),
                ..App::good()
            };
            let bad_biz = signed(&replaced("biz_content", Some("[]")));
            let token_refused = Fake {
                actor: Err(ProtocolError::AppAuthTokenExpired),
                calls: Cell::new(0),
                roots: None,
                limited: None,
            };
            assert_eq!(
                refused(run(&bad_biz, Ok(Some(&ungranted)), &token_refused)),
                ProtocolError::AppAuthTokenExpired
            );
            let disabled = Fake {
                actor: Ok(false),
                calls: Cell::new(0),
                roots: None,
                limited: None,
            };
            assert_eq!(
                refused(run(&bad_biz, Ok(Some(&ungranted)), &disabled)),
                ProtocolError::InsufficientIsvPermissions
            );
            assert_eq!(
                refused(run(&bad_biz, Ok(Some(&app)), &disabled)),
                ProtocolError::InvalidAppId {
                    detail: "the calling merchant is disabled"
                }
            );
            assert!(matches!(
                refused(run(&bad_biz, Ok(Some(&app)), &fake())),
                ProtocolError::InvalidParameter { .. }
            ));
            // An encrypted biz_content is opened last, after the grant.
            let keyed = App {
                content_key: Some(ContentKey::parse("AAECAwQFBgcICQoLDA0ODw==").unwrap()),
                ..App::good()
            };
            let key = keyed.content_key.as_ref().unwrap();
            let mut aes = replaced("biz_content", Some("AAAA"));
            aes.push(("encrypt_type", "AES"));
            let keyed_ungranted = App {
                grants: Vec::new(),
                content_key: keyed.content_key.clone(),
                ..App::good()
            };
            assert!(matches!(
                refused(run(&signed(&aes), Ok(Some(&keyed_ungranted)), &fake())),
                ProtocolError::InsufficientIsvPermissions
            ));
            assert!(matches!(
                refused(run(&signed(&aes), Ok(Some(&keyed)), &fake())),
                ProtocolError::InvalidEncrypt { .. }
            ));
            let sealed = key
                .encrypt(EncryptType::AesV2, br#"{"agreement_no":"7"}"#)
                .unwrap();
            let mut aes = replaced("biz_content", None);
            aes.push(("biz_content", &sealed));
            aes.push(("encrypt_type", "AES_V2"));
            let checked = run(&signed(&aes), Ok(Some(&keyed)), &fake()).unwrap();
            assert_eq!(checked.biz_content["agreement_no"], "7");
            assert_eq!(
                checked.encryption.map(|e| e.encrypt_type),
                Some(EncryptType::AesV2)
            );
        }

        #[test]
        fn certificate_mode_has_its_own_steps_in_place_of_the_key() {
            const ROOT: &str = "687b59193f3f462dd5336e5abf83c5d8";
            const OTHER: &str = "02941eef3187dddf3d3b83462e1dfcf6";
            let cert = |not_before: i64, not_after: i64, retired_at: Option<i64>| AppCertificate {
                key: key().public_key().unwrap(),
                not_before,
                not_after,
                retired_at,
            };
            // A certificate-only app: no public keys at all.
            let app = App {
                keys: Vec::new(),
                certs: vec![
                    ("good".into(), cert(NOW - 10, NOW + 10, None)),
                    ("early".into(), cert(NOW + 10, NOW + 20, None)),
                    ("late".into(), cert(NOW - 20, NOW - 10, None)),
                    ("replaced".into(), cert(NOW - 10, NOW + 10, Some(NOW))),
                    ("overlap".into(), cert(NOW - 10, NOW + 10, Some(NOW + 1))),
                ],
                ..App::good()
            };
            let trusting = || Fake {
                roots: Some(vec![ROOT.to_owned()]),
                ..fake()
            };
            let with = |sn: &'static str, root: Option<&'static str>| {
                let mut pairs = GOOD.to_vec();
                pairs.push(("app_cert_sn", sn));
                if let Some(root) = root {
                    pairs.push(("alipay_root_cert_sn", root));
                }
                signed(&pairs)
            };
            let checked = run(&with("good", Some(ROOT)), Ok(Some(&app)), &trusting()).unwrap();
            assert_eq!(checked.biz_content["agreement_no"], "1");
            // The bundle's other roots, in any order, do not matter.
            let listed = format!("{OTHER}_{ROOT}").leak();
            assert!(run(&with("good", Some(listed)), Ok(Some(&app)), &trusting()).is_ok());
            assert!(run(&with("overlap", Some(ROOT)), Ok(Some(&app)), &trusting()).is_ok());
            let refused_with =
                |params: &Params, fake: &Fake| refused(run(params, Ok(Some(&app)), fake));
            assert_eq!(
                refused_with(&with("good", None), &trusting()),
                ProtocolError::MissingRootCertSn
            );
            assert_eq!(
                refused_with(&with("good", Some(ROOT)), &fake()),
                ProtocolError::PlatformCertNotExist
            );
            assert_eq!(
                refused_with(&with("another-apps", Some(ROOT)), &trusting()),
                ProtocolError::AppCertNotExist
            );
            for (sn, says) in [
                ("early", "valid from"),
                ("late", "expired at"),
                ("replaced", "replaced"),
            ] {
                match refused_with(&with(sn, Some(ROOT)), &trusting()) {
                    ProtocolError::AppCertExpired { detail } => assert!(detail.contains(says)),
                    other => panic!("{sn}: {other:?}"),
                }
            }
            let too_many = [ROOT; 9].join("_").leak();
            for bad in [
                OTHER,
                "x",
                "_",
                too_many,
                "687B59193F3F462DD5336E5ABF83C5D8",
            ] {
                assert_eq!(
                    refused_with(&with("good", Some(bad)), &trusting()),
                    ProtocolError::InvalidRootCertSn,
                    "{bad}"
                );
            }
            // The root is checked on signed content: a forged request is a bad signature first.
            let mut forged = GOOD.to_vec();
            forged.extend([
                ("app_cert_sn", "good"),
                ("alipay_root_cert_sn", OTHER),
                ("sign", "AAAA"),
            ]);
            let forged = Params::from_pairs(Charset::Utf8, &forged).unwrap();
            assert_eq!(
                refused_with(&forged, &trusting()),
                ProtocolError::InvalidSignature
            );
            // Public-key mode ends with the overlap after a switch to certificates.
            let switching = App {
                sunset: Some(NOW + 1),
                ..App::good()
            };
            assert!(run(&signed(GOOD), Ok(Some(&switching)), &fake()).is_ok());
            let switched = App {
                sunset: Some(NOW),
                ..App::good()
            };
            assert_eq!(
                refused(run(&signed(GOOD), Ok(Some(&switched)), &fake())),
                ProtocolError::KeyModeRetired
            );
        }

        #[test]
        fn the_head_of_a_broken_request_comes_from_a_scan() {
            let head = Head::scan(
                b"method=alipay.user.agreement.query&charset=GBK&app_id=2021%30",
                Some(b"application/x-www-form-urlencoded"),
                b"sign_type=RSA&x=%ZZ",
            );
            assert_eq!(head.method, Some(Method::AgreementQuery));
            assert_eq!(head.app_id.as_deref(), Some("20210"));
            assert_eq!(head.sign_type, SignType::Rsa);
            assert_eq!(head.charset, Charset::Gbk);
            assert!(!head.cert_mode);
            assert!(Head::scan(b"app_cert_sn=abc", None, b"").cert_mode);
            // A multipart body is not scanned as a form; an app id of the wrong shape is none.
            let head = Head::scan(
                b"app_id=12ab",
                Some(b"multipart/form-data; boundary=x"),
                b"sign_type=RSA",
            );
            assert_eq!(head.app_id, None);
            assert_eq!(head.sign_type, SignType::Rsa2);
        }
    }
}
