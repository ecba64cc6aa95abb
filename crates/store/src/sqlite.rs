//! The SQLite backend: a few pooled rusqlite connections, used inline by the caller's thread.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agreements_domain::batch_query::UserLocator;
use agreements_domain::ids::{
    AgreementNo, AppId, GroupId, PartnerId, PersonalProductCode, ProductCode, SignScene, UserId,
};
use agreements_domain::token::AppAuthToken;
use agreements_domain::{Agreement, Contract, Merchant, Product, ResolvedUser, Scope};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use crate::StoreError;
use crate::migrations::MIGRATIONS;
use crate::records::{
    AgreementEvent, AgreementFilter, AppRecord, Attempt, EventKind, ExternalKey, FoundAgreement,
    NewAccount, NewApp, NewGroup, NewNotification, Notification, NotificationFilter, Resend,
    Unsign, UnsignOutcome,
};
use crate::rows::{self, AgreementRow, NOTIFICATION_COLUMNS, NotificationRow};
use agreements_domain::AgreementStatus;
use agreements_domain::notify::DeliveryState;

/// Idle connections kept for reuse. Beyond it a burst opens (and then closes) extra ones, so a
/// caller never waits for a connection: waiting would block an async worker.
const MAX_IDLE: usize = 8;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

/// How long a writer waits for another writer's lock before giving up.
const BUSY_TIMEOUT_MS: u64 = 2_000;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict(e.to_string())
            }
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

