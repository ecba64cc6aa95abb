//! The import line parsers: the first byte picks a kind, a format (JSON Lines or CSV) and an
//! encoding (UTF-8 or GBK); the rest is the file, read to its end through the importer's reader
//! (CSV header checks included). Nothing may panic, and every row is a record or a rejection.
#![no_main]

use std::io::Write as _;

use agreements_bulk::files::RecordReader;
use agreements_bulk::{Encoding, Source};
use agreements_store::Kind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let kind = Kind::ALL[usize::from(selector) % Kind::ALL.len()];
    let extension = if selector & 0x40 == 0 { "jsonl" } else { "csv" };
    let encoding = if selector & 0x80 == 0 {
        Encoding::Utf8
    } else {
        Encoding::Gbk
    };
    let dir = std::env::temp_dir().join(format!("agreements-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{}.{extension}", kind.name()));
    let Ok(mut out) = std::fs::File::create(&path) else {
        return;
    };
    if out.write_all(file).is_err() {
        return;
    }
    drop(out);
    let Ok(source) = Source::detect(&path, Some(kind)) else {
        return;
    };
    let Ok(mut reader) = RecordReader::open(&source, encoding) else {
        return;
    };
    let mut rows = 0u64;
    while let Ok(Some(parsed)) = reader.next_row() {
        let _ = parsed.result;
        rows += 1;
        assert!(rows <= file.len() as u64 + 1, "more rows than lines");
    }
});
