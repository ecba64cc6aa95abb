//! Login throttling, per account and per client address, in this process's memory (several
//! instances each count their own; documented in README). After `max_failures` failed logins
//! within `window_secs`, further attempts are refused for `lockout_secs`. Both tables are
//! bounded: when one is full, entries whose window has passed are dropped, and if it is still
//! full the attempt is refused (a flood of distinct names cannot grow memory).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures of one account allowed within the window.
    pub max_failures_per_account: u32,
    /// Failures from one client address allowed within the window.
    pub max_failures_per_address: u32,
    /// The window failures are counted in, in seconds.
    pub window_secs: i64,
    /// How long a lockout lasts, in seconds.
    pub lockout_secs: i64,
    /// Accounts and addresses tracked at most, each.
    pub max_tracked: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            window_secs: 15 * 60,
            lockout_secs: 15 * 60,
            max_tracked: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    since: i64,
    locked_until: i64,
}

/// The failure counts.
#[derive(Debug)]
pub struct Logins {
    limits: Limits,
    accounts: Mutex<HashMap<String, Count>>,
    addresses: Mutex<HashMap<IpAddr, Count>>,
}

impl Logins {
    /// Empty tables under `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            accounts: Mutex::default(),
            addresses: Mutex::default(),
        }
    }

    /// `Ok` when a login of `account` from `client` may be tried at `now`; else the seconds
    /// left of the lockout.
    pub fn check(&self, account: &str, client: IpAddr, now: i64) -> Result<(), i64> {
        let client = client.to_canonical();
        let locked = |count: Option<&Count>| {
            count
                .filter(|c| c.locked_until > now)
                .map(|c| c.locked_until - now)
        };
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let addresses = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        match locked(accounts.get(account)).or(locked(addresses.get(&client))) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failure; returns the lockout's length when this failure starts one.
    pub fn failed(&self, account: &str, client: IpAddr, now: i64) -> Option<i64> {
        let l = self.limits;
        let by_account = count(
            &mut self.accounts.lock().unwrap_or_else(|e| e.into_inner()),
            account.to_owned(),
            now,
            l,
            l.max_failures_per_account,
        );
        let by_address = count(
            &mut self.addresses.lock().unwrap_or_else(|e| e.into_inner()),
            client.to_canonical(),
            now,
            l,
            l.max_failures_per_address,
        );
        (by_account || by_address).then_some(l.lockout_secs)
    }

    /// Forgets an account's failures after a successful login.
    pub fn succeeded(&self, account: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }
}

/// Counts one failure of `key`; returns whether it starts a lockout.
fn count<K: std::hash::Hash + Eq>(
    table: &mut HashMap<K, Count>,
    key: K,
    now: i64,
    limits: Limits,
    max_failures: u32,
) -> bool {
    if table.len() >= limits.max_tracked && !table.contains_key(&key) {
        table.retain(|_, c| c.since + limits.window_secs > now || c.locked_until > now);
        if table.len() >= limits.max_tracked {
            return true;
        }
    }
    let c = table.entry(key).or_insert(Count {
        failures: 0,
        since: now,
        locked_until: 0,
    });
    if c.since + limits.window_secs <= now {
        *c = Count {
            failures: 0,
            since: now,
            locked_until: 0,
        };
    }
    c.failures += 1;
    if c.failures >= max_failures {
        c.locked_until = now + limits.lockout_secs;
        c.failures = 0;
        c.since = now;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn an_account_is_locked_after_its_failures_then_released() {
        let logins = Logins::new(Limits::default());
        for _ in 0..4 {
            assert_eq!(logins.failed("a@b.cn", ip(1), 100), None);
            assert_eq!(logins.check("a@b.cn", ip(1), 100), Ok(()));
        }
        assert_eq!(logins.failed("a@b.cn", ip(2), 100), Some(900));
        assert_eq!(logins.check("a@b.cn", ip(3), 160), Err(840));
        assert_eq!(logins.check("other@b.cn", ip(3), 160), Ok(()));
        assert_eq!(logins.check("a@b.cn", ip(3), 1_000), Ok(()));
    }

    #[test]
    fn an_address_is_locked_after_failures_on_many_accounts() {
        let logins = Logins::new(Limits::default());
        for i in 0..19 {
            assert_eq!(logins.failed(&format!("u{i}@b.cn"), ip(9), 0), None);
        }
        assert_eq!(logins.failed("u19@b.cn", ip(9), 0), Some(900));
        assert!(logins.check("fresh@b.cn", ip(9), 1).is_err());
        assert!(logins.check("fresh@b.cn", ip(8), 1).is_ok());
    }

    #[test]
    fn the_tables_stay_bounded() {
        let logins = Logins::new(Limits {
            max_tracked: 10,
            ..Limits::default()
        });
        for i in 0..100u8 {
            logins.failed(&format!("u{i}"), ip(i), 0);
        }
        assert!(logins.accounts.lock().unwrap().len() <= 10);
        assert!(logins.addresses.lock().unwrap().len() <= 10);
    }

    #[test]
    fn a_success_forgets_the_accounts_failures() {
        let logins = Logins::new(Limits::default());
        for _ in 0..4 {
            logins.failed("a", ip(1), 0);
        }
        logins.succeeded("a");
        assert_eq!(logins.failed("a", ip(2), 0), None);
    }
}
