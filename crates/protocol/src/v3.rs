//! OpenAPI v3 (openapi-gateway.md §7, cert-aes-v3.md §4): REST paths, the
//! `Authorization: ALIPAY-SHA256withRSA …` header, signed response headers and
//! `{code, message, links}` error bodies. The checks run in their order in [`check`], calling back
//! into the server through the same [`Lookups`] as v2; the codes are v2's (one table,
//! [`crate::error`]), spelled without their `isv.`/`aop.`/`isp.` prefix, with an HTTP status.

use crate::aes::{AesError, EncryptType};
use crate::crypto::{PublicKey, SignType};
use crate::error::{GatewayCode, ProtocolError, WireError};
use crate::method::Method;
use crate::request::{
    self, CallingApp, Checked, Encryption, Lookups, MAX_APP_AUTH_TOKEN, MAX_SIGN, Refusal,
};

/// The only v3 signature scheme.
pub const SCHEME: &str = "ALIPAY-SHA256withRSA";
/// Longest accepted `nonce` (the SDKs send a UUID or 32 characters).
pub const MAX_NONCE: usize = 64;
/// Longest accepted `Authorization` header.
pub const MAX_AUTHORIZATION: usize = 2048;

/// The methods served on v3 paths, by HTTP method and path (cert-aes-v3.md §4.3: no v3 path
/// exists for batch.query or sign.effect).
pub fn method(http_method: &str, path: &str) -> Result<Method, ProtocolError> {
    match (http_method, path) {
        ("GET", "/v3/alipay/user/agreement/query") => Ok(Method::AgreementQuery),
        ("POST", "/v3/alipay/user/agreement/unsign") => Ok(Method::AgreementUnsign),
        ("POST", "/v3/alipay/user/agreement/executionplan/modify") => {
            Ok(Method::AgreementExecutionPlanModify)
        }
        _ => Err(ProtocolError::InvalidMethod),
    }
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// Everything between the scheme and `,sign=`, exactly as sent: what was signed.
    pub auth_string: &'a str,
    /// `app_id`.
    pub app_id: &'a str,
    /// `app_cert_sn` (certificate mode).
    pub app_cert_sn: Option<&'a str>,
    /// `nonce`.
    pub nonce: &'a str,
    /// `timestamp`, epoch milliseconds.
    pub timestamp_ms: i64,
    /// The signature, base64.
    pub sign: &'a str,
}

/// Reads `ALIPAY-SHA256withRSA <authString>,sign=<base64>`: the scheme and the auth string are
/// separated by a space, the signature follows the last `,sign=`; the auth string's `k=v` pairs
/// may come in any order and unknown ones are ignored (the Postman script adds
/// `expired_seconds`, Node `additionalAuthInfo`).
pub fn authorization(header: Option<&str>) -> Result<Authorization<'_>, ProtocolError> {
    let header = header.ok_or(ProtocolError::MissingSign)?;
    if header.len() > MAX_AUTHORIZATION {
        return Err(ProtocolError::InvalidSignature);
    }
    let (scheme, rest) = header
        .split_once(' ')
        .ok_or(ProtocolError::InvalidSignType)?;
    if scheme != SCHEME {
        return Err(ProtocolError::InvalidSignType);
    }
    let (auth_string, sign) = rest
        .rsplit_once(",sign=")
        .ok_or(ProtocolError::MissingSign)?;
    if sign.is_empty() {
        return Err(ProtocolError::MissingSign);
    }
    if sign.len() > MAX_SIGN {
        return Err(ProtocolError::InvalidSignature);
    }
    let field = |name: &str| {
        auth_string
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
    };
    let app_id = field("app_id").ok_or(ProtocolError::MissingAppId)?;
    if !request::is_app_id(app_id) {
        return Err(ProtocolError::InvalidAppId {
            detail: "app_id must be at most 32 digits",
        });
    }
    let timestamp = field("timestamp").ok_or(ProtocolError::MissingTimestamp)?;
    let timestamp_ms = timestamp
        .parse::<i64>()
        .ok()
        .filter(|t| *t > 0 && timestamp.len() <= 16)
        .ok_or_else(|| ProtocolError::InvalidTimestamp {
            detail: "timestamp must be epoch milliseconds".into(),
        })?;
    let nonce = field("nonce").ok_or(ProtocolError::InvalidNonce {
        detail: "the Authorization header has no nonce",
    })?;
    if nonce.len() > MAX_NONCE {
        return Err(ProtocolError::InvalidNonce {
            detail: "nonce is longer than 64 characters",
        });
    }
    Ok(Authorization {
        auth_string,
        app_id,
        app_cert_sn: field("app_cert_sn"),
        nonce,
        timestamp_ms,
        sign,
    })
}

