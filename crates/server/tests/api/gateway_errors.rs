//! Every gateway code the server produces, for malformed and unauthorised requests: exact code
//! and sub_code, HTTP 200, signed whenever the app can be known.

use agreements_client::verify_response;
use agreements_protocol::sign_content::Empties;
use agreements_protocol::{Charset, SignType};

use crate::helpers::{
    APP_NO_GRANTS, APP_NO_KEYS, APP_OFFLINE, BATCH_QUERY, Raw, TestApp, VECTOR_BIZ, common,
    parse_unsigned, signed_form,
};

const FORM: &str = "application/x-www-form-urlencoded;charset=utf-8";
const BATCH_NODE: &str = "alipay_user_agreement_batch_query_response";
/// The query string of a request naming a real app and method.
const KNOWN: &str = "app_id=2021000000000001&method=alipay.user.agreement.batch.query";

/// Asserts the answer; returns its sub_msg.
fn expect(
    app: &TestApp,
    raw: &Raw,
    node: &str,
    code: &str,
    sub_code: &str,
    signed: Option<SignType>,
) -> String {
    assert_eq!(raw.status, 200);
    let node_map = match signed {
        Some(sign_type) => {
            let method = if node == "error_response" {
                "x.y"
            } else {
                BATCH_QUERY
            };
            let answer = verify_response(
                &raw.body,
                method,
                Charset::Utf8,
                &app.platform_public,
                sign_type,
            )
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw.body)));
            assert_eq!(answer.node_name, node);
            answer.node
        }
        None => {
            let (name, map, has_sign) = parse_unsigned(&raw.body);
            assert_eq!(name, node);
            assert!(!has_sign, "{}", String::from_utf8_lossy(&raw.body));
            map
        }
    };
    assert_eq!(node_map["code"], code, "{node_map:?}");
    assert_eq!(node_map["sub_code"], sub_code, "{node_map:?}");
    let sub_msg = node_map["sub_msg"].as_str().unwrap().to_owned();
    assert!(!sub_msg.is_empty());
    sub_msg
}

/// The demo app's parameters with `name` replaced (or removed when `value` is None), signed.
fn variant(name: &str, value: Option<&str>) -> String {
    let pairs: Vec<(&str, String)> = common(VECTOR_BIZ)
        .into_iter()
        .filter_map(|(n, v)| {
            if n == name {
                value.map(|x| (n, x.to_owned()))
            } else {
                Some((n, v))
            }
        })
        .collect();
    signed_form(&pairs, SignType::Rsa2, Charset::Utf8, Empties::Drop)
}

fn without_sign(form: &str) -> String {
    form.split('&')
        .filter(|p| !p.starts_with("sign="))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn requests_without_a_usable_method_get_error_response() {
    let app = TestApp::spawn().await;
    let raw = app.call_raw("POST", "", None, "").await;
    expect(
        &app,
        &raw,
        "error_response",
        "40001",
        "isv.missing-method",
        None,
    );
    let raw = app
        .call_raw("POST", "", Some(FORM), variant("method", None))
        .await;
    expect(
        &app,
        &raw,
        "error_response",
        "40001",
        "isv.missing-method",
        Some(SignType::Rsa2),
    );
    let raw = app
        .call_raw(
            "POST",
            "",
            Some(FORM),
            variant("method", Some("alipay.trade.pay")),
        )
        .await;
    expect(
        &app,
        &raw,
        "error_response",
        "40002",
        "isv.invalid-method",
        Some(SignType::Rsa2),
    );
}

#[tokio::test]
async fn missing_public_parameters_get_40001_in_order() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw("POST", "", Some(FORM), variant("app_id", None))
        .await;
    expect(&app, &raw, BATCH_NODE, "40001", "isv.missing-app-id", None);
    for (name, sub_code) in [
        ("sign_type", "isv.missing-signature-type"),
        ("timestamp", "isv.missing-timestamp"),
        ("version", "isv.missing-version"),
    ] {
        let raw = app
            .call_raw("POST", "", Some(FORM), variant(name, None))
            .await;
        expect(
            &app,
            &raw,
            BATCH_NODE,
            "40001",
            sub_code,
            Some(SignType::Rsa2),
        );
    }
    let raw = app
        .call_raw("POST", "", Some(FORM), without_sign(&variant("x", None)))
        .await;
    expect(
        &app,
        &raw,
        BATCH_NODE,
        "40001",
        "isv.missing-signature",
        Some(SignType::Rsa2),
    );
}

