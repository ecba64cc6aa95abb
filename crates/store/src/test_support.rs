//! Databases for tests (feature `test-support`): a temporary SQLite file, or a fresh PostgreSQL
//! schema — dropped again when the [`TestDatabase`] is — when `AGREEMENTS_TEST_DATABASE_URL` (or a
//! `postgres://` `DATABASE_URL`) names a server.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection as _;

use crate::StoreError;

/// Runs one statement on one short-lived connection to the server's default schema (which is
/// never migrated: tests live in their own schemas).
async fn admin(url: &str, sql: &str) -> Result<(), StoreError> {
    let mut connection = sqlx::postgres::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut connection)
        .await?;
    let _ = connection.close().await;
    Ok(())
}

/// The PostgreSQL server tests may use, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var("AGREEMENTS_TEST_DATABASE_URL")
        .ok()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
}

/// Which backend a test database uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestBackend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh schema on the server at this URL.
    Postgres(String),
}

/// SQLite always; PostgreSQL too when configured. Says on stderr when PostgreSQL is skipped.
pub fn backends() -> Vec<TestBackend> {
    match postgres_url() {
        Some(url) => vec![TestBackend::Sqlite, TestBackend::Postgres(url)],
        None => {
            // Written past the test harness's output capture, once per test binary, so that a run
            // without PostgreSQL says so.
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "NOTE: PostgreSQL tests NOT run (set AGREEMENTS_TEST_DATABASE_URL=postgres://… to run them)"
                );
            });
            vec![TestBackend::Sqlite]
        }
    }
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    location: String,
    _dir: Option<tempfile::TempDir>,
    schema: Option<(String, String)>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl TestDatabase {
    /// A new empty database of `backend`.
    pub async fn new(backend: &TestBackend) -> Result<Self, StoreError> {
        match backend {
            TestBackend::Sqlite => {
                let dir = tempfile::tempdir()
                    .map_err(|e| StoreError::unavailable("creating a temporary directory", e))?;
                let location = dir
                    .path()
                    .join("agreements.db")
                    .to_string_lossy()
                    .into_owned();
                Ok(Self {
                    location,
                    _dir: Some(dir),
                    schema: None,
                })
            }
            TestBackend::Postgres(url) => {
                let schema = format!(
                    "agreements_test_{}_{}_{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos())
                );
                admin(url, &format!("CREATE SCHEMA {schema}")).await?;
                let separator = if url.contains('?') { '&' } else { '?' };
                let location = format!("{url}{separator}options=-c%20search_path%3D{schema}");
                Ok(Self {
                    location,
                    _dir: None,
                    schema: Some((url.clone(), schema)),
                })
            }
        }
    }

    /// What to pass to [`Store::open`] (or `database =` in the configuration).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The same database reached through another address (e.g. a proxy), for PostgreSQL:
    /// `host:port` replaces the URL's.
    pub fn location_via(&self, host_port: &str) -> String {
        let Some(rest) = self.location.split_once("://").map(|(_, rest)| rest) else {
            return self.location.clone();
        };
        let (userinfo, after) = match rest.split_once('@') {
            Some((user, after)) => (format!("{user}@"), after),
            None => (String::new(), rest),
        };
        let path = after.find('/').map_or("", |i| &after[i..]);
        format!("postgres://{userinfo}{host_port}{path}")
    }

    /// PostgreSQL's planner estimate of `table`'s rows (`pg_class.reltuples`, -1 until the
    /// table is first analyzed); `None` on SQLite.
    pub async fn planner_rows(&self, table: &str) -> Result<Option<f64>, StoreError> {
        if self.schema.is_none() {
            return Ok(None);
        }
        let mut connection = sqlx::postgres::PgConnection::connect(&self.location).await?;
        let rows: f64 = sqlx::query_scalar(
            "SELECT reltuples::float8 FROM pg_class WHERE oid = to_regclass($1)",
        )
        .bind(table)
        .fetch_one(&mut connection)
        .await?;
        connection.close().await?;
        Ok(Some(rows))
    }

    /// `host:port` of the PostgreSQL server, if this is one.
    pub fn postgres_address(&self) -> Option<String> {
        let (url, _) = self.schema.as_ref()?;
        let rest = url.split_once("://")?.1;
        let after = rest.split_once('@').map_or(rest, |(_, a)| a);
        let authority = after.split('/').next()?;
        Some(if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:5432")
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((url, schema)) = self.schema.take() else {
            return;
        };
        // Drop cannot await: clean up on a thread with its own small runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                // A test that panicked may still hold connections in a transaction on this
                // schema, and they close only when this drop returns: give up after a while
                // (leaving the schema) instead of waiting for them forever.
                let _ = admin(
                    &url,
                    &format!("SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {schema} CASCADE"),
                )
                .await;
            });
        })
        .join();
    }
}
