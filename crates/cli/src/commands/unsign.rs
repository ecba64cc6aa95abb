//! `agreements unsign`: an operator cancels an agreement; its signing app is notified.

use agreements_domain::ids::{AgreementNo, AppId};
use agreements_domain::unsign::Actor;
use agreements_server::cancel::{Cancellation, cancel};
use agreements_store::UnsignOutcome;

use super::world::arg;
use crate::DatabaseArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The agreement to cancel.
    pub agreement_no: String,
    /// Who cancels it (recorded in the history as `operator NAME`).
    #[arg(long)]
    pub operator: String,
    /// Why (recorded in the history).
    #[arg(long)]
    pub reason: Option<String>,
}

pub async fn run(args: Args, now: i64) -> anyhow::Result<()> {
    let no = arg("AGREEMENT_NO", &args.agreement_no, AgreementNo::parse)?;
    let operator = args.operator.trim();
    anyhow::ensure!(
        !operator.is_empty()
            && operator.chars().count() <= 64
            && !operator.chars().any(char::is_control),
        "--operator must be a name of 1 to 64 printable characters"
    );
    let store = args.db.open().await?;
    // Any app id will do: only the agreement is read, not an open id.
    let any_app = AppId::parse("0").map_err(anyhow::Error::msg)?;
    let found = store
        .agreement_by_no(&no, &any_app)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no agreement {no}"))?;
    let actor = Actor::Operator(operator.to_owned());
    let (outcome, queued) = cancel(
        &store,
        &Cancellation {
            agreement: &found.agreement,
            actor: &actor,
            reason: args.reason.as_deref(),
            also_notify: None,
            now,
            policy: &args.db.config()?.notify_policy(),
        },
    )
    .await?;
    match outcome {
        UnsignOutcome::Unsigned { old_status } => super::print(&format!(
            "cancelled {no} ({old_status} → UNSIGN); {queued} notification(s) queued\n"
        )),
        UnsignOutcome::AlreadyUnsigned => {
            super::print(&format!("{no} was already cancelled; nothing changed\n"))
        }
        UnsignOutcome::NotFound => anyhow::bail!("no agreement {no}"),
    }
}
