//! Helpers shared by the CLI tests: running the binary, and a real `agreements serve`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Runs `agreements args…` in `dir`, with no configuration from the environment.
pub fn agreements(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agreements"))
        .args(args)
        .current_dir(dir)
        .env_remove("AGREEMENTS_CONFIG")
        .env_remove("AGREEMENTS_DATABASE")
        .output()
        .unwrap()
}

/// The standard output of a command that must have succeeded.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `agreements args… --database db` in `dir`; its standard output (it must succeed).
pub fn with_db(dir: &Path, db: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--database", db]);
    ok(agreements(&all, dir))
}

/// Runs `agreements args… --database db` in `dir`, which must fail saying `says`.
pub fn fails_with_db(dir: &Path, db: &str, args: &[&str], says: &str) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--database", db]);
    let out = agreements(&all, dir);
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(says), "{args:?}: {stderr}");
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/openapi-vectors")
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap()
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn config(dir: &Path, database: &str, port: u16) -> PathBuf {
    let path = dir.join("serve.toml");
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\ndatabase = {database:?}\nplatform_private_key = {:?}\n\
         notify_concurrency = 2\nnotify_timeout_ms = 1000\nnotify_poll_ms = 100\nlog_filter = \"warn\"\n\
         notify_allow = [\"127.0.0.0/8\"]\n",
        fixtures()
            .join("keys/gateway_private_key_pkcs1.pem")
            .display()
            .to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

pub async fn serve(config: &Path, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agreements"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let http = reqwest::Client::new();
    for _ in 0..500 {
        if http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not come up");
}
