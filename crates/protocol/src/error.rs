//! Gateway codes and the one mapping from protocol failures to the wire (openapi-gateway.md §4).

use std::borrow::Cow;

/// The gateway `code` / `msg` pair (§4.1). `code` is always sent as a JSON string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayCode {
    /// `10000 Success`.
    Success,
    /// `20000 Service Currently Unavailable`: the backend failed; the caller may retry.
    ServiceUnavailable,
    /// `20001 Insufficient Token Permissions`: `app_auth_token` problems.
    InsufficientTokenPermissions,
    /// `40001 Missing Required Arguments`.
    MissingRequiredArguments,
    /// `40002 Invalid Arguments`.
    InvalidArguments,
    /// `40004 Business Failed`: see the method's business sub_codes.
    BusinessFailed,
    /// `40005 Call Limited`: the app (or the app for this method) is over its rate.
    CallLimited,
    /// `40006 Insufficient Permissions`: the app may not call the method.
    InsufficientPermissions,
}

impl GatewayCode {
    /// The wire `code`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Success => "10000",
            Self::ServiceUnavailable => "20000",
            Self::InsufficientTokenPermissions => "20001",
            Self::MissingRequiredArguments => "40001",
            Self::InvalidArguments => "40002",
            Self::BusinessFailed => "40004",
            Self::CallLimited => "40005",
            Self::InsufficientPermissions => "40006",
        }
    }

    /// The wire `msg`, exactly as the public gateway spells it.
    pub fn msg(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::ServiceUnavailable => "Service Currently Unavailable",
            Self::InsufficientTokenPermissions => "Insufficient Token Permissions",
            Self::MissingRequiredArguments => "Missing Required Arguments",
            Self::InvalidArguments => "Invalid Arguments",
            Self::BusinessFailed => "Business Failed",
            Self::CallLimited => "Call Limited",
            Self::InsufficientPermissions => "Insufficient Permissions",
        }
    }
}

/// A failure as the client sees it: `code`, `msg` (from the code), `sub_code`, `sub_msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Gateway code; never [`GatewayCode::Success`].
    pub code: GatewayCode,
    /// Machine-readable reason, e.g. `isv.invalid-signature` or `USER_NOT_EXIST_ERROR`.
    pub sub_code: &'static str,
    /// Human-readable reason that tells the caller what to fix.
    pub sub_msg: Cow<'static, str>,
}

impl WireError {
    /// A `40004 Business Failed` answer with a method's business sub_code.
    pub fn business(sub_code: &'static str, sub_msg: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code: GatewayCode::BusinessFailed,
            sub_code,
            sub_msg: sub_msg.into(),
        }
    }
}

/// At most 32 bytes of a client's value, for echoing it in a `sub_msg` (never more: an answer's
/// size must not grow with what a client sends).
pub fn echo(value: &[u8]) -> String {
    let cut = &value[..value.len().min(32)];
    let text = String::from_utf8_lossy(cut);
    if cut.len() < value.len() {
        format!("{text}…")
    } else {
        text.into_owned()
    }
}

