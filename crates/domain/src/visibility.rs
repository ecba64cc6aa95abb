//! Who may see what (agreements.md §4): the one predicate every query obeys.

use crate::agreement::{Agreement, ThirdPartyType};
use crate::error::BizError;
use crate::ids::{GroupId, PartnerId};

/// The merchant a request acts for: the app's owner (or, later, the merchant that granted the
/// request's `app_auth_token`), with its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The calling merchant M.
    pub merchant: PartnerId,
    /// M's group, if any.
    pub group: Option<GroupId>,
}

/// The set of agreements a request may see, by owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `PARTNER`: agreements of M with `third_party_type = PARTNER`.
    Partner(PartnerId),
    /// `MERCHANT`: agreements with `third_party_type = MERCHANT` of any merchant of the group.
    Group(GroupId),
}

impl Caller {
    /// The scope for a requested `third_party_type`. MERCHANT without a group is invalid.
    pub fn scope(&self, third_party_type: ThirdPartyType) -> Result<Scope, BizError> {
        match third_party_type {
            ThirdPartyType::Partner => Ok(Scope::Partner(self.merchant.clone())),
            ThirdPartyType::Merchant => self.group.clone().map(Scope::Group).ok_or_else(|| {
                BizError::InvalidParameter(
                    "third_party_type MERCHANT requires the calling merchant to belong to a merchant group".into(),
                )
            }),
        }
    }
}

impl Scope {
    /// The `third_party_type` of the agreements in this scope.
    pub fn third_party_type(&self) -> ThirdPartyType {
        match self {
            Self::Partner(_) => ThirdPartyType::Partner,
            Self::Group(_) => ThirdPartyType::Merchant,
        }
    }

    /// Whether `agreement` (owned by a merchant in `owner_group`) is in this scope.
    pub fn contains(&self, agreement: &Agreement, owner_group: Option<&GroupId>) -> bool {
        match self {
            Self::Partner(m) => {
                agreement.third_party_type == ThirdPartyType::Partner && agreement.partner_id == *m
            }
            Self::Group(g) => {
                agreement.third_party_type == ThirdPartyType::Merchant && owner_group == Some(g)
            }
        }
    }
}
