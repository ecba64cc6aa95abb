//! Operator commands for the agreement world: `group add`, `merchant add`, `product add`,
//! `contract add`, `account add`. Input is validated with the API's own types.

use agreements_domain::ids::{
    AppId, CustomerId, GroupId, LogonId, OpenId, PartnerId, PersonalProductCode, ProductCode,
    UserId,
};
use agreements_domain::{Contract, EntityStatus, Merchant};
use agreements_protocol::timestamp::parse_beijing;
use agreements_store::{NewAccount, NewGroup, ProductRecord, Store};

use crate::DatabaseArgs;

/// Parses `value` with `parse`, naming `flag` in the error.
pub fn arg<T, E: std::fmt::Display>(
    flag: &str,
    value: &str,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> anyhow::Result<T> {
    parse(value.to_owned()).map_err(|e| anyhow::anyhow!("{flag} {value:?}: {e}"))
}

/// A wire time (`yyyy-MM-dd HH:mm:ss`, Beijing time) as Unix seconds.
pub fn beijing(flag: &str, value: &str) -> anyhow::Result<i64> {
    parse_beijing(value).ok_or_else(|| {
        anyhow::anyhow!("{flag} {value:?}: expected yyyy-MM-dd HH:mm:ss (Beijing time)")
    })
}

#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// Add a merchant group.
    Add {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The group id (up to 64 printable characters).
        #[arg(long)]
        group_id: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum MerchantCommand {
    /// Add a merchant (partner), optionally in a group.
    Add {
        #[command(flatten)]
        db: DatabaseArgs,
        /// 2088 + 12 digits.
        #[arg(long)]
        partner_id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// An existing group the merchant belongs to.
        #[arg(long)]
        group: Option<String>,
        /// Add it disabled (its apps are refused).
        #[arg(long)]
        disabled: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ProductCommand {
    /// Add an agreement product with the sales products it pairs with (idempotent).
    Add {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The agreement product, e.g. GENERAL_WITHHOLDING_P.
        #[arg(long)]
        personal_product_code: String,
        /// A paired sales product (repeatable), e.g. GENERAL_WITHHOLDING.
        #[arg(long = "product-code", required = true)]
        product_codes: Vec<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Whom its agreements are with: CARD (the signing account) or CUSTOMER (the person).
        #[arg(long, default_value = "CARD")]
        principal_type: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ContractCommand {
    /// Add a merchant's contract for a sales product.
    Add {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The merchant.
        #[arg(long)]
        partner_id: String,
        /// The sales product.
        #[arg(long)]
        product_code: String,
        /// Start, Beijing time.
        #[arg(long, default_value = "2000-01-01 00:00:00")]
        from: String,
        /// End (exclusive), Beijing time.
        #[arg(long, default_value = "2099-12-31 23:59:59")]
        to: String,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum AccountCommand {
    /// Add an account with its person, logon ids and open ids.
    Add {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The account: 2088 + 12 digits.
        #[arg(long)]
        user_id: String,
        /// The person (its primary account's user id); the account itself when omitted.
        #[arg(long)]
        customer_id: Option<String>,
        /// An e-mail or mobile logon id (repeatable); stored normalised.
        #[arg(long = "logon-id")]
        logon_ids: Vec<String>,
        /// `APP_ID:OPEN_ID` (repeatable).
        #[arg(long = "open-id")]
        open_ids: Vec<String>,
        /// A file whose first line is the consumer's password for the signing and automatic
        /// payments pages (8 to 256 characters; stored as an Argon2id hash, never logged).
        #[arg(long)]
        password_file: Option<std::path::PathBuf>,
    },
    /// Set (or replace) an account's password for the consumer pages; ends its web sessions.
    Password {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The account, by user id or by one of its logon ids.
        #[arg(long)]
        account: String,
        /// A file whose first line is the new password ("-": standard input).
        #[arg(long)]
        password_file: std::path::PathBuf,
    },
}

pub async fn group(command: GroupCommand) -> anyhow::Result<()> {
    let GroupCommand::Add { db, group_id, name } = command;
    let group_id = arg("--group-id", &group_id, GroupId::parse)?;
    let store = db.open().await?;
    anyhow::ensure!(
        store.group(&group_id).await?.is_none(),
        "group {group_id} already exists"
    );
    store
        .add_group(&NewGroup {
            group_id: group_id.clone(),
            name,
        })
        .await?;
    super::print(&format!("added group {group_id}\n"))
}

pub async fn merchant(command: MerchantCommand) -> anyhow::Result<()> {
    let MerchantCommand::Add {
        db,
        partner_id,
        name,
        group,
        disabled,
    } = command;
    let partner_id = arg("--partner-id", &partner_id, PartnerId::parse)?;
    let group_id = group
        .map(|g| arg("--group", &g, GroupId::parse))
        .transpose()?;
    anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
    let store = db.open().await?;
    if let Some(group_id) = &group_id {
        anyhow::ensure!(
            store.group(group_id).await?.is_some(),
            "group {group_id} does not exist (add it with `group add`)"
        );
    }
    anyhow::ensure!(
        store.merchant(&partner_id).await?.is_none(),
        "merchant {partner_id} already exists"
    );
    let status = if disabled {
        EntityStatus::Disabled
    } else {
        EntityStatus::Normal
    };
    store
        .add_merchant(&Merchant {
            partner_id: partner_id.clone(),
            name,
            status,
            group_id,
        })
        .await?;
    super::print(&format!("added merchant {partner_id}\n"))
}

pub async fn product(command: ProductCommand) -> anyhow::Result<()> {
    let ProductCommand::Add {
        db,
        personal_product_code,
        product_codes,
        name,
        principal_type,
    } = command;
    let principal_type =
        agreements_domain::PrincipalType::parse(&principal_type).ok_or_else(|| {
            anyhow::anyhow!("--principal-type {principal_type:?}: expected CARD or CUSTOMER")
        })?;
    let personal_product_code = arg(
        "--personal-product-code",
        &personal_product_code,
        PersonalProductCode::parse,
    )?;
    let product_codes = product_codes
        .iter()
        .map(|c| arg("--product-code", c, ProductCode::parse))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let name = name.unwrap_or_else(|| personal_product_code.to_string());
    db.open()
        .await?
        .add_product(&ProductRecord {
            personal_product_code: personal_product_code.clone(),
            name,
            principal_type,
            product_codes,
        })
        .await?;
    super::print(&format!(
        "product {personal_product_code} is in the catalog\n"
    ))
}

pub async fn contract(command: ContractCommand) -> anyhow::Result<()> {
    let ContractCommand::Add {
        db,
        partner_id,
        product_code,
        from,
        to,
        disabled,
    } = command;
    let contract = Contract {
        partner_id: arg("--partner-id", &partner_id, PartnerId::parse)?,
        product_code: arg("--product-code", &product_code, ProductCode::parse)?,
        status: if disabled {
            EntityStatus::Disabled
        } else {
            EntityStatus::Normal
        },
        valid_from: beijing("--from", &from)?,
        valid_to: beijing("--to", &to)?,
    };
    anyhow::ensure!(
        contract.valid_from < contract.valid_to,
        "--from must be before --to"
    );
    let store = db.open().await?;
    anyhow::ensure!(
        store.merchant(&contract.partner_id).await?.is_some(),
        "merchant {} does not exist",
        contract.partner_id
    );
    store
        .add_contract(&contract)
        .await
        .map_err(|e| anyhow::anyhow!("{e} (a merchant has one contract per sales product)"))?;
    super::print(&format!(
        "added contract {} / {}\n",
        contract.partner_id, contract.product_code
    ))
}

pub async fn account(command: AccountCommand) -> anyhow::Result<()> {
    match command {
        AccountCommand::Add {
            db,
            user_id,
            customer_id,
            logon_ids,
            open_ids,
            password_file,
        } => {
            let customer = customer_id.as_deref().unwrap_or(&user_id).to_owned();
            let account = NewAccount {
                user_id: arg("--user-id", &user_id, UserId::parse)?,
                customer_id: arg("--customer-id", &customer, CustomerId::parse)?,
                logon_ids: logon_ids
                    .iter()
                    .map(|l| arg("--logon-id", l, LogonId::parse))
                    .collect::<anyhow::Result<_>>()?,
                open_ids: open_ids
                    .iter()
                    .map(|pair| {
                        let (app, open) = pair.split_once(':').ok_or_else(|| {
                            anyhow::anyhow!("--open-id {pair:?}: expected APP_ID:OPEN_ID")
                        })?;
                        Ok((
                            arg("--open-id app", app, AppId::parse)?,
                            arg("--open-id", open, OpenId::parse)?,
                        ))
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            // Read and hashed before anything is written: a bad password adds nothing.
            let credential = match &password_file {
                Some(file) => Some(credential(&account.user_id, file)?),
                None => None,
            };
            let store = db.open().await?;
            add_account(&store, &account).await?;
            if let Some(credential) = credential {
                store.set_password(&credential).await?;
            }
            super::print(&format!("added account {}\n", account.user_id))
        }
        AccountCommand::Password {
            db,
            account,
            password_file,
        } => {
            let store = db.open().await?;
            let user_id = match UserId::parse(account.as_str()) {
                Ok(id) => id,
                Err(_) => {
                    let logon_id = arg("--account", &account, LogonId::parse)?;
                    store
                        .account_by_logon_id(&logon_id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no account has that logon id"))?
                        .user_id
                }
            };
            anyhow::ensure!(
                store.account_of(&user_id).await?.is_some(),
                "account {user_id} does not exist"
            );
            store
                .set_password(&credential(&user_id, &password_file)?)
                .await?;
            super::print(&format!(
                "set the password of account {user_id} (its web sessions ended)\n"
            ))
        }
    }
}

/// The Argon2id hash of the first line of `file` ("-": standard input) for `user_id`.
fn credential(
    user_id: &UserId,
    file: &std::path::Path,
) -> anyhow::Result<agreements_store::Credential> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("reading the password file {}: {e}", file.display()))?
    };
    let password = text.lines().next().unwrap_or_default();
    let password_hash = agreements_server::web::password::hash(password)?;
    Ok(agreements_store::Credential {
        user_id: user_id.clone(),
        password_hash,
        updated_at: crate::now(),
    })
}

async fn add_account(store: &Store, account: &NewAccount) -> anyhow::Result<()> {
    store
        .add_account(account)
        .await
        .map_err(|e| anyhow::anyhow!("{e} (the account, a logon id, or an open id already exists)"))
}
