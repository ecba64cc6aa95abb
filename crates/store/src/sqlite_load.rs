//! Loading into SQLite: one connection, one transaction per batch, one prepared statement per
//! row (SQLite runs in-process, so a statement costs microseconds, and a failing row fails
//! alone). A new row is inserted first and diagnosed only if a constraint refuses it, so the
//! common case costs one statement.

use std::collections::HashMap;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OptionalExtension, ToSql, params_from_iter};

use crate::StoreError;
use crate::load::{
    Cell, Kind, LoadOptions, Outcome, Record, Row, Spec, agreement_column, batch_statements,
    first_of_each_key, missing_reference, settled, taken, wrong_person,
};

/// Page cache of the loading connection (KiB): index pages of a large table stay in memory.
const LOAD_CACHE_KIB: i64 = 256 * 1024;
/// WAL pages between checkpoints of the loading connection (the default is 1,000): 1 GiB. A load
/// dirties pages all over the agreements' B-trees, and every batch writes its dirty pages to the
/// WAL again; a checkpoint copies only the newest copy of each page, so checkpointing rarely turns
/// many writes of a page into one (a 10^6-agreement load, one session: 41.5 s at 128 MiB,
/// 31.4–40.1 s at 1 GiB).
/// The file is truncated when the load ends.
const LOAD_CHECKPOINT_PAGES: i64 = 262_144;