#[derive(Debug)]
pub(crate) struct SqliteStore {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let store = Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        };
        store.with(|c| {
            c.pragma_update(None, "journal_mode", "WAL")?;
            migrate(c)
        })?;
        Ok(store)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
        // Every statement the gateway and the delivery worker use stays prepared (rusqlite keeps
        // 16 by default; with more, they evict each other and each call parses its SQL again).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Plans never depend on bound values: otherwise SQLite looks at a parameter's value (to
        // check whether a query implies a partial index's condition, e.g. agreements_by_external)
        // and must prepare the statement again whenever it is bound anew — a full parse and plan
        // on every lookup.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
        Ok(conn)
    }

    /// Runs `f` on a pooled connection; a connection that failed is dropped, not reused.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = f(&mut conn);
        if !matches!(result, Err(StoreError::Unavailable(_))) {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        result
    }

    pub(crate) fn loader(
        &self,
        options: crate::LoadOptions,
    ) -> Result<crate::sqlite_load::SqliteLoader, StoreError> {
        crate::sqlite_load::SqliteLoader::new(self.connect()?, options)
    }

    pub(crate) fn exporter(&self) -> Result<crate::sqlite_load::SqliteExporter, StoreError> {
        crate::sqlite_load::SqliteExporter::new(self.connect()?)
    }

    #[cfg(feature = "test-support")]
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        self.with(|c| Ok(c.execute_batch(sql)?))
    }

    pub(crate) fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    pub(crate) fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT version FROM schema_migrations ORDER BY version")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    pub(crate) fn app(&self, app_id: &str) -> Result<Option<AppRecord>, StoreError> {
        self.with(|c| {
            let Some(row) = c
                .prepare_cached("SELECT partner_id, name, status, notify_url FROM apps WHERE app_id = ?1")?
                .query_row([app_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?
            else {
                return Ok(None);
            };
            let keys = c
                .prepare_cached("SELECT sign_type, public_key FROM app_keys WHERE app_id = ?1 ORDER BY sign_type DESC")?
                .query_map([app_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let methods = c
                .prepare_cached("SELECT method FROM app_methods WHERE app_id = ?1 ORDER BY method")?
                .query_map([app_id], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            rows::app(app_id, row, keys, methods).map(Some)
        })
    }

    pub(crate) fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let ids = self.with(|c| {
            Ok(c.prepare_cached("SELECT app_id FROM apps ORDER BY app_id")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?)
        })?;
        ids.iter()
            .filter_map(|id| self.app(id).transpose())
            .collect()
    }

    pub(crate) fn merchant(&self, partner_id: &PartnerId) -> Result<Option<Merchant>, StoreError> {
        self.with(|c| {
            c.prepare_cached("SELECT name, status, group_id FROM merchants WHERE partner_id = ?1")?
                .query_row([partner_id.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?
                .map(|row| rows::merchant(partner_id, row))
                .transpose()
        })
    }

    pub(crate) fn product(
        &self,
        code: &PersonalProductCode,
    ) -> Result<Option<Product>, StoreError> {
        self.with(|c| {
            let exists = c
                .prepare_cached("SELECT 1 FROM products WHERE personal_product_code = ?1")?
                .query_row([code.as_str()], |_| Ok(()))
                .optional()?;
            if exists.is_none() {
                return Ok(None);
            }
            let product_codes = c
                .prepare_cached("SELECT product_code FROM product_pairs WHERE personal_product_code = ?1 ORDER BY product_code")?
                .query_map([code.as_str()], |r| r.get::<_, String>(0))?
                .map(|row| rows::product_code(row?))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(Some(Product { personal_product_code: code.clone(), product_codes }))
        })
    }

    pub(crate) fn contracts(
        &self,
        partner_id: &PartnerId,
        products: &[&ProductCode],
    ) -> Result<Vec<Contract>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT status, valid_from, valid_to FROM merchant_contracts WHERE partner_id = ?1 AND product_code = ?2",
            )?;
            let mut out = Vec::new();
            for product in products {
                let row = stmt
                    .query_row([partner_id.as_str(), product.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                if let Some(row) = row {
                    out.push(rows::contract(partner_id, product, row)?);
                }
            }
            Ok(out)
        })
    }

    pub(crate) fn resolve_user(
        &self,
        locator: &UserLocator,
        app_id: &AppId,
    ) -> Result<Option<ResolvedUser>, StoreError> {
        self.with(|c| {
            let row = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?));
            let found = match locator {
                UserLocator::UserId(id) => c
                    .prepare_cached("SELECT user_id, customer_id FROM accounts WHERE user_id = ?1")?
                    .query_row([id.as_str()], row),
                UserLocator::LogonId(id) => c
                    .prepare_cached(
                        "SELECT a.user_id, a.customer_id FROM logon_ids l JOIN accounts a ON a.user_id = l.user_id \
                         WHERE l.logon_id = ?1",
                    )?
                    .query_row([id.as_str()], row),
                UserLocator::OpenId(id) => c
                    .prepare_cached(
                        "SELECT a.user_id, a.customer_id FROM open_ids o JOIN accounts a ON a.user_id = o.user_id \
                         WHERE o.app_id = ?1 AND o.open_id = ?2",
                    )?
                    .query_row([app_id.as_str(), id.as_str()], row),
            }
            .optional()?;
            found.map(rows::resolved_user).transpose()
        })
    }

    pub(crate) fn agreements(
        &self,
        f: &AgreementFilter<'_>,
    ) -> Result<Vec<FoundAgreement>, StoreError> {
        // Only the conditions the filter sets, each a plain comparison: a condition on whether a
        // parameter is bound (`?n IS NULL OR …`) makes SQLite prepare the statement again at
        // every call (its plan depends on the value).
        //
        // The two principals are two SELECTs joined by UNION ALL (a row has one principal type,
        // so they never overlap): each is one range scan of agreements_by_principal that yields
        // rows in (sign_time, agreement_no) order, and SQLite merges them without a temporary
        // B-tree. Written as `(CARD …) OR (CUSTOMER …)` the plan was a multi-index OR, which
        // builds an ephemeral table (its own page cache, allocated and freed per execution) to
        // drop duplicates and another to sort — about 100 µs per answer on the project machine.
        let owner = scope_owner(f.scope);
        let (app, user, customer) = (
            f.open_id_app.as_str(),
            f.person.user_id.as_str(),
            f.person.customer_id.as_str(),
        );
        let (product, tpt) = (
            f.personal_product_code.as_str(),
            f.scope.third_party_type().as_str(),
        );
        let mut values: Vec<&dyn rusqlite::ToSql> =
            vec![&app, &user, &customer, &product, &tpt, &f.now, &owner];
        let scene = f.sign_scene.map(SignScene::as_str);
        if let Some(scene) = &scene {
            values.push(scene);
        }
        let sales = f.product_code.map(ProductCode::as_str);
        if let Some(sales) = &sales {
            values.push(sales);
        }
        let sql = agreements_sql(
            f.scope,
            f.include_cancelled,
            scene.is_some(),
            sales.is_some(),
        );
        self.with(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(values.as_slice(), read_found)?;
            rows.map(|row| row?).collect()
        })
    }

    pub(crate) fn agreement_by_no(
        &self,
        no: &AgreementNo,
        open_id_app: &AppId,
    ) -> Result<Option<FoundAgreement>, StoreError> {
        let sql = format!("{SELECT_FOUND} WHERE a.agreement_no = ?2");
        self.with(|c| {
            c.prepare_cached(&sql)?
                .query_row(params![open_id_app.as_str(), no.as_str()], read_found)
                .optional()?
                .transpose()
        })
    }

    pub(crate) fn agreements_by_external(
        &self,
        scope: &Scope,
        key: &ExternalKey<'_>,
        open_id_app: &AppId,
    ) -> Result<Vec<FoundAgreement>, StoreError> {
        // The group scope names its merchants with a subquery so that each partner still uses
        // the unique index on (partner, product, scene, external number).
        let owner_sql = match scope {
            Scope::Partner(_) => "a.partner_id = ?5",
            Scope::Group(_) => {
                "a.partner_id IN (SELECT partner_id FROM merchants WHERE group_id = ?5)"
            }
        };
        let owner = scope_owner(scope);
        let sql = format!(
            "{SELECT_FOUND} WHERE {owner_sql} AND a.personal_product_code = ?2 AND a.sign_scene = ?3 \
             AND a.external_agreement_no = ?4 ORDER BY a.sign_time, a.agreement_no"
        );
        self.with(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    open_id_app.as_str(),
                    key.personal_product_code.as_str(),
                    key.sign_scene.as_str(),
                    key.external_agreement_no.as_str(),
                    owner
                ],
                read_found,
            )?;
            rows.map(|row| row?).collect()
        })
    }

    pub(crate) fn logon_id_of(&self, user_id: &UserId) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(c.prepare_cached(
                "SELECT logon_id FROM logon_ids WHERE user_id = ?1 ORDER BY logon_id LIMIT 1",
            )?
            .query_row([user_id.as_str()], |r| r.get::<_, String>(0))
            .optional()?)
        })
    }

    pub(crate) fn app_auth_token(&self, token: &str) -> Result<Option<AppAuthToken>, StoreError> {
        self.with(|c| {
            let Some(row) = c
                .prepare_cached(
                    "SELECT isv_app_id, partner_id, auth_app_id, status, expires_at FROM app_auth_tokens WHERE token = ?1",
                )?
                .query_row([token], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                .optional()?
            else {
                return Ok(None);
            };
            let methods = c
                .prepare_cached("SELECT method FROM app_auth_token_methods WHERE token = ?1 ORDER BY method")?
                .query_map([token], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            rows::token(token, row, methods).map(Some)
        })
    }

    pub(crate) fn add_app_auth_token(&self, t: &AppAuthToken) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.prepare_cached(
                "INSERT INTO app_auth_tokens (token, isv_app_id, partner_id, auth_app_id, status, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                t.token,
                t.isv_app_id.as_str(),
                t.partner_id.as_str(),
                t.auth_app_id.as_str(),
                t.status.as_str(),
                t.expires_at
            ])?;
            for method in &t.methods {
                tx.prepare_cached("INSERT INTO app_auth_token_methods (token, method) VALUES (?1, ?2)")?
                    .execute([t.token.as_str(), method])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    pub(crate) fn revoke_app_auth_token(&self, token: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            let changed = c
                .prepare_cached("UPDATE app_auth_tokens SET status = 'REVOKED' WHERE token = ?1")?
                .execute([token])?;
            Ok(changed > 0)
        })
    }

    pub(crate) fn group(&self, group_id: &GroupId) -> Result<Option<NewGroup>, StoreError> {
        self.with(|c| {
            Ok(
                c.prepare_cached("SELECT name FROM merchant_groups WHERE group_id = ?1")?
                    .query_row([group_id.as_str()], |r| r.get::<_, String>(0))
                    .optional()?
                    .map(|name| NewGroup {
                        group_id: group_id.clone(),
                        name,
                    }),
            )
        })
    }

    pub(crate) fn add_group(&self, group: &NewGroup) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("INSERT INTO merchant_groups (group_id, name) VALUES (?1, ?2)")?
                .execute(params![group.group_id.as_str(), group.name])?;
            Ok(())
        })
    }

    pub(crate) fn add_merchant(&self, m: &Merchant) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached("INSERT INTO merchants (partner_id, name, status, group_id) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![m.partner_id.as_str(), m.name, m.status.as_str(), m.group_id.as_ref().map(GroupId::as_str)])?;
            Ok(())
        })
    }

    pub(crate) fn add_product(&self, p: &Product, name: &str) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.prepare_cached("INSERT OR IGNORE INTO products (personal_product_code, name) VALUES (?1, ?2)")?
                .execute(params![p.personal_product_code.as_str(), name])?;
            for code in &p.product_codes {
                tx.prepare_cached("INSERT OR IGNORE INTO product_pairs (personal_product_code, product_code) VALUES (?1, ?2)")?
                    .execute(params![p.personal_product_code.as_str(), code.as_str()])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    pub(crate) fn add_contract(&self, k: &Contract) -> Result<(), StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO merchant_contracts (partner_id, product_code, status, valid_from, valid_to) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![k.partner_id.as_str(), k.product_code.as_str(), k.status.as_str(), k.valid_from, k.valid_to])?;
            Ok(())
        })
    }

    pub(crate) fn add_app(&self, app: &NewApp) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.prepare_cached("INSERT INTO apps (app_id, partner_id, name, status, notify_url) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![app.app_id.as_str(), app.partner_id.as_str(), app.name, app.status.as_str(), app.notify_url])?;
            for key in &app.keys {
                tx.prepare_cached("INSERT INTO app_keys (app_id, sign_type, public_key) VALUES (?1, ?2, ?3)")?
                    .execute(params![app.app_id.as_str(), key.sign_type.as_str(), key.public_key])?;
            }
            for method in &app.methods {
                tx.prepare_cached("INSERT INTO app_methods (app_id, method) VALUES (?1, ?2)")?
                    .execute(params![app.app_id.as_str(), method])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    pub(crate) fn add_account(&self, a: &NewAccount) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.prepare_cached("INSERT OR IGNORE INTO customers (customer_id) VALUES (?1)")?
                .execute([a.customer_id.as_str()])?;
            tx.prepare_cached(
                "INSERT INTO accounts (user_id, customer_id, status) VALUES (?1, ?2, 'NORMAL')",
            )?
            .execute([a.user_id.as_str(), a.customer_id.as_str()])?;
            for logon_id in &a.logon_ids {
                tx.prepare_cached("INSERT INTO logon_ids (logon_id, user_id) VALUES (?1, ?2)")?
                    .execute([logon_id.as_str(), a.user_id.as_str()])?;
            }
            for (app_id, open_id) in &a.open_ids {
                tx.prepare_cached(
                    "INSERT INTO open_ids (app_id, open_id, user_id) VALUES (?1, ?2, ?3)",
                )?
                .execute([
                    app_id.as_str(),
                    open_id.as_str(),
                    a.user_id.as_str(),
                ])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    pub(crate) fn add_agreement(&self, a: &Agreement, at: i64) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.prepare_cached(
                "INSERT INTO agreements (agreement_no, partner_id, sign_app_id, principal_type, principal_id, alipay_user_id, \
                 personal_product_code, product_code, sign_scene, third_party_type, external_agreement_no, external_logon_id, \
                 status, sign_time, valid_time, invalid_time, unsign_time) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?
            .execute(params![
                a.agreement_no.as_str(),
                a.partner_id.as_str(),
                a.sign_app_id.as_str(),
                a.principal_type.as_str(),
                a.principal_id,
                a.alipay_user_id.as_str(),
                a.personal_product_code.as_str(),
                a.product_code.as_str(),
                a.sign_scene.as_str(),
                a.third_party_type.as_str(),
                a.external_agreement_no,
                a.external_logon_id,
                a.status.as_str(),
                a.sign_time,
                a.valid_time,
                a.invalid_time,
                a.unsign_time,
            ])?;
            insert_event(
                &tx,
                a.agreement_no.as_str(),
                EventKind::Create,
                None,
                a.status.as_str(),
                "operator",
                None,
                at,
            )?;
            tx.commit()?;
            Ok(())
        })
    }
}

