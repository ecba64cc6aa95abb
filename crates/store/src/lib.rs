//! Storage of the agreement world. One API for the server and the CLI; behind it SQLite through
//! rusqlite (called inline: a lookup costs ~7 µs, cheaper than any thread hop) or PostgreSQL
//! through sqlx (async, pooled). All SQL lives in this crate, and driver errors never leave it:
//! callers see [`StoreError`].
//!
//! Inside, every table is described once ([`tables`], in the terms of [`schema`]); statements are
//! written once for both backends ([`sql`]) and run through one connection interface (`db`), so
//! each operation below exists once.

pub mod demo;
mod error;
mod fresh;
mod load;
mod migrations;
mod ops;
mod pg;
mod pg_fresh;
mod pg_load;
mod records;
pub mod schema;
mod sql;
mod sqlite;
mod sqlite_fresh;
mod sqlite_load;
mod tables;
#[cfg(feature = "test-support")]
pub mod test_support;

mod db;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agreements_domain::clock::{Clock, SystemClock};

pub use error::{Invalid, StoreError, shown};
pub use fresh::{FreshLoader, Rejection};
pub use load::{Exporter, Kind, LoadOptions, Loader, Outcome, Record};
pub use migrations::{MIGRATIONS, Migration};
pub use ops::PersonAgreement;
pub use records::{
    AccountRecord, AgreementEvent, AgreementFilter, AppCert, AppContentKey, AppKey, AppRecord,
    AppStatus, Attempt, AuditEntry, AuditFilter, CertRole, ConsumerSession, Credential, EventKind,
    ExternalKey, FoundAgreement, KeySunset, LogonIdRecord, NewAccount, NewApp, NewGroup,
    NewNotification, NewSigned, Notification, NotificationFilter, OpenIdRecord, PeriodRuleRecord,
    PlatformCert, ProductRecord, Resend, SessionState, SignOutcome, SigningSession, Unsign,
    UnsignOutcome,
};

use db::Pool;

/// The store. Cheap to share behind an `Arc`; every method may be called concurrently.
#[derive(Debug)]
pub struct Store {
    pool: Pool,
    /// Stamps what the store writes on its own (migrations, operators' additions, imports).
    clock: Arc<dyn Clock>,
}

/// How a store behaves, beyond where its data is.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stamps what the store writes on its own (migrations, operators' additions, imports).
    pub clock: Arc<dyn Clock>,
    /// How long a write waits for SQLite's write lock (held by another write, maybe another
    /// process such as an import) before the store answers unavailable.
    pub write_wait: Duration,
    /// SQLite writes waiting for the write lock, or writing, at most; one more is answered
    /// unavailable at once.
    pub max_waiting_writes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            write_wait: Duration::from_secs(2),
            max_waiting_writes: 64,
        }
    }
}

impl Store {
    /// Opens the database `location` names: a `postgres://` or `postgresql://` URL, or else a
    /// SQLite file path (an optional `sqlite://` prefix is dropped). Applies pending migrations.
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        Self::open_with(location, Options::default()).await
    }

    /// [`Store::open`] with `options`.
    pub async fn open_with(location: &str, options: Options) -> Result<Self, StoreError> {
        let pool = if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Pool::Postgres(pg::connect(location).await?)
        } else {
            let path = location.strip_prefix("sqlite://").unwrap_or(location);
            Self::sqlite(Path::new(path), &options)?
        };
        Self::migrated(pool, options.clock).await
    }

    /// Opens (creating if missing) a SQLite database file, in WAL mode with foreign keys on, and
    /// applies pending migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        let options = Options::default();
        let pool = Self::sqlite(path, &options)?;
        Self::migrated(pool, options.clock).await
    }

    fn sqlite(path: &Path, options: &Options) -> Result<Pool, StoreError> {
        Ok(Pool::Sqlite(sqlite::SqlitePool::open(
            path,
            options.write_wait,
            options.max_waiting_writes,
        )?))
    }

    async fn migrated(pool: Pool, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        pool.migrate(clock.as_ref()).await?;
        Ok(Self { pool, clock })
    }

    /// Runs raw SQL (tests only: to break, repair or inspect a database).
    #[cfg(feature = "test-support")]
    pub async fn execute_for_tests(&self, sql: &str) -> Result<(), StoreError> {
        self.pool.conn().await?.batch(sql).await
    }

    /// How many rows `table` holds (tests only).
    #[cfg(feature = "test-support")]
    pub async fn count_for_tests(&self, table: &str) -> Result<usize, StoreError> {
        let sql = sql::Sql::new(format!("SELECT COUNT(*) FROM {table}"));
        let row = self.pool.conn().await?.row(&sql, &[]).await?;
        Ok(match row.as_deref() {
            Some([schema::Cell::Int(n)]) => usize::try_from(*n).unwrap_or_default(),
            _ => 0,
        })
    }

    /// Which backend is in use: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }
}
