//! `agreements import | export | generate-world`: historical data in and out (agreements.md §8).

use std::fs::File;
use std::io::{BufWriter, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use agreements_bulk::export::{ExportObserver, Skipped};
use agreements_bulk::import::{Counts, ImportOptions, LoadPath, Observer, Problem, Summary};
use agreements_bulk::world::WorldOptions;
use agreements_bulk::{Encoding, Format, Source};
use agreements_protocol::PublicKey;
use agreements_store::Kind;
use anyhow::Context as _;
use clap::builder::TypedValueParser as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::DatabaseArgs;
use crate::terminal::Field;

/// Problems listed on the terminal; the report file has them all.
const SHOWN_PROBLEMS: u64 = 20;
/// How often progress lines are printed when stderr is not a terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EncodingArg {
    /// UTF-8 (a byte-order mark is ignored).
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    /// GBK (GB 2312 is a subset).
    #[value(name = "gbk", alias = "gb2312")]
    Gbk,
}

impl From<EncodingArg> for Encoding {
    fn from(e: EncodingArg) -> Self {
        match e {
            EncodingArg::Utf8 => Encoding::Utf8,
            EncodingArg::Gbk => Encoding::Gbk,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Csv => Format::Csv,
        }
    }
}

fn kind(name: &str) -> Result<Kind, String> {
    Kind::from_name(name).ok_or_else(|| {
        format!(
            "unknown kind {name:?}; one of: {}",
            Kind::ALL.map(Kind::name).join(", ")
        )
    })
}

/// Load agreements and the entities they refer to from JSON Lines and CSV files.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Files hold one kind of record each and are named after it (agreements.csv, \
agreements-2019.jsonl, logon_ids.csv, ...); a directory stands for the load files in it. \
Files are loaded in kind order (groups, merchants, products, contracts, apps, accounts, \
logon_ids, open_ids, agreements) so that every reference points to something loaded before. \
The columns are listed in the README.\n\n\
Exit status: 0 when every row was loaded or already stored as given, 2 when some were \
rejected or conflict with stored data (see the report), 1 when the import stopped.")]
pub struct ImportArgs {
    /// Load files or directories of them.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The kind of every file, instead of telling it from the file names.
    #[arg(long, value_parser = kind)]
    pub kind: Option<Kind>,
    /// Text encoding of the files.
    #[arg(long, value_enum, default_value = "utf-8")]
    pub encoding: EncodingArg,
    /// Read files as --encoding says even when their text is evidently another encoding (a file
    /// declared GBK whose non-ASCII text is all valid UTF-8 is refused otherwise).
    #[arg(long)]
    pub force_encoding: bool,
    /// Rows per transaction.
    #[arg(long, default_value_t = agreements_bulk::import::DEFAULT_BATCH_SIZE, value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|n| n as usize))]
    pub batch_size: usize,
    /// Overwrite stored records whose content differs (otherwise they are reported as conflicts).
    #[arg(long)]
    pub update: bool,
    /// Check every row against the database and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Insist on the fresh-load path (the default for a database without load data): refused
    /// when the database holds any.
    #[arg(long, conflicts_with = "no_fresh")]
    pub fresh: bool,
    /// Load in batches even into a database without load data: each batch its own transaction,
    /// each row checked as it is written.
    #[arg(long)]
    pub no_fresh: bool,
    /// Where the machine-readable report (JSON Lines, one problem per line) is written.
    #[arg(long, default_value = "agreements-import-report.jsonl")]
    pub report: PathBuf,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Seconds between progress lines when stderr is not a terminal (0: after every batch).
    #[arg(long, default_value_t = 5)]
    pub progress_every: u64,
}

/// Progress and problems of an import on the terminal, problems in the report file.
struct Console {
    report: BufWriter<File>,
    report_error: Option<std::io::Error>,
    problems: u64,
    bar: Option<ProgressBar>,
    lines: bool,
    interval: Duration,
    file: String,
    file_started: Instant,
    last_line: Instant,
    size: u64,
}

