//! The fresh-load path on SQLite (see [`crate::fresh`]). A SQLite table's key and UNIQUE
//! constraints are part of the table, so they stay; its other indexes are dropped for the load
//! and built at the end. A bulk kind's rows are appended to a temporary stage (numbered in the
//! order given) as they come, checked there against the tables, and then written with one
//! `INSERT … SELECT … ORDER BY` key: SQLite sorts them and appends to the key's B-tree instead
//! of inserting all over it. Foreign-key enforcement is off on the loading connection; the
//! checks stand in for it. The rows that name an account are checked against the staged
//! accounts in memory as they are staged (see [`Accounts`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use agreements_domain::PrincipalType;
use agreements_domain::clock::Clock;
use rusqlite::Connection;

use crate::db::{Conn, Param};
use crate::error::StoreError;
use crate::fresh::{
    BULK, BULK_TABLES, Rejection, Verdicts, attempt, first_stored_kind, is_bulk,
    missing_references, not_fresh, number, reject_missing, same_columns, taken_values,
    wrong_persons,
};
use crate::load::{IMPORT_ACTOR, Kind, LoadOptions, Outcome, Record, person_rule, taken};
use crate::records::EventKind;
use crate::schema::{Cell, CellRef, Table, names};
use crate::sql::Sql;
use crate::sqlite_load::{SqliteLoader, taken_unique};
use crate::tables::ACCOUNTS;

pub(crate) struct SqliteFresh {
    /// Loads the small kinds, and holds the connection and its transaction.
    inner: SqliteLoader,
    options: LoadOptions,
    clock: Arc<dyn Clock>,
    /// The dropped indexes: (table, name, statement that builds it).
    indexes: Vec<(String, String, String)>,
    /// What each bulk kind staged.
    staged: HashMap<Kind, Staged>,
    /// The staged accounts, against which the rows naming one are checked as they are staged.
    accounts: Accounts,
}

/// What a bulk kind staged. (Not `Debug`: the last key may be a logon id.)
#[derive(Default)]
struct Staged {
    /// How many rows (the next row's number).
    rows: usize,
    /// Whether their keys came in order.
    order: KeyOrder,
}

impl std::fmt::Debug for SqliteFresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteFresh")
            .field("options", &self.options)
            .field(
                "staged",
                &self
                    .staged
                    .iter()
                    .map(|(k, s)| (k, s.rows))
                    .collect::<HashMap<_, _>>(),
            )
            .field("accounts", &self.accounts.persons.len())
            .finish_non_exhaustive()
    }
}

/// Page cache (KiB) once every file is read, while the staged rows are checked and sorted into
/// their tables and the indexes are built: the size of the sorted runs SQLite's sorter hands to
/// its helper thread (`PRAGMA threads`) while the calling thread reads on; it then merges them.
/// With a cache larger than a sort, SQLite sorts it in one piece on the calling thread and the
/// second core waits. The 10⁶-agreement world, alternating, per step: the index builds took
/// 2.27–2.33 s with the loading cache (256 MiB), 1.11–1.40 s with 1, 2 or 4 MiB; the sorted
/// inserts 3.4–3.8 s with 4 MiB as with 16 MiB (1 MiB: 3.6–4.2 s, more runs to merge). The 10⁷
/// world: index builds 26.5 and 29.4 s with the loading cache, 16.8 and 17.9 s with 4 MiB; the
/// whole load 117.0 and 126.3 s against 109.2 and 108.6 s.
const SORT_CACHE_KIB: i64 = 4 * 1024;

/// The stage of a bulk kind's table.
fn stage(table: &Table) -> String {
    format!("temp.fresh_{}", table.name)
}

