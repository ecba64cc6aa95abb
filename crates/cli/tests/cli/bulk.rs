//! `agreements generate-world | import | export` as an operator runs them: a real import process
//! killed with SIGKILL, then run again, ends exactly where an uninterrupted one does; round trips
//! through every format and encoding are identical; dry runs write nothing.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use agreements_store::test_support::{TestDatabase, backends};

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

fn lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
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

        // A real process, killed with SIGKILL once some agreement batches are committed.
        let db = TestDatabase::new(&backend).await.unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_agreements"))
            .args([
                "import",
                path(&world),
                "--database",
                db.location(),
                "--batch-size",
                &batch,
                "--progress-every",
                "0",
            ])
            .current_dir(work.path())
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
    let db = work.path().join("a.db");
    ok(agreements(
        &["import", path(&world), "--database", path(&db), "-q"],
        work.path(),
    ));
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
