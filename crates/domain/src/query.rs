//! `alipay.user.agreement.query` (agreements.md §6): one agreement by one of three locators.

use serde::Serialize;
use serde_json::{Map, Value};

use agreements_protocol::timestamp::format_beijing;

use crate::agreement::{Agreement, AgreementStatus, PrincipalType, ThirdPartyType};
use crate::batch_query::{UserLocator, user_locator};
use crate::biz::Fields;
use crate::error::BizError;
use crate::ids::{
    AgreementNo, ExternalAgreementNo, GroupId, LogonId, OpenId, PersonalProductCode, SignScene,
};
use crate::visibility::Scope;

/// How the agreement is named; the first that applies wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// `agreement_no`: the other locator fields are ignored.
    AgreementNo(AgreementNo),
    /// `personal_product_code` + `sign_scene` + `external_agreement_no`.
    External {
        /// The product.
        personal_product_code: PersonalProductCode,
        /// The scene (never `DEFAULT|DEFAULT`).
        sign_scene: SignScene,
        /// The merchant's number.
        external_agreement_no: ExternalAgreementNo,
    },
    /// `personal_product_code` + a user field (+ `sign_scene`, default `DEFAULT|DEFAULT`).
    User {
        /// The product.
        personal_product_code: PersonalProductCode,
        /// The user.
        user: UserLocator,
        /// The scene.
        sign_scene: SignScene,
    },
}

/// A validated query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementQuery {
    /// Which agreement.
    pub locator: Locator,
    /// `PARTNER` (default) or `MERCHANT`: selects the scope, whatever the locator (decision).
    pub third_party_type: ThirdPartyType,
}

impl Locator {
    /// The field that locates and its value (a logon id masked as in logs): for the audit trail.
    pub fn described(&self) -> String {
        match self {
            Self::AgreementNo(no) => format!("agreement_no {}", no.as_str()),
            Self::External {
                external_agreement_no,
                ..
            } => format!("external_agreement_no {}", external_agreement_no.as_str()),
            Self::User { user, .. } => user.described(),
        }
    }
}

impl AgreementQuery {
    /// Applies the locator rules; every failure is `INVALID_PARAMETER` naming the field.
    pub fn parse(biz: &Map<String, Value>) -> Result<Self, BizError> {
        let f = Fields(biz);
        let third_party_type = f
            .parsed("third_party_type", 32, |v| {
                ThirdPartyType::parse(&v).ok_or("must be PARTNER or MERCHANT")
            })?
            .unwrap_or(ThirdPartyType::Partner);
        if let Some(no) = f.parsed("agreement_no", 64, AgreementNo::parse)? {
            return Ok(Self {
                locator: Locator::AgreementNo(no),
                third_party_type,
            });
        }
        let personal_product_code =
            f.parsed("personal_product_code", 64, PersonalProductCode::parse)?;
        let sign_scene = f.parsed("sign_scene", 64, SignScene::parse)?;
        let external = f.parsed("external_agreement_no", 32, ExternalAgreementNo::parse)?;
        let user = user_locator(&f)?;
        let need_product = || {
            personal_product_code.clone().ok_or_else(|| {
                BizError::InvalidParameter(
                    "personal_product_code is required unless agreement_no is given".into(),
                )
            })
        };
        let locator = if let Some(external_agreement_no) = external {
            let sign_scene = sign_scene.filter(|s| s.as_str() != SignScene::DEFAULT).ok_or_else(|| {
                BizError::InvalidParameter(
                    "external_agreement_no needs the sign_scene it was signed in (not empty, not DEFAULT|DEFAULT)".into(),
                )
            })?;
            Locator::External {
                personal_product_code: need_product()?,
                sign_scene,
                external_agreement_no,
            }
        } else if let Some(user) = user {
            Locator::User {
                personal_product_code: need_product()?,
                user,
                sign_scene: sign_scene.unwrap_or_else(SignScene::default_scene),
            }
        } else {
            return Err(BizError::InvalidParameter(
                "no locator: give agreement_no, or personal_product_code with sign_scene and external_agreement_no, \
                 or personal_product_code with alipay_user_id, alipay_open_id or alipay_logon_id"
                    .into(),
            ));
        };
        Ok(Self {
            locator,
            third_party_type,
        })
    }

    /// The agreement product named, if the locator names one (the `agreement_no` mode does not).
    pub fn personal_product_code(&self) -> Option<&PersonalProductCode> {
        match &self.locator {
            Locator::AgreementNo(_) => None,
            Locator::External {
                personal_product_code,
                ..
            }
            | Locator::User {
                personal_product_code,
                ..
            } => Some(personal_product_code),
        }
    }

    /// Whether `agreement` may be the answer: located (see [`Self::locates`]) and queryable.
    pub fn admits(
        &self,
        scope: &Scope,
        agreement: &Agreement,
        owner_group: Option<&GroupId>,
        now: i64,
    ) -> bool {
        self.locates(scope, agreement, owner_group, now) && agreement.status.is_queryable()
    }

    /// Whether `agreement` is the one named, whatever its status: in scope, not expired, and
    /// matching the locator's own fields (the person is matched by the store query of the `User`
    /// mode).
    pub fn locates(
        &self,
        scope: &Scope,
        agreement: &Agreement,
        owner_group: Option<&GroupId>,
        now: i64,
    ) -> bool {
        let located = match &self.locator {
            Locator::AgreementNo(no) => agreement.agreement_no == *no,
            Locator::External {
                personal_product_code,
                sign_scene,
                external_agreement_no,
            } => {
                agreement.personal_product_code == *personal_product_code
                    && agreement.sign_scene == *sign_scene
                    && agreement.external_agreement_no.as_ref() == Some(external_agreement_no)
            }
            Locator::User {
                personal_product_code,
                sign_scene,
                ..
            } => {
                agreement.personal_product_code == *personal_product_code
                    && agreement.sign_scene == *sign_scene
            }
        };
        located && scope.contains(agreement, owner_group) && !agreement.is_expired(now)
    }
}

