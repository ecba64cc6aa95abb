//! How a table is described: its columns by name with their types (taken from the Rust type of
//! the field each holds), its key, unique constraints and references, and how a record becomes
//! cells and cells a record. Every table is described once, in [`crate::tables`]; column lists,
//! statements, row decoding, the loaders and the load files' columns all derive from that.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use agreements_domain::ids::{
    AgreementNo, AppId, CustomerId, ExternalAgreementNo, GroupId, LogonId, OpenId, PartnerId,
    PersonalProductCode, PrincipalId, ProductCode, SignScene, UserId,
};
use agreements_domain::notify::DeliveryState;
use agreements_domain::token::TokenStatus;
use agreements_domain::{AgreementStatus, EntityStatus, PrincipalType, ThirdPartyType};
use agreements_protocol::aes::ContentKey;
use agreements_protocol::{Method, SignType};

use crate::error::{Invalid, Rule};
use crate::load::Kind;
use crate::records::{AppStatus, CertRole, EventKind, SessionState};
use crate::sql::TableSql;

/// A stored value, as read from or written to one column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

impl Cell {
    /// The value for a message.
    pub fn show(&self) -> String {
        match self {
            Cell::Null => "null".to_owned(),
            Cell::Int(i) => i.to_string(),
            Cell::Text(t) => t.clone(),
        }
    }
}

/// A value as written to one column, borrowed from its record where the record holds it as text:
/// the fresh loads write every field of millions of records, and would otherwise copy each into a
/// [`Cell`] first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CellRef<'a> {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(Cow<'a, str>),
}

impl CellRef<'_> {
    /// The text it holds, if it is text.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            CellRef::Text(t) => Some(t),
            CellRef::Null | CellRef::Int(_) => None,
        }
    }
}

impl<'a> From<&'a Cell> for CellRef<'a> {
    fn from(cell: &'a Cell) -> Self {
        match cell {
            Cell::Null => CellRef::Null,
            Cell::Int(i) => CellRef::Int(*i),
            Cell::Text(t) => CellRef::Text(Cow::Borrowed(t)),
        }
    }
}

impl From<Cell> for CellRef<'_> {
    fn from(cell: Cell) -> Self {
        match cell {
            Cell::Null => CellRef::Null,
            Cell::Int(i) => CellRef::Int(i),
            Cell::Text(t) => CellRef::Text(Cow::Owned(t)),
        }
    }
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// Text (`TEXT`).
    Text,
    /// A count or number (`INTEGER` / `BIGINT`).
    Int,
    /// A moment in Unix seconds (`INTEGER` / `BIGINT`); files show it in Beijing time.
    Time,
}

/// One column of a table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name (also the record field's, and the load files' column).
    pub name: &'static str,
    /// What it holds.
    pub ty: Ty,
    /// Whether it may be NULL.
    pub nullable: bool,
    /// Free text (a name, an address) rather than an identifier, code or enumeration.
    pub free_text: bool,
    /// The spellings an enumerated column allows.
    pub one_of: Option<fn() -> Vec<&'static str>>,
}

impl Column {
    /// A column of values of type `T`.
    pub(crate) const fn new<T: Stored>(name: &'static str) -> Self {
        let stored = T::TYPE;
        Self {
            name,
            ty: stored.ty,
            nullable: stored.nullable,
            free_text: stored.free_text,
            one_of: stored.one_of,
        }
    }

    /// The column holding the field `get` reads (the field's type gives the column's).
    pub(crate) const fn of<R, T: Stored>(name: &'static str, _get: fn(&R) -> &T) -> Self {
        Self::new::<T>(name)
    }

    /// The same column, holding a moment.
    pub(crate) const fn time(self) -> Self {
        Self {
            ty: Ty::Time,
            ..self
        }
    }
}

/// Every table the store keeps.
pub fn tables() -> &'static [&'static Table] {
    &crate::tables::ALL
}

/// A foreign key: `column` must name a row of `to` by its `target` column.
#[derive(Debug)]
pub struct Reference {
    /// The referring column.
    pub column: &'static str,
    /// The referenced table.
    pub to: &'static str,
    /// The referenced column.
    pub target: &'static str,
    /// What the referenced thing is called in messages.
    pub what: &'static str,
    /// Which load file kind defines it.
    pub defined_by: Kind,
}

