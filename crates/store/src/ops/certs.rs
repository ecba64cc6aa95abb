//! Certificate mode: the platform's certificates and the apps'.

use std::sync::LazyLock;

use agreements_domain::ids::AppId;

use crate::Store;
use crate::db::params;
use crate::error::StoreError;
use crate::records::{AppCert, KeySunset, PlatformCert};
use crate::sql::{Sql, sql};
use crate::tables::{APP_CERTS, PLATFORM_CERTS};

static ALL_PLATFORM_CERTS: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!(
        "SELECT {} FROM platform_certs ORDER BY created_at, cert_sn",
        PLATFORM_CERTS.column_list(None)
    ))
});

static CERTS_OF_APP: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!(
        "SELECT {} FROM app_certs WHERE app_id = $1 ORDER BY created_at, cert_sn",
        APP_CERTS.column_list(None)
    ))
});

impl Store {
    /// Adds a platform certificate (a root, or a signing certificate that from now on signs).
    pub async fn add_platform_cert(&self, cert: &PlatformCert) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.insert(cert).await?;
        tx.commit().await
    }

    /// Every platform certificate, oldest first.
    pub async fn platform_certs(&self) -> Result<Vec<PlatformCert>, StoreError> {
        self.pool.conn().await?.all(&ALL_PLATFORM_CERTS, &[]).await
    }

    /// Adds an app's certificate. Its other certificates still in force are retired at
    /// `retire_others_at` (the overlap's end); with `sunset_keys_at`, so are its public keys,
    /// unless an earlier sunset is set.
    pub async fn add_app_cert(
        &self,
        cert: &AppCert,
        retire_others_at: i64,
        sunset_keys_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.execute(
            sql!(
                "UPDATE app_certs SET retired_at = $2 \
                 WHERE app_id = $1 AND (retired_at IS NULL OR retired_at > $2)"
            ),
            &params![&cert.app_id, retire_others_at],
        )
        .await?;
        tx.insert(cert).await?;
        if let Some(sunset_at) = sunset_keys_at {
            let existing: Option<KeySunset> = tx.get(&params![&cert.app_id]).await?;
            if existing.is_none() {
                tx.insert(&KeySunset {
                    app_id: cert.app_id.clone(),
                    sunset_at,
                })
                .await?;
            }
        }
        tx.commit().await
    }

    /// An app's certificates, oldest first.
    pub async fn app_certs(&self, app_id: &AppId) -> Result<Vec<AppCert>, StoreError> {
        self.pool
            .conn()
            .await?
            .all(&CERTS_OF_APP, &params![app_id])
            .await
    }

    /// When an app stops being served by its public keys, if it switched to certificates.
    pub async fn key_sunset(&self, app_id: &AppId) -> Result<Option<KeySunset>, StoreError> {
        self.pool.conn().await?.get(&params![app_id]).await
    }
}
