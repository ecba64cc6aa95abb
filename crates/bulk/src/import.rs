//! The import driver: files are read and validated on a thread of their own while the previous
//! batch is written, in kind order so that every reference points to a kind already loaded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agreements_domain::address::AddressPolicy;
use agreements_store::{
    FreshLoader, Kind, LoadOptions, Loader, Outcome, Record, Rejection, Store, StoreError,
};
use tokio::sync::mpsc;

use crate::columns::{self, key_of, key_text};
use crate::files::{self, Encoding, FileError, Format, Parsed, RecordReader, Source};

/// Rows per batch (one transaction) unless told otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 20_000;

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Rows per batch: one transaction each.
    pub batch_size: usize,
    /// Overwrite stored records whose content differs.
    pub update: bool,
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// The files' encoding.
    pub encoding: Encoding,
    /// The kind of every file, instead of telling it from the file names.
    pub kind: Option<Kind>,
    /// Where notifications may go: an app whose notification address names an address outside
    /// it is rejected (names are resolved when notifications are sent).
    pub notify_policy: AddressPolicy,
    /// Read files declared GBK even when their text is UTF-8 (see [`files::reads_as_utf8`]).
    pub force_encoding: bool,
    /// Which path loads the rows.
    pub path: LoadPath,
}

/// How rows reach the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoadPath {
    /// The fresh-load path when the database holds no load data, else batches.
    #[default]
    Auto,
    /// The fresh-load path; an import into a database with load data is refused.
    Fresh,
    /// Batches, each its own transaction, each row checked as it is written.
    Batches,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            update: false,
            dry_run: false,
            encoding: Encoding::Utf8,
            kind: None,
            notify_policy: AddressPolicy::default(),
            force_encoding: false,
            path: LoadPath::Auto,
        }
    }
}

/// Per kind: what happened to its rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// New records written.
    pub inserted: u64,
    /// Stored records overwritten (`--update`).
    pub updated: u64,
    /// Records already stored as they are.
    pub unchanged: u64,
    /// Records stored with other content, left as stored.
    pub conflicting: u64,
    /// Rows refused (invalid, duplicate, missing reference, taken unique value).
    pub rejected: u64,
    /// Rows taken by the fresh-load path, checked when the load finishes (then counted as
    /// inserted or rejected).
    pub pending: u64,
}

impl Counts {
    /// Every row counted.
    pub fn total(&self) -> u64 {
        self.inserted
            + self.updated
            + self.unchanged
            + self.conflicting
            + self.rejected
            + self.pending
    }

    fn add(&mut self, other: &Counts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.conflicting += other.conflicting;
        self.rejected += other.rejected;
        self.pending += other.pending;
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Counts per kind.
    pub kinds: BTreeMap<Kind, Counts>,
    /// How long it took.
    pub elapsed: Duration,
    /// Whether the fresh-load path loaded the rows.
    pub fresh: bool,
}

impl Summary {
    /// Counts over all kinds.
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for counts in self.kinds.values() {
            total.add(counts);
        }
        total
    }
}

/// A row that was not loaded as given, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// The row's line.
    pub line: u64,
    /// The kind of record.
    pub kind: &'static str,
    /// The record's key, when it could be read (logon ids masked).
    pub key: Option<String>,
    /// `rejected`, `duplicate` or `conflict`.
    pub problem: &'static str,
    /// The field at fault (empty for the whole row).
    pub field: String,
    /// Why.
    pub reason: String,
}

