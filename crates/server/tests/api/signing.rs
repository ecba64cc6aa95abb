//! Signing by consumers over HTTP, as a browser does it (cookies kept, redirects followed by
//! hand so each step is seen): page.sign links (GET and POST form, the SDK vectors too), the
//! hosted signing page, confirm/decline, `return_url`, `dut_user_sign`, `sign.effect`, and the
//! consumer's automatic payments page with cancelling. The real-browser tests are in the
//! `browser` binary; these check every answer exactly.

use std::collections::BTreeMap;

use agreements_domain::ids::{AgreementNo, UserId};
use agreements_protocol::sign_content;
use agreements_protocol::{Charset, SignType};
use agreements_server::web::password;
use agreements_store::{Credential, NotificationFilter, demo};

use crate::helpers::{TestApp, VECTOR_TIME, fixture_json, signed_form};

const PAGE_SIGN: &str = "alipay.user.agreement.page.sign";
pub(crate) const PASSWORD: &str = "correct horse 1";
const RETURN_URL: &str = "https://merchant.example.test/return?order=7";

/// A browser: keeps cookies, follows nothing by itself.
struct Browser {
    http: reqwest::Client,
    origin: String,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .map_or("", |v| v.to_str().unwrap())
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .expect("a csrf field");
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            origin: app.url.trim_end_matches("/gateway.do").to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let request = if cookie.is_empty() {
            request
        } else {
            request.header("cookie", cookie.join("; "))
        };
        let response = request.send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            assert!(
                set.contains("HttpOnly") && set.contains("SameSite=Strict"),
                "{set}"
            );
            let (pair, _) = set.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.origin)
        };
        let request = self.http.get(url);
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .http
            .post(format!("{}{path}", self.origin))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// Opens a link, follows the gateway's redirect to the signing page; returns its path and
    /// the page.
    async fn open(&mut self, link: &str) -> (String, Page) {
        let redirect = self.get(link).await;
        assert_eq!(redirect.status, 303, "{}", redirect.body);
        let path = redirect.location().to_owned();
        assert!(path.starts_with("/sign/"), "{path}");
        let page = self.get(&path).await;
        (path, page)
    }

    async fn log_in(&mut self, path: &str, page: &Page, logon_id: &str, password: &str) -> Page {
        let csrf = page.csrf();
        self.post(
            &format!("{path}/login"),
            &[
                ("logon_id", logon_id),
                ("password", password),
                ("csrf", &csrf),
            ],
        )
        .await
    }
}

impl Browser {
    /// Signs in on the signing page `path` (shown as `page`) and confirms; the answer.
    async fn confirm_as(&mut self, path: &str, page: &Page, logon_id: &str) -> Page {
        self.log_in(path, page, logon_id, PASSWORD).await;
        let csrf = self.get(path).await.csrf();
        self.post(&format!("{path}/confirm"), &[("csrf", &csrf)])
            .await
    }
}

/// A page.sign link as `pageExecute(…, "GET")` makes it: every parameter in the query.
fn link(app: &TestApp, biz: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("app_id", demo::APP_ID),
        ("method", PAGE_SIGN),
        ("charset", "utf-8"),
        ("format", "json"),
        ("sign_type", "RSA2"),
        ("timestamp", VECTOR_TIME),
        ("version", "1.0"),
        ("biz_content", biz),
    ];
    pairs.extend_from_slice(extra);
    format!(
        "{}?{}",
        app.url,
        signed_form(
            &pairs,
            SignType::Rsa2,
            Charset::Utf8,
            sign_content::Empties::Drop
        )
    )
}

fn biz(external: &str, extra: &str) -> String {
    format!(
        r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"INDUSTRY|DIGITAL_MEDIA","access_params":{{"channel":"ALIPAYAPP"}},"external_agreement_no":"{external}","external_logon_id":"member<b>7</b>"{extra}}}"#
    )
}

pub(crate) async fn with_password(app: &TestApp, user: &str) {
    app.store
        .set_password(&Credential {
            user_id: UserId::parse(user).unwrap(),
            password_hash: password::hash(PASSWORD).unwrap(),
            updated_at: 0,
        })
        .await
        .unwrap();
}

