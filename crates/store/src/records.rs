//! The store's own record types: what it returns and what it is given to write.

use agreements_domain::ids::{
    AgreementNo, AppId, CustomerId, ExternalAgreementNo, GroupId, LogonId, OpenId, PartnerId,
    PersonalProductCode, ProductCode, SignScene, UserId,
};
use agreements_domain::notify::DeliveryState;
use agreements_domain::{Agreement, AgreementStatus, EntityStatus, Product, ResolvedUser, Scope};
use agreements_protocol::aes::ContentKey;
use agreements_protocol::{Method, SignType};

/// Whether an app may call the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStatus {
    /// Accepted.
    Online,
    /// Refused with `isv.invalid-app-id`.
    Offline,
}

impl AppStatus {
    /// Every status.
    pub const ALL: &'static [Self] = &[Self::Online, Self::Offline];

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
    /// The methods it may call.
    pub methods: Vec<Method>,
}

/// An app to register.
pub type NewApp = AppRecord;

/// A merchant group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    /// Its id.
    pub group_id: GroupId,
    /// Display name.
    pub name: String,
}

/// An account as loaded and exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The account.
    pub user_id: UserId,
    /// Its person (created if new).
    pub customer_id: CustomerId,
    /// Whether it is usable.
    pub status: EntityStatus,
}

/// A logon id naming an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonIdRecord {
    /// The normalised logon id.
    pub logon_id: LogonId,
    /// The account it names.
    pub user_id: UserId,
}

/// An app-scoped open id naming an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIdRecord {
    /// The app whose namespace it is in.
    pub app_id: AppId,
    /// The open id.
    pub open_id: OpenId,
    /// The account it names.
    pub user_id: UserId,
}

/// An agreement product with its display name and the sales products it pairs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRecord {
    /// The agreement product.
    pub personal_product_code: PersonalProductCode,
    /// Display name.
    pub name: String,
    /// Whom its agreements are with (`CARD` unless told otherwise).
    pub principal_type: agreements_domain::PrincipalType,
    /// The sales products it pairs with.
    pub product_codes: Vec<ProductCode>,
}

impl ProductRecord {
    /// The product as the rules see it.
    pub fn product(&self) -> Product {
        Product {
            personal_product_code: self.personal_product_code.clone(),
            product_codes: self.product_codes.clone(),
            principal_type: self.principal_type,
        }
    }
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
    pub person: ResolvedUser,
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
    /// Cancelled (`UNSIGN`) agreements too (unsign's retries need them; queries never do).
    pub include_cancelled: bool,
}

/// An agreement with what the rules and the answer need beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundAgreement {
    /// The agreement.
    pub agreement: Agreement,
    /// Its owner's group.
    pub owner_group: Option<GroupId>,
    /// The principal's open id in the filter's app.
    pub principal_open_id: Option<OpenId>,
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

/// What kind of change an agreement event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Added by an operator command (or the demo world).
    Create,
    /// Loaded by a bulk import.
    Import,
    /// Overwritten by a bulk import with `--update`.
    Update,
    /// Cancelled.
    Unsign,
    /// Signed by a consumer on the signing page.
    Sign,
    /// A `TEMP` agreement made to take effect (`sign.effect`).
    Effect,
    /// A periodic agreement's next deduction day moved (`executionplan.modify`).
    Reschedule,
}

impl EventKind {
    /// Every kind.
    pub const ALL: &'static [Self] = &[
        Self::Create,
        Self::Import,
        Self::Update,
        Self::Unsign,
        Self::Sign,
        Self::Effect,
        Self::Reschedule,
    ];

    /// Parses the storage spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == value)
    }

    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Import => "IMPORT",
            Self::Update => "UPDATE",
            Self::Unsign => "UNSIGN",
            Self::Sign => "SIGN",
            Self::Effect => "EFFECT",
            Self::Reschedule => "RESCHEDULE",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an agreement's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementEvent {
    /// The agreement.
    pub agreement_no: AgreementNo,
    /// 1, 2, … per agreement.
    pub seq: i64,
    /// What happened.
    pub kind: EventKind,
    /// The status before (none for the first event).
    pub old_status: Option<AgreementStatus>,
    /// The status after.
    pub new_status: AgreementStatus,
    /// Who made the change.
    pub actor: String,
    /// Why (the unsign request's `extend_params`), if given.
    pub reason: Option<String>,
    /// When (Unix seconds).
    pub at: i64,
}

