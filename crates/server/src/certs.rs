//! The platform's side of certificate mode: its roots (whose SNs requests must name), the
//! certificate of its signing key (whose SN answers carry), and every signing certificate it has
//! had, for `alipay.open.app.alipaycert.download`. Read from the store and cached like apps.

use std::collections::HashMap;
use std::sync::Arc;

use agreements_protocol::PrivateKey;
use agreements_protocol::cert::Certificate;
use agreements_store::{CertRole, Store, StoreError};

use crate::cache::Ttl;

/// What the gateway knows of the platform's certificates.
#[derive(Debug, Default)]
pub struct PlatformTrust {
    /// SNs of the roots merchants trust; empty when certificate mode is not set up.
    pub root_sns: Vec<String>,
    /// SN of the newest signing certificate whose key is the platform key: it names the key
    /// that signs answers. `None` when there is none.
    pub signing_sn: Option<String>,
    /// Every signing certificate's chain (PEM, leaf first), by SN.
    chains: HashMap<String, String>,
}

impl PlatformTrust {
    /// Reads the stored certificates. A signing certificate whose key is not `platform_key` is
    /// kept for download but never named in answers (logged: the operator must fix it).
    pub fn from_store_records(
        records: &[agreements_store::PlatformCert],
        platform_key: &PrivateKey,
    ) -> Self {
        let mut trust = Self::default();
        let platform_public = platform_key
            .public_key()
            .and_then(|k| k.to_spki_base64())
            .ok();
        for record in records {
            match record.role {
                CertRole::Root => trust.root_sns.push(record.cert_sn.clone()),
                CertRole::Signing => {
                    let ours = Certificate::parse_pem(record.chain_pem.as_bytes())
                        .ok()
                        .and_then(|c| c.public_key().ok())
                        .and_then(|k| k.to_spki_base64().ok());
                    if ours.is_some() && ours == platform_public {
                        trust.signing_sn = Some(record.cert_sn.clone());
                    } else {
                        tracing::error!(
                            cert_sn = %record.cert_sn,
                            "a platform signing certificate does not hold the configured platform key; it is not used to sign"
                        );
                    }
                    trust
                        .chains
                        .insert(record.cert_sn.clone(), record.chain_pem.clone());
                }
            }
        }
        trust
    }

    /// The chain of the signing certificate `sn`, PEM.
    pub fn chain(&self, sn: &str) -> Option<&str> {
        self.chains.get(sn).map(String::as_str)
    }

    /// Whether certificate mode is set up: a root, and a signing certificate of the platform key.
    pub fn is_set_up(&self) -> bool {
        !self.root_sns.is_empty() && self.signing_sn.is_some()
    }
}

/// The cache.
#[derive(Debug, Default)]
pub struct TrustCache {
    entry: Ttl<(), Arc<PlatformTrust>>,
}

impl TrustCache {
    /// The platform's certificates, from the cache or the store.
    pub async fn get(
        &self,
        store: &Store,
        platform_key: &PrivateKey,
    ) -> Result<Arc<PlatformTrust>, StoreError> {
        self.entry
            .get(&(), async || {
                let records = store.platform_certs().await?;
                Ok(Arc::new(PlatformTrust::from_store_records(
                    &records,
                    platform_key,
                )))
            })
            .await
    }
}
