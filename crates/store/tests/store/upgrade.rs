//! A database made by an earlier version keeps its data through later migrations.

use agreements_domain::ids::{AgreementNo, AppId};
use agreements_store::{MIGRATIONS, Store};

#[tokio::test]
async fn sqlite_agreements_survive_the_rebuild_of_migration_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        c.execute_batch(MIGRATIONS[0].sqlite).unwrap();
        c.execute_batch(
            "INSERT INTO schema_migrations VALUES (1, 'initial', 0);
             INSERT INTO merchants VALUES ('2088000000000001', 'm', 'NORMAL', NULL);
             INSERT INTO customers VALUES ('2088100000000001');
             INSERT INTO accounts VALUES ('2088100000000001', '2088100000000001', 'NORMAL');
             INSERT INTO agreements VALUES ('20240101000000000001', '2088000000000001', '2021000000000001',
                 'CARD', '2088100000000001', '2088100000000001', 'GENERAL_WITHHOLDING_P',
                 'GENERAL_WITHHOLDING', 'DEFAULT|DEFAULT', 'PARTNER', 'EXT1', NULL, 'NORMAL',
                 1700000000, 1700000000, 4000000000, NULL);",
        )
        .unwrap();
    }
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(store.applied_migrations().await.unwrap(), all);
    let found = store
        .agreement_by_no(
            &AgreementNo::parse("20240101000000000001").unwrap(),
            &AppId::parse("2021000000000001").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found
            .agreement
            .external_agreement_no
            .as_ref()
            .map(|n| n.as_str()),
        Some("EXT1")
    );
    drop(store);
    let c = rusqlite::Connection::open(&path).unwrap();
    let sql: String = c
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'agreements'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.ends_with("WITHOUT ROWID"), "{sql}");
    let events: String = c
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'agreement_events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(events.ends_with("WITHOUT ROWID"), "{events}");
    let indexes: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'agreements' AND type = 'index' AND name LIKE 'agreements_by_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 2);
}
