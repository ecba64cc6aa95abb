//! RSA keys, RSA2 (SHA256withRSA) and RSA (SHA1withRSA) signatures, through OpenSSL.
//!
//! OpenSSL's private-key operation is constant-time and blinded, and it is the only fast library
//! that can also sign with SHA-1, which `sign_type=RSA` needs (shared/bench/perf-baselines.md §1).
//!
//! Each key keeps its prepared OpenSSL contexts ([`Contexts`]) and reuses them: OpenSSL 3 looks
//! up the algorithm's implementation in its provider store, under a lock, every time a context
//! is made, which is what `Signer::new` does per call. A signature is made the way `openssl
//! speed` makes it: the message digested once (SHA-NI), then `EVP_PKEY_sign` on a context made
//! when the key was first used; the bytes are those of `Signer` (PKCS #1 v1.5 is deterministic).

use std::fmt;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use openssl::error::ErrorStack;
use openssl::md::{Md, MdRef};
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};

/// The `sign_type` of a request, which is also the algorithm of its response signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignType {
    /// `RSA2`: RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa2,
    /// `RSA`: RSASSA-PKCS1-v1_5 with SHA-1 (legacy).
    Rsa,
}

impl SignType {
    /// Every sign type.
    pub const ALL: &'static [Self] = &[Self::Rsa2, Self::Rsa];

    /// Parses the wire name, ASCII case-insensitively (`RSA2`, `RSA`).
    pub fn parse(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("RSA2") {
            Some(Self::Rsa2)
        } else if value.eq_ignore_ascii_case("RSA") {
            Some(Self::Rsa)
        } else {
            None
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa2 => "RSA2",
            Self::Rsa => "RSA",
        }
    }

    fn md(self) -> &'static MdRef {
        match self {
            Self::Rsa2 => Md::sha256(),
            Self::Rsa => Md::sha1(),
        }
    }

    /// The digest of `data` this algorithm signs.
    pub fn digest(self, data: &[u8]) -> Digest {
        match self {
            Self::Rsa2 => Digest::Sha256(openssl::sha::sha256(data)),
            Self::Rsa => Digest::Sha1(openssl::sha::sha1(data)),
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Rsa2 => 0,
            Self::Rsa => 1,
        }
    }
}

/// The digest a signature covers: what [`PrivateKey::sign_digest`] signs, and a key by which
/// signatures of the same bytes can be found again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    /// SHA-256, for `RSA2`.
    Sha256([u8; 32]),
    /// SHA-1, for `RSA`.
    Sha1([u8; 20]),
}

impl Digest {
    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Sha256(d) => d,
            Self::Sha1(d) => d,
        }
    }

    /// The algorithm that signs this digest.
    pub fn sign_type(&self) -> SignType {
        match self {
            Self::Sha256(_) => SignType::Rsa2,
            Self::Sha1(_) => SignType::Rsa,
        }
    }
}

impl fmt::Display for SignType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is neither PEM nor base64 DER of a supported container.
    #[error("not an RSA key in a supported format ({0})")]
    Unreadable(&'static str),
    /// The key is RSA but too small to be safe.
    #[error("RSA key of {0} bits; at least 1024 are required (2048 for RSA2)")]
    TooSmall(u32),
    /// OpenSSL failed while signing.
    #[error("signing failed: {0}")]
    Sign(#[from] openssl::error::ErrorStack),
}

const MIN_BITS: u32 = 1024;

/// The standard alphabet, tolerant of missing padding: clients differ there.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64 leniently (§2.5 step 4): ASCII whitespace is ignored and a literal space is
/// read as the `+` an intermediary failed to percent-encode.
pub fn decode_base64_lenient(text: &str) -> Option<Vec<u8>> {
    let stray = |b: &u8| matches!(b, b' ' | b'\r' | b'\n' | b'\t');
    if !text.as_bytes().iter().any(stray) {
        // Every well-behaved client: decoded as it is, without a cleaned copy.
        return LENIENT.decode(text).ok();
    }
    let cleaned: Vec<u8> = text
        .bytes()
        .filter_map(|b| match b {
            b' ' => Some(b'+'),
            b'\r' | b'\n' | b'\t' => None,
            b => Some(b),
        })
        .collect();
    LENIENT.decode(cleaned).ok()
}

/// Strips PEM armour if present and base64-decodes the body; returns `(label, der)`.
fn pem_or_base64(text: &str) -> Option<(Option<String>, Vec<u8>)> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("-----BEGIN ") {
        let (label, rest) = rest.split_once("-----")?;
        let end = format!("-----END {label}-----");
        let body = rest.split_once(&end)?.0;
        let body: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        return Some((Some(label.to_owned()), STANDARD.decode(body).ok()?));
    }
    let body: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Some((None, STANDARD.decode(body).ok()?))
}

