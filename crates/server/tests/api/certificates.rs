//! Certificate mode (公钥证书, openapi-gateway.md §5, cert-aes-v3.md §2): requests verified with
//! the key of the app certificate they name, answers naming the platform certificate that
//! signed them, each failure with its own sub_code, app certificates and the public-key mode
//! retired after their overlap, and a client that meets a rotated platform certificate
//! downloading it and checking its chain, as the Java SDK does.

use agreements_client::{Answer, CertMode, Client, ClientConfig, ClientError};
use agreements_domain::ids::AppId;
use agreements_protocol::cert::{Authority, Certificate, Name, Role, root_cert_sn};
use agreements_protocol::sign_content::Empties;
use agreements_protocol::timestamp::format_beijing;
use agreements_protocol::{Charset, Params, PrivateKey, PublicKey, SignType};
use agreements_store::{AppCert, CertRole, PlatformCert, demo};
use base64::Engine as _;

use crate::helpers::*;

const FORM: &str = "application/x-www-form-urlencoded;charset=utf-8";
const DAY: i64 = 86_400;

fn name(cn: &str) -> Name<'_> {
    Name {
        organisation: "Agreements Test",
        unit: "Certification Authority",
        common_name: cn,
    }
}

/// The platform's authority in a test server's store: a root, an intermediate and a
/// certificate of the gateway key.
struct Pki {
    root: Authority,
    intermediate: Authority,
    signing: Certificate,
}

impl Pki {
    async fn install(app: &TestApp) -> Self {
        let now = app.clock_now();
        let root = Authority::root(
            &name("Root"),
            &PrivateKey::generate(2048).unwrap(),
            now - DAY,
            3650,
        )
        .unwrap();
        let intermediate_key = PrivateKey::generate(2048).unwrap();
        let intermediate_cert = root
            .issue(
                &name("Class 2"),
                &intermediate_key.public_key().unwrap(),
                Role::Authority,
                now - DAY,
                3650,
            )
            .unwrap();
        let intermediate = Authority::from_parts(intermediate_cert, &intermediate_key).unwrap();
        let pki = Self {
            signing: intermediate
                .issue(
                    &name("Platform"),
                    &app.platform_public,
                    Role::Signer,
                    now - DAY,
                    3650,
                )
                .unwrap(),
            root,
            intermediate,
        };
        pki.record(app, pki.root.certificate(), CertRole::Root, 0)
            .await;
        pki.record(app, &pki.signing, CertRole::Signing, 1).await;
        pki
    }

    async fn record(&self, app: &TestApp, cert: &Certificate, role: CertRole, order: i64) {
        let chain = match role {
            CertRole::Root => cert.to_pem(),
            CertRole::Signing => format!(
                "{}{}",
                cert.to_pem(),
                self.intermediate.certificate().to_pem()
            ),
        };
        let (not_before, not_after) = cert.validity().unwrap();
        app.store
            .add_platform_cert(&PlatformCert {
                cert_sn: cert.sn(),
                role,
                chain_pem: chain,
                not_before,
                not_after,
                created_at: app.clock_now() + order,
            })
            .await
            .unwrap();
    }

    /// Issues `app_id` a certificate of the tests' app key, valid from `from` for `days`;
    /// earlier ones retire after `overlap` seconds, and so do its keys unless `keep_keys`.
    async fn issue_app(
        &self,
        app: &TestApp,
        app_id: &str,
        from: i64,
        days: u32,
        overlap: i64,
        keep_keys: bool,
    ) -> Certificate {
        let key = PublicKey::parse(&fixture("keys/app_public_key_spki.pem")).unwrap();
        let cert = self
            .intermediate
            .issue(&name(app_id), &key, Role::Signer, from, days)
            .unwrap();
        let (not_before, not_after) = cert.validity().unwrap();
        let now = app.clock_now();
        app.store
            .add_app_cert(
                &AppCert {
                    app_id: AppId::parse(app_id).unwrap(),
                    cert_sn: cert.sn(),
                    cert_pem: cert.to_pem(),
                    not_before,
                    not_after,
                    created_at: now,
                    retired_at: None,
                },
                now + overlap,
                (!keep_keys).then_some(now + overlap),
            )
            .await
            .unwrap();
        cert
    }

