//! Signing (sign-flow.md §1): the `biz_content` of `alipay.user.agreement.page.sign`, the
//! agreement a confirmed signing creates, and `alipay.user.agreement.sign.effect`.

use serde_json::{Map, Value};
pub use time::Date;
use time::macros::offset;
use time::{Month, OffsetDateTime, PrimitiveDateTime, Time};

use agreements_protocol::timestamp::parse_beijing;

use crate::agreement::{Agreement, AgreementStatus, PrincipalType, ThirdPartyType};
use crate::biz::Fields;
use crate::error::BizError;
use crate::ids::{
    AgreementNo, AppId, ExternalAgreementNo, PartnerId, PersonalProductCode, ProductCode,
    SignScene, UserId,
};
use crate::query::AgreementQuery;

/// The agreement product whose agreements need a period rule (周期扣款).
pub const CYCLE_PAY_AUTH_P: &str = "CYCLE_PAY_AUTH_P";

/// `invalid_time` of an agreement signed without `sign_validity_period` ("long-term"), as the
/// platform writes it in `dut_user_sign`: `2115-02-01 00:00:00` Beijing time.
pub const LONG_TERM_INVALID_TIME: &str = "2115-02-01 00:00:00";

/// The longest `effect_time` (seconds), as the field description gives it.
pub const MAX_EFFECT_TIME: i64 = 86_400;

/// Largest amount in yuan a period rule may name (that of `alipay.trade.pay`'s
/// `total_amount`).
pub const MAX_AMOUNT_CENTS: i64 = 100_000_000 * 100;

/// How the consumer reaches the signing page (`access_params.channel`). Every channel is served
/// by the same hosted page here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `ALIPAYAPP`: the wallet's H5 page.
    AlipayApp,
    /// `QRCODE`: scanned.
    QrCode,
    /// `QRCODEORSMS`: scanned or by SMS.
    QrCodeOrSms,
}

impl Channel {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "ALIPAYAPP" => Some(Self::AlipayApp),
            "QRCODE" => Some(Self::QrCode),
            "QRCODEORSMS" => Some(Self::QrCodeOrSms),
            _ => None,
        }
    }
}

/// When the agreement takes effect (`agreement_effect_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectType {
    /// `DIRECT` (default): `NORMAL` at once.
    Direct,
    /// `NOTICE`: `TEMP` until the merchant calls `sign.effect`.
    Notice,
}

/// The unit of a period (`period_rule_params.period_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodType {
    /// `DAY`: `period` days.
    Day,
    /// `MONTH`: `period` calendar months.
    Month,
}

impl PeriodType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "DAY",
            Self::Month => "MONTH",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "DAY" => Some(Self::Day),
            "MONTH" => Some(Self::Month),
            _ => None,
        }
    }
}

/// A periodic agreement's rule (`period_rule_params`): shown to the consumer, stored with the
/// agreement, and what its deductions are held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodRule {
    /// `DAY` or `MONTH`.
    pub period_type: PeriodType,
    /// How many units a period lasts (DAY: at least 7).
    pub period: u32,
    /// The first deduction's day (Beijing date; MONTH: day of month at most 28).
    pub execute_time: Date,
    /// The largest single deduction, in fen (分).
    pub single_amount: i64,
    /// The largest sum of all deductions, in fen.
    pub total_amount: Option<i64>,
    /// The most deductions.
    pub total_payments: Option<u32>,
}

