//! The consumer pages in a real headless Chromium (Debian `chromium` and `chromium-driver`),
//! driven through WebDriver: links made by the official SDKs (when `AGREEMENTS_TEST_PYTHON` names
//! a Python with alipay-sdk-python and `AGREEMENTS_TEST_NODE_PATH` a node_modules with the npm
//! alipay-sdk, as `.ci/run` sets them) and by our own client are opened, the consumer signs in and
//! confirms, lands on the merchant's `return_url`, and the SDKs find the agreement and verify the
//! `dut_user_sign` they received; NOTICE + `sign.effect`, a decline, a wrong password, an expired
//! link and a cancellation on `/me` too. One browser serves every flow.
//!
//! Without `chromedriver` on the PATH the test says so and passes; `.ci/run` installs Chromium and
//! sets `AGREEMENTS_TEST_BROWSER=required`, which makes a missing browser a failure.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agreements_client::{Signer, page_link};
use agreements_protocol::{Charset, PrivateKey, SignType};
use agreements_server::notify::{Deliverer, DeliverySettings};
use agreements_store::demo;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::{TestApp, fixture, fixtures, loopback};

use crate::signing::PASSWORD;
const PAGE_SIGN: &str = "alipay.user.agreement.page.sign";

/// chromedriver, stopped when dropped.
struct Driver {
    process: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Driver {
    /// Starts chromedriver, or says why not (and fails when the browser is required).
    async fn start() -> Option<Self> {
        let required = std::env::var("AGREEMENTS_TEST_BROWSER").as_deref() == Ok("required");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = match Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(process) => process,
            Err(e) => {
                assert!(
                    !required,
                    "AGREEMENTS_TEST_BROWSER=required but chromedriver: {e}"
                );
                eprintln!(
                    "NOTE: browser tests NOT run (no chromedriver: apt-get install chromium chromium-driver)"
                );
                return None;
            }
        };
        let driver = Self {
            process,
            port,
            profile: tempfile::tempdir().unwrap(),
        };
        // Ready when it accepts connections (it answers within a second of starting).
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(driver);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("chromedriver did not start");
    }

    /// A headless Chromium session, sized like a phone.
    async fn browser(&self) -> Client {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=390,844",
            &format!("--user-data-dir={}", self.profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "args": args, "binary": chromium() }),
        );
        ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

