//! The `agreements` binary as an operator uses it.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Command, Output};

use agreements_protocol::{PrivateKey, PublicKey, SignType};

fn agreements(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agreements"))
        .args(args)
        .current_dir(dir)
        .env_remove("AGREEMENTS_CONFIG")
        .env_remove("AGREEMENTS_DATABASE")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = agreements(&["--help"], dir.path());
    assert!(out.status.success());
    for command in ["serve", "demo", "default-config", "keygen", "app", "call"] {
        assert!(text(&out.stdout).contains(command), "{command}");
    }
}

#[test]
fn keygen_writes_a_matching_pair_in_every_format_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = agreements(&["keygen", "--out", "keys", "--name", "m"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let read = |name: &str| std::fs::read_to_string(dir.path().join("keys").join(name)).unwrap();
    let public = PublicKey::parse(&read("m_public_key_spki.pem")).unwrap();
    let public_b64 = PublicKey::parse(&read("m_public_key_spki.b64")).unwrap();
    for private in [
        "m_private_key_pkcs1.pem",
        "m_private_key_pkcs8.pem",
        "m_private_key_pkcs1.b64",
        "m_private_key_pkcs8.b64",
    ] {
        let key = PrivateKey::parse(&read(private)).unwrap();
        let sig = key.sign(SignType::Rsa2, b"x").unwrap();
        assert!(
            public.verify(SignType::Rsa2, b"x", &sig)
                && public_b64.verify(SignType::Rsa2, b"x", &sig),
            "{private}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("keys/m_private_key_pkcs1.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = agreements(&["keygen", "--out", "keys", "--name", "m"], dir.path());
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("--force"));
}

#[test]
fn default_config_is_valid_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = agreements(&["default-config"], dir.path());
    assert!(out.status.success());
    std::fs::write(dir.path().join("c.toml"), &out.stdout).unwrap();
    let config = agreements_server::config::Config::load(Some(&dir.path().join("c.toml"))).unwrap();
    assert_eq!(config, agreements_server::config::Config::default());
}

#[test]
fn app_add_validates_input_and_app_list_shows_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let db = db.to_str().unwrap();
    assert!(
        agreements(&["keygen", "--out", ".", "--name", "app"], dir.path())
            .status
            .success()
    );
    // The merchant must exist: create the demo world's merchants through the store.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = agreements_store::Store::open_sqlite(Path::new(db)).unwrap();
        agreements_store::demo::load(&store, "unused")
            .await
            .unwrap();
    });
    let add = |extra: &[&str]| {
        let mut args = vec![
            "app",
            "add",
            "--database",
            db,
            "--public-key",
            "app_public_key_spki.pem",
        ];
        args.extend_from_slice(extra);
        agreements(&args, dir.path())
    };
    let bad = add(&["--app-id", "12ab", "--partner-id", "2088000000000001"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("--app-id"));
    let bad = add(&[
        "--app-id",
        "2021000000000077",
        "--partner-id",
        "2088999999999999",
    ]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("does not exist"));
    let bad = add(&[
        "--app-id",
        "2021000000000077",
        "--partner-id",
        "2088000000000001",
        "--method",
        "alipay.trade.pay",
    ]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("--method"));
    let ok = add(&[
        "--app-id",
        "2021000000000077",
        "--partner-id",
        "2088000000000001",
        "--sign-types",
        "RSA2",
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let dup = add(&[
        "--app-id",
        "2021000000000077",
        "--partner-id",
        "2088000000000001",
    ]);
    assert!(!dup.status.success() && text(&dup.stderr).contains("already exists"));
    let list = agreements(&["app", "list", "--database", db], dir.path());
    let listing = text(&list.stdout);
    assert!(
        listing.contains("2021000000000077")
            && listing.contains("RSA2")
            && listing.contains("2088000000000001"),
        "{listing}"
    );
}