/// What the driver tells its caller as it goes.
pub trait Observer {
    /// A file is about to be read; `bytes` is its size.
    fn file_started(&mut self, source: &Source, bytes: u64);
    /// A batch was written: rows and bytes of the current file so far.
    fn progress(&mut self, rows: u64, bytes: u64);
    /// A row was not loaded as given.
    fn problem(&mut self, problem: &Problem);
    /// The file is done.
    fn file_done(&mut self, source: &Source, counts: &Counts);
    /// Every file is read; the fresh-load path now checks the rows and builds the indexes.
    fn checking(&mut self) {}
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read (nothing of it after the failure was loaded).
    #[error(transparent)]
    File(#[from] FileError),
    /// The database failed; every batch before this one is committed.
    #[error(
        "{file}: the database failed while loading the batch starting at line {line}: {source}. \
         Every earlier batch is committed; run the same command again to continue."
    )]
    Database {
        /// The file.
        file: PathBuf,
        /// The batch's first line.
        line: u64,
        /// The failure.
        source: StoreError,
    },
    /// The database could not be opened for loading.
    #[error("starting the load")]
    Start(#[source] StoreError),
    /// `--fresh` was asked for, and the database holds load data.
    #[error(
        "a fresh load needs a database without load data, and this one already holds {0}; \
         load into an empty database, or leave out --fresh to load in batches (each row checked \
         against what is stored)"
    )]
    NotFresh(Kind),
    /// The fresh-load path failed while checking the rows or building the indexes; nothing of
    /// the load was kept.
    #[error(
        "the database failed while checking the loaded rows and building the indexes, and nothing \
         of this load was kept"
    )]
    Finish(#[source] StoreError),
}

/// The files to load: directories are expanded to the load files in them; the result is in kind
/// order (and, within a kind, in the order given).
pub fn sources(paths: &[PathBuf], kind: Option<Kind>) -> Result<Vec<Source>, FileError> {
    let mut sources = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| FileError::Io {
                path: path.clone(),
                source: e,
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && Format::of(p).is_some())
                .collect();
            files.sort();
            for file in files {
                sources.push(Source::detect(&file, kind)?);
            }
        } else {
            sources.push(Source::detect(path, kind)?);
        }
    }
    sources.sort_by_key(|s| s.kind);
    Ok(sources)
}

