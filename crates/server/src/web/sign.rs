//! The hosted signing page (sign-flow.md §1.4): what a page.sign link leads to. The consumer
//! signs in, reads the terms (merchant, product, scene, the merchant's account name, the period
//! rule and its limits, validity, when it takes effect) and confirms or declines. Confirming
//! creates the agreement, its history and its `dut_user_sign` in one transaction, then sends the
//! browser to the link's `return_url` with a signed, minimal parameter set (PROTOCOL.md) or shows
//! the result.

use std::net::SocketAddr;
use std::sync::Arc;

use agreements_domain::Agreement;
use agreements_domain::notify::{self, DUT_USER_SIGN};
use agreements_domain::sign::{
    EffectType, PeriodRule, PeriodType, SignRequest, Signer, Signing, Validity, agreement_no,
    beijing_date, format_yuan,
};
use agreements_domain::unsign::Actor;
use agreements_protocol::crypto::random_digits;
use agreements_protocol::notification::sign_form;
use agreements_protocol::timestamp::format_beijing;
use agreements_store::{
    NewSigned, PeriodRuleRecord, SessionState, SignOutcome, SigningSession, StoreError,
};
use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{
    Consumer, Html, LoginForm, TokenForm, form_is_genuine, form_token, log_in, message, redirect,
    signed_in, stale_form, unavailable,
};
use crate::Gateway;
use crate::cancel::notification;
use crate::failure::Failure;
use crate::methods::page_sign::{require_external_free, terms};

/// What the consumer is shown of the terms.
pub struct Terms {
    /// The merchant's name.
    pub merchant: String,
    /// The agreement product (and the sales product when named).
    pub product: String,
    /// The scene.
    pub scene: String,
    /// The user's account at the merchant, when the link names it.
    pub external_logon_id: Option<String>,
    /// The period rule in words.
    pub period: Option<String>,
    /// The rule's limits, label and value.
    pub limits: Vec<(String, String)>,
    /// How long it is valid.
    pub validity: String,
    /// When it takes effect.
    pub effect: String,
}

impl Terms {
    fn new(merchant: String, r: &SignRequest) -> Self {
        let (period, limits) = match &r.period_rule {
            Some(rule) => (Some(period_words(rule)), limits(rule)),
            None => (None, Vec::new()),
        };
        Self {
            merchant,
            product: match &r.product_code {
                Some(p) => format!("{} ({p})", r.personal_product_code),
                None => r.personal_product_code.to_string(),
            },
            scene: r.sign_scene.to_string(),
            external_logon_id: r.external_logon_id.clone(),
            period,
            limits,
            validity: match r.validity {
                None => "长期有效".to_owned(),
                Some(Validity::Days(n)) => format!("自开通起 {n} 天"),
                Some(Validity::Months(n)) => format!("自开通起 {n} 个月"),
            },
            effect: match r.effect_type {
                EffectType::Direct => "确认后立即生效".to_owned(),
                EffectType::Notice => "商户确认后生效".to_owned(),
            },
        }
    }
}

/// `每 1 个月扣款一次，首次 2026-12-28`.
pub fn period_words(rule: &PeriodRule) -> String {
    let unit = match rule.period_type {
        PeriodType::Day => "天",
        PeriodType::Month => "个月",
    };
    format!(
        "每 {} {unit}扣款一次，首次 {}",
        rule.period, rule.execute_time
    )
}

fn limits(rule: &PeriodRule) -> Vec<(String, String)> {
    let mut out = vec![(
        "单次最多".to_owned(),
        format!("¥{}", format_yuan(rule.single_amount)),
    )];
    if let Some(total) = rule.total_amount {
        out.push(("累计最多".to_owned(), format!("¥{}", format_yuan(total))));
    }
    if let Some(n) = rule.total_payments {
        out.push(("扣款次数".to_owned(), format!("最多 {n} 次")));
    }
    out
}

#[derive(Template)]
#[template(path = "sign.html")]
struct SignPage<'a> {
    session_id: &'a str,
    login_action: &'a str,
    terms: &'a Terms,
    user: Option<&'a str>,
    csrf: &'a str,
    message: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "result.html")]
struct ResultPage<'a> {
    title: &'a str,
    message: &'a str,
    agreement_no: Option<&'a str>,
}

/// A signing session that is still open, with its request read again; or the page to show.
struct Open {
    session: SigningSession,
    request: SignRequest,
}

