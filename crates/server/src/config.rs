//! Configuration: defaults, then a TOML file, then `AGREEMENTS_*` environment variables, parsed
//! once at start into typed values.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the database is: a SQLite file path, or a `postgres://` URL. Shown (`Debug`,
/// `Display`) with any password replaced by `***`, so that no log or error message can carry it;
/// [`DatabaseUrl::expose`] gives the real location to the one caller that opens it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The location as given, password included: only for opening the database.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for DatabaseUrl {
    fn from(location: String) -> Self {
        Self(location)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(location: &str) -> Self {
        Self(location.to_owned())
    }
}

impl fmt::Display for DatabaseUrl {
    /// The location with the password of its user info and of a `password` query parameter
    /// replaced by `***`; a file path as it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.contains("://") {
            return f.write_str(&self.0);
        }
        let Ok(mut url) = url::Url::parse(&self.0) else {
            // Not a URL that can be taken apart: show its scheme only.
            let scheme = self.0.split("://").next().unwrap_or_default();
            return write!(f, "{scheme}://***");
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        if url
            .query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("password"))
        {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        f.write_str(url.as_str())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.to_string())
    }
}

/// Everything `agreements serve` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The database: a SQLite file path (created if missing), or a `postgres://` URL.
    pub database: DatabaseUrl,
    /// The platform private key that signs responses (PKCS#1 or PKCS#8, PEM or bare base64).
    pub platform_private_key: PathBuf,
    /// Accepted distance between a request `timestamp` and the gateway clock, in seconds;
    /// 0 turns the check off.
    pub timestamp_window_secs: u64,
    /// Largest accepted request body in bytes (larger ones are refused before being read).
    pub max_body_bytes: usize,
    /// Longest time one request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// A connection must send a whole request head within this many milliseconds.
    pub header_read_timeout_ms: u64,
    /// Connections served at once; more are closed on arrival.
    pub max_connections: usize,
    /// Connections served at once from one address; more from it are closed on arrival.
    pub max_connections_per_address: usize,
    /// The largest request head (request line and headers) read, in bytes; a larger one is
    /// answered 431.
    pub max_head_bytes: usize,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `agreements_server=debug`.
    pub log_filter: String,
    /// Notification sends in flight at most; 0: this process does not deliver (another one
    /// does, e.g. `agreements serve` with delivery on, sharing the database).
    pub notify_concurrency: usize,
    /// Longest time of one notification send (connect, post, read the answer), in milliseconds.
    pub notify_timeout_ms: u64,
    /// How often the outbox is checked for due retries, in milliseconds (new notifications of
    /// this process are sent at once).
    pub notify_poll_ms: u64,
    /// Address ranges notifications may reach besides public addresses (for test setups and
    /// the demo, e.g. `["127.0.0.0/8"]`); every other loopback, private, link-local,
    /// carrier-grade NAT, unique-local or multicast address is refused.
    pub notify_allow: Vec<agreements_domain::address::Cidr>,
    /// SQLite: how long a write waits for the database's write lock (another write, an import)
    /// before it is answered `20000`, in milliseconds. It waits off the request workers.
    pub write_wait_ms: u64,
    /// SQLite: writes waiting for the write lock at most; one more is answered `20000` at once.
    pub max_waiting_writes: usize,
    /// The consumer pages' cookies are `Secure` (and `__Host-` named): set when the pages are
    /// served over TLS, directly or behind a proxy.
    pub secure_cookies: bool,
    /// How long a signing link stays usable after it is opened when it names no
    /// `effect_time`, in seconds.
    pub signing_ttl_secs: u64,
    /// How long a consumer stays signed in on the web pages, in seconds.
    pub web_session_ttl_secs: u64,
    /// Failed logins of one account within `login_window_secs` before it is locked.
    pub login_max_failures: u32,
    /// Failed logins from one client address within `login_window_secs` before it is locked.
    pub login_max_failures_per_address: u32,
    /// The window failed logins are counted in, in seconds.
    pub login_window_secs: u64,
    /// How long a login lockout lasts, in seconds.
    pub login_lockout_secs: u64,
    /// Per-app rates (token buckets per process), the first matching rule deciding; none by
    /// default.
    pub rate_limits: Vec<crate::rates::RateRule>,
    /// Record every answered read or change of a person's agreements in the audit trail.
    pub audit: bool,
    /// How long audit entries are kept, in days: `agreements audit prune` deletes older ones.
    pub audit_retention_days: u32,
    /// Keep the signatures of successful answers to answer the same bytes again without signing
    /// (failures' are always kept).
    pub signature_cache: bool,
    /// The most the kept signatures weigh, in MiB.
    pub signature_cache_mib: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: "agreements.db".into(),
            platform_private_key: "platform_private_key.pem".into(),
            timestamp_window_secs: 15 * 60,
            max_body_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            max_connections: 10_000,
            max_connections_per_address: 1_000,
            max_head_bytes: 16 * 1024,
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            notify_concurrency: 16,
            notify_timeout_ms: 10_000,
            notify_poll_ms: 1_000,
            notify_allow: Vec::new(),
            write_wait_ms: 2_000,
            max_waiting_writes: 64,
            secure_cookies: false,
            signing_ttl_secs: 30 * 60,
            web_session_ttl_secs: 30 * 60,
            login_max_failures: 5,
            login_max_failures_per_address: 20,
            login_window_secs: 15 * 60,
            login_lockout_secs: 15 * 60,
            rate_limits: Vec::new(),
            audit: true,
            audit_retention_days: 365,
            signature_cache: true,
            signature_cache_mib: 32,
        }
    }
}