/// A cancellation to apply, with what is written in its transaction.
#[derive(Debug, Clone)]
pub struct Unsign<'a> {
    /// Which agreement.
    pub agreement_no: &'a AgreementNo,
    /// `unsign_time` and the event's time.
    pub at: i64,
    /// Who cancels it.
    pub actor: &'a str,
    /// Why.
    pub reason: Option<&'a str>,
    /// The notifications that announce it.
    pub notifications: &'a [NewNotification],
}

/// What an [`Unsign`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsignOutcome {
    /// Cancelled now; the event and the notifications are written.
    Unsigned {
        /// The status it had.
        old_status: AgreementStatus,
    },
    /// It was already cancelled: nothing was written.
    AlreadyUnsigned,
    /// There is no such agreement.
    NotFound,
}

/// A notification to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    /// Unique id, sent as `notify_id` on every attempt.
    pub notify_id: String,
    /// The agreement it is about.
    pub agreement_no: AgreementNo,
    /// `dut_user_unsign`.
    pub notify_type: String,
    /// Where it goes.
    pub url: String,
    /// How each send is signed.
    pub sign_type: SignType,
    /// The form parameters except `notify_time`, `sign_type` and `sign`.
    pub params: Vec<(String, String)>,
    /// When it was queued (Unix seconds); the first send is due then.
    pub created_at: i64,
}

/// A queued notification and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Unique id, sent as `notify_id` on every attempt.
    pub notify_id: String,
    /// The agreement it is about.
    pub agreement_no: AgreementNo,
    /// `dut_user_unsign`.
    pub notify_type: String,
    /// Where it goes.
    pub url: String,
    /// How each send is signed.
    pub sign_type: SignType,
    /// The form parameters except `notify_time`, `sign_type` and `sign`.
    pub params: Vec<(String, String)>,
    /// Pending, delivered or failed.
    pub state: DeliveryState,
    /// Sends so far.
    pub attempts: u32,
    /// When it was queued (Unix seconds).
    pub created_at: i64,
    /// When the next send is due (while pending; a send in progress holds it for its lease).
    pub next_attempt_at: i64,
    /// When the last send was made.
    pub last_attempt_at: Option<i64>,
    /// Why the last send failed.
    pub last_error: Option<String>,
    /// When the receiver answered `success`.
    pub delivered_at: Option<i64>,
}

impl From<NewNotification> for Notification {
    /// A notification as queued: pending, never sent, due at once.
    fn from(n: NewNotification) -> Self {
        Self {
            notify_id: n.notify_id,
            agreement_no: n.agreement_no,
            notify_type: n.notify_type,
            url: n.url,
            sign_type: n.sign_type,
            params: n.params,
            state: DeliveryState::Pending,
            attempts: 0,
            created_at: n.created_at,
            next_attempt_at: n.created_at,
            last_attempt_at: None,
            last_error: None,
            delivered_at: None,
        }
    }
}

/// The result of one send, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered `success`.
    Delivered,
    /// It failed; try again at `at`.
    Retry {
        /// Next send (Unix seconds).
        at: i64,
        /// What went wrong.
        error: String,
    },
    /// It failed and no send is left: parked as failed.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// Which notifications to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotificationFilter<'a> {
    /// Only this state.
    pub state: Option<DeliveryState>,
    /// Only about this agreement.
    pub agreement_no: Option<&'a AgreementNo>,
    /// At most this many, oldest first.
    pub limit: u32,
}

/// Which notifications to send again.
#[derive(Debug, Clone, Copy)]
pub enum Resend<'a> {
    /// These, whatever their state.
    Ids(&'a [String]),
    /// Every failed one.
    AllFailed,
}

/// What a platform certificate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertRole {
    /// A root merchants trust (their `alipayRootCert.crt`).
    Root,
    /// A certificate of the platform's signing key, with its chain.
    Signing,
}

impl CertRole {
    /// Every role.
    pub const ALL: &'static [Self] = &[Self::Root, Self::Signing];

    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "ROOT",
            Self::Signing => "SIGNING",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == value)
    }
}

/// One of the platform's certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformCert {
    /// Its SN (of the first certificate of `chain_pem`).
    pub cert_sn: String,
    /// Root or signing.
    pub role: CertRole,
    /// PEM: the certificate, then (signing) its chain up to the root.
    pub chain_pem: String,
    /// Validity start (epoch seconds).
    pub not_before: i64,
    /// Validity end (epoch seconds).
    pub not_after: i64,
    /// When it was added: the newest signing certificate signs answers.
    pub created_at: i64,
}

