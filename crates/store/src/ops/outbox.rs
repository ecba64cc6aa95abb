//! The notification outbox: claims by the delivery worker, results, operators' lists and resends.

use std::sync::LazyLock;

use agreements_domain::notify::DeliveryState;

use crate::Store;
use crate::db::{Param, params};
use crate::error::StoreError;
use crate::records::{Attempt, Notification, NotificationFilter, Resend};
use crate::schema::Cell;
use crate::sql::{Sql, sql};
use crate::tables::NOTIFICATIONS;

/// The condition of a notification due for sending at `$1`.
const DUE: &str = "state = 'PENDING' AND next_attempt_at <= $1";

/// Whether any notification is due at `$1`.
static ANY_DUE: LazyLock<Sql> =
    LazyLock::new(|| Sql::new(format!("SELECT 1 FROM notifications WHERE {DUE} LIMIT 1")));

/// Takes the due pending notifications (`$1` now) up to `$3`, holding each until `$2`: an
/// ordered range scan of `notifications_due` that stops at the limit. PostgreSQL skips rows
/// another worker is claiming (SQLite has no row locks: its writers take turns).
static CLAIM: LazyLock<Sql> = LazyLock::new(|| {
    let claim = |lock: &str| {
        format!(
            "UPDATE notifications SET next_attempt_at = $2 WHERE notify_id IN \
             (SELECT notify_id FROM notifications WHERE {DUE} \
              ORDER BY next_attempt_at, notify_id LIMIT $3{lock}) RETURNING {}",
            NOTIFICATIONS.column_list(None)
        )
    };
    let sqlite = Sql::new(claim("")).sqlite;
    Sql {
        postgres: claim(" FOR UPDATE SKIP LOCKED").into(),
        sqlite,
    }
});

impl Store {
    /// Takes up to `limit` pending notifications due at `now` for sending: each is held until
    /// `lease_until` (so no other worker sends it meanwhile; if this one dies, it is due again
    /// then).
    ///
    /// The delivery worker asks at every poll, and the outbox is mostly idle, so a read looks
    /// first: with nothing due, no write transaction is opened. On SQLite a write waits its turn
    /// behind every other writer (the audit writer, an import) and runs its `BEGIN IMMEDIATE`
    /// and commit off the async workers, which hands the calling worker's tasks to another
    /// thread. A notification that becomes due right after the look is claimed at the next poll.
    pub async fn claim_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        if self
            .pool
            .conn()
            .await?
            .row(&ANY_DUE, &params![now])
            .await?
            .is_none()
        {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.write().await?;
        let claimed = tx.all(&CLAIM, &params![now, lease_until, limit]).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// How many notifications wait to be sent, and when the oldest of them was queued (for the
    /// operator's metrics; one index range, `notifications_by_state`).
    pub async fn outbox_backlog(&self) -> Result<(u64, Option<i64>), StoreError> {
        let row = self
            .pool
            .conn()
            .await?
            .row(
                sql!("SELECT COUNT(*), MIN(created_at) FROM notifications WHERE state = 'PENDING'"),
                &[],
            )
            .await?
            .unwrap_or_default();
        let int = |i: usize| match row.get(i) {
            Some(Cell::Int(n)) => Some(*n),
            _ => None,
        };
        Ok((
            int(0).and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            int(1),
        ))
    }

    /// Records the result of a notification's `attempts`-th send, made at `now`.
    pub async fn record_attempt(
        &self,
        notify_id: &str,
        attempts: u32,
        now: i64,
        attempt: &Attempt,
    ) -> Result<(), StoreError> {
        let (state, next, error, delivered) = match attempt {
            Attempt::Delivered => (DeliveryState::Delivered, None, None, Some(now)),
            Attempt::Retry { at, error } => (
                DeliveryState::Pending,
                Some(*at),
                Some(error.as_str()),
                None,
            ),
            Attempt::Failed { error } => (DeliveryState::Failed, None, Some(error.as_str()), None),
        };
        let mut tx = self.pool.write().await?;
        tx.execute(
                sql!(
                    "UPDATE notifications SET state = $2, attempts = $3, last_attempt_at = $4, \
                     next_attempt_at = COALESCE($5, next_attempt_at), last_error = $6, delivered_at = $7 \
                     WHERE notify_id = $1"
                ),
                &params![notify_id, state.as_str(), attempts, now, next, error, delivered],
            )
            .await?;
        tx.commit().await
    }

    /// Queued notifications, oldest first.
    pub async fn notifications(
        &self,
        f: &NotificationFilter<'_>,
    ) -> Result<Vec<Notification>, StoreError> {
        // Only the conditions the filter sets, so that each uses its index.
        let mut conditions = Vec::new();
        let mut values: Vec<Param<'_>> = Vec::new();
        if let Some(state) = f.state {
            values.push(state.as_str().into());
            conditions.push(format!("state = ${}", values.len()));
        }
        if let Some(no) = f.agreement_no {
            values.push(no.into());
            conditions.push(format!("agreement_no = ${}", values.len()));
        }
        values.push(f.limit.into());
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = Sql::new(format!(
            "SELECT {} FROM notifications {filter} ORDER BY created_at, notify_id LIMIT ${}",
            NOTIFICATIONS.column_list(None),
            values.len()
        ));
        self.pool.conn().await?.all(&sql, &values).await
    }

    /// Makes notifications pending again, due at `now`, with a fresh schedule; returns how many.
    pub async fn resend(&self, which: Resend<'_>, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.write().await?;
        let changed = match which {
            Resend::AllFailed => {
                tx.execute(
                    sql!(
                        "UPDATE notifications SET state = 'PENDING', attempts = 0, next_attempt_at = $1, \
                         last_error = NULL, delivered_at = NULL WHERE state = 'FAILED'"
                    ),
                    &params![now],
                )
                .await?
            }
            Resend::Ids(ids) => {
                let mut changed = 0;
                for id in ids {
                    changed += tx
                        .execute(
                            sql!(
                                "UPDATE notifications SET state = 'PENDING', attempts = 0, next_attempt_at = $1, \
                                 last_error = NULL, delivered_at = NULL WHERE notify_id = $2"
                            ),
                            &params![now, id],
                        )
                        .await?;
                }
                changed
            }
        };
        tx.commit().await?;
        Ok(changed)
    }
}
