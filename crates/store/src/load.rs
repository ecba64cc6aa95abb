//! Bulk loading and export (agreements.md §8): the record kinds of load files, what loading did
//! with each record, and the loader and exporter over either backend.
//!
//! Both loaders drive their statements from the tables' descriptions ([`crate::tables`]) and
//! classify each row the same way ([`Outcome`]): SQLite row by row with prepared statements in
//! one transaction per batch (`sqlite_load`), PostgreSQL set-based through `COPY` into a staging
//! table (`pg_load`). The export is written once for both.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use agreements_domain::clock::Clock;
use agreements_domain::{Agreement, Contract, Merchant, PrincipalType};

use crate::db::{Conn, Param, Pool};
use crate::error::{Invalid, StoreError};
use crate::records::{
    AccountRecord, AppRecord, LogonIdRecord, NewGroup, OpenIdRecord, ProductRecord,
};
use crate::schema::{Cell, CellRef, Cells, Entity, Reference, Stored, Table};
use crate::tables::{
    ACCOUNTS, AGREEMENTS, APPS, LOGON_IDS, MERCHANT_CONTRACTS, MERCHANT_GROUPS, MERCHANTS,
    OPEN_IDS, PRODUCTS,
};
use crate::{Store, pg_load, sqlite_load};

/// The kinds of record a load file holds, in the order they must be loaded: each kind refers
/// only to kinds before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Merchant groups.
    Group,
    /// Merchants (refer to groups).
    Merchant,
    /// Agreement products with their sales products.
    Product,
    /// Merchant contracts (refer to merchants).
    Contract,
    /// Apps with keys and granted methods (refer to merchants).
    App,
    /// Accounts and, implied, their persons.
    Account,
    /// Logon ids (refer to accounts).
    LogonId,
    /// Open ids (refer to accounts).
    OpenId,
    /// Agreements (refer to merchants and accounts).
    Agreement,
}

impl Kind {
    /// Every kind, in load order.
    pub const ALL: [Kind; 9] = [
        Kind::Group,
        Kind::Merchant,
        Kind::Product,
        Kind::Contract,
        Kind::App,
        Kind::Account,
        Kind::LogonId,
        Kind::OpenId,
        Kind::Agreement,
    ];

    /// The plural name used for files and reports: `agreements`, `logon_ids`, …
    pub fn name(self) -> &'static str {
        match self {
            Kind::Group => "groups",
            Kind::Merchant => "merchants",
            Kind::Product => "products",
            Kind::Contract => "contracts",
            Kind::App => "apps",
            Kind::Account => "accounts",
            Kind::LogonId => "logon_ids",
            Kind::OpenId => "open_ids",
            Kind::Agreement => "agreements",
        }
    }

    /// The kind a plural name names.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The table its records are stored in (with its child tables).
    pub fn table(self) -> &'static Table {
        match self {
            Kind::Group => &MERCHANT_GROUPS,
            Kind::Merchant => &MERCHANTS,
            Kind::Product => &PRODUCTS,
            Kind::Contract => &MERCHANT_CONTRACTS,
            Kind::App => &APPS,
            Kind::Account => &ACCOUNTS,
            Kind::LogonId => &LOGON_IDS,
            Kind::OpenId => &OPEN_IDS,
            Kind::Agreement => &AGREEMENTS,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One record of a load file, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A merchant group.
    Group(NewGroup),
    /// A merchant.
    Merchant(Merchant),
    /// An agreement product.
    Product(ProductRecord),
    /// A merchant contract.
    Contract(Contract),
    /// An app.
    App(AppRecord),
    /// An account.
    Account(AccountRecord),
    /// A logon id.
    LogonId(LogonIdRecord),
    /// An open id.
    OpenId(OpenIdRecord),
    /// An agreement.
    Agreement(Agreement),
}

