//! The one place a failure becomes a wire answer.

use agreements_domain::BizError;
use agreements_protocol::{ProtocolError, WireError};
use agreements_store::StoreError;

/// Why a request was not answered with success.
#[derive(Debug)]
pub enum Failure {
    /// A gateway-level problem.
    Protocol(ProtocolError),
    /// A business answer (`40004`).
    Biz(BizError),
}

impl Failure {
    /// The wire answer. Exhaustive by construction: each layer maps its own variants.
    pub fn wire(&self) -> WireError {
        match self {
            Self::Protocol(e) => e.wire(),
            Self::Biz(e) => e.wire(),
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
    /// Storage outages are `20000 isp.unknow-error` (the caller retries); inconsistent data is
    /// the business layer's `SYSTEM_ERROR`. The detail goes to the log, never to the caller.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "storage unavailable");
                Self::Protocol(ProtocolError::ServiceUnavailable)
            }
            StoreError::Conflict(detail) | StoreError::Corrupt(detail) => {
                tracing::error!(error = %detail, "storage inconsistency");
                Self::Biz(BizError::SystemError(detail))
            }
        }
    }
}
