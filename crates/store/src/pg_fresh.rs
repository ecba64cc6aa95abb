//! The fresh-load path on PostgreSQL (see [`crate::fresh`]), as `pg_restore` loads a table: the
//! bulk tables lose their foreign keys, keys, unique constraints and indexes (read from the
//! catalog, so they come back exactly as they were) and are truncated, which gives each a new,
//! empty file; a bulk kind's rows are copied (`COPY … FROM STDIN`) straight into its table;
//! then each table is checked in set operations, its keys and indexes built, and at the end the
//! foreign keys added. While rows are copied, a task owns the load's connection and keeps one
//! `COPY` open per kind: the server writes a batch while the next is parsed and encoded, instead
//! of each batch waiting for the last to be written. A freshly truncated table written by one
//! `COPY` after another keeps its rows in the order given, so a row's number is its rank by
//! physical address (`ctid`), asked only for the rows a check refuses.

use std::collections::HashMap;
use std::sync::Arc;

use agreements_domain::clock::Clock;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::db::{Conn, Param};
use crate::error::StoreError;
use crate::fresh::{
    BULK, BULK_TABLES, Rejection, Verdicts, attempt, first_stored_kind, is_bulk,
    missing_references, not_fresh, number, reject_missing, taken_values, wrong_persons,
};
use crate::load::{IMPORT_ACTOR, Kind, LoadOptions, Outcome, Record, person_rule, taken};
use crate::pg_load::{PgLoader, copy_row};
use crate::records::EventKind;
use crate::schema::{Cell, Table, names};
use crate::sql::Sql;

/// A row's physical address (`ctid`): block, then offset.
type Tid = (u32, u16);

fn tid(cell: Option<&Cell>) -> Result<Tid, StoreError> {
    let bad = || {
        StoreError::unavailable(
            "reading a fresh load's row addresses",
            std::io::Error::other(format!("not a ctid: {cell:?}")),
        )
    };
    let Some(Cell::Text(text)) = cell else {
        return Err(bad());
    };
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (block, offset) = inner.split_once(',').ok_or_else(bad)?;
    Ok((
        block.parse().map_err(|_| bad())?,
        offset.parse().map_err(|_| bad())?,
    ))
}

fn tid_text((block, offset): &Tid) -> String {
    format!("({block},{offset})")
}

/// A constraint or index taken off a bulk table for the load.
#[derive(Debug, Clone)]
struct Dropped {
    table: String,
    /// The statement that puts it back.
    create: String,
    /// A key, unique constraint or unique index: building it checks the rows.
    unique: bool,
}

/// A foreign key taken off for the load.
#[derive(Debug, Clone)]
struct ForeignKey {
    /// The referring table.
    table: String,
    /// The referenced table.
    to: String,
    /// The statement that adds it.
    create: String,
}

/// Batches of encoded rows the copier may hold beyond the one it sends.
const COPY_AHEAD: usize = 4;

pub(crate) struct PgFresh {
    /// Loads the small kinds, and holds the connection and its transaction; `None` while the
    /// copier holds them.
    inner: Option<PgLoader>,
    /// Copies the bulk kinds' rows, until the next small kind or the checks.
    copier: Option<Copier>,
    options: LoadOptions,
    clock: Arc<dyn Clock>,
    /// Keys, unique constraints and indexes to build, per table, keys first.
    dropped: Vec<Dropped>,
    /// Foreign keys not added back yet.
    foreign_keys: Vec<ForeignKey>,
    /// Rows copied per bulk kind.
    copied: HashMap<Kind, usize>,
}

/// A task that owns the load's connection and copies the batches it is sent, one `COPY` per run
/// of batches of a kind; it hands the loader back when the batches end.
struct Copier {
    batches: mpsc::Sender<(Kind, Vec<u8>)>,
    task: JoinHandle<(PgLoader, Result<(), StoreError>)>,
}

impl Copier {
    fn start(loader: PgLoader) -> Self {
        let (batches, received) = mpsc::channel(COPY_AHEAD);
        let task = tokio::spawn(async move {
            let mut loader = loader;
            let result = copy_batches(&mut loader.conn, received).await;
            (loader, result)
        });
        Self { batches, task }
    }
}