impl Record {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Record::Group(_) => Kind::Group,
            Record::Merchant(_) => Kind::Merchant,
            Record::Product(_) => Kind::Product,
            Record::Contract(_) => Kind::Contract,
            Record::App(_) => Kind::App,
            Record::Account(_) => Kind::Account,
            Record::LogonId(_) => Kind::LogonId,
            Record::OpenId(_) => Kind::OpenId,
            Record::Agreement(_) => Kind::Agreement,
        }
    }

    /// The record as stored: the cells of its table's columns and its child rows.
    pub fn to_cells(&self) -> Cells {
        match self {
            Record::Group(r) => r.to_cells(),
            Record::Merchant(r) => r.to_cells(),
            Record::Product(r) => r.to_cells(),
            Record::Contract(r) => r.to_cells(),
            Record::App(r) => r.to_cells(),
            Record::Account(r) => r.to_cells(),
            Record::LogonId(r) => r.to_cells(),
            Record::OpenId(r) => r.to_cells(),
            Record::Agreement(r) => r.to_cells(),
        }
    }

    /// The cells of its table's columns, in order, borrowed where they can be, appended to `out`
    /// (no child rows: the fresh loads' kinds have none).
    pub(crate) fn cell_refs<'a>(&'a self, out: &mut Vec<CellRef<'a>>) {
        match self {
            Record::Group(r) => r.cell_refs(out),
            Record::Merchant(r) => r.cell_refs(out),
            Record::Product(r) => r.cell_refs(out),
            Record::Contract(r) => r.cell_refs(out),
            Record::App(r) => r.cell_refs(out),
            Record::Account(r) => r.cell_refs(out),
            Record::LogonId(r) => r.cell_refs(out),
            Record::OpenId(r) => r.cell_refs(out),
            Record::Agreement(r) => r.cell_refs(out),
        }
    }

    /// The record of `kind` that `cells` hold; a value the domain's rules refuse is
    /// [`Invalid`].
    pub fn from_cells(kind: Kind, cells: Cells) -> Result<Record, Invalid> {
        Ok(match kind {
            Kind::Group => Record::Group(Entity::from_cells(cells)?),
            Kind::Merchant => Record::Merchant(Entity::from_cells(cells)?),
            Kind::Product => Record::Product(Entity::from_cells(cells)?),
            Kind::Contract => Record::Contract(Entity::from_cells(cells)?),
            Kind::App => Record::App(Entity::from_cells(cells)?),
            Kind::Account => Record::Account(Entity::from_cells(cells)?),
            Kind::LogonId => Record::LogonId(Entity::from_cells(cells)?),
            Kind::OpenId => Record::OpenId(Entity::from_cells(cells)?),
            Kind::Agreement => Record::Agreement(Entity::from_cells(cells)?),
        })
    }
}

/// What loading did with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// New: written.
    Inserted,
    /// Already stored with the same content: nothing written.
    Unchanged,
    /// Stored with other content and overwritten (update mode).
    Updated,
    /// Stored with other content; these fields differ. Nothing written.
    Conflict {
        /// The differing fields.
        fields: Vec<&'static str>,
    },
    /// Repeats the key of record `first` (an index into the same batch). Nothing written.
    Duplicate {
        /// The index of the earlier record with the same key.
        first: usize,
    },
    /// Taken for a fresh load's bulk write: checked, with every other row of its kind, when the
    /// load finishes ([`crate::FreshLoader::finish`] lists the rows it rejects).
    Pending,
    /// Breaks a rule of the stored data (a missing reference, a taken unique value).
    Rejected {
        /// The field at fault.
        field: &'static str,
        /// Why, for the operator.
        reason: String,
    },
}

/// How a load runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Overwrite stored records whose content differs, instead of reporting a conflict.
    pub update: bool,
    /// Check everything against the database and write nothing: the whole load runs in one
    /// transaction that is rolled back at the end.
    pub dry_run: bool,
}

/// The fields of `stored` and `new` (records of `table`) that differ, list fields included.
pub(crate) fn diff(table: &Table, stored: &Cells, new: &Cells) -> Vec<&'static str> {
    let mut fields: Vec<&'static str> = table
        .columns
        .iter()
        .zip(stored.cells.iter().zip(&new.cells))
        .filter(|(_, (a, b))| a != b)
        .map(|(c, _)| c.name)
        .collect();
    for (i, child) in table.children.iter().enumerate() {
        if stored.children.get(i) != new.children.get(i) {
            fields.push(child.field);
        }
    }
    fields
}

/// The statements that begin, commit and undo one batch: a savepoint inside the load's
/// transaction when the whole load is one (`whole`), else a transaction of its own, begun with
/// `begin`.
pub(crate) fn batch_statements(whole: bool, begin: &'static str) -> [&'static str; 3] {
    if whole {
        [
            "SAVEPOINT batch",
            "RELEASE batch",
            "ROLLBACK TO batch; RELEASE batch",
        ]
    } else {
        [begin, "COMMIT", "ROLLBACK"]
    }
}

/// Every record's outcome (the loaders fill every slot; an empty one would mean nothing was
/// written for it).
pub(crate) fn settled(outcomes: Vec<Option<Outcome>>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Unchanged))
        .collect()
}

/// Marks every record whose key repeats an earlier one's in the same batch; returns the others
/// as stored, with their indexes, in key order (neighbouring keys share index pages, so writing
/// in key order touches far fewer pages than file order).
pub(crate) fn first_of_each_key(
    table: &Table,
    records: &[Record],
    outcomes: &mut [Option<Outcome>],
) -> Vec<(usize, Cells)> {
    let mut seen: HashMap<Vec<Cell>, usize> = HashMap::with_capacity(records.len());
    let mut rows = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let row = record.to_cells();
        match seen.entry(row.key(table).to_vec()) {
            Entry::Occupied(first) => {
                outcomes[i] = Some(Outcome::Duplicate {
                    first: *first.get(),
                });
            }
            Entry::Vacant(slot) => {
                slot.insert(i);
                rows.push((i, row));
            }
        }
    }
    rows.sort_unstable_by(|(_, a), (_, b)| a.key(table).cmp(b.key(table)));
    rows
}

/// The rejection of a reference that names nothing.
pub(crate) fn missing_reference(reference: &Reference, value: &Cell) -> Outcome {
    Outcome::Rejected {
        field: reference.column,
        reason: format!(
            "no {} {} (load it first, in a {} file)",
            reference.what,
            value.show(),
            reference.defined_by.name()
        ),
    }
}

