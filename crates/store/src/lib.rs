//! Storage of the agreement world. One API for the server and the CLI; behind it SQLite through
//! rusqlite (called inline: a lookup costs ~7 µs, cheaper than any thread hop). All SQL lives in
//! this crate, and driver errors never leave it: callers see [`StoreError`].

pub mod demo;
mod migrations;
mod records;
mod rows;
mod sqlite;

use std::path::Path;

use agreements_domain::batch_query::UserLocator;
use agreements_domain::ids::{
    AgreementNo, AppId, GroupId, PartnerId, PersonalProductCode, ProductCode, UserId,
};
use agreements_domain::token::AppAuthToken;
use agreements_domain::{Agreement, Contract, Merchant, Product, ResolvedUser, Scope};

pub use migrations::{MIGRATIONS, Migration};
pub use records::{
    AgreementFilter, AppKey, AppRecord, AppStatus, ExternalKey, FoundAgreement, NewAccount, NewApp,
    NewGroup,
};

/// What went wrong in storage, in the terms callers act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or failed (I/O, locked, full): answer `20000`, retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A write conflicts with stored data (a unique or foreign key constraint).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data breaks the domain's rules (an id of the wrong shape, an unknown status).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// The store. Cheap to share behind an `Arc`; every method may be called concurrently.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Opens (creating if missing) a SQLite database file, in WAL mode with foreign keys on, and
    /// applies pending migrations.
    pub fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            backend: Backend::Sqlite(sqlite::SqliteStore::open(path)?),
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.ping(),
        }
    }

    /// The migrations applied so far, by version.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.applied_migrations(),
        }
    }

    /// An app with its keys and granted methods.
    pub async fn app(&self, app_id: &str) -> Result<Option<AppRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.app(app_id),
        }
    }

    /// Every app, by id.
    pub async fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.apps(),
        }
    }

    /// A merchant.
    pub async fn merchant(&self, partner_id: &PartnerId) -> Result<Option<Merchant>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.merchant(partner_id),
        }
    }

    /// An agreement product with its paired sales products.
    pub async fn product(&self, code: &PersonalProductCode) -> Result<Option<Product>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.product(code),
        }
    }

    /// A merchant's contracts for the given sales products.
    pub async fn contracts(
        &self,
        partner_id: &PartnerId,
        products: &[&ProductCode],
    ) -> Result<Vec<Contract>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.contracts(partner_id, products),
        }
    }

    /// The account (and person) a user field names; open ids in `app_id`'s namespace.
    pub async fn resolve_user(
        &self,
        locator: &UserLocator,
        app_id: &AppId,
    ) -> Result<Option<ResolvedUser>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.resolve_user(locator, app_id),
        }
    }

    /// The agreements of one person for one product in one scope, in answer order.
    pub async fn agreements(
        &self,
        filter: &AgreementFilter<'_>,
    ) -> Result<Vec<FoundAgreement>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.agreements(filter),
        }
    }

    /// One agreement by number, whatever its status or owner (callers apply the rules).
    pub async fn agreement_by_no(
        &self,
        no: &AgreementNo,
        open_id_app: &AppId,
    ) -> Result<Option<FoundAgreement>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.agreement_by_no(no, open_id_app),
        }
    }

    /// The agreements with a merchant's number, among the merchants of `scope`, whatever their
    /// status (callers apply the rules).
    pub async fn agreements_by_external(
        &self,
        scope: &Scope,
        key: &ExternalKey<'_>,
        open_id_app: &AppId,
    ) -> Result<Vec<FoundAgreement>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.agreements_by_external(scope, key, open_id_app),
        }
    }

    /// One logon id of an account (the first in order), for masked display.
    pub async fn logon_id_of(&self, user_id: &UserId) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.logon_id_of(user_id),
        }
    }

    /// An ISV authorisation by its token.
    pub async fn app_auth_token(&self, token: &str) -> Result<Option<AppAuthToken>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.app_auth_token(token),
        }
    }

    /// Stores a new ISV authorisation.
    pub async fn add_app_auth_token(&self, token: &AppAuthToken) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_app_auth_token(token),
        }
    }

    /// Revokes a token; `false` when there is no such token.
    pub async fn revoke_app_auth_token(&self, token: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.revoke_app_auth_token(token),
        }
    }

    /// A merchant group.
    pub async fn group(&self, group_id: &GroupId) -> Result<Option<NewGroup>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.group(group_id),
        }
    }

    /// Adds a merchant group.
    pub async fn add_group(&self, group: &NewGroup) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_group(group),
        }
    }

    /// Adds a merchant.
    pub async fn add_merchant(&self, merchant: &Merchant) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_merchant(merchant),
        }
    }

    /// Adds an agreement product and its sales products (idempotent).
    pub async fn add_product(&self, product: &Product, name: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_product(product, name),
        }
    }

    /// Adds a merchant contract.
    pub async fn add_contract(&self, contract: &Contract) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_contract(contract),
        }
    }

    /// Registers an app with its keys and granted methods.
    pub async fn add_app(&self, app: &NewApp) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_app(app),
        }
    }

    /// Adds an account (creating its person if new), its logon ids and open ids.
    pub async fn add_account(&self, account: &NewAccount) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_account(account),
        }
    }

    /// Adds an agreement.
    pub async fn add_agreement(&self, agreement: &Agreement) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_agreement(agreement),
        }
    }
}
