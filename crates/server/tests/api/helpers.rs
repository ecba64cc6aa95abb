//! `TestApp`: the real server with the demo world, the SDK vectors' keys and a fixed clock.

use std::path::PathBuf;
use std::sync::Arc;

use crate::chaos::ChaosProxy;
use agreements_client::{Answer, Client, ClientConfig, ClientError, verify_response};
use agreements_domain::address::AddressPolicy;
use agreements_domain::clock::FixedClock;
use agreements_domain::ids::{AppId, PartnerId};
use agreements_domain::token::{AppAuthToken, TokenStatus};
use agreements_protocol::sign_content::{self, Empties};
use agreements_protocol::timestamp::parse_beijing;
use agreements_protocol::{Charset, Params, PrivateKey, PublicKey, SignType};
use agreements_server::{ConnectionLimits, Gateway, Limits, router, serve};
use agreements_store::test_support::{TestBackend, TestDatabase, postgres_url};
use agreements_store::{AppKey, AppStatus, NewApp, Options, Store, demo};

/// The SDK vectors' fixed time.
pub const VECTOR_TIME: &str = "2024-05-20 13:14:15";
pub const BATCH_QUERY: &str = "alipay.user.agreement.batch.query";
pub const MAX_BODY: usize = 16 * 1024;

/// Extra apps beside the demo one, for the error paths.
pub const APP_MUSIC: &str = "2021000000000002";
pub const APP_TELECOM: &str = "2021000000000003";
pub const APP_NO_GRANTS: &str = "2021000000000004";
pub const APP_OFFLINE: &str = "2021000000000005";
pub const APP_NO_KEYS: &str = "2021000000000006";
/// An ISV's app (owned by the telecom merchant) that acts for others through tokens.
pub const APP_ISV: &str = "2021000000000007";
pub const TOKEN_VIDEO: &str = "202405BBvideo00000000000000000000001";
pub const TOKEN_EXPIRED: &str = "202405BBexpired000000000000000000001";
pub const TOKEN_REVOKED: &str = "202405BBrevoked000000000000000000001";
pub const TOKEN_NO_API: &str = "202405BBnoapi00000000000000000000001";

/// The backend the suite runs against: SQLite, or PostgreSQL when `AGREEMENTS_TEST_BACKEND=postgres`
/// (which needs `AGREEMENTS_TEST_DATABASE_URL`).
pub fn backend() -> TestBackend {
    if std::env::var("AGREEMENTS_TEST_BACKEND").as_deref() == Ok("postgres") {
        let url = postgres_url()
            .expect("AGREEMENTS_TEST_BACKEND=postgres needs AGREEMENTS_TEST_DATABASE_URL");
        TestBackend::Postgres(url)
    } else {
        TestBackend::Sqlite
    }
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/openapi-vectors")
}

pub fn fixture(name: &str) -> String {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// The test servers' notification policy: public addresses, and this machine's IPv4 loopback
/// where the tests' receivers listen.
pub fn loopback() -> AddressPolicy {
    AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()])
}

pub struct TestApp {
    pub url: String,
    pub gateway: Arc<Gateway>,
    pub store: Arc<Store>,
    /// Between the server and PostgreSQL (PostgreSQL backend only).
    pub proxy: Option<ChaosProxy>,
    pub clock: Arc<FixedClock>,
    _db: TestDatabase,
    pub http: reqwest::Client,
    pub app_key: PrivateKey,
    pub platform_public: PublicKey,
}

pub struct Raw {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    /// A server whose store is opened with `options` (its clock is the test's fixed clock).
    pub async fn spawn_with(options: Options) -> Self {
        Self::spawn_full(options, &[]).await
    }

    /// A server holding apps to the rates of `rules`.
    pub async fn spawn_with_rates(rules: &[agreements_server::rates::RateRule]) -> Self {
        Self::spawn_full(Options::default(), rules).await
    }