/// The rejection of a unique value another record (key `holder`) already holds.
pub(crate) fn taken(unique: &[&'static str], holder: &[Cell]) -> Outcome {
    let holder: Vec<String> = holder.iter().map(Cell::show).collect();
    Outcome::Rejected {
        field: unique.last().copied().unwrap_or_default(),
        reason: format!(
            "({}) is already used by the record with key {}",
            unique.join(", "),
            holder.join(" ")
        ),
    }
}

/// A CUSTOMER agreement must name as its principal the person of its signing account: the
/// columns that say so, and the rejection when it does not.
pub(crate) mod person_rule {
    use std::sync::LazyLock;

    use super::{AGREEMENTS, Cell, Cells, Outcome, PrincipalType};
    use crate::schema::Spelled as _;

    /// Whether `row` (an agreement) is a CUSTOMER agreement. (Every agreement of a load asks:
    /// the column's position is looked up once.)
    pub(crate) fn applies(row: &Cells) -> bool {
        static PRINCIPAL_TYPE: LazyLock<usize> =
            LazyLock::new(|| AGREEMENTS.index("principal_type"));
        matches!(row.cells.get(*PRINCIPAL_TYPE),
            Some(Cell::Text(t)) if t == PrincipalType::Customer.spelling())
    }

    pub(crate) fn rejection(customer_id: &str) -> Outcome {
        Outcome::Rejected {
            field: "principal_id",
            reason: format!(
                "a CUSTOMER agreement's principal_id must be the person of alipay_user_id, which is {customer_id}"
            ),
        }
    }
}

/// The actor of loaded agreements' history events.
pub(crate) const IMPORT_ACTOR: &str = "import";

/// The value of `column` in a row of `table`, decoded as stored values are.
pub(crate) fn field<T: Stored>(
    table: &'static Table,
    cells: &Cells,
    column: &'static str,
) -> Result<T, StoreError> {
    T::from_cell(cells.get(table, column).clone())
        .map_err(|rule| StoreError::Corrupt(rule.of(table.name, column)))
}

/// Asserts that every record of a batch is of `kind` (a caller's mistake otherwise, not the
/// data's).
pub(crate) fn assert_of_kind(kind: Kind, records: &[Record]) {
    assert!(
        records.iter().all(|r| r.kind() == kind),
        "a batch of {kind} holds records of another kind"
    );
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
    ///
    /// # Panics
    ///
    /// When a record is not of `kind` (a caller's mistake, not the data's).
    pub async fn load(
        &mut self,
        kind: Kind,
        records: &[Record],
    ) -> Result<Vec<Outcome>, StoreError> {
        assert_of_kind(kind, records);
        match &mut self.backend {
            LoaderBackend::Sqlite(l) => l.load(kind, records).await,
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

/// An export in progress: one consistent snapshot of the database, read one kind at a time in
/// key order (keyset pagination).
#[derive(Debug)]
pub struct Exporter<'s> {
    snapshot: Conn<'s>,
}

impl Exporter<'_> {
    /// Up to `limit` records of `kind` whose key follows `after`'s (from the first when `None`),
    /// in key order.
    pub async fn page(
        &mut self,
        kind: Kind,
        after: Option<&Record>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let table = kind.table();
        let after = after.map(Record::to_cells);
        let key = after
            .as_ref()
            .map(|a| Param::row(table, 0, a.key(table)))
            .unwrap_or_default();
        let rows = self
            .snapshot
            .rows(&table.page(after.is_some(), limit), &key)
            .await?;
        let mut records = Vec::with_capacity(rows.len());
        for cells in rows {
            let cells = self.snapshot.with_children(table, cells).await?;
            records.push(Record::from_cells(kind, cells).map_err(StoreError::Corrupt)?);
        }
        Ok(records)
    }

    /// Ends the export and releases its snapshot (dropping it does too).
    pub async fn finish(self) -> Result<(), StoreError> {
        self.snapshot.commit().await
    }
}

impl Store {
    /// Starts a bulk load on a connection of its own (agreements.md §8). Each
    /// [`Loader::load`] call is one batch: applied whole, in one transaction, or not at all.
    /// History events of loaded agreements are stamped by the store's clock.
    pub async fn loader(&self, options: LoadOptions) -> Result<Loader, StoreError> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        Ok(Loader {
            backend: match &self.pool {
                Pool::Sqlite(pool) => LoaderBackend::Sqlite(sqlite_load::SqliteLoader::new(
                    pool.connect()?,
                    options,
                    clock,
                    false,
                )?),
                Pool::Postgres(pool) => LoaderBackend::Postgres(
                    pg_load::PgLoader::new(pool.acquire().await?, options, clock, false).await?,
                ),
            },
        })
    }

    /// Starts an export: pages of one kind at a time, in key order, all from one snapshot (a read
    /// transaction; repeatable read on PostgreSQL).
    pub async fn exporter(&self) -> Result<Exporter<'_>, StoreError> {
        Ok(Exporter {
            snapshot: self.pool.snapshot().await?,
        })
    }
}