/// One of an app's certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCert {
    /// The app.
    pub app_id: AppId,
    /// Its SN (`app_cert_sn`).
    pub cert_sn: String,
    /// PEM.
    pub cert_pem: String,
    /// Validity start (epoch seconds).
    pub not_before: i64,
    /// Validity end (epoch seconds).
    pub not_after: i64,
    /// When it was issued.
    pub created_at: i64,
    /// When a newer certificate's overlap ends and this one is refused.
    pub retired_at: Option<i64>,
}

/// When an app stops being served in public-key mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySunset {
    /// The app.
    pub app_id: AppId,
    /// The end of the overlap.
    pub sunset_at: i64,
}

/// Where a signing session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Waiting for the consumer.
    Open,
    /// Confirmed: the agreement exists.
    Signed,
    /// Declined by the consumer.
    Declined,
}

impl SessionState {
    /// Every state.
    pub const ALL: &'static [Self] = &[Self::Open, Self::Signed, Self::Declined];

    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Signed => "SIGNED",
            Self::Declined => "DECLINED",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == value)
    }
}

/// A signing session: what one page.sign link asked for, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSession {
    /// Random, the signing page's address.
    pub session_id: String,
    /// SHA-256 (hex) of the link's signature.
    pub link_hash: String,
    /// The app that made the link.
    pub app_id: AppId,
    /// `auth_app_id` of its notification: the app's own, or that of the merchant that granted
    /// the ISV token.
    pub auth_app_id: AppId,
    /// The merchant the agreement will be with.
    pub partner_id: PartnerId,
    /// How the link was signed (its notification is signed the same way).
    pub sign_type: SignType,
    /// The request's `biz_content`, validated.
    pub biz_content: String,
    /// The request's `timestamp`.
    pub timestamp: String,
    /// Where `dut_user_sign` goes, when the request named it.
    pub notify_url: Option<String>,
    /// Where the browser goes afterwards.
    pub return_url: Option<String>,
    /// Open, signed or declined.
    pub state: SessionState,
    /// When it was opened.
    pub created_at: i64,
    /// When it can no longer be confirmed.
    pub expires_at: i64,
    /// The agreement it created.
    pub agreement_no: Option<AgreementNo>,
    /// Who signed or declined.
    pub user_id: Option<UserId>,
    /// When.
    pub finished_at: Option<i64>,
}

/// A periodic agreement's rule as stored (dates `yyyy-MM-dd`, amounts in fen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodRuleRecord {
    /// The agreement.
    pub agreement_no: AgreementNo,
    /// `DAY` or `MONTH`.
    pub period_type: String,
    /// Units per period.
    pub period: i64,
    /// The first deduction's day.
    pub execute_time: String,
    /// Largest single deduction.
    pub single_amount: i64,
    /// Largest sum.
    pub total_amount: Option<i64>,
    /// Most deductions.
    pub total_payments: Option<i64>,
    /// The next deduction's day.
    pub next_deduct_time: String,
}

impl PeriodRuleRecord {
    /// The stored form of `agreement_no`'s rule, its next deduction on `execute_time`.
    pub fn new(agreement_no: &AgreementNo, rule: &agreements_domain::sign::PeriodRule) -> Self {
        Self {
            agreement_no: agreement_no.clone(),
            period_type: rule.period_type.as_str().to_owned(),
            period: i64::from(rule.period),
            execute_time: rule.execute_time.to_string(),
            single_amount: rule.single_amount,
            total_amount: rule.total_amount,
            total_payments: rule.total_payments.map(i64::from),
            next_deduct_time: rule.execute_time.to_string(),
        }
    }

