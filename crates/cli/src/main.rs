//! `agreements`: the withholding-agreement gateway and its operator tools.

mod commands;
mod terminal;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use agreements_domain::clock::{Clock as _, SystemClock};
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A withholding-agreement service behind an Alipay-OpenAPI-compatible gateway.
#[derive(Debug, Parser)]
#[command(name = "agreements", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (configuration: --config FILE, then AGREEMENTS_* variables).
    Serve(commands::serve::Args),
    /// Create a demo world (database, keys) in a data folder and serve it.
    Demo(commands::demo::Args),
    /// Print a commented example configuration file.
    DefaultConfig,
    /// Create the database if missing and apply pending schema migrations.
    Migrate {
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Generate an RSA-2048 key pair in every format merchants use.
    Keygen(commands::keygen::Args),
    /// Register and list apps; set their AES keys; issue their certificates.
    #[command(subcommand)]
    App(commands::app::Command),
    /// The platform's certificate authority for certificate mode (公钥证书).
    #[command(subcommand)]
    Ca(commands::ca::Command),
    /// Add merchant groups.
    #[command(subcommand)]
    Group(commands::world::GroupCommand),
    /// Add merchants.
    #[command(subcommand)]
    Merchant(commands::world::MerchantCommand),
    /// Add agreement products to the catalog.
    #[command(subcommand)]
    Product(commands::world::ProductCommand),
    /// Add merchant contracts.
    #[command(subcommand)]
    Contract(commands::world::ContractCommand),
    /// Add accounts (with their person, logon ids, open ids).
    #[command(subcommand)]
    Account(commands::world::AccountCommand),
    /// Issue and revoke ISV authorisations (app_auth_token).
    #[command(subcommand)]
    Token(commands::token::Command),
    /// Sign a call, send it, verify the response signature, print the response node.
    Call(commands::call::Args),
    /// Load agreements and the entities they refer to from JSON Lines and CSV files.
    Import(commands::bulk::ImportArgs),
    /// Write the stored world out as load files (the import formats).
    Export(commands::bulk::ExportArgs),
    /// Write a deterministic synthetic world as load files.
    GenerateWorld(commands::bulk::WorldArgs),
    /// Load a running gateway like real clients and compare with the machine's RSA bound.
    Bench(commands::bench::Args),
    /// Who read or changed whose agreements (the audit trail); `audit prune` applies the
    /// retention.
    Audit(commands::audit::Args),
    /// Show an agreement's history: every change, with its actor and reason.
    History(commands::history::Args),
    /// Cancel an agreement as an operator (its signing app is notified).
    Unsign(commands::unsign::Args),
    /// Make a page.sign link (as a merchant's server does with pageExecute GET), signed now:
    /// open it in a browser to sign an agreement on the hosted signing page.
    SignLink(commands::sign_link::Args),
    /// List notification deliveries and send them again.
    #[command(subcommand)]
    Notify(commands::notify::NotifyCommand),
}

/// Where a command finds the database: `--config FILE` and `AGREEMENTS_DATABASE`, or `--database`.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// Configuration file (TOML); see `agreements default-config`.
    #[arg(long, env = "AGREEMENTS_CONFIG")]
    pub config: Option<PathBuf>,
    /// SQLite database file or `postgres://` URL; overrides the configuration.
    #[arg(long)]
    pub database: Option<String>,
}

impl DatabaseArgs {
    /// Opens the store these arguments name.
    pub async fn open(&self) -> anyhow::Result<agreements_store::Store> {
        let location = match &self.database {
            Some(location) => location.clone(),
            None => self.config()?.database.expose().to_owned(),
        };
        Ok(agreements_store::Store::open(&location).await?)
    }

    /// The configuration (`--config`, `AGREEMENTS_*`), for the settings beside the database.
    pub fn config(&self) -> anyhow::Result<agreements_server::config::Config> {
        Ok(agreements_server::config::Config::load(
            self.config.as_deref(),
        )?)
    }
}

/// Now, by the system clock (the commands take the time as an argument).
fn now() -> i64 {
    SystemClock.now()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Demo(args) => commands::demo::run(args).await,
            Command::Migrate { db } => commands::migrate(&db).await,
            Command::DefaultConfig => {
                commands::print(&agreements_server::config::Config::example())
            }
            Command::Keygen(args) => commands::keygen::run(&args),
            Command::App(command) => commands::app::run(command).await,
            Command::Ca(command) => commands::ca::run(command).await,
            Command::Group(command) => commands::world::group(command).await,
            Command::Merchant(command) => commands::world::merchant(command).await,
            Command::Product(command) => commands::world::product(command).await,
            Command::Contract(command) => commands::world::contract(command).await,
            Command::Account(command) => commands::world::account(command).await,
            Command::Token(command) => commands::token::run(command, now()).await,
            Command::Call(args) => commands::call::run(args).await,
            Command::Import(args) => commands::bulk::import(args).await,
            Command::Export(args) => commands::bulk::export(args).await,
            Command::GenerateWorld(args) => commands::bulk::generate_world(&args),
            Command::Bench(args) => commands::bench::run(args).await,
            Command::Audit(args) => commands::audit::run(args, now()).await,
            Command::History(args) => commands::history::run(args).await,
            Command::Unsign(args) => commands::unsign::run(args, now()).await,
            Command::SignLink(args) => commands::sign_link::run(&args),
            Command::Notify(command) => commands::notify::notify(command, now()).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if commands::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.is::<commands::Unfinished>() => {
            let _ = writeln!(
                std::io::stderr(),
                "warning: {}",
                terminal::output(&e.to_string())
            );
            ExitCode::from(2)
        }
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: {}",
                terminal::output(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
