//! The documented column sets: one per kind, the same names in CSV headers and JSON Lines
//! fields, and how each value is read (with the API's own types and rules) and written.

use std::borrow::Cow;

use agreements_domain::ids::{
    AgreementNo, AppId, CustomerId, ExternalAgreementNo, GroupId, LogonId, OpenId, PartnerId,
    PersonalProductCode, ProductCode, SignScene, UserId,
};
use agreements_domain::{
    Agreement, AgreementStatus, Contract, EntityStatus, Merchant, PrincipalType, Product,
    ThirdPartyType,
};
use agreements_protocol::timestamp::{format_beijing, parse_beijing};
use agreements_protocol::{Method, PublicKey, SignType};
use agreements_store::{
    AccountRecord, AppKey, AppRecord, AppStatus, Kind, LogonIdRecord, NewGroup, OpenIdRecord,
    ProductRecord, Record,
};

/// Longest display name, notification address or external logon id accepted.
pub const MAX_TEXT_CHARS: usize = 256;

/// One column of a kind's file.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name (CSV header, JSON field).
    pub name: &'static str,
    /// Whether every row must give it (a CSV header must name it).
    pub required: bool,
    /// A list of values: a JSON array, or space-separated in CSV.
    pub list: bool,
}

const fn req(name: &'static str) -> Column {
    Column {
        name,
        required: true,
        list: false,
    }
}

const fn opt(name: &'static str) -> Column {
    Column {
        name,
        required: false,
        list: false,
    }
}

const fn list(name: &'static str) -> Column {
    Column {
        name,
        required: false,
        list: true,
    }
}

/// The columns of `kind`'s files, in the order written.
pub fn columns(kind: Kind) -> &'static [Column] {
    match kind {
        Kind::Group => const { &[req("group_id"), req("name")] },
        Kind::Merchant => {
            const {
                &[
                    req("partner_id"),
                    req("name"),
                    req("status"),
                    opt("group_id"),
                ]
            }
        }
        Kind::Product => {
            const {
                &[
                    req("personal_product_code"),
                    req("name"),
                    list("product_codes"),
                ]
            }
        }
        Kind::Contract => {
            const {
                &[
                    req("partner_id"),
                    req("product_code"),
                    req("status"),
                    req("valid_from"),
                    req("valid_to"),
                ]
            }
        }
        Kind::App => {
            const {
                &[
                    req("app_id"),
                    req("partner_id"),
                    req("name"),
                    req("status"),
                    opt("notify_url"),
                    opt("rsa2_public_key"),
                    opt("rsa_public_key"),
                    list("methods"),
                ]
            }
        }
        Kind::Account => const { &[req("user_id"), req("customer_id"), req("status")] },
        Kind::LogonId => const { &[req("logon_id"), req("user_id")] },
        Kind::OpenId => const { &[req("app_id"), req("open_id"), req("user_id")] },
        Kind::Agreement => {
            const {
                &[
                    req("agreement_no"),
                    req("partner_id"),
                    req("sign_app_id"),
                    req("principal_type"),
                    req("principal_id"),
                    req("alipay_user_id"),
                    req("personal_product_code"),
                    req("product_code"),
                    opt("sign_scene"),
                    opt("third_party_type"),
                    opt("external_agreement_no"),
                    opt("external_logon_id"),
                    req("status"),
                    req("sign_time"),
                    req("valid_time"),
                    req("invalid_time"),
                    opt("unsign_time"),
                ]
            }
        }
    }
}

/// A value as read from a file: text, or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// One text value.
    Text(Cow<'a, str>),
    /// Several.
    List(Vec<String>),
}

/// Why a row was not accepted: the field at fault (empty for the row as a whole) and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The column.
    pub field: String,
    /// The rule broken, for the operator.
    pub reason: String,
}

impl Rejection {
    /// A rejection of `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A row's values by column position (`None`: absent or empty).
pub struct Fields<'r, 'a> {
    kind: Kind,
    values: &'r [Option<Value<'a>>],
}

