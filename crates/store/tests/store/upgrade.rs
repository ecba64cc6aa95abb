//! A database made by an earlier version keeps its data through later migrations.

use agreements_domain::ids::{AgreementNo, AppId};
use agreements_store::{AuditFilter, MIGRATIONS, Store};

/// A SQLite database as a build knowing migrations up to `version` left it.
fn database_at(path: &std::path::Path, version: i64) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .unwrap();
    for m in MIGRATIONS.iter().filter(|m| m.version <= version) {
        c.execute_batch(m.sqlite).unwrap();
        c.execute(
            "INSERT INTO schema_migrations VALUES (?1, ?2, 0)",
            (m.version, m.name),
        )
        .unwrap();
    }
    c
}

#[tokio::test]
async fn sqlite_agreements_survive_the_rebuild_of_migration_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = database_at(&path, 1);
        c.execute_batch(
            "INSERT INTO merchants VALUES ('2088000000000001', 'm', 'NORMAL', NULL);
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

/// Entries written before SQLite's index by person became a full-text index of batches
/// (migration 10) are found by person afterwards, in batches of 1,024.
#[tokio::test]
async fn sqlite_audit_entries_written_before_migration_10_are_found_by_person() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let users = ["2088100000000001", "2088100000000002"];
    {
        let mut c = database_at(&path, 9);
        let tx = c.transaction().unwrap();
        for i in 0..2_500_i64 {
            tx.execute(
                "INSERT INTO audit_entries (id, at_ms, channel, method, user_id, returned, agreement_nos, code) \
                 VALUES (?1, ?2, 'v2', 'alipay.user.agreement.query', ?3, 0, '', '10000')",
                (
                    format!("{:013}-old-{i}", 1_764_700_000_000 + i),
                    1_764_700_000_000 + i,
                    (i % 5 != 0).then_some(users[usize::from(i % 5 == 1)]),
                ),
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    let found = |user: &str| {
        let ids = [user.to_owned()];
        let store = &store;
        async move {
            store
                .audit(&AuditFilter {
                    user_ids: Some(&ids),
                    app_id: None,
                    since_ms: 0,
                    until_ms: i64::MAX,
                    limit: 10_000,
                })
                .await
                .unwrap()
        }
    };
    let second = found(users[1]).await;
    assert_eq!(second.len(), 500);
    assert!(
        second
            .iter()
            .all(|e| (e.at_ms - 1_764_700_000_000) % 5 == 1)
    );
    assert_eq!(found(users[0]).await.len(), 1_500);
    drop(store);
    let c = rusqlite::Connection::open(&path).unwrap();
    let batches: i64 = c
        .query_row("SELECT count(*) FROM audit_batches", [], |r| r.get(0))
        .unwrap();
    assert_eq!(batches, 3);
}

/// A database a newer build migrated is refused, with what to do, rather than written beside
/// data this build would not find.
#[tokio::test]
async fn a_schema_newer_than_the_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    drop(Store::open(path.to_str().unwrap()).await.unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("INSERT INTO schema_migrations VALUES (9999, 'from_the_future', 0)")
        .unwrap();
    let refused = Store::open(path.to_str().unwrap()).await.unwrap_err();
    let message = format!(
        "{refused}: {}",
        std::error::Error::source(&refused).unwrap()
    );
    assert!(message.contains("schema is at version 9999"), "{message}");
    assert!(message.contains("newer build"), "{message}");
}
