//! OpenAPI v3 (openapi-gateway.md §7, cert-aes-v3.md §4): the REST paths of the agreement
//! methods, the `Authorization` header verified over the raw request-target and body, the
//! timestamp window and the nonce replay guard, signed response headers, `{code, message,
//! links}` errors with their HTTP statuses, AES, tokens and certificate mode — answered by the
//! same method code as v2.

use agreements_domain::ids::AppId;
use agreements_protocol::aes::{ContentKey, EncryptType};
use agreements_protocol::v3;
use agreements_protocol::{PrivateKey, SignType};
use agreements_store::{AppContentKey, demo};

use crate::helpers::*;

const QUERY: &str = "/v3/alipay/user/agreement/query";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODw==";

/// A v3 request as a client makes it.
pub(crate) struct Call<'a> {
    pub http_method: &'a str,
    /// The request-target sent.
    pub target: &'a str,
    /// The request-target signed (the same unless a test wants them apart).
    pub signed_target: &'a str,
    pub body: Vec<u8>,
    pub app_id: &'a str,
    pub nonce: String,
    pub timestamp_ms: i64,
    pub token: Option<&'a str>,
    pub headers: Vec<(&'a str, String)>,
    pub cert_sn: Option<String>,
}

pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The response signature verified with the platform key (or its absence).
    pub fn verified(&self, app: &TestApp) -> bool {
        let (Some(ts), Some(nonce), Some(sign)) = (
            self.header("alipay-timestamp"),
            self.header("alipay-nonce"),
            self.header("alipay-signature"),
        ) else {
            return false;
        };
        let content = v3::response_sign_content(ts, nonce, &self.body);
        app.platform_public.verify(SignType::Rsa2, &content, sign)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn error(&self) -> (u16, String) {
        (
            self.status,
            self.json()["code"].as_str().unwrap().to_owned(),
        )
    }
}

impl<'a> Call<'a> {
    pub fn get(app: &TestApp, target: &'a str) -> Self {
        Self {
            http_method: "GET",
            target,
            signed_target: target,
            body: Vec::new(),
            app_id: demo::APP_ID,
            nonce: agreements_protocol::crypto::random_alphanumeric(32).unwrap(),
            timestamp_ms: app.clock_now() * 1000,
            token: None,
            headers: Vec::new(),
            cert_sn: None,
        }
    }

    fn post(app: &TestApp, target: &'a str, body: &str) -> Self {
        Self {
            http_method: "POST",
            body: body.as_bytes().to_vec(),
            ..Self::get(app, target)
        }
    }

    pub async fn send(&self, app: &TestApp) -> Answer {
        let key = PrivateKey::parse(&fixture("keys/app_private_key_pkcs1.pem")).unwrap();
        let mut auth = format!("app_id={}", self.app_id);
        if let Some(sn) = &self.cert_sn {
            auth.push_str(&format!(",app_cert_sn={sn}"));
        }
        auth.push_str(&format!(
            ",nonce={},timestamp={}",
            self.nonce, self.timestamp_ms
        ));
        let content = v3::request_sign_content(
            &auth,
            self.http_method,
            self.signed_target,
            &self.body,
            self.token,
        );
        let sign = key.sign(SignType::Rsa2, &content).unwrap();
        let base = app.url.trim_end_matches("/gateway.do");
        let url = format!("{base}{}", self.target);
        let mut request = match self.http_method {
            "GET" => app.http.get(url),
            _ => app.http.post(url).body(self.body.clone()),
        }
        .header(
            "authorization",
            format!("{} {auth},sign={sign}", v3::SCHEME),
        )
        .header("content-type", "application/json");
        if let Some(token) = self.token {
            request = request.header("alipay-app-auth-token", token);
        }
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }
}

#[tokio::test]
async fn a_v3_query_is_answered_with_its_fields_and_signed_headers() {
    let app = TestApp::spawn().await;
    let target = format!("{QUERY}?agreement_no=20245920000000000001");
    let answer = Call::get(&app, &target).send(&app).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.verified(&app));
    assert!(answer.header("alipay-trace-id").is_some());
    assert_eq!(answer.header("alipay-sn"), None, "public-key mode");
    let body = answer.json();
    assert_eq!(body["agreement_no"], "20245920000000000001");
    assert_eq!(body["alipay_logon_id"], "138****5678");
    assert!(body.get("code").is_none(), "v3 success has no code");
    // The same domain answer as v2.
    let v2 = app
        .call(
            "alipay.user.agreement.query",
            r#"{"agreement_no":"20245920000000000001"}"#,
        )
        .await;
    for field in ["agreement_no", "status", "sign_time", "principal_id"] {
        assert_eq!(body[field], v2.node[field], "{field}");
    }
    // A business error: 400 with the v2 sub_code as code, signed too.
    let target = format!("{QUERY}?agreement_no=20990101000000000000");
    let answer = Call::get(&app, &target).send(&app).await;
    assert_eq!(answer.error(), (400, "USER_AGREEMENT_NOT_EXIST".into()));
    assert!(answer.verified(&app));
    assert!(
        answer.json()["links"][0]["link"]
            .as_str()
            .unwrap()
            .contains("traceId=")
    );
}

