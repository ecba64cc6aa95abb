//! Load generation for `agreements bench`: pre-signed requests sent over keep-alive connections,
//! closed loop (as fast as answers come back) or open loop (at a fixed rate, each latency measured
//! from the intended send time, so a slow server cannot hide its queue: no coordinated omission).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::{Client, SignedRequest, verify_response};

/// How a run sends.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The method every pooled request calls.
    pub method: String,
    /// Closed loop: connections sending back to back. Open loop: the most requests in flight.
    pub concurrency: usize,
    /// How long requests are sent.
    pub duration: Duration,
    /// `Some(r)`: open loop at `r` requests per second; `None`: closed loop.
    pub rate: Option<f64>,
    /// Every n-th answer's signature is verified and its code counted (0: none).
    pub verify_every: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests that got an HTTP 200 answer.
    pub answered: u64,
    /// Failures by kind (transport errors, other statuses, signatures that do not verify).
    pub errors: BTreeMap<String, u64>,
    /// From the first send to the last answer.
    pub elapsed: Duration,
    /// Every answered request's latency in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Sampled answers whose signature verified, by `code` (and `sub_code`).
    pub verified: BTreeMap<String, u64>,
}

impl Report {
    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency below which `q` (0–1) of the answers came, if any came.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n);
        Some(Duration::from_micros(u64::from(
            self.latencies_us[rank - 1],
        )))
    }

    /// Failed requests.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    fn merge(&mut self, part: Part) {
        self.answered += part.answered;
        self.latencies_us.extend(part.latencies_us);
        for (k, v) in part.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in part.verified {
            *self.verified.entry(k).or_default() += v;
        }
    }
}

/// One sender's (or one request's) share of a report.
#[derive(Debug, Default)]
struct Part {
    answered: u64,
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    verified: BTreeMap<String, u64>,
}

/// Sends `pool` (round robin) by `plan`.
pub async fn run(client: Arc<Client>, pool: Arc<Vec<SignedRequest>>, plan: &Plan) -> Report {
    let started = Instant::now();
    let deadline = started + plan.duration;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    match plan.rate {
        None => {
            for _ in 0..plan.concurrency.max(1) {
                let (client, pool, next, plan) =
                    (client.clone(), pool.clone(), next.clone(), plan.clone());
                tasks.spawn(async move {
                    let mut part = Part::default();
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        one(&client, &pool, &plan, i, sent, &mut part).await;
                    }
                    part
                });
            }
        }
        Some(rate) => {
            let slots = Arc::new(tokio::sync::Semaphore::new(plan.concurrency.max(1)));
            let rate = rate.max(1e-3);
            let mut i: u64 = 0;
            while let Ok(offset) = Duration::try_from_secs_f64(i as f64 / rate) {
                let intended = started + offset;
                if intended >= deadline {
                    break;
                }
                tokio::time::sleep_until(intended.into()).await;
                // At most `concurrency` in flight; a send that waits here still counts its
                // latency from `intended`.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (client, pool, plan) = (client.clone(), pool.clone(), plan.clone());
                tasks.spawn(async move {
                    let mut part = Part::default();
                    one(&client, &pool, &plan, i, intended, &mut part).await;
                    drop(slot);
                    part
                });
                i += 1;
            }
        }
    }
    let mut report = Report::default();
    while let Some(part) = tasks.join_next().await {
        if let Ok(part) = part {
            report.merge(part);
        }
    }
    report.elapsed = started.elapsed();
    report.latencies_us.sort_unstable();
    report
}

/// Sends the `i`-th request, timed from `since`.
async fn one(
    client: &Client,
    pool: &[SignedRequest],
    plan: &Plan,
    i: u64,
    since: Instant,
    part: &mut Part,
) {
    let Some(request) = usize::try_from(i)
        .ok()
        .and_then(|i| pool.get(i % pool.len().max(1)))
    else {
        return;
    };
    match client.send(request).await {
        Ok((200, body)) => {
            let micros = since.elapsed().as_micros();
            part.latencies_us
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
            part.answered += 1;
            if plan.verify_every > 0 && i.is_multiple_of(plan.verify_every) {
                let c = client.config();
                let key = match verify_response(
                    &body,
                    &plan.method,
                    c.charset,
                    &c.platform_public_key,
                    c.sign_type,
                ) {
                    Ok(answer) => answer.outcome(),
                    Err(e) => {
                        *part
                            .errors
                            .entry(format!("answer refused: {e}"))
                            .or_default() += 1;
                        return;
                    }
                };
                *part.verified.entry(key).or_default() += 1;
            }
        }
        Ok((status, _)) => *part.errors.entry(format!("HTTP {status}")).or_default() += 1,
        Err(e) => *part.errors.entry(format!("transport: {e}")).or_default() += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let report = Report {
            latencies_us: (1..=1000).collect(),
            ..Report::default()
        };
        assert_eq!(report.quantile(0.5), Some(Duration::from_micros(500)));
        assert_eq!(report.quantile(0.99), Some(Duration::from_micros(990)));
        assert_eq!(report.quantile(0.999), Some(Duration::from_micros(999)));
        assert_eq!(report.quantile(1.0), Some(Duration::from_micros(1000)));
        assert_eq!(report.quantile(0.0), Some(Duration::from_micros(1)));
        assert_eq!(Report::default().quantile(0.5), None);
    }
}
