//! Certificate mode for operators: `agreements ca init|rotate` (the platform's authority and
//! signing certificate) and `agreements app cert issue` (an app's certificate), with the files
//! a merchant is handed in the names the SDKs' examples use.

use std::path::{Path, PathBuf};

use agreements_domain::ids::AppId;
use agreements_protocol::cert::{Authority, Certificate, Name, Role, public_key_of_request};
use agreements_protocol::{PrivateKey, PublicKey};
use agreements_store::{AppCert, CertRole, PlatformCert, Store};
use anyhow::Context as _;

use super::keygen;
use crate::DatabaseArgs;

/// The root bundle merchants configure (the SDKs' `alipayRootCert.crt`).
pub const ROOT_BUNDLE: &str = "alipayRootCert.crt";
/// The platform's signing certificate and its chain (the SDKs' `alipayCertPublicKey_RSA2.crt`).
pub const PLATFORM_CERT: &str = "alipayCertPublicKey_RSA2.crt";
const ROOT_KEY: &str = "root_private_key.pem";
const INTERMEDIATE_CERT: &str = "intermediate.crt";
const INTERMEDIATE_KEY: &str = "intermediate_private_key.pem";

/// The app certificate file a merchant configures (the SDKs' `appCertPublicKey_<app id>.crt`).
pub fn app_cert_file(app_id: &AppId) -> String {
    format!("appCertPublicKey_{app_id}.crt")
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create the platform's certificate authority (a root and an intermediate) and a
    /// certificate of the platform's signing key; record them so the gateway serves
    /// certificate mode.
    Init(InitArgs),
    /// Issue a new certificate of the platform's signing key (same key, new SN): answers name
    /// it from now on, and clients holding the old one download it
    /// (alipay.open.app.alipaycert.download).
    Rotate(RotateArgs),
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// A new folder for the authority's keys and certificates (keep its private keys offline).
    #[arg(long)]
    pub ca_dir: PathBuf,
    /// The platform private key (default: the configuration's `platform_private_key`).
    #[arg(long)]
    pub platform_key: Option<PathBuf>,
    /// Organisation (O) in the certificates' names.
    #[arg(long, default_value = "Agreements")]
    pub organisation: String,
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The folder `ca init` made.
    #[arg(long)]
    pub ca_dir: PathBuf,
    /// The platform private key (default: the configuration's `platform_private_key`).
    #[arg(long)]
    pub platform_key: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Issue a certificate for an app (its public key, or the key of a CSR it signed) and write
    /// the three files its merchant configures.
    Issue(IssueArgs),
}

#[derive(Debug, clap::Args)]
#[group(id = "key_source", required = true, multiple = false)]
pub struct IssueArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The app id.
    #[arg(long)]
    pub app_id: String,
    /// The app's certificate request (PKCS #10 PEM, RSA ≥ 2048 bits, signed by its key).
    #[arg(long, group = "key_source")]
    pub csr: Option<PathBuf>,
    /// The app's public key (SPKI or PKCS#1 PEM, or bare base64).
    #[arg(long, group = "key_source")]
    pub public_key: Option<PathBuf>,
    /// The folder `ca init` made.
    #[arg(long)]
    pub ca_dir: PathBuf,
    /// Where to write the merchant's files (created if missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Validity in days.
    #[arg(long, default_value_t = 1825, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// Days the app's previous certificate (and, on its first certificate, its public keys)
    /// stay valid.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(0..=90))]
    pub overlap_days: u32,
    /// Keep serving the app's public keys too (no switch of mode: both are accepted).
    #[arg(long)]
    pub keep_keys: bool,
}

fn name<'a>(organisation: &'a str, common_name: &'a str) -> Name<'a> {
    Name {
        organisation,
        unit: "Certification Authority",
        common_name,
    }
}

fn platform_key(db: &DatabaseArgs, given: Option<&Path>) -> anyhow::Result<PrivateKey> {
    let path = match given {
        Some(path) => path.to_owned(),
        None => db.config()?.platform_private_key,
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the platform key {}", path.display()))?;
    PrivateKey::parse(&text).with_context(|| format!("reading {}", path.display()))
}

fn read_cert_chain(path: &Path) -> anyhow::Result<Vec<Certificate>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Certificate::parse_pem_chain(&pem).with_context(|| format!("reading {}", path.display()))
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PrivateKey::parse(&text).with_context(|| format!("reading {}", path.display()))
}

/// The intermediate authority of a `ca init` folder.
fn intermediate(ca_dir: &Path) -> anyhow::Result<Authority> {
    let cert = read_cert_chain(&ca_dir.join(INTERMEDIATE_CERT))?.remove(0);
    Ok(Authority::from_parts(
        cert,
        &read_key(&ca_dir.join(INTERMEDIATE_KEY))?,
    )?)
}