    fn root_sn(&self) -> String {
        root_cert_sn(std::slice::from_ref(self.root.certificate()))
    }

    /// A certificate-mode client of the demo app holding `platform` (its key and SN).
    fn client(&self, app: &TestApp, app_cert: &Certificate, platform: &Certificate) -> Client {
        let plain = app.client(demo::APP_ID, SignType::Rsa2, Charset::Utf8);
        let config = ClientConfig {
            platform_public_key: platform.public_key().unwrap(),
            cert: Some(CertMode {
                app_cert_sn: app_cert.sn(),
                root_cert_sn: self.root_sn(),
                roots: vec![self.root.certificate().clone()],
                platform_cert_sn: platform.sn(),
            }),
            ..plain.config().clone()
        };
        Client::with_http(config, app.http.clone())
    }
}

async fn call(
    client: &Client,
    app: &TestApp,
    method: &str,
    biz: &str,
) -> Result<Answer, ClientError> {
    client
        .execute_at(method, biz, &format_beijing(app.clock_now()))
        .await
}

/// `(code, sub_code, alipay_cert_sn)` of a signed answer.
fn outcome(app: &TestApp, raw: &Raw) -> (String, String, Option<String>) {
    let answer = agreements_client::verify_response(
        &raw.body,
        BATCH_QUERY,
        Charset::Utf8,
        &app.platform_public,
        SignType::Rsa2,
    )
    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw.body)));
    (
        answer.code().to_owned(),
        answer.sub_code().unwrap_or_default().to_owned(),
        agreements_client::cert_sn_of(&raw.body, BATCH_QUERY),
    )
}

#[tokio::test]
async fn requests_are_verified_by_the_app_certificate_and_answers_name_the_platform_certificate() {
    let app = TestApp::spawn().await;
    let pki = Pki::install(&app).await;
    let cert = pki
        .issue_app(
            &app,
            demo::APP_ID,
            app.clock_now() - DAY,
            365,
            7 * DAY,
            true,
        )
        .await;
    let client = pki.client(&app, &cert, &pki.signing);
    let answer = call(&client, &app, BATCH_QUERY, VECTOR_BIZ).await.unwrap();
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    // The layout every certificate-mode client reads: node, alipay_cert_sn, sign.
    let root = pki.root_sn();
    let raw = signed_call(
        &app,
        VECTOR_BIZ,
        &[("app_cert_sn", &cert.sn()), ("alipay_root_cert_sn", &root)],
    )
    .await;
    let body = String::from_utf8(raw.body.clone()).unwrap();
    let expected = format!(",\"alipay_cert_sn\":\"{}\",\"sign\":\"", pki.signing.sn());
    assert!(body.contains(&expected), "{body}");
    assert_eq!(outcome(&app, &raw).0, "10000");
    // A business failure names it too; a public-key request of the same app does not.
    let answer = call(
        &client,
        &app,
        BATCH_QUERY,
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088999999999999"}"#,
    )
    .await
    .unwrap();
    assert_eq!(answer.sub_code(), Some("USER_NOT_EXIST_ERROR"));
    let raw = signed_call(&app, VECTOR_BIZ, &[]).await;
    assert_eq!(outcome(&app, &raw), ("10000".into(), String::new(), None));
}