#[tokio::test]
async fn what_v3_refuses_it_refuses_with_its_code_and_status() {
    let app = TestApp::spawn().await;
    let good = format!("{QUERY}?agreement_no=20245920000000000001");
    // One encoded character apart: the signed path is not the requested one.
    let mut call = Call::get(&app, &good);
    let altered = format!("{QUERY}?agreement_no=2024592000000000000%31");
    call.signed_target = &altered;
    assert_eq!(
        call.send(&app).await.error(),
        (400, "invalid-signature".into())
    );
    // A reused nonce.
    let call = Call::get(&app, &good);
    assert_eq!(call.send(&app).await.status, 200);
    let replay = call.send(&app).await;
    assert_eq!(replay.error(), (400, "invalid-nonce".into()));
    assert!(replay.verified(&app));
    // A timestamp in the future, and one too old.
    for offset in [901_000, -901_000] {
        let mut call = Call::get(&app, &good);
        call.timestamp_ms += offset;
        assert_eq!(
            call.send(&app).await.error(),
            (400, "invalid-timestamp".into())
        );
    }
    // An unknown app: refused unsigned.
    let mut call = Call::get(&app, &good);
    call.app_id = "2021009999999999";
    let answer = call.send(&app).await;
    assert_eq!(answer.error(), (400, "invalid-app-id".into()));
    assert_eq!(answer.header("alipay-signature"), None);
    // No Authorization at all, another scheme, a path that does not exist.
    let base = app.url.trim_end_matches("/gateway.do");
    let bare = app.http.get(format!("{base}{good}")).send().await.unwrap();
    assert_eq!(bare.status().as_u16(), 400);
    let body: serde_json::Value = serde_json::from_slice(&bare.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "missing-signature");
    let answer = Call::post(&app, "/v3/alipay/user/agreement/batch/query", "{}")
        .send(&app)
        .await;
    assert_eq!(answer.error(), (400, "invalid-method".into()));
    // A token of another app: 401; an app not granted the method: 403.
    let mut call = Call::get(&app, &good);
    call.token = Some(TOKEN_VIDEO);
    assert_eq!(
        call.send(&app).await.error(),
        (401, "invalid-app-auth-token".into())
    );
    let mut call = Call::get(&app, &good);
    call.app_id = APP_NO_GRANTS;
    assert_eq!(
        call.send(&app).await.error(),
        (403, "insufficient-isv-permissions".into())
    );
    // A body that is not a JSON object; encryption asked of an app without a key.
    let answer = Call::post(&app, "/v3/alipay/user/agreement/unsign", "[1]")
        .send(&app)
        .await;
    assert_eq!(answer.error(), (400, "invalid-parameter".into()));
    let mut call = Call::post(
        &app,
        "/v3/alipay/user/agreement/unsign",
        r#"{"agreement_no":"20240102000000000003"}"#,
    );
    call.headers.push(("alipay-encrypt-type", "AES".into()));
    assert_eq!(
        call.send(&app).await.error(),
        (400, "decryption-error-not-valid-encrypt-key".into())
    );
}

#[tokio::test]
async fn an_isv_acts_for_its_merchant_with_the_token_in_the_signed_string() {
    let app = TestApp::spawn().await;
    let target = format!("{QUERY}?agreement_no=20245920000000000001");
    let mut call = Call::get(&app, &target);
    call.app_id = APP_ISV;
    call.token = Some(TOKEN_VIDEO);
    let answer = call.send(&app).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["agreement_no"], "20245920000000000001");
    // The token header sent but left out of the signed string: the signature fails.
    let mut call = Call::get(&app, &target);
    call.app_id = APP_ISV;
    call.headers
        .push(("alipay-app-auth-token", TOKEN_VIDEO.into()));
    assert_eq!(
        call.send(&app).await.error(),
        (400, "invalid-signature".into())
    );
}

#[tokio::test]
async fn encrypted_v3_bodies_and_answers() {
    let app = TestApp::spawn().await;
    app.store
        .set_content_key(&AppContentKey {
            app_id: AppId::parse(demo::APP_ID).unwrap(),
            content_key: ContentKey::parse(KEY).unwrap(),
            updated_at: app.clock_now(),
        })
        .await
        .unwrap();
    let key = ContentKey::parse(KEY).unwrap();
    // POST: the body is the ciphertext, signed as sent; the answer is the ciphertext too.
    let sealed = key
        .encrypt(
            EncryptType::Aes,
            br#"{"agreement_no":"20240102000000000003"}"#,
        )
        .unwrap();
    let mut call = Call::post(&app, "/v3/alipay/user/agreement/unsign", &sealed);
    call.headers.push(("alipay-encrypt-type", "AES".into()));
    let answer = call.send(&app).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.verified(&app), "signed over the ciphertext");
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let opened = key
        .decrypt(EncryptType::Aes, std::str::from_utf8(&answer.body).unwrap())
        .unwrap();
    assert_eq!(opened, b"{}");
    // GET with the header (as PHP's v3 SDK sends it): the answer is encrypted.
    let target = format!("{QUERY}?agreement_no=20245920000000000001");
    let mut call = Call::get(&app, &target);
    call.headers.push(("alipay-encrypt-type", "AES".into()));
    let answer = call.send(&app).await;
    assert_eq!(answer.status, 200);
    let opened = key
        .decrypt(EncryptType::Aes, std::str::from_utf8(&answer.body).unwrap())
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&opened).unwrap();
    assert_eq!(body["agreement_no"], "20245920000000000001");
    // Ciphertext of another key: refused in plain text.
    let other = ContentKey::parse("DwAOAA0ADAALAAoACQAIAA==").unwrap();
    let foreign = other.encrypt(EncryptType::Aes, b"{}").unwrap();
    let mut call = Call::post(&app, "/v3/alipay/user/agreement/unsign", &foreign);
    call.headers.push(("alipay-encrypt-type", "AES".into()));
    assert_eq!(
        call.send(&app).await.error(),
        (400, "invalid-encrypt".into())
    );
}
