//! How clients other than the Python SDK send requests: GET, multipart, duplicates, empty values.

use agreements_client::verify_response;
use agreements_protocol::sign_content::Empties;
use agreements_protocol::{Charset, SignType};

use crate::helpers::{BATCH_QUERY, TestApp, VECTOR_BIZ, common, signed_form};

fn success(app: &TestApp, body: &[u8]) {
    let answer = verify_response(
        body,
        BATCH_QUERY,
        Charset::Utf8,
        &app.platform_public,
        SignType::Rsa2,
    )
    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    assert_eq!(
        answer.node["usage_agreement_info_list"][0]["agreement_no"],
        "20245920000000000001"
    );
}

fn signed(extra: &[(&str, &str)], empties: Empties) -> String {
    let mut pairs = common(VECTOR_BIZ);
    pairs.extend(extra.iter().map(|(n, v)| (*n, (*v).to_owned())));
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
    signed_form(&refs, SignType::Rsa2, Charset::Utf8, empties)
}

#[tokio::test]
async fn get_with_everything_in_the_query_string_works() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw("GET", &signed(&[], Empties::Drop), None, "")
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn everything_in_the_body_without_content_type_works() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw("POST", "", None, signed(&[], Empties::Drop))
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn duplicate_parameters_in_query_and_body_are_tolerated() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw(
            "POST",
            "charset=utf-8",
            Some("application/x-www-form-urlencoded"),
            signed(&[], Empties::Drop),
        )
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn empty_values_signed_python_style_are_accepted() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw(
            "POST",
            "",
            None,
            signed(&[("notify_url", "")], Empties::Keep),
        )
        .await;
    success(&app, &raw.body);
    let raw = app
        .call_raw(
            "POST",
            "",
            None,
            signed(&[("notify_url", "")], Empties::Drop),
        )
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn extra_sdk_parameters_are_signed_content() {
    let app = TestApp::spawn().await;
    let raw = app
        .call_raw(
            "POST",
            "",
            None,
            signed(
                &[("alipay_sdk", "alipay-sdk-java-4.38"), ("prod_code", "X")],
                Empties::Drop,
            ),
        )
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn multipart_text_parts_are_parameters() {
    let app = TestApp::spawn().await;
    let form = signed(&[], Empties::Drop);
    let mut body = Vec::new();
    for pair in form.split('&') {
        let (name, value) = pair.split_once('=').unwrap();
        let value = agreements_protocol::form::percent_decode(value.as_bytes()).unwrap();
        body.extend_from_slice(
            format!("\r\n--XB\r\nContent-Disposition:form-data;name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&value);
    }
    body.extend_from_slice(b"\r\n--XB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n\x00\x01\r\n--XB--\r\n");
    let raw = app
        .call_raw(
            "POST",
            "",
            Some("multipart/form-data;boundary=XB;charset=utf-8"),
            body,
        )
        .await;
    success(&app, &raw.body);
}

#[tokio::test]
async fn healthz_reports_the_store() {
    let app = TestApp::spawn().await;
    let url = app.url.replace("/gateway.do", "/healthz");
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok\n");
}

#[tokio::test]
async fn a_gbk_client_gets_a_gbk_answer_it_can_verify() {
    let app = TestApp::spawn().await;
    let client = app.client(agreements_store::demo::APP_ID, SignType::Rsa2, Charset::Gbk);
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_logon_id":"无此用户@alitest.com"}"#;
    let request = client
        .sign(BATCH_QUERY, biz, crate::helpers::VECTOR_TIME, &[])
        .unwrap();
    let (_, body) = client.send(&request).await.unwrap();
    let answer = verify_response(
        &body,
        BATCH_QUERY,
        Charset::Gbk,
        &app.platform_public,
        SignType::Rsa2,
    )
    .unwrap();
    assert_eq!(answer.sub_code(), Some("USER_NOT_EXIST_ERROR"));
    assert_eq!(answer.node["sub_msg"], "用户信息不存在");
}
