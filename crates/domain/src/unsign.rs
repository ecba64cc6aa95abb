//! `alipay.user.agreement.unsign` (agreements.md §7): which agreement, who cancels it and why.

use std::fmt;

use serde_json::{Map, Value};

use crate::agreement::{Agreement, AgreementStatus};
use crate::biz::Fields;
use crate::error::BizError;
use crate::ids::{AppId, ExternalAgreementNo, GroupId, PartnerId};
use crate::query::{AgreementQuery, Locator, choose};
use crate::visibility::Scope;

/// Longest `extend_params` kept as the reason.
pub const MAX_REASON_CHARS: usize = 2048;

/// A validated unsign request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignRequest {
    /// Which agreement, as for the query method.
    pub query: AgreementQuery,
    /// The merchant's number given beside `agreement_no`: when the agreement was signed with one,
    /// they must match.
    pub external_agreement_no: Option<ExternalAgreementNo>,
    /// `extend_params`, kept as the reason.
    pub reason: Option<String>,
}

impl UnsignRequest {
    /// The query's locator rules, plus `operate_type` (`confirm` or `invalid`) and
    /// `extend_params` (a string, kept as the reason). Failures are `INVALID_PARAMETER`.
    pub fn parse(biz: &Map<String, Value>) -> Result<Self, BizError> {
        let query = AgreementQuery::parse(biz)?;
        let f = Fields(biz);
        let external_agreement_no =
            f.parsed("external_agreement_no", 32, ExternalAgreementNo::parse)?;
        f.parsed("operate_type", 16, |v| match v.as_str() {
            "confirm" | "invalid" => Ok(()),
            _ => Err("must be confirm or invalid"),
        })?;
        let reason = f.text("extend_params", MAX_REASON_CHARS)?;
        Ok(Self {
            query,
            external_agreement_no,
            reason,
        })
    }

    /// Whether `agreement` is the one named: as the query method locates it (cancelled ones
    /// included), with a matching merchant number when both sides have one.
    pub fn locates(
        &self,
        scope: &Scope,
        agreement: &Agreement,
        owner_group: Option<&GroupId>,
        now: i64,
    ) -> bool {
        let external_matches = match (&self.query.locator, &self.external_agreement_no) {
            (Locator::AgreementNo(_), Some(given)) => agreement
                .external_agreement_no
                .as_ref()
                .is_none_or(|stored| stored == given),
            _ => true,
        };
        external_matches && self.query.locates(scope, agreement, owner_group, now)
    }
}

/// What an unsign request acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<T> {
    /// A `TEMP`, `NORMAL` or `STOP` agreement: cancel it.
    Active(T),
    /// Already `UNSIGN`: answer success, change nothing.
    Cancelled(T),
}

/// Among located candidates, the one to act on: the one active agreement; with none active, the
/// latest signed cancelled one (a retried request succeeds again and changes nothing). Several
/// active ones are refused: a request that names a user (or a merchant number shared in a group)
/// must name one agreement, or each retry of it would cancel another (agreements.md §7,
/// PROTOCOL.md).
pub fn target<T>(
    candidates: impl IntoIterator<Item = T>,
    agreement: impl Fn(&T) -> &Agreement,
) -> Result<Target<T>, BizError> {
    let (mut active, cancelled): (Vec<T>, Vec<T>) = candidates
        .into_iter()
        .partition(|c| agreement(c).status != AgreementStatus::Unsign);
    match active.len() {
        0 => choose(cancelled, &agreement)
            .map(Target::Cancelled)
            .ok_or(BizError::UserAgreementNotExist),
        1 => Ok(Target::Active(active.remove(0))),
        n => Err(BizError::InvalidParameter(format!(
            "{n} active agreements match; name the one to cancel by agreement_no or external_agreement_no"
        ))),
    }
}