impl SqliteFresh {
    /// Starts a fresh load on `conn`. `out_of_wal` says that the database was taken out of WAL
    /// mode for it ([`crate::sqlite::SqlitePool::connect_alone`]): the load then writes through
    /// a rollback journal, and the database goes back to WAL mode when the load ends, whichever
    /// way it ends.
    ///
    /// A rollback journal keeps the load one unit at half the writes. Into an empty database it
    /// copies next to nothing (SQLite journals only the pages the file had before the
    /// transaction), and every page is written to the file once. Through the WAL every page is
    /// written twice — to the WAL, then by the checkpoint into the file — and again each time
    /// the small sort cache ([`SORT_CACHE_KIB`]) spills it. A 10⁶-agreement load, one session,
    /// alternating: 24.9 and 25.3 s through the WAL (its final commit and checkpoint 4.7 s),
    /// 20.5 and 21.3 s through the journal (1.0 s).
    pub(crate) async fn new(
        conn: Connection,
        out_of_wal: bool,
        options: LoadOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        // Set outside a transaction (SQLite ignores both inside one): references are checked in
        // bulk at the end; the sorts that order rows by key may use a helper thread.
        conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA threads = 2")?;
        let mut inner = SqliteLoader::new(conn, options, clock.clone(), true)?;
        let conn = &mut inner.conn;
        if out_of_wal && let Conn::Sqlite(lease) = conn {
            lease.back_to_wal_when_dropped();
        }
        if let Some(kind) = first_stored_kind(conn).await? {
            return Err(not_fresh(kind));
        }
        let tables = BULK_TABLES
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut indexes = Vec::new();
        for row in conn
            .rows(
                &Sql::only(format!(
                    "SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'index' \
                     AND sql IS NOT NULL AND tbl_name IN ({tables}) ORDER BY tbl_name, name"
                )),
                &[],
            )
            .await?
        {
            if let [Cell::Text(table), Cell::Text(name), Cell::Text(sql)] = row.as_slice() {
                indexes.push((table.clone(), name.clone(), sql.clone()));
            }
        }
        for (_, name, _) in &indexes {
            conn.batch(&format!("DROP INDEX \"{name}\"")).await?;
        }
        for kind in BULK {
            let table = kind.table();
            conn.batch(&format!(
                "CREATE TEMP TABLE fresh_{} (ix INTEGER PRIMARY KEY, {})",
                table.name,
                table.column_list(None)
            ))
            .await?;
        }
        conn.batch("CREATE TEMP TABLE fresh_rejected (ix INTEGER PRIMARY KEY)")
            .await?;
        Ok(Self {
            inner,
            options,
            clock,
            indexes,
            staged: HashMap::new(),
            accounts: Accounts::new(ACCOUNTS_IN_MEMORY),
        })
    }

