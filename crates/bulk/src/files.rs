//! Load files: which kind and format a file holds, reading them as a stream of validated records
//! (each with its line number), and writing them.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use agreements_store::{Kind, Record};
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

use crate::columns::{self, Column, Fields, Rejection, Value};

/// Longest line (JSON Lines) or record (CSV) read; a longer one is rejected, never buffered whole.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    Jsonl,
    /// Comma-separated values with a header row (`.csv`).
    Csv,
}

impl Format {
    /// The file extension written.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }

    /// The format a file name's extension names.
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// A text encoding of load files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8 (a leading byte-order mark is ignored).
    #[default]
    Utf8,
    /// GBK (GB 2312 is a subset).
    Gbk,
}

impl Encoding {
    fn decode<'b>(self, bytes: &'b [u8]) -> Option<Cow<'b, str>> {
        match self {
            Encoding::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            Encoding::Gbk => {
                encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes)
            }
        }
    }

    /// Its name (`UTF-8`, `GBK`).
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Gbk => "GBK",
        }
    }
}

/// Whether the file's bytes are valid UTF-8 with non-ASCII characters among them. GBK text with
/// Chinese characters in it almost never is (its two-byte characters seldom form UTF-8
/// sequences), so such a file declared GBK was written in UTF-8 and would load as mojibake.
/// Reads until the first byte that cannot be UTF-8, so a GBK file is refused or accepted early.
pub fn reads_as_utf8(path: &Path) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    // Bytes of a sequence cut by the end of the previous read, moved to the buffer's start.
    let mut carried = 0;
    let mut non_ascii = false;
    loop {
        let n = file.read(&mut buf[carried..])?;
        if n == 0 {
            return Ok(non_ascii && carried == 0);
        }
        let filled = carried + n;
        let (valid, rest) = match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => (filled, 0),
            Err(e) if e.error_len().is_none() => (e.valid_up_to(), filled - e.valid_up_to()),
            Err(_) => return Ok(false),
        };
        non_ascii |= rest > 0 || !buf[..valid].is_ascii();
        buf.copy_within(valid..filled, 0);
        carried = rest;
    }
}

/// What stops a file from being read at all (a bad row only rejects that row).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file's name does not say what it holds.
    #[error(
        "{path}: cannot tell what the file holds: name it after its kind ({kinds}, e.g. agreements.csv or agreements-2019.jsonl) with a .jsonl or .csv extension"
    )]
    Unrecognised {
        /// The file.
        path: PathBuf,
        /// The kind names.
        kinds: String,
    },
    /// A CSV header that does not match the kind's columns.
    #[error("{path}: header: {reason}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file declared in one encoding whose text is evidently in another.
    #[error(
        "{path}: declared {} but its text is {} (it has non-ASCII characters, all valid {}): import it with --encoding {}, or pass --force-encoding to read it as {} anyway",
        declared.name(), found.name(), found.name(), found.name().to_lowercase(), declared.name()
    )]
    NotDeclaredEncoding {
        /// The file.
        path: PathBuf,
        /// The encoding it was declared in.
        declared: Encoding,
        /// The encoding its bytes are in.
        found: Encoding,
    },
    /// A CSV file that cannot be parsed.
    #[error("{path}: line {line}: {reason}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// Where.
        line: u64,
        /// What.
        reason: String,
    },
}

/// A load file: where it is, what it holds, its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// The kind of every record in it.
    pub kind: Kind,
    /// Its format.
    pub format: Format,
}

impl Source {
    /// Tells kind and format from the file name (`agreements.csv`, `logon_ids-part2.jsonl`), or
    /// the kind from `kind` when given.
    pub fn detect(path: &Path, kind: Option<Kind>) -> Result<Source, FileError> {
        let unrecognised = || FileError::Unrecognised {
            path: path.to_owned(),
            kinds: Kind::ALL.map(Kind::name).join(", "),
        };
        let format = Format::of(path).ok_or_else(unrecognised)?;
        let kind = match kind {
            Some(kind) => kind,
            None => {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(unrecognised)?;
                Kind::ALL
                    .into_iter()
                    .filter(|k| {
                        name.strip_prefix(k.name()).is_some_and(|rest| {
                            rest.starts_with(|c: char| !c.is_ascii_alphanumeric())
                        })
                    })
                    .max_by_key(|k| k.name().len())
                    .ok_or_else(unrecognised)?
            }
        };
        Ok(Source {
            path: path.to_owned(),
            kind,
            format,
        })
    }
}

