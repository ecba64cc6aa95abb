//! Storage of the agreement world. One API for the server and the CLI; behind it SQLite through
//! rusqlite (called inline: a lookup costs ~7 µs, cheaper than any thread hop) or PostgreSQL
//! through sqlx (async, pooled). All SQL lives in
//! this crate, and driver errors never leave it: callers see [`StoreError`].

/// The columns of a notification row, as a literal for `concat!` (see `rows::NotificationRow`).
macro_rules! notification_columns {
    () => {
        "notify_id, agreement_no, notify_type, url, sign_type, params, state, attempts, created_at, \
         next_attempt_at, last_attempt_at, last_error, delivered_at"
    };
}

pub mod demo;
mod load;
mod migrations;
mod pg;
mod pg_load;
mod records;
mod rows;
mod sqlite;
mod sqlite_load;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::path::Path;

use agreements_domain::batch_query::UserLocator;
use agreements_domain::ids::{
    AgreementNo, AppId, GroupId, PartnerId, PersonalProductCode, ProductCode, UserId,
};
use agreements_domain::token::AppAuthToken;
use agreements_domain::{Agreement, Contract, Merchant, Product, ResolvedUser, Scope};

pub use load::{
    AccountRecord, Kind, LoadOptions, LogonIdRecord, OpenIdRecord, Outcome, ProductRecord, Record,
};
pub use migrations::{MIGRATIONS, Migration};
pub use records::{
    AgreementEvent, AgreementFilter, AppKey, AppRecord, AppStatus, Attempt, EventKind, ExternalKey,
    FoundAgreement, NewAccount, NewApp, NewGroup, NewNotification, Notification,
    NotificationFilter, Resend, Unsign, UnsignOutcome,
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
    Postgres(pg::PgStore),
}