    pub(crate) async fn load(
        &mut self,
        kind: Kind,
        records: &[Record],
    ) -> Result<Vec<Outcome>, StoreError> {
        if !is_bulk(kind) {
            return self.inner.load(kind, records).await;
        }
        let table = kind.table();
        let insert = format!(
            "INSERT INTO {} (ix, {}) VALUES ({})",
            stage(table),
            table.column_list(None),
            (1..=table.columns.len() + 1)
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let Staged { rows: next, order } = self.staged.entry(kind).or_default();
        let conn = &mut self.inner.conn;
        conn.batch("SAVEPOINT stage").await?;
        // One prepared statement for the batch, each row's cells bound as they are: staging runs
        // while the next batch is parsed, and is the loading thread's whole work then.
        let written = (|| {
            let Conn::Sqlite(lease) = &*conn else {
                return Err(StoreError::unavailable(
                    "staging a fresh load",
                    std::io::Error::other("the SQLite loader holds another connection"),
                ));
            };
            let mut statement = lease.connection().prepare_cached(&insert)?;
            let mut cells = Vec::with_capacity(table.columns.len());
            for record in records {
                statement.raw_bind_parameter(1, *next as i64)?;
                cells.clear();
                record.cell_refs(&mut cells);
                order.note(&cells[..table.key_len()]);
                for (i, (cell, column)) in cells.iter().zip(table.columns).enumerate() {
                    statement.raw_bind_parameter(i + 2, Param::cell_ref(cell, column.ty))?;
                }
                statement.raw_execute()?;
                *next += 1;
            }
            Ok::<_, StoreError>(())
        })();
        match written {
            Ok(()) => conn.batch("RELEASE stage").await?,
            Err(e) => {
                let _ = conn.batch("ROLLBACK TO stage; RELEASE stage").await;
                return Err(e);
            }
        }
        for record in records {
            self.accounts.stage(record);
        }
        Ok(vec![Outcome::Pending; records.len()])
    }

    pub(crate) async fn finish(mut self) -> Result<Vec<Rejection>, StoreError> {
        // Every file is read: from here on the work is sorting (see SORT_CACHE_KIB).
        self.inner
            .conn
            .batch(&format!("PRAGMA cache_size = -{SORT_CACHE_KIB}"))
            .await?;
        let mut rejections = Vec::new();
        for kind in BULK {
            rejections.extend(self.settle(kind).await?);
            let conn = &mut self.inner.conn;
            match kind {
                // Every account's person, once, in key order.
                Kind::Account => {
                    conn.batch(
                        "INSERT INTO customers (customer_id) \
                         SELECT DISTINCT customer_id FROM accounts ORDER BY customer_id",
                    )
                    .await?;
                }
                // Every agreement's history starts with its import.
                Kind::Agreement => {
                    conn.execute(
                        &Sql::new(
                            "INSERT INTO agreement_events \
                             (agreement_no, seq, kind, old_status, new_status, actor, reason, at) \
                             SELECT agreement_no, 1, $1, NULL, status, $2, NULL, $3 \
                             FROM agreements ORDER BY agreement_no"
                                .to_owned(),
                        ),
                        &[
                            EventKind::Import.as_str().into(),
                            IMPORT_ACTOR.into(),
                            self.clock.now().into(),
                        ],
                    )
                    .await?;
                }
                _ => {}
            }
        }
        // The indexes of the tables filled from others.
        for table in ["customers", "agreement_events"] {
            self.build_indexes(table).await?;
        }
        // The stages are temporary: they go with the loading connection.
        self.inner.finish()?;
        Ok(rejections)
    }

    /// Checks a bulk kind's staged rows, writes those that pass, and builds its table's indexes.
    async fn settle(&mut self, kind: Kind) -> Result<Vec<Rejection>, StoreError> {
        let table = kind.table();
        let staged = self.staged.get(&kind).map_or(0, |s| s.rows);
        let stage = stage(table);
        let mut verdicts: Verdicts<usize> = Verdicts::default();
        let columns = table.column_list(None);
        let passes = passes(kind, self.accounts.confirmed(kind));
        let order = self.key_order(kind);
        let conn = &mut self.inner.conn;
        // Optimistic: one statement writes, in key order, every row that keeps every rule it can
        // be checked against row by row. When that is every row, the kind is done.
        let written = conn
            .execute(
                &Sql::only(format!(
                    "INSERT OR IGNORE INTO {t} ({columns}) SELECT {columns} FROM {stage} s \
                     WHERE {passes} ORDER BY {order}",
                    t = table.name,
                )),
                &[],
            )
            .await? as usize;
        let mut keyed = false;
        if written != staged {
            self.find_refused(kind, staged, &mut verdicts, &mut keyed)
                .await?;
        }
        self.build_unique_indexes(kind, &mut verdicts, &mut keyed)
            .await?;
        self.build_indexes(table.name).await?;
        self.remember(verdicts.rows.keys().copied()).await?;
        let conn = &mut self.inner.conn;
        let mut rejections = Vec::with_capacity(verdicts.rows.len());
        if !verdicts.rows.is_empty() {
            for row in conn
                .rows(
                    &Sql::only(format!(
                        "SELECT s.ix, {} FROM {stage} s JOIN temp.fresh_rejected r ON r.ix = s.ix \
                         ORDER BY s.ix",
                        names(table.key.iter().copied(), Some("s"))
                    )),
                    &[],
                )
                .await?
            {
                let ix = number(row.first())?;
                rejections.extend(verdicts.rejection(kind, &ix, row[1..].to_vec(), |&i| Some(i)));
            }
        }
        Ok(rejections)
    }

    /// Finds the rows of `kind` that break a rule and why, and writes the others.
    async fn find_refused(
        &mut self,
        kind: Kind,
        staged: usize,
        verdicts: &mut Verdicts<usize>,
        keyed: &mut bool,
    ) -> Result<(), StoreError> {
        let table = kind.table();
        let stage = stage(table);
        let id = "s.ix";
        let keys = names(table.key.iter().copied(), None);
        let order = self.key_order(kind);
        let columns = table.column_list(None);
        let conn = &mut self.inner.conn;
        // Some row breaks a rule: start again, and find which rows and why.
        conn.batch(&format!("DELETE FROM {}", table.name)).await?;
        if staged > 0 {
            if kind == Kind::Agreement {
                for row in conn
                    .rows(&Sql::only(wrong_persons(&stage, id)), &[])
                    .await?
                {
                    if let Some(Cell::Text(person)) = row.get(1) {
                        verdicts.reject(number(row.first())?, person_rule::rejection(person));
                    }
                }
            }
            for reference in table.references {
                let mut found = Vec::new();
                for mut row in conn
                    .rows(&Sql::only(missing_references(&stage, id, reference)), &[])
                    .await?
                {
                    let value = row.pop().unwrap_or(Cell::Null);
                    found.push((number(row.first())?, value));
                }
                reject_missing(verdicts, reference, found);
            }
        }
        let written = conn
            .execute(
                &Sql::only(format!(
                    "INSERT OR IGNORE INTO {t} ({columns}) SELECT {columns} FROM {stage} \
                     ORDER BY {order}",
                    t = table.name
                )),
                &[],
            )
            .await? as usize;
        if written < staged {
            // A key repeats, or a unique value is taken: find which rows, then write again
            // without them.
            conn.batch(&format!(
                "CREATE INDEX {stage}_key ON fresh_{} ({keys}, ix)",
                table.name
            ))
            .await?;
            *keyed = true;
            for row in conn
                .rows(
                    &Sql::only(format!(
                        "SELECT s.ix, (SELECT min(f.ix) FROM {stage} f WHERE {same}) \
                         FROM {stage} s WHERE EXISTS \
                         (SELECT 1 FROM {stage} f WHERE {same} AND f.ix < s.ix)",
                        same = same_columns(table.key, "f", "s")
                    )),
                    &[],
                )
                .await?
            {
                verdicts.duplicate(number(row.first())?, number(row.get(1))?);
            }
            self.remember(verdicts.rows.keys().copied().collect::<Vec<_>>())
                .await?;
            let conn = &mut self.inner.conn;
            conn.batch(&format!(
                "DELETE FROM {t}; INSERT OR IGNORE INTO {t} ({columns}) SELECT {columns} \
                 FROM {stage} WHERE ix NOT IN (SELECT ix FROM temp.fresh_rejected) \
                 ORDER BY {order}",
                t = table.name
            ))
            .await?;
            // The rows still not written take a unique value a row of a smaller key holds.
            let unwritten = conn
                .rows(
                    &Sql::only(format!(
                        "SELECT s.ix, {columns_s} FROM {stage} s \
                         WHERE s.ix NOT IN (SELECT ix FROM temp.fresh_rejected) \
                         AND NOT EXISTS (SELECT 1 FROM {t} f WHERE {same})",
                        columns_s = table.column_list(Some("s")),
                        t = table.name,
                        same = same_columns(table.key, "f", "s")
                    )),
                    &[],
                )
                .await?;
            for row in unwritten {
                let ix = number(row.first())?;
                verdicts.reject(ix, holder(conn, table, &row[1..]).await?);
            }
        } else if !verdicts.rows.is_empty() {
            // Every key is distinct: the rows that broke a rule go by their keys.
            self.delete(table, verdicts.rows.keys().copied()).await?;
        }
        Ok(())
    }

    /// Builds `table`'s dropped unique indexes first: when one refuses the rows, the rows that
    /// take a value a row of a smaller key holds are rejected and deleted, and it is built
    /// again.
    async fn build_unique_indexes(
        &mut self,
        kind: Kind,
        verdicts: &mut Verdicts<usize>,
        keyed: &mut bool,
    ) -> Result<(), StoreError> {
        let table = kind.table();
        let unique: Vec<(String, String)> = self
            .indexes
            .iter()
            .filter(|(t, _, sql)| t == table.name && sql.starts_with("CREATE UNIQUE"))
            .map(|(_, name, sql)| (name.clone(), sql.clone()))
            .collect();
        for (name, sql) in unique {
            if !attempt(&mut self.inner.conn, &sql).await? {
                self.reject_taken(kind, verdicts, keyed).await?;
                self.inner.conn.batch(&sql).await?;
            }
            self.indexes.retain(|(_, n, _)| *n != name);
        }
        Ok(())
    }

    /// Rejects and deletes the written rows of `kind` that take a unique value a row of a smaller
    /// key holds.
    async fn reject_taken(
        &mut self,
        kind: Kind,
        verdicts: &mut Verdicts<usize>,
        keyed: &mut bool,
    ) -> Result<(), StoreError> {
        let table = kind.table();
        let stage = stage(table);
        let keys = names(table.key.iter().copied(), None);
        let conn = &mut self.inner.conn;
        if !*keyed {
            conn.batch(&format!(
                "CREATE INDEX {stage}_key ON fresh_{} ({keys}, ix)",
                table.name
            ))
            .await?;
            *keyed = true;
        }
        let mut refused = Vec::new();
        for unique in table.uniques {
            let probe = format!("fresh_probe_{}", table.name);
            conn.batch(&format!(
                "CREATE INDEX {probe} ON {} ({})",
                table.name,
                unique.join(", ")
            ))
            .await?;
            let id = format!(
                "(SELECT min(s.ix) FROM {stage} s WHERE {})",
                same_columns(table.key, "s", "f")
            );
            for row in conn
                .rows(&Sql::only(taken_values(table, unique, &id, None)), &[])
                .await?
            {
                let ix = number(row.first())?;
                // Ordered by row, then by holder: the first line of a row names its smallest
                // holder.
                if !verdicts.rows.contains_key(&ix) {
                    verdicts.reject(ix, taken(unique, &row[1..]));
                    refused.push(ix);
                }
            }
            conn.batch(&format!("DROP INDEX {probe}")).await?;
        }
        // Only these rows are written: a repeat's key is its first row's.
        self.delete(table, refused).await
    }

    /// Deletes the written rows of `table` that the staged rows `rows` (numbers) name by key.
    async fn delete(
        &mut self,
        table: &Table,
        rows: impl IntoIterator<Item = usize>,
    ) -> Result<(), StoreError> {
        self.remember(rows).await?;
        self.inner
            .conn
            .batch(&format!(
                "DELETE FROM {t} WHERE ({keys}) IN (SELECT {keys_s} FROM {stage} s \
                 JOIN temp.fresh_rejected r ON r.ix = s.ix)",
                t = table.name,
                keys = names(table.key.iter().copied(), None),
                keys_s = names(table.key.iter().copied(), Some("s")),
                stage = stage(table),
            ))
            .await?;
        Ok(())
    }

    /// The order in which `kind`'s staged rows are written: by key, the first staged of a key
    /// first (`INSERT OR IGNORE` keeps it). Rows staged in key order, as `export` writes them,
    /// are already in it: SQLite then reads them by number and sorts nothing.
    fn key_order(&self, kind: Kind) -> String {
        if self.staged.get(&kind).is_some_and(|s| !s.order.unsorted) {
            "ix".to_owned()
        } else {
            format!("{}, ix", names(kind.table().key.iter().copied(), None))
        }
    }

    /// Builds the dropped indexes of `table` that are not built yet.
    async fn build_indexes(&mut self, table: &str) -> Result<(), StoreError> {
        let conn = &mut self.inner.conn;
        for (_, _, sql) in self.indexes.iter().filter(|(t, _, _)| t == table) {
            conn.batch(sql).await?;
        }
        self.indexes.retain(|(t, _, _)| t != table);
        Ok(())
    }

    /// Writes the numbers `rows` to `temp.fresh_rejected` (in place of those there), for
    /// statements to join.
    async fn remember(&mut self, rows: impl IntoIterator<Item = usize>) -> Result<(), StoreError> {
        let conn = &mut self.inner.conn;
        conn.batch("DELETE FROM temp.fresh_rejected").await?;
        let insert = Sql::new("INSERT INTO temp.fresh_rejected (ix) VALUES ($1)".to_owned());
        for ix in rows {
            conn.execute(&insert, &[Param::Int(ix as i64)]).await?;
        }
        Ok(())
    }
}

/// The condition on a staged row `s` of `kind` that every reference names a stored row and, for
/// an agreement, that a CUSTOMER agreement's principal is its account's person; without the
/// conditions on the account when every row was `confirmed` to keep them ([`Accounts`]).
fn passes(kind: Kind, confirmed: bool) -> String {
    let mut conditions: Vec<String> = kind
        .table()
        .references
        .iter()
        .filter(|r| !(confirmed && r.to == ACCOUNTS.name))
        .map(|r| {
            format!(
                "(s.{c} IS NULL OR EXISTS (SELECT 1 FROM {to} r WHERE r.{target} = s.{c}))",
                c = r.column,
                to = r.to,
                target = r.target
            )
        })
        .collect();
    if kind == Kind::Agreement && !confirmed {
        conditions.push(
            "(s.principal_type <> 'CUSTOMER' OR NOT EXISTS (SELECT 1 FROM accounts a \
             WHERE a.user_id = s.alipay_user_id AND a.customer_id <> s.principal_id))"
                .to_owned(),
        );
    }
    if conditions.is_empty() {
        conditions.push("1".to_owned());
    }
    conditions.join(" AND ")
}

/// Whether a kind's keys were staged in order, as SQLite orders them: each no smaller than the
/// one before. Keys of text only: SQLite compares text byte by byte, as `str`'s order does.
#[derive(Default)]
struct KeyOrder {
    /// The last key staged, while the order holds (empty before the first).
    last: Vec<String>,
    /// Set once a key was smaller than the one before, or not text.
    unsorted: bool,
}

impl KeyOrder {
    fn note(&mut self, key: &[CellRef<'_>]) {
        if self.unsorted {
            return;
        }
        let in_order = key.iter().all(|cell| cell.text().is_some())
            && (self.last.is_empty()
                || self
                    .last
                    .iter()
                    .map(|t| Some(t.as_str()))
                    .le(key.iter().map(CellRef::text)));
        if !in_order {
            self.unsorted = true;
            self.last = Vec::new();
            return;
        }
        self.last.resize_with(key.len(), String::new);
        for (last, cell) in self.last.iter_mut().zip(key) {
            last.clear();
            last.push_str(cell.text().unwrap_or_default());
        }
    }
}

/// The most accounts [`Accounts`] holds: 2²³, in a map of at most 2²⁴ slots of 17 bytes
/// (272 MiB, and half as much again while it last grows; the 10⁷-agreement world's 5.6 million
/// accounts take 136 MiB). A load of more checks every row in SQL.
const ACCOUNTS_IN_MEMORY: usize = 1 << 23;

/// The staged accounts, for checking the rows that name one in memory: a hash join, which SQLite
/// lacks. In the statement that writes them, the checks of a kind's rows are B-tree descents
/// into the accounts, in the rows' order. The statement writing the 10⁷ world's agreements took
/// 35.1 s with its checks and 31.0 s without any; the 10⁶ world's agreements in the order
/// `export` writes them (by number: the accounts they name in no order), 4.3 s against 2.1 s.
///
/// Why a row confirmed here keeps the rules on its account: every staged account is written. An
/// account names nothing and has no unique rule but its key; of the rows of one key, the first
/// staged is written. So a row that names a staged account names a stored one, and a CUSTOMER
/// agreement whose principal is the person of its account's first row keeps the person rule. A
/// row not confirmed here (its account not staged yet, another person, too many accounts) is not
/// rejected by it: its kind is checked in SQL, as without this map.
#[derive(Debug)]
struct Accounts {
    /// The most accounts held ([`ACCOUNTS_IN_MEMORY`]).
    limit: usize,
    /// Each staged account's number (its user id's last twelve digits) and the number of its first
    /// row's person, [`Accounts::UNKNOWN`] when that is not twelve digits after `2088`.
    persons: foldhash::HashMap<u64, u64>,
    /// Set once there were more accounts than `limit`: nothing is confirmed.
    given_up: bool,
    /// The kinds with a staged row not confirmed.
    unconfirmed: HashSet<Kind>,
}

impl Accounts {
    /// A person whose id is not twelve digits after `2088`: no principal is confirmed against it.
    const UNKNOWN: u64 = u64::MAX;

