//! Bulk loading and export, shared by both backends (agreements.md §8).
//!
//! Every entity kind is described once, by a [`Spec`]: its table, columns, natural key, the
//! references its foreign keys make and the other unique constraints it must keep. Both
//! backends drive their loading from the spec — SQLite row by row with prepared statements in one
//! transaction per batch, PostgreSQL set-based through `COPY` into a staging table — and both
//! classify each row the same way: [`Outcome`].

use agreements_domain::ids::{
    AgreementNo, AppId, CustomerId, GroupId, LogonId, OpenId, PartnerId, PersonalProductCode,
    ProductCode, SignScene, UserId,
};
use agreements_domain::{
    Agreement, AgreementStatus, Contract, EntityStatus, Merchant, PrincipalType, Product,
    ThirdPartyType,
};
use agreements_protocol::SignType;

use crate::StoreError;
use crate::records::{AppKey, AppRecord, AppStatus, NewGroup};
use crate::rows::{corrupt, id, known};

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

    pub(crate) fn spec(self) -> &'static Spec {
        match self {
            Kind::Group => &GROUPS,
            Kind::Merchant => &MERCHANTS,
            Kind::Product => &PRODUCTS,
            Kind::Contract => &CONTRACTS,
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

/// An account as loaded and exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The account.
    pub user_id: UserId,
    /// Its person (created if new).
    pub customer_id: CustomerId,
    /// Whether it is usable.
    pub status: EntityStatus,
}

/// A logon id naming an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonIdRecord {
    /// The normalised logon id.
    pub logon_id: LogonId,
    /// The account it names.
    pub user_id: UserId,
}

/// An app-scoped open id naming an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIdRecord {
    /// The app whose namespace it is in.
    pub app_id: AppId,
    /// The open id.
    pub open_id: OpenId,
    /// The account it names.
    pub user_id: UserId,
}

/// An agreement product with its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRecord {
    /// The product and its sales products.
    pub product: Product,
    /// Display name.
    pub name: String,
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

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    fn text(value: impl Into<String>) -> Cell {
        Cell::Text(value.into())
    }

    fn opt(value: Option<impl Into<String>>) -> Cell {
        value.map_or(Cell::Null, Cell::text)
    }

    fn opt_int(value: Option<i64>) -> Cell {
        value.map_or(Cell::Null, Cell::Int)
    }

    /// The value for a message.
    pub(crate) fn show(&self) -> String {
        match self {
            Cell::Null => "null".to_owned(),
            Cell::Int(i) => i.to_string(),
            Cell::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Text,
    Int,
}

#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
}

const fn text(name: &'static str) -> Column {
    Column { name, ty: Ty::Text }
}

const fn int(name: &'static str) -> Column {
    Column { name, ty: Ty::Int }
}

/// A foreign key: column `column` must name a row of `table` by `target`.
#[derive(Debug)]
pub(crate) struct Reference {
    pub(crate) column: usize,
    pub(crate) table: &'static str,
    pub(crate) target: &'static str,
    /// What the referenced thing is called in messages, and which file kind defines it.
    pub(crate) what: &'static str,
    pub(crate) defined_by: Kind,
}

/// A unique constraint besides the key (rows with a NULL in it are exempt).
#[derive(Debug)]
pub(crate) struct Unique {
    pub(crate) columns: &'static [usize],
}

/// A set of rows stored in a child table, keyed by the parent's key (its first column).
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) table: &'static str,
    pub(crate) parent: &'static str,
    pub(crate) columns: &'static [Column],
    /// The field name in files and messages.
    pub(crate) field: &'static str,
}

#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) table: &'static str,
    pub(crate) columns: &'static [Column],
    /// The natural key: the first `key` columns.
    pub(crate) key: usize,
    pub(crate) references: &'static [Reference],
    pub(crate) uniques: &'static [Unique],
    pub(crate) children: &'static [Child],
}

impl Spec {
    pub(crate) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn key_columns(&self) -> &[Column] {
        &self.columns[..self.key]
    }

