//! The withholding agreement (agreements.md §3) and the entities its rules need.

use crate::ids::{
    AgreementNo, AppId, CustomerId, ExternalAgreementNo, GroupId, PartnerId, PersonalProductCode,
    PrincipalId, ProductCode, SignScene, UserId,
};

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire (and storage) spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            /// Parses the exact wire spelling.
            pub fn parse(value: &str) -> Option<Self> {
                match value {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// Who the agreement is with: one account, or the person (all accounts).
    PrincipalType {
        /// `CARD`: one Alipay account; `principal_id` is its `user_id`.
        Card = "CARD",
        /// `CUSTOMER`: the person; `principal_id` is the `customer_id`.
        Customer = "CUSTOMER",
    }
);

wire_enum!(
    /// Which kind of merchant the user signed with.
    ThirdPartyType {
        /// `PARTNER` (default): the merchant itself.
        Partner = "PARTNER",
        /// `MERCHANT`: a group merchant; every merchant of the group may see and use it.
        Merchant = "MERCHANT",
    }
);

wire_enum!(
    /// The agreement's life cycle.
    AgreementStatus {
        /// `TEMP`: stored, never effective.
        Temp = "TEMP",
        /// `NORMAL`: in force.
        Normal = "NORMAL",
        /// `STOP`: paused.
        Stop = "STOP",
        /// `UNSIGN`: cancelled; terminal; never returned by query methods.
        Unsign = "UNSIGN",
    }
);

wire_enum!(
    /// Whether a merchant (or its contract, or an app) is usable.
    EntityStatus {
        /// Usable.
        Normal = "NORMAL",
        /// Not usable.
        Disabled = "DISABLED",
    }
);

impl AgreementStatus {
    /// The statuses query methods may return.
    pub fn is_queryable(self) -> bool {
        matches!(self, Self::Temp | Self::Normal | Self::Stop)
    }
}

/// One withholding agreement. Times are Unix seconds; the wire shows them in Beijing time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// Globally unique number.
    pub agreement_no: AgreementNo,
    /// The merchant the user signed with (owner).
    pub partner_id: PartnerId,
    /// The app that signed it.
    pub sign_app_id: AppId,
    /// `CARD` or `CUSTOMER`.
    pub principal_type: PrincipalType,
    /// CARD: the account's user id; CUSTOMER: the person's customer id.
    pub principal_id: PrincipalId,
    /// The account that performed the signing.
    pub alipay_user_id: UserId,
    /// Agreement product.
    pub personal_product_code: PersonalProductCode,
    /// Sales product.
    pub product_code: ProductCode,
    /// Scene.
    pub sign_scene: SignScene,
    /// `PARTNER` or `MERCHANT`.
    pub third_party_type: ThirdPartyType,
    /// The merchant's own number, unique per (partner, product, scene).
    pub external_agreement_no: Option<ExternalAgreementNo>,
    /// The user's login at the merchant.
    pub external_logon_id: Option<String>,
    /// Current status.
    pub status: AgreementStatus,
    /// When it was signed.
    pub sign_time: i64,
    /// When it takes effect.
    pub valid_time: i64,
    /// When it ends; past it the agreement is expired and query methods treat it as absent.
    pub invalid_time: i64,
    /// When it was cancelled.
    pub unsign_time: Option<i64>,
}

impl Agreement {
    /// Whether `invalid_time` has passed at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        self.invalid_time <= now
    }
}

/// A merchant as the visibility rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    /// Its id.
    pub partner_id: PartnerId,
    /// Display name.
    pub name: String,
    /// Whether it may call the gateway.
    pub status: EntityStatus,
    /// Its group, if any.
    pub group_id: Option<GroupId>,
}

/// A merchant's contract for a sales product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    /// The merchant.
    pub partner_id: PartnerId,
    /// The sales product.
    pub product_code: ProductCode,
    /// Whether it is in force.
    pub status: EntityStatus,
    /// Start (Unix seconds).
    pub valid_from: i64,
    /// End (Unix seconds), exclusive.
    pub valid_to: i64,
}

impl Contract {
    /// Whether the contract allows use of its product at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.status == EntityStatus::Normal && self.valid_from <= now && now < self.valid_to
    }
}

/// An agreement product and the sales products it pairs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// The agreement product.
    pub personal_product_code: PersonalProductCode,
    /// The sales products it pairs with.
    pub product_codes: Vec<ProductCode>,
    /// Whom its agreements are with: the signing account (`CARD`) or the person (`CUSTOMER`).
    pub principal_type: PrincipalType,
}

/// The account a user field resolved to, with its person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// The account.
    pub user_id: UserId,
    /// The person owning it.
    pub customer_id: CustomerId,
}

impl ResolvedUser {
    /// Whether the agreement's principal is this account (CARD) or its person (CUSTOMER).
    pub fn is_principal_of(&self, agreement: &Agreement) -> bool {
        match agreement.principal_type {
            PrincipalType::Card => agreement.principal_id.as_str() == self.user_id.as_str(),
            PrincipalType::Customer => agreement.principal_id.as_str() == self.customer_id.as_str(),
        }
    }
}