/// The columns [`read_found`] reads: the agreement, its owner's group, and the principal's open id
/// in the app bound to `?1`.
const SELECT_FOUND: &str = "SELECT a.agreement_no, a.partner_id, a.sign_app_id, a.principal_type, a.principal_id, \
    a.alipay_user_id, a.personal_product_code, a.product_code, a.sign_scene, a.third_party_type, \
    a.external_agreement_no, a.external_logon_id, a.status, a.sign_time, a.valid_time, a.invalid_time, \
    a.unsign_time, m.group_id, o.open_id \
    FROM agreements a \
    JOIN merchants m ON m.partner_id = a.partner_id \
    LEFT JOIN open_ids o ON o.app_id = ?1 AND o.user_id = a.principal_id";

/// The agreements query of a filter with these conditions set; parameters ?1 open id app, ?2 user
/// id, ?3 customer id, ?4 agreement product, ?5 third party type, ?6 now, ?7 owner, then the
/// sign scene and the sales product when set.
fn agreements_sql(scope: &Scope, include_cancelled: bool, scene: bool, sales: bool) -> String {
    let mut conditions = String::from(
        "AND a.personal_product_code = ?4 AND a.third_party_type = ?5 AND a.invalid_time > ?6 ",
    );
    conditions.push_str(match scope {
        Scope::Partner(_) => "AND a.partner_id = ?7",
        Scope::Group(_) => "AND m.group_id = ?7",
    });
    if !include_cancelled {
        conditions.push_str(" AND a.status IN ('TEMP', 'NORMAL', 'STOP')");
    }
    let mut n = 7;
    for (set, column) in [(scene, "sign_scene"), (sales, "product_code")] {
        if set {
            n += 1;
            conditions.push_str(&format!(" AND a.{column} = ?{n}"));
        }
    }
    format!(
        "{SELECT_FOUND} WHERE a.principal_id = ?2 AND a.principal_type = 'CARD' {conditions} \
         UNION ALL \
         {SELECT_FOUND} WHERE a.principal_id = ?3 AND a.principal_type = 'CUSTOMER' {conditions} \
         ORDER BY sign_time, agreement_no"
    )
}

