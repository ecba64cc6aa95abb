//! `agreements generate-world | import | export` as an operator runs them: a real import process
//! killed with SIGKILL, then run again, ends exactly where an uninterrupted one does; round trips
//! through every format and encoding are identical; dry runs write nothing.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use agreements_store::test_support::{TestBackend, TestDatabase, backends};

use crate::common::{agreements, ok};

const BATCH: usize = 500;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file of an export directory, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
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
}

fn export(db: &str, out: &Path, extra: &[&str], cwd: &Path) -> Vec<(String, Vec<u8>)> {
    let mut args = vec!["export", "--database", db, "--out", path(out)];
    args.extend_from_slice(extra);
    ok(agreements(&args, cwd));
    files(out)
}

/// A generated world of `persons` in `work/world`.
fn generated(work: &Path, persons: u64, seed: u64) -> PathBuf {
    let world = work.join("world");
    ok(agreements(
        &[
            "generate-world",
            "--persons",
            &persons.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            path(&world),
        ],
        work,
    ));
    world
}

/// The files of `world` imported into `work/a.db`.
fn imported(work: &Path, world: &Path) -> PathBuf {
    let db = work.join("a.db");
    ok(agreements(
        &["import", path(world), "--database", path(&db), "-q"],
        work,
    ));
    db
}

fn lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Runs `import` of `world` into `db` with `extra` arguments and kills it (SIGKILL) once it has
/// read 2,000 agreements.
fn killed_while_loading_agreements(world: &Path, db: &str, extra: &[&str], cwd: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agreements"))
        .args([
            "import",
            path(world),
            "--database",
            db,
            "--progress-every",
            "0",
        ])
        .args(extra)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut in_agreements = false;
    for line in stderr.lines() {
        let line = line.unwrap();
        in_agreements |= line.starts_with("loading") && line.contains("agreements.jsonl");
        let rows: Option<usize> = line
            .strip_prefix(&format!("{}: ", world.join("agreements.jsonl").display()))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok());
        if in_agreements && rows.is_some_and(|n| n >= 2_000) {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the import finished before it was killed"
    );
}

#[tokio::test]
async fn a_killed_import_run_again_ends_where_an_uninterrupted_one_does() {
    let work = tempfile::tempdir().unwrap();
    let world = generated(work.path(), 6000, 3);
    let total = lines(&std::fs::read(world.join("agreements.jsonl")).unwrap());
    assert!(total > 10_000, "{total}");
    let batch = BATCH.to_string();

    for backend in backends() {
        // The reference: one uninterrupted import.
        let reference_db = TestDatabase::new(&backend).await.unwrap();
        let summary = ok(agreements(
            &[
                "import",
                path(&world),
                "--database",
                reference_db.location(),
                "--batch-size",
                &batch,
                "-q",
            ],
            work.path(),
        ));
        assert!(
            summary.contains(&format!("agreements  {total:>10}")),
            "{summary}"
        );
        let reference = export(
            reference_db.location(),
            &work.path().join("reference"),
            &[],
            work.path(),
        );

        // The fresh-load path is one unit: killed while it reads the agreements, it leaves
        // nothing.
        let db = TestDatabase::new(&backend).await.unwrap();
        killed_while_loading_agreements(
            &world,
            db.location(),
            &["--batch-size", &batch],
            work.path(),
        );
        if backend == TestBackend::Sqlite {
            // Alone with its file, the load wrote through a rollback journal: SIGKILL leaves it
            // hot, and the next connection rolls the load back from it.
            let journal = format!("{}-journal", db.location());
            assert!(Path::new(&journal).exists(), "no hot journal at {journal}");
        }
        let nothing = export(
            db.location(),
            &work.path().join("nothing"),
            &[],
            work.path(),
        );
        assert!(
            nothing.iter().all(|(_, bytes)| bytes.is_empty()),
            "{backend:?}: a killed fresh load left data"
        );

        // In batches: a real process, killed with SIGKILL once some agreement batches are
        // committed.
        killed_while_loading_agreements(
            &world,
            db.location(),
            &["--no-fresh", "--batch-size", &batch],
            work.path(),
        );

        let partial = export(
            db.location(),
            &work.path().join("partial"),
            &["--kind", "agreements"],
            work.path(),
        );
        let committed = lines(&partial[0].1);
        assert!(
            committed >= 2_000 && committed < total,
            "{backend:?}: killed after {committed} of {total}"
        );
        assert_eq!(
            committed % BATCH,
            0,
            "{backend:?}: only whole batches are committed"
        );

        // The same command again ends in the reference state.
        let summary = ok(agreements(
            &[
                "import",
                path(&world),
                "--database",
                db.location(),
                "--batch-size",
                &batch,
                "-q",
            ],
            work.path(),
        ));
        assert!(
            summary.contains(&format!(
                "agreements  {:>10} {:>9} {committed:>10}",
                total - committed,
                0
            )),
            "{summary}"
        );
        let resumed = export(
            db.location(),
            &work.path().join("resumed"),
            &[],
            work.path(),
        );
        assert!(
            resumed == reference,
            "{backend:?}: the resumed import differs from the uninterrupted one"
        );

        // And once more: nothing changes, and the summary says so.
        let summary = ok(agreements(
            &["import", path(&world), "--database", db.location(), "-q"],
            work.path(),
        ));
        assert!(
            summary.contains(&format!("agreements  {:>10} {:>9} {total:>10}", 0, 0)),
            "{summary}"
        );
    }
}