impl<'r, 'a> Fields<'r, 'a> {
    /// The values of one row of `kind`, in [`columns`] order.
    pub fn new(kind: Kind, values: &'r [Option<Value<'a>>]) -> Self {
        Self { kind, values }
    }

    fn value(&self, name: &'static str) -> Option<&'r Value<'a>> {
        let i = columns(self.kind).iter().position(|c| c.name == name)?;
        self.values.get(i)?.as_ref()
    }

    fn opt(&self, name: &'static str) -> Result<Option<&'r str>, Rejection> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Text(t)) if t.is_empty() => Ok(None),
            Some(Value::Text(t)) => Ok(Some(t)),
            Some(Value::List(_)) => Err(Rejection::new(name, "must be a single value, not a list")),
        }
    }

    fn text(&self, name: &'static str) -> Result<&'r str, Rejection> {
        self.opt(name)?
            .ok_or_else(|| Rejection::new(name, "is required"))
    }

    fn id<T, E: std::fmt::Display>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&'r str) -> Result<T, E>,
    ) -> Result<T, Rejection> {
        let value = self.text(name)?;
        parse(value).map_err(|e| Rejection::new(name, format!("{} {e}", shown(value))))
    }

    fn opt_id<T, E: std::fmt::Display>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&'r str) -> Result<T, E>,
    ) -> Result<Option<T>, Rejection> {
        self.opt(name)?
            .map(|v| parse(v).map_err(|e| Rejection::new(name, format!("{} {e}", shown(v)))))
            .transpose()
    }

    fn known<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&'r str) -> Option<T>,
        allowed: &str,
    ) -> Result<T, Rejection> {
        let value = self.text(name)?;
        parse(value).ok_or_else(|| {
            Rejection::new(name, format!("{} is not one of {allowed}", shown(value)))
        })
    }

    fn time(&self, name: &'static str) -> Result<i64, Rejection> {
        self.opt_time(name)?
            .ok_or_else(|| Rejection::new(name, "is required"))
    }

    fn opt_time(&self, name: &'static str) -> Result<Option<i64>, Rejection> {
        self.opt(name)?
            .map(|v| {
                parse_beijing(v).ok_or_else(|| {
                    Rejection::new(
                        name,
                        format!("{} is not yyyy-MM-dd HH:mm:ss (Beijing time)", shown(v)),
                    )
                })
            })
            .transpose()
    }

    fn free_text(&self, name: &'static str) -> Result<Option<String>, Rejection> {
        self.opt(name)?.map(|v| free_text(name, v)).transpose()
    }

    fn list(&self, name: &'static str) -> Result<Vec<&'r str>, Rejection> {
        Ok(match self.value(name) {
            None => Vec::new(),
            Some(Value::Text(t)) => t.split_ascii_whitespace().collect(),
            Some(Value::List(items)) => items.iter().map(String::as_str).collect(),
        })
    }
}

/// A value quoted for a message, cut to 40 characters.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(40).collect();
    if cut.len() < value.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

fn free_text(name: &'static str, value: &str) -> Result<String, Rejection> {
    if value.chars().count() > MAX_TEXT_CHARS {
        Err(Rejection::new(
            name,
            format!("is longer than {MAX_TEXT_CHARS} characters"),
        ))
    } else if value.chars().any(char::is_control) {
        Err(Rejection::new(name, "must not contain control characters"))
    } else {
        Ok(value.to_owned())
    }
}

fn entity_status(f: &Fields<'_, '_>) -> Result<EntityStatus, Rejection> {
    f.known("status", EntityStatus::parse, "NORMAL, DISABLED")
}

