//! Signing by consumers: signing sessions, the transaction that creates a signed agreement,
//! `sign.effect`, period rules, consumers' passwords and web sessions, and a person's
//! agreements for their own page.

use std::sync::LazyLock;

use agreements_domain::AgreementStatus;
use agreements_domain::ids::{AgreementNo, CustomerId, UserId};

use crate::Store;
use crate::db::params;
use crate::error::StoreError;
use crate::records::{
    AgreementEvent, ConsumerSession, Credential, EventKind, NewSigned, Notification,
    PeriodRuleRecord, SessionState, SignOutcome, SigningSession,
};
use crate::schema::{Cell, Stored};
use crate::sql::{Sql, sql};
use crate::tables::{AGREEMENTS, SIGNING_SESSIONS};

use super::append_event;

/// A person's agreements with their owner's name: the CARD ones of each of the person's
/// accounts and the CUSTOMER ones of the person, any status, newest first. `$1` customer id.
static OF_PERSON: LazyLock<Sql> = LazyLock::new(|| {
    let columns = AGREEMENTS.column_list(Some("a"));
    Sql::new(format!(
        "SELECT {columns}, m.name FROM agreements a JOIN merchants m ON m.partner_id = a.partner_id \
         WHERE a.principal_type = 'CARD' AND a.principal_id IN (SELECT user_id FROM accounts WHERE customer_id = $1) \
         UNION ALL \
         SELECT {columns}, m.name FROM agreements a JOIN merchants m ON m.partner_id = a.partner_id \
         WHERE a.principal_type = 'CUSTOMER' AND a.principal_id = $1 \
         ORDER BY sign_time DESC, agreement_no DESC"
    ))
});

static SESSION_BY_LINK: LazyLock<Sql> = LazyLock::new(|| {
    Sql::new(format!(
        "SELECT {} FROM signing_sessions WHERE link_hash = $1",
        SIGNING_SESSIONS.column_list(None)
    ))
});

/// An agreement of a person's, with its owner merchant's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonAgreement {
    /// The agreement.
    pub agreement: agreements_domain::Agreement,
    /// Its merchant's name.
    pub merchant_name: String,
}

impl Store {
    /// Opens the signing session of a link, or — when the link (its `link_hash`) opened one
    /// before — returns that one unchanged.
    pub async fn open_signing_session(
        &self,
        session: &SigningSession,
    ) -> Result<SigningSession, StoreError> {
        let mut tx = self.pool.write().await?;
        if let Some(existing) = tx
            .all::<SigningSession>(&SESSION_BY_LINK, &params![session.link_hash.as_str()])
            .await?
            .pop()
        {
            return Ok(existing);
        }
        tx.insert(session).await?;
        tx.commit().await?;
        Ok(session.clone())
    }

    /// The signing session a link (by its `link_hash`) opened, if any.
    pub async fn signing_session_by_link(
        &self,
        link_hash: &str,
    ) -> Result<Option<SigningSession>, StoreError> {
        Ok(self
            .pool
            .conn()
            .await?
            .all::<SigningSession>(&SESSION_BY_LINK, &params![link_hash])
            .await?
            .pop())
    }

    /// A signing session by its id.
    pub async fn signing_session(&self, id: &str) -> Result<Option<SigningSession>, StoreError> {
        self.pool.conn().await?.get(&params![id]).await
    }

