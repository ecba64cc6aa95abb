//! Content encryption (`encrypt_type`, openapi-gateway.md §6): an app with an AES key sends
//! `biz_content` encrypted and gets the method's answer — success or business failure —
//! encrypted and signed over its quoted ciphertext; what the gateway refuses is plain.

use agreements_client::{Client, ClientConfig, Verified, verify};
use agreements_domain::ids::AppId;
use agreements_protocol::aes::{ContentKey, EncryptType};
use agreements_protocol::{Charset, SignType};
use agreements_store::{AppContentKey, demo};

use crate::helpers::*;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODw==";
const OTHER_KEY: &str = "DwAOAA0ADAALAAoACQAIAA==";

/// A test server whose demo app has the content key [`KEY`].
async fn spawn_keyed() -> TestApp {
    let app = TestApp::spawn().await;
    app.store
        .set_content_key(&AppContentKey {
            app_id: AppId::parse(demo::APP_ID).unwrap(),
            content_key: ContentKey::parse(KEY).unwrap(),
            updated_at: app.clock_now(),
        })
        .await
        .unwrap();
    app
}

fn encrypting(app: &TestApp, encrypt_type: EncryptType, key: &str, charset: Charset) -> Client {
    let plain = app.client(demo::APP_ID, SignType::Rsa2, charset);
    let config = ClientConfig {
        encryption: Some((encrypt_type, ContentKey::parse(key).unwrap())),
        ..plain.config().clone()
    };
    Client::with_http(config, app.http.clone())
}

/// Sends `biz` for `method` through `client`, returning the raw body and what verified.
async fn exchange(client: &Client, method: &str, biz: &str) -> (Vec<u8>, Verified) {
    let request = client.sign(method, biz, VECTOR_TIME, &[]).unwrap();
    let (status, body) = client.send(&request).await.unwrap();
    assert_eq!(status, 200);
    let c = client.config();
    let verified = verify(
        &body,
        method,
        c.charset,
        &c.platform_public_key,
        c.sign_type,
    )
    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    (body, verified)
}

#[tokio::test]
async fn encrypted_requests_get_encrypted_answers_in_kind() {
    let app = spawn_keyed().await;
    let key = ContentKey::parse(KEY).unwrap();
    for encrypt_type in [EncryptType::Aes, EncryptType::AesV2] {
        for charset in [Charset::Utf8, Charset::Gbk] {
            let client = encrypting(&app, encrypt_type, KEY, charset);
            let (body, verified) = exchange(&client, BATCH_QUERY, VECTOR_BIZ).await;
            let Verified::Sealed {
                node_name,
                ciphertext,
            } = verified.clone()
            else {
                panic!("a plain answer to an encrypted request");
            };
            assert_eq!(node_name, "alipay_user_agreement_batch_query_response");
            // The node is the quoted base64 and nothing else, `sign` right after it.
            let expected_start = format!("{{\"{node_name}\":\"{ciphertext}\",\"sign\":\"");
            assert!(body.starts_with(expected_start.as_bytes()));
            let answer = verified.open(charset, Some((encrypt_type, &key))).unwrap();
            assert_eq!(answer.code(), "10000", "{:?}", answer.node);
            assert_eq!(
                answer.node["usage_agreement_info_list"][0]["agreement_no"],
                "20245920000000000001"
            );
            // The answer is in the kind asked: AES_V2 carries its IV, AES does not.
            let opened_as_other = match encrypt_type {
                EncryptType::Aes => key.decrypt(EncryptType::AesV2, &ciphertext),
                EncryptType::AesV2 => key.decrypt(EncryptType::Aes, &ciphertext),
            };
            assert_ne!(
                opened_as_other.ok(),
                key.decrypt(encrypt_type, &ciphertext).ok()
            );

            // A business failure is the method's answer: encrypted too, in the charset.
            let (_, verified) = exchange(
                &client,
                BATCH_QUERY,
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088999999999999"}"#,
            )
            .await;
            assert!(matches!(verified, Verified::Sealed { .. }));
            let answer = verified.open(charset, Some((encrypt_type, &key))).unwrap();
            assert_eq!(answer.sub_code(), Some("USER_NOT_EXIST_ERROR"));
            assert_eq!(answer.node["sub_msg"], "用户信息不存在");
        }
    }
    // Plain requests of the same app stay plain.
    let answer = app.call(BATCH_QUERY, VECTOR_BIZ).await;
    assert_eq!(answer.code(), "10000");
}