impl PeriodRule {
    /// Validates `period_rule_params` for a signing on `today` (Beijing date).
    pub fn parse(rule: &Map<String, Value>, today: Date) -> Result<Self, BizError> {
        let f = Fields(rule);
        let invalid =
            |detail: String| BizError::InvalidParameter(format!("period_rule_params.{detail}"));
        let period_type = f
            .text("period_type", 8)
            .map_err(|e| invalid(detail_of(e)))?
            .ok_or_else(|| invalid("period_type is required (DAY or MONTH)".into()))
            .and_then(|v| {
                PeriodType::parse(&v)
                    .ok_or_else(|| invalid("period_type must be DAY or MONTH".into()))
            })?;
        let period = positive(&f, "period")
            .map_err(invalid)?
            .ok_or_else(|| invalid("period is required".into()))?;
        if period_type == PeriodType::Day && period < 7 {
            return Err(invalid(
                "period must be at least 7 when period_type is DAY".into(),
            ));
        }
        if period > 36_500 {
            return Err(invalid("period must be at most 36500".into()));
        }
        let execute_time = f
            .text("execute_time", 10)
            .map_err(|e| invalid(detail_of(e)))?
            .ok_or_else(|| invalid("execute_time is required (yyyy-MM-dd)".into()))?;
        let execute_time = parse_date(&execute_time)
            .ok_or_else(|| invalid("execute_time must be a date, yyyy-MM-dd".into()))?;
        if execute_time < today {
            return Err(invalid(format!(
                "execute_time {execute_time} is before today ({today}, Beijing time)"
            )));
        }
        if period_type == PeriodType::Month && execute_time.day() > 28 {
            return Err(invalid(
                "execute_time must be on day 1 to 28 of a month when period_type is MONTH".into(),
            ));
        }
        let single_amount = amount(&f, "single_amount")
            .map_err(invalid)?
            .ok_or_else(|| invalid("single_amount is required (yuan, two decimals)".into()))?;
        let total_amount = amount(&f, "total_amount").map_err(invalid)?;
        if total_amount.is_some_and(|total| total < single_amount) {
            return Err(invalid(
                "total_amount must not be less than single_amount".into(),
            ));
        }
        let total_payments = positive(&f, "total_payments").map_err(invalid)?;
        Ok(Self {
            period_type,
            period,
            execute_time,
            single_amount,
            total_amount,
            total_payments,
        })
    }
}

/// The field rule's message without its "invalid parameter" prefix, to prefix it again.
fn detail_of(e: BizError) -> String {
    match e {
        BizError::InvalidParameter(detail) => detail,
        other => other.to_string(),
    }
}

/// A positive integer field (a JSON integer or a string of digits).
fn positive(f: &Fields<'_>, name: &str) -> Result<Option<u32>, String> {
    let Some(text) = f.text(name, 10).map_err(detail_of)? else {
        return Ok(None);
    };
    match text.parse::<u32>() {
        Ok(n) if n > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(format!("{name} must be a positive whole number")),
    }
}

/// An amount in yuan with at most two decimals (a JSON number or a string), in fen.
fn amount(f: &Fields<'_>, name: &str) -> Result<Option<i64>, String> {
    let text = match f.0.get(name) {
        Some(Value::Number(n)) => n.to_string(),
        _ => match f.text(name, 16).map_err(detail_of)? {
            Some(text) => text,
            None => return Ok(None),
        },
    };
    parse_yuan(&text)
        .filter(|&fen| fen > 0 && fen <= MAX_AMOUNT_CENTS)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{name} must be an amount in yuan from 0.01 to 100000000 with at most two decimals"
            )
        })
}

/// `12`, `12.3` or `12.34` yuan, in fen.
pub fn parse_yuan(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || whole.len() > 9
        || fraction.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || (text.contains('.') && fraction.is_empty())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
    Some(whole * 100 + fraction)
}

/// Fen as yuan with two decimals: `1234` → `12.34`.
pub fn format_yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// `yyyy-MM-dd`.
pub fn parse_date(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if text.len() != 10 {
        return None;
    }
    Date::parse(text, format).ok()
}

/// The Beijing date of a moment.
pub fn beijing_date(unix: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset!(+8))
        .date()
}

/// How long the agreement is valid (`sign_validity_period`): `n` days (`d`) or calendar months
/// (`m`) from signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// `{n}d`.
    Days(u32),
    /// `{n}m`.
    Months(u32),
}

