//! The PostgreSQL backend, through sqlx (its `postgres` feature only: sqlx's SQLite driver and
//! rusqlite cannot link together). Queries stay within what PostgreSQL-wire distributed databases
//! (CockroachDB, YugabyteDB) accept: no sequences, triggers or server-side functions.

use std::str::FromStr;
use std::time::Duration;

use agreements_domain::batch_query::UserLocator;
use agreements_domain::ids::{
    AgreementNo, AppId, GroupId, PartnerId, PersonalProductCode, ProductCode, SignScene, UserId,
};
use agreements_domain::token::AppAuthToken;
use agreements_domain::{Agreement, Contract, Merchant, Product, ResolvedUser, Scope};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row, raw_sql};

use crate::StoreError;
use crate::migrations::MIGRATIONS;
use crate::records::{
    AgreementEvent, AgreementFilter, AppRecord, Attempt, EventKind, ExternalKey, FoundAgreement,
    NewAccount, NewApp, NewGroup, Notification, NotificationFilter, Resend, Unsign, UnsignOutcome,
};
use crate::rows::{self, AgreementRow, NotificationRow};
use agreements_domain::AgreementStatus;

/// Connections kept open at most.
const MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Serialises concurrent migrations of one database (an arbitrary, fixed key).
const MIGRATION_LOCK: i64 = 0x6167_7265_656d_656e;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("23505" | "23503" | "23514")) =>
            {
                StoreError::Conflict(e.to_string())
            }
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Unavailable(e.to_string()),
        }
    }
}

macro_rules! select_found {
    ($($rest:tt)*) => {
        concat!(
            "SELECT a.agreement_no, a.partner_id, a.sign_app_id, a.principal_type, a.principal_id, \
             a.alipay_user_id, a.personal_product_code, a.product_code, a.sign_scene, a.third_party_type, \
             a.external_agreement_no, a.external_logon_id, a.status, a.sign_time, a.valid_time, a.invalid_time, \
             a.unsign_time, m.group_id, o.open_id \
             FROM agreements a \
             JOIN merchants m ON m.partner_id = a.partner_id \
             LEFT JOIN open_ids o ON o.app_id = $1 AND o.user_id = a.principal_id ",
            $($rest)*
        )
    };
}

macro_rules! by_person {
    ($scope:literal) => {
        select_found!(concat!(
            "WHERE ((a.principal_id = $2 AND a.principal_type = 'CARD') OR (a.principal_id = $3 AND a.principal_type = 'CUSTOMER')) \
             AND a.personal_product_code = $4 AND a.third_party_type = $5 \
             AND (a.status IN ('TEMP', 'NORMAL', 'STOP') OR ($10::boolean AND a.status = 'UNSIGN')) AND a.invalid_time > $6 \
             AND ($7::text IS NULL OR a.sign_scene = $7) AND ($8::text IS NULL OR a.product_code = $8) ",
            $scope,
            " ORDER BY a.sign_time, a.agreement_no"
        ))
    };
}

macro_rules! by_external {
    ($owner:literal) => {
        select_found!(concat!(
            "WHERE ",
            $owner,
            " AND a.personal_product_code = $2 AND a.sign_scene = $3 AND a.external_agreement_no = $4 \
             ORDER BY a.sign_time, a.agreement_no"
        ))
    };
}

fn read_found(r: &PgRow) -> Result<FoundAgreement, StoreError> {
    let text = |i: usize| r.try_get::<String, _>(i);
    AgreementRow {
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
        external_agreement_no: r.try_get(10)?,
        external_logon_id: r.try_get(11)?,
        status: text(12)?,
        times: [r.try_get(13)?, r.try_get(14)?, r.try_get(15)?],
        unsign_time: r.try_get(16)?,
        owner_group: r.try_get(17)?,
        open_id: r.try_get(18)?,
    }
    .into_found()
}

