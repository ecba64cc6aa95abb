//! The export driver: every kind (or the chosen ones) to one file each, from one snapshot, page by
//! page, so that memory stays flat whatever the database's size.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use agreements_domain::ids::mask_logon_id;
use agreements_store::{Kind, Record, Store, StoreError};

use crate::columns;
use crate::files::{Encoding, Format, RecordWriter, WriteError};

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

/// A record an export left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its kind.
    pub kind: Kind,
    /// Its key (`agreement_no=20185…`), logon ids masked.
    pub key: String,
    /// Why it was left out.
    pub reason: String,
}

/// Records written and left out of one kind's file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    /// Records written.
    pub written: u64,
    /// Records left out (each reported to [`ExportObserver::skipped`]).
    pub skipped: u64,
}

/// Hears an export's progress and the records it leaves out.
pub trait ExportObserver {
    /// `kind`'s records read so far.
    fn progress(&mut self, kind: Kind, read: u64);
    /// A record left out; the export goes on.
    fn skipped(&mut self, skipped: &Skipped);
}

/// A record's key as `column=value` pairs, logon ids masked.
fn key(record: &Record) -> String {
    let kind = record.kind();
    let columns = columns::columns(kind);
    let values = columns::values(record);
    kind.table()
        .key
        .iter()
        .map(|&name| {
            let value = columns
                .iter()
                .position(|c| c.name == name)
                .and_then(|i| values[i].as_ref())
                .map(|v| v.text().into_owned())
                .unwrap_or_default();
            let value = if name.contains("logon_id") {
                mask_logon_id(&value)
            } else {
                value
            };
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The file `kind` is written to in `dir`.
pub fn file_name(dir: &Path, kind: Kind, format: Format) -> PathBuf {
    dir.join(format!("{}.{}", kind.name(), format.extension()))
}

/// Writes `kinds` (in load order) from `store` into `dir` as `<kind>.<format>`, each file
/// complete or not there (written aside, then renamed) and readable by its owner only. A record
/// with a value the encoding cannot hold is left out and reported to `observer`, which also
/// hears each kind's running count. Returns the counts per kind.
pub async fn export(
    store: &Store,
    dir: &Path,
    kinds: &[Kind],
    format: Format,
    encoding: Encoding,
    observer: &mut dyn ExportObserver,
) -> Result<BTreeMap<Kind, Exported>, ExportError> {
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
        let mut exported = Exported::default();
        let mut after = None;
        loop {
            let page = exporter.page(kind, after.as_ref(), PAGE_SIZE).await?;
            for record in &page {
                match writer.write(record) {
                    Ok(()) => exported.written += 1,
                    Err(WriteError::Io(e)) => return Err(io_error(e)),
                    Err(unwritable) => {
                        exported.skipped += 1;
                        observer.skipped(&Skipped {
                            kind,
                            key: key(record),
                            reason: unwritable.to_string(),
                        });
                    }
                }
            }
            observer.progress(kind, exported.written + exported.skipped);
            match page.into_iter().last() {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        writer.finish().map_err(io_error)?;
        std::fs::rename(&partial, &path).map_err(io_error)?;
        counts.insert(kind, exported);
    }
    exporter.finish().await?;
    Ok(counts)
}