impl Console {
    fn say(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(crate::terminal::output(text)),
            None => super::say(text),
        }
    }
}

impl Observer for Console {
    fn checking(&mut self) {
        let text = "every file read: checking the rows in bulk and building the indexes";
        if let Some(bar) = &self.bar {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(text);
            bar.enable_steady_tick(Duration::from_millis(200));
        } else if self.lines {
            super::say(text);
        }
    }

    fn file_started(&mut self, source: &Source, bytes: u64) {
        self.file = Field(&source.path.display().to_string()).to_string();
        self.file_started = Instant::now();
        self.last_line = Instant::now();
        self.size = bytes;
        if let Some(bar) = &self.bar {
            bar.reset();
            bar.set_length(bytes);
            bar.set_position(0);
            bar.set_prefix(format!("{} ({})", self.file, source.kind));
            bar.set_message("");
        } else if self.lines {
            super::say(&format!(
                "loading {} ({}, {} bytes)",
                self.file, source.kind, bytes
            ));
        }
    }

    fn progress(&mut self, rows: u64, bytes: u64) {
        let rate = rows as f64 / self.file_started.elapsed().as_secs_f64().max(1e-3);
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
        } else if self.lines && self.last_line.elapsed() >= self.interval {
            self.last_line = Instant::now();
            let percent = if self.size == 0 {
                100.0
            } else {
                bytes as f64 * 100.0 / self.size as f64
            };
            super::say(&format!(
                "{}: {rows} rows, {percent:.0}% of the file, {rate:.0} rows/s",
                self.file
            ));
        }
    }

    fn problem(&mut self, problem: &Problem) {
        self.problems += 1;
        if self.problems <= SHOWN_PROBLEMS {
            let field = if problem.field.is_empty() {
                String::new()
            } else {
                format!("{}: ", Field(&problem.field))
            };
            self.say(&format!(
                "{}:{}: {}: {field}{}",
                Field(&problem.file.display().to_string()),
                problem.line,
                problem.problem,
                Field(&problem.reason)
            ));
        }
        if self.report_error.is_none() {
            let written = serde_json::to_writer(&mut self.report, problem)
                .map_err(std::io::Error::from)
                .and_then(|()| self.report.write_all(b"\n"));
            if let Err(e) = written {
                self.report_error = Some(e);
            }
        }
    }

    fn file_done(&mut self, source: &Source, counts: &Counts) {
        let elapsed = self.file_started.elapsed().as_secs_f64();
        let pending = if counts.pending > 0 {
            format!(", {} to check when every file is read", counts.pending)
        } else {
            String::new()
        };
        let text = format!(
            "{}: {} rows in {elapsed:.1} s ({:.0} rows/s): {} inserted, {} updated, {} unchanged, {} conflicting, {} rejected{pending}",
            Field(&source.path.display().to_string()),
            counts.total(),
            counts.total() as f64 / elapsed.max(1e-3),
            counts.inserted,
            counts.updated,
            counts.unchanged,
            counts.conflicting,
            counts.rejected
        );
        if let Some(bar) = &self.bar {
            bar.set_position(self.size);
        }
        if self.bar.is_some() || self.lines {
            self.say(&text);
        }
    }
}

fn summary_table(summary: &Summary, dry_run: bool) -> String {
    let mut out = format!(
        "{:<11} {:>10} {:>9} {:>10} {:>12} {:>9}\n",
        "kind", "inserted", "updated", "unchanged", "conflicting", "rejected"
    );
    let mut line = |name: &str, c: &Counts| {
        out.push_str(&format!(
            "{name:<11} {:>10} {:>9} {:>10} {:>12} {:>9}\n",
            c.inserted, c.updated, c.unchanged, c.conflicting, c.rejected
        ));
    };
    for (kind, counts) in &summary.kinds {
        line(kind.name(), counts);
    }
    let total = summary.total();
    line("total", &total);
    let secs = summary.elapsed.as_secs_f64();
    out.push_str(&format!(
        "{} rows in {secs:.1} s ({:.0} rows/s){}\n",
        total.total(),
        total.total() as f64 / secs.max(1e-3),
        if dry_run {
            "; dry run: nothing was written"
        } else {
            ""
        }
    ));
    out
}

