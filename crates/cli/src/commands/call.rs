//! `agreements call`: one signed call (or a burst of them), response signature verified.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use agreements_client::{Client, ClientConfig};
use agreements_protocol::{Charset, PrivateKey, PublicKey, SignType};
use anyhow::Context as _;

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
    /// The gateway URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/gateway.do")]
    pub gateway: String,
    /// The calling app.
    #[arg(long)]
    pub app_id: String,
    /// The app's private key file (PKCS#1 or PKCS#8, PEM or bare base64).
    #[arg(long)]
    pub app_key: PathBuf,
    /// The platform public key file that verifies responses.
    #[arg(long)]
    pub platform_key: PathBuf,
    /// RSA2 or RSA.
    #[arg(long, default_value = "RSA2")]
    pub sign_type: String,
    /// utf-8 or GBK.
    #[arg(long, default_value = "utf-8")]
    pub charset: String,
    /// Send the call this many times and report the rate instead of the node.
    #[arg(long, default_value_t = 1)]
    pub repeat: u64,
    /// Calls in flight at once with --repeat.
    #[arg(long, default_value_t = 1)]
    pub concurrency: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let config = ClientConfig {
        gateway_url: args.gateway.clone(),
        app_id: args.app_id.clone(),
        app_private_key: PrivateKey::parse(&read(&args.app_key)?).context("--app-key")?,
        platform_public_key: PublicKey::parse(&read(&args.platform_key)?)
            .context("--platform-key")?,
        sign_type: SignType::parse(&args.sign_type)
            .ok_or_else(|| anyhow::anyhow!("--sign-type must be RSA2 or RSA"))?,
        charset: Charset::from_label(args.charset.as_bytes())
            .map_err(|_| anyhow::anyhow!("--charset must be utf-8 or GBK"))?,
    };
    let client = Client::new(config)?;
    if let Some(file) = &args.biz_file {
        let lines: Vec<String> = read(file)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        return each_line(Arc::new(client), &args, lines).await;
    }
    let biz = args.biz.clone().unwrap_or_default();
    if args.repeat <= 1 {
        let answer = client.execute(&args.method, &biz).await?;
        let mut wrapped = serde_json::Map::new();
        wrapped.insert(
            answer.node_name.clone(),
            serde_json::Value::Object(answer.node),
        );
        eprintln!(
            "response signature verified with {}",
            args.platform_key.display()
        );
        return super::print(&format!("{}\n", serde_json::to_string_pretty(&wrapped)?));
    }
    let (client, args) = (Arc::new(client), Arc::new(args));
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (client, args, next, failures) =
                (client.clone(), args.clone(), next.clone(), failures.clone());
            tokio::spawn(async move {
                let biz = args.biz.clone().unwrap_or_default();
                while next.fetch_add(1, Ordering::Relaxed) < args.repeat {
                    if client.execute(&args.method, &biz).await.is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    super::print(&format!(
        "{} calls in {elapsed:.2} s: {:.0} calls/s, {failed} failed (each signed, sent and its response verified)\n",
        args.repeat,
        args.repeat as f64 / elapsed
    ))
}

/// Sends each line once, `--concurrency` at a time; prints the rate and the answers by code.
async fn each_line(client: Arc<Client>, args: &Args, lines: Vec<String>) -> anyhow::Result<()> {
    let total = lines.len();
    let lines = Arc::new(lines);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (client, lines, next) = (client.clone(), lines.clone(), next.clone());
            let method = args.method.clone();
            tokio::spawn(async move {
                let mut answers: BTreeMap<String, u64> = BTreeMap::new();
                loop {
                    let i =
                        usize::try_from(next.fetch_add(1, Ordering::Relaxed)).unwrap_or(usize::MAX);
                    let Some(biz) = lines.get(i) else { break };
                    let key = match client.execute(&method, biz).await {
                        Ok(answer) => match answer.sub_code() {
                            Some(sub) => format!("{} {sub}", answer.code()),
                            None => answer.code().to_owned(),
                        },
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
        out.push_str(&format!("{n:>10}  {key}\n"));
    }
    super::print(&out)
}
