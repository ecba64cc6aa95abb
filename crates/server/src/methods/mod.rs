//! Dispatch by method: one file per OpenAPI method, one arm per [`Method`].

mod batch_query;
mod query;
mod unsign;

use std::sync::Arc;

use agreements_domain::ids::ProductCode;
use agreements_domain::token::AppAuthToken;
use agreements_domain::{BizError, Caller};
use agreements_protocol::{Method, SignType};
use agreements_store::Store;
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
    pub app: &'a Arc<App>,
    /// The merchant the call acts for.
    pub caller: Caller,
    /// Now, in Unix seconds.
    pub now: i64,
    /// What the request says beside `biz_content`.
    pub request: Request<'a>,
    /// Wakes the delivery worker after notifications were queued.
    pub outbox: &'a Outbox,
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

/// Runs `method`; returns the success node's JSON.
pub async fn dispatch(
    method: Method,
    call: &Call<'_>,
    biz: &Map<String, Value>,
) -> Result<String, Failure> {
    match method {
        Method::AgreementBatchQuery => batch_query::handle(call, biz).await,
        Method::AgreementQuery => query::handle(call, biz).await,
        Method::AgreementUnsign => unsign::handle(call, biz).await,
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
