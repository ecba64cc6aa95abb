//! The demo world: a small, realistic agreement world for `agreements demo`, the docs and the
//! tests. Its first agreement is the one of the official SDK vectors (`resp-1`).

use agreements_domain::ids::{
    AgreementNo, AppId, CustomerId, ExternalAgreementNo, GroupId, LogonId, OpenId, PartnerId,
    PersonalProductCode, PrincipalId, ProductCode, SignScene, UserId,
};
use agreements_domain::{
    Agreement, AgreementStatus, Contract, EntityStatus, Merchant, PrincipalType, ThirdPartyType,
};
use agreements_protocol::timestamp::parse_beijing;
use agreements_protocol::{Method, SignType};

use crate::{
    AppKey, AppStatus, Invalid, NewAccount, NewApp, NewGroup, ProductRecord, Store, StoreError,
};

/// The demo app's id (the id the SDK vectors use).
pub const APP_ID: &str = "2021000000000001";
/// The merchant owning the demo app: a member of [`GROUP_ID`].
pub const MERCHANT_VIDEO: &str = "2088000000000001";
/// A second merchant of the group.
pub const MERCHANT_MUSIC: &str = "2088000000000002";
/// A merchant outside any group.
pub const MERCHANT_TELECOM: &str = "2088000000000003";
/// The demo merchant group.
pub const GROUP_ID: &str = "GROUP-MALL";
/// A person with two accounts; this is the primary one, so it is also the customer id.
pub const USER_PRIMARY: &str = "2088101122675263";
/// The same person's second account.
pub const USER_SECOND: &str = "2088101122675264";
/// Another person.
pub const USER_OTHER: &str = "2088202233445566";
/// The primary account's e-mail logon id.
pub const LOGON_EMAIL: &str = "abx@alitest.com";

/// A demo value the domain refuses (a bug in this file).
fn refused(value: &str, rule: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(Invalid {
        table: "demo",
        column: "",
        value: Some(value.to_owned()),
        rule: rule.to_string(),
    })
}

fn id<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| refused("", e))
}

fn time(text: &str) -> Result<i64, StoreError> {
    parse_beijing(text).ok_or_else(|| refused(text, "is not a Beijing time"))
}

/// Writes the demo world into an empty store, with the demo app verifying requests by
/// `app_public_key` (bare base64 SPKI) for both RSA2 and RSA.
pub async fn load(store: &Store, app_public_key: &str) -> Result<(), StoreError> {
    let group = id(GroupId::parse(GROUP_ID))?;
    store
        .add_group(&NewGroup {
            group_id: group.clone(),
            name: "Mall Group".into(),
        })
        .await?;
    for (partner, name, group) in [
        (MERCHANT_VIDEO, "Mall Video", Some(group.clone())),
        (MERCHANT_MUSIC, "Mall Music", Some(group.clone())),
        (MERCHANT_TELECOM, "City Telecom", None),
    ] {
        let merchant = Merchant {
            partner_id: id(PartnerId::parse(partner))?,
            name: name.into(),
            status: EntityStatus::Normal,
            group_id: group,
        };
        store.add_merchant(&merchant).await?;
    }
    for (ppc, pc, name) in [
        (
            "GENERAL_WITHHOLDING_P",
            "GENERAL_WITHHOLDING",
            "General withholding",
        ),
        ("CYCLE_PAY_AUTH_P", "CYCLE_PAY_AUTH", "Periodic deduction"),
    ] {
        let product = ProductRecord {
            personal_product_code: id(PersonalProductCode::parse(ppc))?,
            name: name.to_owned(),
            principal_type: PrincipalType::Card,
            product_codes: vec![id(ProductCode::parse(pc))?],
        };
        store.add_product(&product).await?;
    }
    let (from, to) = (time("2015-01-01 00:00:00")?, time("2099-12-31 23:59:59")?);
    for (partner, product) in [
        (MERCHANT_VIDEO, "GENERAL_WITHHOLDING"),
        (MERCHANT_VIDEO, "CYCLE_PAY_AUTH"),
        (MERCHANT_MUSIC, "GENERAL_WITHHOLDING"),
        (MERCHANT_TELECOM, "GENERAL_WITHHOLDING"),
    ] {
        let contract = Contract {
            partner_id: id(PartnerId::parse(partner))?,
            product_code: id(ProductCode::parse(product))?,
            status: EntityStatus::Normal,
            valid_from: from,
            valid_to: to,
        };
        store.add_contract(&contract).await?;
    }
    let app = NewApp {
        app_id: id(AppId::parse(APP_ID))?,
        partner_id: id(PartnerId::parse(MERCHANT_VIDEO))?,
        name: "Mall Video member center".into(),
        status: AppStatus::Online,
        notify_url: None,
        keys: [SignType::Rsa2, SignType::Rsa]
            .into_iter()
            .map(|sign_type| AppKey {
                sign_type,
                public_key: app_public_key.to_owned(),
            })
            .collect(),
        methods: Method::ALL.to_vec(),
    };
    store.add_app(&app).await?;
    for (user, customer, logons, open) in [
        (
            USER_PRIMARY,
            USER_PRIMARY,
            vec![LOGON_EMAIL, "13812345678"],
            None,
        ),
        (
            USER_SECOND,
            USER_PRIMARY,
            vec!["abx.work@alitest.com"],
            None,
        ),
        (
            USER_OTHER,
            USER_OTHER,
            vec!["13900001111"],
            Some("074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"),
        ),
    ] {
        let account = NewAccount {
            user_id: id(UserId::parse(user))?,
            customer_id: id(CustomerId::parse(customer))?,
            logon_ids: logons
                .into_iter()
                .map(|l| id(LogonId::parse(l)))
                .collect::<Result<_, _>>()?,
            open_ids: open
                .map(|o| Ok::<_, StoreError>((id(AppId::parse(APP_ID))?, id(OpenId::parse(o))?)))
                .transpose()?
                .into_iter()
                .collect(),
        };
        store.add_account(&account).await?;
    }
    for row in AGREEMENTS {
        store.add_agreement(&row.agreement()?).await?;
    }
    Ok(())
}

