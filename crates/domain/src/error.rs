//! Business failures (`40004 Business Failed`) and their one mapping to the wire.

use agreements_protocol::WireError;

/// A business-level answer other than success (agreements.md §5, the seed's code table).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BizError {
    /// `INVALID_PARAMETER` (参数有误); the detail names the field and the rule.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// `PRODUCT_CODE_NOT_SUPPORTED_ERROR` (无效的产品码).
    #[error("product code not supported: {0}")]
    ProductCodeNotSupported(String),
    /// `MERCHANT_AGREEMENT_IS_NOT_EXIST` (商户协议不存在): no active contract for the product.
    #[error("merchant has no active contract for the product")]
    MerchantAgreementNotExist,
    /// `USER_NOT_EXIST_ERROR` (用户信息不存在): the user field resolves to no account.
    #[error("user does not exist")]
    UserNotExist,
    /// `USER_AGREEMENT_NOT_EXIST` (用户协议不存在): nothing visible matches, or the match is
    /// cancelled or expired.
    #[error("no such agreement")]
    UserAgreementNotExist,
    /// `USER_AGREEMENT_ALREADY_EXIST` (用户协议已存在): the merchant's number is taken by an
    /// agreement of the same merchant, product and scene (decision, PROTOCOL.md).
    #[error("the merchant's agreement number is taken")]
    AgreementAlreadyExists,
    /// `AGREEMENT_STATUS_NOT_TEMP` (协议状态非暂存): `sign.effect` of a paused agreement
    /// (decision, PROTOCOL.md).
    #[error("the agreement is not waiting to take effect")]
    AgreementNotTemp,
    /// `SYSTEM_ERROR` (系统繁忙): an inconsistency the business layer found in stored data.
    /// The detail is for logs only.
    #[error("system error: {0}")]
    SystemError(String),
}

impl BizError {
    /// The one mapping to the wire. No wildcard arm.
    pub fn wire(&self) -> WireError {
        match self {
            Self::InvalidParameter(detail) => {
                WireError::business("INVALID_PARAMETER", format!("参数有误: {detail}"))
            }
            Self::ProductCodeNotSupported(detail) => WireError::business(
                "PRODUCT_CODE_NOT_SUPPORTED_ERROR",
                format!("无效的产品码: {detail}"),
            ),
            Self::MerchantAgreementNotExist => WireError::business(
                "MERCHANT_AGREEMENT_IS_NOT_EXIST",
                "商户协议不存在: the calling merchant has no active contract for this product",
            ),
            Self::UserNotExist => WireError::business("USER_NOT_EXIST_ERROR", "用户信息不存在"),
            Self::UserAgreementNotExist => {
                WireError::business("USER_AGREEMENT_NOT_EXIST", "用户协议不存在")
            }
            Self::AgreementAlreadyExists => WireError::business(
                "USER_AGREEMENT_ALREADY_EXIST",
                "用户协议已存在: external_agreement_no is already used by an agreement of this merchant, product and scene",
            ),
            Self::AgreementNotTemp => WireError::business(
                "AGREEMENT_STATUS_NOT_TEMP",
                "协议状态非暂存: only a TEMP agreement can be made to take effect",
            ),
            Self::SystemError(_) => WireError::business("SYSTEM_ERROR", "系统繁忙"),
        }
    }
}
