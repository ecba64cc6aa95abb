//! A short-lived cache of apps with their parsed keys and owner merchant, so that a request costs
//! no key parsing and no extra lookups. Entries live a few seconds: an `app add` made by another
//! process is seen soon, and unknown ids are cached too, so junk traffic cannot hammer the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agreements_domain::Merchant;
use agreements_protocol::{PublicKey, SignType};
use agreements_store::{AppRecord, Store, StoreError};

/// How long an entry is trusted.
const TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; past it the cache starts over (cheap, and bounded whatever ids arrive).
const MAX_ENTRIES: usize = 10_000;

/// An app ready for the gateway.
#[derive(Debug)]
pub struct App {
    /// As stored.
    pub record: AppRecord,
    /// Parsed request keys; a stored key that does not parse is left out (and logged).
    pub keys: Vec<(SignType, PublicKey)>,
    /// The owner merchant; `None` would be an inconsistency.
    pub merchant: Option<Merchant>,
}

impl App {
    /// The key for `sign_type`.
    pub fn key(&self, sign_type: SignType) -> Option<&PublicKey> {
        self.keys
            .iter()
            .find(|(t, _)| *t == sign_type)
            .map(|(_, k)| k)
    }
}

/// A cached lookup: when it was made, and what it found.
type Entry = (Instant, Option<Arc<App>>);

/// The cache.
#[derive(Debug, Default)]
pub struct AppCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl AppCache {
    /// The app `app_id`, from the cache or the store.
    pub async fn get(&self, store: &Store, app_id: &str) -> Result<Option<Arc<App>>, StoreError> {
        if let Some((at, app)) = self.lock().get(app_id)
            && at.elapsed() < TTL
        {
            return Ok(app.clone());
        }
        let app = match store.app(app_id).await? {
            None => None,
            Some(record) => {
                let merchant = store.merchant(&record.partner_id).await?;
                let keys = record
                    .keys
                    .iter()
                    .filter_map(|k| match PublicKey::parse(&k.public_key) {
                        Ok(key) => Some((k.sign_type, key)),
                        Err(e) => {
                            tracing::error!(app_id, sign_type = %k.sign_type, error = %e, "stored app key does not parse");
                            None
                        }
                    })
                    .collect();
                Some(Arc::new(App {
                    record,
                    keys,
                    merchant,
                }))
            }
        };
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(app_id.to_owned(), (Instant::now(), app.clone()));
        Ok(app)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
