//! The consumer's "automatic payments" page (我的 › 设置 › 支付设置 › 自动扣款): every agreement of
//! the signed-in person — all their accounts, all merchants — with its history, and cancelling
//! one (with a confirmation step). A cancellation is recorded with the actor `user …` and
//! announced by `dut_user_unsign` to the signing app's own notification address only
//! (sign-flow.md §1.5).

use std::net::SocketAddr;
use std::sync::Arc;

use agreements_domain::ids::AgreementNo;
use agreements_domain::unsign::Actor;
use agreements_domain::{Agreement, AgreementStatus, ResolvedUser};
use agreements_protocol::timestamp::format_beijing;
use agreements_store::{EventKind, UnsignOutcome};
use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{
    Consumer, Html, LoginForm, TokenForm, end_session, form_is_genuine, form_token, log_in,
    message, redirect, signed_in, stale_form, unavailable,
};
use crate::Gateway;
use crate::audit::{Asker, Note, Outcome};
use crate::cancel::{Cancellation, cancel as cancel_agreement};

/// One agreement as the consumer sees it.
pub struct Row {
    /// Its number.
    pub agreement_no: String,
    /// The merchant's name.
    pub merchant: String,
    /// Product.
    pub product: String,
    /// Scene.
    pub scene: String,
    /// Since when (Beijing time).
    pub since: String,
    /// Until when.
    pub until: String,
    /// Status in words.
    pub status: &'static str,
    /// Status code for styling (`EXPIRED` for an expired one).
    pub status_code: &'static str,
    /// Whether it can be cancelled.
    pub cancellable: bool,
}

impl Row {
    fn new(a: &Agreement, merchant: String, now: i64) -> Self {
        let expired = a.is_expired(now) && a.status != AgreementStatus::Unsign;
        let (status, status_code) = if expired {
            ("已过期", "EXPIRED")
        } else {
            match a.status {
                AgreementStatus::Temp => ("待生效", "TEMP"),
                AgreementStatus::Normal => ("已开通", "NORMAL"),
                AgreementStatus::Stop => ("已暂停", "STOP"),
                AgreementStatus::Unsign => ("已关闭", "UNSIGN"),
            }
        };
        Self {
            agreement_no: a.agreement_no.to_string(),
            merchant,
            product: a.personal_product_code.to_string(),
            scene: a.sign_scene.to_string(),
            since: format_beijing(a.sign_time),
            until: format_beijing(a.invalid_time),
            status,
            status_code,
            cancellable: !expired && a.status != AgreementStatus::Unsign,
        }
    }
}

#[derive(Template)]
#[template(path = "me.html")]
struct HomePage<'a> {
    login_action: &'a str,
    user: Option<&'a str>,
    csrf: &'a str,
    agreements: &'a [Row],
    message: Option<&'a str>,
}

/// One history entry in words.
pub struct Event {
    /// When.
    pub at: String,
    /// What and by whom.
    pub what: String,
}

#[derive(Template)]
#[template(path = "agreement.html")]
struct AgreementPage<'a> {
    a: &'a Row,
    period: Option<String>,
    history: &'a [Event],
    confirm: bool,
    csrf: &'a str,
}

async fn person(gateway: &Gateway, consumer: &Consumer) -> Result<ResolvedUser, Response> {
    match gateway.store().account_of(&consumer.session.user_id).await {
        Ok(Some(person)) => Ok(person),
        Ok(None) => {
            Err(message(StatusCode::NOT_FOUND, "账户不存在", "账户不存在。").into_response())
        }
        Err(e) => Err(unavailable(&e).into_response()),
    }
}

/// Records a consumer page's read or change of their own agreements in the audit trail.
async fn audited<'a>(
    gateway: &Gateway,
    page: &'static str,
    consumer: &Consumer,
    agreements: impl IntoIterator<Item = &'a Agreement>,
    outcome: Outcome<'_>,
) {
    let note = Note::default();
    note.asked(format!("signed in as {}", consumer.shown));
    note.person(&consumer.session.user_id);
    note.returned(agreements);
    let asker = Asker {
        channel: "page",
        method: page,
        app_id: None,
        partner_id: None,
        token: None,
    };
    gateway
        .audit()
        .record(asker, &note, outcome, gateway.clock().now_ms())
        .await;
}

