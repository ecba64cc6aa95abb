//! `agreements bench`: load like real clients against a running gateway, and the machine's RSA
//! bound measured in the same run, with the ratios between them.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agreements_client::load::{self, Plan, Report};
use agreements_client::{Client, SignedRequest, now_beijing};

use super::call::ClientArgs;
use agreements_protocol::{Charset, PrivateKey, PublicKey, SignType};
use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The method every request calls.
    #[arg(long, default_value = "alipay.user.agreement.batch.query")]
    pub method: String,
    /// biz_contents, one per line (each becomes one pre-signed request).
    #[arg(
        long,
        required_unless_present = "accounts",
        conflicts_with = "accounts"
    )]
    pub biz_file: Option<PathBuf>,
    /// An accounts load file (JSON Lines, as `generate-world` writes): one batch query per
    /// account, for --personal-product-code.
    #[arg(long)]
    pub accounts: Option<PathBuf>,
    /// The product of the batch queries made from --accounts.
    #[arg(long, default_value = "GENERAL_WITHHOLDING_P")]
    pub personal_product_code: String,
    /// Distinct pre-signed requests at most (they are sent round robin; signed before the run so
    /// that the client's own signing is not measured).
    #[arg(long, default_value_t = 10_000)]
    pub pool: usize,
    /// Seconds of load measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load sent first and not measured.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Closed loop: connections sending back to back. Open loop: the most requests in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Open loop at this many requests per second (latency from each intended send time);
    /// closed loop when omitted.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Verify the signature of every n-th answer (0: none).
    #[arg(long, default_value_t = 100)]
    pub verify_every: u64,
    /// The server's process id: its CPU time per request is reported (Linux /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Skip measuring the machine's RSA-2048 bound.
    #[arg(long)]
    pub no_bound: bool,
    /// Junk load: each request carries another pooled request's signature, so every one is
    /// refused `isv.invalid-signature` (what junk naming a real app costs the server).
    #[arg(long)]
    pub wrong_signatures: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.duration > 0.0
            && args.duration <= 86_400.0
            && args.warmup >= 0.0
            && args.warmup <= 3_600.0,
        "--duration must be in (0, 86400] seconds and --warmup in [0, 3600]"
    );
    anyhow::ensure!(
        args.rate.is_none_or(|r| r > 0.0 && r <= load::MAX_RATE),
        "--rate must be a positive number of requests per second, at most {}",
        load::MAX_RATE
    );
    let client = args.client.client(SignType::Rsa2, Charset::Utf8)?;
    let bizs = match (&args.biz_file, &args.accounts) {
        (Some(file), _) => pool_lines(file, args.pool, |line| {
            (!line.trim().is_empty()).then(|| line.to_owned())
        })?,
        (None, Some(file)) => pool_lines(file, args.pool, |line| {
            let account = serde_json::from_str::<serde_json::Value>(line).ok()?;
            let user = account["user_id"].as_str()?;
            Some(
                serde_json::json!({"personal_product_code": args.personal_product_code, "alipay_user_id": user})
                    .to_string(),
            )
        })?,
        (None, None) => Vec::new(),
    };
    anyhow::ensure!(!bizs.is_empty(), "no requests to send: the file is empty");
    let signing = Instant::now();
    let mut pool = sign_all(&client, &args.method, &bizs)?;
    if args.wrong_signatures {
        anyhow::ensure!(
            pool.len() >= 2,
            "--wrong-signatures needs at least two distinct requests"
        );
        swap_signatures(&mut pool);
    }
    let pool = Arc::new(pool);
    let client = Arc::new(client);
    let mut out = format!(
        "pool: {} distinct signed requests of {} (signed in {:.1} s, before the run)\n",
        pool.len(),
        args.method,
        signing.elapsed().as_secs_f64()
    );
    let plan = Plan {
        method: args.method.clone(),
        concurrency: args.concurrency.max(1),
        duration: Duration::from_secs_f64(args.warmup),
        rate: args.rate,
        verify_every: 0,
    };
    if args.warmup > 0.0 {
        run_load(&client, &pool, plan.clone()).await?;
    }
    let plan = Plan {
        duration: Duration::from_secs_f64(args.duration),
        verify_every: args.verify_every,
        ..plan
    };
    // The machine's speed drifts (other guests on the host): the bound is measured right before
    // the load and again right after it, and the ratio uses their mean.
    let bound = (!args.no_bound).then(Bound::new).transpose()?;
    let signs_before = bound.as_ref().map(Bound::signs_on_all_cores);
    let cpu_before = args.server_pid.map(cpu_seconds).transpose()?;
    let own_before = cpu_seconds(std::process::id()).ok();
    let report = run_load(&client, &pool, plan.clone()).await?;
    let own_after = cpu_seconds(std::process::id()).ok();
    let cpu_after = args.server_pid.map(cpu_seconds).transpose()?;
    out.push_str(&describe(&report, &plan));
    let per_request =
        |(before, after): (f64, f64)| (after - before) / report.answered.max(1) as f64;
    if let Some(own) = own_before.zip(own_after).map(per_request) {
        out.push_str(&format!(
            "load generator CPU: {:.0} µs per request (this process, user + system)\n",
            own * 1e6
        ));
    }
    let server_cpu = cpu_before.zip(cpu_after).map(per_request);
    if let Some(cpu) = server_cpu {
        out.push_str(&format!(
            "server CPU: {:.0} µs per request (process {}, user + system)\n",
            cpu * 1e6,
            args.server_pid.unwrap_or_default()
        ));
    }
    if let Some((bound, before)) = bound.zip(signs_before) {
        out.push_str(&bound.report(before, &report, server_cpu));
    }
    super::print(&out)?;
    anyhow::ensure!(report.answered > 0, "no request was answered");
    Ok(())
}

