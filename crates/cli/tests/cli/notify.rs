//! The outbox survives a crash: a real `agreements serve` process cancelling agreements under
//! load, with notifications still queued and in flight, is killed with SIGKILL and started again;
//! every committed cancellation is then announced (at least once), none is lost.

use std::collections::{BTreeMap, BTreeSet};

use std::process::{Command, Stdio};
use std::time::Duration;

use agreements_client::now_beijing;
use agreements_domain::ids::AgreementNo;
use agreements_domain::notify::DeliveryState;
use agreements_store::test_support::{TestDatabase, backends};
use agreements_store::{NotificationFilter, Store};

use crate::common::{Receiver, agreement_no, client, config, fixtures, free_port, serve, world};

const AGREEMENTS: usize = 120;
const KILL_AFTER: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_sends_every_committed_notification_after_restart() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(&backend).await.unwrap();
        let store = Store::open(db.location()).await.unwrap();
        let receiver = Receiver::start().await;
        world(&store, &receiver.url, AGREEMENTS).await;
        // A slow receiver: deliveries fall behind the cancellations, so the kill finds
        // notifications committed and not yet sent, and others in flight.
        *receiver.delay.lock().unwrap() = Duration::from_millis(150);
        let port = free_port();
        let config = config(dir.path(), db.location(), port);
        let mut server = serve(&config, port).await;

        let client = client(port);
        let mut answered = 0;
        for i in 0..AGREEMENTS {
            if i == KILL_AFTER {
                server.kill().unwrap(); // SIGKILL
                server.wait().unwrap();
                break;
            }
            let biz = format!(r#"{{"agreement_no":"{}"}}"#, agreement_no(i));
            let request = client
                .sign("alipay.user.agreement.unsign", &biz, &now_beijing(), &[])
                .unwrap();
            let (status, _) = client.send(&request).await.unwrap();
            assert_eq!(status, 200);
            answered += 1;
        }
        let all = NotificationFilter {
            limit: 10_000,
            ..NotificationFilter::default()
        };
        let at_kill = store.notifications(&all).await.unwrap();
        let pending_at_kill = at_kill
            .iter()
            .filter(|n| n.state == DeliveryState::Pending)
            .count();
        let received_at_kill = receiver.got.lock().unwrap().len();
        assert_eq!(at_kill.len(), answered, "one notification per cancellation");
        assert!(
            pending_at_kill > 0,
            "the kill must find notifications committed and not delivered"
        );

        // Restart: everything left is sent (claims of the killed process come back after
        // their lease: notify_timeout_ms + 2 s).
        *receiver.delay.lock().unwrap() = Duration::ZERO;
        let mut server = serve(&config, port).await;
        let mut delivered = false;
        for _ in 0..1_500 {
            let now = store.notifications(&all).await.unwrap();
            if now.iter().all(|n| n.state == DeliveryState::Delivered) {
                delivered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill().unwrap();
        server.wait().unwrap();
        assert!(
            delivered,
            "not every notification was delivered after the restart"
        );

        let got = receiver.got.lock().unwrap().clone();
        let mut per_id: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, _) in &got {
            *per_id.entry(id.as_str()).or_default() += 1;
        }
        let announced: BTreeSet<&str> = got.iter().map(|(_, no)| no.as_str()).collect();
        let mut cancelled = BTreeSet::new();
        for i in 0..AGREEMENTS {
            let no = AgreementNo::parse(agreement_no(i)).unwrap();
            let events = store.history(&no).await.unwrap();
            if events.iter().any(|e| e.kind.as_str() == "UNSIGN") {
                cancelled.insert(agreement_no(i));
            }
        }
        let cancelled: BTreeSet<&str> = cancelled.iter().map(String::as_str).collect();
        assert_eq!(cancelled.len(), answered);
        assert_eq!(
            announced, cancelled,
            "every committed cancellation is announced"
        );
        let duplicates = per_id.values().filter(|&&n| n > 1).count();
        eprintln!(
            "{backend:?}: {answered} unsigns answered before SIGKILL; at the kill {pending_at_kill} \
             notifications pending, {received_at_kill} received; after restart all {} delivered, \
             {} sends in total, {duplicates} notify_ids received twice",
            cancelled.len(),
            got.len()
        );
    }
}