    fn new(limit: usize) -> Self {
        Self {
            limit,
            persons: foldhash::HashMap::default(),
            given_up: false,
            unconfirmed: HashSet::new(),
        }
    }

    /// Notes a staged row: an account is remembered; a row naming one is confirmed or not.
    fn stage(&mut self, record: &Record) {
        if self.given_up {
            return;
        }
        let confirmed = match record {
            Record::Account(account) => {
                if let Some(user) = account_number(account.user_id.as_str()) {
                    let person =
                        account_number(account.customer_id.as_str()).unwrap_or(Self::UNKNOWN);
                    self.persons.entry(user).or_insert(person);
                    if self.persons.len() > self.limit {
                        self.given_up = true;
                        self.persons = foldhash::HashMap::default();
                    }
                }
                return;
            }
            Record::LogonId(logon) => self.names(logon.user_id.as_str()).is_some(),
            Record::OpenId(open) => self.names(open.user_id.as_str()).is_some(),
            Record::Agreement(a) => self.names(a.alipay_user_id.as_str()).is_some_and(|person| {
                a.principal_type != PrincipalType::Customer
                    || (person != Self::UNKNOWN
                        && account_number(a.principal_id.as_str()) == Some(person))
            }),
            _ => return,
        };
        if !confirmed {
            self.unconfirmed.insert(record.kind());
        }
    }

