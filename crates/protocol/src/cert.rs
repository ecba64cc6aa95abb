//! Certificate mode (公钥证书, openapi-gateway.md §5, cert-aes-v3.md §2): X.509 certificates
//! read and issued with OpenSSL, and the serial names (SN) the SDKs compute —
//! `md5_hex(issuer DN in RFC 2253 order + serial in decimal)`, the first certificate of a file
//! for `app_cert_sn` / `alipay_cert_sn`, and for `alipay_root_cert_sn` every RSA-signed
//! certificate of the root bundle, in file order, joined by `_`.

use std::fmt;

use openssl::asn1::{Asn1Integer, Asn1Time, Asn1TimeRef};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::{MessageDigest, hash};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private, Public};
use openssl::stack::Stack;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509Req, X509StoreContext};

use crate::crypto::{PrivateKey, PublicKey};

/// Why a certificate could not be read, trusted or issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Not PEM certificates, or not a certificate request.
    #[error("unreadable: {0}")]
    Unreadable(&'static str),
    /// The key is not RSA of at least 2048 bits.
    #[error("the key must be RSA of at least 2048 bits")]
    WeakKey,
    /// A certificate request whose signature does not verify with its own key.
    #[error("the certificate request's signature does not verify")]
    BadRequestSignature,
    /// The chain does not lead to a trusted root, or a certificate is outside its validity.
    #[error("not trusted: {0}")]
    Untrusted(String),
    /// OpenSSL failed.
    #[error("openssl: {0}")]
    OpenSsl(String),
}

impl From<crate::crypto::KeyError> for CertError {
    fn from(e: crate::crypto::KeyError) -> Self {
        Self::OpenSsl(e.to_string())
    }
}

impl From<openssl::error::ErrorStack> for CertError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::OpenSsl(e.to_string())
    }
}

/// One X.509 certificate.
#[derive(Clone)]
pub struct Certificate(X509);

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Certificate({}, sn {})",
            subject_rfc2253(&self.0),
            self.sn()
        )
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_der().ok() == other.0.to_der().ok()
    }
}

impl Eq for Certificate {}

