//! Short-lived caches of what nearly every request reads and operators rarely change: apps (in
//! [`crate::apps`]), agreement products and merchant contracts. An entry is trusted for [`TTL`],
//! so a change made by another process (`agreements contract …`, `app …`) is seen within that
//! time; misses are cached too, so junk traffic cannot hammer the store. Validity in time
//! (`valid_from`, `valid_to`) is always checked against the request's own clock, never cached.
//!
//! Also the signatures of failure answers ([`FailureSignatures`]): a request that names an app
//! but fails before it is authenticated (a bad signature) must still be answered signed, and its
//! answer is one of a few constant bodies, so junk requests cost a lookup, not an RSA signature.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use agreements_domain::ids::{PartnerId, PersonalProductCode, ProductCode};
use agreements_domain::{Contract, Product};
use agreements_protocol::{KeyError, SignType};
use agreements_store::{Store, StoreError};

/// How long an entry is trusted.
pub const TTL: Duration = Duration::from_secs(5);
/// Entries kept at most per cache; past it the cache starts over (cheap, and bounded whatever
/// keys arrive).
const MAX_ENTRIES: usize = 10_000;

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

/// Longest failure node whose signature is kept (failure nodes are about 200 bytes).
const MAX_KEPT_NODE_BYTES: usize = 512;

/// Signatures of failure answers' node bytes. RSA PKCS #1 v1.5 signatures are deterministic, so
/// the kept signature is the one a fresh signing would make. Failures before authentication
/// never echo the caller's text, so their nodes are few; a kept node is at most
/// [`MAX_KEPT_NODE_BYTES`], so the cache holds at most 5 MB.
#[derive(Debug, Default)]
pub struct FailureSignatures {
    signed: Ttl<Vec<u8>, Arc<str>>,
}

impl FailureSignatures {
    /// The signature of `node` under `sign_type`: kept, or else made by `sign` (then kept).
    pub async fn get(
        &self,
        sign_type: SignType,
        node: &[u8],
        sign: impl AsyncFnOnce() -> Result<Arc<str>, KeyError>,
    ) -> Result<Arc<str>, KeyError> {
        if node.len() > MAX_KEPT_NODE_BYTES {
            return sign().await;
        }
        let mut cache_key = Vec::with_capacity(node.len() + 5);
        cache_key.extend_from_slice(sign_type.as_str().as_bytes());
        cache_key.push(b' ');
        cache_key.extend_from_slice(node);
        self.signed.get(cache_key.as_slice(), sign).await
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
}