    async fn spawn_full(options: Options, rules: &[agreements_server::rates::RateRule]) -> Self {
        let db = TestDatabase::new(&backend()).await.unwrap();
        let proxy = match db.postgres_address() {
            Some(address) => Some(ChaosProxy::start(address).await),
            None => None,
        };
        let location = proxy
            .as_ref()
            .map_or_else(|| db.location().to_owned(), |p| db.location_via(&p.address));
        let clock = Arc::new(FixedClock::new(parse_beijing(VECTOR_TIME).unwrap()));
        let options = Options {
            clock: clock.clone(),
            ..options
        };
        let store = Arc::new(Store::open_with(&location, options).await.unwrap());
        let app_public_b64 = fixture("keys/app_public_key_spki.b64");
        demo::load(&store, app_public_b64.trim()).await.unwrap();
        let rsa2 = |key: &str| {
            vec![AppKey {
                sign_type: SignType::Rsa2,
                public_key: key.trim().to_owned(),
            }]
        };
        let all_methods = agreements_protocol::Method::ALL.to_vec();
        for (app_id, partner, status, keys, methods) in [
            (
                APP_MUSIC,
                demo::MERCHANT_MUSIC,
                AppStatus::Online,
                rsa2(&app_public_b64),
                all_methods.clone(),
            ),
            (
                APP_TELECOM,
                demo::MERCHANT_TELECOM,
                AppStatus::Online,
                rsa2(&app_public_b64),
                all_methods.clone(),
            ),
            (
                APP_NO_GRANTS,
                demo::MERCHANT_VIDEO,
                AppStatus::Online,
                rsa2(&app_public_b64),
                vec![],
            ),
            (
                APP_OFFLINE,
                demo::MERCHANT_VIDEO,
                AppStatus::Offline,
                rsa2(&app_public_b64),
                all_methods.clone(),
            ),
            (
                APP_NO_KEYS,
                demo::MERCHANT_VIDEO,
                AppStatus::Online,
                vec![],
                all_methods.clone(),
            ),
            (
                APP_ISV,
                demo::MERCHANT_TELECOM,
                AppStatus::Online,
                rsa2(&app_public_b64),
                all_methods.clone(),
            ),
        ] {
            let app = NewApp {
                app_id: AppId::parse(app_id).unwrap(),
                partner_id: PartnerId::parse(partner).unwrap(),
                name: format!("test app {app_id}"),
                status,
                notify_url: None,
                keys,
                methods,
            };
            store.add_app(&app).await.unwrap();
        }
        for (token, status, expires, methods) in [
            (
                TOKEN_VIDEO,
                TokenStatus::Valid,
                "2099-01-01 00:00:00",
                all_methods.clone(),
            ),
            (
                TOKEN_EXPIRED,
                TokenStatus::Valid,
                "2024-01-01 00:00:00",
                all_methods.clone(),
            ),
            (
                TOKEN_REVOKED,
                TokenStatus::Revoked,
                "2099-01-01 00:00:00",
                all_methods.clone(),
            ),
            (
                TOKEN_NO_API,
                TokenStatus::Valid,
                "2099-01-01 00:00:00",
                vec![agreements_protocol::Method::AgreementUnsign],
            ),
        ] {
            let token = AppAuthToken {
                token: token.to_owned(),
                isv_app_id: AppId::parse(APP_ISV).unwrap(),
                partner_id: PartnerId::parse(demo::MERCHANT_VIDEO).unwrap(),
                auth_app_id: AppId::parse(demo::APP_ID).unwrap(),
                status,
                expires_at: parse_beijing(expires).unwrap(),
                methods,
            };
            store.add_app_auth_token(&token).await.unwrap();
        }
        let platform_key =
            PrivateKey::parse(&fixture("keys/gateway_private_key_pkcs1.pem")).unwrap();
        let limits = Limits {
            timestamp_window: Some(900),
            max_body_bytes: MAX_BODY,
        };
        let gateway = Gateway::new(store.clone(), platform_key, clock.clone(), limits)
            .with_notify_policy(loopback())
            .with_rate_limits(agreements_server::rates::RateLimits::new(rules).unwrap());
        // The audit writer stops when the gateway (its last handle) is dropped.
        let (trail, writer) =
            agreements_server::audit::AuditTrail::start(store.clone(), gateway.metrics().clone());
        tokio::spawn(writer.run(std::future::pending()));
        let gateway = Arc::new(gateway.with_audit(trail));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(gateway.clone(), std::time::Duration::from_secs(10));
        tokio::spawn(serve(
            listener,
            app,
            std::future::pending(),
            ConnectionLimits::default(),
            gateway.metrics().clone(),
        ));
        TestApp {
            url: format!("http://{addr}/gateway.do"),
            gateway,
            store,
            proxy,
            clock,
            _db: db,
            http: reqwest::Client::new(),
            app_key: PrivateKey::parse(&fixture("keys/app_private_key_pkcs1.pem")).unwrap(),
            platform_public: PublicKey::parse(&fixture("keys/gateway_public_key_spki.pem"))
                .unwrap(),
        }
    }