impl Validity {
    /// Parses `{n}d` or `{n}m`: n from 1 to 36500 days or 1200 months.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        const RULE: &str =
            "must be a whole number of days or months, e.g. 30d or 12m (at most 36500d or 1200m)";
        let (digits, unit) = text.split_at(text.len().saturating_sub(1));
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RULE);
        }
        let n: u32 = digits.parse().map_err(|_| RULE)?;
        match unit {
            "d" if (1..=36_500).contains(&n) => Ok(Self::Days(n)),
            "m" if (1..=1_200).contains(&n) => Ok(Self::Months(n)),
            _ => Err(RULE),
        }
    }

    /// The end of validity of an agreement signed at `signed` (Unix seconds): days are 86,400
    /// seconds; months are calendar months in Beijing time, the day clamped to the month's last.
    pub fn end(self, signed: i64) -> i64 {
        match self {
            Self::Days(n) => signed + i64::from(n) * 86_400,
            Self::Months(n) => {
                let at = OffsetDateTime::from_unix_timestamp(signed)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
                    .to_offset(offset!(+8));
                let date = add_months(at.date(), n);
                PrimitiveDateTime::new(date, at.time())
                    .assume_offset(offset!(+8))
                    .unix_timestamp()
            }
        }
    }
}

/// `date` plus `n` calendar months, the day clamped to the last of the target month.
pub fn add_months(date: Date, n: u32) -> Date {
    let months = i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1 + i64::from(n);
    let year = i32::try_from(months.div_euclid(12))
        .unwrap_or(9999)
        .min(9999);
    let month = Month::try_from(u8::try_from(months.rem_euclid(12) + 1).unwrap_or(1))
        .unwrap_or(Month::January);
    let day = date.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).unwrap_or(date)
}

/// The `identity_params` the signing page enforces: only the named account may sign.
/// `user_name`, `cert_no` and `identity_hash` are checked for form only (no real-name data is
/// held here).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// `sign_user_id`: the only account allowed to sign.
    pub sign_user_id: Option<UserId>,
}

/// A validated `alipay.user.agreement.page.sign` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignRequest {
    /// The agreement product.
    pub personal_product_code: PersonalProductCode,
    /// The sales product, when named (else the product's first one the merchant holds a
    /// contract for).
    pub product_code: Option<ProductCode>,
    /// The scene (`DEFAULT|DEFAULT` when not given).
    pub sign_scene: SignScene,
    /// The merchant's number.
    pub external_agreement_no: Option<ExternalAgreementNo>,
    /// The user's login at the merchant, shown on the page.
    pub external_logon_id: Option<String>,
    /// `access_params.channel`.
    pub channel: Channel,
    /// The period rule (required for periodic products).
    pub period_rule: Option<PeriodRule>,
    /// `sign_validity_period`; long-term when absent.
    pub validity: Option<Validity>,
    /// DIRECT or NOTICE.
    pub effect_type: EffectType,
    /// `effect_time`: the signing must be done this many seconds after the request timestamp.
    pub effect_time: Option<i64>,
    /// PARTNER or MERCHANT.
    pub third_party_type: ThirdPartyType,
    /// `merchant_process_url` (checked as an address; no mid-flow jump is made).
    pub merchant_process_url: Option<String>,
    /// Who may sign.
    pub identity: Identity,
}

