//! The platform's own web pages: the hosted signing page a page.sign link leads to, and the
//! consumer's "automatic payments" page. Server-rendered from askama templates (checked at
//! compile time, HTML-escaped by default), usable without JavaScript; every form carries a CSRF
//! token, cookies are HttpOnly and SameSite=Strict (and Secure when configured), and every page
//! is sent with a Content-Security-Policy that forbids scripts and framing.

// A handler's early exit is the page it answers with; it is built once per request.
#![allow(clippy::result_large_err)]

pub mod consumer;
pub mod password;
pub mod sign;
pub mod throttle;

use std::sync::Arc;

use agreements_domain::ids::{LogonId, UserId};
use agreements_protocol::crypto::random_alphanumeric;
use agreements_store::ConsumerSession;
use askama::Template;
use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, REFERRER_POLICY,
    SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::Gateway;
use crate::methods::page_sign::hex;
use crate::telemetry;

/// The web pages' settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Cookies are marked `Secure` (and named with the `__Host-` prefix): set it when the pages
    /// are served over TLS (directly or behind a proxy).
    pub secure_cookies: bool,
    /// How long a signing session stays open when the link names no `effect_time`, in seconds.
    pub signing_ttl_secs: i64,
    /// How long a consumer stays signed in, in seconds.
    pub session_ttl_secs: i64,
    /// Login throttling.
    pub logins: throttle::Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            signing_ttl_secs: 30 * 60,
            session_ttl_secs: 30 * 60,
            logins: throttle::Limits::default(),
        }
    }
}

/// Characters of a cookie secret or CSRF token (62 symbols each: 238 bits).
const SECRET_CHARS: usize = 40;

/// The pages' routes.
pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/sign/{id}", get(sign::page))
        .route("/sign/{id}/login", post(sign::login))
        .route("/sign/{id}/confirm", post(sign::confirm))
        .route("/sign/{id}/decline", post(sign::decline))
        .route("/me", get(consumer::home))
        .route("/me/login", post(consumer::login))
        .route("/me/logout", post(consumer::logout))
        .route("/me/agreements/{no}", get(consumer::agreement))
        .route(
            "/me/agreements/{no}/cancel",
            get(consumer::cancel_page).post(consumer::cancel),
        )
        .route("/static/agreements.css", get(stylesheet))
        // A page's form is a token, a logon id and a password: 16 KiB is plenty.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
}

/// The largest form body the pages read.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/agreements.css"),
    )
        .into_response()
}

/// The policy every page is sent with: nothing but the platform's own stylesheet loads, no
/// script runs, forms post to the platform (and, on the signing page, to the merchant's
/// `return_url`, where a confirmation redirects), and no site may frame the page.
pub fn content_security_policy(form_target: Option<&str>) -> String {
    let extra = form_target.map(|t| format!(" {t}")).unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'{extra}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// A page, with the security headers, `Cache-Control: no-store` and any cookies.
pub struct Html {
    status: StatusCode,
    body: String,
    form_target: Option<String>,
    cookies: Vec<String>,
}

impl Html {
    /// A rendered template (a template that fails to render is a 500 page).
    pub fn page(status: StatusCode, template: &impl Template) -> Self {
        let body = template.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "a page failed to render");
            "<!doctype html><title>系统繁忙</title><p>系统繁忙，请稍后再试。".to_owned()
        });
        Self {
            status,
            body,
            form_target: None,
            cookies: Vec::new(),
        }
    }

    /// Allows the page's forms to end at `origin` (a redirect after the form post).
    pub fn form_target(mut self, origin: Option<String>) -> Self {
        self.form_target = origin;
        self
    }

    /// Sets a cookie.
    pub fn cookie(mut self, cookie: Option<String>) -> Self {
        self.cookies.extend(cookie);
        self
    }
}

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        secure(headers, self.form_target.as_deref());
        for cookie in self.cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(SET_COOKIE, value);
            }
        }
        response
    }
}

fn secure(headers: &mut HeaderMap, form_target: Option<&str>) {
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(form_target)) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `303 See Other` to `location`, with the security headers and any cookies.
pub fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(LOCATION, value);
    }
    secure(headers, None);
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
    response
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// Headline.
    pub title: &'a str,
    /// What happened and what to do.
    pub message: &'a str,
    /// The protocol answer, when a gateway check refused the link.
    pub code: Option<&'a str>,
    /// Its sub_code.
    pub sub_code: &'a str,
    /// Its sub_msg.
    pub sub_msg: &'a str,
    /// A way on.
    pub link: Option<&'a str>,
    /// The link's text.
    pub link_text: &'a str,
}

