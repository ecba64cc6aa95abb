//! `alipay.user.agreement.query`: the three locators, visibility, and every business answer.

use base64::Engine as _;

use crate::helpers::{APP_MUSIC, TestApp, fixture_json};

const QUERY: &str = "alipay.user.agreement.query";

fn business(answer: &agreements_client::Answer) -> &str {
    assert_eq!(answer.code(), "40004", "{:?}", answer.node);
    answer.sub_code().unwrap()
}

#[tokio::test]
async fn sdk_query_requests_get_the_vector_responses_byte_for_byte_in_utf8_and_gbk() {
    let app = TestApp::spawn().await;
    let vectors = fixture_json("response-vectors.json");
    for index in [2, 3] {
        let vector = &vectors["vectors"][index];
        let request = &vector["request_that_produced_it"];
        let charset = vector["charset"].as_str().unwrap();
        let content_type = format!("application/x-www-form-urlencoded;charset={charset}");
        let raw = app
            .call_raw(
                "POST",
                request["query_string"].as_str().unwrap(),
                Some(&content_type),
                request["body"].as_str().unwrap(),
            )
            .await;
        let expected = base64::engine::general_purpose::STANDARD
            .decode(vector["response_body_bytes_b64"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw.body, expected, "{}", vector["id"]);
        assert_eq!(
            raw.content_type,
            vector["http_content_type"].as_str().unwrap()
        );
    }
}

#[tokio::test]
async fn query_by_agreement_no_returns_the_stored_fields_with_a_masked_logon_id() {
    let app = TestApp::spawn().await;
    let answer = app
        .call(QUERY, r#"{"agreement_no":"20245920000000000001"}"#)
        .await;
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    let node = &answer.node;
    assert_eq!(node["agreement_no"], "20245920000000000001");
    assert_eq!(node["alipay_logon_id"], "138****5678");
    assert_eq!(node["pricipal_type"], "CARD");
    assert_eq!(node["principal_id"], "2088101122675263");
    assert_eq!(node["sign_scene"], "INDUSTRY|DIGITAL_MEDIA");
    assert_eq!(node["status"], "NORMAL");
    assert_eq!(node["valid_time"], "2024-05-01 10:00:00");
    assert_eq!(node["invalid_time"], "2115-02-01 00:00:00");
    // Fields the store does not hold are omitted, never invented.
    for absent in [
        "external_agreement_no",
        "single_quota",
        "zm_open_id",
        "device_id",
        "next_deduct_time",
        "sub_code",
    ] {
        assert!(node.get(absent).is_none(), "{absent}");
    }
}

#[tokio::test]
async fn query_by_external_number_needs_its_scene() {
    let app = TestApp::spawn().await;
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"INDUSTRY|CARRENTAL","external_agreement_no":"RENT20231120A"}"#;
    let answer = app.call(QUERY, biz).await;
    assert_eq!(
        answer.node["agreement_no"], "20231120000000000002",
        "{:?}",
        answer.node
    );
    assert_eq!(answer.node["external_agreement_no"], "RENT20231120A");
    assert_eq!(answer.node["external_logon_id"], "member-0001");
    let other_scene = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"INDUSTRY|MEDICAL","external_agreement_no":"RENT20231120A"}"#;
    assert_eq!(
        business(&app.call(QUERY, other_scene).await),
        "USER_AGREEMENT_NOT_EXIST"
    );
    let default_scene = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"DEFAULT|DEFAULT","external_agreement_no":"RENT20231120A"}"#;
    assert_eq!(
        business(&app.call(QUERY, default_scene).await),
        "INVALID_PARAMETER"
    );
}

#[tokio::test]
async fn query_by_user_uses_the_default_scene_unless_given() {
    let app = TestApp::spawn().await;
    let default =
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_logon_id":"abx@alitest.com"}"#;
    assert_eq!(
        app.call(QUERY, default).await.node["agreement_no"],
        "20240102000000000003"
    );
    let scene = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","sign_scene":"INDUSTRY|DIGITAL_MEDIA"}"#;
    assert_eq!(
        app.call(QUERY, scene).await.node["agreement_no"],
        "20245920000000000001"
    );
    let unknown =
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088999999999999"}"#;
    assert_eq!(
        business(&app.call(QUERY, unknown).await),
        "USER_NOT_EXIST_ERROR"
    );
}

#[tokio::test]
async fn query_never_answers_with_an_agreement_outside_the_callers_view() {
    let app = TestApp::spawn().await;
    for no in [
        "20240301000000000008", // another merchant's
        "20210101000000000006", // cancelled
        "20180101000000000007", // expired
        "20220815000000000005", // a group agreement, asked as PARTNER
        "29990101000000000000", // no such agreement
    ] {
        let answer = app
            .call(QUERY, &format!(r#"{{"agreement_no":"{no}"}}"#))
            .await;
        assert_eq!(business(&answer), "USER_AGREEMENT_NOT_EXIST", "{no}");
        assert_eq!(answer.node["sub_msg"], "用户协议不存在");
    }
    let group = r#"{"agreement_no":"20220815000000000005","third_party_type":"MERCHANT"}"#;
    assert_eq!(
        app.call(QUERY, group).await.node["agreement_no"],
        "20220815000000000005"
    );
    // The sister merchant sees the group agreement but not the video merchant's own.
    assert_eq!(
        app.call_as(APP_MUSIC, QUERY, group).await.node["agreement_no"],
        "20220815000000000005"
    );
    let own = r#"{"agreement_no":"20245920000000000001"}"#;
    assert_eq!(
        business(&app.call_as(APP_MUSIC, QUERY, own).await),
        "USER_AGREEMENT_NOT_EXIST"
    );
}

#[tokio::test]
async fn query_checks_products_and_contracts() {
    let app = TestApp::spawn().await;
    let unknown = r#"{"personal_product_code":"NOPE_P","alipay_user_id":"2088101122675263"}"#;
    assert_eq!(
        business(&app.call(QUERY, unknown).await),
        "PRODUCT_CODE_NOT_SUPPORTED_ERROR"
    );
    let no_contract =
        r#"{"personal_product_code":"CYCLE_PAY_AUTH_P","alipay_user_id":"2088101122675263"}"#;
    assert_eq!(
        business(&app.call_as(APP_MUSIC, QUERY, no_contract).await),
        "MERCHANT_AGREEMENT_IS_NOT_EXIST"
    );
}

#[tokio::test]
async fn query_without_a_usable_locator_is_invalid_parameter() {
    let app = TestApp::spawn().await;
    for biz in [
        r#"{}"#,
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P"}"#,
        r#"{"alipay_user_id":"2088101122675263"}"#,
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","external_agreement_no":"RENT20231120A"}"#,
        r#"{"agreement_no":{"no":1}}"#,
        r#"{"agreement_no":"20245920000000000001","third_party_type":"GROUP"}"#,
    ] {
        let answer = app.call(QUERY, biz).await;
        assert_eq!(business(&answer), "INVALID_PARAMETER", "{biz}");
        assert!(
            answer.node["sub_msg"]
                .as_str()
                .unwrap()
                .starts_with("参数有误")
        );
    }
}
