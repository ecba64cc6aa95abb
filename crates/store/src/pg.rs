//! PostgreSQL through sqlx (its `postgres` feature only: sqlx's SQLite driver and rusqlite
//! cannot link together). Statements stay within what PostgreSQL-wire distributed databases
//! (CockroachDB, YugabyteDB) accept: no sequences, triggers or server-side functions.

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Column as _, PgConnection, Postgres, Row as _, TypeInfo as _};

use crate::db::Param;
use crate::error::StoreError;
use crate::schema::{Cell, Ty};

/// Connections kept open at most.
const MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects a pool to the database `url` names.
pub(crate) async fn connect(url: &str) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::unavailable("reading the database URL", e))?;
    Ok(PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?)
}

/// A connection in use: a pooled one, or one in a transaction (rolled back if dropped before
/// its commit).
#[derive(Debug)]
pub(crate) enum PgConn {
    Pooled(PoolConnection<Postgres>),
    Transaction(sqlx::Transaction<'static, Postgres>),
}

impl PgConn {
    pub(crate) fn raw(&mut self) -> &mut PgConnection {
        match self {
            PgConn::Pooled(c) => c,
            PgConn::Transaction(t) => t,
        }
    }
}

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn bind<'q>(sql: &'q str, params: &'q [Param<'q>]) -> Query<'q> {
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for param in params {
        query = match param {
            Param::Null(Ty::Text) => query.bind(None::<&str>),
            Param::Null(Ty::Int | Ty::Time) => query.bind(None::<i64>),
            Param::Int(i) => query.bind(*i),
            Param::Text(t) => query.bind(*t),
            Param::Ints(values) => query.bind(*values),
            Param::Texts(values) => query.bind(*values),
        };
    }
    query
}

pub(crate) async fn rows(
    conn: &mut PgConnection,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Vec<Cell>>, StoreError> {
    let rows = bind(sql, params).fetch_all(conn).await?;
    rows.iter().map(cells).collect()
}

pub(crate) async fn row(
    conn: &mut PgConnection,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<Vec<Cell>>, StoreError> {
    let row = bind(sql, params).fetch_optional(conn).await?;
    row.as_ref().map(cells).transpose()
}

pub(crate) async fn execute(
    conn: &mut PgConnection,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, StoreError> {
    Ok(bind(sql, params).execute(conn).await?.rows_affected())
}

pub(crate) async fn batch(conn: &mut PgConnection, sql: &str) -> Result<(), StoreError> {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await?;
    Ok(())
}

/// A row's values by the types of its columns.
pub(crate) fn cells(row: &PgRow) -> Result<Vec<Cell>, StoreError> {
    row.columns()
        .iter()
        .map(|column| {
            let i = column.ordinal();
            Ok(match column.type_info().name() {
                "INT8" => row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Cell::Null, Cell::Int),
                "INT4" => row
                    .try_get::<Option<i32>, _>(i)?
                    .map_or(Cell::Null, |v| Cell::Int(v.into())),
                "INT2" => row
                    .try_get::<Option<i16>, _>(i)?
                    .map_or(Cell::Null, |v| Cell::Int(v.into())),
                "BOOL" => row
                    .try_get::<Option<bool>, _>(i)?
                    .map_or(Cell::Null, |v| Cell::Int(v.into())),
                _ => row
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Cell::Null, Cell::Text),
            })
        })
        .collect()
}
