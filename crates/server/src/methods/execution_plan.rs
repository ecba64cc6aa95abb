//! `alipay.user.agreement.executionplan.modify`: a periodic agreement's next deduction day moves,
//! inside its current period (sign-flow.md §1.8, PROTOCOL.md).

use agreements_domain::sign::{PlanRequest, beijing_date};
use agreements_domain::unsign::Actor;
use agreements_domain::{AgreementStatus, BizError, Scope};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Call, require_contract};
use crate::failure::Failure;

/// The answer: the agreement and its next deduction day.
#[derive(Debug, Serialize)]
pub struct Response {
    agreement_no: String,
    deduct_time: String,
}

/// The agreement must be visible to the caller (its own, or its group's MERCHANT agreements),
/// live (not cancelled, not expired), of a product the caller holds a contract for, and
/// periodic; the new day must satisfy [`check_move`](agreements_domain::sign::PeriodRule::check_move). The same day again succeeds
/// and changes nothing.
pub(super) async fn handle(call: &Call<'_>, biz: &Map<String, Value>) -> Result<Response, Failure> {
    let request = PlanRequest::parse(biz)?;
    call.note
        .asked(format!("agreement_no {}", request.agreement_no.as_str()));
    let app = &call.app.record.app_id;
    let found = call
        .store
        .agreement_by_no(&request.agreement_no, app)
        .await?
        .filter(|f| {
            let own = Scope::Partner(call.caller.merchant.clone());
            let group = call.caller.group.clone().map(Scope::Group);
            let visible = own.contains(&f.agreement, f.owner_group.as_ref())
                || group.is_some_and(|g| g.contains(&f.agreement, f.owner_group.as_ref()));
            visible
                && f.agreement.status != AgreementStatus::Unsign
                && !f.agreement.is_expired(call.now)
        })
        .ok_or(BizError::UserAgreementNotExist)?;
    require_contract(call, &[&found.agreement.product_code]).await?;
    call.note.returned([&found.agreement]);
    let no = &found.agreement.agreement_no;
    let stored = call.store.period_rule(no).await?.ok_or_else(|| {
        BizError::InvalidParameter(format!(
            "agreement {no} has no period rule: only periodic (CYCLE_PAY_AUTH_P) agreements have an execution plan"
        ))
    })?;
    let (rule, next) = stored
        .rule()
        .map_err(|e| Failure::Store(agreements_store::StoreError::Corrupt(e)))?;
    rule.check_move(next, request.deduct_time, beijing_date(call.now))
        .map_err(BizError::InvalidParameter)?;
    let to = request.deduct_time.to_string();
    if next != request.deduct_time {
        let actor = match &call.request.token {
            Some(token) => Actor::Isv {
                app: app.clone(),
                merchant: token.partner_id.clone(),
                token: token.token.clone(),
            },
            None => Actor::App(app.clone()),
        };
        let moved = call
            .store
            .reschedule(
                no,
                &stored.next_deduct_time,
                &to,
                &actor.to_string(),
                request.memo.as_deref(),
                call.now,
            )
            .await?;
        if !moved {
            // Another request moved it meanwhile: this one is answered by what is stored now.
            let now_stored = call.store.period_rule(no).await?;
            if now_stored.is_none_or(|r| r.next_deduct_time != to) {
                return Err(BizError::InvalidParameter(
                    "the next deduction day changed meanwhile; read it again and retry".into(),
                )
                .into());
            }
        }
    }
    Ok(Response {
        agreement_no: no.to_string(),
        deduct_time: to,
    })
}
