//! Dispatch by method: one file per OpenAPI method, one arm per [`Method`].

mod batch_query;

use std::sync::Arc;

use agreements_domain::Caller;
use agreements_protocol::Method;
use agreements_store::Store;
use serde_json::{Map, Value};

use crate::apps::App;
use crate::failure::Failure;

/// What a method handler may use.
#[derive(Debug)]
pub struct Call<'a> {
    /// The store.
    pub store: &'a Store,
    /// The calling app.
    pub app: &'a Arc<App>,
    /// The merchant the call acts for.
    pub caller: Caller,
    /// Now, in Unix seconds.
    pub now: i64,
}

/// Runs `method`; returns the success node's JSON.
pub async fn dispatch(
    method: Method,
    call: &Call<'_>,
    biz: &Map<String, Value>,
) -> Result<String, Failure> {
    match method {
        Method::AgreementBatchQuery => batch_query::handle(call, biz).await,
    }
}