fn check_rsa<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> Result<(), KeyError> {
    if key.id() != Id::RSA {
        return Err(KeyError::Unreadable("not an RSA key"));
    }
    if key.bits() < MIN_BITS {
        return Err(KeyError::TooSmall(key.bits()));
    }
    Ok(())
}

/// Prepared contexts kept per key and algorithm, at most this many each (about one per thread
/// that signs at once; more are made when needed and dropped after use).
const KEPT_CONTEXTS: usize = 32;

/// A key and its prepared OpenSSL contexts, by [`SignType`]: initialised for signing (or
/// verifying) with PKCS #1 v1.5 padding and the algorithm's digest, taken out for one operation
/// and put back. A context whose operation failed is dropped, not reused.
struct Contexts<T> {
    key: PKey<T>,
    kept: [Mutex<Vec<PkeyCtx<T>>>; 2],
}

impl<T> Contexts<T> {
    fn new(key: PKey<T>) -> Self {
        Self {
            key,
            kept: [Mutex::new(Vec::new()), Mutex::new(Vec::new())],
        }
    }

    /// Runs `op` on a kept context for `sign_type`, or on one made with `init`.
    fn with<R>(
        &self,
        sign_type: SignType,
        init: impl FnOnce(&mut PkeyCtx<T>) -> Result<(), ErrorStack>,
        op: impl FnOnce(&mut PkeyCtx<T>) -> Result<R, ErrorStack>,
    ) -> Result<R, ErrorStack> {
        let kept = &self.kept[sign_type.index()];
        let lock = || kept.lock().unwrap_or_else(|e| e.into_inner());
        let taken = lock().pop();
        let mut ctx = match taken {
            Some(ctx) => ctx,
            None => {
                let mut ctx = PkeyCtx::new(&self.key)?;
                init(&mut ctx)?;
                ctx.set_rsa_padding(Padding::PKCS1)?;
                ctx.set_signature_md(sign_type.md())?;
                ctx
            }
        };
        let result = op(&mut ctx)?;
        let mut kept = lock();
        if kept.len() < KEPT_CONTEXTS {
            kept.push(ctx);
        }
        Ok(result)
    }
}

/// `len` random characters from `[0-9A-Za-z]`, from OpenSSL's CSPRNG (for tokens and ids).
pub fn random_alphanumeric(len: usize) -> Result<String, KeyError> {
    random_from(
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        len,
    )
}

/// `len` random decimal digits, from OpenSSL's CSPRNG (for notification ids).
pub fn random_digits(len: usize) -> Result<String, KeyError> {
    random_from(b"0123456789", len)
}

/// `len` characters drawn uniformly from `alphabet` (at most 256 ASCII characters).
fn random_from(alphabet: &[u8], len: usize) -> Result<String, KeyError> {
    let n = alphabet.len().clamp(1, 256);
    // Bytes at or above the largest multiple of n are rejected, so the choice stays uniform.
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        openssl::rand::rand_bytes(&mut buf)?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(alphabet[usize::from(b) % n]));
        }
    }
    Ok(out)
}

/// An RSA private key. Its `Debug` output never shows key material. Clones share the key and
/// its prepared contexts.
#[derive(Clone)]
pub struct PrivateKey(Arc<Contexts<Private>>);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(RSA-{}, <redacted>)", self.key().bits())
    }
}

impl PrivateKey {
    fn from_pkey(key: PKey<Private>) -> Self {
        Self(Arc::new(Contexts::new(key)))
    }

    fn key(&self) -> &PKey<Private> {
        &self.0.key
    }

    /// Generates a fresh RSA key of `bits` bits.
    pub fn generate(bits: u32) -> Result<Self, KeyError> {
        Ok(Self::from_pkey(PKey::from_rsa(Rsa::generate(bits)?)?))
    }