#[derive(Debug)]
pub(crate) struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub(crate) async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("database URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for m in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
            let applied = sqlx::query("SELECT 1 FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !applied {
                raw_sql(m.postgres).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)")
                    .bind(m.version)
                    .bind(m.name)
                    .execute(&mut *tx)
                    .await?;
                tracing::info!(version = m.version, name = m.name, "applied migration");
            }
            tx.commit().await?;
        }
        Ok(())
    }

    pub(crate) async fn loader(
        &self,
        options: crate::LoadOptions,
    ) -> Result<crate::pg_load::PgLoader, StoreError> {
        crate::pg_load::PgLoader::new(self.pool.acquire().await?, options).await
    }

    pub(crate) async fn exporter(&self) -> Result<crate::pg_load::PgExporter, StoreError> {
        crate::pg_load::PgExporter::new(self.pool.acquire().await?).await
    }

    #[cfg(feature = "test-support")]
    pub(crate) async fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub(crate) async fn app(&self, app_id: &str) -> Result<Option<AppRecord>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT partner_id, name, status, notify_url FROM apps WHERE app_id = $1")
                .bind(app_id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let row = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        );
        let keys = sqlx::query(
            "SELECT sign_type, public_key FROM app_keys WHERE app_id = $1 ORDER BY sign_type DESC",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
        let methods = strings(
            sqlx::query("SELECT method FROM app_methods WHERE app_id = $1 ORDER BY method")
                .bind(app_id),
            &self.pool,
        )
        .await?;
        rows::app(app_id, row, keys, methods).map(Some)
    }

    pub(crate) async fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let ids = strings(
            sqlx::query("SELECT app_id FROM apps ORDER BY app_id"),
            &self.pool,
        )
        .await?;
        let mut apps = Vec::with_capacity(ids.len());
        for id in ids {
            apps.extend(self.app(&id).await?);
        }
        Ok(apps)
    }

    pub(crate) async fn merchant(
        &self,
        partner_id: &PartnerId,
    ) -> Result<Option<Merchant>, StoreError> {
        let row = sqlx::query("SELECT name, status, group_id FROM merchants WHERE partner_id = $1")
            .bind(partner_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| rows::merchant(partner_id, (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .transpose()
    }

    pub(crate) async fn product(
        &self,
        code: &PersonalProductCode,
    ) -> Result<Option<Product>, StoreError> {
        // One round trip: no row, the product is unknown; a NULL code, it has no sales products.
        let found = sqlx::query(
            "SELECT pp.product_code FROM products p \
             LEFT JOIN product_pairs pp ON pp.personal_product_code = p.personal_product_code \
             WHERE p.personal_product_code = $1 ORDER BY pp.product_code",
        )
        .bind(code.as_str())
        .fetch_all(&self.pool)
        .await?;
        if found.is_empty() {
            return Ok(None);
        }
        let mut product_codes = Vec::with_capacity(found.len());
        for row in &found {
            if let Some(product_code) = row.try_get::<Option<String>, _>(0)? {
                product_codes.push(rows::product_code(product_code)?);
            }
        }
        Ok(Some(Product {
            personal_product_code: code.clone(),
            product_codes,
        }))
    }

    pub(crate) async fn contracts(
        &self,
        partner_id: &PartnerId,
        products: &[&ProductCode],
    ) -> Result<Vec<Contract>, StoreError> {
        let mut out = Vec::new();
        for product in products {
            let row = sqlx::query("SELECT status, valid_from, valid_to FROM merchant_contracts WHERE partner_id = $1 AND product_code = $2")
                .bind(partner_id.as_str())
                .bind(product.as_str())
                .fetch_optional(&self.pool)
                .await?;
            if let Some(r) = row {
                out.push(rows::contract(
                    partner_id,
                    product,
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?),
                )?);
            }
        }
        Ok(out)
    }

    pub(crate) async fn resolve_user(
        &self,
        locator: &UserLocator,
        app_id: &AppId,
    ) -> Result<Option<ResolvedUser>, StoreError> {
        let row = match locator {
            UserLocator::UserId(id) => {
                sqlx::query("SELECT user_id, customer_id FROM accounts WHERE user_id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
            }
            UserLocator::LogonId(id) => {
                sqlx::query("SELECT a.user_id, a.customer_id FROM logon_ids l JOIN accounts a ON a.user_id = l.user_id WHERE l.logon_id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
            }
            UserLocator::OpenId(id) => {
                sqlx::query(
                    "SELECT a.user_id, a.customer_id FROM open_ids o JOIN accounts a ON a.user_id = o.user_id \
                     WHERE o.app_id = $1 AND o.open_id = $2",
                )
                .bind(app_id.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.map(|r| rows::resolved_user((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
    }

    pub(crate) async fn agreements(
        &self,
        f: &AgreementFilter<'_>,
    ) -> Result<Vec<FoundAgreement>, StoreError> {
        let (sql, owner) = match f.scope {
            Scope::Partner(m) => (by_person!("AND a.partner_id = $9"), m.as_str()),
            Scope::Group(g) => (by_person!("AND m.group_id = $9"), g.as_str()),
        };
        let rows = sqlx::query(sql)
            .bind(f.open_id_app.as_str())
            .bind(f.person.user_id.as_str())
            .bind(f.person.customer_id.as_str())
            .bind(f.personal_product_code.as_str())
            .bind(f.scope.third_party_type().as_str())
            .bind(f.now)
            .bind(f.sign_scene.map(SignScene::as_str))
            .bind(f.product_code.map(ProductCode::as_str))
            .bind(owner)
            .bind(f.include_cancelled)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read_found).collect()
    }

    pub(crate) async fn agreement_by_no(
        &self,
        no: &AgreementNo,
        open_id_app: &AppId,
    ) -> Result<Option<FoundAgreement>, StoreError> {
        let row = sqlx::query(select_found!("WHERE a.agreement_no = $2"))
            .bind(open_id_app.as_str())
            .bind(no.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(read_found).transpose()
    }

    pub(crate) async fn agreements_by_external(
        &self,
        scope: &Scope,
        key: &ExternalKey<'_>,
        open_id_app: &AppId,
    ) -> Result<Vec<FoundAgreement>, StoreError> {
        let (sql, owner) = match scope {
            Scope::Partner(m) => (by_external!("a.partner_id = $5"), m.as_str()),
            Scope::Group(g) => (
                by_external!(
                    "a.partner_id IN (SELECT partner_id FROM merchants WHERE group_id = $5)"
                ),
                g.as_str(),
            ),
        };
        let rows = sqlx::query(sql)
            .bind(open_id_app.as_str())
            .bind(key.personal_product_code.as_str())
            .bind(key.sign_scene.as_str())
            .bind(key.external_agreement_no.as_str())
            .bind(owner)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read_found).collect()
    }

    pub(crate) async fn logon_id_of(&self, user_id: &UserId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT logon_id FROM logon_ids WHERE user_id = $1 ORDER BY logon_id LIMIT 1",
        )
        .bind(user_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub(crate) async fn app_auth_token(
        &self,
        token: &str,
    ) -> Result<Option<AppAuthToken>, StoreError> {
        let Some(r) = sqlx::query("SELECT isv_app_id, partner_id, auth_app_id, status, expires_at FROM app_auth_tokens WHERE token = $1")
            .bind(token)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let row = (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        );
        let methods = strings(
            sqlx::query(
                "SELECT method FROM app_auth_token_methods WHERE token = $1 ORDER BY method",
            )
            .bind(token),
            &self.pool,
        )
        .await?;
        rows::token(token, row, methods).map(Some)
    }

    pub(crate) async fn add_app_auth_token(&self, t: &AppAuthToken) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO app_auth_tokens (token, isv_app_id, partner_id, auth_app_id, status, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.token)
        .bind(t.isv_app_id.as_str())
        .bind(t.partner_id.as_str())
        .bind(t.auth_app_id.as_str())
        .bind(t.status.as_str())
        .bind(t.expires_at)
        .execute(&mut *tx)
        .await?;
        for method in &t.methods {
            sqlx::query("INSERT INTO app_auth_token_methods (token, method) VALUES ($1, $2)")
                .bind(&t.token)
                .bind(method)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn revoke_app_auth_token(&self, token: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE app_auth_tokens SET status = 'REVOKED' WHERE token = $1")
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn group(&self, group_id: &GroupId) -> Result<Option<NewGroup>, StoreError> {
        let row = sqlx::query("SELECT name FROM merchant_groups WHERE group_id = $1")
            .bind(group_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(NewGroup {
                group_id: group_id.clone(),
                name: r.try_get(0)?,
            })
        })
        .transpose()
    }

    pub(crate) async fn add_group(&self, group: &NewGroup) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO merchant_groups (group_id, name) VALUES ($1, $2)")
            .bind(group.group_id.as_str())
            .bind(&group.name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn add_merchant(&self, m: &Merchant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO merchants (partner_id, name, status, group_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(m.partner_id.as_str())
        .bind(&m.name)
        .bind(m.status.as_str())
        .bind(m.group_id.as_ref().map(GroupId::as_str))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn add_product(&self, p: &Product, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO products (personal_product_code, name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(p.personal_product_code.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        for code in &p.product_codes {
            sqlx::query("INSERT INTO product_pairs (personal_product_code, product_code) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(p.personal_product_code.as_str())
                .bind(code.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn add_contract(&self, k: &Contract) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO merchant_contracts (partner_id, product_code, status, valid_from, valid_to) VALUES ($1, $2, $3, $4, $5)")
            .bind(k.partner_id.as_str())
            .bind(k.product_code.as_str())
            .bind(k.status.as_str())
            .bind(k.valid_from)
            .bind(k.valid_to)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn add_app(&self, app: &NewApp) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO apps (app_id, partner_id, name, status, notify_url) VALUES ($1, $2, $3, $4, $5)")
            .bind(app.app_id.as_str())
            .bind(app.partner_id.as_str())
            .bind(&app.name)
            .bind(app.status.as_str())
            .bind(app.notify_url.as_deref())
            .execute(&mut *tx)
            .await?;
        for key in &app.keys {
            sqlx::query("INSERT INTO app_keys (app_id, sign_type, public_key) VALUES ($1, $2, $3)")
                .bind(app.app_id.as_str())
                .bind(key.sign_type.as_str())
                .bind(&key.public_key)
                .execute(&mut *tx)
                .await?;
        }
        for method in &app.methods {
            sqlx::query("INSERT INTO app_methods (app_id, method) VALUES ($1, $2)")
                .bind(app.app_id.as_str())
                .bind(method)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn add_account(&self, a: &NewAccount) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO customers (customer_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(a.customer_id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO accounts (user_id, customer_id, status) VALUES ($1, $2, 'NORMAL')",
        )
        .bind(a.user_id.as_str())
        .bind(a.customer_id.as_str())
        .execute(&mut *tx)
        .await?;
        for logon_id in &a.logon_ids {
            sqlx::query("INSERT INTO logon_ids (logon_id, user_id) VALUES ($1, $2)")
                .bind(logon_id.as_str())
                .bind(a.user_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for (app_id, open_id) in &a.open_ids {
            sqlx::query("INSERT INTO open_ids (app_id, open_id, user_id) VALUES ($1, $2, $3)")
                .bind(app_id.as_str())
                .bind(open_id.as_str())
                .bind(a.user_id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn add_agreement(&self, a: &Agreement, at: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO agreements (agreement_no, partner_id, sign_app_id, principal_type, principal_id, alipay_user_id, \
             personal_product_code, product_code, sign_scene, third_party_type, external_agreement_no, external_logon_id, \
             status, sign_time, valid_time, invalid_time, unsign_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(a.agreement_no.as_str())
        .bind(a.partner_id.as_str())
        .bind(a.sign_app_id.as_str())
        .bind(a.principal_type.as_str())
        .bind(&a.principal_id)
        .bind(a.alipay_user_id.as_str())
        .bind(a.personal_product_code.as_str())
        .bind(a.product_code.as_str())
        .bind(a.sign_scene.as_str())
        .bind(a.third_party_type.as_str())
        .bind(a.external_agreement_no.as_deref())
        .bind(a.external_logon_id.as_deref())
        .bind(a.status.as_str())
        .bind(a.sign_time)
        .bind(a.valid_time)
        .bind(a.invalid_time)
        .bind(a.unsign_time)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            &Event {
                agreement_no: a.agreement_no.as_str(),
                kind: EventKind::Create,
                old_status: None,
                new_status: a.status.as_str(),
                actor: "operator",
                reason: None,
                at,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn unsign(&self, u: &Unsign<'_>) -> Result<UnsignOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let no = u.agreement_no.as_str();
        let Some(status) = sqlx::query_scalar::<_, String>(
            "SELECT status FROM agreements WHERE agreement_no = $1 FOR UPDATE",
        )
        .bind(no)
        .fetch_optional(&mut *tx)
        .await?
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
        sqlx::query(
            "UPDATE agreements SET status = 'UNSIGN', unsign_time = $2 WHERE agreement_no = $1",
        )
        .bind(no)
        .bind(u.at)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            &Event {
                agreement_no: no,
                kind: EventKind::Unsign,
                old_status: Some(old.as_str()),
                new_status: AgreementStatus::Unsign.as_str(),
                actor: u.actor,
                reason: u.reason,
                at: u.at,
            },
        )
        .await?;
        for n in u.notifications {
            sqlx::query(
                "INSERT INTO notifications (notify_id, agreement_no, notify_type, url, sign_type, params, state, \
                 attempts, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', 0, $7, $7)",
            )
            .bind(&n.notify_id)
            .bind(n.agreement_no.as_str())
            .bind(&n.notify_type)
            .bind(&n.url)
            .bind(n.sign_type.as_str())
            .bind(rows::notification_params(n))
            .bind(n.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(UnsignOutcome::Unsigned { old_status: old })
    }

    pub(crate) async fn history(
        &self,
        no: &AgreementNo,
    ) -> Result<Vec<AgreementEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, kind, old_status, new_status, actor, reason, at FROM agreement_events \
             WHERE agreement_no = $1 ORDER BY seq",
        )
        .bind(no.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AgreementEvent {
                    seq: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    old_status: r.try_get(2)?,
                    new_status: r.try_get(3)?,
                    actor: r.try_get(4)?,
                    reason: r.try_get(5)?,
                    at: r.try_get(6)?,
                })
            })
            .collect()
    }

    pub(crate) async fn claim_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let rows = sqlx::query(concat!(
            "UPDATE notifications SET next_attempt_at = $2 WHERE notify_id IN \
             (SELECT notify_id FROM notifications WHERE state = 'PENDING' AND next_attempt_at <= $1 \
              ORDER BY next_attempt_at, notify_id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING ",
            notification_columns!()
        ))
        .bind(now)
        .bind(lease_until)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read_notification).collect()
    }

    pub(crate) async fn record_attempt(
        &self,
        notify_id: &str,
        attempts: u32,
        now: i64,
        attempt: &Attempt,
    ) -> Result<(), StoreError> {
        let (state, next, error, delivered) = rows::attempt_columns(attempt, now);
        sqlx::query(
            "UPDATE notifications SET state = $2, attempts = $3, last_attempt_at = $4, \
             next_attempt_at = COALESCE($5, next_attempt_at), last_error = $6, delivered_at = $7 \
             WHERE notify_id = $1",
        )
        .bind(notify_id)
        .bind(state)
        .bind(i64::from(attempts))
        .bind(now)
        .bind(next)
        .bind(error)
        .bind(delivered)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn notifications(
        &self,
        f: &NotificationFilter<'_>,
    ) -> Result<Vec<Notification>, StoreError> {
        let sql = rows::notifications_query(f, |i| format!("${i}"));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(state) = f.state {
            query = query.bind(state.as_str());
        }
        if let Some(no) = f.agreement_no {
            query = query.bind(no);
        }
        let rows = query.bind(i64::from(f.limit)).fetch_all(&self.pool).await?;
        rows.iter().map(read_notification).collect()
    }

    pub(crate) async fn resend(&self, which: Resend<'_>, now: i64) -> Result<u64, StoreError> {
        const SET: &str = "UPDATE notifications SET state = 'PENDING', attempts = 0, next_attempt_at = $1, \
            last_error = NULL, delivered_at = NULL";
        let done = match which {
            Resend::AllFailed => {
                sqlx::query(AssertSqlSafe(format!("{SET} WHERE state = 'FAILED'")))
                    .bind(now)
                    .execute(&self.pool)
                    .await?
            }
            Resend::Ids(ids) => {
                sqlx::query(AssertSqlSafe(format!("{SET} WHERE notify_id = ANY($2)")))
                    .bind(now)
                    .bind(ids)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(done.rows_affected())
    }
}

/// One history entry to append.
pub(crate) struct Event<'a> {
    pub(crate) agreement_no: &'a str,
    pub(crate) kind: EventKind,
    pub(crate) old_status: Option<&'a str>,
    pub(crate) new_status: &'a str,
    pub(crate) actor: &'a str,
    pub(crate) reason: Option<&'a str>,
    pub(crate) at: i64,
}

/// Appends an event to an agreement's history (the next `seq`), inside `tx`.
pub(crate) async fn insert_event(
    conn: &mut sqlx::PgConnection,
    e: &Event<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO agreement_events (agreement_no, seq, kind, old_status, new_status, actor, reason, at) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7 FROM agreement_events WHERE agreement_no = $1",
    )
    .bind(e.agreement_no)
    .bind(e.kind.as_str())
    .bind(e.old_status)
    .bind(e.new_status)
    .bind(e.actor)
    .bind(e.reason)
    .bind(e.at)
    .execute(conn)
    .await?;
    Ok(())
}

fn read_notification(r: &PgRow) -> Result<Notification, StoreError> {
    NotificationRow {
        texts: [
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get(6)?,
        ],
        attempts: r.try_get(7)?,
        created_at: r.try_get(8)?,
        next_attempt_at: r.try_get(9)?,
        last_attempt_at: r.try_get(10)?,
        last_error: r.try_get(11)?,
        delivered_at: r.try_get(12)?,
    }
    .into_notification()
}

/// The first column of every row, as text.
async fn strings<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    pool: &PgPool,
) -> Result<Vec<String>, StoreError> {
    query
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
}
