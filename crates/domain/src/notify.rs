//! Notifications of agreement changes (agreements.md §7, openapi-gateway.md §8.7): what a
//! `dut_user_unsign` says, where it may go, and when a failed delivery is tried again.

use agreements_protocol::timestamp::format_beijing;

use crate::agreement::Agreement;
use crate::ids::{AppId, LogonId};

/// `notify_type` of a cancellation.
pub const DUT_USER_UNSIGN: &str = "dut_user_unsign";

/// `notify_type` of a signing.
pub const DUT_USER_SIGN: &str = "dut_user_sign";

/// Seconds to wait after each failed send before the next one: the platform schedule (4m, 10m,
/// 10m, 1h, 2h, 6h, 15h after the first send: eight sends over about 25 hours).
pub const RETRY_DELAYS: [i64; 7] = [240, 600, 600, 3_600, 7_200, 21_600, 54_000];

/// When to try again after `attempts` failed sends, or `None` when the notification is to be
/// parked as failed.
pub fn next_attempt(attempts: u32, now: i64) -> Option<i64> {
    let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
    RETRY_DELAYS.get(index).map(|delay| now + delay)
}

/// A delivery's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its next send.
    Pending,
    /// The receiver answered `success`.
    Delivered,
    /// Every scheduled send failed; an operator may re-send it.
    Failed,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses the storage spelling (any case).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(value))
    }
}

/// The parameters of a `dut_user_unsign` for `app_id` (without `notify_id`, `notify_time`,
/// `sign_type` and `sign`, which each send adds): the field set of the notification vectors.
/// `logon_id` (of the signing account) is masked here; absent values are left out.
pub fn unsign_params(
    agreement: &Agreement,
    logon_id: Option<&LogonId>,
    app_id: &AppId,
    auth_app_id: &AppId,
    unsign_time: i64,
) -> Vec<(&'static str, String)> {
    let mut params = agreement_params(
        DUT_USER_UNSIGN,
        "UNSIGN",
        agreement,
        logon_id,
        app_id,
        auth_app_id,
    );
    params.push(("unsign_time", format_beijing(unsign_time)));
    params
}

/// The parameters of a `dut_user_sign` (sign-flow.md §1.5: the field set of every real payload
/// found), with the agreement's status (`NORMAL`, or `TEMP` for a NOTICE signing), as for
/// [`unsign_params`].
pub fn sign_params(
    agreement: &Agreement,
    logon_id: Option<&LogonId>,
    app_id: &AppId,
    auth_app_id: &AppId,
) -> Vec<(&'static str, String)> {
    agreement_params(
        DUT_USER_SIGN,
        agreement.status.as_str(),
        agreement,
        logon_id,
        app_id,
        auth_app_id,
    )
}

fn agreement_params(
    notify_type: &str,
    status: &str,
    agreement: &Agreement,
    logon_id: Option<&LogonId>,
    app_id: &AppId,
    auth_app_id: &AppId,
) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("notify_type", notify_type.to_owned()),
        ("app_id", app_id.to_string()),
        ("auth_app_id", auth_app_id.to_string()),
        ("charset", "utf-8".to_owned()),
        ("version", "1.0".to_owned()),
        ("agreement_no", agreement.agreement_no.to_string()),
        (
            "personal_product_code",
            agreement.personal_product_code.to_string(),
        ),
        ("sign_scene", agreement.sign_scene.to_string()),
        ("status", status.to_owned()),
        ("alipay_user_id", agreement.alipay_user_id.to_string()),
        ("sign_time", format_beijing(agreement.sign_time)),
        ("valid_time", format_beijing(agreement.valid_time)),
        ("invalid_time", format_beijing(agreement.invalid_time)),
    ];
    if let Some(no) = &agreement.external_agreement_no {
        params.push(("external_agreement_no", no.to_string()));
    }
    if let Some(logon) = &agreement.external_logon_id {
        params.push(("external_logon_id", logon.clone()));
    }
    if let Some(logon_id) = logon_id {
        params.push(("alipay_logon_id", logon_id.masked()));
    }
    params
}

/// A notification id: the Beijing date of `now` (`yyyyMMdd`) followed by `digits` (the vectors'
/// shape: 8 + 26 digits).
pub fn notify_id(now: i64, digits: &str) -> String {
    let date: String = format_beijing(now)
        .chars()
        .filter(char::is_ascii_digit)
        .take(8)
        .collect();
    format!("{date}{digits}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreement::PrincipalType;
    use crate::ids::ExternalAgreementNo;
    use crate::testing::agreement;

    #[test]
    fn eight_sends_then_failure() {
        assert_eq!(next_attempt(0, 100), None);
        assert_eq!(next_attempt(1, 100), Some(340));
        assert_eq!(next_attempt(7, 0), Some(54_000));
        assert_eq!(next_attempt(8, 0), None);
        let total: i64 = RETRY_DELAYS.iter().sum();
        assert_eq!(total, 87_840, "24.4 hours after the first send");
    }

    #[test]
    fn unsign_params_follow_the_vector_field_set() {
        let mut a = agreement(
            "20245920000000000001",
            PrincipalType::Card,
            "2088101122675263",
            1_716_182_099,
        );
        a.external_agreement_no = Some(ExternalAgreementNo::parse("AGR20240520000001").unwrap());
        let app = AppId::parse("2021000000000001").unwrap();
        let logon_id = LogonId::parse("15900000001").unwrap();
        let params = unsign_params(&a, Some(&logon_id), &app, &app, 1_716_253_200);
        let get = |n: &str| {
            params
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("notify_type"), Some("dut_user_unsign"));
        assert_eq!(get("status"), Some("UNSIGN"));
        assert_eq!(get("sign_time"), Some("2024-05-20 13:14:59"));
        assert_eq!(get("unsign_time"), Some("2024-05-21 09:00:00"));
        assert_eq!(get("alipay_logon_id"), Some("159****0001"));
        assert_eq!(get("external_logon_id"), None);
        assert_eq!(notify_id(1_716_253_200, "0001"), "202405210001");
        let signed = sign_params(&a, Some(&logon_id), &app, &app);
        let names = |p: &[(&'static str, String)]| {
            let mut n: Vec<&'static str> = p.iter().map(|(k, _)| *k).collect();
            n.sort_unstable();
            n
        };
        let mut expected = names(&params);
        expected.retain(|n| *n != "unsign_time");
        assert_eq!(names(&signed), expected);
        assert!(signed.contains(&("notify_type", "dut_user_sign".to_owned())));
        assert!(signed.contains(&("status", "NORMAL".to_owned())));
    }
}
