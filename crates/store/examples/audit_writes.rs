//! What the audit writer's batches cost per entry in a database, as the trail grows: appends
//! BATCHES batches of PER_BATCH entries (each about one of PERSONS accounts, drawn at random),
//! each batch one `append_audit` transaction as the server's writer makes them, and prints the
//! process's CPU time per entry (user and kernel, from `/proc/self/stat`: Linux only).
//!
//! ```sh
//! cargo run --release -p agreements-store --example audit_writes -- w5.db 1000 150 40000
//! ```
//!
//! Run it again on the same file to see the cost at a larger trail (BENCHMARKS.md, "Eleventh
//! window").

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use agreements_store::{AuditEntry, Store};

/// `(user, system)` CPU time of this process so far, in clock ticks (1/100 s on Linux).
fn cpu_ticks() -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(") ")
        .ok_or("unexpected /proc/self/stat")?
        .1;
    let fields: Vec<&str> = rest.split(' ').collect();
    let field = |i: usize| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(fields.get(i).ok_or("unexpected /proc/self/stat")?.parse()?)
    };
    Ok((field(11)?, field(12)?))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: audit_writes DATABASE BATCHES PER_BATCH PERSONS";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [database, batches, per_batch, persons] = args.as_slice() else {
        return Err(usage.into());
    };
    let (batches, per_batch, persons): (u64, u64, u64) =
        (batches.parse()?, per_batch.parse()?, persons.parse()?);
    let store = Store::open(database).await?;
    let start_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    // xorshift64: a fixed, cheap sequence of accounts, the same in every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let tag = format!("bench{}", start_ms % 100_000);
    let (wall, before) = (Instant::now(), cpu_ticks()?);
    for b in 0..batches {
        let at_ms = start_ms + i64::try_from(b)? * 100;
        let mut entries = Vec::new();
        for i in 0..per_batch {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let user = 2_088_000_000_000_000 + x % persons.max(1);
            entries.push(AuditEntry {
                id: format!("{at_ms:013}-{tag}-{}", b * per_batch + i),
                at_ms,
                channel: "v2".into(),
                method: "alipay.user.agreement.batch.query".into(),
                app_id: Some(format!("20210000000000{:02}", x % 40)),
                partner_id: Some("2088000000000001".into()),
                isv_app_id: None,
                token_suffix: None,
                user_id: Some(user.to_string()),
                asked: Some(format!("alipay_user_id {user}")),
                returned: 2,
                agreement_nos: "20245920000000000001 20245920000000000002".into(),
                code: "10000".into(),
                sub_code: None,
            });
        }
        store.append_audit(&entries).await?;
    }
    let after = cpu_ticks()?;
    let entries = batches * per_batch;
    // Microseconds per entry; a clock tick is 10,000 µs.
    let per_entry = |micros: f64| micros / entries.max(1) as f64;
    println!(
        "{entries} entries in {batches} batches: {:.1} µs of wall time, {:.1} µs user and {:.1} µs kernel CPU per entry",
        per_entry(wall.elapsed().as_secs_f64() * 1e6),
        per_entry((after.0 - before.0) as f64 * 10_000.0),
        per_entry((after.1 - before.1) as f64 * 10_000.0),
    );
    Ok(())
}
