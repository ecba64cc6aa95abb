//! One connection interface over both backends, so that every store operation is written once:
//! [`Pool`] hands out a [`Conn`] (a plain connection or a transaction), which runs a [`Sql`] with
//! [`Param`]s and returns rows of [`Cell`]s. SQLite runs inline (its futures never wait);
//! PostgreSQL is awaited.

use agreements_domain::clock::Clock;
use sqlx::postgres::PgPool;

use crate::error::StoreError;
use crate::migrations::MIGRATIONS;
use crate::pg::{self, PgConn};
use crate::schema::{Cell, CellRef, Cells, Entity, Table, Ty};
use crate::sql::{Sql, sql};
use crate::sqlite::{Lease, SqlitePool};

/// A bound value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// NULL of a column of this type (PostgreSQL types every parameter).
    Null(Ty),
    Int(i64),
    Text(&'a str),
    /// An array of integers (PostgreSQL only: the set-based loader's row indexes).
    Ints(&'a [i32]),
    /// An array of texts (PostgreSQL only).
    Texts(&'a [Option<&'a str>]),
}

impl<'a> Param<'a> {
    /// A cell of a column of type `ty`.
    pub(crate) fn cell(cell: &'a Cell, ty: Ty) -> Self {
        match cell {
            Cell::Null => Param::Null(ty),
            Cell::Int(i) => Param::Int(*i),
            Cell::Text(t) => Param::Text(t),
        }
    }

    /// A borrowed cell of a column of type `ty`.
    pub(crate) fn cell_ref(cell: &'a CellRef<'_>, ty: Ty) -> Self {
        match cell {
            CellRef::Null => Param::Null(ty),
            CellRef::Int(i) => Param::Int(*i),
            CellRef::Text(t) => Param::Text(t),
        }
    }

    /// A row of `table`'s columns from `first` on.
    pub(crate) fn row(table: &Table, first: usize, cells: &'a [Cell]) -> Vec<Self> {
        cells
            .iter()
            .zip(&table.columns[first..])
            .map(|(cell, column)| Param::cell(cell, column.ty))
            .collect()
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(text: &'a str) -> Self {
        Param::Text(text)
    }
}

impl<'a, T: AsRef<str>> From<&'a T> for Param<'a> {
    fn from(text: &'a T) -> Self {
        Param::Text(text.as_ref())
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(text: Option<&'a str>) -> Self {
        text.map_or(Param::Null(Ty::Text), Param::Text)
    }
}

impl From<i64> for Param<'_> {
    fn from(i: i64) -> Self {
        Param::Int(i)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(i: Option<i64>) -> Self {
        i.map_or(Param::Null(Ty::Int), Param::Int)
    }
}

impl From<u32> for Param<'_> {
    fn from(i: u32) -> Self {
        Param::Int(i.into())
    }
}

/// `[Param::from(a), Param::from(b), …]`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        [$($crate::db::Param::from($value)),*]
    };
}

pub(crate) use params;