    /// Reads PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`), as PEM or bare base64 DER.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (_, der) = pem_or_base64(text).ok_or(KeyError::Unreadable("neither PEM nor base64"))?;
        let key = PKey::private_key_from_pkcs8(&der)
            .or_else(|_| Rsa::private_key_from_der(&der).and_then(PKey::from_rsa))
            .map_err(|_| KeyError::Unreadable("not a PKCS#1 or PKCS#8 RSA private key"))?;
        check_rsa(&key)?;
        Ok(Self::from_pkey(key))
    }

    /// Signs `data` and returns standard base64 with padding and no line breaks.
    pub fn sign(&self, sign_type: SignType, data: &[u8]) -> Result<String, KeyError> {
        self.sign_digest(&sign_type.digest(data))
    }

    /// Signs a digest made by [`SignType::digest`] with its algorithm: the signature
    /// [`PrivateKey::sign`] makes of the digested bytes.
    pub fn sign_digest(&self, digest: &Digest) -> Result<String, KeyError> {
        let mut signature = vec![0; self.key().size()];
        let len = self.0.with(
            digest.sign_type(),
            |ctx| ctx.sign_init(),
            |ctx| ctx.sign(digest.as_bytes(), Some(&mut signature)),
        )?;
        signature.truncate(len);
        Ok(STANDARD.encode(signature))
    }

    /// The matching public key.
    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        let der = self.key().public_key_to_der()?;
        Ok(PublicKey::from_pkey(PKey::public_key_from_der(&der)?))
    }

    /// PKCS#1 `RSA PRIVATE KEY` PEM (what the Python and Node SDKs read).
    pub fn to_pkcs1_pem(&self) -> Result<String, KeyError> {
        Ok(String::from_utf8_lossy(&self.key().rsa()?.private_key_to_pem()?).into_owned())
    }

    /// PKCS#8 `PRIVATE KEY` PEM.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        Ok(String::from_utf8_lossy(&self.key().private_key_to_pem_pkcs8()?).into_owned())
    }

    /// Bare base64 of the PKCS#1 DER (the console's "non-Java" private key form).
    pub fn to_pkcs1_base64(&self) -> Result<String, KeyError> {
        Ok(STANDARD.encode(self.key().rsa()?.private_key_to_der()?))
    }

    /// PKCS#8 DER.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        let pem = self.to_pkcs8_pem()?;
        let (_, der) = pem_or_base64(&pem).ok_or(KeyError::Unreadable("PKCS#8 export"))?;
        Ok(der)
    }

    /// Bare base64 of the PKCS#8 DER (the Java SDK's private key form).
    pub fn to_pkcs8_base64(&self) -> Result<String, KeyError> {
        let pem = self.to_pkcs8_pem()?;
        let (_, der) = pem_or_base64(&pem).ok_or(KeyError::Unreadable("PKCS#8 export"))?;
        Ok(STANDARD.encode(der))
    }
}

/// An RSA public key (an app's request key, or the platform's response key). Clones share the
/// key and its prepared contexts.
#[derive(Clone)]
pub struct PublicKey(Arc<Contexts<Public>>);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(RSA-{})", self.key().bits())
    }
}

impl PublicKey {
    fn from_pkey(key: PKey<Public>) -> Self {
        Self(Arc::new(Contexts::new(key)))
    }

    fn key(&self) -> &PKey<Public> {
        &self.0.key
    }