/// Seconds since the epoch of an ASN.1 time.
fn epoch(time: &Asn1TimeRef) -> Result<i64, CertError> {
    let diff = Asn1Time::from_unix(0)?.diff(time)?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

fn rfc2253(name: &openssl::x509::X509NameRef) -> String {
    // OpenSSL keeps the entries in the certificate's order (most general first); RFC 2253, as
    // Java's `getName()` prints it, lists them most specific first, joined by `,`.
    let mut parts: Vec<String> = name
        .entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect();
    parts.reverse();
    parts.join(",")
}

fn subject_rfc2253(x509: &X509) -> String {
    rfc2253(x509.subject_name())
}

impl Certificate {
    /// Every certificate of a PEM file, in file order (at least one).
    pub fn parse_pem_chain(pem: &[u8]) -> Result<Vec<Self>, CertError> {
        let all =
            X509::stack_from_pem(pem).map_err(|_| CertError::Unreadable("not PEM certificates"))?;
        if all.is_empty() {
            return Err(CertError::Unreadable("no certificate in the file"));
        }
        Ok(all.into_iter().map(Self).collect())
    }

    /// The first certificate of a PEM file (the leaf, for the SN rules).
    pub fn parse_pem(pem: &[u8]) -> Result<Self, CertError> {
        Ok(Self::parse_pem_chain(pem)?.remove(0))
    }

    /// The certificate's serial name: `md5_hex(issuer RFC 2253 + serial decimal)`, 32 lower-case
    /// hex digits.
    pub fn sn(&self) -> String {
        let serial = self
            .0
            .serial_number()
            .to_bn()
            .and_then(|bn| bn.to_dec_str().map(|s| s.to_string()))
            .unwrap_or_default();
        let input = format!("{}{serial}", rfc2253(self.0.issuer_name()));
        hash(MessageDigest::md5(), input.as_bytes())
            .map(|digest| digest.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default()
    }

    /// Whether its signature algorithm is one of PKCS #1's (RSA): only those count in
    /// `alipay_root_cert_sn`.
    pub fn is_rsa_signed(&self) -> bool {
        // The algorithms of `1.2.840.113549.1.1.*` are those whose key type is RSA (or RSA-PSS).
        let nid = self.0.signature_algorithm().object().nid();
        nid == Nid::RSASSAPSS
            || nid
                .signature_algorithms()
                .is_some_and(|a| a.pkey == Nid::RSAENCRYPTION || a.pkey == Nid::RSASSAPSS)
    }

    /// The subject, RFC 2253.
    pub fn subject(&self) -> String {
        subject_rfc2253(&self.0)
    }

    /// Its RSA public key.
    pub fn public_key(&self) -> Result<PublicKey, CertError> {
        let der = self.0.public_key()?.public_key_to_der()?;
        PublicKey::from_spki_der(&der).map_err(|_| CertError::WeakKey)
    }

    /// Validity, as seconds since the epoch: (not before, not after).
    pub fn validity(&self) -> Result<(i64, i64), CertError> {
        Ok((epoch(self.0.not_before())?, epoch(self.0.not_after())?))
    }

    /// PEM text.
    pub fn to_pem(&self) -> String {
        self.0
            .to_pem()
            .map(|pem| String::from_utf8_lossy(&pem).into_owned())
            .unwrap_or_default()
    }

    /// Whether it chains to one of `roots` through `intermediates`, every certificate valid at
    /// `at` (epoch seconds; OpenSSL's path validation) — what the Java SDK's `isTrusted` checks
    /// before it uses a downloaded platform certificate.
    pub fn verify_chain(
        &self,
        intermediates: &[Certificate],
        roots: &[Certificate],
        at: i64,
    ) -> Result<(), CertError> {
        let mut store = X509StoreBuilder::new()?;
        let mut param = X509VerifyParam::new()?;
        param.set_time(at);
        store.set_param(&param)?;
        for root in roots {
            store.add_cert(root.0.clone())?;
        }
        let store = store.build();
        let mut chain = Stack::new()?;
        for cert in intermediates {
            chain.push(cert.0.clone())?;
        }
        let mut context = X509StoreContext::new()?;
        let (ok, reason) = context.init(&store, &self.0, &chain, |c| {
            let ok = c.verify_cert()?;
            Ok((ok, c.error().error_string().to_owned()))
        })?;
        if ok {
            Ok(())
        } else {
            Err(CertError::Untrusted(reason))
        }
    }
}

/// `alipay_root_cert_sn` of a root bundle: the SNs of its RSA-signed certificates, in file
/// order, joined by `_`.
pub fn root_cert_sn(bundle: &[Certificate]) -> String {
    bundle
        .iter()
        .filter(|c| c.is_rsa_signed())
        .map(Certificate::sn)
        .collect::<Vec<_>>()
        .join("_")
}

/// A certificate request (PKCS #10): its key must be RSA ≥ 2048 bits and it must be signed by
/// that key. Only the key is taken from it; the subject is the platform's to choose.
pub fn public_key_of_request(pem: &[u8]) -> Result<PublicKey, CertError> {
    let request = X509Req::from_pem(pem).map_err(|_| CertError::Unreadable("not a PEM CSR"))?;
    let key = request.public_key()?;
    if key.rsa().is_err() || key.bits() < 2048 {
        return Err(CertError::WeakKey);
    }
    if !request.verify(&key).unwrap_or(false) {
        return Err(CertError::BadRequestSignature);
    }
    PublicKey::from_spki_der(&key.public_key_to_der()?).map_err(|_| CertError::WeakKey)
}

/// A certificate authority: its certificate and private key.
#[derive(Clone)]
pub struct Authority {
    cert: Certificate,
    key: PKey<Private>,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authority({:?}, <key redacted>)", self.cert)
    }
}

/// What a new certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A CA (root or intermediate): may sign certificates.
    Authority,
    /// An end entity: signs requests (an app) or answers (the platform).
    Signer,
}

/// The name of a certificate: C, O, OU and CN only (the SN rules of the SDKs agree for these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name<'a> {
    /// Organisation (O).
    pub organisation: &'a str,
    /// Organisational unit (OU).
    pub unit: &'a str,
    /// Common name (CN).
    pub common_name: &'a str,
}