/// Calls the same method on whichever backend is in use; SQLite's run inline, PostgreSQL's are
/// awaited.
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match &$self.backend {
            Backend::Sqlite(s) => s.$method($($arg),*),
            Backend::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// Opens the database `location` names: a `postgres://` or `postgresql://` URL, or else a
    /// SQLite file path (an optional `sqlite://` prefix is dropped). Applies pending migrations.
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Ok(Self {
                backend: Backend::Postgres(pg::PgStore::connect(location).await?),
            })
        } else {
            Self::open_sqlite(Path::new(
                location.strip_prefix("sqlite://").unwrap_or(location),
            ))
        }
    }

    /// Runs raw SQL (tests only: to break, repair or inspect a database).
    #[cfg(feature = "test-support")]
    pub async fn execute_for_tests(&self, sql: &str) -> Result<(), StoreError> {
        dispatch!(self.execute_batch(sql))
    }

    /// Which backend is in use: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Opens (creating if missing) a SQLite database file, in WAL mode with foreign keys on, and
    /// applies pending migrations.
    pub fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            backend: Backend::Sqlite(sqlite::SqliteStore::open(path)?),
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self.ping())
    }

    /// The migrations applied so far, by version.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        dispatch!(self.applied_migrations())
    }

    /// An app with its keys and granted methods.
    pub async fn app(&self, app_id: &str) -> Result<Option<AppRecord>, StoreError> {
        dispatch!(self.app(app_id))
    }

    /// Every app, by id.
    pub async fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        dispatch!(self.apps())
    }

    /// A merchant.
    pub async fn merchant(&self, partner_id: &PartnerId) -> Result<Option<Merchant>, StoreError> {
        dispatch!(self.merchant(partner_id))
    }

    /// An agreement product with its paired sales products.
    pub async fn product(&self, code: &PersonalProductCode) -> Result<Option<Product>, StoreError> {
        dispatch!(self.product(code))
    }

    /// A merchant's contracts for the given sales products.
    pub async fn contracts(
        &self,
        partner_id: &PartnerId,
        products: &[&ProductCode],
    ) -> Result<Vec<Contract>, StoreError> {
        dispatch!(self.contracts(partner_id, products))
    }

    /// The account (and person) a user field names; open ids in `app_id`'s namespace.
    pub async fn resolve_user(
        &self,
        locator: &UserLocator,
        app_id: &AppId,
    ) -> Result<Option<ResolvedUser>, StoreError> {
        dispatch!(self.resolve_user(locator, app_id))
    }

    /// The agreements of one person for one product in one scope, in answer order.
    pub async fn agreements(
        &self,
        filter: &AgreementFilter<'_>,
    ) -> Result<Vec<FoundAgreement>, StoreError> {
        dispatch!(self.agreements(filter))
    }

    /// One agreement by number, whatever its status or owner (callers apply the rules).
    pub async fn agreement_by_no(
        &self,
        no: &AgreementNo,
        open_id_app: &AppId,
    ) -> Result<Option<FoundAgreement>, StoreError> {
        dispatch!(self.agreement_by_no(no, open_id_app))
    }

    /// The agreements with a merchant's number, among the merchants of `scope`, whatever their
    /// status (callers apply the rules).
    pub async fn agreements_by_external(
        &self,
        scope: &Scope,
        key: &ExternalKey<'_>,
        open_id_app: &AppId,
    ) -> Result<Vec<FoundAgreement>, StoreError> {
        dispatch!(self.agreements_by_external(scope, key, open_id_app))
    }

    /// One logon id of an account (the first in order), for masked display.
    pub async fn logon_id_of(&self, user_id: &UserId) -> Result<Option<String>, StoreError> {
        dispatch!(self.logon_id_of(user_id))
    }

    /// An ISV authorisation by its token.
    pub async fn app_auth_token(&self, token: &str) -> Result<Option<AppAuthToken>, StoreError> {
        dispatch!(self.app_auth_token(token))
    }

    /// Stores a new ISV authorisation.
    pub async fn add_app_auth_token(&self, token: &AppAuthToken) -> Result<(), StoreError> {
        dispatch!(self.add_app_auth_token(token))
    }

    /// Revokes a token; `false` when there is no such token.
    pub async fn revoke_app_auth_token(&self, token: &str) -> Result<bool, StoreError> {
        dispatch!(self.revoke_app_auth_token(token))
    }

    /// A merchant group.
    pub async fn group(&self, group_id: &GroupId) -> Result<Option<NewGroup>, StoreError> {
        dispatch!(self.group(group_id))
    }

    /// Adds a merchant group.
    pub async fn add_group(&self, group: &NewGroup) -> Result<(), StoreError> {
        dispatch!(self.add_group(group))
    }

    /// Adds a merchant.
    pub async fn add_merchant(&self, merchant: &Merchant) -> Result<(), StoreError> {
        dispatch!(self.add_merchant(merchant))
    }

    /// Adds an agreement product and its sales products (idempotent).
    pub async fn add_product(&self, product: &Product, name: &str) -> Result<(), StoreError> {
        dispatch!(self.add_product(product, name))
    }

    /// Adds a merchant contract.
    pub async fn add_contract(&self, contract: &Contract) -> Result<(), StoreError> {
        dispatch!(self.add_contract(contract))
    }

    /// Registers an app with its keys and granted methods.
    pub async fn add_app(&self, app: &NewApp) -> Result<(), StoreError> {
        dispatch!(self.add_app(app))
    }

    /// Adds an account (creating its person if new), its logon ids and open ids.
    pub async fn add_account(&self, account: &NewAccount) -> Result<(), StoreError> {
        dispatch!(self.add_account(account))
    }

    /// Adds an agreement, with a `CREATE` event (actor `operator`) in its history.
    pub async fn add_agreement(&self, agreement: &Agreement) -> Result<(), StoreError> {
        let at = unix_now();
        dispatch!(self.add_agreement(agreement, at))
    }

    /// Cancels an agreement, appending its event and queueing its notifications in the same
    /// transaction; an agreement already cancelled is left as it is (agreements.md §7).
    pub async fn unsign(&self, unsign: &Unsign<'_>) -> Result<UnsignOutcome, StoreError> {
        dispatch!(self.unsign(unsign))
    }

    /// An agreement's history, oldest first.
    pub async fn history(&self, no: &AgreementNo) -> Result<Vec<AgreementEvent>, StoreError> {
        dispatch!(self.history(no))
    }

    /// Takes up to `limit` pending notifications due at `now` for sending: each is held until
    /// `lease_until` (so no other worker sends it meanwhile; if this one dies, it is due again
    /// then).
    pub async fn claim_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        dispatch!(self.claim_notifications(now, lease_until, limit))
    }

    /// Records the result of a notification's `attempts`-th send, made at `now`.
    pub async fn record_attempt(
        &self,
        notify_id: &str,
        attempts: u32,
        now: i64,
        attempt: &Attempt,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_attempt(notify_id, attempts, now, attempt))
    }

    /// Queued notifications, oldest first.
    pub async fn notifications(
        &self,
        filter: &NotificationFilter<'_>,
    ) -> Result<Vec<Notification>, StoreError> {
        dispatch!(self.notifications(filter))
    }

    /// Makes notifications pending again, due at `now`, with a fresh schedule; returns how many.
    pub async fn resend(&self, which: Resend<'_>, now: i64) -> Result<u64, StoreError> {
        dispatch!(self.resend(which, now))
    }

    /// Starts a bulk load on a connection of its own (agreements.md §8). Each
    /// [`Loader::load`] call is one batch: applied whole, in one transaction, or not at all.
    pub async fn loader(&self, options: LoadOptions) -> Result<Loader, StoreError> {
        Ok(Loader {
            backend: match &self.backend {
                Backend::Sqlite(s) => LoaderBackend::Sqlite(s.loader(options)?),
                Backend::Postgres(s) => LoaderBackend::Postgres(s.loader(options).await?),
            },
        })
    }

    /// Starts an export: pages of one kind at a time, in key order, all from one snapshot.
    pub async fn exporter(&self) -> Result<Exporter, StoreError> {
        Ok(Exporter {
            backend: match &self.backend {
                Backend::Sqlite(s) => ExporterBackend::Sqlite(s.exporter()?),
                Backend::Postgres(s) => ExporterBackend::Postgres(s.exporter().await?),
            },
        })
    }
}

