//! The documented column sets: one per kind, the same names in CSV headers and JSON Lines
//! fields. They derive from the store's description of each kind's table
//! ([`agreements_store::schema`]): a column of the table is a column of the file (a moment in
//! Beijing time), a child table of one column is a list, and a child table of an enumerated
//! column and a value (an app's keys by sign type) is one column per enumerated value
//! (`rsa2_public_key`, `rsa_public_key`). Reading a row goes through the store's own decoding
//! (the API's types and rules), then the rules of load files below.

use std::borrow::Cow;
use std::sync::LazyLock;

use agreements_domain::ids::{LogonId, SignScene};
use agreements_domain::{Agreement, AgreementStatus, PrincipalType, ThirdPartyType};
use agreements_protocol::PublicKey;
use agreements_protocol::timestamp::{format_beijing, parse_beijing};
use agreements_store::schema::{Cell, Cells, Ty};
use agreements_store::{Kind, Record, shown};

/// Longest display name, notification address or external logon id accepted.
pub const MAX_TEXT_CHARS: usize = 256;

/// One column of a kind's file.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name (CSV header, JSON field).
    pub name: String,
    /// Whether every row must give it (a CSV header must name it).
    pub required: bool,
    /// A list of values: a JSON array, or space-separated in CSV.
    pub list: bool,
    source: Source,
}

/// Where a file column's values are stored.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The table's column at this position.
    Cell {
        column: usize,
        ty: Ty,
        free_text: bool,
    },
    /// The child table at this position, one value per row.
    List { child: usize },
    /// The child table at this position, the row whose first column is `value`.
    Pivot { child: usize, value: &'static str },
}

/// Values files may leave out, and what they mean then.
fn default(kind: Kind, column: &str) -> Option<&'static str> {
    match (kind, column) {
        (Kind::Agreement, "sign_scene") => Some(SignScene::DEFAULT),
        (Kind::Agreement, "third_party_type") => Some(ThirdPartyType::Partner.as_str()),
        (Kind::Product, "principal_type") => Some(agreements_domain::PrincipalType::Card.as_str()),
        _ => None,
    }
}

fn derive(kind: Kind) -> Vec<Column> {
    let table = kind.table();
    let mut columns: Vec<Column> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| Column {
            name: c.name.to_owned(),
            required: !c.nullable && default(kind, c.name).is_none(),
            list: false,
            source: Source::Cell {
                column: i,
                ty: c.ty,
                free_text: c.free_text,
            },
        })
        .collect();
    for (child, c) in table.children.iter().enumerate() {
        match &c.table.columns[1..] {
            [_] => columns.push(Column {
                name: c.field.to_owned(),
                required: false,
                list: true,
                source: Source::List { child },
            }),
            [key, value] => {
                let values = key.one_of.map(|values| values()).unwrap_or_default();
                for v in values {
                    columns.push(Column {
                        name: format!("{}_{}", v.to_ascii_lowercase(), value.name),
                        required: false,
                        list: false,
                        source: Source::Pivot { child, value: v },
                    });
                }
            }
            _ => {}
        }
    }
    columns
}

static COLUMNS: LazyLock<Vec<Vec<Column>>> =
    LazyLock::new(|| Kind::ALL.iter().map(|&k| derive(k)).collect());

/// The columns of `kind`'s files, in the order written.
pub fn columns(kind: Kind) -> &'static [Column] {
    let i = Kind::ALL
        .iter()
        .position(|&k| k == kind)
        .unwrap_or_default();
    COLUMNS.get(i).map_or(&[], Vec::as_slice)
}

/// A value as read from a file: text, or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// One text value.
    Text(Cow<'a, str>),
    /// Several.
    List(Vec<String>),
}

impl Value<'_> {
    /// The value as one text: a list's items separated by spaces (as CSV holds them).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Value::Text(t) => Cow::Borrowed(t),
            Value::List(items) => Cow::Owned(items.join(" ")),
        }
    }
}

/// Why a row was not accepted: the field at fault (empty for the row as a whole) and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The column.
    pub field: String,
    /// The rule broken, for the operator.
    pub reason: String,
}

impl Rejection {
    /// A rejection of `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A row's values by column position (`None`: absent or empty).
pub struct Fields<'r, 'a> {
    values: &'r [Option<Value<'a>>],
}