fn chromium() -> String {
    std::env::var("AGREEMENTS_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// What the merchant's test site received.
#[derive(Default)]
struct Merchant {
    returns: Vec<String>,
    notifications: Vec<String>,
    forms: BTreeMap<String, String>,
}

/// The merchant's site: `/return` (the browser lands there), `/notify` (answers `success`),
/// `/form/{name}` (an SDK's auto-submitting POST form, as a merchant page serves it).
async fn merchant_site(
    state: Arc<Mutex<Merchant>>,
    arrived: Arc<tokio::sync::Notify>,
) -> SocketAddr {
    use axum::extract::{Path as UrlPath, RawQuery, State};
    use axum::response::Html;
    use axum::routing::{get, post};
    type Shared = (Arc<Mutex<Merchant>>, Arc<tokio::sync::Notify>);
    let app = axum::Router::new()
        .route(
            "/return",
            get(|State((m, _)): State<Shared>, RawQuery(q): RawQuery| async move {
                m.lock().unwrap().returns.push(q.unwrap_or_default());
                Html("<!doctype html><title>merchant</title><h1 id=\"returned\">back at the merchant</h1>")
            }),
        )
        .route(
            "/notify",
            post(|State((m, n)): State<Shared>, body: String| async move {
                m.lock().unwrap().notifications.push(body);
                n.notify_one();
                "success"
            }),
        )
        .route(
            "/form/{name}",
            get(|State((m, _)): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                let form = m.lock().unwrap().forms.get(&name).cloned().unwrap_or_default();
                Html(format!("<!doctype html><meta charset=\"utf-8\"><body>{form}</body>"))
            }),
        )
        .with_state((state, arrived));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The SDK tools, when CI provides them.
struct Sdks {
    python: Option<String>,
    node_path: Option<String>,
}

impl Sdks {
    fn from_env() -> Self {
        Self {
            python: std::env::var("AGREEMENTS_TEST_PYTHON").ok(),
            node_path: std::env::var("AGREEMENTS_TEST_NODE_PATH").ok(),
        }
    }
}

fn interop(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .join(script)
}

fn keys(name: &str) -> String {
    fixtures().join("keys").join(name).display().to_string()
}

/// Runs an SDK helper (TZ=Asia/Shanghai: the SDKs stamp local time); its stdout.
fn run(program: &str, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut command = Command::new(program);
    command
        .args(args)
        .env("TZ", "Asia/Shanghai")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A link to open: a URL, or an SDK's POST form served by the merchant's site.
enum Link {
    Url(String),
    Form(String),
}

struct Flow<'a> {
    app: &'a TestApp,
    browser: &'a Client,
    origin: String,
    merchant: Arc<Mutex<Merchant>>,
    merchant_addr: SocketAddr,
    arrived: Arc<tokio::sync::Notify>,
}

impl Flow<'_> {
    fn return_url(&self) -> String {
        format!("http://{}/return", self.merchant_addr)
    }

    fn notify_url(&self) -> String {
        format!("http://{}/notify", self.merchant_addr)
    }

    /// Our own client's GET link, stamped with the test clock (with `return_url` unless
    /// `without_return`).
    fn own_link(&self, biz: &str, without_return: bool) -> Link {
        let key = PrivateKey::parse(&fixture("keys/app_private_key_pkcs1.pem")).unwrap();
        let signer = Signer {
            app_id: demo::APP_ID,
            key: &key,
            sign_type: SignType::Rsa2,
            charset: Charset::Utf8,
        };
        let (return_url, notify_url) = (self.return_url(), self.notify_url());
        let mut extra = vec![("notify_url", notify_url.as_str())];
        if !without_return {
            extra.push(("return_url", return_url.as_str()));
        }
        let now = agreements_protocol::timestamp::format_beijing(self.app.clock_now());
        Link::Url(page_link(&self.app.url, &signer, PAGE_SIGN, biz, &now, &extra).unwrap())
    }

    /// A link made by an official SDK: `python` (alipay-sdk-python `page_execute`) or `node`
    /// (alipay-sdk `pageExecute`), `GET` or `POST`.
    fn sdk_link(&self, sdks: &Sdks, sdk: &str, method: &str, biz: &str) -> Link {
        let (return_url, notify_url) = (self.return_url(), self.notify_url());
        let out = match sdk {
            "python" => run(
                sdks.python.as_deref().unwrap(),
                &[
                    interop("sdk_page.py").to_str().unwrap(),
                    "link",
                    &self.app.url,
                    demo::APP_ID,
                    &keys("app_private_key_pkcs1.b64"),
                    method,
                    biz,
                    &return_url,
                    &notify_url,
                ],
                &[],
                None,
            ),
            _ => run(
                "node",
                &[
                    interop("sdk_page.mjs").to_str().unwrap(),
                    "link",
                    &self.app.url,
                    demo::APP_ID,
                    &keys("app_private_key_pkcs1.pem"),
                    &keys("gateway_public_key_spki.pem"),
                    method,
                    biz,
                    &return_url,
                    &notify_url,
                ],
                &[("NODE_PATH", sdks.node_path.as_deref().unwrap())],
                None,
            ),
        };
        let out = out.trim().to_owned();
        if method == "GET" {
            assert!(out.starts_with(&self.app.url), "{out}");
            Link::Url(out)
        } else {
            assert!(out.contains("<form"), "{out}");
            let name = format!("{sdk}-{}", self.merchant.lock().unwrap().forms.len());
            self.merchant
                .lock()
                .unwrap()
                .forms
                .insert(name.clone(), out);
            Link::Form(format!("http://{}/form/{name}", self.merchant_addr))
        }
    }

    async fn open(&self, link: &Link) {
        let url = match link {
            Link::Url(url) | Link::Form(url) => url,
        };
        self.browser.goto(url).await.unwrap();
    }

    async fn wait_for(&self, id: &str) -> fantoccini::elements::Element {
        self.browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"))
    }

    /// Waits until the page shows an element matching `xpath` (a page reached by a click may not
    /// have loaded when the click returns).
    async fn wait_xpath(&self, xpath: &str) {
        self.browser
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("{xpath}: {e}"));
    }

    async fn text_of(&self, id: &str) -> String {
        self.wait_for(id).await.text().await.unwrap()
    }

    async fn log_in(&self, logon_id: &str, password: &str) {
        self.wait_for("logon_id")
            .await
            .send_keys(logon_id)
            .await
            .unwrap();
        self.wait_for("password")
            .await
            .send_keys(password)
            .await
            .unwrap();
        self.wait_for("login").await.click().await.unwrap();
    }

    /// Signs the browser out of the platform (a fresh consumer for the next flow).
    async fn sign_out(&self) {
        self.browser
            .goto(&format!("{}/me", self.origin))
            .await
            .unwrap();
        self.browser.delete_all_cookies().await.unwrap();
    }

    /// The notification that arrives next at the merchant's site.
    async fn next_notification(&self, seen: usize) -> String {
        loop {
            if let Some(n) = self.merchant.lock().unwrap().notifications.get(seen) {
                return n.clone();
            }
            tokio::time::timeout(Duration::from_secs(30), self.arrived.notified())
                .await
                .expect("a notification within 30 s");
        }
    }

    /// Opens `link`, signs in, checks the terms shown, confirms, and lands on the merchant's
    /// `return_url`; returns the return address's parameters.
    async fn sign(&self, link: &Link, external: &str) -> BTreeMap<String, String> {
        self.open(link).await;
        assert_eq!(self.text_of("merchant").await, "Mall Video");
        assert!(self.browser.source().await.unwrap().contains(external));
        self.log_in(demo::LOGON_EMAIL, PASSWORD).await;
        self.wait_for("confirm").await.click().await.unwrap();
        self.wait_for("returned").await;
        let url = self.browser.current_url().await.unwrap();
        assert!(url.as_str().starts_with(&self.return_url()), "{url}");
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

fn biz(external: &str, extra: &str) -> String {
    format!(
        r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"INDUSTRY|DIGITAL_MEDIA","access_params":{{"channel":"ALIPAYAPP"}},"external_agreement_no":"{external}","external_logon_id":"member-{external}"{extra}}}"#
    )
}

