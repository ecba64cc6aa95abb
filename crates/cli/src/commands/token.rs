//! `agreements token issue|revoke`: ISV authorisations (`app_auth_token`).

use agreements_domain::ids::{AppId, PartnerId};
use agreements_domain::token::{AppAuthToken, TokenStatus};
use agreements_protocol::crypto::random_alphanumeric;
use agreements_protocol::timestamp::format_beijing;

use super::world::arg;
use crate::DatabaseArgs;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Let an ISV's app act for a merchant; prints the token.
    Issue {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The ISV's app that will send the token.
        #[arg(long)]
        isv_app_id: String,
        /// The merchant granting it (the calling merchant of requests carrying it).
        #[arg(long)]
        partner_id: String,
        /// The merchant's own app, reported as auth_app_id; the ISV app when omitted.
        #[arg(long)]
        auth_app_id: Option<String>,
        /// Days until it expires.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// A method it may be used for (repeatable); every served method when omitted.
        #[arg(long = "method")]
        methods: Vec<String>,
    },
    /// Withdraw a token at once.
    Revoke {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The token.
        token: String,
    },
}

pub async fn run(command: Command, now: i64) -> anyhow::Result<()> {
    match command {
        Command::Issue {
            db,
            isv_app_id,
            partner_id,
            auth_app_id,
            days,
            methods,
        } => {
            let isv_app_id = arg("--isv-app-id", &isv_app_id, AppId::parse)?;
            let partner_id = arg("--partner-id", &partner_id, PartnerId::parse)?;
            let auth_app_id = match auth_app_id {
                Some(id) => arg("--auth-app-id", &id, AppId::parse)?,
                None => isv_app_id.clone(),
            };
            let methods = super::methods(&methods)?;
            let store = db.open().await?;
            anyhow::ensure!(
                store.app(&isv_app_id).await?.is_some(),
                "app {isv_app_id} does not exist"
            );
            anyhow::ensure!(
                store.merchant(&partner_id).await?.is_some(),
                "merchant {partner_id} does not exist"
            );
            // Shaped like the platform's: yyyyMM + "BB" + 27 random characters (35 ≤ 40).
            let month: String = format_beijing(now)
                .chars()
                .filter(char::is_ascii_digit)
                .take(6)
                .collect();
            let token = AppAuthToken {
                token: format!("{month}BB{}", random_alphanumeric(27)?),
                isv_app_id,
                partner_id,
                auth_app_id,
                status: TokenStatus::Valid,
                expires_at: now + i64::from(days) * 86_400,
                methods,
            };
            store.add_app_auth_token(&token).await?;
            super::print(&format!("{}\n", token.token))?;
            eprintln!(
                "app {} may act for merchant {} until {} (Beijing time) for: {}",
                token.isv_app_id,
                token.partner_id,
                format_beijing(token.expires_at),
                token
                    .methods
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Command::Revoke { db, token } => {
            anyhow::ensure!(
                db.open().await?.revoke_app_auth_token(&token).await?,
                "no such token"
            );
            super::print("revoked\n")
        }
    }
}
