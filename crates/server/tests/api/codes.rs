//! PROTOCOL.md's code tables match the code: every gateway and business answer the server can
//! give is listed there with its exact code, msg and sub_code.

use agreements_domain::BizError;
use agreements_protocol::ProtocolError;

fn protocol_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../PROTOCOL.md")).unwrap()
}

#[test]
fn every_gateway_code_is_documented_exactly() {
    let doc = protocol_md();
    let all = [
        ProtocolError::InvalidCharset {
            detail: String::new(),
        },
        ProtocolError::MalformedEncoding {
            detail: String::new(),
        },
        ProtocolError::RequestTooLarge { limit: 1 },
        ProtocolError::MissingMethod,
        ProtocolError::InvalidMethod,
        ProtocolError::MissingAppId,
        ProtocolError::InvalidAppId { detail: "" },
        ProtocolError::MissingSignType,
        ProtocolError::InvalidSignType,
        ProtocolError::MissingSign,
        ProtocolError::MissingTimestamp,
        ProtocolError::InvalidTimestamp {
            detail: String::new(),
        },
        ProtocolError::MissingVersion,
        ProtocolError::InvalidVersion,
        ProtocolError::InvalidFormat,
        ProtocolError::MissingSignatureKey,
        ProtocolError::MissingSignatureConfig { sign_type: "RSA" },
        ProtocolError::InvalidSignature,
        ProtocolError::InvalidParameter {
            detail: String::new(),
        },
        ProtocolError::EncryptionKeyMissing,
        ProtocolError::InvalidEncryptType,
        ProtocolError::InvalidEncrypt { detail: "" },
        ProtocolError::MissingEncryptType,
        ProtocolError::MissingRootCertSn,
        ProtocolError::InvalidRootCertSn,
        ProtocolError::AppCertNotExist,
        ProtocolError::AppCertExpired {
            detail: String::new(),
        },
        ProtocolError::PlatformCertNotExist,
        ProtocolError::KeyModeRetired,
        ProtocolError::InvalidNonce { detail: "" },
        ProtocolError::CallLimited { per_method: false },
        ProtocolError::CallLimited { per_method: true },
        ProtocolError::InvalidAppAuthToken,
        ProtocolError::AppAuthTokenExpired,
        ProtocolError::AppAuthTokenNoApi,
        ProtocolError::InsufficientIsvPermissions,
        ProtocolError::ServiceUnavailable,
    ];
    for error in all {
        let wire = error.wire();
        let row = format!(
            "| {} | {} | {} |",
            wire.code.code(),
            wire.code.msg(),
            wire.sub_code
        );
        assert!(doc.contains(&row), "PROTOCOL.md lacks the row {row}");
        assert!(!wire.sub_msg.is_empty());
    }
}

#[test]
fn every_business_code_is_documented_exactly() {
    let doc = protocol_md();
    for error in [
        BizError::InvalidParameter(String::new()),
        BizError::ProductCodeNotSupported(String::new()),
        BizError::MerchantAgreementNotExist,
        BizError::UserNotExist,
        BizError::UserAgreementNotExist,
        BizError::SystemError(String::new()),
    ] {
        let wire = error.wire();
        assert_eq!(wire.code.code(), "40004");
        let prefix: String = wire.sub_msg.chars().take_while(|c| *c != ':').collect();
        let row = format!("| {} | {} |", wire.sub_code, prefix);
        assert!(doc.contains(&row), "PROTOCOL.md lacks the row {row}");
    }
}
