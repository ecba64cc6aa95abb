//! The read-access audit trail: batches written by the server's audit writer, operators' lists by
//! person or app and time, and pruning by age.

use agreements_domain::ids::{CustomerId, UserId};

use crate::Store;
use crate::db::{Conn, Param, Pool, params};
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

/// A batch as SQLite's index by person records it (migration 0010): the range of its entries'
/// ids, and its document, the hex of each account it concerns. Hex makes every account one
/// term, whatever characters its id holds; entries are matched on `user_id` afterwards anyway.
struct Batch<'a> {
    first_id: &'a str,
    last_id: &'a str,
    people: String,
}

impl<'a> Batch<'a> {
    /// `None` when no entry names an account: such a batch is never looked up by person.
    fn of(entries: &'a [AuditEntry]) -> Option<Self> {
        let first_id = entries.iter().map(|e| e.id.as_str()).min()?;
        let last_id = entries.iter().map(|e| e.id.as_str()).max()?;
        let mut users: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.user_id.as_deref())
            .collect();
        users.sort_unstable();
        users.dedup();
        if users.is_empty() {
            return None;
        }
        let people = users.iter().map(|u| hex(u)).collect::<Vec<_>>().join(" ");
        Some(Self {
            first_id,
            last_id,
            people,
        })
    }
}

/// Upper-case hex of `s`'s bytes, as SQLite's `HEX()` spells it (the migration's backfill).
fn hex(s: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(2 * s.len());
    for b in s.bytes() {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// The ids of entries answered at `at_ms` or later are those from this string on, when the
/// time has the ids' 13 digits (every time from 1970 to 2286); `None` otherwise.
fn id_prefix(at_ms: i64) -> Option<String> {
    (0..10_000_000_000_000)
        .contains(&at_ms)
        .then(|| id_bound(at_ms))
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
        if let Conn::Sqlite(_) = tx
            && let Some(batch) = Batch::of(entries)
        {
            // SQLite's index by person (migration 0010): the batch's id range and its people.
            tx.execute(
                sql!("INSERT INTO audit_batches (first_id, last_id) VALUES ($1, $2)"),
                &params![batch.first_id, batch.last_id],
            )
            .await?;
            tx.execute(
                sql!("INSERT INTO audit_people (rowid, people) VALUES (last_insert_rowid(), $1)"),
                &params![&batch.people],
            )
            .await?;
        }
        tx.commit().await
    }

    /// Audit entries, oldest first: of some accounts, or of an app, or all, within a time range.
    pub async fn audit(&self, f: &AuditFilter<'_>) -> Result<Vec<AuditEntry>, StoreError> {
        // Only the conditions the filter sets, so that each uses its index.
        let mut values: Vec<Param<'_>> = vec![f.since_ms.into(), f.until_ms.into()];
        let mut conditions = vec!["at_ms >= $1".to_owned(), "at_ms < $2".to_owned()];
        let terms;
        let bounds = [f.since_ms, f.until_ms].map(id_prefix);
        if let Some(users) = f.user_ids {
            if users.is_empty() {
                return Ok(Vec::new());
            }
            let mut marks = Vec::with_capacity(users.len());
            for user in users {
                values.push(user.as_str().into());
                marks.push(format!("${}", values.len()));
            }
            let users_in = format!("user_id IN ({})", marks.join(", "));
            if let Pool::Sqlite(_) = self.pool {
                // The batches whose document names one of the accounts, then their entries.
                terms = users
                    .iter()
                    .map(|u| format!("\"{}\"", hex(u)))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                values.push(terms.as_str().into());
                let mut inner = format!(
                    "SELECT e.id FROM audit_batches b \
                     JOIN audit_entries e ON e.id BETWEEN b.first_id AND b.last_id \
                     WHERE b.n IN (SELECT rowid FROM audit_people WHERE audit_people MATCH ${}) \
                     AND e.{users_in}",
                    values.len()
                );
                // Only the batches within the time range, by their ids' time prefix.
                for (bound, condition) in bounds.iter().zip(["b.last_id >=", "b.first_id <"]) {
                    if let Some(bound) = bound {
                        values.push(bound.as_str().into());
                        inner.push_str(&format!(" AND {condition} ${}", values.len()));
                    }
                }
                conditions.push(format!("id IN ({inner})"));
            }
            conditions.push(users_in);
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
            let n = self
                .delete_chunk(
                    &[sql!(
                        "DELETE FROM audit_entries WHERE id IN \
                         (SELECT id FROM audit_entries WHERE id < $1 ORDER BY id LIMIT $2)"
                    )],
                    &bound,
                )
                .await?;
            deleted += n;
            progress(deleted);
            if n < u64::from(PRUNE_CHUNK) {
                break;
            }
        }
        if let Pool::Sqlite(_) = self.pool {
            // The batches wholly older than the bound, with their documents. A batch across
            // the bound stays: it finds only its newer entries.
            let batches = [
                sql!(
                    "DELETE FROM audit_people WHERE rowid IN \
                     (SELECT n FROM audit_batches WHERE last_id < $1 ORDER BY n LIMIT $2)"
                ),
                sql!(
                    "DELETE FROM audit_batches WHERE n IN \
                     (SELECT n FROM audit_batches WHERE last_id < $1 ORDER BY n LIMIT $2)"
                ),
            ];
            while self.delete_chunk(&batches, &bound).await? == u64::from(PRUNE_CHUNK) {}
        }
        Ok(deleted)
    }

    /// Runs `statements` (each deleting at most a chunk of rows older than `bound`) in one
    /// transaction; returns how many rows the last deleted.
    async fn delete_chunk(&self, statements: &[&Sql], bound: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.write().await?;
        let mut n = 0;
        for statement in statements {
            n = tx.execute(statement, &params![bound, PRUNE_CHUNK]).await?;
        }
        tx.commit().await?;
        Ok(n)
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
