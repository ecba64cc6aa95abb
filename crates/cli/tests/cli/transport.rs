//! A real `agreements serve` against hostile and unusual clients: memory stays bounded under
//! thousands of large unfinished request heads, and a client that half-closes is answered.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};

use agreements_store::{Store, demo};

use crate::common::{config, fixture, free_port, serve};

/// A process's resident memory now (`VmRSS`) or at its peak so far (`VmHWM`), in MiB (Linux
/// `/proc`).
fn memory_mib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

/// A demo world served by a real process; `extra` is appended to its configuration.
async fn served(dir: &std::path::Path, extra: &str) -> (std::process::Child, u16) {
    let db = dir.join("agreements.db");
    let db = db.to_str().unwrap();
    let store = Store::open(db).await.unwrap();
    demo::load(&store, fixture("keys/app_public_key_spki.b64").trim())
        .await
        .unwrap();
    drop(store);
    let port = free_port();
    let path = config(dir, db, port);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(extra);
    std::fs::write(&path, text).unwrap();
    (serve(&path, port).await, port)
}

/// 6,000 connections each sending 400 KB of request head (the attack that took a server to
/// 1.6 GB): each costs at most `max_head_bytes` (16 KiB) before it is answered 431, so the
/// server's memory grows by far less than the 2.4 GB sent, and stays bounded once they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_large_unfinished_heads_cost_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = served(dir.path(), "max_connections_per_address = 10000\n").await;
    let pid = server.id();
    let before = memory_mib(pid, "VmRSS");
    let head = format!(
        "POST /gateway.do HTTP/1.1\r\nHost: x\r\nX-Pad: {}",
        "a".repeat(400_000)
    );
    let attack = std::thread::spawn(move || {
        let mut streams: Vec<(TcpStream, usize)> = (0..6_000)
            .map(|_| {
                let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_nonblocking(true).unwrap();
                (s, 0)
            })
            .collect();
        // Round robin until every head is out or its connection refused it.
        let head = head.as_bytes();
        while !streams.is_empty() {
            streams.retain_mut(|(s, sent)| match s.write(&head[*sent..]) {
                Ok(n) => {
                    *sent += n;
                    *sent < head.len()
                }
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            });
        }
    });
    attack.join().unwrap();
    let peak = memory_mib(pid, "VmHWM");
    // A round trip after the connections are gone.
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert!(health.status().is_success());
    let after = memory_mib(pid, "VmRSS");
    eprintln!("server RSS: {before} MiB before, {peak} MiB at the peak, {after} MiB after");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        peak <= before + 160,
        "{peak} MiB at the peak ({before} MiB before)"
    );
    assert!(
        after <= before + 160,
        "{after} MiB after ({before} MiB before)"
    );
}

/// A client that closes its sending side once its request is out still gets the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = served(dir.path(), "").await;
    let body = "app_id=2021000000000001&method=alipay.user.agreement.query";
    for _ in 0..3 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let request = format!(
            "POST /gateway.do HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(answer.contains("\"sign\":\""), "{answer}");
    }
    let _ = server.kill();
    let _ = server.wait();
}