/// The record of a platform certificate, stamped after every earlier one (the newest signing
/// certificate signs, so two made within a second must still be ordered).
async fn record(
    store: &Store,
    cert: &Certificate,
    role: CertRole,
    chain_pem: String,
) -> anyhow::Result<PlatformCert> {
    let (not_before, not_after) = cert.validity()?;
    let latest = store
        .platform_certs()
        .await?
        .iter()
        .map(|c| c.created_at)
        .max()
        .unwrap_or(i64::MIN);
    Ok(PlatformCert {
        cert_sn: cert.sn(),
        role,
        chain_pem,
        not_before,
        not_after,
        created_at: crate::now().max(latest.saturating_add(1)),
    })
}

/// Issues a certificate of the platform key by `intermediate`, writes the chain file and records
/// it as the signing certificate.
async fn issue_platform(
    store: &Store,
    ca_dir: &Path,
    intermediate: &Authority,
    key: &PrivateKey,
    organisation: &str,
    replace: bool,
) -> anyhow::Result<String> {
    let leaf = intermediate.issue(
        &name(organisation, "Agreements Platform Signing"),
        &key.public_key()?,
        Role::Signer,
        crate::now() - 60,
        1825,
    )?;
    let chain = format!("{}{}", leaf.to_pem(), intermediate.certificate().to_pem());
    keygen::write(&ca_dir.join(PLATFORM_CERT), &chain, false, replace)?;
    let sn = leaf.sn();
    store
        .add_platform_cert(&record(store, &leaf, CertRole::Signing, chain).await?)
        .await?;
    Ok(sn)
}

/// `ca init`'s work, for the command and the demo: the authority in `ca_dir` (new), recorded in
/// `store`. Returns the root bundle's SN and the signing certificate's.
pub async fn init(
    store: &Store,
    ca_dir: &Path,
    key: &PrivateKey,
    organisation: &str,
) -> anyhow::Result<(String, String)> {
    anyhow::ensure!(
        !ca_dir.join(ROOT_BUNDLE).exists(),
        "{} already holds an authority",
        ca_dir.display()
    );
    std::fs::create_dir_all(ca_dir).with_context(|| format!("creating {}", ca_dir.display()))?;
    let now = crate::now() - 60;
    let root_key = PrivateKey::generate(2048)?;
    let root = Authority::root(
        &name(organisation, &format!("{organisation} Root CA")),
        &root_key,
        now,
        3650,
    )?;
    let intermediate_key = PrivateKey::generate(2048)?;
    let intermediate_cert = root.issue(
        &name(organisation, &format!("{organisation} Class 2 CA")),
        &intermediate_key.public_key()?,
        Role::Authority,
        now,
        3650,
    )?;
    keygen::write(
        &ca_dir.join(ROOT_KEY),
        &root_key.to_pkcs1_pem()?,
        true,
        false,
    )?;
    keygen::write(
        &ca_dir.join(INTERMEDIATE_KEY),
        &intermediate_key.to_pkcs1_pem()?,
        true,
        false,
    )?;
    let root_pem = root.certificate().to_pem();
    keygen::write(&ca_dir.join(ROOT_BUNDLE), &root_pem, false, false)?;
    keygen::write(
        &ca_dir.join(INTERMEDIATE_CERT),
        &intermediate_cert.to_pem(),
        false,
        false,
    )?;
    store
        .add_platform_cert(&record(store, root.certificate(), CertRole::Root, root_pem).await?)
        .await?;
    let intermediate = Authority::from_parts(intermediate_cert, &intermediate_key)?;
    let signing = issue_platform(store, ca_dir, &intermediate, key, organisation, false).await?;
    Ok((root.certificate().sn(), signing))
}

/// An app certificate to issue.
#[derive(Debug)]
pub struct AppIssue<'a> {
    /// The app.
    pub app_id: &'a AppId,
    /// Its public key.
    pub public_key: &'a PublicKey,
    /// Validity in days.
    pub days: u32,
    /// How long its earlier certificates (and keys, when switching) stay valid.
    pub overlap_days: u32,
    /// Keep its public keys valid (no switch of mode).
    pub keep_keys: bool,
    /// Where the merchant's files go.
    pub out: &'a Path,
}

