//! The store's operations, each written once for both backends, by subject.

mod agreements;
mod audit;
mod catalogue;
mod certs;
mod outbox;
mod signing;

pub use signing::PersonAgreement;

pub(crate) use agreements::append_event;

use crate::Store;
use crate::error::StoreError;
use crate::sql::sql;

impl Store {
    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.conn().await?.row(sql!("SELECT 1"), &[]).await?;
        Ok(())
    }

    /// The migrations applied so far, by version.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .pool
            .conn()
            .await?
            .rows(
                sql!("SELECT version FROM schema_migrations ORDER BY version"),
                &[],
            )
            .await?;
        rows.into_iter()
            .map(|row| match row.first() {
                Some(crate::schema::Cell::Int(v)) => Ok(*v),
                _ => Err(StoreError::Corrupt(crate::error::Invalid {
                    table: "schema_migrations",
                    column: "version",
                    value: None,
                    rule: "is not a number".into(),
                })),
            })
            .collect()
    }
}