    /// The person of the staged account `user`, if it was staged.
    fn names(&self, user: &str) -> Option<u64> {
        self.persons.get(&account_number(user)?).copied()
    }

    /// Whether every staged row of `kind` keeps the rules on its account.
    fn confirmed(&self, kind: Kind) -> bool {
        !self.given_up && !self.unconfirmed.contains(&kind)
    }
}

/// The number of an account or person id: its twelve digits after `2088`.
fn account_number(id: &str) -> Option<u64> {
    let digits = id.strip_prefix("2088")?;
    if digits.len() != 12 {
        return None;
    }
    digits.bytes().try_fold(0u64, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// Why a row (its cells `row`) of `table` was refused though its key is new: the unique value
/// another row holds.
async fn holder(conn: &mut Conn<'_>, table: &Table, row: &[Cell]) -> Result<Outcome, StoreError> {
    if let Some(taken) = taken_unique(conn, table, row).await? {
        return Ok(taken);
    }
    Ok(Outcome::Rejected {
        field: table.columns[0].name,
        reason: "refused by a constraint of the database".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use agreements_domain::EntityStatus;
    use agreements_domain::ids::{CustomerId, LogonId, UserId};

    use super::*;
    use crate::records::{AccountRecord, LogonIdRecord};

    fn account(user: &str, person: &str) -> Record {
        Record::Account(AccountRecord {
            user_id: UserId::parse(user).unwrap(),
            customer_id: CustomerId::parse(person).unwrap(),
            status: EntityStatus::Normal,
        })
    }

    fn logon_id(user: &str) -> Record {
        Record::LogonId(LogonIdRecord {
            logon_id: LogonId::parse("13800000001").unwrap(),
            user_id: UserId::parse(user).unwrap(),
        })
    }

    #[test]
    fn staged_cells_are_the_records_cells_borrowed() {
        for record in [
            account("2088100000000001", "2088100000000002"),
            logon_id("2088100000000001"),
        ] {
            let mut staged = Vec::new();
            record.cell_refs(&mut staged);
            let cells = record.to_cells().cells;
            assert_eq!(staged, cells.iter().map(CellRef::from).collect::<Vec<_>>());
            assert!(
                staged
                    .iter()
                    .all(|cell| matches!(cell, CellRef::Text(std::borrow::Cow::Borrowed(_)))),
                "{staged:?}"
            );
        }
    }

    #[test]
    fn an_account_number_is_the_twelve_digits_after_2088() {
        assert_eq!(account_number("2088000000000000"), Some(0));
        assert_eq!(account_number("2088999999999999"), Some(999_999_999_999));
        for other in [
            "",
            "2088",
            "208800000000000",
            "20880000000000000",
            "2089000000000000",
        ] {
            assert_eq!(account_number(other), None, "{other}");
        }
        // Twelve bytes, not twelve digits.
        assert_eq!(account_number("2088+00000000001"), None);
    }

    #[test]
    fn rows_are_confirmed_only_against_accounts_staged_before_them() {
        const U1: &str = "2088100000000001";
        const U2: &str = "2088100000000002";
        let mut accounts = Accounts::new(ACCOUNTS_IN_MEMORY);
        accounts.stage(&account(U1, U1));
        accounts.stage(&logon_id(U1));
        assert!(accounts.confirmed(Kind::LogonId));
        accounts.stage(&logon_id(U2));
        accounts.stage(&account(U2, U1));
        assert!(!accounts.confirmed(Kind::LogonId));
        assert!(accounts.confirmed(Kind::OpenId), "no open id was staged");
    }

    #[test]
    fn keys_are_in_order_while_none_is_smaller_than_the_one_before() {
        let text = |t: &'static str| CellRef::Text(t.into());
        let mut order = KeyOrder::default();
        for key in [["A", "b"], ["A", "b"], ["A", "c"], ["B", "a"]] {
            order.note(&key.map(text));
        }
        assert!(!order.unsorted, "equal keys keep the order");
        order.note(&[text("A"), text("z")]);
        assert!(order.unsorted && order.last.is_empty());
        order.note(&[text("C"), text("a")]);
        assert!(order.unsorted, "once out of order, out of order");

        // Byte order, as SQLite's: "Z" < "a" < "é".
        let mut order = KeyOrder::default();
        for key in ["Z", "a", "é"] {
            order.note(&[text(key)]);
        }
        assert!(!order.unsorted);
        let mut order = KeyOrder::default();
        order.note(&[CellRef::Int(1)]);
        assert!(order.unsorted, "only text keys are compared");
    }

    #[test]
    fn more_accounts_than_the_limit_confirm_nothing() {
        let mut accounts = Accounts::new(2);
        for user in ["2088100000000001", "2088100000000002"] {
            accounts.stage(&account(user, user));
        }
        accounts.stage(&logon_id("2088100000000001"));
        assert!(accounts.confirmed(Kind::LogonId));
        accounts.stage(&account("2088100000000003", "2088100000000003"));
        assert!(accounts.given_up && accounts.persons.is_empty());
        for kind in [Kind::LogonId, Kind::OpenId, Kind::Agreement] {
            assert!(!accounts.confirmed(kind), "{kind}");
        }
    }
}