/// `app cert issue`'s work, for the command and the demo: the certificate, recorded, and the
/// merchant's three files in `out`. Returns the certificate's SN.
pub async fn issue_app(
    store: &Store,
    ca_dir: &Path,
    issue: &AppIssue<'_>,
) -> anyhow::Result<String> {
    let AppIssue {
        app_id,
        public_key,
        days,
        overlap_days,
        keep_keys,
        out,
    } = *issue;
    anyhow::ensure!(
        store.app(app_id).await?.is_some(),
        "app {app_id} does not exist"
    );
    let intermediate = intermediate(ca_dir)?;
    let organisation = "Agreements";
    let now = crate::now();
    let cert = intermediate.issue(
        &name(organisation, app_id.as_str()),
        public_key,
        Role::Signer,
        now - 60,
        days,
    )?;
    let (not_before, not_after) = cert.validity()?;
    let sn = cert.sn();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    keygen::write(
        &out.join(app_cert_file(app_id)),
        &cert.to_pem(),
        false,
        true,
    )?;
    for file in [ROOT_BUNDLE, PLATFORM_CERT] {
        let text = std::fs::read_to_string(ca_dir.join(file))
            .with_context(|| format!("reading {}", ca_dir.join(file).display()))?;
        if ca_dir.join(file) != out.join(file) {
            keygen::write(&out.join(file), &text, false, true)?;
        }
    }
    let overlap_end = now + i64::from(overlap_days) * 86_400;
    store
        .add_app_cert(
            &AppCert {
                app_id: app_id.clone(),
                cert_sn: sn.clone(),
                cert_pem: cert.to_pem(),
                not_before,
                not_after,
                created_at: now,
                retired_at: None,
            },
            overlap_end,
            (!keep_keys).then_some(overlap_end),
        )
        .await?;
    Ok(sn)
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => {
            let key = platform_key(&args.db, args.platform_key.as_deref())?;
            let store = args.db.open().await?;
            let (root, signing) = init(&store, &args.ca_dir, &key, &args.organisation).await?;
            super::print(&format!(
                "created the platform authority in {dir}\n\
                 root bundle             {dir}/{ROOT_BUNDLE}  (alipay_root_cert_sn {root})\n\
                 platform certificate    {dir}/{PLATFORM_CERT}  (alipay_cert_sn {signing})\n\
                 keep {ROOT_KEY} and {INTERMEDIATE_KEY} offline; `agreements app cert issue` needs the intermediate's\n",
                dir = args.ca_dir.display(),
            ))
        }
        Command::Rotate(args) => {
            let key = platform_key(&args.db, args.platform_key.as_deref())?;
            let store = args.db.open().await?;
            let intermediate = intermediate(&args.ca_dir)?;
            let sn = issue_platform(
                &store,
                &args.ca_dir,
                &intermediate,
                &key,
                "Agreements",
                true,
            )
            .await?;
            super::print(&format!(
                "issued a new platform certificate (alipay_cert_sn {sn}), written to {}; running gateways name it within 5 s\n",
                args.ca_dir.join(PLATFORM_CERT).display()
            ))
        }
    }
}

pub async fn run_cert(command: CertCommand) -> anyhow::Result<()> {
    let CertCommand::Issue(args) = command;
    let app_id = AppId::parse(&args.app_id).map_err(|e| anyhow::anyhow!("--app-id {e}"))?;
    let public_key = match (&args.csr, &args.public_key) {
        (Some(csr), _) => {
            let pem = std::fs::read(csr).with_context(|| format!("reading {}", csr.display()))?;
            public_key_of_request(&pem).map_err(|e| anyhow::anyhow!("--csr: {e}"))?
        }
        (None, Some(path)) => {
            let key = PublicKey::parse(&std::fs::read_to_string(path)?)
                .with_context(|| format!("reading {}", path.display()))?;
            let bits = key.bits();
            anyhow::ensure!(
                bits >= 2048,
                "--public-key: the key must be RSA of at least 2048 bits (it has {bits})"
            );
            key
        }
        (None, None) => anyhow::bail!("give --csr or --public-key"),
    };
    let store = args.db.open().await?;
    let sn = issue_app(
        &store,
        &args.ca_dir,
        &AppIssue {
            app_id: &app_id,
            public_key: &public_key,
            days: args.days,
            overlap_days: args.overlap_days,
            keep_keys: args.keep_keys,
            out: &args.out,
        },
    )
    .await?;
    let out = args.out.display();
    super::print(&format!(
        "issued app certificate {sn} for app {app_id}; hand the merchant:\n\
         app certificate         {out}/{app}  (app_cert_sn {sn})\n\
         platform certificate    {out}/{PLATFORM_CERT}\n\
         root bundle             {out}/{ROOT_BUNDLE}\n\
         with the app private key it already holds. {mode}\n",
        app = app_cert_file(&app_id),
        mode = if args.keep_keys {
            "Its public keys stay valid too.".to_owned()
        } else {
            format!(
                "Its earlier certificates and public keys stay valid for {} days.",
                args.overlap_days
            )
        },
    ))
}
