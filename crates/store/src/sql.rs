//! Statements, each written once in PostgreSQL's spelling (`$1`, `$2`, …) and adapted to SQLite's
//! (`?1`, `?2`, …) here, the one place the placeholders differ; and the statements every table
//! gets from its description.

use std::borrow::Cow;

use crate::schema::{Table, names};

/// One statement in both dialects.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub(crate) postgres: Cow<'static, str>,
    pub(crate) sqlite: Cow<'static, str>,
}

impl Sql {
    /// A statement built at run time, in PostgreSQL's spelling.
    pub(crate) fn new(postgres: String) -> Self {
        let sqlite = String::from_utf8(to_sqlite(postgres.as_bytes()))
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Self {
            postgres: Cow::Owned(postgres),
            sqlite: Cow::Owned(sqlite),
        }
    }

    /// The same statement in both dialects (no placeholders, or a dialect's own text).
    pub(crate) fn only(text: String) -> Self {
        Self {
            postgres: Cow::Owned(text.clone()),
            sqlite: Cow::Owned(text),
        }
    }
}

/// `$n` → `?n`: the same length, so it also runs at compile time (see [`sql!`]).
pub(crate) const fn to_sqlite_const<const N: usize>(postgres: &str) -> [u8; N] {
    let bytes = postgres.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if bytes[i] == b'$' && i + 1 < N && bytes[i + 1].is_ascii_digit() {
            b'?'
        } else {
            bytes[i]
        };
        i += 1;
    }
    out
}

fn to_sqlite(postgres: &[u8]) -> Vec<u8> {
    postgres
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if b == b'$' && postgres.get(i + 1).is_some_and(u8::is_ascii_digit) {
                b'?'
            } else {
                b
            }
        })
        .collect()
}

/// A statement literal in PostgreSQL's spelling, as a `&'static Sql` of both dialects made at
/// compile time; or, where the dialects really differ, each one's own text side by side.
macro_rules! sql {
    (postgres: $postgres:expr, sqlite: $sqlite:expr $(,)?) => {{
        const SQL: $crate::sql::Sql = $crate::sql::Sql {
            postgres: std::borrow::Cow::Borrowed($postgres),
            sqlite: std::borrow::Cow::Borrowed($sqlite),
        };
        &SQL
    }};
    ($text:expr) => {{
        const POSTGRES: &str = $text;
        const SQLITE: [u8; POSTGRES.len()] = $crate::sql::to_sqlite_const(POSTGRES);
        const SQL: $crate::sql::Sql = $crate::sql::Sql {
            postgres: std::borrow::Cow::Borrowed(POSTGRES),
            sqlite: std::borrow::Cow::Borrowed(match std::str::from_utf8(&SQLITE) {
                Ok(text) => text,
                Err(_) => panic!("statement is not UTF-8"),
            }),
        };
        &SQL
    }};
}

pub(crate) use sql;

