//! Users and their agreements: the gateway's lookups, cancellation and history.

use std::sync::LazyLock;

use agreements_domain::batch_query::UserLocator;
use agreements_domain::ids::{AgreementNo, AppId, GroupId, LogonId, OpenId, UserId};
use agreements_domain::{Agreement, AgreementStatus, ResolvedUser, Scope};

use crate::Store;
use crate::db::{Conn, Param, params};
use crate::error::StoreError;
use crate::records::{
    AgreementEvent, AgreementFilter, EventKind, ExternalKey, FoundAgreement, Notification, Unsign,
    UnsignOutcome,
};
use crate::schema::{Cell, Cells, Entity, Stored};
use crate::sql::{Sql, sql};
use crate::tables::{AGREEMENT_EVENTS, AGREEMENTS};

/// The agreement (every column, then its owner's group and the principal's open id in the app
/// bound to `$1`): what [`found`] reads.
fn select_found() -> String {
    format!(
        "SELECT {}, m.group_id, o.open_id FROM agreements a \
         JOIN merchants m ON m.partner_id = a.partner_id \
         LEFT JOIN open_ids o ON o.app_id = $1 AND o.user_id = a.principal_id",
        AGREEMENTS.column_list(Some("a"))
    )
}

/// A row of [`select_found`].
fn found(mut cells: Vec<Cell>) -> Result<FoundAgreement, StoreError> {
    let width = AGREEMENTS.columns.len();
    let extra = cells.split_off(width.min(cells.len()));
    let mut extra = extra.into_iter();
    let agreement = Agreement::from_cells(Cells {
        cells,
        children: Vec::new(),
    })
    .map_err(StoreError::Corrupt)?;
    let owner_group = Option::<GroupId>::from_cell(extra.next().unwrap_or(Cell::Null))
        .map_err(|rule| StoreError::Corrupt(rule.of("merchants", "group_id")))?;
    let principal_open_id = Option::<OpenId>::from_cell(extra.next().unwrap_or(Cell::Null))
        .map_err(|rule| StoreError::Corrupt(rule.of("open_ids", "open_id")))?;
    Ok(FoundAgreement {
        agreement,
        owner_group,
        principal_open_id,
    })
}

async fn found_rows(
    conn: &mut Conn<'_>,
    sql: &Sql,
    params: &[Param<'_>],
) -> Result<Vec<FoundAgreement>, StoreError> {
    conn.rows(sql, params)
        .await?
        .into_iter()
        .map(found)
        .collect()
}

/// The agreements query of a filter, for each combination of what the filter sets (index:
/// group scope 1, cancelled included 2, scene 4, sales product 8). Parameters: `$1` open id app,
/// `$2` user id, `$3` customer id, `$4` agreement product, `$5` third party type, `$6` now, `$7`
/// owner (merchant or group), then the scene and the sales product when set.
///
/// Only the conditions the filter sets, each a plain comparison: a condition on whether a
/// parameter is bound (`$n IS NULL OR …`) makes SQLite prepare the statement again at every
/// call (its plan depends on the value). The two principals are two SELECTs joined by UNION ALL
/// (a row has one principal type, so they never overlap): each is one range scan of
/// `agreements_by_principal` that yields rows in (sign_time, agreement_no) order; SQLite merges
/// them, PostgreSQL appends and sorts the few rows. On SQLite the index holds every column
/// (migration 11), so the scan never descends into the table: without it, each entry the scan
/// visited cost a lookup by agreement_no on a random page. Written as `(CARD …) OR (CUSTOMER
/// …)`, the query gets SQLite's multi-index OR, which builds an ephemeral table (its own page
/// cache, allocated and freed per execution) to drop duplicates and another to sort — about
/// 100 µs per answer on the project machine.
static BY_PERSON: LazyLock<Vec<Sql>> = LazyLock::new(|| {
    (0..16)
        .map(|i| by_person_sql(i & 1 != 0, i & 2 != 0, i & 4 != 0, i & 8 != 0))
        .collect()
});

fn by_person_sql(group: bool, include_cancelled: bool, scene: bool, sales: bool) -> Sql {
    let mut conditions = String::from(
        "AND a.personal_product_code = $4 AND a.third_party_type = $5 AND a.invalid_time > $6 ",
    );
    conditions.push_str(if group {
        "AND m.group_id = $7"
    } else {
        "AND a.partner_id = $7"
    });
    if !include_cancelled {
        // The queryable statuses (`AgreementStatus::is_queryable`), written as the one the
        // table's CHECK leaves out: SQLite evaluates `status IN ('TEMP', 'NORMAL', 'STOP')` by
        // building an ephemeral index of the list in each execution of each branch (a B-tree
        // created, filled and freed per answer), where `<>` is one comparison.
        conditions.push_str(" AND a.status <> 'UNSIGN'");
    }
    let mut n = 7;
    for (set, column) in [(scene, "sign_scene"), (sales, "product_code")] {
        if set {
            n += 1;
            conditions.push_str(&format!(" AND a.{column} = ${n}"));
        }
    }
    let select = select_found();
    Sql::new(format!(
        "{select} WHERE a.principal_id = $2 AND a.principal_type = 'CARD' {conditions} \
         UNION ALL \
         {select} WHERE a.principal_id = $3 AND a.principal_type = 'CUSTOMER' {conditions} \
         ORDER BY sign_time, agreement_no"
    ))
}

static BY_NO: LazyLock<Sql> =
    LazyLock::new(|| Sql::new(format!("{} WHERE a.agreement_no = $2", select_found())));

/// By the merchant's number, for a merchant (`[0]`) or a group (`[1]`, whose merchants a
/// subquery names, so that each still uses the unique index on (partner, product, scene,
/// number)). `$2` product, `$3` scene, `$4` number, `$5` merchant or group.
static BY_EXTERNAL: LazyLock<[Sql; 2]> = LazyLock::new(|| {
    [
        "a.partner_id = $5",
        "a.partner_id IN (SELECT partner_id FROM merchants WHERE group_id = $5)",
    ]
    .map(|owner| {
        Sql::new(format!(
            "{} WHERE {owner} AND a.personal_product_code = $2 AND a.sign_scene = $3 \
                 AND a.external_agreement_no = $4 ORDER BY a.sign_time, a.agreement_no",
            select_found()
        ))
    })
});

static HISTORY: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!(
        "SELECT {} FROM agreement_events WHERE agreement_no = $1 ORDER BY seq",
        AGREEMENT_EVENTS.column_list(None)
    ))
});

