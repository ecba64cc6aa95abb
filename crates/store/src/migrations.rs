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
    /// PostgreSQL DDL, the same schema step.
    pub postgres: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "compact_keys",
        sqlite: include_str!("../migrations/sqlite/0002_compact_keys.sql"),
        postgres: include_str!("../migrations/postgres/0002_compact_keys.sql"),
    },
    Migration {
        version: 3,
        name: "unsign",
        sqlite: include_str!("../migrations/sqlite/0003_unsign.sql"),
        postgres: include_str!("../migrations/postgres/0003_unsign.sql"),
    },
    Migration {
        version: 4,
        name: "signing",
        sqlite: include_str!("../migrations/sqlite/0004_signing.sql"),
        postgres: include_str!("../migrations/postgres/0004_signing.sql"),
    },
    Migration {
        version: 5,
        name: "product_principal",
        sqlite: include_str!("../migrations/sqlite/0005_product_principal.sql"),
        postgres: include_str!("../migrations/postgres/0005_product_principal.sql"),
    },
    Migration {
        version: 6,
        name: "content_keys",
        sqlite: include_str!("../migrations/sqlite/0006_content_keys.sql"),
        postgres: include_str!("../migrations/postgres/0006_content_keys.sql"),
    },
    Migration {
        version: 7,
        name: "certificates",
        sqlite: include_str!("../migrations/sqlite/0007_certificates.sql"),
        postgres: include_str!("../migrations/postgres/0007_certificates.sql"),
    },
    Migration {
        version: 8,
        name: "audit",
        sqlite: include_str!("../migrations/sqlite/0008_audit.sql"),
        postgres: include_str!("../migrations/postgres/0008_audit.sql"),
    },
    Migration {
        version: 9,
        name: "open_ids_unique_index",
        sqlite: include_str!("../migrations/sqlite/0009_open_ids_unique_index.sql"),
        postgres: include_str!("../migrations/postgres/0009_open_ids_unique_index.sql"),
    },
    Migration {
        version: 10,
        name: "audit_people",
        sqlite: include_str!("../migrations/sqlite/0010_audit_people.sql"),
        postgres: include_str!("../migrations/postgres/0010_audit_people.sql"),
    },
    Migration {
        version: 11,
        name: "covering_principal_index",
        sqlite: include_str!("../migrations/sqlite/0011_covering_principal_index.sql"),
        postgres: include_str!("../migrations/postgres/0011_covering_principal_index.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn files(backend: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn both_backends_have_the_same_migrations_and_all_are_listed() {
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files("sqlite"), listed);
        assert_eq!(files("postgres"), listed);
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }
}