/// Everything that can be wrong with a request at the gateway level, before business logic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The charset is not one we speak, or the bytes are not valid in it.
    #[error("invalid charset: {detail}")]
    InvalidCharset {
        /// What was wrong.
        detail: String,
    },
    /// The form or multipart encoding itself is broken (truncated escapes, bad parts).
    #[error("malformed request encoding: {detail}")]
    MalformedEncoding {
        /// What was wrong.
        detail: String,
    },
    /// The request is larger than the configured limit.
    #[error("request larger than {limit} bytes")]
    RequestTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No `method` parameter.
    #[error("missing method")]
    MissingMethod,
    /// A `method` we do not serve.
    #[error("unknown method")]
    InvalidMethod,
    /// No `app_id` parameter.
    #[error("missing app_id")]
    MissingAppId,
    /// `app_id` unknown, offline, or malformed.
    #[error("invalid app_id: {detail}")]
    InvalidAppId {
        /// What was wrong.
        detail: &'static str,
    },
    /// No `sign_type` parameter.
    #[error("missing sign_type")]
    MissingSignType,
    /// `sign_type` is neither `RSA2` nor `RSA`.
    #[error("invalid sign_type")]
    InvalidSignType,
    /// No `sign` parameter.
    #[error("missing sign")]
    MissingSign,
    /// No `timestamp` parameter.
    #[error("missing timestamp")]
    MissingTimestamp,
    /// `timestamp` malformed or outside the accepted window.
    #[error("invalid timestamp: {detail}")]
    InvalidTimestamp {
        /// What was wrong.
        detail: String,
    },
    /// No `version` parameter.
    #[error("missing version")]
    MissingVersion,
    /// `version` is not `1.0`.
    #[error("invalid version")]
    InvalidVersion,
    /// `format` is not JSON.
    #[error("invalid format")]
    InvalidFormat,
    /// The app has no public key at all.
    #[error("app has no public key")]
    MissingSignatureKey,
    /// The app has keys, but none for the requested `sign_type`.
    #[error("app has no key for sign_type {sign_type}")]
    MissingSignatureConfig {
        /// The requested sign type.
        sign_type: &'static str,
    },
    /// The signature does not verify over the rebuilt string-to-sign.
    #[error("signature does not verify")]
    InvalidSignature,
    /// A parameter (including `biz_content`) is malformed; `detail` names it.
    #[error("invalid parameter: {detail}")]
    InvalidParameter {
        /// Which parameter and what is wrong with it.
        detail: String,
    },
    /// `encrypt_type` was sent but the app has no content-encryption key.
    #[error("no encryption key for the app")]
    EncryptionKeyMissing,
    /// `encrypt_type` is neither `AES` nor `AES_V2`.
    #[error("invalid encrypt_type")]
    InvalidEncryptType,
    /// `biz_content` does not decrypt with the app's key; `detail` says why.
    #[error("biz_content does not decrypt: {detail}")]
    InvalidEncrypt {
        /// What was wrong with the ciphertext.
        detail: &'static str,
    },
    /// `biz_content` is ciphertext for the app's key, but no `encrypt_type` says so.
    #[error("encrypted biz_content without encrypt_type")]
    MissingEncryptType,
    /// The app is over its configured rate (`per_method`: the rate of the app for this
    /// method, else the app's for every method).
    #[error("call limited")]
    CallLimited {
        /// Whether the rule that refused names the method.
        per_method: bool,
    },
    /// v3: the Authorization header's nonce is missing, too long, or was used before.
    #[error("invalid nonce: {detail}")]
    InvalidNonce {
        /// What was wrong.
        detail: &'static str,
    },
    /// A certificate-mode request (`app_cert_sn`) without `alipay_root_cert_sn`.
    #[error("missing alipay_root_cert_sn")]
    MissingRootCertSn,
    /// `alipay_root_cert_sn` names no root of the platform.
    #[error("invalid alipay_root_cert_sn")]
    InvalidRootCertSn,
    /// `app_cert_sn` names no certificate of the calling app.
    #[error("unknown app_cert_sn")]
    AppCertNotExist,
    /// The app certificate is outside its validity, or was replaced and its overlap is over.
    #[error("app certificate not in force: {detail}")]
    AppCertExpired {
        /// Why.
        detail: String,
    },
    /// The platform has no certificate (certificate mode is not set up), or none with the SN
    /// asked for.
    #[error("no such platform certificate")]
    PlatformCertNotExist,
    /// The app switched to certificate mode and its public-key overlap is over.
    #[error("public-key mode retired for the app")]
    KeyModeRetired,
    /// `app_auth_token` unknown, revoked, or issued to another app.
    #[error("invalid app_auth_token")]
    InvalidAppAuthToken,
    /// `app_auth_token` expired.
    #[error("app_auth_token expired")]
    AppAuthTokenExpired,
    /// `app_auth_token` valid, but not granted for this method.
    #[error("app_auth_token not granted for the method")]
    AppAuthTokenNoApi,
    /// The app was not granted the method.
    #[error("app not granted the method")]
    InsufficientIsvPermissions,
    /// The backend (storage) failed; `20000 isp.unknow-error`.
    #[error("service unavailable")]
    ServiceUnavailable,
}

