//! `alipay.user.agreement.sign.effect`: a `TEMP` agreement (signed with
//! `agreement_effect_type` NOTICE) takes effect (sign-flow.md §1.6, PROTOCOL.md).

use agreements_domain::query::Response;
use agreements_domain::sign::EffectRequest;
use agreements_domain::unsign::{Actor, Target, target};
use agreements_domain::{AgreementStatus, BizError};
use serde_json::{Map, Value};

use super::{Call, query};
use crate::failure::Failure;

/// Locates the agreement as the query method does (cancelled ones included, to answer them
/// exactly): `TEMP` becomes `NORMAL` with an event; `NORMAL` is answered as it is (a retried
/// call succeeds again and changes nothing); `STOP` is `AGREEMENT_STATUS_NOT_TEMP`; cancelled,
/// expired, unknown or not visible is `USER_AGREEMENT_NOT_EXIST`.
pub(super) async fn handle(call: &Call<'_>, biz: &Map<String, Value>) -> Result<Response, Failure> {
    let request = EffectRequest::parse(biz)?;
    let scope = call.caller.scope(request.query.third_party_type)?;
    let located = query::located(call, &request.query, &scope, |f| {
        request
            .query
            .locates(&scope, &f.agreement, f.owner_group.as_ref(), call.now)
    })
    .await?;
    let target = target(located, |f| &f.agreement)?;
    let (Target::Active(found) | Target::Cancelled(found)) = &target;
    query::require_product_contract(call, &request.query, found).await?;
    call.note.returned([&found.agreement]);
    let Target::Active(mut found) = target else {
        return Err(BizError::UserAgreementNotExist.into());
    };
    match found.agreement.status {
        AgreementStatus::Temp => {
            let actor = Actor::App(call.app.record.app_id.clone()).to_string();
            match call
                .store
                .effect(&found.agreement.agreement_no, &actor, call.now)
                .await?
            {
                Some(AgreementStatus::Temp | AgreementStatus::Normal) => {
                    found.agreement.status = AgreementStatus::Normal;
                }
                Some(AgreementStatus::Stop) => return Err(BizError::AgreementNotTemp.into()),
                Some(AgreementStatus::Unsign) | None => {
                    return Err(BizError::UserAgreementNotExist.into());
                }
            }
        }
        AgreementStatus::Normal => {}
        AgreementStatus::Stop => return Err(BizError::AgreementNotTemp.into()),
        AgreementStatus::Unsign => return Err(BizError::UserAgreementNotExist.into()),
    }
    let logon_id = call
        .store
        .logon_id_of(&found.agreement.alipay_user_id)
        .await?;
    Ok(Response::new(
        &found.agreement,
        logon_id.as_ref(),
        found.principal_open_id.as_ref(),
    ))
}
