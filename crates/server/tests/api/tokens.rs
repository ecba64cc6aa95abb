//! ISV authorisations: an ISV's app acting for the merchant that granted an `app_auth_token`.

use agreements_store::demo;

use crate::helpers::{
    APP_ISV, BATCH_QUERY, TOKEN_EXPIRED, TOKEN_NO_API, TOKEN_REVOKED, TOKEN_VIDEO, TestApp,
};

const PERSON: &str =
    r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263"}"#;

fn numbers(answer: &agreements_client::Answer) -> Vec<&str> {
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    answer.node["usage_agreement_info_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["agreement_no"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn an_isv_with_a_token_sees_what_the_granting_merchant_sees() {
    let app = TestApp::spawn().await;
    let with_token = app.call_as_isv(BATCH_QUERY, PERSON, TOKEN_VIDEO).await;
    let as_owner = app.call(BATCH_QUERY, PERSON).await;
    assert_eq!(numbers(&with_token), numbers(&as_owner));
    assert_eq!(numbers(&with_token).len(), 3);
    // Group sharing follows the granting merchant's group.
    let group = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","third_party_type":"MERCHANT"}"#;
    let shared = app.call_as_isv(BATCH_QUERY, group, TOKEN_VIDEO).await;
    assert_eq!(numbers(&shared), ["20220815000000000005"]);
}

#[tokio::test]
async fn without_a_token_the_isv_app_acts_for_its_own_merchant() {
    let app = TestApp::spawn().await;
    let own = app.call_as(APP_ISV, BATCH_QUERY, PERSON).await;
    assert_eq!(numbers(&own), ["20240301000000000008"]);
}

#[tokio::test]
async fn bad_tokens_get_their_20001_sub_codes() {
    let app = TestApp::spawn().await;
    for (app_id, token, sub_code) in [
        (
            APP_ISV,
            "202405BBunknown00000000000000000000001",
            "aop.invalid-app-auth-token",
        ),
        (APP_ISV, TOKEN_REVOKED, "aop.invalid-app-auth-token"),
        (demo::APP_ID, TOKEN_VIDEO, "aop.invalid-app-auth-token"),
        (APP_ISV, TOKEN_EXPIRED, "aop.app-auth-token-time-out"),
        (APP_ISV, TOKEN_NO_API, "aop.invalid-app-auth-token-no-api"),
        (APP_ISV, "x", "aop.invalid-app-auth-token"),
        (APP_ISV, &"t".repeat(41), "aop.invalid-app-auth-token"),
    ] {
        let answer = app
            .try_call_with(app_id, BATCH_QUERY, PERSON, &[("app_auth_token", token)])
            .await
            .unwrap();
        assert_eq!(answer.code(), "20001", "{token}");
        assert_eq!(answer.node["msg"], "Insufficient Token Permissions");
        assert_eq!(answer.sub_code(), Some(sub_code), "{token}");
    }
}

#[tokio::test]
async fn open_ids_are_resolved_in_the_isv_apps_namespace() {
    let app = TestApp::spawn().await;
    // The open id belongs to the demo app's namespace, not the ISV's.
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_open_id":"074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"}"#;
    let answer = app.call_as_isv(BATCH_QUERY, biz, TOKEN_VIDEO).await;
    assert_eq!(answer.sub_code(), Some("USER_NOT_EXIST_ERROR"));
}