/// The query parameters of a URL.
fn query_of(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Verifies a return address's (or notification's) signature as the SDKs verify notifications.
pub(crate) fn verify_signed(app: &TestApp, params: &BTreeMap<String, String>) {
    let sign = params.get("sign").expect("sign");
    let content = sign_content::notification(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert!(
        app.platform_public
            .verify(SignType::Rsa2, content.as_bytes(), sign),
        "{params:?}"
    );
}

async fn sessions(app: &TestApp) -> usize {
    app.store.count_for_tests("signing_sessions").await.unwrap()
}

async fn agreements_count(app: &TestApp) -> usize {
    app.store.count_for_tests("agreements").await.unwrap()
}

#[tokio::test]
async fn a_link_is_signed_once_end_to_end() {
    let app = TestApp::spawn().await;
    with_password(&app, demo::USER_PRIMARY).await;
    let before = agreements_count(&app).await;
    let mut browser = Browser::new(&app);
    let link = link(
        &app,
        &biz("WEB0001", ""),
        &[
            ("return_url", RETURN_URL),
            ("notify_url", "http://127.0.0.1:9999/notify"),
        ],
    );
    let (path, page) = browser.open(&link).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        csp.contains("form-action 'self' https://merchant.example.test;"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("cache-control"), "no-store");
    for shown in [
        "Mall Video",
        "GENERAL_WITHHOLDING_P",
        "INDUSTRY|DIGITAL_MEDIA",
        "长期有效",
    ] {
        assert!(page.body.contains(shown), "{shown} not shown");
    }
    // The merchant's text is escaped, never markup.
    assert!(
        page.body.contains("member&#60;b&#62;7&#60;/b&#62;")
            || page.body.contains("member&lt;b&gt;7&lt;/b&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<b>7</b>"));
    assert!(!page.body.contains("<script"));

    // A wrong password: refused, nothing signed in.
    let wrong = browser
        .log_in(&path, &page, demo::LOGON_EMAIL, "not the password")
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("账户名或密码错误"), "{}", wrong.body);
    assert!(!browser.cookies.contains_key("agreements_session"));

    let signed_in = browser
        .log_in(&path, &page, demo::LOGON_EMAIL, PASSWORD)
        .await;
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.location(), path);
    let confirm_page = browser.get(&path).await;
    assert!(
        confirm_page.body.contains("138****5678"),
        "{}",
        confirm_page.body
    );
    let csrf = confirm_page.csrf();

    // A forged confirmation (another token) creates nothing.
    let forged = browser
        .post(&format!("{path}/confirm"), &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(agreements_count(&app).await, before);

    let done = browser
        .post(&format!("{path}/confirm"), &[("csrf", &csrf)])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let back = done.location();
    assert!(
        back.starts_with("https://merchant.example.test/return?"),
        "{back}"
    );
    let params = query_of(back);
    verify_signed(&app, &params);
    assert_eq!(params["order"], "7");
    assert_eq!(params["status"], "NORMAL");
    assert_eq!(params["app_id"], demo::APP_ID);
    assert_eq!(params["external_agreement_no"], "WEB0001");
    assert_eq!(params["sign_time"], VECTOR_TIME);
    let no = params["agreement_no"].clone();
    assert!(no.len() == 20 && no.starts_with("20240520"), "{no}");
    assert_eq!(agreements_count(&app).await, before + 1);

    // The merchant finds it with query, by its own number.
    let found = app
        .call(
            "alipay.user.agreement.query",
            r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"INDUSTRY|DIGITAL_MEDIA","external_agreement_no":"WEB0001"}"#,
        )
        .await;
    assert_eq!(found.node["agreement_no"], no.as_str());
    assert_eq!(found.node["status"], "NORMAL");
    assert_eq!(found.node["pricipal_type"], "CARD");
    assert_eq!(found.node["principal_id"], demo::USER_PRIMARY);
    assert_eq!(found.node["invalid_time"], "2115-02-01 00:00:00");
    assert_eq!(found.node["external_logon_id"], "member<b>7</b>");

    // History and the notification, in the same transaction.
    let history = app
        .store
        .history(&AgreementNo::parse(no.as_str()).unwrap())
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].actor, format!("user {}", demo::USER_PRIMARY));
    assert_eq!(history[0].kind.as_str(), "SIGN");
    let queued = app
        .store
        .notifications(&NotificationFilter {
            state: None,
            agreement_no: None,
            limit: 1000,
        })
        .await
        .unwrap();
    let sign: Vec<_> = queued
        .iter()
        .filter(|n| n.notify_type == "dut_user_sign")
        .collect();
    assert_eq!(sign.len(), 1);
    assert_eq!(sign[0].url, "http://127.0.0.1:9999/notify");
    let fields: BTreeMap<&str, &str> = sign[0]
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        fields.keys().copied().collect::<Vec<_>>(),
        [
            "agreement_no",
            "alipay_logon_id",
            "alipay_user_id",
            "app_id",
            "auth_app_id",
            "charset",
            "external_agreement_no",
            "external_logon_id",
            "invalid_time",
            "notify_type",
            "personal_product_code",
            "sign_scene",
            "sign_time",
            "status",
            "valid_time",
            "version",
        ]
    );
    assert_eq!(fields["status"], "NORMAL");
    assert_eq!(fields["alipay_logon_id"], "138****5678");

    // The same link again: the same session, now used; nothing twice.
    let (again_path, again) = browser.open(&link).await;
    assert_eq!(again_path, path);
    assert!(again.body.contains("已开通"), "{}", again.body);
    let replay = browser
        .post(&format!("{path}/confirm"), &[("csrf", &csrf)])
        .await;
    assert_ne!(replay.status, 303);
    assert_eq!(agreements_count(&app).await, before + 1);
    assert_eq!(sessions(&app).await, 1);

    // Another visitor of the used link learns nothing about it.
    let mut stranger = Browser::new(&app);
    let (_, seen) = stranger.open(&link).await;
    assert_eq!(seen.status, 410);
    assert!(!seen.body.contains(&no));
}