/// The session `id` if it can still be signed at `now`, else the page that says why.
async fn open(gateway: &Gateway, id: &str, consumer: Option<&Consumer>) -> Result<Open, Response> {
    let session = gateway
        .store()
        .signing_session(id)
        .await
        .map_err(|e| unavailable(&e).into_response())?
        .ok_or_else(|| {
            message(
                StatusCode::NOT_FOUND,
                "链接无效",
                "没有找到这个签约链接，请回到商户重新发起签约。",
            )
            .into_response()
        })?;
    if session.state != SessionState::Open {
        return Err(finished(&session, consumer).into_response());
    }
    if gateway.clock().now() >= session.expires_at {
        return Err(message(
            StatusCode::GONE,
            "链接已过期",
            "签约链接已超过有效时间，请回到商户重新发起签约。",
        )
        .into_response());
    }
    let biz: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&session.biz_content).unwrap_or_default();
    let request = SignRequest::parse(&biz, beijing_date(session.created_at)).map_err(|e| {
        tracing::error!(session = %session.session_id, error = %e, "a stored signing request no longer parses");
        message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "系统繁忙",
            "系统繁忙，请稍后再试。",
        )
        .into_response()
    })?;
    Ok(Open { session, request })
}

/// The page of a used link: the result for its signer, a plain notice for anyone else.
fn finished(session: &SigningSession, consumer: Option<&Consumer>) -> Html {
    let is_signer = consumer.is_some_and(|c| session.user_id.as_ref() == Some(&c.session.user_id));
    match session.state {
        SessionState::Signed if is_signer => Html::page(
            StatusCode::OK,
            &ResultPage {
                title: "已开通",
                message: "这个签约链接已使用：自动扣款服务已开通。",
                agreement_no: session.agreement_no.as_ref().map(|n| n.as_str()),
            },
        ),
        SessionState::Declined if is_signer => message(
            StatusCode::OK,
            "已取消签约",
            "您已选择暂不开通，可回到商户重新发起签约。",
        ),
        _ => message(
            StatusCode::GONE,
            "链接已使用",
            "这个签约链接已经使用过，不能再次签约。请回到商户重新发起签约。",
        ),
    }
}

async fn render(
    gateway: &Gateway,
    headers: &HeaderMap,
    open: &Open,
    consumer: Option<&Consumer>,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let merchant = match gateway.store().merchant(&open.session.partner_id).await {
        Ok(m) => m.map_or_else(|| open.session.partner_id.to_string(), |m| m.name),
        Err(e) => return unavailable(&e).into_response(),
    };
    let terms = Terms::new(merchant, &open.request);
    let (csrf, cookie) = match consumer {
        Some(c) => (c.session.csrf_token.clone(), None),
        None => form_token(gateway, headers),
    };
    Html::page(
        status,
        &SignPage {
            session_id: &open.session.session_id,
            login_action: &format!("/sign/{}/login", open.session.session_id),
            terms: &terms,
            user: consumer.map(|c| c.shown.as_str()),
            csrf: &csrf,
            message,
        },
    )
    .form_target(open.session.return_url.as_deref().and_then(origin))
    .cookie(cookie)
    .into_response()
}

/// `scheme://host[:port]` of a URL, for the Content-Security-Policy's form-action.
fn origin(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    Some(url.origin().ascii_serialization()).filter(|o| o != "null")
}

/// `GET /sign/{id}`.
pub async fn page(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let consumer = match signed_in(&gateway, &headers).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    match open(&gateway, &id, consumer.as_ref()).await {
        Ok(open) => {
            render(
                &gateway,
                &headers,
                &open,
                consumer.as_ref(),
                None,
                StatusCode::OK,
            )
            .await
        }
        Err(page) => page,
    }
}

/// `POST /sign/{id}/login`.
pub async fn login(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !form_is_genuine(&gateway, &headers, None, &form.csrf) {
        return stale_form().into_response();
    }
    let open = match open(&gateway, &id, None).await {
        Ok(open) => open,
        Err(page) => return page,
    };
    match log_in(&gateway, client.ip(), &form).await {
        Ok(cookie) => redirect(&format!("/sign/{id}"), &[cookie]),
        Err(refused) => match refused.message() {
            Ok(text) => {
                render(
                    &gateway,
                    &headers,
                    &open,
                    None,
                    Some(&text),
                    StatusCode::UNAUTHORIZED,
                )
                .await
            }
            Err(page) => page,
        },
    }
}