/// Reads one row of `kind` with the API's types and rules.
pub fn parse(kind: Kind, f: &Fields<'_, '_>) -> Result<Record, Rejection> {
    Ok(match kind {
        Kind::Group => Record::Group(NewGroup {
            group_id: f.id("group_id", GroupId::parse)?,
            name: free_text("name", f.text("name")?)?,
        }),
        Kind::Merchant => Record::Merchant(Merchant {
            partner_id: f.id("partner_id", PartnerId::parse)?,
            name: free_text("name", f.text("name")?)?,
            status: entity_status(f)?,
            group_id: f.opt_id("group_id", GroupId::parse)?,
        }),
        Kind::Product => Record::Product(ProductRecord {
            product: Product {
                personal_product_code: f.id("personal_product_code", PersonalProductCode::parse)?,
                product_codes: f
                    .list("product_codes")?
                    .into_iter()
                    .map(|c| {
                        ProductCode::parse(c).map_err(|e| {
                            Rejection::new("product_codes", format!("{} {e}", shown(c)))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
            name: free_text("name", f.text("name")?)?,
        }),
        Kind::Contract => {
            let contract = Contract {
                partner_id: f.id("partner_id", PartnerId::parse)?,
                product_code: f.id("product_code", ProductCode::parse)?,
                status: entity_status(f)?,
                valid_from: f.time("valid_from")?,
                valid_to: f.time("valid_to")?,
            };
            if contract.valid_to <= contract.valid_from {
                return Err(Rejection::new("valid_to", "must be after valid_from"));
            }
            Record::Contract(contract)
        }
        Kind::App => Record::App(app(f)?),
        Kind::Account => Record::Account(AccountRecord {
            user_id: f.id("user_id", UserId::parse)?,
            customer_id: f.id("customer_id", CustomerId::parse)?,
            status: entity_status(f)?,
        }),
        Kind::LogonId => Record::LogonId(LogonIdRecord {
            logon_id: f
                .opt("logon_id")?
                .ok_or_else(|| Rejection::new("logon_id", "is required"))
                .and_then(|v| {
                    LogonId::parse(v).map_err(|e| Rejection::new("logon_id", e.to_string()))
                })?,
            user_id: f.id("user_id", UserId::parse)?,
        }),
        Kind::OpenId => Record::OpenId(OpenIdRecord {
            app_id: f.id("app_id", AppId::parse)?,
            open_id: f.id("open_id", OpenId::parse)?,
            user_id: f.id("user_id", UserId::parse)?,
        }),
        Kind::Agreement => Record::Agreement(agreement(f)?),
    })
}

fn app(f: &Fields<'_, '_>) -> Result<AppRecord, Rejection> {
    let mut keys = Vec::new();
    for (name, sign_type) in [
        ("rsa2_public_key", SignType::Rsa2),
        ("rsa_public_key", SignType::Rsa),
    ] {
        if let Some(text) = f.opt(name)? {
            let key = PublicKey::parse(text)
                .and_then(|k| k.to_spki_base64())
                .map_err(|e| Rejection::new(name, format!("is not a public key: {e}")))?;
            keys.push(AppKey {
                sign_type,
                public_key: key,
            });
        }
    }
    let methods = f
        .list("methods")?
        .into_iter()
        .map(|m| {
            Method::parse(m)
                .map(|m| m.name().to_owned())
                .ok_or_else(|| {
                    Rejection::new("methods", format!("{} is not a served method", shown(m)))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let notify_url = f.free_text("notify_url")?;
    if let Some(url) = &notify_url
        && let Err(e) = agreements_domain::notify::check_url(url)
    {
        return Err(Rejection::new("notify_url", e));
    }
    Ok(AppRecord {
        app_id: f.id("app_id", AppId::parse)?,
        partner_id: f.id("partner_id", PartnerId::parse)?,
        name: free_text("name", f.text("name")?)?,
        status: f.known("status", AppStatus::parse, "ONLINE, OFFLINE")?,
        notify_url,
        keys,
        methods,
    })
}

fn agreement(f: &Fields<'_, '_>) -> Result<Agreement, Rejection> {
    let principal_type = f.known("principal_type", PrincipalType::parse, "CARD, CUSTOMER")?;
    let principal_id = f.id("principal_id", CustomerId::parse)?;
    let alipay_user_id = f.id("alipay_user_id", UserId::parse)?;
    if principal_type == PrincipalType::Card && principal_id.as_str() != alipay_user_id.as_str() {
        return Err(Rejection::new(
            "principal_id",
            "a CARD agreement's principal_id must equal alipay_user_id",
        ));
    }
    let status = f.known(
        "status",
        AgreementStatus::parse,
        "TEMP, NORMAL, STOP, UNSIGN",
    )?;
    let unsign_time = f.opt_time("unsign_time")?;
    match (status, unsign_time) {
        (AgreementStatus::Unsign, None) => {
            return Err(Rejection::new(
                "unsign_time",
                "is required when status is UNSIGN",
            ));
        }
        (s, Some(_)) if s != AgreementStatus::Unsign => {
            return Err(Rejection::new(
                "unsign_time",
                "is only for UNSIGN agreements",
            ));
        }
        _ => {}
    }
    let valid_time = f.time("valid_time")?;
    let invalid_time = f.time("invalid_time")?;
    if invalid_time <= valid_time {
        return Err(Rejection::new("invalid_time", "must be after valid_time"));
    }
    Ok(Agreement {
        agreement_no: f.id("agreement_no", AgreementNo::parse)?,
        partner_id: f.id("partner_id", PartnerId::parse)?,
        sign_app_id: f.id("sign_app_id", AppId::parse)?,
        principal_type,
        principal_id: principal_id.into(),
        alipay_user_id,
        personal_product_code: f.id("personal_product_code", PersonalProductCode::parse)?,
        product_code: f.id("product_code", ProductCode::parse)?,
        sign_scene: f
            .opt_id("sign_scene", SignScene::parse)?
            .unwrap_or_else(SignScene::default_scene),
        third_party_type: match f.opt("third_party_type")? {
            None => ThirdPartyType::Partner,
            Some(_) => f.known(
                "third_party_type",
                ThirdPartyType::parse,
                "PARTNER, MERCHANT",
            )?,
        },
        external_agreement_no: f
            .opt_id("external_agreement_no", ExternalAgreementNo::parse)?
            .map(String::from),
        external_logon_id: f.free_text("external_logon_id")?,
        status,
        sign_time: f.time("sign_time")?,
        valid_time,
        invalid_time,
        unsign_time,
    })
}

fn text<'a>(value: impl Into<Cow<'a, str>>) -> Option<Value<'a>> {
    Some(Value::Text(value.into()))
}

fn opt_text<'a>(value: Option<impl Into<Cow<'a, str>>>) -> Option<Value<'a>> {
    value.map(|v| Value::Text(v.into()))
}

fn time<'a>(unix: i64) -> Option<Value<'a>> {
    text(format_beijing(unix))
}

/// A record's values in [`columns`] order, for writing.
pub fn values(record: &Record) -> Vec<Option<Value<'_>>> {
    match record {
        Record::Group(g) => vec![text(g.group_id.as_str()), text(g.name.as_str())],
        Record::Merchant(m) => vec![
            text(m.partner_id.as_str()),
            text(m.name.as_str()),
            text(m.status.as_str()),
            opt_text(m.group_id.as_ref().map(GroupId::as_str)),
        ],
        Record::Product(p) => vec![
            text(p.product.personal_product_code.as_str()),
            text(p.name.as_str()),
            Some(Value::List(
                p.product
                    .product_codes
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
            )),
        ],
        Record::Contract(k) => vec![
            text(k.partner_id.as_str()),
            text(k.product_code.as_str()),
            text(k.status.as_str()),
            time(k.valid_from),
            time(k.valid_to),
        ],
        Record::App(a) => {
            let key = |t: SignType| {
                opt_text(
                    a.keys
                        .iter()
                        .find(|k| k.sign_type == t)
                        .map(|k| k.public_key.as_str()),
                )
            };
            vec![
                text(a.app_id.as_str()),
                text(a.partner_id.as_str()),
                text(a.name.as_str()),
                text(a.status.as_str()),
                opt_text(a.notify_url.as_deref()),
                key(SignType::Rsa2),
                key(SignType::Rsa),
                Some(Value::List(a.methods.clone())),
            ]
        }
        Record::Account(a) => vec![
            text(a.user_id.as_str()),
            text(a.customer_id.as_str()),
            text(a.status.as_str()),
        ],
        Record::LogonId(l) => vec![text(l.logon_id.as_str()), text(l.user_id.as_str())],
        Record::OpenId(o) => vec![
            text(o.app_id.as_str()),
            text(o.open_id.as_str()),
            text(o.user_id.as_str()),
        ],
        Record::Agreement(a) => vec![
            text(a.agreement_no.as_str()),
            text(a.partner_id.as_str()),
            text(a.sign_app_id.as_str()),
            text(a.principal_type.as_str()),
            text(a.principal_id.as_str()),
            text(a.alipay_user_id.as_str()),
            text(a.personal_product_code.as_str()),
            text(a.product_code.as_str()),
            text(a.sign_scene.as_str()),
            text(a.third_party_type.as_str()),
            opt_text(a.external_agreement_no.as_deref()),
            opt_text(a.external_logon_id.as_deref()),
            text(a.status.as_str()),
            time(a.sign_time),
            time(a.valid_time),
            time(a.invalid_time),
            a.unsign_time.and_then(time),
        ],
    }
}

/// The natural key of a record, for reports (a logon id masked).
pub fn key_of(record: &Record) -> String {
    match record {
        Record::Group(g) => g.group_id.to_string(),
        Record::Merchant(m) => m.partner_id.to_string(),
        Record::Product(p) => p.product.personal_product_code.to_string(),
        Record::Contract(k) => format!("{} {}", k.partner_id, k.product_code),
        Record::App(a) => a.app_id.to_string(),
        Record::Account(a) => a.user_id.to_string(),
        Record::LogonId(l) => l.logon_id.masked(),
        Record::OpenId(o) => format!("{} {}", o.app_id, o.open_id),
        Record::Agreement(a) => a.agreement_no.to_string(),
    }
}
