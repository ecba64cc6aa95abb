//! The audit trail's crash bound: a real `agreements serve` answering reads from four clients is
//! killed with SIGKILL; every read answered more than one second before the kill is in the trail.
//! Then the operator's commands: `agreements audit --person/--app` and `audit prune`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agreements_client::{Client, now_beijing};
use agreements_store::test_support::{TestDatabase, backends};
use agreements_store::{AuditFilter, Store, demo};

use crate::common::{client, config, fixture, free_port, serve, with_db};

const CLIENTS: usize = 4;
/// Load runs at least this long before the kill, so that some answers are older than the bound.
const LOAD: Duration = Duration::from_millis(1_800);
const BOUND_MS: i64 = 1_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap())
}

/// Each read names its own (unknown) user, so that each answer's entry can be told apart.
fn user(i: usize) -> String {
    format!("20885{i:011}")
}

async fn read(client: &Client, biz: &str) -> String {
    let request = client
        .sign(
            "alipay.user.agreement.batch.query",
            biz,
            &now_beijing(),
            &[],
        )
        .unwrap();
    let (status, body) = client.send(&request).await.unwrap();
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_read_answered_more_than_a_second_before() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(&backend).await.unwrap();
        let store = Store::open(db.location()).await.unwrap();
        demo::load(&store, fixture("keys/app_public_key_spki.b64").trim())
            .await
            .unwrap();
        let port = free_port();
        let config = config(dir.path(), db.location(), port);
        let mut server = serve(&config, port).await;

        // One read of a real person, by the logon id of their first account.
        let client = Arc::new(client(port));
        let person = format!(
            r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_logon_id":"{}"}}"#,
            demo::LOGON_EMAIL
        );
        assert!(read(&client, &person).await.contains("\"10000\""));

        // Load from four clients; each answer's completion time is kept.
        let next = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(std::sync::Mutex::new(Vec::<(usize, i64)>::new()));
        let progress = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (client, next, answered, progress) = (
                client.clone(),
                next.clone(),
                answered.clone(),
                progress.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let biz = format!(
                        r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"{}"}}"#,
                        user(i)
                    );
                    let request = client
                        .sign(
                            "alipay.user.agreement.batch.query",
                            &biz,
                            &now_beijing(),
                            &[],
                        )
                        .unwrap();
                    // The kill ends the load: a failed send is the last of this client.
                    let Ok((200, _)) = client.send(&request).await else {
                        return;
                    };
                    answered.lock().unwrap().push((i, now_ms()));
                    progress.notify_one();
                }
            }));
        }
        let started = Instant::now();
        while started.elapsed() < LOAD {
            progress.notified().await;
        }
        server.kill().unwrap(); // SIGKILL, reads in flight
        let killed_ms = now_ms();
        server.wait().unwrap();
        for task in tasks {
            task.await.unwrap();
        }

        let answered = answered.lock().unwrap().clone();
        let everything = AuditFilter {
            user_ids: None,
            app_id: None,
            since_ms: 0,
            until_ms: i64::MAX,
            limit: u32::MAX,
        };
        let trail = store.audit(&everything).await.unwrap();
        let recorded: BTreeSet<String> = trail.iter().filter_map(|e| e.asked.clone()).collect();
        let missing: Vec<i64> = answered
            .iter()
            .filter(|(i, _)| !recorded.contains(&format!("alipay_user_id {}", user(*i))))
            .map(|(_, at)| killed_ms - at)
            .collect();
        let old = answered
            .iter()
            .filter(|(_, at)| killed_ms - at > BOUND_MS)
            .count();
        assert!(old > 0, "the load must have run longer than the bound");
        let worst = missing.iter().copied().max();
        eprintln!(
            "{backend:?}: {} reads answered before SIGKILL ({old} more than {BOUND_MS} ms before); \
             {} not in the trail, the oldest answered {worst:?} ms before the kill",
            answered.len(),
            missing.len()
        );
        assert!(
            worst.is_none_or(|ms| ms <= BOUND_MS),
            "an entry answered {worst:?} ms before the kill was lost"
        );

        // The operator's view: the person's read, found from their other account's logon id.
        let location = db.location();
        let listed = with_db(
            dir.path(),
            location,
            &["audit", "--person", "abx.work@alitest.com", "--json"],
        );
        let lines: Vec<serde_json::Value> = listed
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{listed}");
        assert_eq!(lines[0]["user_id"], demo::USER_PRIMARY);
        assert_eq!(lines[0]["asked"], "alipay_logon_id abx***@alitest.com");
        assert_eq!(lines[0]["code"], "10000");
        assert!(!listed.contains(demo::LOGON_EMAIL));
        let table = with_db(
            dir.path(),
            location,
            &["audit", "--app", demo::APP_ID, "--limit", "1000000"],
        );
        assert_eq!(table.lines().count(), trail.len() + 1, "header and entries");

        // Pruning: a dry run counts, then everything before tomorrow goes.
        let tomorrow = agreements_protocol::timestamp::format_beijing(now_ms() / 1000 + 86_400);
        let tomorrow = &tomorrow[..10];
        let counted = with_db(
            dir.path(),
            location,
            &["audit", "prune", "--before", tomorrow, "--dry-run"],
        );
        assert!(
            counted.starts_with(&format!("{} audit entries", trail.len())),
            "{counted}"
        );
        let pruned = with_db(
            dir.path(),
            location,
            &["audit", "prune", "--before", tomorrow],
        );
        assert!(
            pruned.starts_with(&format!("deleted {}", trail.len())),
            "{pruned}"
        );
        assert!(store.audit(&everything).await.unwrap().is_empty());
    }
}