/// The SDKs' own check of a signed form (a notification, or a return address's query).
fn sdk_verifies(sdks: &Sdks, form: &str) {
    if let Some(python) = &sdks.python {
        let out = run(
            python,
            &[
                interop("sdk_page.py").to_str().unwrap(),
                "verify",
                &keys("gateway_public_key_spki.b64"),
            ],
            &[],
            Some(form),
        );
        assert_eq!(out.trim(), "verified");
    }
    if let Some(node_path) = &sdks.node_path {
        let out = run(
            "node",
            &[
                interop("sdk_page.mjs").to_str().unwrap(),
                "verify",
                &keys("app_private_key_pkcs1.pem"),
                &keys("gateway_public_key_spki.pem"),
            ],
            &[("NODE_PATH", node_path)],
            Some(form),
        );
        assert_eq!(out.trim(), "verified");
    }
}

fn form_of(params: &BTreeMap<String, String>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_sign_and_cancel_in_a_real_browser() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let sdks = Sdks::from_env();
    let app = TestApp::spawn().await;
    // The SDKs stamp the real time: the server's clock is now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    app.clock.set(i64::try_from(now).unwrap());
    for user in [demo::USER_PRIMARY, demo::USER_OTHER] {
        crate::signing::with_password(&app, user).await;
    }
    let key = PrivateKey::parse(&fixture("keys/gateway_private_key_pkcs1.pem")).unwrap();
    let deliverer = Deliverer::new(
        app.store.clone(),
        key,
        app.clock.clone(),
        DeliverySettings {
            concurrency: 2,
            timeout: Duration::from_secs(5),
            poll: Duration::from_millis(200),
        },
        app.gateway.outbox().clone(),
        loopback(),
    )
    .unwrap();
    tokio::spawn(deliverer.run(std::future::pending()));
    let merchant = Arc::new(Mutex::new(Merchant::default()));
    let arrived = Arc::new(tokio::sync::Notify::new());
    let merchant_addr = merchant_site(merchant.clone(), arrived.clone()).await;
    let browser = driver.browser().await;
    let flow = Flow {
        app: &app,
        browser: &browser,
        origin: app.url.trim_end_matches("/gateway.do").to_owned(),
        merchant: merchant.clone(),
        merchant_addr,
        arrived,
    };
    let screenshots = std::env::var("AGREEMENTS_SCREENSHOTS").ok();
    let mut notifications = 0;

    // 0. One whole signing, timed: link opened → signed in → confirmed → back at the merchant →
    //    dut_user_sign received and answered. Printed, never asserted (BENCHMARKS.md).
    let started = std::time::Instant::now();
    let params = flow
        .sign(&flow.own_link(&biz("BRW0000", ""), false), "member-BRW0000")
        .await;
    let returned = started.elapsed();
    let notification = flow.next_notification(notifications).await;
    let delivered = started.elapsed();
    notifications += 1;
    assert!(notification.contains(&params["agreement_no"]));
    eprintln!(
        "one signing in Chromium: back at return_url after {} ms, dut_user_sign received after {} ms",
        returned.as_millis(),
        delivered.as_millis()
    );
    flow.sign_out().await;

    // 1. Our own link: a wrong password first, then the right one; the terms; confirm.
    let link = flow.own_link(&biz("BRW0001", ""), false);
    flow.open(&link).await;
    assert_eq!(flow.text_of("external_logon_id").await, "member-BRW0001");
    if let Some(dir) = &screenshots {
        std::fs::write(
            Path::new(dir).join("signing-page.png"),
            browser.screenshot().await.unwrap(),
        )
        .unwrap();
    }
    let png = browser.screenshot().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    flow.log_in(demo::LOGON_EMAIL, "wrong password").await;
    assert!(flow.text_of("message").await.contains("账户名或密码错误"));
    // The form is shown again, empty: the next sign-in types into the new page's fields.
    let params = flow.sign(&link, "member-BRW0001").await;
    assert_eq!(params["status"], "NORMAL");
    crate::signing::verify_signed(&app, &params);
    sdk_verifies(&sdks, &form_of(&params));
    let notification = flow.next_notification(notifications).await;
    notifications += 1;
    assert!(
        notification.contains("notify_type=dut_user_sign"),
        "{notification}"
    );
    sdk_verifies(&sdks, &notification);
    flow.sign_out().await;

    // 2. The official SDKs' links: GET URLs and auto-submitted POST forms.
    let mut made = Vec::new();
    for (sdk, present) in [
        ("python", sdks.python.is_some()),
        ("node", sdks.node_path.is_some()),
    ] {
        if !present {
            eprintln!(
                "NOTE: {sdk} SDK links NOT opened (set AGREEMENTS_TEST_PYTHON / AGREEMENTS_TEST_NODE_PATH)"
            );
            continue;
        }
        for method in ["GET", "POST"] {
            let external = format!("{}{method}1", &sdk[..2].to_uppercase());
            let link = flow.sdk_link(&sdks, sdk, method, &biz(&external, ""));
            let params = flow.sign(&link, &format!("member-{external}")).await;
            assert_eq!(params["external_agreement_no"], external);
            sdk_verifies(&sdks, &form_of(&params));
            let notification = flow.next_notification(notifications).await;
            notifications += 1;
            assert!(
                notification.contains(&format!("external_agreement_no={external}")),
                "{notification}"
            );
            sdk_verifies(&sdks, &notification);
            made.push((external, params["agreement_no"].clone()));
            flow.sign_out().await;
        }
    }
    // The Python SDK finds what was signed, with batch.query and query.
    if let Some(python) = &sdks.python {
        for (external, no) in &made {
            let out = run(
                python,
                &[
                    interop("sdk_page.py").to_str().unwrap(),
                    "query",
                    &app.url,
                    demo::APP_ID,
                    &keys("app_private_key_pkcs1.b64"),
                    &keys("gateway_public_key_spki.b64"),
                    &format!(
                        r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"{}","sign_scene":"INDUSTRY|DIGITAL_MEDIA"}}"#,
                        demo::USER_PRIMARY
                    ),
                    &format!(
                        r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"INDUSTRY|DIGITAL_MEDIA","external_agreement_no":"{external}"}}"#
                    ),
                ],
                &[],
                None,
            );
            let answers: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(answers["query"]["agreement_no"], no.as_str(), "{out}");
            assert!(
                answers["batch"]["usage_agreement_info_list"]
                    .to_string()
                    .contains(no.as_str()),
                "{out}"
            );
        }
    }

    // 3. NOTICE: TEMP until the merchant's sign.effect.
    let params = flow
        .sign(
            &flow.own_link(
                &biz("BRW0002", r#","agreement_effect_type":"NOTICE""#),
                false,
            ),
            "member-BRW0002",
        )
        .await;
    assert_eq!(params["status"], "TEMP");
    let effect = app
        .call_at(
            "alipay.user.agreement.sign.effect",
            &format!(r#"{{"agreement_no":"{}"}}"#, params["agreement_no"]),
        )
        .await;
    assert_eq!(effect.node["status"], "NORMAL", "{:?}", effect.node);
    let _ = flow.next_notification(notifications).await;
    notifications += 1;
    flow.sign_out().await;

    // 4. Declined: back at the merchant with DECLINED, nothing signed.
    let link = flow.own_link(&biz("BRW0003", ""), false);
    flow.open(&link).await;
    flow.log_in(demo::LOGON_EMAIL, PASSWORD).await;
    flow.wait_for("decline").await.click().await.unwrap();
    flow.wait_for("returned").await;
    let url = browser.current_url().await.unwrap();
    assert!(
        url.query_pairs()
            .any(|(k, v)| k == "status" && v == "DECLINED"),
        "{url}"
    );
    flow.sign_out().await;

    // 5. An expired link: effect_time passed.
    let link = flow.own_link(&biz("BRW0004", r#","effect_time":60"#), false);
    flow.open(&link).await;
    app.clock.set(app.clock_now() + 61);
    flow.log_in(demo::LOGON_EMAIL, PASSWORD).await;
    flow.wait_xpath("//h1[text()='链接已过期']").await;
    app.clock.set(app.clock_now() - 61);
    flow.sign_out().await;

    // 6. The automatic payments page: every agreement of the person; cancel one.
    browser.goto(&format!("{}/me", flow.origin)).await.unwrap();
    flow.log_in(demo::LOGON_EMAIL, PASSWORD).await;
    flow.wait_for("account").await;
    let source = browser.source().await.unwrap();
    for (_, no) in &made {
        assert!(source.contains(no.as_str()));
    }
    if let Some(dir) = &screenshots {
        std::fs::write(
            Path::new(dir).join("automatic-payments.png"),
            browser.screenshot().await.unwrap(),
        )
        .unwrap();
    }
    let target = params["agreement_no"].clone();
    browser
        .find(Locator::Css(&format!(
            "li[data-agreement-no=\"{target}\"] a"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    flow.wait_for("cancel").await.click().await.unwrap();
    flow.wait_for("confirm-cancel").await.click().await.unwrap();
    flow.wait_xpath("//dd[@id='status' and text()='已关闭']")
        .await;
    let history = flow.text_of("history").await;
    assert!(history.contains("关闭（本人）"), "{history}");
    let stored = app
        .store
        .agreement_by_no(
            &agreements_domain::ids::AgreementNo::parse(target.as_str()).unwrap(),
            &agreements_domain::ids::AppId::parse(demo::APP_ID).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.agreement.status,
        agreements_domain::AgreementStatus::Unsign
    );
    let _ = notifications;
    browser.close().await.unwrap();
}
