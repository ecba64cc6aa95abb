//! The audit trail on both backends: batches are written whole, lists filter by a person's
//! accounts, by app and by time (half-open, oldest first, limited), and pruning deletes exactly
//! the entries older than its bound, in chunks.

use agreements_domain::ids::UserId;
use agreements_store::test_support::{TestDatabase, backends};
use agreements_store::{AuditEntry, AuditFilter, Store, demo};

const T0: i64 = 1_764_700_000_000;

fn entry(i: i64, app: &str, user: Option<&str>) -> AuditEntry {
    entry_of("test", i, app, user)
}

/// An entry written by the process tagged `tag`.
fn entry_of(tag: &str, i: i64, app: &str, user: Option<&str>) -> AuditEntry {
    AuditEntry {
        id: format!("{:013}-{tag}-{i}", T0 + i),
        at_ms: T0 + i,
        channel: "v2".into(),
        method: "alipay.user.agreement.query".into(),
        app_id: Some(app.into()),
        partner_id: Some(demo::MERCHANT_VIDEO.into()),
        isv_app_id: None,
        token_suffix: None,
        user_id: user.map(str::to_owned),
        asked: Some("alipay_logon_id abc***@alitest.com".into()),
        returned: 1,
        agreement_nos: "20245920000000000001".into(),
        code: "10000".into(),
        sub_code: None,
    }
}

fn all(since_ms: i64, until_ms: i64) -> AuditFilter<'static> {
    AuditFilter {
        user_ids: None,
        app_id: None,
        since_ms,
        until_ms,
        limit: 1_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_listed_by_person_app_and_time_and_pruned_by_age() {
    for backend in backends() {
        let db = TestDatabase::new(&backend).await.unwrap();
        let store = Store::open(db.location()).await.unwrap();
        demo::load(&store, "KEY").await.unwrap();
        let entries: Vec<AuditEntry> = (0..12)
            .map(|i| match i % 3 {
                0 => entry(i, "2021000000000001", Some(demo::USER_PRIMARY)),
                1 => entry(i, "2021000000000002", Some(demo::USER_SECOND)),
                _ => entry(i, "2021000000000001", Some(demo::USER_OTHER)),
            })
            .collect();
        store.append_audit(&entries[..6]).await.unwrap();
        store.append_audit(&entries[6..]).await.unwrap();
        store.append_audit(&[]).await.unwrap();
        assert_eq!(store.audit(&all(0, i64::MAX)).await.unwrap(), entries);

        // A person's two accounts, from either.
        let primary = UserId::parse(demo::USER_PRIMARY).unwrap();
        let second = UserId::parse(demo::USER_SECOND).unwrap();
        let accounts = store.accounts_of_person(&second).await.unwrap();
        assert_eq!(
            accounts,
            vec![primary.clone(), second.clone()],
            "{backend:?}"
        );
        let ids: Vec<String> = accounts.iter().map(|u| u.as_str().to_owned()).collect();
        let of_person = of(&ids, 0, i64::MAX, 1_000);
        let person = store.audit(&of_person).await.unwrap();
        let expected: Vec<_> = entries
            .iter()
            .filter(|e| e.user_id.as_deref() != Some(demo::USER_OTHER))
            .cloned()
            .collect();
        assert_eq!(person, expected);
        let nobody = UserId::parse("2088999999999999").unwrap();
        assert!(store.accounts_of_person(&nobody).await.unwrap().is_empty());
        let none = store
            .audit(&AuditFilter {
                user_ids: Some(&[]),
                ..all(0, i64::MAX)
            })
            .await
            .unwrap();
        assert!(none.is_empty());

        // An app within [since, until), limited.
        let app = store
            .audit(&AuditFilter {
                app_id: Some("2021000000000001"),
                limit: 3,
                ..all(T0 + 2, T0 + 11)
            })
            .await
            .unwrap();
        let at: Vec<i64> = app.iter().map(|e| e.at_ms - T0).collect();
        assert_eq!(at, vec![2, 3, 5]);

        // Pruning: exactly the older ones go, whatever the chunking.
        assert_eq!(store.audit_older_than(T0 + 5).await.unwrap(), 5);
        let mut seen = Vec::new();
        let deleted = store.prune_audit(T0 + 5, |n| seen.push(n)).await.unwrap();
        assert_eq!(deleted, 5);
        assert_eq!(seen.last(), Some(&5));
        let left = store.audit(&all(0, i64::MAX)).await.unwrap();
        assert_eq!(left, entries[5..].to_vec());
        assert_eq!(store.prune_audit(T0 + 5, |_| {}).await.unwrap(), 0);
        let person = store.audit(&of_person).await.unwrap();
        assert_eq!(person, expected[4..].to_vec(), "{backend:?}");

        // Everything pruned: the person has nothing left, and new entries are found again.
        store.prune_audit(i64::MAX, |_| {}).await.unwrap();
        assert!(
            store.audit(&of_person).await.unwrap().is_empty(),
            "{backend:?}"
        );
        let one = [entry(40, "2021000000000001", Some(demo::USER_PRIMARY))];
        store.append_audit(&one).await.unwrap();
        let person = store.audit(&of_person).await.unwrap();
        assert_eq!(person, one.to_vec(), "{backend:?}");
    }
}

fn of(users: &[String], since_ms: i64, until_ms: i64, limit: u32) -> AuditFilter<'_> {
    AuditFilter {
        user_ids: Some(users),
        app_id: None,
        since_ms,
        until_ms,
        limit,
    }
}

