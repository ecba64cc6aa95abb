//! The notification outbox on both backends: a cancellation commits its notifications, claims are
//! exclusive leases (two workers never get the same notification), a lapsed lease makes it due
//! again, and results are recorded.

use std::collections::BTreeSet;
use std::time::Duration;

use agreements_domain::AgreementStatus;
use agreements_domain::ids::AgreementNo;
use agreements_domain::notify::DeliveryState;
use agreements_protocol::SignType;
use agreements_store::test_support::{TestBackend, TestDatabase, backends};
use agreements_store::{
    Attempt, NewNotification, NotificationFilter, Options, Resend, Store, Unsign, UnsignOutcome,
    demo,
};

const NOW: i64 = 1_716_182_055;
const NUMBERS: [&str; 4] = [
    "20245920000000000001",
    "20231120000000000002",
    "20240102000000000003",
    "20230301000000000004",
];

fn notifications(no: &AgreementNo, count: usize) -> Vec<NewNotification> {
    (0..count)
        .map(|i| NewNotification {
            notify_id: format!("{no}-{i}"),
            agreement_no: no.clone(),
            notify_type: "dut_user_unsign".into(),
            url: format!("http://127.0.0.1:40000/{i}"),
            sign_type: SignType::Rsa2,
            params: vec![("agreement_no".into(), no.to_string())],
            created_at: NOW,
        })
        .collect()
}