/// Copies every batch received, each run of batches of one kind in one `COPY`.
async fn copy_batches(
    conn: &mut Conn<'static>,
    mut batches: mpsc::Receiver<(Kind, Vec<u8>)>,
) -> Result<(), StoreError> {
    let Conn::Postgres(conn) = conn else {
        return Err(lost());
    };
    let conn: &mut PgConnection = conn.raw();
    let mut next = batches.recv().await;
    while let Some((kind, data)) = next {
        let table = kind.table();
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY {} ({}) FROM STDIN",
                table.name,
                table.column_list(None)
            ))
            .await?;
        copy.send(data).await?;
        next = loop {
            match batches.recv().await {
                Some((k, data)) if k == kind => {
                    copy.send(data).await?;
                }
                other => break other,
            }
        };
        copy.finish().await?;
    }
    Ok(())
}

/// The error of a load whose connection is gone (a copier that panicked).
fn lost() -> StoreError {
    StoreError::unavailable(
        "copying a fresh load's rows",
        std::io::Error::other("the load's connection was lost"),
    )
}

/// The load's connection, when no copier holds it.
fn connection(inner: &mut Option<PgLoader>) -> Result<&mut Conn<'static>, StoreError> {
    Ok(&mut inner.as_mut().ok_or_else(lost)?.conn)
}

impl std::fmt::Debug for PgFresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgFresh")
            .field("options", &self.options)
            .field("copied", &self.copied)
            .finish_non_exhaustive()
    }
}

