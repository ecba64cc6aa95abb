//! Identifiers as types: each is parsed once, at the edge, and is valid from then on.

use std::fmt;

/// Why a value is not a valid identifier; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub &'static str);

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                let check: fn(&str) -> Result<(), IdError> = $check;
                check(&value)?;
                Ok(Self(value))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

fn user_id_shape(value: &str) -> Result<(), IdError> {
    if value.len() == 16 && value.starts_with("2088") && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(IdError("must be 16 digits starting with 2088"))
    }
}

/// Printable ASCII without spaces, 1..=max characters: product codes, scenes, numbers.
fn code_shape(value: &str, max: usize) -> Result<(), IdError> {
    if value.is_empty() {
        Err(IdError("must not be empty"))
    } else if value.len() > max {
        Err(IdError("is too long"))
    } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
        Err(IdError("must be printable ASCII without spaces"))
    } else {
        Ok(())
    }
}

id!(
    /// An Alipay account (支付宝账号) id: `2088` + 12 digits.
    UserId,
    user_id_shape
);
id!(
    /// A person (支付宝用户): the `user_id` of the person's primary account.
    CustomerId,
    user_id_shape
);
id!(
    /// Whom an agreement is with (agreements.md §3): for `CARD` the account's `user_id`, for
    /// `CUSTOMER` the person's `customer_id`; both are `2088` + 12 digits.
    PrincipalId,
    user_id_shape
);
id!(
    /// A merchant (partner, 商户): `2088` + 12 digits.
    PartnerId,
    user_id_shape
);
id!(
    /// An app: 1 to 32 digits.
    AppId,
    |v| {
        if agreements_protocol::request::is_app_id(v) {
            Ok(())
        } else {
            Err(IdError("must be 1 to 32 digits"))
        }
    }
);
id!(
    /// A merchant group (集团): up to 64 printable ASCII characters.
    GroupId,
    |v| code_shape(v, 64)
);
id!(
    /// An agreement number: up to 64 printable ASCII characters (platform-issued ones are 20
    /// digits; imported ones keep theirs).
    AgreementNo,
    |v| code_shape(v, 64)
);
id!(
    /// An agreement product (协议产品码), e.g. `GENERAL_WITHHOLDING_P`: up to 64 characters.
    PersonalProductCode,
    |v| code_shape(v, 64)
);
id!(
    /// A sales product (销售产品码), e.g. `GENERAL_WITHHOLDING`: up to 64 characters.
    ProductCode,
    |v| code_shape(v, 64)
);
id!(
    /// A signing scene, e.g. `INDUSTRY|DIGITAL_MEDIA`: up to 64 characters.
    SignScene,
    |v| code_shape(v, 64)
);
id!(
    /// An app-scoped user id: up to 128 printable ASCII characters.
    OpenId,
    |v| code_shape(v, 128)
);

id!(
    /// The merchant's own agreement number: up to 32 printable ASCII characters (the spec says
    /// letters and digits; reading is lenient so that historical numbers with `-` or `_` work).
    ExternalAgreementNo,
    |v| code_shape(v, 32)
);

impl From<UserId> for PrincipalId {
    fn from(id: UserId) -> Self {
        Self(id.0)
    }
}

impl From<CustomerId> for PrincipalId {
    fn from(id: CustomerId) -> Self {
        Self(id.0)
    }
}

impl SignScene {
    /// The scene an agreement gets when none is given.
    pub fn default_scene() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    /// `DEFAULT|DEFAULT`.
    pub const DEFAULT: &'static str = "DEFAULT|DEFAULT";
}

/// A logon id (登录账号): an e-mail address or a mobile number, at most 100 characters,
/// stored normalised so that one person's logon id always finds the same account:
/// surrounding blanks dropped, e-mail lower-cased, mobile numbers reduced to their digits with a
/// `+86`/`0086` country prefix removed. Never logged or echoed unmasked: use [`LogonId::masked`].
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LogonId(String);

/// The longest logon id, in characters of its normalised form.
pub const MAX_LOGON_ID_CHARS: usize = 100;

impl LogonId {
    /// Normalises and validates a logon id. The length limit applies to the normalised form
    /// (lowercasing can lengthen text: `İ` becomes two characters), so `parse` of a parsed id
    /// gives the same id.
    pub fn parse(value: impl AsRef<str>) -> Result<Self, IdError> {
        const TOO_LONG: IdError = IdError("must be at most 100 characters");
        let value = value.as_ref().trim();
        // Four bytes a character at most: refuses an enormous input before copying it.
        if value.len() > 4 * MAX_LOGON_ID_CHARS {
            return Err(TOO_LONG);
        }
        if let Some((local, domain)) = value.split_once('@') {
            let ok = !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && value.chars().all(|c| !c.is_whitespace() && !c.is_control());
            if !ok {
                return Err(IdError("is not a valid e-mail address"));
            }
            let normalised = value.to_lowercase();
            return if normalised.chars().count() > MAX_LOGON_ID_CHARS {
                Err(TOO_LONG)
            } else {
                Ok(Self(normalised))
            };
        }
        if value.chars().count() > MAX_LOGON_ID_CHARS {
            return Err(TOO_LONG);
        }
        let digits: String = value.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = digits
            .strip_prefix("+86")
            .or_else(|| digits.strip_prefix("0086"))
            .unwrap_or(&digits);
        if (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(digits.to_owned()))
        } else {
            Err(IdError("must be an e-mail address or a mobile number"))
        }
    }

    /// The normalised logon id (for storage and lookup only; never log it).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The masked form shown to callers and written to logs: `abx***@alitest.com`,
    /// `138****5678`.
    pub fn masked(&self) -> String {
        mask_logon_id(&self.0)
    }
}

