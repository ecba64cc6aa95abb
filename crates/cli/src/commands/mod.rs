//! One module per subcommand.

pub mod app;
pub mod call;
pub mod demo;
pub mod keygen;
pub mod serve;

use std::io::Write as _;

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