impl PgFresh {
    pub(crate) async fn new(
        conn: PoolConnection<Postgres>,
        options: LoadOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let mut inner = PgLoader::new(conn, options, clock.clone(), true).await?;
        let conn = &mut inner.conn;
        if let Some(kind) = first_stored_kind(conn).await? {
            return Err(not_fresh(kind));
        }
        let tables = BULK_TABLES
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let bulk = format!(
            "SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace \
             AND relname IN ({tables})"
        );
        let create = |row: &[Cell]| match row {
            [Cell::Text(table), Cell::Text(name), Cell::Text(def)] => Some((
                table.clone(),
                name.clone(),
                format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}"),
            )),
            _ => None,
        };
        let mut foreign = Vec::new();
        for row in conn
            .rows(
                &Sql::only(format!(
                    "SELECT c.conrelid::regclass::text, quote_ident(c.conname), \
                     pg_get_constraintdef(c.oid), c.confrelid::regclass::text \
                     FROM pg_constraint c WHERE c.contype = 'f' \
                     AND (c.conrelid IN ({bulk}) OR c.confrelid IN ({bulk})) ORDER BY 1, 2"
                )),
                &[],
            )
            .await?
        {
            if let (Some((table, name, create)), Some(Cell::Text(to))) =
                (create(&row[..3]), row.get(3))
            {
                foreign.push((
                    name,
                    ForeignKey {
                        table,
                        to: to.clone(),
                        create,
                    },
                ));
            }
        }
        let keys: Vec<(String, String, String)> = conn
            .rows(
                &Sql::only(format!(
                    "SELECT c.conrelid::regclass::text, quote_ident(c.conname), \
                     pg_get_constraintdef(c.oid) FROM pg_constraint c \
                     WHERE c.contype IN ('p', 'u') AND c.conrelid IN ({bulk}) \
                     ORDER BY 1, c.contype, 2"
                )),
                &[],
            )
            .await?
            .iter()
            .filter_map(|r| create(r))
            .collect();
        let indexes = conn
            .rows(
                &Sql::only(format!(
                    "SELECT i.indrelid::regclass::text, quote_ident(c.relname), \
                     pg_get_indexdef(i.indexrelid), i.indisunique::int \
                     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                     WHERE i.indrelid IN ({bulk}) \
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) \
                     ORDER BY 1, 2"
                )),
                &[],
            )
            .await?;
        let mut dropped: Vec<Dropped> = keys
            .iter()
            .map(|(table, _, create)| Dropped {
                table: table.clone(),
                create: create.clone(),
                unique: true,
            })
            .collect();
        let mut drop = Vec::new();
        for (name, key) in &foreign {
            drop.push(format!("ALTER TABLE {} DROP CONSTRAINT {name}", key.table));
        }
        for (table, name, _) in &keys {
            drop.push(format!("ALTER TABLE {table} DROP CONSTRAINT {name}"));
        }
        for row in &indexes {
            if let [
                Cell::Text(table),
                Cell::Text(name),
                Cell::Text(def),
                Cell::Int(unique),
            ] = row.as_slice()
            {
                drop.push(format!("DROP INDEX {name}"));
                dropped.push(Dropped {
                    table: table.clone(),
                    create: def.clone(),
                    unique: *unique != 0,
                });
            }
        }
        // Keys and unique indexes first: building one is how repeats are found.
        dropped.sort_by_key(|d| !d.unique);
        drop.push(format!("TRUNCATE {}", BULK_TABLES.join(", ")));
        conn.batch(&drop.join(";\n")).await?;
        Ok(Self {
            inner: Some(inner),
            copier: None,
            options,
            clock,
            dropped,
            foreign_keys: foreign.into_iter().map(|(_, key)| key).collect(),
            copied: HashMap::new(),
        })
    }

    pub(crate) async fn load(
        &mut self,
        kind: Kind,
        records: &[Record],
    ) -> Result<Vec<Outcome>, StoreError> {
        if !is_bulk(kind) {
            return self.loader().await?.load(kind, records).await;
        }
        let mut data = String::with_capacity(records.len() * 256);
        let mut cells = Vec::new();
        for record in records {
            record.cell_refs(&mut cells);
            copy_row(&mut data, cells.drain(..));
        }
        if self.copier.is_none() {
            let loader = self.inner.take().ok_or_else(lost)?;
            self.copier = Some(Copier::start(loader));
        }
        let sent = match &self.copier {
            Some(copier) => copier.batches.send((kind, data.into_bytes())).await.is_ok(),
            None => false,
        };
        if !sent {
            // The copier stopped: its result says why.
            self.loader().await?;
            return Err(lost());
        }
        *self.copied.entry(kind).or_default() += records.len();
        Ok(vec![Outcome::Pending; records.len()])
    }

    /// The loader, once the copier (if one runs) has copied every batch sent and handed it back.
    async fn loader(&mut self) -> Result<&mut PgLoader, StoreError> {
        if let Some(copier) = self.copier.take() {
            drop(copier.batches);
            let (loader, result) = copier
                .task
                .await
                .map_err(|e| StoreError::unavailable("copying a fresh load's rows", e))?;
            self.inner = Some(loader);
            result?;
        }
        self.inner.as_mut().ok_or_else(lost)
    }

    pub(crate) async fn finish(mut self) -> Result<Vec<Rejection>, StoreError> {
        // The checks join whole tables: hash joins (the per-batch loader turns them off).
        self.loader()
            .await?
            .conn
            .batch("SET enable_hashjoin = on; SET enable_mergejoin = on")
            .await?;
        let mut rejections = Vec::new();
        for kind in BULK {
            rejections.extend(self.settle(kind).await?);
            let filled = match kind {
                Kind::Account => {
                    connection(&mut self.inner)?
                        .batch(
                            "INSERT INTO customers (customer_id) \
                             SELECT DISTINCT customer_id FROM accounts",
                        )
                        .await?;
                    "customers"
                }
                Kind::Agreement => {
                    connection(&mut self.inner)?
                        .execute(
                            &Sql::new(
                                "INSERT INTO agreement_events \
                                 (agreement_no, seq, kind, old_status, new_status, actor, reason, at) \
                                 SELECT agreement_no, 1, $1, NULL, status, $2, NULL, $3 FROM agreements"
                                    .to_owned(),
                            ),
                            &[
                                EventKind::Import.as_str().into(),
                                IMPORT_ACTOR.into(),
                                self.clock.now().into(),
                            ],
                        )
                        .await?;
                    "agreement_events"
                }
                _ => continue,
            };
            self.build(filled).await?;
        }
        let conn = connection(&mut self.inner)?;
        let rest: Vec<&str> = self
            .foreign_keys
            .iter()
            .map(|k| k.create.as_str())
            .collect();
        if !rest.is_empty() {
            conn.batch(&rest.join(";\n")).await?;
        }
        if self.options.dry_run {
            conn.batch("ROLLBACK").await?;
        } else {
            conn.batch("COMMIT").await?;
            conn.batch(&format!("ANALYZE {}", BULK_TABLES.join(", ")))
                .await?;
            self.loader().await?.analyze().await?;
        }
        if let Some(loader) = self.inner.take() {
            loader.close().await?;
        }
        Ok(rejections)
    }

    /// Checks a bulk kind's rows, deletes those that break a rule, and builds its table's keys
    /// and indexes.
    async fn settle(&mut self, kind: Kind) -> Result<Vec<Rejection>, StoreError> {
        let table = kind.table();
        let rows = table.name;
        let id = "s.ctid::text";
        let mut verdicts: Verdicts<Tid> = Verdicts::default();
        let ready = self.ready_foreign_keys(table.name);
        let conn = connection(&mut self.inner)?;
        if self.copied.get(&kind).copied().unwrap_or(0) > 0 {
            if kind == Kind::Agreement {
                for row in conn.rows(&Sql::only(wrong_persons(rows, id)), &[]).await? {
                    if let Some(Cell::Text(person)) = row.get(1) {
                        verdicts.reject(tid(row.first())?, person_rule::rejection(person));
                    }
                }
            }
            // Optimistic: adding the table's foreign keys checks every reference in one pass
            // each (work the load does anyway); only when one fails are the rows looked for.
            let mut refused = false;
            let mut added = Vec::new();
            for key in &ready {
                if !attempt(conn, &key.create).await? {
                    refused = true;
                    break;
                }
                added.push(key.create.clone());
            }
            self.foreign_keys.retain(|k| !added.contains(&k.create));
            if refused {
                for reference in table.references {
                    let mut found = Vec::new();
                    for mut row in conn
                        .rows(&Sql::only(missing_references(rows, id, reference)), &[])
                        .await?
                    {
                        let value = row.pop().unwrap_or(Cell::Null);
                        found.push((tid(row.first())?, value));
                    }
                    reject_missing(&mut verdicts, reference, found);
                }
            }
        }
        // Build the keys and unique indexes; the first that fails tells that a key repeats or a
        // unique value is taken: find which rows, and build again once they are gone.
        let unique: Vec<String> = self
            .dropped
            .iter()
            .filter(|d| d.table == table.name && d.unique)
            .map(|d| d.create.clone())
            .collect();
        let mut built = 0;
        for create in &unique {
            if !attempt(conn, create).await? {
                repeated(conn, table, &mut verdicts).await?;
                break;
            }
            built += 1;
        }
        let rejections = if verdicts.rows.is_empty() {
            Vec::new()
        } else {
            self.reject(kind, &verdicts).await?
        };
        let conn = connection(&mut self.inner)?;
        for create in &unique[built..] {
            conn.batch(create).await?;
        }
        self.dropped
            .retain(|d| !(d.table == table.name && d.unique));
        self.build(table.name).await?;
        Ok(rejections)
    }

    /// The foreign keys of `table` whose referenced tables are complete: not bulk tables, or
    /// bulk tables settled (checked and keyed) already.
    fn ready_foreign_keys(&self, table: &str) -> Vec<ForeignKey> {
        let pending: Vec<&str> = self.dropped.iter().map(|d| d.table.as_str()).collect();
        self.foreign_keys
            .iter()
            .filter(|k| k.table == table && k.to != table && !pending.contains(&k.to.as_str()))
            .cloned()
            .collect()
    }

    /// Numbers the rows of `verdicts` (by rank of address: the order they were copied in),
    /// deletes the rejected ones, and returns their rejections.
    async fn reject(
        &mut self,
        kind: Kind,
        verdicts: &Verdicts<Tid>,
    ) -> Result<Vec<Rejection>, StoreError> {
        let table = kind.table();
        let ids: Vec<String> = verdicts.ids().iter().map(tid_text).collect();
        let ids: Vec<Option<&str>> = ids.iter().map(|t| Some(t.as_str())).collect();
        let conn = connection(&mut self.inner)?;
        let numbered = conn
            .rows(
                &Sql::new(format!(
                    "SELECT x.id::text, x.n, {keys} FROM \
                     (SELECT ctid AS id, row_number() OVER (ORDER BY ctid) - 1 AS n, {keys} FROM {t}) x \
                     WHERE x.id = ANY($1::text[]::tid[])",
                    keys = names(table.key.iter().copied(), None),
                    t = table.name,
                )),
                &[Param::Texts(&ids)],
            )
            .await?;
        let mut numbers = HashMap::with_capacity(numbered.len());
        let mut keys = HashMap::with_capacity(numbered.len());
        for row in numbered {
            let id = tid(row.first())?;
            numbers.insert(id, number(row.get(1))?);
            keys.insert(id, row[2..].to_vec());
        }
        let rejected: Vec<String> = verdicts.rows.keys().map(tid_text).collect();
        let rejected: Vec<Option<&str>> = rejected.iter().map(|t| Some(t.as_str())).collect();
        conn.execute(
            &Sql::new(format!(
                "DELETE FROM {} WHERE ctid = ANY($1::text[]::tid[])",
                table.name
            )),
            &[Param::Texts(&rejected)],
        )
        .await?;
        let mut rejections: Vec<Rejection> = verdicts
            .rows
            .keys()
            .filter_map(|id| {
                let key = keys.get(id).cloned().unwrap_or_default();
                verdicts.rejection(kind, id, key, |i| numbers.get(i).copied())
            })
            .collect();
        rejections.sort_by_key(|r| r.row);
        Ok(rejections)
    }

    /// Builds the dropped indexes and keys of `table` not built yet.
    async fn build(&mut self, table: &str) -> Result<(), StoreError> {
        let conn = connection(&mut self.inner)?;
        for dropped in self.dropped.iter().filter(|d| d.table == table) {
            conn.batch(&dropped.create).await?;
        }
        self.dropped.retain(|d| d.table != table);
        Ok(())
    }
}