/// The request's string-to-sign: `authString\nMETHOD\ntarget\nbody\n`, then
/// `app_auth_token\n` when the token header is sent. `target` is the raw request-target (path
/// and query exactly as received), never a re-encoded one.
pub fn request_sign_content(
    auth_string: &str,
    http_method: &str,
    target: &str,
    body: &[u8],
    app_auth_token: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(auth_string.len() + target.len() + body.len() + 64);
    for part in [
        auth_string.as_bytes(),
        http_method.as_bytes(),
        target.as_bytes(),
        body,
    ] {
        out.extend_from_slice(part);
        out.push(b'\n');
    }
    if let Some(token) = app_auth_token {
        out.extend_from_slice(token.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The response's string-to-sign: `alipay-timestamp\nalipay-nonce\nbody\n`.
pub fn response_sign_content(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(nonce.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
    out.push(b'\n');
    out
}

/// A failure as v3 answers it: the HTTP status and the code (v2's sub_code without its
/// `isv.`/`aop.`/`isp.` prefix; business codes as they are).
pub fn status_and_code(wire: &WireError) -> (u16, &'static str) {
    let status = match wire.code {
        GatewayCode::InsufficientTokenPermissions => 401,
        GatewayCode::InsufficientPermissions => 403,
        GatewayCode::ServiceUnavailable => 500,
        GatewayCode::CallLimited => 429,
        GatewayCode::Success
        | GatewayCode::MissingRequiredArguments
        | GatewayCode::InvalidArguments
        | GatewayCode::BusinessFailed => 400,
    };
    let code = ["isv.", "aop.", "isp."]
        .iter()
        .find_map(|prefix| wire.sub_code.strip_prefix(prefix))
        .unwrap_or(wire.sub_code);
    (status, code)
}

/// The error body: `{"code":…,"message":…,"links":[{"link":…,"desc":"解决方案"}]}`.
pub fn error_body(wire: &WireError, trace_id: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Link {
        link: String,
        desc: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        code: &'a str,
        message: &'a str,
        links: [Link; 1],
    }
    let (_, code) = status_and_code(wire);
    serde_json::to_vec(&Body {
        code,
        message: &wire.sub_msg,
        links: [Link {
            link: format!("https://open.alipay.com/api/errCheck?traceId={trace_id}"),
            desc: "解决方案",
        }],
    })
    .unwrap_or_default()
}

/// A v3 request as received.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub http_method: &'a str,
    /// The raw request-target: path and query as received.
    pub target: &'a str,
    /// The body as received.
    pub body: &'a [u8],
    /// `Authorization`.
    pub authorization: Option<&'a str>,
    /// `alipay-app-auth-token`.
    pub app_auth_token: Option<&'a str>,
    /// `alipay-encrypt-type`.
    pub encrypt_type: Option<&'a str>,
    /// `alipay-root-cert-sn` (optional in v3: PHP's typed APIs never send it).
    pub root_cert_sn: Option<&'a str>,
}

impl Request<'_> {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }
}

/// What decides how a v3 request is answered, known before its checks: the method, the app
/// (whose key signs nothing, but whose existence decides whether we sign), certificate mode and
/// encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method the path names.
    pub method: Option<Method>,
    /// `app_id` of the Authorization header, if well-formed.
    pub app_id: Option<String>,
    /// Whether the Authorization names an app certificate.
    pub cert_mode: bool,
}

impl Head {
    /// The head of a request.
    pub fn of(request: &Request<'_>) -> Self {
        let auth = authorization(request.authorization).ok();
        Self {
            method: method(request.http_method, request.path()).ok(),
            app_id: auth.as_ref().map(|a| a.app_id.to_owned()),
            cert_mode: auth.is_some_and(|a| a.app_cert_sn.is_some()),
        }
    }
}

/// Runs the v3 checks in order: the path names a method we serve; the Authorization header
/// (scheme, `app_id`, `timestamp`, `nonce`); the app known and online; its key (an app
/// certificate's in certificate mode, else its public key); the signature over the
/// string-to-sign; the timestamp within `window_secs` of `now`; the nonce not seen before
/// (`Lookups::first_use`); `alipay-encrypt-type` and the app's key; `alipay-root-cert-sn` when
/// sent; the token's length; whom the request acts for; the grant; that actor enabled; and the
/// content — the query string of a GET, the JSON object body of a POST (decrypted first).
pub async fn check<'a, L: Lookups>(
    request: &Request<'_>,
    app: Result<Option<&'a L::App>, L::Error>,
    lookups: &L,
    now: i64,
    window_secs: Option<u64>,
) -> Result<Checked<'a, L::App, L::Actor>, Refusal<L::Error>> {
    let method = method(request.http_method, request.path())?;
    let auth = authorization(request.authorization)?;
    let app = request::known_app(app)?;
    let roots = lookups.root_cert_sns();
    let key: &PublicKey = match auth.app_cert_sn {
        Some(sn) => request::certificate(app, sn, roots, now)?,
        None => request::public_key(app, SignType::Rsa2, now)?,
    };
    let content = request_sign_content(
        auth.auth_string,
        request.http_method,
        request.target,
        request.body,
        request.app_auth_token,
    );
    if !key.verify(SignType::Rsa2, &content, auth.sign) {
        return Err(ProtocolError::InvalidSignature.into());
    }
    let now_ms = now.saturating_mul(1000);
    if let Some(window) = window_secs {
        let window_ms = i64::try_from(window)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        if (auth.timestamp_ms - now_ms).abs() > window_ms {
            return Err(ProtocolError::InvalidTimestamp {
                detail: format!(
                    "timestamp {} is more than {window} s from the gateway's time {now_ms} (epoch milliseconds)",
                    auth.timestamp_ms
                ),
            }
            .into());
        }
    }
    // A nonce is remembered until its timestamp leaves the window: no replay can be accepted
    // after that anyway.
    let remember_until = auth.timestamp_ms.saturating_add(
        i64::try_from(window_secs.unwrap_or(600))
            .unwrap_or(i64::MAX)
            .saturating_mul(1000),
    );
    if !lookups.first_use(auth.app_id, auth.nonce, remember_until, now_ms) {
        return Err(ProtocolError::InvalidNonce {
            detail: "this nonce was already used: every request needs a new one",
        }
        .into());
    }
    lookups.admit(auth.app_id, method)?;
    let encryption = match request.encrypt_type.filter(|t| !t.is_empty()) {
        None => None,
        Some(name) => {
            let encrypt_type = EncryptType::parse(name).ok_or(ProtocolError::InvalidEncryptType)?;
            let key = app
                .content_key()
                .ok_or(ProtocolError::EncryptionKeyMissing)?;
            Some(Encryption { encrypt_type, key })
        }
    };
    if auth.app_cert_sn.is_some()
        && let Some(listed) = request.root_cert_sn.filter(|r| !r.is_empty())
    {
        request::root_cert_sn(listed, roots.unwrap_or_default())?;
    }
    let token = request.app_auth_token.filter(|t| !t.is_empty());
    if token.is_some_and(|t| t.len() > MAX_APP_AUTH_TOKEN) {
        return Err(ProtocolError::InvalidAppAuthToken.into());
    }
    let actor = lookups.actor(app, method, token, now).await?;
    if !app.may_call(method) {
        return Err(ProtocolError::InsufficientIsvPermissions.into());
    }
    if !request::Actor::is_enabled(&actor) {
        return Err(ProtocolError::InvalidAppId {
            detail: "the calling merchant is disabled",
        }
        .into());
    }
    let biz_content = fields(request, encryption)?;
    Ok(Checked {
        app,
        method,
        sign_type: SignType::Rsa2,
        actor,
        biz_content,
        encryption,
    })
}

