//! Cancelling an agreement (agreements.md §7), for the gateway's unsign and the operators'
//! `agreements unsign`: the notifications that announce it, then status, event and outbox in one
//! store transaction.

use agreements_domain::address::AddressPolicy;
use agreements_domain::agreement::Agreement;
use agreements_domain::ids::{AppId, LogonId};
use agreements_domain::notify::{self, DUT_USER_UNSIGN};
use agreements_domain::unsign::Actor;
use agreements_protocol::SignType;
use agreements_protocol::crypto::random_digits;
use agreements_store::{AppRecord, NewNotification, Store, StoreError, Unsign, UnsignOutcome};

/// Where one notification goes and how it is signed.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The receiver's address.
    pub url: &'a str,
    /// `app_id` of the notification.
    pub app_id: &'a AppId,
    /// `auth_app_id` of the notification.
    pub auth_app_id: &'a AppId,
    /// Its signature algorithm.
    pub sign_type: SignType,
}

/// One cancellation.
#[derive(Debug, Clone, Copy)]
pub struct Cancellation<'a> {
    /// The agreement as found.
    pub agreement: &'a Agreement,
    /// Who cancels it.
    pub actor: &'a Actor,
    /// Why (`extend_params`).
    pub reason: Option<&'a str>,
    /// A second address (the unsign request's `notify_url`), notified when it differs from the
    /// signing app's.
    pub also_notify: Option<Destination<'a>>,
    /// `unsign_time`.
    pub now: i64,
    /// Where notifications may go: a stored address outside it is not notified.
    pub policy: &'a AddressPolicy,
}

/// Cancels the agreement: the signing app's notification address is always told (when it has a
/// valid one), `also_notify` too. Returns what the store did and how many notifications it
/// queued.
pub async fn cancel(
    store: &Store,
    c: &Cancellation<'_>,
) -> Result<(UnsignOutcome, usize), StoreError> {
    let agreement = c.agreement;
    let logon_id = store.logon_id_of(&agreement.alipay_user_id).await?;
    let logon_id = logon_id.as_ref();
    let sign_app = store.app(&agreement.sign_app_id).await?;
    let owner_url = sign_app
        .as_ref()
        .and_then(|app| app.notify_url.as_deref())
        .filter(|url| match c.policy.check_url(url) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(app_id = %agreement.sign_app_id, error = e, "stored notification address refused; not notified");
                false
            }
        });
    let mut notifications = Vec::new();
    if let (Some(app), Some(url)) = (&sign_app, owner_url) {
        let to = Destination {
            url,
            app_id: &app.app_id,
            auth_app_id: &app.app_id,
            sign_type: preferred_sign_type(app),
        };
        notifications.push(queued(c.now, agreement, logon_id, &to)?);
    }
    if let Some(to) = c.also_notify.filter(|to| Some(to.url) != owner_url) {
        notifications.push(queued(c.now, agreement, logon_id, &to)?);
    }
    let actor = c.actor.to_string();
    let outcome = store
        .unsign(&Unsign {
            agreement_no: &agreement.agreement_no,
            at: c.now,
            actor: &actor,
            reason: c.reason,
            notifications: &notifications,
        })
        .await?;
    if let UnsignOutcome::Unsigned { old_status } = outcome {
        tracing::info!(
            agreement_no = %agreement.agreement_no,
            %old_status,
            %actor,
            notifications = notifications.len(),
            "agreement cancelled"
        );
    }
    Ok((outcome, notifications.len()))
}

fn queued(
    now: i64,
    agreement: &Agreement,
    logon_id: Option<&LogonId>,
    to: &Destination<'_>,
) -> Result<NewNotification, StoreError> {
    let params = notify::unsign_params(agreement, logon_id, to.app_id, to.auth_app_id, now);
    notification(
        now,
        agreement,
        DUT_USER_UNSIGN,
        to.url,
        to.sign_type,
        params,
    )
}

/// A notification about `agreement` to queue, with a fresh `notify_id` (the Beijing date and 26
/// random digits).
pub fn notification(
    now: i64,
    agreement: &Agreement,
    notify_type: &str,
    url: &str,
    sign_type: SignType,
    params: Vec<(&'static str, String)>,
) -> Result<NewNotification, StoreError> {
    let digits = random_digits(26)
        .map_err(|e| StoreError::unavailable("drawing a notify_id (no randomness)", e))?;
    Ok(NewNotification {
        notify_id: notify::notify_id(now, &digits),
        agreement_no: agreement.agreement_no.clone(),
        notify_type: notify_type.to_owned(),
        url: url.to_owned(),
        sign_type,
        params: params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
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
