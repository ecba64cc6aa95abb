//! `agreements call`: one signed call (or a burst of them), response signature verified.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use agreements_client::{CertMode, Client, ClientConfig};
use agreements_protocol::aes::{ContentKey, EncryptType};
use agreements_protocol::{Charset, PrivateKey, PublicKey, SignType};
use anyhow::Context as _;

use crate::terminal::Field;

/// Who calls which gateway: shared by `call` and `bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The gateway URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/gateway.do")]
    pub gateway: String,
    /// The calling app.
    #[arg(long)]
    pub app_id: String,
    /// The app's private key file (PKCS#1 or PKCS#8, PEM or bare base64).
    #[arg(long)]
    pub app_key: PathBuf,
    /// The platform public key file that verifies responses (not needed in certificate mode).
    #[arg(long, required_unless_present = "app_cert")]
    pub platform_key: Option<PathBuf>,
    /// The app's AES content key file: biz_content is sent encrypted and encrypted answers are
    /// opened (after their signature verifies).
    #[arg(long)]
    pub aes_key: Option<PathBuf>,
    /// With --aes-key: AES (zero IV) or AES_V2 (random IV).
    #[arg(long, default_value = "AES", requires = "aes_key")]
    pub encrypt_type: String,
    /// Certificate mode: the app's certificate (appCertPublicKey_<app id>.crt); with
    /// --platform-cert and --root-cert, which then replace --platform-key.
    #[arg(long, requires_all = ["platform_cert", "root_cert"])]
    pub app_cert: Option<PathBuf>,
    /// Certificate mode: the platform certificate (alipayCertPublicKey_RSA2.crt).
    #[arg(long, requires = "app_cert")]
    pub platform_cert: Option<PathBuf>,
    /// Certificate mode: the root bundle (alipayRootCert.crt).
    #[arg(long, requires = "app_cert")]
    pub root_cert: Option<PathBuf>,
}

impl ClientArgs {
    /// A client signing by `sign_type` in `charset`.
    pub fn client(&self, sign_type: SignType, charset: Charset) -> anyhow::Result<Client> {
        let (platform_public_key, cert) =
            match (&self.app_cert, &self.platform_cert, &self.root_cert) {
                (Some(app), Some(platform), Some(root)) => {
                    let bytes = |p: &PathBuf| {
                        std::fs::read(p).with_context(|| format!("reading {}", p.display()))
                    };
                    let (mode, key) =
                        CertMode::from_files(&bytes(app)?, &bytes(platform)?, &bytes(root)?)
                            .context("certificate mode")?;
                    (key, Some(mode))
                }
                _ => {
                    let path = self
                        .platform_key
                        .as_ref()
                        .context("--platform-key is required")?;
                    (
                        PublicKey::parse(&read(path)?).context("--platform-key")?,
                        None,
                    )
                }
            };
        Ok(Client::new(ClientConfig {
            gateway_url: self.gateway.clone(),
            app_id: self.app_id.clone(),
            app_private_key: PrivateKey::parse(&read(&self.app_key)?).context("--app-key")?,
            platform_public_key,
            sign_type,
            charset,
            encryption: self.encryption()?,
            cert,
        })?)
    }

    fn encryption(&self) -> anyhow::Result<Option<(EncryptType, ContentKey)>> {
        let Some(path) = &self.aes_key else {
            return Ok(None);
        };
        let key = ContentKey::parse(read(path)?.trim()).context("--aes-key")?;
        let encrypt_type = EncryptType::parse(&self.encrypt_type).with_context(|| {
            format!(
                "--encrypt-type {:?} is not AES or AES_V2",
                self.encrypt_type
            )
        })?;
        Ok(Some((encrypt_type, key)))
    }
}

/// A file's text, with its name in the error.
pub fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The method, e.g. alipay.user.agreement.batch.query.
    pub method: String,
    /// biz_content, sent exactly as given.
    #[arg(
        long,
        required_unless_present = "biz_file",
        conflicts_with = "biz_file"
    )]
    pub biz: Option<String>,
    /// A file of biz_contents, one per line: each line is sent once (with --concurrency calls in
    /// flight), and the answers are counted by code and sub_code.
    #[arg(long)]
    pub biz_file: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
    /// RSA2 or RSA.
    #[arg(long, default_value = "RSA2")]
    pub sign_type: String,
    /// utf-8 or GBK.
    #[arg(long, default_value = "utf-8")]
    pub charset: String,
    /// Send the call this many times and report the rate instead of the node.
    #[arg(long, default_value_t = 1)]
    pub repeat: u64,
    /// Calls in flight at once with --repeat or --biz-file.
    #[arg(long, default_value_t = 1)]
    pub concurrency: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.client.client(
        SignType::parse(&args.sign_type)
            .ok_or_else(|| anyhow::anyhow!("--sign-type must be RSA2 or RSA"))?,
        Charset::from_label(args.charset.as_bytes())
            .map_err(|_| anyhow::anyhow!("--charset must be utf-8 or GBK"))?,
    )?;
    let (bizs, total) = match (&args.biz_file, &args.biz) {
        (Some(file), _) => {
            let lines: Vec<String> = read(file)?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect();
            let total = lines.len() as u64;
            (lines, total)
        }
        (None, biz) => (vec![biz.clone().unwrap_or_default()], args.repeat),
    };
    if args.biz_file.is_none() && args.repeat <= 1 {
        let answer = client.execute(&args.method, &bizs[0]).await?;
        let mut wrapped = serde_json::Map::new();
        wrapped.insert(
            answer.node_name.clone(),
            serde_json::Value::Object(answer.node),
        );
        let key = match (&args.client.platform_key, &args.client.platform_cert) {
            (_, Some(cert)) => format!("the key of {}", cert.display()),
            (Some(key), None) => key.display().to_string(),
            (None, None) => "the platform key".to_owned(),
        };
        eprintln!("response signature verified with {key}");
        return super::print(&format!("{}\n", serde_json::to_string_pretty(&wrapped)?));
    }
    burst(Arc::new(client), &args, Arc::new(bizs), total).await
}

/// Sends `total` calls, the i-th with `bizs[i % len]`, `--concurrency` at a time; prints the rate
/// and the answers by code.
async fn burst(
    client: Arc<Client>,
    args: &Args,
    bizs: Arc<Vec<String>>,
    total: u64,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (client, bizs, next) = (client.clone(), bizs.clone(), next.clone());
            let method = args.method.clone();
            tokio::spawn(async move {
                let mut answers: BTreeMap<String, u64> = BTreeMap::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let biz = usize::try_from(i)
                        .ok()
                        .and_then(|i| bizs.get(i % bizs.len().max(1)));
                    let Some(biz) = biz.filter(|_| i < total) else {
                        break;
                    };
                    let key = match client.execute(&method, biz).await {
                        Ok(answer) => answer.outcome(),
                        Err(e) => format!("failed: {e}"),
                    };
                    *answers.entry(key).or_default() += 1;
                }
                answers
            })
        })
        .collect();
    let mut answers: BTreeMap<String, u64> = BTreeMap::new();
    for worker in workers {
        for (key, n) in worker.await? {
            *answers.entry(key).or_default() += n;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut out = format!(
        "{total} calls in {elapsed:.2} s: {:.0} calls/s (each signed, sent and its response verified)\n",
        total as f64 / elapsed
    );
    for (key, n) in answers {
        out.push_str(&format!("{n:>10}  {}\n", Field(&key)));
    }
    super::print(&out)
}
