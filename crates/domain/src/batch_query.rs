//! `alipay.user.agreement.batch.query` (agreements.md §5): request rules, the result predicate,
//! ordering, and the response items exactly as the seed lists them.

use serde::Serialize;
use serde_json::{Map, Value};

use agreements_protocol::timestamp::format_beijing;

use crate::agreement::{
    Agreement, AgreementStatus, PrincipalType, Product, ResolvedUser, ThirdPartyType,
};
use crate::biz::Fields;
use crate::error::BizError;
use crate::ids::{GroupId, LogonId, OpenId, PersonalProductCode, ProductCode, SignScene, UserId};
use crate::visibility::Scope;

/// How the request names the user; when several are given the first by priority wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserLocator {
    /// `alipay_user_id` (highest priority).
    UserId(UserId),
    /// `alipay_open_id`, in the calling app's namespace.
    OpenId(OpenId),
    /// `alipay_logon_id` (lowest priority).
    LogonId(LogonId),
}

impl UserLocator {
    /// The field and its value, masked as in logs: for the audit trail.
    pub fn described(&self) -> String {
        match self {
            Self::UserId(id) => format!("alipay_user_id {}", id.as_str()),
            Self::OpenId(id) => format!("alipay_open_id {}", id.as_str()),
            Self::LogonId(id) => format!("alipay_logon_id {}", id.masked()),
        }
    }
}

/// The user fields of a request, by priority: user id, then open id, then logon id. Every field
/// that is given must be valid, even one a higher-priority field overrides: a malformed value is
/// a client bug worth reporting.
pub fn user_locator(f: &Fields<'_>) -> Result<Option<UserLocator>, BizError> {
    let user_id = f.parsed("alipay_user_id", 32, UserId::parse)?;
    let open_id = f.parsed("alipay_open_id", 128, OpenId::parse)?;
    let logon_id = f.parsed("alipay_logon_id", 100, LogonId::parse)?;
    Ok(user_id
        .map(UserLocator::UserId)
        .or(open_id.map(UserLocator::OpenId))
        .or(logon_id.map(UserLocator::LogonId)))
}

/// A validated batch query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchQuery {
    /// Required agreement product.
    pub personal_product_code: PersonalProductCode,
    /// Whose agreements.
    pub user: UserLocator,
    /// Only this scene, when given.
    pub sign_scene: Option<SignScene>,
    /// `PARTNER` (default) or `MERCHANT`.
    pub third_party_type: ThirdPartyType,
    /// Only this sales product, when given.
    pub product_code: Option<ProductCode>,
}

impl BatchQuery {
    /// Applies the field rules (step 2 of §5); see [`user_locator`]. Unknown fields are ignored.
    pub fn parse(biz: &Map<String, Value>) -> Result<Self, BizError> {
        let f = Fields(biz);
        let personal_product_code = f
            .parsed("personal_product_code", 64, PersonalProductCode::parse)?
            .ok_or_else(|| {
                BizError::InvalidParameter("personal_product_code is required".into())
            })?;
        let user = user_locator(&f)?.ok_or_else(|| {
            BizError::InvalidParameter(
                "one of alipay_user_id, alipay_open_id, alipay_logon_id is required".into(),
            )
        })?;
        let sign_scene = f.parsed("sign_scene", 64, SignScene::parse)?;
        let third_party_type = f
            .parsed("third_party_type", 32, |v| {
                ThirdPartyType::parse(&v).ok_or("must be PARTNER or MERCHANT")
            })?
            .unwrap_or(ThirdPartyType::Partner);
        let product_code = f.parsed("product_code", 64, ProductCode::parse)?;
        Ok(Self {
            personal_product_code,
            user,
            sign_scene,
            third_party_type,
            product_code,
        })
    }