/// One row read: its line number and the record, or why it was rejected.
#[derive(Debug)]
pub struct Parsed {
    /// 1-based line of the row's start.
    pub line: u64,
    /// The validated record, or the rejection.
    pub result: Result<Record, Rejection>,
}

/// Most bytes one CSV record may span. The CSV parser keeps a whole record in memory, and a quoted
/// field may run over many lines, so records are bounded in bytes as they are read: a file with a
/// longer one (an unclosed quote, or not a CSV file) is refused instead of buffered.
pub const MAX_CSV_RECORD_BYTES: u64 = 1024 * 1024;

/// Bytes the CSV reader buffers ahead of the record it parses.
const CSV_BUFFER_BYTES: usize = 256 * 1024;

/// Counts the bytes read through it, for progress; for CSV, refuses to read more than
/// [`MAX_CSV_RECORD_BYTES`] (plus the reader's buffer) past the start of the record being parsed.
struct Counting<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    total: u64,
    /// The byte offset where the record being parsed starts; `None` for files read by line.
    record_start: Option<u64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(start) = self.record_start
            && self.total - start > MAX_CSV_RECORD_BYTES + CSV_BUFFER_BYTES as u64
        {
            return Err(io::Error::new(io::ErrorKind::InvalidData, RecordTooLong));
        }
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// The CSV record being read spans more than [`MAX_CSV_RECORD_BYTES`].
#[derive(Debug)]
struct RecordTooLong;

impl fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a record is longer than {MAX_CSV_RECORD_BYTES} bytes (an unclosed quote, or not a CSV file?)"
        )
    }
}

impl std::error::Error for RecordTooLong {}

/// Reads a load file as a stream of [`Parsed`] rows, never holding more than a row.
pub struct RecordReader {
    source: Source,
    encoding: Encoding,
    inner: Inner,
    /// Bytes read so far.
    pub bytes_read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

enum Inner {
    Jsonl {
        reader: BufReader<Counting<File>>,
        line: u64,
        buf: Vec<u8>,
    },
    Csv {
        reader: csv::Reader<Counting<File>>,
        /// For each file column, the kind column it fills.
        map: Vec<usize>,
        /// The line where the next record starts.
        record_line: u64,
        record: csv::ByteRecord,
    },
}

impl fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordReader")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl RecordReader {
    /// Opens `source`; for CSV reads and checks the header.
    pub fn open(source: &Source, encoding: Encoding) -> Result<Self, FileError> {
        let io_error = |source_error| FileError::Io {
            path: source.path.clone(),
            source: source_error,
        };
        let file = File::open(&source.path).map_err(io_error)?;
        let bytes_read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counting = Counting {
            inner: file,
            read: bytes_read.clone(),
            total: 0,
            record_start: (source.format == Format::Csv).then_some(0),
        };
        let inner = match source.format {
            Format::Jsonl => Inner::Jsonl {
                reader: BufReader::with_capacity(256 * 1024, counting),
                line: 0,
                buf: Vec::with_capacity(1024),
            },
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .buffer_capacity(CSV_BUFFER_BYTES)
                    .from_reader(counting);
                let header = reader.byte_headers().map_err(|e| FileError::Header {
                    path: source.path.clone(),
                    reason: e.to_string(),
                })?;
                let map = header_map(source.kind, header, encoding).map_err(|reason| {
                    FileError::Header {
                        path: source.path.clone(),
                        reason,
                    }
                })?;
                let next = reader.position().clone();
                reader.get_mut().record_start = Some(next.byte());
                Inner::Csv {
                    reader,
                    record_line: next.line(),
                    map,
                    record: csv::ByteRecord::new(),
                }
            }
        };
        Ok(Self {
            source: source.clone(),
            encoding,
            inner,
            bytes_read,
        })
    }

    /// The next row, `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Parsed>, FileError> {
        let kind = self.source.kind;
        let encoding = self.encoding;
        match &mut self.inner {
            Inner::Jsonl { reader, line, buf } => loop {
                buf.clear();
                let Some(complete) = read_line(reader, buf).map_err(|e| FileError::Io {
                    path: self.source.path.clone(),
                    source: e,
                })?
                else {
                    return Ok(None);
                };
                *line += 1;
                if !complete {
                    return Ok(Some(Parsed {
                        line: *line,
                        result: Err(Rejection::new(
                            "",
                            format!("line is longer than {MAX_LINE_BYTES} bytes"),
                        )),
                    }));
                }
                let bytes = trim_line_end(buf);
                let bytes = if *line == 1 {
                    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
                } else {
                    bytes
                };
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(Parsed {
                    line: *line,
                    result: json_row(kind, bytes, encoding),
                }));
            },
            Inner::Csv {
                reader,
                map,
                record_line,
                record,
            } => {
                let more = reader
                    .read_byte_record(record)
                    .map_err(|e| FileError::Csv {
                        path: self.source.path.clone(),
                        line: e.position().map_or(*record_line, csv::Position::line),
                        reason: e.to_string(),
                    })?;
                if !more {
                    return Ok(None);
                }
                let next = reader.position();
                *record_line = next.line();
                reader.get_mut().record_start = Some(next.byte());
                let line = record.position().map_or(0, csv::Position::line);
                Ok(Some(Parsed {
                    line,
                    result: csv_row(kind, record, map, encoding),
                }))
            }
        }
    }
}

