//! `agreements demo`: a ready world on a fresh machine — database, demo data, app and platform
//! key pairs — served at once, with a call to paste.

use std::path::PathBuf;

use agreements_server::config::Config;
use agreements_server::telemetry;
use agreements_store::{Store, demo};
use anyhow::Context as _;

use super::keygen;

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
        tracing::info!(data_dir = %dir.display(), "created the demo world");
    }
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
        let banner = format!(
            "\nagreements demo is serving {url}\n\n\
             app id                 {app}  (merchant {merchant}, group {group})\n\
             app private key        {dir}/app_private_key_pkcs1.pem  (Python/Node SDKs; Java: app_private_key_pkcs8.b64)\n\
             platform public key    {dir}/platform_public_key_spki.pem  (the SDKs' \"alipay public key\")\n\n\
             Try it:\n\n\
             {exe} call alipay.user.agreement.batch.query \\\n  --gateway {url} --app-id {app} \\\n  \
             --app-key {dir}/app_private_key_pkcs1.pem \\\n  --platform-key {dir}/platform_public_key_spki.pem \\\n  \
             --biz '{biz}'\n\nStop with Ctrl-C.\n",
            app = demo::APP_ID,
            merchant = demo::MERCHANT_VIDEO,
            group = demo::GROUP_ID,
            dir = dir.display(),
        );
        let _ = super::print(&banner);
    })
    .await
}
