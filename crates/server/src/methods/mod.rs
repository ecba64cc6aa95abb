//! Dispatch by method: one file per OpenAPI method, one arm per [`Method`].

mod batch_query;
mod cert_download;
mod execution_plan;
pub mod page_sign;
mod query;
mod sign_effect;
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
    /// How long a signing session stays open when the request names no `effect_time`.
    pub signing_ttl_secs: i64,
    /// The platform's certificates, when the request needed them.
    pub platform: Option<&'a crate::certs::PlatformTrust>,
    /// Whose agreements the request concerns, for the audit trail.
    pub note: &'a crate::audit::Note,
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
    /// `return_url`, when given (page methods).
    pub return_url: Option<&'a str>,
    /// `timestamp` as sent.
    pub timestamp: &'a str,
    /// `sign` as sent (a page link's identity).
    pub sign: &'a str,
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
    /// `alipay.user.agreement.sign.effect`.
    SignEffect(Box<agreements_domain::query::Response>),
    /// `alipay.user.agreement.executionplan.modify`.
    ExecutionPlan(execution_plan::Response),
    /// `alipay.open.app.alipaycert.download`.
    CertDownload(cert_download::Response),
    /// `alipay.user.agreement.page.sign`: the signing session the browser is sent to (never
    /// rendered as JSON: page methods are answered with pages).
    #[serde(skip)]
    PageSign(Box<agreements_store::SigningSession>),
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
        Method::AgreementPageSign => page_sign::handle(call, biz)
            .await
            .map(|s| Answer::PageSign(Box::new(s))),
        Method::AgreementExecutionPlanModify => execution_plan::handle(call, biz)
            .await
            .map(Answer::ExecutionPlan),
        Method::AgreementSignEffect => sign_effect::handle(call, biz)
            .await
            .map(|r| Answer::SignEffect(Box::new(r))),
        Method::AlipayCertDownload => cert_download::handle(call, biz).map(Answer::CertDownload),
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