/// `GET /me`: the sign-in form, or every agreement of the signed-in person.
pub async fn home(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let consumer = match signed_in(&gateway, &headers).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    render_home(&gateway, &headers, consumer.as_ref(), None, StatusCode::OK).await
}

async fn render_home(
    gateway: &Gateway,
    headers: &HeaderMap,
    consumer: Option<&Consumer>,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let Some(consumer) = consumer else {
        let (csrf, cookie) = form_token(gateway, headers);
        return Html::page(
            status,
            &HomePage {
                login_action: "/me/login",
                user: None,
                csrf: &csrf,
                agreements: &[],
                message,
            },
        )
        .cookie(cookie)
        .into_response();
    };
    let person = match person(gateway, consumer).await {
        Ok(p) => p,
        Err(page) => return page,
    };
    let now = gateway.clock().now();
    let rows: Vec<Row> = match gateway
        .store()
        .agreements_of_person(&person.customer_id)
        .await
    {
        Ok(found) => {
            let shown = found.iter().map(|f| &f.agreement);
            audited(gateway, "me", consumer, shown, Outcome::SUCCESS).await;
            found
                .into_iter()
                .map(|f| Row::new(&f.agreement, f.merchant_name, now))
                .collect()
        }
        Err(e) => return unavailable(&e).into_response(),
    };
    Html::page(
        status,
        &HomePage {
            login_action: "/me/login",
            user: Some(&consumer.shown),
            csrf: &consumer.session.csrf_token,
            agreements: &rows,
            message,
        },
    )
    .into_response()
}