#[test]
fn export_and_import_round_trip_through_csv_and_gbk() {
    let work = tempfile::tempdir().unwrap();
    let world = generated(work.path(), 300, 1);
    let db = imported(work.path(), &world);
    let first = export(path(&db), &work.path().join("first"), &[], work.path());

    // The generator's files are what the database now holds, line for line.
    for (name, bytes) in &first {
        let mut exported: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        let generated_bytes = std::fs::read(world.join(name)).unwrap();
        let mut generated: Vec<&[u8]> = generated_bytes.split(|&b| b == b'\n').collect();
        exported.sort();
        generated.sort();
        assert!(exported == generated, "{name}");
    }

    let csv = work.path().join("csv");
    export(
        path(&db),
        &csv,
        &["--format", "csv", "--encoding", "gbk"],
        work.path(),
    );
    let names: Vec<String> = files(&csv).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"agreements.csv".to_owned()), "{names:?}");
    let merchants = std::fs::read(csv.join("merchants.csv")).unwrap();
    assert!(
        std::str::from_utf8(&merchants).is_err(),
        "the CSV is GBK, not UTF-8"
    );

    let db2 = work.path().join("b.db");
    ok(agreements(
        &[
            "import",
            path(&csv),
            "--database",
            path(&db2),
            "--encoding",
            "gbk",
            "-q",
        ],
        work.path(),
    ));
    let second = export(path(&db2), &work.path().join("second"), &[], work.path());
    assert!(
        first == second,
        "JSON Lines → CSV/GBK → JSON Lines changed the data"
    );
}