/// Finds the rows of `table` that repeat a key given before them, and those that take a unique
/// value a row of a smaller key holds.
async fn repeated(
    conn: &mut Conn<'_>,
    table: &Table,
    verdicts: &mut Verdicts<Tid>,
) -> Result<(), StoreError> {
    let keys = names(table.key.iter().copied(), None);
    for row in conn
        .rows(
            &Sql::only(format!(
                "SELECT x.id::text, x.first::text FROM \
                 (SELECT ctid AS id, first_value(ctid) OVER (PARTITION BY {keys} ORDER BY ctid) AS first \
                  FROM {t}) x WHERE x.id <> x.first",
                t = table.name
            )),
            &[],
        )
        .await?
    {
        verdicts.duplicate(tid(row.first())?, tid(row.get(1))?);
    }
    // Rows refused already hold nothing.
    let refused: Vec<String> = verdicts.rows.keys().map(tid_text).collect();
    let refused: Vec<Option<&str>> = refused.iter().map(|t| Some(t.as_str())).collect();
    for unique in table.uniques {
        let mut previous = None;
        let taken_sql = taken_values(
            table,
            unique,
            "f.ctid::text",
            Some("{}.ctid <> ALL($1::text[]::tid[])"),
        );
        for row in conn
            .rows(&Sql::new(taken_sql), &[Param::Texts(&refused)])
            .await?
        {
            let id = tid(row.first())?;
            // Ordered by row, then by holder: a row's first line names its smallest holder.
            if previous != Some(id) {
                previous = Some(id);
                verdicts.reject(id, taken(unique, &row[1..]));
            }
        }
    }
    Ok(())
}
