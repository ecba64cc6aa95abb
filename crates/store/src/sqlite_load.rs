//! Loading into SQLite: one connection, one transaction per batch, one prepared statement per
//! row (SQLite runs in-process, so a statement costs microseconds, and a failing row fails
//! alone). A new row is inserted first and diagnosed only if a constraint refuses it, so the
//! common case costs one statement.

use std::sync::Arc;

use agreements_domain::AgreementStatus;
use agreements_domain::clock::Clock;
use agreements_domain::ids::AgreementNo;
use rusqlite::Connection;

use crate::db::{Conn, Param};
use crate::error::{Rule, StoreError};
use crate::load::{
    IMPORT_ACTOR, Kind, LoadOptions, Outcome, Record, batch_statements, diff, field,
    first_of_each_key, missing_reference, person_rule, settled, taken,
};
use crate::ops::append_event;
use crate::records::{AgreementEvent, EventKind};
use crate::schema::{Cell, Cells, Table};
use crate::sql::{Sql, matches, sql};
use crate::sqlite::Lease;
use crate::tables::{AGREEMENTS, CUSTOMERS};

/// Page cache of the loading connection (KiB): index pages of a large table stay in memory.
pub(crate) const LOAD_CACHE_KIB: i64 = 256 * 1024;
/// WAL pages between checkpoints of the loading connection (the default is 1,000): 1 GiB. A load
/// dirties pages all over the agreements' B-trees, and every batch writes its dirty pages to the
/// WAL again; a checkpoint copies only the newest copy of each page, so checkpointing rarely turns
/// many writes of a page into one (a 10^6-agreement load, one session: 41.5 s at 128 MiB,
/// 31.4–40.1 s at 1 GiB). The file is truncated when the load ends.
const LOAD_CHECKPOINT_PAGES: i64 = 262_144;

pub(crate) struct SqliteLoader {
    pub(crate) conn: Conn<'static>,
    options: LoadOptions,
    clock: Arc<dyn Clock>,
    /// Every batch in one transaction, begun here and ended by [`SqliteLoader::finish`] (a dry
    /// run, a fresh load); otherwise each batch commits.
    whole: bool,
}

impl std::fmt::Debug for SqliteLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLoader")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SqliteLoader {
    pub(crate) fn new(
        conn: Connection,
        options: LoadOptions,
        clock: Arc<dyn Clock>,
        whole: bool,
    ) -> Result<Self, StoreError> {
        conn.pragma_update(None, "cache_size", -LOAD_CACHE_KIB)?;
        conn.pragma_update(None, "wal_autocheckpoint", LOAD_CHECKPOINT_PAGES)?;
        let whole = whole || options.dry_run;
        let mut lease = Lease::dedicated(conn);
        if whole {
            lease.begin(true)?;
        }
        Ok(Self {
            conn: Conn::Sqlite(lease),
            options,
            clock,
            whole,
        })
    }

    pub(crate) async fn load(
        &mut self,
        kind: Kind,
        records: &[Record],
    ) -> Result<Vec<Outcome>, StoreError> {
        let table = kind.table();
        let mut outcomes = vec![None; records.len()];
        let rows = first_of_each_key(table, records, &mut outcomes);
        let [begin, commit, rollback] = batch_statements(self.whole, "BEGIN IMMEDIATE");
        self.conn.batch(begin).await?;
        let at = self.clock.now();
        let conn = &mut self.conn;
        let options = self.options;
        let written = async {
            for (i, row) in rows {
                outcomes[i] = Some(load_row(conn, kind, row, options, at).await?);
            }
            Ok::<_, StoreError>(())
        }
        .await;
        match written {
            Ok(()) => self.conn.batch(commit).await?,
            Err(e) => {
                // The batch is undone whole; if even that fails the connection is dropped with it.
                let _ = self.conn.batch(rollback).await;
                return Err(e);
            }
        }
        Ok(settled(outcomes))
    }

    pub(crate) fn finish(self) -> Result<(), StoreError> {
        let Conn::Sqlite(mut lease) = self.conn else {
            return Ok(());
        };
        if self.options.dry_run {
            // Dropping the lease rolls the load's transaction back.
            return Ok(());
        }
        if self.whole {
            lease.commit()?;
        }
        // Give the WAL's disk space back. A truncating checkpoint waits for readers and holds
        // writers off meanwhile, so it gets no busy timeout: if a running server is reading,
        // SQLite reports busy (a result, not an error) at once and the server's own checkpoints
        // finish the work.
        lease.connection().busy_timeout(std::time::Duration::ZERO)?;
        lease.rows("PRAGMA wal_checkpoint(TRUNCATE)", &[], None)?;
        Ok(())
    }
}