/// The database: a SQLite file's connections, or a PostgreSQL pool.
#[derive(Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// A connection for one operation.
    pub(crate) async fn conn(&self) -> Result<Conn<'_>, StoreError> {
        Ok(match self {
            Pool::Sqlite(pool) => Conn::Sqlite(pool.lease()?),
            Pool::Postgres(pool) => Conn::Postgres(PgConn::Pooled(pool.acquire().await?)),
        })
    }

    /// A transaction that writes: on SQLite it holds the database's write lock from its start,
    /// waited for off the async workers (see [`SqlitePool::write`]). Rolled back unless
    /// [`Conn::commit`]ted. Every write goes through one.
    pub(crate) async fn write(&self) -> Result<Conn<'_>, StoreError> {
        Ok(match self {
            Pool::Sqlite(pool) => Conn::Sqlite(pool.write()?),
            Pool::Postgres(pool) => Conn::Postgres(PgConn::Transaction(pool.begin().await?)),
        })
    }

    /// A connection for several reads in a row, ended with [`Conn::commit`]: on SQLite in one
    /// read transaction (one snapshot, and the WAL index locked once instead of once per
    /// statement); on PostgreSQL a plain pooled connection (a transaction would cost two more
    /// round trips, and each statement sees a consistent state by itself).
    pub(crate) async fn reads(&self) -> Result<Conn<'_>, StoreError> {
        match self {
            Pool::Sqlite(_) => self.snapshot().await,
            Pool::Postgres(_) => self.conn().await,
        }
    }

    /// A read transaction that sees one snapshot of the database throughout (on PostgreSQL a
    /// repeatable-read one).
    pub(crate) async fn snapshot(&self) -> Result<Conn<'_>, StoreError> {
        Ok(match self {
            Pool::Sqlite(pool) => {
                let mut lease = pool.lease()?;
                lease.begin(false)?;
                Conn::Sqlite(lease)
            }
            Pool::Postgres(pool) => Conn::Postgres(PgConn::Transaction(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            )),
        })
    }

    /// Applies the migrations not applied yet, each in its own transaction (PostgreSQL:
    /// serialised across processes by an advisory lock).
    pub(crate) async fn migrate(&self, clock: &dyn Clock) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        conn.batch(&format!(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version {int} PRIMARY KEY, name TEXT NOT NULL, applied_at {int} NOT NULL)",
            int = match self {
                Pool::Sqlite(_) => "INTEGER",
                Pool::Postgres(_) => "BIGINT",
            }
        ))
        .await?;
        drop(conn);
        for m in MIGRATIONS {
            let mut tx = self.write().await?;
            if let Pool::Postgres(_) = self {
                // Any fixed key: it only has to be the same in every process.
                tx.execute(
                    sql!("SELECT pg_advisory_xact_lock(6082227285017061230)"),
                    &[],
                )
                .await?;
            }
            let applied = tx
                .row(
                    sql!("SELECT version FROM schema_migrations WHERE version = $1"),
                    &params![m.version],
                )
                .await?
                .is_some();
            if !applied {
                tx.batch(match self {
                    Pool::Sqlite(_) => m.sqlite,
                    Pool::Postgres(_) => m.postgres,
                })
                .await?;
                tx.execute(
                    sql!("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)"),
                    &params![m.version, m.name, clock.now()],
                )
                .await?;
                tracing::info!(version = m.version, name = m.name, "applied migration");
            }
            tx.commit().await?;
        }
        // A newer build's schema may keep data where this build would not look (an index
        // replaced by another), so an older build refuses it rather than write beside it.
        let newest = self
            .conn()
            .await?
            .row(sql!("SELECT MAX(version) FROM schema_migrations"), &[])
            .await?;
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if let Some([Cell::Int(version), ..]) = newest.as_deref()
            && *version > known
        {
            return Err(StoreError::unavailable(
                "opening the database",
                std::io::Error::other(format!(
                    "its schema is at version {version}, made by a newer build than this one \
                     (which knows versions up to {known}): run that build or a later one"
                )),
            ));
        }
        Ok(())
    }
}

/// A connection in use, or a transaction.
#[derive(Debug)]
pub(crate) enum Conn<'p> {
    Sqlite(Lease<'p>),
    Postgres(PgConn),
}

