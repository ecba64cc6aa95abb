//! Content encryption (`encrypt_type`, openapi-gateway.md §6, cert-aes-v3.md §3): AES-CBC with
//! PKCS#7 padding under an app's content key (the console's base64 key: 16, 24 or 32 bytes),
//! ciphertext in standard base64. `AES` uses an IV of 16 zero bytes; `AES_V2` a random 16-byte IV
//! sent before the ciphertext. OpenSSL does the cipher.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::symm::{Cipher, Crypter, Mode};

use crate::crypto::decode_base64_lenient;

/// Which `encrypt_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptType {
    /// `AES`: zero IV.
    Aes,
    /// `AES_V2`: a random IV before the ciphertext.
    AesV2,
}

impl EncryptType {
    /// Parses the wire spelling (exact).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "AES" => Some(Self::Aes),
            "AES_V2" => Some(Self::AesV2),
            _ => None,
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aes => "AES",
            Self::AesV2 => "AES_V2",
        }
    }
}

/// Why a content key or a ciphertext was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AesError {
    /// The key is not base64 of 16, 24 or 32 bytes.
    #[error("the content key must be base64 of 16, 24 or 32 bytes")]
    BadKey,
    /// The ciphertext is not standard base64.
    #[error("the encrypted content is not base64")]
    BadBase64,
    /// The ciphertext is not whole blocks, or (AES_V2) has no IV.
    #[error("the encrypted content is not a whole number of 16-byte blocks")]
    BadLength,
    /// The padding is wrong: another key, or damaged content.
    #[error("the encrypted content does not decrypt with the app's key (bad padding)")]
    BadPadding,
    /// OpenSSL failed otherwise (no randomness for an IV).
    #[error("the cipher failed")]
    Cipher,
}

/// An app's content key. Its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ContentKey(Vec<u8>);

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentKey(AES-{}, <redacted>)", self.0.len() * 8)
    }
}

const BLOCK: usize = 16;

impl ContentKey {
    /// The key from its console form: base64 of 16, 24 or 32 bytes.
    pub fn parse(base64: &str) -> Result<Self, AesError> {
        let bytes = STANDARD
            .decode(base64.trim())
            .map_err(|_| AesError::BadKey)?;
        match bytes.len() {
            16 | 24 | 32 => Ok(Self(bytes)),
            _ => Err(AesError::BadKey),
        }
    }

    /// The key in its console form, to hand to the merchant (never to a log).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// A new random key of `bytes` (16, 24 or 32) bytes.
    pub fn generate(bytes: usize) -> Result<Self, AesError> {
        if !matches!(bytes, 16 | 24 | 32) {
            return Err(AesError::BadKey);
        }
        let mut key = vec![0; bytes];
        openssl::rand::rand_bytes(&mut key).map_err(|_| AesError::Cipher)?;
        Ok(Self(key))
    }

    fn cipher(&self) -> Cipher {
        match self.0.len() {
            16 => Cipher::aes_128_cbc(),
            24 => Cipher::aes_192_cbc(),
            _ => Cipher::aes_256_cbc(),
        }
    }

    fn run(&self, mode: Mode, iv: &[u8], input: &[u8]) -> Result<Vec<u8>, AesError> {
        let cipher = self.cipher();
        let mut crypter =
            Crypter::new(cipher, mode, &self.0, Some(iv)).map_err(|_| AesError::Cipher)?;
        let mut out = vec![0; input.len() + BLOCK];
        let mut n = crypter
            .update(input, &mut out)
            .map_err(|_| AesError::Cipher)?;
        n += crypter.finalize(&mut out[n..]).map_err(|_| match mode {
            Mode::Decrypt => AesError::BadPadding,
            Mode::Encrypt => AesError::Cipher,
        })?;
        out.truncate(n);
        Ok(out)
    }