    /// The rule as the domain reads it, and the next deduction day.
    pub fn rule(
        &self,
    ) -> Result<
        (
            agreements_domain::sign::PeriodRule,
            agreements_domain::sign::Date,
        ),
        crate::Invalid,
    > {
        use agreements_domain::sign::{PeriodRule, PeriodType, parse_date};
        let bad = |column: &'static str, value: String| crate::Invalid {
            table: "period_rules",
            column,
            value: Some(value),
            rule: "does not read as a period rule".into(),
        };
        let rule = PeriodRule {
            period_type: PeriodType::parse(&self.period_type)
                .ok_or_else(|| bad("period_type", self.period_type.clone()))?,
            period: u32::try_from(self.period)
                .map_err(|_| bad("period", self.period.to_string()))?,
            execute_time: parse_date(&self.execute_time)
                .ok_or_else(|| bad("execute_time", self.execute_time.clone()))?,
            single_amount: self.single_amount,
            total_amount: self.total_amount,
            total_payments: self
                .total_payments
                .map(u32::try_from)
                .transpose()
                .map_err(|_| bad("total_payments", format!("{:?}", self.total_payments)))?,
        };
        let next = parse_date(&self.next_deduct_time)
            .ok_or_else(|| bad("next_deduct_time", self.next_deduct_time.clone()))?;
        Ok((rule, next))
    }
}

/// An app's content-encryption key (its `Debug` shows no key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppContentKey {
    /// The app.
    pub app_id: AppId,
    /// The key.
    pub content_key: ContentKey,
    /// When it was set.
    pub updated_at: i64,
}

/// A consumer's password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The account.
    pub user_id: UserId,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// When it was set.
    pub updated_at: i64,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user_id", &self.user_id)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// A consumer signed in on the web pages.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsumerSession {
    /// SHA-256 (hex) of the cookie's secret.
    pub token_hash: String,
    /// The account.
    pub user_id: UserId,
    /// The token its forms must carry.
    pub csrf_token: String,
    /// When it began.
    pub created_at: i64,
    /// When it ends.
    pub expires_at: i64,
}

impl std::fmt::Debug for ConsumerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerSession")
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A confirmed signing to write: the agreement, its rule, its history's first event, its
/// notifications, and the session it closes — one transaction.
#[derive(Debug, Clone)]
pub struct NewSigned<'a> {
    /// The session confirmed.
    pub session_id: &'a str,
    /// The agreement.
    pub agreement: &'a Agreement,
    /// Its period rule.
    pub period_rule: Option<&'a PeriodRuleRecord>,
    /// Who signed (`user …`).
    pub actor: &'a str,
    /// Its notifications.
    pub notifications: &'a [NewNotification],
}

/// What a [`NewSigned`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignOutcome {
    /// The agreement exists now.
    Signed,
    /// The session was already finished (the link was used): nothing written. Holds it.
    Finished(Box<SigningSession>),
    /// The merchant's number is taken by another agreement of the same merchant, product and
    /// scene: nothing written.
    ExternalTaken,
    /// The agreement number is taken (draw another).
    NumberTaken,
    /// There is no such session.
    NotFound,
}

/// One answered read or change of a person's agreements: the audit trail's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Time-ordered and unique: `at_ms` in 13 digits, then the writer's tag and sequence.
    pub id: String,
    /// When it was answered, in Unix milliseconds.
    pub at_ms: i64,
    /// `v2`, `v3` or `page` (the consumer's own pages).
    pub channel: String,
    /// The OpenAPI method, or the page (`me`, `me.agreement`, `me.cancel`).
    pub method: String,
    /// The calling app (none on the consumer pages).
    pub app_id: Option<String>,
    /// The merchant the call acted for.
    pub partner_id: Option<String>,
    /// The ISV app the request's `app_auth_token` was granted to, when it carried one.
    pub isv_app_id: Option<String>,
    /// The token's last four characters (never the token).
    pub token_suffix: Option<String>,
    /// The account whose agreements were read or changed, once known.
    pub user_id: Option<String>,
    /// Whom or what the request named, masked as in logs (`alipay_logon_id abc***@x.com`).
    pub asked: Option<String>,
    /// How many agreements the answer carried or the change touched.
    pub returned: i64,
    /// Their numbers, space-separated.
    pub agreement_nos: String,
    /// The answer's `code` (`10000` for success).
    pub code: String,
    /// Its `sub_code`, on failure.
    pub sub_code: Option<String>,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Copy)]
pub struct AuditFilter<'a> {
    /// Only about these accounts (a person's accounts).
    pub user_ids: Option<&'a [String]>,
    /// Only by this app.
    pub app_id: Option<&'a str>,
    /// From this time on, in Unix milliseconds.
    pub since_ms: i64,
    /// Before this time, in Unix milliseconds.
    pub until_ms: i64,
    /// At most this many, oldest first.
    pub limit: u32,
}
