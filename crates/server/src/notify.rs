//! Delivery of queued notifications (agreements.md §7, openapi-gateway.md §8.7): the worker that
//! drains the outbox. Each send is signed when it is made (its `notify_time` is the send time),
//! posted with bounded time and answer size, and recorded; failures follow the platform's retry
//! schedule. Sends run beside the gateway, never inside a request.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agreements_domain::address::{AddressPolicy, Host};
use agreements_domain::notify::next_attempt;
use agreements_protocol::PrivateKey;
use agreements_protocol::notification::{self, CONTENT_TYPE, RECEIVED};
use agreements_protocol::timestamp::format_beijing;
use agreements_store::{Attempt, Notification, Store};
use tokio::sync::{Notify, Semaphore};

use agreements_domain::clock::Clock;

/// The longest answer read from a receiver; a longer one is a failed send.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024;

/// Wakes the delivery worker when a change queued notifications, so the first send does not wait
/// for the next poll.
#[derive(Debug, Clone, Default)]
pub struct Outbox(Arc<Notify>);

impl Outbox {
    /// Says that notifications were queued.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// How deliveries run.
#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    /// Sends in flight at most.
    pub concurrency: usize,
    /// Longest time of one send: connecting, sending, and reading the whole answer.
    pub timeout: Duration,
    /// How often due retries (and notifications queued by other processes) are looked for.
    pub poll: Duration,
}

impl DeliverySettings {
    /// How long a claimed notification is held by its sender: the send's time limit (whole
    /// seconds) and two more. A sender that dies leaves it due again after this.
    pub fn lease_secs(&self) -> i64 {
        i64::try_from(self.timeout.as_secs()).unwrap_or(i64::MAX / 2) + 2
    }
}

/// Checks that notifications may be sent to `url` now: its form and, for a name, every address
/// it resolves to (at least one) against `policy`.
pub async fn check_destination(policy: &AddressPolicy, url: &str) -> Result<(), String> {
    let Host::Name(name) = policy.check_url(url)? else {
        return Ok(());
    };
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .map_err(|_| format!("names a host that does not resolve ({name})"))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("names a host that does not resolve ({name})"));
    }
    for address in addresses {
        policy.check_ip(address.ip())?;
    }
    Ok(())
}