    /// The plaintext bytes of a base64 ciphertext.
    pub fn decrypt(&self, encrypt_type: EncryptType, base64: &str) -> Result<Vec<u8>, AesError> {
        let data = decode_base64_lenient(base64).ok_or(AesError::BadBase64)?;
        let (iv, body) = match encrypt_type {
            EncryptType::Aes => ([0u8; BLOCK].to_vec(), data.as_slice()),
            EncryptType::AesV2 => {
                if data.len() < BLOCK {
                    return Err(AesError::BadLength);
                }
                let (iv, body) = data.split_at(BLOCK);
                (iv.to_vec(), body)
            }
        };
        if body.is_empty() || body.len() % BLOCK != 0 {
            return Err(AesError::BadLength);
        }
        self.run(Mode::Decrypt, &iv, body)
    }

    /// Whether `base64` is ciphertext this key opens, as `AES` or `AES_V2` (to tell a client
    /// that it forgot `encrypt_type`).
    pub fn opens(&self, base64: &str) -> bool {
        [EncryptType::Aes, EncryptType::AesV2]
            .into_iter()
            .any(|t| self.decrypt(t, base64).is_ok())
    }

    /// The base64 ciphertext of `plaintext` (AES_V2: a fresh random IV before it).
    pub fn encrypt(&self, encrypt_type: EncryptType, plaintext: &[u8]) -> Result<String, AesError> {
        let mut iv = [0u8; BLOCK];
        if encrypt_type == EncryptType::AesV2 {
            openssl::rand::rand_bytes(&mut iv).map_err(|_| AesError::Cipher)?;
        }
        let body = self.run(Mode::Encrypt, &iv, plaintext)?;
        let mut out = Vec::with_capacity(BLOCK + body.len());
        if encrypt_type == EncryptType::AesV2 {
            out.extend_from_slice(&iv);
        }
        out.extend_from_slice(&body);
        Ok(STANDARD.encode(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODw==";

    #[test]
    fn keys_are_16_24_or_32_bytes_and_never_shown() {
        let key = ContentKey::parse(KEY).unwrap();
        assert_eq!(format!("{key:?}"), "ContentKey(AES-128, <redacted>)");
        for bad in ["", "AAEC", "not base64!", "AAECAwQFBgcICQoLDA0ODxA="] {
            assert_eq!(ContentKey::parse(bad), Err(AesError::BadKey), "{bad}");
        }
        assert!(ContentKey::parse(&STANDARD.encode([7u8; 32])).is_ok());
    }

    #[test]
    fn aes_v2_round_trips_with_a_fresh_iv() {
        let key = ContentKey::parse(KEY).unwrap();
        let a = key
            .encrypt(EncryptType::AesV2, "用户协议".as_bytes())
            .unwrap();
        let b = key
            .encrypt(EncryptType::AesV2, "用户协议".as_bytes())
            .unwrap();
        assert_ne!(a, b, "a random IV each time");
        assert_eq!(
            key.decrypt(EncryptType::AesV2, &a).unwrap(),
            "用户协议".as_bytes()
        );
        let zero_iv = key.encrypt(EncryptType::Aes, b"x").unwrap();
        assert_eq!(zero_iv, key.encrypt(EncryptType::Aes, b"x").unwrap());
    }

    #[test]
    fn broken_ciphertexts_name_what_is_wrong() {
        let key = ContentKey::parse(KEY).unwrap();
        let other = ContentKey::parse(&STANDARD.encode([9u8; 16])).unwrap();
        let sealed = key.encrypt(EncryptType::Aes, b"{\"a\":1}").unwrap();
        assert_eq!(
            key.decrypt(EncryptType::Aes, "%%%"),
            Err(AesError::BadBase64)
        );
        assert_eq!(
            key.decrypt(EncryptType::Aes, "AAAA"),
            Err(AesError::BadLength)
        );
        assert_eq!(key.decrypt(EncryptType::Aes, ""), Err(AesError::BadLength));
        assert_eq!(
            key.decrypt(EncryptType::AesV2, "AAAA"),
            Err(AesError::BadLength)
        );
        assert_eq!(
            other.decrypt(EncryptType::Aes, &sealed),
            Err(AesError::BadPadding)
        );
        assert_eq!(EncryptType::parse("AES_V2"), Some(EncryptType::AesV2));
        assert_eq!(EncryptType::parse("aes"), None);
    }
}
