//! `alipay.user.agreement.unsign`: agreements.md §7 — what it changes, what it records, what it
//! queues, and every refusal.

use agreements_domain::AgreementStatus;
use agreements_domain::ids::{AgreementNo, AppId, PartnerId};
use agreements_domain::token::{AppAuthToken, TokenStatus};
use agreements_store::{AgreementEvent, Notification, NotificationFilter, demo};

use crate::helpers::{APP_ISV, APP_MUSIC, APP_TELECOM, TOKEN_NO_API, TestApp};

pub const UNSIGN: &str = "alipay.user.agreement.unsign";
const QUERY: &str = "alipay.user.agreement.query";
const OWNER_URL: &str = "http://127.0.0.1:40001/owner";
const CALLER_URL: &str = "http://127.0.0.1:40002/caller";

fn sub_code(answer: &agreements_client::Answer) -> &str {
    answer.sub_code().unwrap_or("")
}

async fn history(app: &TestApp, no: &str) -> Vec<AgreementEvent> {
    app.store
        .history(&AgreementNo::parse(no).unwrap())
        .await
        .unwrap()
}

async fn notifications(app: &TestApp, no: &str) -> Vec<Notification> {
    app.store
        .notifications(&NotificationFilter {
            agreement_no: Some(&AgreementNo::parse(no).unwrap()),
            limit: 100,
            ..NotificationFilter::default()
        })
        .await
        .unwrap()
}

