//! `alipay.user.agreement.batch.query`: every business answer of the seed, through the real
//! server, signatures verified.

use agreements_store::demo;

use crate::helpers::{APP_MUSIC, APP_TELECOM, BATCH_QUERY, TestApp};

pub fn numbers(answer: &agreements_client::Answer) -> Vec<String> {
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    assert_eq!(answer.sub_code(), None);
    answer.node["usage_agreement_info_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["agreement_no"].as_str().unwrap().to_owned())
        .collect()
}

fn business(answer: &agreements_client::Answer) -> (&str, &str) {
    assert_eq!(answer.code(), "40004", "{:?}", answer.node);
    assert_eq!(answer.node["msg"], "Business Failed");
    (
        answer.sub_code().unwrap(),
        answer.node["sub_msg"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn batch_query_returns_card_and_customer_agreements_of_the_person_in_sign_time_order() {
    let app = TestApp::spawn().await;
    let answer = app.call(BATCH_QUERY, r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263"}"#).await;
    assert_eq!(
        numbers(&answer),
        [
            "20231120000000000002",
            "20240102000000000003",
            "20245920000000000001"
        ]
    );
    let item = &answer.node["usage_agreement_info_list"][0];
    assert_eq!(item["pricipal_type"], "CUSTOMER");
    assert_eq!(item["status"], "STOP");
    assert_eq!(item["sign_time"], "2023-11-20 08:30:00");
    assert!(item.get("principal_type").is_none());
}

#[tokio::test]
async fn batch_query_resolves_logon_ids_in_any_case_and_mobile_form() {
    let app = TestApp::spawn().await;
    for logon in ["ABX@AliTest.com", "+86 138 1234 5678", "13812345678"] {
        let biz = format!(
            r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_logon_id":"{logon}","sign_scene":"INDUSTRY|DIGITAL_MEDIA"}}"#
        );
        assert_eq!(
            numbers(&app.call(BATCH_QUERY, &biz).await),
            ["20245920000000000001"],
            "{logon}"
        );
    }
}

#[tokio::test]
async fn batch_query_user_id_wins_over_logon_id() {
    let app = TestApp::spawn().await;
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088202233445566","alipay_logon_id":"abx@alitest.com"}"#;
    assert_eq!(
        numbers(&app.call(BATCH_QUERY, biz).await),
        ["20240201000000000010"]
    );
}

#[tokio::test]
async fn batch_query_by_open_id_reports_the_principal_open_id() {
    let app = TestApp::spawn().await;
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_open_id":"074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"}"#;
    let answer = app.call(BATCH_QUERY, biz).await;
    assert_eq!(numbers(&answer), ["20240201000000000010"]);
    assert_eq!(
        answer.node["usage_agreement_info_list"][0]["principal_open_id"],
        "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"
    );
}

#[tokio::test]
async fn batch_query_for_a_second_account_does_not_return_the_primary_accounts_cards() {
    let app = TestApp::spawn().await;
    let biz =
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675264"}"#;
    assert_eq!(
        numbers(&app.call(BATCH_QUERY, biz).await),
        ["20230301000000000004", "20231120000000000002"]
    );
}

#[tokio::test]
async fn batch_query_merchant_type_shares_agreements_within_the_group_only() {
    let app = TestApp::spawn().await;
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","third_party_type":"MERCHANT"}"#;
    assert_eq!(
        numbers(&app.call(BATCH_QUERY, biz).await),
        ["20220815000000000005"]
    );
    // The sister merchant sees the same group agreement, and none of the video merchant's own.
    assert_eq!(
        numbers(&app.call_as(APP_MUSIC, BATCH_QUERY, biz).await),
        ["20220815000000000005"]
    );
    let partner =
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263"}"#;
    assert!(numbers(&app.call_as(APP_MUSIC, BATCH_QUERY, partner).await).is_empty());
}

#[tokio::test]
async fn batch_query_returns_an_empty_list_when_nothing_matches() {
    let app = TestApp::spawn().await;
    let biz = r#"{"personal_product_code":"CYCLE_PAY_AUTH_P","alipay_user_id":"2088202233445566"}"#;
    let answer = app.call(BATCH_QUERY, biz).await;
    assert!(numbers(&answer).is_empty());
    assert!(answer.node["usage_agreement_info_list"].is_array());
}

#[tokio::test]
async fn batch_query_filters_by_product_code_and_scene() {
    let app = TestApp::spawn().await;
    let biz = r#"{"personal_product_code":"CYCLE_PAY_AUTH_P","product_code":"CYCLE_PAY_AUTH","alipay_user_id":"2088101122675263"}"#;
    assert_eq!(
        numbers(&app.call(BATCH_QUERY, biz).await),
        ["20240401000000000009"]
    );
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","sign_scene":"INDUSTRY|GAME"}"#;
    assert!(
        numbers(&app.call(BATCH_QUERY, biz).await).is_empty(),
        "unsigned and expired agreements are absent"
    );
}

#[tokio::test]
async fn batch_query_returns_invalid_parameter_naming_the_field() {
    let app = TestApp::spawn().await;
    for (biz, field) in [
        (
            r#"{"alipay_user_id":"2088101122675263"}"#,
            "personal_product_code",
        ),
        (
            r#"{"personal_product_code":"GENERAL_WITHHOLDING_P"}"#,
            "alipay_user_id",
        ),
        (
            r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"12345"}"#,
            "alipay_user_id",
        ),
        (
            r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":["2088101122675263"]}"#,
            "alipay_user_id",
        ),
        (
            r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_logon_id":"not-a-logon"}"#,
            "alipay_logon_id",
        ),
        (
            r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","third_party_type":"ISV"}"#,
            "third_party_type",
        ),
        (
            r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","sign_scene":17.5}"#,
            "sign_scene",
        ),
    ] {
        let answer = app.call(BATCH_QUERY, biz).await;
        let (sub_code, sub_msg) = business(&answer);
        assert_eq!(sub_code, "INVALID_PARAMETER", "{biz}");
        assert!(
            sub_msg.starts_with("参数有误") && sub_msg.contains(field),
            "{biz}: {sub_msg}"
        );
    }
}

#[tokio::test]
async fn batch_query_merchant_type_without_a_group_is_invalid_parameter() {
    let app = TestApp::spawn().await;
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","third_party_type":"MERCHANT"}"#;
    assert_eq!(
        business(&app.call_as(APP_TELECOM, BATCH_QUERY, biz).await).0,
        "INVALID_PARAMETER"
    );
}

#[tokio::test]
async fn batch_query_returns_product_code_not_supported_for_unknown_or_unpaired_products() {
    let app = TestApp::spawn().await;
    for biz in [
        r#"{"personal_product_code":"NO_SUCH_PRODUCT_P","alipay_user_id":"2088101122675263"}"#,
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","product_code":"CYCLE_PAY_AUTH","alipay_user_id":"2088101122675263"}"#,
    ] {
        assert_eq!(
            business(&app.call(BATCH_QUERY, biz).await).0,
            "PRODUCT_CODE_NOT_SUPPORTED_ERROR",
            "{biz}"
        );
    }
}

#[tokio::test]
async fn batch_query_returns_merchant_agreement_is_not_exist_without_an_active_contract() {
    let app = TestApp::spawn().await;
    let biz = r#"{"personal_product_code":"CYCLE_PAY_AUTH_P","alipay_user_id":"2088101122675263"}"#;
    assert_eq!(
        business(&app.call_as(APP_MUSIC, BATCH_QUERY, biz).await).0,
        "MERCHANT_AGREEMENT_IS_NOT_EXIST"
    );
    // The contracts end in 2099: at 2100 the demo app has none.
    app.clock
        .set(agreements_protocol::timestamp::parse_beijing("2100-01-01 00:00:00").unwrap());
    let biz =
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263"}"#;
    let client = app.client(
        demo::APP_ID,
        agreements_protocol::SignType::Rsa2,
        agreements_protocol::Charset::Utf8,
    );
    let request = client
        .sign(BATCH_QUERY, biz, "2100-01-01 00:00:00", &[])
        .unwrap();
    let (_, body) = client.send(&request).await.unwrap();
    let answer = agreements_client::verify_response(
        &body,
        BATCH_QUERY,
        agreements_protocol::Charset::Utf8,
        &app.platform_public,
        agreements_protocol::SignType::Rsa2,
    )
    .unwrap();
    assert_eq!(business(&answer).0, "MERCHANT_AGREEMENT_IS_NOT_EXIST");
}

#[tokio::test]
async fn batch_query_returns_user_not_exist_for_unknown_users() {
    let app = TestApp::spawn().await;
    for biz in [
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088999999999999"}"#,
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_logon_id":"nobody@alitest.com"}"#,
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_open_id":"unknown-open-id"}"#,
    ] {
        let answer = app.call(BATCH_QUERY, biz).await;
        assert_eq!(
            business(&answer),
            ("USER_NOT_EXIST_ERROR", "用户信息不存在"),
            "{biz}"
        );
    }
    // An open id is resolved in the calling app's namespace only.
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_open_id":"074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"}"#;
    assert_eq!(
        business(&app.call_as(APP_MUSIC, BATCH_QUERY, biz).await).0,
        "USER_NOT_EXIST_ERROR"
    );
}

#[tokio::test]
async fn batch_query_answers_isp_unknow_error_while_storage_fails_and_recovers_after() {
    let app = TestApp::spawn().await;
    let biz =
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263"}"#;
    assert_eq!(app.call(BATCH_QUERY, biz).await.code(), "10000");
    // PostgreSQL: the connection is really cut. SQLite has no connection to cut: the table goes.
    match &app.proxy {
        Some(proxy) => proxy.cut(),
        None => app
            .store
            .execute_for_tests("ALTER TABLE agreements RENAME TO agreements_away")
            .await
            .unwrap(),
    }
    let answer = app.call(BATCH_QUERY, biz).await;
    assert_eq!(answer.code(), "20000");
    assert_eq!(answer.node["msg"], "Service Currently Unavailable");
    assert_eq!(answer.sub_code(), Some("isp.unknow-error"));
    assert_eq!(answer.node["sub_msg"], "系统繁忙");
    match &app.proxy {
        Some(proxy) => proxy.restore(),
        None => app
            .store
            .execute_for_tests("ALTER TABLE agreements_away RENAME TO agreements")
            .await
            .unwrap(),
    }
    // Recovered, without a restart.
    assert_eq!(app.call(BATCH_QUERY, biz).await.code(), "10000");
}

#[tokio::test]
async fn batch_query_answers_system_error_for_inconsistent_stored_data() {
    let app = TestApp::spawn().await;
    app.store
        .execute_for_tests("UPDATE agreements SET sign_scene = 'BROKEN SCENE' WHERE agreement_no = '20245920000000000001'")
        .await
        .unwrap();
    let biz =
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263"}"#;
    assert_eq!(
        business(&app.call(BATCH_QUERY, biz).await),
        ("SYSTEM_ERROR", "系统繁忙")
    );
}
