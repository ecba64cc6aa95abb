//! The soak: a real `agreements serve` held at 70 % of its measured saturation, with
//! cancellations and their notifications going on beside the reads. Each interval reports the
//! answers, the errors, p50/p99 and the server's resident memory; at the end every read was
//! answered `10000`, every cancellation was answered and announced, and memory stayed flat.
//!
//! `AGREEMENTS_SOAK_SECS` sets the length: 60 s by default (the suite), 1800 s for the documented
//! run (`BENCHMARKS.md`, with `--release`). Intervals are a sixth of the run, at most a minute.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agreements_client::load::{self, Plan, Report};
use agreements_client::{Client, SignedRequest, now_beijing};
use agreements_store::test_support::{TestBackend, TestDatabase};
use agreements_store::{Store, demo};

use crate::common::{Receiver, agreement_no, client, config, free_port, serve, world};

/// Reads per second of the load, as a share of the measured saturation.
const LOAD_SHARE: f64 = 0.7;
/// Cancellations per second beside the reads.
const UNSIGNS_PER_SEC: u64 = 5;
const READ: &str = "alipay.user.agreement.batch.query";

fn soak_secs() -> u64 {
    std::env::var("AGREEMENTS_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// The server's resident memory in KiB (Linux `/proc`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs `plan` over `pool` on a thread of its own.
async fn run(client: &Arc<Client>, pool: &Arc<Vec<SignedRequest>>, plan: Plan) -> Report {
    let (client, pool) = (client.clone(), pool.clone());
    tokio::task::spawn_blocking(move || load::run(&client, &pool, &plan))
        .await
        .unwrap()
        .unwrap()
}

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_seventy_percent_of_saturation_nothing_fails_and_memory_stays_flat() {
    let secs = soak_secs();
    let interval = (secs / 6).clamp(10, 60);
    let intervals = secs.div_ceil(interval);
    let unsigns = usize::try_from(UNSIGNS_PER_SEC * secs + 10).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(&TestBackend::Sqlite).await.unwrap();
    let store = Store::open(db.location()).await.unwrap();
    let receiver = Receiver::start().await;
    world(&store, &receiver.url, unsigns).await;
    let port = free_port();
    let config = config(dir.path(), db.location(), port);
    let mut server = serve(&config, port).await;
    let pid = server.id();

    // The reads: batch queries of the demo person's two accounts (the cancellations are of
    // another account's agreements, thousands of them in the long run), signed afresh for each
    // interval: a request's timestamp is good for 15 minutes.
    let client = Arc::new(client(port));
    let signed = || {
        let pool: Vec<SignedRequest> = [demo::USER_PRIMARY, demo::USER_SECOND]
            .iter()
            .map(|user| {
                let biz = format!(
                    r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"{user}"}}"#
                );
                client.sign(READ, &biz, &now_beijing(), &[]).unwrap()
            })
            .collect();
        Arc::new(pool)
    };
    let closed = Plan {
        method: READ.into(),
        concurrency: 16,
        duration: Duration::from_secs(3),
        rate: None,
        verify_every: 0,
        first: 0,
    };
    let saturation = run(&client, &signed(), closed).await.throughput();
    let rate = saturation * LOAD_SHARE;
    eprintln!(
        "soak: {secs} s at {rate:.0} reads/s (70 % of {saturation:.0}) and {UNSIGNS_PER_SEC} \
         unsigns/s, reported every {interval} s"
    );

    // The cancellations, one a 1/UNSIGNS_PER_SEC s, each of its own agreement.
    let unsigned = Arc::new(AtomicU64::new(0));
    let unsign_failures = Arc::new(AtomicU64::new(0));
    let (stop_unsigns, mut stopping) = tokio::sync::watch::channel(false);
    let unsigner = {
        let (client, unsigned, failures) =
            (client.clone(), unsigned.clone(), unsign_failures.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / UNSIGNS_PER_SEC));
            for i in 0..unsigns {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopping.changed() => return,
                }
                let biz = format!(r#"{{"agreement_no":"{}"}}"#, agreement_no(i));
                let answer = client.execute("alipay.user.agreement.unsign", &biz).await;
                match answer {
                    Ok(a) if a.code() == "10000" => unsigned.fetch_add(1, Ordering::Relaxed),
                    _ => failures.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    let mut memory = Vec::new();
    let mut worst_p99 = Duration::ZERO;
    let mut failed = 0;
    let mut answered = 0;
    for n in 1..=intervals {
        let plan = Plan {
            method: READ.into(),
            concurrency: 64,
            duration: Duration::from_secs(interval),
            rate: Some(rate),
            verify_every: 20,
            first: 0,
        };
        let report = run(&client, &signed(), plan).await;
        let rss = rss_kib(pid);
        let not_ok: u64 = report
            .verified
            .iter()
            .filter(|(code, _)| code.as_str() != "10000")
            .map(|(_, n)| n)
            .sum();
        let p99 = report.quantile(0.99).unwrap_or(Duration::MAX);
        worst_p99 = worst_p99.max(p99);
        failed += report.failed() + not_ok;
        answered += report.answered;
        memory.push(rss);
        eprintln!(
            "soak {:>5} s: {:>6} answers ({:.0}/s), {} errors, p50 {:.2} ms, p99 {:.2} ms, \
             {} unsigns ({} failed), {} notifications received, server RSS {:.1} MiB",
            n * interval,
            report.answered,
            report.throughput(),
            report.failed() + not_ok,
            ms(report.quantile(0.5)),
            ms(Some(p99)),
            unsigned.load(Ordering::Relaxed),
            unsign_failures.load(Ordering::Relaxed),
            receiver.got.lock().unwrap().len(),
            rss as f64 / 1024.0
        );
        if report.failed() + not_ok > 0 {
            eprintln!(
                "soak errors: {:?}; sampled answers by code: {:?}",
                report.errors, report.verified
            );
        }
    }
    let _ = stop_unsigns.send(true);
    unsigner.await.unwrap();

    // Every cancellation is announced (the receiver answers at once, so the outbox drains).
    let cancelled = unsigned.load(Ordering::Relaxed);
    let announced = || {
        let got = receiver.got.lock().unwrap();
        got.iter()
            .map(|(_, no)| no.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64
    };
    loop {
        let arrival = receiver.arrived.notified();
        if announced() >= cancelled {
            break;
        }
        let waited = tokio::time::timeout(Duration::from_secs(60), arrival).await;
        assert!(
            waited.is_ok(),
            "notifications stopped arriving: {} of {cancelled}",
            announced()
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();

    eprintln!(
        "soak done: {answered} reads, {failed} failed, worst interval p99 {:.2} ms; {cancelled} \
         unsigns; server RSS per interval (MiB): {:?}",
        ms(Some(worst_p99)),
        memory
            .iter()
            .map(|k| (*k as f64 / 1024.0 * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    assert_eq!(failed, 0, "every read is answered 10000");
    assert_eq!(unsign_failures.load(Ordering::Relaxed), 0);
    assert!(cancelled > 0);
    assert_eq!(announced(), cancelled, "every cancellation was announced");
    // Flat memory: after the first interval (caches, pools and buffers warm up), resident memory
    // grows by at most a quarter or 16 MiB, whichever is more.
    let settled = memory[0];
    let last = *memory.last().unwrap();
    assert!(
        last <= settled + (settled / 4).max(16 * 1024),
        "server memory grew from {settled} KiB to {last} KiB"
    );
}