    /// Step 3: the product must be in the catalog and, when given, `product_code` paired with it.
    /// Returns the sales products whose contract allows the query (step 4 needs one active).
    pub fn contract_products<'p>(
        &self,
        product: Option<&'p Product>,
    ) -> Result<Vec<&'p ProductCode>, BizError> {
        let product = product.ok_or_else(|| {
            BizError::ProductCodeNotSupported(format!(
                "personal_product_code {} is not offered",
                self.personal_product_code
            ))
        })?;
        match &self.product_code {
            None => Ok(product.product_codes.iter().collect()),
            Some(code) => product
                .product_codes
                .iter()
                .find(|c| *c == code)
                .map(|c| vec![c])
                .ok_or_else(|| {
                    BizError::ProductCodeNotSupported(format!(
                        "product_code {code} is not paired with {}",
                        self.personal_product_code
                    ))
                }),
        }
    }

    /// The result predicate (§5 "Result set"), the authority the store's query must agree with.
    pub fn matches(
        &self,
        scope: &Scope,
        user: &ResolvedUser,
        agreement: &Agreement,
        owner_group: Option<&GroupId>,
        now: i64,
    ) -> bool {
        scope.contains(agreement, owner_group)
            && agreement.third_party_type == self.third_party_type
            && agreement.personal_product_code == self.personal_product_code
            && agreement.status.is_queryable()
            && !agreement.is_expired(now)
            && self
                .sign_scene
                .as_ref()
                .is_none_or(|s| *s == agreement.sign_scene)
            && self
                .product_code
                .as_ref()
                .is_none_or(|p| *p == agreement.product_code)
            && user.is_principal_of(agreement)
    }
}

/// One `usage_agreement_info_list` entry: exactly the seed's fields, in the byte order the
/// official SDK's vectors show (alphabetical), `pricipal_type` spelled as on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    agreement_no: String,
    invalid_time: String,
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

