//! Import of load files through the library, on every configured backend: bad input of every
//! kind gets a precise problem and loses nothing; a database failure stops the import between
//! batches, and running it again finishes it.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

use agreements_bulk::files::FileError;
use agreements_bulk::import::{
    Counts, ImportError, ImportOptions, Observer, Problem, Summary, import, sources,
};
use agreements_bulk::world::{WorldOptions, generate};
use agreements_bulk::{Encoding, Format, Source};
use agreements_store::test_support::{TestBackend, TestDatabase, backends};
use agreements_store::{Kind, LoadOptions, Store};

const ENTITIES: &[(&str, &str)] = &[
    ("groups.jsonl", r#"{"group_id":"G1","name":"集团一"}"#),
    (
        "merchants.csv",
        "partner_id,name,status,group_id\n2088000000000001,商户一,NORMAL,G1\n",
    ),
    (
        "accounts.jsonl",
        r#"{"user_id":"2088100000000001","customer_id":"2088100000000001","status":"NORMAL"}
{"user_id":"2088100000000002","customer_id":"2088100000000001","status":"NORMAL"}"#,
    ),
];

const AGREEMENT_HEADER: &str = "agreement_no,partner_id,sign_app_id,principal_type,principal_id,alipay_user_id,personal_product_code,product_code,sign_scene,third_party_type,external_agreement_no,external_logon_id,status,sign_time,valid_time,invalid_time,unsign_time";

fn agreement_csv(no: &str, user: &str, status: &str) -> String {
    format!(
        "{no},2088000000000001,2021000000000001,CARD,{user},{user},GENERAL_WITHHOLDING_P,GENERAL_WITHHOLDING,,,,,{status},2020-01-01 10:00:00,2020-01-01 10:00:00,2117-05-24 00:00:00,"
    )
}

#[derive(Default)]
struct Collect {
    problems: Vec<Problem>,
    batches: u64,
    on_progress: Option<Box<dyn FnMut(u64)>>,
}

impl Observer for Collect {
    fn file_started(&mut self, _: &Source, _: u64) {}
    fn progress(&mut self, rows: u64, _: u64) {
        self.batches += 1;
        if let Some(f) = &mut self.on_progress {
            f(rows);
        }
    }
    fn problem(&mut self, problem: &Problem) {
        self.problems.push(problem.clone());
    }
    fn file_done(&mut self, _: &Source, _: &Counts) {}
}

impl Collect {
    /// `(file name, line, problem, field, reason)` of every problem.
    fn list(&self) -> Vec<(String, u64, &'static str, String, String)> {
        self.problems
            .iter()
            .map(|p| {
                (
                    p.file.file_name().unwrap().to_string_lossy().into_owned(),
                    p.line,
                    p.problem,
                    p.field.clone(),
                    p.reason.clone(),
                )
            })
            .collect()
    }
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn run(
    store: &Store,
    paths: &[PathBuf],
    options: ImportOptions,
) -> (Result<Summary, ImportError>, Collect) {
    let mut observer = Collect::default();
    let sources = sources(paths, options.kind).unwrap();
    let result = import(store, &sources, options, &mut observer).await;
    (result, observer)
}

fn counts(summary: &Summary, kind: Kind) -> Counts {
    summary.kinds.get(&kind).copied().unwrap_or_default()
}

async fn fresh(backend: &TestBackend, dir: &Path) -> (TestDatabase, Store) {
    let db = TestDatabase::new(backend).await.unwrap();
    let store = Store::open(db.location()).await.unwrap();
    let paths: Vec<PathBuf> = ENTITIES
        .iter()
        .map(|(name, text)| write(dir, name, text))
        .collect();
    let (result, observer) = run(&store, &paths, ImportOptions::default()).await;
    let summary = result.unwrap();
    assert!(observer.problems.is_empty(), "{:?}", observer.list());
    assert_eq!(summary.total().inserted, 4);
    (db, store)
}

#[tokio::test]
async fn bad_rows_are_reported_with_file_line_field_and_reason_and_good_rows_load() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, store) = fresh(&backend, dir.path()).await;

        let long_name = "名".repeat(300);
        let jsonl = [
            // 1: fine
            r#"{"agreement_no":"A1","partner_id":"2088000000000001","sign_app_id":"2021000000000001","principal_type":"CARD","principal_id":"2088100000000001","alipay_user_id":"2088100000000001","personal_product_code":"GENERAL_WITHHOLDING_P","product_code":"GENERAL_WITHHOLDING","status":"NORMAL","sign_time":"2020-01-01 10:00:00","valid_time":"2020-01-01 10:00:00","invalid_time":"2117-05-24 00:00:00"}"#.to_owned(),
            // 2: wrong enum value
            r#"{"agreement_no":"A2","partner_id":"2088000000000001","sign_app_id":"2021000000000001","principal_type":"CARD","principal_id":"2088100000000001","alipay_user_id":"2088100000000001","personal_product_code":"GENERAL_WITHHOLDING_P","product_code":"GENERAL_WITHHOLDING","status":"ACTIVE","sign_time":"2020-01-01 10:00:00","valid_time":"2020-01-01 10:00:00","invalid_time":"2117-05-24 00:00:00"}"#.to_owned(),
            // 3: wrong type (a number where text is expected)
            r#"{"agreement_no":3,"partner_id":"2088000000000001"}"#.to_owned(),
            // 4: blank lines are skipped
            String::new(),
            // 5: unknown field
            r#"{"agreement_no":"A5","colour":"red"}"#.to_owned(),
            // 6: an account that does not exist
            r#"{"agreement_no":"A6","partner_id":"2088000000000001","sign_app_id":"2021000000000001","principal_type":"CARD","principal_id":"2088100000000009","alipay_user_id":"2088100000000009","personal_product_code":"GENERAL_WITHHOLDING_P","product_code":"GENERAL_WITHHOLDING","status":"NORMAL","sign_time":"2020-01-01 10:00:00","valid_time":"2020-01-01 10:00:00","invalid_time":"2117-05-24 00:00:00"}"#.to_owned(),
            // 7: the same key as line 1
            r#"{"agreement_no":"A1","partner_id":"2088000000000001","sign_app_id":"2021000000000001","principal_type":"CARD","principal_id":"2088100000000001","alipay_user_id":"2088100000000001","personal_product_code":"GENERAL_WITHHOLDING_P","product_code":"GENERAL_WITHHOLDING","status":"STOP","sign_time":"2020-01-01 10:00:00","valid_time":"2020-01-01 10:00:00","invalid_time":"2117-05-24 00:00:00"}"#.to_owned(),
            // 8: an over-long field
            format!(r#"{{"agreement_no":"A8","partner_id":"2088000000000001","sign_app_id":"2021000000000001","principal_type":"CARD","principal_id":"2088100000000001","alipay_user_id":"2088100000000001","personal_product_code":"GENERAL_WITHHOLDING_P","product_code":"GENERAL_WITHHOLDING","external_logon_id":"{long_name}","status":"NORMAL","sign_time":"2020-01-01 10:00:00","valid_time":"2020-01-01 10:00:00","invalid_time":"2117-05-24 00:00:00"}}"#),
            // 9: an over-long line
            format!(r#"{{"agreement_no":"{}"}}"#, "9".repeat(70_000)),
            // 10: a bad time
            r#"{"agreement_no":"A10","partner_id":"2088000000000001","sign_app_id":"2021000000000001","principal_type":"CARD","principal_id":"2088100000000001","alipay_user_id":"2088100000000001","personal_product_code":"GENERAL_WITHHOLDING_P","product_code":"GENERAL_WITHHOLDING","status":"NORMAL","sign_time":"2020/01/01","valid_time":"2020-01-01 10:00:00","invalid_time":"2117-05-24 00:00:00"}"#.to_owned(),
        ]
        .join("\n");
        // 11: invalid UTF-8; 12: truncated (the file ends mid-object)
        let mut bytes = jsonl.into_bytes();
        bytes
            .extend_from_slice(b"\n{\"agreement_no\":\"A\xff\"}\n{\"agreement_no\":\"A12\",\"part");
        let file = write(dir.path(), "agreements.jsonl", bytes);

        let (result, observer) = run(&store, &[file], ImportOptions::default()).await;
        let summary = result.unwrap();
        assert_eq!(
            counts(&summary, Kind::Agreement),
            Counts {
                inserted: 1,
                rejected: 10,
                ..Counts::default()
            },
            "{backend:?}: {:?}",
            observer.list()
        );
        let list = observer.list();
        let find = |line: u64| {
            list.iter()
                .find(|p| p.1 == line)
                .unwrap_or_else(|| panic!("no problem for line {line}: {list:?}"))
        };
        assert_eq!(find(2).3, "status");
        assert!(
            find(2)
                .4
                .contains("\"ACTIVE\" is not one of TEMP, NORMAL, STOP, UNSIGN")
        );
        assert!(find(3).4.contains("invalid type"), "{:?}", find(3));
        assert!(
            find(5).4.contains("unknown field \"colour\""),
            "{:?}",
            find(5)
        );
        assert_eq!(find(6).3, "alipay_user_id");
        assert!(find(6).4.contains("no account 2088100000000009"));
        assert_eq!(
            (find(7).2, find(7).4.as_str()),
            ("duplicate", "same key as line 1 of this file")
        );
        assert_eq!(find(8).3, "external_logon_id");
        assert!(find(8).4.contains("longer than 256"));
        assert!(find(9).4.contains("longer than 65536 bytes"));
        assert_eq!(find(10).3, "sign_time");
        assert!(find(11).4.contains("not valid UTF-8"));
        assert!(find(12).4.contains("truncated"), "{:?}", find(12));
        assert!(list.iter().all(|p| p.0 == "agreements.jsonl"));
    }
}

#[tokio::test]
async fn csv_headers_must_name_the_kinds_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = fresh(&TestBackend::Sqlite, dir.path()).await;

    let missing = write(
        dir.path(),
        "agreements.csv",
        "agreement_no,partner_id\nA1,2088000000000001\n",
    );
    let (result, _) = run(&store, &[missing], ImportOptions::default()).await;
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("missing column(s) sign_app_id, principal_type"),
        "{message}"
    );

    let extra = write(
        dir.path(),
        "agreements-extra.csv",
        format!(
            "{AGREEMENT_HEADER},colour\n{},red\n",
            agreement_csv("A1", "2088100000000001", "NORMAL")
        ),
    );
    let (result, _) = run(&store, &[extra], ImportOptions::default()).await;
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("unknown column(s) \"colour\""),
        "{message}"
    );

    // A file that is one enormous line is refused, not buffered; so is a quoted field that runs
    // over many short lines (the parser would keep the whole record in memory).
    let mut huge = format!("{AGREEMENT_HEADER}\n").into_bytes();
    huge.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    let huge = write(dir.path(), "agreements-huge.csv", huge);
    let (result, _) = run(&store, &[huge], ImportOptions::default()).await;
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("line 2: a record is longer than 1048576 bytes"),
        "{message}"
    );
    let mut quoted = format!(
        "{AGREEMENT_HEADER}\n{}\n\"",
        agreement_csv("Q1", "2088100000000001", "NORMAL")
    )
    .into_bytes();
    for _ in 0..(4 * 1024 * 1024 / 8) {
        quoted.extend_from_slice(b"xxxxxxx\n");
    }
    let quoted = write(dir.path(), "agreements-quoted.csv", quoted);
    let (result, _) = run(&store, &[quoted], ImportOptions::default()).await;
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("line 3: a record is longer than 1048576 bytes"),
        "{message}"
    );
    // A long record under the bound rejects its row only.
    let long = write(
        dir.path(),
        "agreements-long.csv",
        format!(
            "{AGREEMENT_HEADER}\n\"{}\"{}\n{}\n",
            "x\n".repeat(100_000),
            ",".repeat(AGREEMENT_HEADER.split(',').count() - 1),
            agreement_csv("Q2", "2088100000000001", "NORMAL")
        ),
    );
    let (result, observer) = run(&store, &[long], ImportOptions::default()).await;
    assert_eq!(counts(&result.unwrap(), Kind::Agreement).rejected, 1);
    assert!(
        observer.list()[0]
            .4
            .contains("row is longer than 65536 bytes"),
        "{:?}",
        observer.list()
    );

    let unnamed = write(dir.path(), "history.csv", "x\n");
    let error = sources(std::slice::from_ref(&unnamed), None).unwrap_err();
    assert!(matches!(error, FileError::Unrecognised { .. }), "{error}");
    assert_eq!(
        sources(&[unnamed], Some(Kind::Group)).unwrap()[0].kind,
        Kind::Group
    );

    // A short row (truncated file) and a row with a stray comma are rejected; the rest loads.
    let rows = write(
        dir.path(),
        "agreements-rows.csv",
        format!(
            "{AGREEMENT_HEADER}\n{}\n{},surplus\n{}\nA4,2088000000000001",
            agreement_csv("A1", "2088100000000001", "NORMAL"),
            agreement_csv("A2", "2088100000000001", "NORMAL"),
            agreement_csv("A3", "2088100000000002", "STOP"),
        ),
    );
    let (result, observer) = run(&store, &[rows], ImportOptions::default()).await;
    let summary = result.unwrap();
    assert_eq!(counts(&summary, Kind::Agreement).inserted, 2);
    let list = observer.list();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0].1, 3);
    assert!(list[0].4.contains("has 18 fields, the header has 17"));
    assert_eq!(list[1].1, 5);
    assert!(list[1].4.contains("has 2 fields"));
}