/// Resolves the names of notification addresses at every send (DNS can change) and connects
/// only to the addresses `policy` allows; a name with none is a failed send.
#[derive(Debug)]
struct GuardedResolver(AddressPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<std::net::SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| policy.check_ip(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{name} resolves to no address notifications may reach ({} refused)",
                    resolved.len()
                )
                .into();
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The delivery worker.
#[derive(Debug)]
pub struct Deliverer {
    store: Arc<Store>,
    key: PrivateKey,
    clock: Arc<dyn Clock>,
    settings: DeliverySettings,
    outbox: Outbox,
    policy: AddressPolicy,
    http: reqwest::Client,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Deliverer {
    /// A worker sending `store`'s notifications signed with `key`, woken by `outbox`, to the
    /// addresses `policy` allows.
    pub fn new(
        store: Arc<Store>,
        key: PrivateKey,
        clock: Arc<dyn Clock>,
        settings: DeliverySettings,
        outbox: Outbox,
        policy: AddressPolicy,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .pool_max_idle_per_host(4)
            .user_agent(concat!("agreements-notify/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            store,
            key,
            clock,
            settings,
            outbox,
            policy,
            http,
            metrics: None,
        })
    }

    /// The same worker, counting its sends in `metrics` (the gateway's).
    pub fn with_metrics(self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Sends due notifications until `shutdown` completes, then waits for the sends in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.settings.concurrency.max(1)));
        let mut shutdown = std::pin::pin!(shutdown);
        let mut sends = tokio::task::JoinSet::new();
        loop {
            while sends.try_join_next().is_some() {}
            let free = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
            let mut claimed = 0;
            if free > 0 {
                let now = this.clock.now();
                let lease_until = now + this.settings.lease_secs();
                match this.store.claim_notifications(now, lease_until, free).await {
                    Ok(due) => {
                        claimed = due.len();
                        for n in due {
                            let Ok(slot) = slots.clone().acquire_owned().await else {
                                return;
                            };
                            let worker = this.clone();
                            sends.spawn(async move {
                                worker.deliver(n).await;
                                drop(slot);
                            });
                        }
                    }
                    Err(e) => tracing::warn!(
                        error = crate::telemetry::chain(&e),
                        "notification outbox unavailable"
                    ),
                }
            }
            if claimed > 0 && claimed == free as usize {
                // Possibly more due: claim again as soon as a slot frees.
                tokio::select! {
                    _ = slots.clone().acquire_owned() => continue,
                    () = &mut shutdown => break,
                }
            }
            tokio::select! {
                () = this.outbox.0.notified() => {}
                () = tokio::time::sleep(this.settings.poll) => {}
                () = &mut shutdown => break,
            }
        }
        while sends.join_next().await.is_some() {}
    }

    /// One send of `n` and its record.
    async fn deliver(&self, n: Notification) {
        let attempts = n.attempts + 1;
        let id = n.notify_id.clone();
        let result = self.send(&n).await;
        let now = self.clock.now();
        let attempt = match result {
            Ok(()) => Attempt::Delivered,
            Err(error) => match next_attempt(attempts, now) {
                Some(at) => Attempt::Retry { at, error },
                None => Attempt::Failed { error },
            },
        };
        if let Some(metrics) = &self.metrics {
            metrics.delivery(match &attempt {
                Attempt::Delivered => "delivered",
                Attempt::Retry { .. } => "retry",
                Attempt::Failed { .. } => "failed",
            });
        }
        match &attempt {
            Attempt::Delivered => {
                tracing::info!(notify_id = %id, attempts, "notification delivered")
            }
            Attempt::Retry { at, error } => {
                tracing::warn!(notify_id = %id, attempts, next = %format_beijing(*at), %error, "notification not accepted; will retry");
            }
            Attempt::Failed { error } => {
                tracing::error!(notify_id = %id, attempts, %error, "notification failed for good");
            }
        }
        if let Err(e) = self
            .store
            .record_attempt(&id, attempts, now, &attempt)
            .await
        {
            // Not recorded: the claim's lease runs out and it is sent again (a duplicate).
            tracing::warn!(notify_id = %id, error = crate::telemetry::chain(&e), "could not record a notification send");
        }
    }

    /// Signs and posts `n`; `Ok` when the receiver answered `success`.
    async fn send(&self, n: &Notification) -> Result<(), String> {
        // An address literal never meets the resolver: it is checked here.
        self.policy
            .check_url(&n.url)
            .map_err(|e| format!("the address {e}"))?;
        let notify_time = format_beijing(self.clock.now());
        let mut params: Vec<(&str, &str)> = n
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        params.push(("notify_id", &n.notify_id));
        params.push(("notify_time", &notify_time));
        let body = notification::sign_form(&params, &self.key, n.sign_type)
            .map_err(|e| format!("signing failed: {e}"))?;
        let exchange = async {
            let mut response = self
                .http
                .post(&n.url)
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(body)
                .send()
                .await
                .map_err(|e| describe(&e))?;
            let status = response.status();
            let mut answer = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
                if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(format!("answer longer than {MAX_ANSWER_BYTES} bytes"));
                }
                answer.extend_from_slice(&chunk);
            }
            if !status.is_success() {
                return Err(format!("HTTP {}", status.as_u16()));
            }
            if answer.trim_ascii() == RECEIVED.as_bytes() {
                Ok(())
            } else {
                let shown: String = String::from_utf8_lossy(&answer).chars().take(64).collect();
                Err(format!("answered {shown:?} instead of \"success\""))
            }
        };
        // reqwest bounds the exchange too; this outer bound also covers a body that trickles.
        tokio::time::timeout(self.settings.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.settings.timeout)))
    }
}

/// A transport failure in a few words (reqwest's own text names the URL; this names the cause).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "answer unreadable"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use reqwest::dns::Resolve as _;

    use super::*;

    /// `localhost` resolves to the loopback address on every machine (`/etc/hosts`).
    #[tokio::test]
    async fn the_resolver_connects_only_to_addresses_the_policy_allows() {
        let refusing = GuardedResolver(AddressPolicy::default());
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let error = refusing.resolve(name).await.err().unwrap().to_string();
        assert!(
            error.contains("no address notifications may reach"),
            "{error}"
        );
        let allowing = GuardedResolver(AddressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]));
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let addresses: Vec<std::net::SocketAddr> = allowing.resolve(name).await.unwrap().collect();
        assert!(!addresses.is_empty());
        assert!(
            addresses
                .iter()
                .all(|a| a.ip().is_loopback() && a.is_ipv4()),
            "{addresses:?}"
        );
    }
}