struct Row {
    no: &'static str,
    partner: &'static str,
    principal: (PrincipalType, &'static str),
    user: &'static str,
    product: (&'static str, &'static str),
    scene: &'static str,
    third_party_type: ThirdPartyType,
    status: AgreementStatus,
    signed: &'static str,
    invalid: &'static str,
    external: Option<&'static str>,
}

impl Row {
    fn agreement(&self) -> Result<Agreement, StoreError> {
        Ok(Agreement {
            agreement_no: id(AgreementNo::parse(self.no))?,
            partner_id: id(PartnerId::parse(self.partner))?,
            sign_app_id: id(AppId::parse(APP_ID))?,
            principal_type: self.principal.0,
            principal_id: id(PrincipalId::parse(self.principal.1))?,
            alipay_user_id: id(UserId::parse(self.user))?,
            personal_product_code: id(PersonalProductCode::parse(self.product.0))?,
            product_code: id(ProductCode::parse(self.product.1))?,
            sign_scene: id(SignScene::parse(self.scene))?,
            third_party_type: self.third_party_type,
            external_agreement_no: self
                .external
                .map(ExternalAgreementNo::parse)
                .transpose()
                .map_err(|e| refused("", e))?,
            external_logon_id: self.external.map(|_| "member-0001".to_owned()),
            status: self.status,
            sign_time: time(self.signed)?,
            valid_time: time(self.signed)?,
            invalid_time: time(self.invalid)?,
            unsign_time: (self.status == AgreementStatus::Unsign)
                .then(|| time("2024-03-01 09:00:00"))
                .transpose()?,
        })
    }
}

const GW: (&str, &str) = ("GENERAL_WITHHOLDING_P", "GENERAL_WITHHOLDING");
const CYCLE: (&str, &str) = ("CYCLE_PAY_AUTH_P", "CYCLE_PAY_AUTH");
const FOREVER: &str = "2115-02-01 00:00:00";

/// Every case the batch query distinguishes, for the person with two accounts and one other.
const AGREEMENTS: &[Row] = &[
    // The SDK vectors' agreement (resp-1).
    Row {
        no: "20245920000000000001",
        partner: MERCHANT_VIDEO,
        principal: (PrincipalType::Card, USER_PRIMARY),
        user: USER_PRIMARY,
        product: GW,
        scene: "INDUSTRY|DIGITAL_MEDIA",
        third_party_type: ThirdPartyType::Partner,
        status: AgreementStatus::Normal,
        signed: "2024-05-01 10:00:00",
        invalid: FOREVER,
        external: None,
    },
    // The person (CUSTOMER), signed from the second account; paused.
    Row {
        no: "20231120000000000002",
        partner: MERCHANT_VIDEO,
        principal: (PrincipalType::Customer, USER_PRIMARY),
        user: USER_SECOND,
        product: GW,
        scene: "INDUSTRY|CARRENTAL",
        third_party_type: ThirdPartyType::Partner,
        status: AgreementStatus::Stop,
        signed: "2023-11-20 08:30:00",
        invalid: FOREVER,
        external: Some("RENT20231120A"),
    },
    // Stored, never effective.
    Row {
        no: "20240102000000000003",
        partner: MERCHANT_VIDEO,
        principal: (PrincipalType::Card, USER_PRIMARY),
        user: USER_PRIMARY,
        product: GW,
        scene: "DEFAULT|DEFAULT",
        third_party_type: ThirdPartyType::Partner,
        status: AgreementStatus::Temp,
        signed: "2024-01-02 12:00:00",
        invalid: FOREVER,
        external: None,
    },
    // The second account's own CARD agreement: not the primary account's.
    Row {
        no: "20230301000000000004",
        partner: MERCHANT_VIDEO,
        principal: (PrincipalType::Card, USER_SECOND),
        user: USER_SECOND,
        product: GW,
        scene: "DEFAULT|DEFAULT",
        third_party_type: ThirdPartyType::Partner,
        status: AgreementStatus::Normal,
        signed: "2023-03-01 19:45:10",
        invalid: FOREVER,
        external: None,
    },
    // A group agreement with the sister merchant: visible to the group with MERCHANT.
    Row {
        no: "20220815000000000005",
        partner: MERCHANT_MUSIC,
        principal: (PrincipalType::Card, USER_PRIMARY),
        user: USER_PRIMARY,
        product: GW,
        scene: "INDUSTRY|MEDICAL",
        third_party_type: ThirdPartyType::Merchant,
        status: AgreementStatus::Normal,
        signed: "2022-08-15 07:00:00",
        invalid: FOREVER,
        external: None,
    },
    // Cancelled: never returned by queries.
    Row {
        no: "20210101000000000006",
        partner: MERCHANT_VIDEO,
        principal: (PrincipalType::Card, USER_PRIMARY),
        user: USER_PRIMARY,
        product: GW,
        scene: "INDUSTRY|GAME",
        third_party_type: ThirdPartyType::Partner,
        status: AgreementStatus::Unsign,
        signed: "2021-01-01 00:00:00",
        invalid: FOREVER,
        external: None,
    },
    // Expired in 2023: absent.
    Row {
        no: "20180101000000000007",
        partner: MERCHANT_VIDEO,
        principal: (PrincipalType::Card, USER_PRIMARY),
        user: USER_PRIMARY,
        product: GW,
        scene: "INDUSTRY|GAME",
        third_party_type: ThirdPartyType::Partner,
        status: AgreementStatus::Normal,
        signed: "2018-01-01 00:00:00",
        invalid: "2023-01-01 00:00:00",
        external: None,
    },
    // Another merchant's agreement: never visible to the demo app.
    Row {
        no: "20240301000000000008",
        partner: MERCHANT_TELECOM,
        principal: (PrincipalType::Card, USER_PRIMARY),
        user: USER_PRIMARY,
        product: GW,
        scene: "INDUSTRY|TELECOM",
        third_party_type: ThirdPartyType::Partner,
        status: AgreementStatus::Normal,
        signed: "2024-03-01 10:00:00",
        invalid: FOREVER,
        external: None,
    },
    // Another product.
    Row {
        no: "20240401000000000009",
        partner: MERCHANT_VIDEO,
        principal: (PrincipalType::Card, USER_PRIMARY),
        user: USER_PRIMARY,
        product: CYCLE,
        scene: "INDUSTRY|DIGITAL_MEDIA",
        third_party_type: ThirdPartyType::Partner,
        status: AgreementStatus::Normal,
        signed: "2024-04-01 10:00:00",
        invalid: FOREVER,
        external: None,
    },
    // Another person.
    Row {
        no: "20240201000000000010",
        partner: MERCHANT_VIDEO,
        principal: (PrincipalType::Card, USER_OTHER),
        user: USER_OTHER,
        product: GW,
        scene: "INDUSTRY|DIGITAL_MEDIA",
        third_party_type: ThirdPartyType::Partner,
        status: AgreementStatus::Normal,
        signed: "2024-02-01 10:00:00",
        invalid: FOREVER,
        external: None,
    },
];