#[tokio::test]
async fn gbk_files_load_with_the_gbk_encoding_and_bad_bytes_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = fresh(&TestBackend::Sqlite, dir.path()).await;
    let (name, _, _) = encoding_rs::GBK.encode("分店");
    let mut csv = b"partner_id,name,status,group_id\n2088000000000002,".to_vec();
    csv.extend_from_slice(&name);
    csv.extend_from_slice(b",NORMAL,G1\n2088000000000003,\x81\x20,NORMAL,\n");
    let file = write(dir.path(), "merchants.csv", &csv);
    let options = ImportOptions {
        encoding: Encoding::Gbk,
        ..ImportOptions::default()
    };
    let (result, observer) = run(&store, std::slice::from_ref(&file), options).await;
    assert_eq!(counts(&result.unwrap(), Kind::Merchant).inserted, 1);
    let list = observer.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((list[0].1, list[0].3.as_str()), (3, "name"));
    assert!(list[0].4.contains("not valid GBK"));
    let stored = store
        .merchant(&agreements_domain::ids::PartnerId::parse("2088000000000002").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "分店");

    // The same bytes read as UTF-8 are rejected, not garbled.
    let (result, observer) = run(&store, &[file], ImportOptions::default()).await;
    assert_eq!(counts(&result.unwrap(), Kind::Merchant).rejected, 2);
    assert!(observer.list()[0].4.contains("not valid UTF-8"));
}