    /// Confirms a signing: in one transaction, checks that the session is still open and that
    /// neither the agreement number nor the merchant's number is taken, then writes the
    /// agreement, its period rule, its first event, its notifications and the session's end.
    pub async fn sign(&self, s: &NewSigned<'_>) -> Result<SignOutcome, StoreError> {
        let mut tx = self.pool.write().await?;
        let lock = sql!(
            postgres: "SELECT state FROM signing_sessions WHERE session_id = $1 FOR UPDATE",
            sqlite: "SELECT state FROM signing_sessions WHERE session_id = ?1"
        );
        let Some(row) = tx.row(lock, &params![s.session_id]).await? else {
            return Ok(SignOutcome::NotFound);
        };
        let state = SessionState::from_cell(row.into_iter().next().unwrap_or(Cell::Null))
            .map_err(|rule| StoreError::Corrupt(rule.of("signing_sessions", "state")))?;
        if state != SessionState::Open {
            let session = tx
                .get::<SigningSession>(&params![s.session_id])
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(crate::error::Invalid {
                        table: "signing_sessions",
                        column: "session_id",
                        value: None,
                        rule: "vanished while locked".into(),
                    })
                })?;
            return Ok(SignOutcome::Finished(Box::new(session)));
        }
        let a = s.agreement;
        if tx
            .row(
                sql!("SELECT 1 FROM agreements WHERE agreement_no = $1"),
                &params![&a.agreement_no],
            )
            .await?
            .is_some()
        {
            return Ok(SignOutcome::NumberTaken);
        }
        if let Some(external) = &a.external_agreement_no
            && tx
                .row(
                    sql!(
                        "SELECT 1 FROM agreements WHERE partner_id = $1 AND personal_product_code = $2 \
                         AND sign_scene = $3 AND external_agreement_no = $4"
                    ),
                    &params![
                        &a.partner_id,
                        &a.personal_product_code,
                        &a.sign_scene,
                        external
                    ],
                )
                .await?
                .is_some()
        {
            return Ok(SignOutcome::ExternalTaken);
        }
        tx.insert(a).await?;
        if let Some(rule) = s.period_rule {
            tx.insert(rule).await?;
        }
        tx.insert(&AgreementEvent {
            agreement_no: a.agreement_no.clone(),
            seq: 1,
            kind: EventKind::Sign,
            old_status: None,
            new_status: a.status,
            actor: s.actor.to_owned(),
            reason: None,
            at: a.sign_time,
        })
        .await?;
        for n in s.notifications {
            tx.insert(&Notification::from(n.clone())).await?;
        }
        tx.execute(
            sql!(
                "UPDATE signing_sessions SET state = $2, agreement_no = $3, user_id = $4, finished_at = $5 \
                 WHERE session_id = $1"
            ),
            &params![
                s.session_id,
                SessionState::Signed.as_str(),
                &a.agreement_no,
                &a.alipay_user_id,
                a.sign_time
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(SignOutcome::Signed)
    }

    /// Declines an open signing session; returns whether it was open.
    pub async fn decline_signing(
        &self,
        session_id: &str,
        user_id: &UserId,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.write().await?;
        let changed = tx
            .execute(
                sql!(
                    "UPDATE signing_sessions SET state = $2, user_id = $3, finished_at = $4 \
                     WHERE session_id = $1 AND state = $5"
                ),
                &params![
                    session_id,
                    SessionState::Declined.as_str(),
                    user_id,
                    at,
                    SessionState::Open.as_str()
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// Makes a `TEMP` agreement `NORMAL` with an event; returns the status it had (`None`: no
    /// such agreement). Any other status is left as it is.
    pub async fn effect(
        &self,
        no: &AgreementNo,
        actor: &str,
        at: i64,
    ) -> Result<Option<AgreementStatus>, StoreError> {
        let mut tx = self.pool.write().await?;
        let lock = sql!(
            postgres: "SELECT status FROM agreements WHERE agreement_no = $1 FOR UPDATE",
            sqlite: "SELECT status FROM agreements WHERE agreement_no = ?1"
        );
        let Some(row) = tx.row(lock, &params![no]).await? else {
            return Ok(None);
        };
        let old = AgreementStatus::from_cell(row.into_iter().next().unwrap_or(Cell::Null))
            .map_err(|rule| StoreError::Corrupt(rule.of("agreements", "status")))?;
        if old == AgreementStatus::Temp {
            tx.execute(
                sql!("UPDATE agreements SET status = $2 WHERE agreement_no = $1"),
                &params![no, AgreementStatus::Normal.as_str()],
            )
            .await?;
            append_event(
                &mut tx,
                no,
                EventKind::Effect,
                Some(old),
                AgreementStatus::Normal,
                actor,
                None,
                at,
            )
            .await?;
            tx.commit().await?;
        }
        Ok(Some(old))
    }

    /// Moves a periodic agreement's next deduction day from `from` to `to` (dates
    /// `yyyy-MM-dd`), with a `RESCHEDULE` event; returns whether it moved (`false`: the rule's
    /// next day is no longer `from`, or there is no rule).
    #[allow(clippy::too_many_arguments)] // one column each
    pub async fn reschedule(
        &self,
        no: &AgreementNo,
        from: &str,
        to: &str,
        actor: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.write().await?;
        let moved = tx
            .execute(
                sql!(
                    "UPDATE period_rules SET next_deduct_time = $3 \
                     WHERE agreement_no = $1 AND next_deduct_time = $2"
                ),
                &params![no, from, to],
            )
            .await?;
        if moved != 1 {
            return Ok(false);
        }
        let row = tx
            .row(
                sql!("SELECT status FROM agreements WHERE agreement_no = $1"),
                &params![no],
            )
            .await?;
        let status = AgreementStatus::from_cell(
            row.and_then(|r| r.into_iter().next()).unwrap_or(Cell::Null),
        )
        .map_err(|rule| StoreError::Corrupt(rule.of("agreements", "status")))?;
        let reason = match reason {
            Some(memo) => format!("next deduction {from} → {to}: {memo}"),
            None => format!("next deduction {from} → {to}"),
        };
        append_event(
            &mut tx,
            no,
            EventKind::Reschedule,
            Some(status),
            status,
            actor,
            Some(&reason),
            at,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The period rule of an agreement, if it has one.
    pub async fn period_rule(
        &self,
        no: &AgreementNo,
    ) -> Result<Option<PeriodRuleRecord>, StoreError> {
        self.pool.conn().await?.get(&params![no]).await
    }

    /// Every agreement of a person (all accounts, all merchants, any status), newest first.
    pub async fn agreements_of_person(
        &self,
        customer_id: &CustomerId,
    ) -> Result<Vec<PersonAgreement>, StoreError> {
        let rows = self
            .pool
            .conn()
            .await?
            .rows(&OF_PERSON, &params![customer_id])
            .await?;
        let width = AGREEMENTS.columns.len();
        rows.into_iter()
            .map(|mut cells| {
                let name = cells.split_off(width.min(cells.len()));
                let merchant_name =
                    String::from_cell(name.into_iter().next().unwrap_or(Cell::Null))
                        .map_err(|rule| StoreError::Corrupt(rule.of("merchants", "name")))?;
                let agreement =
                    <agreements_domain::Agreement as crate::schema::Entity>::from_cells(
                        crate::schema::Cells {
                            cells,
                            children: Vec::new(),
                        },
                    )
                    .map_err(StoreError::Corrupt)?;
                Ok(PersonAgreement {
                    agreement,
                    merchant_name,
                })
            })
            .collect()
    }

    /// Sets (or replaces) an account's password hash.
    pub async fn set_password(&self, credential: &Credential) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.execute(
            sql!("DELETE FROM consumer_credentials WHERE user_id = $1"),
            &params![&credential.user_id],
        )
        .await?;
        tx.insert(credential).await?;
        // A new password ends every web session of the account.
        tx.execute(
            sql!("DELETE FROM consumer_sessions WHERE user_id = $1"),
            &params![&credential.user_id],
        )
        .await?;
        tx.commit().await
    }

    /// An account's password hash, if it has one.
    pub async fn credential(&self, user_id: &UserId) -> Result<Option<Credential>, StoreError> {
        self.pool.conn().await?.get(&params![user_id]).await
    }

    /// Records a consumer's web session (and removes expired ones).
    pub async fn start_consumer_session(
        &self,
        session: &ConsumerSession,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.execute(
            sql!("DELETE FROM consumer_sessions WHERE expires_at <= $1"),
            &params![session.created_at],
        )
        .await?;
        tx.insert(session).await?;
        tx.commit().await
    }

    /// A consumer's web session by the hash of its secret, if it has not ended at `now`.
    pub async fn consumer_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<ConsumerSession>, StoreError> {
        let session: Option<ConsumerSession> =
            self.pool.conn().await?.get(&params![token_hash]).await?;
        Ok(session.filter(|s| s.expires_at > now))
    }

    /// Ends a consumer's web session.
    pub async fn end_consumer_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.write().await?;
        tx.execute(
            sql!("DELETE FROM consumer_sessions WHERE token_hash = $1"),
            &params![token_hash],
        )
        .await?;
        tx.commit().await
    }
}
