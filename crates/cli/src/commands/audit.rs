//! `agreements audit`: who read or changed whose agreements (the read-access audit trail), and
//! `agreements audit prune`, which deletes entries older than the retention.

use agreements_domain::ids::{LogonId, UserId};
use agreements_protocol::timestamp::{format_beijing, parse_beijing};
use agreements_store::{AuditEntry, AuditFilter, Store};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::DatabaseArgs;
use crate::terminal::Field;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub prune: Option<Command>,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Entries about this person: an account's user id (2088…) or logon id; every account of
    /// the person is included.
    #[arg(long)]
    pub person: Option<String>,
    /// Entries of this calling app.
    #[arg(long)]
    pub app: Option<String>,
    /// From this Beijing time on (`yyyy-MM-dd` or `yyyy-MM-dd HH:mm:ss`).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this Beijing time (`yyyy-MM-dd` or `yyyy-MM-dd HH:mm:ss`).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many entries, oldest first.
    #[arg(long, default_value_t = 1_000)]
    pub limit: u32,
    /// One JSON object per entry instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Delete entries older than the retention (`audit_retention_days`), or than --before.
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Delete entries before this Beijing time instead (`yyyy-MM-dd` or `yyyy-MM-dd HH:mm:ss`).
    #[arg(long)]
    pub before: Option<String>,
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(args: Args, now: i64) -> anyhow::Result<()> {
    if let Some(Command::Prune(prune_args)) = args.prune {
        return prune(prune_args, now).await;
    }
    anyhow::ensure!(
        args.person.is_some() || args.app.is_some(),
        "name whose entries to list: --person USER_ID_OR_LOGON_ID and/or --app APP_ID"
    );
    let store = args.db.open().await?;
    let users = match &args.person {
        Some(person) => Some(accounts(&store, person).await?),
        None => None,
    };
    let since_ms = time_arg("--since", args.since.as_deref())?.unwrap_or(0) * 1000;
    let until_ms = time_arg("--until", args.until.as_deref())?.map_or(i64::MAX, |t| t * 1000);
    let entries = store
        .audit(&AuditFilter {
            user_ids: users.as_deref(),
            app_id: args.app.as_deref(),
            since_ms,
            until_ms,
            limit: args.limit,
        })
        .await?;
    let mut out = String::new();
    if !args.json {
        out.push_str(
            "time (Beijing)           channel method                                       app              merchant         person           returned  outcome  asked\n",
        );
    }
    for e in &entries {
        if args.json {
            out.push_str(&format!("{}\n", json(e)));
        } else {
            out.push_str(&line(e));
        }
    }
    super::print(&out)?;
    if entries.len() >= args.limit as usize {
        eprintln!(
            "note: the first {} entries are shown; narrow with --since/--until or raise --limit",
            args.limit
        );
    }
    Ok(())
}

/// Every account of the person `person` names (a user id, or a logon id).
async fn accounts(store: &Store, person: &str) -> anyhow::Result<Vec<String>> {
    let user = match UserId::parse(person) {
        Ok(user) => Some(user),
        Err(_) => {
            let logon = LogonId::parse(person).map_err(|e| {
                anyhow::anyhow!("--person: not a user id (2088…) nor a logon id: {e}")
            })?;
            store.account_by_logon_id(&logon).await?.map(|r| r.user_id)
        }
    };
    let Some(user) = user else {
        anyhow::bail!("--person: no such account");
    };
    let accounts = store.accounts_of_person(&user).await?;
    anyhow::ensure!(!accounts.is_empty(), "--person: no such account");
    Ok(accounts.iter().map(|u| u.as_str().to_owned()).collect())
}

/// A Beijing date or time as Unix seconds.
fn time_arg(flag: &str, text: Option<&str>) -> anyhow::Result<Option<i64>> {
    let Some(text) = text else { return Ok(None) };
    let full = if text.len() == 10 {
        format!("{text} 00:00:00")
    } else {
        text.to_owned()
    };
    parse_beijing(&full).map(Some).ok_or_else(|| {
        anyhow::anyhow!(
            "{flag}: expected yyyy-MM-dd or yyyy-MM-dd HH:mm:ss (Beijing time), got {text:?}"
        )
    })
}

/// Beijing time with milliseconds.
fn shown_time(at_ms: i64) -> String {
    format!(
        "{}.{:03}",
        format_beijing(at_ms.div_euclid(1000)),
        at_ms.rem_euclid(1000)
    )
}

fn json(e: &AuditEntry) -> serde_json::Value {
    serde_json::json!({
        "at": shown_time(e.at_ms),
        "at_ms": e.at_ms,
        "channel": e.channel,
        "method": e.method,
        "app_id": e.app_id,
        "partner_id": e.partner_id,
        "isv_app_id": e.isv_app_id,
        "token_suffix": e.token_suffix,
        "user_id": e.user_id,
        "asked": e.asked,
        "returned": e.returned,
        "agreement_nos": e.agreement_nos.split_whitespace().collect::<Vec<_>>(),
        "code": e.code,
        "sub_code": e.sub_code,
    })
}

fn line(e: &AuditEntry) -> String {
    let outcome = match &e.sub_code {
        Some(sub) => format!("{} {sub}", e.code),
        None => e.code.clone(),
    };
    let merchant = match (&e.partner_id, &e.token_suffix) {
        (Some(p), Some(t)) => format!("{p} (token …{t})"),
        (Some(p), None) => p.clone(),
        (None, _) => "-".into(),
    };
    format!(
        "{}  {:<7} {:<44} {:<16} {:<16} {:<16} {:<9} {:<8} {}{}\n",
        shown_time(e.at_ms),
        e.channel,
        Field(&e.method),
        Field(e.app_id.as_deref().unwrap_or("-")),
        Field(&merchant),
        Field(e.user_id.as_deref().unwrap_or("-")),
        e.returned,
        Field(&outcome),
        Field(e.asked.as_deref().unwrap_or("-")),
        if e.agreement_nos.is_empty() {
            String::new()
        } else {
            format!(" → {}", Field(&e.agreement_nos))
        },
    )
}

async fn prune(args: PruneArgs, now: i64) -> anyhow::Result<()> {
    let before = match time_arg("--before", args.before.as_deref())? {
        Some(t) => t,
        None => {
            let days = i64::from(args.db.config()?.audit_retention_days);
            now - days * 86_400
        }
    };
    let before_ms = before * 1000;
    let store = args.db.open().await?;
    let older = store.audit_older_than(before_ms).await?;
    let when = format_beijing(before);
    if args.dry_run {
        return super::print(&format!("{older} audit entries are older than {when}\n"));
    }
    let bar = ProgressBar::with_draw_target(Some(older), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("pruning {bar:40} {pos}/{len} entries ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let deleted = store
        .prune_audit(before_ms, |n| bar.set_position(n))
        .await?;
    bar.finish_and_clear();
    super::print(&format!(
        "deleted {deleted} audit entries older than {when}\n"
    ))
}