    /// The fields of `stored` and `new` that differ, children included.
    pub(crate) fn diff(&self, stored: &Row, new: &Row) -> Vec<&'static str> {
        let mut fields: Vec<&'static str> = self
            .columns
            .iter()
            .zip(stored.cells.iter().zip(&new.cells))
            .filter(|(_, (a, b))| a != b)
            .map(|(c, _)| c.name)
            .collect();
        for (i, child) in self.children.iter().enumerate() {
            if stored.children.get(i) != new.children.get(i) {
                fields.push(child.field);
            }
        }
        fields
    }
}

static GROUPS: Spec = Spec {
    table: "merchant_groups",
    columns: &[text("group_id"), text("name")],
    key: 1,
    references: &[],
    uniques: &[],
    children: &[],
};

static MERCHANTS: Spec = Spec {
    table: "merchants",
    columns: &[
        text("partner_id"),
        text("name"),
        text("status"),
        text("group_id"),
    ],
    key: 1,
    references: &[Reference {
        column: 3,
        table: "merchant_groups",
        target: "group_id",
        what: "merchant group",
        defined_by: Kind::Group,
    }],
    uniques: &[],
    children: &[],
};

static PRODUCTS: Spec = Spec {
    table: "products",
    columns: &[text("personal_product_code"), text("name")],
    key: 1,
    references: &[],
    uniques: &[],
    children: &[Child {
        table: "product_pairs",
        parent: "personal_product_code",
        columns: &[text("product_code")],
        field: "product_codes",
    }],
};

static CONTRACTS: Spec = Spec {
    table: "merchant_contracts",
    columns: &[
        text("partner_id"),
        text("product_code"),
        text("status"),
        int("valid_from"),
        int("valid_to"),
    ],
    key: 2,
    references: &[MERCHANT_OF_COLUMN_0],
    uniques: &[],
    children: &[],
};

const MERCHANT_OF_COLUMN_0: Reference = Reference {
    column: 0,
    table: "merchants",
    target: "partner_id",
    what: "merchant",
    defined_by: Kind::Merchant,
};

static APPS: Spec = Spec {
    table: "apps",
    columns: &[
        text("app_id"),
        text("partner_id"),
        text("name"),
        text("status"),
        text("notify_url"),
    ],
    key: 1,
    references: &[Reference {
        column: 1,
        ..MERCHANT_OF_COLUMN_0
    }],
    uniques: &[],
    children: &[
        Child {
            table: "app_keys",
            parent: "app_id",
            columns: &[text("sign_type"), text("public_key")],
            field: "public_keys",
        },
        Child {
            table: "app_methods",
            parent: "app_id",
            columns: &[text("method")],
            field: "methods",
        },
    ],
};

static ACCOUNTS: Spec = Spec {
    table: "accounts",
    columns: &[text("user_id"), text("customer_id"), text("status")],
    key: 1,
    references: &[],
    uniques: &[],
    children: &[],
};

const ACCOUNT_OF: Reference = Reference {
    column: 0,
    table: "accounts",
    target: "user_id",
    what: "account",
    defined_by: Kind::Account,
};

static LOGON_IDS: Spec = Spec {
    table: "logon_ids",
    columns: &[text("logon_id"), text("user_id")],
    key: 1,
    references: &[Reference {
        column: 1,
        ..ACCOUNT_OF
    }],
    uniques: &[],
    children: &[],
};

static OPEN_IDS: Spec = Spec {
    table: "open_ids",
    columns: &[text("app_id"), text("open_id"), text("user_id")],
    key: 2,
    references: &[Reference {
        column: 2,
        ..ACCOUNT_OF
    }],
    uniques: &[Unique { columns: &[0, 2] }],
    children: &[],
};

/// Column positions in [`AGREEMENTS`].
pub(crate) mod agreement_column {
    pub(crate) const PRINCIPAL_TYPE: usize = 3;
    pub(crate) const PRINCIPAL_ID: usize = 4;
    pub(crate) const ALIPAY_USER_ID: usize = 5;
    pub(crate) const STATUS: usize = 12;
}