/// The id a scope's owner condition is bound to: the merchant, or the group.
fn scope_owner(scope: &Scope) -> &str {
    match scope {
        Scope::Partner(m) => m.as_str(),
        Scope::Group(g) => g.as_str(),
    }
}

/// [`Store::resolve_user`] on `conn`.
async fn resolve_on(
    conn: &mut Conn<'_>,
    locator: &UserLocator,
    app_id: &AppId,
) -> Result<Option<ResolvedUser>, StoreError> {
    match locator {
        UserLocator::UserId(id) => account_of_on(conn, id).await,
        UserLocator::LogonId(id) => account_by_logon_id_on(conn, id).await,
        UserLocator::OpenId(id) => conn
            .row(
                sql!(
                    "SELECT a.user_id, a.customer_id FROM open_ids o \
                     JOIN accounts a ON a.user_id = o.user_id \
                     WHERE o.app_id = $1 AND o.open_id = $2"
                ),
                &params![app_id, id],
            )
            .await?
            .map(resolved)
            .transpose(),
    }
}

/// [`Store::account_of`] on `conn`.
async fn account_of_on(
    conn: &mut Conn<'_>,
    user_id: &UserId,
) -> Result<Option<ResolvedUser>, StoreError> {
    conn.row(
        sql!("SELECT user_id, customer_id FROM accounts WHERE user_id = $1"),
        &params![user_id],
    )
    .await?
    .map(resolved)
    .transpose()
}

/// [`Store::account_by_logon_id`] on `conn`.
async fn account_by_logon_id_on(
    conn: &mut Conn<'_>,
    logon_id: &LogonId,
) -> Result<Option<ResolvedUser>, StoreError> {
    conn.row(
        sql!(
            "SELECT a.user_id, a.customer_id FROM logon_ids l \
             JOIN accounts a ON a.user_id = l.user_id WHERE l.logon_id = $1"
        ),
        &params![logon_id.as_str()],
    )
    .await?
    .map(resolved)
    .transpose()
}

/// The agreements of one person for one product in one scope, in answer order.
async fn agreements_on(
    conn: &mut Conn<'_>,
    f: &AgreementFilter<'_>,
) -> Result<Vec<FoundAgreement>, StoreError> {
    let variant = usize::from(matches!(f.scope, Scope::Group(_)))
        | usize::from(f.include_cancelled) << 1
        | usize::from(f.sign_scene.is_some()) << 2
        | usize::from(f.product_code.is_some()) << 3;
    let mut values = params![
        f.open_id_app,
        f.person.user_id.as_str(),
        f.person.customer_id.as_str(),
        f.personal_product_code,
        f.scope.third_party_type().as_str(),
        f.now,
        scope_owner(f.scope),
    ]
    .to_vec();
    values.extend(f.sign_scene.map(Param::from));
    values.extend(f.product_code.map(Param::from));
    found_rows(conn, &BY_PERSON[variant], &values).await
}