#[tokio::test]
async fn unknown_malformed_and_offline_apps_get_invalid_app_id() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw(
            "POST",
            "",
            Some(FORM),
            variant("app_id", Some("2021999999999999")),
        )
        .await;
    expect(&app, &raw, BATCH_NODE, "40002", "isv.invalid-app-id", None);
    let raw = app
        .call_raw("POST", "", Some(FORM), variant("app_id", Some("app-one")))
        .await;
    expect(&app, &raw, BATCH_NODE, "40002", "isv.invalid-app-id", None);
    let raw = app
        .call_raw("POST", "", Some(FORM), variant("app_id", Some(APP_OFFLINE)))
        .await;
    let msg = expect(
        &app,
        &raw,
        BATCH_NODE,
        "40002",
        "isv.invalid-app-id",
        Some(SignType::Rsa2),
    );
    assert!(msg.contains("offline"));
}

#[tokio::test]
async fn sign_type_and_key_configuration_errors() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw("POST", "", Some(FORM), variant("sign_type", Some("SM2")))
        .await;
    expect(
        &app,
        &raw,
        BATCH_NODE,
        "40002",
        "isv.invalid-signature-type",
        Some(SignType::Rsa2),
    );
    let raw = app
        .call_raw("POST", "", Some(FORM), variant("app_id", Some(APP_NO_KEYS)))
        .await;
    expect(
        &app,
        &raw,
        BATCH_NODE,
        "40001",
        "isv.missing-signature-key",
        Some(SignType::Rsa2),
    );
    // The music app has only an RSA2 key; an RSA request is answered (signed with RSA).
    let pairs: Vec<(&str, String)> = common(VECTOR_BIZ)
        .into_iter()
        .map(|(n, v)| match n {
            "app_id" => (n, crate::helpers::APP_MUSIC.to_owned()),
            "sign_type" => (n, "RSA".to_owned()),
            _ => (n, v),
        })
        .collect();
    let raw = app
        .call_raw(
            "POST",
            "",
            Some(FORM),
            signed_form(&pairs, SignType::Rsa, Charset::Utf8, Empties::Drop),
        )
        .await;
    expect(
        &app,
        &raw,
        BATCH_NODE,
        "40002",
        "isv.missing-signature-config",
        Some(SignType::Rsa),
    );
}

#[tokio::test]
async fn a_signature_over_other_bytes_or_with_the_other_algorithm_is_invalid() {
    let app = TestApp::spawn().await;
    let tampered = variant("x", None).replace("GENERAL_WITHHOLDING_P", "GENERAL_WITHHOLDING_Q");
    let raw = app.call_raw("POST", "", Some(FORM), tampered).await;
    expect(
        &app,
        &raw,
        BATCH_NODE,
        "40002",
        "isv.invalid-signature",
        Some(SignType::Rsa2),
    );
    let rsa_signed_as_rsa2 = {
        let pairs = common(VECTOR_BIZ);
        signed_form(&pairs, SignType::Rsa, Charset::Utf8, Empties::Drop)
    };
    let raw = app
        .call_raw("POST", "", Some(FORM), rsa_signed_as_rsa2)
        .await;
    expect(
        &app,
        &raw,
        BATCH_NODE,
        "40002",
        "isv.invalid-signature",
        Some(SignType::Rsa2),
    );
    let garbage = format!(
        "{}&sign=%21%21not-base64",
        without_sign(&variant("x", None))
    );
    let raw = app.call_raw("POST", "", Some(FORM), garbage).await;
    expect(
        &app,
        &raw,
        BATCH_NODE,
        "40002",
        "isv.invalid-signature",
        Some(SignType::Rsa2),
    );
}