impl Conn<'_> {
    /// Every row `sql` returns.
    pub(crate) async fn rows(
        &mut self,
        sql: &Sql,
        params: &[Param<'_>],
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        match self {
            Conn::Sqlite(c) => c.rows(&sql.sqlite, params, None),
            Conn::Postgres(c) => pg::rows(c.raw(), &sql.postgres, params).await,
        }
    }

    /// The first row `sql` returns, if any.
    pub(crate) async fn row(
        &mut self,
        sql: &Sql,
        params: &[Param<'_>],
    ) -> Result<Option<Vec<Cell>>, StoreError> {
        match self {
            Conn::Sqlite(c) => Ok(c.rows(&sql.sqlite, params, Some(1))?.into_iter().next()),
            Conn::Postgres(c) => pg::row(c.raw(), &sql.postgres, params).await,
        }
    }

    /// Runs `sql`; returns how many rows it changed.
    pub(crate) async fn execute(
        &mut self,
        sql: &Sql,
        params: &[Param<'_>],
    ) -> Result<u64, StoreError> {
        match self {
            Conn::Sqlite(c) => c.execute(&sql.sqlite, params),
            Conn::Postgres(c) => pg::execute(c.raw(), &sql.postgres, params).await,
        }
    }

    /// Runs statements without parameters (migrations, session settings).
    pub(crate) async fn batch(&mut self, text: &str) -> Result<(), StoreError> {
        match self {
            Conn::Sqlite(c) => c.batch(text),
            Conn::Postgres(c) => pg::batch(c.raw(), text).await,
        }
    }

    /// Commits the transaction this connection is in.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Conn::Sqlite(mut c) => c.commit(),
            Conn::Postgres(PgConn::Transaction(t)) => Ok(t.commit().await?),
            Conn::Postgres(PgConn::Pooled(_)) => Ok(()),
        }
    }

    /// The record of type `T` whose key is `key`, with its child rows.
    pub(crate) async fn get<T: Entity>(
        &mut self,
        key: &[Param<'_>],
    ) -> Result<Option<T>, StoreError> {
        let Some(cells) = self.row(&T::TABLE.sql().select_by_key, key).await? else {
            return Ok(None);
        };
        let cells = self.with_children(T::TABLE, cells).await?;
        T::from_cells(cells).map(Some).map_err(StoreError::Corrupt)
    }

    /// Records of type `T` from rows of `sql` (every column of `T`'s table, in order), with
    /// their child rows.
    pub(crate) async fn all<T: Entity>(
        &mut self,
        sql: &Sql,
        params: &[Param<'_>],
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.rows(sql, params).await?;
        let mut out = Vec::with_capacity(rows.len());
        for cells in rows {
            let cells = self.with_children(T::TABLE, cells).await?;
            out.push(T::from_cells(cells).map_err(StoreError::Corrupt)?);
        }
        Ok(out)
    }

    /// A stored row of `table` with its child rows, sorted (by value, whatever the database's
    /// collation: the loaders compare them with a record's).
    pub(crate) async fn with_children(
        &mut self,
        table: &Table,
        cells: Vec<Cell>,
    ) -> Result<Cells, StoreError> {
        let mut children = Vec::with_capacity(table.children.len());
        if let Some(parent) = cells.first() {
            for child in table.children {
                let parent = Param::cell(parent, table.columns[0].ty);
                let mut rows = self
                    .rows(&child.table.sql().select_children, &[parent])
                    .await?;
                rows.sort();
                children.push(rows);
            }
        }
        Ok(Cells { cells, children })
    }

    /// Writes `record`: its row, then its child rows.
    pub(crate) async fn insert<T: Entity>(&mut self, record: &T) -> Result<(), StoreError> {
        self.insert_cells(T::TABLE, &record.to_cells(), false).await
    }

    /// Writes a record's cells (its row, then its child rows); with `if_new` a taken key
    /// writes nothing and is no error.
    pub(crate) async fn insert_cells(
        &mut self,
        table: &Table,
        cells: &Cells,
        if_new: bool,
    ) -> Result<(), StoreError> {
        let sql = table.sql();
        let statement = if if_new { &sql.insert_new } else { &sql.insert };
        self.execute(statement, &Param::row(table, 0, &cells.cells))
            .await?;
        self.write_children(table, cells, false).await
    }

    /// Writes a record's child rows (after deleting its old ones when `replace`).
    pub(crate) async fn write_children(
        &mut self,
        table: &Table,
        cells: &Cells,
        replace: bool,
    ) -> Result<(), StoreError> {
        let Some(parent) = cells.cells.first() else {
            return Ok(());
        };
        let parent = Param::cell(parent, table.columns[0].ty);
        for (child, rows) in table.children.iter().zip(&cells.children) {
            let sql = child.table.sql();
            if replace {
                self.execute(&sql.delete_children, &[parent]).await?;
            }
            for row in rows {
                let mut params = Vec::with_capacity(row.len() + 1);
                params.push(parent);
                params.extend(Param::row(child.table, 1, row));
                self.execute(&sql.insert_new, &params).await?;
            }
        }
        Ok(())
    }
}