impl<'r, 'a> Fields<'r, 'a> {
    /// The values of one row, in its kind's [`columns`] order.
    pub fn new(values: &'r [Option<Value<'a>>]) -> Self {
        Self { values }
    }

    fn get(&self, i: usize) -> Option<&'r Value<'a>> {
        self.values.get(i)?.as_ref()
    }
}

fn single<'v>(column: &Column, value: &'v Value<'_>) -> Result<&'v str, Rejection> {
    match value {
        Value::Text(t) => Ok(t),
        Value::List(_) => Err(Rejection::new(
            &column.name,
            "must be a single value, not a list",
        )),
    }
}

fn free_text(name: &str, value: &str) -> Result<(), Rejection> {
    if value.chars().count() > MAX_TEXT_CHARS {
        Err(Rejection::new(
            name,
            format!("is longer than {MAX_TEXT_CHARS} characters"),
        ))
    } else if value.chars().any(char::is_control) {
        Err(Rejection::new(name, "must not contain control characters"))
    } else {
        Ok(())
    }
}

/// The cell a file value stands for in a column of type `ty`.
fn cell(column: &Column, value: &str, ty: Ty, free: bool) -> Result<Cell, Rejection> {
    match ty {
        Ty::Text => {
            if free {
                free_text(&column.name, value)?;
            }
            Ok(Cell::Text(value.to_owned()))
        }
        Ty::Time => parse_beijing(value).map(Cell::Int).ok_or_else(|| {
            Rejection::new(
                &column.name,
                format!("{} is not yyyy-MM-dd HH:mm:ss (Beijing time)", shown(value)),
            )
        }),
        Ty::Int => value
            .parse()
            .map(Cell::Int)
            .map_err(|_| Rejection::new(&column.name, format!("{} is not a number", shown(value)))),
    }
}

/// A key in any form the SDKs accept, as stored (bare base64 SPKI).
fn public_key(column: &Column, text: &str) -> Result<String, Rejection> {
    PublicKey::parse(text)
        .and_then(|k| k.to_spki_base64())
        .map_err(|e| Rejection::new(&column.name, format!("is not a public key: {e}")))
}

/// Reads one row of `kind` with the API's types and rules.
pub fn parse(kind: Kind, f: &Fields<'_, '_>) -> Result<Record, Rejection> {
    let table = kind.table();
    let mut cells = Cells {
        cells: vec![Cell::Null; table.columns.len()],
        children: vec![Vec::new(); table.children.len()],
    };
    for (i, column) in columns(kind).iter().enumerate() {
        let value = f.get(i);
        match column.source {
            Source::Cell {
                column: c,
                ty,
                free_text,
            } => {
                cells.cells[c] = match value {
                    Some(value) => cell(column, single(column, value)?, ty, free_text)?,
                    None => {
                        default(kind, &column.name).map_or(Cell::Null, |d| Cell::Text(d.to_owned()))
                    }
                };
            }
            Source::List { child } => {
                let items: Vec<&str> = match value {
                    None => Vec::new(),
                    Some(Value::Text(t)) => t.split_ascii_whitespace().collect(),
                    Some(Value::List(items)) => items.iter().map(String::as_str).collect(),
                };
                cells.children[child] = items
                    .into_iter()
                    .map(|item| vec![Cell::Text(item.to_owned())])
                    .collect();
            }
            Source::Pivot { child, value: key } => {
                if let Some(value) = value {
                    let text = public_key(column, single(column, value)?)?;
                    cells.children[child].push(vec![Cell::Text(key.to_owned()), Cell::Text(text)]);
                }
            }
        }
    }
    let record = Record::from_cells(kind, cells).map_err(|invalid| {
        // A list's item names the list's column.
        let field = table
            .children
            .iter()
            .find(|c| c.table.name == invalid.table)
            .map_or(invalid.column, |c| c.field);
        Rejection::new(field, invalid.message())
    })?;
    check(&record)?;
    Ok(record)
}

/// The rules across fields, and those of load files beyond the API's types.
fn check(record: &Record) -> Result<(), Rejection> {
    match record {
        Record::Contract(k) if k.valid_to <= k.valid_from => {
            Err(Rejection::new("valid_to", "must be after valid_from"))
        }
        Record::App(a) => match &a.notify_url {
            Some(url) => agreements_domain::address::check_form(url)
                .map(|_| ())
                .map_err(|e| Rejection::new("notify_url", e)),
            None => Ok(()),
        },
        Record::Agreement(a) => check_agreement(a),
        _ => Ok(()),
    }
}