static AGREEMENTS: Spec = Spec {
    table: "agreements",
    columns: &[
        text("agreement_no"),
        text("partner_id"),
        text("sign_app_id"),
        text("principal_type"),
        text("principal_id"),
        text("alipay_user_id"),
        text("personal_product_code"),
        text("product_code"),
        text("sign_scene"),
        text("third_party_type"),
        text("external_agreement_no"),
        text("external_logon_id"),
        text("status"),
        int("sign_time"),
        int("valid_time"),
        int("invalid_time"),
        int("unsign_time"),
    ],
    key: 1,
    references: &[
        Reference {
            column: 1,
            ..MERCHANT_OF_COLUMN_0
        },
        Reference {
            column: agreement_column::ALIPAY_USER_ID,
            ..ACCOUNT_OF
        },
    ],
    uniques: &[Unique {
        columns: &[1, 6, 8, 10],
    }],
    children: &[],
};

/// A record as stored: its main row and, per child table of its spec, its child rows (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) cells: Vec<Cell>,
    pub(crate) children: Vec<Vec<Vec<Cell>>>,
}

impl Row {
    pub(crate) fn key(&self, spec: &Spec) -> &[Cell] {
        &self.cells[..spec.key]
    }
}

pub(crate) fn sorted(mut rows: Vec<Vec<Cell>>) -> Vec<Vec<Cell>> {
    rows.sort();
    rows.dedup();
    rows
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

    pub(crate) fn to_row(&self) -> Row {
        let (cells, children) = match self {
            Record::Group(g) => (
                vec![Cell::text(g.group_id.as_str()), Cell::text(&g.name)],
                vec![],
            ),
            Record::Merchant(m) => (
                vec![
                    Cell::text(m.partner_id.as_str()),
                    Cell::text(&m.name),
                    Cell::text(m.status.as_str()),
                    Cell::opt(m.group_id.as_ref().map(GroupId::as_str)),
                ],
                vec![],
            ),
            Record::Product(p) => (
                vec![
                    Cell::text(p.product.personal_product_code.as_str()),
                    Cell::text(&p.name),
                ],
                vec![sorted(
                    p.product
                        .product_codes
                        .iter()
                        .map(|c| vec![Cell::text(c.as_str())])
                        .collect(),
                )],
            ),
            Record::Contract(k) => (
                vec![
                    Cell::text(k.partner_id.as_str()),
                    Cell::text(k.product_code.as_str()),
                    Cell::text(k.status.as_str()),
                    Cell::Int(k.valid_from),
                    Cell::Int(k.valid_to),
                ],
                vec![],
            ),
            Record::App(a) => (
                vec![
                    Cell::text(a.app_id.as_str()),
                    Cell::text(a.partner_id.as_str()),
                    Cell::text(&a.name),
                    Cell::text(a.status.as_str()),
                    Cell::opt(a.notify_url.as_deref()),
                ],
                vec![
                    sorted(
                        a.keys
                            .iter()
                            .map(|k| {
                                vec![Cell::text(k.sign_type.as_str()), Cell::text(&k.public_key)]
                            })
                            .collect(),
                    ),
                    sorted(a.methods.iter().map(|m| vec![Cell::text(m)]).collect()),
                ],
            ),
            Record::Account(a) => (
                vec![
                    Cell::text(a.user_id.as_str()),
                    Cell::text(a.customer_id.as_str()),
                    Cell::text(a.status.as_str()),
                ],
                vec![],
            ),
            Record::LogonId(l) => (
                vec![
                    Cell::text(l.logon_id.as_str()),
                    Cell::text(l.user_id.as_str()),
                ],
                vec![],
            ),
            Record::OpenId(o) => (
                vec![
                    Cell::text(o.app_id.as_str()),
                    Cell::text(o.open_id.as_str()),
                    Cell::text(o.user_id.as_str()),
                ],
                vec![],
            ),
            Record::Agreement(a) => (
                vec![
                    Cell::text(a.agreement_no.as_str()),
                    Cell::text(a.partner_id.as_str()),
                    Cell::text(a.sign_app_id.as_str()),
                    Cell::text(a.principal_type.as_str()),
                    Cell::text(&a.principal_id),
                    Cell::text(a.alipay_user_id.as_str()),
                    Cell::text(a.personal_product_code.as_str()),
                    Cell::text(a.product_code.as_str()),
                    Cell::text(a.sign_scene.as_str()),
                    Cell::text(a.third_party_type.as_str()),
                    Cell::opt(a.external_agreement_no.as_deref()),
                    Cell::opt(a.external_logon_id.as_deref()),
                    Cell::text(a.status.as_str()),
                    Cell::Int(a.sign_time),
                    Cell::Int(a.valid_time),
                    Cell::Int(a.invalid_time),
                    Cell::opt_int(a.unsign_time),
                ],
                vec![],
            ),
        };
        Row { cells, children }
    }

    /// The record a stored row holds; values that break the domain's rules are `Corrupt`.
    pub(crate) fn from_row(kind: Kind, row: Row) -> Result<Record, StoreError> {
        let table = kind.spec().table;
        let mut cells = Reader {
            table,
            cells: row.cells.into_iter(),
        };
        let mut children = row.children.into_iter();
        Ok(match kind {
            Kind::Group => Record::Group(NewGroup {
                group_id: cells.id("group_id", GroupId::parse)?,
                name: cells.text("name")?,
            }),
            Kind::Merchant => Record::Merchant(Merchant {
                partner_id: cells.id("partner_id", PartnerId::parse)?,
                name: cells.text("name")?,
                status: cells.known("status", EntityStatus::parse)?,
                group_id: cells.opt_id("group_id", GroupId::parse)?,
            }),
            Kind::Product => {
                let personal_product_code =
                    cells.id("personal_product_code", PersonalProductCode::parse)?;
                let name = cells.text("name")?;
                let product_codes = children
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        Reader {
                            table: "product_pairs",
                            cells: r.into_iter(),
                        }
                        .id("product_code", ProductCode::parse)
                    })
                    .collect::<Result<_, _>>()?;
                Record::Product(ProductRecord {
                    product: Product {
                        personal_product_code,
                        product_codes,
                    },
                    name,
                })
            }
            Kind::Contract => Record::Contract(Contract {
                partner_id: cells.id("partner_id", PartnerId::parse)?,
                product_code: cells.id("product_code", ProductCode::parse)?,
                status: cells.known("status", EntityStatus::parse)?,
                valid_from: cells.int("valid_from")?,
                valid_to: cells.int("valid_to")?,
            }),
            Kind::App => {
                let app_id = cells.id("app_id", AppId::parse)?;
                let partner_id = cells.id("partner_id", PartnerId::parse)?;
                let name = cells.text("name")?;
                let status = cells.known("status", AppStatus::parse)?;
                let notify_url = cells.opt_text("notify_url")?;
                let keys = children
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        let mut r = Reader {
                            table: "app_keys",
                            cells: r.into_iter(),
                        };
                        Ok(AppKey {
                            sign_type: r.known("sign_type", SignType::parse)?,
                            public_key: r.text("public_key")?,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?;
                let methods = children
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        Reader {
                            table: "app_methods",
                            cells: r.into_iter(),
                        }
                        .text("method")
                    })
                    .collect::<Result<_, _>>()?;
                Record::App(AppRecord {
                    app_id,
                    partner_id,
                    name,
                    status,
                    notify_url,
                    keys,
                    methods,
                })
            }
            Kind::Account => Record::Account(AccountRecord {
                user_id: cells.id("user_id", UserId::parse)?,
                customer_id: cells.id("customer_id", CustomerId::parse)?,
                status: cells.known("status", EntityStatus::parse)?,
            }),
            Kind::LogonId => Record::LogonId(LogonIdRecord {
                logon_id: cells.id("logon_id", LogonId::parse)?,
                user_id: cells.id("user_id", UserId::parse)?,
            }),
            Kind::OpenId => Record::OpenId(OpenIdRecord {
                app_id: cells.id("app_id", AppId::parse)?,
                open_id: cells.id("open_id", OpenId::parse)?,
                user_id: cells.id("user_id", UserId::parse)?,
            }),
            Kind::Agreement => Record::Agreement(Agreement {
                agreement_no: cells.id("agreement_no", AgreementNo::parse)?,
                partner_id: cells.id("partner_id", PartnerId::parse)?,
                sign_app_id: cells.id("sign_app_id", AppId::parse)?,
                principal_type: cells.known("principal_type", PrincipalType::parse)?,
                principal_id: cells.text("principal_id")?,
                alipay_user_id: cells.id("alipay_user_id", UserId::parse)?,
                personal_product_code: cells
                    .id("personal_product_code", PersonalProductCode::parse)?,
                product_code: cells.id("product_code", ProductCode::parse)?,
                sign_scene: cells.id("sign_scene", SignScene::parse)?,
                third_party_type: cells.known("third_party_type", ThirdPartyType::parse)?,
                external_agreement_no: cells.opt_text("external_agreement_no")?,
                external_logon_id: cells.opt_text("external_logon_id")?,
                status: cells.known("status", AgreementStatus::parse)?,
                sign_time: cells.int("sign_time")?,
                valid_time: cells.int("valid_time")?,
                invalid_time: cells.int("invalid_time")?,
                unsign_time: cells.opt_int("unsign_time")?,
            }),
        })
    }
}

