//! A short-lived cache of apps with their parsed keys and owner merchant, so that a request costs
//! no key parsing and no extra lookups (entries live [`crate::cache::TTL`]).

use std::sync::Arc;

use agreements_domain::ids::AppId;
use agreements_domain::{EntityStatus, Merchant};
use agreements_protocol::aes::ContentKey;
use agreements_protocol::cert::Certificate;
use agreements_protocol::request::{AppCertificate, CallingApp};
use agreements_protocol::{Method, PublicKey, SignType};
use agreements_store::{AppRecord, AppStatus, Store, StoreError};

use crate::cache::Ttl;

/// An app ready for the gateway.
#[derive(Debug)]
pub struct App {
    /// As stored.
    pub record: AppRecord,
    /// Parsed request keys; a stored key that does not parse is left out (and logged).
    pub keys: Vec<(SignType, PublicKey)>,
    /// The owner merchant; `None` would be an inconsistency.
    pub merchant: Option<Merchant>,
    /// Its content-encryption key, if the operator set one.
    pub content_key: Option<ContentKey>,
    /// Its certificates by SN; a stored one that does not parse is left out (and logged).
    pub certs: Vec<(String, AppCertificate)>,
    /// When its public keys stop verifying, if it switched to certificate mode.
    pub keys_sunset: Option<i64>,
}

impl CallingApp for App {
    fn is_online(&self) -> bool {
        self.record.status == AppStatus::Online
    }

    fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    fn key(&self, sign_type: SignType) -> Option<&PublicKey> {
        self.keys
            .iter()
            .find(|(t, _)| *t == sign_type)
            .map(|(_, k)| k)
    }

    fn may_call(&self, method: Method) -> bool {
        method.is_open_to_every_app() || self.record.methods.contains(&method)
    }

    fn content_key(&self) -> Option<&ContentKey> {
        self.content_key.as_ref()
    }

    fn cert(&self, sn: &str) -> Option<&AppCertificate> {
        self.certs.iter().find(|(s, _)| s == sn).map(|(_, c)| c)
    }

    fn keys_sunset(&self) -> Option<i64> {
        self.keys_sunset
    }
}

/// Whether a merchant may call (through its apps or an ISV's).
pub(crate) fn is_enabled(merchant: &Merchant) -> bool {
    merchant.status == EntityStatus::Normal
}

/// The cache.
#[derive(Debug, Default)]
pub struct AppCache {
    entries: Ttl<AppId, Option<Arc<App>>>,
}

impl AppCache {
    /// The app `app_id`, from the cache or the store.
    pub async fn get(&self, store: &Store, app_id: &AppId) -> Result<Option<Arc<App>>, StoreError> {
        self.entries
            .get(app_id, async || load(store, app_id).await)
            .await
    }
}

async fn load(store: &Store, app_id: &AppId) -> Result<Option<Arc<App>>, StoreError> {
    let Some(record) = store.app(app_id).await? else {
        return Ok(None);
    };
    let merchant = store.merchant(&record.partner_id).await?;
    let content_key = store.content_key(app_id).await?.map(|k| k.content_key);
    let keys_sunset = store.key_sunset(app_id).await?.map(|s| s.sunset_at);
    let certs = store
        .app_certs(app_id)
        .await?
        .into_iter()
        .filter_map(|c| {
            let key = Certificate::parse_pem(c.cert_pem.as_bytes()).and_then(|cert| cert.public_key());
            match key {
                Ok(key) => Some((
                    c.cert_sn,
                    AppCertificate {
                        key,
                        not_before: c.not_before,
                        not_after: c.not_after,
                        retired_at: c.retired_at,
                    },
                )),
                Err(e) => {
                    tracing::error!(%app_id, cert_sn = %c.cert_sn, error = %e, "stored app certificate does not parse");
                    None
                }
            }
        })
        .collect();
    let keys = record
        .keys
        .iter()
        .filter_map(|k| match PublicKey::parse(&k.public_key) {
            Ok(key) => Some((k.sign_type, key)),
            Err(e) => {
                tracing::error!(%app_id, sign_type = %k.sign_type, error = %e, "stored app key does not parse");
                None
            }
        })
        .collect();
    Ok(Some(Arc::new(App {
        record,
        keys,
        merchant,
        content_key,
        certs,
        keys_sunset,
    })))
}
