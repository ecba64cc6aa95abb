//! Signs in a loop with the server's own signing code and nothing else, to compare with `openssl
//! speed rsa2048` in the same minute (BENCHMARKS.md, "Signing in-process reaches the bound"):
//! one thread, two threads sharing one key (as the server's workers do), and two threads with a
//! key each (RSA blinding's state is per key).
//!
//! ```sh
//! cargo run --release -p agreements-protocol --example sign_rate -- platform_private_key_pkcs1.pem 3
//! openssl speed -seconds 3 rsa2048 && openssl speed -multi 2 -seconds 3 rsa2048
//! ```

use std::time::{Duration, Instant};

use agreements_protocol::{PrivateKey, SignType};

/// Signatures per second made on one thread per key in `keys` for `window`.
fn rate(keys: &[&PrivateKey], window: Duration) -> Result<f64, String> {
    let digest = SignType::Rsa2.digest(br#"{"alipay_user_agreement_query_response":{}}"#);
    let started = Instant::now();
    let total = std::thread::scope(|scope| {
        let threads: Vec<_> = keys
            .iter()
            .map(|key| {
                let digest = &digest;
                scope.spawn(move || {
                    let mut signed = 0u64;
                    while started.elapsed() < window {
                        key.sign_digest(digest).map_err(|e| e.to_string())?;
                        signed += 1;
                    }
                    Ok::<_, String>(signed)
                })
            })
            .collect();
        threads.into_iter().try_fold(0u64, |sum, thread| {
            Ok::<_, String>(sum + thread.join().map_err(|_| "a thread panicked")??)
        })
    })?;
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: sign_rate PRIVATE_KEY.pem [SECONDS]")?;
    let seconds: u64 = args
        .next()
        .map_or(Ok(3), |s| s.parse())
        .map_err(|_| "SECONDS: a whole number")?;
    let pem = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let key = PrivateKey::parse(&pem).map_err(|e| e.to_string())?;
    let other = PrivateKey::parse(&pem).map_err(|e| e.to_string())?;
    let window = Duration::from_secs(seconds);
    println!("one thread: {:.0} signs/s", rate(&[&key], window)?);
    println!(
        "two threads, one key: {:.0} signs/s",
        rate(&[&key, &key], window)?
    );
    println!(
        "two threads, a key each: {:.0} signs/s",
        rate(&[&key, &other], window)?
    );
    Ok(())
}
