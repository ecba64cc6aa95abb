//! Helpers shared by the CLI tests: running the binary, and a real `agreements serve`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agreements_client::{Client, ClientConfig};
use agreements_domain::agreement::{Agreement, AgreementStatus, PrincipalType, ThirdPartyType};
use agreements_domain::ids::{
    AgreementNo, AppId, PartnerId, PersonalProductCode, PrincipalId, ProductCode, SignScene, UserId,
};
use agreements_protocol::{Charset, PrivateKey, PublicKey, SignType};
use agreements_store::{Store, demo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// A client of the demo app for the server on `port`.
pub fn client(port: u16) -> Client {
    Client::new(ClientConfig {
        gateway_url: format!("http://127.0.0.1:{port}/gateway.do"),
        app_id: demo::APP_ID.to_owned(),
        app_private_key: PrivateKey::parse(&fixture("keys/app_private_key_pkcs1.pem")).unwrap(),
        platform_public_key: PublicKey::parse(&fixture("keys/gateway_public_key_spki.pem"))
            .unwrap(),
        sign_type: SignType::Rsa2,
        charset: Charset::Utf8,
        encryption: None,
        cert: None,
    })
    .unwrap()
}

pub fn agreement_no(i: usize) -> String {
    format!("2024052099{i:010}")
}

/// A receiver that answers `success` after `delay`, recording every body's `notify_id` and
/// `agreement_no`.
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<(String, String)>>>,
    pub delay: Arc<Mutex<Duration>>,
    /// Wakes its waiters at each notification received.
    pub arrived: Arc<tokio::sync::Notify>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let arrived = Arc::new(tokio::sync::Notify::new());
        let (g, d, a) = (got.clone(), delay.clone(), arrived.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let (g, d, a) = (g.clone(), d.clone(), a.clone());
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut stream).await else {
                        return;
                    };
                    let wait = *d.lock().unwrap();
                    tokio::time::sleep(wait).await;
                    let field = |name: &str| {
                        form_urlencoded::parse(&body)
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default()
                    };
                    g.lock()
                        .unwrap()
                        .push((field("notify_id"), field("agreement_no")));
                    a.notify_waiters();
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nsuccess")
                        .await;
                });
            }
        });
        Self {
            url,
            got,
            delay,
            arrived,
        }
    }
}

/// One HTTP/1.1 request's body (by Content-Length).
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let n = stream.read(&mut buf).await.ok()?;
                if n == 0 {
                    return None;
                }
                data.extend_from_slice(&buf[..n]);
            }
            return Some(data[end + 4..end + 4 + length].to_vec());
        }
    }
}

/// The demo world, its app notifying `receiver`, and `count` live agreements of
/// [`demo::USER_OTHER`] numbered by [`agreement_no`].
pub async fn world(store: &Store, receiver: &str, count: usize) {
    demo::load(store, fixture("keys/app_public_key_spki.b64").trim())
        .await
        .unwrap();
    store
        .execute_for_tests(&format!(
            "UPDATE apps SET notify_url = '{receiver}' WHERE app_id = '{}'",
            demo::APP_ID
        ))
        .await
        .unwrap();
    for i in 0..count {
        store
            .add_agreement(&Agreement {
                agreement_no: AgreementNo::parse(agreement_no(i)).unwrap(),
                partner_id: PartnerId::parse(demo::MERCHANT_VIDEO).unwrap(),
                sign_app_id: AppId::parse(demo::APP_ID).unwrap(),
                principal_type: PrincipalType::Card,
                principal_id: PrincipalId::parse(demo::USER_OTHER).unwrap(),
                alipay_user_id: UserId::parse(demo::USER_OTHER).unwrap(),
                personal_product_code: PersonalProductCode::parse("GENERAL_WITHHOLDING_P").unwrap(),
                product_code: ProductCode::parse("GENERAL_WITHHOLDING").unwrap(),
                sign_scene: SignScene::parse(format!("INDUSTRY|KILL{i}")).unwrap(),
                third_party_type: ThirdPartyType::Partner,
                external_agreement_no: None,
                external_logon_id: None,
                status: AgreementStatus::Normal,
                sign_time: 1_700_000_000,
                valid_time: 1_700_000_000,
                invalid_time: 4_000_000_000,
                unsign_time: None,
            })
            .await
            .unwrap();
    }
}
