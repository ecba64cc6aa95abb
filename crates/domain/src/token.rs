//! ISV authorisations (`app_auth_token`): an ISV's app acting for the merchant that granted it
//! (agreements.md §4.1, openapi-gateway.md §4.2).

use agreements_protocol::{Method, ProtocolError};

use crate::ids::{AppId, PartnerId};

/// Whether a token is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Usable until it expires.
    Valid,
    /// Withdrawn by the operator or the merchant; terminal.
    Revoked,
}

impl TokenStatus {
    /// Every status.
    pub const ALL: &'static [Self] = &[Self::Valid, Self::Revoked];

    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::Revoked => "REVOKED",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "VALID" => Some(Self::Valid),
            "REVOKED" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// One authorisation: `isv_app_id` may call `methods` for `partner_id` until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAuthToken {
    /// The token (at most 40 characters).
    pub token: String,
    /// The ISV app allowed to use it.
    pub isv_app_id: AppId,
    /// The merchant that granted it: the calling merchant of requests carrying it.
    pub partner_id: PartnerId,
    /// The merchant's own app (reported as `auth_app_id` in notifications).
    pub auth_app_id: AppId,
    /// Valid or revoked.
    pub status: TokenStatus,
    /// End of validity (Unix seconds), exclusive.
    pub expires_at: i64,
    /// The methods granted.
    pub methods: Vec<Method>,
}

impl AppAuthToken {
    /// The merchant a request by `app` for `method` at `now` acts for, or the `20001` answer.
    /// A token of another app is answered as unknown: its existence is not the caller's business.
    pub fn authorize(
        &self,
        app: &AppId,
        method: Method,
        now: i64,
    ) -> Result<&PartnerId, ProtocolError> {
        if self.isv_app_id != *app || self.status == TokenStatus::Revoked {
            return Err(ProtocolError::InvalidAppAuthToken);
        }
        if self.expires_at <= now {
            return Err(ProtocolError::AppAuthTokenExpired);
        }
        if !self.methods.contains(&method) {
            return Err(ProtocolError::AppAuthTokenNoApi);
        }
        Ok(&self.partner_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AppAuthToken {
        AppAuthToken {
            token: "202405BB0123456789abcdefghijklmnopq".into(),
            isv_app_id: AppId::parse("2021000000000009").unwrap(),
            partner_id: PartnerId::parse("2088000000000001").unwrap(),
            auth_app_id: AppId::parse("2021000000000001").unwrap(),
            status: TokenStatus::Valid,
            expires_at: 1_000,
            methods: vec![Method::AgreementBatchQuery],
        }
    }

    #[test]
    fn a_valid_token_names_the_granting_merchant() {
        let t = token();
        assert_eq!(
            t.authorize(&t.isv_app_id, Method::AgreementBatchQuery, 999)
                .unwrap(),
            &t.partner_id
        );
    }

    #[test]
    fn other_apps_revoked_expired_and_ungranted_tokens_are_refused_with_their_codes() {
        let t = token();
        let m = Method::AgreementBatchQuery;
        let other = AppId::parse("2021000000000001").unwrap();
        assert_eq!(
            t.authorize(&other, m, 0),
            Err(ProtocolError::InvalidAppAuthToken)
        );
        let revoked = AppAuthToken {
            status: TokenStatus::Revoked,
            ..token()
        };
        assert_eq!(
            revoked.authorize(&t.isv_app_id, m, 0),
            Err(ProtocolError::InvalidAppAuthToken)
        );
        assert_eq!(
            t.authorize(&t.isv_app_id, m, 1_000),
            Err(ProtocolError::AppAuthTokenExpired)
        );
        assert_eq!(
            t.authorize(&t.isv_app_id, Method::AgreementUnsign, 0),
            Err(ProtocolError::AppAuthTokenNoApi)
        );
    }
}
