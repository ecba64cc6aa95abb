//! Loading into PostgreSQL, set-based: a batch is copied (`COPY … FROM STDIN`) into a temporary
//! staging table, classified with a few joins against the real tables, and written with one
//! `INSERT … SELECT` (and one `UPDATE … FROM` in update mode). Every row a constraint would refuse
//! is found and set aside first, so a statement never fails on data and the batch transaction is
//! never aborted by one bad row.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Postgres, Row as _, raw_sql};

use crate::StoreError;
use crate::load::{
    Cell, Kind, LoadOptions, Outcome, Record, Row, Spec, Ty, agreement_column, batch_statements,
    first_of_each_key, missing_reference, settled, sorted, taken, wrong_person,
};

pub(crate) struct PgLoader {
    conn: PoolConnection<Postgres>,
    options: LoadOptions,
    /// The kinds loaded so far (each has its staging table), in load order.
    staged: BTreeSet<Kind>,
}

impl std::fmt::Debug for PgLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLoader")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn stage(spec: &Spec) -> String {
    format!("load_{}", spec.table)
}

/// `t.k1 = s.k1 AND …` over the given columns.
fn matching(spec: &Spec, columns: &[usize], left: &str, right: &str) -> String {
    columns
        .iter()
        .map(|&c| {
            let name = spec.columns[c].name;
            format!("{left}.{name} = {right}.{name}")
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn key_indexes(spec: &Spec) -> Vec<usize> {
    (0..spec.key).collect()
}

/// `(t.k1, t.k2)`.
fn key_tuple(spec: &Spec, alias: &str) -> String {
    let cols: Vec<String> = spec
        .key_columns()
        .iter()
        .map(|c| format!("{alias}.{}", c.name))
        .collect();
    format!("({})", cols.join(", "))
}

fn read_cells(
    r: &PgRow,
    spec_columns: &[crate::load::Column],
    from: usize,
) -> Result<Vec<Cell>, StoreError> {
    spec_columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(match c.ty {
                Ty::Text => r
                    .try_get::<Option<String>, _>(from + i)?
                    .map_or(Cell::Null, Cell::Text),
                Ty::Int => r
                    .try_get::<Option<i64>, _>(from + i)?
                    .map_or(Cell::Null, Cell::Int),
            })
        })
        .collect()
}

/// Binds `cells` as the query's next parameters.
fn bind_cells<'q>(
    mut query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    cells: &[Cell],
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    for cell in cells {
        query = match cell {
            Cell::Null => query.bind(None::<String>),
            Cell::Int(i) => query.bind(*i),
            Cell::Text(t) => query.bind(t.clone()),
        };
    }
    query
}

/// One value in `COPY … (FORMAT text)`: `\N` for NULL, backslash escapes for the rest.
fn copy_value(out: &mut String, cell: &Cell) {
    match cell {
        Cell::Null => out.push_str("\\N"),
        Cell::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Cell::Text(t) => {
            for ch in t.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    _ => out.push(ch),
                }
            }
        }
    }
}

impl PgLoader {
    pub(crate) async fn new(
        mut conn: PoolConnection<Postgres>,
        options: LoadOptions,
    ) -> Result<Self, StoreError> {
        // The connection carries a transaction and temporary tables: never hand it back to the
        // pool.
        conn.close_on_drop();
        // Named, so that operators see the load in pg_stat_activity; index lookups only, so that
        // a batch costs the same whatever the tables' size (a hash join would scan them whole).
        raw_sql(
            "SET application_name = 'agreements load'; SET enable_hashjoin = off; SET enable_mergejoin = off",
        )
        .execute(&mut *conn)
        .await?;
        if options.dry_run {
            raw_sql("BEGIN").execute(&mut *conn).await?;
        }
        Ok(Self {
            conn,
            options,
            staged: BTreeSet::new(),
        })
    }