#[tokio::test]
async fn a_notice_signing_waits_for_sign_effect() {
    let app = TestApp::spawn().await;
    with_password(&app, demo::USER_PRIMARY).await;
    let mut browser = Browser::new(&app);
    let link = link(
        &app,
        &biz(
            "WEB0002",
            r#","agreement_effect_type":"NOTICE","sign_validity_period":"12m""#,
        ),
        &[],
    );
    let (path, page) = browser.open(&link).await;
    assert!(page.body.contains("商户确认后生效") && page.body.contains("12 个月"));
    browser.log_in(&path, &page, "13812345678", PASSWORD).await;
    let csrf = browser.get(&path).await.csrf();
    let result = browser
        .post(&format!("{path}/confirm"), &[("csrf", &csrf)])
        .await;
    // No return_url: the result page.
    assert_eq!(result.status, 200);
    assert!(result.body.contains("商户确认后生效"), "{}", result.body);
    let effect = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"INDUSTRY|DIGITAL_MEDIA","external_agreement_no":"WEB0002"}"#;
    let temp = app.call("alipay.user.agreement.query", effect).await;
    assert_eq!(temp.node["status"], "TEMP");
    assert_eq!(temp.node["invalid_time"], "2025-05-20 13:14:15");
    for _ in 0..2 {
        let answer = app.call("alipay.user.agreement.sign.effect", effect).await;
        assert_eq!(answer.sub_code(), None, "{:?}", answer.node);
        assert_eq!(answer.node["status"], "NORMAL");
        assert_eq!(answer.node["external_agreement_no"], "WEB0002");
    }
    let no = AgreementNo::parse(temp.node["agreement_no"].as_str().unwrap()).unwrap();
    let history = app.store.history(&no).await.unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["SIGN", "EFFECT"],
        "a retried sign.effect changes nothing"
    );
    // Another merchant's app cannot see it.
    let other = app
        .call_as(
            crate::helpers::APP_TELECOM,
            "alipay.user.agreement.sign.effect",
            &format!(r#"{{"agreement_no":"{no}"}}"#),
        )
        .await;
    assert_eq!(other.sub_code(), Some("USER_AGREEMENT_NOT_EXIST"));
}