/// A child table holding a list field of its parent's records; its first column is the
/// parent's key.
#[derive(Debug)]
pub struct Child {
    /// The field of the parent record.
    pub field: &'static str,
    /// The child table.
    pub table: &'static Table,
}

/// A table.
#[derive(Debug)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// Its columns, in order; the key's columns first.
    pub columns: &'static [Column],
    /// The primary key's columns.
    pub key: &'static [&'static str],
    /// Unique constraints besides the key (a row with a NULL in one is exempt).
    pub uniques: &'static [&'static [&'static str]],
    /// Its foreign keys.
    pub references: &'static [Reference],
    /// Child tables holding list fields of its records.
    pub children: &'static [Child],
    /// Its statements, derived from the above when first used.
    pub(crate) sql: OnceLock<TableSql>,
}

impl Table {
    /// The position of the column `name`.
    ///
    /// # Panics
    ///
    /// When there is no such column: names are constants of this crate, checked by its tests.
    pub fn index(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("{} has no column {name}", self.name))
    }

    /// The column `name` (see [`Table::index`]).
    pub fn column(&self, name: &str) -> &Column {
        &self.columns[self.index(name)]
    }

    /// How many leading columns form the key.
    pub fn key_len(&self) -> usize {
        self.key.len()
    }

    /// The key's columns.
    pub fn key_columns(&self) -> &'static [Column] {
        &self.columns[..self.key.len()]
    }

    /// `a, b, c` (each prefixed by `alias.` when given).
    pub(crate) fn column_list(&self, alias: Option<&str>) -> String {
        names(self.columns.iter().map(|c| c.name), alias)
    }
}

/// `a, b, c`, each prefixed by `alias.` when given.
pub(crate) fn names<'a>(names: impl Iterator<Item = &'a str>, alias: Option<&str>) -> String {
    names
        .map(|n| match alias {
            Some(a) => format!("{a}.{n}"),
            None => n.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A record as stored: its row's cells in column order and, per child table, its child rows
/// (each without the parent's key, sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cells {
    /// The main row.
    pub cells: Vec<Cell>,
    /// Per child table, the child rows.
    pub children: Vec<Vec<Vec<Cell>>>,
}

impl Cells {
    /// The key's cells.
    pub fn key(&self, table: &Table) -> &[Cell] {
        &self.cells[..table.key_len()]
    }

    /// The cell of column `name`.
    pub fn get(&self, table: &Table, name: &str) -> &Cell {
        &self.cells[table.index(name)]
    }
}

/// A record type stored as one row of its table (and rows of the table's children).
pub(crate) trait Entity: Sized {
    /// Its table.
    const TABLE: &'static Table;

    /// The cells of its row, in column order, and its child rows.
    fn to_cells(&self) -> Cells;

    /// The cells of its row, in column order, borrowed where they can be, appended to `out`.
    fn cell_refs<'a>(&'a self, out: &mut Vec<CellRef<'a>>);

    /// The record `cells` hold; a value the domain's rules refuse is [`Invalid`].
    fn from_cells(cells: Cells) -> Result<Self, Invalid>;
}

/// The Rust type of a column's values: how one is written and read.
pub(crate) trait Stored: Sized {
    /// The column such values need.
    const TYPE: StoredType;

    /// The value as a cell.
    fn to_cell(&self) -> Cell;

    /// The value as a cell borrowed from it where it can be (by default, [`Stored::to_cell`]).
    fn cell_ref(&self) -> CellRef<'_> {
        self.to_cell().into()
    }

    /// The value a cell holds, or the rule it breaks.
    fn from_cell(cell: Cell) -> Result<Self, Rule>;
}

/// What [`Stored::TYPE`] says of a column.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredType {
    ty: Ty,
    nullable: bool,
    free_text: bool,
    one_of: Option<fn() -> Vec<&'static str>>,
}