/// Reads one line into `buf` (without reading more than [`MAX_LINE_BYTES`] of it into memory):
/// `None` at the end, `Some(false)` for a longer line (skipped to its end).
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    let n = reader
        .by_ref()
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() <= MAX_LINE_BYTES || buf.ends_with(b"\n") {
        return Ok(Some(true));
    }
    // Skip the rest of the over-long line.
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                break;
            }
            None => {
                let len = chunk.len();
                reader.consume(len);
            }
        }
    }
    Ok(Some(false))
}

fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

fn header_map(
    kind: Kind,
    header: &csv::ByteRecord,
    encoding: Encoding,
) -> Result<Vec<usize>, String> {
    let columns = columns::columns(kind);
    let mut map = Vec::with_capacity(header.len());
    let mut unknown = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let name = if i == 0 {
            name.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(name)
        } else {
            name
        };
        let name = encoding
            .decode(name)
            .ok_or_else(|| format!("column {} is not valid {}", i + 1, encoding.name()))?;
        let name = name.trim();
        match columns.iter().position(|c| c.name == name) {
            Some(c) if map.contains(&c) => return Err(format!("column {name:?} appears twice")),
            Some(c) => map.push(c),
            None => unknown.push(format!("{name:?}")),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unknown column(s) {} for {kind} (the columns are: {})",
            unknown.join(", "),
            names(columns)
        ));
    }
    let missing: Vec<&str> = columns
        .iter()
        .enumerate()
        .filter(|(i, c)| c.required && !map.contains(i))
        .map(|(_, c)| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing column(s) {} for {kind} (the columns are: {})",
            missing.join(", "),
            names(columns)
        ));
    }
    Ok(map)
}