impl SignRequest {
    /// Validates `biz_content` for a request made on `today` (Beijing date). Failures are
    /// `INVALID_PARAMETER` naming the field; unknown fields are ignored.
    pub fn parse(biz: &Map<String, Value>, today: Date) -> Result<Self, BizError> {
        let f = Fields(biz);
        let personal_product_code = f
            .parsed("personal_product_code", 64, PersonalProductCode::parse)?
            .ok_or_else(|| {
                BizError::InvalidParameter("personal_product_code is required".into())
            })?;
        let product_code = f.parsed("product_code", 64, ProductCode::parse)?;
        let sign_scene = f
            .parsed("sign_scene", 64, SignScene::parse)?
            .unwrap_or_else(SignScene::default_scene);
        let external_agreement_no = f.parsed("external_agreement_no", 32, |v| {
            if v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                ExternalAgreementNo::parse(v).map_err(|e| e.0)
            } else {
                Err("must be letters and digits only")
            }
        })?;
        let external_logon_id = f.text("external_logon_id", 100)?;
        let channel = object(biz, "access_params")?
            .ok_or_else(|| {
                BizError::InvalidParameter(
                    "access_params is required, with channel ALIPAYAPP, QRCODE or QRCODEORSMS"
                        .into(),
                )
            })
            .and_then(|access| {
                Fields(access)
                    .text("channel", 16)?
                    .and_then(|c| Channel::parse(&c))
                    .ok_or_else(|| {
                        BizError::InvalidParameter(
                            "access_params.channel must be ALIPAYAPP, QRCODE or QRCODEORSMS".into(),
                        )
                    })
            })?;
        let periodic = personal_product_code.as_str() == CYCLE_PAY_AUTH_P;
        let period_rule = match (
            object(biz, "period_rule_params")?.filter(|r| !r.is_empty()),
            periodic,
        ) {
            (None, true) => {
                return Err(BizError::InvalidParameter(format!(
                    "period_rule_params is required for {CYCLE_PAY_AUTH_P}"
                )));
            }
            (Some(_), false) => {
                return Err(BizError::InvalidParameter(format!(
                    "period_rule_params applies only to the periodic product {CYCLE_PAY_AUTH_P}"
                )));
            }
            (Some(rule), true) => Some(PeriodRule::parse(rule, today)?),
            (None, false) => None,
        };
        let validity = f.parsed("sign_validity_period", 8, |v| Validity::parse(&v))?;
        let effect_type = f
            .parsed("agreement_effect_type", 16, |v| match v.as_str() {
                "DIRECT" => Ok(EffectType::Direct),
                "NOTICE" => Ok(EffectType::Notice),
                _ => Err("must be DIRECT or NOTICE"),
            })?
            .unwrap_or(EffectType::Direct);
        let effect_time = f.parsed("effect_time", 8, |v| match v.parse::<i64>() {
            Ok(n)
                if (0..=MAX_EFFECT_TIME).contains(&n) && v.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(n)
            }
            _ => Err("must be a whole number of seconds from 0 to 86400"),
        })?;
        let third_party_type = f
            .parsed("third_party_type", 32, |v| {
                ThirdPartyType::parse(&v).ok_or("must be PARTNER or MERCHANT")
            })?
            .unwrap_or(ThirdPartyType::Partner);
        let merchant_process_url = f.parsed("merchant_process_url", 1024, |v| {
            crate::address::check_form(&v).map(|_| v)
        })?;
        if object(biz, "zm_auth_params")?.is_some_and(|zm| !zm.is_empty()) {
            return Err(BizError::InvalidParameter(
                "zm_auth_params (Sesame credit signing) is not offered by this platform".into(),
            ));
        }
        let identity = match object(biz, "identity_params")? {
            None => Identity::default(),
            Some(identity) => {
                let f = Fields(identity);
                let field = |e: BizError| {
                    BizError::InvalidParameter(format!("identity_params.{}", detail_of(e)))
                };
                f.text("user_name", 100).map_err(field)?;
                f.parsed("cert_no", 18, |v| {
                    if v.bytes()
                        .all(|b| b.is_ascii_digit() || b == b'X' || b == b'x')
                    {
                        Ok(())
                    } else {
                        Err("must be an identity card number (digits, last may be X)")
                    }
                })
                .map_err(field)?;
                f.parsed("identity_hash", 64, |v| {
                    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        Ok(())
                    } else {
                        Err("must be 64 hexadecimal digits (SHA-256)")
                    }
                })
                .map_err(field)?;
                Identity {
                    sign_user_id: f.parsed("sign_user_id", 16, UserId::parse).map_err(field)?,
                }
            }
        };
        Ok(Self {
            personal_product_code,
            product_code,
            sign_scene,
            external_agreement_no,
            external_logon_id,
            channel,
            period_rule,
            validity,
            effect_type,
            effect_time,
            third_party_type,
            merchant_process_url,
            identity,
        })
    }

    /// When a signing of this request, made with the request `timestamp`, must be done: the
    /// timestamp plus `effect_time` when given, else `opened` plus `default_ttl`.
    pub fn deadline(&self, timestamp: &str, opened: i64, default_ttl: i64) -> i64 {
        match (self.effect_time, parse_beijing(timestamp)) {
            (Some(window), Some(at)) => at + window,
            _ => opened + default_ttl,
        }
    }
}