/// Runs an operator command; its notifications may reach this machine's receivers (the
/// setting an operator gives a test setup).
fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_agreements"))
        .args(args)
        .env("AGREEMENTS_NOTIFY_ALLOW", "[\"127.0.0.0/8\"]")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_cancel_read_the_history_and_resend_to_a_verifying_receiver() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ops.db");
    let db = db.to_str().unwrap();
    let store = Store::open(db).await.unwrap();
    // `agreements notify receive`, a real process, verifying with the platform public key.
    let receiver_port = free_port();
    let mut receiver = Command::new(env!("CARGO_BIN_EXE_agreements"))
        .args([
            "notify",
            "receive",
            "--listen",
            &format!("127.0.0.1:{receiver_port}"),
            "--platform-key",
            fixtures()
                .join("keys/gateway_public_key_spki.pem")
                .to_str()
                .unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut received = BufReader::new(receiver.stdout.take().unwrap()).lines();
    world(
        &store,
        &format!("http://127.0.0.1:{receiver_port}/notify"),
        AGREEMENTS,
    )
    .await;
    let no = agreement_no(0);

    let said = run(&[
        "unsign",
        &no,
        "--operator",
        "alice",
        "--reason",
        "asked by phone",
        "--database",
        db,
    ]);
    assert!(
        said.contains("NORMAL → UNSIGN") && said.contains("1 notification(s) queued"),
        "{said}"
    );
    let again = run(&["unsign", &no, "--operator", "alice", "--database", db]);
    assert!(again.contains("already cancelled"), "{again}");
    let history = run(&["history", &no, "--database", db]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(
        lines[1].contains("CREATE") && lines[1].contains("- → NORMAL"),
        "{history}"
    );
    assert!(
        lines[2].contains("UNSIGN")
            && lines[2].contains("NORMAL → UNSIGN")
            && lines[2].contains("operator alice (asked by phone)"),
        "{history}"
    );
    let json = run(&["history", &no, "--json", "--database", db]);
    let last: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "UNSIGN");
    assert_eq!(last["reason"], "asked by phone");

    let pending = run(&["notify", "list", "--state", "pending", "--database", db]);
    assert_eq!(pending.lines().count(), 2, "{pending}");
    let notify_id = pending
        .lines()
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();

    // Served with delivery on, it reaches the receiver, which verifies it.
    let port = free_port();
    let config = config(dir.path(), db, port);
    let mut server = serve(&config, port).await;
    let line = received.next().unwrap().unwrap();
    assert!(
        line.starts_with(&format!("verified {notify_id} dut_user_unsign {no} UNSIGN")),
        "{line}"
    );
    let mut delivered = String::new();
    for _ in 0..500 {
        delivered = run(&["notify", "list", "--state", "delivered", "--database", db]);
        if delivered.contains(&notify_id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(delivered.contains(&notify_id), "{delivered}");

    // Re-sent by an operator: the receiver sees the same notify_id again.
    let resent = run(&["notify", "resend", &notify_id, "--database", db]);
    assert!(
        resent.contains("1 notification(s) queued again"),
        "{resent}"
    );
    let line = received.next().unwrap().unwrap();
    assert!(line.starts_with(&format!("verified {notify_id}")), "{line}");
    let unknown = Command::new(env!("CARGO_BIN_EXE_agreements"))
        .args(["notify", "resend", "20240520000", "--database", db])
        .output()
        .unwrap();
    assert!(!unknown.status.success());

    server.kill().unwrap();
    server.wait().unwrap();
    receiver.kill().unwrap();
    receiver.wait().unwrap();
}
