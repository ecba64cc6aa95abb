//! The `agreements` binary as an operator uses it.

use std::path::Path;
use std::process::Command;

use agreements_protocol::{PrivateKey, PublicKey, SignType};

use crate::common::{agreements, fails_with_db, ok, with_db};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = agreements(&["--help"], dir.path());
    assert!(out.status.success());
    for command in [
        "serve",
        "demo",
        "default-config",
        "migrate",
        "keygen",
        "app",
        "group",
        "merchant",
        "product",
        "contract",
        "account",
        "token",
        "call",
        "import",
        "export",
        "generate-world",
        "history",
        "unsign",
        "notify",
        "sign-link",
    ] {
        assert!(text(&out.stdout).contains(command), "{command}");
    }
    let notify = agreements(&["notify", "--help"], dir.path());
    for command in ["list", "resend", "receive"] {
        assert!(text(&notify.stdout).contains(command), "notify {command}");
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
fn configuration_comes_from_the_file_and_other_agreements_variables_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), "database = \"from-file.db\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agreements"))
        .args(["app", "list"])
        .current_dir(dir.path())
        .env("AGREEMENTS_CONFIG", "c.toml")
        .env(
            "AGREEMENTS_TEST_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .env_remove("AGREEMENTS_DATABASE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("from-file.db").exists());
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
        let store = agreements_store::Store::open_sqlite(Path::new(db))
            .await
            .unwrap();
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
    let refused = |app_id: &str, partner_id: &str, extra: &[&str], says: &str| {
        let mut args = vec!["--app-id", app_id, "--partner-id", partner_id];
        args.extend_from_slice(extra);
        let out = add(&args);
        assert!(
            !out.status.success() && text(&out.stderr).contains(says),
            "{extra:?}: {}",
            text(&out.stderr)
        );
    };
    let (app_id, partner_id) = ("2021000000000077", "2088000000000001");
    refused("12ab", partner_id, &[], "--app-id");
    refused(app_id, "2088999999999999", &[], "does not exist");
    refused(
        app_id,
        partner_id,
        &["--method", "alipay.trade.pay"],
        "--method",
    );
    // A notification address inside the platform's network, however spelled, is refused.
    for internal in [
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://10.0.0.1:8080/notify",
        "http://127.0.0.1:9000/notify",
        "http://metadata.google.internal/",
    ] {
        refused(
            app_id,
            partner_id,
            &["--notify-url", internal],
            "--notify-url",
        );
    }
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
            && listing.contains("2088000000000001")
            && listing.contains("RSA2       no "),
        "{listing}"
    );

    // AES content keys: generated (printed once, or written to a new 0600 file), or from a file.
    let aes = |extra: &[&str]| {
        let mut args = vec!["app", "aes-key", "--database", db];
        args.extend_from_slice(extra);
        agreements(&args, dir.path())
    };
    let printed = aes(&["--app-id", "2021000000000077", "--generate"]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let key = text(&printed.stdout).trim().to_owned();
    assert!(
        agreements_protocol::aes::ContentKey::parse(&key).is_ok(),
        "{key}"
    );
    let written = aes(&[
        "--app-id",
        "2021000000000077",
        "--generate",
        "--out",
        "aes.txt",
    ]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    assert!(
        text(&written.stdout).is_empty(),
        "the key went to the file only"
    );
    let file = dir.path().join("aes.txt");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = aes(&[
        "--app-id",
        "2021000000000077",
        "--generate",
        "--out",
        "aes.txt",
    ]);
    assert!(!again.status.success(), "an existing file is not replaced");
    std::fs::write(dir.path().join("short.txt"), "AAEC\n").unwrap();
    for (args, says) in [
        (
            vec!["--app-id", "2021000000000077", "--key-file", "short.txt"],
            "16, 24 or 32",
        ),
        (
            vec!["--app-id", "2021000000000099", "--generate"],
            "does not exist",
        ),
        (vec!["--app-id", "2021000000000077"], "required"),
        (
            vec![
                "--app-id",
                "2021000000000077",
                "--generate",
                "--key-file",
                "aes.txt",
            ],
            "cannot be used with",
        ),
    ] {
        let out = aes(&args);
        assert!(
            !out.status.success() && text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let from_file = aes(&["--app-id", "2021000000000077", "--key-file", "aes.txt"]);
    assert!(from_file.status.success(), "{}", text(&from_file.stderr));
    assert!(!text(&from_file.stderr).contains(std::fs::read_to_string(&file).unwrap().trim()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stored = runtime.block_on(async {
        let store = agreements_store::Store::open_sqlite(Path::new(db))
            .await
            .unwrap();
        store
            .content_key(&agreements_domain::ids::AppId::parse("2021000000000077").unwrap())
            .await
            .unwrap()
            .unwrap()
    });
    assert_eq!(
        stored.content_key.to_base64(),
        std::fs::read_to_string(&file).unwrap().trim()
    );
    assert!(!format!("{stored:?}").contains(&stored.content_key.to_base64()));
    let listing = text(&agreements(&["app", "list", "--database", db], dir.path()).stdout);
    assert!(listing.contains("RSA2       yes"), "{listing}");
}

/// An operator builds a world from nothing with the commands alone; the gateway then answers from
/// it, for the owner's app and for an ISV holding a token, until the token is revoked.
#[test]
fn an_operator_builds_a_world_that_the_gateway_serves() {
    use agreements_client::verify_response;
    use agreements_domain::clock::FixedClock;
    use agreements_protocol::{Charset, Params};
    use agreements_server::{Gateway, Limits};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let db = db.to_str().unwrap();
    let run = |args: &[&str]| with_db(dir.path(), db, args);
    let fails = |args: &[&str], says: &str| fails_with_db(dir.path(), db, args, says);
    run(&["group", "add", "--group-id", "G1", "--name", "Group one"]);
    fails(
        &[
            "merchant",
            "add",
            "--partner-id",
            "2088000000000011",
            "--name",
            "M",
            "--group",
            "NOPE",
        ],
        "does not exist",
    );
    fails(
        &[
            "merchant",
            "add",
            "--partner-id",
            "2099000000000011",
            "--name",
            "M",
        ],
        "--partner-id",
    );
    run(&[
        "merchant",
        "add",
        "--partner-id",
        "2088000000000011",
        "--name",
        "Owner",
        "--group",
        "G1",
    ]);
    run(&[
        "merchant",
        "add",
        "--partner-id",
        "2088000000000022",
        "--name",
        "ISV",
    ]);
    run(&[
        "product",
        "add",
        "--personal-product-code",
        "GENERAL_WITHHOLDING_P",
        "--product-code",
        "GENERAL_WITHHOLDING",
    ]);
    fails(
        &[
            "contract",
            "add",
            "--partner-id",
            "2088000000000011",
            "--product-code",
            "GENERAL_WITHHOLDING",
            "--from",
            "2030-01-01 00:00:00",
            "--to",
            "2020-01-01 00:00:00",
        ],
        "--from",
    );
    run(&[
        "contract",
        "add",
        "--partner-id",
        "2088000000000011",
        "--product-code",
        "GENERAL_WITHHOLDING",
    ]);
    fails(
        &[
            "account",
            "add",
            "--user-id",
            "2088100000000001",
            "--logon-id",
            "not a logon",
        ],
        "--logon-id",
    );
    run(&[
        "account",
        "add",
        "--user-id",
        "2088100000000001",
        "--logon-id",
        "Person@Example.com",
        "--open-id",
        "2021000000000101:open-1",
    ]);
    assert!(
        agreements(&["keygen", "--out", ".", "--name", "app"], dir.path())
            .status
            .success()
    );
    run(&[
        "app",
        "add",
        "--app-id",
        "2021000000000101",
        "--partner-id",
        "2088000000000011",
        "--public-key",
        "app_public_key_spki.pem",
    ]);
    run(&[
        "app",
        "add",
        "--app-id",
        "2021000000000202",
        "--partner-id",
        "2088000000000022",
        "--public-key",
        "app_public_key_spki.b64",
    ]);
    fails(
        &[
            "token",
            "issue",
            "--isv-app-id",
            "2021000000000999",
            "--partner-id",
            "2088000000000011",
        ],
        "does not exist",
    );
    let token = run(&[
        "token",
        "issue",
        "--isv-app-id",
        "2021000000000202",
        "--partner-id",
        "2088000000000011",
    ])
    .trim()
    .to_owned();
    assert!(token.len() <= 40 && token.contains("BB"), "{token}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = std::sync::Arc::new(
        runtime
            .block_on(agreements_store::Store::open_sqlite(Path::new(db)))
            .unwrap(),
    );
    let agreement = agreements_domain::Agreement {
        agreement_no: agreements_domain::ids::AgreementNo::parse("20260101000000000001").unwrap(),
        partner_id: agreements_domain::ids::PartnerId::parse("2088000000000011").unwrap(),
        sign_app_id: agreements_domain::ids::AppId::parse("2021000000000101").unwrap(),
        principal_type: agreements_domain::PrincipalType::Card,
        principal_id: agreements_domain::ids::PrincipalId::parse("2088100000000001").unwrap(),
        alipay_user_id: agreements_domain::ids::UserId::parse("2088100000000001").unwrap(),
        personal_product_code: agreements_domain::ids::PersonalProductCode::parse(
            "GENERAL_WITHHOLDING_P",
        )
        .unwrap(),
        product_code: agreements_domain::ids::ProductCode::parse("GENERAL_WITHHOLDING").unwrap(),
        sign_scene: agreements_domain::ids::SignScene::default_scene(),
        third_party_type: agreements_domain::ThirdPartyType::Partner,
        external_agreement_no: None,
        external_logon_id: None,
        status: agreements_domain::AgreementStatus::Normal,
        sign_time: 1_767_225_600,
        valid_time: 1_767_225_600,
        invalid_time: 4_102_444_800,
        unsign_time: None,
    };
    runtime.block_on(store.add_agreement(&agreement)).unwrap();
    let platform = PrivateKey::generate(2048).unwrap();
    let platform_public = platform.public_key().unwrap();
    let now = agreements_protocol::timestamp::parse_beijing("2026-06-01 12:00:00").unwrap();
    let limits = Limits {
        timestamp_window: Some(900),
        max_body_bytes: 65_536,
    };
    let gateway = Gateway::new(
        store,
        platform,
        std::sync::Arc::new(FixedClock::new(now)),
        limits,
    );
    let app_key = PrivateKey::parse(
        &std::fs::read_to_string(dir.path().join("app_private_key_pkcs8.pem")).unwrap(),
    )
    .unwrap();
    let method = "alipay.user.agreement.batch.query";
    let call = |app_id: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("app_id", app_id),
            ("method", method),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", "2026-06-01 12:00:00"),
            ("version", "1.0"),
            (
                "biz_content",
                r#"{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_logon_id":"person@example.com"}"#,
            ),
        ];
        pairs.extend_from_slice(extra);
        let params = Params::from_pairs(Charset::Utf8, &pairs).unwrap();
        let content = agreements_protocol::sign_content::request(
            &params,
            agreements_protocol::sign_content::Empties::Drop,
        );
        let sign = app_key.sign(SignType::Rsa2, &content).unwrap();
        let mut body: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("{n}={}", form_encode(v)))
            .collect();
        body.push(format!("sign={}", form_encode(&sign)));
        let reply = runtime.block_on(gateway.handle(b"", None, body.join("&").as_bytes()));
        verify_response(
            &reply.body,
            method,
            Charset::Utf8,
            &platform_public,
            SignType::Rsa2,
        )
        .unwrap()
    };
    let owner = call("2021000000000101", &[]);
    assert_eq!(
        owner.node["usage_agreement_info_list"][0]["agreement_no"], "20260101000000000001",
        "{:?}",
        owner.node
    );
    assert_eq!(
        owner.node["usage_agreement_info_list"][0]["principal_open_id"],
        "open-1"
    );
    let isv = call("2021000000000202", &[("app_auth_token", &token)]);
    assert_eq!(
        isv.node["usage_agreement_info_list"][0]["agreement_no"], "20260101000000000001",
        "{:?}",
        isv.node
    );
    run(&["token", "revoke", &token]);
    // The revocation is seen at once: tokens are not cached.
    let revoked = call("2021000000000202", &[("app_auth_token", &token)]);
    assert_eq!(revoked.sub_code(), Some("aop.invalid-app-auth-token"));
    fails(&["token", "revoke", "no-such-token"], "no such token");
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn bench_refuses_rates_and_durations_out_of_range_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "bench",
        "--app-id",
        "2021000000000001",
        "--app-key",
        "missing.pem",
        "--platform-key",
        "missing.pem",
        "--biz-file",
        "missing.txt",
    ];
    for (extra, expected) in [
        (&["--rate", "1e30"][..], "--rate must be a positive number"),
        (&["--rate", "0"][..], "--rate must be a positive number"),
        (&["--rate", "NaN"][..], "--rate must be a positive number"),
        (&["--duration", "0"][..], "--duration must be in"),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = agreements(&args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{extra:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn consumers_get_passwords_and_merchants_get_signing_links() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let db = db.to_str().unwrap();
    let run = |args: &[&str]| with_db(dir.path(), db, args);
    let fails = |args: &[&str], says: &str| fails_with_db(dir.path(), db, args, says);
    run(&[
        "merchant",
        "add",
        "--partner-id",
        "2088000000000011",
        "--name",
        "Owner",
    ]);
    run(&[
        "product",
        "add",
        "--personal-product-code",
        "GENERAL_WITHHOLDING_P",
        "--product-code",
        "GENERAL_WITHHOLDING",
    ]);
    run(&[
        "contract",
        "add",
        "--partner-id",
        "2088000000000011",
        "--product-code",
        "GENERAL_WITHHOLDING",
    ]);
    assert!(
        agreements(&["keygen", "--out", ".", "--name", "app"], dir.path())
            .status
            .success()
    );
    run(&[
        "app",
        "add",
        "--app-id",
        "2021000000000101",
        "--partner-id",
        "2088000000000011",
        "--public-key",
        "app_public_key_spki.pem",
    ]);
    std::fs::write(dir.path().join("short.txt"), "short\n").unwrap();
    std::fs::write(dir.path().join("pw.txt"), "first password\n").unwrap();
    std::fs::write(dir.path().join("pw2.txt"), "second password\n").unwrap();
    fails(
        &[
            "account",
            "add",
            "--user-id",
            "2088100000000001",
            "--logon-id",
            "person@example.com",
            "--password-file",
            "short.txt",
        ],
        "8 to 256 characters",
    );
    run(&[
        "account",
        "add",
        "--user-id",
        "2088100000000001",
        "--logon-id",
        "person@example.com",
        "--password-file",
        "pw.txt",
    ]);
    fails(
        &[
            "account",
            "password",
            "--account",
            "nobody@example.com",
            "--password-file",
            "pw2.txt",
        ],
        "no account has that logon id",
    );
    let said = run(&[
        "account",
        "password",
        "--account",
        "Person@Example.com",
        "--password-file",
        "pw2.txt",
    ]);
    assert!(said.contains("2088100000000001"), "{said}");
    let out = agreements(
        &[
            "sign-link",
            "--gateway",
            "http://127.0.0.1:1/gateway.do",
            "--app-id",
            "2021000000000101",
            "--app-key",
            "app_private_key_pkcs1.pem",
            "--return-url",
            "https://merchant.example.com/back",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let link = text(&out.stdout);
    let link = link.trim();
    assert!(link.starts_with("http://127.0.0.1:1/gateway.do?"), "{link}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = std::sync::Arc::new(
        runtime
            .block_on(agreements_store::Store::open_sqlite(Path::new(db)))
            .unwrap(),
    );
    let user = agreements_domain::ids::UserId::parse("2088100000000001").unwrap();
    let stored = runtime.block_on(store.credential(&user)).unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));
    assert!(agreements_server::web::password::verify(
        Some(&stored.password_hash),
        "second password"
    ));
    assert!(!agreements_server::web::password::verify(
        Some(&stored.password_hash),
        "first password"
    ));
    // The link is what the gateway accepts as a page.sign: it opens a signing session.
    let gateway = agreements_server::Gateway::new(
        store,
        PrivateKey::generate(2048).unwrap(),
        std::sync::Arc::new(agreements_domain::clock::SystemClock),
        agreements_server::Limits {
            timestamp_window: Some(900),
            max_body_bytes: 65_536,
        },
    );
    let query = link.split_once('?').unwrap().1;
    let reply = runtime.block_on(gateway.handle(query.as_bytes(), None, b""));
    match reply.page {
        Some(agreements_server::Page::Signing(session)) => {
            assert_eq!(session.app_id.as_str(), "2021000000000101");
            assert_eq!(
                session.return_url.as_deref(),
                Some("https://merchant.example.com/back")
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Certificate mode from the command line: `ca init` makes the authority and the platform's
/// certificate (once), `app cert issue` the app's certificate and the merchant's three files,
/// refusing weak keys and broken requests, and `ca rotate` a new platform certificate.
#[test]
fn operators_set_up_certificate_mode_and_hand_merchants_their_files() {
    use agreements_protocol::cert::{Certificate, root_cert_sn};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let db = db.to_str().unwrap();
    for name in ["app", "platform"] {
        ok(agreements(
            &["keygen", "--out", ".", "--name", name],
            dir.path(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = runtime.block_on(async {
        let store = agreements_store::Store::open_sqlite(Path::new(db))
            .await
            .unwrap();
        let public = std::fs::read_to_string(dir.path().join("app_public_key_spki.b64")).unwrap();
        agreements_store::demo::load(&store, public.trim())
            .await
            .unwrap();
        store
    });
    let init = [
        "ca",
        "init",
        "--ca-dir",
        "ca",
        "--platform-key",
        "platform_private_key_pkcs1.pem",
    ];
    let out = with_db(dir.path(), db, &init);
    let ca = dir.path().join("ca");
    let roots =
        Certificate::parse_pem_chain(&std::fs::read(ca.join("alipayRootCert.crt")).unwrap())
            .unwrap();
    let platform = Certificate::parse_pem_chain(
        &std::fs::read(ca.join("alipayCertPublicKey_RSA2.crt")).unwrap(),
    )
    .unwrap();
    assert!(
        out.contains(&root_cert_sn(&roots)) && out.contains(&platform[0].sn()),
        "{out}"
    );
    assert_eq!(platform.len(), 2, "the leaf and the intermediate");
    platform[0]
        .verify_chain(&platform[1..], &roots, agreements_client::now_unix())
        .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        for key in ["root_private_key.pem", "intermediate_private_key.pem"] {
            let mode = std::fs::metadata(ca.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }
    fails_with_db(dir.path(), db, &init, "already holds an authority");

    // An app certificate: the key's owner only, 2048 bits at least, a request signed by its key.
    let issue = |extra: &[&'static str]| {
        let mut args = vec![
            "app",
            "cert",
            "issue",
            "--app-id",
            "2021000000000001",
            "--ca-dir",
            "ca",
            "--out",
            "merchant",
        ];
        args.extend_from_slice(extra);
        args
    };
    let weak = agreements_protocol::PrivateKey::generate(1024).unwrap();
    std::fs::write(
        dir.path().join("weak.pem"),
        weak.public_key().unwrap().to_spki_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("junk.csr"), "not a request").unwrap();
    fails_with_db(
        dir.path(),
        db,
        &issue(&["--public-key", "weak.pem"]),
        "2048",
    );
    fails_with_db(dir.path(), db, &issue(&["--csr", "junk.csr"]), "CSR");
    fails_with_db(dir.path(), db, &issue(&[]), "required");
    let out = with_db(
        dir.path(),
        db,
        &issue(&["--public-key", "app_public_key_spki.pem"]),
    );
    let merchant = dir.path().join("merchant");
    let app_cert = Certificate::parse_pem(
        &std::fs::read(merchant.join("appCertPublicKey_2021000000000001.crt")).unwrap(),
    )
    .unwrap();
    assert!(out.contains(&app_cert.sn()), "{out}");
    assert_eq!(
        std::fs::read(merchant.join("alipayRootCert.crt")).unwrap(),
        std::fs::read(ca.join("alipayRootCert.crt")).unwrap()
    );
    assert!(merchant.join("alipayCertPublicKey_RSA2.crt").exists());
    let app_id = agreements_domain::ids::AppId::parse("2021000000000001").unwrap();
    let (certs, sunset) = runtime.block_on(async {
        (
            store.app_certs(&app_id).await.unwrap(),
            store.key_sunset(&app_id).await.unwrap(),
        )
    });
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].cert_sn, app_cert.sn());
    let sunset = sunset
        .expect("the first certificate switches the app's mode")
        .sunset_at;
    assert!((sunset - certs[0].created_at - 7 * 86_400).abs() <= 1);

    // A new platform certificate: same key, new SN, the newest one signs.
    let out = with_db(
        dir.path(),
        db,
        &[
            "ca",
            "rotate",
            "--ca-dir",
            "ca",
            "--platform-key",
            "platform_private_key_pkcs1.pem",
        ],
    );
    let rotated =
        Certificate::parse_pem(&std::fs::read(ca.join("alipayCertPublicKey_RSA2.crt")).unwrap())
            .unwrap();
    assert_ne!(rotated.sn(), platform[0].sn());
    assert!(out.contains(&rotated.sn()), "{out}");
    let stored = runtime.block_on(store.platform_certs()).unwrap();
    let signing: Vec<&str> = stored
        .iter()
        .filter(|c| c.role == agreements_store::CertRole::Signing)
        .map(|c| c.cert_sn.as_str())
        .collect();
    assert_eq!(signing, [platform[0].sn().as_str(), rotated.sn().as_str()]);
}
