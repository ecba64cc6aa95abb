//! `alipay.user.agreement.unsign`: agreements.md §7.

use agreements_domain::BizError;
use agreements_domain::agreement::Agreement;
use agreements_domain::ids::AppId;
use agreements_domain::notify::{self, DUT_USER_UNSIGN};
use agreements_domain::unsign::{Actor, Target, UnsignRequest, target};
use agreements_protocol::crypto::random_digits;
use agreements_protocol::{SignType, envelope};
use agreements_store::{
    AppRecord, FoundAgreement, NewNotification, StoreError, Unsign, UnsignOutcome,
};
use serde_json::{Map, Value};

use super::{Call, query};
use crate::failure::Failure;

pub(super) async fn handle(call: &Call<'_>, biz: &Map<String, Value>) -> Result<String, Failure> {
    let request = UnsignRequest::parse(biz)?;
    if let Some(url) = call.request.notify_url {
        notify::check_url(url)
            .map_err(|e| BizError::InvalidParameter(format!("notify_url {e}")))?;
    }
    let scope = call.caller.scope(request.query.third_party_type)?;
    let (candidates, person) = query::candidates(call, &request.query, &scope, true).await?;
    let located = candidates.into_iter().filter(|f| {
        request.locates(&scope, &f.agreement, f.owner_group.as_ref(), call.now)
            && person
                .as_ref()
                .is_none_or(|p| p.is_principal_of(&f.agreement))
    });
    let target = target(located, |f| &f.agreement).ok_or(BizError::UserAgreementNotExist)?;
    let (Target::Active(found) | Target::Cancelled(found)) = &target;
    query::require_product_contract(call, &request.query, found).await?;
    if let Target::Active(found) = &target {
        cancel(call, &request, found).await?;
    }
    envelope::success_node(&Map::new()).map_err(|e| BizError::SystemError(e.to_string()).into())
}

/// Cancels `found`: status, event and notifications in one transaction, then wakes the worker.
async fn cancel(
    call: &Call<'_>,
    request: &UnsignRequest,
    found: &FoundAgreement,
) -> Result<(), Failure> {
    let agreement = &found.agreement;
    let logon_id = call.store.logon_id_of(&agreement.alipay_user_id).await?;
    let logon_id = logon_id.as_deref();
    let caller_app = &call.app.record.app_id;
    let mut notifications = Vec::new();
    // The owner learns of it at its signing app's address, whoever cancelled it.
    let sign_app = call.store.app(agreement.sign_app_id.as_str()).await?;
    let owner_url = sign_app
        .as_ref()
        .and_then(|app| app.notify_url.as_deref())
        .filter(|url| match notify::check_url(url) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(app_id = %agreement.sign_app_id, error = e, "stored notification address refused; not notified");
                false
            }
        });
    if let (Some(app), Some(url)) = (&sign_app, owner_url) {
        let to = Destination {
            url,
            app_id: &app.app_id,
            auth_app_id: &app.app_id,
            sign_type: preferred_sign_type(app),
        };
        notifications.push(queued(call.now, agreement, logon_id, &to)?);
    }
    if let Some(url) = call
        .request
        .notify_url
        .filter(|url| Some(*url) != owner_url)
    {
        let auth_app_id = call
            .request
            .token
            .as_ref()
            .map_or(caller_app, |t| &t.auth_app_id);
        let to = Destination {
            url,
            app_id: caller_app,
            auth_app_id,
            sign_type: call.request.sign_type,
        };
        notifications.push(queued(call.now, agreement, logon_id, &to)?);
    }
    let actor = match &call.request.token {
        Some(token) => Actor::Isv {
            app: caller_app.clone(),
            merchant: token.partner_id.clone(),
            token: token.token.clone(),
        },
        None => Actor::App(caller_app.clone()),
    }
    .to_string();
    let outcome = call
        .store
        .unsign(&Unsign {
            agreement_no: &agreement.agreement_no,
            at: call.now,
            actor: &actor,
            reason: request.reason.as_deref(),
            notifications: &notifications,
        })
        .await?;
    match outcome {
        UnsignOutcome::Unsigned { old_status } => {
            if !notifications.is_empty() {
                call.outbox.wake();
            }
            tracing::info!(
                agreement_no = %agreement.agreement_no,
                %old_status,
                %actor,
                notifications = notifications.len(),
                "agreement cancelled"
            );
            Ok(())
        }
        // A concurrent request cancelled it first: the same answer, nothing written twice.
        UnsignOutcome::AlreadyUnsigned => Ok(()),
        UnsignOutcome::NotFound => Err(BizError::UserAgreementNotExist.into()),
    }
}

/// Where one notification goes and how it is signed.
struct Destination<'a> {
    url: &'a str,
    app_id: &'a AppId,
    auth_app_id: &'a AppId,
    sign_type: SignType,
}

fn queued(
    now: i64,
    agreement: &Agreement,
    logon_id: Option<&str>,
    to: &Destination<'_>,
) -> Result<NewNotification, Failure> {
    let digits = random_digits(26).map_err(|e| {
        Failure::from(StoreError::Unavailable(format!(
            "no randomness for a notify_id: {e}"
        )))
    })?;
    Ok(NewNotification {
        notify_id: notify::notify_id(now, &digits),
        agreement_no: agreement.agreement_no.clone(),
        notify_type: DUT_USER_UNSIGN.to_owned(),
        url: to.url.to_owned(),
        sign_type: to.sign_type,
        params: notify::unsign_params(agreement, logon_id, to.app_id, to.auth_app_id, now)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        created_at: now,
    })
}

/// The algorithm an app verifies with: RSA2 unless it only holds an RSA key.
fn preferred_sign_type(app: &AppRecord) -> SignType {
    let has = |t: SignType| app.keys.iter().any(|k| k.sign_type == t);
    if !has(SignType::Rsa2) && has(SignType::Rsa) {
        SignType::Rsa
    } else {
        SignType::Rsa2
    }
}
