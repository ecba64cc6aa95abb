//! `GET /metrics`: the Prometheus exposition counts what the gateway answered, by protocol,
//! method, code and sub_code, times its phases, and reads the outbox's backlog at each scrape.

use agreements_store::demo;

use crate::helpers::*;

async fn scrape(app: &TestApp) -> String {
    let base = app.url.trim_end_matches("/gateway.do");
    let response = app
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn answers_are_counted_by_code_and_their_phases_timed() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        assert_eq!(app.call(BATCH_QUERY, VECTOR_BIZ).await.code(), "10000");
    }
    let missing = app
        .call(
            "alipay.user.agreement.query",
            r#"{"agreement_no":"20990101000000000000"}"#,
        )
        .await;
    assert_eq!(missing.sub_code(), Some("USER_AGREEMENT_NOT_EXIST"));
    // Two bad signatures: the second failure answer's signature is a kept one. The three batch
    // queries got the same bytes: the last two were signed from memory (and verified by the
    // client like any answer).
    for _ in 0..2 {
        post_forged(&app).await;
    }
    let text = scrape(&app).await;
    let requests = |method: &str, code: &str, sub_code: &str| {
        sample(
            &text,
            &format!(
                "agreements_requests_total{{protocol=\"v2\",method=\"{method}\",code=\"{code}\",sub_code=\"{sub_code}\"}}"
            ),
        )
    };
    assert_eq!(requests(BATCH_QUERY, "10000", ""), 3.0, "{text}");
    assert_eq!(
        requests(
            "alipay.user.agreement.query",
            "40004",
            "USER_AGREEMENT_NOT_EXIST"
        ),
        1.0
    );
    assert_eq!(requests(BATCH_QUERY, "40002", "isv.invalid-signature"), 2.0);
    let phase = |phase: &str| {
        sample(
            &text,
            &format!(
                "agreements_request_phase_duration_seconds_count{{protocol=\"v2\",phase=\"{phase}\"}}"
            ),
        )
    };
    assert_eq!(phase("total"), 6.0);
    assert_eq!(phase("render"), 6.0);
    assert_eq!(phase("sign"), 6.0, "every answer here names a known app");
    assert_eq!(phase("verify"), 6.0);
    assert_eq!(
        phase("store"),
        4.0,
        "the two forged requests never reach a method"
    );
    assert!(
        sample(
            &text,
            "agreements_request_phase_duration_seconds_sum{protocol=\"v2\",phase=\"total\"}"
        ) > 0.0
    );
    let kept = |outcome: &str| {
        sample(
            &text,
            &format!("agreements_signature_cache_total{{outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!((kept("miss"), kept("hit"), kept("bypass")), (3.0, 3.0, 0.0));
    assert_eq!(sample(&text, "agreements_signature_cache_entries"), 3.0);
    assert!(sample(&text, "agreements_signature_cache_size_bytes") >= 3.0 * 344.0);
    assert_eq!(sample(&text, "agreements_outbox_pending"), 0.0);
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn the_outbox_backlog_is_read_at_each_scrape() {
    let app = TestApp::spawn().await;
    // An unsign queues a notification that no worker sends here.
    let answer = app
        .try_call_with(
            demo::APP_ID,
            "alipay.user.agreement.unsign",
            r#"{"agreement_no":"20240102000000000003"}"#,
            &[("notify_url", "http://127.0.0.1:40002/notify")],
        )
        .await
        .unwrap();
    assert_eq!(answer.code(), "10000");
    let text = scrape(&app).await;
    let pending = sample(&text, "agreements_outbox_pending");
    assert!(pending >= 1.0, "{text}");
    assert_eq!(
        sample(&text, "agreements_outbox_oldest_pending_age_seconds"),
        0.0,
        "queued at the fixed clock's now"
    );
    app.clock.set(app.clock_now() + 90);
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, "agreements_outbox_oldest_pending_age_seconds"),
        90.0
    );
}

/// Per-app rates: a burst over the bucket is answered `40005`, signed, in both protocols, and
/// counted; other apps keep their own buckets; junk never spends an app's tokens.
#[tokio::test]
async fn an_app_over_its_rate_is_answered_call_limited() {
    use agreements_server::rates::RateRule;
    let app = TestApp::spawn_with_rates(&[
        RateRule {
            app_id: demo::APP_ID.into(),
            method: "alipay.user.agreement.query".into(),
            requests: 1,
            per_secs: 3600,
        },
        RateRule {
            app_id: "*".into(),
            method: "*".into(),
            requests: 3,
            per_secs: 3600,
        },
    ])
    .await;
    // Junk that fails its signature spends nothing.
    for _ in 0..5 {
        post_forged(&app).await;
    }
    let query = r#"{"agreement_no":"20245920000000000001"}"#;
    assert_eq!(
        app.call("alipay.user.agreement.query", query).await.code(),
        "10000"
    );
    let limited = app.call("alipay.user.agreement.query", query).await;
    assert_eq!(limited.code(), "40005");
    assert_eq!(limited.sub_code(), Some("isv.method-call-limited"));
    assert_eq!(limited.node["msg"], "Call Limited");
    // A burst of batch queries: three pass, the rest are refused.
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(app.call(BATCH_QUERY, VECTOR_BIZ).await.code().to_owned());
    }
    assert_eq!(codes, ["10000", "10000", "10000", "40005", "40005"]);
    // Another app has its own bucket.
    assert_eq!(
        app.call_as(APP_MUSIC, BATCH_QUERY, VECTOR_BIZ).await.code(),
        "10000"
    );
    let text = scrape(&app).await;
    let series = |method: &str, sub_code: &str| {
        sample(
            &text,
            &format!(
                "agreements_requests_total{{protocol=\"v2\",method=\"{method}\",code=\"40005\",sub_code=\"{sub_code}\"}}"
            ),
        )
    };
    assert_eq!(
        series("alipay.user.agreement.query", "isv.method-call-limited"),
        1.0
    );
    assert_eq!(series(BATCH_QUERY, "isv.app-call-limited"), 2.0);
}
