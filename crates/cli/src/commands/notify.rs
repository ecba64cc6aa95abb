//! `agreements notify list|resend|receive`: the notification outbox for operators, and a
//! verifying receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agreements_domain::ids::AgreementNo;
use agreements_domain::notify::DeliveryState;
use agreements_protocol::timestamp::format_beijing;
use agreements_protocol::{PublicKey, SignType, form, sign_content};
use agreements_store::{NotificationFilter, Resend};
use anyhow::Context as _;

use super::world::arg;
use crate::DatabaseArgs;
use crate::terminal::Field;

#[derive(Debug, clap::Subcommand)]
pub enum NotifyCommand {
    /// List notifications, oldest first.
    List {
        #[command(flatten)]
        db: DatabaseArgs,
        /// Only `pending`, `delivered` or `failed` ones.
        #[arg(long)]
        state: Option<String>,
        /// Only those about this agreement.
        #[arg(long)]
        agreement_no: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Send notifications again (due at once, with a fresh retry schedule); a running server
    /// picks them up within its notify_poll_ms.
    Resend {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The notify_ids to send again.
        #[arg(required_unless_present = "all_failed")]
        notify_ids: Vec<String>,
        /// Every failed notification.
        #[arg(long, conflicts_with = "notify_ids")]
        all_failed: bool,
    },
    /// Run a notification receiver (for trying a setup out, and for load tests): verifies each
    /// notification with the platform public key, answers `success` when it verifies, prints one
    /// line per notification.
    Receive {
        /// Address to listen on; notifications are accepted on any path.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        /// The platform public key that verifies notifications.
        #[arg(long)]
        platform_key: std::path::PathBuf,
        /// Print a count every 5 seconds instead of a line per notification.
        #[arg(long, short)]
        quiet: bool,
    },
}

pub async fn notify(command: NotifyCommand, now: i64) -> anyhow::Result<()> {
    match command {
        NotifyCommand::List {
            db,
            state,
            agreement_no,
            limit,
        } => {
            let state = state
                .map(|s| {
                    DeliveryState::parse(&s).ok_or_else(|| {
                        anyhow::anyhow!("--state must be pending, delivered or failed")
                    })
                })
                .transpose()?;
            let agreement_no = agreement_no
                .map(|no| arg("--agreement-no", &no, AgreementNo::parse))
                .transpose()?;
            let store = db.open().await?;
            let list = store
                .notifications(&NotificationFilter {
                    state,
                    agreement_no: agreement_no.as_ref(),
                    limit,
                })
                .await?;
            let mut out = String::from(
                "notify_id                           state      sends  when (Beijing)       agreement_no          url / last error\n",
            );
            for n in &list {
                let when = match n.state {
                    DeliveryState::Delivered => n.delivered_at,
                    DeliveryState::Pending => Some(n.next_attempt_at),
                    DeliveryState::Failed => n.last_attempt_at,
                }
                .map(format_beijing)
                .unwrap_or_default();
                let error = n
                    .last_error
                    .as_deref()
                    .map(|e| format!("  [{}]", Field(e)))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{:<35} {:<10} {:<6} {:<20} {:<21} {}{error}\n",
                    n.notify_id,
                    n.state.as_str(),
                    n.attempts,
                    when,
                    n.agreement_no,
                    Field(&n.url)
                ));
            }
            super::print(&out)
        }
        NotifyCommand::Resend {
            db,
            notify_ids,
            all_failed,
        } => {
            let store = db.open().await?;
            let which = if all_failed {
                Resend::AllFailed
            } else {
                Resend::Ids(&notify_ids)
            };
            let n = store.resend(which, now).await?;
            if !all_failed && n < notify_ids.len() as u64 {
                anyhow::bail!(
                    "{n} of {} notifications queued again; the others do not exist",
                    notify_ids.len()
                );
            }
            super::print(&format!("{n} notification(s) queued again\n"))
        }
        NotifyCommand::Receive {
            listen,
            platform_key,
            quiet,
        } => receive(&listen, &platform_key, quiet).await,
    }
}

/// Counts of a receiver's notifications.
#[derive(Debug, Default)]
struct Received {
    verified: AtomicU64,
    refused: AtomicU64,
    quiet: bool,
}

async fn receive(listen: &str, key: &std::path::Path, quiet: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
    let key = Arc::new(PublicKey::parse(&text).context("--platform-key")?);
    let counts = Arc::new(Received {
        quiet,
        ..Received::default()
    });
    let handler = {
        let (key, counts) = (key.clone(), counts.clone());
        move |body: axum::body::Bytes| {
            let (key, counts) = (key.clone(), counts.clone());
            async move { check(&body, &key, &counts) }
        }
    };
    let router = axum::Router::new()
        .fallback(axum::routing::post(handler))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!(
        "receiving notifications at http://{}/ (Ctrl-C to stop)",
        listener.local_addr()?
    );
    if quiet {
        let counts = counts.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "{} verified, {} refused",
                    counts.verified.load(Ordering::Relaxed),
                    counts.refused.load(Ordering::Relaxed)
                );
            }
        });
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(agreements_server::shutdown_signal())
        .await?;
    super::print(&format!(
        "{} verified, {} refused\n",
        counts.verified.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed)
    ))
}

/// Verifies one notification body; `success` when it verifies.
fn check(
    body: &[u8],
    key: &PublicKey,
    counts: &Received,
) -> (axum::http::StatusCode, &'static str) {
    let params: Vec<(String, String)> = form::parse_urlencoded(body)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            (
                String::from_utf8_lossy(&p.name).into_owned(),
                String::from_utf8_lossy(&p.value).into_owned(),
            )
        })
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let content = sign_content::notification(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let verified = SignType::parse(get("sign_type"))
        .is_some_and(|t| key.verify(t, content.as_bytes(), get("sign")));
    let counter = if verified {
        &counts.verified
    } else {
        &counts.refused
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if !counts.quiet {
        let _ = super::print(&format!(
            "{} {} {} {} {}\n",
            if verified { "verified" } else { "REFUSED " },
            Field(get("notify_id")),
            Field(get("notify_type")),
            Field(get("agreement_no")),
            Field(get("status"))
        ));
    }
    if verified {
        (axum::http::StatusCode::OK, "success")
    } else {
        (
            axum::http::StatusCode::BAD_REQUEST,
            "signature does not verify",
        )
    }
}