impl ProtocolError {
    /// The one mapping from protocol errors to the wire. No wildcard arm: a new variant must be
    /// given its answer here.
    pub fn wire(&self) -> WireError {
        use GatewayCode::{
            CallLimited, InsufficientPermissions, InsufficientTokenPermissions, InvalidArguments,
            MissingRequiredArguments, ServiceUnavailable,
        };
        let (code, sub_code, sub_msg): (_, _, Cow<'static, str>) = match self {
            Self::InvalidCharset { detail } => {
                (InvalidArguments, "isv.invalid-charset", format!("字符集错误: {detail}; use charset=utf-8 or GBK").into())
            }
            Self::MalformedEncoding { detail } => {
                (InvalidArguments, "isv.invalid-parameter", format!("参数无效: {detail}").into())
            }
            Self::RequestTooLarge { limit } => (
                InvalidArguments,
                "isv.invalid-parameter",
                format!("参数无效: the request is larger than {limit} bytes").into(),
            ),
            Self::MissingMethod => (MissingRequiredArguments, "isv.missing-method", "缺少方法名参数".into()),
            Self::InvalidMethod => (InvalidArguments, "isv.invalid-method", "不存在的方法名".into()),
            Self::MissingAppId => (MissingRequiredArguments, "isv.missing-app-id", "缺少appId参数".into()),
            Self::InvalidAppId { detail } => {
                (InvalidArguments, "isv.invalid-app-id", format!("无效的appId参数: {detail}").into())
            }
            Self::MissingSignType => {
                (MissingRequiredArguments, "isv.missing-signature-type", "缺少签名类型参数".into())
            }
            Self::InvalidSignType => {
                (InvalidArguments, "isv.invalid-signature-type", "无效的签名类型: sign_type must be RSA2 or RSA".into())
            }
            Self::MissingSign => (MissingRequiredArguments, "isv.missing-signature", "缺少签名参数".into()),
            Self::MissingTimestamp => (MissingRequiredArguments, "isv.missing-timestamp", "缺少时间戳参数".into()),
            Self::InvalidTimestamp { detail } => {
                (InvalidArguments, "isv.invalid-timestamp", format!("非法的时间戳参数: {detail}").into())
            }
            Self::MissingVersion => (MissingRequiredArguments, "isv.missing-version", "缺少版本参数".into()),
            Self::InvalidVersion => {
                (InvalidArguments, "isv.invalid-parameter", "参数无效: version must be 1.0".into())
            }
            Self::InvalidFormat => {
                (InvalidArguments, "isv.invalid-format", "无效的数据格式: format must be JSON".into())
            }
            Self::MissingSignatureKey => (
                MissingRequiredArguments,
                "isv.missing-signature-key",
                "缺少签名配置: upload the app public key first".into(),
            ),
            Self::MissingSignatureConfig { sign_type } => (
                InvalidArguments,
                "isv.missing-signature-config",
                format!("验签出错, 未配置对应签名算法的公钥或者证书: the app has no {sign_type} public key").into(),
            ),
            Self::InvalidSignature => (
                InvalidArguments,
                "isv.invalid-signature",
                "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配".into(),
            ),
            Self::InvalidParameter { detail } => {
                (InvalidArguments, "isv.invalid-parameter", format!("参数无效: {detail}").into())
            }
            Self::EncryptionKeyMissing => (
                InvalidArguments,
                "isv.decryption-error-not-valid-encrypt-key",
                "解密出错, 未配置加密密钥或加密密钥格式错误: the app has no AES key; send biz_content unencrypted or ask the operator for a key".into(),
            ),
            Self::InvalidEncryptType => (
                InvalidArguments,
                "isv.invalid-encrypt-type",
                "无效的加密类型: encrypt_type must be AES or AES_V2".into(),
            ),
            Self::InvalidEncrypt { detail } => {
                (InvalidArguments, "isv.invalid-encrypt", format!("解密异常: {detail}").into())
            }
            Self::MissingEncryptType => (
                MissingRequiredArguments,
                "isv.decryption-error-missing-encrypt-type",
                "解密出错, 未指定加密算法: biz_content is encrypted; send encrypt_type=AES".into(),
            ),
            Self::CallLimited { per_method: false } => (
                CallLimited,
                "isv.app-call-limited",
                "应用调用频率超限: the app is over its rate; slow down and retry later".into(),
            ),
            Self::CallLimited { per_method: true } => (
                CallLimited,
                "isv.method-call-limited",
                "接口调用频率超限: the app is over its rate for this method; slow down and retry later".into(),
            ),
            Self::InvalidNonce { detail } => {
                (InvalidArguments, "isv.invalid-nonce", format!("无效的随机数: {detail}").into())
            }
            Self::MissingRootCertSn => (
                MissingRequiredArguments,
                "isv.missing-alipay-root-cert-sn",
                "缺少支付宝根证书序列号: a request with app_cert_sn must carry alipay_root_cert_sn".into(),
            ),
            Self::InvalidRootCertSn => (
                InvalidArguments,
                "isv.invalid-alipay-root-cert-sn",
                "无效的支付宝根证书序列号: alipay_root_cert_sn must include the SN of the platform's root (alipayRootCert.crt)".into(),
            ),
            Self::AppCertNotExist => (
                InvalidArguments,
                "isv.app-cert-not-exist",
                "应用公钥证书不存在: app_cert_sn names no certificate of this app".into(),
            ),
            Self::AppCertExpired { detail } => {
                (InvalidArguments, "isv.app-cert-expired", format!("应用公钥证书已过期: {detail}").into())
            }
            Self::PlatformCertNotExist => (
                InvalidArguments,
                "isv.alipay-cert-not-exist",
                "支付宝公钥证书不存在: no platform certificate has that SN (or certificate mode is not set up)".into(),
            ),
            Self::KeyModeRetired => (
                InvalidArguments,
                "isv.unsupported-expired-app-key-sign",
                "应用已切换为公钥证书模式: sign with the app certificate (app_cert_sn, alipay_root_cert_sn); the public key's overlap is over".into(),
            ),
            Self::InvalidAppAuthToken => {
                (InsufficientTokenPermissions, "aop.invalid-app-auth-token", "无效的应用授权令牌".into())
            }
            Self::AppAuthTokenExpired => {
                (InsufficientTokenPermissions, "aop.app-auth-token-time-out", "应用授权令牌已过期".into())
            }
            Self::AppAuthTokenNoApi => {
                (InsufficientTokenPermissions, "aop.invalid-app-auth-token-no-api", "商户未授权当前接口".into())
            }
            Self::InsufficientIsvPermissions => (
                InsufficientPermissions,
                "isv.insufficient-isv-permissions",
                "ISV权限不足: the app has not been granted this method".into(),
            ),
            Self::ServiceUnavailable => (ServiceUnavailable, "isp.unknow-error", "系统繁忙".into()),
        };
        WireError {
            code,
            sub_code,
            sub_msg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_is_bounded() {
        assert_eq!(echo(b"big5"), "big5");
        assert_eq!(echo(&[b'x'; 1000]), format!("{}…", "x".repeat(32)));
        assert!(echo(&[0xe7, 0x94, 0xa8].repeat(20)).chars().count() <= 33);
    }
}