    /// Where the database is (a SQLite file's path, or a PostgreSQL URL).
    pub fn database(&self) -> &str {
        self._db.location()
    }

    /// The fixed clock's time.
    pub fn clock_now(&self) -> i64 {
        use agreements_domain::clock::Clock as _;
        self.clock.now()
    }

    pub fn client(&self, app_id: &str, sign_type: SignType, charset: Charset) -> Client {
        let config = ClientConfig {
            gateway_url: self.url.clone(),
            app_id: app_id.to_owned(),
            app_private_key: self.app_key.clone(),
            platform_public_key: self.platform_public.clone(),
            sign_type,
            charset,
            encryption: None,
            cert: None,
        };
        Client::with_http(config, self.http.clone())
    }

    /// Calls `method` as the demo app (RSA2, UTF-8) at the fixed time; the answer's signature
    /// has been verified.
    pub async fn call(&self, method: &str, biz: &str) -> Answer {
        self.call_as(demo::APP_ID, method, biz).await
    }

    /// Calls `method` as the demo app, stamped with the test clock's time.
    pub async fn call_at(&self, method: &str, biz: &str) -> Answer {
        let now = agreements_protocol::timestamp::format_beijing(self.clock_now());
        self.try_call_stamped(demo::APP_ID, method, biz, &[], &now)
            .await
            .unwrap()
    }

    pub async fn call_as(&self, app_id: &str, method: &str, biz: &str) -> Answer {
        self.try_call_as(app_id, method, biz).await.unwrap()
    }

    pub async fn try_call_as(
        &self,
        app_id: &str,
        method: &str,
        biz: &str,
    ) -> Result<Answer, ClientError> {
        self.try_call_with(app_id, method, biz, &[]).await
    }

    /// Calls with extra public parameters (e.g. `app_auth_token`).
    pub async fn try_call_with(
        &self,
        app_id: &str,
        method: &str,
        biz: &str,
        extra: &[(&str, &str)],
    ) -> Result<Answer, ClientError> {
        self.try_call_stamped(app_id, method, biz, extra, VECTOR_TIME)
            .await
    }

    /// Calls `method` as the ISV's app acting for the merchant that granted `token`.
    pub async fn call_as_isv(&self, method: &str, biz: &str, token: &str) -> Answer {
        self.try_call_with(APP_ISV, method, biz, &[("app_auth_token", token)])
            .await
            .unwrap()
    }

    /// Calls stamped `timestamp`.
    pub async fn try_call_stamped(
        &self,
        app_id: &str,
        method: &str,
        biz: &str,
        extra: &[(&str, &str)],
        timestamp: &str,
    ) -> Result<Answer, ClientError> {
        let client = self.client(app_id, SignType::Rsa2, Charset::Utf8);
        let request = client.sign(method, biz, timestamp, extra).unwrap();
        let (status, body) = client.send(&request).await.unwrap();
        assert_eq!(status, 200);
        verify_response(
            &body,
            method,
            Charset::Utf8,
            &self.platform_public,
            SignType::Rsa2,
        )
    }

