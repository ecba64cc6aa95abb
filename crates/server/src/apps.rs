//! A short-lived cache of apps with their parsed keys and owner merchant, so that a request costs
//! no key parsing and no extra lookups (entries live [`crate::cache::TTL`]).
//!
//! Parsed keys outlive the entries: an app that keeps calling is loaded again every
//! [`crate::cache::TTL`], and parsing its key again would run OpenSSL 3's decoder (about 1.9
//! million instructions per key under callgrind, a quarter of an RSA signature) on the request
//! that found the entry stale. [`Parsed`] keeps each key and certificate by its stored text, so a
//! reload parses only what changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agreements_domain::ids::AppId;
use agreements_domain::{EntityStatus, Merchant};
use agreements_protocol::aes::ContentKey;
use agreements_protocol::cert::Certificate;
use agreements_protocol::request::{AppCertificate, CallingApp};
use agreements_protocol::{Method, PublicKey, SignType};
use agreements_store::{AppRecord, AppStatus, Store, StoreError};

use crate::cache::{MAX_ENTRIES, Ttl};

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
    parsed: Parsed,
}

impl AppCache {
    /// The app `app_id`, from the cache or the store.
    pub async fn get(&self, store: &Store, app_id: &AppId) -> Result<Option<Arc<App>>, StoreError> {
        self.entries
            .get(app_id, async || load(store, app_id, &self.parsed).await)
            .await
    }
}

/// Public keys already parsed, by the stored text they were parsed from (an app's key, or the
/// PEM of a certificate whose key it is). Bounded like the caches: past [`MAX_ENTRIES`] texts it
/// starts over. A text that does not parse is not kept (it is parsed, and logged, at each load).
#[derive(Debug, Default)]
struct Parsed {
    keys: Mutex<HashMap<String, PublicKey>>,
}

impl Parsed {
    /// The key `text` holds, parsed by `parse` unless it was before.
    fn key<E>(
        &self,
        text: &str,
        parse: impl FnOnce(&str) -> Result<PublicKey, E>,
    ) -> Result<PublicKey, E> {
        if let Some(key) = self.lock().get(text) {
            return Ok(key.clone());
        }
        let key = parse(text)?;
        let mut keys = self.lock();
        if keys.len() >= MAX_ENTRIES {
            keys.clear();
        }
        keys.insert(text.to_owned(), key.clone());
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PublicKey>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn load(
    store: &Store,
    app_id: &AppId,
    parsed: &Parsed,
) -> Result<Option<Arc<App>>, StoreError> {
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
            let key = parsed.key(&c.cert_pem, |pem| {
                Certificate::parse_pem(pem.as_bytes()).and_then(|cert| cert.public_key())
            });
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
        .filter_map(|k| match parsed.key(&k.public_key, PublicKey::parse) {
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use agreements_protocol::PrivateKey;

    use super::*;

    #[test]
    fn a_key_text_is_parsed_once_and_a_bad_one_every_time() {
        let text = PrivateKey::generate(2048)
            .unwrap()
            .public_key()
            .unwrap()
            .to_spki_pem()
            .unwrap();
        let parsed = Parsed::default();
        let calls = Cell::new(0);
        let counted = |t: &str| {
            calls.set(calls.get() + 1);
            PublicKey::parse(t)
        };
        let first = parsed.key(&text, counted).unwrap();
        let again = parsed.key(&text, counted).unwrap();
        assert_eq!(calls.get(), 1);
        assert_eq!(first.to_spki_der().unwrap(), again.to_spki_der().unwrap());

        assert!(parsed.key("not a key", counted).is_err());
        assert!(parsed.key("not a key", counted).is_err());
        assert_eq!(calls.get(), 3);
    }
}