fn check_agreement(a: &Agreement) -> Result<(), Rejection> {
    if a.principal_type == PrincipalType::Card
        && a.principal_id.as_str() != a.alipay_user_id.as_str()
    {
        return Err(Rejection::new(
            "principal_id",
            "a CARD agreement's principal_id must equal alipay_user_id",
        ));
    }
    match (a.status, a.unsign_time) {
        (AgreementStatus::Unsign, None) => {
            return Err(Rejection::new(
                "unsign_time",
                "is required when status is UNSIGN",
            ));
        }
        (s, Some(_)) if s != AgreementStatus::Unsign => {
            return Err(Rejection::new(
                "unsign_time",
                "is only for UNSIGN agreements",
            ));
        }
        _ => {}
    }
    if a.invalid_time <= a.valid_time {
        return Err(Rejection::new("invalid_time", "must be after valid_time"));
    }
    Ok(())
}

/// A record's values in [`columns`] order, for writing.
pub fn values(record: &Record) -> Vec<Option<Value<'static>>> {
    let cells = record.to_cells();
    let text = |cell: &Cell, ty: Ty| match (cell, ty) {
        (Cell::Null, _) => None,
        (Cell::Int(t), Ty::Time) => Some(Value::Text(Cow::Owned(format_beijing(*t)))),
        (cell, _) => Some(Value::Text(Cow::Owned(cell.show()))),
    };
    columns(record.kind())
        .iter()
        .map(|column| match column.source {
            Source::Cell { column: c, ty, .. } => text(&cells.cells[c], ty),
            Source::List { child } => Some(Value::List(
                cells.children[child]
                    .iter()
                    .filter_map(|row| row.first().map(Cell::show))
                    .collect(),
            )),
            Source::Pivot { child, value } => cells.children[child]
                .iter()
                .find(|row| row.first() == Some(&Cell::Text(value.to_owned())))
                .and_then(|row| row.get(1))
                .and_then(|cell| text(cell, Ty::Text)),
        })
        .collect()
}

/// The natural key of a record, for reports (a logon id masked).
pub fn key_of(record: &Record) -> String {
    let kind = record.kind();
    key_text(kind, record.to_cells().key(kind.table()))
}

/// A record's key, from its key's cells, for reports: the cells separated by spaces, a logon id
/// masked.
pub fn key_text(kind: Kind, key: &[Cell]) -> String {
    if kind == Kind::LogonId
        && let [Cell::Text(logon_id)] = key
    {
        return LogonId::parse(logon_id).map_or_else(|_| "(a logon id)".to_owned(), |l| l.masked());
    }
    key.iter().map(Cell::show).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(kind: Kind) -> Vec<String> {
        columns(kind)
            .iter()
            .map(|c| {
                if c.required {
                    c.name.clone()
                } else {
                    format!("[{}]", c.name)
                }
            })
            .collect()
    }

    /// The documented column sets (README, "Loading historical data"), as derived from the
    /// store's tables.
    #[test]
    fn the_files_columns_derive_from_the_tables() {
        assert_eq!(
            names(Kind::App),
            [
                "app_id",
                "partner_id",
                "name",
                "status",
                "[notify_url]",
                "[rsa2_public_key]",
                "[rsa_public_key]",
                "[methods]"
            ]
        );
        assert_eq!(
            names(Kind::Product),
            [
                "personal_product_code",
                "name",
                "[principal_type]",
                "[product_codes]"
            ]
        );
        assert_eq!(
            names(Kind::Agreement),
            [
                "agreement_no",
                "partner_id",
                "sign_app_id",
                "principal_type",
                "principal_id",
                "alipay_user_id",
                "personal_product_code",
                "product_code",
                "[sign_scene]",
                "[third_party_type]",
                "[external_agreement_no]",
                "[external_logon_id]",
                "status",
                "sign_time",
                "valid_time",
                "invalid_time",
                "[unsign_time]"
            ]
        );
        assert_eq!(
            names(Kind::Merchant),
            ["partner_id", "name", "status", "[group_id]"]
        );
    }
}