/// An operator's cancellation of `no` at `NOW`, announced by `queued`.
fn unsign<'a>(no: &'a AgreementNo, queued: &'a [NewNotification]) -> Unsign<'a> {
    Unsign {
        agreement_no: no,
        at: NOW,
        actor: "operator test",
        reason: Some("test"),
        notifications: queued,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_exclusive_leases_and_results_are_recorded() {
    for backend in backends() {
        let db = TestDatabase::new(&backend).await.unwrap();
        let store = Store::open(db.location()).await.unwrap();
        demo::load(&store, "KEY").await.unwrap();
        for no in NUMBERS {
            let no = AgreementNo::parse(no).unwrap();
            let queued = notifications(&no, 3);
            let unsign = unsign(&no, &queued);
            assert!(matches!(
                store.unsign(&unsign).await.unwrap(),
                UnsignOutcome::Unsigned { .. }
            ));
            // Already cancelled: nothing more is queued.
            assert_eq!(
                store.unsign(&unsign).await.unwrap(),
                UnsignOutcome::AlreadyUnsigned
            );
        }
        let missing = AgreementNo::parse("20990101000000000099").unwrap();
        let none = Unsign {
            agreement_no: &missing,
            at: NOW,
            actor: "operator test",
            reason: None,
            notifications: &[],
        };
        assert_eq!(store.unsign(&none).await.unwrap(), UnsignOutcome::NotFound);
        let events = store
            .history(&AgreementNo::parse(NUMBERS[1]).unwrap())
            .await
            .unwrap();
        assert_eq!(events.len(), 2, "{backend:?}: {events:?}");
        assert_eq!(events[1].old_status, Some(AgreementStatus::Stop));

        // Two workers claim at once: disjoint sets, together all twelve.
        let lease = NOW + 12;
        let (a, b) = tokio::join!(
            store.claim_notifications(NOW, lease, 7),
            store.claim_notifications(NOW, lease, 7)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let ids = |list: &[agreements_store::Notification]| -> BTreeSet<String> {
            list.iter().map(|n| n.notify_id.clone()).collect()
        };
        assert!(ids(&a).is_disjoint(&ids(&b)), "{backend:?}");
        assert_eq!(a.len() + b.len(), 12, "{backend:?}");
        // Held: nothing is due until the lease runs out, then everything unrecorded is.
        assert!(
            store
                .claim_notifications(NOW + 5, NOW + 17, 100)
                .await
                .unwrap()
                .is_empty()
        );
        let first = &a[0].notify_id;
        store
            .record_attempt(first, 1, NOW + 1, &Attempt::Delivered)
            .await
            .unwrap();
        let second = &a[1].notify_id;
        store
            .record_attempt(
                second,
                1,
                NOW + 1,
                &Attempt::Retry {
                    at: NOW + 241,
                    error: "HTTP 500".into(),
                },
            )
            .await
            .unwrap();
        let third = &a[2].notify_id;
        store
            .record_attempt(
                third,
                8,
                NOW + 1,
                &Attempt::Failed {
                    error: "gone".into(),
                },
            )
            .await
            .unwrap();
        let again = store
            .claim_notifications(lease, lease + 12, 100)
            .await
            .unwrap();
        assert_eq!(again.len(), 9, "{backend:?}: the lapsed leases come back");
        assert!(!ids(&again).contains(first) && !ids(&again).contains(second));

        let by = |state| NotificationFilter {
            state: Some(state),
            limit: 100,
            ..NotificationFilter::default()
        };
        let delivered = store
            .notifications(&by(DeliveryState::Delivered))
            .await
            .unwrap();
        assert_eq!(ids(&delivered), BTreeSet::from([first.clone()]));
        assert_eq!(delivered[0].delivered_at, Some(NOW + 1));
        let failed = store
            .notifications(&by(DeliveryState::Failed))
            .await
            .unwrap();
        assert_eq!(failed[0].attempts, 8);
        assert_eq!(failed[0].last_error.as_deref(), Some("gone"));
        let of_one = store
            .notifications(&NotificationFilter {
                agreement_no: Some(&AgreementNo::parse(NUMBERS[0]).unwrap()),
                limit: 100,
                ..NotificationFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(of_one.len(), 3);
        let all = store
            .notifications(&NotificationFilter {
                limit: 100,
                ..NotificationFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 12);
        let retried = all.iter().find(|n| &n.notify_id == second).unwrap();
        assert_eq!(retried.state, DeliveryState::Pending);
        assert_eq!((retried.attempts, retried.next_attempt_at), (1, NOW + 241));
        assert_eq!(retried.last_error.as_deref(), Some("HTTP 500"));

        // Re-send the failed one: pending again, due now, fresh schedule.
        assert_eq!(store.resend(Resend::AllFailed, NOW + 9).await.unwrap(), 1);
        let pending = store
            .notifications(&by(DeliveryState::Pending))
            .await
            .unwrap();
        let resent = pending.iter().find(|n| &n.notify_id == third).unwrap();
        assert_eq!((resent.attempts, resent.next_attempt_at), (0, NOW + 9));
        assert_eq!(resent.last_error, None);
        let unknown = ["nope".to_owned()];
        assert_eq!(store.resend(Resend::Ids(&unknown), NOW).await.unwrap(), 0);
    }
}

/// The delivery worker's poll of an idle outbox is a read: with nothing due, claiming takes no
/// write lock, so it neither waits behind another writer (here another connection holding
/// SQLite's lock) nor fails for it. With a notification due, the claim needs the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_outbox_is_polled_without_the_write_lock() {
    let db = TestDatabase::new(&TestBackend::Sqlite).await.unwrap();
    let options = Options {
        write_wait: Duration::from_millis(50),
        ..Options::default()
    };
    let store = Store::open_with(db.location(), options).await.unwrap();
    demo::load(&store, "KEY").await.unwrap();
    let no = AgreementNo::parse(NUMBERS[0]).unwrap();
    let queued = notifications(&no, 1);
    store.unsign(&unsign(&no, &queued)).await.unwrap();

    let other = rusqlite::Connection::open(db.location()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let before_due = store.claim_notifications(NOW - 1, NOW + 10, 10).await;
    assert_eq!(before_due.unwrap().len(), 0, "nothing is due before NOW");
    assert!(
        store.claim_notifications(NOW, NOW + 10, 10).await.is_err(),
        "a due notification is claimed in a write, which waits for the lock"
    );
    other.execute_batch("COMMIT").unwrap();
    let claimed = store.claim_notifications(NOW, NOW + 10, 10).await.unwrap();
    let claimed: Vec<&str> = claimed.iter().map(|n| n.notify_id.as_str()).collect();
    assert_eq!(claimed, [queued[0].notify_id.as_str()]);
}