#[tokio::test]
async fn each_certificate_failure_has_its_own_answer() {
    // Before the platform has certificates, certificate mode is not available.
    let bare = TestApp::spawn().await;
    let raw = signed_call(
        &bare,
        VECTOR_BIZ,
        &[
            ("app_cert_sn", "0123456789abcdef0123456789abcdef"),
            ("alipay_root_cert_sn", "0123456789abcdef0123456789abcdef"),
        ],
    )
    .await;
    assert_eq!(outcome(&bare, &raw).1, "isv.alipay-cert-not-exist");
    let app = TestApp::spawn().await;
    let pki = Pki::install(&app).await;
    let now = app.clock_now();
    let good = pki
        .issue_app(&app, demo::APP_ID, now - DAY, 365, 7 * DAY, true)
        .await;
    let music = pki
        .issue_app(&app, APP_MUSIC, now - DAY, 365, 7 * DAY, true)
        .await;
    let root = pki.root_sn();
    let other_root = "02941eef3187dddf3d3b83462e1dfcf6";
    let (good, music) = (good.sn(), music.sn());
    let with_other = format!("{other_root}_{root}");
    // Extra parameters, code, sub_code.
    type Case<'a> = (Vec<(&'static str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec![("app_cert_sn", &good), ("alipay_root_cert_sn", &root)],
            "10000",
            "",
        ),
        // The merchant's bundle may hold other roots, in any order.
        (
            vec![("app_cert_sn", &good), ("alipay_root_cert_sn", &with_other)],
            "10000",
            "",
        ),
        (
            vec![("app_cert_sn", &good)],
            "40001",
            "isv.missing-alipay-root-cert-sn",
        ),
        (
            vec![("app_cert_sn", &good), ("alipay_root_cert_sn", other_root)],
            "40002",
            "isv.invalid-alipay-root-cert-sn",
        ),
        (
            vec![
                ("app_cert_sn", "0123456789abcdef0123456789abcdef"),
                ("alipay_root_cert_sn", &root),
            ],
            "40002",
            "isv.app-cert-not-exist",
        ),
        // Another app's certificate is answered as an unknown one.
        (
            vec![("app_cert_sn", &music), ("alipay_root_cert_sn", &root)],
            "40002",
            "isv.app-cert-not-exist",
        ),
    ];
    for (extra, code, sub_code) in cases {
        let raw = signed_call(&app, VECTOR_BIZ, &extra).await;
        let (c, s, sn) = outcome(&app, &raw);
        assert_eq!((c.as_str(), s.as_str()), (code, sub_code), "{extra:?}");
        assert_eq!(
            sn,
            Some(pki.signing.sn()),
            "{extra:?}: every answer names the signer"
        );
    }
    // A request signed by another key than the certificate's fails its signature.
    let mut pairs = common(VECTOR_BIZ);
    pairs.extend([("app_cert_sn", good), ("alipay_root_cert_sn", root.clone())]);
    let unsigned = Params::from_pairs(
        Charset::Utf8,
        &pairs
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let forged = PrivateKey::parse(&fixture("keys/gateway_private_key_pkcs1.pem"))
        .unwrap()
        .sign(
            SignType::Rsa2,
            &agreements_protocol::sign_content::request(&unsigned, Empties::Drop),
        )
        .unwrap();
    let mut body: Vec<String> = pairs
        .iter()
        .map(|(n, v)| {
            format!(
                "{n}={}",
                form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    body.push(format!(
        "sign={}",
        form_urlencoded::byte_serialize(forged.as_bytes()).collect::<String>()
    ));
    let raw = app.call_raw("POST", "", Some(FORM), body.join("&")).await;
    assert_eq!(outcome(&app, &raw).1, "isv.invalid-signature");
}

#[tokio::test]
async fn certificates_out_of_date_are_refused_and_a_replaced_one_after_its_overlap() {
    let app = TestApp::spawn().await;
    let pki = Pki::install(&app).await;
    let now = app.clock_now();
    let root = pki.root_sn();
    let expired = pki
        .issue_app(&app, APP_MUSIC, now - 10 * DAY, 2, DAY, true)
        .await;
    let early = pki
        .issue_app(&app, APP_TELECOM, now + DAY, 30, DAY, true)
        .await;
    // The demo app: a first certificate, replaced by a second with a 7-day overlap; its public
    // keys retire with the first switch.
    let first = pki
        .issue_app(&app, demo::APP_ID, now - DAY, 365, 7 * DAY, false)
        .await;
    let second = pki
        .issue_app(&app, demo::APP_ID, now - DAY, 365, 7 * DAY, false)
        .await;
    let as_app = |app_id: &'static str, sn: String| {
        let root = root.clone();
        let app = &app;
        async move {
            let mut pairs = common(VECTOR_BIZ);
            pairs.retain(|(n, _)| *n != "app_id" && *n != "timestamp");
            pairs.push(("app_id", app_id.to_owned()));
            pairs.push(("timestamp", format_beijing(app.clock_now())));
            pairs.push(("app_cert_sn", sn));
            pairs.push(("alipay_root_cert_sn", root));
            let raw = post_signed(app, &pairs).await;
            let answer = agreements_client::verify_response(
                &raw.body,
                BATCH_QUERY,
                Charset::Utf8,
                &app.platform_public,
                SignType::Rsa2,
            )
            .unwrap();
            (
                answer.sub_code().unwrap_or("").to_owned(),
                answer
                    .node
                    .get("sub_msg")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned(),
            )
        }
    };
    let (sub_code, msg) = as_app(APP_MUSIC, expired.sn()).await;
    assert_eq!(sub_code, "isv.app-cert-expired");
    assert!(msg.contains("expired at"), "{msg}");
    let (sub_code, msg) = as_app(APP_TELECOM, early.sn()).await;
    assert_eq!(sub_code, "isv.app-cert-expired");
    assert!(msg.contains("valid from"), "{msg}");
    let key_mode = |app: &TestApp| {
        let mut pairs = common(VECTOR_BIZ);
        pairs.retain(|(n, _)| *n != "timestamp");
        pairs.push(("timestamp", format_beijing(app.clock_now())));
        signed_form(&pairs, SignType::Rsa2, Charset::Utf8, Empties::Drop)
    };
    // Inside the overlap: both certificates, and the public key.
    assert_eq!(as_app(demo::APP_ID, first.sn()).await.0, "");
    assert_eq!(as_app(demo::APP_ID, second.sn()).await.0, "");
    let raw = app.call_raw("POST", "", Some(FORM), key_mode(&app)).await;
    assert_eq!(outcome(&app, &raw).0, "10000");
    // After it: the replaced certificate and the public key are refused, each by its code.
    app.clock.set(now + 7 * DAY);
    let (sub_code, msg) = as_app(demo::APP_ID, first.sn()).await;
    assert_eq!(sub_code, "isv.app-cert-expired");
    assert!(msg.contains("replaced"), "{msg}");
    assert_eq!(as_app(demo::APP_ID, second.sn()).await.0, "");
    let raw = app.call_raw("POST", "", Some(FORM), key_mode(&app)).await;
    assert_eq!(
        outcome(&app, &raw).1,
        "isv.unsupported-expired-app-key-sign"
    );
}

#[tokio::test]
async fn a_client_holding_a_rotated_platform_certificate_downloads_the_new_one_and_checks_its_chain()
 {
    let app = TestApp::spawn().await;
    let pki = Pki::install(&app).await;
    let now = app.clock_now();
    let cert = pki
        .issue_app(&app, demo::APP_ID, now - DAY, 365, 7 * DAY, true)
        .await;
    // The platform re-issues its certificate (same key, new SN) before the clients update.
    let renewed = pki
        .intermediate
        .issue(
            &name("Platform"),
            &app.platform_public,
            Role::Signer,
            now - DAY,
            3650,
        )
        .unwrap();
    pki.record(&app, &renewed, CertRole::Signing, 2).await;
    assert_ne!(renewed.sn(), pki.signing.sn());
    let client = pki.client(&app, &cert, &pki.signing);
    assert_eq!(client.known_platform_certs(), vec![pki.signing.sn()]);
    let answer = call(&client, &app, BATCH_QUERY, VECTOR_BIZ).await.unwrap();
    assert_eq!(answer.code(), "10000");
    let mut known = vec![pki.signing.sn(), renewed.sn()];
    known.sort();
    assert_eq!(
        client.known_platform_certs(),
        known,
        "downloaded once, then known"
    );
    assert_eq!(
        call(&client, &app, BATCH_QUERY, VECTOR_BIZ)
            .await
            .unwrap()
            .code(),
        "10000"
    );

    // The download itself: Base64 of the PEM chain, leaf first, for any app.
    let raw_download = |sn: String| {
        let app = &app;
        async move {
            let mut pairs = common(&format!(r#"{{"alipay_cert_sn":"{sn}"}}"#));
            pairs.retain(|(n, _)| *n != "method" && *n != "app_id");
            pairs.push(("method", "alipay.open.app.alipaycert.download".to_owned()));
            pairs.push(("app_id", APP_NO_GRANTS.to_owned()));
            let raw = post_signed(app, &pairs).await;
            agreements_client::verify_response(
                &raw.body,
                "alipay.open.app.alipaycert.download",
                Charset::Utf8,
                &app.platform_public,
                SignType::Rsa2,
            )
            .unwrap()
        }
    };
    let answer = raw_download(renewed.sn()).await;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(answer.node["alipay_cert_content"].as_str().unwrap())
        .unwrap();
    let chain = Certificate::parse_pem_chain(&pem).unwrap();
    assert_eq!(
        chain,
        vec![renewed.clone(), pki.intermediate.certificate().clone()]
    );
    assert_eq!(
        raw_download("0123456789abcdef0123456789abcdef".into())
            .await
            .sub_code(),
        Some("isv.alipay-cert-not-exist")
    );

    // A client whose root bundle does not hold the platform's root refuses the download.
    let stranger = Authority::root(
        &name("Other"),
        &PrivateKey::generate(2048).unwrap(),
        now - DAY,
        10,
    )
    .unwrap();
    let mut wary = pki.client(&app, &cert, &pki.signing);
    let config = ClientConfig {
        cert: wary.config().cert.clone().map(|c| CertMode {
            roots: vec![stranger.certificate().clone()],
            ..c
        }),
        ..wary.config().clone()
    };
    wary = Client::with_http(config, app.http.clone());
    match call(&wary, &app, BATCH_QUERY, VECTOR_BIZ).await {
        Err(ClientError::Malformed(reason)) => assert!(reason.contains("not trusted"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn v3_requests_name_their_app_certificate_and_answers_carry_alipay_sn() {
    use crate::openapi_v3::Call;
    let app = TestApp::spawn().await;
    let pki = Pki::install(&app).await;
    let now = app.clock_now();
    let cert = pki
        .issue_app(&app, demo::APP_ID, now - DAY, 365, 7 * DAY, false)
        .await;
    let target = "/v3/alipay/user/agreement/query?agreement_no=20245920000000000001";
    let mut call = Call::get(&app, target);
    call.cert_sn = Some(cert.sn());
    let answer = call.send(&app).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.verified(&app));
    assert_eq!(answer.header("alipay-sn"), Some(pki.signing.sn().as_str()));
    // alipay-root-cert-sn is optional in v3, but checked when sent.
    let mut call = Call::get(&app, target);
    call.cert_sn = Some(cert.sn());
    call.headers.push((
        "alipay-root-cert-sn",
        "02941eef3187dddf3d3b83462e1dfcf6".into(),
    ));
    assert_eq!(
        call.send(&app).await.error(),
        (400, "invalid-alipay-root-cert-sn".into())
    );
    let mut call = Call::get(&app, target);
    call.cert_sn = Some("0123456789abcdef0123456789abcdef".into());
    assert_eq!(
        call.send(&app).await.error(),
        (400, "app-cert-not-exist".into())
    );
}