    pub(crate) async fn load(
        &mut self,
        kind: Kind,
        records: &[Record],
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut outcomes = vec![None; records.len()];
        let rows = first_of_each_key(kind, records, &mut outcomes);
        let [begin, commit, rollback] = batch_statements(self.options.dry_run, "BEGIN");
        raw_sql(begin).execute(&mut *self.conn).await?;
        match self.run(kind, rows, &mut outcomes).await {
            Ok(()) => {
                raw_sql(commit).execute(&mut *self.conn).await?;
            }
            Err(e) => {
                let _ = raw_sql(rollback).execute(&mut *self.conn).await;
                return Err(e);
            }
        }
        Ok(settled(outcomes))
    }

    pub(crate) async fn finish(mut self) -> Result<(), StoreError> {
        if self.options.dry_run {
            raw_sql("ROLLBACK").execute(&mut *self.conn).await?;
        } else if !self.staged.is_empty() {
            // Fresh statistics for the tables just loaded: autovacuum analyzes them only when it
            // gets to it, and until then the planner guesses (the batch query ran at 600 instead
            // of 800 answers/s on a 10^5 world loaded minutes before).
            let mut tables = Vec::new();
            for &kind in &self.staged {
                let spec = kind.spec();
                tables.push(spec.table);
                tables.extend(spec.children.iter().map(|c| c.table));
                match kind {
                    Kind::Account => tables.push("customers"),
                    Kind::Agreement => tables.push("agreement_events"),
                    _ => {}
                }
            }
            self.execute(format!("ANALYZE {}", tables.join(", ")))
                .await?;
        }
        self.conn.close().await?;
        Ok(())
    }

    async fn execute(&mut self, sql: String) -> Result<u64, StoreError> {
        Ok(raw_sql(AssertSqlSafe(sql))
            .execute(&mut *self.conn)
            .await?
            .rows_affected())
    }

