//! `agreements history`: an agreement's changes, with their actors and reasons.

use agreements_domain::AgreementStatus;
use agreements_domain::ids::AgreementNo;
use agreements_protocol::timestamp::format_beijing;

use super::world::arg;
use crate::DatabaseArgs;
use crate::terminal::Field;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The agreement.
    pub agreement_no: String,
    /// One JSON object per event instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let no = arg("AGREEMENT_NO", &args.agreement_no, AgreementNo::parse)?;
    let store = args.db.open().await?;
    let events = store.history(&no).await?;
    anyhow::ensure!(
        !events.is_empty(),
        "agreement {no} has no history (no such agreement?)"
    );
    let mut out = String::new();
    if !args.json {
        out.push_str("seq  time (Beijing)       kind    status            actor / reason\n");
    }
    for e in &events {
        if args.json {
            let line = serde_json::json!({
                "agreement_no": no.as_str(),
                "seq": e.seq,
                "kind": e.kind.as_str(),
                "old_status": e.old_status.map(AgreementStatus::as_str),
                "new_status": e.new_status.as_str(),
                "actor": e.actor,
                "reason": e.reason,
                "at": format_beijing(e.at),
            });
            out.push_str(&format!("{line}\n"));
        } else {
            let change = format!(
                "{} → {}",
                e.old_status.map_or("-", AgreementStatus::as_str),
                e.new_status
            );
            let reason = e
                .reason
                .as_deref()
                .map(|r| format!(" ({})", Field(r)))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<4} {}  {:<7} {:<17} {}{reason}\n",
                e.seq,
                format_beijing(e.at),
                e.kind,
                change,
                Field(&e.actor)
            ));
        }
    }
    super::print(&out)
}
