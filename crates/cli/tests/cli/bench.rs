//! `agreements bench` against a real `agreements serve` (a smoke run of seconds: it keeps the
//! benchmark working; its figures are not asserted — speed is measured by the benchmark itself).

use std::process::Command;

use agreements_store::{Store, demo};

use crate::common::{config, fixture, fixtures, free_port, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_loads_a_running_gateway_closed_and_open_loop() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let db = db.to_str().unwrap();
    let store = Store::open(db).await.unwrap();
    demo::load(&store, fixture("keys/app_public_key_spki.b64").trim())
        .await
        .unwrap();
    let accounts = dir.path().join("accounts.jsonl");
    std::fs::write(
        &accounts,
        format!(
            "{{\"user_id\":\"{}\"}}\n{{\"user_id\":\"{}\"}}\n{{\"user_id\":\"2088999999999999\"}}\n",
            demo::USER_PRIMARY,
            demo::USER_SECOND
        ),
    )
    .unwrap();
    let port = free_port();
    let mut server = serve(&config(dir.path(), db, port), port).await;
    let key = |name: &str| fixtures().join(name).to_str().unwrap().to_owned();
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "bench".to_owned(),
            "--gateway".to_owned(),
            format!("http://127.0.0.1:{port}/gateway.do"),
            "--app-id".to_owned(),
            demo::APP_ID.to_owned(),
            "--app-key".to_owned(),
            key("keys/app_private_key_pkcs1.pem"),
            "--platform-key".to_owned(),
            key("keys/gateway_public_key_spki.pem"),
            "--accounts".to_owned(),
            accounts.to_str().unwrap().to_owned(),
            "--duration".to_owned(),
            "1".to_owned(),
            "--warmup".to_owned(),
            "0".to_owned(),
            "--verify-every".to_owned(),
            "1".to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let out = Command::new(env!("CARGO_BIN_EXE_agreements"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let pid = server.id().to_string();
    let closed = bench(&["--concurrency", "4", "--server-pid", &pid, "--no-bound"]);
    assert!(
        closed.contains("pool: 3 distinct signed requests"),
        "{closed}"
    );
    assert!(closed.contains("closed loop, 4 connections"), "{closed}");
    assert!(closed.contains(", 0 failed"), "{closed}");
    // Every answer was verified: two persons found, one unknown.
    assert!(
        closed.contains("10000 ×") && closed.contains("40004 USER_NOT_EXIST_ERROR ×"),
        "{closed}"
    );
    assert!(closed.contains("server CPU: "), "{closed}");
    assert!(closed.contains("load generator CPU: "), "{closed}");
    // Junk load: every answer verified is the signed invalid-signature refusal.
    let junk = bench(&["--wrong-signatures", "--no-bound"]);
    assert!(junk.contains("40002 isv.invalid-signature ×"), "{junk}");
    assert!(!junk.contains("10000 ×"), "{junk}");
    let open = bench(&["--rate", "50", "--concurrency", "8"]);
    assert!(open.contains("open loop at 50/s"), "{open}");
    assert!(
        open.contains("latency (from the intended send time): p50 "),
        "{open}"
    );
    assert!(open.contains("ratio: answers/s ÷ signs/s = "), "{open}");
    assert!(open.contains(" before, "), "the bound is bracketed: {open}");
    let answered: u64 = open
        .split(" answered")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((40..=50).contains(&answered), "{answered}: {open}");
    server.kill().unwrap();
    server.wait().unwrap();
}