#[tokio::test]
async fn signed_parameters_are_checked_after_the_signature() {
    let app = TestApp::spawn().await;
    for (name, value, sub_code) in [
        ("timestamp", "2024-05-20T13:14:15", "isv.invalid-timestamp"),
        ("timestamp", "2024-05-20 12:14:15", "isv.invalid-timestamp"),
        ("version", "2.0", "isv.invalid-parameter"),
        ("format", "xml", "isv.invalid-format"),
        ("biz_content", "[1,2]", "isv.invalid-parameter"),
        (
            "biz_content",
            "{\"personal_product_code\":",
            "isv.invalid-parameter",
        ),
    ] {
        let raw = app
            .call_raw("POST", "", Some(FORM), variant(name, Some(value)))
            .await;
        expect(
            &app,
            &raw,
            BATCH_NODE,
            "40002",
            sub_code,
            Some(SignType::Rsa2),
        );
    }
    let raw = app
        .call_raw("POST", "", Some(FORM), variant("biz_content", None))
        .await;
    let msg = expect(
        &app,
        &raw,
        BATCH_NODE,
        "40002",
        "isv.invalid-parameter",
        Some(SignType::Rsa2),
    );
    assert!(msg.contains("biz_content"));
    // A client in another time zone sends its local time: the message says what to fix.
    let raw = app
        .call_raw(
            "POST",
            "",
            Some(FORM),
            variant("timestamp", Some("2024-05-20 05:14:15")),
        )
        .await;
    let msg = expect(
        &app,
        &raw,
        BATCH_NODE,
        "40002",
        "isv.invalid-timestamp",
        Some(SignType::Rsa2),
    );
    assert!(msg.contains("UTC+8"), "{msg}");
}

#[tokio::test]
async fn encryption_tokens_and_grants_are_enforced() {
    let app = TestApp::spawn().await;
    let mut pairs = common(VECTOR_BIZ);
    pairs.push(("encrypt_type", "AES".to_owned()));
    let raw = app
        .call_raw(
            "POST",
            "",
            Some(FORM),
            signed_form(&pairs, SignType::Rsa2, Charset::Utf8, Empties::Drop),
        )
        .await;
    expect(
        &app,
        &raw,
        BATCH_NODE,
        "40002",
        "isv.decryption-error-not-valid-encrypt-key",
        Some(SignType::Rsa2),
    );

    let mut pairs = common(VECTOR_BIZ);
    pairs.push((
        "app_auth_token",
        "202405BB0123456789abcdefghijklmnopq".to_owned(),
    ));
    let raw = app
        .call_raw(
            "POST",
            "",
            Some(FORM),
            signed_form(&pairs, SignType::Rsa2, Charset::Utf8, Empties::Drop),
        )
        .await;
    expect(
        &app,
        &raw,
        BATCH_NODE,
        "20001",
        "aop.invalid-app-auth-token",
        Some(SignType::Rsa2),
    );

    let raw = app
        .call_raw(
            "POST",
            "",
            Some(FORM),
            variant("app_id", Some(APP_NO_GRANTS)),
        )
        .await;
    expect(
        &app,
        &raw,
        BATCH_NODE,
        "40006",
        "isv.insufficient-isv-permissions",
        Some(SignType::Rsa2),
    );
}

struct Broken {
    what: &'static str,
    query: &'static str,
    content_type: Option<&'static str>,
    body: &'static [u8],
    node: &'static str,
    sub_code: &'static str,
    /// Signed (with RSA2) when the app can be known from the input.
    signed: bool,
    /// The sub_msg names this.
    names: &'static str,
}

