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

    fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Gbk => "GBK",
        }
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

/// Longest run of bytes without a line break a CSV file may have: the CSV parser keeps a whole
/// record in memory, so a file that is one enormous line is refused instead of buffered.
pub const MAX_CSV_LINE_BYTES: u64 = 1024 * 1024;

/// Counts the bytes read through it, for progress; optionally refuses over-long lines.
struct Counting<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    max_line: Option<u64>,
    since_newline: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(max) = self.max_line {
            let mut parts = buf[..n].split(|&b| b == b'\n');
            let mut run = self.since_newline + parts.next().map_or(0, |p| p.len() as u64);
            let mut longest = run;
            for part in parts {
                run = part.len() as u64;
                longest = longest.max(run);
            }
            self.since_newline = run;
            if longest > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a line is longer than {max} bytes; is this a CSV file?"),
                ));
            }
        }
        Ok(n)
    }
}

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
            max_line: (source.format == Format::Csv).then_some(MAX_CSV_LINE_BYTES),
            since_newline: 0,
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
                    .buffer_capacity(256 * 1024)
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
                Inner::Csv {
                    reader,
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
                record,
            } => {
                let more = reader
                    .read_byte_record(record)
                    .map_err(|e| FileError::Csv {
                        path: self.source.path.clone(),
                        line: e.position().map_or(0, csv::Position::line),
                        reason: e.to_string(),
                    })?;
                if !more {
                    return Ok(None);
                }
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
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            let Some(i) = columns.iter().position(|c| c.name == name) else {
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
    /// Creates (or truncates) `path`; a CSV file gets its header.
    pub fn create(path: &Path, kind: Kind, format: Format, encoding: Encoding) -> io::Result<Self> {
        let file = File::create(path)?;
        let inner = match format {
            Format::Jsonl => WriterInner::Jsonl(BufWriter::with_capacity(256 * 1024, file)),
            Format::Csv => {
                let mut writer = csv::WriterBuilder::new()
                    .buffer_capacity(256 * 1024)
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

    fn encode<'s>(encoding: Encoding, text: &'s str) -> io::Result<Cow<'s, [u8]>> {
        match encoding {
            Encoding::Utf8 => Ok(Cow::Borrowed(text.as_bytes())),
            Encoding::Gbk => {
                let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
                if unmappable {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{text:?} has characters GBK cannot represent; export as UTF-8"),
                    ))
                } else {
                    Ok(bytes)
                }
            }
        }
    }

    /// Writes one record (of this writer's kind).
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        let values = columns::values(record);
        let columns = columns::columns(self.kind);
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
                    self.line.push_str(&serde_json::to_string(&column.name)?);
                    self.line.push(':');
                    match value {
                        Value::Text(t) => self.line.push_str(&serde_json::to_string(t)?),
                        Value::List(items) => self.line.push_str(&serde_json::to_string(items)?),
                    }
                }
                self.line.push_str("}\n");
                out.write_all(&Self::encode(self.encoding, &self.line)?)
            }
            WriterInner::Csv(out) => {
                let mut fields: Vec<Cow<'_, [u8]>> = Vec::with_capacity(values.len());
                for value in &values {
                    let text: Cow<'_, str> = match value {
                        None => Cow::Borrowed(""),
                        Some(Value::Text(t)) => Cow::Borrowed(t),
                        Some(Value::List(items)) => Cow::Owned(items.join(" ")),
                    };
                    fields.push(match Self::encode(self.encoding, &text)? {
                        Cow::Borrowed(_) => Cow::Owned(text.as_bytes().to_vec()),
                        Cow::Owned(bytes) => Cow::Owned(bytes),
                    });
                }
                out.write_record(&fields)?;
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