async fn load_row(
    conn: &mut Conn<'_>,
    kind: Kind,
    row: Cells,
    options: LoadOptions,
    at: i64,
) -> Result<Outcome, StoreError> {
    let table = kind.table();
    if kind == Kind::Agreement
        && let Some(rejected) = check_person(conn, &row).await?
    {
        return Ok(rejected);
    }
    if kind == Kind::Account {
        // Probe first: the person row is created only for an account that will be written.
        if let Some(stored) = select(conn, table, &row).await? {
            return existing(conn, kind, stored, row, options, at).await;
        }
        add_person(conn, &row).await?;
    }
    match conn
        .execute(&table.sql().insert_new, &Param::row(table, 0, &row.cells))
        .await
    {
        Ok(1) => {
            conn.write_children(table, &row, false).await?;
            record_event(conn, kind, None, &row, at).await?;
            Ok(Outcome::Inserted)
        }
        Ok(_) => {
            let stored = select(conn, table, &row).await?.ok_or_else(|| {
                StoreError::Corrupt(
                    Rule::new(None, "vanished during the load").of(table.name, table.key[0]),
                )
            })?;
            existing(conn, kind, stored, row, options, at).await
        }
        Err(e @ StoreError::Conflict { .. }) => diagnose(conn, table, &row, &e).await,
        Err(e) => Err(e),
    }
}

/// A row whose key is stored: unchanged, a conflict, or (update mode) overwritten.
async fn existing(
    conn: &mut Conn<'_>,
    kind: Kind,
    stored: Cells,
    row: Cells,
    options: LoadOptions,
    at: i64,
) -> Result<Outcome, StoreError> {
    let table = kind.table();
    let fields = diff(table, &stored, &row);
    if fields.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    if !options.update {
        return Ok(Outcome::Conflict { fields });
    }
    if kind == Kind::Account {
        add_person(conn, &row).await?;
    }
    match conn
        .execute(
            &table.sql().update_by_key,
            &Param::row(table, 0, &row.cells),
        )
        .await
    {
        Ok(_) => {
            conn.write_children(table, &row, true).await?;
            record_event(conn, kind, Some(&stored), &row, at).await?;
            Ok(Outcome::Updated)
        }
        Err(e @ StoreError::Conflict { .. }) => diagnose(conn, table, &row, &e).await,
        Err(e) => Err(e),
    }
}

/// An imported (`stored` is `None`) or overwritten agreement gets a history entry.
async fn record_event(
    conn: &mut Conn<'_>,
    kind: Kind,
    stored: Option<&Cells>,
    row: &Cells,
    at: i64,
) -> Result<(), StoreError> {
    if kind != Kind::Agreement {
        return Ok(());
    }
    let no: AgreementNo = field(&AGREEMENTS, row, "agreement_no")?;
    let new_status: AgreementStatus = field(&AGREEMENTS, row, "status")?;
    match stored {
        // A new agreement has no history yet: its first event is number 1, written without the
        // `MAX(seq)` lookup (an INSERT … SELECT from its own table costs SQLite a temporary copy).
        None => {
            conn.insert(&AgreementEvent {
                agreement_no: no,
                seq: 1,
                kind: EventKind::Import,
                old_status: None,
                new_status,
                actor: IMPORT_ACTOR.to_owned(),
                reason: None,
                at,
            })
            .await
        }
        Some(stored) => {
            let old: AgreementStatus = field(&AGREEMENTS, stored, "status")?;
            append_event(
                conn,
                &no,
                EventKind::Update,
                Some(old),
                new_status,
                IMPORT_ACTOR,
                None,
                at,
            )
            .await
        }
    }
}