impl Item {
    /// The wire view of `agreement`; `principal_open_id` when the principal has an open id in the
    /// calling app.
    pub fn new(agreement: &Agreement, principal_open_id: Option<&OpenId>) -> Self {
        Self {
            agreement_no: agreement.agreement_no.to_string(),
            invalid_time: format_beijing(agreement.invalid_time),
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

/// The success body: `usage_agreement_info_list`, always present (`[]` when nothing matches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Response {
    /// The agreements, in [`sort`] order.
    pub usage_agreement_info_list: Vec<Item>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CustomerId, PartnerId};
    use crate::testing::agreement;
    use crate::visibility::Caller;

    fn parse(json: &str) -> Result<BatchQuery, BizError> {
        BatchQuery::parse(&serde_json::from_str(json).unwrap())
    }

    fn invalid(json: &str) -> String {
        match parse(json) {
            Err(BizError::InvalidParameter(detail)) => detail,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn user_id_wins_over_open_id_and_logon_id() {
        let q = parse(r#"{"personal_product_code":"P","alipay_user_id":"2088101122675263","alipay_logon_id":"a@b.com","alipay_open_id":"o1"}"#).unwrap();
        assert_eq!(
            q.user,
            UserLocator::UserId(UserId::parse("2088101122675263").unwrap())
        );
        let q = parse(
            r#"{"personal_product_code":"P","alipay_logon_id":"a@b.com","alipay_open_id":"o1"}"#,
        )
        .unwrap();
        assert_eq!(q.user, UserLocator::OpenId(OpenId::parse("o1").unwrap()));
        let q = parse(r#"{"personal_product_code":"P","alipay_logon_id":"A@b.com"}"#).unwrap();
        assert_eq!(
            q.user,
            UserLocator::LogonId(LogonId::parse("a@b.com").unwrap())
        );
        assert_eq!(q.third_party_type, ThirdPartyType::Partner);
    }

    #[test]
    fn field_rules_name_the_field() {
        assert!(
            invalid(r#"{"alipay_user_id":"2088101122675263"}"#).contains("personal_product_code")
        );
        assert!(invalid(r#"{"personal_product_code":"P"}"#).contains("alipay_user_id"));
        assert!(
            invalid(r#"{"personal_product_code":"P","alipay_user_id":"123"}"#)
                .contains("alipay_user_id")
        );
        assert!(
            invalid(r#"{"personal_product_code":"P","alipay_user_id":true}"#)
                .contains("alipay_user_id")
        );
        assert!(
            invalid(r#"{"personal_product_code":"P","alipay_logon_id":"nope"}"#)
                .contains("alipay_logon_id")
        );
        assert!(invalid(r#"{"personal_product_code":"P","alipay_user_id":"2088101122675263","third_party_type":"partner"}"#)
            .contains("third_party_type"));
        let long = format!(
            r#"{{"personal_product_code":"{}","alipay_user_id":"2088101122675263"}}"#,
            "P".repeat(65)
        );
        assert!(invalid(&long).contains("personal_product_code"));
        assert!(
            invalid(r#"{"personal_product_code":["P"],"alipay_user_id":"2088101122675263"}"#)
                .contains("personal_product_code")
        );
    }

    #[test]
    fn numbers_are_accepted_where_strings_are_documented_and_extras_ignored() {
        let q = parse(
            r#"{"personal_product_code":"P","alipay_user_id":2088101122675263,"extra":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(
            q.user,
            UserLocator::UserId(UserId::parse("2088101122675263").unwrap())
        );
    }

    fn product() -> Product {
        Product {
            principal_type: PrincipalType::Card,
            personal_product_code: PersonalProductCode::parse("GENERAL_WITHHOLDING_P").unwrap(),
            product_codes: vec![ProductCode::parse("GENERAL_WITHHOLDING").unwrap()],
        }
    }

    #[test]
    fn product_rules() {
        let q = parse(r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263"}"#).unwrap();
        assert!(matches!(
            q.contract_products(None),
            Err(BizError::ProductCodeNotSupported(_))
        ));
        assert_eq!(q.contract_products(Some(&product())).unwrap().len(), 1);
        let q = parse(r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263","product_code":"CYCLE_PAY_AUTH"}"#).unwrap();
        assert!(matches!(
            q.contract_products(Some(&product())),
            Err(BizError::ProductCodeNotSupported(_))
        ));
    }

    #[test]
    fn predicate_checks_principal_status_expiry_and_scope() {
        let q = parse(r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263"}"#).unwrap();
        let caller = Caller {
            merchant: PartnerId::parse("2088000000000001").unwrap(),
            group: None,
        };
        let scope = caller.scope(ThirdPartyType::Partner).unwrap();
        let user = ResolvedUser {
            user_id: UserId::parse("2088101122675263").unwrap(),
            customer_id: CustomerId::parse("2088101122670000").unwrap(),
        };
        let now = 1_700_000_000;
        let card = agreement("1", PrincipalType::Card, "2088101122675263", 1);
        let customer = agreement("2", PrincipalType::Customer, "2088101122670000", 1);
        let other_card = agreement("3", PrincipalType::Card, "2088101122670000", 1);
        assert!(q.matches(&scope, &user, &card, None, now));
        assert!(q.matches(&scope, &user, &customer, None, now));
        assert!(!q.matches(&scope, &user, &other_card, None, now));
        let unsigned = Agreement {
            status: AgreementStatus::Unsign,
            ..card.clone()
        };
        assert!(!q.matches(&scope, &user, &unsigned, None, now));
        let expired = Agreement {
            invalid_time: now,
            ..card.clone()
        };
        assert!(!q.matches(&scope, &user, &expired, None, now));
        let foreign = Agreement {
            partner_id: PartnerId::parse("2088000000000002").unwrap(),
            ..card.clone()
        };
        assert!(!q.matches(&scope, &user, &foreign, None, now));
        assert!(caller.scope(ThirdPartyType::Merchant).is_err());
    }

    #[test]
    fn items_serialize_like_the_seed() {
        let a = agreement(
            "20245920000000000002",
            PrincipalType::Card,
            "2088101122675263",
            10,
        );
        let item = serde_json::to_string(&Item::new(&a, None)).unwrap();
        assert_eq!(
            item,
            r#"{"agreement_no":"20245920000000000002","invalid_time":"2096-10-02 15:06:40","personal_product_code":"GENERAL_WITHHOLDING_P","pricipal_type":"CARD","principal_id":"2088101122675263","sign_scene":"INDUSTRY|DIGITAL_MEDIA","sign_time":"1970-01-01 08:00:10","status":"NORMAL","third_party_type":"PARTNER","valid_time":"1970-01-01 08:00:10"}"#
        );
    }
}