/// Who changed an agreement, as recorded in its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A merchant's own app.
    App(AppId),
    /// An ISV app acting for a merchant with an `app_auth_token` (only its last characters are
    /// recorded: the token is a credential).
    Isv {
        /// The ISV's app.
        app: AppId,
        /// The merchant that granted the token.
        merchant: PartnerId,
        /// The token.
        token: String,
    },
    /// An operator, by the name given on the command line.
    Operator(String),
    /// A bulk import.
    Import,
    /// The consumer, on the platform's own pages (signing, or cancelling on the automatic
    /// payments page).
    User(crate::ids::UserId),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::App(app) => write!(f, "app {app}"),
            Self::Isv {
                app,
                merchant,
                token,
            } => {
                let tail: String = {
                    let chars: Vec<char> = token.chars().collect();
                    chars[chars.len().saturating_sub(4)..].iter().collect()
                };
                write!(f, "isv {app} for {merchant} (token …{tail})")
            }
            Self::Operator(name) => write!(f, "operator {name}"),
            Self::Import => f.write_str("import"),
            Self::User(user) => write!(f, "user {user}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreement::PrincipalType;
    use crate::testing::agreement;

    fn parse(json: &str) -> Result<UnsignRequest, BizError> {
        UnsignRequest::parse(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn operate_type_and_reason_are_checked() {
        let r = parse(r#"{"agreement_no":"20245920000000000001","operate_type":"confirm","extend_params":"{\"r\":1}"}"#).unwrap();
        assert_eq!(r.reason.as_deref(), Some(r#"{"r":1}"#));
        assert!(matches!(
            parse(r#"{"agreement_no":"20245920000000000001","operate_type":"drop"}"#),
            Err(BizError::InvalidParameter(m)) if m.contains("operate_type")
        ));
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert!(matches!(
            parse(&format!(r#"{{"agreement_no":"20245920000000000001","extend_params":"{long}"}}"#)),
            Err(BizError::InvalidParameter(m)) if m.contains("extend_params")
        ));
        assert!(matches!(
            parse(r#"{"agreement_no":"20245920000000000001","external_agreement_no":"a b"}"#),
            Err(BizError::InvalidParameter(m)) if m.contains("external_agreement_no")
        ));
    }

    #[test]
    fn a_given_merchant_number_must_match_the_stored_one() {
        let mut a = agreement(
            "20245920000000000001",
            PrincipalType::Card,
            "2088101122675263",
            10,
        );
        a.external_agreement_no = Some(ExternalAgreementNo::parse("EXT1").unwrap());
        let scope = Scope::Partner(a.partner_id.clone());
        let named = |ext: &str| {
            parse(&format!(
                r#"{{"agreement_no":"20245920000000000001","external_agreement_no":"{ext}"}}"#
            ))
            .unwrap()
        };
        assert!(named("EXT1").locates(&scope, &a, None, 0));
        assert!(!named("EXT2").locates(&scope, &a, None, 0));
        a.external_agreement_no = None;
        assert!(named("EXT2").locates(&scope, &a, None, 0));
    }

    #[test]
    fn active_agreements_win_over_cancelled_ones() {
        let mut old = agreement("1", PrincipalType::Card, "2088101122675263", 10);
        let mut new = agreement("2", PrincipalType::Card, "2088101122675263", 20);
        new.status = AgreementStatus::Unsign;
        assert_eq!(
            target([old.clone(), new.clone()], |a| a),
            Ok(Target::Active(old.clone()))
        );
        old.status = AgreementStatus::Unsign;
        assert_eq!(
            target([old, new.clone()], |a| a),
            Ok(Target::Cancelled(new))
        );
        assert_eq!(
            target(Vec::<Agreement>::new(), |a| a),
            Err(BizError::UserAgreementNotExist)
        );
    }

    /// A request that names a user could otherwise cancel one agreement per retry.
    #[test]
    fn several_active_agreements_are_refused_not_picked() {
        let a = agreement("1", PrincipalType::Card, "2088101122675263", 10);
        let b = agreement("2", PrincipalType::Card, "2088101122675263", 20);
        assert!(matches!(
            target([a, b], |a| a),
            Err(BizError::InvalidParameter(m)) if m.starts_with("2 active agreements match")
        ));
    }

    #[test]
    fn actors_never_show_a_whole_token() {
        let actor = Actor::Isv {
            app: AppId::parse("2021000000000002").unwrap(),
            merchant: PartnerId::parse("2088000000000001").unwrap(),
            token: "202405BBsecretsecret9f3a".into(),
        };
        let shown = actor.to_string();
        assert!(shown.ends_with("(token …9f3a)"), "{shown}");
        assert!(!shown.contains("secret"));
    }
}