    async fn fetch(&mut self, sql: String) -> Result<Vec<PgRow>, StoreError> {
        Ok(sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut *self.conn)
            .await?)
    }

    async fn drop_staged(&mut self, spec: &Spec, ixs: &[i32]) -> Result<(), StoreError> {
        if ixs.is_empty() {
            return Ok(());
        }
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE ix = ANY($1)",
            stage(spec)
        )))
        .bind(ixs)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn run(
        &mut self,
        kind: Kind,
        rows: Vec<(usize, Row)>,
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), StoreError> {
        let spec = kind.spec();
        let stage = stage(spec);
        let columns = spec.column_list();
        if self.staged.insert(kind) {
            let defs: Vec<String> = spec
                .columns
                .iter()
                .map(|c| {
                    let ty = match c.ty {
                        Ty::Text => "text",
                        Ty::Int => "bigint",
                    };
                    format!("{} {ty}", c.name)
                })
                .collect();
            self.execute(format!(
                "CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (ix integer PRIMARY KEY, {})",
                defs.join(", ")
            ))
            .await?;
        }
        self.execute(format!("TRUNCATE {stage}")).await?;

        let mut data = String::with_capacity(rows.len() * 256);
        let mut by_ix: HashMap<i32, Row> = HashMap::with_capacity(rows.len());
        for (i, row) in rows {
            let ix = i32::try_from(i)
                .map_err(|_| StoreError::Unavailable("batch too large".to_owned()))?;
            let _ = write!(data, "{ix}");
            for cell in &row.cells {
                data.push('\t');
                copy_value(&mut data, cell);
            }
            data.push('\n');
            by_ix.insert(ix, row);
        }
        let mut copy = self
            .conn
            .copy_in_raw(&format!("COPY {stage} (ix, {columns}) FROM STDIN"))
            .await?;
        copy.send(data.into_bytes()).await?;
        copy.finish().await?;

        let set = |outcomes: &mut [Option<Outcome>], ix: i32, outcome: Outcome| {
            if let Ok(i) = usize::try_from(ix)
                && let Some(slot) = outcomes.get_mut(i)
                && slot.is_none()
            {
                *slot = Some(outcome);
            }
        };

        // References that name nothing, and the CUSTOMER rule: the only rows a write would fail
        // on, so they are set aside first.
        let mut rejected = Vec::new();
        for reference in spec.references {
            let column = spec.columns[reference.column].name;
            let missing = self
                .fetch(format!(
                    "SELECT s.ix FROM {stage} s WHERE s.{column} IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM {} r WHERE r.{} = s.{column})",
                    reference.table, reference.target
                ))
                .await?;
            for r in &missing {
                let ix: i32 = r.try_get(0)?;
                if let Some(row) = by_ix.get(&ix) {
                    set(
                        outcomes,
                        ix,
                        missing_reference(spec, reference, &row.cells[reference.column]),
                    );
                    rejected.push(ix);
                }
            }
        }
        if kind == Kind::Agreement {
            let principal_type = spec.columns[agreement_column::PRINCIPAL_TYPE].name;
            let principal_id = spec.columns[agreement_column::PRINCIPAL_ID].name;
            let user = spec.columns[agreement_column::ALIPAY_USER_ID].name;
            let wrong = self
                .fetch(format!(
                    "SELECT s.ix, a.customer_id FROM {stage} s JOIN accounts a ON a.user_id = s.{user} \
                     WHERE s.{principal_type} = 'CUSTOMER' AND a.customer_id <> s.{principal_id}"
                ))
                .await?;
            for r in &wrong {
                let ix: i32 = r.try_get(0)?;
                let person: String = r.try_get(1)?;
                set(outcomes, ix, wrong_person(&person));
                rejected.push(ix);
            }
        }
        rejected.sort_unstable();
        rejected.dedup();
        self.drop_staged(spec, &rejected).await?;

        // New rows, in key order; a row whose key or other unique value is taken is skipped by
        // ON CONFLICT and classified below. (An account's person is created with it; a person
        // named only by a skipped account stays, harmless: persons carry nothing but their id.)
        if kind == Kind::Account {
            self.execute(format!(
                "INSERT INTO customers (customer_id) SELECT DISTINCT customer_id FROM {stage} ON CONFLICT DO NOTHING"
            ))
            .await?;
        }
        let plain: Vec<String> = spec
            .columns
            .iter()
            .map(|c| format!("s.{}", c.name))
            .collect();
        let keys: Vec<&str> = spec.key_columns().iter().map(|c| c.name).collect();
        let insert = format!(
            "INSERT INTO {table} ({columns}) SELECT {} FROM {stage} s ORDER BY {} \
             ON CONFLICT DO NOTHING RETURNING {}",
            plain.join(", "),
            keys.iter()
                .map(|k| format!("s.{k}"))
                .collect::<Vec<_>>()
                .join(", "),
            keys.join(", "),
            table = spec.table,
        );
        let inserted = if kind == Kind::Agreement {
            // Each inserted agreement's first history event, in the same statement: the rows
            // RETURNING gives are exactly the new ones.
            sqlx::query(AssertSqlSafe(format!(
                "WITH inserted AS ({insert}, status), \
                 events AS (INSERT INTO agreement_events (agreement_no, seq, kind, old_status, new_status, actor, reason, at) \
                   SELECT agreement_no, 1, 'IMPORT', NULL, status, 'import', NULL, $1 FROM inserted) \
                 SELECT {} FROM inserted",
                keys.join(", ")
            )))
            .bind(crate::unix_now())
            .fetch_all(&mut *self.conn)
            .await?
        } else {
            self.fetch(insert).await?
        };
        let by_key: HashMap<&[Cell], i32> =
            by_ix.iter().map(|(ix, row)| (row.key(spec), *ix)).collect();
        let mut written = Vec::with_capacity(inserted.len());
        for r in &inserted {
            let key = read_cells(r, spec.key_columns(), 0)?;
            if let Some(&ix) = by_key.get(key.as_slice()) {
                set(outcomes, ix, Outcome::Inserted);
                written.push(ix);
            }
        }

        // The rest: stored under the same key (unchanged, conflicting, or to overwrite), or
        // holding a unique value another record has.
        let rest: Vec<i32> = by_ix
            .keys()
            .copied()
            .filter(|ix| {
                usize::try_from(*ix).is_ok_and(|i| outcomes.get(i).is_some_and(Option::is_none))
            })
            .collect();
        let mut updates = Vec::new();
        let mut old_statuses: HashMap<i32, String> = HashMap::new();
        if !rest.is_empty() {
            let stored_columns: Vec<String> = spec
                .columns
                .iter()
                .map(|c| format!("t.{}", c.name))
                .collect();
            let existing = sqlx::query(AssertSqlSafe(format!(
                "SELECT s.ix, {} FROM {stage} s JOIN {} t ON {} WHERE s.ix = ANY($1)",
                stored_columns.join(", "),
                spec.table,
                matching(spec, &key_indexes(spec), "t", "s")
            )))
            .bind(&rest)
            .fetch_all(&mut *self.conn)
            .await?;
            for r in &existing {
                let ix: i32 = r.try_get(0)?;
                let cells = read_cells(r, spec.columns, 1)?;
                let children = self.children(spec, &cells[0]).await?;
                let stored = Row { cells, children };
                let Some(row) = by_ix.get(&ix) else { continue };
                let fields = spec.diff(&stored, row);
                if fields.is_empty() {
                    set(outcomes, ix, Outcome::Unchanged);
                } else if self.options.update {
                    updates.push(ix);
                    if kind == Kind::Agreement
                        && let Some(Cell::Text(status)) = stored.cells.get(agreement_column::STATUS)
                    {
                        old_statuses.insert(ix, status.clone());
                    }
                } else {
                    set(outcomes, ix, Outcome::Conflict { fields });
                }
            }
            // New rows skipped by ON CONFLICT, and rows to overwrite, must not take a unique
            // value another record holds.
            let mut unsettled: Vec<i32> = rest
                .iter()
                .copied()
                .filter(|&ix| {
                    usize::try_from(ix).is_ok_and(|i| outcomes.get(i).is_some_and(Option::is_none))
                })
                .collect();
            unsettled.sort_unstable();
            self.reject_taken(spec, &stage, &unsettled, outcomes)
                .await?;
            updates.retain(|&ix| {
                usize::try_from(ix).is_ok_and(|i| outcomes.get(i).is_some_and(Option::is_none))
            });
        }
        if !updates.is_empty() && spec.columns.len() > spec.key {
            let sets: Vec<String> = spec.columns[spec.key..]
                .iter()
                .map(|c| format!("{0} = s.{0}", c.name))
                .collect();
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {table} t SET {} FROM {stage} s WHERE {} AND s.ix = ANY($1)",
                sets.join(", "),
                matching(spec, &key_indexes(spec), "t", "s"),
                table = spec.table,
            )))
            .bind(&updates)
            .execute(&mut *self.conn)
            .await?;
        }
        if kind == Kind::Agreement && !updates.is_empty() {
            let olds: Vec<Option<&str>> = updates
                .iter()
                .map(|ix| old_statuses.get(ix).map(String::as_str))
                .collect();
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO agreement_events (agreement_no, seq, kind, old_status, new_status, actor, reason, at) \
                 SELECT s.agreement_no, \
                   (SELECT COALESCE(MAX(e.seq), 0) + 1 FROM agreement_events e WHERE e.agreement_no = s.agreement_no), \
                   'UPDATE', u.old, s.status, 'import', NULL, $3 \
                 FROM {stage} s JOIN unnest($1::int[], $2::text[]) AS u(ix, old) ON u.ix = s.ix"
            )))
            .bind(&updates)
            .bind(&olds)
            .bind(crate::unix_now())
            .execute(&mut *self.conn)
            .await?;
        }
        for &ix in &updates {
            set(outcomes, ix, Outcome::Updated);
            written.push(ix);
        }
        if !spec.children.is_empty() {
            for ix in written {
                if let Some(row) = by_ix.get(&ix) {
                    self.write_children(spec, row).await?;
                }
            }
        }
        // Anything left was refused by a constraint this loader does not know.
        for ix in by_ix.keys() {
            set(
                outcomes,
                *ix,
                Outcome::Rejected {
                    field: spec.columns[0].name,
                    reason: "refused by a constraint of the database".to_owned(),
                },
            );
        }
        Ok(())
    }

    /// Rejects those of `ixs` whose unique values (besides the key) another stored record holds.
    async fn reject_taken(
        &mut self,
        spec: &Spec,
        stage: &str,
        ixs: &[i32],
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), StoreError> {
        if ixs.is_empty() {
            return Ok(());
        }
        let holder_columns: Vec<String> = spec
            .key_columns()
            .iter()
            .map(|c| format!("h.{}", c.name))
            .collect();
        for unique in spec.uniques {
            let taken_rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT s.ix, {} FROM {stage} s JOIN {} h ON {} WHERE s.ix = ANY($1) AND {} <> {} ORDER BY s.ix",
                holder_columns.join(", "),
                spec.table,
                matching(spec, unique.columns, "h", "s"),
                key_tuple(spec, "h"),
                key_tuple(spec, "s"),
            )))
            .bind(ixs)
            .fetch_all(&mut *self.conn)
            .await?;
            for r in &taken_rows {
                let ix: i32 = r.try_get(0)?;
                let key = read_cells(r, spec.key_columns(), 1)?;
                if let Some(slot) = usize::try_from(ix).ok().and_then(|i| outcomes.get_mut(i))
                    && slot.is_none()
                {
                    *slot = Some(taken(spec, unique, &key));
                }
            }
        }
        Ok(())
    }

    async fn children(
        &mut self,
        spec: &Spec,
        parent: &Cell,
    ) -> Result<Vec<Vec<Vec<Cell>>>, StoreError> {
        let mut all = Vec::with_capacity(spec.children.len());
        let Cell::Text(parent) = parent else {
            return Ok(all);
        };
        for child in spec.children {
            let cols: Vec<&str> = child.columns.iter().map(|c| c.name).collect();
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {} FROM {} WHERE {} = $1",
                cols.join(", "),
                child.table,
                child.parent
            )))
            .bind(parent)
            .fetch_all(&mut *self.conn)
            .await?;
            let rows = rows
                .iter()
                .map(|r| read_cells(r, child.columns, 0))
                .collect::<Result<Vec<_>, _>>()?;
            all.push(sorted(rows));
        }
        Ok(all)
    }

    async fn write_children(&mut self, spec: &Spec, row: &Row) -> Result<(), StoreError> {
        let Cell::Text(parent) = &row.cells[0] else {
            return Ok(());
        };
        for (child, rows) in spec.children.iter().zip(&row.children) {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {} WHERE {} = $1",
                child.table, child.parent
            )))
            .bind(parent)
            .execute(&mut *self.conn)
            .await?;
            let cols: Vec<&str> = child.columns.iter().map(|c| c.name).collect();
            let params: Vec<String> = (2..cols.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "INSERT INTO {} ({}, {}) VALUES ($1, {})",
                child.table,
                child.parent,
                cols.join(", "),
                params.join(", ")
            );
            for cells in rows {
                bind_cells(sqlx::query(AssertSqlSafe(sql.clone())).bind(parent), cells)
                    .execute(&mut *self.conn)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Reads one kind page by page, in key order, from one snapshot (a repeatable-read transaction
/// held for the exporter's life).
#[derive(Debug)]
pub(crate) struct PgExporter {
    loader: PgLoader,
}

impl PgExporter {
    pub(crate) async fn new(mut conn: PoolConnection<Postgres>) -> Result<Self, StoreError> {
        conn.close_on_drop();
        raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *conn)
            .await?;
        Ok(Self {
            loader: PgLoader {
                conn,
                options: LoadOptions::default(),
                staged: BTreeSet::new(),
            },
        })
    }

    pub(crate) async fn page(
        &mut self,
        kind: Kind,
        after: Option<&Record>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let spec = kind.spec();
        let after = after.map(Record::to_row);
        let sql = crate::load::page_query(spec, after.is_some(), limit, |i| format!("${i}"));
        let key = after.as_ref().map_or(&[][..], |row| row.key(spec));
        let mains = bind_cells(sqlx::query(AssertSqlSafe(sql)), key)
            .fetch_all(&mut *self.loader.conn)
            .await?;
        let mut records = Vec::with_capacity(mains.len());
        for r in &mains {
            let cells = read_cells(r, spec.columns, 0)?;
            let children = self.loader.children(spec, &cells[0]).await?;
            records.push(Record::from_row(kind, Row { cells, children })?);
        }
        Ok(records)
    }

    pub(crate) async fn finish(self) -> Result<(), StoreError> {
        self.loader.finish().await
    }
}
