//! `alipay.user.agreement.unsign`: agreements.md §7.

use agreements_domain::BizError;
use agreements_domain::unsign::{Actor, Target, UnsignRequest, target};
use agreements_store::UnsignOutcome;
use serde_json::{Map, Value};

use super::{Call, query};
use crate::cancel::{Cancellation, Destination, cancel};
use crate::failure::Failure;
use crate::notify::check_destination;

pub(super) async fn handle(call: &Call<'_>, biz: &Map<String, Value>) -> Result<(), Failure> {
    let request = UnsignRequest::parse(biz)?;
    if let Some(url) = call.request.notify_url {
        check_destination(call.notify_policy, url)
            .await
            .map_err(|e| BizError::InvalidParameter(format!("notify_url {e}")))?;
    }
    let scope = call.caller.scope(request.query.third_party_type)?;
    let located = query::located(call, &request.query, &scope, |f| {
        request.locates(&scope, &f.agreement, f.owner_group.as_ref(), call.now)
    })
    .await?;
    let target = target(located, |f| &f.agreement)?;
    let (Target::Active(found) | Target::Cancelled(found)) = &target;
    query::require_product_contract(call, &request.query, found).await?;
    call.note.returned([&found.agreement]);
    if let Target::Active(found) = &target {
        let app = &call.app.record.app_id;
        let token = call.request.token.as_ref();
        let actor = match token {
            Some(token) => Actor::Isv {
                app: app.clone(),
                merchant: token.partner_id.clone(),
                token: token.token.clone(),
            },
            None => Actor::App(app.clone()),
        };
        let also_notify = call.request.notify_url.map(|url| Destination {
            url,
            app_id: app,
            auth_app_id: token.map_or(app, |t| &t.auth_app_id),
            sign_type: call.request.sign_type,
        });
        let cancellation = Cancellation {
            agreement: &found.agreement,
            actor: &actor,
            reason: request.reason.as_deref(),
            also_notify,
            now: call.now,
            policy: call.notify_policy,
        };
        match cancel(call.store, &cancellation).await? {
            (UnsignOutcome::Unsigned { .. }, queued) if queued > 0 => call.outbox.wake(),
            // Already cancelled by a concurrent request: the same answer, nothing written twice.
            (UnsignOutcome::Unsigned { .. } | UnsignOutcome::AlreadyUnsigned, _) => {}
            (UnsignOutcome::NotFound, _) => return Err(BizError::UserAgreementNotExist.into()),
        }
    }
    Ok(())
}