/// Now, in Unix seconds (the system clock), for records the store stamps itself.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A bulk load in progress. Dropping it without [`Loader::finish`] keeps the committed batches
/// (and, in a dry run, discards everything).
#[derive(Debug)]
pub struct Loader {
    backend: LoaderBackend,
}

#[derive(Debug)]
enum LoaderBackend {
    Sqlite(sqlite_load::SqliteLoader),
    Postgres(pg_load::PgLoader),
}

impl Loader {
    /// Loads one batch of records of one kind, in one transaction; returns what happened to each
    /// record, in order. An `Err` means the database failed and the batch was not applied.
    pub async fn load(
        &mut self,
        kind: Kind,
        records: &[Record],
    ) -> Result<Vec<Outcome>, StoreError> {
        if let Some(other) = records.iter().find(|r| r.kind() != kind) {
            return Err(StoreError::Conflict(format!(
                "a {} record in a batch of {kind}",
                other.kind()
            )));
        }
        match &mut self.backend {
            LoaderBackend::Sqlite(l) => l.load(kind, records),
            LoaderBackend::Postgres(l) => l.load(kind, records).await,
        }
    }

    /// Ends the load: in a dry run, rolls everything back.
    pub async fn finish(self) -> Result<(), StoreError> {
        match self.backend {
            LoaderBackend::Sqlite(l) => l.finish(),
            LoaderBackend::Postgres(l) => l.finish().await,
        }
    }
}

/// An export in progress: one consistent snapshot of the database.
#[derive(Debug)]
pub struct Exporter {
    backend: ExporterBackend,
}

#[derive(Debug)]
enum ExporterBackend {
    Sqlite(sqlite_load::SqliteExporter),
    Postgres(pg_load::PgExporter),
}

impl Exporter {
    /// Up to `limit` records of `kind` whose key follows `after`'s (from the first when `None`),
    /// in key order.
    pub async fn page(
        &mut self,
        kind: Kind,
        after: Option<&Record>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        match &mut self.backend {
            ExporterBackend::Sqlite(e) => e.page(kind, after, limit),
            ExporterBackend::Postgres(e) => e.page(kind, after, limit).await,
        }
    }

    /// Ends the export and releases its snapshot (dropping it does too, less promptly).
    pub async fn finish(self) -> Result<(), StoreError> {
        match self.backend {
            ExporterBackend::Sqlite(e) => e.finish(),
            ExporterBackend::Postgres(e) => e.finish().await,
        }
    }
}