fn build_name(name: &Name<'_>) -> Result<openssl::x509::X509Name, CertError> {
    let mut builder = X509NameBuilder::new()?;
    builder.append_entry_by_nid(Nid::COUNTRYNAME, "CN")?;
    builder.append_entry_by_nid(Nid::ORGANIZATIONNAME, name.organisation)?;
    builder.append_entry_by_nid(Nid::ORGANIZATIONALUNITNAME, name.unit)?;
    builder.append_entry_by_nid(Nid::COMMONNAME, name.common_name)?;
    Ok(builder.build())
}

fn key_pair(key: &PrivateKey) -> Result<(PKey<Private>, PKey<Public>), CertError> {
    let private = PKey::private_key_from_der(&key.to_pkcs8_der()?)?;
    let public = PKey::public_key_from_der(&private.public_key_to_der()?)?;
    Ok((private, public))
}

impl Authority {
    /// A self-signed root, valid from `not_before` (epoch seconds) for `days`.
    pub fn root(
        name: &Name<'_>,
        key: &PrivateKey,
        not_before: i64,
        days: u32,
    ) -> Result<Self, CertError> {
        let (private, public) = key_pair(key)?;
        let subject = build_name(name)?;
        let cert = build(
            &subject,
            &subject,
            &public,
            &private,
            Role::Authority,
            not_before,
            days,
        )?;
        Ok(Self {
            cert: Certificate(cert),
            key: private,
        })
    }

    /// An authority from its certificate and key (files an operator keeps).
    pub fn from_parts(cert: Certificate, key: &PrivateKey) -> Result<Self, CertError> {
        let (private, _) = key_pair(key)?;
        if !cert.0.public_key()?.public_eq(&private) {
            return Err(CertError::Unreadable(
                "the key does not belong to the certificate",
            ));
        }
        Ok(Self { cert, key: private })
    }

    /// Its certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// Issues a certificate for `public_key` named `name`, valid from `not_before` for `days`.
    pub fn issue(
        &self,
        name: &Name<'_>,
        public_key: &PublicKey,
        role: Role,
        not_before: i64,
        days: u32,
    ) -> Result<Certificate, CertError> {
        let public = PKey::public_key_from_der(&public_key.to_spki_der()?)?;
        if public.bits() < 2048 {
            return Err(CertError::WeakKey);
        }
        let cert = build(
            build_name(name)?.as_ref(),
            self.cert.0.subject_name(),
            &public,
            &self.key,
            role,
            not_before,
            days,
        )?;
        Ok(Certificate(cert))
    }
}

