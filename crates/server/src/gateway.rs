//! The gateway pipeline: bytes in, signed bytes out. Every request gets HTTP 200 and a body;
//! the body is signed whenever the app can be known (openapi-gateway.md §2.5, §3). The checks
//! and their order are the protocol crate's ([`request::check`]); this file supplies the lookups
//! they call back for and renders the answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use agreements_domain::address::AddressPolicy;
use agreements_domain::clock::Clock;
use agreements_domain::ids::AppId;
use agreements_domain::token::AppAuthToken;
use agreements_domain::{BizError, Caller, Merchant};
use agreements_protocol::aes::{ContentKey, EncryptType};
use agreements_protocol::charset::Charset;
use agreements_protocol::envelope;
use agreements_protocol::method::ERROR_RESPONSE_NODE;
use agreements_protocol::request::{self, Head, Lookups, Refusal};
use agreements_protocol::v3;
use agreements_protocol::{GatewayCode, Method, Params, PrivateKey, ProtocolError};
use agreements_store::{Store, StoreError};

use crate::apps::{App, AppCache, is_enabled};
use crate::cache::{Catalogue, Signatures};
use crate::certs::{PlatformTrust, TrustCache};
use crate::failure::Failure;
use crate::methods::{self, Answer, Call, Request};
use crate::metrics::{Metrics, Phase, RequestLabels};
use crate::notify::Outbox;

/// A rendered answer: the body bytes and the charset they are in — or, for a page method, what
/// the browser is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The response body (empty for a page method).
    pub body: Vec<u8>,
    /// The charset of `body`, for the Content-Type header.
    pub charset: Charset,
    /// For a page method (§8.5): where the browser goes, or why it cannot.
    pub page: Option<Page>,
}

/// The answer to a page method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// The signing session opened (or re-found) for the link: the browser goes to its page.
    Signing(Box<agreements_store::SigningSession>),
    /// The link was refused: shown as an error page with its code, sub_code and sub_msg.
    Refused(agreements_protocol::WireError),
}

/// What a request says beside its content that a method may use (v2 parameters; none in v3).
#[derive(Debug, Default, Clone, Copy)]
struct Said<'a> {
    notify_url: Option<&'a str>,
    return_url: Option<&'a str>,
    timestamp: &'a str,
    sign: &'a str,
}

/// Where one request's time went, filled in as it is answered (atomics: the request's future
/// holds it across awaits and must stay `Send`).
#[derive(Debug)]
struct Timing {
    started: Instant,
    verify_ns: AtomicU64,
    store_ns: AtomicU64,
}

impl Timing {
    fn start() -> Self {
        Self {
            started: Instant::now(),
            verify_ns: AtomicU64::new(0),
            store_ns: AtomicU64::new(0),
        }
    }

    fn record(slot: &AtomicU64, since: Instant) {
        let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        slot.store(nanos, Ordering::Relaxed);
    }

    fn get(slot: &AtomicU64) -> Option<std::time::Duration> {
        match slot.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(std::time::Duration::from_nanos(nanos)),
        }
    }

    /// Records the request's phases and total in `metrics`, with `render` and `sign` measured
    /// by the caller.
    fn observe(
        &self,
        metrics: &Metrics,
        protocol: &'static str,
        render: std::time::Duration,
        sign: Option<std::time::Duration>,
    ) {
        if let Some(verify) = Self::get(&self.verify_ns) {
            metrics.spent(protocol, Phase::Verify, verify);
        }
        if let Some(store) = Self::get(&self.store_ns) {
            metrics.spent(protocol, Phase::Store, store);
        }
        metrics.spent(protocol, Phase::Render, render);
        if let Some(sign) = sign {
            metrics.spent(protocol, Phase::Sign, sign);
        }
        metrics.spent(protocol, Phase::Total, self.started.elapsed());
    }
}

/// Whether a v2 request needs the platform's certificates: certificate mode, or the download.
fn needs_trust(head: &Head) -> bool {
    head.cert_mode || head.method == Some(Method::AlipayCertDownload)
}