/// Runs the load generator on a thread of its own (it blocks, on a runtime of its own).
async fn run_load(
    client: &Arc<Client>,
    pool: &Arc<Vec<SignedRequest>>,
    plan: Plan,
) -> anyhow::Result<Report> {
    let (client, pool) = (client.clone(), pool.clone());
    Ok(tokio::task::spawn_blocking(move || load::run(&client, &pool, &plan)).await??)
}

/// The biz_contents `to_biz` makes of `path`'s lines, at most `pool`: the file is read no further
/// than needed (a world's accounts file can hold millions of lines).
fn pool_lines(
    path: &Path,
    pool: usize,
    to_biz: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bizs = Vec::new();
    for line in BufReader::new(file).lines() {
        if bizs.len() >= pool {
            break;
        }
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        bizs.extend(to_biz(&line));
    }
    Ok(bizs)
}

/// Signs every biz_content on all cores.
fn sign_all(client: &Client, method: &str, bizs: &[String]) -> anyhow::Result<Vec<SignedRequest>> {
    let timestamp = now_beijing();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = bizs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = bizs
            .chunks(chunk)
            .map(|part| {
                let timestamp = &timestamp;
                scope.spawn(move || {
                    part.iter()
                        .map(|biz| client.sign(method, biz, timestamp, &[]))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(bizs.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a signing thread failed"))??;
            all.extend(part);
        }
        Ok(all)
    })
}

/// Gives each request the signature of the next one (a valid signature over other bytes).
fn swap_signatures(pool: &mut [SignedRequest]) {
    let sign = |query: &str| {
        query
            .split('&')
            .find(|p| p.starts_with("sign="))
            .unwrap_or_default()
            .to_owned()
    };
    let signs: Vec<String> = pool.iter().map(|r| sign(&r.query)).collect();
    for (i, request) in pool.iter_mut().enumerate() {
        let other = &signs[(i + 1) % signs.len()];
        request.query = request
            .query
            .split('&')
            .map(|p| {
                if p.starts_with("sign=") {
                    other.as_str()
                } else {
                    p
                }
            })
            .collect::<Vec<_>>()
            .join("&");
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.2} ms", d.as_secs_f64() * 1e3),
    )
}

fn describe(report: &Report, plan: &Plan) -> String {
    let mode = match plan.rate {
        None => format!("closed loop, {} connections", plan.concurrency),
        Some(rate) => format!(
            "open loop at {rate:.0}/s (at most {} in flight)",
            plan.concurrency
        ),
    };
    let mut out = format!(
        "{mode}, {:.1} s: {:.0} answers/s; {} answered, {} failed\n\
         latency{}: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n",
        report.elapsed.as_secs_f64(),
        report.throughput(),
        report.answered,
        report.failed(),
        if plan.rate.is_some() {
            " (from the intended send time)"
        } else {
            ""
        },
        ms(report.quantile(0.5)),
        ms(report.quantile(0.9)),
        ms(report.quantile(0.99)),
        ms(report.quantile(0.999)),
        ms(report.quantile(1.0)),
    );
    let verified: u64 = report.verified.values().sum();
    if plan.verify_every > 0 {
        let codes: Vec<String> = report
            .verified
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        out.push_str(&format!(
            "verified {verified} sampled answers (every {}th): {}\n",
            plan.verify_every,
            if codes.is_empty() {
                "-".to_owned()
            } else {
                codes.join(", ")
            }
        ));
    }
    for (error, n) in &report.errors {
        out.push_str(&format!("  failed ×{n}: {error}\n"));
    }
    out
}

/// User + system CPU seconds of a process, from /proc (USER_HZ is 100 on Linux).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of stat; here 0 is field 3.
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        anyhow::bail!("/proc/{pid}/stat is not in the expected format");
    };
    Ok((user + system) / 100.0)
}