fn build(
    subject: &openssl::x509::X509NameRef,
    issuer: &openssl::x509::X509NameRef,
    public: &PKey<Public>,
    signer: &PKey<Private>,
    role: Role,
    not_before: i64,
    days: u32,
) -> Result<X509, CertError> {
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    // A random positive 64-bit serial: SNs differ for every certificate issued.
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::ONE, false)?;
    builder.set_serial_number(Asn1Integer::from_bn(&serial)?.as_ref())?;
    builder.set_subject_name(subject)?;
    builder.set_issuer_name(issuer)?;
    builder.set_pubkey(public)?;
    builder.set_not_before(Asn1Time::from_unix(not_before)?.as_ref())?;
    builder.set_not_after(Asn1Time::from_unix(not_before + i64::from(days) * 86_400)?.as_ref())?;
    match role {
        Role::Authority => {
            builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
            builder.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()?,
            )?;
        }
        Role::Signer => {
            builder.append_extension(BasicConstraints::new().critical().build()?)?;
            builder.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .non_repudiation()
                    .build()?,
            )?;
        }
    }
    let identifier = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(identifier)?;
    builder.sign(signer, MessageDigest::sha256())?;
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(cn: &str) -> Name<'_> {
        Name {
            organisation: "Agreements",
            unit: "Certification Authority",
            common_name: cn,
        }
    }

    #[test]
    fn an_issued_chain_verifies_and_names_itself_as_the_sdks_do() {
        let now = 1_716_182_055;
        let root_key = PrivateKey::generate(2048).unwrap();
        let root = Authority::root(&name("Root"), &root_key, now - 60, 3650).unwrap();
        let middle_key = PrivateKey::generate(2048).unwrap();
        let middle_cert = root
            .issue(
                &name("Class 2"),
                &middle_key.public_key().unwrap(),
                Role::Authority,
                now - 60,
                1825,
            )
            .unwrap();
        let middle = Authority::from_parts(middle_cert.clone(), &middle_key).unwrap();
        let app_key = PrivateKey::generate(2048).unwrap();
        let leaf = middle
            .issue(
                &name("2021000000000001"),
                &app_key.public_key().unwrap(),
                Role::Signer,
                now - 60,
                365,
            )
            .unwrap();
        assert_eq!(
            leaf.public_key().unwrap().to_spki_base64().unwrap(),
            app_key.public_key().unwrap().to_spki_base64().unwrap()
        );
        let (from, to) = leaf.validity().unwrap();
        assert_eq!((from, to), (now - 60, now - 60 + 365 * 86_400));
        assert_eq!(
            leaf.subject(),
            "CN=2021000000000001,OU=Certification Authority,O=Agreements,C=CN"
        );
        assert_eq!(leaf.sn().len(), 32);
        assert_ne!(leaf.sn(), middle_cert.sn());
        assert!(root.certificate().is_rsa_signed());
        // The chain: through the intermediate to the root, and not without it.
        leaf.verify_chain(
            std::slice::from_ref(&middle_cert),
            &[root.certificate().clone()],
            now,
        )
        .unwrap();
        assert!(matches!(
            leaf.verify_chain(&[], &[root.certificate().clone()], now),
            Err(CertError::Untrusted(_))
        ));
        let other = Authority::root(&name("Root"), &middle_key, now - 60, 10).unwrap();
        assert!(
            leaf.verify_chain(
                std::slice::from_ref(&middle_cert),
                &[other.certificate().clone()],
                now
            )
            .is_err()
        );
        // Outside the leaf's validity.
        assert!(matches!(
            leaf.verify_chain(
                std::slice::from_ref(&middle_cert),
                &[root.certificate().clone()],
                now + 400 * 86_400
            ),
            Err(CertError::Untrusted(reason)) if reason.contains("expired")
        ));
        // PEM round trip, chains in file order.
        let pem = format!("{}{}", leaf.to_pem(), middle_cert.to_pem());
        let chain = Certificate::parse_pem_chain(pem.as_bytes()).unwrap();
        assert_eq!(chain, vec![leaf.clone(), middle_cert.clone()]);
        assert_eq!(Certificate::parse_pem(pem.as_bytes()).unwrap(), leaf);
        // A key that is not the certificate's is refused as its authority.
        assert!(Authority::from_parts(leaf, &middle_key).is_err());
    }

    #[test]
    fn weak_keys_and_forged_requests_are_refused() {
        let root_key = PrivateKey::generate(2048).unwrap();
        let root = Authority::root(&name("Root"), &root_key, 0, 10).unwrap();
        let weak = PrivateKey::generate(1024).unwrap();
        assert_eq!(
            root.issue(&name("x"), &weak.public_key().unwrap(), Role::Signer, 0, 1)
                .unwrap_err(),
            CertError::WeakKey
        );
        assert!(matches!(
            public_key_of_request(b"not a csr"),
            Err(CertError::Unreadable(_))
        ));
        // Certificate requests: the key's own signature, and at least 2048 bits.
        let request = |key: &PrivateKey, signer: &PrivateKey| {
            let key = PKey::private_key_from_der(&key.to_pkcs8_der().unwrap()).unwrap();
            let signer = PKey::private_key_from_der(&signer.to_pkcs8_der().unwrap()).unwrap();
            let mut builder = openssl::x509::X509ReqBuilder::new().unwrap();
            builder.set_pubkey(&key).unwrap();
            builder
                .set_subject_name(&build_name(&name("app")).unwrap())
                .unwrap();
            builder.sign(&signer, MessageDigest::sha256()).unwrap();
            builder.build().to_pem().unwrap()
        };
        let app = PrivateKey::generate(2048).unwrap();
        let key = public_key_of_request(&request(&app, &app)).unwrap();
        assert_eq!(
            key.to_spki_base64().unwrap(),
            app.public_key().unwrap().to_spki_base64().unwrap()
        );
        assert_eq!(
            public_key_of_request(&request(&app, &root_key)).unwrap_err(),
            CertError::BadRequestSignature
        );
        assert_eq!(
            public_key_of_request(&request(&weak, &weak)).unwrap_err(),
            CertError::WeakKey
        );
        assert!(Certificate::parse_pem_chain(b"").is_err());
    }
}