fn names(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| {
            if c.required {
                c.name.to_owned()
            } else {
                format!("[{}]", c.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn csv_row(
    kind: Kind,
    record: &csv::ByteRecord,
    map: &[usize],
    encoding: Encoding,
) -> Result<Record, Rejection> {
    if record.len() != map.len() {
        return Err(Rejection::new(
            "",
            format!(
                "has {} fields, the header has {} (truncated row, or an unquoted comma?)",
                record.len(),
                map.len()
            ),
        ));
    }
    if record.as_slice().len() > MAX_LINE_BYTES {
        return Err(Rejection::new(
            "",
            format!("row is longer than {MAX_LINE_BYTES} bytes"),
        ));
    }
    let columns = columns::columns(kind);
    let mut values: Vec<Option<Value<'_>>> = vec![None; columns.len()];
    for (field, &c) in record.iter().zip(map) {
        let text = encoding.decode(field).ok_or_else(|| {
            Rejection::new(
                &columns[c].name,
                format!("is not valid {}", encoding.name()),
            )
        })?;
        let text = csv_cell_value(text);
        if !text.is_empty() {
            values[c] = Some(Value::Text(text));
        }
    }
    columns::parse(kind, &Fields::new(&values))
}

fn json_row(kind: Kind, bytes: &[u8], encoding: Encoding) -> Result<Record, Rejection> {
    let text = encoding
        .decode(bytes)
        .ok_or_else(|| Rejection::new("", format!("line is not valid {}", encoding.name())))?;
    let mut de = serde_json::Deserializer::from_str(&text);
    let values = RowSeed { kind }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            let reason = if e.is_eof() {
                format!("incomplete JSON object (truncated line?): {e}")
            } else {
                format!("not a JSON object of {kind} fields: {e}")
            };
            Rejection::new("", reason)
        })?;
    columns::parse(kind, &Fields::new(&values))
}

/// Deserialises one JSON object into the kind's column values, refusing unknown and repeated
/// fields.
struct RowSeed {
    kind: Kind,
}

impl<'de> DeserializeSeed<'de> for RowSeed {
    type Value = Vec<Option<Value<'de>>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed {
    type Value = Vec<Option<Value<'de>>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object of {} fields", self.kind)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let columns = columns::columns(self.kind);
        let mut values: Vec<Option<Value<'de>>> = vec![None; columns.len()];
        let mut seen = vec![false; columns.len()];
        // Files written in the documented order (as `export` and `generate-world` write them)
        // name the column after the last one next: tried first, it spares a search of the
        // column names per field.
        let mut next = 0;
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let found = match columns.get(next) {
                Some(c) if c.name == name => Some(next),
                _ => columns.iter().position(|c| c.name == name),
            };
            let Some(i) = found else {
                return Err(A::Error::custom(format_args!(
                    "unknown field {name:?} (the fields are: {})",
                    names(columns)
                )));
            };
            if std::mem::replace(&mut seen[i], true) {
                return Err(A::Error::custom(format_args!(
                    "field {name:?} appears twice"
                )));
            }
            values[i] = map.next_value::<JsonValue<'de>>()?.0;
            next = i + 1;
        }
        Ok(values)
    }
}

/// A field's value: a string, null, or an array of strings.
struct JsonValue<'de>(Option<Value<'de>>);

impl<'de> serde::Deserialize<'de> for JsonValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonValue<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, null, or an array of strings")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(JsonValue(Some(Value::Text(Cow::Borrowed(v)))))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonValue(Some(Value::Text(Cow::Owned(v.to_owned())))))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(JsonValue(None))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(JsonValue(Some(Value::List(items))))
            }
        }
        d.deserialize_any(V)
    }
}