/// `$from, $from+1, …` (`n` of them).
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `c1 = $from AND c2 = $from+1 …` over `columns` (each prefixed by `alias.` when given).
pub(crate) fn matches<'a>(
    columns: impl Iterator<Item = &'a str>,
    alias: Option<&str>,
    from: usize,
) -> String {
    columns
        .enumerate()
        .map(|(i, c)| match alias {
            Some(a) => format!("{a}.{c} = ${}", from + i),
            None => format!("{c} = ${}", from + i),
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The statements every table gets from its description, built once.
#[derive(Debug)]
pub(crate) struct TableSql {
    pub(crate) insert: Sql,
    pub(crate) insert_new: Sql,
    pub(crate) select_by_key: Sql,
    pub(crate) update_by_key: Sql,
    pub(crate) select_children: Sql,
    pub(crate) delete_children: Sql,
}

impl Table {
    /// Its statements.
    pub(crate) fn sql(&self) -> &TableSql {
        self.sql.get_or_init(|| TableSql {
            insert: self.insert(),
            insert_new: self.insert_new(),
            select_by_key: self.select_by_key(),
            update_by_key: self.update_by_key(),
            select_children: self.select_children(),
            delete_children: self.delete_children(),
        })
    }
}

/// The statements a table gets from its description.
impl Table {
    /// `INSERT INTO t (…) VALUES ($1, …)`, every column.
    fn insert(&self) -> Sql {
        Sql::new(format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.name,
            self.column_list(None),
            placeholders(1, self.columns.len())
        ))
    }

    /// [`Table::insert`] that writes nothing when the key is taken.
    fn insert_new(&self) -> Sql {
        Sql::new(format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
            self.name,
            self.column_list(None),
            placeholders(1, self.columns.len()),
            self.key.join(", ")
        ))
    }

    /// Every column of the row whose key is `$1, …`.
    fn select_by_key(&self) -> Sql {
        Sql::new(format!(
            "SELECT {} FROM {} WHERE {}",
            self.column_list(None),
            self.name,
            matches(self.key.iter().copied(), None, 1)
        ))
    }

    /// Sets every column but the key's of the row whose key is `$1, …` to `$k+1, …`.
    fn update_by_key(&self) -> Sql {
        let k = self.key_len();
        Sql::new(format!(
            "UPDATE {} SET {} WHERE {}",
            self.name,
            matches(self.columns[k..].iter().map(|c| c.name), None, k + 1).replace(" AND ", ", "),
            matches(self.key.iter().copied(), None, 1)
        ))
    }

    /// A page of rows in key order: all, or those after the key `$1, …`.
    pub(crate) fn page(&self, after: bool, limit: usize) -> Sql {
        let keys = names(self.key.iter().copied(), None);
        let filter = if after {
            format!("WHERE ({keys}) > ({})", placeholders(1, self.key_len()))
        } else {
            String::new()
        };
        Sql::new(format!(
            "SELECT {} FROM {} {filter} ORDER BY {keys} LIMIT {limit}",
            self.column_list(None),
            self.name,
        ))
    }

    /// A child table's rows of the parent `$1` (all columns but the parent's).
    fn select_children(&self) -> Sql {
        Sql::new(format!(
            "SELECT {} FROM {} WHERE {} = $1",
            names(self.columns[1..].iter().map(|c| c.name), None),
            self.name,
            self.columns[0].name,
        ))
    }

    /// Deletes a child table's rows of the parent `$1`.
    fn delete_children(&self) -> Sql {
        Sql::new(format!(
            "DELETE FROM {} WHERE {} = $1",
            self.name, self.columns[0].name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_adapted_for_sqlite_at_compile_time_and_at_run_time() {
        let fixed = sql!("SELECT a FROM t WHERE a = $1 AND b = $12 AND c = '$x'");
        assert_eq!(
            fixed.sqlite,
            "SELECT a FROM t WHERE a = ?1 AND b = ?12 AND c = '$x'"
        );
        let built = Sql::new("UPDATE t SET a = $2 WHERE b = $1".to_owned());
        assert_eq!(built.sqlite, "UPDATE t SET a = ?2 WHERE b = ?1");
        assert_eq!(built.postgres, "UPDATE t SET a = $2 WHERE b = $1");
    }

    #[test]
    fn a_table_derives_its_statements() {
        let t = &crate::tables::MERCHANT_CONTRACTS;
        assert_eq!(
            t.insert().postgres,
            "INSERT INTO merchant_contracts (partner_id, product_code, status, valid_from, valid_to) \
             VALUES ($1, $2, $3, $4, $5)"
        );
        assert_eq!(
            t.update_by_key().sqlite,
            "UPDATE merchant_contracts SET status = ?3, valid_from = ?4, valid_to = ?5 \
             WHERE partner_id = ?1 AND product_code = ?2"
        );
        assert_eq!(
            t.page(true, 10).postgres,
            "SELECT partner_id, product_code, status, valid_from, valid_to FROM merchant_contracts \
             WHERE (partner_id, product_code) > ($1, $2) ORDER BY partner_id, product_code LIMIT 10"
        );
    }
}
