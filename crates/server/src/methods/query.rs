//! `alipay.user.agreement.query`: agreements.md §6.

use agreements_domain::BizError;
use agreements_domain::query::{AgreementQuery, Locator, Response, choose};
use agreements_protocol::envelope;
use agreements_store::{AgreementFilter, ExternalKey};
use serde_json::{Map, Value};

use super::{Call, require_contract};
use crate::failure::Failure;

pub(super) async fn handle(call: &Call<'_>, biz: &Map<String, Value>) -> Result<String, Failure> {
    let query = AgreementQuery::parse(biz)?;
    let scope = call.caller.scope(query.third_party_type)?;
    let app = &call.app.record.app_id;
    if let Some(code) = query.personal_product_code() {
        let product = call.store.product(code).await?;
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
    let mut person = None;
    let candidates = match &query.locator {
        Locator::AgreementNo(no) => call
            .store
            .agreement_by_no(no, app)
            .await?
            .into_iter()
            .collect(),
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
            call.store.agreements_by_external(&scope, &key, app).await?
        }
        Locator::User {
            personal_product_code,
            user,
            sign_scene,
        } => {
            let resolved = call
                .store
                .resolve_user(user, app)
                .await?
                .ok_or(BizError::UserNotExist)?;
            let filter = AgreementFilter {
                person: &resolved,
                personal_product_code,
                scope: &scope,
                sign_scene: Some(sign_scene),
                product_code: None,
                now: call.now,
                open_id_app: app,
            };
            let found = call.store.agreements(&filter).await?;
            person = Some(resolved);
            found
        }
    };
    let admitted = candidates.into_iter().filter(|f| {
        query.admits(&scope, &f.agreement, f.owner_group.as_ref(), call.now)
            && person
                .as_ref()
                .is_none_or(|p| p.is_principal_of(&f.agreement))
    });
    let found = choose(admitted, |f| &f.agreement).ok_or(BizError::UserAgreementNotExist)?;
    if matches!(query.locator, Locator::AgreementNo(_)) {
        // Named by number only: the merchant still needs a contract for that agreement's product.
        require_contract(call, &[&found.agreement.product_code]).await?;
    }
    let logon_id = call
        .store
        .logon_id_of(&found.agreement.alipay_user_id)
        .await?;
    let response = Response::new(
        &found.agreement,
        logon_id.as_deref(),
        found.principal_open_id.clone(),
    );
    envelope::success_node(&response).map_err(|e| BizError::SystemError(e.to_string()).into())
}