impl ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Cell::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(f) => Cell::Text(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Cell::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

fn read_cells(r: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Vec<Cell>> {
    (0..n).map(|i| r.get_ref(i).map(cell)).collect()
}

/// The statements of one kind, built once.
struct Statements {
    insert: String,
    select: String,
    update: String,
    children: Vec<ChildStatements>,
}

struct ChildStatements {
    select: String,
    delete: String,
    insert: String,
    width: usize,
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_match(spec: &Spec) -> String {
    spec.key_columns()
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} = ?{}", c.name, i + 1))
        .collect::<Vec<_>>()
        .join(" AND ")
}

impl Statements {
    fn new(spec: &Spec) -> Self {
        let keys: Vec<&str> = spec.key_columns().iter().map(|c| c.name).collect();
        let sets: Vec<String> = spec.columns[spec.key..]
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ?{}", c.name, spec.key + i + 1))
            .collect();
        Self {
            insert: format!(
                "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
                spec.table,
                spec.column_list(),
                placeholders(1, spec.columns.len()),
                keys.join(", ")
            ),
            select: format!(
                "SELECT {} FROM {} WHERE {}",
                spec.column_list(),
                spec.table,
                key_match(spec)
            ),
            update: format!(
                "UPDATE {} SET {} WHERE {}",
                spec.table,
                sets.join(", "),
                key_match(spec)
            ),
            children: spec
                .children
                .iter()
                .map(|child| {
                    let cols: Vec<&str> = child.columns.iter().map(|c| c.name).collect();
                    ChildStatements {
                        select: format!(
                            "SELECT {} FROM {} WHERE {} = ?1",
                            cols.join(", "),
                            child.table,
                            child.parent
                        ),
                        delete: format!("DELETE FROM {} WHERE {} = ?1", child.table, child.parent),
                        insert: format!(
                            "INSERT INTO {} ({}, {}) VALUES ({})",
                            child.table,
                            child.parent,
                            cols.join(", "),
                            placeholders(1, cols.len() + 1)
                        ),
                        width: cols.len(),
                    }
                })
                .collect(),
        }
    }
}

pub(crate) struct SqliteLoader {
    conn: Connection,
    options: LoadOptions,
    statements: HashMap<Kind, Statements>,
}

impl std::fmt::Debug for SqliteLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLoader")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

impl SqliteLoader {
    pub(crate) fn new(conn: Connection, options: LoadOptions) -> Result<Self, StoreError> {
        conn.pragma_update(None, "cache_size", -LOAD_CACHE_KIB)?;
        // Checkpoint less often: a page written by many batches is copied to the database once.
        conn.pragma_update(None, "wal_autocheckpoint", LOAD_CHECKPOINT_PAGES)?;
        if options.dry_run {
            conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        Ok(Self {
            conn,
            options,
            statements: HashMap::new(),
        })
    }

    pub(crate) fn load(
        &mut self,
        kind: Kind,
        records: &[Record],
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut outcomes = vec![None; records.len()];
        let mut rows = first_of_each_key(kind, records, &mut outcomes);
        // In key order: consecutive rows land on neighbouring pages of the table's B-tree.
        let spec = kind.spec();
        rows.sort_unstable_by(|(_, a), (_, b)| a.key(spec).cmp(b.key(spec)));
        self.statements
            .entry(kind)
            .or_insert_with(|| Statements::new(kind.spec()));
        let [begin, commit, rollback] = batch_statements(self.options.dry_run, "BEGIN IMMEDIATE");
        self.conn.execute_batch(begin)?;
        let at = crate::unix_now();
        let run = || -> Result<(), StoreError> {
            let statements = &self.statements[&kind];
            for (i, row) in rows {
                let outcome = load_row(&self.conn, kind, statements, row, self.options, at)?;
                outcomes[i] = Some(outcome);
            }
            Ok(())
        };
        match run() {
            Ok(()) => self.conn.execute_batch(commit)?,
            Err(e) => {
                // The batch is undone whole; if even that fails the connection is dropped with it.
                let _ = self.conn.execute_batch(rollback);
                return Err(e);
            }
        }
        Ok(settled(outcomes))
    }

    pub(crate) fn finish(self) -> Result<(), StoreError> {
        if self.options.dry_run {
            self.conn.execute_batch("ROLLBACK")?;
        } else {
            // Give the WAL's disk space back. A truncating checkpoint waits for readers and holds
            // writers off meanwhile, so it gets no busy timeout: if a running server is reading,
            // SQLite reports busy (a result, not an error) at once and the server's own
            // checkpoints finish the work.
            self.conn.busy_timeout(std::time::Duration::ZERO)?;
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }
}

fn load_row(
    conn: &Connection,
    kind: Kind,
    statements: &Statements,
    row: Row,
    options: LoadOptions,
    at: i64,
) -> Result<Outcome, StoreError> {
    let spec = kind.spec();
    if let Some(rejected) = check_person(conn, kind, &row)? {
        return Ok(rejected);
    }
    if kind == Kind::Account {
        // Probe first: the person row is created only for an account that will be written.
        if let Some(stored) = select(conn, spec, statements, &row)? {
            return existing(conn, kind, statements, stored, row, options, at);
        }
        add_person(conn, &row)?;
    }
    match conn
        .prepare_cached(&statements.insert)?
        .execute(params_from_iter(&row.cells))
    {
        Ok(1) => {
            write_children(conn, statements, &row, false)?;
            record_event(conn, kind, None, &row, at)?;
            Ok(Outcome::Inserted)
        }
        Ok(_) => {
            let stored = select(conn, spec, statements, &row)?
                .ok_or_else(|| StoreError::Unavailable("a stored row vanished".to_owned()))?;
            existing(conn, kind, statements, stored, row, options, at)
        }
        Err(e) if is_constraint(&e) => diagnose(conn, spec, &row, &e),
        Err(e) => Err(e.into()),
    }
}

/// A row whose key is stored: unchanged, a conflict, or (update mode) overwritten.
fn existing(
    conn: &Connection,
    kind: Kind,
    statements: &Statements,
    stored: Row,
    row: Row,
    options: LoadOptions,
    at: i64,
) -> Result<Outcome, StoreError> {
    let spec = kind.spec();
    let fields = spec.diff(&stored, &row);
    if fields.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    if !options.update {
        return Ok(Outcome::Conflict { fields });
    }
    if kind == Kind::Account {
        add_person(conn, &row)?;
    }
    match conn
        .prepare_cached(&statements.update)?
        .execute(params_from_iter(&row.cells))
    {
        Ok(_) => {
            write_children(conn, statements, &row, true)?;
            record_event(conn, kind, Some(&stored), &row, at)?;
            Ok(Outcome::Updated)
        }
        Err(e) if is_constraint(&e) => diagnose(conn, spec, &row, &e),
        Err(e) => Err(e.into()),
    }
}

/// An imported (`stored` is `None`) or overwritten agreement gets a history entry.
fn record_event(
    conn: &Connection,
    kind: Kind,
    stored: Option<&Row>,
    row: &Row,
    at: i64,
) -> Result<(), StoreError> {
    let Some(event) = crate::load::event(kind, stored, row) else {
        return Ok(());
    };
    if stored.is_none() {
        // A new agreement has no history yet: its first event is number 1, written without the
        // `MAX(seq)` lookup (an INSERT … SELECT from its own table costs SQLite a temporary copy).
        conn.prepare_cached(
            "INSERT INTO agreement_events (agreement_no, seq, kind, old_status, new_status, actor, reason, at) \
             VALUES (?1, 1, ?2, NULL, ?3, 'import', NULL, ?4)",
        )?
        .execute(rusqlite::params![
            event.agreement_no,
            event.kind.as_str(),
            event.new_status,
            at
        ])?;
        return Ok(());
    }
    crate::sqlite::insert_event(
        conn,
        event.agreement_no,
        event.kind,
        event.old_status,
        event.new_status,
        "import",
        None,
        at,
    )
}

fn add_person(conn: &Connection, row: &Row) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR IGNORE INTO customers (customer_id) VALUES (?1)")?
        .execute([&row.cells[1]])?;
    Ok(())
}

/// A CUSTOMER agreement's principal must be the person of its signing account.
fn check_person(conn: &Connection, kind: Kind, row: &Row) -> Result<Option<Outcome>, StoreError> {
    if kind != Kind::Agreement
        || row.cells[agreement_column::PRINCIPAL_TYPE] != Cell::Text("CUSTOMER".to_owned())
    {
        return Ok(None);
    }
    let person: Option<String> = conn
        .prepare_cached("SELECT customer_id FROM accounts WHERE user_id = ?1")?
        .query_row([&row.cells[agreement_column::ALIPAY_USER_ID]], |r| r.get(0))
        .optional()?;
    Ok(person.and_then(|person| {
        (Cell::Text(person.clone()) != row.cells[agreement_column::PRINCIPAL_ID])
            .then(|| wrong_person(&person))
    }))
}

fn select(
    conn: &Connection,
    spec: &Spec,
    statements: &Statements,
    row: &Row,
) -> Result<Option<Row>, StoreError> {
    let n = spec.columns.len();
    let Some(cells) = conn
        .prepare_cached(&statements.select)?
        .query_row(params_from_iter(row.key(spec)), |r| read_cells(r, n))
        .optional()?
    else {
        return Ok(None);
    };
    let mut children = Vec::with_capacity(statements.children.len());
    for child in &statements.children {
        let mut stmt = conn.prepare_cached(&child.select)?;
        let rows = stmt
            .query_map([&cells[0]], |r| read_cells(r, child.width))?
            .collect::<Result<Vec<_>, _>>()?;
        children.push(crate::load::sorted(rows));
    }
    Ok(Some(Row { cells, children }))
}

fn write_children(
    conn: &Connection,
    statements: &Statements,
    row: &Row,
    replace: bool,
) -> Result<(), StoreError> {
    for (child, rows) in statements.children.iter().zip(&row.children) {
        if replace {
            conn.prepare_cached(&child.delete)?
                .execute([&row.cells[0]])?;
        }
        let mut insert = conn.prepare_cached(&child.insert)?;
        for cells in rows {
            insert.execute(params_from_iter(
                std::iter::once(&row.cells[0]).chain(cells),
            ))?;
        }
    }
    Ok(())
}

/// Why a constraint refused `row`: a reference that names nothing, or a unique value taken.
fn diagnose(
    conn: &Connection,
    spec: &Spec,
    row: &Row,
    error: &rusqlite::Error,
) -> Result<Outcome, StoreError> {
    for reference in spec.references {
        let value = &row.cells[reference.column];
        if *value == Cell::Null {
            continue;
        }
        let sql = format!(
            "SELECT 1 FROM {} WHERE {} = ?1",
            reference.table, reference.target
        );
        if conn
            .prepare_cached(&sql)?
            .query_row([value], |_| Ok(()))
            .optional()?
            .is_none()
        {
            return Ok(missing_reference(spec, reference, value));
        }
    }
    for unique in spec.uniques {
        if unique.columns.iter().any(|&c| row.cells[c] == Cell::Null) {
            continue;
        }
        let matches: Vec<String> = unique
            .columns
            .iter()
            .enumerate()
            .map(|(i, &c)| format!("{} = ?{}", spec.columns[c].name, i + 1))
            .collect();
        let keys: Vec<&str> = spec.key_columns().iter().map(|c| c.name).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            keys.join(", "),
            spec.table,
            matches.join(" AND ")
        );
        let holder = conn
            .prepare_cached(&sql)?
            .query_row(
                params_from_iter(unique.columns.iter().map(|&c| &row.cells[c])),
                |r| read_cells(r, spec.key),
            )
            .optional()?;
        if let Some(holder) = holder
            && holder != row.key(spec)
        {
            return Ok(taken(spec, unique, &holder));
        }
    }
    Ok(Outcome::Rejected {
        field: spec.columns[0].name,
        reason: format!("refused by the database: {error}"),
    })
}

/// Reads one kind page by page, in key order, from one snapshot (a read transaction held for the
/// exporter's life).
#[derive(Debug)]
pub(crate) struct SqliteExporter {
    conn: Connection,
}

impl SqliteExporter {
    pub(crate) fn new(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch("BEGIN")?;
        Ok(Self { conn })
    }

    pub(crate) fn page(
        &mut self,
        kind: Kind,
        after: Option<&Record>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let spec = kind.spec();
        let statements = Statements::new(spec);
        let after = after.map(Record::to_row);
        let sql = crate::load::page_query(spec, after.is_some(), limit, |i| format!("?{i}"));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let key: &[Cell] = after.as_ref().map_or(&[], |row| row.key(spec));
        let mains = stmt
            .query_map(params_from_iter(key), |r| read_cells(r, spec.columns.len()))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut records = Vec::with_capacity(mains.len());
        for cells in mains {
            let mut children = Vec::with_capacity(statements.children.len());
            for child in &statements.children {
                let mut stmt = self.conn.prepare_cached(&child.select)?;
                let rows = stmt
                    .query_map([&cells[0]], |r| read_cells(r, child.width))?
                    .collect::<Result<Vec<_>, _>>()?;
                children.push(crate::load::sorted(rows));
            }
            records.push(Record::from_row(kind, Row { cells, children })?);
        }
        Ok(records)
    }

    pub(crate) fn finish(self) -> Result<(), StoreError> {
        self.conn.execute_batch("ROLLBACK")?;
        Ok(())
    }
}
