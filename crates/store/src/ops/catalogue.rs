//! Merchants, groups, products, contracts, apps and ISV authorisations.

use std::sync::LazyLock;

use agreements_domain::ids::{AppId, GroupId, PartnerId, PersonalProductCode, ProductCode};
use agreements_domain::token::{AppAuthToken, TokenStatus};
use agreements_domain::{Contract, EntityStatus, Merchant, Product};

use crate::Store;
use crate::db::params;
use crate::error::StoreError;
use crate::records::{
    AccountRecord, AppContentKey, AppRecord, LogonIdRecord, NewAccount, NewApp, NewGroup,
    OpenIdRecord, ProductRecord,
};
use crate::schema::{Cell, Entity, Stored};
use crate::sql::{Sql, sql};
use crate::tables::{APPS, CUSTOMERS, PRODUCTS, Person};

/// Every app, by id.
static ALL_APPS: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!(
        "SELECT {} FROM apps ORDER BY app_id",
        APPS.column_list(None)
    ))
});

impl Store {
    /// An app with its keys and granted methods.
    pub async fn app(&self, app_id: &AppId) -> Result<Option<AppRecord>, StoreError> {
        self.pool.conn().await?.get(&params![app_id]).await
    }

    /// Every app, by id.
    pub async fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        self.pool.conn().await?.all(&ALL_APPS, &[]).await
    }

    /// Registers an app with its keys and granted methods.
    pub async fn add_app(&self, app: &NewApp) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.insert(app).await?;
        tx.commit().await
    }

    /// An app's content-encryption key, if it has one.
    pub async fn content_key(&self, app_id: &AppId) -> Result<Option<AppContentKey>, StoreError> {
        self.pool.conn().await?.get(&params![app_id]).await
    }

    /// Sets (or replaces) an app's content-encryption key.
    pub async fn set_content_key(&self, key: &AppContentKey) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.execute(
            sql!("DELETE FROM app_content_keys WHERE app_id = $1"),
            &params![&key.app_id],
        )
        .await?;
        tx.insert(key).await?;
        tx.commit().await
    }

    /// A merchant.
    pub async fn merchant(&self, partner_id: &PartnerId) -> Result<Option<Merchant>, StoreError> {
        self.pool.conn().await?.get(&params![partner_id]).await
    }

    /// Adds a merchant.
    pub async fn add_merchant(&self, merchant: &Merchant) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.insert(merchant).await?;
        tx.commit().await
    }

    /// A merchant group.
    pub async fn group(&self, group_id: &GroupId) -> Result<Option<NewGroup>, StoreError> {
        self.pool.conn().await?.get(&params![group_id]).await
    }

    /// Adds a merchant group.
    pub async fn add_group(&self, group: &NewGroup) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.insert(group).await?;
        tx.commit().await
    }

    /// An agreement product with its paired sales products.
    pub async fn product(&self, code: &PersonalProductCode) -> Result<Option<Product>, StoreError> {
        // One round trip: no row, the product is unknown; a NULL code, it has no sales products.
        let rows = self
            .pool
            .conn()
            .await?
            .rows(
                sql!(
                    "SELECT pp.product_code, p.principal_type FROM products p \
                     LEFT JOIN product_pairs pp ON pp.personal_product_code = p.personal_product_code \
                     WHERE p.personal_product_code = $1 ORDER BY pp.product_code"
                ),
                &params![code],
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let principal_type = rows
            .first()
            .and_then(|row| row.get(1).cloned())
            .map(agreements_domain::PrincipalType::from_cell)
            .transpose()
            .map_err(|rule| StoreError::Corrupt(rule.of("products", "principal_type")))?
            .unwrap_or(agreements_domain::PrincipalType::Card);
        let product_codes = rows
            .into_iter()
            .filter_map(|row| row.into_iter().next())
            .filter(|cell| *cell != Cell::Null)
            .map(|cell| {
                ProductCode::from_cell(cell)
                    .map_err(|rule| StoreError::Corrupt(rule.of("product_pairs", "product_code")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Product {
            personal_product_code: code.clone(),
            product_codes,
            principal_type,
        }))
    }

    /// Adds an agreement product and its sales products; what is stored already stays.
    pub async fn add_product(&self, product: &ProductRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.insert_cells(&PRODUCTS, &product.to_cells(), true)
            .await?;
        tx.commit().await
    }

    /// A merchant's contracts for the given sales products.
    pub async fn contracts(
        &self,
        partner_id: &PartnerId,
        products: &[&ProductCode],
    ) -> Result<Vec<Contract>, StoreError> {
        let mut conn = self.pool.conn().await?;
        let mut out = Vec::new();
        for product in products {
            out.extend(conn.get::<Contract>(&params![partner_id, *product]).await?);
        }
        Ok(out)
    }

    /// Adds a merchant contract.
    pub async fn add_contract(&self, contract: &Contract) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.insert(contract).await?;
        tx.commit().await
    }

    /// Adds an account (creating its person if new), its logon ids and open ids.
    pub async fn add_account(&self, account: &NewAccount) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        let person = Person {
            customer_id: account.customer_id.clone(),
        };
        tx.insert_cells(&CUSTOMERS, &person.to_cells(), true)
            .await?;
        tx.insert(&AccountRecord {
            user_id: account.user_id.clone(),
            customer_id: account.customer_id.clone(),
            status: EntityStatus::Normal,
        })
        .await?;
        for logon_id in &account.logon_ids {
            tx.insert(&LogonIdRecord {
                logon_id: logon_id.clone(),
                user_id: account.user_id.clone(),
            })
            .await?;
        }
        for (app_id, open_id) in &account.open_ids {
            tx.insert(&OpenIdRecord {
                app_id: app_id.clone(),
                open_id: open_id.clone(),
                user_id: account.user_id.clone(),
            })
            .await?;
        }
        tx.commit().await
    }

    /// An ISV authorisation by its token.
    pub async fn app_auth_token(&self, token: &str) -> Result<Option<AppAuthToken>, StoreError> {
        self.pool.conn().await?.get(&params![token]).await
    }

    /// Stores a new ISV authorisation.
    pub async fn add_app_auth_token(&self, token: &AppAuthToken) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.insert(token).await?;
        tx.commit().await
    }

    /// Revokes a token; `false` when there is no such token.
    pub async fn revoke_app_auth_token(&self, token: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.write().await?;
        let changed = tx
            .execute(
                sql!("UPDATE app_auth_tokens SET status = $2 WHERE token = $1"),
                &params![token, TokenStatus::Revoked.as_str()],
            )
            .await?;
        tx.commit().await?;
        Ok(changed > 0)
    }
}