#[tokio::test]
async fn an_encrypted_unsign_changes_the_agreement_once() {
    let app = spawn_keyed().await;
    let key = ContentKey::parse(KEY).unwrap();
    let client = encrypting(&app, EncryptType::AesV2, KEY, Charset::Utf8);
    let biz = r#"{"agreement_no":"20240102000000000003"}"#;
    for _ in 0..2 {
        let (_, verified) = exchange(&client, "alipay.user.agreement.unsign", biz).await;
        let answer = verified
            .open(Charset::Utf8, Some((EncryptType::AesV2, &key)))
            .unwrap();
        assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    }
    let answer = app.call("alipay.user.agreement.query", biz).await;
    assert_eq!(answer.sub_code(), Some("USER_AGREEMENT_NOT_EXIST"));
}

/// The signed, plain node of a refusal.
fn plain_refusal(app: &TestApp, raw: &Raw) -> (String, String, String) {
    let answer = agreements_client::verify_response(
        &raw.body,
        BATCH_QUERY,
        Charset::Utf8,
        &app.platform_public,
        SignType::Rsa2,
    )
    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw.body)));
    let field = |name: &str| {
        answer
            .node
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    (field("code"), field("sub_code"), field("sub_msg"))
}

#[tokio::test]
async fn what_does_not_decrypt_is_refused_in_plain_text_with_its_sub_code() {
    let app = spawn_keyed().await;
    let key = ContentKey::parse(KEY).unwrap();
    let other = ContentKey::parse(OTHER_KEY).unwrap();
    let sealed = key
        .encrypt(EncryptType::Aes, VECTOR_BIZ.as_bytes())
        .unwrap();
    // AES_V2 content with an all-zero IV (deterministic): IV, then what AES made.
    let sealed_v2 = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let mut bytes = vec![0u8; 16];
        bytes.extend(engine.decode(&sealed).unwrap());
        engine.encode(bytes)
    };
    assert_eq!(
        key.decrypt(EncryptType::AesV2, &sealed_v2).unwrap(),
        VECTOR_BIZ.as_bytes()
    );
    let foreign = other
        .encrypt(EncryptType::Aes, VECTOR_BIZ.as_bytes())
        .unwrap();
    let truncated = &sealed[..sealed.len() - 4];
    // biz_content, extra parameters, code, sub_code, what the sub_msg says.
    type Case<'a> = (
        &'a str,
        Vec<(&'static str, &'a str)>,
        &'a str,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            foreign.as_str(),
            vec![("encrypt_type", "AES")],
            "40002",
            "isv.invalid-encrypt",
            "does not decrypt with the app's AES key",
        ),
        (
            "not base64!",
            vec![("encrypt_type", "AES")],
            "40002",
            "isv.invalid-encrypt",
            "not base64",
        ),
        (
            truncated,
            vec![("encrypt_type", "AES")],
            "40002",
            "isv.invalid-encrypt",
            "16-byte",
        ),
        (
            "QUJD",
            vec![("encrypt_type", "AES_V2")],
            "40002",
            "isv.invalid-encrypt",
            "16-byte",
        ),
        (
            sealed_v2.as_str(),
            vec![("encrypt_type", "AES")],
            "40002",
            "isv.invalid-encrypt",
            "wrong key or encrypt_type",
        ),
        (
            sealed.as_str(),
            vec![("encrypt_type", "DES")],
            "40002",
            "isv.invalid-encrypt-type",
            "AES or AES_V2",
        ),
        (
            sealed.as_str(),
            vec![],
            "40001",
            "isv.decryption-error-missing-encrypt-type",
            "encrypt_type=AES",
        ),
    ];
    for (biz, extra, code, sub_code, says) in cases {
        let raw = signed_call(&app, biz, &extra).await;
        let (c, s, msg) = plain_refusal(&app, &raw);
        assert_eq!(
            (c.as_str(), s.as_str()),
            (code, sub_code),
            "{biz} {extra:?}"
        );
        assert!(msg.contains(says), "{sub_code}: {msg}");
    }
    // Plain JSON from the keyed app is still served.
    let raw = signed_call(&app, VECTOR_BIZ, &[]).await;
    assert_eq!(plain_refusal(&app, &raw).0, "10000");
    // An app without a key: the key's absence is named, and nothing is decrypted for it.
    let mut pairs = common(&sealed);
    pairs.retain(|(n, _)| *n != "app_id");
    pairs.push(("app_id", APP_MUSIC.to_owned()));
    pairs.push(("encrypt_type", "AES".to_owned()));
    let raw = post_signed(&app, &pairs).await;
    let (code, sub_code, _) = plain_refusal(&app, &raw);
    assert_eq!(
        (code.as_str(), sub_code.as_str()),
        ("40002", "isv.decryption-error-not-valid-encrypt-key")
    );
}
