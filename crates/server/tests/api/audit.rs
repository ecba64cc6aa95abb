//! The read-access audit trail: each answered read or change of a person's agreements is
//! recorded with who asked, for whom (logon ids masked), what came back and the outcome; requests
//! that never named anyone are not.

use agreements_store::{AuditEntry, AuditFilter, demo};

use crate::batch_query::numbers;
use crate::helpers::{APP_ISV, BATCH_QUERY, TOKEN_VIDEO, TestApp, post_forged};
use crate::unsign::UNSIGN;

const QUERY: &str = "alipay.user.agreement.query";

/// Every entry written so far, oldest first.
async fn entries(app: &TestApp) -> Vec<AuditEntry> {
    app.gateway.audit().flush().await;
    app.store
        .audit(&AuditFilter {
            user_ids: None,
            app_id: None,
            since_ms: 0,
            until_ms: i64::MAX,
            limit: 1_000,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_query_by_logon_id_is_recorded_with_the_person_and_what_came_back_masked() {
    let app = TestApp::spawn().await;
    let biz = format!(
        r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_logon_id":"{}"}}"#,
        demo::LOGON_EMAIL
    );
    let answer = app.call(BATCH_QUERY, &biz).await;
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    let returned = numbers(&answer);
    assert!(!returned.is_empty());
    let [entry] = entries(&app).await.try_into().unwrap();
    assert_eq!(entry.channel, "v2");
    assert_eq!(entry.method, BATCH_QUERY);
    assert_eq!(entry.app_id.as_deref(), Some(demo::APP_ID));
    assert_eq!(entry.partner_id.as_deref(), Some(demo::MERCHANT_VIDEO));
    assert_eq!((&entry.isv_app_id, &entry.token_suffix), (&None, &None));
    assert_eq!(entry.user_id.as_deref(), Some(demo::USER_PRIMARY));
    assert_eq!(
        entry.asked.as_deref(),
        Some("alipay_logon_id abx***@alitest.com")
    );
    assert_eq!(entry.returned, returned.len() as i64);
    assert_eq!(entry.agreement_nos, returned.join(" "));
    assert_eq!(
        (entry.code.as_str(), entry.sub_code.as_deref()),
        ("10000", None)
    );
    assert_eq!(entry.at_ms, app.clock_now() * 1000);
    // Nothing in the row spells the logon id.
    assert!(!format!("{entry:?}").contains(demo::LOGON_EMAIL));
}

#[tokio::test]
async fn failures_after_naming_a_person_are_recorded_and_refusals_before_are_not() {
    let app = TestApp::spawn().await;
    // Refused by the gateway (bad signature), and a biz_content naming nobody: no entries.
    post_forged(&app).await;
    let nobody = app
        .call(
            BATCH_QUERY,
            r#"{"personal_product_code":"GENERAL_WITHHOLDING_P"}"#,
        )
        .await;
    assert_eq!(nobody.code(), "40004", "{:?}", nobody.node);
    assert!(entries(&app).await.is_empty());

    let unknown =
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088999999999999"}"#;
    let answer = app.call(BATCH_QUERY, unknown).await;
    assert_eq!(answer.sub_code(), Some("USER_NOT_EXIST_ERROR"));
    let [entry] = entries(&app).await.try_into().unwrap();
    assert_eq!(entry.user_id, None);
    assert_eq!(
        entry.asked.as_deref(),
        Some("alipay_user_id 2088999999999999")
    );
    assert_eq!((entry.returned, entry.agreement_nos.as_str()), (0, ""));
    assert_eq!(
        (entry.code.as_str(), entry.sub_code.as_deref()),
        ("40004", Some("USER_NOT_EXIST_ERROR"))
    );
}

#[tokio::test]
async fn an_isv_read_names_the_isv_app_and_the_tokens_suffix_only() {
    let app = TestApp::spawn().await;
    let biz =
        r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263"}"#;
    let answer = app.call_as_isv(BATCH_QUERY, biz, TOKEN_VIDEO).await;
    assert_eq!(answer.code(), "10000");
    let [entry] = entries(&app).await.try_into().unwrap();
    assert_eq!(entry.app_id.as_deref(), Some(APP_ISV));
    assert_eq!(entry.partner_id.as_deref(), Some(demo::MERCHANT_VIDEO));
    assert_eq!(entry.isv_app_id.as_deref(), Some(APP_ISV));
    assert_eq!(
        entry.token_suffix.as_deref(),
        Some(&TOKEN_VIDEO[TOKEN_VIDEO.len() - 4..])
    );
    assert!(!format!("{entry:?}").contains(TOKEN_VIDEO));
    assert_eq!(entry.returned, numbers(&answer).len() as i64);
}

#[tokio::test]
async fn a_query_by_number_and_an_unsign_record_the_agreement_and_its_account() {
    let app = TestApp::spawn().await;
    let no = "20245920000000000001";
    let by_no = format!(r#"{{"agreement_no":"{no}"}}"#);
    let answer = app.call(QUERY, &by_no).await;
    assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    let unsigned = app.call(UNSIGN, &by_no).await;
    assert_eq!(unsigned.code(), "10000", "{:?}", unsigned.node);
    let gone = app.call(QUERY, &by_no).await;
    let all = entries(&app).await;
    let shown: Vec<_> = all
        .iter()
        .map(|e| {
            (
                e.method.as_str(),
                e.asked.as_deref().unwrap(),
                e.user_id.as_deref(),
                e.agreement_nos.as_str(),
                e.code.as_str(),
            )
        })
        .collect();
    let asked = format!("agreement_no {no}");
    let user = Some(demo::USER_PRIMARY);
    assert_eq!(
        shown,
        [
            (QUERY, asked.as_str(), user, no, "10000"),
            (UNSIGN, asked.as_str(), user, no, "10000"),
            (QUERY, asked.as_str(), None, "", gone.code()),
        ]
    );
    // Listed by the person from their other account, and by app.
    let accounts: Vec<String> = app
        .store
        .accounts_of_person(&agreements_domain::ids::UserId::parse(demo::USER_SECOND).unwrap())
        .await
        .unwrap()
        .iter()
        .map(|u| u.as_str().to_owned())
        .collect();
    let everything = AuditFilter {
        user_ids: None,
        app_id: None,
        since_ms: 0,
        until_ms: i64::MAX,
        limit: 100,
    };
    let person = AuditFilter {
        user_ids: Some(&accounts),
        ..everything
    };
    assert_eq!(app.store.audit(&person).await.unwrap(), all[..2].to_vec());
    let isv = AuditFilter {
        app_id: Some(APP_ISV),
        ..everything
    };
    let other_app = app.store.audit(&isv).await.unwrap();
    assert!(other_app.is_empty());
}

/// `serve` runs the writer on a thread of its own: entries recorded on the async workers reach
/// the store, a flush waits for them, and the writer writes what is queued and stops when told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_on_its_own_thread_writes_every_entry_and_stops_when_told() {
    use agreements_server::audit::{Asker, AuditTrail, Note, Outcome};

    let app = TestApp::spawn().await;
    let (trail, writer) = AuditTrail::start(app.store.clone(), app.gateway.metrics().clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let finished = writer
        .spawn(async move {
            let _ = stopped.await;
        })
        .unwrap();
    let asker = Asker {
        channel: "v2",
        method: BATCH_QUERY,
        app_id: Some(demo::APP_ID),
        partner_id: Some(demo::MERCHANT_VIDEO),
        token: None,
    };
    let record = |n: i64| {
        let note = Note::default();
        note.asked(format!("alipay_user_id 20881011226752{n:02}"));
        let trail = trail.clone();
        async move { trail.record(asker, &note, Outcome::SUCCESS, n).await }
    };
    let recorded: Vec<_> = (0..40).map(|n| tokio::spawn(record(n))).collect();
    for task in recorded {
        task.await.unwrap();
    }
    // A writer that never ran would leave the flush waiting: bounded, so the test fails instead.
    tokio::time::timeout(std::time::Duration::from_secs(30), trail.flush())
        .await
        .expect("the writer answered the flush");
    let asked = |entries: Vec<AuditEntry>| -> Vec<String> {
        entries.into_iter().filter_map(|e| e.asked).collect()
    };
    let written = asked(entries(&app).await);
    assert_eq!(written.len(), 40, "{written:?}");
    // Queued after the flush, then the stop: written before the writer ends.
    record(40).await;
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), finished)
        .await
        .expect("the writer stopped");
    let all = asked(entries(&app).await);
    assert_eq!(all.len(), 41);
    assert!(all.contains(&"alipay_user_id 2088101122675240".to_owned()));
}