/// The id a scope's owner condition is bound to: the merchant, or the group.
fn scope_owner(scope: &Scope) -> &str {
    match scope {
        Scope::Partner(m) => m.as_str(),
        Scope::Group(g) => g.as_str(),
    }
}

/// A row of [`SELECT_FOUND`]. The outer `Result` is the driver's, the inner one says whether
/// the stored values obey the domain's rules.
fn read_found(r: &Row<'_>) -> rusqlite::Result<Result<FoundAgreement, StoreError>> {
    let text = |i: usize| r.get::<_, String>(i);
    let row = AgreementRow {
        texts: [
            text(0)?,
            text(1)?,
            text(2)?,
            text(3)?,
            text(4)?,
            text(5)?,
            text(6)?,
            text(7)?,
            text(8)?,
            text(9)?,
        ],
        external_agreement_no: r.get(10)?,
        external_logon_id: r.get(11)?,
        status: text(12)?,
        times: [r.get(13)?, r.get(14)?, r.get(15)?],
        unsign_time: r.get(16)?,
        owner_group: r.get(17)?,
        open_id: r.get(18)?,
    };
    Ok(row.into_found())
}

fn migrate(c: &mut Connection) -> Result<(), StoreError> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    for m in MIGRATIONS {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied = tx
            .query_row(
                "SELECT 1 FROM schema_migrations WHERE version = ?1",
                [m.version],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !applied {
            tx.execute_batch(m.sqlite)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, unixepoch())",
                params![m.version, m.name],
            )?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        tx.commit()?;
    }
    Ok(())
}

