//! The read-access audit trail: batches written by the server's audit writer, operators' lists by
//! person or app and time, and pruning by age.

use agreements_domain::ids::{CustomerId, UserId};

use crate::Store;
use crate::db::{Param, params};
use crate::error::StoreError;
use crate::records::{AuditEntry, AuditFilter};
use crate::schema::{Cell, Stored};
use crate::sql::{Sql, sql};
use crate::tables::AUDIT_ENTRIES;

/// Rows deleted per transaction when pruning: short enough that requests' writes (which share
/// SQLite's one write lock) wait milliseconds, not the whole prune.
const PRUNE_CHUNK: u32 = 5_000;

/// The smallest id of an entry answered at `at_ms` or later: ids start with the time in 13
/// digits (`AuditEntry::id`), so "older than" is a range of the primary key.
fn id_bound(at_ms: i64) -> String {
    format!("{:013}", at_ms.max(0))
}

impl Store {
    /// Writes `entries` in one transaction (the audit writer's batch).
    pub async fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.write().await?;
        for entry in entries {
            tx.insert(entry).await?;
        }
        tx.commit().await
    }

    /// Audit entries, oldest first: of some accounts, or of an app, or all, within a time range.
    pub async fn audit(&self, f: &AuditFilter<'_>) -> Result<Vec<AuditEntry>, StoreError> {
        // Only the conditions the filter sets, so that each uses its index.
        let mut values: Vec<Param<'_>> = vec![f.since_ms.into(), f.until_ms.into()];
        let mut conditions = vec!["at_ms >= $1".to_owned(), "at_ms < $2".to_owned()];
        if let Some(users) = f.user_ids {
            if users.is_empty() {
                return Ok(Vec::new());
            }
            let mut marks = Vec::with_capacity(users.len());
            for user in users {
                values.push(user.as_str().into());
                marks.push(format!("${}", values.len()));
            }
            conditions.push(format!("user_id IN ({})", marks.join(", ")));
        }
        if let Some(app) = f.app_id {
            values.push(app.into());
            conditions.push(format!("app_id = ${}", values.len()));
        }
        values.push(f.limit.into());
        let sql = Sql::new(format!(
            "SELECT {} FROM audit_entries WHERE {} ORDER BY at_ms, id LIMIT ${}",
            AUDIT_ENTRIES.column_list(None),
            conditions.join(" AND "),
            values.len()
        ));
        self.pool.conn().await?.all(&sql, &values).await
    }

    /// How many audit entries are older than `before_ms`.
    pub async fn audit_older_than(&self, before_ms: i64) -> Result<u64, StoreError> {
        let row = self
            .pool
            .conn()
            .await?
            .row(
                sql!("SELECT COUNT(*) FROM audit_entries WHERE id < $1"),
                &params![&id_bound(before_ms)],
            )
            .await?;
        Ok(match row.as_deref() {
            Some([Cell::Int(n), ..]) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        })
    }

    /// Deletes the audit entries older than `before_ms`, a chunk per transaction, calling
    /// `progress` with the running total after each; returns how many were deleted.
    pub async fn prune_audit(
        &self,
        before_ms: i64,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, StoreError> {
        let bound = id_bound(before_ms);
        let mut deleted = 0;
        loop {
            let mut tx = self.pool.write().await?;
            let n = tx
                .execute(
                    sql!(
                        "DELETE FROM audit_entries WHERE id IN \
                         (SELECT id FROM audit_entries WHERE id < $1 ORDER BY id LIMIT $2)"
                    ),
                    &params![&bound, PRUNE_CHUNK],
                )
                .await?;
            tx.commit().await?;
            deleted += n;
            progress(deleted);
            if n < u64::from(PRUNE_CHUNK) {
                return Ok(deleted);
            }
        }
    }

    /// Every account of the person owning `user_id` (that account included), or none when it
    /// does not exist: whose entries `agreements audit --person` lists.
    pub async fn accounts_of_person(&self, user_id: &UserId) -> Result<Vec<UserId>, StoreError> {
        let Some(person) = self.account_of(user_id).await? else {
            return Ok(Vec::new());
        };
        self.accounts_of_customer(&person.customer_id).await
    }

    /// Every account of a person.
    pub async fn accounts_of_customer(
        &self,
        customer_id: &CustomerId,
    ) -> Result<Vec<UserId>, StoreError> {
        let rows = self
            .pool
            .conn()
            .await?
            .rows(
                sql!("SELECT user_id FROM accounts WHERE customer_id = $1 ORDER BY user_id"),
                &params![customer_id],
            )
            .await?;
        rows.into_iter()
            .map(|row| {
                let cell = row.into_iter().next().unwrap_or(Cell::Null);
                UserId::from_cell(cell)
                    .map_err(|rule| StoreError::Corrupt(rule.of("accounts", "user_id")))
            })
            .collect()
    }
}
