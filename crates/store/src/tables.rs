//! Every table, described once (see [`crate::schema`]): the columns are the record's fields of
//! the same names, in the table's order, each column's type taken from its field's. The
//! migrations create these tables; a test checks both backends' schemas against these
//! descriptions.

use agreements_domain::ids::{AppId, CustomerId, PersonalProductCode, ProductCode};
use agreements_domain::token::AppAuthToken;
use agreements_domain::{Agreement, Contract, Merchant};
use agreements_protocol::{Method, SignType};

use crate::error::Invalid;
use crate::load::Kind;
use crate::records::{
    AccountRecord, AgreementEvent, AppCert, AppContentKey, AppKey, AppRecord, AuditEntry,
    ConsumerSession, Credential, KeySunset, LogonIdRecord, NewGroup, Notification, OpenIdRecord,
    PeriodRuleRecord, PlatformCert, ProductRecord, SigningSession,
};
use std::sync::OnceLock;

use crate::schema::{Cell, ChildValue, Column, Reader, Reference, Stored, Table, table};

const MERCHANT: Reference = Reference {
    column: "partner_id",
    to: "merchants",
    target: "partner_id",
    what: "merchant",
    defined_by: Kind::Merchant,
};

const ACCOUNT: Reference = Reference {
    column: "user_id",
    to: "accounts",
    target: "user_id",
    what: "account",
    defined_by: Kind::Account,
};

table! {
    /// Merchant groups (集团).
    MERCHANT_GROUPS = "merchant_groups" for NewGroup {
        columns: [group_id, name],
        key: [group_id],
        unique: [],
        references: [],
        children: [],
    }
}

table! {
    /// Merchants.
    MERCHANTS = "merchants" for Merchant {
        columns: [partner_id, name, status, group_id],
        key: [partner_id],
        unique: [],
        references: [Reference {
            column: "group_id",
            to: "merchant_groups",
            target: "group_id",
            what: "merchant group",
            defined_by: Kind::Group,
        }],
        children: [],
    }
}

table! {
    /// Agreement products; their sales products are in [`PRODUCT_PAIRS`].
    PRODUCTS = "products" for ProductRecord {
        columns: [personal_product_code, name, principal_type],
        key: [personal_product_code],
        unique: [],
        references: [],
        children: [product_codes => PRODUCT_PAIRS],
    }
}

/// The sales products of an agreement product.
pub(crate) static PRODUCT_PAIRS: Table = Table {
    name: "product_pairs",
    columns: &[
        Column::new::<PersonalProductCode>("personal_product_code"),
        Column::new::<ProductCode>("product_code"),
    ],
    key: &["personal_product_code", "product_code"],
    uniques: &[],
    references: &[],
    children: &[],
    sql: OnceLock::new(),
};

table! {
    /// A merchant's contract for a sales product.
    MERCHANT_CONTRACTS = "merchant_contracts" for Contract {
        columns: [partner_id, product_code, status, valid_from as time, valid_to as time],
        key: [partner_id, product_code],
        unique: [],
        references: [MERCHANT],
        children: [],
    }
}

table! {
    /// Apps; their keys are in [`APP_KEYS`], their granted methods in [`APP_METHODS`].
    APPS = "apps" for AppRecord {
        columns: [app_id, partner_id, name, status, notify_url],
        key: [app_id],
        unique: [],
        references: [MERCHANT],
        children: [keys => APP_KEYS, methods => APP_METHODS],
    }
}

/// One request-verification key of an app per sign type (bare base64 SPKI DER).
pub(crate) static APP_KEYS: Table = Table {
    name: "app_keys",
    columns: &[
        Column::new::<AppId>("app_id"),
        Column::new::<SignType>("sign_type"),
        Column::new::<String>("public_key"),
    ],
    key: &["app_id", "sign_type"],
    uniques: &[],
    references: &[],
    children: &[],
    sql: OnceLock::new(),
};

impl ChildValue for AppKey {
    fn write(&self, out: &mut Vec<Cell>) {
        out.push(self.sign_type.to_cell());
        out.push(self.public_key.to_cell());
    }

    fn read(r: &mut Reader) -> Result<Self, Invalid> {
        Ok(Self {
            sign_type: r.get()?,
            public_key: r.get()?,
        })
    }
}

/// The methods an app may call.
pub(crate) static APP_METHODS: Table = Table {
    name: "app_methods",
    columns: &[
        Column::new::<AppId>("app_id"),
        Column::new::<Method>("method"),
    ],
    key: &["app_id", "method"],
    uniques: &[],
    references: &[],
    children: &[],
    sql: OnceLock::new(),
};