/// A plain message page.
pub fn message(status: StatusCode, title: &str, message: &str) -> Html {
    Html::page(
        status,
        &ErrorPage {
            title,
            message,
            code: None,
            sub_code: "",
            sub_msg: "",
            link: None,
            link_text: "",
        },
    )
}

/// The page for a failure of the store (logged with its cause).
pub fn unavailable(error: &(dyn std::error::Error + 'static)) -> Html {
    tracing::error!(error = telemetry::chain(error), "web page failed");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "系统繁忙",
        "系统繁忙，请稍后再试。",
    )
}

/// The cookie names: `__Host-` prefixed when Secure.
fn cookie_name(settings: &Settings, base: &str) -> String {
    if settings.secure_cookies {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure when configured.
fn set_cookie(settings: &Settings, base: &str, value: &str, max_age: i64) -> String {
    let secure = if settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        cookie_name(settings, base)
    )
}

/// A cookie's value from the request.
fn cookie(headers: &HeaderMap, settings: &Settings, base: &str) -> Option<String> {
    let name = cookie_name(settings, base);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

const SESSION_COOKIE: &str = "agreements_session";
const FORM_COOKIE: &str = "agreements_form";

/// A fresh secret.
fn secret() -> Result<String, agreements_protocol::crypto::KeyError> {
    random_alphanumeric(SECRET_CHARS)
}

/// Whether two tokens are equal, in constant time.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

/// The signed-in consumer, if the request carries a live session.
pub struct Consumer {
    /// The session.
    pub session: ConsumerSession,
    /// A logon id of the account, for display (masked).
    pub shown: String,
}

/// The signed-in consumer of a request.
async fn signed_in(gateway: &Gateway, headers: &HeaderMap) -> Result<Option<Consumer>, Response> {
    let settings = gateway.web();
    let Some(secret) = cookie(headers, settings, SESSION_COOKIE) else {
        return Ok(None);
    };
    let hash = hex(&openssl::sha::sha256(secret.as_bytes()));
    let store = gateway.store();
    let now = gateway.clock().now();
    let session = store
        .consumer_session(&hash, now)
        .await
        .map_err(|e| unavailable(&e).into_response())?;
    let Some(session) = session else {
        return Ok(None);
    };
    let shown = store
        .logon_id_of(&session.user_id)
        .await
        .map_err(|e| unavailable(&e).into_response())?
        .map_or_else(|| session.user_id.to_string(), |l| l.masked());
    Ok(Some(Consumer { session, shown }))
}

/// The token a signed-out form carries: the form cookie's value (double submit; the cookie is
/// SameSite=Strict, so another site's form cannot bring it). Returns the token and, when the
/// request had none, the cookie that sets it.
fn form_token(gateway: &Gateway, headers: &HeaderMap) -> (String, Option<String>) {
    let settings = gateway.web();
    match cookie(headers, settings, FORM_COOKIE) {
        Some(token) => (token, None),
        None => {
            let token = secret().unwrap_or_default();
            let set = set_cookie(settings, FORM_COOKIE, &token, 86_400);
            (token, Some(set))
        }
    }
}

/// Whether a form's `csrf` field is the token expected: the signed-in session's, else the
/// form cookie's.
fn form_is_genuine(
    gateway: &Gateway,
    headers: &HeaderMap,
    consumer: Option<&Consumer>,
    field: &str,
) -> bool {
    let expected = match consumer {
        Some(c) => Some(c.session.csrf_token.clone()),
        None => cookie(headers, gateway.web(), FORM_COOKIE),
    };
    expected.is_some_and(|token| !field.is_empty() && same_token(&token, field))
}

/// The page a forged or stale form gets.
fn stale_form() -> Html {
    message(
        StatusCode::FORBIDDEN,
        "页面已失效",
        "表单已失效（可能已在其他页面登录或退出），请返回重新打开页面后再试。",
    )
}

/// What a login form sends.
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    /// The account's logon id.
    #[serde(default)]
    pub logon_id: String,
    /// The password (never logged: this type's Debug shows it, so it is never logged whole).
    #[serde(default)]
    pub password: Secret,
    /// The CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// A password as received: `Debug` never shows it.
#[derive(Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What every other form sends.
#[derive(Debug, serde::Deserialize)]
pub struct TokenForm {
    /// The CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// Checks a login: throttling (per account and per client address), the password (Argon2id,
/// off the async workers; an account without a password costs the same time), then starts a
/// session. `Ok` holds the Set-Cookie of the new session; `Err` the message to show.
async fn log_in(
    gateway: &Gateway,
    client: std::net::IpAddr,
    form: &LoginForm,
) -> Result<String, LoginRefused> {
    let store = gateway.store();
    let now = gateway.clock().now();
    let logon_id = LogonId::parse(&form.logon_id).ok();
    // What the throttle counts by: the normalised logon id, or (for text that is none) its
    // first 100 characters, so that a flood of long names cannot grow the table's memory.
    let account_key = logon_id.as_ref().map_or_else(
        || form.logon_id.trim().chars().take(100).collect(),
        |l| l.as_str().to_owned(),
    );
    if let Err(wait) = gateway.logins().check(&account_key, client, now) {
        return Err(LoginRefused::Locked(wait));
    }
    let user = match &logon_id {
        Some(id) => store
            .account_by_logon_id(id)
            .await
            .map_err(LoginRefused::Store)?
            .map(|r| r.user_id),
        None => None,
    };
    let credential = match &user {
        Some(user_id) => store
            .credential(user_id)
            .await
            .map_err(LoginRefused::Store)?,
        None => None,
    };
    let hash = credential.map(|c| c.password_hash);
    let password = form.password.0.clone();
    let verified =
        tokio::task::spawn_blocking(move || password::verify(hash.as_deref(), &password))
            .await
            .unwrap_or(false);
    let Some(user_id) = user.filter(|_| verified) else {
        let masked = logon_id
            .as_ref()
            .map_or_else(|| "-".to_owned(), LogonId::masked);
        tracing::info!(logon_id = masked, %client, "login refused: wrong logon id or password");
        return Err(match gateway.logins().failed(&account_key, client, now) {
            Some(wait) => LoginRefused::Locked(wait),
            None => LoginRefused::Wrong,
        });
    };
    gateway.logins().succeeded(&account_key);
    start_session(gateway, &user_id, now)
        .await
        .map_err(LoginRefused::Store)
}

/// Why a login was refused.
enum LoginRefused {
    /// Wrong logon id or password.
    Wrong,
    /// Too many failures: try again after this many seconds.
    Locked(i64),
    /// The store failed.
    Store(agreements_store::StoreError),
}

impl LoginRefused {
    /// The message shown, or the store failure's page.
    fn message(self) -> Result<String, Response> {
        match self {
            Self::Wrong => Ok("账户名或密码错误。".to_owned()),
            Self::Locked(wait) => Ok(format!(
                "登录失败次数过多，已暂时锁定，请 {} 分钟后再试。",
                (wait + 59) / 60
            )),
            Self::Store(e) => Err(unavailable(&e).into_response()),
        }
    }
}

/// Starts a consumer session; returns its Set-Cookie.
async fn start_session(
    gateway: &Gateway,
    user_id: &UserId,
    now: i64,
) -> Result<String, agreements_store::StoreError> {
    let settings = gateway.web();
    let no_randomness =
        |e| agreements_store::StoreError::unavailable("drawing a session secret", e);
    let token = secret().map_err(no_randomness)?;
    let session = ConsumerSession {
        token_hash: hex(&openssl::sha::sha256(token.as_bytes())),
        user_id: user_id.clone(),
        csrf_token: secret().map_err(no_randomness)?,
        created_at: now,
        expires_at: now + settings.session_ttl_secs,
    };
    gateway.store().start_consumer_session(&session).await?;
    Ok(set_cookie(
        settings,
        SESSION_COOKIE,
        &token,
        settings.session_ttl_secs,
    ))
}

/// Ends the request's consumer session; returns the Set-Cookie that clears it.
async fn end_session(gateway: &Gateway, headers: &HeaderMap) -> Result<String, Response> {
    let settings = gateway.web();
    if let Some(secret) = cookie(headers, settings, SESSION_COOKIE) {
        let hash = hex(&openssl::sha::sha256(secret.as_bytes()));
        gateway
            .store()
            .end_consumer_session(&hash)
            .await
            .map_err(|e| unavailable(&e).into_response())?;
    }
    Ok(set_cookie(settings, SESSION_COOKIE, "", 0))
}