/// Reads a stored row's cells in column order, naming the column when one is not what the
/// domain allows.
struct Reader {
    table: &'static str,
    cells: std::vec::IntoIter<Cell>,
}

impl Reader {
    fn next(&mut self, column: &str) -> Result<Cell, StoreError> {
        self.cells
            .next()
            .ok_or_else(|| corrupt(&format!("{}.{column}", self.table), "missing"))
    }

    fn opt_text(&mut self, column: &'static str) -> Result<Option<String>, StoreError> {
        match self.next(column)? {
            Cell::Null => Ok(None),
            Cell::Text(t) => Ok(Some(t)),
            Cell::Int(i) => Err(corrupt(column, format!("{i} is not text"))),
        }
    }

    fn text(&mut self, column: &'static str) -> Result<String, StoreError> {
        self.opt_text(column)?
            .ok_or_else(|| corrupt(column, "is null"))
    }

    fn opt_int(&mut self, column: &'static str) -> Result<Option<i64>, StoreError> {
        match self.next(column)? {
            Cell::Null => Ok(None),
            Cell::Int(i) => Ok(Some(i)),
            Cell::Text(t) => Err(corrupt(column, format!("{t:?} is not a number"))),
        }
    }

    fn int(&mut self, column: &'static str) -> Result<i64, StoreError> {
        self.opt_int(column)?
            .ok_or_else(|| corrupt(column, "is null"))
    }