table! {
    /// ISV authorisations (agreements.md §4.1); the methods granted are in
    /// [`APP_AUTH_TOKEN_METHODS`].
    APP_AUTH_TOKENS = "app_auth_tokens" for AppAuthToken {
        columns: [token, isv_app_id, partner_id, auth_app_id, status, expires_at as time],
        key: [token],
        unique: [],
        references: [MERCHANT],
        children: [methods => APP_AUTH_TOKEN_METHODS],
    }
}

/// The methods an ISV authorisation grants.
pub(crate) static APP_AUTH_TOKEN_METHODS: Table = Table {
    name: "app_auth_token_methods",
    columns: &[
        Column::new::<String>("token"),
        Column::new::<Method>("method"),
    ],
    key: &["token", "method"],
    uniques: &[],
    references: &[],
    children: &[],
    sql: OnceLock::new(),
};

/// A person (支付宝用户): nothing but the id its accounts share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Person {
    pub(crate) customer_id: CustomerId,
}

table! {
    /// Persons: every account belongs to one, written with its first account.
    CUSTOMERS = "customers" for Person {
        columns: [customer_id],
        key: [customer_id],
        unique: [],
        references: [],
        children: [],
    }
}

table! {
    /// Accounts (支付宝账号); the person a new account names is added with it.
    ACCOUNTS = "accounts" for AccountRecord {
        columns: [user_id, customer_id, status],
        key: [user_id],
        unique: [],
        references: [],
        children: [],
    }
}

table! {
    /// Logon ids, normalised, naming accounts.
    LOGON_IDS = "logon_ids" for LogonIdRecord {
        columns: [logon_id, user_id],
        key: [logon_id],
        unique: [],
        references: [ACCOUNT],
        children: [],
    }
}

table! {
    /// App-scoped open ids naming accounts: one per account and app.
    OPEN_IDS = "open_ids" for OpenIdRecord {
        columns: [app_id, open_id, user_id],
        key: [app_id, open_id],
        unique: [[app_id, user_id]],
        references: [ACCOUNT],
        children: [],
    }
}

table! {
    /// Withholding agreements (agreements.md §3); the merchant's own number is unique per
    /// merchant, product and scene.
    AGREEMENTS = "agreements" for Agreement {
        columns: [
            agreement_no,
            partner_id,
            sign_app_id,
            principal_type,
            principal_id,
            alipay_user_id,
            personal_product_code,
            product_code,
            sign_scene,
            third_party_type,
            external_agreement_no,
            external_logon_id,
            status,
            sign_time as time,
            valid_time as time,
            invalid_time as time,
            unsign_time as time,
        ],
        key: [agreement_no],
        unique: [[partner_id, personal_product_code, sign_scene, external_agreement_no]],
        references: [MERCHANT, Reference { column: "alipay_user_id", ..ACCOUNT }],
        children: [],
    }
}

table! {
    /// Each agreement's history, numbered 1, 2, … per agreement.
    AGREEMENT_EVENTS = "agreement_events" for AgreementEvent {
        columns: [agreement_no, seq, kind, old_status, new_status, actor, reason, at as time],
        key: [agreement_no, seq],
        unique: [],
        references: [],
        children: [],
    }
}

table! {
    /// The read-access audit trail: who read or changed whose agreements, and the outcome.
    AUDIT_ENTRIES = "audit_entries" for AuditEntry {
        columns: [
            id,
            at_ms,
            channel,
            method,
            app_id,
            partner_id,
            isv_app_id,
            token_suffix,
            user_id,
            asked,
            returned,
            agreement_nos,
            code,
            sub_code,
        ],
        key: [id],
        unique: [],
        references: [],
        children: [],
    }
}

table! {
    /// The notification outbox (agreements.md §7).
    NOTIFICATIONS = "notifications" for Notification {
        columns: [
            notify_id,
            agreement_no,
            notify_type,
            url,
            sign_type,
            params,
            state,
            attempts,
            created_at as time,
            next_attempt_at as time,
            last_attempt_at as time,
            last_error,
            delivered_at as time,
        ],
        key: [notify_id],
        unique: [],
        references: [],
        children: [],
    }
}

table! {
    /// Signing sessions: one per page.sign link (sign-flow.md).
    SIGNING_SESSIONS = "signing_sessions" for SigningSession {
        columns: [
            session_id,
            link_hash,
            app_id,
            auth_app_id,
            partner_id,
            sign_type,
            biz_content,
            timestamp,
            notify_url,
            return_url,
            state,
            created_at as time,
            expires_at as time,
            agreement_no,
            user_id,
            finished_at as time,
        ],
        key: [session_id],
        unique: [[link_hash]],
        references: [MERCHANT],
        children: [],
    }
}

table! {
    /// The period rules of periodic agreements.
    PERIOD_RULES = "period_rules" for PeriodRuleRecord {
        columns: [
            agreement_no,
            period_type,
            period,
            execute_time,
            single_amount,
            total_amount,
            total_payments,
            next_deduct_time,
        ],
        key: [agreement_no],
        unique: [],
        references: [],
        children: [],
    }
}

