//! The tables' descriptions (what the store reads, writes and loads by) match the schema the
//! migrations build, on every backend: the same columns in the same order, of the same type
//! and nullability.

use agreements_store::Store;
use agreements_store::schema::{Ty, tables};
use agreements_store::test_support::{TestBackend, TestDatabase, backends};
use sqlx::Connection as _;

/// `(name, type, nullable)` of each column of `table`, in order, as the database reports them.
async fn columns(
    db: &TestDatabase,
    backend: &TestBackend,
    table: &str,
) -> Vec<(String, String, bool)> {
    match backend {
        TestBackend::Sqlite => {
            let c = rusqlite::Connection::open(db.location()).unwrap();
            let mut stmt = c.prepare(&format!("PRAGMA table_info({table})")).unwrap();
            stmt.query_map([], |r| {
                Ok((
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)? == 0 && r.get::<_, i64>(5)? == 0,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        }
        TestBackend::Postgres(_) => {
            let mut c = sqlx::postgres::PgConnection::connect(db.location())
                .await
                .unwrap();
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut c)
            .await
            .unwrap();
            c.close().await.unwrap();
            rows.into_iter()
                .map(|(name, ty, nullable)| (name, ty, nullable == "YES"))
                .collect()
        }
    }
}

#[tokio::test]
async fn every_description_matches_the_migrated_schema() {
    for backend in backends() {
        let db = TestDatabase::new(&backend).await.unwrap();
        drop(Store::open(db.location()).await.unwrap());
        for table in tables() {
            let described: Vec<(String, String, bool)> = table
                .columns
                .iter()
                .map(|c| {
                    let ty = match (&backend, c.ty) {
                        (TestBackend::Sqlite, Ty::Text) => "TEXT",
                        (TestBackend::Sqlite, Ty::Int | Ty::Time) => "INTEGER",
                        (TestBackend::Postgres(_), Ty::Text) => "text",
                        (TestBackend::Postgres(_), Ty::Int | Ty::Time) => "bigint",
                    };
                    (c.name.to_owned(), ty.to_owned(), c.nullable)
                })
                .collect();
            assert_eq!(
                columns(&db, &backend, table.name).await,
                described,
                "{backend:?}: {}",
                table.name
            );
        }
    }
}
