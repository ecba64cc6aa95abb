//! SQLite through rusqlite: a few pooled connections, used inline by the caller's thread (a
//! lookup costs microseconds, less than any hand-off to another thread would).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql, params_from_iter};

use crate::db::Param;
use crate::error::StoreError;
use crate::schema::Cell;

/// How long a connection that took the database out of WAL mode waits for readers of other
/// processes before putting it back.
const BACK_TO_WAL_WAIT: Duration = Duration::from_secs(1);

/// Idle connections kept for reuse. Beyond it a burst opens (and then closes) extra ones, so a
/// caller never waits for a connection: waiting would block an async worker.
const MAX_IDLE: usize = 8;

/// Prepared statements kept per connection: every statement the gateway and the delivery worker
/// use stays prepared (rusqlite keeps 16 by default; with more, they evict each other and each
/// call parses its SQL again).
const STATEMENT_CACHE: usize = 128;

/// The database file, its idle connections, and the writes under way.
///
/// SQLite has one writer at a time (WAL readers never wait for it). A write that must wait for the
/// write lock — held by another request, the delivery worker, or another process such as an
/// import — waits on a thread of its own, never on an async worker ([`off_the_workers`]), so reads
/// and other requests go on; at most `max_writers` writes wait or write at once, and one more is
/// answered unavailable at once instead of queueing without bound.
#[derive(Debug)]
pub(crate) struct SqlitePool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    write_wait: Duration,
    max_writers: usize,
    writers: AtomicUsize,
}

impl SqlitePool {
    /// Opens (creating if missing) the database file in WAL mode. A write waits at most
    /// `write_wait` for the write lock; at most `max_writers` writes wait or write at once.
    pub(crate) fn open(
        path: &Path,
        write_wait: Duration,
        max_writers: usize,
    ) -> Result<Self, StoreError> {
        let pool = Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            write_wait,
            max_writers: max_writers.max(1),
            writers: AtomicUsize::new(0),
        };
        pool.connect()?.pragma_update(None, "journal_mode", "WAL")?;
        Ok(pool)
    }

    /// A new connection with the store's settings.
    pub(crate) fn connect(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(self.write_wait)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Plans never depend on bound values: otherwise SQLite looks at a parameter's value (to
        // check whether a query implies a partial index's condition, e.g. agreements_by_external)
        // and must prepare the statement again whenever it is bound anew — a full parse and plan
        // on every lookup.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
        Ok(conn)
    }

    /// A pooled connection (a new one when none is idle).
    pub(crate) fn lease(&self) -> Result<Lease<'_>, StoreError> {
        let conn = self.lease_connection()?;
        Ok(Lease {
            pool: Some(self),
            conn: Some(conn),
            in_transaction: false,
            broken: false,
            writing: false,
            back_to_wal: false,
        })
    }

    /// A connection in a write transaction: waits (off the async workers) for the write lock.
    pub(crate) fn write(&self) -> Result<Lease<'_>, StoreError> {
        let writers = self.writers.fetch_add(1, Ordering::AcqRel) + 1;
        let mut lease = Lease {
            pool: Some(self),
            conn: None,
            in_transaction: false,
            broken: false,
            writing: true,
            back_to_wal: false,
        };
        if writers > self.max_writers {
            return Err(StoreError::unavailable(
                "writing",
                std::io::Error::other(format!(
                    "{} writes are already waiting for the database's write lock",
                    self.max_writers
                )),
            ));
        }
        lease.conn = Some(self.lease_connection()?);
        lease.begin(true)?;
        Ok(lease)
    }

    /// A connection of its own for a fresh load, and whether the database could be taken out of
    /// WAL mode for it (see [`Lease::back_to_wal_when_dropped`]): it can when no other
    /// connection has the file open. This pool's idle connections are closed first; another's
    /// (a running server, a second import) keeps the database in WAL mode, and the load goes
    /// through the WAL. The attempt does not wait for the file.
    pub(crate) fn connect_alone(&self) -> Result<(Connection, bool), StoreError> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let conn = self.connect()?;
        conn.busy_timeout(Duration::ZERO)?;
        let mode = conn.query_row("PRAGMA journal_mode = DELETE", [], |row| {
            row.get::<_, String>(0)
        });
        conn.busy_timeout(self.write_wait)?;
        match mode {
            Ok(mode) => Ok((conn, mode.eq_ignore_ascii_case("delete"))),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                tracing::info!(
                    "another connection has the database open: the fresh load writes through the WAL"
                );
                Ok((conn, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn lease_connection(&self) -> Result<Connection, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }
}

/// Runs `f`, which may block (waiting for SQLite's write lock), without holding up the async
/// workers: on a multi-threaded tokio runtime the current worker hands its tasks to another
/// thread first (`block_in_place`). Elsewhere (a current-thread runtime, no runtime) it runs `f`
/// as it is.
fn off_the_workers<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A connection in use: back to the pool when dropped, unless it failed (then it is closed).
/// A transaction still open when it is dropped is rolled back.
#[derive(Debug)]
pub(crate) struct Lease<'p> {
    pool: Option<&'p SqlitePool>,
    conn: Option<Connection>,
    in_transaction: bool,
    broken: bool,
    /// Counted among the pool's writers until dropped.
    writing: bool,
    /// The database was taken out of WAL mode for this connection's work: put back when dropped.
    back_to_wal: bool,
}