/// Appends an event to an agreement's history (the next `seq`).
#[allow(clippy::too_many_arguments)] // one column each
pub(crate) fn insert_event(
    c: &Connection,
    agreement_no: &str,
    kind: EventKind,
    old_status: Option<&str>,
    new_status: &str,
    actor: &str,
    reason: Option<&str>,
    at: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO agreement_events (agreement_no, seq, kind, old_status, new_status, actor, reason, at) \
         SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7 FROM agreement_events WHERE agreement_no = ?1",
    )?
    .execute(params![agreement_no, kind.as_str(), old_status, new_status, actor, reason, at])?;
    Ok(())
}

fn insert_notification(c: &Connection, n: &NewNotification) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO notifications (notify_id, agreement_no, notify_type, url, sign_type, params, state, attempts, \
         created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'PENDING', 0, ?7, ?7)",
    )?
    .execute(params![
        n.notify_id,
        n.agreement_no.as_str(),
        n.notify_type,
        n.url,
        n.sign_type.as_str(),
        rows::notification_params(n),
        n.created_at
    ])?;
    Ok(())
}

fn read_notification(r: &Row<'_>) -> rusqlite::Result<NotificationRow> {
    Ok(NotificationRow {
        texts: [
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ],
        attempts: r.get(7)?,
        created_at: r.get(8)?,
        next_attempt_at: r.get(9)?,
        last_attempt_at: r.get(10)?,
        last_error: r.get(11)?,
        delivered_at: r.get(12)?,
    })
}

