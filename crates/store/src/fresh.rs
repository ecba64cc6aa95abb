//! The fresh-load path: a whole load into an empty database as one unit, at the database's own
//! bulk speed (agreements.md §8; BENCHMARKS.md has the figures).
//!
//! The few records of the small kinds (groups, merchants, products, contracts, apps) are loaded
//! as by [`crate::Loader`], each row classified as it is written. The bulk kinds (accounts,
//! logon ids, open ids, agreements) are written the way bulk loaders write: their tables lose
//! their secondary indexes (and, on PostgreSQL, their keys and foreign keys) for the load, rows
//! go in without a check per row, and every rule is then checked once per table in set
//! operations, in kind order so that a rejected row's dependants are rejected too:
//!
//! 1. a CUSTOMER agreement's principal must be its account's person;
//! 2. every reference must name a stored row;
//! 3. a key must not repeat (the first row of a key is kept, in load order);
//! 4. a unique value must not be taken (the row with the smaller key keeps it, as in a batch of
//!    the per-batch path).
//!
//! The rules that can only fail on bad data (3 and 4) are checked optimistically: the database
//! builds the key or unique index, and only when that fails are the offending rows searched for.
//! Rows are numbered per kind in the order they were given; a rejection names its row by that
//! number, and the caller maps it back to its file and line. Everything runs in one transaction:
//! the load completes, or the database is as it was.

use std::collections::BTreeMap;
use std::sync::Arc;

use agreements_domain::clock::Clock;

use crate::db::Pool;
use crate::error::StoreError;
use crate::load::{Kind, LoadOptions, Outcome, Record, assert_of_kind, missing_reference};
use crate::schema::{Cell, Reference, Table, names};
use crate::{Store, pg_fresh, sqlite_fresh};

/// The kinds written in bulk by a fresh load; the others are few and loaded row by row.
pub(crate) const BULK: [Kind; 4] = [Kind::Account, Kind::LogonId, Kind::OpenId, Kind::Agreement];

/// The tables a fresh load writes in bulk: the bulk kinds' and those filled from them (the
/// persons of accounts, the import events of agreements).
pub(crate) const BULK_TABLES: [&str; 6] = [
    "customers",
    "accounts",
    "logon_ids",
    "open_ids",
    "agreements",
    "agreement_events",
];

/// Whether `kind` is written in bulk.
pub(crate) fn is_bulk(kind: Kind) -> bool {
    BULK.contains(&kind)
}

/// A row of a bulk kind that a fresh load did not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Its kind.
    pub kind: Kind,
    /// Its number among the rows of its kind, counted from 0 in the order they were given.
    pub row: usize,
    /// Its key's cells.
    pub key: Vec<Cell>,
    /// Why: [`Outcome::Rejected`], or [`Outcome::Duplicate`] whose `first` is the number of the
    /// row of the same kind that holds the key.
    pub outcome: Outcome,
}

/// Why a fresh load's checks refused a row whose id (a row number, a physical address) is `I`.
#[derive(Debug, Clone)]
pub(crate) enum Verdict<I> {
    /// A rule broken: [`Outcome::Rejected`].
    Rejected(Outcome),
    /// The key of the row with this id, given before it.
    Duplicate(I),
}

/// What a fresh load's checks decided, per row of one kind: the first reason found stands,
/// except that a repeated key outranks every other (as in the per-batch path, where repeats are
/// set aside before anything is checked).
#[derive(Debug)]
pub(crate) struct Verdicts<I> {
    pub(crate) rows: BTreeMap<I, Verdict<I>>,
}

impl<I> Default for Verdicts<I> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
        }
    }
}

impl<I: Ord + Clone> Verdicts<I> {
    pub(crate) fn reject(&mut self, row: I, outcome: Outcome) {
        self.rows.entry(row).or_insert(Verdict::Rejected(outcome));
    }

    pub(crate) fn duplicate(&mut self, row: I, first: I) {
        self.rows.insert(row, Verdict::Duplicate(first));
    }