#[tokio::test]
async fn bad_links_get_their_exact_page_and_create_nothing() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let good = biz("WEB0003", "");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            link(&app, &good, &[]).replace("sign=", "sign=AAAA"),
            "isv.invalid-signature",
            "",
        ),
        (
            // biz_content changed after signing (WEB0003 → WEB0009, same length).
            link(&app, &good, &[]).replace("WEB0003", "WEB0009"),
            "isv.invalid-signature",
            "",
        ),
        (
            link(&app, &good.replace("GENERAL_WITHHOLDING_P", "NO_SUCH_P"), &[]),
            "PRODUCT_CODE_NOT_SUPPORTED_ERROR",
            "NO_SUCH_P",
        ),
        (
            link(&app, &good, &[("return_url", "javascript:alert(1)")]),
            "INVALID_PARAMETER",
            "return_url",
        ),
        (
            link(&app, &good, &[("notify_url", "http://10.0.0.1:8080/n")]),
            "INVALID_PARAMETER",
            "notify_url must not reach 10.0.0.1",
        ),
        (
            link(
                &app,
                &good.replace(
                    "GENERAL_WITHHOLDING_P",
                    "CYCLE_PAY_AUTH_P",
                ).replace(
                    r#""access_params""#,
                    r#""period_rule_params":{"period_type":"DAY","period":3,"execute_time":"2024-06-01","single_amount":"9.90"},"access_params""#,
                ),
                &[],
            ),
            "INVALID_PARAMETER",
            "period must be at least 7",
        ),
        (
            link(&app, r#"{"personal_product_code":"GENERAL_WITHHOLDING_P"}"#, &[]),
            "INVALID_PARAMETER",
            "access_params is required",
        ),
        (
            link(
                &app,
                &biz("RENT20231120A", "").replace("INDUSTRY|DIGITAL_MEDIA", "INDUSTRY|CARRENTAL"),
                &[],
            ),
            "USER_AGREEMENT_ALREADY_EXIST",
            "external_agreement_no is already used",
        ),
    ];
    for (link, sub_code, detail) in cases {
        let page = browser.get(&link).await;
        assert_eq!(page.status, 200, "{link}");
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{link}"
        );
        assert!(
            page.body
                .contains(&format!(r#"<dd id="sub_code">{sub_code}</dd>"#)),
            "{sub_code}: {}",
            page.body
        );
        assert!(page.body.contains(detail), "{detail}: {}", page.body);
        assert!(
            page.header("content-security-policy")
                .contains("frame-ancestors 'none'")
        );
    }
    assert_eq!(sessions(&app).await, 0);
    // A merchant without a contract for the product (City Telecom has none for CYCLE_PAY_AUTH).
    let cycle = good.replace("GENERAL_WITHHOLDING_P", "CYCLE_PAY_AUTH_P").replace(
        r#""access_params""#,
        r#""period_rule_params":{"period_type":"DAY","period":7,"execute_time":"2024-06-01","single_amount":"9.90"},"access_params""#,
    );
    let telecom = {
        let pairs: Vec<(&str, &str)> = vec![
            ("app_id", crate::helpers::APP_TELECOM),
            ("method", PAGE_SIGN),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", VECTOR_TIME),
            ("version", "1.0"),
            ("biz_content", &cycle),
        ];
        format!(
            "{}?{}",
            app.url,
            signed_form(
                &pairs,
                SignType::Rsa2,
                Charset::Utf8,
                sign_content::Empties::Drop
            )
        )
    };
    let page = browser.get(&telecom).await;
    assert!(
        page.body.contains("MERCHANT_AGREEMENT_IS_NOT_EXIST"),
        "{}",
        page.body
    );
    assert_eq!(sessions(&app).await, 0);
}