/// Among admissible candidates, the answer: the most recently signed (then the highest
/// number), so that a re-signed agreement wins over an older one (decision).
pub fn choose<T>(
    candidates: impl IntoIterator<Item = T>,
    agreement: impl Fn(&T) -> &Agreement,
) -> Option<T> {
    candidates.into_iter().max_by(|a, b| {
        let (a, b) = (agreement(a), agreement(b));
        (a.sign_time, &a.agreement_no).cmp(&(b.sign_time, &b.agreement_no))
    })
}

/// The response body: the fields of openapi-gateway.md §8.3 that the store holds, in
/// alphabetical order like the SDK vectors; absent ones are omitted, never invented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Response {
    agreement_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alipay_logon_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_agreement_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_logon_id: Option<String>,
    invalid_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_deduct_time: Option<String>,
    personal_product_code: String,
    pricipal_type: PrincipalType,
    principal_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal_open_id: Option<String>,
    sign_scene: String,
    sign_time: String,
    status: AgreementStatus,
    third_party_type: ThirdPartyType,
    valid_time: String,
}

impl Response {
    /// The wire view; `logon_id` (of the signing account) is masked here.
    pub fn new(
        agreement: &Agreement,
        logon_id: Option<&LogonId>,
        principal_open_id: Option<&OpenId>,
    ) -> Self {
        Self {
            agreement_no: agreement.agreement_no.to_string(),
            alipay_logon_id: logon_id.map(LogonId::masked),
            external_agreement_no: agreement
                .external_agreement_no
                .as_ref()
                .map(ToString::to_string),
            external_logon_id: agreement.external_logon_id.clone(),
            invalid_time: format_beijing(agreement.invalid_time),
            next_deduct_time: None,
            personal_product_code: agreement.personal_product_code.to_string(),
            pricipal_type: agreement.principal_type,
            principal_id: agreement.principal_id.to_string(),
            principal_open_id: principal_open_id.map(ToString::to_string),
            sign_scene: agreement.sign_scene.to_string(),
            sign_time: format_beijing(agreement.sign_time),
            status: agreement.status,
            third_party_type: agreement.third_party_type,
            valid_time: format_beijing(agreement.valid_time),
        }
    }
}

impl Response {
    /// The same answer, with a periodic agreement's next deduction day (`yyyy-MM-dd`).
    pub fn with_next_deduct_time(self, day: Option<String>) -> Self {
        Self {
            next_deduct_time: day,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<AgreementQuery, BizError> {
        AgreementQuery::parse(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn agreement_no_wins_and_ignores_other_locator_fields() {
        let q = parse(r#"{"agreement_no":"20245920000000000001","external_agreement_no":"X","alipay_user_id":"2088101122675263"}"#).unwrap();
        assert_eq!(
            q.locator,
            Locator::AgreementNo(AgreementNo::parse("20245920000000000001").unwrap())
        );
    }

    #[test]
    fn external_number_needs_a_real_scene_and_a_product() {
        assert!(matches!(
            parse(r#"{"personal_product_code":"P","external_agreement_no":"X"}"#),
            Err(BizError::InvalidParameter(m)) if m.contains("sign_scene")
        ));
        assert!(matches!(
            parse(r#"{"personal_product_code":"P","external_agreement_no":"X","sign_scene":"DEFAULT|DEFAULT"}"#),
            Err(BizError::InvalidParameter(m)) if m.contains("sign_scene")
        ));
        assert!(matches!(
            parse(r#"{"external_agreement_no":"X","sign_scene":"INDUSTRY|A"}"#),
            Err(BizError::InvalidParameter(m)) if m.contains("personal_product_code")
        ));
        let q = parse(r#"{"personal_product_code":"P","external_agreement_no":"X","sign_scene":"INDUSTRY|A","alipay_user_id":"2088101122675263"}"#).unwrap();
        assert!(matches!(q.locator, Locator::External { .. }));
    }

    #[test]
    fn user_mode_defaults_the_scene_and_no_locator_is_invalid() {
        let q = parse(r#"{"personal_product_code":"P","alipay_logon_id":"a@b.com"}"#).unwrap();
        match q.locator {
            Locator::User { sign_scene, .. } => assert_eq!(sign_scene.as_str(), "DEFAULT|DEFAULT"),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(parse(r#"{"personal_product_code":"P"}"#), Err(BizError::InvalidParameter(m)) if m.contains("no locator"))
        );
        assert!(matches!(parse(r#"{}"#), Err(BizError::InvalidParameter(_))));
    }

    #[test]
    fn the_latest_signed_candidate_is_chosen() {
        use crate::testing::agreement;
        assert_eq!(choose(Vec::new(), |a| a), None);
        let old = agreement("9", PrincipalType::Card, "2088101122675263", 10);
        let new = agreement("1", PrincipalType::Card, "2088101122675263", 20);
        let tie = agreement("2", PrincipalType::Card, "2088101122675263", 20);
        assert_eq!(choose([old, new, tie.clone()], |a| a), Some(tie));
    }
}