impl Store {
    /// The account (and person) a user field names; open ids in `app_id`'s namespace.
    pub async fn resolve_user(
        &self,
        locator: &UserLocator,
        app_id: &AppId,
    ) -> Result<Option<ResolvedUser>, StoreError> {
        resolve_on(&mut self.pool.conn().await?, locator, app_id).await
    }

    /// The account `user_id` with its person.
    pub async fn account_of(&self, user_id: &UserId) -> Result<Option<ResolvedUser>, StoreError> {
        account_of_on(&mut self.pool.conn().await?, user_id).await
    }

    /// The account a logon id names, with its person.
    pub async fn account_by_logon_id(
        &self,
        logon_id: &LogonId,
    ) -> Result<Option<ResolvedUser>, StoreError> {
        account_by_logon_id_on(&mut self.pool.conn().await?, logon_id).await
    }

    /// [`Store::resolve_user`], then, when the user exists, the person's agreements for one
    /// product in one scope (the filter `filter` makes for the person), in answer order, with the
    /// person given back beside them: the query methods' two reads, on one connection. On
    /// SQLite they share one read transaction (one snapshot): a statement outside a transaction
    /// begins and ends its own, and each begin and end locks the WAL index in shared memory
    /// under a mutex that every connection of the process takes — under load, two transactions
    /// per answer made 0.45 futex calls per answer there, one makes 0.09 (strace, the
    /// `distinct` mix).
    pub async fn person_agreements<'f>(
        &self,
        locator: &UserLocator,
        app_id: &AppId,
        filter: impl FnOnce(ResolvedUser) -> AgreementFilter<'f>,
    ) -> Result<Option<(ResolvedUser, Vec<FoundAgreement>)>, StoreError> {
        let mut conn = self.pool.reads().await?;
        let Some(person) = resolve_on(&mut conn, locator, app_id).await? else {
            return Ok(None);
        };
        let filter = filter(person);
        let found = agreements_on(&mut conn, &filter).await?;
        conn.commit().await?;
        Ok(Some((filter.person, found)))
    }

    /// One agreement by number, whatever its status or owner (callers apply the rules).
    pub async fn agreement_by_no(
        &self,
        no: &AgreementNo,
        open_id_app: &AppId,
    ) -> Result<Option<FoundAgreement>, StoreError> {
        let row = self
            .pool
            .conn()
            .await?
            .row(&BY_NO, &params![open_id_app, no])
            .await?;
        row.map(found).transpose()
    }

    /// The agreements with a merchant's number, among the merchants of `scope`, whatever their
    /// status (callers apply the rules).
    pub async fn agreements_by_external(
        &self,
        scope: &Scope,
        key: &ExternalKey<'_>,
        open_id_app: &AppId,
    ) -> Result<Vec<FoundAgreement>, StoreError> {
        let sql = &BY_EXTERNAL[usize::from(matches!(scope, Scope::Group(_)))];
        let values = params![
            open_id_app,
            key.personal_product_code,
            key.sign_scene,
            key.external_agreement_no,
            scope_owner(scope),
        ];
        found_rows(&mut self.pool.conn().await?, sql, &values).await
    }

    /// One logon id of an account (the first in order), for masked display.
    pub async fn logon_id_of(&self, user_id: &UserId) -> Result<Option<LogonId>, StoreError> {
        let row = self
            .pool
            .conn()
            .await?
            .row(
                sql!("SELECT logon_id FROM logon_ids WHERE user_id = $1 ORDER BY logon_id LIMIT 1"),
                &params![user_id],
            )
            .await?;
        row.and_then(|r| r.into_iter().next())
            .map(|cell| {
                LogonId::from_cell(cell)
                    .map_err(|rule| StoreError::Corrupt(rule.of("logon_ids", "logon_id")))
            })
            .transpose()
    }

    /// Adds an agreement, with a `CREATE` event (actor `operator`, now) in its history.
    pub async fn add_agreement(&self, agreement: &Agreement) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.insert(agreement).await?;
        tx.insert(&AgreementEvent {
            agreement_no: agreement.agreement_no.clone(),
            seq: 1,
            kind: EventKind::Create,
            old_status: None,
            new_status: agreement.status,
            actor: "operator".to_owned(),
            reason: None,
            at: self.clock.now(),
        })
        .await?;
        tx.commit().await
    }

    /// Cancels an agreement, appending its event and queueing its notifications in the same
    /// transaction; an agreement already cancelled is left as it is (agreements.md §7).
    pub async fn unsign(&self, u: &Unsign<'_>) -> Result<UnsignOutcome, StoreError> {
        let mut tx = self.pool.write().await?;
        let no = u.agreement_no;
        // PostgreSQL locks the row it reads; SQLite has no FOR UPDATE, and BEGIN IMMEDIATE
        // already holds the database's write lock.
        let lock = sql!(
            postgres: "SELECT status FROM agreements WHERE agreement_no = $1 FOR UPDATE",
            sqlite: "SELECT status FROM agreements WHERE agreement_no = ?1"
        );
        let Some(row) = tx.row(lock, &params![no]).await? else {
            return Ok(UnsignOutcome::NotFound);
        };
        let old = AgreementStatus::from_cell(row.into_iter().next().unwrap_or(Cell::Null))
            .map_err(|rule| StoreError::Corrupt(rule.of("agreements", "status")))?;
        if old == AgreementStatus::Unsign {
            return Ok(UnsignOutcome::AlreadyUnsigned);
        }
        tx.execute(
            sql!("UPDATE agreements SET status = $2, unsign_time = $3 WHERE agreement_no = $1"),
            &params![no, AgreementStatus::Unsign.as_str(), u.at],
        )
        .await?;
        append_event(
            &mut tx,
            no,
            EventKind::Unsign,
            Some(old),
            AgreementStatus::Unsign,
            u.actor,
            u.reason,
            u.at,
        )
        .await?;
        for n in u.notifications {
            tx.insert(&Notification::from(n.clone())).await?;
        }
        tx.commit().await?;
        Ok(UnsignOutcome::Unsigned { old_status: old })
    }

    /// An agreement's history, oldest first.
    pub async fn history(&self, no: &AgreementNo) -> Result<Vec<AgreementEvent>, StoreError> {
        self.pool.conn().await?.all(&HISTORY, &params![no]).await
    }
}