    /// The rejected rows and the rows their keys repeat, in order.
    pub(crate) fn ids(&self) -> Vec<I> {
        let mut ids: Vec<I> = self.rows.keys().cloned().collect();
        ids.extend(self.rows.values().filter_map(|v| match v {
            Verdict::Duplicate(first) => Some(first.clone()),
            Verdict::Rejected(_) => None,
        }));
        ids.sort();
        ids.dedup();
        ids
    }

    /// The rejection of row `id`, given every id's row number.
    pub(crate) fn rejection(
        &self,
        kind: Kind,
        id: &I,
        key: Vec<Cell>,
        number: impl Fn(&I) -> Option<usize>,
    ) -> Option<Rejection> {
        let outcome = match self.rows.get(id)? {
            Verdict::Rejected(outcome) => outcome.clone(),
            Verdict::Duplicate(first) => Outcome::Duplicate {
                first: number(first)?,
            },
        };
        Some(Rejection {
            kind,
            row: number(id)?,
            key,
            outcome,
        })
    }
}

/// A row number read back from the database.
pub(crate) fn number(cell: Option<&Cell>) -> Result<usize, StoreError> {
    match cell {
        Some(Cell::Int(i)) => usize::try_from(*i)
            .map_err(|e| StoreError::unavailable("reading a fresh load's row numbers", e)),
        other => Err(StoreError::unavailable(
            "reading a fresh load's row numbers",
            std::io::Error::other(format!("not a row number: {other:?}")),
        )),
    }
}

/// `SELECT <id>, s.<column> FROM <rows> s WHERE` the reference names nothing: the rows of
/// `rows` (a stage or the table itself) whose `reference` is missing, with the value.
pub(crate) fn missing_references(rows: &str, id: &str, reference: &Reference) -> String {
    format!(
        "SELECT {id}, s.{column} FROM {rows} s WHERE s.{column} IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM {to} r WHERE r.{target} = s.{column})",
        column = reference.column,
        to = reference.to,
        target = reference.target,
    )
}

/// The rows of `rows` (agreements) that break the person rule, with the account's person.
pub(crate) fn wrong_persons(rows: &str, id: &str) -> String {
    format!(
        "SELECT {id}, a.customer_id FROM {rows} s JOIN accounts a ON a.user_id = s.alipay_user_id \
         WHERE s.principal_type = 'CUSTOMER' AND a.customer_id <> s.principal_id"
    )
}

/// Records the rejections of rows `found` (each `[id, value]`) as missing `reference`.
pub(crate) fn reject_missing<I: Ord + Clone>(
    verdicts: &mut Verdicts<I>,
    reference: &Reference,
    found: Vec<(I, Cell)>,
) {
    for (row, value) in found {
        verdicts.reject(row, missing_reference(reference, &value));
    }
}

