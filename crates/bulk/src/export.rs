//! The export driver: every kind (or the chosen ones) to one file each, from one snapshot, page by
//! page, so that memory stays flat whatever the database's size.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use agreements_store::{Kind, Store, StoreError};

use crate::files::{Encoding, Format, RecordWriter};

/// Records read from the database at a time.
pub const PAGE_SIZE: usize = 10_000;

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the database failed.
    #[error("reading the database: {0}")]
    Store(#[from] StoreError),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// The file `kind` is written to in `dir`.
pub fn file_name(dir: &Path, kind: Kind, format: Format) -> PathBuf {
    dir.join(format!("{}.{}", kind.name(), format.extension()))
}

/// Writes `kinds` (in load order) from `store` into `dir` as `<kind>.<format>`, each file
/// complete or not there (written aside, then renamed). `progress` hears each kind's running
/// count. Returns the count per kind.
pub async fn export(
    store: &Store,
    dir: &Path,
    kinds: &[Kind],
    format: Format,
    encoding: Encoding,
    progress: &mut dyn FnMut(Kind, u64),
) -> Result<BTreeMap<Kind, u64>, ExportError> {
    let mut exporter = store.exporter().await?;
    let mut counts = BTreeMap::new();
    let mut kinds = kinds.to_vec();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let path = file_name(dir, kind, format);
        let partial = path.with_extension(format!("{}.partial", format.extension()));
        let io_error = |source| ExportError::Io {
            path: path.clone(),
            source,
        };
        let mut writer =
            RecordWriter::create(&partial, kind, format, encoding).map_err(io_error)?;
        let mut count = 0u64;
        let mut after = None;
        loop {
            let page = exporter.page(kind, after.as_ref(), PAGE_SIZE).await?;
            for record in &page {
                writer.write(record).map_err(io_error)?;
            }
            count += page.len() as u64;
            progress(kind, count);
            match page.into_iter().last() {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        writer.finish().map_err(io_error)?;
        std::fs::rename(&partial, &path).map_err(io_error)?;
        counts.insert(kind, count);
    }
    exporter.finish().await?;
    Ok(counts)
}
