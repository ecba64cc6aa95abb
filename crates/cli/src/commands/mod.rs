//! One module per subcommand.

pub mod app;
pub mod audit;
pub mod bench;
pub mod bulk;
pub mod ca;
pub mod call;
pub mod demo;
pub mod history;
pub mod keygen;
pub mod notify;
pub mod serve;
pub mod sign_link;
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

/// The command finished, but not everything was done (rows not loaded, records not written):
/// exit status 2 with this warning.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unfinished(pub String);

/// Writes to stdout, terminal-safe (see [`crate::terminal::output`]), reporting a closed pipe as
/// an error that `main` treats as success.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(crate::terminal::output(text).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes a line to stderr, terminal-safe.
pub fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{}", crate::terminal::output(text));
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