#[test]
fn dry_run_checks_everything_writes_nothing_and_reports_problems() {
    let work = tempfile::tempdir().unwrap();
    let world = generated(work.path(), 50, 1);
    let mut text = std::fs::read_to_string(world.join("agreements.jsonl")).unwrap();
    text.push_str("{\"agreement_no\":\"BAD\",\"status\":\"NORMAL\"}\n");
    std::fs::write(world.join("agreements.jsonl"), text).unwrap();
    let total = lines(&std::fs::read(world.join("agreements.jsonl")).unwrap());

    let db = work.path().join("dry.db");
    let report: PathBuf = work.path().join("problems.jsonl");
    let out = agreements(
        &[
            "import",
            path(&world),
            "--database",
            path(&db),
            "--dry-run",
            "--report",
            path(&report),
        ],
        work.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("dry run: nothing was written"), "{stdout}");
    assert!(
        stdout.contains(&format!("agreements  {:>10}", total - 1)),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "agreements.jsonl:{total}: rejected: partner_id: is required"
        )),
        "{stderr}"
    );

    let report = std::fs::read_to_string(&report).unwrap();
    let problems: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["line"], total);
    assert_eq!(problems[0]["field"], "partner_id");
    assert_eq!(problems[0]["problem"], "rejected");
    assert!(
        problems[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("agreements.jsonl")
    );

    let exported = export(path(&db), &work.path().join("out"), &[], work.path());
    assert!(
        exported.iter().all(|(_, bytes)| bytes.is_empty()),
        "a dry run wrote data"
    );
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// A GBK export leaves out only the record GBK cannot hold and names it (logon id masked);
/// files holding personal data are the owner's only and never written through a planted link.
#[cfg(unix)]
#[test]
fn exports_report_what_gbk_cannot_hold_and_never_follow_planted_links() {
    let work = tempfile::tempdir().unwrap();
    let world = generated(work.path(), 30, 1);
    let accounts = std::fs::read_to_string(world.join("accounts.jsonl")).unwrap();
    let account: serde_json::Value =
        serde_json::from_str(accounts.lines().next().unwrap()).unwrap();
    let logon_ids = world.join("logon_ids.jsonl");
    let mut text = std::fs::read_to_string(&logon_ids).unwrap();
    let stored = lines(text.as_bytes());
    // `ΑΣ` is stored lowercased, `ας`: GBK has no final sigma.
    text.push_str(&format!(
        "{{\"logon_id\":\"ΑΣ@x.cn\",\"user_id\":{}}}\n",
        account["user_id"]
    ));
    std::fs::write(&logon_ids, text).unwrap();
    let db = imported(work.path(), &world);

    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = work.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, out.join("agreements.csv")).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("accounts.csv.partial")).unwrap();
    let run = agreements(
        &[
            "export",
            "--database",
            path(&db),
            "--out",
            path(&out),
            "--format",
            "csv",
            "--encoding",
            "gbk",
        ],
        work.path(),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "logon_ids: logon_id=ας***@x.cn: not written: logon_id has characters GBK cannot represent"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("1 record(s) not written"), "{stderr}");
    let written = std::fs::read(out.join("logon_ids.csv")).unwrap();
    assert_eq!(lines(&written), stored + 1, "the others and the header");
    assert!(lines(&std::fs::read(out.join("agreements.csv")).unwrap()) > 30);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    for (name, _) in files(&out) {
        assert_eq!(mode(&out.join(&name)), 0o600, "{name}");
    }

    // The import report is not written through a link either.
    let report = work.path().join("report.jsonl");
    std::os::unix::fs::symlink(&victim, &report).unwrap();
    let bad = work.path().join("agreements-bad.jsonl");
    std::fs::write(&bad, "{\"agreement_no\":\"X\"}\n").unwrap();
    let run = agreements(
        &[
            "import",
            path(&bad),
            "--database",
            path(&db),
            "--report",
            path(&report),
        ],
        work.path(),
    );
    assert_eq!(run.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(
        std::fs::read_to_string(&report)
            .unwrap()
            .contains("\"line\":1")
    );
    assert_eq!(mode(&report), 0o600);
}

/// Caller text reaches the operator's terminal escaped: a file name, a history reason.
#[test]
fn caller_text_is_printed_terminal_safe() {
    let work = tempfile::tempdir().unwrap();
    let world = generated(work.path(), 10, 1);
    let db = imported(work.path(), &world);
    let name = work.path().join("agreements-\u{1b}]0;owned\u{7}.jsonl");
    std::fs::write(&name, "{\"agreement_no\":\"X\"}\n").unwrap();
    let run = agreements(
        &["import", path(&name), "--database", path(&db)],
        work.path(),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("agreements-\\u001b]0;owned\\u0007.jsonl:1: rejected"),
        "{stderr}"
    );
    assert!(
        !run.stderr.iter().any(|&b| b == 0x1b || b == 0x07),
        "{stderr}"
    );

    let agreements_file = std::fs::read_to_string(world.join("agreements.jsonl")).unwrap();
    let active: serde_json::Value = agreements_file
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|a| a["status"] == "NORMAL")
        .unwrap();
    let no = active["agreement_no"].as_str().unwrap();
    let reason = "x\u{1b}[2J\u{9b}1m\u{202e}\nseq 99 forged";
    ok(agreements(
        &[
            "unsign",
            no,
            "--database",
            path(&db),
            "--operator",
            "ops",
            "--reason",
            reason,
        ],
        work.path(),
    ));
    let table = ok(agreements(
        &["history", no, "--database", path(&db)],
        work.path(),
    ));
    assert!(
        table.contains("(x\\u001b[2J\\u009b1m\\u202e\\nseq 99 forged)"),
        "{table}"
    );
    assert!(!table.lines().any(|l| l.starts_with("seq 99")), "{table}");
    assert!(!table.contains(['\u{1b}', '\u{9b}', '\u{202e}']), "{table}");
    let json = ok(agreements(
        &["history", no, "--database", path(&db), "--json"],
        work.path(),
    ));
    assert!(!json.contains(['\u{1b}', '\u{9b}', '\u{202e}']), "{json}");
    let last: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(last["reason"], reason, "the JSON means the same text");
}

