//! `agreements bench`: load like real clients against a running gateway, and the machine's RSA
//! bound measured in the same run, with the ratios between them.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agreements_client::load::{self, Plan, Report};
use agreements_client::{Client, SignedRequest, now_beijing};

use super::call::ClientArgs;
use agreements_protocol::{Charset, SignType};
use anyhow::Context as _;

mod bound;
mod mix;

use bound::Bound;

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("requests").required(true))]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The method every request calls.
    #[arg(long, default_value = "alipay.user.agreement.batch.query")]
    pub method: String,
    /// biz_contents, one per line (each becomes one pre-signed request).
    #[arg(long, group = "requests")]
    pub biz_file: Option<PathBuf>,
    /// An accounts load file (JSON Lines, as `generate-world` writes): one batch query per
    /// account, for --personal-product-code.
    #[arg(long, group = "requests")]
    pub accounts: Option<PathBuf>,
    /// A world's directory (`generate-world`): the requests are --mix's, each asked by the
    /// world's app it names (all signed with --app-key).
    #[arg(long, group = "requests", requires = "mix")]
    pub world: Option<PathBuf>,
    /// The mix made from --world: `distinct` (every answer different: no cache can help) or
    /// `member-center` (one app, MERCHANT scope over its group, persons drawn from Zipf).
    #[arg(long, value_enum, requires = "world")]
    pub mix: Option<mix::Mix>,
    /// The Zipf exponent of --mix member-center.
    #[arg(long, default_value_t = 1.0)]
    pub zipf_exponent: f64,
    /// The share of --mix member-center's requests for persons without the group's agreements.
    #[arg(long, default_value_t = 0.2)]
    pub empty_share: f64,
    /// The random seed of --mix member-center.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the signed requests for `wrk` (tests/bench/wrk.lua reads them: one request a line,
    /// path and query, a tab, the Content-Type, a tab, the body) and stop without loading.
    #[arg(long)]
    pub write_wrk: Option<PathBuf>,
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
    let own_app = client.config().app_id.clone();
    let own = |biz: String| mix::Ask {
        app_id: own_app.clone(),
        biz,
    };
    let (asks, described) = match (&args.biz_file, &args.accounts, &args.world, args.mix) {
        (Some(file), ..) => (
            pool_lines(file, args.pool, |line| {
                (!line.trim().is_empty()).then(|| own(line.to_owned()))
            })?,
            None,
        ),
        (None, Some(file), ..) => (
            pool_lines(file, args.pool, |line| {
                let account = serde_json::from_str::<serde_json::Value>(line).ok()?;
                let user = account["user_id"].as_str()?;
                Some(own(serde_json::json!({"personal_product_code": args.personal_product_code, "alipay_user_id": user})
                    .to_string()))
            })?,
            None,
        ),
        (None, None, Some(world), Some(which)) => {
            let pool = match which {
                mix::Mix::Distinct => mix::distinct(world, args.pool)?,
                mix::Mix::MemberCenter => mix::member_center(
                    world,
                    args.pool,
                    mix::Zipf {
                        exponent: args.zipf_exponent,
                        empty_share: args.empty_share,
                        seed: args.seed,
                    },
                )?,
            };
            (pool.asks, Some(pool.description))
        }
        _ => anyhow::bail!("give --biz-file, --accounts, or --world with --mix"),
    };
    anyhow::ensure!(!asks.is_empty(), "no requests to send: the file is empty");
    let signing = Instant::now();
    let mut pool = sign_all(&client, &args.method, &asks)?;
    if args.wrong_signatures {
        anyhow::ensure!(
            pool.len() >= 2,
            "--wrong-signatures needs at least two distinct requests"
        );
        swap_signatures(&mut pool);
    }
    let mut out = String::new();
    if let Some(described) = described {
        out.push_str(&described);
        out.push('\n');
    }
    if let Some(path) = &args.write_wrk {
        write_wrk(path, &client, &pool)?;
        out.push_str(&format!(
            "wrote {} signed requests to {} (valid for the gateway's timestamp window); run \
             wrk -t1 -c16 -d10s -s tests/bench/wrk.lua {} -- {}\n",
            pool.len(),
            path.display(),
            agreements_client::url_base(&client.config().gateway_url),
            path.display()
        ));
        return super::print(&out);
    }
    let pool = Arc::new(pool);
    let client = Arc::new(client);
    out.push_str(&format!(
        "pool: {} signed requests of {} (signed in {:.1} s, before the run)\n",
        pool.len(),
        args.method,
        signing.elapsed().as_secs_f64()
    ));
    let plan = Plan {
        method: args.method.clone(),
        concurrency: args.concurrency.max(1),
        duration: Duration::from_secs_f64(args.warmup),
        rate: args.rate,
        verify_every: 0,
        first: 0,
    };
    // The measured run goes on from where the warm-up stopped: a pool larger than both sends
    // no request twice.
    let warmed = if args.warmup > 0.0 {
        let warm = run_load(&client, &pool, plan.clone()).await?;
        warm.answered + warm.failed()
    } else {
        0
    };
    let plan = Plan {
        duration: Duration::from_secs_f64(args.duration),
        verify_every: args.verify_every,
        first: warmed,
        ..plan
    };
    let kept_before = signature_cache(&client).await;
    // The machine's speed drifts (other guests on the host): the bound is measured right before
    // the load and again right after it, and the ratio uses their mean.
    let bound = (!args.no_bound).then(Bound::new).transpose()?;
    let bound_before = bound.as_ref().map(Bound::measure);
    let cpu_before = args.server_pid.map(cpu_seconds).transpose()?;
    let own_before = cpu_seconds(std::process::id()).ok();
    let report = run_load(&client, &pool, plan.clone()).await?;
    let own_after = cpu_seconds(std::process::id()).ok();
    let cpu_after = args.server_pid.map(cpu_seconds).transpose()?;
    let kept_after = signature_cache(&client).await;
    out.push_str(&describe(&report, &plan));
    let sent = warmed + report.answered + report.failed();
    out.push_str(&if sent as usize > pool.len() {
        format!(
            "the pool of {} was sent round robin: {sent} requests with the warm-up, so requests \
             repeated\n",
            pool.len()
        )
    } else {
        format!(
            "the pool was not sent round again ({sent} of its {} requests, with the warm-up)\n",
            pool.len()
        )
    });
    let mut from_memory = None;
    if let Some((before, after)) = kept_before.zip(kept_after) {
        let hits = after.hits - before.hits;
        let signed = (after.misses - before.misses) + (after.bypassed - before.bypassed);
        let share = hits / (hits + signed).max(1.0);
        from_memory = Some(share);
        out.push_str(&format!(
            "signature cache (the server's /metrics over the measured run): {hits:.0} answers \
             signed from memory, {signed:.0} by RSA ({:.1} % from memory)\n",
            100.0 * share
        ));
    }
    let per_request =
        |(before, after): (f64, f64)| (after - before) / report.answered.max(1) as f64;
    let generator_cpu = own_before.zip(own_after).map(per_request);
    if let Some(own) = generator_cpu {
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
    if let Some((bound, before)) = bound.zip(bound_before) {
        let measured = bound::Measured {
            server_cpu,
            generator_cpu,
            from_memory,
        };
        out.push_str(&bound.report(&before, &report, &plan, measured));
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
    to_biz: impl Fn(&str) -> Option<mix::Ask>,
) -> anyhow::Result<Vec<mix::Ask>> {
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

/// Signs every ask on all cores, each as its app (with the one key given); an ask repeated
/// (a person drawn again) is signed once.
fn sign_all(
    client: &Client,
    method: &str,
    asks: &[mix::Ask],
) -> anyhow::Result<Vec<SignedRequest>> {
    let timestamp = now_beijing();
    let mut clients: HashMap<&str, Client> = HashMap::new();
    for ask in asks {
        clients
            .entry(&ask.app_id)
            .or_insert_with(|| client.as_app(&ask.app_id));
    }
    let mut index: HashMap<&mix::Ask, usize> = HashMap::new();
    let mut distinct: Vec<&mix::Ask> = Vec::new();
    let order: Vec<usize> = asks
        .iter()
        .map(|ask| {
            *index.entry(ask).or_insert_with(|| {
                distinct.push(ask);
                distinct.len() - 1
            })
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = distinct.len().div_ceil(threads).max(1);
    let signed = std::thread::scope(|scope| {
        let handles: Vec<_> = distinct
            .chunks(chunk)
            .map(|part| {
                let (timestamp, clients) = (&timestamp, &clients);
                scope.spawn(move || {
                    part.iter()
                        .map(|ask| {
                            let client = clients.get(ask.app_id.as_str()).unwrap_or(client);
                            client.sign(method, &ask.biz, timestamp, &[])
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(distinct.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a signing thread failed"))??;
            all.extend(part);
        }
        anyhow::Ok(all)
    })?;
    Ok(order.into_iter().map(|i| signed[i].clone()).collect())
}

/// Writes the pool for tests/bench/wrk.lua: per line the path and query, the Content-Type and
/// the body, tab-separated (none of them holds a tab or a line break: the query and body are
/// percent-encoded).
fn write_wrk(path: &Path, client: &Client, pool: &[SignedRequest]) -> anyhow::Result<()> {
    let url = &client.config().gateway_url;
    let gateway_path = url
        .strip_prefix(agreements_client::url_base(url))
        .unwrap_or("/");
    let mut text = String::new();
    for request in pool {
        text.push_str(&format!(
            "{gateway_path}?{}\t{}\t{}\n",
            request.query, request.content_type, request.body
        ));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The signature cache's counters on the server's /metrics, when it serves them.
#[derive(Debug, Clone, Copy, Default)]
struct CacheCounters {
    hits: f64,
    misses: f64,
    bypassed: f64,
}

async fn signature_cache(client: &Client) -> Option<CacheCounters> {
    let text = client.metrics().await.ok()?;
    let mut counters = CacheCounters::default();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        match name {
            "agreements_signature_cache_total{outcome=\"hit\"}" => counters.hits = value,
            "agreements_signature_cache_total{outcome=\"miss\"}" => counters.misses = value,
            "agreements_signature_cache_total{outcome=\"bypass\"}" => counters.bypassed = value,
            _ => {}
        }
    }
    Some(counters)
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