/// The request's fields: a GET's query parameters (as strings; a repeated name keeps its first
/// value), or a POST's body, a JSON object (decrypted first when encrypted).
fn fields(
    request: &Request<'_>,
    encryption: Option<Encryption<'_>>,
) -> Result<serde_json::Map<String, serde_json::Value>, ProtocolError> {
    if request.http_method == "GET" {
        let query = request.target.split_once('?').map_or("", |(_, q)| q);
        let mut map = serde_json::Map::new();
        for (name, value) in form_pairs(query)? {
            map.entry(name).or_insert(serde_json::Value::String(value));
        }
        return Ok(map);
    }
    let plaintext;
    let body: &[u8] = match encryption {
        None => request.body,
        Some(Encryption { encrypt_type, key }) => {
            let text =
                std::str::from_utf8(request.body).map_err(|_| ProtocolError::InvalidEncrypt {
                    detail: "the encrypted body is not base64",
                })?;
            plaintext = key.decrypt(encrypt_type, text.trim()).map_err(|e| {
                ProtocolError::InvalidEncrypt {
                    detail: match e {
                        AesError::BadBase64 => "the encrypted body is not base64",
                        AesError::BadLength => {
                            "the ciphertext is not a whole number of 16-byte AES blocks"
                        }
                        _ => "the ciphertext does not decrypt with the app's AES key",
                    },
                }
            })?;
            &plaintext
        }
    };
    if body.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(ProtocolError::InvalidParameter {
            detail: "the body must be a JSON object in UTF-8".into(),
        }),
    }
}

