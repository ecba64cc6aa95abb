//! A held SQLite write lock (another process's import, a long write) delays no read: writes
//! wait for the lock off the request workers, at most `max_waiting_writes` of them, and one more
//! is answered `20000` at once.

use std::time::Duration;

use agreements_store::Options;
use agreements_store::test_support::TestBackend;
use futures_util::future::select_all;

use crate::helpers::{BATCH_QUERY, TestApp, backend};

const UNSIGN: &str = "alipay.user.agreement.unsign";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_write_lock_delays_no_read_and_waiting_writes_are_bounded() {
    if backend() != TestBackend::Sqlite {
        // PostgreSQL's writes are awaited on the network, never on a worker.
        return;
    }
    let app = TestApp::spawn_with(Options {
        // Longer than the reads below take, so that the writes are still waiting when they are
        // done; a write waiting on a request worker would hold it all this time.
        write_wait: Duration::from_secs(30),
        max_waiting_writes: 2,
        ..Options::default()
    })
    .await;
    // Another process holds the write lock, as an import's batch does.
    let blocker = rusqlite::Connection::open(app.database()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let app = std::sync::Arc::new(app);
    let mut writes: Vec<_> = [
        "20245920000000000001",
        "20231120000000000002",
        "20240102000000000003",
        "20230301000000000004",
    ]
    .into_iter()
    .map(|no| {
        let app = app.clone();
        tokio::spawn(async move {
            app.call(UNSIGN, &format!(r#"{{"agreement_no":"{no}"}}"#))
                .await
        })
    })
    .collect();

    // Two writes may wait; the other two are answered 20000 at once.
    for _ in 0..2 {
        let (done, _, rest) = select_all(writes).await;
        let answer = done.unwrap();
        assert_eq!(answer.code(), "20000", "{:?}", answer.node);
        assert_eq!(answer.node["sub_code"], "isp.unknow-error");
        writes = rest;
    }

    // Reads answer while the writes wait for the lock: a write waiting on a request worker
    // would hold it, and with two workers and two waiting writes no read would be answered.
    let reads = async {
        for _ in 0..20 {
            let answer = app
                .call(
                    BATCH_QUERY,
                    r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"2088101122675263"}"#,
                )
                .await;
            assert_eq!(answer.code(), "10000", "{:?}", answer.node);
        }
    };
    reads.await;
    assert!(
        writes.iter().all(|w| !w.is_finished()),
        "the reads were answered only once the writes had given up: they waited behind them"
    );

    // The lock is released: the waiting writes are done.
    blocker.execute_batch("COMMIT").unwrap();
    for write in writes {
        let answer = write.await.unwrap();
        assert_eq!(answer.code(), "10000", "{:?}", answer.node);
    }
}