#[tokio::test]
async fn expired_links_declines_and_forged_posts_create_nothing() {
    let app = TestApp::spawn().await;
    with_password(&app, demo::USER_PRIMARY).await;
    let before = agreements_count(&app).await;
    // effect_time: signing must be done within 60 s of the request's timestamp.
    let mut browser = Browser::new(&app);
    let (path, page) = browser
        .open(&link(&app, &biz("WEB0004", r#","effect_time":60"#), &[]))
        .await;
    browser
        .log_in(&path, &page, demo::LOGON_EMAIL, PASSWORD)
        .await;
    let csrf = browser.get(&path).await.csrf();
    app.clock.set(app.clock_now() + 61);
    let late = browser
        .post(&format!("{path}/confirm"), &[("csrf", &csrf)])
        .await;
    assert_eq!(late.status, 410);
    assert!(late.body.contains("链接已过期"));
    app.clock.set(app.clock_now() - 61);

    // A login form posted from elsewhere (no form cookie) is refused before any password check.
    let mut forger = Browser::new(&app);
    let (path2, _) = forger
        .open(&link(
            &app,
            &biz("WEB0005", ""),
            &[("return_url", RETURN_URL)],
        ))
        .await;
    forger.cookies.clear();
    let forged = forger
        .post(
            &format!("{path2}/login"),
            &[
                ("logon_id", demo::LOGON_EMAIL),
                ("password", PASSWORD),
                ("csrf", "x"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);

    // Declined: back to the merchant with a signed DECLINED, no agreement.
    let page = browser.get(&path2).await;
    let csrf = page.csrf();
    let declined = browser
        .post(&format!("{path2}/decline"), &[("csrf", &csrf)])
        .await;
    assert_eq!(declined.status, 303);
    let params = query_of(declined.location());
    verify_signed(&app, &params);
    assert_eq!(params["status"], "DECLINED");
    assert!(!params.contains_key("agreement_no"));
    let again = browser
        .post(&format!("{path2}/confirm"), &[("csrf", &csrf)])
        .await;
    assert_ne!(again.status, 303);
    assert_eq!(agreements_count(&app).await, before);
}

#[tokio::test]
async fn logins_are_throttled_per_account() {
    let app = TestApp::spawn().await;
    with_password(&app, demo::USER_PRIMARY).await;
    let mut browser = Browser::new(&app);
    let home = browser.get("/me").await;
    let csrf = home.csrf();
    let mut attempt = async |password: &str| {
        browser
            .post(
                "/me/login",
                &[
                    ("logon_id", demo::LOGON_EMAIL),
                    ("password", password),
                    ("csrf", &csrf),
                ],
            )
            .await
    };
    for _ in 0..4 {
        let page = attempt("wrong password").await;
        assert!(page.body.contains("账户名或密码错误"));
    }
    let locked = attempt("wrong password").await;
    assert!(
        locked.body.contains("已暂时锁定，请 15 分钟后再试"),
        "{}",
        locked.body
    );
    // Even the right password waits out the lockout.
    let right = attempt(PASSWORD).await;
    assert_eq!(right.status, 401);
    assert!(right.body.contains("已暂时锁定"));
    // A form over 16 KiB is not read.
    let huge = "x".repeat(20 * 1024);
    let too_large = attempt(&huge).await;
    assert_eq!(too_large.status, 413);
    app.clock.set(app.clock_now() + 15 * 60);
    let later = attempt(PASSWORD).await;
    assert_eq!(later.status, 303);
}

#[tokio::test]
async fn a_consumer_sees_all_their_agreements_and_cancels_one() {
    let app = TestApp::spawn().await;
    with_password(&app, demo::USER_PRIMARY).await;
    with_password(&app, demo::USER_OTHER).await;
    let mut browser = Browser::new(&app);
    let home = browser.get("/me").await;
    let csrf = home.csrf();
    let signed_in = browser
        .post(
            "/me/login",
            &[
                ("logon_id", demo::LOGON_EMAIL),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303);
    let list = browser.get("/me").await;
    assert_eq!(list.status, 200);
    // Every agreement of the person: both accounts (CARD) and the person (CUSTOMER), every
    // merchant; none of anyone else.
    let person = agreements_domain::ResolvedUser {
        user_id: UserId::parse(demo::USER_PRIMARY).unwrap(),
        customer_id: agreements_domain::ids::CustomerId::parse(demo::USER_PRIMARY).unwrap(),
    };
    let all = app
        .store
        .agreements_of_person(&person.customer_id)
        .await
        .unwrap();
    assert!(all.len() >= 3, "{}", all.len());
    let shown = list.body.matches("data-agreement-no=").count();
    assert_eq!(shown, all.len());
    for a in &all {
        assert!(list.body.contains(a.agreement.agreement_no.as_str()));
    }
    let merchants: std::collections::BTreeSet<&str> =
        all.iter().map(|a| a.merchant_name.as_str()).collect();
    assert!(merchants.len() >= 2, "{merchants:?}");
    let accounts: std::collections::BTreeSet<&str> = all
        .iter()
        .map(|a| a.agreement.alipay_user_id.as_str())
        .collect();
    assert!(accounts.contains(demo::USER_SECOND), "{accounts:?}");

    // Cancel one, with the confirmation step.
    let target = all
        .iter()
        .find(|a| {
            a.agreement.status == agreements_domain::AgreementStatus::Normal
                && a.agreement.invalid_time > app.clock_now()
        })
        .unwrap();
    let no = target.agreement.agreement_no.to_string();
    let detail = browser.get(&format!("/me/agreements/{no}")).await;
    assert!(detail.body.contains(r#"id="cancel""#));
    let confirm = browser.get(&format!("/me/agreements/{no}/cancel")).await;
    assert!(confirm.body.contains("确定关闭吗"));
    let csrf = confirm.csrf();
    let forged = browser
        .post(&format!("/me/agreements/{no}/cancel"), &[("csrf", "nope")])
        .await;
    assert_eq!(forged.status, 403);
    let done = browser
        .post(&format!("/me/agreements/{no}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(done.status, 303);
    let after = browser.get(&format!("/me/agreements/{no}")).await;
    assert!(after.body.contains("已关闭"), "{}", after.body);
    assert!(after.body.contains("关闭（本人）"), "{}", after.body);
    let history = app
        .store
        .history(&target.agreement.agreement_no)
        .await
        .unwrap();
    assert_eq!(
        history.last().unwrap().actor,
        format!("user {}", demo::USER_PRIMARY)
    );
    // Its notification goes to the signing app's address only.
    let queued = app
        .store
        .notifications(&NotificationFilter {
            state: None,
            agreement_no: None,
            limit: 1000,
        })
        .await
        .unwrap();
    let app_record = app
        .store
        .app(&target.agreement.sign_app_id)
        .await
        .unwrap()
        .unwrap();
    let unsign: Vec<_> = queued
        .iter()
        .filter(|n| n.agreement_no == target.agreement.agreement_no)
        .collect();
    match app_record.notify_url {
        Some(url) => {
            assert_eq!(unsign.len(), 1);
            assert_eq!(unsign[0].url, url);
            assert_eq!(unsign[0].notify_type, "dut_user_unsign");
        }
        None => assert!(unsign.is_empty()),
    }

    // Another person sees none of them and cannot cancel them.
    let mut other = Browser::new(&app);
    let home = other.get("/me").await;
    let csrf = home.csrf();
    other
        .post(
            "/me/login",
            &[
                ("logon_id", "13900001111"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;
    let theirs = other.get("/me").await;
    for a in &all {
        assert!(!theirs.body.contains(a.agreement.agreement_no.as_str()));
    }
    let peek = other.get(&format!("/me/agreements/{no}")).await;
    assert_eq!(peek.status, 404);
    let live = all
        .iter()
        .find(|a| {
            a.agreement.agreement_no != target.agreement.agreement_no
                && a.agreement.status != agreements_domain::AgreementStatus::Unsign
        })
        .unwrap();
    let their_csrf = theirs.csrf();
    let attempt = other
        .post(
            &format!("/me/agreements/{}/cancel", live.agreement.agreement_no),
            &[("csrf", &their_csrf)],
        )
        .await;
    assert_eq!(attempt.status, 404);

    // The audit trail has each page's read, the cancellation, and the other person's looks at
    // agreements that are not theirs (the forged form changed nothing and is not there).
    app.gateway.audit().flush().await;
    let trail = app
        .store
        .audit(&agreements_store::AuditFilter {
            user_ids: None,
            app_id: None,
            since_ms: 0,
            until_ms: i64::MAX,
            limit: 100,
        })
        .await
        .unwrap();
    let pages: Vec<(&str, &str, &str, i64)> = trail
        .iter()
        .filter(|e| e.channel == "page")
        .map(|e| {
            (
                e.user_id.as_deref().unwrap(),
                e.method.as_str(),
                e.code.as_str(),
                e.returned,
            )
        })
        .collect();
    let (me, them) = (demo::USER_PRIMARY, demo::USER_OTHER);
    let their_count = theirs.body.matches("data-agreement-no=").count() as i64;
    assert_eq!(
        pages,
        [
            (me, "me", "10000", all.len() as i64),
            (me, "me.agreement", "10000", 1),
            (me, "me.agreement", "10000", 1),
            (me, "me.cancel", "10000", 1),
            (me, "me.agreement", "10000", 1),
            (them, "me", "10000", their_count),
            (them, "me.agreement", "40004", 0),
            (them, "me.cancel", "40004", 0),
        ]
    );
    assert!(trail.iter().all(|e| e.app_id.is_none()));

    // Signing out ends the session.
    let list = browser.get("/me").await;
    let csrf = list.csrf();
    let out = browser.post("/me/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    let home = browser.get("/me").await;
    assert!(home.body.contains(r#"id="login""#));
}

/// The official SDK's own page.sign requests (the vectors: UTF-8 and GBK, RSA2 and RSA, a POST
/// form with the protocol parameters in the query) open a signing session.
#[tokio::test]
async fn the_sdk_page_sign_vectors_open_the_signing_page() {
    let app = TestApp::spawn().await;
    let vectors = fixture_json("request-vectors.json");
    let mut browser = Browser::new(&app);
    for vector in [1, 2] {
        for variant in 0..2 {
            let wire = &vectors["vectors"][vector]["variants"][variant]["wire"];
            let query = wire["query_string"].as_str().unwrap();
            let url = if query.is_empty() {
                app.url.clone()
            } else {
                format!("{}?{query}", app.url)
            };
            let request = browser
                .http
                .post(url)
                .header("content-type", wire["content_type"].as_str().unwrap())
                .body(wire["body"].as_str().unwrap().to_owned());
            let redirect = browser.send(request).await;
            assert_eq!(
                redirect.status, 303,
                "vector {vector}/{variant}: {}",
                redirect.body
            );
            let page = browser.get(redirect.location()).await;
            assert_eq!(page.status, 200);
            assert!(
                page.body.contains("每 1 个月扣款一次，首次 2024-06-20"),
                "{}",
                page.body
            );
            assert!(page.body.contains("¥19.90"));
        }
    }
    assert_eq!(sessions(&app).await, 4);
}

#[tokio::test]
async fn a_periodic_agreements_next_deduction_moves_inside_its_period() {
    let app = TestApp::spawn().await;
    with_password(&app, demo::USER_PRIMARY).await;
    let mut browser = Browser::new(&app);
    let cycle = r#"{"personal_product_code":"CYCLE_PAY_AUTH_P","product_code":"CYCLE_PAY_AUTH","sign_scene":"INDUSTRY|DIGITAL_MEDIA","external_agreement_no":"CYC0001","access_params":{"channel":"QRCODE"},"period_rule_params":{"period_type":"MONTH","period":1,"execute_time":"2024-06-20","single_amount":"19.90","total_amount":"238.80","total_payments":12}}"#;
    let (path, page) = browser.open(&link(&app, cycle, &[])).await;
    for shown in [
        "每 1 个月扣款一次，首次 2024-06-20",
        "¥19.90",
        "¥238.80",
        "最多 12 次",
    ] {
        assert!(page.body.contains(shown), "{shown}");
    }
    let done = browser.confirm_as(&path, &page, demo::LOGON_EMAIL).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let found = app
        .call(
            "alipay.user.agreement.query",
            r#"{"personal_product_code":"CYCLE_PAY_AUTH_P","sign_scene":"INDUSTRY|DIGITAL_MEDIA","external_agreement_no":"CYC0001"}"#,
        )
        .await;
    assert_eq!(found.node["next_deduct_time"], "2024-06-20");
    let no = found.node["agreement_no"].as_str().unwrap().to_owned();
    let modify = "alipay.user.agreement.executionplan.modify";
    for _ in 0..2 {
        let moved = app
            .call(
                modify,
                &format!(r#"{{"agreement_no":"{no}","deduct_time":"2024-06-25","memo":"customer asked"}}"#),
            )
            .await;
        assert_eq!(moved.sub_code(), None, "{:?}", moved.node);
        assert_eq!(moved.node["deduct_time"], "2024-06-25");
        assert_eq!(moved.node["agreement_no"], no.as_str());
    }
    let history = app
        .store
        .history(&AgreementNo::parse(no.as_str()).unwrap())
        .await
        .unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["SIGN", "RESCHEDULE"],
        "the same day again changes nothing"
    );
    assert_eq!(
        history[1].reason.as_deref(),
        Some("next deduction 2024-06-20 → 2024-06-25: customer asked")
    );
    let again = app
        .call(
            "alipay.user.agreement.query",
            &format!(r#"{{"agreement_no":"{no}"}}"#),
        )
        .await;
    assert_eq!(again.node["next_deduct_time"], "2024-06-25");
    for (biz, sub_code, says) in [
        (
            format!(r#"{{"agreement_no":"{no}","deduct_time":"2024-07-25"}}"#),
            "INVALID_PARAMETER",
            "not within the current period",
        ),
        (
            format!(r#"{{"agreement_no":"{no}","deduct_time":"2024-05-19"}}"#),
            "INVALID_PARAMETER",
            "before today",
        ),
        (
            r#"{"agreement_no":"20231120000000000002","deduct_time":"2024-06-01"}"#.to_owned(),
            "INVALID_PARAMETER",
            "no period rule",
        ),
        (
            r#"{"agreement_no":"29990101000000000000","deduct_time":"2024-06-01"}"#.to_owned(),
            "USER_AGREEMENT_NOT_EXIST",
            "",
        ),
    ] {
        let answer = app.call(modify, &biz).await;
        assert_eq!(
            answer.sub_code(),
            Some(sub_code),
            "{biz}: {:?}",
            answer.node
        );
        assert!(
            answer.node["sub_msg"].as_str().unwrap().contains(says),
            "{:?}",
            answer.node
        );
    }
    let other = app
        .call_as(
            crate::helpers::APP_TELECOM,
            modify,
            &format!(r#"{{"agreement_no":"{no}","deduct_time":"2024-06-26"}}"#),
        )
        .await;
    assert_eq!(other.sub_code(), Some("USER_AGREEMENT_NOT_EXIST"));
}

/// A product whose agreements are with the person: signed from a second account, the agreement's
/// principal is the person, and the primary account's page lists it.
#[tokio::test]
async fn a_customer_product_signs_with_the_person() {
    let app = TestApp::spawn().await;
    with_password(&app, demo::USER_SECOND).await;
    app.store
        .add_product(&agreements_store::ProductRecord {
            personal_product_code: agreements_domain::ids::PersonalProductCode::parse(
                "FAMILY_WITHHOLDING_P",
            )
            .unwrap(),
            name: "Family".into(),
            principal_type: agreements_domain::PrincipalType::Customer,
            product_codes: vec![
                agreements_domain::ids::ProductCode::parse("FAMILY_WITHHOLDING").unwrap(),
            ],
        })
        .await
        .unwrap();
    app.store
        .add_contract(&agreements_domain::Contract {
            partner_id: agreements_domain::ids::PartnerId::parse(demo::MERCHANT_VIDEO).unwrap(),
            product_code: agreements_domain::ids::ProductCode::parse("FAMILY_WITHHOLDING").unwrap(),
            status: agreements_domain::EntityStatus::Normal,
            valid_from: 0,
            valid_to: i64::MAX / 2,
        })
        .await
        .unwrap();
    let mut browser = Browser::new(&app);
    let family = biz("FAM0001", "").replace("GENERAL_WITHHOLDING_P", "FAMILY_WITHHOLDING_P");
    let (path, page) = browser.open(&link(&app, &family, &[])).await;
    let done = browser
        .confirm_as(&path, &page, "abx.work@alitest.com")
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let found = app
        .call(
            "alipay.user.agreement.query",
            r#"{"personal_product_code":"FAMILY_WITHHOLDING_P","sign_scene":"INDUSTRY|DIGITAL_MEDIA","external_agreement_no":"FAM0001"}"#,
        )
        .await;
    assert_eq!(found.node["pricipal_type"], "CUSTOMER", "{:?}", found.node);
    assert_eq!(found.node["principal_id"], demo::USER_PRIMARY);
    let all = app
        .store
        .agreements_of_person(
            &agreements_domain::ids::CustomerId::parse(demo::USER_PRIMARY).unwrap(),
        )
        .await
        .unwrap();
    assert!(all.iter().any(|a| {
        a.agreement
            .external_agreement_no
            .as_ref()
            .map(|n| n.as_str())
            == Some("FAM0001")
            && a.agreement.alipay_user_id.as_str() == demo::USER_SECOND
    }));
}