async fn add_person(conn: &mut Conn<'_>, row: &Cells) -> Result<(), StoreError> {
    let person = row.get(&crate::tables::ACCOUNTS, "customer_id");
    conn.execute(
        &CUSTOMERS.sql().insert_new,
        &[Param::cell(person, CUSTOMERS.columns[0].ty)],
    )
    .await?;
    Ok(())
}

/// A CUSTOMER agreement's principal must be the person of its signing account.
async fn check_person(conn: &mut Conn<'_>, row: &Cells) -> Result<Option<Outcome>, StoreError> {
    if !person_rule::applies(row) {
        return Ok(None);
    }
    let user = row.get(&AGREEMENTS, "alipay_user_id");
    let person = conn
        .row(
            sql!("SELECT customer_id FROM accounts WHERE user_id = $1"),
            &[Param::cell(user, AGREEMENTS.column("alipay_user_id").ty)],
        )
        .await?;
    let Some(Some(Cell::Text(person))) = person.map(|r| r.into_iter().next()) else {
        return Ok(None);
    };
    let principal = row.get(&AGREEMENTS, "principal_id");
    Ok((Cell::Text(person.clone()) != *principal).then(|| person_rule::rejection(&person)))
}

async fn select(
    conn: &mut Conn<'_>,
    table: &Table,
    row: &Cells,
) -> Result<Option<Cells>, StoreError> {
    let key = Param::row(table, 0, row.key(table));
    let Some(cells) = conn.row(&table.sql().select_by_key, &key).await? else {
        return Ok(None);
    };
    Ok(Some(conn.with_children(table, cells).await?))
}

/// Why a constraint refused `row`: a reference that names nothing, or a unique value taken.
async fn diagnose(
    conn: &mut Conn<'_>,
    table: &Table,
    row: &Cells,
    error: &StoreError,
) -> Result<Outcome, StoreError> {
    for reference in table.references {
        let value = row.get(table, reference.column);
        if *value == Cell::Null {
            continue;
        }
        let exists = Sql::new(format!(
            "SELECT 1 FROM {} WHERE {} = $1",
            reference.to, reference.target
        ));
        let ty = table.column(reference.column).ty;
        if conn
            .row(&exists, &[Param::cell(value, ty)])
            .await?
            .is_none()
        {
            return Ok(missing_reference(reference, value));
        }
    }
    if let Some(taken) = taken_unique(conn, table, &row.cells).await? {
        return Ok(taken);
    }
    Ok(Outcome::Rejected {
        field: table.columns[0].name,
        reason: format!("refused by the database: {error}"),
    })
}

/// The rejection of `cells` (a row of `table`) for the first of its unique values another row
/// holds, if any.
pub(crate) async fn taken_unique(
    conn: &mut Conn<'_>,
    table: &Table,
    cells: &[Cell],
) -> Result<Option<Outcome>, StoreError> {
    for unique in table.uniques {
        let values: Vec<Param<'_>> = unique
            .iter()
            .map(|c| Param::cell(&cells[table.index(c)], table.column(c).ty))
            .collect();
        if values.iter().any(|v| matches!(v, Param::Null(_))) {
            continue;
        }
        let holder = Sql::new(format!(
            "SELECT {} FROM {} WHERE {}",
            table.key.join(", "),
            table.name,
            matches(unique.iter().copied(), None, 1)
        ));
        if let Some(holder) = conn.row(&holder, &values).await?
            && holder[..] != cells[..table.key_len()]
        {
            return Ok(Some(taken(unique, &holder)));
        }
    }
    Ok(None)
}
