//! Embedded schema migrations. Never edit an applied one: add the next version.

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Applied in ascending order, each once.
    pub version: i64,
    /// Short name, the file name without version and extension.
    pub name: &'static str,
    /// SQLite DDL.
    pub sqlite: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "initial",
    sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
}];
