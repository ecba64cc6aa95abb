//! Per-app rate limits (token buckets, GCRA, from `governor`), in memory and per process: with
//! several instances each one lets through its own rate. A rule names an app (or `*`: every
//! app, each with its own bucket) and a method (or `*`: all methods together); the first rule
//! that matches a request decides. An app over its rate is answered `40005`
//! (`isv.app-call-limited`, or `isv.method-call-limited` for a rule that names the method).

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use agreements_protocol::{Method, ProtocolError};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};

/// One configured rate: `requests` per `per_secs` seconds (a bucket of `requests` tokens that
/// refills over `per_secs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    /// An app id, or `*` for every app (each with its own bucket).
    pub app_id: String,
    /// A method's wire name, or `*` for all methods together.
    pub method: String,
    /// Requests allowed per period (and at once, as a burst).
    pub requests: u32,
    /// The period, in seconds.
    pub per_secs: u64,
}

struct Rule {
    app_id: Option<String>,
    method: Option<Method>,
    limiter: DefaultKeyedRateLimiter<(String, Option<Method>)>,
}

/// The configured rates.
#[derive(Default)]
pub struct RateLimits {
    rules: Vec<Rule>,
}

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateLimits({} rules)", self.rules.len())
    }
}

impl RateLimits {
    /// The limits of `rules`, or what is wrong with one of them.
    pub fn new(rules: &[RateRule]) -> Result<Self, String> {
        let compiled = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let which = format!("rate_limits[{i}]");
                let requests = NonZeroU32::new(rule.requests)
                    .ok_or_else(|| format!("{which}: requests must be at least 1"))?;
                if rule.per_secs == 0 || rule.per_secs > 86_400 {
                    return Err(format!("{which}: per_secs must be 1 to 86400"));
                }
                let period = Duration::from_secs(rule.per_secs) / requests.get();
                let quota = Quota::with_period(period)
                    .ok_or_else(|| format!("{which}: the rate is too high"))?
                    .allow_burst(requests);
                let method = match rule.method.as_str() {
                    "*" => None,
                    name => Some(
                        Method::parse(name)
                            .ok_or_else(|| format!("{which}: {name:?} is not a served method"))?,
                    ),
                };
                let app_id = match rule.app_id.as_str() {
                    "*" => None,
                    id if agreements_protocol::request::is_app_id(id) => Some(id.to_owned()),
                    id => return Err(format!("{which}: {id:?} is not an app id or *")),
                };
                Ok(Rule {
                    app_id,
                    method,
                    limiter: DefaultKeyedRateLimiter::keyed(quota),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules: compiled })
    }

    /// Takes a token for a request of `app_id` for `method` from the first rule that matches.
    pub fn admit(&self, app_id: &str, method: Method) -> Result<(), ProtocolError> {
        let Some(rule) = self.rules.iter().find(|r| {
            r.app_id.as_deref().is_none_or(|id| id == app_id)
                && r.method.is_none_or(|m| m == method)
        }) else {
            return Ok(());
        };
        rule.limiter
            .check_key(&(app_id.to_owned(), rule.method))
            .map_err(|_| ProtocolError::CallLimited {
                per_method: rule.method.is_some(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(app_id: &str, method: &str, requests: u32) -> RateRule {
        RateRule {
            app_id: app_id.into(),
            method: method.into(),
            requests,
            per_secs: 3600,
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_each_app_has_its_own_bucket() {
        let limits = RateLimits::new(&[
            rule("2021000000000001", "alipay.user.agreement.unsign", 1),
            rule("*", "*", 2),
        ])
        .unwrap();
        let unsign = Method::AgreementUnsign;
        let query = Method::AgreementQuery;
        assert_eq!(limits.admit("2021000000000001", unsign), Ok(()));
        assert_eq!(
            limits.admit("2021000000000001", unsign),
            Err(ProtocolError::CallLimited { per_method: true })
        );
        // The app's other methods share the `*` rule's bucket of 2.
        assert_eq!(limits.admit("2021000000000001", query), Ok(()));
        assert_eq!(
            limits.admit("2021000000000001", Method::AgreementBatchQuery),
            Ok(())
        );
        assert_eq!(
            limits.admit("2021000000000001", query),
            Err(ProtocolError::CallLimited { per_method: false })
        );
        // Another app has its own.
        assert_eq!(limits.admit("2021000000000002", query), Ok(()));
        assert_eq!(RateLimits::default().admit("1", query), Ok(()));
    }

    #[test]
    fn bad_rules_are_named() {
        for (bad, says) in [
            (rule("*", "*", 0), "at least 1"),
            (rule("*", "alipay.trade.pay", 1), "not a served method"),
            (rule("abc", "*", 1), "not an app id"),
            (
                RateRule {
                    per_secs: 0,
                    ..rule("*", "*", 1)
                },
                "per_secs",
            ),
        ] {
            let error = RateLimits::new(&[bad]).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }
}