/// `agreements import`.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let sources = agreements_bulk::import::sources(&args.files, args.kind)?;
    if sources.is_empty() {
        anyhow::bail!("no load files (.jsonl, .ndjson or .csv) in the given directories");
    }
    let store = args.db.open().await?;
    let report =
        agreements_bulk::files::create_file(&args.report, agreements_bulk::files::PRIVATE, true)
            .with_context(|| format!("creating the report {}", args.report.display()))?;
    let terminal = std::io::stderr().is_terminal();
    let bar = (!args.quiet && terminal).then(|| {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} (ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let mut console = Console {
        report: BufWriter::new(report),
        report_error: None,
        problems: 0,
        bar,
        lines: !args.quiet && !terminal,
        interval: Duration::from_secs(args.progress_every),
        file: String::new(),
        file_started: Instant::now(),
        last_line: Instant::now(),
        size: 0,
    };
    let options = ImportOptions {
        batch_size: args.batch_size,
        update: args.update,
        dry_run: args.dry_run,
        encoding: args.encoding.into(),
        kind: args.kind,
        notify_policy: args.db.config()?.notify_policy(),
        force_encoding: args.force_encoding,
        path: match (args.fresh, args.no_fresh) {
            (true, _) => LoadPath::Fresh,
            (false, true) => LoadPath::Batches,
            (false, false) => LoadPath::Auto,
        },
    };
    let result = agreements_bulk::import::import(&store, &sources, options, &mut console).await;
    if let Some(bar) = &console.bar {
        bar.finish_and_clear();
    }
    console.report.flush()?;
    if let Some(e) = console.report_error.take() {
        return Err(e).with_context(|| format!("writing the report {}", args.report.display()));
    }
    let summary = result?;
    super::print(&summary_table(&summary, args.dry_run))?;
    if console.problems > SHOWN_PROBLEMS {
        eprintln!(
            "… {} more problem(s) in {}",
            console.problems - SHOWN_PROBLEMS,
            args.report.display()
        );
    }
    let total = summary.total();
    if total.rejected + total.conflicting > 0 {
        return Err(super::Unfinished(format!(
            "{} row(s) rejected and {} in conflict with stored data; see {}",
            total.rejected,
            total.conflicting,
            args.report.display()
        ))
        .into());
    }
    Ok(())
}

/// Write the stored world back out as load files (one per kind), from one snapshot.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The directory the files are written to (created if missing; files are replaced).
    #[arg(long, short)]
    pub out: PathBuf,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// File format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FormatArg,
    /// Text encoding.
    #[arg(long, value_enum, default_value = "utf-8")]
    pub encoding: EncodingArg,
    /// Only these kinds (repeatable); all when omitted.
    #[arg(long = "kind", value_parser = kind)]
    pub kinds: Vec<Kind>,
}

/// Progress and left-out records of an export, on stderr.
struct ExportConsole {
    last: Instant,
    skipped: u64,
}

impl ExportObserver for ExportConsole {
    fn progress(&mut self, kind: Kind, read: u64) {
        if self.last.elapsed() >= LINE_INTERVAL {
            self.last = Instant::now();
            super::say(&format!("{kind}: {read} records"));
        }
    }

    fn skipped(&mut self, skipped: &Skipped) {
        self.skipped += 1;
        if self.skipped <= SHOWN_PROBLEMS {
            super::say(&format!(
                "{}: {}: not written: {}",
                skipped.kind,
                Field(&skipped.key),
                skipped.reason
            ));
        }
    }
}