/// The problems of a report file, as (file name, line, problem, field, reason).
fn problems(report: &Path) -> Vec<(String, u64, String, String, String)> {
    let text = std::fs::read_to_string(report).unwrap();
    let mut problems: Vec<_> = text
        .lines()
        .map(|l| {
            let p: serde_json::Value = serde_json::from_str(l).unwrap();
            let file = Path::new(p["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (
                file,
                p["line"].as_u64().unwrap(),
                p["problem"].as_str().unwrap().to_owned(),
                p["field"].as_str().unwrap().to_owned(),
                p["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    problems.sort();
    problems
}

#[tokio::test]
async fn a_fresh_load_reports_each_broken_row_at_its_file_and_line_as_batches_do() {
    let work = tempfile::tempdir().unwrap();
    let world = generated(work.path(), 80, 2);
    // The agreements in two files; the second repeats a key of the first and breaks rules.
    let text = std::fs::read_to_string(world.join("agreements.jsonl")).unwrap();
    std::fs::remove_file(world.join("agreements.jsonl")).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    let (one, two) = rows.split_at(rows.len() / 2);
    let mut two: Vec<String> = two.iter().map(|r| (*r).to_owned()).collect();
    let mut broken = |field: &str, value: &str, no: &str| {
        let mut row: serde_json::Value = serde_json::from_str(one[0]).unwrap();
        row[field] = value.into();
        row["agreement_no"] = no.into();
        two.insert(2, row.to_string());
    };
    broken("partner_id", "2088999999999999", "99990000000000000001");
    broken("alipay_user_id", "2088299999999999", "99990000000000000002");
    let mut repeat: serde_json::Value = serde_json::from_str(one[2]).unwrap();
    repeat["status"] = "STOP".into();
    two.push(repeat.to_string());
    std::fs::write(world.join("agreements-1.jsonl"), one.join("\n") + "\n").unwrap();
    std::fs::write(world.join("agreements-2.jsonl"), two.join("\n") + "\n").unwrap();

    let mut reports = Vec::new();
    let mut exports = Vec::new();
    for backend in backends() {
        for (name, extra) in [
            ("fresh", &["--fresh"][..]),
            ("batches", &["--no-fresh"][..]),
        ] {
            let db = TestDatabase::new(&backend).await.unwrap();
            let report = work.path().join(format!("{name}.jsonl"));
            let out = agreements(
                &[
                    &["import", path(&world), "--database", db.location()],
                    extra,
                    &["--report", path(&report), "-q"],
                ]
                .concat(),
                work.path(),
            );
            assert_eq!(
                out.status.code(),
                Some(2),
                "{backend:?} {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            reports.push((backend.clone(), name, problems(&report)));
            exports.push(export(
                db.location(),
                &work.path().join(format!("out-{name}")),
                &[],
                work.path(),
            ));
        }
    }
    for (backend, name, problems) in &reports {
        let lines = two.len() as u64;
        let mut expected = vec![
            (
                "agreements-2.jsonl".to_owned(),
                3,
                "rejected".to_owned(),
                "alipay_user_id".to_owned(),
                "no account 2088299999999999 (load it first, in a accounts file)".to_owned(),
            ),
            (
                "agreements-2.jsonl".to_owned(),
                4,
                "rejected".to_owned(),
                "partner_id".to_owned(),
                "no merchant 2088999999999999 (load it first, in a merchants file)".to_owned(),
            ),
        ];
        // The per-batch path finds the repeated key stored, with other content; the fresh path
        // knows it as a row of this load.
        expected.push(if *name == "fresh" {
            (
                "agreements-2.jsonl".to_owned(),
                lines,
                "duplicate".to_owned(),
                String::new(),
                format!(
                    "same key as line 3 of {}",
                    world.join("agreements-1.jsonl").display()
                ),
            )
        } else {
            (
                "agreements-2.jsonl".to_owned(),
                lines,
                "conflict".to_owned(),
                "status".to_owned(),
                "stored with other status; left as stored (use --update to overwrite)".to_owned(),
            )
        });
        expected.sort();
        assert_eq!(*problems, expected, "{backend:?} {name}");
    }
    assert!(
        exports.windows(2).all(|w| w[0] == w[1]),
        "the fresh and per-batch paths stored different data"
    );
}
