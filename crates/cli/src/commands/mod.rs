//! One module per subcommand.

pub mod app;
pub mod bench;
pub mod bulk;
pub mod call;
pub mod demo;
pub mod history;
pub mod keygen;
pub mod notify;
pub mod serve;
pub mod token;
pub mod unsign;
pub mod world;

use std::io::Write as _;

/// The methods `--method` flags name; every served method when none is given.
pub fn methods(names: &[String]) -> anyhow::Result<Vec<agreements_protocol::Method>> {
    use agreements_protocol::Method;
    if names.is_empty() {
        return Ok(Method::ALL.to_vec());
    }
    names
        .iter()
        .map(|m| {
            Method::parse(m).ok_or_else(|| anyhow::anyhow!("--method {m:?} is not a served method"))
        })
        .collect()
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