/// One answered request, as its log line and the metrics record it.
struct Answered<'a> {
    protocol: &'static str,
    app_id: Option<&'a str>,
    method: Option<Method>,
    code: &'static str,
    sub_code: &'static str,
    status: u16,
    signed: bool,
    encrypted: bool,
    /// The cause the operator must see, if any.
    detail: Option<String>,
}

/// A v3 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Reply {
    /// The HTTP status.
    pub status: u16,
    /// Its Content-Type.
    pub content_type: &'static str,
    /// The `alipay-*` headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Gateway settings that requests see.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Accepted timestamp distance in seconds, `None` for no check.
    pub timestamp_window: Option<u64>,
    /// Largest request body.
    pub max_body_bytes: usize,
}

/// Everything a request needs, shared by all requests.
#[derive(Debug)]
pub struct Gateway {
    store: Arc<Store>,
    platform_key: PrivateKey,
    clock: Arc<dyn Clock>,
    limits: Limits,
    apps: AppCache,
    catalogue: Catalogue,
    outbox: Outbox,
    notify_policy: AddressPolicy,
    signatures_kept: Signatures,
    trust: TrustCache,
    nonces: crate::nonces::Nonces,
    metrics: Arc<Metrics>,
    rates: crate::rates::RateLimits,
    audit: crate::audit::AuditTrail,
    web: crate::web::Settings,
    logins: crate::web::throttle::Logins,
    /// Signatures made so far.
    signatures: AtomicU64,
}

/// Whom a request acts for: the merchant that granted its ISV token, or its app's owner.
#[derive(Debug)]
pub struct Acting {
    /// The merchant.
    pub merchant: Merchant,
    /// The ISV authorisation the request carries, if any.
    pub token: Option<AppAuthToken>,
}

impl request::Actor for Acting {
    fn is_enabled(&self) -> bool {
        is_enabled(&self.merchant)
    }
}

/// What the checks of one request look up: whom it acts for, through the gateway, and the
/// platform's roots read for it.
struct Checking<'a> {
    gateway: &'a Gateway,
    roots: Option<&'a [String]>,
}

impl Lookups for Checking<'_> {
    type App = App;
    type Actor = Acting;
    type Error = Failure;

    fn root_cert_sns(&self) -> Option<&[String]> {
        self.roots
    }

    fn first_use(&self, app_id: &str, nonce: &str, until_ms: i64, now_ms: i64) -> bool {
        self.gateway
            .nonces
            .first_use(app_id, nonce, until_ms, now_ms)
    }

    fn admit(&self, app_id: &str, method: Method) -> Result<(), ProtocolError> {
        self.gateway.rates.admit(app_id, method)
    }

    async fn actor(
        &self,
        app: &App,
        method: Method,
        app_auth_token: Option<&str>,
        now: i64,
    ) -> Result<Acting, Refusal<Failure>> {
        self.gateway.acting(app, method, app_auth_token, now).await
    }
}

impl Gateway {
    /// Whom a request of `app` for `method` acts for: with an `app_auth_token`, the merchant
    /// that granted it, else the app's owner.
    async fn acting(
        &self,
        app: &App,
        method: Method,
        app_auth_token: Option<&str>,
        now: i64,
    ) -> Result<Acting, Refusal<Failure>> {
        let lookup = |e: StoreError| Refusal::Lookup(Failure::from(e));
        let inconsistent = |detail: String| Refusal::Lookup(BizError::SystemError(detail).into());
        let Some(token) = app_auth_token else {
            let merchant = app.merchant.clone().ok_or_else(|| {
                inconsistent(format!("app {} has no owner merchant", app.record.app_id))
            })?;
            return Ok(Acting {
                merchant,
                token: None,
            });
        };
        let token = self
            .store
            .app_auth_token(token)
            .await
            .map_err(lookup)?
            .ok_or(ProtocolError::InvalidAppAuthToken)?;
        let partner = token.authorize(&app.record.app_id, method, now)?;
        let merchant = self
            .store
            .merchant(partner)
            .await
            .map_err(lookup)?
            .ok_or_else(|| inconsistent(format!("token merchant {partner} does not exist")))?;
        Ok(Acting {
            merchant,
            token: Some(token),
        })
    }
}

