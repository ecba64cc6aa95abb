//! `agreements serve`: the gateway, configured by file and environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agreements_domain::clock::SystemClock;
use agreements_protocol::PrivateKey;
use agreements_server::config::Config;
use agreements_server::notify::Deliverer;
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
    pub listen: Option<SocketAddr>,
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
    let clock = Arc::new(SystemClock);
    let store = Store::open_with(
        config.database.expose(),
        config.store_options(clock.clone()),
    )
    .await
    .with_context(|| format!("opening {}", config.database))?;
    let key_path = &config.platform_private_key;
    let key_text = std::fs::read_to_string(key_path)
        .with_context(|| format!("reading the platform key {}", key_path.display()))?;
    let key = PrivateKey::parse(&key_text)
        .with_context(|| format!("reading the platform key {}", key_path.display()))?;
    let store_backend = store.backend();
    let limits = Limits {
        timestamp_window: config.timestamp_window(),
        max_body_bytes: config.max_body_bytes,
    };
    let store = Arc::new(store);
    let gateway = Gateway::new(store.clone(), key.clone(), clock.clone(), limits)
        .with_notify_policy(config.notify_policy())
        .with_web(config.web())
        .with_rate_limits(
            agreements_server::rates::RateLimits::new(&config.rate_limits)
                .map_err(anyhow::Error::msg)?,
        )
        .with_signature_cache(
            u64::from(config.signature_cache_mib) << 20,
            config.signature_cache,
        );
    let (audit_stop, audit_stopped) = tokio::sync::oneshot::channel::<()>();
    let (gateway, audit) = if config.audit {
        let (trail, writer) =
            agreements_server::audit::AuditTrail::start(store.clone(), gateway.metrics().clone());
        let writer = writer
            .spawn(async move {
                let _ = audit_stopped.await;
            })
            .context("starting the audit writer")?;
        (gateway.with_audit(trail), Some(writer))
    } else {
        tracing::warn!(
            "the audit trail is off (audit = false): reads of agreements are not recorded"
        );
        (gateway, None)
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let delivery = match config.delivery() {
        Some(settings) => {
            let deliverer = Deliverer::new(
                store,
                key,
                clock,
                settings,
                gateway.outbox().clone(),
                config.notify_policy(),
            )
            .context("starting notification delivery")?
            .with_metrics(gateway.metrics().clone());
            let mut stopped = stopped.clone();
            tracing::info!(
                concurrency = settings.concurrency,
                timeout_ms = config.notify_timeout_ms,
                "delivering notifications"
            );
            Some(tokio::spawn(deliverer.run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })))
        }
        None => {
            tracing::info!("notification delivery is off in this process (notify_concurrency = 0)");
            None
        }
    };
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %config.database, backend = store_backend, "serving /gateway.do");
    on_ready(addr);
    let metrics = gateway.metrics().clone();
    serve(
        listener,
        router(Arc::new(gateway), config.request_timeout()),
        async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        },
        config.connection_limits(),
        metrics,
    )
    .await?;
    // Every request has been answered: the audit writer writes what is queued, then stops.
    let _ = audit_stop.send(());
    if let Some(audit) = audit {
        audit.await;
    }
    if let Some(delivery) = delivery {
        // Sends in flight finish (each is bounded by notify_timeout_ms); the rest wait in the
        // outbox for the next start.
        let _ = delivery.await;
    }
    tracing::info!("stopped");
    Ok(())
}