/// `POST /me/login`.
pub async fn login(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !form_is_genuine(&gateway, &headers, None, &form.csrf) {
        return stale_form().into_response();
    }
    match log_in(&gateway, client.ip(), &form).await {
        Ok(cookie) => redirect("/me", &[cookie]),
        Err(refused) => match refused.message() {
            Ok(text) => {
                render_home(
                    &gateway,
                    &headers,
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

/// `POST /me/logout`.
pub async fn logout(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let consumer = match signed_in(&gateway, &headers).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    if consumer.is_some() && !form_is_genuine(&gateway, &headers, consumer.as_ref(), &form.csrf) {
        return stale_form().into_response();
    }
    match end_session(&gateway, &headers).await {
        Ok(cookie) => redirect("/me", &[cookie]),
        Err(page) => page,
    }
}

/// The signed-in consumer and one agreement of theirs, or the page to show. An agreement of
/// anyone else is "not found", exactly like one that does not exist. `page` names the read in
/// the audit trail (a "not found" is recorded too: it may be a look at someone else's).
async fn owned(
    gateway: &Gateway,
    headers: &HeaderMap,
    no: &str,
    page: &'static str,
) -> Result<(Consumer, Row, Agreement), Response> {
    let consumer = signed_in(gateway, headers)
        .await?
        .ok_or_else(|| redirect("/me", &[]))?;
    let person = person(gateway, &consumer).await?;
    let not_found = || {
        message(
            StatusCode::NOT_FOUND,
            "协议不存在",
            "没有找到这个自动扣款服务。",
        )
        .into_response()
    };
    let found = match AgreementNo::parse(no) {
        Ok(no) => gateway
            .store()
            .agreements_of_person(&person.customer_id)
            .await
            .map_err(|e| unavailable(&e).into_response())?
            .into_iter()
            .find(|f| f.agreement.agreement_no == no && person.is_principal_of(&f.agreement)),
        Err(_) => None,
    };
    let Some(found) = found else {
        let outcome = Outcome {
            code: "40004",
            sub_code: "USER_AGREEMENT_NOT_EXIST",
        };
        audited(gateway, page, &consumer, [], outcome).await;
        return Err(not_found());
    };
    if page != "me.cancel" {
        // A cancellation is recorded once it is answered.
        audited(
            gateway,
            page,
            &consumer,
            [&found.agreement],
            Outcome::SUCCESS,
        )
        .await;
    }
    let row = Row::new(&found.agreement, found.merchant_name, gateway.clock().now());
    Ok((consumer, row, found.agreement))
}

async fn render_agreement(
    gateway: &Gateway,
    consumer: &Consumer,
    row: &Row,
    agreement: &Agreement,
    confirm: bool,
) -> Response {
    let store = gateway.store();
    let history = match store.history(&agreement.agreement_no).await {
        Ok(events) => events
            .iter()
            .map(|e| Event {
                at: format_beijing(e.at),
                what: describe(e.kind, e.new_status, &e.actor),
            })
            .collect::<Vec<_>>(),
        Err(e) => return unavailable(&e).into_response(),
    };
    let period = match store.period_rule(&agreement.agreement_no).await {
        Ok(Some(stored)) => match stored.rule() {
            Ok((rule, next)) => Some(format!(
                "{}，单次最多 ¥{}，下次 {next}",
                crate::web::sign::period_words(&rule),
                agreements_domain::sign::format_yuan(rule.single_amount)
            )),
            Err(e) => {
                return unavailable(&agreements_store::StoreError::Corrupt(e)).into_response();
            }
        },
        Ok(None) => None,
        Err(e) => return unavailable(&e).into_response(),
    };
    Html::page(
        StatusCode::OK,
        &AgreementPage {
            a: row,
            period,
            history: &history,
            confirm,
            csrf: &consumer.session.csrf_token,
        },
    )
    .into_response()
}

/// An event in words: what happened and who did it.
fn describe(kind: EventKind, status: AgreementStatus, actor: &str) -> String {
    let what = match kind {
        EventKind::Sign if status == AgreementStatus::Temp => "签约（待商户确认生效）",
        EventKind::Sign => "签约开通",
        EventKind::Effect => "商户确认，协议生效",
        EventKind::Reschedule => "调整下次扣款日",
        EventKind::Unsign => "关闭",
        EventKind::Create | EventKind::Import => "协议导入",
        EventKind::Update => "协议更新",
    };
    let who = if actor.starts_with("user ") {
        "本人".to_owned()
    } else if actor.starts_with("app ") || actor.starts_with("isv ") {
        "商户".to_owned()
    } else {
        "平台".to_owned()
    };
    format!("{what}（{who}）")
}

/// `GET /me/agreements/{no}`.
pub async fn agreement(
    State(gateway): State<Arc<Gateway>>,
    Path(no): Path<String>,
    headers: HeaderMap,
) -> Response {
    match owned(&gateway, &headers, &no, "me.agreement").await {
        Ok((consumer, row, a)) => render_agreement(&gateway, &consumer, &row, &a, false).await,
        Err(page) => page,
    }
}

/// `GET /me/agreements/{no}/cancel`: the confirmation step.
pub async fn cancel_page(
    State(gateway): State<Arc<Gateway>>,
    Path(no): Path<String>,
    headers: HeaderMap,
) -> Response {
    match owned(&gateway, &headers, &no, "me.agreement").await {
        Ok((consumer, row, a)) => {
            let confirm = row.cancellable;
            render_agreement(&gateway, &consumer, &row, &a, confirm).await
        }
        Err(page) => page,
    }
}

/// `POST /me/agreements/{no}/cancel`.
pub async fn cancel(
    State(gateway): State<Arc<Gateway>>,
    Path(no): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let (consumer, row, agreement) = match owned(&gateway, &headers, &no, "me.cancel").await {
        Ok(owned) => owned,
        Err(page) => return page,
    };
    if !form_is_genuine(&gateway, &headers, Some(&consumer), &form.csrf) {
        return stale_form().into_response();
    }
    let back = format!("/me/agreements/{}", row.agreement_no);
    if !row.cancellable {
        return redirect(&back, &[]);
    }
    let actor = Actor::User(consumer.session.user_id.clone());
    let cancellation = Cancellation {
        agreement: &agreement,
        actor: &actor,
        reason: None,
        also_notify: None,
        now: gateway.clock().now(),
        policy: gateway.notify_policy(),
    };
    let cancelled = cancel_agreement(gateway.store(), &cancellation).await;
    let outcome = match &cancelled {
        Ok(_) => Outcome::SUCCESS,
        Err(_) => Outcome {
            code: "20000",
            sub_code: "isp.unknow-error",
        },
    };
    audited(&gateway, "me.cancel", &consumer, [&agreement], outcome).await;
    match cancelled {
        Ok((UnsignOutcome::Unsigned { .. }, queued)) => {
            if queued > 0 {
                gateway.outbox().wake();
            }
            redirect(&back, &[])
        }
        Ok(_) => redirect(&back, &[]),
        Err(e) => unavailable(&e).into_response(),
    }
}