const fn stored(ty: Ty) -> StoredType {
    StoredType {
        ty,
        nullable: false,
        free_text: false,
        one_of: None,
    }
}

fn text(cell: Cell) -> Result<String, Rule> {
    match cell {
        Cell::Text(t) => Ok(t),
        Cell::Null => Err(Rule::new(None, "is required")),
        Cell::Int(i) => Err(Rule::new(Some(&i.to_string()), "is not text")),
    }
}

impl Stored for String {
    const TYPE: StoredType = StoredType {
        free_text: true,
        ..stored(Ty::Text)
    };

    fn to_cell(&self) -> Cell {
        Cell::Text(self.clone())
    }

    fn cell_ref(&self) -> CellRef<'_> {
        CellRef::Text(Cow::Borrowed(self))
    }

    fn from_cell(cell: Cell) -> Result<Self, Rule> {
        text(cell)
    }
}

impl Stored for i64 {
    const TYPE: StoredType = stored(Ty::Int);

    fn to_cell(&self) -> Cell {
        Cell::Int(*self)
    }

    fn from_cell(cell: Cell) -> Result<Self, Rule> {
        match cell {
            Cell::Int(i) => Ok(i),
            Cell::Null => Err(Rule::new(None, "is required")),
            Cell::Text(t) => Err(Rule::new(Some(&t), "is not a number")),
        }
    }
}

impl Stored for u32 {
    const TYPE: StoredType = stored(Ty::Int);

    fn to_cell(&self) -> Cell {
        Cell::Int(i64::from(*self))
    }

    fn from_cell(cell: Cell) -> Result<Self, Rule> {
        let i = i64::from_cell(cell)?;
        u32::try_from(i).map_err(|_| Rule::new(Some(&i.to_string()), "is out of range"))
    }
}

impl<T: Stored> Stored for Option<T> {
    const TYPE: StoredType = StoredType {
        nullable: true,
        ..T::TYPE
    };

    fn to_cell(&self) -> Cell {
        self.as_ref().map_or(Cell::Null, T::to_cell)
    }

    fn cell_ref(&self) -> CellRef<'_> {
        self.as_ref().map_or(CellRef::Null, T::cell_ref)
    }

    fn from_cell(cell: Cell) -> Result<Self, Rule> {
        match cell {
            Cell::Null => Ok(None),
            cell => T::from_cell(cell).map(Some),
        }
    }
}

/// Identifiers: text, checked by their own parser.
macro_rules! stored_id {
    ($($id:ty),+ $(,)?) => {$(
        impl Stored for $id {
            const TYPE: StoredType = stored(Ty::Text);

            fn to_cell(&self) -> Cell {
                Cell::Text(self.as_str().to_owned())
            }

            fn cell_ref(&self) -> CellRef<'_> {
                CellRef::Text(Cow::Borrowed(self.as_str()))
            }

            fn from_cell(cell: Cell) -> Result<Self, Rule> {
                let value = text(cell)?;
                <$id>::parse(value.as_str()).map_err(|e| Rule::new(Some(&value), e.to_string()))
            }
        }
    )+};
}

stored_id!(
    AgreementNo,
    AppId,
    CustomerId,
    ExternalAgreementNo,
    GroupId,
    OpenId,
    PartnerId,
    PersonalProductCode,
    PrincipalId,
    ProductCode,
    SignScene,
    UserId,
);

impl Stored for LogonId {
    const TYPE: StoredType = stored(Ty::Text);

    fn to_cell(&self) -> Cell {
        Cell::Text(self.as_str().to_owned())
    }

    fn cell_ref(&self) -> CellRef<'_> {
        CellRef::Text(Cow::Borrowed(self.as_str()))
    }

    /// A logon id is never echoed in a message.
    fn from_cell(cell: Cell) -> Result<Self, Rule> {
        LogonId::parse(text(cell)?).map_err(|e| Rule::new(None, e.to_string()))
    }
}

/// A content key, stored in its console form; never echoed in a message.
impl Stored for ContentKey {
    const TYPE: StoredType = stored(Ty::Text);

    fn to_cell(&self) -> Cell {
        Cell::Text(self.to_base64())
    }