#[tokio::test]
async fn broken_encodings_get_exact_answers() {
    let app = TestApp::spawn().await;
    let cases = [
        Broken {
            what: "unknown charset",
            query: "charset=big5&app_id=2021000000000001&method=alipay.user.agreement.batch.query",
            content_type: Some(FORM),
            body: b"",
            node: BATCH_NODE,
            sub_code: "isv.invalid-charset",
            signed: true,
            names: "unsupported charset",
        },
        Broken {
            what: "a Content-Type charset contradicting the signed charset parameter",
            query: "charset=utf-8&app_id=2021000000000001&method=alipay.user.agreement.batch.query",
            content_type: Some("application/x-www-form-urlencoded; charset=GBK"),
            body: b"",
            node: BATCH_NODE,
            sub_code: "isv.invalid-charset",
            signed: true,
            names: "contradicts the charset parameter",
        },
        Broken {
            what: "bytes that are not UTF-8",
            query: KNOWN,
            content_type: Some(FORM),
            body: b"biz_content=%FF%FE",
            node: BATCH_NODE,
            sub_code: "isv.invalid-charset",
            signed: true,
            names: "utf-8",
        },
        Broken {
            what: "a truncated percent escape",
            query: KNOWN,
            content_type: Some(FORM),
            body: b"biz_content=%7B%2",
            node: BATCH_NODE,
            sub_code: "isv.invalid-parameter",
            signed: true,
            names: "percent-encode",
        },
        Broken {
            what: "garbage",
            query: "",
            content_type: None,
            body: &[0xff, 0x00, 0x80, b'=', 0xc3],
            node: "error_response",
            sub_code: "isv.invalid-charset",
            signed: false,
            names: "utf-8",
        },
        Broken {
            what: "a truncated multipart body",
            query: "app_id=2021000000000001",
            content_type: Some("multipart/form-data; boundary=B"),
            body: b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
            node: "error_response",
            sub_code: "isv.invalid-parameter",
            signed: true,
            names: "multipart",
        },
    ];
    for case in cases {
        let raw = app
            .call_raw("POST", case.query, case.content_type, case.body.to_vec())
            .await;
        let msg = expect(
            &app,
            &raw,
            case.node,
            "40002",
            case.sub_code,
            case.signed.then_some(SignType::Rsa2),
        );
        assert!(msg.contains(case.names), "{}: {msg}", case.what);
    }
}

/// Junk that names a real app is answered signed, but from a few constant bodies (their
/// messages never echo the junk), so after the first of each kind no RSA signature is made.
#[tokio::test]
async fn junk_naming_a_real_app_costs_no_fresh_signature() {
    let app = TestApp::spawn().await;
    let good = variant("format", Some("JSON"));
    let unsigned = without_sign(&good);
    let before = app.gateway.signatures_made();
    let mut bodies = std::collections::BTreeSet::new();
    for i in 0..40 {
        let junk = [
            // A well-formed request whose signature is wrong, differently each time.
            (
                String::new(),
                format!("{unsigned}&sign={}", format!("{i:0>4}").repeat(86)),
                "isv.invalid-signature",
            ),
            // An unsupported charset, and a broken escape in a parameter's name, spelled anew.
            (
                format!("charset=x{i}&{KNOWN}"),
                String::new(),
                "isv.invalid-charset",
            ),
            (
                KNOWN.to_owned(),
                format!("p{i}%zz=1"),
                "isv.invalid-parameter",
            ),
        ];
        for (query, body, sub_code) in junk {
            let raw = app.call_raw("POST", &query, Some(FORM), body).await;
            let signed = Some(SignType::Rsa2);
            expect(&app, &raw, BATCH_NODE, "40002", sub_code, signed);
            bodies.insert(raw.body);
        }
    }
    assert_eq!(bodies.len(), 3, "one body for each kind of junk");
    assert_eq!(app.gateway.signatures_made() - before, 3);
    // An authenticated request is signed afresh.
    let raw = app.call_raw("POST", "", Some(FORM), good).await;
    assert_eq!(raw.status, 200);
    assert_eq!(app.gateway.signatures_made() - before, 4);
}

#[tokio::test]
async fn oversized_requests_are_refused_without_reading_them() {
    let app = TestApp::spawn().await;
    let big = format!("biz_content={}", "a".repeat(crate::helpers::MAX_BODY + 1));
    let raw = app
        .call_raw(
            "POST",
            "app_id=2021000000000001&method=alipay.user.agreement.batch.query",
            Some(FORM),
            big,
        )
        .await;
    let msg = expect(
        &app,
        &raw,
        BATCH_NODE,
        "40002",
        "isv.invalid-parameter",
        Some(SignType::Rsa2),
    );
    assert!(msg.contains("larger than"), "{msg}");
    // Too many parameters.
    let many: String = (0..100).map(|i| format!("p{i}=1&")).collect();
    let raw = app
        .call_raw("POST", "app_id=2021000000000001", Some(FORM), many)
        .await;
    expect(
        &app,
        &raw,
        "error_response",
        "40002",
        "isv.invalid-parameter",
        Some(SignType::Rsa2),
    );
}
