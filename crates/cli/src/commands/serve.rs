//! `agreements serve`: the gateway, configured by file and environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agreements_protocol::PrivateKey;
use agreements_server::clock::SystemClock;
use agreements_server::config::Config;
use agreements_server::{Gateway, Limits, router, serve, shutdown_signal, telemetry};
use agreements_store::Store;
use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (TOML); see `agreements default-config`.
    #[arg(long, env = "AGREEMENTS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on; overrides the configuration.
    #[arg(long)]
    pub listen: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    telemetry::init(config.log_format, &config.log_filter);
    start(&config, |_| {}).await
}

/// Opens the store and the key, binds, calls `on_ready` with the bound address, and serves until
/// SIGINT/SIGTERM.
pub async fn start(config: &Config, on_ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    let store = Store::open_sqlite(&config.database)
        .with_context(|| format!("opening {}", config.database.display()))?;
    let key_path = &config.platform_private_key;
    let key_text = std::fs::read_to_string(key_path)
        .with_context(|| format!("reading the platform key {}", key_path.display()))?;
    let key = PrivateKey::parse(&key_text)
        .with_context(|| format!("reading the platform key {}", key_path.display()))?;
    let limits = Limits {
        timestamp_window: config.timestamp_window(),
        max_body_bytes: config.max_body_bytes,
    };
    let gateway = Gateway::new(Arc::new(store), key, Arc::new(SystemClock), limits);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %config.database.display(), "serving /gateway.do");
    on_ready(addr);
    serve(
        listener,
        router(Arc::new(gateway), config.request_timeout()),
        shutdown_signal(),
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}