/// `agreements export`.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let store = args.db.open().await?;
    let kinds = if args.kinds.is_empty() {
        Kind::ALL.to_vec()
    } else {
        args.kinds.clone()
    };
    let started = Instant::now();
    let mut console = ExportConsole {
        last: Instant::now(),
        skipped: 0,
    };
    let counts = agreements_bulk::export::export(
        &store,
        &args.out,
        &kinds,
        args.format.into(),
        args.encoding.into(),
        &mut console,
    )
    .await?;
    let mut out = String::new();
    let (mut total, mut skipped) = (0, 0);
    for (kind, n) in &counts {
        total += n.written;
        skipped += n.skipped;
        let left_out = if n.skipped > 0 {
            format!("  ({} not written)", n.skipped)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:<11} {:>10}  {}{left_out}\n",
            kind.name(),
            n.written,
            agreements_bulk::export::file_name(&args.out, *kind, args.format.into()).display()
        ));
    }
    out.push_str(&format!(
        "{total} records in {:.1} s\n",
        started.elapsed().as_secs_f64()
    ));
    super::print(&out)?;
    if skipped > 0 {
        return Err(super::Unfinished(format!(
            "{skipped} record(s) not written: their values cannot be represented in {}; export them as UTF-8",
            Encoding::from(args.encoding).name()
        ))
        .into());
    }
    Ok(())
}

/// Write a synthetic world as load files, for tests and benchmarks at scale. Deterministic: the
/// same options and seed give the same files.
#[derive(Debug, clap::Args)]
pub struct WorldArgs {
    /// Persons (1–3 accounts each; about 2.6 agreements each on average, a few with hundreds).
    #[arg(long)]
    pub persons: u64,
    /// The directory the files are written to.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Merchants (business units), each with an app and contracts for both products.
    #[arg(long, default_value_t = 40)]
    pub merchants: u32,
    /// Merchant groups.
    #[arg(long, default_value_t = 5)]
    pub groups: u32,
    /// The most agreements one person gets.
    #[arg(long, default_value_t = 2_000)]
    pub max_agreements_per_person: u32,
    /// Public key (PEM or base64) given to every app, so that their calls can be signed.
    #[arg(long)]
    pub app_public_key: Option<PathBuf>,
    /// Notification address of every app (e.g. an `agreements notify receive`); each app gets
    /// its own https://bu<N>.example.com/… address otherwise.
    #[arg(long)]
    pub notify_url: Option<String>,
    /// File format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FormatArg,
    /// Text encoding.
    #[arg(long, value_enum, default_value = "utf-8")]
    pub encoding: EncodingArg,
}

/// `agreements generate-world`.
pub fn generate_world(args: &WorldArgs) -> anyhow::Result<()> {
    let app_public_key = match &args.app_public_key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                PublicKey::parse(&text)
                    .and_then(|k| k.to_spki_base64())
                    .with_context(|| format!("reading {}", path.display()))?,
            )
        }
        None => None,
    };
    let options = WorldOptions {
        persons: args.persons,
        merchants: args.merchants,
        groups: args.groups,
        seed: args.seed,
        max_agreements_per_person: args.max_agreements_per_person,
        app_public_key,
        notify_url: args.notify_url.clone(),
    };
    if let Some(url) = &args.notify_url {
        agreements_domain::address::check_form(url)
            .map_err(|e| anyhow::anyhow!("--notify-url {e}"))?;
    }
    let started = Instant::now();
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| ProgressBar::new(args.persons));
    let mut last = Instant::now();
    let counts = agreements_bulk::world::generate(
        &args.out,
        &options,
        args.format.into(),
        args.encoding.into(),
        &mut |done| match &bar {
            Some(bar) => bar.set_position(done),
            None if last.elapsed() >= LINE_INTERVAL => {
                last = Instant::now();
                eprintln!("{done} of {} persons", args.persons);
            }
            None => {}
        },
    )
    .with_context(|| format!("writing the world into {}", args.out.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut out = String::new();
    for (kind, n) in &counts {
        out.push_str(&format!("{:<11} {n:>10}\n", kind.name()));
    }
    out.push_str(&format!(
        "written to {} in {:.1} s (seed {})\n",
        args.out.display(),
        started.elapsed().as_secs_f64(),
        args.seed
    ));
    super::print(&out)
}
