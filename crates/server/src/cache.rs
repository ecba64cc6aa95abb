//! Short-lived caches of what nearly every request reads and operators rarely change: apps (in
//! [`crate::apps`]), agreement products and merchant contracts. An entry is trusted for [`TTL`],
//! so a change made by another process (`agreements contract …`, `app …`) is seen within that
//! time; misses are cached too, so junk traffic cannot hammer the store. Validity in time
//! (`valid_from`, `valid_to`) is always checked against the request's own clock, never cached.
//!
//! Also the signatures of answers ([`Signatures`]): RSA PKCS #1 v1.5 signatures are
//! deterministic, so an answer whose exact bytes this app was answered before (an empty list, a
//! `USER_NOT_EXIST_ERROR`, a member center refreshing the same person, and every failure before
//! authentication, which is one of a few constant bodies) costs a lookup, not an RSA signature.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use agreements_domain::ids::{PartnerId, PersonalProductCode, ProductCode};
use agreements_domain::{Contract, Product};
use agreements_protocol::{Digest, KeyError, PrivateKey, SignType};
use agreements_store::{Store, StoreError};

/// How long an entry is trusted.
pub const TTL: Duration = Duration::from_secs(5);
/// Entries kept at most per cache; past it the cache starts over (cheap, and bounded whatever
/// keys arrive).
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// A map whose entries expire [`TTL`] after they were loaded.
#[derive(Debug)]
pub struct Ttl<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K, V> Default for Ttl<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Ttl<K, V> {
    /// The value of `key`: cached, or else what `load` finds (then cached). The lock is not
    /// held while loading: two requests missing the same key at once both load it.
    pub async fn get<Q, E>(&self, key: &Q, load: impl AsyncFnOnce() -> Result<V, E>) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        if let Some((at, value)) = self.lock().get(key)
            && at.elapsed() < TTL
        {
            return Ok(value.clone());
        }
        let value = load().await?;
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_owned(), (Instant::now(), value.clone()));
        Ok(value)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a kept signature weighs beside its own characters: the 32-byte key and the entry's
/// bookkeeping (quick_cache's slot, the `Arc`'s counts), counted generously.
const ENTRY_OVERHEAD_BYTES: u64 = 96;

/// Signatures of answers' signed bytes, kept by the app answered, the algorithm and the bytes.
///
/// Why a kept signature is the right one: the cache belongs to one [`Gateway`](crate::Gateway),
/// which signs with one platform key for its whole life, and an entry's key is the SHA-256 of
/// that key's public half, the app's id, the algorithm and the SHA-256 of the exact bytes signed,
/// each length-prefixed. RSA PKCS #1 v1.5 with a given key is a function of the bytes: the kept
/// signature is the one a fresh signing would make, and a signature found for other bytes, another
/// algorithm, key or app would need a SHA-256 collision. Why its timing reveals nothing: a hit is
/// faster than a miss, so a caller can tell that its answer's exact bytes were signed recently
/// for the same app; the entries are per app, so that is a fact about the app's own earlier
/// answers, which its caller already holds.
///
/// Bounded in bytes ([`Signatures::new`]); eviction is quick_cache's S3-FIFO (a scan of one-off
/// answers does not push out the ones asked again and again).
pub struct Signatures {
    cache: quick_cache::sync::Cache<[u8; 32], Arc<str>, Weight>,
    /// Whether successful answers are kept too (`signature_cache`); failures always are.
    answers: bool,
    /// Binds every entry to the signing key: the SHA-256 of its SPKI DER.
    key_id: [u8; 32],
}

impl fmt::Debug for Signatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signatures")
            .field("entries", &self.cache.len())
            .field("bytes", &self.cache.weight())
            .field("answers", &self.answers)
            .finish()
    }
}

/// Weighs an entry in bytes.
#[derive(Debug, Clone)]
pub struct Weight;

impl quick_cache::Weighter<[u8; 32], Arc<str>> for Weight {
    fn weight(&self, _key: &[u8; 32], signature: &Arc<str>) -> u64 {
        signature.len() as u64 + ENTRY_OVERHEAD_BYTES
    }
}

/// The bytes kept by default (`signature_cache_mib`): about 76,000 signatures of 2048-bit keys.
pub const DEFAULT_SIGNATURE_CACHE_BYTES: u64 = 32 << 20;

/// Whether a signature came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Found: no signing happened.
    Hit,
    /// Made now (and kept).
    Miss,
    /// Made now, not looked for (a successful answer with `signature_cache = false`).
    Bypassed,
}

