//! Dispatch by method: one file per OpenAPI method, one arm per [`Method`].

mod batch_query;
mod query;
mod unsign;

use agreements_domain::ids::ProductCode;
use agreements_domain::token::AppAuthToken;
use agreements_domain::{BizError, Caller};
use agreements_protocol::{Method, SignType};
use agreements_store::Store;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::apps::App;
use crate::cache::Catalogue;
use crate::failure::Failure;
use crate::notify::Outbox;

/// What a method handler may use.
#[derive(Debug)]
pub struct Call<'a> {
    /// The store.
    pub store: &'a Store,
    /// Products and contracts, cached.
    pub catalogue: &'a Catalogue,
    /// The calling app.
    pub app: &'a App,
    /// The merchant the call acts for.
    pub caller: Caller,
    /// Now, in Unix seconds.
    pub now: i64,
    /// What the request says beside `biz_content`.
    pub request: Request<'a>,
    /// Wakes the delivery worker after notifications were queued.
    pub outbox: &'a Outbox,
    /// Where notifications may go.
    pub notify_policy: &'a agreements_domain::address::AddressPolicy,
}

/// The public parameters a method may use.
#[derive(Debug)]
pub struct Request<'a> {
    /// The request's signature algorithm (its notifications are signed the same way).
    pub sign_type: SignType,
    /// `notify_url`, when given.
    pub notify_url: Option<&'a str>,
    /// The ISV authorisation the request acts under, when it carries one.
    pub token: Option<AppAuthToken>,
}

/// A method's answer: the fields of its success node after `code` and `msg`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// `alipay.user.agreement.batch.query`.
    BatchQuery(agreements_domain::batch_query::Response),
    /// `alipay.user.agreement.query`.
    Query(Box<agreements_domain::query::Response>),
    /// `alipay.user.agreement.unsign`: no fields of its own.
    Unsign {},
}

/// Runs `method`.
pub async fn dispatch(
    method: Method,
    call: &Call<'_>,
    biz: &Map<String, Value>,
) -> Result<Answer, Failure> {
    match method {
        Method::AgreementBatchQuery => batch_query::handle(call, biz).await.map(Answer::BatchQuery),
        Method::AgreementQuery => query::handle(call, biz)
            .await
            .map(|r| Answer::Query(Box::new(r))),
        Method::AgreementUnsign => unsign::handle(call, biz).await.map(|()| Answer::Unsign {}),
    }
}

/// Step 4 of agreements.md §5: the calling merchant needs an active contract for one of
/// `products`, else `MERCHANT_AGREEMENT_IS_NOT_EXIST`.
async fn require_contract(call: &Call<'_>, products: &[&ProductCode]) -> Result<(), Failure> {
    let contracts = call
        .catalogue
        .contracts(call.store, &call.caller.merchant, products)
        .await?;
    if contracts.iter().any(|c| c.is_active(call.now)) {
        Ok(())
    } else {
        Err(BizError::MerchantAgreementNotExist.into())
    }
}