    fn id<T, E: std::fmt::Display>(
        &mut self,
        column: &'static str,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        let value = self.text(column)?;
        id(column, parse(value))
    }

    fn opt_id<T, E: std::fmt::Display>(
        &mut self,
        column: &'static str,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        self.opt_text(column)?
            .map(|v| id(column, parse(v)))
            .transpose()
    }

    fn known<T>(
        &mut self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        let value = self.text(column)?;
        known(column, &value, parse(&value))
    }
}

/// The statements that begin, commit and undo one batch: a savepoint inside a dry run's
/// transaction, else a transaction of its own, begun with `begin`.
pub(crate) fn batch_statements(dry_run: bool, begin: &'static str) -> [&'static str; 3] {
    if dry_run {
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

/// Marks every record whose key repeats an earlier one's in the same batch; returns the rows of
/// the others, with their indexes, in key order (neighbouring keys share index pages, so writing
/// in key order touches far fewer pages than file order).
pub(crate) fn first_of_each_key(
    kind: Kind,
    records: &[Record],
    outcomes: &mut [Option<Outcome>],
) -> Vec<(usize, Row)> {
    let spec = kind.spec();
    let mut seen: std::collections::HashMap<Vec<Cell>, usize> =
        std::collections::HashMap::with_capacity(records.len());
    let mut rows = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let row = record.to_row();
        match seen.entry(row.key(spec).to_vec()) {
            std::collections::hash_map::Entry::Occupied(first) => {
                outcomes[i] = Some(Outcome::Duplicate {
                    first: *first.get(),
                });
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(i);
                rows.push((i, row));
            }
        }
    }
    rows.sort_unstable_by(|(_, a), (_, b)| a.key(spec).cmp(b.key(spec)));
    rows
}

/// The message for a reference that names nothing.
pub(crate) fn missing_reference(spec: &Spec, reference: &Reference, value: &Cell) -> Outcome {
    Outcome::Rejected {
        field: spec.columns[reference.column].name,
        reason: format!(
            "no {} {} (load it first, in a {} file)",
            reference.what,
            value.show(),
            reference.defined_by.name()
        ),
    }
}

/// The message for a unique value another record already holds.
pub(crate) fn taken(spec: &Spec, unique: &Unique, holder: &[Cell]) -> Outcome {
    let names: Vec<&str> = unique
        .columns
        .iter()
        .map(|&c| spec.columns[c].name)
        .collect();
    let holder: Vec<String> = holder.iter().map(Cell::show).collect();
    Outcome::Rejected {
        field: spec.columns[unique.columns[unique.columns.len() - 1]].name,
        reason: format!(
            "({}) is already used by the record with key {}",
            names.join(", "),
            holder.join(" ")
        ),
    }
}

/// The message for a CUSTOMER agreement whose principal is not the signing account's person.
pub(crate) fn wrong_person(customer_id: &str) -> Outcome {
    Outcome::Rejected {
        field: "principal_id",
        reason: format!(
            "a CUSTOMER agreement's principal_id must be the person of alipay_user_id, which is {customer_id}"
        ),
    }
}

/// `SELECT <columns> FROM <table> [WHERE (<key>) > (<params>)] ORDER BY <key> LIMIT <limit>`,
/// with parameters written by `param(i)` (1-based).
pub(crate) fn page_query(
    spec: &Spec,
    after: bool,
    limit: usize,
    param: impl Fn(usize) -> String,
) -> String {
    let keys: Vec<&str> = spec.key_columns().iter().map(|c| c.name).collect();
    let filter = if after {
        let params: Vec<String> = (1..=spec.key).map(&param).collect();
        format!("WHERE ({}) > ({})", keys.join(", "), params.join(", "))
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM {} {filter} ORDER BY {} LIMIT {limit}",
        spec.column_list(),
        spec.table,
        keys.join(", ")
    )
}

/// The history entry a loaded agreement row gets.
pub(crate) struct LoadEvent<'a> {
    pub(crate) agreement_no: &'a str,
    pub(crate) kind: crate::EventKind,
    pub(crate) old_status: Option<&'a str>,
    pub(crate) new_status: &'a str,
}

/// For an agreement row just inserted (`stored` is `None`) or overwritten: its event.
pub(crate) fn event<'a>(
    kind: Kind,
    stored: Option<&'a Row>,
    row: &'a Row,
) -> Option<LoadEvent<'a>> {
    let text = |row: &'a Row, i: usize| match &row.cells[i] {
        Cell::Text(t) => Some(t.as_str()),
        Cell::Int(_) | Cell::Null => None,
    };
    if kind != Kind::Agreement {
        return None;
    }
    Some(LoadEvent {
        agreement_no: text(row, 0)?,
        kind: if stored.is_some() {
            crate::EventKind::Update
        } else {
            crate::EventKind::Import
        },
        old_status: stored.and_then(|s| text(s, agreement_column::STATUS)),
        new_status: text(row, agreement_column::STATUS)?,
    })
}
