//! Test data shared by the unit tests.

use crate::agreement::{Agreement, AgreementStatus, PrincipalType, ThirdPartyType};
use crate::ids::{
    AgreementNo, AppId, PartnerId, PersonalProductCode, PrincipalId, ProductCode, SignScene, UserId,
};

/// A NORMAL PARTNER agreement of merchant 2088000000000001 for GENERAL_WITHHOLDING_P.
pub(crate) fn agreement(
    no: &str,
    principal_type: PrincipalType,
    principal: &str,
    sign_time: i64,
) -> Agreement {
    Agreement {
        agreement_no: AgreementNo::parse(no).unwrap(),
        partner_id: PartnerId::parse("2088000000000001").unwrap(),
        sign_app_id: AppId::parse("2021000000000001").unwrap(),
        principal_type,
        principal_id: PrincipalId::parse(principal).unwrap(),
        alipay_user_id: UserId::parse("2088101122675263").unwrap(),
        personal_product_code: PersonalProductCode::parse("GENERAL_WITHHOLDING_P").unwrap(),
        product_code: ProductCode::parse("GENERAL_WITHHOLDING").unwrap(),
        sign_scene: SignScene::parse("INDUSTRY|DIGITAL_MEDIA").unwrap(),
        third_party_type: ThirdPartyType::Partner,
        external_agreement_no: None,
        external_logon_id: None,
        status: AgreementStatus::Normal,
        sign_time,
        valid_time: sign_time,
        invalid_time: 4_000_000_000,
        unsign_time: None,
    }
}