/// The machine's RSA-2048 bound with the crypto library the server uses (the `openssl` crate).
struct Bound {
    threads: usize,
    key: PrivateKey,
    public: PublicKey,
    signature: String,
}

/// Signed in the bound: about as long as a typical request's string-to-sign.
const MESSAGE: &[u8] =
    b"agreements bench: the string-to-sign of a typical request, about this long";
/// How long the all-cores sign rate is measured.
const BOUND_WINDOW: Duration = Duration::from_secs(2);

impl Bound {
    fn new() -> anyhow::Result<Self> {
        let key = PrivateKey::generate(2048)?;
        let public = key.public_key()?;
        let signature = key.sign(SignType::Rsa2, MESSAGE)?;
        Ok(Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            key,
            public,
            signature,
        })
    }

    /// RSA-2048 SHA256withRSA signs per second with every core signing.
    fn signs_on_all_cores(&self) -> f64 {
        rate_on_threads(self.threads, BOUND_WINDOW, || {
            let _ = self.key.sign(SignType::Rsa2, MESSAGE);
        })
    }

    /// The bound after the run (`before` was measured before it), one sign and one verify on one
    /// thread, `openssl speed` when present, and the ratios of the run against them.
    fn report(&self, before: f64, report: &Report, server_cpu: Option<f64>) -> String {
        let threads = self.threads;
        let after = self.signs_on_all_cores();
        let all_cores = (before + after) / 2.0;
        let one_sign = 1.0
            / rate_on_threads(1, Duration::from_secs(1), || {
                let _ = self.key.sign(SignType::Rsa2, MESSAGE);
            });
        let one_verify = 1.0
            / rate_on_threads(1, Duration::from_millis(500), || {
                let _ = self.public.verify(SignType::Rsa2, MESSAGE, &self.signature);
            });
        let mut out = format!(
            "machine bound (openssl crate, RSA-2048 SHA256withRSA, {threads} threads, {:.0} s before and after the run): \
             {all_cores:.0} signs/s ({before:.0} before, {after:.0} after); \
             one sign {:.0} µs + one verify {:.0} µs on one thread\n",
            BOUND_WINDOW.as_secs_f64(),
            one_sign * 1e6,
            one_verify * 1e6
        );
        if let Some(speed) = openssl_speed(threads) {
            out.push_str(&format!(
                "openssl speed -multi {threads} rsa2048: {speed:.0} signs/s\n"
            ));
        }
        out.push_str(&format!(
            "ratio: answers/s ÷ signs/s = {:.2} (target ≥ 0.90)\n",
            report.throughput() / all_cores
        ));
        if let Some(cpu) = server_cpu {
            out.push_str(&format!(
                "ratio: server CPU per request ÷ (one sign + one verify) = {:.2} (target ≤ 1.10)\n",
                cpu / (one_sign + one_verify)
            ));
        }
        out
    }
}

/// Operations per second of `op` run on `threads` threads for `window`.
fn rate_on_threads(threads: usize, window: Duration, op: impl Fn() + Sync) -> f64 {
    let started = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut n = 0u64;
                    while started.elapsed() < window {
                        op();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

/// `openssl speed -multi N -seconds 2 rsa2048`'s sign rate, when the tool is installed.
fn openssl_speed(threads: usize) -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-multi",
            &threads.to_string(),
            "-seconds",
            "2",
            "rsa2048",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("rsa 2048 bits"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    fields.get(fields.len().checked_sub(2)?)?.parse().ok()
}