impl Signatures {
    /// A cache of at most `bytes` for signatures by `key` (failures only when `answers` is
    /// false).
    pub fn new(key: &PrivateKey, bytes: u64, answers: bool) -> Self {
        // The binding to the key is a second guarantee (the cache lives and dies with its
        // gateway, whose key never changes); a key whose public half cannot be exported (never
        // seen) is bound to the all-zero id.
        let key_id = key
            .public_key()
            .and_then(|public| public.to_spki_der())
            .map(|der| openssl::sha::sha256(&der))
            .unwrap_or_default();
        let typical = 344 + ENTRY_OVERHEAD_BYTES;
        let entries = usize::try_from(bytes / typical)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            cache: quick_cache::sync::Cache::with_weighter(entries, bytes.max(typical), Weight),
            answers,
            key_id,
        }
    }

    /// The signature of `bytes` for `app_id` under `sign_type`: kept, or else made by `sign`
    /// from the digest (then kept). `failure` tells a failure answer, which is kept even when
    /// successful answers are not.
    pub fn get(
        &self,
        app_id: &str,
        sign_type: SignType,
        bytes: &[u8],
        failure: bool,
        sign: impl FnOnce(&Digest) -> Result<String, KeyError>,
    ) -> (Result<Arc<str>, KeyError>, Kept) {
        let digest = sign_type.digest(bytes);
        if !failure && !self.answers {
            return (sign(&digest).map(Arc::from), Kept::Bypassed);
        }
        // For RSA2 the digest signed is the SHA-256 the entry's key is made of: one pass over
        // the bytes.
        let content = match digest {
            Digest::Sha256(content) => content,
            Digest::Sha1(_) => openssl::sha::sha256(bytes),
        };
        let key = self.key(app_id, sign_type, &content);
        if let Some(signature) = self.cache.get(&key) {
            return (Ok(signature), Kept::Hit);
        }
        let made = sign(&digest).map(Arc::<str>::from);
        if let Ok(signature) = &made {
            self.cache.insert(key, signature.clone());
        }
        (made, Kept::Miss)
    }

    /// Entries kept and their weight in bytes.
    pub fn size(&self) -> (usize, u64) {
        (self.cache.len(), self.cache.weight())
    }

    /// SHA-256 over the key's id, then the app, the algorithm and the SHA-256 of the bytes,
    /// each length-prefixed: no two distinct tuples share an encoding.
    fn key(&self, app_id: &str, sign_type: SignType, content: &[u8; 32]) -> [u8; 32] {
        let mut hasher = openssl::sha::Sha256::new();
        hasher.update(&self.key_id);
        for part in [app_id.as_bytes(), sign_type.as_str().as_bytes(), content] {
            hasher.update(&(part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.finish()
    }
}

/// Agreement products and merchant contracts, as the gateway's checks read them.
#[derive(Debug, Default)]
pub struct Catalogue {
    products: Ttl<PersonalProductCode, Option<Arc<Product>>>,
    contracts: Ttl<(PartnerId, ProductCode), Option<Contract>>,
}

impl Catalogue {
    /// The agreement product `code` with its sales products.
    pub async fn product(
        &self,
        store: &Store,
        code: &PersonalProductCode,
    ) -> Result<Option<Arc<Product>>, StoreError> {
        self.products
            .get(code, async || Ok(store.product(code).await?.map(Arc::new)))
            .await
    }

    /// The merchant's contracts for `products` (those it has).
    pub async fn contracts(
        &self,
        store: &Store,
        partner_id: &PartnerId,
        products: &[&ProductCode],
    ) -> Result<Vec<Contract>, StoreError> {
        let mut found = Vec::with_capacity(products.len());
        for &product in products {
            let key = (partner_id.clone(), product.clone());
            let contract = self
                .contracts
                .get(&key, async || {
                    let contracts = store.contracts(partner_id, &[product]).await?;
                    Ok::<_, StoreError>(contracts.into_iter().next())
                })
                .await?;
            found.extend(contract);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_entry_is_loaded_once_then_served_from_memory() {
        let cache: Ttl<String, u32> = Ttl::default();
        let loads = std::cell::Cell::new(0);
        let load = async || {
            loads.set(loads.get() + 1);
            Ok::<_, ()>(7)
        };
        assert_eq!(cache.get("a", load).await, Ok(7));
        assert_eq!(cache.get("a", load).await, Ok(7));
        assert_eq!(loads.get(), 1);
        // A failed load is not cached.
        assert_eq!(cache.get("b", async || Err(())).await, Err(()));
        assert_eq!(cache.get("b", load).await, Ok(7));
        assert_eq!(loads.get(), 2);
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let cache: Ttl<u32, u32> = Ttl::default();
        for i in 0..u32::try_from(MAX_ENTRIES * 2 + 1).unwrap_or(u32::MAX) {
            let _ = cache.get(&i, async || Ok::<_, ()>(i)).await;
        }
        assert!(cache.lock().len() <= MAX_ENTRIES);
        assert_eq!(cache.get(&0, async || Ok::<_, ()>(99)).await, Ok(99));
    }

    fn signing_key() -> PrivateKey {
        static KEY: std::sync::OnceLock<PrivateKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate(2048).unwrap())
            .clone()
    }

    /// Signs with `key`, counting the signings.
    fn signer<'a>(
        key: &'a PrivateKey,
        made: &'a std::cell::Cell<u32>,
    ) -> impl FnOnce(&Digest) -> Result<String, KeyError> + 'a {
        move |digest| {
            made.set(made.get() + 1);
            key.sign_digest(digest)
        }
    }

    #[test]
    fn a_kept_signature_is_the_one_a_fresh_signing_makes() {
        let key = signing_key();
        let cache = Signatures::new(&key, DEFAULT_SIGNATURE_CACHE_BYTES, true);
        let made = std::cell::Cell::new(0);
        let body = br#"{"code":"10000","msg":"Success","usage_agreement_info_list":[]}"#;
        for sign_type in [SignType::Rsa2, SignType::Rsa] {
            let fresh = key.sign(sign_type, body).unwrap();
            let (first, kept) = cache.get("2021001", sign_type, body, false, signer(&key, &made));
            assert_eq!(
                (first.unwrap().as_ref(), kept),
                (fresh.as_str(), Kept::Miss)
            );
            let (again, kept) = cache.get("2021001", sign_type, body, false, signer(&key, &made));
            assert_eq!((again.unwrap().as_ref(), kept), (fresh.as_str(), Kept::Hit));
        }
        assert_eq!(made.get(), 2, "one signing per algorithm");
    }

    #[test]
    fn entries_are_per_app_algorithm_and_exact_bytes() {
        let key = signing_key();
        let cache = Signatures::new(&key, DEFAULT_SIGNATURE_CACHE_BYTES, true);
        let made = std::cell::Cell::new(0);
        let get = |app: &str, sign_type, bytes: &[u8]| {
            cache
                .get(app, sign_type, bytes, false, signer(&key, &made))
                .1
        };
        assert_eq!(get("2021001", SignType::Rsa2, b"{}"), Kept::Miss);
        assert_eq!(get("2021002", SignType::Rsa2, b"{}"), Kept::Miss);
        assert_eq!(get("2021001", SignType::Rsa, b"{}"), Kept::Miss);
        assert_eq!(get("2021001", SignType::Rsa2, b"{} "), Kept::Miss);
        // The app's id and the bytes are length-prefixed: moving a byte from one to the other
        // is another entry.
        assert_eq!(get("20210011", SignType::Rsa2, b"{}"), Kept::Miss);
        assert_eq!(get("2021001", SignType::Rsa2, b"1{}"), Kept::Miss);
        assert_eq!(get("2021002", SignType::Rsa2, b"{}"), Kept::Hit);
        // Another key's cache never answers with this key's entries.
        let other = PrivateKey::generate(2048).unwrap();
        let theirs = Signatures::new(&other, DEFAULT_SIGNATURE_CACHE_BYTES, true);
        assert_ne!(theirs.key_id, cache.key_id);
        let (signature, kept) = theirs.get(
            "2021001",
            SignType::Rsa2,
            b"{}",
            false,
            signer(&other, &made),
        );
        assert_eq!(kept, Kept::Miss);
        assert_eq!(
            signature.unwrap().as_ref(),
            other.sign(SignType::Rsa2, b"{}").unwrap()
        );
    }

    #[test]
    fn with_answers_off_only_failures_are_kept() {
        let key = signing_key();
        let cache = Signatures::new(&key, DEFAULT_SIGNATURE_CACHE_BYTES, false);
        let made = std::cell::Cell::new(0);
        let get = |failure| {
            cache
                .get(
                    "2021001",
                    SignType::Rsa2,
                    b"{}",
                    failure,
                    signer(&key, &made),
                )
                .1
        };
        assert_eq!(get(false), Kept::Bypassed);
        assert_eq!(get(false), Kept::Bypassed);
        assert_eq!(get(true), Kept::Miss);
        assert_eq!(get(true), Kept::Hit);
        assert_eq!(made.get(), 3);
    }

    #[test]
    fn the_kept_signatures_stay_within_their_bytes() {
        let key = signing_key();
        let bytes = 64 * 1024;
        let cache = Signatures::new(&key, bytes, true);
        let made = std::cell::Cell::new(0);
        for i in 0..1_000u32 {
            let body = i.to_string();
            let (signature, _) = cache.get(
                "2021001",
                SignType::Rsa2,
                body.as_bytes(),
                false,
                |digest| {
                    made.set(made.get() + 1);
                    // A stand-in of a 2048-bit signature's size: the bound is what is tested.
                    Ok(format!("{:0>344}", digest.as_bytes()[0]))
                },
            );
            assert!(signature.is_ok());
        }
        let (entries, weight) = cache.size();
        assert!(weight <= bytes, "{weight} bytes kept");
        assert!((100..1_000).contains(&entries), "{entries} entries kept");
        assert_eq!(made.get(), 1_000);
    }
}
