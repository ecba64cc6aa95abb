//! `agreements app add|list`: apps, their request keys and granted methods.

use std::fmt::Write as _;
use std::path::PathBuf;

use agreements_domain::ids::{AppId, PartnerId};
use agreements_protocol::{PublicKey, SignType};
use agreements_server::notify::check_destination;
use agreements_store::{AppKey, AppStatus, NewApp};
use anyhow::Context as _;

use crate::DatabaseArgs;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Register an app with its public key and owner merchant.
    Add(AddArgs),
    /// List the registered apps.
    List {
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The app id (digits, at most 32).
    #[arg(long)]
    pub app_id: String,
    /// The owner merchant (2088 + 12 digits); it must exist.
    #[arg(long)]
    pub partner_id: String,
    /// The app's public key file: SPKI PEM, PKCS#1 PEM, or bare base64 SPKI.
    #[arg(long)]
    pub public_key: PathBuf,
    /// Sign types the key verifies.
    #[arg(long, value_delimiter = ',', default_value = "RSA2,RSA")]
    pub sign_types: Vec<String>,
    /// Methods the app may call (repeatable); all served methods when omitted.
    #[arg(long = "method")]
    pub methods: Vec<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Where agreement notifications for this app go.
    #[arg(long)]
    pub notify_url: Option<String>,
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Add(args) => add(args).await,
        Command::List { db } => list(&db).await,
    }
}

async fn add(args: AddArgs) -> anyhow::Result<()> {
    let app_id = AppId::parse(&args.app_id).map_err(|e| anyhow::anyhow!("--app-id {e}"))?;
    let partner_id =
        PartnerId::parse(&args.partner_id).map_err(|e| anyhow::anyhow!("--partner-id {e}"))?;
    let key_text = std::fs::read_to_string(&args.public_key)
        .with_context(|| format!("reading {}", args.public_key.display()))?;
    let key = PublicKey::parse(&key_text)
        .with_context(|| format!("reading {}", args.public_key.display()))?;
    let public_key = key.to_spki_base64()?;
    let keys = args
        .sign_types
        .iter()
        .map(|t| {
            SignType::parse(t)
                .map(|sign_type| AppKey {
                    sign_type,
                    public_key: public_key.clone(),
                })
                .ok_or_else(|| anyhow::anyhow!("--sign-types: {t:?} is not RSA2 or RSA"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let methods = super::methods(&args.methods)?;
    if let Some(url) = &args.notify_url {
        check_destination(&args.db.config()?.notify_policy(), url)
            .await
            .map_err(|e| anyhow::anyhow!("--notify-url {e}"))?;
    }
    let store = args.db.open().await?;
    anyhow::ensure!(
        store.merchant(&partner_id).await?.is_some(),
        "merchant {partner_id} does not exist"
    );
    anyhow::ensure!(
        store.app(&app_id).await?.is_none(),
        "app {app_id} already exists"
    );
    let name = args.name.clone().unwrap_or_else(|| format!("app {app_id}"));
    let app = NewApp {
        app_id,
        partner_id,
        name,
        status: AppStatus::Online,
        notify_url: args.notify_url,
        keys,
        methods,
    };
    store.add_app(&app).await?;
    super::print(&format!(
        "added app {} for merchant {}\n",
        app.app_id, app.partner_id
    ))
}

async fn list(db: &DatabaseArgs) -> anyhow::Result<()> {
    let apps = db.open().await?.apps().await?;
    let mut out = format!(
        "{:<20} {:<18} {:<8} {:<10} {}\n",
        "APP_ID", "MERCHANT", "STATUS", "SIGN", "METHODS"
    );
    for app in apps {
        let sign: Vec<&str> = SignType::ALL
            .iter()
            .filter(|t| app.keys.iter().any(|k| k.sign_type == **t))
            .map(|t| t.as_str())
            .collect();
        let methods: Vec<&str> = app.methods.iter().map(|m| m.name()).collect();
        let _ = writeln!(
            out,
            "{:<20} {:<18} {:<8} {:<10} {}",
            app.app_id,
            app.partner_id,
            app.status.as_str(),
            sign.join(","),
            methods.join(",")
        );
    }
    super::print(&out)
}