/// A small generated world, and the number of its agreements.
fn world(dir: &Path, persons: u64) -> u64 {
    let options = WorldOptions {
        persons,
        seed: 7,
        ..WorldOptions::default()
    };
    let counts = generate(dir, &options, Format::Jsonl, Encoding::Utf8, &mut |_| {}).unwrap();
    counts[&Kind::Agreement]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failure_stops_between_batches_and_a_rerun_finishes_the_job() {
    for backend in backends() {
        let files = tempfile::tempdir().unwrap();
        let agreements = world(files.path(), 400);
        let db = TestDatabase::new(&backend).await.unwrap();
        let store = Store::open(db.location()).await.unwrap();
        let options = ImportOptions {
            batch_size: 100,
            ..ImportOptions::default()
        };
        let paths = vec![files.path().to_owned()];

        // Entities first, then make the database refuse writes once the agreements are under way:
        // SQLite stays locked by another writer (the loader's busy wait times out); PostgreSQL
        // has the loader's connection killed.
        let entity_paths: Vec<PathBuf> = std::fs::read_dir(files.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.ends_with("agreements.jsonl"))
            .collect();
        let (result, _) = run(&store, &entity_paths, options.clone()).await;
        result.unwrap();

        let blocker = Store::open(db.location()).await.unwrap();
        let mut observer = Collect::default();
        let handle = tokio::runtime::Handle::current();
        let location = db.location().to_owned();
        let mut held = None;
        observer.on_progress = Some(Box::new(move |rows| {
            if rows >= 300 && held.is_none() {
                held = Some(tokio::task::block_in_place(|| {
                    handle.block_on(async {
                        let other = Store::open(&location).await.unwrap();
                        if other.backend() == "sqlite" {
                            other
                                .loader(LoadOptions {
                                    update: false,
                                    dry_run: true,
                                })
                                .await
                                .unwrap()
                        } else {
                            other
                                .execute_for_tests(
                                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                                     WHERE application_name = 'agreements load'",
                                )
                                .await
                                .unwrap();
                            other.loader(LoadOptions::default()).await.unwrap()
                        }
                    })
                }));
            }
        }));
        let agreement_file = sources(&paths, None)
            .unwrap()
            .into_iter()
            .filter(|s| s.kind == Kind::Agreement)
            .collect::<Vec<_>>();
        let error = import(&store, &agreement_file, options.clone(), &mut observer)
            .await
            .unwrap_err();
        drop(observer);
        let message = error.to_string();
        assert!(
            matches!(error, ImportError::Database { line: 301, .. }),
            "{backend:?}: {message}"
        );
        assert!(message.contains("run the same command again"), "{message}");
        let exported = count_agreements(&blocker).await;
        assert_eq!(
            exported, 300,
            "{backend:?}: only whole batches are committed"
        );

        // Running it again finishes it: the committed rows are unchanged, the rest inserted.
        let store = Store::open(db.location()).await.unwrap();
        let (result, observer) = run(&store, &paths, options).await;
        let summary = result.unwrap();
        assert!(observer.problems.is_empty(), "{:?}", observer.list());
        let c = counts(&summary, Kind::Agreement);
        assert_eq!(
            (c.unchanged, c.inserted),
            (300, agreements - 300),
            "{backend:?}"
        );
        assert_eq!(count_agreements(&store).await, agreements);
    }
}

async fn count_agreements(store: &Store) -> u64 {
    let mut exporter = store.exporter().await.unwrap();
    let mut n = 0;
    let mut after = None;
    loop {
        let page = exporter
            .page(Kind::Agreement, after.as_ref(), 1000)
            .await
            .unwrap();
        n += page.len() as u64;
        match page.into_iter().last() {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    exporter.finish().await.unwrap();
    n
}

#[test]
fn the_generator_is_deterministic_for_a_seed() {
    let read = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    world(a.path(), 300);
    world(b.path(), 300);
    let other = WorldOptions {
        persons: 300,
        seed: 8,
        ..WorldOptions::default()
    };
    generate(c.path(), &other, Format::Jsonl, Encoding::Utf8, &mut |_| {}).unwrap();
    assert_eq!(read(a.path()), read(b.path()));
    assert_ne!(read(a.path()), read(c.path()));
    assert_eq!(read(a.path()).len(), 9);
}

#[test]
fn writing_gbk_refuses_what_gbk_cannot_represent() {
    use agreements_bulk::files::RecordWriter;
    use agreements_domain::ids::PartnerId;
    use agreements_domain::{EntityStatus, Merchant};
    use agreements_store::Record;

    let dir = tempfile::tempdir().unwrap();
    let merchant = |name: &str| {
        Record::Merchant(Merchant {
            partner_id: PartnerId::parse("2088000000000001").unwrap(),
            name: name.to_owned(),
            status: EntityStatus::Normal,
            group_id: None,
        })
    };
    for format in [Format::Jsonl, Format::Csv] {
        let path = dir.path().join(format!("merchants.{}", format.extension()));
        let mut writer =
            RecordWriter::create(&path, Kind::Merchant, format, Encoding::Gbk).unwrap();
        writer.write(&merchant("商户")).unwrap();
        let error = writer.write(&merchant("商户 😀")).unwrap_err();
        assert!(
            error.to_string().contains("GBK cannot represent"),
            "{error}"
        );
    }
}

/// An app whose notification address is inside the platform's network, however spelled, is
/// rejected; the operator's allow-list (a test setup) lets a loopback receiver in.
#[tokio::test]
async fn apps_with_internal_notification_addresses_are_rejected_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = fresh(&TestBackend::Sqlite, dir.path()).await;
    let apps = write(
        dir.path(),
        "apps.jsonl",
        [
            r#"{"app_id":"2021000000000001","partner_id":"2088000000000001","name":"a","status":"ONLINE","notify_url":"http://[::ffff:169.254.169.254]/latest/meta-data/"}"#,
            r#"{"app_id":"2021000000000002","partner_id":"2088000000000001","name":"b","status":"ONLINE","notify_url":"http://127.0.0.1:9000/notify"}"#,
            r#"{"app_id":"2021000000000003","partner_id":"2088000000000001","name":"c","status":"ONLINE","notify_url":"https://bu.example.com/notify"}"#,
        ]
        .join("\n"),
    );
    let (result, observer) = run(
        &store,
        std::slice::from_ref(&apps),
        ImportOptions::default(),
    )
    .await;
    assert_eq!(counts(&result.unwrap(), Kind::App).rejected, 2);
    let list = observer.list();
    assert!(list.iter().all(|p| p.3 == "notify_url"), "{list:?}");
    assert!(list[0].4.contains("link-local"), "{list:?}");
    assert!(list[1].4.contains("loopback"), "{list:?}");
    let allowing = ImportOptions {
        notify_policy: agreements_domain::address::AddressPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
        ]),
        ..ImportOptions::default()
    };
    let (result, _) = run(&store, &[apps], allowing).await;
    let apps = counts(&result.unwrap(), Kind::App);
    assert_eq!((apps.inserted, apps.unchanged, apps.rejected), (1, 1, 1));
}