impl Lease<'_> {
    /// A connection of its own, never pooled (loads and exports).
    pub(crate) fn dedicated(conn: Connection) -> Lease<'static> {
        Lease {
            pool: None,
            conn: Some(conn),
            in_transaction: false,
            broken: false,
            writing: false,
            back_to_wal: false,
        }
    }

    /// Puts the database back in WAL mode when this lease is dropped (after its transaction is
    /// committed or rolled back), for a connection [`SqlitePool::connect_alone`] took out of it.
    /// Should that fail (another process opened the file meanwhile and is reading), the file
    /// stays in rollback-journal mode until the store next opens it: opening sets WAL mode.
    pub(crate) fn back_to_wal_when_dropped(&mut self) {
        self.back_to_wal = true;
    }

    /// The connection, for settings only this backend has.
    pub(crate) fn connection(&self) -> &Connection {
        // Present from construction until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// Marks the connection unusable when `result` says the database failed.
    fn checked<T>(&mut self, result: Result<T, rusqlite::Error>) -> Result<T, StoreError> {
        result.map_err(|e| {
            let e = StoreError::from(e);
            if matches!(e, StoreError::Unavailable { .. }) {
                self.broken = true;
            }
            e
        })
    }

    pub(crate) fn rows(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        limit: Option<usize>,
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        let result = (|| {
            let mut stmt = self.connection().prepare_cached(sql)?;
            let width = stmt.column_count();
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(
                    (0..width)
                        .map(|i| row.get_ref(i).map(cell))
                        .collect::<Result<Vec<_>, _>>()?,
                );
                if limit.is_some_and(|n| out.len() >= n) {
                    break;
                }
            }
            Ok(out)
        })();
        self.checked(result)
    }

    pub(crate) fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let result = self
            .connection()
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(params_from_iter(params)));
        self.checked(result).map(|n| n as u64)
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let result = self.connection().execute_batch(sql);
        self.checked(result)
    }

    /// Begins a transaction: `BEGIN IMMEDIATE` takes the write lock at once (a transaction that
    /// reads then writes would otherwise fail to upgrade when another writer came first), waiting
    /// for it off the async workers. `BEGIN`, `BEGIN IMMEDIATE` and `COMMIT` are the
    /// connection's cached statements: a read transaction is begun and committed per query
    /// request, and `execute_batch` would parse each anew.
    pub(crate) fn begin(&mut self, write: bool) -> Result<(), StoreError> {
        if write {
            off_the_workers(|| self.execute("BEGIN IMMEDIATE", &[]))?;
        } else {
            self.execute("BEGIN", &[])?;
        }
        self.in_transaction = true;
        Ok(())
    }

    /// Commits. A write transaction's commit may checkpoint the WAL (write its pages back into
    /// the database and sync the file: milliseconds), so it runs off the async workers like the
    /// wait for the write lock; a read transaction's is a few hundred instructions.
    pub(crate) fn commit(&mut self) -> Result<(), StoreError> {
        if self.writing {
            off_the_workers(|| self.execute("COMMIT", &[]))?;
        } else {
            self.execute("COMMIT", &[])?;
        }
        self.in_transaction = false;
        Ok(())
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.writing
            && let Some(pool) = self.pool
        {
            pool.writers.fetch_sub(1, Ordering::AcqRel);
        }
        let Some(conn) = self.conn.take() else { return };
        if self.in_transaction && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        if self.back_to_wal {
            let wal = conn
                .busy_timeout(BACK_TO_WAL_WAIT)
                .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"));
            if let Err(e) = wal {
                tracing::warn!(
                    error = %e,
                    "the database stays in rollback-journal mode until the store next opens it"
                );
            }
        }
        if let Some(pool) = self.pool
            && !self.broken
        {
            let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Param::Null(_) => ValueRef::Null,
            Param::Int(i) => ValueRef::Integer(*i),
            Param::Text(t) => ValueRef::Text(t.as_bytes()),
            Param::Ints(_) | Param::Texts(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "SQLite has no array values".into(),
                ));
            }
        }))
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
