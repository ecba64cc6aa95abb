//! `agreements app add|list|aes-key`: apps, their request keys, granted methods and content
//! keys.

use std::fmt::Write as _;
use std::path::PathBuf;

use agreements_domain::ids::{AppId, PartnerId};
use agreements_protocol::aes::ContentKey;
use agreements_protocol::{PublicKey, SignType};
use agreements_server::notify::check_destination;
use agreements_store::{AppContentKey, AppKey, AppStatus, NewApp};
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
    /// Set an app's AES content key (encrypt_type=AES / AES_V2), generated or from a file.
    ///
    /// The key is what the merchant enters as its SDK's encrypt key. It replaces any earlier
    /// key at once (running servers see it within their app cache's lifetime), and it is never
    /// logged.
    AesKey(AesKeyArgs),
    /// Certificates of apps in certificate mode (公钥证书).
    #[command(subcommand)]
    Cert(super::ca::CertCommand),
}

#[derive(Debug, clap::Args)]
#[group(id = "source", required = true, multiple = false)]
pub struct AesKeyArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The app id.
    #[arg(long)]
    pub app_id: String,
    /// Generate a new random key (AES-128, what the Alipay console issues) and write it to
    /// --out, or to standard output.
    #[arg(long, group = "source")]
    pub generate: bool,
    /// Read the key from a file (base64 of 16, 24 or 32 bytes; "-": standard input).
    #[arg(long, group = "source")]
    pub key_file: Option<PathBuf>,
    /// With --generate: the file to write the key to (a new file, mode 0600).
    #[arg(long, requires = "generate")]
    pub out: Option<PathBuf>,
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
        Command::AesKey(args) => aes_key(args).await,
        Command::Cert(command) => super::ca::run_cert(command).await,
    }
}

async fn aes_key(args: AesKeyArgs) -> anyhow::Result<()> {
    let app_id = AppId::parse(&args.app_id).map_err(|e| anyhow::anyhow!("--app-id {e}"))?;
    let content_key = match &args.key_file {
        Some(file) => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(file)
                    .with_context(|| format!("reading the key file {}", file.display()))?
            };
            ContentKey::parse(text.trim()).map_err(|e| anyhow::anyhow!("--key-file: {e}"))?
        }
        None => ContentKey::generate(16)?,
    };
    let store = args.db.open().await?;
    anyhow::ensure!(
        store.app(&app_id).await?.is_some(),
        "app {app_id} does not exist"
    );
    if let Some(path) = &args.out {
        super::keygen::write(path, &format!("{}\n", content_key.to_base64()), true, false)?;
    }
    let printed = (args.generate && args.out.is_none()).then(|| content_key.to_base64());
    store
        .set_content_key(&AppContentKey {
            app_id: app_id.clone(),
            content_key,
            updated_at: crate::now(),
        })
        .await?;
    if let Some(key) = printed {
        super::print(&format!("{key}\n"))?;
    }
    super::say(&format!(
        "set the AES content key of app {app_id}{}",
        match &args.out {
            Some(path) => format!(" (written to {})", path.display()),
            None => String::new(),
        }
    ));
    Ok(())
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
    let store = db.open().await?;
    let apps = store.apps().await?;
    let mut out = format!(
        "{:<20} {:<18} {:<8} {:<10} {:<4} {}\n",
        "APP_ID", "MERCHANT", "STATUS", "SIGN", "AES", "METHODS"
    );
    for app in apps {
        let aes = if store.content_key(&app.app_id).await?.is_some() {
            "yes"
        } else {
            "no"
        };
        let sign: Vec<&str> = SignType::ALL
            .iter()
            .filter(|t| app.keys.iter().any(|k| k.sign_type == **t))
            .map(|t| t.as_str())
            .collect();
        let methods: Vec<&str> = app.methods.iter().map(|m| m.name()).collect();
        let _ = writeln!(
            out,
            "{:<20} {:<18} {:<8} {:<10} {:<4} {}",
            app.app_id,
            app.partner_id,
            app.status.as_str(),
            sign.join(","),
            aes,
            methods.join(",")
        );
    }
    super::print(&out)
}
