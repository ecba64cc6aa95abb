//! One module per subcommand.

pub mod app;
pub mod bench;
pub mod bulk;
pub mod call;
pub mod demo;
pub mod keygen;
pub mod notify;
pub mod serve;
pub mod token;
pub mod world;

use std::io::Write as _;

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Writes to stdout, reporting a closed pipe as an error that `main` treats as success.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Whether an error is a closed stdout (`agreements app list | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// `agreements migrate`: opening a store applies its pending migrations.
pub async fn migrate(db: &crate::DatabaseArgs) -> anyhow::Result<()> {
    let store = db.open().await?;
    let versions = store.applied_migrations().await?;
    let list: Vec<String> = versions.iter().map(i64::to_string).collect();
    print(&format!(
        "{} schema at version {} (applied: {})\n",
        store.backend(),
        versions.last().copied().unwrap_or(0),
        list.join(", ")
    ))
}