/// CSV cells a spreadsheet would run as formulas are written behind a `'`, and read back as
/// they were; JSON Lines keeps them as they are.
#[test]
fn csv_formula_cells_are_neutralised_and_read_back_unchanged() {
    use agreements_bulk::files::{RecordReader, RecordWriter};
    use agreements_domain::ids::PartnerId;
    use agreements_domain::{EntityStatus, Merchant};
    use agreements_store::Record;

    let names = [
        "=HYPERLINK(\"http://x\",\"y\")",
        "+1",
        "-5",
        "@SUM(A1)",
        "'=already quoted",
        "''-twice",
        "'plain quote",
        "a=b",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("merchants.csv");
    let mut writer =
        RecordWriter::create(&path, Kind::Merchant, Format::Csv, Encoding::Utf8).unwrap();
    for (i, name) in names.iter().enumerate() {
        writer
            .write(&Record::Merchant(Merchant {
                partner_id: PartnerId::parse(format!("20880000000000{i:02}")).unwrap(),
                name: (*name).to_owned(),
                status: EntityStatus::Normal,
                group_id: None,
            }))
            .unwrap();
    }
    writer.finish().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for cell in [
        "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
        ",'+1,",
        ",'-5,",
        ",'@SUM(A1),",
        ",''=already quoted,",
        ",'''-twice,",
        ",'plain quote,",
        ",a=b,",
    ] {
        assert!(text.contains(cell), "{cell} in {text}");
    }
    let source = Source::detect(&path, None).unwrap();
    let mut reader = RecordReader::open(&source, Encoding::Utf8).unwrap();
    let mut read = Vec::new();
    while let Some(row) = reader.next_row().unwrap() {
        match row.result.unwrap() {
            Record::Merchant(m) => read.push(m.name),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(read, names);
}

/// A file declared GBK whose text is UTF-8 would load as mojibake: it is refused unless forced.
#[tokio::test]
async fn files_declared_gbk_whose_text_is_utf8_are_refused_unless_forced() {
    use agreements_bulk::files::reads_as_utf8;

    let dir = tempfile::tempdir().unwrap();
    let (_db, store) = fresh(&TestBackend::Sqlite, dir.path()).await;
    let utf8 = write(
        dir.path(),
        "merchants.csv",
        "partner_id,name,status\n2088000000000009,商户九,NORMAL\n",
    );
    let gbk_options = ImportOptions {
        encoding: Encoding::Gbk,
        ..ImportOptions::default()
    };
    let (result, _) = run(&store, std::slice::from_ref(&utf8), gbk_options.clone()).await;
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("declared GBK but its text is UTF-8")
            && message.contains("--encoding utf-8")
            && message.contains("--force-encoding"),
        "{message}"
    );
    let forced = ImportOptions {
        force_encoding: true,
        ..gbk_options.clone()
    };
    // Forced, the file is read as GBK (this row's bytes are not all valid GBK).
    let (result, observer) = run(&store, std::slice::from_ref(&utf8), forced).await;
    assert_eq!(counts(&result.unwrap(), Kind::Merchant).rejected, 1);
    assert!(observer.list()[0].4.contains("is not valid GBK"));

    let (gbk, _, _) =
        encoding_rs::GBK.encode("partner_id,name,status\n2088000000000008,商户八,NORMAL\n");
    let gbk = write(dir.path(), "merchants-gbk.csv", gbk);
    let (result, _) = run(&store, &[gbk], gbk_options).await;
    assert_eq!(counts(&result.unwrap(), Kind::Merchant).inserted, 1);

    // The check reads across its buffer's boundary and to the end.
    let mut across = vec![b'a'; 256 * 1024 - 1];
    across.extend_from_slice("中".as_bytes());
    assert!(reads_as_utf8(&write(dir.path(), "a", &across)).unwrap());
    across.pop();
    assert!(!reads_as_utf8(&write(dir.path(), "b", &across)).unwrap());
    assert!(!reads_as_utf8(&write(dir.path(), "c", "ascii only\n")).unwrap());
    let mut late = vec![b'a'; 600 * 1024];
    late.extend_from_slice(&[0xC9, 0xCC]);
    assert!(!reads_as_utf8(&write(dir.path(), "d", &late)).unwrap());
}