/// Creates `path` for writing: never through a symbolic link and never into an existing file
/// (`O_CREAT | O_EXCL`), with permissions `mode` on Unix (`0o600` for files holding personal
/// data). With `replace`, whatever is at `path` is removed first — a planted link itself, never
/// its target.
pub fn create_file(path: &Path, mode: u32, replace: bool) -> io::Result<File> {
    if replace {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

/// Permissions of files holding personal data: the owner's only.
pub const PRIVATE: u32 = 0o600;

/// Characters that make a spreadsheet read a cell as a formula (or a command) when it starts
/// with them.
fn starts_formula(text: &str) -> bool {
    text.trim_start_matches('\'')
        .starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// A CSV cell as written: one `'` is put before a cell a spreadsheet would take for a formula
/// (`=HYPERLINK(…)` is written `'=HYPERLINK(…)`), and before a cell that already starts with
/// quotes followed by such a character, so that [`csv_cell_value`] can take exactly that one
/// away again.
fn csv_cell(text: &str) -> Cow<'_, str> {
    if starts_formula(text) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A CSV cell's value: the inverse of [`csv_cell`].
fn csv_cell_value(text: Cow<'_, str>) -> Cow<'_, str> {
    if text.starts_with('\'') && starts_formula(&text) {
        match text {
            Cow::Borrowed(t) => Cow::Borrowed(&t[1..]),
            Cow::Owned(t) => Cow::Owned(t[1..].to_owned()),
        }
    } else {
        text
    }
}

/// Why a record was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A value has characters the file's encoding cannot hold; nothing of the record was
    /// written and the file is still whole.
    #[error("{column} has characters {encoding} cannot represent; export as UTF-8")]
    Unencodable {
        /// The column.
        column: &'static str,
        /// The encoding's name.
        encoding: &'static str,
    },
    /// Writing the file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes records of one kind to a file in one format and encoding.
pub struct RecordWriter {
    kind: Kind,
    encoding: Encoding,
    inner: WriterInner,
    line: String,
}

enum WriterInner {
    Jsonl(BufWriter<File>),
    Csv(Box<csv::Writer<File>>),
}

impl fmt::Debug for RecordWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordWriter")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl RecordWriter {
    /// Creates `path` (replacing a file there, see [`create_file`]) readable by its owner only;
    /// a CSV file gets its header.
    pub fn create(path: &Path, kind: Kind, format: Format, encoding: Encoding) -> io::Result<Self> {
        let file = create_file(path, PRIVATE, true)?;
        let inner = match format {
            Format::Jsonl => WriterInner::Jsonl(BufWriter::with_capacity(256 * 1024, file)),
            Format::Csv => {
                let mut writer = csv::WriterBuilder::new()
                    .buffer_capacity(CSV_BUFFER_BYTES)
                    .from_writer(file);
                writer.write_record(columns::columns(kind).iter().map(|c| c.name.as_str()))?;
                WriterInner::Csv(Box::new(writer))
            }
        };
        Ok(Self {
            kind,
            encoding,
            inner,
            line: String::with_capacity(1024),
        })
    }

    /// `text` in the writer's encoding, `None` when the encoding cannot hold it.
    fn encode(encoding: Encoding, text: &str) -> Option<Cow<'_, [u8]>> {
        match encoding {
            Encoding::Utf8 => Some(Cow::Borrowed(text.as_bytes())),
            Encoding::Gbk => {
                let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
                (!unmappable).then_some(bytes)
            }
        }
    }

    /// Writes one record (of this writer's kind), or nothing of it when a value cannot be
    /// encoded.
    pub fn write(&mut self, record: &Record) -> Result<(), WriteError> {
        let values = columns::values(record);
        let columns = columns::columns(self.kind);
        let encoding = self.encoding;
        let unencodable = |column: &'static Column| WriteError::Unencodable {
            column: &column.name,
            encoding: encoding.name(),
        };
        match &mut self.inner {
            WriterInner::Jsonl(out) => {
                self.line.clear();
                self.line.push('{');
                let mut first = true;
                for (column, value) in columns.iter().zip(&values) {
                    let Some(value) = value else { continue };
                    if !first {
                        self.line.push(',');
                    }
                    first = false;
                    let json = serde_json::to_string(&column.name).and_then(|name| {
                        match value {
                            Value::Text(t) => serde_json::to_string(t),
                            Value::List(items) => serde_json::to_string(items),
                        }
                        .map(|value| (name, value))
                    });
                    let (name, value) = json.map_err(io::Error::from)?;
                    self.line.push_str(&name);
                    self.line.push(':');
                    self.line.push_str(&value);
                }
                self.line.push_str("}\n");
                let Some(bytes) = Self::encode(encoding, &self.line) else {
                    let column = columns
                        .iter()
                        .zip(&values)
                        .find(|(_, value)| {
                            value
                                .as_ref()
                                .is_some_and(|v| Self::encode(encoding, &v.text()).is_none())
                        })
                        .map_or(&columns[0], |(column, _)| column);
                    return Err(unencodable(column));
                };
                out.write_all(&bytes)?;
                Ok(())
            }
            WriterInner::Csv(out) => {
                let mut fields: Vec<Cow<'_, [u8]>> = Vec::with_capacity(values.len());
                for (column, value) in columns.iter().zip(&values) {
                    let text = value.as_ref().map(Value::text).unwrap_or_default();
                    let bytes = Self::encode(encoding, &csv_cell(&text))
                        .ok_or_else(|| unencodable(column))?
                        .into_owned();
                    fields.push(Cow::Owned(bytes));
                }
                out.write_record(&fields).map_err(io::Error::from)?;
                Ok(())
            }
        }
    }

    /// Flushes the file to disk.
    pub fn finish(self) -> io::Result<()> {
        let file = match self.inner {
            WriterInner::Jsonl(out) => out.into_inner().map_err(io::IntoInnerError::into_error)?,
            WriterInner::Csv(out) => out
                .into_inner()
                .map_err(|e| io::Error::other(e.to_string()))?,
        };
        file.sync_all()
    }
}