/// Loads `sources` (see [`sources`]) into `store`.
pub async fn import(
    store: &Store,
    sources: &[Source],
    options: ImportOptions,
    observer: &mut dyn Observer,
) -> Result<Summary, ImportError> {
    let started = Instant::now();
    if options.encoding == Encoding::Gbk && !options.force_encoding {
        for source in sources {
            let utf8 = files::reads_as_utf8(&source.path).map_err(|e| FileError::Io {
                path: source.path.clone(),
                source: e,
            })?;
            if utf8 {
                return Err(FileError::NotDeclaredEncoding {
                    path: source.path.clone(),
                    declared: Encoding::Gbk,
                    found: Encoding::Utf8,
                }
                .into());
            }
        }
    }
    let load_options = LoadOptions {
        update: options.update,
        dry_run: options.dry_run,
    };
    let stored = match options.path {
        LoadPath::Batches => None,
        LoadPath::Auto | LoadPath::Fresh => store
            .first_stored_kind()
            .await
            .map_err(ImportError::Start)?,
    };
    let fresh = match (options.path, stored) {
        (LoadPath::Fresh, Some(kind)) => return Err(ImportError::NotFresh(kind)),
        (LoadPath::Batches, _) | (LoadPath::Auto, Some(_)) => false,
        (LoadPath::Auto | LoadPath::Fresh, None) => true,
    };
    let mut loader = if fresh {
        AnyLoader::Fresh(
            Box::new(
                store
                    .fresh_loader(load_options)
                    .await
                    .map_err(ImportError::Start)?,
            ),
            Origins::default(),
        )
    } else {
        AnyLoader::Batches(
            store
                .loader(load_options)
                .await
                .map_err(ImportError::Start)?,
        )
    };
    let mut summary = Summary {
        fresh,
        ..Summary::default()
    };
    let mut per_source = Vec::with_capacity(sources.len());
    for (index, source) in sources.iter().enumerate() {
        let counts = import_file(&mut loader, index, source, &options, observer).await?;
        per_source.push(counts);
        observer.file_done(source, &counts);
    }
    match loader {
        AnyLoader::Batches(loader) => loader.finish().await.map_err(ImportError::Start)?,
        AnyLoader::Fresh(loader, origins) => {
            observer.checking();
            let rejections = (*loader).finish().await.map_err(ImportError::Finish)?;
            settle(sources, &mut per_source, &origins, rejections, observer);
        }
    }
    for (source, counts) in sources.iter().zip(&per_source) {
        summary.kinds.entry(source.kind).or_default().add(counts);
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The loader an import writes through (a fresh load's holds its checks' state: boxed).
enum AnyLoader {
    Batches(Loader),
    Fresh(Box<FreshLoader>, Origins),
}

impl AnyLoader {
    async fn load(&mut self, kind: Kind, records: &[Record]) -> Result<Vec<Outcome>, StoreError> {
        match self {
            AnyLoader::Batches(l) => l.load(kind, records).await,
            AnyLoader::Fresh(l, _) => l.load(kind, records).await,
        }
    }
}

/// Where each row a fresh load took for later checks came from, per kind, by its number: runs
/// of consecutive lines of one file (a load file's rows are mostly consecutive lines, so this
/// stays small).
#[derive(Debug, Default)]
struct Origins {
    /// Per kind: its runs, and the rows so far.
    runs: BTreeMap<Kind, (Vec<Run>, usize)>,
}

/// Consecutive lines of one file: the first row's number, the file's index, its first line.
type Run = (usize, usize, u64);

impl Origins {
    fn push(&mut self, kind: Kind, source: usize, line: u64) {
        let (runs, rows) = self.runs.entry(kind).or_default();
        let continues = runs.last().is_some_and(|&(first, s, start)| {
            s == source && start + (*rows - first) as u64 == line
        });
        if !continues {
            runs.push((*rows, source, line));
        }
        *rows += 1;
    }

    /// The source index and line of row `row` of `kind`.
    fn of(&self, kind: Kind, row: usize) -> Option<(usize, u64)> {
        let (runs, rows) = self.runs.get(&kind)?;
        if row >= *rows {
            return None;
        }
        let at = runs
            .partition_point(|&(first, _, _)| first <= row)
            .checked_sub(1)?;
        let (first, source, line) = runs[at];
        Some((source, line + (row - first) as u64))
    }
}

/// Turns a fresh load's rejections into problems and counts: every row it took and did not
/// reject was inserted.
fn settle(
    sources: &[Source],
    per_source: &mut [Counts],
    origins: &Origins,
    rejections: Vec<Rejection>,
    observer: &mut dyn Observer,
) {
    for rejection in rejections {
        let Some((index, line)) = origins.of(rejection.kind, rejection.row) else {
            continue;
        };
        let source = &sources[index];
        let (problem, field, reason) = match rejection.outcome {
            Outcome::Duplicate { first } => {
                let reason = match origins.of(rejection.kind, first) {
                    Some((i, first_line)) if i == index => {
                        format!("same key as line {first_line} of this file")
                    }
                    Some((i, first_line)) => format!(
                        "same key as line {first_line} of {}",
                        sources[i].path.display()
                    ),
                    None => "same key as an earlier row".to_owned(),
                };
                ("duplicate", String::new(), reason)
            }
            Outcome::Rejected { field, reason } => ("rejected", field.to_owned(), reason),
            other => ("rejected", String::new(), format!("{other:?}")),
        };
        let counts = &mut per_source[index];
        counts.pending = counts.pending.saturating_sub(1);
        counts.rejected += 1;
        observer.problem(&Problem {
            file: source.path.clone(),
            line,
            kind: rejection.kind.name(),
            key: Some(key_text(rejection.kind, &rejection.key)),
            problem,
            field,
            reason,
        });
    }
    for counts in per_source {
        counts.inserted += counts.pending;
        counts.pending = 0;
    }
}

/// An app whose notification address names an address `policy` refuses is rejected.
fn reachable(record: Record, policy: &AddressPolicy) -> Result<Record, columns::Rejection> {
    if let Record::App(app) = &record
        && let Some(url) = &app.notify_url
    {
        policy
            .check_url(url)
            .map_err(|e| columns::Rejection::new("notify_url", e))?;
    }
    Ok(record)
}

async fn import_file(
    loader: &mut AnyLoader,
    index: usize,
    source: &Source,
    options: &ImportOptions,
    observer: &mut dyn Observer,
) -> Result<Counts, ImportError> {
    let size = std::fs::metadata(&source.path).map_or(0, |m| m.len());
    observer.file_started(source, size);
    let mut reader = RecordReader::open(source, options.encoding)?;
    let bytes_read: Arc<AtomicU64> = reader.bytes_read.clone();
    let batch_size = options.batch_size.max(1);
    let (tx, mut rx) = mpsc::channel::<Result<Vec<Parsed>, FileError>>(2);
    let parser = std::thread::spawn(move || {
        loop {
            let mut rows = Vec::with_capacity(batch_size);
            let mut failure = None;
            while rows.len() < batch_size {
                match reader.next_row() {
                    Ok(Some(row)) => rows.push(row),
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let last = rows.len() < batch_size || failure.is_some();
            if !rows.is_empty() && tx.blocking_send(Ok(rows)).is_err() {
                return;
            }
            if let Some(e) = failure {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            if last {
                return;
            }
        }
    });

    let mut counts = Counts::default();
    let mut rows_done = 0u64;
    while let Some(batch) = rx.recv().await {
        let batch = batch?;
        let first_line = batch.first().map_or(0, |r| r.line);
        let mut records: Vec<Record> = Vec::with_capacity(batch.len());
        let mut lines: Vec<u64> = Vec::with_capacity(batch.len());
        for row in batch {
            rows_done += 1;
            match row
                .result
                .and_then(|record| reachable(record, &options.notify_policy))
            {
                Ok(record) => {
                    records.push(record);
                    lines.push(row.line);
                }
                Err(rejection) => {
                    counts.rejected += 1;
                    observer.problem(&Problem {
                        file: source.path.clone(),
                        line: row.line,
                        kind: source.kind.name(),
                        key: None,
                        problem: "rejected",
                        field: rejection.field,
                        reason: rejection.reason,
                    });
                }
            }
        }
        let outcomes =
            loader
                .load(source.kind, &records)
                .await
                .map_err(|e| ImportError::Database {
                    file: source.path.clone(),
                    line: first_line,
                    source: e,
                })?;
        for ((record, line), outcome) in records.iter().zip(&lines).zip(outcomes) {
            let problem = |problem, field: &str, reason: String| Problem {
                file: source.path.clone(),
                line: *line,
                kind: source.kind.name(),
                key: Some(key_of(record)),
                problem,
                field: field.to_owned(),
                reason,
            };
            match outcome {
                Outcome::Pending => {
                    counts.pending += 1;
                    if let AnyLoader::Fresh(_, origins) = loader {
                        origins.push(source.kind, index, *line);
                    }
                }
                Outcome::Inserted => counts.inserted += 1,
                Outcome::Updated => counts.updated += 1,
                Outcome::Unchanged => counts.unchanged += 1,
                Outcome::Conflict { fields } => {
                    counts.conflicting += 1;
                    observer.problem(&problem(
                        "conflict",
                        fields.first().copied().unwrap_or(""),
                        format!(
                            "stored with other {}; left as stored (use --update to overwrite)",
                            fields.join(", ")
                        ),
                    ));
                }
                Outcome::Duplicate { first } => {
                    counts.rejected += 1;
                    let first_line = lines.get(first).copied().unwrap_or(0);
                    observer.problem(&problem(
                        "duplicate",
                        "",
                        format!("same key as line {first_line} of this file"),
                    ));
                }
                Outcome::Rejected { field, reason } => {
                    counts.rejected += 1;
                    observer.problem(&problem("rejected", field, reason));
                }
            }
        }
        observer.progress(rows_done, bytes_read.load(Ordering::Relaxed));
    }
    let _ = parser.join();
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_map_row_numbers_back_to_files_and_lines() {
        let mut origins = Origins::default();
        // File 0: lines 2, 3, 4, then 6 (line 5 was invalid); file 1: lines 2 and 3.
        for line in [2, 3, 4, 6] {
            origins.push(Kind::Agreement, 0, line);
        }
        for line in [2, 3] {
            origins.push(Kind::Agreement, 1, line);
        }
        origins.push(Kind::Account, 0, 2);
        let runs = &origins.runs[&Kind::Agreement].0;
        assert_eq!(runs, &[(0, 0, 2), (3, 0, 6), (4, 1, 2)]);
        let found: Vec<Option<(usize, u64)>> =
            (0..7).map(|row| origins.of(Kind::Agreement, row)).collect();
        assert_eq!(
            found,
            [
                Some((0, 2)),
                Some((0, 3)),
                Some((0, 4)),
                Some((0, 6)),
                Some((1, 2)),
                Some((1, 3)),
                None
            ]
        );
        assert_eq!(origins.of(Kind::Account, 0), Some((0, 2)));
        assert_eq!(origins.of(Kind::LogonId, 0), None);
    }
}