    /// Reads SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`), as PEM or bare base64 DER
    /// (the console hands out bare base64 SPKI).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (label, der) =
            pem_or_base64(text).ok_or(KeyError::Unreadable("neither PEM nor base64"))?;
        let spki = || PKey::public_key_from_der(&der);
        let pkcs1 = || Rsa::public_key_from_der_pkcs1(&der).and_then(PKey::from_rsa);
        let key = match label.as_deref() {
            Some("RSA PUBLIC KEY") => pkcs1(),
            Some("PUBLIC KEY") => spki(),
            Some(_) => return Err(KeyError::Unreadable("unexpected PEM label")),
            None => spki().or_else(|_| pkcs1()),
        }
        .map_err(|_| KeyError::Unreadable("not an SPKI or PKCS#1 RSA public key"))?;
        check_rsa(&key)?;
        Ok(Self::from_pkey(key))
    }

    /// Reads SPKI DER (an RSA key; as [`PublicKey::parse`] checks it).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = PKey::public_key_from_der(der)
            .map_err(|_| KeyError::Unreadable("not an SPKI public key"))?;
        check_rsa(&key)?;
        Ok(Self::from_pkey(key))
    }

    /// Its size in bits.
    pub fn bits(&self) -> u32 {
        self.key().bits()
    }

    /// SPKI DER.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, KeyError> {
        Ok(self.key().public_key_to_der()?)
    }

    /// Verifies a base64 signature over `data`. Any failure (bad base64, wrong length, mismatch)
    /// is `false`; callers map it to one answer.
    pub fn verify(&self, sign_type: SignType, data: &[u8], signature_b64: &str) -> bool {
        let Some(signature) = decode_base64_lenient(signature_b64) else {
            return false;
        };
        let digest = sign_type.digest(data);
        self.0
            .with(
                sign_type,
                |ctx| ctx.verify_init(),
                |ctx| ctx.verify(digest.as_bytes(), &signature),
            )
            .unwrap_or(false)
    }

    /// SPKI `PUBLIC KEY` PEM.
    pub fn to_spki_pem(&self) -> Result<String, KeyError> {
        Ok(String::from_utf8_lossy(&self.key().public_key_to_pem()?).into_owned())
    }

    /// Bare base64 SPKI DER (the console form; what we store).
    pub fn to_spki_base64(&self) -> Result<String, KeyError> {
        Ok(STANDARD.encode(self.key().public_key_to_der()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_are_alphanumeric_and_differ() {
        let a = random_alphanumeric(40).unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, random_alphanumeric(40).unwrap());
        let d = random_digits(26).unwrap();
        assert_eq!(d.len(), 26);
        assert!(d.bytes().all(|b| b.is_ascii_digit()));
        let all: String = (0..20).map(|_| random_digits(50).unwrap()).collect();
        assert!((b'0'..=b'9').all(|digit| all.as_bytes().contains(&digit)));
    }

    #[test]
    fn sign_type_parses_case_insensitively() {
        assert_eq!(SignType::parse("RSA2"), Some(SignType::Rsa2));
        assert_eq!(SignType::parse("rsa"), Some(SignType::Rsa));
        assert_eq!(SignType::parse("SM2"), None);
        assert_eq!(SignType::parse(""), None);
    }

    #[test]
    fn lenient_base64_reads_spaces_as_plus_and_ignores_newlines() {
        assert_eq!(decode_base64_lenient("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64_lenient(" /8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64_lenient("+/8\n=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64_lenient("+/8").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_base64_lenient("!!").is_none());
    }

    #[test]
    fn debug_output_redacts_private_keys() {
        let key = PrivateKey::generate(1024).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "PrivateKey(RSA-1024, <redacted>)");
    }

    #[test]
    fn generated_keys_round_trip_through_every_format() {
        let key = PrivateKey::generate(2048).unwrap();
        let public = key.public_key().unwrap();
        let sig = key.sign(SignType::Rsa2, b"hello").unwrap();
        for text in [
            key.to_pkcs1_pem().unwrap(),
            key.to_pkcs8_pem().unwrap(),
            key.to_pkcs1_base64().unwrap(),
            key.to_pkcs8_base64().unwrap(),
        ] {
            let again = PrivateKey::parse(&text).unwrap();
            assert_eq!(again.sign(SignType::Rsa2, b"hello").unwrap(), sig);
        }
        for text in [
            public.to_spki_pem().unwrap(),
            public.to_spki_base64().unwrap(),
        ] {
            assert!(
                PublicKey::parse(&text)
                    .unwrap()
                    .verify(SignType::Rsa2, b"hello", &sig)
            );
        }
        assert!(!public.verify(SignType::Rsa2, b"hellO", &sig));
        assert!(!public.verify(SignType::Rsa, b"hello", &sig));
    }

    #[test]
    fn prepared_contexts_sign_and_verify_as_openssl_signer_and_verifier_do() {
        use openssl::hash::MessageDigest;
        let key = PrivateKey::generate(2048).unwrap();
        let public = key.public_key().unwrap();
        for (sign_type, md) in [
            (SignType::Rsa2, MessageDigest::sha256()),
            (SignType::Rsa, MessageDigest::sha1()),
        ] {
            let message = b"app_id=2021000000000001&method=alipay.user.agreement.query";
            let mut signer = openssl::sign::Signer::new(md, key.key()).unwrap();
            let reference = STANDARD.encode(signer.sign_oneshot_to_vec(message).unwrap());
            // From many threads at once, each context used by one at a time and then reused.
            std::thread::scope(|scope| {
                for _ in 0..4 {
                    scope.spawn(|| {
                        for _ in 0..8 {
                            assert_eq!(key.sign(sign_type, message).unwrap(), reference);
                            assert!(public.verify(sign_type, message, &reference));
                            assert!(!public.verify(
                                sign_type,
                                b"app_id=2021000000000002",
                                &reference
                            ));
                        }
                    });
                }
            });
            let kept = key.0.kept[sign_type.index()].lock().unwrap().len();
            assert!((1..=4).contains(&kept), "{kept} contexts kept");
        }
        // A failed verification (a signature of the wrong length) leaves the key usable.
        assert!(!public.verify(SignType::Rsa2, b"x", "AAAA"));
        let sig = key.sign(SignType::Rsa2, b"x").unwrap();
        assert!(public.verify(SignType::Rsa2, b"x", &sig));
    }

    #[test]
    fn garbage_and_small_keys_are_rejected() {
        assert!(PrivateKey::parse("not a key").is_err());
        assert!(
            PublicKey::parse("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
                .is_err()
        );
        let small = PrivateKey::from_pkey(PKey::from_rsa(Rsa::generate(512).unwrap()).unwrap());
        let pem = small.to_pkcs1_pem().unwrap();
        assert!(matches!(
            PrivateKey::parse(&pem),
            Err(KeyError::TooSmall(512))
        ));
    }
}