/// Masks a logon id for display: an e-mail keeps the first three characters of its local part,
/// a number its first three and last four digits.
pub fn mask_logon_id(value: &str) -> String {
    if let Some((local, domain)) = value.split_once('@') {
        let kept: String = local.chars().take(3).collect();
        return format!("{kept}***@{domain}");
    }
    let chars: Vec<char> = value.chars().collect();
    if chars.len() >= 8 {
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
    } else {
        let head: String = chars.iter().take(1).collect();
        format!("{head}***")
    }
}

impl fmt::Debug for LogonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogonId({:?})", self.masked())
    }
}

impl fmt::Display for LogonId {
    /// Displays the masked form, so that formatting a logon id can never leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl TryFrom<String> for LogonId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(value)
    }
}

impl From<LogonId> for String {
    fn from(id: LogonId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_2088_plus_12_digits() {
        assert!(UserId::parse("2088101122675263").is_ok());
        for bad in [
            "",
            "2088",
            "1088101122675263",
            "20881011226752631",
            "208810112267526x",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_reject_spaces_and_overlong_values() {
        assert!(SignScene::parse("INDUSTRY|DIGITAL_MEDIA").is_ok());
        assert!(SignScene::parse("INDUSTRY DIGITAL").is_err());
        assert!(PersonalProductCode::parse("A".repeat(64)).is_ok());
        assert!(PersonalProductCode::parse("A".repeat(65)).is_err());
        assert!(AppId::parse("2021000000000001").is_ok());
        assert!(AppId::parse("2021x").is_err());
    }

    #[test]
    fn logon_ids_are_normalised() {
        assert_eq!(
            LogonId::parse(" Abx@AliTest.com ").unwrap().as_str(),
            "abx@alitest.com"
        );
        assert_eq!(
            LogonId::parse("+86 138-1234-5678").unwrap().as_str(),
            "13812345678"
        );
        assert_eq!(
            LogonId::parse("008613812345678").unwrap().as_str(),
            "13812345678"
        );
        for bad in [
            "",
            "abc",
            "a@b",
            "@x.com",
            "a@.com",
            "a b@x.com",
            "12",
            "1381234567x",
        ] {
            assert!(LogonId::parse(bad).is_err(), "{bad}");
        }
        assert!(LogonId::parse(format!("{}@x.com", "a".repeat(95))).is_err());
    }

    #[test]
    fn logon_ids_are_masked_in_display_and_debug() {
        let email = LogonId::parse("abx@alitest.com").unwrap();
        assert_eq!(email.masked(), "abx***@alitest.com");
        assert_eq!(format!("{email}"), "abx***@alitest.com");
        assert!(!format!("{email:?}").contains("abx@"));
        let mobile = LogonId::parse("13812345678").unwrap();
        assert_eq!(mobile.masked(), "138****5678");
        assert_eq!(mask_logon_id("1234"), "1***");
    }

    #[test]
    fn ids_deserialize_through_validation() {
        assert!(serde_json::from_str::<UserId>("\"2088101122675263\"").is_ok());
        assert!(serde_json::from_str::<UserId>("\"x\"").is_err());
    }

    #[test]
    fn the_length_limit_applies_after_lowercasing() {
        // `İ` lowercases to `i` and a combining dot: 48 of them make 96 characters.
        let long = format!("{}@a.cn", "İ".repeat(48));
        assert_eq!(long.chars().count(), 53);
        assert!(LogonId::parse(&long).is_err());
        let fits = format!("{}@a.cn", "İ".repeat(47));
        let id = LogonId::parse(&fits).unwrap();
        assert_eq!(id.as_str().chars().count(), 99);
        assert_eq!(LogonId::parse(id.as_str()).unwrap(), id);
    }

    proptest::proptest! {
        /// parse ∘ parse = parse, with letters whose lowercase form is longer or different.
        #[test]
        fn parsing_a_parsed_logon_id_gives_it_back(
            local in "[İẞΣςσAaÅK\\u{212A}\\u{2126}]{1,60}",
            domain in "[a-zİ]{1,30}\\.[a-zA-Z]{2,10}",
        ) {
            let input = format!("{local}@{domain}");
            if let Ok(id) = LogonId::parse(&input) {
                proptest::prop_assert!(id.as_str().chars().count() <= MAX_LOGON_ID_CHARS);
                proptest::prop_assert_eq!(LogonId::parse(id.as_str()).unwrap(), id);
            }
        }

        #[test]
        fn parsing_never_panics_and_valid_ids_round_trip(s in "\\PC{0,120}") {
            if let Ok(id) = LogonId::parse(&s) {
                proptest::prop_assert_eq!(LogonId::parse(id.as_str()).unwrap(), id.clone());
                let _ = id.masked();
            }
            if let Ok(id) = SignScene::parse(s.clone()) {
                proptest::prop_assert_eq!(id.as_str(), s.as_str());
            }
        }
    }
}
