//! The official SDK's own requests, sent as it put them on the wire, answered with the exact
//! response bytes of the vectors.

use base64::Engine as _;

use crate::helpers::{TestApp, fixture_json};

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap()
}

fn response_vector(id: &str) -> (Vec<u8>, String) {
    let vectors = fixture_json("response-vectors.json");
    let vector = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| s(&v["id"]) == id)
        .unwrap()
        .clone();
    let body = base64::engine::general_purpose::STANDARD
        .decode(s(&vector["response_body_bytes_b64"]))
        .unwrap();
    (body, s(&vector["http_content_type"]).to_owned())
}

fn request_wire(vector: usize, variant: usize) -> serde_json::Value {
    fixture_json("request-vectors.json")["vectors"][vector]["variants"][variant]["wire"].clone()
}

#[tokio::test]
async fn sdk_batch_query_requests_get_the_vector_responses_byte_for_byte() {
    let app = TestApp::spawn().await;
    for (variant, response) in [
        (0, "resp-1-batch-query-success-utf8-rsa2"),
        (1, "resp-2-batch-query-success-utf8-rsa"),
    ] {
        let wire = request_wire(0, variant);
        let raw = app
            .call_raw(
                "POST",
                s(&wire["query_string"]),
                Some(s(&wire["content_type"])),
                s(&wire["body"]),
            )
            .await;
        let (body, content_type) = response_vector(response);
        assert_eq!(raw.status, 200);
        assert_eq!(
            String::from_utf8_lossy(&raw.body),
            String::from_utf8_lossy(&body),
            "{response}"
        );
        assert_eq!(raw.body, body, "{response}");
        assert_eq!(raw.content_type, content_type);
    }
}

#[tokio::test]
async fn a_request_signed_over_other_bytes_gets_the_signed_invalid_signature_vector() {
    let app = TestApp::spawn().await;
    let wire = request_wire(0, 0);
    let body = s(&wire["body"]).replace("DIGITAL_MEDIA", "DIGITAL_MEDIB");
    let raw = app
        .call_raw(
            "POST",
            s(&wire["query_string"]),
            Some(s(&wire["content_type"])),
            body,
        )
        .await;
    assert_eq!(raw.body, response_vector("resp-5-gateway-error-signed").0);
}

#[tokio::test]
async fn an_unknown_method_gets_the_signed_error_response_vector() {
    let app = TestApp::spawn().await;
    // The SDK's page.sign request, renamed to a method this gateway does not serve (the method
    // is checked before the signature).
    let wire = request_wire(1, 0);
    let rename = |text: &str| text.replace("page.sign", "page.nosuch");
    let raw = app
        .call_raw(
            "POST",
            &rename(s(&wire["query_string"])),
            Some(s(&wire["content_type"])),
            rename(s(&wire["body"])),
        )
        .await;
    assert_eq!(raw.body, response_vector("resp-6-error-response-node").0);
}

#[tokio::test]
async fn a_gbk_request_is_answered_in_gbk_and_signed_over_the_gbk_bytes() {
    let app = TestApp::spawn().await;
    let wire = request_wire(2, 0);
    let rename = |text: &str| text.replace("page.sign", "page.nosuch");
    let raw = app
        .call_raw(
            "POST",
            &rename(s(&wire["query_string"])),
            Some(s(&wire["content_type"])),
            rename(s(&wire["body"])),
        )
        .await;
    assert_eq!(raw.content_type, "application/json;charset=GBK");
    let answer = agreements_client::verify_response(
        &raw.body,
        "alipay.user.agreement.page.nosuch",
        agreements_protocol::Charset::Gbk,
        &app.platform_public,
        agreements_protocol::SignType::Rsa2,
    )
    .unwrap();
    assert_eq!(answer.node_name, "error_response");
    assert_eq!(answer.sub_code(), Some("isv.invalid-method"));
    assert_eq!(answer.node["sub_msg"], "不存在的方法名");
    assert!(
        String::from_utf8(raw.body).is_err(),
        "the body must be GBK, not UTF-8"
    );
}