/// The signed-in consumer and the open session of a confirm or decline form, or the page to
/// show instead.
async fn posted(
    gateway: &Gateway,
    id: &str,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<(Consumer, Open), Response> {
    let consumer = signed_in(gateway, headers).await?;
    let Some(consumer) = consumer else {
        return Err(stale_form().into_response());
    };
    if !form_is_genuine(gateway, headers, Some(&consumer), &form.csrf) {
        return Err(stale_form().into_response());
    }
    let open = open(gateway, id, Some(&consumer)).await?;
    Ok((consumer, open))
}

/// `POST /sign/{id}/confirm`.
pub async fn confirm(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let (consumer, open) = match posted(&gateway, &id, &headers, &form).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let user_id = &consumer.session.user_id;
    if open
        .request
        .identity
        .sign_user_id
        .as_ref()
        .is_some_and(|only| only != user_id)
    {
        return render(
            &gateway,
            &headers,
            &open,
            Some(&consumer),
            Some("商户指定了签约账户，当前登录的账户不能签约。请退出后使用指定账户登录。"),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    match sign(&gateway, &open, user_id).await {
        Ok(Signed::Done(agreement)) => {
            gateway.outbox().wake();
            tracing::info!(
                agreement_no = %agreement.agreement_no,
                app_id = %open.session.app_id,
                status = %agreement.status,
                "agreement signed"
            );
            after(&gateway, &open, Some(&agreement))
        }
        Ok(Signed::Refused(text)) => {
            render(
                &gateway,
                &headers,
                &open,
                Some(&consumer),
                Some(&text),
                StatusCode::CONFLICT,
            )
            .await
        }
        Ok(Signed::Finished(session)) => finished(&session, Some(&consumer)).into_response(),
        Err(Failure::Store(e)) => unavailable(&e).into_response(),
        Err(failure) => {
            if let Some(detail) = failure.detail() {
                tracing::error!(error = detail, "signing failed");
            }
            let wire = failure.wire();
            render(
                &gateway,
                &headers,
                &open,
                Some(&consumer),
                Some(&format!("暂时不能开通：{}", wire.sub_msg)),
                StatusCode::CONFLICT,
            )
            .await
        }
    }
}

/// What a confirmation did.
enum Signed {
    /// The agreement exists.
    Done(Box<Agreement>),
    /// The session was finished meanwhile.
    Finished(Box<SigningSession>),
    /// It cannot be signed; the message says why.
    Refused(String),
}

/// Creates the agreement of an open session for `user_id`: the terms checked again (product,
/// contract, the merchant's number), then one store transaction.
async fn sign(
    gateway: &Gateway,
    open: &Open,
    user_id: &agreements_domain::ids::UserId,
) -> Result<Signed, Failure> {
    let store = gateway.store();
    let session = &open.session;
    let request = &open.request;
    let now = gateway.clock().now();
    let (product_code, principal_type) = terms(
        store,
        gateway.catalogue(),
        &session.partner_id,
        request,
        now,
    )
    .await?;
    if require_external_free(store, &session.partner_id, request, &session.app_id)
        .await
        .is_err()
    {
        return Ok(Signed::Refused(
            "商户的签约号已被使用，请回到商户重新发起签约。".to_owned(),
        ));
    }
    let person = store.account_of(user_id).await?.ok_or_else(|| {
        agreements_domain::BizError::SystemError(format!("account {user_id} vanished"))
    })?;
    let signer = Signer {
        user_id: person.user_id,
        customer_id: person.customer_id,
    };
    let signing = Signing {
        request,
        partner_id: &session.partner_id,
        app_id: &session.app_id,
        product_code: &product_code,
        principal_type,
        signer: &signer,
        now,
    };
    let logon_id = store.logon_id_of(user_id).await?;
    let actor = Actor::User(user_id.clone()).to_string();
    // A number drawn twice (one in 10^12 a day) is drawn again.
    for _ in 0..3 {
        let digits = random_digits(12)
            .map_err(|e| StoreError::unavailable("drawing an agreement number", e))?;
        let agreement = signing.agreement(agreement_no(now, &digits)?);
        let rule = request
            .period_rule
            .as_ref()
            .map(|r| PeriodRuleRecord::new(&agreement.agreement_no, r));
        let notifications = match destination(gateway, session).await? {
            Some(url) => vec![notification(
                now,
                &agreement,
                DUT_USER_SIGN,
                &url,
                session.sign_type,
                notify::sign_params(
                    &agreement,
                    logon_id.as_ref(),
                    &session.app_id,
                    &session.auth_app_id,
                ),
            )?],
            None => Vec::new(),
        };
        let outcome = store
            .sign(&NewSigned {
                session_id: &session.session_id,
                agreement: &agreement,
                period_rule: rule.as_ref(),
                actor: &actor,
                notifications: &notifications,
            })
            .await?;
        match outcome {
            SignOutcome::Signed => return Ok(Signed::Done(Box::new(agreement))),
            SignOutcome::NumberTaken => continue,
            SignOutcome::Finished(session) => return Ok(Signed::Finished(session)),
            SignOutcome::ExternalTaken => {
                return Ok(Signed::Refused(
                    "商户的签约号已被使用，请回到商户重新发起签约。".to_owned(),
                ));
            }
            SignOutcome::NotFound => {
                return Ok(Signed::Refused("签约链接已失效。".to_owned()));
            }
        }
    }
    Err(StoreError::unavailable(
        "drawing an unused agreement number",
        std::io::Error::other("three numbers drawn were taken"),
    )
    .into())
}

/// Where `dut_user_sign` goes: the link's `notify_url`, else the app's notification address
/// (when the address policy allows it).
async fn destination(
    gateway: &Gateway,
    session: &SigningSession,
) -> Result<Option<String>, StoreError> {
    if let Some(url) = &session.notify_url {
        return Ok(Some(url.clone()));
    }
    let app = gateway.store().app(&session.app_id).await?;
    Ok(app
        .and_then(|a| a.notify_url)
        .filter(|url| gateway.notify_policy().check_url(url).is_ok()))
}

/// Where the browser goes after a confirmation (`agreement`) or a decline: the link's
/// `return_url` with the signed parameters of [`return_params`], else the result page.
fn after(gateway: &Gateway, open: &Open, agreement: Option<&Agreement>) -> Response {
    if let Some(url) = &open.session.return_url
        && let Some(target) = return_address(gateway, open, agreement, url)
    {
        return redirect(&target, &[]);
    }
    match agreement {
        Some(a) => Html::page(
            StatusCode::OK,
            &ResultPage {
                title: "开通成功",
                message: if a.status == agreements_domain::AgreementStatus::Temp {
                    "协议已签署，商户确认后生效。"
                } else {
                    "自动扣款服务已开通。"
                },
                agreement_no: Some(a.agreement_no.as_str()),
            },
        )
        .into_response(),
        None => message(StatusCode::OK, "已取消签约", "您已选择暂不开通。").into_response(),
    }
}

/// The parameters added to `return_url` (PROTOCOL.md): `app_id`, `charset`, `timestamp`,
/// `status` (the agreement's, or `DECLINED`), `agreement_no` and `sign_time` when signed,
/// `external_agreement_no` when the link named one; then `sign_type` and `sign`, made as for a
/// notification over every other parameter of the query (the merchant's own included), sorted,
/// with the platform key.
pub fn return_params(
    session: &SigningSession,
    agreement: Option<&Agreement>,
    external_agreement_no: Option<&str>,
    now: i64,
) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("app_id", session.app_id.to_string()),
        ("charset", "utf-8".to_owned()),
        ("timestamp", format_beijing(now)),
    ];
    match agreement {
        Some(a) => {
            params.push(("status", a.status.to_string()));
            params.push(("agreement_no", a.agreement_no.to_string()));
            params.push(("sign_time", format_beijing(a.sign_time)));
        }
        None => params.push(("status", "DECLINED".to_owned())),
    }
    if let Some(no) = external_agreement_no {
        params.push(("external_agreement_no", no.to_owned()));
    }
    params
}

fn return_address(
    gateway: &Gateway,
    open: &Open,
    agreement: Option<&Agreement>,
    url: &str,
) -> Option<String> {
    let session = &open.session;
    let external = open
        .request
        .external_agreement_no
        .as_ref()
        .map(|n| n.as_str());
    let ours = return_params(session, agreement, external, gateway.clock().now());
    let mut target = url::Url::parse(url).ok()?;
    // The merchant's own query parameters are kept and signed too (a parameter named like one
    // of ours, or `sign`/`sign_type`, is replaced), so that the SDKs' notification check of
    // the whole query verifies.
    let theirs: Vec<(String, String)> = target
        .query_pairs()
        .filter(|(k, _)| k != "sign" && k != "sign_type" && !ours.iter().any(|(o, _)| o == k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let pairs: Vec<(&str, &str)> = theirs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(ours.iter().map(|(k, v)| (*k, v.as_str())))
        .collect();
    let form = sign_form(&pairs, gateway.platform_key(), session.sign_type)
        .map_err(|e| tracing::error!(error = %e, "signing the return address failed"))
        .ok()?;
    target.set_query(Some(&form));
    Some(target.to_string())
}

/// `POST /sign/{id}/decline`.
pub async fn decline(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let (consumer, open) = match posted(&gateway, &id, &headers, &form).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let now = gateway.clock().now();
    match gateway
        .store()
        .decline_signing(&open.session.session_id, &consumer.session.user_id, now)
        .await
    {
        Ok(true) => {
            tracing::info!(app_id = %open.session.app_id, "signing declined");
            after(&gateway, &open, None)
        }
        Ok(false) => match gateway.store().signing_session(&id).await {
            Ok(Some(session)) => finished(&session, Some(&consumer)).into_response(),
            Ok(None) => {
                message(StatusCode::NOT_FOUND, "链接无效", "没有找到这个签约链接。").into_response()
            }
            Err(e) => unavailable(&e).into_response(),
        },
        Err(e) => unavailable(&e).into_response(),
    }
}
