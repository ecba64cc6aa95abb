//! The withholding-agreement domain (`shared/spec/agreements.md`): identifiers that are valid by
//! construction, the agreement and its neighbours, who may see what, and each method's rules.
//! No I/O: the store fetches, the server orchestrates, this crate decides.

pub mod address;
pub mod agreement;
pub mod batch_query;
pub mod biz;
pub mod clock;
pub mod error;
pub mod ids;
pub mod notify;
pub mod query;
pub mod sign;
#[cfg(test)]
mod testing;
pub mod token;
pub mod unsign;
pub mod visibility;

pub use agreement::{
    Agreement, AgreementStatus, Contract, EntityStatus, Merchant, PrincipalType, Product,
    ResolvedUser, ThirdPartyType,
};
pub use error::BizError;
pub use visibility::{Caller, Scope};
