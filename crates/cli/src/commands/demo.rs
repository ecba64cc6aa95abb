//! `agreements demo`: a ready world on a fresh machine — database, demo data, app and platform
//! key pairs — served at once, with a call to paste.

use std::path::PathBuf;

use agreements_server::config::Config;
use agreements_server::telemetry;
use agreements_store::{Store, demo};
use anyhow::Context as _;

use super::keygen;

/// The demo consumer's password file in the data folder.
const PASSWORD_FILE: &str = "consumer_password.txt";
/// The demo app's AES content key (encrypt_type=AES) in the data folder.
pub const AES_KEY_FILE: &str = "app_aes_key.txt";
/// The platform's certificate authority (certificate mode) in the data folder.
const CA_DIR: &str = "ca";
/// The demo app's certificate-mode files in the data folder.
const CERT_DIR: &str = "cert";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the database and the keys (created if missing, reused if present).
    #[arg(long, default_value = "agreements-data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::default();
    telemetry::init(config.log_format, &config.log_filter);
    let dir = &args.data_dir;
    let database = dir.join("agreements.db");
    let platform_key = dir.join("platform_private_key_pkcs1.pem");
    if database.exists() {
        anyhow::ensure!(
            platform_key.exists() && dir.join("app_private_key_pkcs1.pem").exists(),
            "{} has a database but not its keys; remove the folder to start over",
            dir.display()
        );
        tracing::info!(data_dir = %dir.display(), "reusing the demo world");
    } else {
        keygen::write_pair(dir, "platform", true)?;
        let app = keygen::write_pair(dir, "app", true)?;
        let public = std::fs::read_to_string(&app.public_spki_b64)?;
        let store = Store::open_sqlite(&database)
            .await
            .with_context(|| format!("creating {}", database.display()))?;
        demo::load(&store, public.trim()).await?;
        // The demo consumer's password for the signing and automatic payments pages.
        let password = agreements_protocol::crypto::random_alphanumeric(12)?;
        keygen::write(
            &dir.join(PASSWORD_FILE),
            &format!("{password}\n"),
            true,
            true,
        )?;
        store
            .set_password(&agreements_store::Credential {
                user_id: agreements_domain::ids::UserId::parse(demo::USER_PRIMARY)
                    .map_err(anyhow::Error::msg)?,
                password_hash: agreements_server::web::password::hash(&password)?,
                updated_at: crate::now(),
            })
            .await?;
        // The demo app's content key, for encrypt_type=AES (plain requests stay accepted).
        let content_key = agreements_protocol::aes::ContentKey::generate(16)?;
        keygen::write(
            &dir.join(AES_KEY_FILE),
            &format!("{}\n", content_key.to_base64()),
            true,
            true,
        )?;
        store
            .set_content_key(&agreements_store::AppContentKey {
                app_id: agreements_domain::ids::AppId::parse(demo::APP_ID)
                    .map_err(anyhow::Error::msg)?,
                content_key,
                updated_at: crate::now(),
            })
            .await?;
        // Certificate mode: the platform's authority, and a certificate for the demo app (its
        // public key stays valid too, so both modes work).
        let platform =
            agreements_protocol::PrivateKey::parse(&std::fs::read_to_string(&platform_key)?)?;
        super::ca::init(&store, &dir.join(CA_DIR), &platform, "Agreements Demo").await?;
        let app_id =
            agreements_domain::ids::AppId::parse(demo::APP_ID).map_err(anyhow::Error::msg)?;
        super::ca::issue_app(
            &store,
            &dir.join(CA_DIR),
            &super::ca::AppIssue {
                app_id: &app_id,
                public_key: &agreements_protocol::PublicKey::parse(public.trim())?,
                days: 1825,
                overlap_days: 7,
                keep_keys: true,
                out: &dir.join(CERT_DIR),
            },
        )
        .await?;
        tracing::info!(data_dir = %dir.display(), "created the demo world");
    }
    let password = std::fs::read_to_string(dir.join(PASSWORD_FILE))
        .with_context(|| format!("reading {}", dir.join(PASSWORD_FILE).display()))?;
    let password = password.trim().to_owned();
    let app_key = agreements_protocol::PrivateKey::parse(&std::fs::read_to_string(
        dir.join("app_private_key_pkcs1.pem"),
    )?)?;
    let config = Config {
        listen: args.listen,
        // The demo's notifications go to receivers on this machine (`agreements notify receive`).
        notify_allow: ["127.0.0.0/8", "::1"]
            .into_iter()
            .map(|range| range.parse().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
        database: database.to_string_lossy().into_owned().into(),
        platform_private_key: platform_key,
        ..config
    };
    let dir = std::fs::canonicalize(dir)?;
    super::serve::start(&config, |addr| {
        let exe = std::env::current_exe().map_or_else(|_| "agreements".into(), |p| p.display().to_string());
        let url = format!("http://{addr}/gateway.do");
        let biz = format!(r#"{{"personal_product_code":"GENERAL_WITHHOLDING_P","alipay_user_id":"{}"}}"#, demo::USER_PRIMARY);
        let link = super::sign_link::link(
            &url,
            demo::APP_ID,
            &app_key,
            super::sign_link::DEFAULT_BIZ,
            (None, None),
            &agreements_client::now_beijing(),
        )
        .unwrap_or_else(|e| format!("(no link: {e})"));
        let banner = format!(
            "\nagreements demo is serving {url}\n\n\
             app id                 {app}  (merchant {merchant}, group {group})\n\
             app private key        {dir}/app_private_key_pkcs1.pem  (Python/Node SDKs; Java: app_private_key_pkcs8.b64)\n\
             platform public key    {dir}/platform_public_key_spki.pem  (the SDKs' \"alipay public key\")\n\
             app AES key            {dir}/{aes_key_file}  (optional: encrypt_type=AES or AES_V2)\n\
             certificate mode       {dir}/{cert_dir}/  (appCertPublicKey_{app}.crt, alipayCertPublicKey_RSA2.crt,\n\
             \x20                      alipayRootCert.crt: the SDKs' cert options; the app key mode works too)\n\n\
             Try it:\n\n\
             {exe} call alipay.user.agreement.batch.query \\\n  --gateway {url} --app-id {app} \\\n  \
             --app-key {dir}/app_private_key_pkcs1.pem \\\n  --platform-key {dir}/platform_public_key_spki.pem \\\n  \
             --biz '{biz}'\n\n\
             Sign an agreement as a consumer: open this link (a page.sign link as the SDKs' pageExecute GET\n\
             makes it; usable for 15 minutes — `{exe} sign-link --gateway {url} --app-id {app} --app-key\n\
             {dir}/app_private_key_pkcs1.pem` makes a fresh one):\n\n{link}\n\n\
             consumer logon id      {logon}\n\
             consumer password      {password}  (also in {dir}/{password_file})\n\
             automatic payments     http://{addr}/me\n\nStop with Ctrl-C.\n",
            logon = demo::LOGON_EMAIL,
            password_file = PASSWORD_FILE,
            aes_key_file = AES_KEY_FILE,
            cert_dir = CERT_DIR,
            app = demo::APP_ID,
            merchant = demo::MERCHANT_VIDEO,
            group = demo::GROUP_ID,
            dir = dir.display(),
        );
        let _ = super::print(&banner);
    })
    .await
}
