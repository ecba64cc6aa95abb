//! A short-lived cache of apps with their parsed keys and owner merchant, so that a request costs
//! no key parsing and no extra lookups (entries live [`crate::cache::TTL`]).

use std::sync::Arc;

use agreements_domain::ids::AppId;
use agreements_domain::{EntityStatus, Merchant};
use agreements_protocol::aes::ContentKey;
use agreements_protocol::request::CallingApp;
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
        self.record.methods.contains(&method)
    }

    fn content_key(&self) -> Option<&ContentKey> {
        self.content_key.as_ref()
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
    })))
}
