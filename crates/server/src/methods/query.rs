//! `alipay.user.agreement.query`: agreements.md §6.

use agreements_domain::BizError;
use agreements_domain::query::{AgreementQuery, Locator, Response, choose};
use agreements_domain::sign::CYCLE_PAY_AUTH_P;
use agreements_domain::{ResolvedUser, Scope};
use agreements_store::{AgreementFilter, ExternalKey, FoundAgreement};
use serde_json::{Map, Value};

use super::{Call, require_contract};
use crate::failure::Failure;

pub(super) async fn handle(call: &Call<'_>, biz: &Map<String, Value>) -> Result<Response, Failure> {
    let query = AgreementQuery::parse(biz)?;
    let scope = call.caller.scope(query.third_party_type)?;
    let (candidates, person) = candidates(call, &query, &scope, false).await?;
    let admitted = candidates.into_iter().filter(|f| {
        query.admits(&scope, &f.agreement, f.owner_group.as_ref(), call.now)
            && person
                .as_ref()
                .is_none_or(|p| p.is_principal_of(&f.agreement))
    });
    let found = choose(admitted, |f| &f.agreement).ok_or(BizError::UserAgreementNotExist)?;
    require_product_contract(call, &query, &found).await?;
    call.note.returned([&found.agreement]);
    let logon_id = call
        .store
        .logon_id_of(&found.agreement.alipay_user_id)
        .await?;
    // Only a periodic agreement has a plan: other answers cost no extra lookup.
    let next = if found.agreement.personal_product_code.as_str() == CYCLE_PAY_AUTH_P {
        call.store
            .period_rule(&found.agreement.agreement_no)
            .await?
            .map(|r| r.next_deduct_time)
    } else {
        None
    };
    Ok(Response::new(
        &found.agreement,
        logon_id.as_ref(),
        found.principal_open_id.as_ref(),
    )
    .with_next_deduct_time(next))
}

/// The agreements a query-style locator names (after the product and contract checks of the
/// modes that name a product), and the person the user mode resolved. `include_cancelled` adds
/// `UNSIGN` agreements to the user mode's candidates (the other modes return every status).
pub(super) async fn candidates(
    call: &Call<'_>,
    query: &AgreementQuery,
    scope: &Scope,
    include_cancelled: bool,
) -> Result<(Vec<FoundAgreement>, Option<ResolvedUser>), Failure> {
    call.note.asked(query.locator.described());
    let app = &call.app.record.app_id;
    if let Some(code) = query.personal_product_code() {
        let product = call.catalogue.product(call.store, code).await?;
        let products = product
            .as_ref()
            .map(|p| p.product_codes.iter().collect::<Vec<_>>())
            .ok_or_else(|| {
                BizError::ProductCodeNotSupported(format!(
                    "personal_product_code {code} is not offered"
                ))
            })?;
        require_contract(call, &products).await?;
    }
    Ok(match &query.locator {
        Locator::AgreementNo(no) => (
            call.store
                .agreement_by_no(no, app)
                .await?
                .into_iter()
                .collect(),
            None,
        ),
        Locator::External {
            personal_product_code,
            sign_scene,
            external_agreement_no,
        } => {
            let key = ExternalKey {
                personal_product_code,
                sign_scene,
                external_agreement_no,
            };
            (
                call.store.agreements_by_external(scope, &key, app).await?,
                None,
            )
        }
        Locator::User {
            personal_product_code,
            user,
            sign_scene,
        } => {
            let (resolved, found) = call
                .store
                .person_agreements(user, app, |person| AgreementFilter {
                    person,
                    personal_product_code,
                    scope,
                    sign_scene: Some(sign_scene),
                    product_code: None,
                    now: call.now,
                    open_id_app: app,
                    include_cancelled,
                })
                .await?
                .ok_or(BizError::UserNotExist)?;
            call.note.person(&resolved.user_id);
            (found, Some(resolved))
        }
    })
}

/// The agreements a locator names (cancelled ones included) that `locates` admits and, in the
/// user mode, whose principal is the person: what unsign and sign.effect act on.
pub(super) async fn located(
    call: &Call<'_>,
    query: &AgreementQuery,
    scope: &Scope,
    locates: impl Fn(&FoundAgreement) -> bool,
) -> Result<Vec<FoundAgreement>, Failure> {
    let (candidates, person) = candidates(call, query, scope, true).await?;
    Ok(candidates
        .into_iter()
        .filter(|f| {
            locates(f)
                && person
                    .as_ref()
                    .is_none_or(|p| p.is_principal_of(&f.agreement))
        })
        .collect())
}

/// Named by number only, the merchant still needs a contract for that agreement's product.
pub(super) async fn require_product_contract(
    call: &Call<'_>,
    query: &AgreementQuery,
    found: &FoundAgreement,
) -> Result<(), Failure> {
    if matches!(query.locator, Locator::AgreementNo(_)) {
        require_contract(call, &[&found.agreement.product_code]).await?;
    }
    Ok(())
}