/// A row of (user_id, customer_id).
fn resolved(row: Vec<Cell>) -> Result<ResolvedUser, StoreError> {
    let mut cells = row.into_iter();
    let mut next = || cells.next().unwrap_or(Cell::Null);
    Ok(ResolvedUser {
        user_id: Stored::from_cell(next())
            .map_err(|rule| StoreError::Corrupt(rule.of("accounts", "user_id")))?,
        customer_id: Stored::from_cell(next())
            .map_err(|rule| StoreError::Corrupt(rule.of("accounts", "customer_id")))?,
    })
}

/// Appends an event to an agreement's history (the next `seq`).
#[allow(clippy::too_many_arguments)] // one column each
pub(crate) async fn append_event(
    conn: &mut Conn<'_>,
    no: &AgreementNo,
    kind: EventKind,
    old_status: Option<AgreementStatus>,
    new_status: AgreementStatus,
    actor: &str,
    reason: Option<&str>,
    at: i64,
) -> Result<(), StoreError> {
    conn.execute(
        sql!(
            "INSERT INTO agreement_events (agreement_no, seq, kind, old_status, new_status, actor, reason, at) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7 FROM agreement_events \
             WHERE agreement_no = $1"
        ),
        &params![
            no,
            kind.as_str(),
            old_status.map(AgreementStatus::as_str),
            new_status.as_str(),
            actor,
            reason,
            at
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every variant of the agreements query is, on SQLite, two range scans of the covering
    /// index merged in index order: no lookup into the table, no multi-index OR, no temporary
    /// B-tree (each costs an ephemeral table per execution). A column added to the table but not
    /// to the index fails it.
    #[test]
    fn the_agreements_query_merges_two_range_scans_on_sqlite() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        for m in crate::MIGRATIONS {
            c.execute_batch(m.sqlite).unwrap();
        }
        for (i, sql) in BY_PERSON.iter().enumerate() {
            let mut stmt = c
                .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.sqlite))
                .unwrap();
            let values = vec!["x"; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(values), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("\n");
            assert!(plan.contains("MERGE (UNION ALL)"), "variant {i}: {plan}");
            assert_eq!(
                plan.matches("SEARCH a USING COVERING INDEX agreements_by_principal")
                    .count(),
                2,
                "variant {i}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "variant {i}: {plan}");
            assert!(!plan.contains("MULTI-INDEX OR"), "variant {i}: {plan}");
        }
    }
}
