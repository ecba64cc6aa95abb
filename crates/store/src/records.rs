//! The store's own record types: what it returns and what it is given to write.

use agreements_domain::ids::{
    AppId, CustomerId, ExternalAgreementNo, GroupId, LogonId, OpenId, PartnerId,
    PersonalProductCode, ProductCode, SignScene, UserId,
};
use agreements_domain::{Agreement, ResolvedUser, Scope};
use agreements_protocol::SignType;

/// Whether an app may call the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStatus {
    /// Accepted.
    Online,
    /// Refused with `isv.invalid-app-id`.
    Offline,
}

impl AppStatus {
    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "ONLINE",
            Self::Offline => "OFFLINE",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "ONLINE" => Some(Self::Online),
            "OFFLINE" => Some(Self::Offline),
            _ => None,
        }
    }
}

/// One of an app's request-verification keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppKey {
    /// The sign type it verifies.
    pub sign_type: SignType,
    /// Bare base64 SPKI DER.
    pub public_key: String,
}

/// An app as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// Its id.
    pub app_id: AppId,
    /// The owner merchant.
    pub partner_id: PartnerId,
    /// Display name.
    pub name: String,
    /// Online or offline.
    pub status: AppStatus,
    /// Where agreement notifications go.
    pub notify_url: Option<String>,
    /// Keys per sign type.
    pub keys: Vec<AppKey>,
    /// Granted method names.
    pub methods: Vec<String>,
}

/// An app to register.
pub type NewApp = AppRecord;

/// A merchant group to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    /// Its id.
    pub group_id: GroupId,
    /// Display name.
    pub name: String,
}

/// An account to add, with its person, logon ids and open ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// The account.
    pub user_id: UserId,
    /// Its person (created if new).
    pub customer_id: CustomerId,
    /// Logon ids naming this account.
    pub logon_ids: Vec<LogonId>,
    /// `(app, open id)` pairs naming this account.
    pub open_ids: Vec<(AppId, OpenId)>,
}

/// What the batch query asks the store for.
#[derive(Debug, Clone)]
pub struct AgreementFilter<'a> {
    /// Whose agreements (CARD of the account, CUSTOMER of the person).
    pub person: &'a ResolvedUser,
    /// Which product.
    pub personal_product_code: &'a PersonalProductCode,
    /// Whose merchants' agreements.
    pub scope: &'a Scope,
    /// Only this scene.
    pub sign_scene: Option<&'a SignScene>,
    /// Only this sales product.
    pub product_code: Option<&'a ProductCode>,
    /// Expired agreements (invalid_time ≤ now) are left out.
    pub now: i64,
    /// The app whose open ids are reported.
    pub open_id_app: &'a AppId,
}

/// An agreement with what the rules and the answer need beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundAgreement {
    /// The agreement.
    pub agreement: Agreement,
    /// Its owner's group.
    pub owner_group: Option<GroupId>,
    /// The principal's open id in the filter's app.
    pub principal_open_id: Option<String>,
}

/// The natural key of an agreement at its merchant: product, scene and the merchant's number.
#[derive(Debug, Clone, Copy)]
pub struct ExternalKey<'a> {
    /// The product.
    pub personal_product_code: &'a PersonalProductCode,
    /// The scene.
    pub sign_scene: &'a SignScene,
    /// The merchant's number.
    pub external_agreement_no: &'a ExternalAgreementNo,
}