fn param<'a>(n: &'a Notification, name: &str) -> Option<&'a str> {
    n.params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn with_owner_address(app: &TestApp) {
    app.store
        .execute_for_tests(&format!(
            "UPDATE apps SET notify_url = '{OWNER_URL}' WHERE app_id = '{}'",
            demo::APP_ID
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn unsign_cancels_records_the_event_and_queues_both_notifications_in_one_go() {
    let app = TestApp::spawn().await;
    with_owner_address(&app).await;
    let no = "20245920000000000001";
    let biz = format!(
        r#"{{"agreement_no":"{no}","operate_type":"confirm","extend_params":"{{\"reason\":\"user asked\"}}"}}"#
    );
    let answer = app
        .try_call_with(demo::APP_ID, UNSIGN, &biz, &[("notify_url", CALLER_URL)])
        .await
        .unwrap();
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    assert_eq!(
        answer.node.len(),
        2,
        "common fields only: {:?}",
        answer.node
    );
    // Queries no longer return it.
    let gone = app
        .call(QUERY, &format!(r#"{{"agreement_no":"{no}"}}"#))
        .await;
    assert_eq!(sub_code(&gone), "USER_AGREEMENT_NOT_EXIST");
    let stored = app
        .store
        .agreement_by_no(
            &AgreementNo::parse(no).unwrap(),
            &AppId::parse(demo::APP_ID).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.agreement.status.as_str(), "UNSIGN");
    assert_eq!(stored.agreement.unsign_time, Some(app.clock_now()));
    // History: created, then cancelled by the app, with the reason.
    let events = history(&app, no).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].kind.as_str(), "CREATE");
    let e = &events[1];
    assert_eq!((e.seq, e.kind.as_str()), (2, "UNSIGN"));
    assert_eq!(e.old_status.map(AgreementStatus::as_str), Some("NORMAL"));
    assert_eq!(e.new_status.as_str(), "UNSIGN");
    assert_eq!(e.actor, format!("app {}", demo::APP_ID));
    assert_eq!(e.reason.as_deref(), Some(r#"{"reason":"user asked"}"#));
    assert_eq!(e.at, app.clock_now());
    // Two notifications: the signing app's address and the request's.
    let queued = notifications(&app, no).await;
    let mut urls: Vec<&str> = queued.iter().map(|n| n.url.as_str()).collect();
    urls.sort_unstable();
    assert_eq!(urls, [OWNER_URL, CALLER_URL]);
    for n in &queued {
        assert_eq!(n.state.as_str(), "PENDING");
        assert_eq!(n.attempts, 0);
        assert_eq!(n.next_attempt_at, app.clock_now());
        assert_eq!(n.notify_id.len(), 34);
        assert!(n.notify_id.starts_with("20240520"));
        assert_eq!(param(n, "notify_type"), Some("dut_user_unsign"));
        assert_eq!(param(n, "status"), Some("UNSIGN"));
        assert_eq!(param(n, "agreement_no"), Some(no));
        assert_eq!(param(n, "unsign_time"), Some("2024-05-20 13:14:15"));
        assert_eq!(param(n, "alipay_logon_id"), Some("138****5678"));
        assert_eq!(param(n, "app_id"), Some(demo::APP_ID));
        assert_eq!(param(n, "sign_time"), Some("2024-05-01 10:00:00"));
    }
    // A retry after a timeout: success again, nothing written twice.
    let again = app
        .try_call_with(demo::APP_ID, UNSIGN, &biz, &[("notify_url", CALLER_URL)])
        .await
        .unwrap();
    assert_eq!(again.code(), "10000", "{:?}", again.node);
    assert_eq!(history(&app, no).await.len(), 2);
    assert_eq!(notifications(&app, no).await.len(), 2);
}

#[tokio::test]
async fn temp_and_paused_agreements_are_cancelled_dead_and_foreign_ones_do_not_exist() {
    let app = TestApp::spawn().await;
    let unsign = |biz: String| {
        let app = &app;
        async move { app.call(UNSIGN, &biz).await }
    };
    // TEMP (stored, never effective) can be cancelled.
    let temp = unsign(r#"{"agreement_no":"20240102000000000003"}"#.into()).await;
    assert_eq!(temp.code(), "10000", "{:?}", temp.node);
    assert_eq!(
        history(&app, "20240102000000000003").await[1]
            .old_status
            .map(AgreementStatus::as_str),
        Some("TEMP")
    );
    // Cancelled before: success, no event, no notification.
    let old = unsign(r#"{"agreement_no":"20210101000000000006"}"#.into()).await;
    assert_eq!(old.code(), "10000");
    assert_eq!(history(&app, "20210101000000000006").await.len(), 1);
    // Expired: absent.
    let expired = unsign(r#"{"agreement_no":"20180101000000000007"}"#.into()).await;
    assert_eq!(sub_code(&expired), "USER_AGREEMENT_NOT_EXIST");
    // Another merchant's: absent, and untouched.
    let foreign = unsign(r#"{"agreement_no":"20240301000000000008"}"#.into()).await;
    assert_eq!(sub_code(&foreign), "USER_AGREEMENT_NOT_EXIST");
    assert_eq!(history(&app, "20240301000000000008").await.len(), 1);
    // No such number.
    let none = unsign(r#"{"agreement_no":"20990101000000000099"}"#.into()).await;
    assert_eq!(sub_code(&none), "USER_AGREEMENT_NOT_EXIST");
    // A merchant number that does not match the agreement's: absent; the right one: cancelled.
    let wrong = unsign(
        r#"{"agreement_no":"20231120000000000002","external_agreement_no":"RENT20231120B"}"#.into(),
    )
    .await;
    assert_eq!(sub_code(&wrong), "USER_AGREEMENT_NOT_EXIST");
    assert_eq!(history(&app, "20231120000000000002").await.len(), 1);
    let right = unsign(r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"INDUSTRY|CARRENTAL","external_agreement_no":"RENT20231120A"}"#.into()).await;
    assert_eq!(right.code(), "10000", "{:?}", right.node);
    assert_eq!(
        history(&app, "20231120000000000002").await[1]
            .old_status
            .map(AgreementStatus::as_str),
        Some("STOP")
    );
    // Parameter rules.
    let bad =
        unsign(r#"{"agreement_no":"20245920000000000001","operate_type":"remove"}"#.into()).await;
    assert_eq!(sub_code(&bad), "INVALID_PARAMETER");
    assert!(
        bad.node["sub_msg"]
            .as_str()
            .unwrap()
            .contains("operate_type")
    );
    let nothing = unsign(r#"{"personal_product_code":"GENERAL_WITHHOLDING_P"}"#.into()).await;
    assert_eq!(sub_code(&nothing), "INVALID_PARAMETER");
}

#[tokio::test]
async fn by_user_the_active_agreement_is_cancelled_and_a_retry_still_succeeds() {
    let app = TestApp::spawn().await;
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","sign_scene":"INDUSTRY|DIGITAL_MEDIA"}"#;
    assert_eq!(app.call(UNSIGN, biz).await.code(), "10000");
    assert_eq!(history(&app, "20245920000000000001").await.len(), 2);
    let retry = app.call(UNSIGN, biz).await;
    assert_eq!(retry.code(), "10000", "{:?}", retry.node);
    assert_eq!(history(&app, "20245920000000000001").await.len(), 2);
    let unknown = app
        .call(UNSIGN, r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088999999999999"}"#)
        .await;
    assert_eq!(sub_code(&unknown), "USER_NOT_EXIST_ERROR");
}

/// A retried unsign that names a user must not cancel one agreement per send: with two active
/// agreements in the scene it is refused and nothing changes, however often it is sent.
#[tokio::test]
async fn by_user_several_active_agreements_are_refused_and_retries_cancel_nothing() {
    let app = TestApp::spawn().await;
    let first = AgreementNo::parse("20245920000000000001").unwrap();
    let any_app = AppId::parse(demo::APP_ID).unwrap();
    let mut twin = app
        .store
        .agreement_by_no(&first, &any_app)
        .await
        .unwrap()
        .unwrap()
        .agreement;
    twin.agreement_no = AgreementNo::parse("20245921000000000011").unwrap();
    twin.sign_time += 60;
    app.store.add_agreement(&twin).await.unwrap();
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","sign_scene":"INDUSTRY|DIGITAL_MEDIA"}"#;
    for _ in 0..3 {
        let answer = app.call(UNSIGN, biz).await;
        assert_eq!(sub_code(&answer), "INVALID_PARAMETER", "{:?}", answer.node);
        assert!(
            answer.node["sub_msg"]
                .as_str()
                .unwrap()
                .contains("2 active agreements match"),
            "{:?}",
            answer.node
        );
    }
    for no in ["20245920000000000001", "20245921000000000011"] {
        assert_eq!(history(&app, no).await.len(), 1, "{no} was changed");
    }
    // Named by number, each is cancelled once.
    for no in ["20245920000000000001", "20245921000000000011"] {
        let biz = format!(r#"{{"agreement_no":"{no}"}}"#);
        assert_eq!(app.call(UNSIGN, &biz).await.code(), "10000");
        assert_eq!(app.call(UNSIGN, &biz).await.code(), "10000");
        assert_eq!(history(&app, no).await.len(), 2);
    }
}

/// Concurrent sends of one user-named unsign cancel the one active agreement once.
#[tokio::test]
async fn by_user_concurrent_retries_cancel_once() {
    let app = TestApp::spawn().await;
    let biz = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","sign_scene":"INDUSTRY|DIGITAL_MEDIA"}"#;
    let answers = futures_util::future::join_all((0..4).map(|_| app.call(UNSIGN, biz))).await;
    for answer in &answers {
        assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    }
    assert_eq!(history(&app, "20245920000000000001").await.len(), 2);
}

#[tokio::test]
async fn group_agreements_are_cancelled_within_the_group_only() {
    let app = TestApp::spawn().await;
    let group = r#"{"agreement_no":"20220815000000000005","third_party_type":"MERCHANT"}"#;
    // The telecom merchant belongs to no group: MERCHANT is invalid for it.
    let outside = app.call_as(APP_TELECOM, UNSIGN, group).await;
    assert_eq!(sub_code(&outside), "INVALID_PARAMETER");
    // As PARTNER the group agreement is not the video merchant's own.
    let own = app
        .call(UNSIGN, r#"{"agreement_no":"20220815000000000005"}"#)
        .await;
    assert_eq!(sub_code(&own), "USER_AGREEMENT_NOT_EXIST");
    assert_eq!(history(&app, "20220815000000000005").await.len(), 1);
    // A sister merchant of the group may cancel it.
    let sister = app.call_as(APP_MUSIC, UNSIGN, group).await;
    assert_eq!(sister.code(), "10000", "{:?}", sister.node);
    let e = &history(&app, "20220815000000000005").await[1];
    assert_eq!(e.actor, format!("app {APP_MUSIC}"));
}

#[tokio::test]
async fn isv_tokens_need_the_unsign_grant_and_are_recorded_without_the_secret() {
    let app = TestApp::spawn().await;
    let query_only = "202405BBqueryonly000000000000000009";
    app.store
        .add_app_auth_token(&AppAuthToken {
            token: query_only.to_owned(),
            isv_app_id: AppId::parse(APP_ISV).unwrap(),
            partner_id: PartnerId::parse(demo::MERCHANT_VIDEO).unwrap(),
            auth_app_id: AppId::parse(demo::APP_ID).unwrap(),
            status: TokenStatus::Valid,
            expires_at: app.clock_now() + 86_400,
            methods: vec![agreements_protocol::Method::AgreementQuery],
        })
        .await
        .unwrap();
    let biz = r#"{"agreement_no":"20245920000000000001"}"#;
    let refused = app
        .try_call_with(APP_ISV, UNSIGN, biz, &[("app_auth_token", query_only)])
        .await
        .unwrap();
    assert_eq!(refused.code(), "20001");
    assert_eq!(sub_code(&refused), "aop.invalid-app-auth-token-no-api");
    assert_eq!(history(&app, "20245920000000000001").await.len(), 1);
    let granted = app
        .try_call_with(
            APP_ISV,
            UNSIGN,
            biz,
            &[("app_auth_token", TOKEN_NO_API), ("notify_url", CALLER_URL)],
        )
        .await
        .unwrap();
    assert_eq!(granted.code(), "10000", "{:?}", granted.node);
    let e = &history(&app, "20245920000000000001").await[1];
    assert_eq!(
        e.actor,
        format!("isv {APP_ISV} for {} (token …0001)", demo::MERCHANT_VIDEO)
    );
    assert!(!e.actor.contains(TOKEN_NO_API));
    // The ISV's notification names the ISV app and the granting merchant's app.
    let queued = notifications(&app, "20245920000000000001").await;
    assert_eq!(
        queued.len(),
        1,
        "the demo app has no address: only the request's"
    );
    assert_eq!(param(&queued[0], "app_id"), Some(APP_ISV));
    assert_eq!(param(&queued[0], "auth_app_id"), Some(demo::APP_ID));
}

#[tokio::test]
async fn notify_urls_that_are_not_web_addresses_on_sensible_ports_are_refused() {
    let app = TestApp::spawn().await;
    let biz = r#"{"agreement_no":"20245920000000000001"}"#;
    for url in [
        "ftp://127.0.0.1:40000/n",
        "http://127.0.0.1:25/n",
        "http://127.0.0.1:0/n",
        "javascript:alert(1)",
        "not a url",
        "https://user:pw@bu.example.com/n",
        "http://169.254.169.254/latest/meta-data/",
        // Internal addresses in every spelling the attacker tried (the test server allows
        // 127.0.0.0/8 only, for its receivers).
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::ffff:0.0.0.0]:40000/n",
        "http://[::1]:40000/n",
        "http://100.100.100.200/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1:8080/n",
        "http://192.168.1.1:8080/n",
        "http://[64:ff9b::a9fe:a9fe]/n",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/computeMetadata/v1/",
        "http://localhost:40000/n",
        // A name that resolves to nothing.
        "http://no-such-host.invalid/n",
    ] {
        let answer = app
            .try_call_with(demo::APP_ID, UNSIGN, biz, &[("notify_url", url)])
            .await
            .unwrap();
        assert_eq!(sub_code(&answer), "INVALID_PARAMETER", "{url}");
        assert!(
            answer.node["sub_msg"]
                .as_str()
                .unwrap()
                .contains("notify_url"),
            "{url}: {:?}",
            answer.node
        );
    }
    assert_eq!(history(&app, "20245920000000000001").await.len(), 1);
    assert!(notifications(&app, "20245920000000000001").await.is_empty());
}
