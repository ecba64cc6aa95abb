//! `agreements bench` against a real `agreements serve` (a smoke run of seconds: it keeps the
//! benchmark working; its figures are not asserted — speed is measured by the benchmark itself).

use std::process::Command;

use agreements_store::{Store, demo};

use crate::common::{agreements, config, fixture, fixtures, free_port, ok, serve};

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
    assert!(closed.contains("pool: 3 signed requests"), "{closed}");
    assert!(
        closed.contains("the pool of 3 was sent round robin"),
        "{closed}"
    );
    // Three distinct answers asked again and again: all but the first three signed from memory.
    let from_memory: u64 = closed
        .split("signature cache (the server's /metrics over the measured run): ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no signature cache line: {closed}"));
    assert!(from_memory > 0, "{closed}");
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
    // Throughput against the bound means something in closed loop only.
    assert!(!open.contains("ratio: answers/s ÷ signs/s = "), "{open}");
    assert!(!open.contains("each answer's core time"), "{open}");
    assert!(open.contains("ratio: p99 ÷ one sign = "), "{open}");
    assert!(open.contains(" before, "), "the bound is bracketed: {open}");
    // The bound is openssl speed's when the tool is there (it is wherever OpenSSL's headers
    // are, which the build needs), with the crate's figures beside it.
    assert!(
        open.contains("machine bound (openssl speed -multi ")
            && open.contains("beside it, the openssl crate in this process"),
        "{open}"
    );
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

#[test]
fn bench_writes_a_worlds_mixes_for_wrk() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    let agreements = |args: &[&str]| ok(agreements(args, dir.path()));
    let app_public = fixtures().join("keys/app_public_key_spki.pem");
    agreements(&[
        "generate-world",
        "--persons",
        "300",
        "--out",
        world.to_str().unwrap(),
        "--app-public-key",
        app_public.to_str().unwrap(),
    ]);
    let write = |mix: &str| {
        let file = dir.path().join(format!("{mix}.txt"));
        let key = |name: &str| fixtures().join(name).to_str().unwrap().to_owned();
        let out = agreements(&[
            "bench",
            "--gateway",
            "http://127.0.0.1:9/gateway.do",
            "--app-id",
            demo::APP_ID,
            "--app-key",
            &key("keys/app_private_key_pkcs1.pem"),
            "--platform-key",
            &key("keys/gateway_public_key_spki.pem"),
            "--world",
            world.to_str().unwrap(),
            "--mix",
            mix,
            "--pool",
            "200",
            "--write-wrk",
            file.to_str().unwrap(),
        ]);
        assert!(out.contains(&format!("mix {mix}: ")), "{out}");
        assert!(
            out.contains("wrk -t1 -c16 -d10s -s tests/bench/wrk.lua"),
            "{out}"
        );
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<Vec<String>> = text
            .lines()
            .map(|line| line.split('\t').map(str::to_owned).collect())
            .collect();
        for line in &lines {
            assert_eq!(line.len(), 3, "{line:?}");
            assert!(line[0].starts_with("/gateway.do?"), "{line:?}");
            assert!(
                line[1].starts_with("application/x-www-form-urlencoded"),
                "{line:?}"
            );
            assert!(line[2].starts_with("biz_content="), "{line:?}");
        }
        lines
    };
    let app_of = |line: &[String]| {
        line[0]
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("app_id="))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no app_id: {line:?}"))
    };
    let distinct = write("distinct");
    assert_eq!(distinct.len(), 200);
    let bodies: std::collections::HashSet<(String, &String)> =
        distinct.iter().map(|l| (app_of(l), &l[2])).collect();
    assert_eq!(bodies.len(), 200, "every request different");
    let apps: std::collections::HashSet<String> = distinct.iter().map(|l| app_of(l)).collect();
    assert!(apps.len() > 1, "asked by the merchants' own apps: {apps:?}");
    let member_center = write("member-center");
    assert_eq!(member_center.len(), 200);
    let apps: std::collections::HashSet<String> = member_center.iter().map(|l| app_of(l)).collect();
    assert_eq!(apps.len(), 1, "one member center app: {apps:?}");
    assert!(member_center.iter().all(|l| l[2].contains("MERCHANT")));
    let persons: std::collections::HashSet<&String> = member_center.iter().map(|l| &l[2]).collect();
    assert!(
        persons.len() < 200,
        "Zipf draws persons again: {}",
        persons.len()
    );
}