impl Gateway {
    /// A gateway over `store`, signing with `platform_key`.
    pub fn new(
        store: Arc<Store>,
        platform_key: PrivateKey,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Self {
        Self {
            signatures_kept: Signatures::new(
                &platform_key,
                crate::cache::DEFAULT_SIGNATURE_CACHE_BYTES,
                true,
            ),
            store,
            platform_key,
            clock,
            limits,
            apps: AppCache::default(),
            catalogue: Catalogue::default(),
            outbox: Outbox::default(),
            notify_policy: AddressPolicy::default(),
            trust: TrustCache::default(),
            nonces: crate::nonces::Nonces::default(),
            metrics: Arc::new(Metrics::default()),
            rates: crate::rates::RateLimits::default(),
            audit: crate::audit::AuditTrail::default(),
            web: crate::web::Settings::default(),
            logins: crate::web::throttle::Logins::new(crate::web::throttle::Limits::default()),
            signatures: AtomicU64::new(0),
        }
    }

    /// The same gateway, with the web pages' settings.
    pub fn with_web(self, web: crate::web::Settings) -> Self {
        Self {
            logins: crate::web::throttle::Logins::new(web.logins),
            web,
            ..self
        }
    }

    /// The same gateway, holding apps to `rates`.
    pub fn with_rate_limits(self, rates: crate::rates::RateLimits) -> Self {
        Self { rates, ..self }
    }

    /// The same gateway, keeping at most `bytes` of answer signatures; `answers = false` keeps
    /// only failures' (which every gateway does: junk naming an app costs a lookup).
    pub fn with_signature_cache(self, bytes: u64, answers: bool) -> Self {
        let signatures_kept = Signatures::new(&self.platform_key, bytes, answers);
        Self {
            signatures_kept,
            ..self
        }
    }

    /// The same gateway, recording reads and changes of agreements in `audit`.
    pub fn with_audit(self, audit: crate::audit::AuditTrail) -> Self {
        Self { audit, ..self }
    }

    /// The audit trail.
    pub fn audit(&self) -> &crate::audit::AuditTrail {
        &self.audit
    }

    /// The login throttle of the web pages.
    pub fn logins(&self) -> &crate::web::throttle::Logins {
        &self.logins
    }

    /// The web pages' settings.
    pub fn web(&self) -> &crate::web::Settings {
        &self.web
    }

    /// Products and contracts, cached.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Where notifications may go.
    pub fn notify_policy(&self) -> &AddressPolicy {
        &self.notify_policy
    }

    /// The platform key (signs answers, notifications and return addresses).
    pub fn platform_key(&self) -> &PrivateKey {
        &self.platform_key
    }

    /// The same gateway, accepting the notification addresses `policy` allows (by default
    /// public ones only).
    pub fn with_notify_policy(self, policy: AddressPolicy) -> Self {
        Self {
            notify_policy: policy,
            ..self
        }
    }

    /// The handle that wakes the delivery worker when a request queued notifications.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How many responses it has signed with the platform key since it started (a failure
    /// answered with a kept signature is not counted).
    pub fn signatures_made(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }

    /// The metrics (`GET /metrics`).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The metrics exposition, with the outbox's backlog read now.
    pub async fn render_metrics(&self) -> String {
        let backlog = match self.store.outbox_backlog().await {
            Ok((pending, oldest)) => {
                let age = oldest.map_or(0, |created| self.clock.now() - created);
                Some((pending, age as f64))
            }
            Err(e) => {
                tracing::warn!(
                    error = crate::telemetry::chain(&e),
                    "reading the outbox backlog failed"
                );
                None
            }
        };
        self.metrics.render(backlog, self.signatures_kept.size())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Answers one request made of its raw query string, Content-Type and body.
    pub async fn handle(&self, query: &[u8], content_type: Option<&[u8]>, body: &[u8]) -> Reply {
        let timing = Timing::start();
        match Params::decode(query, content_type, body) {
            Ok(params) => {
                let head = Head::of(&params);
                let app = self.app(head.app_id.as_deref()).await;
                let trust = self.trust(needs_trust(&head)).await;
                let (result, encrypt_type) =
                    self.run(&params, &app, trust.as_deref(), &timing).await;
                let sealing = encrypt_type.and_then(|t| {
                    let app = app.as_ref().ok()?.as_deref()?;
                    Some((t, app.content_key.as_ref()?))
                });
                self.reply(&head, &app, result, sealing, trust.as_deref(), &timing)
                    .await
            }
            Err(error) => {
                self.refuse(Head::scan(query, content_type, body), error, &timing)
                    .await
            }
        }
    }

    /// Answers a request whose body was larger than the limit (or could not be read), from what
    /// its query string says.
    pub async fn refuse_body(
        &self,
        query: &[u8],
        content_type: Option<&[u8]>,
        error: ProtocolError,
    ) -> Reply {
        let head = Head::scan(query, content_type, b"");
        self.refuse(head, error, &Timing::start()).await
    }

    /// Answers `error` to a request known only by its `head`.
    async fn refuse(&self, head: Head, error: ProtocolError, timing: &Timing) -> Reply {
        let app = self.app(head.app_id.as_deref()).await;
        let trust = self.trust(needs_trust(&head)).await;
        self.reply(
            &head,
            &app,
            Err(error.into()),
            None,
            trust.as_deref(),
            timing,
        )
        .await
    }

    /// Answers one OpenAPI v3 request (§7): its checks (`v3::check`), the same method code as
    /// v2, and a v3 answer — the fields as JSON (encrypted when asked), or
    /// `{code, message, links}` with the code's HTTP status; signed in the response headers
    /// whenever the app is known.
    pub async fn handle_v3(&self, request: &v3::Request<'_>) -> V3Reply {
        let timing = Timing::start();
        let head = v3::Head::of(request);
        let app = self.app(head.app_id.as_deref()).await;
        let trust = self.trust(head.cert_mode).await;
        let now = self.clock.now();
        let checked_app = match &app {
            Ok(app) => Ok(app.as_deref()),
            Err(e) => Err(Failure::from(e.clone())),
        };
        let lookups = Checking {
            gateway: self,
            roots: trust
                .as_deref()
                .filter(|t| t.is_set_up())
                .map(|t| t.root_sns.as_slice()),
        };
        let window = self.limits.timestamp_window;
        let verifying = Instant::now();
        let checked = v3::check(request, checked_app, &lookups, now, window).await;
        Timing::record(&timing.verify_ns, verifying);
        let (result, encrypt_type) = match checked {
            Err(refusal) => (Err(Failure::from(refusal)), None),
            Ok(checked) => {
                self.dispatch(
                    checked,
                    Said::default(),
                    "v3",
                    now,
                    trust.as_deref(),
                    &timing,
                )
                .await
            }
        };
        let rendering = Instant::now();
        let trace_id = agreements_protocol::crypto::random_alphanumeric(32).unwrap_or_default();
        let content_key = app
            .as_ref()
            .ok()
            .and_then(|a| a.as_deref())
            .and_then(|a| a.content_key.as_ref());
        let (status, body, content_type, code, sub_code, detail) = match result
            .and_then(|answer| {
                serde_json::to_vec(&answer)
                    .map_err(|e| Failure::from(BizError::SystemError(e.to_string())))
            })
            .and_then(|json| match (encrypt_type, content_key) {
                (Some(t), Some(key)) => key
                    .encrypt(t, &json)
                    .map(|sealed| (sealed.into_bytes(), "text/plain;charset=utf-8"))
                    .map_err(|e| Failure::from(BizError::SystemError(e.to_string()))),
                _ => Ok((json, "application/json;charset=utf-8")),
            }) {
            Ok((body, content_type)) => (200, body, content_type, "10000", "", None),
            Err(failure) => {
                if failure.is_store_outage() {
                    self.metrics.store_error();
                }
                let wire = failure.wire();
                let (status, _) = v3::status_and_code(&wire);
                (
                    status,
                    v3::error_body(&wire, &trace_id),
                    "application/json;charset=utf-8",
                    wire.code.code(),
                    wire.sub_code,
                    failure.detail(),
                )
            }
        };
        let render = rendering.elapsed();
        let signing = Instant::now();
        let mut headers = vec![("alipay-trace-id", trace_id)];
        let known = matches!(app, Ok(Some(_)));
        if known {
            let timestamp = now.saturating_mul(1000).to_string();
            let nonce = agreements_protocol::crypto::random_alphanumeric(32).unwrap_or_default();
            let content = v3::response_sign_content(&timestamp, &nonce, &body);
            self.signatures.fetch_add(1, Ordering::Relaxed);
            match self
                .platform_key
                .sign(agreements_protocol::SignType::Rsa2, &content)
            {
                Ok(signature) => {
                    headers.push(("alipay-timestamp", timestamp));
                    headers.push(("alipay-nonce", nonce));
                    headers.push(("alipay-signature", signature));
                    if let Some(sn) = trust.as_deref().and_then(|t| t.signing_sn.clone()) {
                        headers.push(("alipay-sn", sn));
                    }
                }
                Err(e) => tracing::error!(error = %e, "signing failed; answering unsigned"),
            }
        }
        let sign_spent = known.then(|| signing.elapsed());
        self.record(
            Answered {
                protocol: "v3",
                app_id: head.app_id.as_deref(),
                method: head.method,
                code,
                sub_code,
                status,
                signed: known,
                encrypted: encrypt_type.is_some() && status == 200,
                detail,
            },
            &timing,
            Some((render, sign_spent)),
        );
        V3Reply {
            status,
            content_type,
            headers,
            body,
        }
    }

    /// The platform's certificates, read only when `needed` (certificate-mode requests and the
    /// certificate download). A failed read is logged; the request is then answered as if
    /// certificate mode were not set up.
    async fn trust(&self, needed: bool) -> Option<Arc<PlatformTrust>> {
        if !needed {
            return None;
        }
        match self.trust.get(&self.store, &self.platform_key).await {
            Ok(trust) => Some(trust),
            Err(e) => {
                tracing::error!(error = %crate::telemetry::chain(&e), "reading the platform certificates failed");
                None
            }
        }
    }

    /// The app the request names: it decides how even a failure is answered.
    async fn app(&self, app_id: Option<&str>) -> Result<Option<Arc<App>>, StoreError> {
        match app_id.map(AppId::parse) {
            Some(Ok(app_id)) => self.apps.get(&self.store, &app_id).await,
            Some(Err(_)) | None => Ok(None),
        }
    }

    /// The checks of §2.5, then the method; with the request's encryption when the checks
    /// passed (the method's answer, success or failure, is then encrypted in kind).
    async fn run(
        &self,
        params: &Params,
        app: &Result<Option<Arc<App>>, StoreError>,
        trust: Option<&PlatformTrust>,
        timing: &Timing,
    ) -> (Result<Answer, Failure>, Option<EncryptType>) {
        let app = match app {
            Ok(app) => Ok(app.as_deref()),
            Err(e) => Err(Failure::from(e.clone())),
        };
        let now = self.clock.now();
        let lookups = Checking {
            gateway: self,
            roots: trust
                .filter(|t| t.is_set_up())
                .map(|t| t.root_sns.as_slice()),
        };
        let window = self.limits.timestamp_window;
        let verifying = Instant::now();
        let checked = request::check(params, app, &lookups, now, window).await;
        Timing::record(&timing.verify_ns, verifying);
        let checked = match checked {
            Ok(checked) => checked,
            Err(refusal) => return (Err(refusal.into()), None),
        };
        let said = Said {
            notify_url: params.non_empty("notify_url"),
            return_url: params.non_empty("return_url"),
            timestamp: params.get("timestamp").unwrap_or_default(),
            sign: params.get("sign").unwrap_or_default(),
        };
        self.dispatch(checked, said, "v2", now, trust, timing).await
    }

    /// Runs the method of a request that passed its checks (v2 or v3); with the request's
    /// encryption, which its answer uses. The answer is recorded in the audit trail when the
    /// method noted whose agreements it concerned.
    async fn dispatch(
        &self,
        checked: request::Checked<'_, App, Acting>,
        said: Said<'_>,
        channel: &'static str,
        now: i64,
        trust: Option<&PlatformTrust>,
        timing: &Timing,
    ) -> (Result<Answer, Failure>, Option<EncryptType>) {
        let running = Instant::now();
        let encrypt_type = checked.encryption.map(|e| e.encrypt_type);
        let Acting { merchant, token } = checked.actor;
        let note = crate::audit::Note::default();
        let call = Call {
            store: &self.store,
            catalogue: &self.catalogue,
            app: checked.app,
            caller: Caller {
                merchant: merchant.partner_id,
                group: merchant.group_id,
            },
            now,
            request: Request {
                sign_type: checked.sign_type,
                notify_url: said.notify_url,
                token,
                return_url: said.return_url,
                timestamp: said.timestamp,
                sign: said.sign,
            },
            outbox: &self.outbox,
            notify_policy: &self.notify_policy,
            signing_ttl_secs: self.web.signing_ttl_secs,
            platform: trust,
            note: &note,
        };
        let result = methods::dispatch(checked.method, &call, &checked.biz_content).await;
        Timing::record(&timing.store_ns, running);
        let wire = result.as_ref().err().map(Failure::wire);
        let outcome =
            wire.as_ref()
                .map_or(crate::audit::Outcome::SUCCESS, |w| crate::audit::Outcome {
                    code: w.code.code(),
                    sub_code: w.sub_code,
                });
        let asker = crate::audit::Asker {
            channel,
            method: checked.method.name(),
            app_id: Some(checked.app.record.app_id.as_str()),
            partner_id: Some(call.caller.merchant.as_str()),
            token: call.request.token.as_ref(),
        };
        self.audit
            .record(asker, &note, outcome, self.clock.now_ms())
            .await;
        (result, encrypt_type)
    }

    /// Renders the answer: the method's node (or `error_response` when the method is missing or
    /// unknown), in the request charset, encrypted with `sealing` (§6: the node becomes a quoted
    /// base64 string, and the signature covers it with its quotes), signed when the app is
    /// known; and logs it, with the cause of any failure the operator must see.
    async fn reply(
        &self,
        head: &Head,
        app: &Result<Option<Arc<App>>, StoreError>,
        result: Result<Answer, Failure>,
        sealing: Option<(EncryptType, &ContentKey)>,
        trust: Option<&PlatformTrust>,
        timing: &Timing,
    ) -> Reply {
        if head.method.is_some_and(Method::is_page) {
            return self.page_reply(head, result, timing);
        }
        let rendering = Instant::now();
        let node = head
            .method
            .map_or(ERROR_RESPONSE_NODE, Method::response_node);
        let rendered = result.and_then(|answer| {
            envelope::success_node(&answer)
                .map_err(|e| Failure::from(BizError::SystemError(e.to_string())))
        });
        let (json, code, sub_code, detail) = match rendered {
            Ok(json) => (json, GatewayCode::Success.code(), "", None),
            Err(failure) => {
                if failure.is_store_outage() {
                    self.metrics.store_error();
                }
                let wire = failure.wire();
                let json = envelope::error_node(&wire);
                (json, wire.code.code(), wire.sub_code, failure.detail())
            }
        };
        let known = matches!(app, Ok(Some(_)));
        let plain = head.charset.encode(&json);
        let (node_bytes, encrypted, code, sub_code, detail) = match sealing {
            None => (plain, false, code, sub_code, detail),
            Some((encrypt_type, key)) => match envelope::seal(key, encrypt_type, &plain) {
                Ok(sealed) => (sealed.into(), true, code, sub_code, detail),
                Err(e) => {
                    // Never the plaintext the client asked to have encrypted.
                    let wire = Failure::from(BizError::SystemError(e.to_string())).wire();
                    let json = envelope::error_node(&wire);
                    let bytes = head.charset.encode(&json).into_owned();
                    (
                        bytes.into(),
                        false,
                        wire.code.code(),
                        wire.sub_code,
                        Some(e.to_string()),
                    )
                }
            },
        };
        let render = rendering.elapsed();
        let signing = Instant::now();
        let sign = known.then(|| {
            let (sign, kept) = self.signatures_kept.get(
                head.app_id.as_deref().unwrap_or_default(),
                head.sign_type,
                &node_bytes,
                !sub_code.is_empty(),
                |digest| {
                    self.signatures.fetch_add(1, Ordering::Relaxed);
                    self.platform_key.sign_digest(digest)
                },
            );
            self.metrics.signature_kept(kept);
            sign
        });
        let sign_spent = known.then(|| signing.elapsed());
        let sign = sign.transpose().unwrap_or_else(|e| {
            tracing::error!(error = %e, "signing failed; answering unsigned");
            None
        });
        // Certificate mode: name the certificate of the key that signed.
        let cert_sn = if head.cert_mode && sign.is_some() {
            trust.and_then(|t| t.signing_sn.as_deref())
        } else {
            None
        };
        let body = envelope::wrap(node, &node_bytes, cert_sn, sign.as_deref());
        self.record(
            Answered {
                protocol: "v2",
                app_id: head.app_id.as_deref(),
                method: head.method,
                code,
                sub_code,
                status: 200,
                signed: known,
                encrypted,
                detail,
            },
            timing,
            Some((render, sign_spent)),
        );
        Reply {
            body,
            charset: head.charset,
            page: None,
        }
    }

    /// The answer to a page method: the session the browser goes to, or the refusal it is
    /// shown; logged like any answer.
    fn page_reply(&self, head: &Head, result: Result<Answer, Failure>, timing: &Timing) -> Reply {
        let failure = match result {
            Ok(Answer::PageSign(session)) => Ok(session),
            Ok(_) => Err(Failure::from(BizError::SystemError(
                "a page method answered as an API method".into(),
            ))),
            Err(failure) => Err(failure),
        };
        let (page, code, sub_code, detail) = match failure {
            Ok(session) => (
                Page::Signing(session),
                GatewayCode::Success.code(),
                "",
                None,
            ),
            Err(failure) => {
                let wire = failure.wire();
                let (code, sub_code) = (wire.code.code(), wire.sub_code);
                (Page::Refused(wire), code, sub_code, failure.detail())
            }
        };
        self.record(
            Answered {
                protocol: "v2",
                app_id: head.app_id.as_deref(),
                method: head.method,
                code,
                sub_code,
                status: 200,
                signed: false,
                encrypted: false,
                detail,
            },
            timing,
            None,
        );
        Reply {
            body: Vec::new(),
            charset: head.charset,
            page: Some(page),
        }
    }

    /// Logs an answer (at error level with the cause the operator must see) and records it in
    /// the metrics: its code, and the time of its phases (`phases`: render and sign, measured
    /// by the caller; a page has only its total).
    fn record(
        &self,
        answered: Answered<'_>,
        timing: &Timing,
        phases: Option<(std::time::Duration, Option<std::time::Duration>)>,
    ) {
        let Answered {
            protocol,
            app_id,
            method,
            code,
            sub_code,
            status,
            signed,
            encrypted,
            detail,
        } = answered;
        let method = method.map_or("-", Method::name);
        self.metrics.answered(RequestLabels {
            protocol,
            method,
            code,
            sub_code,
        });
        match phases {
            Some((render, sign)) => timing.observe(&self.metrics, protocol, render, sign),
            None => self
                .metrics
                .spent(protocol, Phase::Total, timing.started.elapsed()),
        }
        let micros = u64::try_from(timing.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let app_id = app_id.unwrap_or("-");
        match detail {
            None => tracing::info!(
                protocol, app_id, method, code, sub_code, status, signed, encrypted, micros,
                "gateway"
            ),
            Some(error) => tracing::error!(
                protocol, app_id, method, code, sub_code, status, signed, encrypted, micros, error,
                "gateway"
            ),
        }
    }
}
