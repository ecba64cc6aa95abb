//! Keys, certificates and signatures as the operator and callers hand them in: any text as a
//! private key, a public key, a PEM certificate chain and an AES key; any text as the signature
//! of a fixed message under a real key, and as AES ciphertext under a real key. Nothing may
//! panic, and no signature but the real one verifies.
#![no_main]

use std::sync::LazyLock;

use agreements_protocol::aes::{ContentKey, EncryptType};
use agreements_protocol::cert::Certificate;
use agreements_protocol::crypto::decode_base64_lenient;
use agreements_protocol::{PrivateKey, PublicKey, SignType};
use libfuzzer_sys::fuzz_target;

const MESSAGE: &[u8] = b"app_id=2021000000000001&method=alipay.user.agreement.query";

static KEY: LazyLock<PublicKey> = LazyLock::new(|| {
    PublicKey::parse(include_str!(
        "../../tests/fixtures/openapi-vectors/keys/app_public_key_spki.pem"
    ))
    .expect("the fixture key")
});

static AES: LazyLock<ContentKey> =
    LazyLock::new(|| ContentKey::parse("aa4BtZ4tspm2wnXLb1ThQA==").expect("an AES-128 key"));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = Certificate::parse_pem_chain(data);
        return;
    };
    let _ = PrivateKey::parse(text);
    if let Ok(key) = PublicKey::parse(text) {
        let _ = key.bits();
    }
    if let Ok(chain) = Certificate::parse_pem_chain(data) {
        for cert in chain {
            let _ = (
                cert.sn(),
                cert.subject(),
                cert.validity(),
                cert.public_key(),
            );
        }
    }
    let _ = ContentKey::parse(text);
    let _ = decode_base64_lenient(text);
    for sign_type in [SignType::Rsa2, SignType::Rsa] {
        assert!(
            !KEY.verify(sign_type, MESSAGE, text),
            "a forged signature verified"
        );
    }
    for encrypt_type in [EncryptType::Aes, EncryptType::AesV2] {
        let _ = AES.decrypt(encrypt_type, text);
    }
});