    /// Sends raw bytes: `query` as is, `body` with `content_type` when given.
    pub async fn call_raw(
        &self,
        http_method: &str,
        query: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Raw {
        let url = if query.is_empty() {
            self.url.clone()
        } else {
            format!("{}?{query}", self.url)
        };
        let mut request = match http_method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.body(body.into()).send().await.unwrap();
        Raw {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }
}

/// Signs an arbitrary parameter set with the vectors' app key and returns it form-encoded
/// (`sign` last). Values are encoded in `charset`.
pub fn signed_form<V: AsRef<str>>(
    pairs: &[(&str, V)],
    sign_type: SignType,
    charset: Charset,
    empties: Empties,
) -> String {
    let key = PrivateKey::parse(&fixture("keys/app_private_key_pkcs1.pem")).unwrap();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_ref())).collect();
    let params = Params::from_pairs(charset, &pairs).unwrap();
    let sign = key
        .sign(sign_type, &sign_content::request(&params, empties))
        .unwrap();
    let mut parts: Vec<String> = pairs
        .iter()
        .map(|(n, v)| {
            format!(
                "{n}={}",
                form_urlencoded::byte_serialize(&charset.encode(v)).collect::<String>()
            )
        })
        .collect();
    parts.push(format!(
        "sign={}",
        form_urlencoded::byte_serialize(sign.as_bytes()).collect::<String>()
    ));
    parts.join("&")
}

/// The usual public parameters of the demo app, with `biz`.
pub fn common(biz: &str) -> Vec<(&'static str, String)> {
    vec![
        ("app_id", demo::APP_ID.to_owned()),
        ("method", BATCH_QUERY.to_owned()),
        ("charset", "utf-8".to_owned()),
        ("format", "json".to_owned()),
        ("sign_type", "RSA2".to_owned()),
        ("timestamp", VECTOR_TIME.to_owned()),
        ("version", "1.0".to_owned()),
        ("biz_content", biz.to_owned()),
    ]
}

/// Parses an unverified body to (node name, node), for answers that are meant to be unsigned.
pub fn parse_unsigned(body: &[u8]) -> (String, serde_json::Map<String, serde_json::Value>, bool) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
    let object = value.as_object().unwrap();
    let (name, node) = object.iter().next().unwrap();
    (
        name.clone(),
        node.as_object().unwrap().clone(),
        object.contains_key("sign"),
    )
}

pub const VECTOR_BIZ: &str = r#"{"alipay_user_id":"2088101122675263","personal_product_code":"GENERAL_WITHHOLDING_P","sign_scene":"INDUSTRY|DIGITAL_MEDIA"}"#;

/// POSTs `pairs`, signed with the vectors' app key, as a UTF-8 form.
pub async fn post_signed(app: &TestApp, pairs: &[(&str, String)]) -> Raw {
    app.call_raw(
        "POST",
        "",
        Some("application/x-www-form-urlencoded;charset=utf-8"),
        signed_form(pairs, SignType::Rsa2, Charset::Utf8, Empties::Drop),
    )
    .await
}

/// Sends the demo app's batch query of `biz` with `extra` parameters, signed, as a form POST.
pub async fn signed_call(app: &TestApp, biz: &str, extra: &[(&'static str, &str)]) -> Raw {
    let mut pairs = common(biz);
    pairs.extend(extra.iter().map(|(n, v)| (*n, (*v).to_owned())));
    post_signed(app, &pairs).await
}

/// POSTs the demo app's batch query with a signature that does not verify.
pub async fn post_forged(app: &TestApp) -> Raw {
    let mut pairs = common(VECTOR_BIZ);
    pairs.push(("sign", "AAAA".to_owned()));
    let form: Vec<String> = pairs
        .iter()
        .map(|(n, v)| {
            format!(
                "{n}={}",
                form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    app.call_raw(
        "POST",
        "",
        Some("application/x-www-form-urlencoded;charset=utf-8"),
        form.join("&"),
    )
    .await
}
