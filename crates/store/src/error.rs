//! What goes wrong in storage, in the terms callers act on. Driver errors (rusqlite, sqlx) are
//! classified here and kept as the `source` of the error they become; they never leave the crate
//! as their own types.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A driver's error (or another low-level cause), kept whole for the log.
pub type Cause = Arc<dyn Error + Send + Sync + 'static>;

/// What went wrong in storage.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or failed (I/O, locked, full, a lost connection): answer
    /// `20000`, retry later.
    #[error("storage unavailable: {context}")]
    Unavailable {
        /// What the store was doing.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: Cause,
    },
    /// A write conflicts with stored data: a unique, foreign-key or check constraint refused it.
    #[error("conflict: the database's {constraint} constraint refused the write")]
    Conflict {
        /// The constraint as the database names it (PostgreSQL: the constraint's name; SQLite:
        /// its kind and columns, e.g. `UNIQUE merchants.partner_id`).
        constraint: String,
        /// The driver's error.
        #[source]
        source: Cause,
    },
    /// Stored data breaks the domain's rules (an id of the wrong shape, an unknown status).
    #[error("stored data is inconsistent")]
    Corrupt(#[source] Invalid),
}

impl StoreError {
    /// Storage failed while doing `context` (the cause is kept as the source).
    pub fn unavailable(context: &'static str, source: impl Error + Send + Sync + 'static) -> Self {
        Self::Unavailable {
            context,
            source: Arc::new(source),
        }
    }
}

/// A value that breaks its column's rule: read from the database (then the store calls it
/// corrupt) or from a load file (then the import rejects the row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The table.
    pub table: &'static str,
    /// The column (or, for a child table's row, the record's field that holds it).
    pub column: &'static str,
    /// The offending value, when it may be shown (never a logon id).
    pub value: Option<String>,
    /// The rule broken, e.g. `must be 16 digits starting with 2088`, `is required`.
    pub rule: String,
}

impl Invalid {
    /// `"value" rule`, or the rule alone when the value is not shown; a long value is cut to
    /// its first 40 characters.
    pub fn message(&self) -> String {
        match &self.value {
            Some(value) => format!("{} {}", shown(value), self.rule),
            None => self.rule.clone(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}: {}", self.table, self.column, self.message())
    }
}

impl Error for Invalid {}

/// A value quoted for a message, cut to 40 characters.
pub fn shown(value: &str) -> String {
    let cut: String = value.chars().take(40).collect();
    if cut.len() < value.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// Why a value cannot be a column's, before the column is known (see [`Invalid`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) value: Option<String>,
    pub(crate) rule: String,
}

impl Rule {
    pub(crate) fn new(value: Option<&str>, rule: impl Into<String>) -> Self {
        Self {
            value: value.map(str::to_owned),
            rule: rule.into(),
        }
    }

    /// The rule, broken in `table.column`.
    pub(crate) fn of(self, table: &'static str, column: &'static str) -> Invalid {
        Invalid {
            table,
            column,
            value: self.value,
            rule: self.rule,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, message) = &e
            && f.code == rusqlite::ErrorCode::ConstraintViolation
        {
            // SQLite names no constraint, only its kind and columns: "UNIQUE constraint failed:
            // merchants.partner_id", "FOREIGN KEY constraint failed".
            let constraint = message
                .as_deref()
                .map(|m| m.replace(" constraint failed", "").replace(':', ""))
                .unwrap_or_else(|| "a".to_owned());
            return Self::Conflict {
                constraint,
                source: Arc::new(e),
            };
        }
        Self::unavailable("SQLite", e)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && matches!(db.code().as_deref(), Some("23505" | "23503" | "23514"))
        {
            return Self::Conflict {
                constraint: db.constraint().unwrap_or("a").to_owned(),
                source: Arc::new(e),
            };
        }
        Self::unavailable("PostgreSQL", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_quoted_and_cut() {
        let invalid = Invalid {
            table: "agreements",
            column: "status",
            value: Some("ACTIVE".into()),
            rule: "is not one of TEMP, NORMAL".into(),
        };
        assert_eq!(
            invalid.to_string(),
            "agreements.status: \"ACTIVE\" is not one of TEMP, NORMAL"
        );
        assert_eq!(shown(&"x".repeat(50)), format!("{:?}…", "x".repeat(40)));
    }
}