    fn from_cell(cell: Cell) -> Result<Self, Rule> {
        ContentKey::parse(&text(cell)?).map_err(|e| Rule::new(None, e.to_string()))
    }
}

/// An enumeration stored by its spelling.
pub(crate) trait Spelled: Copy + 'static {
    /// Every value.
    const ALL: &'static [Self];

    /// Its spelling.
    fn spelling(self) -> &'static str;

    /// The value a spelling names.
    fn from_spelling(text: &str) -> Option<Self>;
}

fn spellings<T: Spelled>() -> Vec<&'static str> {
    T::ALL.iter().map(|v| v.spelling()).collect()
}

impl<T: Spelled> Stored for T {
    const TYPE: StoredType = StoredType {
        one_of: Some(spellings::<T>),
        ..stored(Ty::Text)
    };

    fn to_cell(&self) -> Cell {
        Cell::Text(self.spelling().to_owned())
    }

    fn cell_ref(&self) -> CellRef<'_> {
        CellRef::Text(Cow::Borrowed(self.spelling()))
    }

    fn from_cell(cell: Cell) -> Result<Self, Rule> {
        let value = text(cell)?;
        T::from_spelling(&value).ok_or_else(|| {
            Rule::new(
                Some(&value),
                format!("is not one of {}", spellings::<T>().join(", ")),
            )
        })
    }
}

macro_rules! spelled {
    ($($ty:ty: $all:expr, $as_str:ident, $parse:ident;)+) => {$(
        impl Spelled for $ty {
            const ALL: &'static [Self] = $all;

            fn spelling(self) -> &'static str {
                self.$as_str()
            }

            fn from_spelling(text: &str) -> Option<Self> {
                Self::$parse(text)
            }
        }
    )+};
}

spelled!(
    PrincipalType: PrincipalType::ALL, as_str, parse;
    ThirdPartyType: ThirdPartyType::ALL, as_str, parse;
    AgreementStatus: AgreementStatus::ALL, as_str, parse;
    EntityStatus: EntityStatus::ALL, as_str, parse;
    TokenStatus: TokenStatus::ALL, as_str, parse;
    DeliveryState: &DeliveryState::ALL, as_str, parse;
    SignType: SignType::ALL, as_str, parse;
    Method: Method::ALL, name, parse;
    AppStatus: AppStatus::ALL, as_str, parse;
    EventKind: EventKind::ALL, as_str, parse;
    SessionState: SessionState::ALL, as_str, parse;
    CertRole: CertRole::ALL, as_str, parse;
);

/// A notification's form parameters, stored as one JSON object.
impl Stored for Vec<(String, String)> {
    const TYPE: StoredType = stored(Ty::Text);

    fn to_cell(&self) -> Cell {
        let map: serde_json::Map<String, serde_json::Value> = self
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        Cell::Text(serde_json::Value::Object(map).to_string())
    }

    fn from_cell(cell: Cell) -> Result<Self, Rule> {
        let value = text(cell)?;
        let map: BTreeMap<String, String> = serde_json::from_str(&value)
            .map_err(|e| Rule::new(None, format!("is not a JSON object of strings: {e}")))?;
        Ok(map.into_iter().collect())
    }
}

/// Reads a row's cells in column order, naming the column a value breaks the rules of.
#[derive(Debug)]
pub(crate) struct Reader {
    table: &'static Table,
    cells: std::vec::IntoIter<Cell>,
    column: usize,
    children: std::vec::IntoIter<Vec<Vec<Cell>>>,
    child: usize,
}

impl Reader {
    /// A reader of `cells`, a row of `table` starting at its column `first`.
    pub(crate) fn new(table: &'static Table, first: usize, cells: Cells) -> Self {
        Self {
            table,
            cells: cells.cells.into_iter(),
            column: first,
            children: cells.children.into_iter(),
            child: 0,
        }
    }

    /// The next column's value.
    pub(crate) fn get<T: Stored>(&mut self) -> Result<T, Invalid> {
        let column = self.table.columns.get(self.column).map_or("?", |c| c.name);
        self.column += 1;
        let cell = self.cells.next().unwrap_or(Cell::Null);
        T::from_cell(cell).map_err(|rule| Invalid {
            table: self.table.name,
            column,
            value: rule.value,
            rule: rule.rule,
        })
    }