/// An optional JSON object field (absent, `null` or `""` mean not given; a JSON string holding
/// an object is read too, as some SDK models serialise nested models).
fn object<'a>(
    biz: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, BizError> {
    match biz.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(BizError::InvalidParameter(format!(
            "{name} must be a JSON object"
        ))),
    }
}

/// Who signs: the account and the person it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The account.
    pub user_id: UserId,
    /// The person.
    pub customer_id: crate::ids::CustomerId,
}

/// Everything a confirmed signing decides, besides the request: who signs, for which merchant
/// and app, when, and the number.
#[derive(Debug, Clone)]
pub struct Signing<'a> {
    /// The validated request.
    pub request: &'a SignRequest,
    /// The merchant signed with.
    pub partner_id: &'a PartnerId,
    /// The app that asked.
    pub app_id: &'a AppId,
    /// The sales product (named, or chosen from the merchant's contracts).
    pub product_code: &'a ProductCode,
    /// CARD or CUSTOMER, as the product says.
    pub principal_type: PrincipalType,
    /// Who signs.
    pub signer: &'a Signer,
    /// Now.
    pub now: i64,
}

impl Signing<'_> {
    /// The agreement to create, numbered `agreement_no`.
    pub fn agreement(&self, agreement_no: AgreementNo) -> Agreement {
        let r = self.request;
        let principal_id = match self.principal_type {
            PrincipalType::Card => self.signer.user_id.clone().into(),
            PrincipalType::Customer => self.signer.customer_id.clone().into(),
        };
        Agreement {
            agreement_no,
            partner_id: self.partner_id.clone(),
            sign_app_id: self.app_id.clone(),
            principal_type: self.principal_type,
            principal_id,
            alipay_user_id: self.signer.user_id.clone(),
            personal_product_code: r.personal_product_code.clone(),
            product_code: self.product_code.clone(),
            sign_scene: r.sign_scene.clone(),
            third_party_type: r.third_party_type,
            external_agreement_no: r.external_agreement_no.clone(),
            external_logon_id: r.external_logon_id.clone(),
            status: match r.effect_type {
                EffectType::Direct => AgreementStatus::Normal,
                EffectType::Notice => AgreementStatus::Temp,
            },
            sign_time: self.now,
            valid_time: self.now,
            invalid_time: r
                .validity
                .map_or_else(long_term_invalid_time, |v| v.end(self.now)),
            unsign_time: None,
        }
    }
}

/// [`LONG_TERM_INVALID_TIME`] in Unix seconds.
pub fn long_term_invalid_time() -> i64 {
    parse_beijing(LONG_TERM_INVALID_TIME).unwrap_or(i64::MAX / 2)
}

/// A platform agreement number: the Beijing date of `now` (`yyyyMMdd`) followed by 12 `digits`
/// (20 digits, the format of agreements.md §3).
pub fn agreement_no(now: i64, digits: &str) -> Result<AgreementNo, BizError> {
    let date = beijing_date(now);
    let no = format!(
        "{:04}{:02}{:02}{digits}",
        date.year(),
        u8::from(date.month()),
        date.day()
    );
    AgreementNo::parse(no).map_err(|e| BizError::SystemError(format!("agreement number: {e}")))
}

/// The start of a Beijing day, in Unix seconds.
pub fn day_start(date: Date) -> i64 {
    PrimitiveDateTime::new(date, Time::MIDNIGHT)
        .assume_offset(offset!(+8))
        .unix_timestamp()
}

/// A validated `alipay.user.agreement.sign.effect` request: the query method's locators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectRequest {
    /// Which agreement.
    pub query: AgreementQuery,
}