table! {
    /// Consumers' passwords.
    CONSUMER_CREDENTIALS = "consumer_credentials" for Credential {
        columns: [user_id, password_hash, updated_at as time],
        key: [user_id],
        unique: [],
        references: [ACCOUNT],
        children: [],
    }
}

table! {
    /// Consumers signed in on the web pages.
    CONSUMER_SESSIONS = "consumer_sessions" for ConsumerSession {
        columns: [token_hash, user_id, csrf_token, created_at as time, expires_at as time],
        key: [token_hash],
        unique: [],
        references: [ACCOUNT],
        children: [],
    }
}

table! {
    /// Apps' content-encryption keys (never read with the app, never exported).
    APP_CONTENT_KEYS = "app_content_keys" for AppContentKey {
        columns: [app_id, content_key, updated_at as time],
        key: [app_id],
        unique: [],
        references: [APP],
        children: [],
    }
}

const APP: Reference = Reference {
    column: "app_id",
    to: "apps",
    target: "app_id",
    what: "app",
    defined_by: Kind::App,
};

table! {
    /// The platform's roots and signing certificates (certificate mode).
    PLATFORM_CERTS = "platform_certs" for PlatformCert {
        columns: [cert_sn, role, chain_pem, not_before as time, not_after as time, created_at as time],
        key: [cert_sn],
        unique: [],
        references: [],
        children: [],
    }
}

table! {
    /// Apps' certificates (certificate mode).
    APP_CERTS = "app_certs" for AppCert {
        columns: [
            app_id,
            cert_sn,
            cert_pem,
            not_before as time,
            not_after as time,
            created_at as time,
            retired_at as time,
        ],
        key: [app_id, cert_sn],
        unique: [],
        references: [APP],
        children: [],
    }
}

table! {
    /// When apps that switched to certificate mode stop being served by their public keys.
    APP_KEY_SUNSETS = "app_key_sunsets" for KeySunset {
        columns: [app_id, sunset_at as time],
        key: [app_id],
        unique: [],
        references: [APP],
        children: [],
    }
}

/// Every table.
pub(crate) static ALL: [&Table; 26] = [
    &MERCHANT_GROUPS,
    &MERCHANTS,
    &PRODUCTS,
    &PRODUCT_PAIRS,
    &MERCHANT_CONTRACTS,
    &APPS,
    &APP_KEYS,
    &APP_METHODS,
    &APP_AUTH_TOKENS,
    &APP_AUTH_TOKEN_METHODS,
    &CUSTOMERS,
    &ACCOUNTS,
    &LOGON_IDS,
    &OPEN_IDS,
    &AGREEMENTS,
    &AGREEMENT_EVENTS,
    &NOTIFICATIONS,
    &SIGNING_SESSIONS,
    &PERIOD_RULES,
    &CONSUMER_CREDENTIALS,
    &CONSUMER_SESSIONS,
    &APP_CONTENT_KEYS,
    &PLATFORM_CERTS,
    &APP_CERTS,
    &APP_KEY_SUNSETS,
    &AUDIT_ENTRIES,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The invariants the statements and loaders rely on: keys are the leading columns, every
    /// name a description uses is a column, a child table starts with its parent's key.
    #[test]
    fn every_description_names_its_own_columns() {
        for table in ALL {
            let leading: Vec<&str> = table.key_columns().iter().map(|c| c.name).collect();
            assert_eq!(leading, table.key, "{}", table.name);
            for unique in table.uniques {
                for name in *unique {
                    table.index(name);
                }
            }
            for reference in table.references {
                table.index(reference.column);
                let to = ALL.iter().find(|t| t.name == reference.to).unwrap();
                to.index(reference.target);
            }
            for child in table.children {
                assert_eq!(
                    child.table.columns[0].name, table.key[0],
                    "{}",
                    child.table.name
                );
                assert_eq!(child.table.columns[0].ty, table.columns[0].ty);
            }
            let mut names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), table.columns.len(), "{}", table.name);
        }
    }

    #[test]
    fn column_types_come_from_the_fields() {
        let status = AGREEMENTS.column("status");
        assert_eq!(status.ty, crate::schema::Ty::Text);
        assert!(!status.nullable);
        assert_eq!(
            (status.one_of.unwrap())(),
            ["TEMP", "NORMAL", "STOP", "UNSIGN"]
        );
        assert_eq!(AGREEMENTS.column("unsign_time").ty, crate::schema::Ty::Time);
        assert!(AGREEMENTS.column("unsign_time").nullable);
        assert!(AGREEMENTS.column("external_logon_id").free_text);
        assert!(!AGREEMENTS.column("external_agreement_no").free_text);
        assert_eq!(NOTIFICATIONS.column("attempts").ty, crate::schema::Ty::Int);
    }
}
