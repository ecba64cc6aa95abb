//! `biz_content` → each method's request: any JSON object (or any bytes, which must fail to be
//! one) meets the field rules of every method. Nothing may panic.
#![no_main]

use agreements_domain::batch_query::BatchQuery;
use agreements_domain::query::AgreementQuery;
use agreements_domain::sign::{EffectRequest, PlanRequest, SignRequest};
use agreements_domain::unsign::UnsignRequest;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(biz) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let _ = BatchQuery::parse(&biz);
    if let Ok(query) = AgreementQuery::parse(&biz) {
        let _ = query.locator.described();
    }
    let _ = UnsignRequest::parse(&biz);
    let _ = EffectRequest::parse(&biz);
    let _ = PlanRequest::parse(&biz);
    let today = time::macros::date!(2026 - 12 - 03);
    let _ = SignRequest::parse(&biz, today);
});