impl Config {
    /// Every key, as in the file (and, upper-cased with the prefix, in the environment): the
    /// fields of this struct, as serde names them.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(fields)) => fields.into_iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        }
    }

    /// Defaults, overridden by `file` (when given), overridden by `AGREEMENTS_<FIELD>` variables
    /// (e.g. `AGREEMENTS_LISTEN=0.0.0.0:8080`).
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // Only this struct's keys: other AGREEMENTS_* variables (AGREEMENTS_CONFIG, the tests'
        // AGREEMENTS_TEST_*) are not configuration and must not be refused as unknown.
        let keys = Self::keys();
        let known = move |key: &figment::value::UncasedStr| {
            keys.iter().any(|k| key.as_str().eq_ignore_ascii_case(k))
        };
        figment
            .merge(Env::prefixed("AGREEMENTS_").filter(known))
            .extract()
            .map_err(Box::new)
    }

    /// The timestamp window, `None` when the check is off.
    pub fn timestamp_window(&self) -> Option<u64> {
        (self.timestamp_window_secs > 0).then_some(self.timestamp_window_secs)
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Connection limits.
    pub fn connection_limits(&self) -> crate::ConnectionLimits {
        crate::ConnectionLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            max_head_bytes: self.max_head_bytes,
        }
    }

    /// How notifications are delivered; `None` when this process does not deliver.
    pub fn delivery(&self) -> Option<crate::notify::DeliverySettings> {
        (self.notify_concurrency > 0).then(|| crate::notify::DeliverySettings {
            concurrency: self.notify_concurrency,
            timeout: Duration::from_millis(self.notify_timeout_ms.max(1)),
            poll: Duration::from_millis(self.notify_poll_ms.max(10)),
        })
    }

    /// Where notifications may go.
    pub fn notify_policy(&self) -> agreements_domain::address::AddressPolicy {
        agreements_domain::address::AddressPolicy::new(self.notify_allow.clone())
    }

    /// The consumer pages' settings.
    pub fn web(&self) -> crate::web::Settings {
        let secs = |n: u64| i64::try_from(n).unwrap_or(i64::MAX / 4);
        crate::web::Settings {
            secure_cookies: self.secure_cookies,
            signing_ttl_secs: secs(self.signing_ttl_secs),
            session_ttl_secs: secs(self.web_session_ttl_secs),
            logins: crate::web::throttle::Limits {
                max_failures_per_account: self.login_max_failures.max(1),
                max_failures_per_address: self.login_max_failures_per_address.max(1),
                window_secs: secs(self.login_window_secs),
                lockout_secs: secs(self.login_lockout_secs),
                ..crate::web::throttle::Limits::default()
            },
        }
    }

    /// How the store is opened.
    pub fn store_options(
        &self,
        clock: std::sync::Arc<dyn agreements_domain::clock::Clock>,
    ) -> agreements_store::Options {
        agreements_store::Options {
            clock,
            write_wait: Duration::from_millis(self.write_wait_ms),
            max_waiting_writes: self.max_waiting_writes,
        }
    }

    /// A commented example configuration file with the defaults.
    pub fn example() -> String {
        let d = Config::default();
        format!(
            "# agreements serve configuration. Every key can also be set by an environment variable\n\
             # AGREEMENTS_<KEY> (upper case), which wins over this file.\n\n\
             # Address to listen on; port 0 picks a free port.\nlisten = {:?}\n\n\
             # SQLite database file (created if missing), or a PostgreSQL URL such as\n\
             # \"postgres://user@127.0.0.1:5432/agreements\".\ndatabase = {:?}\n\n\
             # Platform private key that signs responses (PKCS#1 or PKCS#8, PEM or bare base64).\n\
             platform_private_key = {:?}\n\n\
             # Accepted distance between a request timestamp (Beijing time) and the gateway clock; 0 = off.\n\
             timestamp_window_secs = {}\n\n\
             # Largest accepted request body.\nmax_body_bytes = {}\n\n\
             # Longest time one request may take.\nrequest_timeout_ms = {}\n\n\
             # A connection must send a whole request head within this time (slow-client guard).\n\
             header_read_timeout_ms = {}\n\n\
             # Connections served at once; more are closed on arrival.\nmax_connections = {}\n\n\
             # Connections served at once from one address; more from it are closed on arrival. Behind a\n\
             # proxy every connection has the proxy's address: set it to max_connections there.\n\
             max_connections_per_address = {}\n\n\
             # The largest request head (request line and headers) read; a larger one is answered 431.\n\
             max_head_bytes = {}\n\n\
             # \"text\" or \"json\".\nlog_format = \"text\"\n\n\
             # tracing filter directives.\nlog_filter = {:?}\n\n\
             # Notification sends in flight at most; 0 = this process does not deliver notifications.\n\
             notify_concurrency = {}\n\n\
             # Longest time of one notification send (connect, post, read the answer).\nnotify_timeout_ms = {}\n\n\
             # How often the outbox is checked for due retries.\nnotify_poll_ms = {}\n\n\
             # Address ranges notifications may reach besides public addresses, for test setups and the\n\
             # demo, e.g. [\"127.0.0.0/8\"]; loopback, private, link-local, carrier-grade NAT, unique-local\n\
             # and multicast addresses are refused otherwise, however spelled.\nnotify_allow = []\n\n\
             # SQLite: how long a write waits for the write lock (another write, an import) before it\n\
             # is answered 20000; it waits off the request workers.\nwrite_wait_ms = {}\n\n\
             # SQLite: writes waiting for the write lock at most; one more is answered 20000 at once.\n\
             max_waiting_writes = {}\n\n\
             # Consumer pages (signing, automatic payments). Mark cookies Secure (and __Host- named):\n\
             # set true when the pages are served over TLS, directly or behind a proxy.\n\
             secure_cookies = {}\n\n\
             # How long a signing link stays usable after it is opened, when it names no effect_time.\n\
             signing_ttl_secs = {}\n\n\
             # How long a consumer stays signed in.\nweb_session_ttl_secs = {}\n\n\
             # Login throttling (per process): failures of one account, and from one client address,\n\
             # within the window before a lockout, and the lockout's length.\n\
             login_max_failures = {}\nlogin_max_failures_per_address = {}\n\
             login_window_secs = {}\nlogin_lockout_secs = {}\n\n\
             # Per-app rates, per process (token buckets): the first rule that matches a request\n\
             # decides; app_id and method may be \"*\" (every app with a bucket of its own; all\n\
             # methods together). Over its rate an app is answered 40005 isv.app-call-limited\n\
             # (isv.method-call-limited for a rule naming the method). None by default, e.g.\n\
             # rate_limits = [{{ app_id = \"*\", method = \"*\", requests = 500, per_secs = 1 }}]\n\
             rate_limits = []\n\n\
             # The read-access audit trail: every answered read or change of a person's agreements\n\
             # (who asked, for whom, which agreements, the outcome), written within a second.\n\
             audit = {}\n\n\
             # Days audit entries are kept; `agreements audit prune` (e.g. daily from cron) deletes\n\
             # older ones.\naudit_retention_days = {}\n\n\
             # Answer signatures kept: an answer whose exact bytes the same app was given before (an\n\
             # empty list, a refresh of the same person) is signed from memory, not by RSA again.\n\
             # false keeps only failures' signatures (junk naming an app then costs a lookup).\n\
             signature_cache = {}\n\n\
             # The most the kept signatures weigh (about 440 bytes each for a 2048-bit key).\n\
             signature_cache_mib = {}\n",
            d.listen.to_string(),
            d.database.expose(),
            d.platform_private_key.display().to_string(),
            d.timestamp_window_secs,
            d.max_body_bytes,
            d.request_timeout_ms,
            d.header_read_timeout_ms,
            d.max_connections,
            d.max_connections_per_address,
            d.max_head_bytes,
            d.log_filter,
            d.notify_concurrency,
            d.notify_timeout_ms,
            d.notify_poll_ms,
            d.write_wait_ms,
            d.max_waiting_writes,
            d.secure_cookies,
            d.signing_ttl_secs,
            d.web_session_ttl_secs,
            d.login_max_failures,
            d.login_max_failures_per_address,
            d.login_window_secs,
            d.login_lockout_secs,
            d.audit,
            d.audit_retention_days,
            d.signature_cache,
            d.signature_cache_mib,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_to_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, Config::example()).unwrap();
        let figment = Figment::from(Toml::file_exact(&path));
        assert_eq!(figment.extract::<Config>().unwrap(), Config::default());
    }

    #[test]
    fn every_field_is_a_key_the_environment_may_set() {
        let keys = Config::keys();
        assert_eq!(keys.len(), 30, "{keys:?}");
        for key in ["listen", "database", "notify_poll_ms", "secure_cookies"] {
            assert!(keys.iter().any(|k| k == key), "{key}");
        }
    }

    #[test]
    fn database_passwords_never_show() {
        for (location, shown) in [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u:p%40ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?sslmode=require&password=secret",
                "postgres://u@h/db?sslmode=require&password=***",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("agreements.db", "agreements.db"),
        ] {
            let url = DatabaseUrl::from(location);
            assert_eq!(url.to_string(), shown, "{location}");
            assert!(!format!("{url:?}").contains("secret"), "{location}");
            assert!(
                !format!(
                    "{:?}",
                    Config {
                        database: url.clone(),
                        ..Config::default()
                    }
                )
                .contains("secret")
            );
            assert_eq!(url.expose(), location);
        }
    }

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:0\"\ntimestamp_window_secs = 0\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(config.timestamp_window(), None);
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
    }
}
