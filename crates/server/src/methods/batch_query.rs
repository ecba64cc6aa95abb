//! `alipay.user.agreement.batch.query`: the evaluation order of agreements.md §5.

use agreements_domain::BizError;
use agreements_domain::batch_query::{BatchQuery, Item, Response};
use agreements_store::AgreementFilter;
use serde_json::{Map, Value};

use super::{Call, require_contract};
use crate::failure::Failure;

pub(super) async fn handle(call: &Call<'_>, biz: &Map<String, Value>) -> Result<Response, Failure> {
    let query = BatchQuery::parse(biz)?;
    call.note.asked(query.user.described());
    let scope = call.caller.scope(query.third_party_type)?;
    let product = call
        .catalogue
        .product(call.store, &query.personal_product_code)
        .await?;
    let products = query.contract_products(product.as_deref())?;
    require_contract(call, &products).await?;
    let (person, found) = call
        .store
        .person_agreements(&query.user, &call.app.record.app_id, |person| {
            AgreementFilter {
                person,
                personal_product_code: &query.personal_product_code,
                scope: &scope,
                sign_scene: query.sign_scene.as_ref(),
                product_code: query.product_code.as_ref(),
                now: call.now,
                open_id_app: &call.app.record.app_id,
                include_cancelled: false,
            }
        })
        .await?
        .ok_or(BizError::UserNotExist)?;
    call.note.person(&person.user_id);
    // The store's SQL and the domain's predicate must agree; a row outside the predicate is
    // never sent (it would be a leak), it is an inconsistency.
    if let Some(stray) = found.iter().find(|f| {
        !query.matches(
            &scope,
            &person,
            &f.agreement,
            f.owner_group.as_ref(),
            call.now,
        )
    }) {
        return Err(BizError::SystemError(format!(
            "store returned agreement {} outside the query",
            stray.agreement.agreement_no
        ))
        .into());
    }
    call.note.returned(found.iter().map(|f| &f.agreement));
    Ok(Response {
        usage_agreement_info_list: found
            .into_iter()
            .map(|f| Item::new(&f.agreement, f.principal_open_id.as_ref()))
            .collect(),
    })
}
