//! The one place a failure becomes a wire answer.

use agreements_domain::BizError;
use agreements_protocol::request::Refusal;
use agreements_protocol::{ProtocolError, WireError};
use agreements_store::StoreError;

/// Why a request was not answered with success.
#[derive(Debug)]
pub enum Failure {
    /// A gateway-level problem.
    Protocol(ProtocolError),
    /// A business answer (`40004`).
    Biz(BizError),
    /// Storage failed or holds data the rules refuse.
    Store(StoreError),
}

impl Failure {
    /// The wire answer. Exhaustive by construction: each layer maps its own variants. Storage
    /// outages are `20000 isp.unknow-error` (the caller retries); inconsistent data is the
    /// business layer's `SYSTEM_ERROR`. No detail of them reaches the caller.
    pub fn wire(&self) -> WireError {
        match self {
            Self::Protocol(e) => e.wire(),
            Self::Biz(e) => e.wire(),
            Self::Store(StoreError::Unavailable { .. }) => ProtocolError::ServiceUnavailable.wire(),
            Self::Store(StoreError::Conflict { .. } | StoreError::Corrupt(_)) => {
                BizError::SystemError(String::new()).wire()
            }
        }
    }

    /// Whether the store was unavailable (answered `20000`).
    pub fn is_store_outage(&self) -> bool {
        matches!(self, Self::Store(StoreError::Unavailable { .. }))
    }

    /// What the operator must see in the log: the whole cause of a storage failure or of an
    /// inconsistency; `None` for answers that are the caller's business.
    pub fn detail(&self) -> Option<String> {
        match self {
            Self::Biz(BizError::SystemError(detail)) => Some(detail.clone()),
            Self::Store(e) => Some(crate::telemetry::chain(e)),
            Self::Protocol(_) | Self::Biz(_) => None,
        }
    }
}

impl From<ProtocolError> for Failure {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<BizError> for Failure {
    fn from(e: BizError) -> Self {
        Self::Biz(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<Refusal<Failure>> for Failure {
    fn from(refusal: Refusal<Failure>) -> Self {
        match refusal {
            Refusal::Protocol(e) => Self::Protocol(e),
            Refusal::Lookup(failure) => failure,
        }
    }
}