impl EffectRequest {
    /// The query's locator rules (`agreement_no` wins).
    pub fn parse(biz: &Map<String, Value>) -> Result<Self, BizError> {
        Ok(Self {
            query: AgreementQuery::parse(biz)?,
        })
    }
}

/// A validated `alipay.user.agreement.executionplan.modify` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    /// The agreement (required).
    pub agreement_no: AgreementNo,
    /// The new next deduction day.
    pub deduct_time: Date,
    /// Why (kept in the history).
    pub memo: Option<String>,
}

impl PlanRequest {
    /// `agreement_no` and `deduct_time` (`yyyy-MM-dd`) required, `memo` ≤ 1000 characters.
    pub fn parse(biz: &Map<String, Value>) -> Result<Self, BizError> {
        let f = Fields(biz);
        let agreement_no = f
            .parsed("agreement_no", 64, AgreementNo::parse)?
            .ok_or_else(|| BizError::InvalidParameter("agreement_no is required".into()))?;
        let deduct_time = f
            .text("deduct_time", 10)?
            .ok_or_else(|| {
                BizError::InvalidParameter("deduct_time is required (yyyy-MM-dd)".into())
            })
            .and_then(|t| {
                parse_date(&t).ok_or_else(|| {
                    BizError::InvalidParameter("deduct_time must be a date, yyyy-MM-dd".into())
                })
            })?;
        let memo = f.text("memo", 1000)?;
        Ok(Self {
            agreement_no,
            deduct_time,
            memo,
        })
    }
}