/// `application/x-www-form-urlencoded` pairs of a query string, strictly UTF-8.
fn form_pairs(query: &str) -> Result<Vec<(String, String)>, ProtocolError> {
    crate::form::parse_urlencoded(query.as_bytes())?
        .into_iter()
        .map(
            |p| match (String::from_utf8(p.name), String::from_utf8(p.value)) {
                (Ok(name), Ok(value)) => Ok((name, value)),
                _ => Err(ProtocolError::InvalidCharset {
                    detail: "the query is not UTF-8".into(),
                }),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_header_is_read_as_the_sdks_write_it() {
        let header = "ALIPAY-SHA256withRSA app_id=2021000000000001,nonce=9f3b,timestamp=1716182055000,sign=QUJD==";
        let auth = authorization(Some(header)).unwrap();
        assert_eq!(
            auth.auth_string,
            "app_id=2021000000000001,nonce=9f3b,timestamp=1716182055000"
        );
        assert_eq!(
            (auth.app_id, auth.nonce, auth.sign),
            ("2021000000000001", "9f3b", "QUJD==")
        );
        assert_eq!(auth.timestamp_ms, 1_716_182_055_000);
        assert_eq!(auth.app_cert_sn, None);
        // Any order, unknown fields, certificate mode.
        let header = "ALIPAY-SHA256withRSA timestamp=1,expired_seconds=120,app_cert_sn=abc,nonce=n,app_id=7,sign=x";
        let auth = authorization(Some(header)).unwrap();
        assert_eq!((auth.app_id, auth.app_cert_sn), ("7", Some("abc")));
        for (bad, error) in [
            (None, ProtocolError::MissingSign),
            (Some("Bearer x"), ProtocolError::InvalidSignType),
            (
                Some("ALIPAY-SHA256withRSA app_id=7,nonce=n,timestamp=1"),
                ProtocolError::MissingSign,
            ),
            (
                Some("ALIPAY-SHA256withRSA nonce=n,timestamp=1,sign=x"),
                ProtocolError::MissingAppId,
            ),
            (
                Some("ALIPAY-SHA256withRSA app_id=7,nonce=n,sign=x"),
                ProtocolError::MissingTimestamp,
            ),
        ] {
            assert_eq!(authorization(bad).unwrap_err(), error, "{bad:?}");
        }
        assert!(matches!(
            authorization(Some("ALIPAY-SHA256withRSA app_id=7,timestamp=1,sign=x")),
            Err(ProtocolError::InvalidNonce { .. })
        ));
        assert!(matches!(
            authorization(Some(
                "ALIPAY-SHA256withRSA app_id=7,nonce=n,timestamp=soon,sign=x"
            )),
            Err(ProtocolError::InvalidTimestamp { .. })
        ));
    }

    #[test]
    fn strings_to_sign_keep_every_part_and_its_newline() {
        assert_eq!(
            request_sign_content("a=1", "GET", "/v3/x?b=2+3", b"", None),
            b"a=1\nGET\n/v3/x?b=2+3\n\n"
        );
        assert_eq!(
            request_sign_content("a=1", "POST", "/v3/x", b"{}", Some("tok")),
            b"a=1\nPOST\n/v3/x\n{}\ntok\n"
        );
        assert_eq!(response_sign_content("1", "n", b"{}"), b"1\nn\n{}\n");
    }

    #[test]
    fn one_code_table_drives_both_protocols() {
        let wire = ProtocolError::InvalidSignature.wire();
        assert_eq!(status_and_code(&wire), (400, "invalid-signature"));
        assert_eq!(
            status_and_code(&ProtocolError::InvalidAppAuthToken.wire()),
            (401, "invalid-app-auth-token")
        );
        assert_eq!(
            status_and_code(&ProtocolError::InsufficientIsvPermissions.wire()),
            (403, "insufficient-isv-permissions")
        );
        assert_eq!(
            status_and_code(&ProtocolError::ServiceUnavailable.wire()),
            (500, "unknow-error")
        );
        assert_eq!(
            status_and_code(&ProtocolError::CallLimited { per_method: false }.wire()),
            (429, "app-call-limited")
        );
        let business = WireError::business("USER_AGREEMENT_NOT_EXIST", "用户协议不存在");
        assert_eq!(
            status_and_code(&business),
            (400, "USER_AGREEMENT_NOT_EXIST")
        );
        let raw = error_body(&business, "t1");
        assert!(raw.starts_with(br#"{"code":"USER_AGREEMENT_NOT_EXIST","message":"#));
        let body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(body["code"], "USER_AGREEMENT_NOT_EXIST");
        assert_eq!(body["message"], "用户协议不存在");
        assert!(
            body["links"][0]["link"]
                .as_str()
                .unwrap()
                .ends_with("traceId=t1")
        );
    }

    #[test]
    fn paths_name_the_methods_that_exist_in_v3() {
        assert_eq!(
            method("GET", "/v3/alipay/user/agreement/query"),
            Ok(Method::AgreementQuery)
        );
        assert_eq!(
            method("POST", "/v3/alipay/user/agreement/unsign"),
            Ok(Method::AgreementUnsign)
        );
        assert_eq!(
            method("POST", "/v3/alipay/user/agreement/executionplan/modify"),
            Ok(Method::AgreementExecutionPlanModify)
        );
        for (m, p) in [
            ("POST", "/v3/alipay/user/agreement/query"),
            ("GET", "/v3/alipay/user/agreement/batch/query"),
            ("GET", "/v3/alipay/user/agreement/query/"),
        ] {
            assert_eq!(method(m, p), Err(ProtocolError::InvalidMethod), "{m} {p}");
        }
    }

    /// The order of [`check`]: each step answers before the later ones run.
    mod order {
        use std::future::Future as _;
        use std::sync::OnceLock;
        use std::task::{Context, Poll, Waker};

        use super::*;
        use crate::aes::ContentKey;
        use crate::crypto::PrivateKey;
        use crate::request::{Actor, AppCertificate};

        const NOW: i64 = 1_716_182_055;

        fn key() -> &'static PrivateKey {
            static KEY: OnceLock<PrivateKey> = OnceLock::new();
            KEY.get_or_init(|| PrivateKey::generate(2048).unwrap())
        }

        struct App {
            key: PublicKey,
            granted: bool,
        }

        impl CallingApp for App {
            fn is_online(&self) -> bool {
                true
            }
            fn has_keys(&self) -> bool {
                true
            }
            fn key(&self, _: SignType) -> Option<&PublicKey> {
                Some(&self.key)
            }
            fn content_key(&self) -> Option<&ContentKey> {
                None
            }
            fn cert(&self, _: &str) -> Option<&AppCertificate> {
                None
            }
            fn keys_sunset(&self) -> Option<i64> {
                None
            }
            fn may_call(&self, _: Method) -> bool {
                self.granted
            }
        }

        struct Merchant;

        impl Actor for Merchant {
            fn is_enabled(&self) -> bool {
                true
            }
        }

        #[derive(Default)]
        struct Fake {
            nonces: std::sync::Mutex<Vec<String>>,
        }

        impl Lookups for Fake {
            type App = App;
            type Actor = Merchant;
            type Error = &'static str;

            fn root_cert_sns(&self) -> Option<&[String]> {
                None
            }

            fn admit(&self, _: &str, _: Method) -> Result<(), ProtocolError> {
                Ok(())
            }

            fn first_use(&self, _: &str, nonce: &str, _: i64, _: i64) -> bool {
                let mut seen = self.nonces.lock().unwrap();
                if seen.iter().any(|n| n == nonce) {
                    return false;
                }
                seen.push(nonce.to_owned());
                true
            }

            async fn actor(
                &self,
                _: &App,
                _: Method,
                _: Option<&str>,
                _: i64,
            ) -> Result<Merchant, Refusal<&'static str>> {
                Ok(Merchant)
            }
        }

        fn header(target: &str, body: &[u8], nonce: &str, timestamp_ms: i64) -> String {
            let auth = format!("app_id=7,nonce={nonce},timestamp={timestamp_ms}");
            let method = if body.is_empty() { "GET" } else { "POST" };
            let sign = key()
                .sign(
                    SignType::Rsa2,
                    &request_sign_content(&auth, method, target, body, None),
                )
                .unwrap();
            format!("{SCHEME} {auth},sign={sign}")
        }

        fn run(
            request: &Request<'_>,
            app: Option<&App>,
            fake: &Fake,
        ) -> Result<serde_json::Map<String, serde_json::Value>, ProtocolError> {
            let mut future = std::pin::pin!(check(request, Ok(app), fake, NOW, Some(900)));
            match future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready(Ok(checked)) => Ok(checked.biz_content),
                Poll::Ready(Err(Refusal::Protocol(e))) => Err(e),
                Poll::Ready(Err(Refusal::Lookup(e))) => panic!("{e}"),
                Poll::Pending => panic!("the fake never waits"),
            }
        }

        #[test]
        fn each_step_answers_before_the_next_runs() {
            let app = App {
                key: key().public_key().unwrap(),
                granted: true,
            };
            let target = "/v3/alipay/user/agreement/query?agreement_no=1&agreement_no=2";
            let good = header(target, b"", "n1", NOW * 1000);
            let request = |target, authorization| Request {
                http_method: "GET",
                target,
                body: b"",
                authorization,
                app_auth_token: None,
                encrypt_type: None,
                root_cert_sn: None,
            };
            let fake = Fake::default();
            // The path first, even without an Authorization.
            assert_eq!(
                run(&request("/v3/nope", None), None, &fake),
                Err(ProtocolError::InvalidMethod)
            );
            assert_eq!(
                run(&request(target, None), None, &fake),
                Err(ProtocolError::MissingSign)
            );
            assert!(matches!(
                run(&request(target, Some(&good)), None, &fake),
                Err(ProtocolError::InvalidAppId { .. })
            ));
            // The signature before the timestamp, the timestamp before the nonce is spent.
            let forged = good.replace("nonce=n1", "nonce=n2");
            assert_eq!(
                run(&request(target, Some(&forged)), Some(&app), &fake),
                Err(ProtocolError::InvalidSignature)
            );
            let stale = header(target, b"", "n3", (NOW - 901) * 1000);
            assert!(matches!(
                run(&request(target, Some(&stale)), Some(&app), &fake),
                Err(ProtocolError::InvalidTimestamp { .. })
            ));
            assert!(
                fake.nonces.lock().unwrap().is_empty(),
                "no nonce spent by a refused request"
            );
            // Accepted once: the first value of a repeated query name.
            let fields = run(&request(target, Some(&good)), Some(&app), &fake).unwrap();
            assert_eq!(fields["agreement_no"], "1");
            assert!(matches!(
                run(&request(target, Some(&good)), Some(&app), &fake),
                Err(ProtocolError::InvalidNonce { .. })
            ));
            // Then encryption, the grant, the content.
            let fresh = header(target, b"", "n4", NOW * 1000);
            let mut encrypted = request(target, Some(&fresh));
            encrypted.encrypt_type = Some("DES");
            assert_eq!(
                run(&encrypted, Some(&app), &fake),
                Err(ProtocolError::InvalidEncryptType)
            );
            let ungranted = App {
                key: key().public_key().unwrap(),
                granted: false,
            };
            let fresh = header(target, b"", "n5", NOW * 1000);
            assert_eq!(
                run(&request(target, Some(&fresh)), Some(&ungranted), &fake),
                Err(ProtocolError::InsufficientIsvPermissions)
            );
            let post = "/v3/alipay/user/agreement/unsign";
            let signed = header(post, b"[1]", "n6", NOW * 1000);
            let bad_body = Request {
                http_method: "POST",
                body: b"[1]",
                ..request(post, Some(&signed))
            };
            assert!(matches!(
                run(&bad_body, Some(&app), &fake),
                Err(ProtocolError::InvalidParameter { .. })
            ));
        }
    }
}
