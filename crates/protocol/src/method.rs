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
    /// `alipay.user.agreement.page.sign`: a page method (§8.5): a browser opens it and is shown
    /// the hosted signing page.
    AgreementPageSign,
    /// `alipay.user.agreement.sign.effect`: a `TEMP` agreement takes effect.
    AgreementSignEffect,
    /// `alipay.user.agreement.executionplan.modify`: a periodic agreement's next deduction day.
    AgreementExecutionPlanModify,
    /// `alipay.open.app.alipaycert.download`: a platform certificate by its SN (certificate
    /// mode); every app may call it.
    AlipayCertDownload,
}

impl Method {
    /// Every method, in the order the docs list them.
    pub const ALL: &'static [Method] = &[
        Method::AgreementBatchQuery,
        Method::AgreementQuery,
        Method::AgreementUnsign,
        Method::AgreementPageSign,
        Method::AgreementSignEffect,
        Method::AgreementExecutionPlanModify,
        Method::AlipayCertDownload,
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
            Self::AgreementPageSign => "alipay.user.agreement.page.sign",
            Self::AgreementSignEffect => "alipay.user.agreement.sign.effect",
            Self::AgreementExecutionPlanModify => "alipay.user.agreement.executionplan.modify",
            Self::AlipayCertDownload => "alipay.open.app.alipaycert.download",
        }
    }

    /// The response node: the name with `.` replaced by `_`, plus `_response` (§3.1).
    pub fn response_node(self) -> &'static str {
        match self {
            Self::AgreementBatchQuery => "alipay_user_agreement_batch_query_response",
            Self::AgreementQuery => "alipay_user_agreement_query_response",
            Self::AgreementUnsign => "alipay_user_agreement_unsign_response",
            Self::AgreementPageSign => "alipay_user_agreement_page_sign_response",
            Self::AgreementSignEffect => "alipay_user_agreement_sign_effect_response",
            Self::AgreementExecutionPlanModify => {
                "alipay_user_agreement_executionplan_modify_response"
            }
            Self::AlipayCertDownload => "alipay_open_app_alipaycert_download_response",
        }
    }

    /// Whether a browser opens it (§8.5): it is answered with HTML pages, not a signed JSON
    /// envelope.
    pub fn is_page(self) -> bool {
        matches!(self, Self::AgreementPageSign)
    }

    /// Whether every app may call it, whatever it was granted (the platform's own methods).
    pub fn is_open_to_every_app(self) -> bool {
        matches!(self, Self::AlipayCertDownload)
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