impl PeriodRule {
    /// Whether the next deduction may move from `next` to `to` on `today` (Beijing dates): not
    /// before today, not on or after the end of the period `next` starts (one period after it),
    /// and, for MONTH rules, on day 1 to 28. The message says which rule failed.
    pub fn check_move(&self, next: Date, to: Date, today: Date) -> Result<(), String> {
        if to < today {
            return Err(format!(
                "deduct_time {to} is before today ({today}, Beijing time)"
            ));
        }
        let end = match self.period_type {
            PeriodType::Day => next
                .checked_add(time::Duration::days(i64::from(self.period)))
                .unwrap_or(Date::MAX),
            PeriodType::Month => add_months(next, self.period),
        };
        if to >= end {
            return Err(format!(
                "deduct_time {to} is not within the current period ({next} to before {end}): a deduction can move inside its period only"
            ));
        }
        if self.period_type == PeriodType::Month && to.day() > 28 {
            return Err("deduct_time must be on day 1 to 28 of a month for a MONTH rule".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_deduction_moves_inside_its_period_only() {
        let rule = PeriodRule {
            period_type: PeriodType::Month,
            period: 1,
            execute_time: date!(2024 - 06 - 20),
            single_amount: 100,
            total_amount: None,
            total_payments: None,
        };
        let next = date!(2024 - 06 - 20);
        let today = date!(2024 - 05 - 20);
        assert_eq!(rule.check_move(next, date!(2024 - 07 - 19), today), Ok(()));
        assert_eq!(rule.check_move(next, date!(2024 - 05 - 20), today), Ok(()));
        for (to, says) in [
            (date!(2024 - 05 - 19), "before today"),
            (date!(2024 - 07 - 20), "not within the current period"),
            (date!(2024 - 06 - 29), "day 1 to 28"),
        ] {
            let e = rule.check_move(next, to, today).unwrap_err();
            assert!(e.contains(says), "{to}: {e}");
        }
        let daily = PeriodRule {
            period_type: PeriodType::Day,
            period: 7,
            ..rule
        };
        assert!(daily.check_move(next, date!(2024 - 06 - 26), today).is_ok());
        assert!(
            daily
                .check_move(next, date!(2024 - 06 - 27), today)
                .is_err()
        );
        let parsed = PlanRequest::parse(&map(
            r#"{"agreement_no":"20240520000000000001","deduct_time":"2024-06-21","memo":"late"}"#,
        ))
        .unwrap();
        assert_eq!(parsed.deduct_time, date!(2024 - 06 - 21));
        for (json, says) in [
            (
                r#"{"deduct_time":"2024-06-21"}"#,
                "agreement_no is required",
            ),
            (r#"{"agreement_no":"1"}"#, "deduct_time is required"),
            (
                r#"{"agreement_no":"1","deduct_time":"21/06/2024"}"#,
                "yyyy-MM-dd",
            ),
        ] {
            match PlanRequest::parse(&map(json)) {
                Err(BizError::InvalidParameter(d)) => assert!(d.contains(says), "{d}"),
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    fn map(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    const TODAY: Date = date!(2026 - 12 - 02);

    fn parse(json: &str) -> Result<SignRequest, BizError> {
        SignRequest::parse(&map(json), TODAY)
    }

    fn invalid(json: &str) -> String {
        match parse(json) {
            Err(BizError::InvalidParameter(detail)) => detail,
            other => panic!("{json}: {other:?}"),
        }
    }

    const MINIMAL: &str = r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"ALIPAYAPP"}}"#;

    #[test]
    fn the_minimal_request_takes_the_defaults() {
        let r = parse(MINIMAL).unwrap();
        assert_eq!(r.sign_scene.as_str(), "DEFAULT|DEFAULT");
        assert_eq!(r.effect_type, EffectType::Direct);
        assert_eq!(r.third_party_type, ThirdPartyType::Partner);
        assert_eq!(r.channel, Channel::AlipayApp);
        assert_eq!(r.validity, None);
        assert_eq!(r.period_rule, None);
    }

    #[test]
    fn each_field_rule_names_its_field() {
        let cases = [
            (
                r#"{"access_params":{"channel":"ALIPAYAPP"}}"#,
                "personal_product_code is required",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P"}"#,
                "access_params is required",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"PC"}}"#,
                "access_params.channel must be",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":"x"}"#,
                "access_params must be a JSON object",
            ),
            (
                r#"{"personal_product_code":"CYCLE_PAY_AUTH_P","access_params":{"channel":"QRCODE"}}"#,
                "period_rule_params is required",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"period_rule_params":{"period_type":"DAY"}}"#,
                "applies only to the periodic product",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"external_agreement_no":"a-b"}"#,
                "external_agreement_no must be letters and digits",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"sign_validity_period":"2y"}"#,
                "sign_validity_period must be a whole number",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"agreement_effect_type":"LATER"}"#,
                "agreement_effect_type must be DIRECT or NOTICE",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"effect_time":"86401"}"#,
                "effect_time must be",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"effect_time":-1}"#,
                "effect_time must be",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"third_party_type":"X"}"#,
                "third_party_type must be",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"merchant_process_url":"ftp://a.example/"}"#,
                "merchant_process_url must be an http",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"zm_auth_params":{"buckle_app_id":"1"}}"#,
                "zm_auth_params",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"identity_params":{"sign_user_id":"123"}}"#,
                "identity_params.sign_user_id",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"identity_params":{"identity_hash":"abc"}}"#,
                "identity_params.identity_hash must be 64",
            ),
            (
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","access_params":{"channel":"QRCODE"},"external_logon_id":{}}"#,
                "external_logon_id must be a string",
            ),
        ];
        for (json, expected) in cases {
            let detail = invalid(json);
            assert!(detail.contains(expected), "{json}: {detail}");
        }
    }

    fn rule(json: &str) -> Result<PeriodRule, String> {
        PeriodRule::parse(&map(json), TODAY).map_err(detail_of)
    }

    #[test]
    fn period_rules_are_consistent_or_refused() {
        let ok = rule(r#"{"period_type":"MONTH","period":1,"execute_time":"2026-12-28","single_amount":"19.90","total_amount":199,"total_payments":"12"}"#).unwrap();
        assert_eq!(ok.period_type, PeriodType::Month);
        assert_eq!(ok.single_amount, 1990);
        assert_eq!(ok.total_amount, Some(19_900));
        assert_eq!(ok.total_payments, Some(12));
        let refused = [
            (
                r#"{"period":1,"execute_time":"2026-12-28","single_amount":"1"}"#,
                "period_type is required",
            ),
            (
                r#"{"period_type":"WEEK","period":1,"execute_time":"2026-12-28","single_amount":"1"}"#,
                "period_type must be DAY or MONTH",
            ),
            (
                r#"{"period_type":"DAY","period":6,"execute_time":"2026-12-28","single_amount":"1"}"#,
                "at least 7",
            ),
            (
                r#"{"period_type":"DAY","period":0,"execute_time":"2026-12-28","single_amount":"1"}"#,
                "period must be a positive",
            ),
            (
                r#"{"period_type":"MONTH","period":1,"execute_time":"2026-12-29","single_amount":"1"}"#,
                "day 1 to 28",
            ),
            (
                r#"{"period_type":"MONTH","period":1,"execute_time":"2026-12-01","single_amount":"1"}"#,
                "before today",
            ),
            (
                r#"{"period_type":"MONTH","period":1,"execute_time":"2026/12/20","single_amount":"1"}"#,
                "yyyy-MM-dd",
            ),
            (
                r#"{"period_type":"MONTH","period":1,"execute_time":"2026-12-20"}"#,
                "single_amount is required",
            ),
            (
                r#"{"period_type":"MONTH","period":1,"execute_time":"2026-12-20","single_amount":"1.234"}"#,
                "at most two decimals",
            ),
            (
                r#"{"period_type":"MONTH","period":1,"execute_time":"2026-12-20","single_amount":"0"}"#,
                "from 0.01",
            ),
            (
                r#"{"period_type":"MONTH","period":1,"execute_time":"2026-12-20","single_amount":"10","total_amount":"9.99"}"#,
                "not be less than single_amount",
            ),
            (
                r#"{"period_type":"MONTH","period":1,"execute_time":"2026-12-20","single_amount":"10","total_payments":"-1"}"#,
                "total_payments must be a positive",
            ),
        ];
        for (json, expected) in refused {
            let detail = rule(json).unwrap_err();
            assert!(detail.contains(expected), "{json}: {detail}");
            assert!(detail.starts_with("period_rule_params."), "{detail}");
        }
    }

    #[test]
    fn yuan_are_read_exactly() {
        assert_eq!(parse_yuan("0.01"), Some(1));
        assert_eq!(parse_yuan("12.3"), Some(1230));
        assert_eq!(parse_yuan("100000000"), Some(10_000_000_000));
        for bad in ["", ".5", "5.", "1e3", "-1", "1.001", "1,00", "１"] {
            assert_eq!(parse_yuan(bad), None, "{bad}");
        }
        assert_eq!(format_yuan(1230), "12.30");
    }

    #[test]
    fn validity_counts_days_and_calendar_months() {
        let signed = parse_beijing("2026-01-31 10:00:00").unwrap();
        let end = |v: &str| {
            agreements_protocol::timestamp::format_beijing(Validity::parse(v).unwrap().end(signed))
        };
        assert_eq!(end("1m"), "2026-02-28 10:00:00");
        assert_eq!(end("13m"), "2027-02-28 10:00:00");
        assert_eq!(end("30d"), "2026-03-02 10:00:00");
        for bad in ["", "d", "0d", "1201m", "36501d", "+1d", "1 d", "1y"] {
            assert!(Validity::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            agreements_protocol::timestamp::format_beijing(long_term_invalid_time()),
            LONG_TERM_INVALID_TIME
        );
    }

    #[test]
    fn numbers_are_the_date_and_twelve_digits() {
        let now = parse_beijing("2026-12-02 23:59:59").unwrap();
        assert_eq!(
            agreement_no(now, "000000000042").unwrap().as_str(),
            "20261202000000000042"
        );
    }

    #[test]
    fn the_deadline_is_the_timestamp_plus_effect_time() {
        let mut r = parse(MINIMAL).unwrap();
        let opened = parse_beijing("2026-12-02 10:00:30").unwrap();
        assert_eq!(r.deadline("2026-12-02 10:00:00", opened, 900), opened + 900);
        r.effect_time = Some(60);
        assert_eq!(r.deadline("2026-12-02 10:00:00", opened, 900), opened + 30);
    }
}