    /// The next child table's rows, as the parent's list field.
    pub(crate) fn children<T: ChildValue>(&mut self) -> Result<Vec<T>, Invalid> {
        let child = self.table.children.get(self.child);
        self.child += 1;
        let rows = self.children.next().unwrap_or_default();
        let Some(child) = child else {
            return Ok(Vec::new());
        };
        rows.into_iter()
            .map(|cells| {
                T::read(&mut Reader::new(
                    child.table,
                    1,
                    Cells {
                        cells,
                        children: Vec::new(),
                    },
                ))
            })
            .collect()
    }
}

/// A value of a list field, stored as one row of a child table (without the parent's key).
pub(crate) trait ChildValue: Sized {
    /// The row's cells.
    fn write(&self, out: &mut Vec<Cell>);

    /// The value a row holds.
    fn read(r: &mut Reader) -> Result<Self, Invalid>;
}

impl<T: Stored> ChildValue for T {
    fn write(&self, out: &mut Vec<Cell>) {
        out.push(self.to_cell());
    }

    fn read(r: &mut Reader) -> Result<Self, Invalid> {
        r.get()
    }
}

/// The child rows of a list field, sorted (stored rows come back in key order).
pub(crate) fn child_rows<T: ChildValue>(values: &[T]) -> Vec<Vec<Cell>> {
    let mut rows: Vec<Vec<Cell>> = values
        .iter()
        .map(|v| {
            let mut row = Vec::new();
            v.write(&mut row);
            row
        })
        .collect();
    rows.sort();
    rows.dedup();
    rows
}

/// Describes a table and the record type it stores, once: `table!(NAME = "table" for Type {
/// columns: [field, field as time, …], key: [..], unique: [[..]], references: [..], children:
/// [field => CHILD_TABLE] })`. Columns are the record's fields of the same names, in the table's
/// order; each column's type comes from its field's type.
macro_rules! table {
    (
        $(#[$doc:meta])*
        $TABLE:ident = $name:literal for $record:ty {
            columns: [$($field:ident $(as $form:ident)?),+ $(,)?],
            key: [$($key:ident),+ $(,)?],
            unique: [$([$($unique:ident),+ $(,)?]),* $(,)?],
            references: [$($reference:expr),* $(,)?],
            children: [$($child:ident => $CHILD:ident),* $(,)?] $(,)?
        }
    ) => {
        $(#[$doc])*
        pub(crate) static $TABLE: $crate::schema::Table = $crate::schema::Table {
            name: $name,
            columns: &[$(
                $crate::schema::Column::of(stringify!($field), |r: &$record| &r.$field)
                    $(.$form())?
            ),+],
            key: &[$(stringify!($key)),+],
            uniques: &[$(&[$(stringify!($unique)),+]),*],
            references: &[$($reference),*],
            children: &[$($crate::schema::Child {
                field: stringify!($child),
                table: &$CHILD,
            }),*],
            sql: std::sync::OnceLock::new(),
        };

        impl $crate::schema::Entity for $record {
            const TABLE: &'static $crate::schema::Table = &$TABLE;

            fn to_cells(&self) -> $crate::schema::Cells {
                $crate::schema::Cells {
                    cells: vec![$($crate::schema::Stored::to_cell(&self.$field)),+],
                    children: vec![$($crate::schema::child_rows(&self.$child)),*],
                }
            }

            fn cell_refs<'a>(&'a self, out: &mut Vec<$crate::schema::CellRef<'a>>) {
                out.extend([$($crate::schema::Stored::cell_ref(&self.$field)),+]);
            }

            fn from_cells(
                cells: $crate::schema::Cells,
            ) -> Result<Self, $crate::error::Invalid> {
                let mut r = $crate::schema::Reader::new(&$TABLE, 0, cells);
                Ok(Self {
                    $($field: r.get()?,)+
                    $($child: r.children()?,)*
                })
            }
        }
    };
}

pub(crate) use table;
