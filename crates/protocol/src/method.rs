//! The OpenAPI methods this gateway serves. Adding one is adding a variant here; the compiler
//! then points at every place that must handle it.

/// A method we serve. Unknown names never become a `Method`: they are answered with
/// `isv.invalid-method` in an `error_response` node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `alipay.user.agreement.batch.query`: all of one user's agreements for a product.
    AgreementBatchQuery,
    /// `alipay.user.agreement.query`: one agreement, by number, merchant number or user.
    AgreementQuery,
    /// `alipay.user.agreement.unsign`: cancel one agreement.
    AgreementUnsign,
}

impl Method {
    /// Every method, in the order the docs list them.
    pub const ALL: &'static [Method] = &[
        Method::AgreementBatchQuery,
        Method::AgreementQuery,
        Method::AgreementUnsign,
    ];

    /// Looks a wire name up (exact match: method names are case-sensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AgreementBatchQuery => "alipay.user.agreement.batch.query",
            Self::AgreementQuery => "alipay.user.agreement.query",
            Self::AgreementUnsign => "alipay.user.agreement.unsign",
        }
    }

    /// The response node: the name with `.` replaced by `_`, plus `_response` (§3.1).
    pub fn response_node(self) -> &'static str {
        match self {
            Self::AgreementBatchQuery => "alipay_user_agreement_batch_query_response",
            Self::AgreementQuery => "alipay_user_agreement_query_response",
            Self::AgreementUnsign => "alipay_user_agreement_unsign_response",
        }
    }
}

/// The node of errors for a missing or unknown method (§3.2).
pub const ERROR_RESPONSE_NODE: &str = "error_response";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_follow_the_rule() {
        for m in Method::ALL {
            assert_eq!(
                m.response_node(),
                format!("{}_response", m.name().replace('.', "_"))
            );
            assert_eq!(Method::parse(m.name()), Some(*m));
        }
        assert_eq!(Method::parse("ALIPAY.USER.AGREEMENT.BATCH.QUERY"), None);
    }
}