/// Two processes writing to one database: their batches' id ranges overlap, and an entry
/// without an account, or with one the others' ids only contain, is nobody else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_gets_each_entry_once_from_overlapping_batches() {
    for backend in backends() {
        let db = TestDatabase::new(&backend).await.unwrap();
        let store = Store::open(db.location()).await.unwrap();
        let app = "2021000000000001";
        let (alice, bob, prefix) = ("2088100000000001", "2088100000000002", "2088100000");
        let a: Vec<AuditEntry> = (0..6)
            .map(|i| entry_of("a", 2 * i, app, Some(if i % 2 == 0 { alice } else { bob })))
            .collect();
        let b: Vec<AuditEntry> = (0..6)
            .map(|i| match i % 3 {
                0 => entry_of("b", 2 * i + 1, app, Some(alice)),
                1 => entry_of("b", 2 * i + 1, app, None),
                _ => entry_of("b", 2 * i + 1, app, Some(prefix)),
            })
            .collect();
        store.append_audit(&a).await.unwrap();
        store.append_audit(&b).await.unwrap();
        let mut expected: Vec<AuditEntry> = a
            .iter()
            .chain(&b)
            .filter(|e| e.user_id.as_deref() == Some(alice))
            .cloned()
            .collect();
        expected.sort_by_key(|e| e.at_ms);
        let alice_only = [alice.to_owned()];
        let found = store
            .audit(&of(&alice_only, 0, i64::MAX, 100))
            .await
            .unwrap();
        assert_eq!(found, expected, "{backend:?}");
        let window = store
            .audit(&of(&alice_only, T0 + 2, T0 + 9, 2))
            .await
            .unwrap();
        let at: Vec<i64> = window.iter().map(|e| e.at_ms - T0).collect();
        assert_eq!(at, vec![4, 7], "{backend:?}");
        let short = [prefix.to_owned()];
        let found = store.audit(&of(&short, 0, i64::MAX, 100)).await.unwrap();
        let at: Vec<i64> = found.iter().map(|e| e.at_ms - T0).collect();
        assert_eq!(at, vec![5, 11], "{backend:?}");
        let both = [alice.to_owned(), bob.to_owned()];
        let found = store.audit(&of(&both, 0, i64::MAX, 100)).await.unwrap();
        assert_eq!(found.len(), 8, "{backend:?}");
        assert!(found.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
    }
}
