//! Stored values → domain types, shared by both backends: a value that breaks the domain's rules
//! is `StoreError::Corrupt`, never a panic and never passed on.

use agreements_domain::ids::{
    AgreementNo, AppId, CustomerId, GroupId, PartnerId, PersonalProductCode, ProductCode,
    SignScene, UserId,
};
use agreements_domain::token::{AppAuthToken, TokenStatus};
use agreements_domain::{
    Agreement, AgreementStatus, Contract, EntityStatus, Merchant, PrincipalType, ResolvedUser,
    ThirdPartyType,
};
use agreements_protocol::SignType;

use crate::StoreError;
use crate::records::{
    AppKey, AppRecord, AppStatus, Attempt, FoundAgreement, NewNotification, Notification,
    NotificationFilter,
};
use agreements_domain::notify::DeliveryState;

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

pub(crate) fn id<T, E: std::fmt::Display>(
    column: &'static str,
    parsed: Result<T, E>,
) -> Result<T, StoreError> {
    parsed.map_err(|e| corrupt(column, e))
}

pub(crate) fn known<T>(
    column: &'static str,
    value: &str,
    parsed: Option<T>,
) -> Result<T, StoreError> {
    parsed.ok_or_else(|| corrupt(column, value))
}

/// An agreement row as the SELECTs of both backends return it (`SELECT_FOUND` column order).
#[derive(Debug)]
pub(crate) struct AgreementRow {
    pub(crate) texts: [String; 10],
    pub(crate) external_agreement_no: Option<String>,
    pub(crate) external_logon_id: Option<String>,
    pub(crate) status: String,
    pub(crate) times: [i64; 3],
    pub(crate) unsign_time: Option<i64>,
    pub(crate) owner_group: Option<String>,
    pub(crate) open_id: Option<String>,
}

impl AgreementRow {
    pub(crate) fn into_found(self) -> Result<FoundAgreement, StoreError> {
        let [no, partner, app, ptype, pid, user, ppc, pc, scene, tpt] = self.texts;
        let [sign_time, valid_time, invalid_time] = self.times;
        let agreement = Agreement {
            agreement_no: id("agreements.agreement_no", AgreementNo::parse(no))?,
            partner_id: id("agreements.partner_id", PartnerId::parse(partner))?,
            sign_app_id: id("agreements.sign_app_id", AppId::parse(app))?,
            principal_type: known(
                "agreements.principal_type",
                &ptype,
                PrincipalType::parse(&ptype),
            )?,
            principal_id: pid,
            alipay_user_id: id("agreements.alipay_user_id", UserId::parse(user))?,
            personal_product_code: id(
                "agreements.personal_product_code",
                PersonalProductCode::parse(ppc),
            )?,
            product_code: id("agreements.product_code", ProductCode::parse(pc))?,
            sign_scene: id("agreements.sign_scene", SignScene::parse(scene))?,
            third_party_type: known(
                "agreements.third_party_type",
                &tpt,
                ThirdPartyType::parse(&tpt),
            )?,
            external_agreement_no: self.external_agreement_no,
            external_logon_id: self.external_logon_id,
            status: known(
                "agreements.status",
                &self.status,
                AgreementStatus::parse(&self.status),
            )?,
            sign_time,
            valid_time,
            invalid_time,
            unsign_time: self.unsign_time,
        };
        Ok(FoundAgreement {
            agreement,
            owner_group: self
                .owner_group
                .map(GroupId::parse)
                .transpose()
                .map_err(|e| corrupt("merchants.group_id", e))?,
            principal_open_id: self.open_id,
        })
    }
}