impl SqliteStore {
    pub(crate) fn unsign(&self, u: &Unsign<'_>) -> Result<UnsignOutcome, StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let no = u.agreement_no.as_str();
            let Some(status) = tx
                .prepare_cached("SELECT status FROM agreements WHERE agreement_no = ?1")?
                .query_row([no], |r| r.get::<_, String>(0))
                .optional()?
            else {
                return Ok(UnsignOutcome::NotFound);
            };
            let old = rows::known(
                "agreements.status",
                &status,
                AgreementStatus::parse(&status),
            )?;
            if old == AgreementStatus::Unsign {
                return Ok(UnsignOutcome::AlreadyUnsigned);
            }
            tx.prepare_cached(
                "UPDATE agreements SET status = 'UNSIGN', unsign_time = ?2 WHERE agreement_no = ?1",
            )?
            .execute(params![no, u.at])?;
            insert_event(
                &tx,
                no,
                EventKind::Unsign,
                Some(old.as_str()),
                AgreementStatus::Unsign.as_str(),
                u.actor,
                u.reason,
                u.at,
            )?;
            for n in u.notifications {
                insert_notification(&tx, n)?;
            }
            tx.commit()?;
            Ok(UnsignOutcome::Unsigned { old_status: old })
        })
    }

    pub(crate) fn history(&self, no: &AgreementNo) -> Result<Vec<AgreementEvent>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, kind, old_status, new_status, actor, reason, at FROM agreement_events \
                 WHERE agreement_no = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map([no.as_str()], |r| {
                Ok(AgreementEvent {
                    seq: r.get(0)?,
                    kind: r.get(1)?,
                    old_status: r.get(2)?,
                    new_status: r.get(3)?,
                    actor: r.get(4)?,
                    reason: r.get(5)?,
                    at: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    pub(crate) fn claim_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let sql = format!(
            "UPDATE notifications SET next_attempt_at = ?2 WHERE notify_id IN \
             (SELECT notify_id FROM notifications WHERE state = 'PENDING' AND next_attempt_at <= ?1 \
              ORDER BY next_attempt_at, notify_id LIMIT ?3) RETURNING {NOTIFICATION_COLUMNS}"
        );
        self.with(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params![now, lease_until, limit], read_notification)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(NotificationRow::into_notification)
                .collect()
        })
    }

    pub(crate) fn record_attempt(
        &self,
        notify_id: &str,
        attempts: u32,
        now: i64,
        attempt: &Attempt,
    ) -> Result<(), StoreError> {
        let (state, next, error, delivered) = rows::attempt_columns(attempt, now);
        self.with(|c| {
            c.prepare_cached(
                "UPDATE notifications SET state = ?2, attempts = ?3, last_attempt_at = ?4, \
                 next_attempt_at = COALESCE(?5, next_attempt_at), last_error = ?6, delivered_at = ?7 \
                 WHERE notify_id = ?1",
            )?
            .execute(params![notify_id, state, attempts, now, next, error, delivered])?;
            Ok(())
        })
    }

    pub(crate) fn notifications(
        &self,
        f: &NotificationFilter<'_>,
    ) -> Result<Vec<Notification>, StoreError> {
        let sql = rows::notifications_query(f, |i| format!("?{i}"));
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::new();
        let state = f.state.map(DeliveryState::as_str);
        if let Some(state) = &state {
            values.push(state);
        }
        if let Some(no) = &f.agreement_no {
            values.push(no);
        }
        values.push(&f.limit);
        self.with(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(values.as_slice(), read_notification)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(NotificationRow::into_notification)
                .collect()
        })
    }

    pub(crate) fn resend(&self, which: Resend<'_>, now: i64) -> Result<u64, StoreError> {
        const SET: &str = "UPDATE notifications SET state = 'PENDING', attempts = 0, next_attempt_at = ?1, \
            last_error = NULL, delivered_at = NULL";
        self.with(|c| {
            let tx = c.transaction()?;
            let changed = match which {
                Resend::AllFailed => tx
                    .prepare_cached(&format!("{SET} WHERE state = 'FAILED'"))?
                    .execute([now])?,
                Resend::Ids(ids) => {
                    let mut stmt = tx.prepare_cached(&format!("{SET} WHERE notify_id = ?2"))?;
                    let mut n = 0;
                    for id in ids {
                        n += stmt.execute(params![now, id])?;
                    }
                    n
                }
            };
            tx.commit()?;
            Ok(changed as u64)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every variant of the agreements query is two range scans merged in index order: no
    /// multi-index OR, no temporary B-tree (each costs an ephemeral table per execution).
    #[test]
    fn the_agreements_query_merges_two_range_scans() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        let scopes = [
            Scope::Partner(PartnerId::parse("2088000000000001").unwrap()),
            Scope::Group(GroupId::parse("G1").unwrap()),
        ];
        for scope in &scopes {
            for (cancelled, scene, sales) in [
                (false, false, false),
                (true, false, false),
                (false, true, false),
                (false, false, true),
                (true, true, true),
            ] {
                let sql = agreements_sql(scope, cancelled, scene, sales);
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let values = vec!["x"; stmt.parameter_count()];
                let plan: Vec<String> = stmt
                    .query_map(rusqlite::params_from_iter(values), |r| {
                        r.get::<_, String>(3)
                    })
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let plan = plan.join("\n");
                assert!(plan.contains("MERGE (UNION ALL)"), "{plan}");
                assert_eq!(
                    plan.matches("SEARCH a USING INDEX agreements_by_principal")
                        .count(),
                    2,
                    "{plan}"
                );
                assert!(!plan.contains("TEMP B-TREE"), "{plan}");
                assert!(!plan.contains("MULTI-INDEX OR"), "{plan}");
            }
        }
    }
}