/// The rows of `table` that share a value of `unique` with a row of a smaller key, each with
/// the smallest such key (the holder): `SELECT f.<id>, h.<key> …`. `id` is an expression of the
/// refused row `f`; `only`, a condition on a row `{}`, leaves out the rows it is false for.
pub(crate) fn taken_values(table: &Table, unique: &[&str], id: &str, only: Option<&str>) -> String {
    let same = unique
        .iter()
        .map(|c| format!("h.{c} = f.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut present = unique
        .iter()
        .map(|c| format!("f.{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    if let Some(only) = only {
        present = format!(
            "{present} AND {} AND {}",
            only.replace("{}", "f"),
            only.replace("{}", "h")
        );
    }
    let key_h = names(table.key.iter().copied(), Some("h"));
    let key_f = names(table.key.iter().copied(), Some("f"));
    format!(
        "SELECT {id}, {key_h} FROM {t} f JOIN {t} h ON {same} AND ({key_h}) < ({key_f}) \
         WHERE {present} ORDER BY 1, {key_h}",
        t = table.name,
    )
}

/// An `AND`-joined equality of `columns` between aliases `a` and `b`.
pub(crate) fn same_columns(columns: &[&str], a: &str, b: &str) -> String {
    columns
        .iter()
        .map(|c| format!("{a}.{c} = {b}.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Runs `statement` (building a key or an index, adding a foreign key) in a savepoint: `true`
/// when it ran, `false` when the database refused it for the data (a constraint the rows break),
/// with nothing of it kept.
pub(crate) async fn attempt(
    conn: &mut crate::db::Conn<'_>,
    statement: &str,
) -> Result<bool, StoreError> {
    conn.batch("SAVEPOINT fresh_attempt").await?;
    match conn.batch(statement).await {
        Ok(()) => {
            conn.batch("RELEASE fresh_attempt").await?;
            Ok(true)
        }
        Err(StoreError::Conflict { .. }) => {
            conn.batch("ROLLBACK TO fresh_attempt; RELEASE fresh_attempt")
                .await?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// A fresh load in progress (see the module's text). Dropping it without
/// [`FreshLoader::finish`] leaves the database as it was.
#[derive(Debug)]
pub struct FreshLoader {
    backend: FreshBackend,
}

#[derive(Debug)]
enum FreshBackend {
    Sqlite(sqlite_fresh::SqliteFresh),
    Postgres(pg_fresh::PgFresh),
}

impl FreshLoader {
    /// Loads records of one kind. A small kind's records are written and classified now, as by
    /// [`crate::Loader::load`]; a bulk kind's are [`Outcome::Pending`] until
    /// [`FreshLoader::finish`]. Records of a kind must come after those of the kinds before it.
    ///
    /// # Panics
    ///
    /// When a record is not of `kind` (a caller's mistake, not the data's).
    pub async fn load(
        &mut self,
        kind: Kind,
        records: &[Record],
    ) -> Result<Vec<Outcome>, StoreError> {
        assert_of_kind(kind, records);
        match &mut self.backend {
            FreshBackend::Sqlite(l) => l.load(kind, records).await,
            FreshBackend::Postgres(l) => l.load(kind, records).await,
        }
    }

    /// Checks every rule over the bulk kinds' rows, drops the rows that break one, rebuilds the
    /// indexes and commits (a dry run rolls back instead). Returns the dropped rows. An `Err`
    /// leaves the database as it was before the load.
    pub async fn finish(self) -> Result<Vec<Rejection>, StoreError> {
        match self.backend {
            FreshBackend::Sqlite(l) => l.finish().await,
            FreshBackend::Postgres(l) => l.finish().await,
        }
    }
}

impl Store {
    /// The first kind (in load order) of which the database holds records, if any: a fresh load
    /// needs none.
    pub async fn first_stored_kind(&self) -> Result<Option<Kind>, StoreError> {
        let mut conn = self.pool.conn().await?;
        first_stored_kind(&mut conn).await
    }

    /// Starts a fresh load (see [`FreshLoader`]) on a connection of its own, in one
    /// transaction. Refused with [`StoreError::Conflict`] when the database holds records of a
    /// kind a load writes.
    pub async fn fresh_loader(&self, options: LoadOptions) -> Result<FreshLoader, StoreError> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        Ok(FreshLoader {
            backend: match &self.pool {
                Pool::Sqlite(pool) => {
                    let (conn, alone) = pool.connect_alone()?;
                    FreshBackend::Sqlite(
                        sqlite_fresh::SqliteFresh::new(conn, alone, options, clock).await?,
                    )
                }
                Pool::Postgres(pool) => FreshBackend::Postgres(
                    pg_fresh::PgFresh::new(pool.acquire().await?, options, clock).await?,
                ),
            },
        })
    }
}

/// See [`Store::first_stored_kind`].
pub(crate) async fn first_stored_kind(
    conn: &mut crate::db::Conn<'_>,
) -> Result<Option<Kind>, StoreError> {
    for kind in Kind::ALL {
        let any = crate::sql::Sql::only(format!("SELECT 1 FROM {} LIMIT 1", kind.table().name));
        if conn.row(&any, &[]).await?.is_some() {
            return Ok(Some(kind));
        }
    }
    Ok(None)
}

/// The refusal of a fresh load into a database that holds `kind`.
pub(crate) fn not_fresh(kind: Kind) -> StoreError {
    StoreError::Conflict {
        constraint: format!("fresh load (the database already holds {kind})"),
        source: Arc::new(std::io::Error::other(
            "a fresh load needs a database without load data",
        )),
    }
}