/// An app row with its keys `(sign_type, public_key)` and methods.
pub(crate) fn app(
    app_id: &str,
    (partner_id, name, status, notify_url): (String, String, String, Option<String>),
    keys: Vec<(String, String)>,
    methods: Vec<String>,
) -> Result<AppRecord, StoreError> {
    let keys = keys
        .into_iter()
        .map(|(sign_type, public_key)| {
            Ok(AppKey {
                sign_type: known(
                    "app_keys.sign_type",
                    &sign_type,
                    SignType::parse(&sign_type),
                )?,
                public_key,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(AppRecord {
        app_id: id("apps.app_id", AppId::parse(app_id))?,
        partner_id: id("apps.partner_id", PartnerId::parse(partner_id))?,
        name,
        status: known("apps.status", &status, AppStatus::parse(&status))?,
        notify_url,
        keys,
        methods,
    })
}

pub(crate) fn merchant(
    partner_id: &PartnerId,
    (name, status, group_id): (String, String, Option<String>),
) -> Result<Merchant, StoreError> {
    Ok(Merchant {
        partner_id: partner_id.clone(),
        name,
        status: known("merchants.status", &status, EntityStatus::parse(&status))?,
        group_id: group_id
            .map(GroupId::parse)
            .transpose()
            .map_err(|e| corrupt("merchants.group_id", e))?,
    })
}

pub(crate) fn contract(
    partner_id: &PartnerId,
    product_code: &ProductCode,
    (status, valid_from, valid_to): (String, i64, i64),
) -> Result<Contract, StoreError> {
    Ok(Contract {
        partner_id: partner_id.clone(),
        product_code: product_code.clone(),
        status: known(
            "merchant_contracts.status",
            &status,
            EntityStatus::parse(&status),
        )?,
        valid_from,
        valid_to,
    })
}

pub(crate) fn product_code(value: String) -> Result<ProductCode, StoreError> {
    id("product_pairs.product_code", ProductCode::parse(value))
}

pub(crate) fn resolved_user(
    (user_id, customer_id): (String, String),
) -> Result<ResolvedUser, StoreError> {
    Ok(ResolvedUser {
        user_id: id("accounts.user_id", UserId::parse(user_id))?,
        customer_id: id("accounts.customer_id", CustomerId::parse(customer_id))?,
    })
}

pub(crate) fn token(
    token: &str,
    (isv_app_id, partner_id, auth_app_id, status, expires_at): (
        String,
        String,
        String,
        String,
        i64,
    ),
    methods: Vec<String>,
) -> Result<AppAuthToken, StoreError> {
    Ok(AppAuthToken {
        token: token.to_owned(),
        isv_app_id: id("app_auth_tokens.isv_app_id", AppId::parse(isv_app_id))?,
        partner_id: id("app_auth_tokens.partner_id", PartnerId::parse(partner_id))?,
        auth_app_id: id("app_auth_tokens.auth_app_id", AppId::parse(auth_app_id))?,
        status: known(
            "app_auth_tokens.status",
            &status,
            TokenStatus::parse(&status),
        )?,
        expires_at,
        methods,
    })
}

/// The columns of a notification, in [`NotificationRow`] order.
pub(crate) const NOTIFICATION_COLUMNS: &str = notification_columns!();

/// A notification row as both backends read it.
#[derive(Debug)]
pub(crate) struct NotificationRow {
    pub(crate) texts: [String; 7],
    pub(crate) attempts: i64,
    pub(crate) created_at: i64,
    pub(crate) next_attempt_at: i64,
    pub(crate) last_attempt_at: Option<i64>,
    pub(crate) last_error: Option<String>,
    pub(crate) delivered_at: Option<i64>,
}

impl NotificationRow {
    pub(crate) fn into_notification(self) -> Result<Notification, StoreError> {
        let [
            notify_id,
            agreement_no,
            notify_type,
            url,
            sign_type,
            params,
            state,
        ] = self.texts;
        let params: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&params).map_err(|e| corrupt("notifications.params", e))?;
        Ok(Notification {
            queued: NewNotification {
                agreement_no: id(
                    "notifications.agreement_no",
                    AgreementNo::parse(agreement_no),
                )?,
                notify_type,
                url,
                sign_type: known(
                    "notifications.sign_type",
                    &sign_type,
                    SignType::parse(&sign_type),
                )?,
                params: params.into_iter().collect(),
                created_at: self.created_at,
                notify_id,
            },
            state: known("notifications.state", &state, DeliveryState::parse(&state))?,
            attempts: u32::try_from(self.attempts)
                .map_err(|e| corrupt("notifications.attempts", e))?,
            next_attempt_at: self.next_attempt_at,
            last_attempt_at: self.last_attempt_at,
            last_error: self.last_error,
            delivered_at: self.delivered_at,
        })
    }
}

/// The listing query for `f`: only the conditions it sets (so that each uses its index), the
/// state then the agreement bound first, `placeholder(i)` spelling the i-th parameter; the limit
/// is the last parameter.
pub(crate) fn notifications_query(
    f: &NotificationFilter<'_>,
    placeholder: impl Fn(usize) -> String,
) -> String {
    let mut conditions = Vec::new();
    if f.state.is_some() {
        conditions.push(format!("state = {}", placeholder(conditions.len() + 1)));
    }
    if f.agreement_no.is_some() {
        conditions.push(format!(
            "agreement_no = {}",
            placeholder(conditions.len() + 1)
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications {filter} ORDER BY created_at, notify_id LIMIT {}",
        placeholder(conditions.len() + 1)
    )
}

/// The stored parameters of a notification (a JSON object).
pub(crate) fn notification_params(n: &NewNotification) -> String {
    let map: serde_json::Map<String, serde_json::Value> = n
        .params
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// What recording `attempt` (the `attempts`-th send, made at `now`) writes: state, next send,
/// last error, delivery time.
pub(crate) fn attempt_columns(
    attempt: &Attempt,
    now: i64,
) -> (&'static str, Option<i64>, Option<&str>, Option<i64>) {
    match attempt {
        Attempt::Delivered => (DeliveryState::Delivered.as_str(), None, None, Some(now)),
        Attempt::Retry { at, error } => (
            DeliveryState::Pending.as_str(),
            Some(*at),
            Some(error.as_str()),
            None,
        ),
        Attempt::Failed { error } => (
            DeliveryState::Failed.as_str(),
            None,
            Some(error.as_str()),
            None,
        ),
    }
}
